/*
 * cws_cpu.c — CPU feature detection for kernel dispatch.
 *
 * SSE2 is part of x86-64 and NEON of arm64, so those are known at compile time; AVX2, SSSE3 and
 * SSE4.1 are asked of the CPU once (cpuid through __builtin_cpu_supports). The answer is cached in
 * one atomic word: threads racing on the first call compute the same value, so a relaxed store is
 * enough. This is the engine's only global state, and it is written at most with one value.
 */
#include "cws_internal.h"

#include <stdatomic.h>

_Atomic uint32_t cws__features_cache; /* 0 = not read yet; bit 31 marks "read" */

static uint32_t cws__detect(void) {
    uint32_t f = 0;
#if CWS_X86_64
    f |= CWS__CPU_SSE2;
#if defined(__GNUC__) || defined(__clang__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("ssse3")) f |= CWS__CPU_SSSE3;
    if (__builtin_cpu_supports("sse4.1")) f |= CWS__CPU_SSE41;
    if (__builtin_cpu_supports("avx2")) f |= CWS__CPU_AVX2;
#endif
#endif
#if CWS_ARM64
    f |= CWS__CPU_NEON;
#endif
    return f;
}

uint32_t cws__cpu_features_slow(void) {
    uint32_t v = cws__detect() | (1u << 31);
    atomic_store_explicit(&cws__features_cache, v, memory_order_relaxed);
    return v & ~(1u << 31);
}

const char *cws_kernel_name(cws_kernel k) {
    switch (k) {
    case CWS_KERNEL_AUTO: return "auto";
    case CWS_KERNEL_REFERENCE: return "reference";
    case CWS_KERNEL_WORD: return "word";
    case CWS_KERNEL_SSE: return "sse";
    case CWS_KERNEL_AVX2: return "avx2";
    case CWS_KERNEL_NEON: return "neon";
    }
    return "unknown";
}
