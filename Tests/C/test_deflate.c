/*
 * test_deflate.c — permessage-deflate (RFC 7692 §7.2) through the engine and the deflater: the
 * limits on compressed frames and messages.
 */
#include "test_harness.h"

/* ---- helpers ------------------------------------------------------------------------------- */

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void random_bytes(uint64_t seed, uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(xorshift(&seed) >> 24);
}

/* Compresses m[0..n) with a fresh client-role deflater (level 1, window 15) as a client would
 * send it; returns the malloc'ed payload (length *out_len). */
static uint8_t *client_compress(const uint8_t *m, size_t n, size_t *out_len) {
    cws_pmd_config cfg;
    cws_pmd_config_init(&cfg);
    cfg.threshold = 0;
    const cws_pmd_params agreed = {15, 15, false, false};
    cws_deflater *d = NULL;
    CHECK(cws_deflater_new(&cfg, &agreed, CWS_ROLE_CLIENT, NULL, &d) == CWS_OK);
    const size_t cap = cws_deflate_bound(n);
    uint8_t *out = (uint8_t *)xmalloc(cap);
    bool compressed = false;
    *out_len = 0;
    CHECK(cws_deflate_message(d, m, n, 0, out, cap, out_len, &compressed) == CWS_OK && compressed);
    cws_deflater_free(d);
    return out;
}

/* Appends frames carrying payload p[0..n) (masked, as a client sends) to s: frames of at most
 * `frag` bytes (0: one frame), RSV1 and `opcode` on the first. */
static void put_message(uint8_t **s, size_t *len, size_t *cap, uint8_t opcode, uint8_t rsv,
                        const uint8_t *p, size_t n, size_t frag) {
    const uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};
    size_t at = 0;
    do {
        size_t f = frag == 0 || n - at < frag ? n - at : frag;
        uint8_t hdr[CWS_MAX_HEADER_SIZE];
        size_t w = 0;
        CHECK(cws_frame_header_write(hdr, sizeof hdr, &w, at + f == n, at == 0 ? rsv : 0,
                                     at == 0 ? opcode : CWS_OP_CONTINUATION, f, key) == CWS_OK);
        for (size_t i = 0; i < w; i++) buf_push(s, len, cap, hdr[i]);
        for (size_t i = 0; i < f; i++) buf_push(s, len, cap, (uint8_t)(p[at + i] ^ key[i & 3]));
        at += f;
    } while (at < n);
}

/* A server engine with permessage-deflate agreed at window 15 (client context takeover unless
 * `reset`). */
static cws_conn *server_conn(uint64_t max_message, uint64_t max_frame, bool reset,
                             const cws_allocator *a, int *status) {
    const cws_pmd_params agreed = {15, 15, false, reset};
    cws_config cfg;
    cws_config_init(&cfg, CWS_ROLE_SERVER);
    cfg.max_message_size = max_message;
    cfg.max_frame_size = max_frame;
    cfg.pmd = &agreed;
    cfg.allocator = a;
    cws_conn *c = NULL;
    *status = cws_conn_new(&cfg, &c);
    return c;
}

/* Feeds s[0..len) whole; the messages delivered must be want[0..nwant) (lengths wlen) in order.
 * Returns the final status (CWS_WANT_READ when everything was taken, else the error, whose close
 * code goes to *code). */
static int parse_expect(cws_conn *c, uint8_t *s, size_t len, const uint8_t *const *want,
                        const size_t *wlen, size_t nwant, uint16_t *code) {
    size_t pos = 0, got = 0;
    for (;;) {
        size_t used = 0;
        cws_event ev;
        int st = cws_conn_parse(c, s + pos, len - pos, &used, &ev);
        pos += used;
        if (st == CWS_OK) {
            CHECK(got < nwant);
            if (got < nwant) {
                CHECK(ev.length == wlen[got]);
                CHECK(ev.length == wlen[got] && (ev.length == 0 || memcmp(ev.data, want[got], ev.length) == 0));
            }
            got++;
            continue;
        }
        if (st != CWS_WANT_READ) {
            CHECK(ev.type == CWS_EVENT_ERROR);
            *code = ev.close_code;
        } else {
            CHECK(got == nwant);
        }
        return st;
    }
}

/* ---- issue 11 item 14: the frame limit counts compressed bytes with deflate's slack ---------- */

static void test_compressed_frame_limit(void) {
    enum { LIMIT = 65536 };
    uint8_t *msg = (uint8_t *)xmalloc(200000);
    random_bytes(0x1234567, msg, 200000);

    /* A 65,536-byte random message grows when compressed (level 1 stores it); with both limits
     * at 65,536 it must be accepted: the message is within max_message_size. */
    size_t zlen;
    uint8_t *z = client_compress(msg, LIMIT, &zlen);
    context("random 65536 B compressed to %zu B", zlen);
    CHECK(zlen > LIMIT);
    for (int frag = 0; frag < 2; frag++) {
        uint8_t *s = NULL;
        size_t len = 0, cap = 0;
        put_message(&s, &len, &cap, CWS_OP_BINARY, CWS_RSV1, z, zlen, frag ? 40000 : 0);
        int st;
        cws_conn *c = server_conn(LIMIT, LIMIT, false, NULL, &st);
        CHECK(st == CWS_OK);
        const uint8_t *w[1] = {msg};
        const size_t wl[1] = {LIMIT};
        uint16_t code = 0;
        CHECK(parse_expect(c, s, len, w, wl, 1, &code) == CWS_WANT_READ);
        cws_conn_free(c);
        free(s);
    }
    free(z);

    /* One byte more is over the message limit: 1009 (the inflated size counts). */
    z = client_compress(msg, LIMIT + 1, &zlen);
    context("random 65537 B compressed to %zu B", zlen);
    {
        uint8_t *s = NULL;
        size_t len = 0, cap = 0;
        put_message(&s, &len, &cap, CWS_OP_BINARY, CWS_RSV1, z, zlen, 0);
        int st;
        cws_conn *c = server_conn(LIMIT, LIMIT, false, NULL, &st);
        uint16_t code = 0;
        CHECK(parse_expect(c, s, len, NULL, NULL, 0, &code) == CWS_ERR_MESSAGE_TOO_BIG && code == 1009);
        cws_conn_free(c);
        free(s);
    }
    free(z);

    /* A compressed frame past the frame limit plus the slack (65536 + 8192 + 64 = 73,792) is
     * refused at its header although the message limit is higher; the same message in frames
     * of at most 65,536 bytes is accepted. */
    const size_t big = 80000;
    z = client_compress(msg, big, &zlen);
    context("random 80000 B compressed to %zu B, frame limit 65536", zlen);
    CHECK(zlen > (size_t)LIMIT + LIMIT / 8 + 64);
    for (int frag = 0; frag < 2; frag++) {
        uint8_t *s = NULL;
        size_t len = 0, cap = 0;
        put_message(&s, &len, &cap, CWS_OP_BINARY, CWS_RSV1, z, zlen, frag ? LIMIT : 0);
        int st;
        cws_conn *c = server_conn(1 << 20, LIMIT, false, NULL, &st);
        const uint8_t *w[1] = {msg};
        const size_t wl[1] = {big};
        uint16_t code = 0;
        if (frag) {
            CHECK(parse_expect(c, s, len, w, wl, 1, &code) == CWS_WANT_READ);
        } else {
            CHECK(parse_expect(c, s, len, w, wl, 0, &code) == CWS_ERR_FRAME_TOO_BIG && code == 1009);
        }
        cws_conn_free(c);
        free(s);
    }
    /* The continuation frames of a compressed message get the slack too: 73,792 passes, 73,793
     * does not. */
    for (int over = 0; over < 2; over++) {
        const size_t first = zlen - ((size_t)LIMIT + LIMIT / 8 + 64 + (size_t)over);
        uint8_t *s = NULL;
        size_t len = 0, cap = 0;
        put_message(&s, &len, &cap, CWS_OP_BINARY, CWS_RSV1, z, first, 0);
        s[0] &= 0x7F; /* not FIN: the rest follows as one continuation frame */
        uint8_t *t = NULL;
        size_t tlen = 0, tcap = 0;
        put_message(&t, &tlen, &tcap, CWS_OP_CONTINUATION, 0, z + first, zlen - first, 0);
        for (size_t i = 0; i < tlen; i++) buf_push(&s, &len, &cap, t[i]);
        int st;
        cws_conn *c = server_conn(1 << 20, LIMIT, false, NULL, &st);
        const uint8_t *w[1] = {msg};
        const size_t wl[1] = {big};
        uint16_t code = 0;
        if (over) CHECK(parse_expect(c, s, len, w, wl, 0, &code) == CWS_ERR_FRAME_TOO_BIG && code == 1009);
        else CHECK(parse_expect(c, s, len, w, wl, 1, &code) == CWS_WANT_READ);
        cws_conn_free(c);
        free(s);
        free(t);
    }
    free(z);

    /* Uncompressed frames keep the plain limit, with the extension on. */
    context("uncompressed 65537 B frame, frame limit 65536");
    {
        uint8_t *s = NULL;
        size_t len = 0, cap = 0;
        put_message(&s, &len, &cap, CWS_OP_BINARY, 0, msg, LIMIT + 1, 0);
        int st;
        cws_conn *c = server_conn(1 << 20, LIMIT, false, NULL, &st);
        uint16_t code = 0;
        CHECK(parse_expect(c, s, len, NULL, NULL, 0, &code) == CWS_ERR_FRAME_TOO_BIG && code == 1009);
        cws_conn_free(c);
        free(s);
    }
    free(msg);
}

void deflate_tests(void) {
    run_test("compressed frames: frame limit with deflate's slack (issue 11 item 14)", test_compressed_frame_limit);
}
