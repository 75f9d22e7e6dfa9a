/*
 * cws_utf8_stream.c — streaming UTF-8 validation (RFC 3629 §4; RFC 6455 §8.1: text messages and
 * close reasons must be valid UTF-8, and the connection fails as soon as they are not), plain
 * and fused with unmasking. The kernels that validate the bulk of each piece are behind the
 * dispatcher (cws_dispatch.c).
 *
 * Streaming (cws_utf8_stream): a text may be cut at any byte. A feed
 *   1. completes the sequence carried from the last piece (at most 3 bytes) byte by byte,
 *   2. finds the last sequence start in the piece that is incomplete (only the last 3 bytes can
 *      hold one) and validates everything before it as a complete text with a kernel,
 *   3. checks that the cut tail is a valid prefix of a sequence and stashes it.
 * So an error shows up at the feed that brings the first byte which no valid text can continue
 * with ("E0 80", "ED A0", "F4 90", a lone C0 or F5, a stray continuation byte), while a valid
 * incomplete prefix ("E2 82") is an error only at cws_utf8_stream_finish. partial_len > 3 marks a
 * failed stream.
 */
#include "cws_kernels.h"

/* partial_len of a stream that failed: every later feed and finish return the error again. */
#define UTF8_FAILED 0xFFu

typedef int (*cws__validate_fn)(const uint8_t *p, size_t n);
typedef int (*cws__unmask_validate_fn)(uint8_t *p, size_t n, uint32_t key32);

void cws_utf8_stream_init(cws_utf8_stream *s) {
    memset(s->partial, 0, sizeof s->partial);
    s->partial_len = 0;
}

static int stream_fail(cws_utf8_stream *s) {
    s->partial_len = UTF8_FAILED;
    return CWS_ERR_INVALID_UTF8;
}

/* How many bytes at the end of a piece belong to a sequence that the end cuts (0-3). `tail` holds
 * the piece's last t <= 3 bytes, the last one in bits 0-7, the one before in bits 8-15, and so on
 * (kept in a register: the fused decode builds it from unmasked bytes without a store).
 * Only the last 3 bytes can hold such a lead, as a sequence is at most 4 bytes. A byte that
 * cannot lead at all (C0, C1, F5-FF) counts as a lead here, so that the prefix check rejects it
 * as soon as it is the last byte seen. Stray continuations are left to the validator. */
static size_t utf8_cut_back(uint32_t tail, size_t t) {
    for (size_t j = 1; j <= t; j++) {
        const uint32_t b = (tail >> (8 * (j - 1))) & 0xFF;
        if (b < 0x80) return 0;
        if (b >= 0xC0) {
            const size_t len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
            return len > j ? j : 0;
        }
    }
    return 0;
}

/* Appends bytes of p[0..n) to the sequence carried in *s until it is complete or p runs out.
 * Returns how many bytes it took, or SIZE_MAX when the sequence can no longer be valid. */
static size_t stream_complete(cws_utf8_stream *s, const uint8_t *p, size_t n) {
    uint8_t lo, hi;
    const size_t len = cws__utf8_lead(s->partial[0], &lo, &hi);
    size_t m = s->partial_len, i = 0;
    if (len <= m) return SIZE_MAX; /* not a state feed could have left */
    while (m < len && i < n) {
        s->partial[m++] = p[i++];
        if (!cws__utf8_prefix_ok(s->partial, m)) return SIZE_MAX;
    }
    s->partial_len = m == len ? 0 : (uint32_t)m;
    return i;
}

/* Keeps t[0..m) (m <= 3, a cut sequence) for the next piece, if it can begin a valid one. */
static int stream_stash(cws_utf8_stream *s, const uint8_t *t, size_t m) {
    if (m == 0) return CWS_OK;
    if (!cws__utf8_prefix_ok(t, m)) return stream_fail(s);
    memcpy(s->partial, t, m);
    s->partial_len = (uint32_t)m;
    return CWS_OK;
}

CWS_INLINE int stream_feed(cws__validate_fn validate, cws_utf8_stream *s, const uint8_t *p, size_t n) {
    if (s->partial_len > 3) return CWS_ERR_INVALID_UTF8;
    if (n == 0) return CWS_OK;
    size_t i = 0;
    if (s->partial_len != 0) {
        i = stream_complete(s, p, n);
        if (i == SIZE_MAX) return stream_fail(s);
        if (s->partial_len != 0) return CWS_OK; /* still incomplete: the piece is used up */
    }
    size_t cut = n;
    if (p[n - 1] >= 0x80) { /* an ASCII last byte cuts nothing: the common case, tested first */
        const size_t t = n - i < 3 ? n - i : 3;
        uint32_t tail = 0;
        for (size_t j = 1; j <= t; j++) tail |= (uint32_t)p[n - j] << (8 * (j - 1));
        cut -= utf8_cut_back(tail, t);
    }
    if (cut > i && validate(p + i, cut - i) != CWS_OK) return stream_fail(s);
    return stream_stash(s, p + cut, n - cut);
}

int cws_utf8_stream_feed(cws_utf8_stream *s, const void *buf, size_t len) {
    return stream_feed(cws__utf8_auto, s, (const uint8_t *)buf, len);
}

int cws_utf8_stream_feed_with(cws_kernel k, cws_utf8_stream *s, const void *buf, size_t len) {
    return stream_feed(cws__kernel_named(k, true)->validate, s, (const uint8_t *)buf, len);
}

int cws_utf8_stream_finish(const cws_utf8_stream *s) {
    return s->partial_len == 0 ? CWS_OK : CWS_ERR_INVALID_UTF8;
}

/* XORs the few (at most 3) bytes p[0..n) with the key from key byte `phase & 3` on. */
static void unmask_few(uint8_t *p, size_t n, const uint8_t *key, size_t phase) {
    for (size_t j = 0; j < n; j++) p[j] ^= key[(phase + j) & 3];
}

/* The fused decode follows stream_feed step by step; each part of buf is unmasked right before it
 * is looked at: the few bytes that complete the carried sequence, then the bulk (fused kernel),
 * then the cut tail. The cut is found on the last 3 bytes unmasked in a register. The few-byte
 * parts are XOR-ed byte by byte: a memcpy + mask call on a 3-byte stack copy cost more than the
 * fused kernel itself on 64 bytes (store-forwarding stalls on the byte reloads). */
CWS_INLINE int unmask_stream(cws__unmask_validate_fn unmask_validate, cws_utf8_stream *s, uint8_t *p, size_t n, const uint8_t *key,
                         uint32_t phase) {
    if (s->partial_len > 3) return CWS_ERR_INVALID_UTF8;
    if (n == 0) return CWS_OK;
    size_t i = 0;
    if (s->partial_len != 0) {
        uint8_t lo, hi;
        const size_t len = cws__utf8_lead(s->partial[0], &lo, &hi);
        if (len <= s->partial_len) return stream_fail(s);
        const size_t need = len - s->partial_len, h = need < n ? need : n;
        unmask_few(p, h, key, phase);
        i = stream_complete(s, p, h);
        if (i == SIZE_MAX) return stream_fail(s);
        if (s->partial_len != 0) return CWS_OK;
    }
    size_t cut = n;
    if ((p[n - 1] ^ key[(phase + n - 1) & 3]) >= 0x80) { /* as in stream_feed */
        const size_t t = n - i < 3 ? n - i : 3;
        uint32_t tail = 0;
        for (size_t j = 1; j <= t; j++) tail |= (uint32_t)(p[n - j] ^ key[(phase + n - j) & 3]) << (8 * (j - 1));
        cut -= utf8_cut_back(tail, t);
    }
    if (cut > i &&
        unmask_validate(p + i, cut - i, cws__key_at(key, phase + i)) != CWS_OK)
        return stream_fail(s);
    if (cut == n) return CWS_OK;
    unmask_few(p + cut, n - cut, key, phase + cut);
    return stream_stash(s, p + cut, n - cut);
}

int cws_unmask_utf8_stream(cws_utf8_stream *s, void *buf, size_t len, const void *key, uint32_t phase) {
    return unmask_stream(cws__unmask_utf8_auto, s, (uint8_t *)buf, len, (const uint8_t *)key, phase);
}

int cws_unmask_utf8_stream_with(cws_kernel k, cws_utf8_stream *s, void *buf, size_t len, const void *key,
                                uint32_t phase) {
    return unmask_stream(cws__kernel_named(k, true)->unmask_validate, s, (uint8_t *)buf, len, (const uint8_t *)key, phase);
}
