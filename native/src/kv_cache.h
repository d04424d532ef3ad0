// The StreamingLLM KV cache: per layer [ sinks S ][ pinned memory M ][ ring of R slots ].
// The ring holds the rolling window (the newest W committed tokens) and, beyond it, the open
// branch or the chunk being prefilled; R = W + max(B, n_batch) so neither can overwrite a
// window entry that is still visible. Appending never copies or rewrites stored keys (they are
// kept before RoPE); eviction is the ring's index moving on.
//
// Visibility: a query at window entry e sees the sinks, the memory, and entries (e-W, e] of
// the stream (window and branch together). Positions are assigned in cache order at attention
// time: sinks 0..S-1, memory S..S+M-1, visible window entries in age order.
//
// This module owns per-entry metadata (tokens, counters) and the K/V buffers; it plans where a
// chunk goes and what it sees (cache_view), and the model never indexes the ring itself.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend.h"
#include "model.h"

namespace endless {

struct cache_params {
    int32_t n_sinks = 4;
    int32_t n_window = 0;
    int32_t n_memory_max = 0;
    int32_t n_branch_max = 512;
    int32_t n_batch = 256;
};

class kv_cache {
public:
    kv_cache(const model &m, const cache_params &p);
    ~kv_cache();
    kv_cache(const kv_cache &) = delete;
    kv_cache &operator=(const kv_cache &) = delete;

    const cache_params &params() const { return p_; }

    // Stream (or open branch) tokens. plan_append returns how many of the n tokens the next
    // chunk takes (>= 1) and fills view; after the forward pass succeeds, commit_append(tokens, k)
    // with that k. Throws ENDLESS_ERR_CAPACITY when the branch is full.
    int plan_append(int n, cache_view &view) const;
    void commit_append(const int32_t *tokens, int k);

    // Pinned memory: begin_memory() drops the old memory; then plan_memory/commit_memory chunks.
    void begin_memory();
    int plan_memory(int n, cache_view &view) const;
    void commit_memory(const int32_t *tokens, int k);
    bool sinks_full() const { return (int)sinks_.size() == p_.n_sinks; }

    // Branches.
    void branch_begin();
    void branch_discard();
    void branch_commit();
    bool branch_open() const { return branch_open_; }
    int32_t branch_len() const { return branch_len_; }
    // How many of tokens[0..n) equal what the ring already holds for this branch position
    // (valid only when nothing changed the stream since those entries were computed).
    int reusable_prefix(const int32_t *tokens, int n) const;
    void reuse(int k);  // advance the branch over k reused entries

    void clear();

    // Counters and contents.
    int64_t n_seen() const { return (int64_t)sinks_.size() + win_count_; }
    int64_t n_evicted() const { return win_count_ > p_.n_window ? win_count_ - p_.n_window : 0; }
    int32_t n_sinks() const { return (int32_t)sinks_.size(); }
    int32_t n_memory() const { return (int32_t)memory_.size(); }
    int32_t n_window() const { return (int32_t)std::min<int64_t>(win_count_, p_.n_window); }
    uint64_t bytes() const { return bytes_; }
    std::vector<int32_t> tokens() const;  // sinks, memory, visible window, branch

    const std::vector<float *> &k() const { return k_; }
    const std::vector<float *> &v() const { return v_; }
    const float *rope_cos() const { return rope_cos_; }
    const float *rope_sin() const { return rope_sin_; }

    // Snapshot body (everything but the file header/checksum): serialize appends to out;
    // deserialize validates fully before changing anything (throws ENDLESS_ERR_FORMAT/MISMATCH).
    void serialize(std::vector<uint8_t> &out) const;
    void deserialize(const uint8_t *data, size_t size);

private:
    int32_t ring_slot(int64_t e) const { return p_.n_sinks + p_.n_memory_max + (int32_t)(e % ring_); }
    void view_window(int64_t e0, int k, cache_view &view) const;

    backend &be_;
    cache_params p_;
    int32_t n_layer_ = 0;
    int32_t kv_dim_ = 0;
    int32_t n_vocab_ = 0;
    int32_t ring_ = 0;     // R
    int32_t n_slots_ = 0;  // S + M + R
    uint64_t bytes_ = 0;
    std::vector<float *> k_, v_;  // per layer: [n_slots, kv_dim]
    float *rope_cos_ = nullptr, *rope_sin_ = nullptr;

    std::vector<int32_t> sinks_;
    std::vector<int32_t> memory_;
    int64_t win_count_ = 0;             // committed window entries ever appended
    std::vector<int32_t> ring_tokens_;  // token of each ring slot
    bool branch_open_ = false;
    int32_t branch_len_ = 0;
    // Entries win_count_ .. win_count_ + branch_valid_-1 hold K/V computed for the tokens
    // ring_tokens_ shows, against the current stream (reset whenever the stream changes).
    int32_t branch_valid_ = 0;
};

}  // namespace endless
