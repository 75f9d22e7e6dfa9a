/*
 * fuzz_mask_diff — every masking kernel against the byte-at-a-time reference (RFC 6455 §5.3).
 *
 * Input: byte 0 alignment (0-63) of the buffer, bytes 1-4 the masking key, byte 5 the phase (any
 * value: only phase & 3 counts), byte 6 where to split the payload for a two-call run; the rest is
 * the payload. For each kernel (available or not: unavailable ones must fall back), for cws_mask
 * and for a two-call run with the phase carried: the result equals ref_mask, the returned phase is
 * (phase + len) & 3, and the bytes before the buffer (canaries) are untouched. The buffer ends
 * exactly at the end of its heap block, so ASan sees any access past it.
 * The same holds for cws_mask with every kernel forced (cws_force_kernel), and for the table the
 * dispatcher would pick on a CPU with fewer features than this one (e.g. x86-64 without SSSE3).
 */
#include "fuzz_common.h"
#include "cws_kernels.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    const size_t align = fuzz_u8(&in) & 63;
    uint8_t key[4];
    for (int i = 0; i < 4; i++) key[i] = fuzz_u8(&in);
    const uint32_t phase = fuzz_u8(&in);
    const uint8_t split = fuzz_u8(&in);
    const uint8_t *payload = in.p;
    const size_t n = in.n;

    uint8_t *want = fuzz_dup(payload, n);
    ref_mask(want, n, key, phase & 3);
    const uint32_t next = (phase + (uint32_t)n) & 3;
    uint8_t *block = (uint8_t *)malloc(align + n ? align + n : 1); /* buf ends at the block end */
    FUZZ_ASSERT(block != NULL);
    uint8_t *buf = block + align;

    /* the dispatcher's choice is an available kernel; every kernel value has a name */
    FUZZ_ASSERT(cws_mask_kernel_available(cws_mask_kernel_selected()));
    FUZZ_ASSERT(cws_mask_kernel_available(CWS_KERNEL_AUTO) && cws_mask_kernel_available(CWS_KERNEL_REFERENCE) && cws_mask_kernel_available(CWS_KERNEL_WORD));
    for (size_t k = 0; k <= FUZZ_NKERNELS; k++) {
        /* k == FUZZ_NKERNELS: cws_mask, the dispatcher with its zero-key shortcut */
        const cws_kernel kern = k < FUZZ_NKERNELS ? fuzz_kernels[k] : CWS_KERNEL_AUTO;
        FUZZ_ASSERT(cws_kernel_name(kern) != NULL);
        memset(block, 0xC5, align);
        if (n) memcpy(buf, payload, n);
        uint32_t got = k < FUZZ_NKERNELS ? cws_mask_with(kern, buf, n, key, phase)
                                         : cws_mask(buf, n, key, phase);
        FUZZ_ASSERT(got == next);
        FUZZ_ASSERT(n == 0 || memcmp(buf, want, n) == 0);
        for (size_t i = 0; i < align; i++) FUZZ_ASSERT(block[i] == 0xC5);

        /* the same payload in two calls, as when it arrives in two reads */
        const size_t cut = n ? (size_t)split * n / 255 : 0;
        if (n) memcpy(buf, payload, n);
        uint32_t ph = cws_mask_with(kern, buf, cut, key, phase);
        FUZZ_ASSERT(ph == ((phase + (uint32_t)cut) & 3));
        /* the second part in its own exactly sized block, to catch over-reads at a cut too */
        uint8_t *second = fuzz_dup(buf + cut, n - cut);
        FUZZ_ASSERT(cws_mask_with(kern, second, n - cut, key, ph) == next);
        FUZZ_ASSERT(n == 0 || (memcmp(buf, want, cut) == 0 && memcmp(second, want + cut, n - cut) == 0));
        /* masking is its own inverse */
        FUZZ_ASSERT(cws_mask_with(kern, second, n - cut, key, ph) == next);
        FUZZ_ASSERT(memcmp(second, payload + cut, n - cut) == 0);
        free(second);
    }
    /* cws_mask behind every forced kernel: available ones are accepted, the rest refused */
    for (size_t k = 0; k < FUZZ_NKERNELS; k++) {
        const cws_kernel kern = fuzz_kernels[k];
        const bool ok = cws_mask_kernel_available(kern) && cws_utf8_kernel_available(kern);
        FUZZ_ASSERT((cws_force_kernel(kern) == CWS_OK) == ok);
        if (n) memcpy(buf, payload, n);
        FUZZ_ASSERT(cws_mask(buf, n, key, phase) == next);
        FUZZ_ASSERT(n == 0 || memcmp(buf, want, n) == 0);
    }
    FUZZ_ASSERT(cws_force_kernel(CWS_KERNEL_AUTO) == CWS_OK);
    /* the tables of CPUs with a subset of this one's features */
    const uint32_t have = cws__cpu_features();
    const uint32_t subsets[3] = {0, have & ~(uint32_t)CWS__CPU_AVX2, have};
    for (size_t i = 0; i < 3 && n; i++) {
        memcpy(buf, payload, n);
        cws__kernels_for_cpu(subsets[i])->mask(buf, n, cws__key_at(key, phase));
        FUZZ_ASSERT(memcmp(buf, want, n) == 0);
    }
    free(block);
    free(want);
    return 0;
}
