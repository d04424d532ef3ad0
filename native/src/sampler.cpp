// Sampling in the usual order: penalties on the raw logits, then temperature, top-k, softmax,
// top-p (smallest set with mass >= p), min-p (drop tokens below min_p * max prob), draw.
#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace endless {

sampler::sampler(const endless_sampler_params &p) : p_(p), rng_(p.seed) {}

int32_t sampler::sample(const float *logits, int32_t n_vocab, const int32_t *recent, int32_t n_recent) {
    work_.assign(logits, logits + n_vocab);
    if (p_.repeat_penalty != 1.0f && p_.repeat_penalty > 0 && recent && n_recent > 0) {
        const int32_t n = p_.repeat_last_n > 0 ? std::min(n_recent, p_.repeat_last_n) : n_recent;
        std::vector<int32_t> seen(recent + (n_recent - n), recent + n_recent);
        std::sort(seen.begin(), seen.end());
        seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
        for (int32_t t : seen) {
            if (t < 0 || t >= n_vocab) continue;
            work_[t] = work_[t] > 0 ? work_[t] / p_.repeat_penalty : work_[t] * p_.repeat_penalty;
        }
    }
    // NaN logits never win
    for (float &x : work_) if (std::isnan(x)) x = -INFINITY;
    if (p_.temperature <= 0.0f) {
        return (int32_t)(std::max_element(work_.begin(), work_.end()) - work_.begin());
    }
    idx_.resize(n_vocab);
    std::iota(idx_.begin(), idx_.end(), 0);
    int32_t k = (p_.top_k > 0 && p_.top_k < n_vocab) ? p_.top_k : n_vocab;
    auto by_logit = [&](int32_t a, int32_t b) { return work_[a] > work_[b] || (work_[a] == work_[b] && a < b); };
    if (k < n_vocab) {
        std::partial_sort(idx_.begin(), idx_.begin() + k, idx_.end(), by_logit);
        idx_.resize(k);
    } else {
        std::sort(idx_.begin(), idx_.end(), by_logit);
    }
    const float mx = work_[idx_[0]];
    if (!std::isfinite(mx)) return idx_[0];
    std::vector<double> prob(idx_.size());
    double sum = 0;
    for (size_t i = 0; i < idx_.size(); i++) {
        prob[i] = std::exp(((double)work_[idx_[i]] - mx) / p_.temperature);
        sum += prob[i];
    }
    size_t keep = idx_.size();
    if (p_.top_p > 0 && p_.top_p < 1.0f) {
        double acc = 0;
        for (size_t i = 0; i < idx_.size(); i++) {
            acc += prob[i] / sum;
            if (acc >= p_.top_p) { keep = i + 1; break; }
        }
    }
    if (p_.min_p > 0) {
        const double floor = p_.min_p * prob[0];
        size_t i = 1;
        while (i < keep && prob[i] >= floor) i++;
        keep = i;
    }
    double total = 0;
    for (size_t i = 0; i < keep; i++) total += prob[i];
    std::uniform_real_distribution<double> u(0.0, total);
    double r = u(rng_), acc = 0;
    for (size_t i = 0; i < keep; i++) {
        acc += prob[i];
        if (r < acc) return idx_[i];
    }
    return idx_[keep - 1];
}

}  // namespace endless
