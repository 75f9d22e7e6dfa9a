/*
 * test_mask.c — masking kernels against the reference on guard pages, kernel names, forced kernels.
 */
#include "test_harness.h"

static void test_kernel_names(void) {
    for (size_t i = 0; i < NKERNELS; i++) {
        const char *n = cws_kernel_name(all_kernels[i]);
        CHECK(n != NULL && strcmp(n, cws_kernel_name((cws_kernel)99)) != 0);
    }
    CHECK(strcmp(cws_kernel_name(CWS_KERNEL_REFERENCE), "reference") == 0);
    CHECK(cws_mask_kernel_available(CWS_KERNEL_REFERENCE) && cws_mask_kernel_available(CWS_KERNEL_WORD));
    CHECK(cws_utf8_kernel_available(CWS_KERNEL_AUTO) && cws_utf8_kernel_available(CWS_KERNEL_WORD));
    CHECK(!cws_mask_kernel_available((cws_kernel)99) && !cws_utf8_kernel_available((cws_kernel)99));
    CHECK(cws_mask_kernel_available(cws_mask_kernel_selected()));
    CHECK(cws_utf8_kernel_available(cws_utf8_kernel_selected()));
    printf("     kernels: mask selected %s, utf8 selected %s; available:", cws_kernel_name(cws_mask_kernel_selected()),
           cws_kernel_name(cws_utf8_kernel_selected()));
    for (size_t i = 0; i < NKERNELS; i++)
        printf(" %s(mask %d, utf8 %d)", cws_kernel_name(all_kernels[i]),
               cws_mask_kernel_available(all_kernels[i]), cws_utf8_kernel_available(all_kernels[i]));
    printf("\n");
}

/* Every available mask kernel equals the reference, lengths 0-300, alignments 0-63, and touches
 * nothing outside [0, n). */
static void test_mask_kernels(void) {
    guarded g = guarded_new(1);
    uint8_t src[512], want[512];
    uint64_t seed = 42;
    for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)ref_rand(&seed);
    for (size_t k = 0; k < NKERNELS; k++) {
        cws_kernel kern = all_kernels[k];
        if (!cws_mask_kernel_available(kern)) continue;
        for (size_t n = 0; n <= 300; n++) {
            for (size_t a = 0; a < 64; a++) {
                uint8_t key[4];
                uint64_t kr = ref_rand(&seed);
                memcpy(key, &kr, 4);
                if ((n + a) % 37 == 0) memset(key, 0, 4); /* the zero-key shortcut */
                uint32_t phase = (uint32_t)(a + n / 3);   /* any value: only phase & 3 counts */
                memcpy(want, src + a, n);
                ref_mask(want, n, key, phase & 3);
                context("mask kernel %s n=%zu a=%zu", cws_kernel_name(kern), n, a);
                /* at the front guard, start aligned to a (the guard is page aligned) */
                uint8_t *p = g.data + a;
                memset(g.data, 0xEE, 64 + 300 + 64);
                memcpy(p, src + a, n);
                uint32_t next = cws_mask_with(kern, n ? p : (a & 1 ? NULL : p), n, key, phase);
                CHECK(next == ((phase + n) & 3));
                CHECK(memcmp(p, want, n) == 0);
                for (size_t i = 0; i < a; i++) CHECK(g.data[i] == 0xEE);
                for (size_t i = a + n; i < a + n + 64; i++) CHECK(g.data[i] == 0xEE);
                /* ending right at the back guard */
                uint8_t *q = guarded_end(&g) - n;
                memcpy(q, src + a, n);
                CHECK(cws_mask_with(kern, q, n, key, phase) == ((phase + n) & 3));
                CHECK(memcmp(q, want, n) == 0);
                /* across two calls (a payload split between reads), same result */
                if (n) {
                    memcpy(q, src + a, n);
                    size_t cut = (a * 7) % (n + 1);
                    uint32_t ph = cws_mask_with(kern, q, cut, key, phase);
                    (void)cws_mask_with(kern, q + cut, n - cut, key, ph);
                    CHECK(memcmp(q, want, n) == 0);
                }
            }
        }
    }
    /* cws_mask: the dispatcher, same checks on a larger range of lengths */
    uint8_t *big = (uint8_t *)xmalloc(70000), *ref = (uint8_t *)xmalloc(70000);
    for (size_t n = 0; n < 70000; n = n * 2 + 1) {
        for (size_t i = 0; i < n; i++) big[i] = ref[i] = (uint8_t)(i * 131 + 7);
        uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
        ref_mask(ref, n, key, 3);
        context("cws_mask n=%zu", n);
        CHECK(cws_mask(big, n, key, 3) == ((3 + n) & 3));
        CHECK(memcmp(big, ref, n) == 0);
    }
    free(big);
    free(ref);
    guarded_free(&g);
}

/* Every available UTF-8 kernel agrees with the reference, lengths 0-300, alignments 0-63, on valid
 * texts and on corrupted ones, at both guard pages. */

static void test_forced_kernels(void) {
    const cws_kernel best_mask = cws_mask_kernel_selected(), best_utf8 = cws_utf8_kernel_selected();
    CHECK(cws_force_kernel((cws_kernel)99) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_mask_kernel_selected() == best_mask);
    for (int k = CWS_KERNEL_REFERENCE; k <= CWS_KERNEL_NEON; k++) {
        const cws_kernel kern = (cws_kernel)k;
        const bool ok = cws_mask_kernel_available(kern) && cws_utf8_kernel_available(kern);
        CHECK((cws_force_kernel(kern) == CWS_OK) == ok);
        if (!ok) continue;
        CHECK(cws_mask_kernel_selected() == kern && cws_utf8_kernel_selected() == kern);
        enum { N = 4099 };
        static uint8_t a[N], b[N];
        const uint8_t key[4] = {0x12, 0x9A, 0x00, 0xF3};
        for (size_t i = 0; i < N; i++) a[i] = b[i] = (uint8_t)(i * 7 + 3);
        CHECK(cws_mask(a, N, key, 1) == (1 + N) % 4);
        (void)cws_mask_with(CWS_KERNEL_REFERENCE, b, N, key, 1);
        CHECK(memcmp(a, b, N) == 0);
        for (size_t i = 0; i < N; i++) a[i] = (uint8_t)('a' + i % 26);
        memcpy(a + 3000, "\xE2\x82\xAC", 3);
        CHECK(cws_utf8_validate(a, N) == CWS_OK);
        a[3001] = 0x41;
        CHECK(cws_utf8_validate(a, N) == CWS_ERR_INVALID_UTF8);
        test_random_streams();
    }
    CHECK(cws_force_kernel(CWS_KERNEL_AUTO) == CWS_OK);
    CHECK(cws_mask_kernel_selected() == best_mask && cws_utf8_kernel_selected() == best_utf8);
}

void mask_tests(void) {
    run_test("kernel names and availability", test_kernel_names);
    run_test("mask kernels vs reference, guard pages", test_mask_kernels);
    run_test("forced kernels behind the plain entry points", test_forced_kernels);
}
