/*
 * cws_dispatch.c — which kernel runs: one table (cws__kernel_ops) chosen once, at first use, from
 * the CPU's features; the public masking and UTF-8 entry points on top of it; and, for tests,
 * running or forcing one named kernel.
 *
 * The kernels live one instruction set per file (kernels/cws_scalar.c, cws_x86_sse.c,
 * cws_x86_avx2.c, cws_arm_neon.c). The entry points pick by size first, from measurements
 * (Benchmarks/RESULTS.md, "Kernel thresholds"):
 *
 *   masking (cws_mask)          len < 64        overlapping-block SSE2/NEON code, inlined: no call
 *                                               and no table load
 *                               64 <= len < 128 the SSE2 kernel (x86-64: AVX2 is no faster here)
 *                               len >= 128      the table's kernel (AVX2 when the CPU has it)
 *   UTF-8 (cws_utf8_validate)   len < 32        WORD: a SIMD kernel first pays for its tables and a
 *                                               zero-padded copy of the last block
 *                               32 <= len < 64  an all-ASCII test with overlapping words, then the
 *                                               table's kernel
 *                               len >= 64       the table's kernel
 *   fused unmask + validate     len < 64        inline masking, then as cws_utf8_validate
 *                               len >= 64       the table's fused kernel (one pass over memory)
 *
 * The table pointer is the engine's only global state besides the CPU-feature cache (cws_cpu.c);
 * it is written with one of a few constant tables, so threads racing on the first call agree.
 */
#include "cws_kernels.h"

_Atomic(const cws__kernel_ops *) cws__kernels_active;

/* x86-64 without SSSE3/SSE4.1 (CPUs before 2008): SSE2 masking, word UTF-8. */
#if CWS_X86_64
static int cws__unmask_utf8_sse2_word(uint8_t *p, size_t n, uint32_t key32) {
    cws__mask_sse2(p, n, key32);
    return cws__utf8_word(p, n);
}
static const cws__kernel_ops cws__kernel_sse2_word = {CWS_KERNEL_SSE, CWS_KERNEL_WORD, cws__mask_sse2,
                                                      cws__utf8_word, cws__unmask_utf8_sse2_word};
#endif

/* The best table for a CPU with `features` (CWS__CPU_*). A pure function of its argument, so the
 * fuzzers can run the table of a CPU they are not running on (x86-64 without SSSE3/SSE4.1). */
const cws__kernel_ops *cws__kernels_for_cpu(uint32_t features) {
#if CWS_X86_64
    if (features & CWS__CPU_AVX2) return &cws__kernel_avx2;
    if ((features & CWS__CPU_SSSE3) && (features & CWS__CPU_SSE41)) return &cws__kernel_sse;
    return &cws__kernel_sse2_word;
#elif CWS_ARM64
    (void)features;
    return &cws__kernel_neon;
#else
    (void)features;
    return &cws__kernel_word;
#endif
}

const cws__kernel_ops *cws__kernels_init(void) {
    const cws__kernel_ops *expected = NULL;
    /* A forced table set meanwhile wins; otherwise every racing caller stores the same pointer. */
    (void)atomic_compare_exchange_strong_explicit(&cws__kernels_active, &expected,
                                                  cws__kernels_for_cpu(cws__cpu_features()),
                                                  memory_order_acq_rel, memory_order_acquire);
    return atomic_load_explicit(&cws__kernels_active, memory_order_acquire);
}

/* ------------------------------------------------------------------------------------------------
 * The automatic choice by size (table above)
 * ---------------------------------------------------------------------------------------------- */

#define CWS__MASK_INLINE_BELOW 64
#define CWS__MASK_SSE2_BELOW 128
#define CWS__UTF8_WORD_BELOW 32
#define CWS__UNMASK_FUSED_FROM 64

int cws__utf8_auto(const uint8_t *p, size_t n) {
    if (n < CWS__UTF8_WORD_BELOW) return cws__utf8_word(p, n);
    if (n < 64) {
        uint64_t any = cws__load64(p + n - 8);
        for (size_t i = 0; i + 8 <= n; i += 8) any |= cws__load64(p + i);
        if ((any & CWS__HIGH64) == 0) return CWS_OK;
    }
    return cws__kernels()->validate(p, n);
}

int cws__unmask_utf8_auto(uint8_t *p, size_t n, uint32_t key32) {
    if (n < CWS__UNMASK_FUSED_FROM) {
        cws__mask_small(p, n, key32);
        return cws__utf8_auto(p, n);
    }
    return cws__kernels()->unmask_validate(p, n, key32);
}

/* ------------------------------------------------------------------------------------------------
 * Public entry points
 * ---------------------------------------------------------------------------------------------- */

/* len >= CWS__MASK_INLINE_BELOW. Kept out of line so that the short path of cws_mask needs no
 * stack frame. */
__attribute__((noinline)) static void cws__mask_long(uint8_t *p, size_t len, uint32_t key32) {
#if CWS_X86_64
    if (len < CWS__MASK_SSE2_BELOW) {
        cws__mask_sse2(p, len, key32);
        return;
    }
#endif
    cws__kernels()->mask(p, len, key32);
}

/* cws_mask without the zero-key shortcut: the automatic table's mask (cws_mask_with(AUTO, ...)). */
static void cws__mask_auto(uint8_t *p, size_t n, uint32_t key32) {
    if (n >= CWS__MASK_INLINE_BELOW)
        cws__mask_long(p, n, key32);
    else
        cws__mask_small(p, n, key32);
}

const cws__kernel_ops cws__kernel_auto = {CWS_KERNEL_AUTO, CWS_KERNEL_AUTO, cws__mask_auto,
                                          cws__utf8_auto, cws__unmask_utf8_auto};

uint32_t cws_mask(void *buf, size_t len, const void *key, uint32_t phase) {
    const uint32_t next = (uint32_t)((phase + len) & 3);
    if (len == 0) return next; /* buf may be NULL; key is not read */
    const uint32_t key32 = cws__key_at(key, phase);
    /* An all-zero key masks nothing: skip the pass over memory (uWS does the same). */
    if (key32 == 0) return next;
    uint8_t *p = (uint8_t *)buf;
    if (len >= CWS__MASK_INLINE_BELOW)
        cws__mask_long(p, len, key32);
    else
        cws__mask_small(p, len, key32);
    return next;
}

int cws_utf8_validate(const void *buf, size_t len) {
    return cws__utf8_auto((const uint8_t *)buf, len); /* len 0 reads nothing */
}

/* ------------------------------------------------------------------------------------------------
 * Named kernels (cws_testing.h)
 * ---------------------------------------------------------------------------------------------- */

bool cws_mask_kernel_available(cws_kernel k) {
    switch (k) {
    case CWS_KERNEL_AUTO:
    case CWS_KERNEL_REFERENCE:
    case CWS_KERNEL_WORD:
        return true;
    case CWS_KERNEL_SSE:
#if CWS_X86_64
        return true;
#else
        return false;
#endif
    case CWS_KERNEL_AVX2:
#if CWS_X86_64
        return (cws__cpu_features() & CWS__CPU_AVX2) != 0;
#else
        return false;
#endif
    case CWS_KERNEL_NEON:
#if CWS_ARM64
        return true;
#else
        return false;
#endif
    }
    return false;
}

bool cws_utf8_kernel_available(cws_kernel k) {
    /* The SSE UTF-8 kernel needs SSSE3 and SSE4.1 beyond SSE2 (never set off x86-64). */
    const uint32_t need = CWS__CPU_SSSE3 | CWS__CPU_SSE41;
    if (k == CWS_KERNEL_SSE && (cws__cpu_features() & need) != need) return false;
    return cws_mask_kernel_available(k);
}

/* Every named kernel this build has. */
static const cws__kernel_ops *const cws__named[CWS_KERNEL_NEON + 1] = {
    [CWS_KERNEL_AUTO] = &cws__kernel_auto,
    [CWS_KERNEL_REFERENCE] = &cws__kernel_reference,
    [CWS_KERNEL_WORD] = &cws__kernel_word,
#if CWS_X86_64
    [CWS_KERNEL_SSE] = &cws__kernel_sse,
    [CWS_KERNEL_AVX2] = &cws__kernel_avx2,
#endif
#if CWS_ARM64
    [CWS_KERNEL_NEON] = &cws__kernel_neon,
#endif
};

const cws__kernel_ops *cws__kernel_named(cws_kernel k, bool utf8) {
    /* An available kernel is a known one that this build has. */
    if (!(utf8 ? cws_utf8_kernel_available(k) : cws_mask_kernel_available(k)))
        return &cws__kernel_reference;
    return cws__named[k];
}

cws_kernel cws_mask_kernel_selected(void) { return cws__kernels()->mask_kernel; }
cws_kernel cws_utf8_kernel_selected(void) { return cws__kernels()->utf8_kernel; }

int cws_force_kernel(cws_kernel k) {
    if (!cws_mask_kernel_available(k) || !cws_utf8_kernel_available(k)) return CWS_ERR_INVALID_ARGUMENT;
    const cws__kernel_ops *t =
        k == CWS_KERNEL_AUTO ? cws__kernels_for_cpu(cws__cpu_features()) : cws__kernel_named(k, true);
    atomic_store_explicit(&cws__kernels_active, t, memory_order_release);
    return CWS_OK;
}

/* Runs exactly the named kernel, with no zero-key shortcut, so tests exercise the kernel itself.
 * AUTO runs cws_mask's choice by size (without its shortcut). */
uint32_t cws_mask_with(cws_kernel k, void *buf, size_t len, const void *key, uint32_t phase) {
    const uint32_t next = (uint32_t)((phase + len) & 3);
    if (len == 0) return next;
    cws__kernel_named(k, false)->mask((uint8_t *)buf, len, cws__key_at(key, phase));
    return next;
}

int cws_utf8_validate_with(cws_kernel k, const void *buf, size_t len) {
    if (len == 0) return CWS_OK;
    return cws__kernel_named(k, true)->validate((const uint8_t *)buf, len);
}
