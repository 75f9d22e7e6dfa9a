/*
 * kernels/cws_scalar.c — the portable kernels: REFERENCE (byte at a time, the oracle every other
 * kernel is tested against) and WORD (64-bit words: the shipping kernel where no SIMD kernel
 * exists, and the small-buffer fallback everywhere).
 */
#include "../cws_kernels.h"

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
 * Masking (RFC 6455 §5.3)
 * ---------------------------------------------------------------------------------------------- */

/* Byte at a time, the obvious code: RFC 6455 §5.3, transformed-octet-i = original-octet-i XOR
 * masking-key-octet-(i MOD 4). The oracle every other kernel is tested against. */
static void cws__mask_reference(uint8_t *p, size_t n, uint32_t key32) {
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
 * UTF-8 validation (RFC 3629 §4)
 * ---------------------------------------------------------------------------------------------- */

/* REFERENCE: the grammar table of cws_kernels.h, one sequence at a time. */
static int cws__utf8_reference(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t lo, hi;
        unsigned len = cws__utf8_lead(p[i], &lo, &hi);
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


static inline bool is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

int cws__utf8_word(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        while (n - i >= 16 && ((cws__load64(p + i) | cws__load64(p + i + 8)) & CWS__HIGH64) == 0) i += 16;
        if (n - i >= 8 && (cws__load64(p + i) & CWS__HIGH64) == 0) {
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

/* ------------------------------------------------------------------------------------------------
 * Fused unmask + validate: here simply one after the other.
 * ---------------------------------------------------------------------------------------------- */

static int cws__unmask_utf8_reference(uint8_t *p, size_t n, uint32_t key32) {
    cws__mask_reference(p, n, key32);
    return cws__utf8_reference(p, n);
}

static int cws__unmask_utf8_word(uint8_t *p, size_t n, uint32_t key32) {
    cws__mask_word(p, n, key32);
    return cws__utf8_word(p, n);
}

const cws__kernel_ops cws__kernel_reference = {CWS_KERNEL_REFERENCE, CWS_KERNEL_REFERENCE,
                                               cws__mask_reference, cws__utf8_reference,
                                               cws__unmask_utf8_reference};

const cws__kernel_ops cws__kernel_word = {CWS_KERNEL_WORD, CWS_KERNEL_WORD, cws__mask_word,
                                          cws__utf8_word, cws__unmask_utf8_word};
