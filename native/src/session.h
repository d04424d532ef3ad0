// A session: one model, one StreamingLLM cache, the logits of the last token, and the calls
// that drive them (decode in chunks, branches with prefix reuse, pinned memory, generation,
// snapshots). Not thread-safe: the caller serializes calls.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "endless.h"
#include "kv_cache.h"
#include "model.h"
#include "sampler.h"

namespace endless {

class session {
public:
    session(model &m, const cache_params &p);

    void decode(const int32_t *tokens, int n, endless_logits_mode mode, float *logits, const volatile int32_t *cancel);
    const std::vector<float> &last_logits() const;
    void branch_begin();
    void branch_discard();
    void branch_commit();
    void set_memory(const int32_t *tokens, int n, const volatile int32_t *cancel);
    void clear();
    endless_session_stats stats() const;
    std::vector<int32_t> tokens() const { return cache_.tokens(); }
    void save(const std::string &path) const;
    void restore(const std::string &path);
    // Restores from snapshot bytes in memory (the file's whole content); `where` prefixes errors.
    void restore_bytes(const uint8_t *data, size_t size, const std::string &where);
    int generate(sampler &smp, int max_tokens, const int32_t *stop, int n_stop, endless_token_fn on_token,
                 void *user_data, const volatile int32_t *cancel);

    const cache_params &params() const { return cache_.params(); }
    model &mdl() { return model_; }

private:
    void check_tokens(const int32_t *tokens, int n) const;
    // decode; greedy (mode NONE): the last chunk's next token is picked where the logits are
    // (model::forward's greedy, with pen) and logits_ is left behind them until settle_logits.
    void decode_impl(const int32_t *tokens, int n, endless_logits_mode mode, float *logits, const volatile int32_t *cancel,
                     int32_t *greedy, const argmax_penalty &pen = {});
    void settle_logits();
    model &model_;
    kv_cache cache_;
    cache_view view_;
    std::vector<float> logits_;        // after the last processed token
    bool logits_valid_ = false;
    bool logits_behind_ = false;       // (inside generate) the model holds newer logits than logits_
    std::vector<float> saved_logits_;  // at branch_begin, restored by discard
    bool saved_valid_ = false;
    std::vector<float> rows_;          // scratch for all-logits mode
    int64_t n_processed_ = 0;
    int64_t n_reused_ = 0;
};

}  // namespace endless
