/*
 * cws_mask.c — WebSocket masking (RFC 6455 §5.3): every payload byte i of a masked frame is
 * XORed with masking-key byte (i MOD 4). Five kernels (reference, word, SSE2, AVX2, NEON) and the
 * size-based dispatch behind cws_mask.
 *
 * Measured on the development machine (AMD EPYC, 2 cores, AVX2, no AVX-512; clang 21 -O2, no
 * -march, as the package builds), with a throwaway micro-benchmark that #includes this file:
 *
 *   clang -std=c11 -O2 -Iinclude -ISources/CWebSocket maskbench.c Sources/CWebSocket/cws_cpu.c
 *   taskset -c 1 ./maskbench 31 8
 *
 * Ratio = time of memcpy(dst, src, n) / time of masking n bytes in place, both measured in the
 * same run, interleaved, best of 31 runs of 8 MiB each; > 1 means faster than memcpy. "auto" is
 * cws_mask called directly (key in memory, phase 0); the kernels are called with key32 ready.
 * "same": every call masks one buffer. "rot": calls cycle through up to 64 buffers (24 KiB, as a
 * server unmasks each frame once); back-to-back calls on one buffer hit store-to-load forwarding
 * stalls on the previous call's overlapping stores, which memcpy (src != dst) never sees.
 * The machine is shared and noisy: differences under ~15% are not significant.
 *
 *  same    ---------- alignment 0 ----------   ---------- alignment 1 ----------
 *     n     ref  word  sse2  avx2  auto         ref  word  sse2  avx2  auto    memcpy
 *     8    0.90  1.90  1.55  1.55  1.07        0.76  2.14  1.65  1.69  1.52    5.8 ns
 *    16    0.47  0.94  1.32  1.30  1.31        0.45  0.92  1.17  1.16  1.30
 *    32    0.25  0.76  0.95  0.96  1.02        0.25  0.76  0.94  0.94  1.02
 *    64    0.13  0.64  0.79  0.69  0.77        0.13  0.64  0.78  0.69  0.78
 *   125    0.09  0.67  0.64  0.62  0.64        0.09  0.71  0.68  0.44  0.69
 *   256    0.05  0.58  0.72  0.85  0.69        0.07  0.75  0.89  1.17  0.95
 *   512    0.04  0.55  0.70  1.10  0.85        0.05  0.62  0.71  1.08  0.97
 *   768    0.03  0.42  0.56  1.04  0.84        0.04  0.55  0.64  1.01  0.91
 *  1024    0.03  0.43  0.51  0.97  0.83        0.04  0.54  0.63  0.76  0.76   11.0 ns
 *  2048    0.03  0.47  0.51  0.99  0.94        0.05  0.65  0.74  1.12  1.12
 *  4096    0.04  0.58  0.66  1.29  1.26        0.04  0.55  0.61  1.00  1.00   54.7 ns
 *   64K    0.06  1.00  1.05  1.89  1.80        0.06  0.70  1.03  1.74  1.73    1.4 us
 *    1M    0.10  1.63  1.70  1.96  1.94        0.08  0.94  1.40  1.82  1.84     37 us
 *
 *  rot     ---------- alignment 0 ----------   ---------- alignment 1 ----------
 *     n     ref  word  sse2  avx2  auto         ref  word  sse2  avx2  auto
 *     8    0.80  2.07  1.57  1.60  1.44        0.85  2.04  1.52  1.55  1.41
 *    16    0.50  0.93  1.60  1.43  1.43        0.49  0.95  1.58  1.32  1.42
 *    32    0.26  0.79  1.20  1.13  1.10        0.26  0.84  1.01  1.04  1.00
 *    64    0.13  0.62  0.81  0.75  0.75        0.13  0.65  0.76  0.80  0.74
 *   125    0.09  0.68  0.68  0.93  0.71        0.09  0.68  0.68  0.90  0.70
 *   256    0.05  0.47  0.65  0.75  0.60        0.09  0.93  1.08  1.40  1.14
 *   512    0.05  0.65  0.86  1.33  1.04        0.06  0.76  0.86  1.28  1.12
 *   768    0.05  0.64  0.87  1.55  1.26        0.06  0.72  0.82  1.23  1.14
 *  1024    0.05  0.69  0.83  1.53  1.32        0.06  0.73  0.99  1.65  1.52
 *  2048    0.05  0.76  0.85  1.64  1.57        0.05  0.75  0.94  1.71  1.69
 *  4096    0.05  0.75  0.84  1.65  1.62        0.05  0.71  0.89  1.64  1.63
 *   64K    0.06  1.01  1.05  1.93  1.88        0.06  0.70  1.03  1.74  1.74
 *    1M    0.10  1.71  1.76  2.10  2.09        0.10  1.15  1.70  2.19  2.09
 *
 * What the table decided:
 *   - Below 64 bytes every kernel runs the same overlapping-block code, so cws_mask inlines it
 *     and skips both the call and the CPU-feature check (CWS__MASK_INLINE_BELOW).
 *   - 64-127 bytes: SSE2 and AVX2 are within noise (SSE2 ahead with "same", AVX2 with "rot"),
 *     and asking for the CPU's features costs a call (~1.5 ns here), so SSE2 (CWS__MASK_AVX2_FROM).
 *   - From 128 bytes AVX2 is the fastest kernel at every size and alignment. The "AVX2
 *     slowdown at 512 B-1 KiB" does not show up here as a size where another kernel wins: AVX2
 *     stays 1.5-2x SSE2 there. What does dip is the ratio itself (memcpy is at its best around
 *     1 KiB) and, with "same" at alignment 1, 1 KiB (0.76), which "rot" does not reproduce (1.65).
 *   - "auto" trails "avx2" at 256 B-1 KiB by the cost of the out-of-line cws__cpu_features()
 *     call; from 2 KiB it is within noise.
 *   - Aligned form from 1 KiB (CWS__MASK_ALIGN_FROM). Same benchmark, AVX2, misaligned buffer
 *     (alignment 1), unaligned form / aligned form:
 *                 n = 512        768        1024       2048       4096       8192
 *       same          1.02/0.93  0.83/0.90  0.84/1.02  0.81/1.20  0.79/1.36  0.73/1.31
 *       rot           0.91/1.13  0.80/1.11  0.84/1.14  0.68/1.12  0.83/1.49  0.71/1.38
 *     On an aligned buffer the two forms are within 5%.
 *   - Targets: in-place unmask >= 1x memcpy at 4 KiB: auto 1.26 / 1.00 ("same", alignment 0 / 1),
 *     1.62 / 1.63 ("rot"). >= 1.5x from 64 KiB: 1.73-2.09 in every column. Inside L1 both
 *     loops are bound by one 32-byte store per cycle, so ~1x is the ceiling there; beyond L1
 *     memcpy moves twice the bytes (read src, write dst) that in-place masking does.
 */
#include "cws_internal.h"

#if CWS_X86_64
#include <immintrin.h>
#endif
#if CWS_ARM64
#include <arm_neon.h>
#endif

/* Keep the reference kernel what its name says: at -O2 clang would otherwise turn its loop into
 * SSE2/NEON code, and it would no longer be an independent oracle. The word kernel gets the same
 * treatment where SIMD kernels exist (so that it measures 64-bit words, not the auto-vectoriser);
 * elsewhere it is the shipping kernel and the compiler may vectorise it. */
#if defined(__clang__)
#define CWS__SCALAR_LOOP _Pragma("clang loop vectorize(disable) interleave(disable)")
#else
#define CWS__SCALAR_LOOP
#endif
#if CWS_X86_64 || CWS_ARM64
#define CWS__WORD_LOOP CWS__SCALAR_LOOP
#else
#define CWS__WORD_LOOP
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
CWS_INLINE uint32_t cws__key_advance(uint32_t key32, size_t r) {
    const unsigned s = (unsigned)(r & 3) * 8u;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (key32 << s) | (key32 >> ((32u - s) & 31u));
#else
    return (key32 >> s) | (key32 << ((32u - s) & 31u));
#endif
}

/* Two copies of the 4-byte pattern side by side, in memory order: endian-neutral by construction. */
CWS_INLINE uint64_t cws__key_broadcast64(uint32_t key32) {
    const uint32_t two[2] = {key32, key32};
    uint64_t k;
    memcpy(&k, two, 8);
    return k;
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

/* ------------------------------------------------------------------------------------------------
 * Portable kernels
 * ---------------------------------------------------------------------------------------------- */

/* Byte at a time, the obvious code: RFC 6455 §5.3, transformed-octet-i = original-octet-i XOR
 * masking-key-octet-(i MOD 4). The oracle every other kernel is tested against. */
void cws__mask_reference(uint8_t *p, size_t n, uint32_t key32) {
    uint8_t k[4];
    memcpy(k, &key32, 4);
    CWS__SCALAR_LOOP
    for (size_t i = 0; i < n; i++) p[i] ^= k[i & 3];
}

/* 64-bit words: the key broadcast to 8 bytes, words loaded and stored with memcpy (any alignment),
 * four words per iteration so the loads are independent; the last, partial word is the
 * overlapping word ending at p + n (loaded before the loop, stored after it). */
void cws__mask_word(uint8_t *p, size_t n, uint32_t key32) {
    if (n < 16) {
        cws__mask_lt16(p, n, key32);
        return;
    }
    const uint64_t k = cws__key_broadcast64(key32);
    const uint64_t last = cws__load64(p + n - 8) ^ cws__key_broadcast64(cws__key_advance(key32, n));
    size_t i = 0;
    CWS__WORD_LOOP
    for (; i + 32 <= n; i += 32) {
        const uint64_t a = cws__load64(p + i), b = cws__load64(p + i + 8);
        const uint64_t c = cws__load64(p + i + 16), d = cws__load64(p + i + 24);
        cws__store64(p + i, a ^ k);
        cws__store64(p + i + 8, b ^ k);
        cws__store64(p + i + 16, c ^ k);
        cws__store64(p + i + 24, d ^ k);
    }
    CWS__WORD_LOOP
    for (; i + 8 <= n; i += 8) cws__store64(p + i, cws__load64(p + i) ^ k);
    if (i != n) cws__store64(p + n - 8, last);
}

/* ------------------------------------------------------------------------------------------------
 * x86-64 kernels
 *
 * Layout of a masked buffer, n >= 2 vectors (V = 16 or 32 bytes):
 *
 *   unaligned form (mid sizes)          aligned form (large sizes, see CWS__MASK_ALIGN_FROM)
 *   [ V ][ V ][ V ]...[ V ]             [ head V ]                       head: loadu at p
 *                  [ last V ]              [ V ][ V ][ V ]...[ V ]       body: aligned to V
 *   last: loadu at p + n - V                             [ tail V ]      tail: loadu at p + n - V
 *
 * The head, last/tail vectors overlap the body; they are loaded and masked before the body is
 * stored and stored after it (see the overlap rule above). The aligned body starts at
 * off = (-p) mod V, so its key is advanced by off & 3. With a misaligned buffer every other
 * 32-byte store of the unaligned form splits a cache line; from 1 KiB that costs more than the
 * head and tail (table above). Below it the unaligned form wins: the head and tail stores overlap
 * body stores, which stalls a read of the same bytes that follows soon after.
 *
 * _mm_set1_epi32 / _mm256_set1_epi32 put key32 in every 32-bit lane; lanes are stored
 * little-endian, so each lane holds the key bytes in memory order.
 * ---------------------------------------------------------------------------------------------- */
#if CWS_X86_64

/* Buffers at least this long are masked in the aligned form (x86-64 kernels; see the table). */
#define CWS__MASK_ALIGN_FROM 1024

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

/* Masks q[0..m), m a multiple of 16, 64 bytes per iteration. */
CWS_INLINE void cws__mask_sse2_body(uint8_t *q, size_t m, __m128i k) {
    size_t i = 0;
    for (; i + 64 <= m; i += 64) {
        __m128i *v = (__m128i *)(void *)(q + i);
        const __m128i a = _mm_loadu_si128(v), b = _mm_loadu_si128(v + 1);
        const __m128i c = _mm_loadu_si128(v + 2), d = _mm_loadu_si128(v + 3);
        _mm_storeu_si128(v, _mm_xor_si128(a, k));
        _mm_storeu_si128(v + 1, _mm_xor_si128(b, k));
        _mm_storeu_si128(v + 2, _mm_xor_si128(c, k));
        _mm_storeu_si128(v + 3, _mm_xor_si128(d, k));
    }
    for (; i < m; i += 16) {
        __m128i *v = (__m128i *)(void *)(q + i);
        _mm_storeu_si128(v, _mm_xor_si128(_mm_loadu_si128(v), k));
    }
}

/* n >= 32. Unaligned form: body from p, then the last vector. */
CWS_INLINE void cws__mask_sse2_unaligned(uint8_t *p, size_t n, uint32_t key32) {
    uint8_t *const lastp = p + n - 16;
    const __m128i last = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(void *)lastp),
                                       _mm_set1_epi32((int)cws__key_advance(key32, n)));
    const size_t m = n & ~(size_t)15;
    cws__mask_sse2_body(p, m, _mm_set1_epi32((int)key32));
    if (m != n) _mm_storeu_si128((__m128i *)(void *)lastp, last);
}

/* n >= 32. Aligned form: head, 16-byte aligned body, tail. */
CWS_INLINE void cws__mask_sse2_aligned(uint8_t *p, size_t n, uint32_t key32) {
    uint8_t *const lastp = p + n - 16;
    const __m128i head = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(void *)p),
                                       _mm_set1_epi32((int)key32));
    const __m128i tail = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(void *)lastp),
                                       _mm_set1_epi32((int)cws__key_advance(key32, n)));
    const size_t off = (size_t)(-(uintptr_t)p) & 15;
    cws__mask_sse2_body(p + off, (n - off) & ~(size_t)15,
                        _mm_set1_epi32((int)cws__key_advance(key32, off)));
    _mm_storeu_si128((__m128i *)(void *)p, head);
    _mm_storeu_si128((__m128i *)(void *)lastp, tail);
}

/* The SSE2 kernel, returning the next phase so that cws_mask can tail-call it (a leaf: every
 * helper above is inlined). */
static uint32_t cws__mask_sse2_run(uint8_t *p, size_t n, uint32_t key32, uint32_t phase) {
    if (n < 64)
        cws__mask_sse2_lt64(p, n, key32);
    else if (n < CWS__MASK_ALIGN_FROM)
        cws__mask_sse2_unaligned(p, n, key32);
    else
        cws__mask_sse2_aligned(p, n, key32);
    return (uint32_t)((phase + n) & 3);
}

void cws__mask_sse2(uint8_t *p, size_t n, uint32_t key32) { (void)cws__mask_sse2_run(p, n, key32, 0); }

/* AVX2: the same shapes with 32-byte vectors, 128 bytes per iteration. The helpers carry the
 * target attribute too, so they inline into the kernel with VEX encodings (no SSE/AVX
 * transition penalty); the compiler adds vzeroupper on return. */
#define CWS__AVX2 __attribute__((target("avx2")))
#define CWS__AVX2_INLINE static inline __attribute__((target("avx2"), always_inline))

/* 32 <= n < 64: two overlapping 32-byte vectors. */
CWS__AVX2_INLINE void cws__mask_avx2_lt64(uint8_t *p, size_t n, uint32_t key32) {
    uint8_t *const lastp = p + n - 32;
    const __m256i a = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(void *)p),
                                       _mm256_set1_epi32((int)key32));
    const __m256i b = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(void *)lastp),
                                       _mm256_set1_epi32((int)cws__key_advance(key32, n)));
    _mm256_storeu_si256((__m256i *)(void *)p, a);
    _mm256_storeu_si256((__m256i *)(void *)lastp, b);
}

/* Masks q[0..m), m a multiple of 32, 128 bytes per iteration. */
CWS__AVX2_INLINE void cws__mask_avx2_body(uint8_t *q, size_t m, __m256i k) {
    size_t i = 0;
    for (; i + 128 <= m; i += 128) {
        __m256i *v = (__m256i *)(void *)(q + i);
        const __m256i a = _mm256_loadu_si256(v), b = _mm256_loadu_si256(v + 1);
        const __m256i c = _mm256_loadu_si256(v + 2), d = _mm256_loadu_si256(v + 3);
        _mm256_storeu_si256(v, _mm256_xor_si256(a, k));
        _mm256_storeu_si256(v + 1, _mm256_xor_si256(b, k));
        _mm256_storeu_si256(v + 2, _mm256_xor_si256(c, k));
        _mm256_storeu_si256(v + 3, _mm256_xor_si256(d, k));
    }
    for (; i < m; i += 32) {
        __m256i *v = (__m256i *)(void *)(q + i);
        _mm256_storeu_si256(v, _mm256_xor_si256(_mm256_loadu_si256(v), k));
    }
}

/* n >= 64. Unaligned form. */
CWS__AVX2_INLINE void cws__mask_avx2_unaligned(uint8_t *p, size_t n, uint32_t key32) {
    uint8_t *const lastp = p + n - 32;
    const __m256i last = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(void *)lastp),
                                          _mm256_set1_epi32((int)cws__key_advance(key32, n)));
    const size_t m = n & ~(size_t)31;
    cws__mask_avx2_body(p, m, _mm256_set1_epi32((int)key32));
    if (m != n) _mm256_storeu_si256((__m256i *)(void *)lastp, last);
}

/* n >= 64. Aligned form. */
CWS__AVX2_INLINE void cws__mask_avx2_aligned(uint8_t *p, size_t n, uint32_t key32) {
    uint8_t *const lastp = p + n - 32;
    const __m256i head = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(void *)p),
                                          _mm256_set1_epi32((int)key32));
    const __m256i tail = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(void *)lastp),
                                          _mm256_set1_epi32((int)cws__key_advance(key32, n)));
    const size_t off = (size_t)(-(uintptr_t)p) & 31;
    cws__mask_avx2_body(p + off, (n - off) & ~(size_t)31,
                        _mm256_set1_epi32((int)cws__key_advance(key32, off)));
    _mm256_storeu_si256((__m256i *)(void *)p, head);
    _mm256_storeu_si256((__m256i *)(void *)lastp, tail);
}

/* The AVX2 kernel, returning the next phase so that cws_mask can tail-call it. */
CWS__AVX2 static uint32_t cws__mask_avx2_run(uint8_t *p, size_t n, uint32_t key32, uint32_t phase) {
    if (n < 32)
        cws__mask_sse2_lt32(p, n, key32);
    else if (n < 64)
        cws__mask_avx2_lt64(p, n, key32);
    else if (n < CWS__MASK_ALIGN_FROM)
        cws__mask_avx2_unaligned(p, n, key32);
    else
        cws__mask_avx2_aligned(p, n, key32);
    return (uint32_t)((phase + n) & 3);
}

CWS__AVX2 void cws__mask_avx2(uint8_t *p, size_t n, uint32_t key32) {
    (void)cws__mask_avx2_run(p, n, key32, 0);
}

#endif /* CWS_X86_64 */

/* ------------------------------------------------------------------------------------------------
 * arm64 kernel
 * ---------------------------------------------------------------------------------------------- */
#if CWS_ARM64

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

/* NEON is part of arm64. vdupq_n_u32 puts key32 in every lane; lanes are stored little-endian
 * (little-endian arm64: Linux, Darwin, Windows), so each lane holds the key bytes in memory order. vld1q_u8 and
 * vst1q_u8 have no alignment requirement. The unaligned form of the x86 kernels: body from p,
 * 64 bytes per iteration, then the overlapping last vector. Not measured (no arm64 machine here). */
void cws__mask_neon(uint8_t *p, size_t n, uint32_t key32) {
    if (n < 64) {
        cws__mask_neon_lt64(p, n, key32);
        return;
    }
    const uint8x16_t k = vreinterpretq_u8_u32(vdupq_n_u32(key32));
    uint8_t *const lastp = p + n - 16;
    const uint8x16_t last =
        veorq_u8(vld1q_u8(lastp), vreinterpretq_u8_u32(vdupq_n_u32(cws__key_advance(key32, n))));
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const uint8x16_t a = vld1q_u8(p + i), b = vld1q_u8(p + i + 16);
        const uint8x16_t c = vld1q_u8(p + i + 32), d = vld1q_u8(p + i + 48);
        vst1q_u8(p + i, veorq_u8(a, k));
        vst1q_u8(p + i + 16, veorq_u8(b, k));
        vst1q_u8(p + i + 32, veorq_u8(c, k));
        vst1q_u8(p + i + 48, veorq_u8(d, k));
    }
    for (; i + 16 <= n; i += 16) vst1q_u8(p + i, veorq_u8(vld1q_u8(p + i), k));
    if (i != n) vst1q_u8(lastp, last);
}

#endif /* CWS_ARM64 */

/* ------------------------------------------------------------------------------------------------
 * Public API
 * ---------------------------------------------------------------------------------------------- */

/* Dispatch thresholds for cws_mask, from the table at the top of this file:
 *   len < 64         SSE2/NEON code inlined into cws_mask (no call, no CPU-feature check)
 *   64 <= len < 128  SSE2 kernel (AVX2 is no faster here)
 *   len >= 128       AVX2 kernel when the CPU has it, else SSE2 */
#define CWS__MASK_INLINE_BELOW 64
#define CWS__MASK_AVX2_FROM 128

/* len >= CWS__MASK_INLINE_BELOW: picks the kernel and tail-calls it. Kept out of line so that
 * the short path of cws_mask needs no stack frame; the kernels return the next phase so that
 * neither call needs one after the feature check. */
__attribute__((noinline)) static uint32_t cws__mask_long(uint8_t *p, size_t len, uint32_t key32,
                                                        uint32_t phase) {
#if CWS_X86_64
    if (len >= CWS__MASK_AVX2_FROM && (cws__cpu_features() & CWS__CPU_AVX2))
        return cws__mask_avx2_run(p, len, key32, phase);
    return cws__mask_sse2_run(p, len, key32, phase);
#elif CWS_ARM64
    cws__mask_neon(p, len, key32);
    return (uint32_t)((phase + len) & 3);
#else
    cws__mask_word(p, len, key32);
    return (uint32_t)((phase + len) & 3);
#endif
}

uint32_t cws_mask(void *buf, size_t len, const void *key, uint32_t phase) {
    const uint32_t next = (uint32_t)((phase + len) & 3);
    if (len == 0) return next; /* buf may be NULL; key is not read */
    /* One 4-byte load and a rotate: gathering the 4 key bytes into a local array and reloading
     * it as a word (as cws__rotated_key does) stalls store-to-load forwarding. */
    const uint32_t key32 = cws__key_advance(cws__load32(key), phase);
    /* An all-zero key masks nothing: skip the pass over memory (uWS does the same). */
    if (key32 == 0) return next;
    uint8_t *p = (uint8_t *)buf;
    if (len >= CWS__MASK_INLINE_BELOW) return cws__mask_long(p, len, key32, phase);
#if CWS_X86_64
    cws__mask_sse2_lt64(p, len, key32);
#elif CWS_ARM64
    cws__mask_neon_lt64(p, len, key32);
#else
    cws__mask_word(p, len, key32);
#endif
    return next;
}

bool cws_mask_kernel_available(cws_kernel k) {
    switch (k) {
    case CWS_KERNEL_AUTO:
    case CWS_KERNEL_REFERENCE:
    case CWS_KERNEL_WORD:
        return true;
    case CWS_KERNEL_SSE:
#if CWS_X86_64
        return true;
#else
        return false;
#endif
    case CWS_KERNEL_AVX2:
#if CWS_X86_64
        return (cws__cpu_features() & CWS__CPU_AVX2) != 0;
#else
        return false;
#endif
    case CWS_KERNEL_NEON:
#if CWS_ARM64
        return true;
#else
        return false;
#endif
    }
    return false;
}

cws_kernel cws_mask_kernel_selected(void) {
#if CWS_X86_64
    return (cws__cpu_features() & CWS__CPU_AVX2) ? CWS_KERNEL_AVX2 : CWS_KERNEL_SSE;
#elif CWS_ARM64
    return CWS_KERNEL_NEON;
#else
    return CWS_KERNEL_WORD;
#endif
}

/* Runs exactly the named kernel, with no zero-key shortcut, so tests exercise the kernel itself.
 * AUTO behaves as cws_mask; an unavailable or unknown kernel runs the reference. */
uint32_t cws_mask_with(cws_kernel k, void *buf, size_t len, const void *key, uint32_t phase) {
    if (k == CWS_KERNEL_AUTO) return cws_mask(buf, len, key, phase);
    const uint32_t next = (uint32_t)((phase + len) & 3);
    if (len == 0) return next;
    const uint32_t key32 = cws__rotated_key(key, phase);
    uint8_t *p = (uint8_t *)buf;
    if (!cws_mask_kernel_available(k)) k = CWS_KERNEL_REFERENCE;
    switch (k) {
#if CWS_X86_64
    case CWS_KERNEL_SSE: cws__mask_sse2(p, len, key32); break;
    case CWS_KERNEL_AVX2: cws__mask_avx2(p, len, key32); break;
#endif
#if CWS_ARM64
    case CWS_KERNEL_NEON: cws__mask_neon(p, len, key32); break;
#endif
    case CWS_KERNEL_WORD: cws__mask_word(p, len, key32); break;
    default: cws__mask_reference(p, len, key32); break;
    }
    return next;
}
