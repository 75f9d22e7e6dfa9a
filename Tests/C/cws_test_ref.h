/*
 * cws_test_ref.h — slow, obvious reference code shared by the C tests (Tests/C) and the fuzz
 * targets (Fuzz/). Written independently of the engine so that it can serve as an oracle: it
 * decodes code points instead of using a lead-byte table, and it never calls into libcws.
 *
 * Header-only (static functions) so each program gets its own copy and nothing here is exported.
 */
#ifndef CWS_TEST_REF_H
#define CWS_TEST_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- UTF-8 (RFC 3629 §3, §4) ------------------------------------------------------------------
 * Decodes one code point at p[0..n). Returns its length (1-4) and the value in *cp, 0 when p[0]
 * does not start a complete, well-formed sequence, and -k (k = 1..3) when p[0..n) is a proper,
 * still-valid PREFIX of a k+1..4 byte sequence cut by the end of the input.
 * The rules, stated as values rather than byte ranges:
 *   length 1: 0x00-0x7F
 *   length 2: 0x80-0x7FF          (smaller values would be overlong)
 *   length 3: 0x800-0xFFFF, except the surrogates 0xD800-0xDFFF
 *   length 4: 0x10000-0x10FFFF */
static inline int ref_utf8_decode(const uint8_t *p, size_t n, uint32_t *cp) {
    uint8_t b = p[0];
    int len;
    uint32_t v, min;
    if (b < 0x80) { *cp = b; return 1; }
    if ((b & 0xE0) == 0xC0) { len = 2; v = b & 0x1F; min = 0x80; }
    else if ((b & 0xF0) == 0xE0) { len = 3; v = b & 0x0F; min = 0x800; }
    else if ((b & 0xF8) == 0xF0) { len = 4; v = b & 0x07; min = 0x10000; }
    else return 0; /* a continuation byte or F8-FF */
    int have = (int)(n < (size_t)len ? n : (size_t)len);
    for (int i = 1; i < have; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (have < len) {
        /* A cut sequence is still a valid prefix only if SOME completion is valid: the value range
         * reachable with the missing bits must meet [min, 0x10FFFF] minus the surrogates. */
        int missing = len - have;
        uint32_t lo = v << (6 * missing), hi = lo | ((1u << (6 * missing)) - 1);
        if (hi < min || lo > 0x10FFFF) return 0;
        /* Completions that avoid D800-DFFF exist unless [lo,hi] lies inside it. */
        if (lo >= 0xD800 && hi <= 0xDFFF) return 0;
        return -(int)have;
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

/* True when p[0..n) is a complete, valid UTF-8 text. */
static inline bool ref_utf8_valid(const void *buf, size_t n) {
    const uint8_t *p = (const uint8_t *)buf;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int r = ref_utf8_decode(p + i, n - i, &cp);
        if (r <= 0) return false;
        i += (size_t)r;
    }
    return true;
}

/* True when p[0..n) can still be continued into a valid text: valid, except that the end may cut
 * one sequence that some continuation would complete. This is the fail-fast verdict a streaming
 * validator must reach after seeing exactly these bytes. */
static inline bool ref_utf8_prefix_ok(const void *buf, size_t n) {
    const uint8_t *p = (const uint8_t *)buf;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int r = ref_utf8_decode(p + i, n - i, &cp);
        if (r == 0) return false;
        if (r < 0) return i + (size_t)(-r) == n; /* the cut sequence must be the last thing */
        i += (size_t)r;
    }
    return true;
}

/* ---- masking (RFC 6455 §5.3): octet i of the payload is XOR-ed with key octet (phase+i) mod 4 -- */
static inline void ref_mask(void *buf, size_t n, const uint8_t key[4], uint32_t phase) {
    uint8_t *p = (uint8_t *)buf;
    for (size_t i = 0; i < n; i++) p[i] ^= key[(phase + i) % 4];
}

/* ---- close codes (RFC 6455 §7.4.1/§7.4.2): what may be sent on the wire --------------------- */
static inline bool ref_close_code_ok(unsigned code) {
    if (code < 1000) return false;
    if (code <= 1003) return true;
    if (code >= 1007 && code <= 1011) return true;
    return code >= 3000 && code <= 4999;
}

/* ---- base64 (RFC 4648 §4): a strict decoder, independent of the engine's encoder -------------
 * Decodes s[0..n) (n a multiple of 4, '=' padding only at the end) into out; returns the number of
 * bytes, or -1 when the text is not canonical base64 (bad character, bad padding, or non-zero
 * padding bits: RFC 4648 §3.5). */
static inline int ref_b64_val(uint8_t c) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; i++)
        if ((uint8_t)alphabet[i] == c) return i;
    return -1;
}

static inline long ref_b64_decode(const void *src, size_t n, uint8_t *out) {
    const uint8_t *s = (const uint8_t *)src;
    if (n % 4) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int pad = 0;
        int v[4];
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=') {
                /* '=' only in the last group, only in positions 2-3, and only at the end. */
                if (i + 4 != n || j < 2) return -1;
                pad++;
                v[j] = 0;
            } else {
                if (pad) return -1;
                v[j] = ref_b64_val(s[i + j]);
                if (v[j] < 0) return -1;
            }
        }
        uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) |
                     (uint32_t)v[3];
        out[o++] = (uint8_t)(w >> 16);
        if (pad < 2) out[o++] = (uint8_t)(w >> 8);
        if (pad < 1) out[o++] = (uint8_t)w;
        /* canonical: the bits that fall in the padding must be zero */
        if (pad == 2 && (w & 0xFFFF)) return -1;
        if (pad == 1 && (w & 0xFF)) return -1;
    }
    return (long)o;
}

/* ---- a small deterministic PRNG (xorshift64*) for tests and chunking ------------------------- */
static inline uint64_t ref_rand(uint64_t *s) {
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}


/* ---- fuzz_parse input header ----------------------------------------------------------------
 * The first CWS_FUZZ_PARSE_HEADER bytes of a fuzz_parse input choose the engine configuration and
 * the chunking; the rest is the frame stream. Kept here so the seed writer in Tests/C and the fuzz
 * target agree on it.
 *   byte 0  bit 0     role: 0 server, 1 client
 *           bits 1-3  allowed RSV bits: bit 1 -> RSV1 (0x40), bit 2 -> RSV2, bit 3 -> RSV3
 *           bit 4     allocator without realloc (exercises alloc + copy + free)
 *           bits 5-7  chunking: the largest chunk, drawn by the PRNG (see ref_fuzz_chunk_max)
 *   byte 1  bits 0-3  max_message_size = ref_fuzz_limits[index]
 *           bits 4-7  max_frame_size   = ref_fuzz_limits[index]
 *   byte 2  PRNG seed for the chunk sizes; also the failing allocation (byte 2 % 6), and the
 *           reassembly handover (cws_config.reassembly): bit 6 in the whole run, bit 7 in the
 *           chunked and failing runs */
#define CWS_FUZZ_PARSE_HEADER 3
static const uint64_t ref_fuzz_limits[16] = {
    1, 2, 3, 4, 5, 8, 16, 125, 126, 127, 1000, 4096, 65535, 65536, 1u << 20, UINT64_MAX};
static const size_t ref_fuzz_chunk_max[8] = {1, 3, 16, 64, 150, 512, 4096, 65536};

/* The index of `limit` in ref_fuzz_limits, or -1. */
static inline int ref_fuzz_limit_index(uint64_t limit) {
    for (int i = 0; i < 16; i++)
        if (ref_fuzz_limits[i] == limit) return i;
    return -1;
}

#endif /* CWS_TEST_REF_H */
