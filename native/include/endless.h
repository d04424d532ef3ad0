/* The Endless engine's C API.
 *
 * Opaque handles, status codes and a per-thread last-error text. Works on token ids only.
 * Long calls take a cancel flag (set it to non-zero from any thread to stop the call at the next
 * chunk or token boundary; the call then returns ENDLESS_ERR_CANCELLED and leaves the session in
 * a consistent state: tokens already processed stay processed).
 *
 * The cache follows StreamingLLM (Xiao et al., ICLR 2024), per layer:
 *   [ sinks S ][ pinned memory M ][ rolling window W (ring) ][ branch B ]
 * A query attends to the sinks, the memory, and the newest W tokens of the stream (window and
 * branch together, itself included). Positions are assigned within the cache: sinks 0..S-1,
 * memory S..S+M-1, then the visible window tokens in age order; keys are stored before RoPE
 * and rotated by those positions at attention time, so eviction never rewrites the cache.
 */
#ifndef ENDLESS_H
#define ENDLESS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ENDLESS_API_VERSION 1

typedef enum endless_status {
    ENDLESS_OK = 0,
    ENDLESS_ERR_INVALID_ARGUMENT = 1, /* a bad argument: null handle, out-of-range token, ... */
    ENDLESS_ERR_IO = 2,               /* a file could not be opened, read or written */
    ENDLESS_ERR_FORMAT = 3,           /* a malformed GGUF or snapshot file */
    ENDLESS_ERR_UNSUPPORTED = 4,      /* a valid file the engine cannot run (architecture, type) */
    ENDLESS_ERR_OUT_OF_MEMORY = 5,
    ENDLESS_ERR_CANCELLED = 6,
    ENDLESS_ERR_STATE = 7,            /* the call does not fit the session's state */
    ENDLESS_ERR_CAPACITY = 8,         /* more tokens than the region holds */
    ENDLESS_ERR_MISMATCH = 9,         /* snapshot of another model or format version */
    ENDLESS_ERR_DEVICE = 10,          /* the requested device is not usable */
    ENDLESS_ERR_INTERNAL = 11
} endless_status;

/* Text of the last error on the calling thread ("" if none). Valid until the next failing call. */
const char *endless_last_error(void);
const char *endless_status_name(endless_status status);

typedef struct endless_model endless_model;
typedef struct endless_session endless_session;
typedef struct endless_sampler endless_sampler;

typedef enum endless_device {
    ENDLESS_DEVICE_AUTO = 0, /* CUDA when a usable device exists, else CPU */
    ENDLESS_DEVICE_CPU = 1,
    ENDLESS_DEVICE_CUDA = 2
} endless_device;

/* ---- models ---------------------------------------------------------------------------- */

/* Progress callback: fraction in [0, 1]. Return non-zero to cancel the load. */
typedef int (*endless_progress_fn)(float fraction, void *user_data);

typedef struct endless_model_params {
    int32_t n_threads;      /* CPU threads; 0 = the number of cores */
    endless_device device;
    endless_progress_fn progress;
    void *progress_user_data;
} endless_model_params;

endless_model_params endless_model_default_params(void);
endless_status endless_model_load(const char *path, const endless_model_params *params, endless_model **out);
void endless_model_free(endless_model *model);

typedef struct endless_model_desc {
    const char *architecture; /* "llama" or "qwen2" */
    const char *name;         /* general.name or "" */
    const char *device;       /* "cpu" or "cuda:<name>" */
    const char *fingerprint;  /* sha-256 (hex) over the tensor data and hyper-parameters */
    const char *file_type;    /* dominant weight type, e.g. "Q8_0" */
    const char *notice;       /* "" or what to know about the device: why the requested one was not used
                                 (fell back to CPU), a slower path it takes (no cuBLAS), ... */
    int32_t n_vocab;          /* rows of the output matrix (may exceed the tokenizer's tokens) */
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;
    int32_t n_ff;
    int32_t n_threads;
    float rope_freq_base;
    float norm_eps;
    int64_t n_params;
    uint64_t weight_bytes;
} endless_model_desc;

/* Fills *out; the strings live as long as the model. */
endless_status endless_model_describe(const endless_model *model, endless_model_desc *out);

/* GGUF metadata, read-only, from a loaded model or from a file opened without its weights
 * (endless_gguf_open: the tokenizer needs only the metadata). Types are GGUF's value type ids:
 * 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array, 10 u64, 11 i64, 12 f64 */
typedef struct endless_gguf endless_gguf;

endless_status endless_gguf_open(const char *path, endless_gguf **out);
void endless_gguf_free(endless_gguf *gguf);
/* The model's own metadata; owned by the model. */
const endless_gguf *endless_model_gguf(const endless_model *model);

typedef struct endless_meta_value {
    uint32_t type;     /* the scalar's type (for arrays: the element type) */
    int64_t i;         /* integer and bool types */
    uint64_t u;        /* integer types, unsigned view */
    double f;          /* float types (and integers converted) */
    const char *s;     /* strings: bytes, not NUL-terminated */
    uint64_t s_len;
} endless_meta_value;

int64_t endless_gguf_meta_count(const endless_gguf *gguf);
/* Key of entry i; NULL if i is out of range. */
const char *endless_gguf_meta_key(const endless_gguf *gguf, int64_t i);
/* Index of a key, or -1. */
int64_t endless_gguf_meta_find(const endless_gguf *gguf, const char *key);
/* type: the entry's type (9 for arrays); elem_type and length: for arrays (1 for scalars). */
endless_status endless_gguf_meta_info(const endless_gguf *gguf, int64_t i, uint32_t *type,
                                      uint32_t *elem_type, uint64_t *length);
/* Scalar (j = 0) or element j of an array. */
endless_status endless_gguf_meta_get(const endless_gguf *gguf, int64_t i, uint64_t j,
                                     endless_meta_value *out);

/* ---- sessions (the StreamingLLM cache) ------------------------------------------------- */

typedef struct endless_session_params {
    int32_t n_sinks;      /* S; -1 = default (4) */
    int32_t n_window;     /* W; 0 = the model's trained context minus sinks */
    int32_t n_memory_max; /* largest pinned memory M; default 0 */
    int32_t n_branch_max; /* largest branch B; default 512 */
    int32_t n_batch;      /* tokens per prefill chunk; default 256 */
} endless_session_params;

endless_session_params endless_session_default_params(void);
endless_status endless_session_create(endless_model *model, const endless_session_params *params,
                                      endless_session **out);
void endless_session_free(endless_session *session);

typedef enum endless_logits_mode {
    ENDLESS_LOGITS_NONE = 0,
    ENDLESS_LOGITS_LAST = 1, /* n_vocab floats for the last token */
    ENDLESS_LOGITS_ALL = 2   /* n * n_vocab floats, one row per token */
} endless_logits_mode;

/* Appends tokens to the stream (or to the open branch) and runs them through the model in
 * chunks of n_batch. On cancel, tokens of completed chunks stay appended. */
endless_status endless_session_decode(endless_session *session, const int32_t *tokens, int32_t n,
                                      endless_logits_mode mode, float *logits,
                                      const volatile int32_t *cancel);
/* Logits after the most recently processed token (n_vocab floats). */
endless_status endless_session_last_logits(const endless_session *session, float *out);

/* Branches: scratch tokens after the window. Discard restores the session exactly; commit keeps
 * the branch's tokens in the stream, as if they had been decoded there. While a branch is open,
 * decode appends to it. A new branch reuses the K/V of the longest common prefix with the last
 * discarded branch when nothing was appended to the stream in between. */
endless_status endless_session_branch_begin(endless_session *session);
endless_status endless_session_branch_discard(endless_session *session);
endless_status endless_session_branch_commit(endless_session *session);

/* Replaces the pinned memory with these tokens (n may be 0 to clear). Only the memory is
 * re-encoded. Fails with ENDLESS_ERR_STATE while a branch is open. */
endless_status endless_session_set_memory(endless_session *session, const int32_t *tokens, int32_t n,
                                          const volatile int32_t *cancel);

/* Empties the session (a new stream). */
endless_status endless_session_clear(endless_session *session);

typedef struct endless_session_stats {
    int64_t n_seen;          /* tokens appended to the stream over its life (committed) */
    int64_t n_evicted;       /* tokens that left the window */
    int64_t n_processed;     /* tokens run through the model: stream, branch, memory */
    int64_t n_reused;        /* branch tokens whose K/V were reused instead of recomputed */
    int32_t n_sinks;         /* sink tokens held (<= S) */
    int32_t n_sinks_max;     /* S */
    int32_t n_memory;        /* pinned memory tokens */
    int32_t n_memory_max;
    int32_t n_window;        /* window tokens held */
    int32_t n_window_max;    /* W */
    int32_t n_branch;        /* tokens in the open branch (0 if none) */
    int32_t n_branch_max;
    int32_t branch_open;
    int32_t n_vocab;
    uint64_t cache_bytes;    /* bytes of K/V storage, fixed at creation */
} endless_session_stats;

endless_status endless_session_stats_get(const endless_session *session, endless_session_stats *out);

/* Token ids as the next query sees them, in cache order: sinks, memory, window (age order),
 * branch. Writes at most cap ids and returns the count that would be written. */
int32_t endless_session_tokens(const endless_session *session, int32_t *out, int32_t cap);

/* Snapshot: tokens, counters and K/V of sinks, memory and window, tied to the model's
 * fingerprint. Saving writes a temporary file and renames it (atomic). Restoring validates the
 * whole file before touching the session: on any error the session is unchanged. */
endless_status endless_session_save(const endless_session *session, const char *path);
endless_status endless_session_restore(endless_session *session, const char *path);

/* ---- sampling ---------------------------------------------------------------------------- */

typedef struct endless_sampler_params {
    float temperature;    /* <= 0: greedy */
    int32_t top_k;        /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off */
    int32_t repeat_last_n;/* tokens considered for the penalty */
    uint64_t seed;
} endless_sampler_params;

endless_sampler_params endless_sampler_default_params(void);
endless_status endless_sampler_create(const endless_sampler_params *params, endless_sampler **out);
void endless_sampler_free(endless_sampler *sampler);
/* Picks a token from logits (not modified); recent: the last tokens, for the repetition penalty. */
int32_t endless_sampler_sample(endless_sampler *sampler, const float *logits, int32_t n_vocab,
                               const int32_t *recent, int32_t n_recent);

/* Called for each generated token; return non-zero to stop after it. */
typedef int (*endless_token_fn)(int32_t token, void *user_data);

/* Generates from the session's last logits: sample, report, decode, repeat. A token in stop is
 * reported but not decoded, and ends generation. n_out receives the count reported. */
endless_status endless_session_generate(endless_session *session, endless_sampler *sampler,
                                        int32_t max_tokens, const int32_t *stop, int32_t n_stop,
                                        endless_token_fn on_token, void *user_data,
                                        const volatile int32_t *cancel, int32_t *n_out);

/* ---- system -------------------------------------------------------------------------------- */

/* Comma-separated features: "avx2,fma,avx512f,avx512vnni,cuda". */
const char *endless_system_info(void);
/* Number of CUDA devices usable by this build (0 without CUDA). */
int32_t endless_cuda_device_count(void);

#ifdef __cplusplus
}
#endif
#endif /* ENDLESS_H */
