/*
 * cws_utf8.c — UTF-8 validation (RFC 3629 §4; RFC 6455 §8.1 requires text messages and close
 * reasons to be valid UTF-8, and §8.1 says to fail the connection as soon as they are not).
 *
 * Measured (AMD EPYC Zen 3, 2 shared and busy cores, clang 21 -O2, no -march): each kernel on a
 * fixed text in a tight loop, best of 9 interleaved rounds of >= 64 MB each, against memcpy of the
 * same size (to another buffer) in the same run; "ratio GB/s". Run to run, cells move by up to
 * +-30% on this machine. "fused" = one pass (load, XOR key, store, validate the register);
 * "mask+val" = cws__mask_* then the validator; unmask_stream = cws_unmask_utf8_stream (AUTO,
 * one piece, including the stream bookkeeping). The harness #includes this file to reach the
 * static kernels:
 *   clang -std=c11 -O2 -Iinclude -ISources/CWebSocket bench.c Sources/CWebSocket/cws_cpu.c \
 *         Sources/CWebSocket/cws_mask.c -o bench && ./bench 64e6
 *
 *  ASCII text:
 *   bytes                   16          32          64        1024       65536     1048576
 *   memcpy           1.00x 2.8   1.00x 5.6  1.00x 17.1  1.00x 89.2  1.00x 47.0  1.00x 30.4
 *   reference        0.29x 0.8   0.16x 0.9   0.05x 0.8   0.01x 0.9   0.02x 1.0   0.03x 1.0
 *   word             1.20x 3.4   0.98x 5.5  0.76x 13.0  0.33x 29.4  0.64x 30.0  0.89x 27.1
 *   sse              0.49x 1.4   0.60x 3.4  0.93x 15.9  0.59x 52.4  1.34x 63.1  1.73x 52.6
 *   avx2             0.26x 0.7   0.52x 3.0  0.84x 14.3  1.05x 94.1  2.05x 96.2  2.37x 71.9
 *   auto             0.86x 2.4  1.88x 10.6   0.32x 5.5  0.87x 78.0  2.03x 95.5  2.39x 72.8
 *   fused sse        0.26x 0.7   0.25x 1.4  0.69x 11.8  0.38x 33.8  0.81x 38.3  1.20x 36.6
 *   mask+val sse     0.40x 1.1   0.27x 1.5   0.32x 5.5  0.29x 25.6  0.57x 27.0  0.82x 25.0
 *   fused avx2       0.20x 0.6   0.23x 1.3  0.78x 13.3  0.76x 68.2  1.61x 75.7  1.52x 46.3
 *   mask+val avx2    0.25x 0.7   0.40x 2.3   0.30x 5.2  0.51x 45.3  0.92x 43.2  1.00x 30.3
 *   unmask_stream    0.30x 0.8   0.32x 1.8   0.24x 4.1  0.52x 46.4  1.59x 74.9  1.64x 49.9
 *  2-4 byte characters only (no ASCII):
 *   bytes                   16          32          64        1024       65536     1048576
 *   memcpy           1.00x 2.5   1.00x 8.5  1.00x 16.9  1.00x 47.3  1.00x 45.2  1.00x 19.5
 *   reference        0.32x 0.8   0.09x 0.8   0.06x 1.0   0.01x 0.6   0.01x 0.3   0.01x 0.2
 *   word             0.36x 0.9   0.12x 1.0   0.06x 1.1   0.02x 1.2   0.02x 0.9   0.01x 0.3
 *   sse              0.34x 0.8   0.20x 1.7   0.33x 5.6   0.08x 3.8   0.11x 5.1   0.27x 5.2
 *   avx2             0.21x 0.5   0.27x 2.3   0.54x 9.1  0.26x 12.2  0.30x 13.7  0.70x 13.6
 *   auto             0.34x 0.8   0.20x 1.7   0.43x 7.2   0.20x 9.4  0.30x 13.5  0.68x 13.3
 *  ASCII-heavy: 1 in 100 characters is 2-3 bytes:
 *   bytes                   16          32          64        1024       65536     1048576
 *   memcpy           1.00x 2.9   1.00x 5.7  1.00x 17.3  1.00x 50.5  1.00x 45.6  1.00x 29.6
 *   reference        0.27x 0.8   0.15x 0.9   0.05x 0.8   0.01x 0.5   0.02x 0.8   0.04x 1.2
 *   word             0.96x 2.8   0.93x 5.3  0.76x 13.2   0.09x 4.4   0.14x 6.3   0.13x 3.8
 *   sse              0.49x 1.4   0.61x 3.5  0.90x 15.6   0.11x 5.6   0.18x 8.2   0.29x 8.5
 *   avx2             0.25x 0.7   0.49x 2.8  0.81x 14.0  0.31x 15.7  0.40x 18.0  0.61x 18.2
 *   auto             0.98x 2.9  1.87x 10.6   0.32x 5.6  0.30x 15.1  0.39x 17.8  0.62x 18.3
 *   fused sse        0.24x 0.7   0.26x 1.4  0.65x 11.3   0.10x 5.0  0.25x 11.4   0.30x 8.9
 *   mask+val sse     0.36x 1.1   0.28x 1.6   0.31x 5.3   0.09x 4.6  0.22x 10.3   0.24x 7.2
 *   fused avx2       0.18x 0.5   0.23x 1.3  0.77x 13.3  0.29x 14.8  0.37x 17.1  0.53x 15.7
 *   mask+val avx2    0.25x 0.7   0.37x 2.1   0.29x 5.1   0.14x 6.9  0.32x 14.8  0.48x 14.1
 *   unmask_stream    0.28x 0.8   0.36x 2.1   0.23x 4.0  0.23x 11.4  0.37x 16.8  0.59x 17.6
 *  ASCII-heavy: 1 in 1000 characters is 2-3 bytes:
 *   bytes                   16          32          64        1024       65536     1048576
 *   memcpy           1.00x 3.7   1.00x 5.8  1.00x 11.8  1.00x 87.5  1.00x 44.5  1.00x 26.2
 *   reference        0.32x 1.2   0.12x 0.7   0.06x 0.7   0.01x 1.3   0.02x 1.0   0.02x 0.5
 *   word             1.18x 4.3   0.69x 4.0   0.59x 7.0  0.32x 28.3  0.31x 13.8  0.49x 12.7
 *   sse              0.56x 2.0   0.44x 2.5   0.74x 8.7  0.59x 51.6  0.80x 35.6  0.78x 20.6
 *   avx2             0.29x 1.1   0.41x 2.4   0.63x 7.5  1.07x 94.0  1.34x 59.5  1.41x 37.0
 *   auto             0.97x 3.6   0.94x 5.5   0.38x 4.5  0.90x 78.5  1.40x 62.5  1.45x 37.9
 *   fused sse        0.28x 1.0   0.28x 1.6   0.58x 6.8  0.37x 32.7  0.60x 26.7  0.61x 15.9
 *   mask+val sse     0.41x 1.5   0.28x 1.7   0.36x 4.2  0.29x 25.5  0.32x 14.2  0.49x 12.9
 *   fused avx2       0.22x 0.8   0.27x 1.6   0.57x 6.7  0.75x 65.6  1.11x 49.6  1.20x 31.5
 *   mask+val avx2    0.27x 1.0   0.29x 1.7   0.34x 4.0  0.51x 44.6  0.80x 35.8  0.80x 20.9
 *   unmask_stream    0.34x 1.2   0.24x 1.4   0.25x 3.0  0.52x 45.4  1.11x 49.6  1.20x 31.4
 *
 * Against the targets:
 *   - ASCII validation >= 1.5x memcpy: met from 64 KiB on (AVX2 2.05x at 64 KiB, 2.37x at 1 MiB),
 *     missed at 1 KiB (1.05x, AUTO 0.87x) and 64 B (AVX2 0.84x, AUTO 0.32x). A 1 KiB memcpy stays
 *     in L1 and runs near the core's store bandwidth; validation reads at most twice as fast and
 *     pays a fixed cost per call (tables, the final reduction, the dispatch) that 1 KiB does not
 *     amortise. At 64 B AUTO also pays ~3-5 ns for the out-of-line cws__cpu_features() call:
 *     replacing it with a direct call to the AVX2 kernel gave 5.4 ns instead of 8-13 ns.
 *   - Mixed 2-4 byte text >= 10 GB/s: met from 1 KiB on with AVX2 (12-14 GB/s); 9.1 GB/s at 64 B.
 *     SSE reaches 5-7.5 GB/s. The full check is bound by Zen 3's two shuffle pipes: per 32 bytes
 *     vperm2i128, 3 vpalignr, 3 vpshufb and 2 shifts.
 *   - Fused decode of large ASCII-heavy text >= 1x memcpy: met for ASCII (1.52x at 1 MiB) and for
 *     1 non-ASCII character in 1000 (1.20x); missed for 1 in 100 (0.53x, ~16 GB/s): then almost
 *     every 128-byte block needs the full check, which runs at the speed of the mixed case.
 *   - Fused one pass against mask-then-validate: one pass wins from 64 bytes on in every row
 *     (e.g. ASCII 1 MiB 46.3 vs 30.3 GB/s, 1-in-100 1 MiB 15.7 vs 14.1); below 64 bytes both end in
 *     the padded last block and mask-then-validate is a little faster (0.7 vs 0.6 GB/s at 16 B),
 *     so UNMASK_FUSED_MIN is 64.
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
 * mispredictions cost more than the checks it skips. 256-byte steps were slower on text with one
 * in 1000: 24-26 GB/s at 1 MiB against 35-46 GB/s with 128-byte steps (same run, same text). */
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
