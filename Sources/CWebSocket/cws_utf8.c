/*
 * cws_utf8.c — UTF-8 validation (RFC 3629 §4; RFC 6455 §8.1 requires text messages and close
 * reasons to be valid UTF-8, and §8.1 says to fail the connection as soon as they are not).
 *
 * BENCHMARK_TABLE_PLACEHOLDER
 *
 * Kernels (one verdict each, all tested against REFERENCE):
 *   REFERENCE  byte at a time, straight from the RFC 3629 §4 table (utf8_lead).
 *   WORD       skips 8/16-byte all-ASCII words, decodes the rest one code point at a time.
 *   SSE, AVX2  Keiser & Lemire, "Validating UTF-8 In Less Than One Instruction Per Byte"
 *   NEON       (arXiv:2010.03090): three nibble lookups per byte pair (see the tables below), the
 *              "must be a continuation" check for bytes 3 and 4, errors OR-ed into one register with
 *              no branch per block, an all-ASCII fast path, and an "incomplete tail" carried from
 *              block to block.
 *
 * Streaming (cws_utf8_stream): a text may be cut at any byte. A feed
 *   1. completes the sequence carried from the last piece (at most 3 bytes) byte by byte,
 *   2. finds the last sequence start in the piece that is incomplete (only the last 3 bytes can
 *      hold one) and validates everything before it as a complete text with a kernel,
 *   3. checks that the cut tail is a valid prefix of a sequence and stashes it.
 * So an error shows up at the feed that brings the first byte which no valid text can continue
 * with ("E0 80", "ED A0", "F4 90", a lone C0 or F5, a stray continuation byte), while a valid
 * incomplete prefix ("E2 82") is an error only at cws_utf8_stream_finish. partial_len > 3 marks a
 * failed stream.
 */
#include "cws_internal.h"

#if CWS_X86_64
#include <immintrin.h>
#endif
#if CWS_ARM64
#include <arm_neon.h>
#endif

/* partial_len of a stream that failed: every later feed and finish return the error again. */
#define UTF8_FAILED 0xFFu

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
static unsigned utf8_lead(uint8_t b, uint8_t *lo, uint8_t *hi) {
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
static bool utf8_prefix_ok(const uint8_t *t, size_t m) {
    uint8_t lo, hi;
    unsigned len = utf8_lead(t[0], &lo, &hi);
    if (len == 0 || m > len) return false;
    if (m >= 2 && (t[1] < lo || t[1] > hi)) return false;
    for (size_t j = 2; j < m; j++)
        if (t[j] < 0x80 || t[j] > 0xBF) return false;
    return true;
}

static int utf8_reference(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t lo, hi;
        unsigned len = utf8_lead(p[i], &lo, &hi);
        if (len == 0 || len > n - i) return CWS_ERR_INVALID_UTF8;
        if (len >= 2 && (p[i + 1] < lo || p[i + 1] > hi)) return CWS_ERR_INVALID_UTF8;
        for (unsigned j = 2; j < len; j++)
            if (p[i + j] < 0x80 || p[i + j] > 0xBF) return CWS_ERR_INVALID_UTF8;
        i += len;
    }
    return CWS_OK;
}

/* ================================================================================================
 * WORD: portable. Skips all-ASCII 16- and 8-byte words (no byte has its top bit set); decodes
 * anything else one code point at a time and checks the value's range, which is a second,
 * independent reading of the same RFC 3629 rules (overlong = value below the length's minimum).
 * ============================================================================================== */

#define HIGH_BITS UINT64_C(0x8080808080808080)

static inline bool is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

static int utf8_word(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        while (n - i >= 16 && ((cws__load64(p + i) | cws__load64(p + i + 8)) & HIGH_BITS) == 0) i += 16;
        if (n - i >= 8 && (cws__load64(p + i) & HIGH_BITS) == 0) {
            i += 8;
            continue;
        }
        /* At most 7 ASCII bytes before the non-ASCII one that stopped the word test (or the tail). */
        while (i < n && p[i] < 0x80) i++;
        /* Decode while the text stays non-ASCII; go back to words at the next ASCII byte. */
        while (i < n && p[i] >= 0x80) {
            uint32_t b = p[i];
            size_t left = n - i;
            if (b < 0xE0) {
                /* 2 bytes, U+0080-07FF: C0/C1 would be overlong, 80-BF is a stray continuation. */
                if (b < 0xC2 || left < 2 || !is_cont(p[i + 1])) return CWS_ERR_INVALID_UTF8;
                i += 2;
            } else if (b < 0xF0) {
                /* 3 bytes, U+0800-FFFF minus the surrogates U+D800-DFFF. */
                if (left < 3 || !is_cont(p[i + 1]) || !is_cont(p[i + 2])) return CWS_ERR_INVALID_UTF8;
                uint32_t cp = ((b & 0x0F) << 12) | ((uint32_t)(p[i + 1] & 0x3F) << 6) | (p[i + 2] & 0x3F);
                if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return CWS_ERR_INVALID_UTF8;
                i += 3;
            } else {
                /* 4 bytes, U+10000-10FFFF. F8-FF have no place at all. */
                if (b > 0xF7 || left < 4 || !is_cont(p[i + 1]) || !is_cont(p[i + 2]) || !is_cont(p[i + 3]))
                    return CWS_ERR_INVALID_UTF8;
                uint32_t cp = ((b & 0x07) << 18) | ((uint32_t)(p[i + 1] & 0x3F) << 12) |
                              ((uint32_t)(p[i + 2] & 0x3F) << 6) | (p[i + 3] & 0x3F);
                if (cp < 0x10000 || cp > 0x10FFFF) return CWS_ERR_INVALID_UTF8;
                i += 4;
            }
        }
    }
    return CWS_OK;
}

/* ================================================================================================
 * SIMD (SSE, AVX2, NEON): the Keiser-Lemire lookup.
 *
 * Every error in UTF-8 shows up in some pair of adjacent bytes (prev, cur), except a missing or
 * extra continuation in byte 3 or 4 of a sequence, which needs the bytes 2 and 3 back. For the
 * pairs, split each byte into nibbles and look up three 16-entry tables:
 *
 *     T1[prev >> 4] & T2[prev & 15] & T3[cur >> 4]
 *
 * Each bit of the result is one error class, set only when all three nibbles are in that class's
 * sets, so every class must be a "rectangle" (high nibble of prev) x (low nibble of prev) x (high
 * nibble of cur):
 *
 *   bit  name        prev high  prev low   cur high   meaning
 *   0x01 TOO_SHORT   C-F        any        0-7, C-F   a lead byte not followed by a continuation
 *   0x02 TOO_LONG    0-7        any        8-B        a continuation right after ASCII
 *   0x04 OVERLONG_3  E          0          8-9        E0 80-9F: 3-byte form of U+0000-07FF
 *   0x08 SURROGATE   E          D          A-B        ED A0-BF: U+D800-DFFF
 *   0x10 OVERLONG_2  C          0-1        8-B        C0/C1 xx: 2-byte form of U+0000-007F
 *   0x20 TOO_LARGE   F          4-F        9-B        F4 90-BF and F5-FF 90-BF: above U+10FFFF
 *   0x40 OVERLONG_4  F          0, 5-F     8          F0 80-8F: 4-byte form of U+0000-FFFF, and
 *        (TOO_LARGE_1000)                             F5-FF 80-8F (the part TOO_LARGE misses)
 *   0x80 TWO_CONTS   8-B        any        8-B        two continuations in a row
 *
 * F0 8x and F5-FF 8x share bit 0x40 because their union is itself a rectangle (F x {0,5-F} x 8).
 * A lone C0, C1 or F5-FF followed by a non-continuation is caught by TOO_SHORT.
 *
 * TWO_CONTS is not an error by itself: a continuation is *required* after a continuation exactly
 * when it is byte 3 of a 3/4-byte sequence (the byte 2 back is >= E0) or byte 4 of a 4-byte one
 * (the byte 3 back is >= F0). With saturating subtraction, (prev2 -sat 0x60) has its top bit set
 * iff prev2 >= E0, and (prev3 -sat 0x70) iff prev3 >= F0. So `must23 & 0x80` XOR the lookup result
 * leaves 0x80 set for both "continuation where none may be" (TWO_CONTS without must23) and "no
 * continuation where one must be" (must23 without TWO_CONTS); the other bits pass unchanged.
 *
 * At a block boundary `prev` comes from the previous block (zero, i.e. ASCII, before the first).
 * A text must not end inside a sequence: "incomplete" is set when of the last three bytes of a
 * block the last is >= C0, the one before >= E0 or the third-last >= F0. It only matters if the
 * next block is all ASCII (taken by the fast path without lookups) or the text ends; otherwise the
 * lookups of the next block see the same bytes as `prev`. The tail of a text (< one block) is
 * copied into a zeroed block: zeros are ASCII, so a cut sequence is TOO_SHORT or fails must23.
 * ============================================================================================== */

enum {
    TOO_SHORT = 0x01,
    TOO_LONG = 0x02,
    OVERLONG_3 = 0x04,
    SURROGATE = 0x08,
    OVERLONG_2 = 0x10,
    TOO_LARGE = 0x20,
    OVERLONG_4 = 0x40, /* also TOO_LARGE_1000 */
    TWO_CONTS = 0x80
};

#if CWS_X86_64 || CWS_ARM64

/* T1, by the high nibble of the previous byte: what kind of byte came before. */
static const uint8_t utf8_t1_prev_high[16] = {
    /* 0-7 ASCII: only TOO_LONG can follow it */
    TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG,
    /* 8-B continuation */
    TWO_CONTS, TWO_CONTS, TWO_CONTS, TWO_CONTS,
    /* C 2-byte lead (C0/C1 overlong) */
    TOO_SHORT | OVERLONG_2,
    /* D 2-byte lead */
    TOO_SHORT,
    /* E 3-byte lead (E0 overlong, ED surrogates) */
    TOO_SHORT | OVERLONG_3 | SURROGATE,
    /* F 4-byte lead (F0 overlong, F4 too large, F5-FF always bad) */
    TOO_SHORT | TOO_LARGE | OVERLONG_4,
};

/* T2, by the low nibble of the previous byte: which lead exactly. The three classes that do not
 * care ("any") are in every entry. */
#define CARRY (TOO_SHORT | TOO_LONG | TWO_CONTS)
static const uint8_t utf8_t2_prev_low[16] = {
    /* 0: C0, E0, F0 */ CARRY | OVERLONG_2 | OVERLONG_3 | OVERLONG_4,
    /* 1: C1 */ CARRY | OVERLONG_2,
    /* 2 */ CARRY,
    /* 3 */ CARRY,
    /* 4: F4 */ CARRY | TOO_LARGE,
    /* 5-C: F5-FC */ CARRY | TOO_LARGE | OVERLONG_4, CARRY | TOO_LARGE | OVERLONG_4,
    CARRY | TOO_LARGE | OVERLONG_4, CARRY | TOO_LARGE | OVERLONG_4, CARRY | TOO_LARGE | OVERLONG_4,
    CARRY | TOO_LARGE | OVERLONG_4, CARRY | TOO_LARGE | OVERLONG_4, CARRY | TOO_LARGE | OVERLONG_4,
    /* D: ED, FD */ CARRY | TOO_LARGE | OVERLONG_4 | SURROGATE,
    /* E-F: FE, FF */ CARRY | TOO_LARGE | OVERLONG_4, CARRY | TOO_LARGE | OVERLONG_4,
};
#undef CARRY

/* T3, by the high nibble of the current byte: ASCII, which continuation range, or a lead. */
#define CONT (TOO_LONG | OVERLONG_2 | TWO_CONTS)
static const uint8_t utf8_t3_cur_high[16] = {
    /* 0-7 ASCII */
    TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
    /* 8: 80-8F */ CONT | OVERLONG_3 | OVERLONG_4,
    /* 9: 90-9F */ CONT | OVERLONG_3 | TOO_LARGE,
    /* A: A0-AF */ CONT | SURROGATE | TOO_LARGE,
    /* B: B0-BF */ CONT | SURROGATE | TOO_LARGE,
    /* C-F leads */
    TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
};
#undef CONT

#if CWS_ARM64
/* Subtracted (saturating) from the last 16 bytes of a block: nonzero iff the block ends inside a
 * sequence. Last byte >= C0 (any lead), second-last >= E0, third-last >= F0; 0xFF elsewhere gives
 * 0. (The x86 kernels test the last 4 bytes as a scalar instead, see incomplete_tail.) */
static const uint8_t utf8_incomplete_max[16] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xEF, 0xDF, 0xBF,
};
#endif


#endif /* CWS_X86_64 || CWS_ARM64 */

#if CWS_X86_64

/* ------------------------------------------------------------------------------------------------
 * x86-64 kernels. A first version carried `prev`, `err` and a vector "incomplete" flag through the
 * loop like the paper's code; with 7 constant vectors, the key and 4 data registers, clang ran
 * out of the 16 vector registers and spilled `err` to the stack on every step: the all-ASCII loop
 * then waited on a store-to-load round trip per 128 bytes (fused decode of ASCII: 34 GB/s against
 * 48-53 GB/s for mask-then-validate). So here the loop carries only `err`:
 *   - `prev` is not carried: a block that needs the lookups reloads the 32 (16) bytes before it
 *     from memory (the input, or for the fused decode the unmasked bytes it just stored);
 *   - "incomplete" is a scalar flag taken from the last 4 bytes of the block (x86 is
 *     little-endian: the block's last byte is the top byte of its last 32-bit lane); an all-ASCII
 *     block ORs it into a scalar `bad`.
 *
 * The *_body functions serve both validation (dst == NULL) and the fused decode (dst == src):
 * load, XOR with the broadcast key, store, then validate the register. `fused` is a constant at
 * each call site, so each caller gets its own copy without the other's work.
 * ---------------------------------------------------------------------------------------------- */

/* 1 if a block whose last four bytes are `w` (little-endian) ends inside a sequence: its last
 * byte is a lead (>= C0), or the one before starts a 3/4-byte sequence (>= E0), or the third-last
 * a 4-byte one (>= F0). Bytes F5-FF count too; they are errors anyway. */
static inline uint32_t incomplete_tail(uint32_t w) {
    return (uint32_t)(w >= 0xC0000000u) | (uint32_t)(((w >> 16) & 0xFF) >= 0xE0) |
           (uint32_t)(((w >> 8) & 0xFF) >= 0xF0);
}

#define LOAD128(p) _mm_loadu_si128((const __m128i *)(const void *)(p))
#define STORE128(p, v) _mm_storeu_si128((__m128i *)(void *)(p), (v))
#define LOAD256(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define STORE256(p, v) _mm256_storeu_si256((__m256i *)(void *)(p), (v))

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

__attribute__((target("ssse3,sse4.1"))) static int utf8_sse(const uint8_t *p, size_t n) {
    return sse_body(p, NULL, n, 0, false);
}

__attribute__((target("ssse3,sse4.1"))) static int unmask_utf8_sse(uint8_t *p, size_t n, uint32_t key32) {
    return sse_body(p, p, n, key32, true);
}

/* ---- AVX2: 32-byte registers. pshufb and palignr work inside each 128-bit lane: the tables are
 * repeated in both lanes, and the "previous bytes" vector is built from [prev.high | in.low]
 * (vperm2i128) so that palignr shifts across the lane boundary. ---- */
#define AVX2_FN static inline __attribute__((always_inline, target("avx2")))

AVX2_FN __m256i avx2_errors(__m256i in, __m256i prev) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i across = _mm256_permute2x128_si256(prev, in, 0x21); /* prev.high | in.low */
    const __m256i prev1 = _mm256_alignr_epi8(in, across, 15);
    const __m256i prev2 = _mm256_alignr_epi8(in, across, 14);
    const __m256i prev3 = _mm256_alignr_epi8(in, across, 13);
    const __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(prev1, 4), low4);
    const __m256i l1 = _mm256_and_si256(prev1, low4);
    const __m256i h2 = _mm256_and_si256(_mm256_srli_epi16(in, 4), low4);
    const __m256i t1 = _mm256_broadcastsi128_si256(LOAD128(utf8_t1_prev_high));
    const __m256i t2 = _mm256_broadcastsi128_si256(LOAD128(utf8_t2_prev_low));
    const __m256i t3 = _mm256_broadcastsi128_si256(LOAD128(utf8_t3_cur_high));
    const __m256i pairs = _mm256_and_si256(
        _mm256_and_si256(_mm256_shuffle_epi8(t1, h1), _mm256_shuffle_epi8(t2, l1)), _mm256_shuffle_epi8(t3, h2));
    const __m256i third = _mm256_subs_epu8(prev2, _mm256_set1_epi8((char)(0xE0 - 0x80)));
    const __m256i fourth = _mm256_subs_epu8(prev3, _mm256_set1_epi8((char)(0xF0 - 0x80)));
    const __m256i must23 = _mm256_and_si256(_mm256_or_si256(third, fourth), _mm256_set1_epi8((char)0x80));
    return _mm256_xor_si256(must23, pairs);
}

/* The last byte of a block ends it; see incomplete_tail. */
AVX2_FN uint32_t avx2_incomplete(__m256i last) { return incomplete_tail((uint32_t)_mm256_extract_epi32(last, 7)); }

/* One 64-byte block a, b whose plain bytes sit at `at`. */
AVX2_FN void avx2_block(__m256i *err, uint32_t *inc, uint32_t *bad, const uint8_t *at, bool first, __m256i a,
                        __m256i b) {
    if (_mm256_movemask_epi8(_mm256_or_si256(a, b)) == 0) {
        *bad |= *inc;
        *inc = 0;
        return;
    }
    const __m256i prev = first ? _mm256_setzero_si256() : LOAD256(at - 32);
    *err = _mm256_or_si256(*err, _mm256_or_si256(avx2_errors(a, prev), avx2_errors(b, a)));
    *inc = avx2_incomplete(b);
}

/* The main loop takes 128 bytes per step with ONE all-ASCII branch; a block that is not all ASCII
 * gets the full check on all four registers, with no branch per 64 bytes. On text with about one
 * non-ASCII character in 100, a branch per 64 bytes goes either way at random, and its
 * mispredictions cost more than the checks it skips; 256-byte steps were slower on text with one
 * in 1000 (measured, see the table at the top). */
AVX2_FN int avx2_body(const uint8_t *src, uint8_t *dst, size_t n, uint32_t key32, bool fused) {
    const uint8_t *plain = fused ? dst : src;
    const __m256i key = _mm256_set1_epi32((int)key32);
    __m256i err = _mm256_setzero_si256();
    uint32_t inc = 0, bad = 0;
    size_t i = 0;
    for (; n - i >= 128; i += 128) {
        __m256i a = LOAD256(src + i), b = LOAD256(src + i + 32);
        __m256i c = LOAD256(src + i + 64), d = LOAD256(src + i + 96);
        if (fused) {
            a = _mm256_xor_si256(a, key);
            b = _mm256_xor_si256(b, key);
            c = _mm256_xor_si256(c, key);
            d = _mm256_xor_si256(d, key);
            STORE256(dst + i, a);
            STORE256(dst + i + 32, b);
            STORE256(dst + i + 64, c);
            STORE256(dst + i + 96, d);
        }
        if (_mm256_movemask_epi8(_mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d))) == 0) {
            bad |= inc;
            inc = 0;
            continue;
        }
        const __m256i prev = i == 0 ? _mm256_setzero_si256() : LOAD256(plain + i - 32);
        const __m256i e = _mm256_or_si256(_mm256_or_si256(avx2_errors(a, prev), avx2_errors(b, a)),
                                          _mm256_or_si256(avx2_errors(c, b), avx2_errors(d, c)));
        err = _mm256_or_si256(err, e);
        inc = avx2_incomplete(d);
    }
    if (n - i >= 64) {
        __m256i a = LOAD256(src + i), b = LOAD256(src + i + 32);
        if (fused) {
            a = _mm256_xor_si256(a, key);
            b = _mm256_xor_si256(b, key);
            STORE256(dst + i, a);
            STORE256(dst + i + 32, b);
        }
        avx2_block(&err, &inc, &bad, plain + i, i == 0, a, b);
        i += 64;
    }
    if (i < n) {
        if (!fused && n >= 96) {
            /* The last 64 bytes again, overlapping; see sse_body. */
            avx2_block(&err, &inc, &bad, src + n - 64, false, LOAD256(src + n - 64), LOAD256(src + n - 32));
        } else {
            uint8_t last[32 + 64] = {0};
            if (fused) cws__mask_word(dst + i, n - i, key32);
            if (i > 0) memcpy(last, plain + i - 32, 32);
            memcpy(last + 32, plain + i, n - i);
            avx2_block(&err, &inc, &bad, last + 32, i == 0, LOAD256(last + 32), LOAD256(last + 64));
        }
    }
    return _mm256_testz_si256(err, err) && (bad | inc) == 0 ? CWS_OK : CWS_ERR_INVALID_UTF8;
}

__attribute__((target("avx2"))) static int utf8_avx2(const uint8_t *p, size_t n) {
    return avx2_body(p, NULL, n, 0, false);
}

__attribute__((target("avx2"))) static int unmask_utf8_avx2(uint8_t *p, size_t n, uint32_t key32) {
    return avx2_body(p, p, n, key32, true);
}

#endif /* CWS_X86_64 */

#if CWS_ARM64

/* ------------------------------------------------------------------------------------------------
 * NEON: the same with 16-byte registers, 64 bytes per step. tbl (vqtbl1q_u8) is the 16-entry
 * lookup; ext (vextq_u8) gives the previous bytes; the 8-bit shift needs no mask. umaxv answers
 * "any top bit set" and "any error bit set".
 * ---------------------------------------------------------------------------------------------- */
typedef struct {
    uint8x16_t t1, t2, t3, inc_max;
    uint8x16_t prev, err, inc;
} neon_state;

CWS_INLINE uint8x16_t neon_errors(const neon_state *st, uint8x16_t in, uint8x16_t prev) {
    const uint8x16_t prev1 = vextq_u8(prev, in, 15);
    const uint8x16_t prev2 = vextq_u8(prev, in, 14);
    const uint8x16_t prev3 = vextq_u8(prev, in, 13);
    const uint8x16_t pairs = vandq_u8(vandq_u8(vqtbl1q_u8(st->t1, vshrq_n_u8(prev1, 4)),
                                               vqtbl1q_u8(st->t2, vandq_u8(prev1, vdupq_n_u8(0x0F)))),
                                      vqtbl1q_u8(st->t3, vshrq_n_u8(in, 4)));
    const uint8x16_t third = vqsubq_u8(prev2, vdupq_n_u8(0xE0 - 0x80));
    const uint8x16_t fourth = vqsubq_u8(prev3, vdupq_n_u8(0xF0 - 0x80));
    const uint8x16_t must23 = vandq_u8(vorrq_u8(third, fourth), vdupq_n_u8(0x80));
    return veorq_u8(must23, pairs);
}

CWS_INLINE void neon_step(neon_state *st, uint8x16_t a, uint8x16_t b, uint8x16_t c, uint8x16_t d) {
    const uint8x16_t any = vorrq_u8(vorrq_u8(a, b), vorrq_u8(c, d));
    if (vmaxvq_u8(any) < 0x80) {
        st->err = vorrq_u8(st->err, st->inc);
        st->inc = vdupq_n_u8(0);
    } else {
        const uint8x16_t e = vorrq_u8(vorrq_u8(neon_errors(st, a, st->prev), neon_errors(st, b, a)),
                                      vorrq_u8(neon_errors(st, c, b), neon_errors(st, d, c)));
        st->err = vorrq_u8(st->err, e);
        st->inc = vqsubq_u8(d, st->inc_max);
    }
    st->prev = d;
}

CWS_INLINE int neon_body(const uint8_t *src, uint8_t *dst, size_t n, uint32_t key32, bool fused) {
    neon_state st;
    st.t1 = vld1q_u8(utf8_t1_prev_high);
    st.t2 = vld1q_u8(utf8_t2_prev_low);
    st.t3 = vld1q_u8(utf8_t3_cur_high);
    st.inc_max = vld1q_u8(utf8_incomplete_max);
    st.prev = st.err = st.inc = vdupq_n_u8(0);
    const uint8x16_t key = vreinterpretq_u8_u32(vdupq_n_u32(key32));
    size_t i = 0;
    for (; n - i >= 64; i += 64) {
        uint8x16_t a = vld1q_u8(src + i), b = vld1q_u8(src + i + 16);
        uint8x16_t c = vld1q_u8(src + i + 32), d = vld1q_u8(src + i + 48);
        if (fused) {
            a = veorq_u8(a, key);
            b = veorq_u8(b, key);
            c = veorq_u8(c, key);
            d = veorq_u8(d, key);
            vst1q_u8(dst + i, a);
            vst1q_u8(dst + i + 16, b);
            vst1q_u8(dst + i + 32, c);
            vst1q_u8(dst + i + 48, d);
        }
        neon_step(&st, a, b, c, d);
    }
    if (i < n) {
        uint8_t last[64] = {0};
        if (fused) cws__mask_word(dst + i, n - i, key32);
        memcpy(last, src + i, n - i);
        neon_step(&st, vld1q_u8(last), vld1q_u8(last + 16), vld1q_u8(last + 32), vld1q_u8(last + 48));
    }
    st.err = vorrq_u8(st.err, st.inc);
    return vmaxvq_u8(st.err) == 0 ? CWS_OK : CWS_ERR_INVALID_UTF8;
}

static int utf8_neon(const uint8_t *p, size_t n) { return neon_body(p, NULL, n, 0, false); }
static int unmask_utf8_neon(uint8_t *p, size_t n, uint32_t key32) { return neon_body(p, p, n, key32, true); }

#endif /* CWS_ARM64 */

/* ================================================================================================
 * Kernel choice
 * ============================================================================================== */

bool cws_utf8_kernel_available(cws_kernel k) {
    const uint32_t f = cws__cpu_features();
    (void)f;
    switch (k) {
    case CWS_KERNEL_AUTO:
    case CWS_KERNEL_REFERENCE:
    case CWS_KERNEL_WORD:
        return true;
    case CWS_KERNEL_SSE:
#if CWS_X86_64
        return (f & CWS__CPU_SSSE3) && (f & CWS__CPU_SSE41);
#else
        return false;
#endif
    case CWS_KERNEL_AVX2:
#if CWS_X86_64
        return (f & CWS__CPU_AVX2) != 0;
#else
        return false;
#endif
    case CWS_KERNEL_NEON:
#if CWS_ARM64
        return (f & CWS__CPU_NEON) != 0;
#else
        return false;
#endif
    }
    return false;
}

cws_kernel cws_utf8_kernel_selected(void) {
#if CWS_X86_64
    const uint32_t f = cws__cpu_features();
    if (f & CWS__CPU_AVX2) return CWS_KERNEL_AVX2;
    if ((f & CWS__CPU_SSSE3) && (f & CWS__CPU_SSE41)) return CWS_KERNEL_SSE;
    return CWS_KERNEL_WORD;
#elif CWS_ARM64
    return CWS_KERNEL_NEON;
#else
    return CWS_KERNEL_WORD;
#endif
}

/* The kernel that runs for `k`: AUTO stays AUTO (sized at run time); an unavailable kernel, or a
 * value outside the enum, falls back to the reference. */
static cws_kernel utf8_resolve(cws_kernel k) {
    if (k == CWS_KERNEL_AUTO || cws_utf8_kernel_available(k)) return k;
    return CWS_KERNEL_REFERENCE;
}

static int utf8_auto(const uint8_t *p, size_t n);

/* Validates p[0..n) as a complete text with resolved kernel k. */
static int utf8_run(cws_kernel k, const uint8_t *p, size_t n) {
    switch (k) {
    case CWS_KERNEL_AUTO: return utf8_auto(p, n);
    case CWS_KERNEL_WORD: return utf8_word(p, n);
#if CWS_X86_64
    case CWS_KERNEL_SSE: return utf8_sse(p, n);
    case CWS_KERNEL_AVX2: return utf8_avx2(p, n);
#endif
#if CWS_ARM64
    case CWS_KERNEL_NEON: return utf8_neon(p, n);
#endif
    default: return utf8_reference(p, n);
    }
}

/* AUTO by size (measured, see the table at the top):
 *   n < 32       WORD: a SIMD kernel first pays for its tables and a zero-padded copy of the
 *                block, which costs more than the word loop on ASCII and as much on the rest.
 *   32 <= n < 64 an all-ASCII test with overlapping 8-byte words, then the SIMD kernel (which
 *                is 2-3x faster than WORD on non-ASCII text already at 32 bytes).
 *   n >= 64      the SIMD kernel. */
#define UTF8_WORD_BELOW 32

static int utf8_auto(const uint8_t *p, size_t n) {
    if (n < UTF8_WORD_BELOW) return utf8_word(p, n);
    if (n < 64) {
        uint64_t any = cws__load64(p + n - 8);
        for (size_t i = 0; i + 8 <= n; i += 8) any |= cws__load64(p + i);
        if ((any & HIGH_BITS) == 0) return CWS_OK;
    }
    return utf8_run(cws_utf8_kernel_selected(), p, n);
}

/* Fused decode or mask-then-validate, per size (measured, see the table at the top): one pass
 * is faster from 64 bytes on, for SSE and AVX2 alike; below that both end in the same padded
 * last block and the separate mask kernel, which handles short tails with overlapping words, is
 * a little faster. */
#define UNMASK_FUSED_MIN 64

/* Unmasks p[0..n) (key32 in phase at p[0]) and validates it as a complete text with kernel k. */
static int unmask_utf8_run(cws_kernel k, uint8_t *p, size_t n, uint32_t key32) {
    switch (k) {
    case CWS_KERNEL_AUTO:
        if (n < UNMASK_FUSED_MIN) {
            cws__mask_word(p, n, key32);
            return utf8_auto(p, n);
        }
        return unmask_utf8_run(cws_utf8_kernel_selected(), p, n, key32);
    case CWS_KERNEL_WORD:
        cws__mask_word(p, n, key32);
        return utf8_word(p, n);
#if CWS_X86_64
    case CWS_KERNEL_SSE:
        if (n >= UNMASK_FUSED_MIN) return unmask_utf8_sse(p, n, key32);
        cws__mask_sse2(p, n, key32);
        return utf8_sse(p, n);
    case CWS_KERNEL_AVX2:
        if (n >= UNMASK_FUSED_MIN) return unmask_utf8_avx2(p, n, key32);
        cws__mask_avx2(p, n, key32);
        return utf8_avx2(p, n);
#endif
#if CWS_ARM64
    case CWS_KERNEL_NEON: return unmask_utf8_neon(p, n, key32);
#endif
    default:
        cws__mask_reference(p, n, key32);
        return utf8_reference(p, n);
    }
}

/* ================================================================================================
 * One-shot and streaming API
 * ============================================================================================== */

int cws_utf8_validate(const void *buf, size_t len) {
    return utf8_auto((const uint8_t *)buf, len); /* len 0 reads nothing */
}

int cws_utf8_validate_with(cws_kernel k, const void *buf, size_t len) {
    if (len == 0) return CWS_OK;
    return utf8_run(utf8_resolve(k), (const uint8_t *)buf, len);
}

void cws_utf8_stream_init(cws_utf8_stream *s) {
    memset(s->partial, 0, sizeof s->partial);
    s->partial_len = 0;
}

static int stream_fail(cws_utf8_stream *s) {
    s->partial_len = UTF8_FAILED;
    return CWS_ERR_INVALID_UTF8;
}

/* How many bytes at the end of a piece belong to a sequence that the end cuts (0-3). `tail` holds
 * the piece's last t <= 3 bytes, the last one in bits 0-7, the one before in bits 8-15, and so on
 * (kept in a register: the fused decode builds it from unmasked bytes without a store).
 * Only the last 3 bytes can hold such a lead, as a sequence is at most 4 bytes. A byte that
 * cannot lead at all (C0, C1, F5-FF) counts as a lead here, so that the prefix check rejects it
 * as soon as it is the last byte seen. Stray continuations are left to the validator. */
static size_t utf8_cut_back(uint32_t tail, size_t t) {
    for (size_t j = 1; j <= t; j++) {
        const uint32_t b = (tail >> (8 * (j - 1))) & 0xFF;
        if (b < 0x80) return 0;
        if (b >= 0xC0) {
            const size_t len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
            return len > j ? j : 0;
        }
    }
    return 0;
}

/* Appends bytes of p[0..n) to the sequence carried in *s until it is complete or p runs out.
 * Returns how many bytes it took, or SIZE_MAX when the sequence can no longer be valid. */
static size_t stream_complete(cws_utf8_stream *s, const uint8_t *p, size_t n) {
    uint8_t lo, hi;
    const size_t len = utf8_lead(s->partial[0], &lo, &hi);
    size_t m = s->partial_len, i = 0;
    if (len <= m) return SIZE_MAX; /* not a state feed could have left */
    while (m < len && i < n) {
        s->partial[m++] = p[i++];
        if (!utf8_prefix_ok(s->partial, m)) return SIZE_MAX;
    }
    s->partial_len = m == len ? 0 : (uint32_t)m;
    return i;
}

/* Keeps t[0..m) (m <= 3, a cut sequence) for the next piece, if it can begin a valid one. */
static int stream_stash(cws_utf8_stream *s, const uint8_t *t, size_t m) {
    if (m == 0) return CWS_OK;
    if (!utf8_prefix_ok(t, m)) return stream_fail(s);
    memcpy(s->partial, t, m);
    s->partial_len = (uint32_t)m;
    return CWS_OK;
}

static int stream_feed(cws_kernel k, cws_utf8_stream *s, const uint8_t *p, size_t n) {
    if (s->partial_len > 3) return CWS_ERR_INVALID_UTF8;
    if (n == 0) return CWS_OK;
    size_t i = 0;
    if (s->partial_len != 0) {
        i = stream_complete(s, p, n);
        if (i == SIZE_MAX) return stream_fail(s);
        if (s->partial_len != 0) return CWS_OK; /* still incomplete: the piece is used up */
    }
    size_t cut = n;
    if (p[n - 1] >= 0x80) { /* an ASCII last byte cuts nothing: the common case, tested first */
        const size_t t = n - i < 3 ? n - i : 3;
        uint32_t tail = 0;
        for (size_t j = 1; j <= t; j++) tail |= (uint32_t)p[n - j] << (8 * (j - 1));
        cut -= utf8_cut_back(tail, t);
    }
    if (cut > i && utf8_run(utf8_resolve(k), p + i, cut - i) != CWS_OK) return stream_fail(s);
    return stream_stash(s, p + cut, n - cut);
}

int cws_utf8_stream_feed(cws_utf8_stream *s, const void *buf, size_t len) {
    return stream_feed(CWS_KERNEL_AUTO, s, (const uint8_t *)buf, len);
}

int cws_utf8_stream_feed_with(cws_kernel k, cws_utf8_stream *s, const void *buf, size_t len) {
    return stream_feed(k, s, (const uint8_t *)buf, len);
}

int cws_utf8_stream_finish(const cws_utf8_stream *s) {
    return s->partial_len == 0 ? CWS_OK : CWS_ERR_INVALID_UTF8;
}

/* The key32 that cws__mask_* and the fused kernels take (the key rotated to start at key byte
 * `phase & 3`), made from one 4-byte load and a rotation. cws__rotated_key builds it from four
 * byte stores and a 4-byte reload, which the store buffer cannot forward: that stall was a third
 * of the fused decode's time on 64-byte messages. Byte 0 in memory is the low byte on a
 * little-endian machine, so moving on by r bytes is a right rotation there, a left one otherwise. */
static inline uint32_t key_at(const uint8_t *key, size_t phase) {
    const uint32_t k = cws__load32(key);
    const unsigned sh = (unsigned)(phase & 3) * 8u;
    if (sh == 0) return k;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (k << sh) | (k >> (32u - sh));
#else
    return (k >> sh) | (k << (32u - sh));
#endif
}

/* XORs the few (at most 3) bytes p[0..n) with the key from key byte `phase & 3` on. */
static void unmask_few(uint8_t *p, size_t n, const uint8_t *key, size_t phase) {
    for (size_t j = 0; j < n; j++) p[j] ^= key[(phase + j) & 3];
}

/* The fused decode follows stream_feed step by step; each part of buf is unmasked right before it
 * is looked at: the few bytes that complete the carried sequence, then the bulk (fused kernel),
 * then the cut tail. The cut is found on the last 3 bytes unmasked in a register. The few-byte
 * parts are XOR-ed byte by byte: a memcpy + mask call on a 3-byte stack copy cost more than the
 * fused kernel itself on 64 bytes (store-forwarding stalls on the byte reloads). */
static int unmask_stream(cws_kernel k, cws_utf8_stream *s, uint8_t *p, size_t n, const uint8_t *key,
                         uint32_t phase) {
    if (s->partial_len > 3) return CWS_ERR_INVALID_UTF8;
    if (n == 0) return CWS_OK;
    size_t i = 0;
    if (s->partial_len != 0) {
        uint8_t lo, hi;
        const size_t len = utf8_lead(s->partial[0], &lo, &hi);
        if (len <= s->partial_len) return stream_fail(s);
        const size_t need = len - s->partial_len, h = need < n ? need : n;
        unmask_few(p, h, key, phase);
        i = stream_complete(s, p, h);
        if (i == SIZE_MAX) return stream_fail(s);
        if (s->partial_len != 0) return CWS_OK;
    }
    size_t cut = n;
    if ((p[n - 1] ^ key[(phase + n - 1) & 3]) >= 0x80) { /* as in stream_feed */
        const size_t t = n - i < 3 ? n - i : 3;
        uint32_t tail = 0;
        for (size_t j = 1; j <= t; j++) tail |= (uint32_t)(p[n - j] ^ key[(phase + n - j) & 3]) << (8 * (j - 1));
        cut -= utf8_cut_back(tail, t);
    }
    if (cut > i &&
        unmask_utf8_run(utf8_resolve(k), p + i, cut - i, key_at(key, phase + i)) != CWS_OK)
        return stream_fail(s);
    if (cut == n) return CWS_OK;
    unmask_few(p + cut, n - cut, key, phase + cut);
    return stream_stash(s, p + cut, n - cut);
}

int cws_unmask_utf8_stream(cws_utf8_stream *s, void *buf, size_t len, const void *key, uint32_t phase) {
    return unmask_stream(CWS_KERNEL_AUTO, s, (uint8_t *)buf, len, (const uint8_t *)key, phase);
}

int cws_unmask_utf8_stream_with(cws_kernel k, cws_utf8_stream *s, void *buf, size_t len, const void *key,
                                uint32_t phase) {
    return unmask_stream(k, s, (uint8_t *)buf, len, (const uint8_t *)key, phase);
}
