// Sampling in the usual order: penalties on the raw logits, then temperature, top-k, softmax,
// top-p (smallest set with mass >= p), min-p (drop tokens below min_p * max prob), draw.
//
// What a draw is, exactly (native/tests/test_session.cpp holds a plain full-sort version of this
// definition and checks the two pick the same token on every draw):
//   - order: logits descending, ties by the lower token id; p_i = exp(z_i) in double with
//     z_i = (x_i - max) * (1 / T) for tokens within 40 T of the max (z >= -40), and 0 below it
//     (e^-40 = 4e-18 of the top token: never drawn);
//   - the top-k set: the first k of that order among tokens with p_i > 0; its sum: in token-id
//     order;
//   - top-p: the shortest prefix of the order whose running sum of p_i / sum reaches top_p;
//     min-p: the prefix whose p_i >= min_p * p_max; the draw: u ~ U(0, total of the kept prefix)
//     from the seeded mt19937_64, walked down the order.
// The order is only needed as far as the kept prefix reaches: the first 64 by a heap (most draws
// end there), then, where the cuts reach further, buckets of (max - x) / T say how many more
// tokens they need, and those are sorted by radix. Per draw on the 2-core dev VM, 151,936 tokens
// (`npm run bench -- sampler`: bench/results/sampler-2026-11-26T2039-before.json, ...T2038.json):
// the chat sampler (T 0.2, top-p 0.95) 14.1 -> 0.16 ms on logits with clear leaders and 14.1 ->
// 2.2 ms on flat ones (most of the vocabulary inside top-p); T 0.9, top-p 0.95 14.1 -> 0.92 / 4.5
// ms; no cut at all (every candidate in order) 14.1 -> 3.4 ms.
#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace endless {

namespace {

bool first(const sampler::cand &a, const sampler::cand &b) { return a.x > b.x || (a.x == b.x && a.id < b.id); }

// A radix key that orders floats as `first` does by x (larger first; -0 and +0 as one).
uint32_t desc_key(float x) {
    if (x == 0.0f) x = 0.0f;
    uint32_t u;
    std::memcpy(&u, &x, 4);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // ascending in x
    return ~u;
}

constexpr int BUCKETS = 2048;  // of u = (max - x) / T in [0, 40]

// A logit as a repetition penalty leaves it (the one definition: the draws below, greedy or not).
inline float penalized(float x, float penalty) { return x > 0 ? x / penalty : x * penalty; }

// greedy_index; mx gets the largest value. 8 running maxima, so the loop is not one chain of
// dependent compares.
int32_t first_max(const float *x, int32_t n, float &mx) {
    auto val = [&](int32_t i) { return x[i] == x[i] ? x[i] : -INFINITY; };
    float lane_max[8];
    std::fill(lane_max, lane_max + 8, -INFINITY);
    for (int32_t i = 0; i < n; i++) lane_max[i & 7] = std::max(lane_max[i & 7], val(i));
    mx = *std::max_element(lane_max, lane_max + 8);
    for (int32_t i = 0; i < n; i++)
        if (val(i) == mx) return i;
    return 0;
}

}  // namespace

// Puts c[from, from + m) in order: the first m of c[from, n), m as few as carry `mass` more of p
// and reach below `floor_p` (each with one bucket of slack: a bucket's sum is not the walk's).
// Buckets of u = (max - x) / T find m in one pass; the m are sorted by radix (x), then equal x by id.
size_t sampler::order_more(cand *c, size_t from, size_t n, double mass, double floor_p, float mx, double inv_t) {
    auto bucket = [&](float x) {
        const double u = ((double)mx - x) * inv_t * (BUCKETS / 40.0);
        return u < BUCKETS - 1 ? (int)u : BUCKETS - 1;
    };
    hist_n_.assign(BUCKETS, 0);
    hist_p_.assign(BUCKETS, 0.0);
    for (size_t i = from; i < n; i++) {
        const int b = bucket(c[i].x);
        hist_n_[b]++;
        hist_p_[b] += c[i].p;
    }
    int end = BUCKETS - 1;
    if (mass < INFINITY) {
        double cum = 0;
        int b = 0;
        while (b < BUCKETS - 1 && (cum += hist_p_[b]) < mass * (1 + 1e-9)) b++;
        end = std::min(end, b + 1);
    }
    if (floor_p > 0) end = std::min(end, bucket((float)((double)mx + std::log(floor_p) / inv_t)) + 1);
    size_t m = 0;
    for (int b = 0; b <= end; b++) m += hist_n_[b];
    for (int b = end + 1; m == 0 && b < BUCKETS; b++) m += hist_n_[b], end = b;
    if (end < BUCKETS - 1)
        std::partition(c + from, c + n, [&](const cand &x) { return bucket(x.x) <= end; });
    cand *const a = c + from;
    if (m < 256) {
        std::sort(a, a + m, first);
        return m;
    }
    // LSD radix sort by desc_key: 11 + 11 + 10 bits, (key, index) pairs
    keys_.resize(2 * m);
    uint64_t *k0 = keys_.data(), *k1 = k0 + m;
    for (size_t i = 0; i < m; i++) k0[i] = (uint64_t)desc_key(a[i].x) << 32 | (uint32_t)i;
    for (int shift : {32, 43, 54}) {
        const int bits = shift == 54 ? 10 : 11;
        size_t count[2048] = {};
        for (size_t i = 0; i < m; i++) count[(k0[i] >> shift) & ((1u << bits) - 1)]++;
        size_t at = 0;
        for (int d = 0; d < (1 << bits); d++) { const size_t t = count[d]; count[d] = at; at += t; }
        for (size_t i = 0; i < m; i++) k1[count[(k0[i] >> shift) & ((1u << bits) - 1)]++] = k0[i];
        std::swap(k0, k1);
    }
    tmp_.resize(m);
    for (size_t i = 0; i < m; i++) tmp_[i] = a[(uint32_t)k0[i]];
    std::copy(tmp_.begin(), tmp_.end(), a);
    for (size_t i = 0; i < m;) {  // equal x: by id
        size_t j = i + 1;
        while (j < m && a[j].x == a[i].x) j++;
        if (j - i > 1) std::sort(a + i, a + j, first);
        i = j;
    }
    return m;
}

int32_t greedy_index(const float *x, int32_t n) {
    float mx;
    return first_max(x, n, mx);
}

sampler::sampler(const endless_sampler_params &p) : p_(p), rng_(p.seed) {}

int32_t greedy_index_penalized(const float *x, int32_t n, const int32_t *ids, int n_ids, float penalty) {
    if (n_ids == 0) return greedy_index(x, n);
    // one pass, the penalized ids met in order; a strictly larger value moves the pick (first index)
    float best = -INFINITY;
    int32_t at = 0;
    int j = 0;
    for (int32_t i = 0; i < n; i++) {
        float v = x[i];
        if (j < n_ids && ids[j] == i) {
            v = penalized(v, penalty);
            j++;
        }
        if (v > best) {
            best = v;
            at = i;
        }
    }
    return at;
}

std::vector<int32_t> sampler::penalized_ids(const int32_t *recent, int32_t n_recent, int32_t n_vocab) const {
    if (!penalizes() || !recent || n_recent <= 0) return {};
    const int32_t n = p_.repeat_last_n > 0 ? std::min(n_recent, p_.repeat_last_n) : n_recent;
    std::vector<int32_t> seen(recent + (n_recent - n), recent + n_recent);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    seen.erase(std::remove_if(seen.begin(), seen.end(), [&](int32_t t) { return t < 0 || t >= n_vocab; }), seen.end());
    return seen;
}

int32_t sampler::sample(const float *logits, int32_t n_vocab, const int32_t *recent, int32_t n_recent) {
    const std::vector<int32_t> pen = penalized_ids(recent, n_recent, n_vocab);
    if (greedy()) {
        // on the logits as given, no copy of them (151,936 tokens: 0.093 -> 0.076 ms a draw on the VM
        // through the addon, bench/results/sampler-2026-11-26T2157.json); the penalty in passing
        return greedy_index_penalized(logits, n_vocab, pen.data(), (int)pen.size(), p_.repeat_penalty);
    }
    work_.assign(logits, logits + n_vocab);
    for (int32_t t : pen) work_[t] = penalized(work_[t], p_.repeat_penalty);
    // NaN logits never win (the stages below compare logits: none is left)
    for (float &x : work_) x = x == x ? x : -INFINITY;
    float mx;
    const int32_t best = first_max(work_.data(), n_vocab, mx);
    if (!std::isfinite(mx)) return best;

    // the candidates (p > 0; a prefix of the order) with z, cut to the first top_k; cand_ only
    // grows, c[0, n) is this draw's
    const double inv_t = 1.0 / (double)p_.temperature;
    if (cand_.size() < (size_t)n_vocab) cand_.resize(n_vocab);
    cand *const c = cand_.data();
    size_t n = 0, sorted = 0;  // c[0, sorted) is in order
    if (p_.top_k > 0 && p_.top_k < n_vocab) {
        // the first top_k of every token (a heap whose root is the last of them), then the
        // candidates among them
        const size_t k = (size_t)p_.top_k;
        for (int32_t i = 0; i < n_vocab; i++) {
            const cand t{work_[i], i, 0.0};
            if (n < k) {
                c[n++] = t;
                std::push_heap(c, c + n, first);
            } else if (first(t, c[0])) {
                std::pop_heap(c, c + n, first);
                c[n - 1] = t;
                std::push_heap(c, c + n, first);
            }
        }
        std::sort_heap(c, c + n, first);
        size_t m = 0;
        while (m < n && (c[m].p = ((double)c[m].x - mx) * inv_t) >= -40.0) m++;
        n = sorted = m;
    } else {
        // tokens below `below` certainly have z < -40: runs of 16 without any are skipped whole,
        // the others written without branches
        const double below = (double)mx - 41.0 * (double)p_.temperature - 1.0;
        for (int32_t i0 = 0; i0 < n_vocab; i0 += 16) {
            const int32_t i1 = std::min(i0 + 16, n_vocab);
            bool any = false;
            for (int32_t i = i0; i < i1; i++) any |= (double)work_[i] >= below;
            if (!any) continue;
            for (int32_t i = i0; i < i1; i++) {
                const double z = ((double)work_[i] - mx) * inv_t;
                c[n] = {work_[i], i, z};
                n += z >= -40.0;
            }
        }
    }
    // p = exp(z), summed in token-id order
    double sum = 0;
    if (sorted == n && n > 0) {
        order_.resize(n);
        std::iota(order_.begin(), order_.end(), 0);
        std::sort(order_.begin(), order_.end(), [&](int32_t a, int32_t b) { return c[a].id < c[b].id; });
        for (int32_t i : order_) sum += (c[i].p = std::exp(c[i].p));
    } else {
        for (size_t i = 0; i < n; i++) sum += (c[i].p = std::exp(c[i].p));  // (still in id order)
    }

    // walk the order (sorted as far as needed) to the kept prefix
    const bool top_p = p_.top_p > 0 && p_.top_p < 1.0f, min_p = p_.min_p > 0;
    const double floor = min_p ? p_.min_p * 1.0 : 0.0;  // p of the top token is exp(0) = 1
    size_t keep = n;
    double acc = 0;
    for (size_t at = 0; (top_p || min_p) && at < n; at++) {
        if (at == sorted) {
            // the first 64 by a heap (most draws end there), then as many as the cuts need
            if (sorted == 0 && n > 64) {
                std::partial_sort(c, c + 64, c + n, first);
                sorted = 64;
            } else {
                sorted += order_more(c, sorted, n, top_p ? (p_.top_p - acc) * sum : INFINITY, floor, mx, inv_t);
            }
        }
        const double p = c[at].p;
        if (min_p && at > 0 && p < floor) { keep = at; break; }
        acc += p / sum;
        if (top_p && acc >= p_.top_p) { keep = at + 1; break; }
    }
    if (sorted < keep) order_more(c, sorted, n, INFINITY, 0.0, mx, inv_t);  // (keep == n: all of them)

    double total = 0;
    for (size_t i = 0; i < keep; i++) total += c[i].p;
    std::uniform_real_distribution<double> u(0.0, total);
    double r = u(rng_), run = 0;
    for (size_t i = 0; i < keep; i++) {
        run += c[i].p;
        if (r < run) return c[i].id;
    }
    return c[keep - 1].id;
}

}  // namespace endless
