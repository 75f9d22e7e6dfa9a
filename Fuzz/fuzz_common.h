/*
 * fuzz_common.h — shared helpers of the libFuzzer targets in Fuzz/.
 *
 * An invariant that does not hold is a crash (abort), so libFuzzer saves the input; sanitizer
 * reports (ASan, UBSan with -fno-sanitize-recover, LSan) end the run the same way.
 */
#ifndef CWS_FUZZ_COMMON_H
#define CWS_FUZZ_COMMON_H

#include "cws_testing.h"
#include "cws_test_ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FUZZ_FAIL(why)                                                                             \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, why);                                   \
        abort();                                                                                   \
    } while (0)

/* Every kernel value, the dispatcher (AUTO) and one outside the enum (which must fall back to the
 * reference): unavailable kernels are run too, since the API promises a fallback for them. */
static const cws_kernel fuzz_kernels[] = {CWS_KERNEL_AUTO, CWS_KERNEL_REFERENCE, CWS_KERNEL_WORD,
                                          CWS_KERNEL_SSE,  CWS_KERNEL_AVX2,      CWS_KERNEL_NEON,
                                          (cws_kernel)7};
#define FUZZ_NKERNELS (sizeof fuzz_kernels / sizeof fuzz_kernels[0])

/* A cursor over the fuzzer's input: fixed-size fields first, the rest is payload. Reading past
 * the end yields zeros, so every input is usable. */
typedef struct fuzz_in {
    const uint8_t *p;
    size_t n;
} fuzz_in;

static inline uint8_t fuzz_u8(fuzz_in *in) {
    if (in->n == 0) return 0;
    in->n--;
    return *in->p++;
}

static inline uint16_t fuzz_u16(fuzz_in *in) {
    uint16_t a = fuzz_u8(in);
    return (uint16_t)(a | (fuzz_u8(in) << 8));
}

static inline uint64_t fuzz_u64(fuzz_in *in) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)fuzz_u8(in) << (8 * i);
    return v;
}

/* An exactly sized heap copy, so ASan reports any access past its end. */
static inline uint8_t *fuzz_dup(const void *p, size_t n) {
    uint8_t *d = (uint8_t *)malloc(n ? n : 1);
    FUZZ_ASSERT(d != NULL);
    if (n) memcpy(d, p, n);
    return d;
}

/* Encodes code point cp (valid scalar value) as UTF-8 into out; returns its length. */
static inline size_t fuzz_utf8_encode(uint32_t cp, uint8_t *out) {
    if (cp < 0x80) { out[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { out[0] = (uint8_t)(0xC0 | cp >> 6); out[1] = (uint8_t)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Turns raw bytes into valid UTF-8: every 3 input bytes pick one scalar value, biased towards
 * ASCII and the length boundaries so all sequence lengths are common. Writes at most 4 bytes per
 * 3 input bytes into out (capacity 4 * (n / 3 + 1)); returns the length. */
static inline size_t fuzz_make_text(const uint8_t *in, size_t n, uint8_t *out) {
    size_t o = 0;
    for (size_t i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] | ((uint32_t)in[i + 1] << 8) | ((uint32_t)in[i + 2] << 16);
        uint32_t cp;
        switch (v & 3) {
        case 0: cp = (v >> 2) & 0x7F; break;                      /* ASCII */
        case 1: cp = 0x80 + ((v >> 2) % 0x780); break;            /* 2 bytes */
        case 2: cp = 0x800 + ((v >> 2) % 0xF800); break;          /* 3 bytes */
        default: cp = 0x10000 + ((v >> 2) % 0x100000); break;     /* 4 bytes */
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp -= 0x800; /* out of the surrogates */
        o += fuzz_utf8_encode(cp, out + o);
    }
    return o;
}

#endif /* CWS_FUZZ_COMMON_H */
