/*
 * kernels/cws_x86_sse.c — x86-64 kernels with 16-byte vectors: SSE2 masking (SSE2 is part of
 * x86-64, so it needs no check), SSSE3+SSE4.1 UTF-8 validation and the fused unmask+validate
 * (function-level target attributes: the file builds with no -m flags).
 */
#include "cws_utf8_lookup.h"

#if CWS_X86_64

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
 * stored and stored after it (the overlap rule of cws_kernels.h). The aligned body starts at
 * off = (-p) mod V, so its key is advanced by off & 3. With a misaligned buffer every other
 * 32-byte store of the unaligned form splits a cache line; from 1 KiB that costs more than the
 * head and tail (Benchmarks/RESULTS.md). Below it the unaligned form wins: the head and tail stores overlap
 * body stores, which stalls a read of the same bytes that follows soon after.
 *
 * _mm_set1_epi32 / _mm256_set1_epi32 put key32 in every 32-bit lane; lanes are stored
 * little-endian, so each lane holds the key bytes in memory order.
 * ---------------------------------------------------------------------------------------------- */

/* Buffers at least this long are masked in the aligned form (here and in cws_x86_avx2.c; measured in Benchmarks/RESULTS.md). */
#define CWS__MASK_ALIGN_FROM 1024

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

void cws__mask_sse2(uint8_t *p, size_t n, uint32_t key32) {
    if (n < 64)
        cws__mask_sse2_lt64(p, n, key32);
    else if (n < CWS__MASK_ALIGN_FROM)
        cws__mask_sse2_unaligned(p, n, key32);
    else
        cws__mask_sse2_aligned(p, n, key32);
}

/* ---- SSE: SSSE3 for pshufb/palignr, SSE4.1 for ptest and pextrd. 64 bytes per step. ---- */
#define SSE_FN static inline __attribute__((always_inline, target("ssse3,sse4.1")))

/* Error bits of the 16 bytes `in`, given the 16 bytes before them. */
SSE_FN __m128i sse_errors(__m128i in, __m128i prev) {
    const __m128i low4 = _mm_set1_epi8(0x0F);
    const __m128i prev1 = _mm_alignr_epi8(in, prev, 15); /* byte i-1 for each i */
    const __m128i prev2 = _mm_alignr_epi8(in, prev, 14);
    const __m128i prev3 = _mm_alignr_epi8(in, prev, 13);
    /* There is no 8-bit shift: shift 16-bit lanes and mask off what came from the neighbour. */
    const __m128i h1 = _mm_and_si128(_mm_srli_epi16(prev1, 4), low4);
    const __m128i l1 = _mm_and_si128(prev1, low4);
    const __m128i h2 = _mm_and_si128(_mm_srli_epi16(in, 4), low4);
    const __m128i pairs = _mm_and_si128(
        _mm_and_si128(_mm_shuffle_epi8(LOAD128(utf8_t1_prev_high), h1), _mm_shuffle_epi8(LOAD128(utf8_t2_prev_low), l1)),
        _mm_shuffle_epi8(LOAD128(utf8_t3_cur_high), h2));
    const __m128i third = _mm_subs_epu8(prev2, _mm_set1_epi8((char)(0xE0 - 0x80)));
    const __m128i fourth = _mm_subs_epu8(prev3, _mm_set1_epi8((char)(0xF0 - 0x80)));
    const __m128i must23 = _mm_and_si128(_mm_or_si128(third, fourth), _mm_set1_epi8((char)0x80));
    return _mm_xor_si128(must23, pairs);
}

/* One 64-byte block a..d whose plain bytes sit at `at` (the 16 before it at at - 16, readable
 * unless `first`). */
SSE_FN void sse_block(__m128i *err, uint32_t *inc, uint32_t *bad, const uint8_t *at, bool first, __m128i a,
                      __m128i b, __m128i c, __m128i d) {
    const __m128i any = _mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d));
    if (_mm_movemask_epi8(any) == 0) {
        /* All ASCII: valid by itself; only a sequence left open by the block before is wrong. */
        *bad |= *inc;
        *inc = 0;
        return;
    }
    const __m128i prev = first ? _mm_setzero_si128() : LOAD128(at - 16);
    const __m128i e = _mm_or_si128(_mm_or_si128(sse_errors(a, prev), sse_errors(b, a)),
                                   _mm_or_si128(sse_errors(c, b), sse_errors(d, c)));
    *err = _mm_or_si128(*err, e);
    *inc = incomplete_tail((uint32_t)_mm_extract_epi32(d, 3));
}

SSE_FN int sse_body(const uint8_t *src, uint8_t *dst, size_t n, uint32_t key32, bool fused) {
    const uint8_t *plain = fused ? dst : src; /* where the unmasked bytes are once stored */
    const __m128i key = _mm_set1_epi32((int)key32);
    __m128i err = _mm_setzero_si128();
    uint32_t inc = 0, bad = 0;
    size_t i = 0;
    for (; n - i >= 64; i += 64) {
        __m128i a = LOAD128(src + i), b = LOAD128(src + i + 16);
        __m128i c = LOAD128(src + i + 32), d = LOAD128(src + i + 48);
        if (fused) {
            a = _mm_xor_si128(a, key);
            b = _mm_xor_si128(b, key);
            c = _mm_xor_si128(c, key);
            d = _mm_xor_si128(d, key);
            STORE128(dst + i, a);
            STORE128(dst + i + 16, b);
            STORE128(dst + i + 32, c);
            STORE128(dst + i + 48, d);
        }
        sse_block(&err, &inc, &bad, plain + i, i == 0, a, b, c, d);
    }
    if (i < n) {
        if (!fused && n >= 80) {
            /* The last 64 bytes again, overlapping what was checked, with the 16 bytes before
             * them as `prev`: checking a byte twice is harmless (errors are OR-ed), and there is
             * no copy. `inc` of the block before is covered: the bytes after it are in view.
             * Not for the fused decode: those bytes are unmasked already. */
            sse_block(&err, &inc, &bad, src + n - 64, false, LOAD128(src + n - 64), LOAD128(src + n - 48),
                      LOAD128(src + n - 32), LOAD128(src + n - 16));
        } else {
            /* The last 1-63 bytes, padded with zeros (ASCII). Every block above was a multiple
             * of 4 bytes long, so the key is still in phase. */
            uint8_t last[16 + 64] = {0}; /* the 16 bytes before the tail, then the tail */
            if (fused) cws__mask_word(dst + i, n - i, key32);
            if (i > 0) memcpy(last, plain + i - 16, 16);
            memcpy(last + 16, plain + i, n - i);
            sse_block(&err, &inc, &bad, last + 16, i == 0, LOAD128(last + 16), LOAD128(last + 32), LOAD128(last + 48),
                      LOAD128(last + 64));
        }
    }
    return _mm_testz_si128(err, err) && (bad | inc) == 0 ? CWS_OK : CWS_ERR_INVALID_UTF8;
}

__attribute__((target("ssse3,sse4.1"))) static int cws__utf8_sse(const uint8_t *p, size_t n) {
    return sse_body(p, NULL, n, 0, false);
}

__attribute__((target("ssse3,sse4.1"))) static int cws__unmask_utf8_sse_fused(uint8_t *p, size_t n, uint32_t key32) {
    return sse_body(p, p, n, key32, true);
}

/* Fused from 64 bytes; below that, both forms end in the same padded last block and masking with
 * the overlapping-word code first is a little faster (Benchmarks/RESULTS.md, "fused" against
 * "mask+val"). */
static int cws__unmask_utf8_sse(uint8_t *p, size_t n, uint32_t key32) {
    if (n >= 64) return cws__unmask_utf8_sse_fused(p, n, key32);
    cws__mask_sse2_lt64(p, n, key32);
    return cws__utf8_sse(p, n);
}

const cws__kernel_ops cws__kernel_sse = {CWS_KERNEL_SSE, CWS_KERNEL_SSE, cws__mask_sse2, cws__utf8_sse,
                                         cws__unmask_utf8_sse};

#else
typedef int cws__x86_sse_unused; /* ISO C wants a declaration in every translation unit */
#endif /* CWS_X86_64 */
