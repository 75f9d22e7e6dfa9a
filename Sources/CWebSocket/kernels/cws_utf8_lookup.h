/*
 * kernels/cws_utf8_lookup.h — the Keiser-Lemire UTF-8 lookup tables and helpers shared by the SIMD
 * kernels (cws_x86_sse.c, cws_x86_avx2.c, cws_arm_neon.c). Never installed.
 */
#ifndef CWS_UTF8_LOOKUP_H
#define CWS_UTF8_LOOKUP_H

#include "../cws_kernels.h"

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
#endif /* CWS_X86_64 */

#endif /* CWS_UTF8_LOOKUP_H */
