/*
 * test_deflate.c — permessage-deflate (RFC 7692 §7.2) through the engine and the deflater: the
 * limits on compressed frames and messages, the inflater's 1-byte probe at a full buffer, corrupt
 * streams, and a failing allocator at every call of the inflater and the deflater.
 */
#include "test_harness.h"

#include <pthread.h>

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

/* ---- the inflater's 1-byte probe when the reassembly buffer is full ------------------------- */

/* The reassembly buffer starts at 1 KiB and doubles. A message of exactly the buffer's size ends
 * on the probe with nothing produced (no growth); one byte more makes the probe produce that byte
 * (growth, the byte kept, validated as text); exactly max_message is accepted and one more is
 * 1009 from the probe. Text with a 3-byte sequence across the 1 KiB boundary checks that the
 * probe's byte goes through the UTF-8 stream; an invalid byte there is 1007. */
static void test_inflate_probe(void) {
    const size_t sizes[] = {1023, 1024, 1025, 2048, 2049, 3000};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const size_t n = sizes[si];
        uint8_t *m = (uint8_t *)xmalloc(n);
        for (size_t i = 0; i < n; i++) m[i] = (uint8_t)('a' + (i * 7) % 26);
        if (n > 1025) memcpy(m + 1023, "\xE2\x82\xAC", 3); /* U+20AC across the 1 KiB boundary */
        for (int frag = 0; frag < 2; frag++) {
            for (uint64_t limit = n - 1; limit <= n; limit++) {
                context("probe: %zu bytes, limit %llu, fragmented %d", n, (unsigned long long)limit, frag);
                size_t zlen;
                uint8_t *z = client_compress(m, n, &zlen);
                uint8_t *s = NULL;
                size_t len = 0, cap = 0;
                put_message(&s, &len, &cap, CWS_OP_TEXT, CWS_RSV1, z, zlen, frag ? 7 : 0);
                int st;
                cws_conn *c = server_conn(limit, 1 << 20, false, NULL, &st);
                const uint8_t *w[1] = {m};
                const size_t wl[1] = {n};
                uint16_t code = 0;
                if (limit >= n) CHECK(parse_expect(c, s, len, w, wl, 1, &code) == CWS_WANT_READ);
                else CHECK(parse_expect(c, s, len, w, wl, 0, &code) == CWS_ERR_MESSAGE_TOO_BIG && code == 1009);
                cws_conn_free(c);
                free(s);
                free(z);
            }
        }
        if (n > 1025) {
            /* A byte that cannot continue the text, exactly where the probe reads it. */
            m[1024] = 0x41;
            context("probe: invalid UTF-8 at byte 1024 of %zu", n);
            size_t zlen;
            uint8_t *z = client_compress(m, n, &zlen);
            uint8_t *s = NULL;
            size_t len = 0, cap = 0;
            put_message(&s, &len, &cap, CWS_OP_TEXT, CWS_RSV1, z, zlen, 0);
            int st;
            cws_conn *c = server_conn(1 << 20, 1 << 20, false, NULL, &st);
            uint16_t code = 0;
            CHECK(parse_expect(c, s, len, NULL, NULL, 0, &code) == CWS_ERR_INVALID_UTF8 && code == 1007);
            cws_conn_free(c);
            free(s);
            free(z);
        }
        free(m);
    }
}

/* ---- corrupt streams: Z_DATA_ERROR and input that cannot move ------------------------------ */

static void test_inflate_corrupt(void) {
    /* RFC 1951 §3.2.3: BTYPE 11 is reserved (an error); a stored block whose LEN and NLEN do not
     * match; a fixed-Huffman block that refers 2 bytes back at the very start of the stream
     * ("distance too far back"). */
    static const uint8_t reserved_btype[] = {0x07, 0x00};
    static const uint8_t bad_stored[] = {0x00, 0x05, 0x00, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'};
    static const uint8_t too_far[] = {0x03, 0x02, 0x82, 0x00};
    const struct {
        const uint8_t *p;
        size_t n;
    } cases[] = {{reserved_btype, sizeof reserved_btype}, {bad_stored, sizeof bad_stored}, {too_far, sizeof too_far}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int op = 0; op < 2; op++) {
            context("corrupt stream %zu, %s", i, op ? "text" : "binary");
            uint8_t *s = NULL;
            size_t len = 0, cap = 0;
            put_message(&s, &len, &cap, op ? CWS_OP_TEXT : CWS_OP_BINARY, CWS_RSV1, cases[i].p, cases[i].n, 0);
            int st;
            cws_conn *c = server_conn(65536, 65536, false, NULL, &st);
            uint16_t code = 0;
            CHECK(parse_expect(c, s, len, NULL, NULL, 0, &code) == CWS_ERR_INFLATE && code == 1007);
            cws_conn_free(c);
            free(s);
        }
    }
}

/* ---- a failing allocator at every call ----------------------------------------------------- */

typedef struct failing {
    long calls, fail_at, live;
} failing;

static void *f_alloc(size_t n, void *u) {
    failing *f = (failing *)u;
    if (f->calls++ == f->fail_at) return NULL;
    f->live++;
    return malloc(n ? n : 1);
}

static void f_free(void *p, void *u) {
    if (p == NULL) return;
    ((failing *)u)->live--;
    free(p);
}

/* Receiving: creating the engine, the inflater (its state, then its window on the first output)
 * and growing the reassembly buffer each fail in turn; every failure is CWS_ERR_NOMEM (1011) and
 * nothing leaks. Sending: the deflater's handle and zlib's state fail in turn. */
static void test_deflate_alloc_failure(void) {
    uint8_t m[3000];
    for (size_t i = 0; i < sizeof m; i++) m[i] = (uint8_t)('a' + (i * 13) % 26);
    size_t zlen;
    uint8_t *z = client_compress(m, sizeof m, &zlen);
    uint8_t *s = NULL;
    size_t len = 0, cap = 0;
    put_message(&s, &len, &cap, CWS_OP_TEXT, CWS_RSV1, z, zlen, 0);
    long calls_ok = -1;
    for (long k = 0;; k++) {
        failing f = {0, k, 0};
        cws_allocator a = {f_alloc, NULL, f_free, &f};
        int st;
        context("receive: allocation %ld fails", k);
        cws_conn *c = server_conn(65536, 65536, false, &a, &st);
        if (st != CWS_OK) {
            CHECK(st == CWS_ERR_NOMEM && k == 0);
            CHECK(f.live == 0);
            continue;
        }
        uint8_t *copy = (uint8_t *)xmalloc(len);
        memcpy(copy, s, len);
        const uint8_t *w[1] = {m};
        const size_t wl[1] = {sizeof m};
        uint16_t code = 0;
        st = parse_expect(c, copy, len, w, wl, f.calls > k ? 0 : 1, &code);
        free(copy);
        cws_conn_free(c);
        CHECK(f.live == 0);
        if (f.calls <= k) { /* no call failed: done */
            CHECK(st == CWS_WANT_READ);
            calls_ok = f.calls;
            break;
        }
        CHECK(st == CWS_ERR_NOMEM && code == 1011);
    }
    printf("     failing allocator (inflate): %ld allocation calls, each failed in turn\n", calls_ok);
    CHECK(calls_ok >= 4); /* engine, inflater handle, zlib state, window, reassembly */
    free(s);
    free(z);

    cws_pmd_config cfg;
    cws_pmd_config_init(&cfg);
    const cws_pmd_params agreed = {15, 15, false, false};
    long dcalls = -1;
    for (long k = 0;; k++) {
        failing f = {0, k, 0};
        cws_allocator a = {f_alloc, NULL, f_free, &f};
        cws_deflater *d = NULL;
        context("send: allocation %ld fails", k);
        int st = cws_deflater_new(&cfg, &agreed, CWS_ROLE_SERVER, &a, &d);
        if (st == CWS_OK) {
            uint8_t out[4096];
            size_t w = 1;
            bool compressed = true;
            st = cws_deflate_message(d, m, sizeof m, 0, out, sizeof out, &w, &compressed);
            if (st == CWS_ERR_NOMEM) CHECK(w == 0 && !compressed);
            /* a later message gets the state once memory is back */
            if (st == CWS_ERR_NOMEM) {
                f.fail_at = -1;
                CHECK(cws_deflate_message(d, m, sizeof m, 0, out, sizeof out, &w, &compressed) == CWS_OK && compressed);
            }
            cws_deflater_free(d);
        }
        CHECK(f.live == 0);
        if (f.calls <= k) {
            CHECK(st == CWS_OK);
            dcalls = f.calls;
            break;
        }
        CHECK(st == CWS_ERR_NOMEM);
    }
    printf("     failing allocator (deflate): %ld allocation calls, each failed in turn\n", dcalls);
    CHECK(dcalls >= 2);
}

/* ---- the deflater's API ------------------------------------------------------------------- */

static void test_deflater_api(void) {
    cws_pmd_config cfg;
    cws_pmd_config_init(&cfg);
    const cws_pmd_params agreed = {15, 15, false, false};
    cws_deflater *d = NULL;
    CHECK(cws_deflater_new(NULL, &agreed, CWS_ROLE_SERVER, NULL, &d) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_deflater_new(&cfg, &agreed, CWS_ROLE_SERVER, NULL, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_deflater_new(&cfg, &agreed, (cws_role)7, NULL, &d) == CWS_ERR_INVALID_ARGUMENT);
    const cws_allocator no_alloc = {NULL, NULL, f_free, NULL};
    CHECK(cws_deflater_new(&cfg, &agreed, CWS_ROLE_SERVER, &no_alloc, &d) == CWS_ERR_INVALID_ARGUMENT);
    /* our direction agreed at 8: zlib cannot honour it (either role) */
    const cws_pmd_params eight_s = {8, 15, false, false}, eight_c = {15, 8, false, false};
    CHECK(cws_deflater_new(&cfg, &eight_s, CWS_ROLE_SERVER, NULL, &d) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_deflater_new(&cfg, &eight_c, CWS_ROLE_CLIENT, NULL, &d) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(d == NULL);
    /* the peer's direction at 8 is fine for our deflater */
    CHECK(cws_deflater_new(&cfg, &eight_c, CWS_ROLE_SERVER, NULL, &d) == CWS_OK);
    cws_deflater_free(d);
    cws_deflater_free(NULL);

    CHECK(cws_deflate_bound(0) == 16);
    CHECK(cws_deflate_bound(1000) == 1000 + 125 + 15 + 16);
    CHECK(cws_deflate_bound(SIZE_MAX - 10) == SIZE_MAX);

    CHECK(cws_deflater_new(&cfg, &agreed, CWS_ROLE_SERVER, NULL, &d) == CWS_OK);
    uint8_t msg[600], out[1000];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)("abcabd"[i % 6]);
    size_t w = 5;
    bool z = true;
    CHECK(cws_deflate_message(NULL, msg, 10, 0, out, sizeof out, &w, &z) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_deflate_message(d, msg, 10, 0, out, sizeof out, NULL, &z) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_deflate_message(d, msg, 10, 0, out, sizeof out, &w, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_deflate_message(d, NULL, 10, 0, out, sizeof out, &w, &z) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_deflate_message(d, msg, 10, 4, out, sizeof out, &w, &z) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(w == 5 && z); /* nothing written on an argument error */
    /* the decision comes first: below the threshold (256) or marked, nothing is compressed */
    CHECK(cws_deflate_message(d, msg, 255, 0, NULL, 0, &w, &z) == CWS_OK && w == 0 && !z);
    CHECK(cws_deflate_message(d, msg, sizeof msg, CWS_DEFLATE_NO_COMPRESS, NULL, 0, &w, &z) == CWS_OK && w == 0 && !z);
    CHECK(cws_deflate_message(d, msg, sizeof msg, 0, NULL, 0, &w, &z) == CWS_ERR_BUFFER_TOO_SMALL);
    CHECK(cws_deflate_message(d, msg, sizeof msg, 0, out, cws_deflate_bound(sizeof msg) - 1, &w, &z) ==
          CWS_ERR_BUFFER_TOO_SMALL);
    CHECK(cws_deflate_message(d, msg, sizeof msg, 0, out, sizeof out, &w, &z) == CWS_OK && z && w > 0 && w < 100);
    cws_deflater_free(d);

    /* An empty message is one empty stored block without its 00 00 ff ff (RFC 7692 §7.2.3.6). */
    cfg.threshold = 0;
    CHECK(cws_deflater_new(&cfg, &agreed, CWS_ROLE_SERVER, NULL, &d) == CWS_OK);
    CHECK(cws_deflate_message(d, NULL, 0, 0, out, sizeof out, &w, &z) == CWS_OK && z && w == 1 && out[0] == 0);
    cws_deflater_free(d);

    /* A shared deflater (no agreement: its own window, reset after every message) and a
     * configured memLevel: what they send inflates back. */
    cfg.threshold = 0;
    cfg.mem_level = 1;
    for (int shared = 0; shared < 2; shared++) {
        CHECK(cws_deflater_new(&cfg, shared ? NULL : &agreed, CWS_ROLE_SERVER, NULL, &d) == CWS_OK);
        cws_config cc;
        cws_config_init(&cc, CWS_ROLE_CLIENT);
        cc.pmd = &agreed;
        cws_conn *c = NULL;
        CHECK(cws_conn_new(&cc, &c) == CWS_OK);
        for (int m = 0; m < 2; m++) { /* the second message may refer to the first */
            CHECK(cws_deflate_message(d, msg, sizeof msg, 0, out, sizeof out, &w, &z) == CWS_OK && z);
            uint8_t frame[1100];
            size_t hw = 0;
            CHECK(cws_frame_header_write(frame, sizeof frame, &hw, true, CWS_RSV1, CWS_OP_BINARY, w, NULL) == CWS_OK);
            memcpy(frame + hw, out, w);
            const uint8_t *want[1] = {msg};
            const size_t wl[1] = {sizeof msg};
            uint16_t code = 0;
            CHECK(parse_expect(c, frame, hw + w, want, wl, 1, &code) == CWS_WANT_READ);
        }
        cws_conn_free(c);
        cws_deflater_free(d);
    }
    cfg.mem_level = 0;

    /* A resetting deflater sends incompressible data as it is (nothing to keep in step); one that
     * keeps its window must compress every message it was not told to skip. */
    uint8_t rnd[1000];
    random_bytes(99, rnd, sizeof rnd);
    uint8_t big[1200];
    for (int keep = 0; keep < 2; keep++) {
        cfg.no_context_takeover = !keep;
        CHECK(cws_deflater_new(&cfg, &agreed, CWS_ROLE_SERVER, NULL, &d) == CWS_OK);
        CHECK(cws_deflate_message(d, rnd, sizeof rnd, 0, big, sizeof big, &w, &z) == CWS_OK);
        CHECK(keep ? (z && w > sizeof rnd) : (!z && w == 0));
        cws_deflater_free(d);
    }
}

/* ---- a pool of inflaters shared by the engines of one thread --------------------------------- */

/* Counts live blocks and bytes of one allocator. */
typedef struct counting {
    long blocks;
    size_t bytes;
} counting;

static void *k_alloc(size_t n, void *u) {
    counting *k = (counting *)u;
    size_t *p = (size_t *)malloc(n + sizeof(size_t));
    if (p == NULL) return NULL;
    *p = n;
    k->blocks++;
    k->bytes += n;
    return p + 1;
}

static void k_free(void *q, void *u) {
    if (q == NULL) return;
    counting *k = (counting *)u;
    size_t *p = (size_t *)q - 1;
    k->blocks--;
    k->bytes -= *p;
    free(p);
}

/* A client-role deflater as a peer that agreed client_no_context_takeover uses it (reset) or
 * ignores it (keeps its window). */
static cws_deflater *peer_deflater(bool keeps_context) {
    cws_pmd_config cfg;
    cws_pmd_config_init(&cfg);
    cfg.threshold = 0;
    const cws_pmd_params agreed = {15, 15, false, !keeps_context};
    cws_deflater *d = NULL;
    CHECK(cws_deflater_new(&cfg, &agreed, CWS_ROLE_CLIENT, NULL, &d) == CWS_OK);
    return d;
}

/* Frames (masked, text) of message m compressed by d, appended to *s. */
static void put_compressed(cws_deflater *d, const uint8_t *m, size_t n, uint8_t **s, size_t *len, size_t *cap) {
    uint8_t *z = (uint8_t *)xmalloc(cws_deflate_bound(n));
    size_t w = 0;
    bool compressed = false;
    CHECK(cws_deflate_message(d, m, n, 0, z, cws_deflate_bound(n), &w, &compressed) == CWS_OK && compressed);
    put_message(s, len, cap, CWS_OP_TEXT, CWS_RSV1, z, w, 0);
    free(z);
}

static cws_conn *pooled_conn(cws_inflater_pool *pool, const cws_allocator *a) {
    const cws_pmd_params agreed = {15, 15, false, true};
    cws_config cfg;
    cws_config_init(&cfg, CWS_ROLE_SERVER);
    cfg.pmd = &agreed;
    cfg.inflaters = pool;
    cfg.allocator = a;
    cws_conn *c = NULL;
    CHECK(cws_conn_new(&cfg, &c) == CWS_OK);
    return c;
}

static void test_inflater_pool(void) {
    cws_inflater_pool *pool = NULL;
    const cws_allocator no_alloc = {NULL, NULL, f_free, NULL};
    CHECK(cws_inflater_pool_new(NULL, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_inflater_pool_new(&no_alloc, &pool) == CWS_ERR_INVALID_ARGUMENT && pool == NULL);
    cws_inflater_pool_free(NULL);
    CHECK(cws_inflater_pool_count(NULL) == 0);
    failing f = {0, 0, 0};
    const cws_allocator fa = {f_alloc, NULL, f_free, &f};
    CHECK(cws_inflater_pool_new(&fa, &pool) == CWS_ERR_NOMEM && pool == NULL);

    counting pk = {0, 0}, ek = {0, 0};
    const cws_allocator pa = {k_alloc, NULL, k_free, &pk}, ea = {k_alloc, NULL, k_free, &ek};
    CHECK(cws_inflater_pool_new(&pa, &pool) == CWS_OK);

    /* Only for a peer that resets after every message (RFC 7692 §7.1.1.2), in either role. */
    {
        cws_config cfg;
        cws_config_init(&cfg, CWS_ROLE_SERVER);
        cfg.inflaters = pool;
        cws_conn *c = NULL;
        CHECK(cws_conn_new(&cfg, &c) == CWS_ERR_INVALID_ARGUMENT); /* no extension */
        const cws_pmd_params keeps = {15, 15, true, false};
        cfg.pmd = &keeps;
        CHECK(cws_conn_new(&cfg, &c) == CWS_ERR_INVALID_ARGUMENT); /* the client keeps context */
        cws_config_init(&cfg, CWS_ROLE_CLIENT);
        cfg.inflaters = pool;
        const cws_pmd_params client_resets = {15, 15, false, true};
        cfg.pmd = &client_resets;
        CHECK(cws_conn_new(&cfg, &c) == CWS_ERR_INVALID_ARGUMENT); /* a client receives server's */
        const cws_pmd_params server_resets = {15, 15, true, false};
        cfg.pmd = &server_resets;
        CHECK(cws_conn_new(&cfg, &c) == CWS_OK);
        cws_conn_free(c);
    }

    /* Two connections on one thread, their messages interleaved: A's first half, B's whole
     * message, A's second half. Each inflates correctly; the pool lends two inflaters at once and
     * gets both back; an engine holds no zlib state between messages. */
    uint8_t ma[3000], mb[2500];
    for (size_t i = 0; i < sizeof ma; i++) ma[i] = (uint8_t)("hello pooled world "[i % 19]);
    for (size_t i = 0; i < sizeof mb; i++) mb[i] = (uint8_t)('a' + (i * 7) % 26);
    cws_deflater *da = peer_deflater(false), *db = peer_deflater(false);
    cws_conn *a = pooled_conn(pool, &ea), *b = pooled_conn(pool, &ea);
    const long engine_blocks = ek.blocks;
    for (int round = 0; round < 3; round++) {
        context("interleaved round %d", round);
        uint8_t *sa = NULL, *sb = NULL;
        size_t la = 0, ca = 0, lb = 0, cb = 0;
        put_compressed(da, ma, sizeof ma, &sa, &la, &ca);
        put_compressed(db, mb, sizeof mb, &sb, &lb, &cb);
        const size_t half = la / 2;
        const uint8_t *wa[1] = {ma}, *wb[1] = {mb};
        const size_t wla[1] = {sizeof ma}, wlb[1] = {sizeof mb};
        uint16_t code = 0;
        CHECK(parse_expect(a, sa, half, wa, wla, 0, &code) == CWS_WANT_READ);
        CHECK(parse_expect(b, sb, lb, wb, wlb, 1, &code) == CWS_WANT_READ);
        CHECK(parse_expect(a, sa + half, la - half, wa, wla, 1, &code) == CWS_WANT_READ);
        CHECK(cws_inflater_pool_count(pool) == 2);
        /* between messages: the engines hold their reassembly buffers only */
        CHECK(ek.blocks == engine_blocks + 2);
        free(sa);
        free(sb);
    }
    /* One after the other: one inflater would do, the two idle ones are reused. */
    {
        uint8_t *sa = NULL, *sb = NULL;
        size_t la = 0, ca = 0, lb = 0, cb = 0;
        put_compressed(da, ma, sizeof ma, &sa, &la, &ca);
        put_compressed(db, mb, sizeof mb, &sb, &lb, &cb);
        const uint8_t *wa[1] = {ma}, *wb[1] = {mb};
        const size_t wla[1] = {sizeof ma}, wlb[1] = {sizeof mb};
        uint16_t code = 0;
        CHECK(parse_expect(a, sa, la, wa, wla, 1, &code) == CWS_WANT_READ);
        CHECK(parse_expect(b, sb, lb, wb, wlb, 1, &code) == CWS_WANT_READ);
        CHECK(cws_inflater_pool_count(pool) == 2);
        free(sa);
        free(sb);
    }

    /* A client that ignores client_no_context_takeover: its second message refers into the first
     * one's window, which the pooled inflater no longer has: 1007 for that connection alone. */
    cws_deflater *bad = peer_deflater(true);
    cws_conn *x = pooled_conn(pool, &ea);
    {
        context("a peer that keeps its context");
        uint8_t *s1 = NULL, *s2 = NULL, *sb = NULL;
        size_t l1 = 0, c1 = 0, l2 = 0, c2 = 0, lb = 0, cb = 0;
        put_compressed(bad, ma, sizeof ma, &s1, &l1, &c1);
        put_compressed(bad, ma, sizeof ma, &s2, &l2, &c2); /* all of it a reference to the first */
        const uint8_t *w[1] = {ma};
        const size_t wl[1] = {sizeof ma};
        uint16_t code = 0;
        CHECK(parse_expect(x, s1, l1, w, wl, 1, &code) == CWS_WANT_READ);
        CHECK(parse_expect(x, s2, l2, w, wl, 0, &code) == CWS_ERR_INFLATE && code == 1007);
        /* the others on the pool go on */
        put_compressed(db, mb, sizeof mb, &sb, &lb, &cb);
        const uint8_t *wb[1] = {mb};
        const size_t wlb[1] = {sizeof mb};
        CHECK(parse_expect(b, sb, lb, wb, wlb, 1, &code) == CWS_WANT_READ);
        CHECK(cws_inflater_pool_count(pool) == 2);
        free(s1);
        free(s2);
        free(sb);
    }
    /* Freed in the middle of a message: the inflater goes back to the pool. */
    {
        uint8_t *sa = NULL;
        size_t la = 0, ca = 0;
        put_compressed(da, ma, sizeof ma, &sa, &la, &ca);
        uint16_t code = 0;
        CHECK(parse_expect(a, sa, la / 2, NULL, NULL, 0, &code) == CWS_WANT_READ);
        free(sa);
    }
    cws_conn_free(a);
    cws_conn_free(b);
    cws_conn_free(x);
    cws_deflater_free(da);
    cws_deflater_free(db);
    cws_deflater_free(bad);
    CHECK(ek.blocks == 0 && ek.bytes == 0);
    CHECK(cws_inflater_pool_count(pool) == 2);
    cws_inflater_pool_free(pool);
    CHECK(pk.blocks == 0 && pk.bytes == 0);

    /* The pool's allocator failing: CWS_ERR_NOMEM (1011) at the first compressed message. */
    for (long k = 1; k < 4; k++) {
        failing pf = {0, -1, 0};
        const cws_allocator pfa = {f_alloc, NULL, f_free, &pf};
        cws_inflater_pool *fp = NULL;
        CHECK(cws_inflater_pool_new(&pfa, &fp) == CWS_OK);
        pf.fail_at = pf.calls + k - 1; /* the k-th call after the pool itself */
        cws_conn *c = pooled_conn(fp, NULL);
        cws_deflater *d = peer_deflater(false);
        uint8_t *s = NULL;
        size_t l = 0, cp = 0;
        put_compressed(d, ma, sizeof ma, &s, &l, &cp);
        const uint8_t *w[1] = {ma};
        const size_t wl[1] = {sizeof ma};
        uint16_t code = 0;
        context("pool allocation %ld fails", k);
        /* calls 1-3: the inflater's handle, zlib's state, its window (on first output) */
        CHECK(parse_expect(c, s, l, w, wl, 0, &code) == CWS_ERR_NOMEM && code == 1011);
        cws_conn_free(c);
        cws_deflater_free(d);
        cws_inflater_pool_free(fp);
        CHECK(pf.live == 0);
        free(s);
    }
}

/* Two threads, each with its own engine and peer, taking turns on one pool as fast as they can:
 * every message inflates exactly, the pool never lends more inflaters than there are threads. */
typedef struct pool_worker {
    cws_inflater_pool *pool;
    uint8_t *stream;
    size_t len;
    const uint8_t *msg;
    size_t msg_len;
    int messages, ok;
} pool_worker;

static void *pool_worker_run(void *arg) {
    pool_worker *w = (pool_worker *)arg;
    cws_conn *c = pooled_conn(w->pool, NULL);
    for (int r = 0; r < 50; r++) {
        uint8_t *copy = (uint8_t *)xmalloc(w->len);
        memcpy(copy, w->stream, w->len); /* parse unmasks in place */
        size_t pos = 0;
        for (;;) {
            size_t used = 0;
            cws_event ev;
            int st = cws_conn_parse(c, copy + pos, w->len - pos, &used, &ev);
            pos += used;
            if (st != CWS_OK) break;
            if (ev.length == w->msg_len && memcmp(ev.data, w->msg, w->msg_len) == 0) w->ok++;
            w->messages++;
        }
        free(copy);
    }
    cws_conn_free(c);
    return NULL;
}

static void test_inflater_pool_threads(void) {
    cws_inflater_pool *pool = NULL;
    CHECK(cws_inflater_pool_new(NULL, &pool) == CWS_OK);
    uint8_t m[2][1500];
    pool_worker w[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        for (size_t k = 0; k < sizeof m[i]; k++) m[i][k] = (uint8_t)('a' + (k * (size_t)(i + 3)) % 26);
        memset(&w[i], 0, sizeof w[i]);
        w[i].pool = pool;
        w[i].msg = m[i];
        w[i].msg_len = sizeof m[i];
        cws_deflater *d = peer_deflater(false);
        size_t cap = 0;
        for (int k = 0; k < 20; k++) put_compressed(d, m[i], sizeof m[i], &w[i].stream, &w[i].len, &cap);
        cws_deflater_free(d);
    }
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, pool_worker_run, &w[i]) == 0);
    for (int i = 0; i < 2; i++) CHECK(pthread_join(t[i], NULL) == 0);
    for (int i = 0; i < 2; i++) CHECK(w[i].messages == 1000 && w[i].ok == 1000);
    CHECK(cws_inflater_pool_count(pool) >= 1 && cws_inflater_pool_count(pool) <= 2);
    cws_inflater_pool_free(pool);
    for (int i = 0; i < 2; i++) free(w[i].stream);
}

/* ---- zlib state only on the first compressed message, in each direction --------------------- */

static void test_lazy_zlib_state(void) {
    counting ek = {0, 0};
    const cws_allocator ea = {k_alloc, NULL, k_free, &ek};
    /* Receiving: the engine with the extension agreed is the engine alone until a compressed
     * message arrives; uncompressed messages add only the reassembly buffer they need. */
    const cws_pmd_params agreed = {15, 15, false, false};
    cws_config cfg;
    cws_config_init(&cfg, CWS_ROLE_SERVER);
    cfg.pmd = &agreed;
    cfg.allocator = &ea;
    cws_conn *c = NULL;
    CHECK(cws_conn_new(&cfg, &c) == CWS_OK);
    CHECK(ek.blocks == 1);
    const size_t engine = ek.bytes;
    uint8_t m[600];
    for (size_t i = 0; i < sizeof m; i++) m[i] = (uint8_t)('a' + i % 26);
    uint8_t *s = NULL;
    size_t len = 0, cap = 0;
    put_message(&s, &len, &cap, CWS_OP_TEXT, 0, m, sizeof m, 0); /* in place: no copy */
    const uint8_t *w[1] = {m};
    const size_t wl[1] = {sizeof m};
    uint16_t code = 0;
    CHECK(parse_expect(c, s, len, w, wl, 1, &code) == CWS_WANT_READ);
    CHECK(ek.blocks == 1 && ek.bytes == engine);
    free(s);
    s = NULL;
    len = cap = 0;
    cws_deflater *d = peer_deflater(true);
    put_compressed(d, m, sizeof m, &s, &len, &cap);
    CHECK(parse_expect(c, s, len, w, wl, 1, &code) == CWS_WANT_READ);
    /* engine + reassembly buffer + inflater handle, zlib's state and its window */
    CHECK(ek.blocks == 5 && ek.bytes > engine + (1u << 15));
    cws_conn_free(c);
    cws_deflater_free(d);
    free(s);
    CHECK(ek.blocks == 0);

    /* Sending: a dedicated deflater is a small handle until it compresses a message; messages
     * below the threshold or marked do not create the zlib state. */
    cws_pmd_config pc;
    cws_pmd_config_init(&pc);
    cws_deflater *sd = NULL;
    CHECK(cws_deflater_new(&pc, &agreed, CWS_ROLE_SERVER, &ea, &sd) == CWS_OK);
    CHECK(ek.blocks == 1 && ek.bytes < 512);
    uint8_t out[1200];
    size_t ow = 0;
    bool oz = false;
    CHECK(cws_deflate_message(sd, m, 100, 0, out, sizeof out, &ow, &oz) == CWS_OK && !oz);
    CHECK(cws_deflate_message(sd, m, sizeof m, CWS_DEFLATE_NO_COMPRESS, out, sizeof out, &ow, &oz) == CWS_OK && !oz);
    CHECK(ek.blocks == 1 && ek.bytes < 512);
    CHECK(cws_deflate_message(sd, m, sizeof m, 0, out, sizeof out, &ow, &oz) == CWS_OK && oz);
    CHECK(ek.blocks > 1 && ek.bytes > (1u << 17)); /* window 15, memLevel 8: ~262 KiB */
    cws_deflater_free(sd);
    CHECK(ek.blocks == 0 && ek.bytes == 0);
}

void deflate_tests(void) {
    run_test("inflater pool shared by two threads", test_inflater_pool_threads);
    run_test("zlib state only on the first compressed message, in each direction", test_lazy_zlib_state);
    run_test("inflater pool: interleaved connections, a peer that keeps its context, failures", test_inflater_pool);
    run_test("deflater: arguments, threshold, empty and incompressible messages", test_deflater_api);
    run_test("compressed frames: frame limit with deflate's slack (issue 11 item 14)", test_compressed_frame_limit);
    run_test("inflate: the 1-byte probe at a full buffer and at the limit", test_inflate_probe);
    run_test("inflate: corrupt streams are 1007", test_inflate_corrupt);
    run_test("inflate and deflate: failing allocator at every call", test_deflate_alloc_failure);
}
