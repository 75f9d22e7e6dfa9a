/*
 * kernels/cws_arm_neon.c — arm64 kernels (NEON is part of arm64, so no run-time check): masking,
 * UTF-8 validation and the fused unmask+validate. Not measured (no arm64 machine here).
 */
#include "cws_utf8_lookup.h"

#if CWS_ARM64

/* NEON is part of arm64. vdupq_n_u32 puts key32 in every lane; lanes are stored little-endian
 * (little-endian arm64: Linux, Darwin, Windows), so each lane holds the key bytes in memory order. vld1q_u8 and
 * vst1q_u8 have no alignment requirement. The unaligned form of the x86 kernels: body from p,
 * 64 bytes per iteration, then the overlapping last vector. Not measured (no arm64 machine here). */
static void cws__mask_neon(uint8_t *p, size_t n, uint32_t key32) {
    if (n < 64) {
        cws__mask_neon_lt64(p, n, key32);
        return;
    }
    const uint8x16_t k = vreinterpretq_u8_u32(vdupq_n_u32(key32));
    uint8_t *const lastp = p + n - 16;
    const uint8x16_t last =
        veorq_u8(vld1q_u8(lastp), vreinterpretq_u8_u32(vdupq_n_u32(cws__key_advance(key32, n))));
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const uint8x16_t a = vld1q_u8(p + i), b = vld1q_u8(p + i + 16);
        const uint8x16_t c = vld1q_u8(p + i + 32), d = vld1q_u8(p + i + 48);
        vst1q_u8(p + i, veorq_u8(a, k));
        vst1q_u8(p + i + 16, veorq_u8(b, k));
        vst1q_u8(p + i + 32, veorq_u8(c, k));
        vst1q_u8(p + i + 48, veorq_u8(d, k));
    }
    for (; i + 16 <= n; i += 16) vst1q_u8(p + i, veorq_u8(vld1q_u8(p + i), k));
    if (i != n) vst1q_u8(lastp, last);
}

/* ------------------------------------------------------------------------------------------------
 * NEON: the same with 16-byte registers, 64 bytes per step. tbl (vqtbl1q_u8) is the 16-entry
 * lookup; ext (vextq_u8) gives the previous bytes; the 8-bit shift needs no mask. umaxv answers
 * "any top bit set" and "any error bit set".
 * ---------------------------------------------------------------------------------------------- */
typedef struct {
    uint8x16_t t1, t2, t3, inc_max;
    uint8x16_t prev, err, inc;
} neon_state;

CWS_INLINE uint8x16_t neon_errors(const neon_state *st, uint8x16_t in, uint8x16_t prev) {
    const uint8x16_t prev1 = vextq_u8(prev, in, 15);
    const uint8x16_t prev2 = vextq_u8(prev, in, 14);
    const uint8x16_t prev3 = vextq_u8(prev, in, 13);
    const uint8x16_t pairs = vandq_u8(vandq_u8(vqtbl1q_u8(st->t1, vshrq_n_u8(prev1, 4)),
                                               vqtbl1q_u8(st->t2, vandq_u8(prev1, vdupq_n_u8(0x0F)))),
                                      vqtbl1q_u8(st->t3, vshrq_n_u8(in, 4)));
    const uint8x16_t third = vqsubq_u8(prev2, vdupq_n_u8(0xE0 - 0x80));
    const uint8x16_t fourth = vqsubq_u8(prev3, vdupq_n_u8(0xF0 - 0x80));
    const uint8x16_t must23 = vandq_u8(vorrq_u8(third, fourth), vdupq_n_u8(0x80));
    return veorq_u8(must23, pairs);
}

CWS_INLINE void neon_step(neon_state *st, uint8x16_t a, uint8x16_t b, uint8x16_t c, uint8x16_t d) {
    const uint8x16_t any = vorrq_u8(vorrq_u8(a, b), vorrq_u8(c, d));
    if (vmaxvq_u8(any) < 0x80) {
        st->err = vorrq_u8(st->err, st->inc);
        st->inc = vdupq_n_u8(0);
    } else {
        const uint8x16_t e = vorrq_u8(vorrq_u8(neon_errors(st, a, st->prev), neon_errors(st, b, a)),
                                      vorrq_u8(neon_errors(st, c, b), neon_errors(st, d, c)));
        st->err = vorrq_u8(st->err, e);
        st->inc = vqsubq_u8(d, st->inc_max);
    }
    st->prev = d;
}

CWS_INLINE int neon_body(const uint8_t *src, uint8_t *dst, size_t n, uint32_t key32, bool fused) {
    neon_state st;
    st.t1 = vld1q_u8(utf8_t1_prev_high);
    st.t2 = vld1q_u8(utf8_t2_prev_low);
    st.t3 = vld1q_u8(utf8_t3_cur_high);
    st.inc_max = vld1q_u8(utf8_incomplete_max);
    st.prev = st.err = st.inc = vdupq_n_u8(0);
    const uint8x16_t key = vreinterpretq_u8_u32(vdupq_n_u32(key32));
    size_t i = 0;
    for (; n - i >= 64; i += 64) {
        uint8x16_t a = vld1q_u8(src + i), b = vld1q_u8(src + i + 16);
        uint8x16_t c = vld1q_u8(src + i + 32), d = vld1q_u8(src + i + 48);
        if (fused) {
            a = veorq_u8(a, key);
            b = veorq_u8(b, key);
            c = veorq_u8(c, key);
            d = veorq_u8(d, key);
            vst1q_u8(dst + i, a);
            vst1q_u8(dst + i + 16, b);
            vst1q_u8(dst + i + 32, c);
            vst1q_u8(dst + i + 48, d);
        }
        neon_step(&st, a, b, c, d);
    }
    if (i < n) {
        uint8_t last[64] = {0};
        if (fused) cws__mask_word(dst + i, n - i, key32);
        memcpy(last, src + i, n - i);
        neon_step(&st, vld1q_u8(last), vld1q_u8(last + 16), vld1q_u8(last + 32), vld1q_u8(last + 48));
    }
    st.err = vorrq_u8(st.err, st.inc);
    return vmaxvq_u8(st.err) == 0 ? CWS_OK : CWS_ERR_INVALID_UTF8;
}

static int cws__utf8_neon(const uint8_t *p, size_t n) { return neon_body(p, NULL, n, 0, false); }
static int cws__unmask_utf8_neon(uint8_t *p, size_t n, uint32_t key32) { return neon_body(p, p, n, key32, true); }

const cws__kernel_ops cws__kernel_neon = {CWS_KERNEL_NEON, CWS_KERNEL_NEON, cws__mask_neon,
                                          cws__utf8_neon, cws__unmask_utf8_neon};

#else
typedef int cws__arm_neon_unused; /* ISO C wants a declaration in every translation unit */
#endif /* CWS_ARM64 */
