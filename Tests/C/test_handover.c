/*
 * test_handover.c — cws_config.reassembly: reassembly buffers come from the caller's allocator
 * and are handed over with their event. A split frame, a fragmented message, inflated messages
 * (permessage-deflate), the caller freeing the buffers (after more parsing, after cws_conn_free),
 * an error and cws_conn_free in the middle of a message, a failing allocator at every call, and
 * every vector and random stream giving the same events as without a handover. A counting
 * allocator proves that nothing leaks and nothing is freed twice (and ASan checks each free).
 */
#include "test_harness.h"

/* The reassembly allocator of these tests: counts blocks, remembers the last block it returned,
 * can fail one call. */
typedef struct ho_alloc {
    long calls;   /* alloc + realloc calls */
    long fail_at; /* fail the call with this index (-1: never) */
    long live;    /* blocks outstanding */
    long frees;
    void *last;   /* the last block alloc or realloc returned */
    size_t last_size; /* and its size */
} ho_alloc;

static void *ho_alloc_fn(size_t n, void *u) {
    ho_alloc *h = (ho_alloc *)u;
    if (h->calls++ == h->fail_at) return NULL;
    void *p = malloc(n);
    if (p) {
        h->live++;
        h->last = p;
        h->last_size = n;
    }
    return p;
}
static void *ho_realloc_fn(void *p, size_t n, void *u) {
    ho_alloc *h = (ho_alloc *)u;
    if (h->calls++ == h->fail_at) return NULL;
    void *q = realloc(p, n);
    if (q) {
        if (p == NULL) h->live++;
        h->last = q;
        h->last_size = n;
    }
    return q;
}
static void ho_free_fn(void *p, void *u) {
    ho_alloc *h = (ho_alloc *)u;
    if (p) {
        h->live--;
        h->frees++;
    }
    free(p);
}

static cws_allocator ho_allocator(ho_alloc *h, bool with_realloc) {
    cws_allocator a = {ho_alloc_fn, with_realloc ? ho_realloc_fn : NULL, ho_free_fn, h};
    return a;
}

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Appends one frame (masked with `key` when not NULL) carrying p[0..n) to s. */
static void put_frame(uint8_t **s, size_t *len, size_t *cap, bool fin, uint8_t rsv, uint8_t opcode,
                      const uint8_t *p, size_t n, const uint8_t *key) {
    uint8_t hdr[CWS_MAX_HEADER_SIZE];
    size_t w = 0;
    CHECK(cws_frame_header_write(hdr, sizeof hdr, &w, fin, rsv, opcode, n, key) == CWS_OK);
    for (size_t i = 0; i < w; i++) buf_push(s, len, cap, hdr[i]);
    for (size_t i = 0; i < n; i++) buf_push(s, len, cap, key ? (uint8_t)(p[i] ^ key[i & 3]) : p[i]);
}

static const uint8_t KEY[4] = {0x37, 0xFA, 0x21, 0x3D};

/* Parses s[0..len) in chunks of `chunk` bytes until an event or an error; *pos advances. */
static int next_event(cws_conn *c, uint8_t *s, size_t len, size_t *pos, size_t chunk, cws_event *ev) {
    for (;;) {
        size_t n = len - *pos < chunk ? len - *pos : chunk, used = 0;
        int st = cws_conn_parse(c, s + *pos, n, &used, ev);
        *pos += used;
        if (st != CWS_WANT_READ || *pos == len) return st;
    }
}

static cws_conn *server(const cws_allocator *engine, const cws_allocator *reassembly,
                        const cws_pmd_params *pmd) {
    cws_config cfg;
    cws_config_init(&cfg, CWS_ROLE_SERVER);
    cfg.max_message_size = 1 << 20;
    cfg.max_frame_size = 1 << 20;
    cfg.allocator = engine;
    cfg.reassembly = reassembly;
    cfg.pmd = pmd;
    cws_conn *c = NULL;
    CHECK(cws_conn_new(&cfg, &c) == CWS_OK);
    return c;
}

static void test_handover_arguments(void) {
    cws_config cfg;
    cws_config_init(&cfg, CWS_ROLE_SERVER);
    CHECK(cfg.reassembly == NULL);
    cws_conn *c = NULL;
    ho_alloc h = {.fail_at = -1};
    cws_allocator half = ho_allocator(&h, true);
    half.free = NULL;
    cfg.reassembly = &half;
    CHECK(cws_conn_new(&cfg, &c) == CWS_ERR_INVALID_ARGUMENT && c == NULL);
    half = ho_allocator(&h, true);
    half.alloc = NULL;
    CHECK(cws_conn_new(&cfg, &c) == CWS_ERR_INVALID_ARGUMENT && c == NULL);
    CHECK(h.calls == 0);
}

/* A 300,000-byte binary frame fed 1000 bytes at a time (a frame split across reads), then a
 * small one in place, then the same large one again. */
static void test_handover_split_frame(void) {
    for (int with_realloc = 0; with_realloc < 2; with_realloc++) {
        context("split frame, realloc %d", with_realloc);
        const size_t n = 300000;
        uint8_t *m = (uint8_t *)xmalloc(n);
        uint64_t seed = 42;
        for (size_t i = 0; i < n; i++) m[i] = (uint8_t)rnd(&seed);
        uint8_t *s = NULL;
        size_t len = 0, cap = 0;
        put_frame(&s, &len, &cap, true, 0, CWS_OP_BINARY, m, n, KEY);
        put_frame(&s, &len, &cap, true, 0, CWS_OP_TEXT, (const uint8_t *)"hi", 2, KEY);
        put_frame(&s, &len, &cap, true, 0, CWS_OP_BINARY, m, n, KEY);
        tracking te = {.fail_at = -1};
        cws_allocator ea = {t_alloc, t_realloc, t_free, &te};
        ho_alloc h = {.fail_at = -1};
        cws_allocator ra = ho_allocator(&h, with_realloc);
        cws_conn *c = server(&ea, &ra, NULL);
        if (c == NULL) return;
        size_t pos = 0;
        cws_event ev;
        CHECK(next_event(c, s, len, &pos, 1000, &ev) == CWS_OK);
        CHECK(ev.type == CWS_EVENT_BINARY && ev.in_input == 0 && ev.offset == 0 && ev.length == n);
        CHECK(ev.data == h.last); /* the block the allocator returned last: the caller's now */
        CHECK(ev.data != NULL && memcmp(ev.data, m, n) == 0);
        CHECK(h.live == 1);
        const uint8_t *first = (const uint8_t *)ev.data;
        const long frees = h.frees; /* the growth's, without realloc */
        /* The engine forgot it: the next call takes the fast path (in place) and frees nothing. */
        CHECK(next_event(c, s, len, &pos, 1000, &ev) == CWS_OK);
        CHECK(ev.type == CWS_EVENT_TEXT && ev.in_input == 1 && ev.length == 2);
        CHECK(h.live == 1 && h.frees == frees);
        /* The second large message gets a new buffer; the first is untouched. */
        CHECK(next_event(c, s, len, &pos, 1000, &ev) == CWS_OK);
        CHECK(ev.type == CWS_EVENT_BINARY && ev.length == n && ev.data == h.last && ev.data != first);
        CHECK(memcmp(ev.data, m, n) == 0);
        CHECK(h.live == 2 && pos == len);
        cws_event end;
        size_t used;
        CHECK(cws_conn_parse(c, NULL, 0, &used, &end) == CWS_WANT_READ);
        /* No reassembly through the engine's own allocator: just the engine itself. */
        CHECK(te.live == 1 && te.calls == 1);
        cws_conn_free(c);
        CHECK(te.live == 0);
        /* Both buffers outlive the engine: they are the caller's (ASan: no use after free). */
        CHECK(h.live == 2);
        CHECK(memcmp(first, m, n) == 0 && memcmp(ev.data, m, n) == 0);
        ra.free((void *)first, ra.user);
        ra.free((void *)ev.data, ra.user);
        CHECK(h.live == 0);
        free(s);
        free(m);
    }
}

/* A fragmented text message (with a ping between fragments) and an empty fragmented message. */
static void test_handover_fragmented(void) {
    const char *parts[] = {"Hello, ", "fragmented ", "w\xC3", "\xB6rld"};
    uint8_t *s = NULL;
    size_t len = 0, cap = 0;
    for (int i = 0; i < 4; i++) {
        put_frame(&s, &len, &cap, i == 3, 0, i == 0 ? CWS_OP_TEXT : CWS_OP_CONTINUATION,
                  (const uint8_t *)parts[i], strlen(parts[i]), KEY);
        if (i == 1) put_frame(&s, &len, &cap, true, 0, CWS_OP_PING, (const uint8_t *)"p", 1, KEY);
    }
    put_frame(&s, &len, &cap, false, 0, CWS_OP_BINARY, NULL, 0, KEY);
    put_frame(&s, &len, &cap, true, 0, CWS_OP_CONTINUATION, NULL, 0, KEY);
    const char *want = "Hello, fragmented w\xC3\xB6rld";
    const size_t chunks[] = {len, 1, 5};
    for (size_t k = 0; k < 3; k++) {
        context("fragmented, chunks of %zu", chunks[k]);
        uint8_t *copy = (uint8_t *)xmalloc(len);
        memcpy(copy, s, len);
        ho_alloc h = {.fail_at = -1};
        cws_allocator ra = ho_allocator(&h, true);
        cws_conn *c = server(NULL, &ra, NULL);
        if (c == NULL) return;
        size_t pos = 0;
        cws_event ev;
        CHECK(next_event(c, copy, len, &pos, chunks[k], &ev) == CWS_OK && ev.type == CWS_EVENT_PING);
        CHECK(h.live == 1); /* the first fragments, still the engine's */
        CHECK(next_event(c, copy, len, &pos, chunks[k], &ev) == CWS_OK && ev.type == CWS_EVENT_TEXT);
        CHECK(ev.in_input == 0 && ev.length == strlen(want) && ev.data == h.last);
        CHECK(ev.data != NULL && memcmp(ev.data, want, ev.length) == 0);
        void *text = (void *)ev.data;
        /* The empty message hands over nothing and allocates nothing. */
        CHECK(next_event(c, copy, len, &pos, chunks[k], &ev) == CWS_OK && ev.type == CWS_EVENT_BINARY);
        CHECK(ev.length == 0 && ev.data == NULL && pos == len);
        CHECK(h.live == 1 && h.frees == 0);
        ra.free(text, ra.user); /* freed while the engine lives on */
        cws_event end;
        size_t used;
        CHECK(cws_conn_parse(c, NULL, 0, &used, &end) == CWS_WANT_READ);
        cws_conn_free(c);
        CHECK(h.live == 0 && h.frees == 1);
        free(copy);
    }
    free(s);
}

/* Compresses m[0..n) as a client would send it (level 1, window 15, context takeover). */
static uint8_t *compress(cws_deflater *d, const uint8_t *m, size_t n, size_t *out_len) {
    const size_t cap = cws_deflate_bound(n);
    uint8_t *out = (uint8_t *)xmalloc(cap);
    bool compressed = false;
    *out_len = 0;
    CHECK(cws_deflate_message(d, m, n, 0, out, cap, out_len, &compressed) == CWS_OK && compressed);
    return out;
}

/* permessage-deflate: every compressed message is inflated into a reassembly buffer, so each is
 * handed over, whether it came in one frame inside one read, fragmented, or split across reads;
 * an empty compressed message (one 0x00 byte, RFC 7692 §7.2.3.6) hands over nothing. */
static void test_handover_inflated(void) {
    const cws_pmd_params agreed = {15, 15, false, false};
    cws_pmd_config pc;
    cws_pmd_config_init(&pc);
    pc.threshold = 0;
    const size_t sizes[] = {5, 1000, 1024, 5000, 200000};
    const size_t nsizes = sizeof sizes / sizeof sizes[0];
    for (int layout = 0; layout < 3; layout++) {
        context("inflated, layout %d", layout);
        cws_deflater *d = NULL;
        CHECK(cws_deflater_new(&pc, &agreed, CWS_ROLE_CLIENT, NULL, &d) == CWS_OK);
        if (d == NULL) return;
        uint8_t *s = NULL, *msgs[5];
        size_t len = 0, cap = 0;
        uint64_t seed = 7;
        for (size_t k = 0; k < nsizes; k++) {
            msgs[k] = (uint8_t *)xmalloc(sizes[k]);
            for (size_t i = 0; i < sizes[k]; i++) msgs[k][i] = (uint8_t)('a' + rnd(&seed) % 4);
            size_t zlen;
            uint8_t *z = compress(d, msgs[k], sizes[k], &zlen);
            if (layout == 1 && zlen > 3) { /* three fragments */
                const size_t a = zlen / 3, b = 2 * zlen / 3;
                put_frame(&s, &len, &cap, false, CWS_RSV1, CWS_OP_TEXT, z, a, KEY);
                put_frame(&s, &len, &cap, false, 0, CWS_OP_CONTINUATION, z + a, b - a, KEY);
                put_frame(&s, &len, &cap, true, 0, CWS_OP_CONTINUATION, z + b, zlen - b, KEY);
            } else {
                put_frame(&s, &len, &cap, true, CWS_RSV1, CWS_OP_TEXT, z, zlen, KEY);
            }
            free(z);
        }
        const uint8_t empty = 0x00;
        put_frame(&s, &len, &cap, true, CWS_RSV1, CWS_OP_BINARY, &empty, 1, KEY);
        tracking te = {.fail_at = -1};
        cws_allocator ea = {t_alloc, t_realloc, t_free, &te};
        ho_alloc h = {.fail_at = -1};
        cws_allocator ra = ho_allocator(&h, true);
        cws_conn *c = server(&ea, &ra, &agreed);
        if (c == NULL) return;
        size_t pos = 0;
        const size_t chunk = layout == 2 ? 777 : len;
        void *handed[5];
        for (size_t k = 0; k < nsizes; k++) {
            cws_event ev;
            CHECK(next_event(c, s, len, &pos, chunk, &ev) == CWS_OK);
            CHECK(ev.type == CWS_EVENT_TEXT && ev.rsv == CWS_RSV1 && ev.in_input == 0);
            CHECK(ev.length == sizes[k] && ev.data == h.last);
            CHECK(ev.data != NULL && memcmp(ev.data, msgs[k], sizes[k]) == 0);
            CHECK(h.live == (long)k + 1);
            handed[k] = (void *)ev.data;
        }
        const long frees = h.frees;
        cws_event ev;
        CHECK(next_event(c, s, len, &pos, chunk, &ev) == CWS_OK);
        CHECK(ev.type == CWS_EVENT_BINARY && ev.length == 0 && ev.data == NULL && pos == len);
        /* its 1-byte-probe buffer was the engine's, freed there */
        CHECK(h.live == (long)nsizes && h.frees == frees + 1);
        cws_event end;
        size_t used;
        CHECK(cws_conn_parse(c, NULL, 0, &used, &end) == CWS_WANT_READ);
        cws_conn_free(c);
        CHECK(te.live == 0);
        for (size_t k = 0; k < nsizes; k++) {
            CHECK(memcmp(handed[k], msgs[k], sizes[k]) == 0); /* still intact after the engine */
            ra.free(handed[k], ra.user);
            free(msgs[k]);
        }
        CHECK(h.live == 0);
        cws_deflater_free(d);
        free(s);
    }
}

/* zlib's slow tail (cws__inflate_finish): an inflated message that ends within 258 bytes of the
 * end of its buffer makes the next message's buffer start at twice that size, up to 4 KiB. */
static void test_handover_inflated_first_size(void) {
    const cws_pmd_params agreed = {15, 15, false, false};
    cws_pmd_config pc;
    cws_pmd_config_init(&pc);
    pc.threshold = 0;
    /* message sizes, and the size of the first allocation of each message's buffer */
    const size_t sizes[] = {1024, 1024, 300, 2000, 4000, 4000, 8000};
    const size_t first[] = {1024, 2048, 2048, 2048, 4096, 4096, 4096};
    const size_t n = sizeof sizes / sizeof sizes[0];
    cws_deflater *d = NULL;
    CHECK(cws_deflater_new(&pc, &agreed, CWS_ROLE_CLIENT, NULL, &d) == CWS_OK);
    if (d == NULL) return;
    ho_alloc h = {.fail_at = -1};
    cws_allocator ra = ho_allocator(&h, true);
    cws_conn *c = server(NULL, &ra, &agreed);
    if (c == NULL) return;
    uint64_t seed = 99;
    for (size_t k = 0; k < n; k++) {
        context("first size: message %zu of %zu bytes", k, sizes[k]);
        uint8_t *m = (uint8_t *)xmalloc(sizes[k]);
        for (size_t i = 0; i < sizes[k]; i++) m[i] = (uint8_t)('a' + rnd(&seed) % 8);
        size_t zlen;
        uint8_t *z = compress(d, m, sizes[k], &zlen);
        uint8_t *s = NULL;
        size_t len = 0, cap = 0, pos = 0;
        put_frame(&s, &len, &cap, true, CWS_RSV1, CWS_OP_TEXT, z, zlen, KEY);
        const long calls = h.calls;
        cws_event ev;
        CHECK(next_event(c, s, len, &pos, len, &ev) == CWS_OK);
        CHECK(ev.length == sizes[k] && ev.data == h.last && memcmp(ev.data, m, sizes[k]) == 0);
        /* the buffer's first allocation: the first call for this message */
        CHECK(h.calls > calls);
        if (h.calls == calls + 1) CHECK(h.last_size == first[k]);
        else CHECK(first[k] < sizes[k]); /* it grew: only where the message is larger */
        ra.free((void *)ev.data, ra.user);
        free(s);
        free(z);
        free(m);
    }
    cws_conn_free(c);
    CHECK(h.live == 0);
    cws_deflater_free(d);
}

/* An error in the middle of a message, and cws_conn_free in the middle of one: the buffer was
 * never handed over, so the engine frees it; buffers handed over before stay the caller's. */
static void test_handover_mid_message(void) {
    const uint8_t a[] = "first message, handed over";
    const uint8_t b[] = "second, cut";
    for (int how = 0; how < 4; how++) {
        context("mid-message, case %d", how);
        uint8_t *s = NULL;
        size_t len = 0, cap = 0;
        put_frame(&s, &len, &cap, false, 0, CWS_OP_TEXT, a, 10, KEY);
        put_frame(&s, &len, &cap, true, 0, CWS_OP_CONTINUATION, a + 10, sizeof a - 11, KEY);
        put_frame(&s, &len, &cap, false, 0, CWS_OP_TEXT, b, sizeof b - 1, KEY);
        const size_t second_started = len;
        if (how == 0) { /* a new message while this one is open: 1002 */
            put_frame(&s, &len, &cap, true, 0, CWS_OP_BINARY, b, 3, KEY);
        } else if (how == 1) { /* invalid UTF-8 in the next fragment: 1007 */
            put_frame(&s, &len, &cap, true, 0, CWS_OP_CONTINUATION, (const uint8_t *)"\xC0\xAF", 2, KEY);
        } else { /* cut inside the next fragment (how 2) or its header (how 3) */
            put_frame(&s, &len, &cap, true, 0, CWS_OP_CONTINUATION, b, sizeof b - 1, KEY);
            len = how == 2 ? len - 3 : second_started + 1;
        }
        ho_alloc h = {.fail_at = -1};
        cws_allocator ra = ho_allocator(&h, true);
        cws_conn *c = server(NULL, &ra, NULL);
        if (c == NULL) return;
        size_t pos = 0;
        cws_event ev;
        CHECK(next_event(c, s, len, &pos, 4, &ev) == CWS_OK && ev.type == CWS_EVENT_TEXT);
        CHECK(ev.length == sizeof a - 1 && memcmp(ev.data, a, ev.length) == 0 && ev.data == h.last);
        void *first = (void *)ev.data;
        int st = next_event(c, s, len, &pos, 4, &ev);
        if (how < 2) {
            CHECK(st == (how == 0 ? CWS_ERR_EXPECTED_CONTINUATION : CWS_ERR_INVALID_UTF8));
            CHECK(ev.type == CWS_EVENT_ERROR && ev.close_code == (how == 0 ? 1002 : 1007));
            size_t used;
            CHECK(cws_conn_parse(c, NULL, 0, &used, &ev) == st); /* latched */
        } else {
            CHECK(st == CWS_WANT_READ && pos == len);
        }
        CHECK(h.live == 2); /* the first (the caller's) and the open message's (the engine's) */
        cws_conn_free(c);
        CHECK(h.live == 1 && h.frees == 1);
        CHECK(memcmp(first, a, sizeof a - 1) == 0);
        ra.free(first, ra.user);
        CHECK(h.live == 0);
        free(s);
    }
}

/* The allocator failing at each of its calls in turn (the engine's own allocator never fails):
 * CWS_ERR_NOMEM after a prefix of the events, and nothing leaks. */
static void test_handover_alloc_failure(void) {
    uint8_t *s;
    size_t len;
    run_result expect = {0};
    alloc_stream(&s, &len, &expect);
    for (int with_realloc = 0; with_realloc < 2; with_realloc++) {
        long sites = -1;
        for (long n = 0; n < 1000; n++) {
            ho_alloc h = {.fail_at = n};
            cws_allocator ra = ho_allocator(&h, with_realloc);
            context("handover: fail allocation %ld, realloc %d", n, with_realloc);
            cws_conn *c = server(NULL, &ra, NULL);
            if (c == NULL) break;
            run_result r = {.handover = &ra};
            chunking ch = {.kind = CH_FIXED, .fixed = 700};
            feed(c, s, len, &ch, &r);
            cws_conn_free(c);
            CHECK(h.live == 0);
            if (h.calls <= n) {
                CHECK(results_equal(&r, &expect) && r.handed == expect.n);
                sites = n;
                result_free(&r);
                break;
            }
            CHECK(r.status == CWS_ERR_NOMEM && r.err_code == 1011 && r.n <= expect.n);
            for (size_t i = 0; i < r.n && i < expect.n; i++)
                CHECK(r.ev[i].len == expect.ev[i].len &&
                      memcmp(r.ev[i].data, expect.ev[i].data, r.ev[i].len) == 0);
            result_free(&r);
        }
        CHECK(sites >= 4);
    }
    free(s);
    result_free(&expect);
}

/* Every vector (whole and 1 byte at a time) and the random streams give the same events with a
 * handover as without one; the handed-over buffers are freed by feed, and none leaks. */
static void test_handover_streams(void) {
    size_t count;
    char **names = list_vectors(&count);
    CHECK(count >= 40);
    size_t handed = 0;
    for (size_t i = 0; i < count; i++) {
        vector v;
        bool ok = load_vector(g_vector_dir, names[i], &v);
        CHECK(ok);
        free(names[i]);
        if (!ok) continue;
        cws_config cfg;
        config_for(&v, v.role, &cfg);
        chunking plans[2] = {{.kind = CH_WHOLE}, {.kind = CH_FIXED, .fixed = 1}};
        for (int p = 0; p < 2; p++) {
            context("%s with a handover, plan %d", v.name, p);
            ho_alloc h = {.fail_at = -1};
            cws_allocator ra = ho_allocator(&h, true);
            cfg.reassembly = &ra;
            run_result r = {.handover = &ra};
            run_stream(&cfg, v.data, v.len, &plans[p], &r);
            CHECK(results_equal(&r, &v.expect));
            CHECK(h.live == 0);
            handed += r.handed;
            result_free(&r);
        }
        vector_free(&v);
    }
    free(names);
    CHECK(handed > 0);
    uint64_t seed = 0xBADC0DE;
    for (int iter = 0; iter < 20; iter++) {
        bool masked = iter & 1;
        uint8_t *s;
        size_t len;
        run_result expect = {0};
        random_stream(&seed, masked, 1 + iter % 12, &s, &len, &expect);
        cws_config cfg;
        cws_config_init(&cfg, masked ? CWS_ROLE_SERVER : CWS_ROLE_CLIENT);
        chunking plans[3] = {{.kind = CH_FIXED, .fixed = 1},
                             {.kind = CH_RANDOM, .seed = seed, .max = 9},
                             {.kind = CH_RANDOM, .seed = seed + 1, .max = 2000}};
        for (int p = 0; p < 3; p++) {
            context("random stream %d with a handover, plan %d", iter, p);
            ho_alloc h = {.fail_at = -1};
            cws_allocator ra = ho_allocator(&h, p != 1);
            cfg.reassembly = &ra;
            run_result r = {.handover = &ra};
            run_stream(&cfg, s, len, &plans[p], &r);
            CHECK(results_equal(&r, &expect));
            CHECK(h.live == 0 && h.frees >= (long)r.handed);
            result_free(&r);
        }
        free(s);
        result_free(&expect);
    }
}

void handover_tests(void) {
    run_test("handover: arguments", test_handover_arguments);
    run_test("handover: a frame split across reads", test_handover_split_frame);
    run_test("handover: a fragmented message", test_handover_fragmented);
    run_test("handover: inflated messages (permessage-deflate)", test_handover_inflated);
    run_test("handover: an inflated message sizes the next one's first buffer", test_handover_inflated_first_size);
    run_test("handover: error and cws_conn_free mid-message", test_handover_mid_message);
    run_test("handover: failing allocator at every call", test_handover_alloc_failure);
    run_test("handover: vectors and random streams as without it", test_handover_streams);
}
