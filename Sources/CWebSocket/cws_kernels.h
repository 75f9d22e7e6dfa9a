/*
 * cws_kernels.h — the kernel layer, shared by the kernel files (kernels/cws_<isa>.c), the
 * dispatcher (cws_dispatch.c), the UTF-8 stream (cws_utf8_stream.c) and the connection engine's
 * small-frame path (cws_conn.c). Never installed.
 *
 *   - key rotation: one helper (cws__key_advance) and its load form (cws__key_at);
 *   - the overlapping-block masking of short buffers, inlined by every caller that masks < 64 bytes;
 *   - the RFC 3629 lead-byte table (reference kernel and stream);
 *   - cws__kernel_ops: one per instruction set, each with mask, validate and the fused
 *     unmask+validate, and the dispatch table that points at one of them.
 */
#ifndef CWS_KERNELS_H
#define CWS_KERNELS_H

#include "cws_internal.h"

#if CWS_X86_64
#include <immintrin.h>
#endif
#if CWS_ARM64
#include <arm_neon.h>
#endif

/* ------------------------------------------------------------------------------------------------
 * Key helpers
 *
 * A kernel's `key32` holds the 4 key bytes in memory order (loaded with memcpy), already rotated so
 * that its first byte applies to p[0]. Every block a kernel handles (4, 8, 16, 32, 64, 128 bytes)
 * is a multiple of 4, so the key stays in phase from block to block; only a block that starts at
 * an offset which is not a multiple of 4 (the overlapping last vector) needs the key rotated.
 * ---------------------------------------------------------------------------------------------- */

/* The key pattern moved on by r bytes (0-3): memory bytes [k0 k1 k2 k3] become
 * [k(r) k(r+1) k(r+2) k(r+3)]. On a little-endian machine byte 0 is the low byte, so this is a
 * right rotation by 8*r bits; on a big-endian one, a left rotation. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
CWS_INLINE uint32_t cws__key_advance(uint32_t key32, size_t r) {
    const unsigned s = (unsigned)(r & 3) * 8u;
    return (key32 << s) | (key32 >> ((32u - s) & 31u));
}
#else
CWS_INLINE uint32_t cws__key_advance(uint32_t key32, size_t r) {
    const unsigned s = (unsigned)(r & 3) * 8u;
    return (key32 >> s) | (key32 << ((32u - s) & 31u));
}
#endif

/* Two copies of the 4-byte pattern side by side, in memory order: endian-neutral by construction. */
CWS_INLINE uint64_t cws__key_broadcast64(uint32_t key32) {
    const uint32_t two[2] = {key32, key32};
    uint64_t k;
    memcpy(&k, two, 8);
    return k;
}

/* The key32 for payload position `phase`: the 4 wire bytes at `key` loaded in one go and rotated.
 * (Gathering the bytes one by one into an array and reloading it stalls store-to-load forwarding;
 * that stall was a third of the fused decode's time on 64-byte messages.) */
CWS_INLINE uint32_t cws__key_at(const void *key, size_t phase) {
    return cws__key_advance(cws__load32(key), phase);
}

/* The tail and small-buffer paths below use OVERLAPPING blocks: for 8 <= n < 16, one word at p
 * and one at p + n - 8. XOR is not idempotent, so every overlapping block is LOADED (and masked)
 * BEFORE any store that touches it, and stored afterwards: both stores then write the same masked
 * value for the shared bytes. A block that starts at offset j uses the key advanced by j & 3; for
 * a block ending at p + n and as long as a multiple of 4, that is n & 3. This replaces a byte loop
 * of up to 7 (15, 31) iterations with two loads and two stores. */

/* n < 8, key in phase at p[0]. */
CWS_INLINE void cws__mask_lt8(uint8_t *p, size_t n, uint32_t key32) {
    if (n >= 4) { /* two 4-byte words, [0,4) and [n-4,n) */
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        a ^= key32;
        b ^= cws__key_advance(key32, n);
        memcpy(p, &a, 4);
        memcpy(p + n - 4, &b, 4);
        return;
    }
    uint8_t k[4];
    memcpy(k, &key32, 4);
    for (size_t i = 0; i < n; i++) p[i] ^= k[i];
}

/* n < 16, key in phase at p[0]. */
CWS_INLINE void cws__mask_lt16(uint8_t *p, size_t n, uint32_t key32) {
    if (n >= 8) { /* two 8-byte words, [0,8) and [n-8,n) */
        const uint64_t a = cws__load64(p) ^ cws__key_broadcast64(key32);
        const uint64_t b =
            cws__load64(p + n - 8) ^ cws__key_broadcast64(cws__key_advance(key32, n));
        cws__store64(p, a);
        cws__store64(p + n - 8, b);
        return;
    }
    cws__mask_lt8(p, n, key32);
}

#if CWS_X86_64
/* n < 32: words below 16 bytes, else two overlapping 16-byte vectors. SSE2 is part of x86-64. */
CWS_INLINE void cws__mask_sse2_lt32(uint8_t *p, size_t n, uint32_t key32) {
    if (n < 16) {
        cws__mask_lt16(p, n, key32);
        return;
    }
    uint8_t *const lastp = p + n - 16;
    const __m128i a = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(void *)p),
                                    _mm_set1_epi32((int)key32));
    const __m128i b = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(void *)lastp),
                                    _mm_set1_epi32((int)cws__key_advance(key32, n)));
    _mm_storeu_si128((__m128i *)(void *)p, a);
    _mm_storeu_si128((__m128i *)(void *)lastp, b);
}

/* n < 64; from 32 bytes, four 16-byte vectors at 0, 16, n - 32 and n - 16, all loaded before any
 * store. cws_mask inlines this for short payloads, without asking for the CPU's features. */
CWS_INLINE void cws__mask_sse2_lt64(uint8_t *p, size_t n, uint32_t key32) {
    if (n < 32) {
        cws__mask_sse2_lt32(p, n, key32);
        return;
    }
    const __m128i k = _mm_set1_epi32((int)key32);
    const __m128i kend = _mm_set1_epi32((int)cws__key_advance(key32, n)); /* n-32 ≡ n-16 ≡ n */
    __m128i *const v0 = (__m128i *)(void *)p, *const v1 = (__m128i *)(void *)(p + 16);
    __m128i *const v2 = (__m128i *)(void *)(p + n - 32), *const v3 = (__m128i *)(void *)(p + n - 16);
    const __m128i a = _mm_xor_si128(_mm_loadu_si128(v0), k);
    const __m128i b = _mm_xor_si128(_mm_loadu_si128(v1), k);
    const __m128i c = _mm_xor_si128(_mm_loadu_si128(v2), kend);
    const __m128i d = _mm_xor_si128(_mm_loadu_si128(v3), kend);
    _mm_storeu_si128(v0, a);
    _mm_storeu_si128(v1, b);
    _mm_storeu_si128(v2, c);
    _mm_storeu_si128(v3, d);
}

/* Masks n < 64 bytes with inline code: what cws_mask and the fused decode run below the size where
 * a kernel call pays for itself. */
CWS_INLINE void cws__mask_small(uint8_t *p, size_t n, uint32_t key32) { cws__mask_sse2_lt64(p, n, key32); }
#elif CWS_ARM64
/* n < 32: words below 16 bytes, else two overlapping 16-byte vectors. */
CWS_INLINE void cws__mask_neon_lt32(uint8_t *p, size_t n, uint32_t key32) {
    if (n < 16) {
        cws__mask_lt16(p, n, key32);
        return;
    }
    uint8_t *const lastp = p + n - 16;
    const uint8x16_t a = veorq_u8(vld1q_u8(p), vreinterpretq_u8_u32(vdupq_n_u32(key32)));
    const uint8x16_t b =
        veorq_u8(vld1q_u8(lastp), vreinterpretq_u8_u32(vdupq_n_u32(cws__key_advance(key32, n))));
    vst1q_u8(p, a);
    vst1q_u8(lastp, b);
}

/* n < 64; from 32 bytes, four 16-byte vectors at 0, 16, n - 32 and n - 16, all loaded before any
 * store. */
CWS_INLINE void cws__mask_neon_lt64(uint8_t *p, size_t n, uint32_t key32) {
    if (n < 32) {
        cws__mask_neon_lt32(p, n, key32);
        return;
    }
    const uint8x16_t k = vreinterpretq_u8_u32(vdupq_n_u32(key32));
    const uint8x16_t kend = vreinterpretq_u8_u32(vdupq_n_u32(cws__key_advance(key32, n)));
    const uint8x16_t a = veorq_u8(vld1q_u8(p), k), b = veorq_u8(vld1q_u8(p + 16), k);
    const uint8x16_t c = veorq_u8(vld1q_u8(p + n - 32), kend);
    const uint8x16_t d = veorq_u8(vld1q_u8(p + n - 16), kend);
    vst1q_u8(p, a);
    vst1q_u8(p + 16, b);
    vst1q_u8(p + n - 32, c);
    vst1q_u8(p + n - 16, d);
}


CWS_INLINE void cws__mask_small(uint8_t *p, size_t n, uint32_t key32) { cws__mask_neon_lt64(p, n, key32); }
#else
void cws__mask_word(uint8_t *p, size_t n, uint32_t key32);
CWS_INLINE void cws__mask_small(uint8_t *p, size_t n, uint32_t key32) { cws__mask_word(p, n, key32); }
#endif

/* ------------------------------------------------------------------------------------------------
 * Short payloads of the connection engine's small-frame path (at most 127 bytes): unmask and look
 * at the top bits in the same registers, so ASCII text needs no second pass. Same overlapping
 * blocks as above: the last block is loaded and masked before any store.
 * ---------------------------------------------------------------------------------------------- */
#define CWS__HIGH64 UINT64_C(0x8080808080808080)

/* n < 16: the top bits of p[0..n) after masking in place (0 when all ASCII). */
CWS_INLINE uint64_t cws__unmask_lt16_high(uint8_t *p, size_t n, uint32_t key32) {
    if (n >= 8) {
        const uint64_t a = cws__load64(p) ^ cws__key_broadcast64(key32);
        const uint64_t b = cws__load64(p + n - 8) ^ cws__key_broadcast64(cws__key_advance(key32, n));
        cws__store64(p, a);
        cws__store64(p + n - 8, b);
        return (a | b) & CWS__HIGH64;
    }
    cws__mask_lt8(p, n, key32);
    if (n >= 4) return ((uint64_t)cws__load32(p) | cws__load32(p + n - 4)) & CWS__HIGH64;
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= p[i];
    return w & CWS__HIGH64;
}

/* 16 <= n <= 127: unmasks p[0..n) in place; nonzero when a byte has its top bit set afterwards.
 * One definition per instruction set, outside any function body: coverage tools count the lines
 * of an #if branch inside an unused inline function as code never run. */
#if CWS_X86_64
CWS_INLINE uint64_t cws__unmask_ge16_high(uint8_t *p, size_t n, uint32_t key32) {
    const __m128i k = _mm_set1_epi32((int)key32);
    uint8_t *const lastp = p + n - 16;
    const __m128i last = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(void *)lastp),
                                       _mm_set1_epi32((int)cws__key_advance(key32, n)));
    __m128i any = last;
    for (size_t i = 0; i + 16 <= n; i += 16) {
        const __m128i v = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(void *)(p + i)), k);
        _mm_storeu_si128((__m128i *)(void *)(p + i), v);
        any = _mm_or_si128(any, v);
    }
    _mm_storeu_si128((__m128i *)(void *)lastp, last);
    return (uint64_t)_mm_movemask_epi8(any);
}
#elif CWS_ARM64
CWS_INLINE uint64_t cws__unmask_ge16_high(uint8_t *p, size_t n, uint32_t key32) {
    const uint8x16_t k = vreinterpretq_u8_u32(vdupq_n_u32(key32));
    uint8_t *const lastp = p + n - 16;
    const uint8x16_t last =
        veorq_u8(vld1q_u8(lastp), vreinterpretq_u8_u32(vdupq_n_u32(cws__key_advance(key32, n))));
    uint8x16_t any = last;
    for (size_t i = 0; i + 16 <= n; i += 16) {
        const uint8x16_t v = veorq_u8(vld1q_u8(p + i), k);
        vst1q_u8(p + i, v);
        any = vorrq_u8(any, v);
    }
    vst1q_u8(lastp, last);
    return vmaxvq_u8(any) & 0x80;
}
#else
CWS_INLINE uint64_t cws__unmask_ge16_high(uint8_t *p, size_t n, uint32_t key32) {
    const uint64_t k = cws__key_broadcast64(key32);
    uint8_t *const lastp = p + n - 8;
    const uint64_t last = cws__load64(lastp) ^ cws__key_broadcast64(cws__key_advance(key32, n));
    uint64_t any = last;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        const uint64_t v = cws__load64(p + i) ^ k;
        cws__store64(p + i, v);
        any |= v;
    }
    cws__store64(lastp, last);
    return any & CWS__HIGH64;
}
#endif

/* n <= 127 (a 7-bit frame length): unmasks p[0..n) in place; nonzero when a byte has its top bit
 * set afterwards. */
CWS_INLINE uint64_t cws__unmask_small_high(uint8_t *p, size_t n, uint32_t key32) {
    if (n >= 16) return cws__unmask_ge16_high(p, n, key32);
    return cws__unmask_lt16_high(p, n, key32);
}

/* n <= 127: nonzero when a byte of p[0..n) has its top bit set (unmasked text, client role). */
CWS_INLINE uint64_t cws__small_high(const uint8_t *p, size_t n) {
    if (n >= 8) {
        uint64_t any = cws__load64(p + n - 8);
        for (size_t i = 0; i + 8 <= n; i += 8) any |= cws__load64(p + i);
        return any & CWS__HIGH64;
    }
    if (n >= 4) return ((uint64_t)cws__load32(p) | cws__load32(p + n - 4)) & CWS__HIGH64;
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= p[i];
    return w & CWS__HIGH64;
}

/* ================================================================================================
 * REFERENCE: RFC 3629 §4, the whole grammar of well-formed sequences:
 *
 *     first   second  third   fourth
 *     00-7F
 *     C2-DF   80-BF
 *     E0      A0-BF   80-BF            (E0 80-9F would be overlong)
 *     E1-EC   80-BF   80-BF
 *     ED      80-9F   80-BF            (ED A0-BF would encode surrogates D800-DFFF)
 *     EE-EF   80-BF   80-BF
 *     F0      90-BF   80-BF   80-BF    (F0 80-8F would be overlong)
 *     F1-F3   80-BF   80-BF   80-BF
 *     F4      80-8F   80-BF   80-BF    (F4 90-BF would be above U+10FFFF)
 *
 * 80-BF never start a sequence, C0/C1 only start overlong forms, F5-FF nothing at all.
 * ============================================================================================== */

/* Length of the sequence that lead byte `b` starts (1-4), or 0 if it cannot start one; sets
 * [*lo, *hi] to the range allowed for the second byte. */
CWS_INLINE unsigned cws__utf8_lead(uint8_t b, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (b <= 0x7F) return 1;
    if (b <= 0xC1) return 0;
    if (b <= 0xDF) return 2;
    if (b == 0xE0) { *lo = 0xA0; return 3; }
    if (b == 0xED) { *hi = 0x9F; return 3; }
    if (b <= 0xEF) return 3;
    if (b == 0xF0) { *lo = 0x90; return 4; }
    if (b <= 0xF3) return 4;
    if (b == 0xF4) { *hi = 0x8F; return 4; }
    return 0;
}

/* True when t[0..m) (1 <= m <= 4) is the start, or the whole, of one well-formed sequence. */
CWS_INLINE bool cws__utf8_prefix_ok(const uint8_t *t, size_t m) {
    uint8_t lo, hi;
    unsigned len = cws__utf8_lead(t[0], &lo, &hi);
    if (len == 0 || m > len) return false;
    if (m >= 2 && (t[1] < lo || t[1] > hi)) return false;
    for (size_t j = 2; j < m; j++)
        if (t[j] < 0x80 || t[j] > 0xBF) return false;
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Kernels and the dispatch table
 *
 * Each kernel file provides one cws__kernel_ops (the ones this CPU architecture and compiler can
 * build). Every function takes key32 in phase at p[0] (cws__key_at) and handles any n, including
 * 0; validate and unmask_validate return CWS_OK or CWS_ERR_INVALID_UTF8 for p[0..n) as a
 * complete text. On an error unmask_validate may leave part of p masked.
 * ---------------------------------------------------------------------------------------------- */
typedef struct cws__kernel_ops {
    cws_kernel mask_kernel; /* what cws_mask_kernel_selected reports for this table */
    cws_kernel utf8_kernel; /* what cws_utf8_kernel_selected reports */
    void (*mask)(uint8_t *p, size_t n, uint32_t key32);
    int (*validate)(const uint8_t *p, size_t n);
    int (*unmask_validate)(uint8_t *p, size_t n, uint32_t key32);
} cws__kernel_ops;

/* kernels/cws_scalar.c */
extern const cws__kernel_ops cws__kernel_reference;
extern const cws__kernel_ops cws__kernel_word;
void cws__mask_word(uint8_t *p, size_t n, uint32_t key32);
int cws__utf8_word(const uint8_t *p, size_t n);
#if CWS_X86_64
/* kernels/cws_x86_sse.c (SSE2 masking, SSSE3+SSE4.1 UTF-8), kernels/cws_x86_avx2.c */
extern const cws__kernel_ops cws__kernel_sse;
extern const cws__kernel_ops cws__kernel_avx2;
void cws__mask_sse2(uint8_t *p, size_t n, uint32_t key32);
#endif
#if CWS_ARM64
/* kernels/cws_arm_neon.c */
extern const cws__kernel_ops cws__kernel_neon;
#endif

/* cws_dispatch.c: the table in force. NULL until first use, then one of the kernels' tables (the
 * CPU's best, or a forced one); racing first calls store the same pointer. */
extern _Atomic(const cws__kernel_ops *) cws__kernels_active;
const cws__kernel_ops *cws__kernels_init(void);
/* The table cws__kernels_init picks for a CPU with these CWS__CPU_* features. */
const cws__kernel_ops *cws__kernels_for_cpu(uint32_t features);
CWS_INLINE const cws__kernel_ops *cws__kernels(void) {
    const cws__kernel_ops *k = atomic_load_explicit(&cws__kernels_active, memory_order_acquire);
    if (CWS_LIKELY(k != NULL)) return k;
    return cws__kernels_init();
}
/* The size-aware automatic choice (what the plain entry points run), as functions and as a
 * table of its own. */
int cws__utf8_auto(const uint8_t *p, size_t n);
int cws__unmask_utf8_auto(uint8_t *p, size_t n, uint32_t key32);
extern const cws__kernel_ops cws__kernel_auto;
/* The table that runs kernel `k`: AUTO gives cws__kernel_auto; a kernel that cannot run here (for
 * UTF-8 when `utf8`, else for masking), or a value outside the enum, gives the reference. */
const cws__kernel_ops *cws__kernel_named(cws_kernel k, bool utf8);

#endif /* CWS_KERNELS_H */
