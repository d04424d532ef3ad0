// Token sampling: repetition penalty, temperature, top-k, top-p, min-p, seeded RNG; greedy when
// the temperature is <= 0.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "endless.h"

namespace endless {

// The first index of the largest of x[0, n), NaN counting as -inf (0 when nothing is above -inf):
// the greedy pick. backend::argmax computes the same index where the logits are.
int32_t greedy_index(const float *x, int32_t n);
// The same with the values at ids (strictly increasing, in [0, n)) penalized as the sampler does:
// x / penalty where x > 0, x * penalty otherwise.
int32_t greedy_index_penalized(const float *x, int32_t n, const int32_t *ids, int n_ids, float penalty);

class sampler {
public:
    explicit sampler(const endless_sampler_params &p);
    int32_t sample(const float *logits, int32_t n_vocab, const int32_t *recent, int32_t n_recent);
    const endless_sampler_params &params() const { return p_; }
    // Whether draws are greedy (temperature <= 0): greedy_index_penalized of the logits with
    // penalized_ids, so the index can be taken where the logits are.
    bool greedy() const { return p_.temperature <= 0.0f; }
    // Whether draws apply a repetition penalty (to the recent tokens, when there are any).
    bool penalizes() const { return p_.repeat_penalty != 1.0f && p_.repeat_penalty > 0; }
    // The tokens a draw after `recent` penalizes, in increasing order (none without a penalty).
    std::vector<int32_t> penalized_ids(const int32_t *recent, int32_t n_recent, int32_t n_vocab) const;
    struct cand {
        float x;      // logit after the penalties
        int32_t id;
        double p;     // (x - max) / T, then exp of it
    };
private:
    size_t order_more(cand *c, size_t from, size_t n, double mass, double floor_p, float mx, double inv_t);
    endless_sampler_params p_;
    std::mt19937_64 rng_;
    std::vector<float> work_;
    std::vector<cand> cand_, tmp_;
    std::vector<uint64_t> keys_;
    std::vector<size_t> hist_n_;
    std::vector<double> hist_p_;
    std::vector<int32_t> order_;
};

}  // namespace endless
