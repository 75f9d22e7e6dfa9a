/*
 * test_utf8.c — UTF-8 kernels against the reference on guard pages; streaming at every split, fused unmask.
 */
#include "test_harness.h"

static void test_utf8_kernels(void) {
    guarded g = guarded_new(1);
    uint64_t seed = 7;
    uint8_t text[512];
    static const uint8_t bad[] = {0x80, 0xBF, 0xC0, 0xC1, 0xF5, 0xFF, 0xE0, 0xED, 0xF0, 0xF4, 0xA0, 0x90, 0x00, 0x7F};
    size_t valid_seen = 0, invalid_seen = 0;
    for (size_t n = 0; n <= 300; n++) {
        for (size_t a = 0; a < 64; a++) {
            for (int variant = 0; variant < 3; variant++) {
                random_text(&seed, text, n);
                if (variant == 1 && n) text[ref_rand(&seed) % n] = bad[ref_rand(&seed) % sizeof bad];
                if (variant == 2 && n) { /* cut a multi-byte sequence at the end */
                    uint8_t lead[] = {0xC3, 0xE2, 0xF0};
                    text[n - 1] = lead[ref_rand(&seed) % 3];
                }
                bool want = ref_utf8_valid(text, n);
                if (want) valid_seen++; else invalid_seen++;
                for (size_t k = 0; k < NKERNELS; k++) {
                    cws_kernel kern = all_kernels[k];
                    if (!cws_utf8_kernel_available(kern)) continue;
                    context("utf8 kernel %s n=%zu a=%zu variant %d", cws_kernel_name(kern), n, a, variant);
                    uint8_t *p = g.data + a;
                    memcpy(p, text, n);
                    CHECK((cws_utf8_validate_with(kern, p, n) == CWS_OK) == want);
                    uint8_t *q = guarded_end(&g) - n;
                    memcpy(q, text, n);
                    CHECK((cws_utf8_validate_with(kern, q, n) == CWS_OK) == want);
                }
                if (a == 0) CHECK((cws_utf8_validate(text, n) == CWS_OK) == want);
            }
        }
    }
    CHECK(valid_seen > 10000 && invalid_seen > 10000);
    /* An unknown kernel value runs the reference (cws.h) */
    CHECK(cws_utf8_validate_with((cws_kernel)99, "\xc3\x28", 2) == CWS_ERR_INVALID_UTF8);
    CHECK(cws_utf8_validate_with((cws_kernel)99, "\xc3\xa9", 2) == CWS_OK);
    CHECK(cws_utf8_validate(NULL, 0) == CWS_OK);
    /* RFC 3629 §7 examples and the classic rejections */
    static const struct { const char *s; size_t n; bool ok; } cases[] = {
        {"\x41\xE2\x89\xA2\xCE\x91\x2E", 7, true},             /* "A<NOT IDENTICAL TO><ALPHA>." */
        {"\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4", 9, true},     /* Korean "hangugeo" */
        {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", 9, true},     /* Japanese "nihongo" */
        {"\xEF\xBB\xBF\xF0\xA3\x8E\xB4", 7, true},             /* BOM + U+233B4 */
        {"\xC0\xAF", 2, false}, {"\xE0\x80\xAF", 3, false}, {"\xF0\x80\x80\xAF", 4, false},
        {"\xED\xA0\x80", 3, false}, {"\xED\xBF\xBF", 3, false}, {"\xF4\x90\x80\x80", 4, false},
        {"\xF8\x88\x80\x80\x80", 5, false}, {"\xFE", 1, false}, {"\x80", 1, false},
        {"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80\x65\x64\x69\x74\x65\x64", 20, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t k = 0; k < NKERNELS; k++) {
            if (!cws_utf8_kernel_available(all_kernels[k])) continue;
            context("RFC 3629 case %zu kernel %s", i, cws_kernel_name(all_kernels[k]));
            CHECK(ref_utf8_valid(cases[i].s, cases[i].n) == cases[i].ok);
            CHECK((cws_utf8_validate_with(all_kernels[k], cases[i].s, cases[i].n) == CWS_OK) == cases[i].ok);
        }
    guarded_free(&g);
}

/* Streaming UTF-8: at every split point, each kernel gives the one-shot verdict at finish and the
 * fail-fast verdict after each piece; the fused unmask+validate gives the same and unmasks. */
static void test_utf8_streaming(void) {
    uint64_t seed = 99;
    uint8_t text[200], masked[200], work[200];
    static const uint8_t bad[] = {0x80, 0xC0, 0xF5, 0xE0, 0xED, 0xF4, 0x90, 0xA0, 0xBF};
    for (int iter = 0; iter < 120; iter++) {
        size_t n = 1 + (size_t)(ref_rand(&seed) % (iter < 60 ? 12 : 200));
        random_text(&seed, text, n);
        if (iter % 3 == 1) text[ref_rand(&seed) % n] = bad[ref_rand(&seed) % sizeof bad];
        if (iter % 3 == 2) text[n - 1] = 0xF0;
        bool whole = ref_utf8_valid(text, n);
        uint8_t key[4] = {(uint8_t)iter, 0x5A, 0xC3, (uint8_t)(iter * 17)};
        uint32_t phase0 = (uint32_t)iter & 3;
        memcpy(masked, text, n);
        ref_mask(masked, n, key, phase0);
        for (size_t k = 0; k < NKERNELS; k++) {
            cws_kernel kern = all_kernels[k];
            if (!cws_utf8_kernel_available(kern)) continue;
            size_t limit = n <= 12 ? n * n : n; /* two cuts for short texts, one otherwise */
            for (size_t sp = 0; sp <= limit; sp++) {
                size_t c1 = n <= 12 ? sp / (n + 1) : sp, c2 = n <= 12 ? sp % (n + 1) : n;
                if (c1 > c2) continue;
                size_t cuts[3] = {c1, c2, n};
                context("stream iter %d kernel %s cuts %zu %zu of %zu", iter, cws_kernel_name(kern), c1, c2, n);
                cws_utf8_stream s;
                cws_utf8_stream_init(&s);
                size_t from = 0;
                bool failed = false;
                for (int piece = 0; piece < 3; piece++) {
                    int st = kern == CWS_KERNEL_AUTO
                                 ? cws_utf8_stream_feed(&s, text + from, cuts[piece] - from)
                                 : cws_utf8_stream_feed_with(kern, &s, text + from, cuts[piece] - from);
                    bool expect_ok = !failed && ref_utf8_prefix_ok(text, cuts[piece]);
                    CHECK((st == CWS_OK) == expect_ok);
                    if (st != CWS_OK) failed = true;
                    from = cuts[piece];
                }
                CHECK((!failed && cws_utf8_stream_finish(&s) == CWS_OK) == whole);
                if (failed) CHECK(cws_utf8_stream_finish(&s) != CWS_OK);

                /* fused: unmask + validate, piece by piece, phase carried */
                memcpy(work, masked, n);
                cws_utf8_stream_init(&s);
                from = 0;
                failed = false;
                for (int piece = 0; piece < 3 && !failed; piece++) {
                    uint32_t ph = (uint32_t)((phase0 + from) & 3);
                    int st = kern == CWS_KERNEL_AUTO
                                 ? cws_unmask_utf8_stream(&s, work + from, cuts[piece] - from, key, ph)
                                 : cws_unmask_utf8_stream_with(kern, &s, work + from, cuts[piece] - from, key, ph);
                    CHECK((st == CWS_OK) == ref_utf8_prefix_ok(text, cuts[piece]));
                    if (st != CWS_OK) failed = true;
                    from = cuts[piece];
                }
                if (!failed) {
                    CHECK(memcmp(work, text, n) == 0); /* all unmasked on success */
                    CHECK((cws_utf8_stream_finish(&s) == CWS_OK) == whole);
                }
            }
        }
    }
}

void utf8_tests(void) {
    run_test("utf8 kernels vs reference, guard pages", test_utf8_kernels);
    run_test("utf8 streaming at every split point, fused unmask", test_utf8_streaming);
}
