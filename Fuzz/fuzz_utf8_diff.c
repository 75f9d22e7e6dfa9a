/*
 * fuzz_utf8_diff — every UTF-8 kernel against the reference validator (RFC 3629 §4).
 *
 * Input: byte 0 alignment (0-63); byte 1 bit 0: "make text" (turn the payload into valid UTF-8,
 * see fuzz_make_text, then byte 2 = where to corrupt it and byte 3 = the byte to put there, when
 * byte 2 != 0), bits 1-3: the number of split points (0-7); bytes 4-7 a masking key, byte 8 the
 * phase; then 7 little-endian 16-bit split positions (taken modulo len + 1, sorted); the rest is
 * the text.
 *
 * For every kernel (available or not: unavailable ones fall back to the reference):
 *   - one shot: cws_utf8_validate_with agrees with ref_utf8_valid;
 *   - streaming, cut at the split points: after each piece the verdict is the fail-fast verdict
 *     ref_utf8_prefix_ok of all bytes so far; finish agrees with the one-shot verdict;
 *   - fused: the masked text through cws_unmask_utf8_stream_with, same cuts, phase carried: same
 *     verdicts, and on success the buffer holds the unmasked text.
 * Each piece is an exactly sized heap copy at the chosen alignment.
 * Also: cws_utf8_validate with every kernel forced (cws_force_kernel), and the validate and fused
 * functions of the table the dispatcher would pick on a CPU with fewer features than this one.
 */
#include "fuzz_common.h"
#include "cws_kernels.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    const size_t align = fuzz_u8(&in) & 63;
    const uint8_t flags = fuzz_u8(&in);
    const uint8_t corrupt_at = fuzz_u8(&in), corrupt_with = fuzz_u8(&in);
    uint8_t key[4];
    for (int i = 0; i < 4; i++) key[i] = fuzz_u8(&in);
    const uint32_t phase = fuzz_u8(&in);
    const size_t nsplit = (flags >> 1) & 7;
    uint16_t raw_split[7];
    for (int i = 0; i < 7; i++) raw_split[i] = fuzz_u16(&in);

    uint8_t *text;
    size_t n;
    if (flags & 1) {
        text = (uint8_t *)malloc(4 * (in.n / 3 + 1));
        FUZZ_ASSERT(text != NULL);
        n = fuzz_make_text(in.p, in.n, text);
        FUZZ_ASSERT(ref_utf8_valid(text, n));
        if (corrupt_at && n) text[(corrupt_at * 131u) % n] = corrupt_with;
    } else {
        text = fuzz_dup(in.p, in.n);
        n = in.n;
    }
    const bool whole = ref_utf8_valid(text, n);

    size_t cuts[8];
    for (size_t i = 0; i < nsplit; i++) cuts[i] = raw_split[i] % (n + 1);
    qsort(cuts, nsplit, sizeof cuts[0], cmp_size);
    cuts[nsplit] = n;
    bool prefix_ok[8];
    for (size_t i = 0; i <= nsplit; i++) prefix_ok[i] = ref_utf8_prefix_ok(text, cuts[i]);

    uint8_t *masked = fuzz_dup(text, n);
    ref_mask(masked, n, key, phase & 3);
    uint8_t *block = (uint8_t *)malloc(align + n ? align + n : 1); /* buf ends at the block end */
    FUZZ_ASSERT(block != NULL);

    FUZZ_ASSERT(cws_utf8_kernel_available(cws_utf8_kernel_selected()));
    FUZZ_ASSERT(cws_utf8_kernel_available(CWS_KERNEL_AUTO) && cws_utf8_kernel_available(CWS_KERNEL_REFERENCE) && cws_utf8_kernel_available(CWS_KERNEL_WORD));
    for (size_t k = 0; k < FUZZ_NKERNELS; k++) {
        const cws_kernel kern = fuzz_kernels[k];
        FUZZ_ASSERT(cws_kernel_name(kern) != NULL);
        uint8_t *buf = block + align;
        if (n) memcpy(buf, text, n);
        FUZZ_ASSERT((cws_utf8_validate_with(kern, buf, n) == CWS_OK) == whole);
        if (kern == CWS_KERNEL_AUTO) FUZZ_ASSERT((cws_utf8_validate(buf, n) == CWS_OK) == whole);

        /* streaming */
        cws_utf8_stream s;
        cws_utf8_stream_init(&s);
        size_t from = 0;
        bool failed = false;
        for (size_t i = 0; i <= nsplit; i++) {
            uint8_t *piece = fuzz_dup(text + from, cuts[i] - from);
            int st = kern == CWS_KERNEL_AUTO ? cws_utf8_stream_feed(&s, piece, cuts[i] - from)
                                             : cws_utf8_stream_feed_with(kern, &s, piece, cuts[i] - from);
            free(piece);
            /* fail fast: an error exactly when no continuation could make the bytes so far valid;
             * once failed, the stream stays failed */
            FUZZ_ASSERT((st == CWS_OK) == (!failed && prefix_ok[i]));
            if (st != CWS_OK) failed = true;
            from = cuts[i];
        }
        FUZZ_ASSERT((cws_utf8_stream_finish(&s) == CWS_OK) == (!failed && whole));

        /* fused unmask + validate */
        cws_utf8_stream_init(&s);
        from = 0;
        failed = false;
        uint8_t *out = fuzz_dup(masked, n);
        for (size_t i = 0; i <= nsplit && !failed; i++) {
            size_t m = cuts[i] - from;
            uint8_t *piece = fuzz_dup(masked + from, m);
            uint32_t ph = (uint32_t)((phase + from) & 3);
            int st = kern == CWS_KERNEL_AUTO ? cws_unmask_utf8_stream(&s, piece, m, key, ph)
                                             : cws_unmask_utf8_stream_with(kern, &s, piece, m, key, ph);
            FUZZ_ASSERT((st == CWS_OK) == prefix_ok[i]);
            if (st == CWS_OK) FUZZ_ASSERT(m == 0 || memcmp(piece, text + from, m) == 0);
            else failed = true;
            if (m) memcpy(out + from, piece, m);
            free(piece);
            from = cuts[i];
        }
        if (!failed) {
            FUZZ_ASSERT(n == 0 || memcmp(out, text, n) == 0);
            FUZZ_ASSERT((cws_utf8_stream_finish(&s) == CWS_OK) == whole);
        }
        free(out);
    }
    uint8_t *buf = block + align;
    for (size_t k = 0; k < FUZZ_NKERNELS; k++) {
        const cws_kernel kern = fuzz_kernels[k];
        const bool ok = cws_mask_kernel_available(kern) && cws_utf8_kernel_available(kern);
        FUZZ_ASSERT((cws_force_kernel(kern) == CWS_OK) == ok);
        if (n) memcpy(buf, text, n);
        FUZZ_ASSERT((cws_utf8_validate(buf, n) == CWS_OK) == whole);
    }
    FUZZ_ASSERT(cws_force_kernel(CWS_KERNEL_AUTO) == CWS_OK);
    const uint32_t have = cws__cpu_features();
    const uint32_t subsets[3] = {0, have & ~(uint32_t)CWS__CPU_AVX2, have};
    for (size_t i = 0; i < 3; i++) {
        const cws__kernel_ops *t = cws__kernels_for_cpu(subsets[i]);
        if (n) memcpy(buf, text, n);
        FUZZ_ASSERT((t->validate(buf, n) == CWS_OK) == whole);
        if (n) memcpy(buf, masked, n);
        const int st = t->unmask_validate(buf, n, cws__key_at(key, phase));
        FUZZ_ASSERT((st == CWS_OK) == whole);
        if (st == CWS_OK) FUZZ_ASSERT(n == 0 || memcmp(buf, text, n) == 0);
    }
    free(block);
    free(masked);
    free(text);
    return 0;
}
