/*
 * cws_internal.h — internal declarations shared by the engine's .c files. Never installed.
 */
#ifndef CWS_INTERNAL_H
#define CWS_INTERNAL_H

#include "cws.h"
#include "cws_testing.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define CWS_LIKELY(x) __builtin_expect(!!(x), 1)
#define CWS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define CWS_INLINE static inline __attribute__((always_inline))
#else
#define CWS_LIKELY(x) (x)
#define CWS_UNLIKELY(x) (x)
#define CWS_INLINE static inline
#endif

#if defined(__x86_64__) || defined(_M_X64)
#define CWS_X86_64 1
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
#define CWS_ARM64 1
#endif

/* Unaligned loads and stores through memcpy: never through casted pointers (UB). */
CWS_INLINE uint64_t cws__load64(const void *p) { uint64_t v; memcpy(&v, p, 8); return v; }
CWS_INLINE void cws__store64(void *p, uint64_t v) { memcpy(p, &v, 8); }
CWS_INLINE uint32_t cws__load32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }


/* ---- cws_alloc.c: the allocator in force ----
 * Copies *given into *out (CWS_ERR_INVALID_ARGUMENT when alloc or free is NULL), or, for NULL,
 * fills *out with the C library's malloc/realloc/free. Shared by the engine and the deflater. */
int cws__allocator_resolve(const cws_allocator *given, cws_allocator *out);

/* ---- cws_cpu.c: CPU features, read once (write-once cache; racing first calls agree). ---- */
enum {
    CWS__CPU_SSE2 = 1u << 0,
    CWS__CPU_SSSE3 = 1u << 1,
    CWS__CPU_SSE41 = 1u << 2,
    CWS__CPU_AVX2 = 1u << 3,
    CWS__CPU_NEON = 1u << 4
};
uint32_t cws__cpu_features_slow(void);
/* The cache itself: 0 until first read, then the features with bit 31 set. Read inline so the
 * dispatch of a small buffer costs one load, not a call. */
extern _Atomic uint32_t cws__features_cache;
CWS_INLINE uint32_t cws__cpu_features(void) {
    uint32_t v = atomic_load_explicit(&cws__features_cache, memory_order_relaxed);
    if (CWS_LIKELY(v != 0)) return v & ~(1u << 31);
    return cws__cpu_features_slow();
}

/* ---- cws_kernels.h: the kernel layer (mask, UTF-8, dispatch table) ---- */

/* ---- cws_deflate.c: permessage-deflate (RFC 7692) internals used by cws_conn.c ----
 * The inflater behind cws_conn_parse. zlib stays inside cws_deflate.c; the engine sees an opaque
 * handle. */
typedef struct cws__inflater cws__inflater;
/* Creates a raw inflater with a 2^window_bits window (8-15), allocating through *a, which must
 * outlive it (the engine passes its own copy of the allocator). CWS_ERR_NOMEM. */
int cws__inflater_new(const cws_allocator *a, int window_bits, cws__inflater **out);
void cws__inflater_free(cws__inflater *z);
/* One inflate step from *in[0..*in_len) into out[0..cap): advances *in and *in_len past the bytes
 * consumed and sets *produced. A DEFLATE block with BFINAL set ends zlib's stream; the payload may
 * go on (RFC 7692 §7.2.3.4), so the stream is restarted with its window kept and *progress is
 * set even when no byte moved. CWS_OK (check *produced / *in_len for progress), CWS_ERR_INFLATE,
 * CWS_ERR_NOMEM. */
int cws__inflate(cws__inflater *z, const uint8_t **in, size_t *in_len, uint8_t *out, size_t cap,
                 size_t *produced, bool *progress);
/* Forgets the window (no context takeover): inflateReset, memory kept. */
void cws__inflater_reset(cws__inflater *z);
/* True when the inflater stopped between two DEFLATE blocks (where every conforming message
 * ends once its 00 00 ff ff is put back, RFC 7692 §7.2.1 step 2). */
bool cws__inflater_at_boundary(const cws__inflater *z);
/* Borrows an idle inflater from the pool, creating one when none is idle. CWS_ERR_NOMEM. */
int cws__pool_take(cws_inflater_pool *pool, cws__inflater **out);
/* Resets zi and gives it back to the pool it came from. */
void cws__pool_give(cws_inflater_pool *pool, cws__inflater *zi);
/* True when p (a cws_pmd_params) holds window bits 8-15. */
bool cws__pmd_params_valid(const cws_pmd_params *p);
/* cws_extension.c: true when every field of cfg is in range. */
bool cws__pmd_config_valid(const cws_pmd_config *cfg);

#endif /* CWS_INTERNAL_H */
