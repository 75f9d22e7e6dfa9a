/*
 * cws_testing.h — test-only API of the Sockets C protocol engine. NOT installed (`make install`
 * ships cws.h alone): the unit tests, fuzzers and benchmarks use it to run one named SIMD kernel,
 * to force the dispatcher's choice, and to check the accept key's building blocks.
 *
 * Everything here is exported with the cws_ prefix like the rest of the library, but is not part
 * of the API a user builds on; it may change with any release.
 *
 * C11; includes only cws.h.
 */
#ifndef CWS_TESTING_H
#define CWS_TESTING_H

#include "cws.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------
 * SIMD kernels and their dispatch
 *
 * Masking and UTF-8 validation each have a byte-wise reference, a portable 64-bit word version and
 * SIMD versions (one source file per instruction set). The plain functions (cws_mask,
 * cws_utf8_validate, ...) use the fastest available kernel for the length at hand, from a table
 * chosen once from the CPU's features. The *_with variants run one named kernel.
 * ---------------------------------------------------------------------------------------------- */
typedef enum cws_kernel {
    CWS_KERNEL_AUTO = 0,      /* the dispatched choice */
    CWS_KERNEL_REFERENCE = 1, /* byte at a time: the obvious code the others are tested against */
    CWS_KERNEL_WORD = 2,      /* portable 64-bit words */
    CWS_KERNEL_SSE = 3,       /* x86-64: SSE2 for masking, SSSE3+SSE4.1 for UTF-8 */
    CWS_KERNEL_AVX2 = 4,      /* x86-64 with AVX2 */
    CWS_KERNEL_NEON = 5       /* arm64 */
} cws_kernel;

/* True when kernel `k` can run on this CPU for masking / for UTF-8 validation. AUTO, REFERENCE
 * and WORD are always available. */
bool cws_mask_kernel_available(cws_kernel k);
bool cws_utf8_kernel_available(cws_kernel k);

/* Static name of a kernel ("reference", "word", "sse", "avx2", "neon", "auto"). */
const char *cws_kernel_name(cws_kernel k);

/* The kernel the dispatcher uses for masking / UTF-8 on a large buffer (the CPU's best, or the
 * one set with cws_force_kernel). */
cws_kernel cws_mask_kernel_selected(void);
cws_kernel cws_utf8_kernel_selected(void);

/* Makes the dispatcher use kernel `k` for masking and UTF-8 from now on, process-wide, in every
 * entry point (cws_mask, cws_utf8_*, cws_unmask_utf8_stream, cws_conn_parse); the size thresholds
 * below which the entry points run inline word/vector code stay as they are. CWS_KERNEL_AUTO
 * goes back to the CPU's choice. CWS_ERR_INVALID_ARGUMENT (nothing changed) when `k` is unknown or
 * not available on this CPU for both masking and UTF-8. Meant for a test's main() before it
 * starts threads: calls racing with it see either table, both correct. */
CWS_NODISCARD int cws_force_kernel(cws_kernel k);

/* cws_mask with one named kernel, and no zero-key shortcut. AUTO is cws_mask's choice by length
 * (still without the shortcut); an unavailable or
 * unknown kernel falls back to the reference. */
uint32_t cws_mask_with(cws_kernel k, void *buf, size_t len, const void *key, uint32_t phase);

/* cws_utf8_validate, cws_utf8_stream_feed and cws_unmask_utf8_stream with one named kernel (same
 * fallback). */
CWS_NODISCARD int cws_utf8_validate_with(cws_kernel k, const void *buf, size_t len);
CWS_NODISCARD int cws_utf8_stream_feed_with(cws_kernel k, cws_utf8_stream *s, const void *buf,
                                            size_t len);
CWS_NODISCARD int cws_unmask_utf8_stream_with(cws_kernel k, cws_utf8_stream *s, void *buf,
                                              size_t len, const void *key, uint32_t phase);

/* ------------------------------------------------------------------------------------------------
 * Accept-key building blocks (cws_handshake_accept uses them)
 * ---------------------------------------------------------------------------------------------- */

/* SHA-1 of data[0..len) into out[0..20). */
void cws_sha1(const void *data, size_t len, uint8_t out[20]);

/* Standard base64 (with padding) of data[0..len) into out; out needs 4 * ((len + 2) / 3) bytes.
 * Returns the number of characters written (no NUL). */
size_t cws_base64_encode(const void *data, size_t len, char *out);

#ifdef __cplusplus
}
#endif

#endif /* CWS_TESTING_H */
