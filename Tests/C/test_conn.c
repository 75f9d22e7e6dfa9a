/*
 * test_conn.c — cws_conn_parse: the vectors (whole, 1 byte, every split), in-place delivery, random streams, API arguments, limits and reassembly memory, a failing allocator.
 */
#include "test_harness.h"

static void test_vectors(void) {
    size_t count;
    char **names = list_vectors(&count);
    CHECK(count >= 40); /* the directory was found and holds the RFC vectors and rejections */
    bool seen_status[16] = {false};
    for (size_t i = 0; i < count; i++) {
        vector v;
        bool ok = load_vector(g_vector_dir, names[i], &v);
        CHECK(ok);
        if (ok) {
            check_stream(&v, v.role, v.data, v.len);
            if (v.expect.status <= -201 && v.expect.status >= -215) {
                seen_status[-v.expect.status - 201] = true;
                /* the close code in the file matches the table of the API (cws.h) */
                CHECK(cws_status_close_code(v.expect.status) == v.expect.err_code);
            }
            if (v.mirror && v.role == CWS_ROLE_CLIENT) {
                uint8_t *m;
                size_t mlen;
                CHECK(mirror_to_server(v.data, v.len, &m, &mlen));
                check_stream(&v, CWS_ROLE_SERVER, m, mlen);
                free(m);
            }
            vector_free(&v);
        }
        free(names[i]);
    }
    free(names);
    /* every protocol rejection -201..-215 has a vector */
    for (int k = 0; k < 15; k++) {
        context("status %d has a vector", -201 - k);
        CHECK(seen_status[k]);
    }
}

/* ---- 64 KiB and in-place delivery ---------------------------------------------------------- */

static void test_in_place_delivery(void) {
    /* RFC 6455 §5.7 "Hello" masked, whole: delivered in the caller's buffer, unmasked in place. */
    uint8_t f[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    cws_config cfg;
    cws_config_init(&cfg, CWS_ROLE_SERVER);
    cws_conn *c;
    CHECK(cws_conn_new(&cfg, &c) == CWS_OK);
    size_t used;
    cws_event ev;
    CHECK(cws_conn_parse(c, f, sizeof f, &used, &ev) == CWS_OK);
    CHECK(used == sizeof f && ev.in_input == 1 && ev.offset == 6 && ev.length == 5);
    CHECK(ev.data == f + 6 && memcmp(f + 6, "Hello", 5) == 0);
    CHECK(cws_conn_parse(c, f + used, 0, &used, &ev) == CWS_WANT_READ && used == 0);
    cws_conn_free(c);
    cws_conn_free(NULL); /* allowed */
}

void test_random_streams(void) {
    uint64_t seed = 0xC0FFEE;
    for (int iter = 0; iter < 40; iter++) {
        bool masked = iter & 1;
        uint8_t *s;
        size_t len;
        run_result expect = {0};
        random_stream(&seed, masked, 1 + iter % 12, &s, &len, &expect);
        cws_config cfg;
        cws_config_init(&cfg, masked ? CWS_ROLE_SERVER : CWS_ROLE_CLIENT);
        chunking plans[4] = {{.kind = CH_WHOLE},
                             {.kind = CH_FIXED, .fixed = 1},
                             {.kind = CH_RANDOM, .seed = seed, .max = 9},
                             {.kind = CH_RANDOM, .seed = seed + 1, .max = 2000}};
        for (int p = 0; p < 4; p++) {
            context("random stream %d, plan %d", iter, p);
            run_result r = {0};
            run_stream(&cfg, s, len, &plans[p], &r);
            CHECK(results_equal(&r, &expect));
            result_free(&r);
        }
        free(s);
        result_free(&expect);
    }
}

/* ---- API arguments ------------------------------------------------------------------------------ */

static void *plain_alloc(size_t n, void *u) { (void)u; return malloc(n); }
static void plain_free(void *p, void *u) { (void)u; free(p); }

static void test_api_arguments(void) {
    cws_config cfg;
    cws_conn *c = NULL;
    cws_config_init(&cfg, CWS_ROLE_SERVER);
    CHECK(cfg.max_message_size == 65536 && cfg.max_frame_size == 65536 && cfg.allowed_rsv == 0 && cfg.allocator == NULL);
    cws_config_init(NULL, CWS_ROLE_SERVER); /* ignored */
    CHECK(cws_conn_new(NULL, &c) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_conn_new(&cfg, NULL) == CWS_ERR_INVALID_ARGUMENT);
    cfg.role = (cws_role)2;
    CHECK(cws_conn_new(&cfg, &c) == CWS_ERR_INVALID_ARGUMENT);
    cws_config_init(&cfg, CWS_ROLE_CLIENT);
    cfg.max_message_size = 0;
    CHECK(cws_conn_new(&cfg, &c) == CWS_ERR_INVALID_ARGUMENT);
    cws_config_init(&cfg, CWS_ROLE_CLIENT);
    cfg.max_frame_size = 0;
    CHECK(cws_conn_new(&cfg, &c) == CWS_ERR_INVALID_ARGUMENT);
    cws_config_init(&cfg, CWS_ROLE_CLIENT);
    cfg.allowed_rsv = 0x80;
    CHECK(cws_conn_new(&cfg, &c) == CWS_ERR_INVALID_ARGUMENT);
    cws_allocator half = {plain_alloc, NULL, NULL, NULL};
    cws_config_init(&cfg, CWS_ROLE_CLIENT);
    cfg.allocator = &half;
    CHECK(cws_conn_new(&cfg, &c) == CWS_ERR_INVALID_ARGUMENT);
    cws_allocator ok = {plain_alloc, NULL, plain_free, NULL};
    cfg.allocator = &ok;
    CHECK(cws_conn_new(&cfg, &c) == CWS_OK);
    cws_event ev;
    size_t used = 99;
    CHECK(cws_conn_parse(c, NULL, 1, &used, &ev) == CWS_ERR_INVALID_ARGUMENT && used == 0);
    CHECK(cws_conn_parse(c, NULL, 0, &used, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_conn_parse(NULL, NULL, 0, &used, &ev) == CWS_ERR_INVALID_ARGUMENT);
    uint8_t f[] = {0x81, 0x01, 'a'};
    CHECK(cws_conn_parse(c, f, 3, NULL, &ev) == CWS_OK && ev.type == CWS_EVENT_TEXT); /* consumed may be NULL */
    /* not latched: caller errors change nothing */
    CHECK(cws_conn_parse(c, f, 0, &used, &ev) == CWS_WANT_READ);
    cws_conn_free(c);
}

static void test_alloc_failure(void) {
    uint8_t *s;
    size_t len;
    run_result expect = {0};
    alloc_stream(&s, &len, &expect);
    for (int with_realloc = 0; with_realloc < 2; with_realloc++) {
        long sites = -1;
        for (long n = 0; n < 10000; n++) {
            tracking t = {.fail_at = n};
            cws_allocator a = {t_alloc, with_realloc ? t_realloc : NULL, t_free, &t};
            cws_config cfg;
            cws_config_init(&cfg, CWS_ROLE_SERVER);
            cfg.max_message_size = 100000;
            cfg.max_frame_size = 100000;
            cfg.allocator = &a;
            cws_conn *c = NULL;
            context("fail allocation %ld, realloc %d", n, with_realloc);
            int st = cws_conn_new(&cfg, &c);
            if (n == 0) {
                CHECK(st == CWS_ERR_NOMEM);
                CHECK(t.live == 0);
                continue;
            }
            CHECK(st == CWS_OK);
            if (st != CWS_OK) break;
            run_result r = {0};
            chunking ch = {.kind = CH_FIXED, .fixed = 700};
            feed(c, s, len, &ch, &r);
            cws_conn_free(c);
            CHECK(t.live == 0); /* nothing leaks, whether or not an allocation failed */
            CHECK(t.biggest <= cfg.max_message_size);
            if (t.calls <= n) { /* no call failed: the whole stream went through */
                CHECK(results_equal(&r, &expect));
                sites = n;
                result_free(&r);
                break;
            }
            /* a failed allocation: CWS_ERR_NOMEM (1011), after a prefix of the expected events */
            CHECK(r.status == CWS_ERR_NOMEM && r.err_code == 1011);
            CHECK(r.n <= expect.n);
            for (size_t i = 0; i < r.n && i < expect.n; i++)
                CHECK(r.ev[i].len == expect.ev[i].len && memcmp(r.ev[i].data, expect.ev[i].data, r.ev[i].len) == 0);
            result_free(&r);
        }
        CHECK(sites >= 4); /* the engine plus at least three growth steps were failed in turn */
        printf("     failing allocator (realloc %s): %ld allocation calls, each failed in turn\n",
               with_realloc ? "given" : "NULL", sites);
    }
    free(s);
    result_free(&expect);
}

/* A binary message of n bytes in fragments of at most `frag` bytes, unmasked (as a server sends);
 * payload byte i is fill(i). The caller frees *out. */
static void fragmented_message(size_t n, size_t frag, uint8_t (*fill)(size_t), uint8_t **out, size_t *out_len) {
    uint8_t *s = NULL;
    size_t len = 0, cap = 0, w;
    cws_fragmenter f;
    CHECK(cws_fragmenter_init(&f, CWS_OP_BINARY, 0, n, frag) == CWS_OK);
    uint8_t hdr[CWS_MAX_HEADER_SIZE];
    uint64_t pl;
    size_t at = 0;
    while (cws_fragmenter_next(&f, hdr, sizeof hdr, &w, &pl, NULL) == CWS_OK) {
        for (size_t i = 0; i < w; i++) buf_push(&s, &len, &cap, hdr[i]);
        for (size_t i = 0; i < pl; i++) buf_push(&s, &len, &cap, fill(at++));
    }
    *out = s;
    *out_len = len;
}
static uint8_t fill_42(size_t i) { (void)i; return 0x42; }
static uint8_t fill_index(size_t i) { return (uint8_t)i; }

/* Allocator that counts live bytes (a size header before each block). */
typedef struct byte_count { size_t live, peak; } byte_count;
static void *bc_alloc(size_t n, void *u) {
    byte_count *b = u;
    size_t *p = malloc(n + sizeof(size_t));
    if (p == NULL) return NULL;
    *p = n;
    b->live += n;
    if (b->live > b->peak) b->peak = b->live;
    return p + 1;
}
static void *bc_realloc(void *q, size_t n, void *u) {
    byte_count *b = u;
    if (q == NULL) return bc_alloc(n, u);
    size_t *p = (size_t *)q - 1, old = *p;
    size_t *r = realloc(p, n + sizeof(size_t));
    if (r == NULL) return NULL;
    *r = n;
    b->live = b->live - old + n;
    if (b->live > b->peak) b->peak = b->live;
    return r + 1;
}
static void bc_free(void *q, void *u) {
    if (q == NULL) return;
    byte_count *b = u;
    size_t *p = (size_t *)q - 1;
    b->live -= *p;
    free(p);
}

static void test_reassembly_memory_returned(void) {
    /* A reassembled message larger than the kept capacity (4 KiB): the engine holds its buffer
     * while the event borrows it, and gives it back on the next call, so an idle connection holds
     * no big message's memory. A small reassembled message keeps its buffer (no allocation per
     * message). */
    const size_t sizes[] = {1000, 4096, 4097, 32768, 65536};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        context("message of %zu bytes in fragments of 700", n);
        uint8_t *s = NULL;
        size_t len = 0;
        fragmented_message(n, 700, fill_index, &s, &len);
        byte_count b = {0};
        cws_allocator a = {bc_alloc, bc_realloc, bc_free, &b};
        cws_config cfg;
        cws_config_init(&cfg, CWS_ROLE_CLIENT);
        cfg.allocator = &a;
        cws_conn *c = NULL;
        CHECK(cws_conn_new(&cfg, &c) == CWS_OK);
        if (c == NULL) { free(s); continue; }
        size_t engine = b.live, off = 0, consumed = 0;
        cws_event ev;
        int st = CWS_WANT_READ;
        while (off < len) {
            st = cws_conn_parse(c, s + off, len - off, &consumed, &ev);
            off += consumed;
            if (st != CWS_WANT_READ) break;
        }
        CHECK(st == CWS_OK && ev.type == CWS_EVENT_BINARY && ev.length == n && ev.in_input == 0);
        CHECK(b.live >= engine + n); /* the event borrows the reassembled message */
        st = cws_conn_parse(c, NULL, 0, &consumed, &ev);
        CHECK(st == CWS_WANT_READ);
        if (n > 4096) CHECK(b.live == engine); /* given back */
        else CHECK(b.live <= engine + 4096);   /* kept, within the kept capacity */
        cws_conn_free(c);
        CHECK(b.live == 0);
        free(s);
    }
}

static void test_limits(void) {
    /* A message exactly at max_message_size in many fragments is accepted; one byte more is refused
     * on the header of the frame that would pass the limit, with no byte of it stored. */
    for (uint64_t limit = 1; limit <= 300; limit += 37) {
        for (int over = 0; over < 2; over++) {
            size_t n = (size_t)limit + (size_t)over;
            uint8_t *s = NULL;
            size_t len = 0;
            fragmented_message(n, 7, fill_42, &s, &len);
            tracking t = {.fail_at = -1};
            cws_allocator a = {t_alloc, t_realloc, t_free, &t};
            cws_config cfg;
            cws_config_init(&cfg, CWS_ROLE_CLIENT);
            cfg.max_message_size = limit;
            cfg.allocator = &a;
            run_result r = {0};
            chunking ch = {.kind = CH_RANDOM, .seed = limit, .max = 5};
            context("limit %llu over %d", (unsigned long long)limit, over);
            run_stream(&cfg, s, len, &ch, &r);
            if (over) {
                CHECK(r.n == 0 && r.status == CWS_ERR_MESSAGE_TOO_BIG && r.err_code == 1009);
            } else {
                CHECK(r.n == 1 && r.ev[0].len == n && r.status == CWS_WANT_READ);
            }
            CHECK(t.biggest <= limit); /* never allocated past the limit */
            CHECK(t.live == 0);
            result_free(&r);
            free(s);
        }
    }
}

void conn_tests(void) {
    run_test("vectors (RFC 6455 §5.7, rejections; whole, 1 byte, every split, random)", test_vectors);
    run_test("in-place delivery", test_in_place_delivery);
    run_test("random streams: whole == 1 byte == random chunks", test_random_streams);
    run_test("API arguments", test_api_arguments);
    run_test("limits and reassembly memory", test_limits);
    run_test("reassembly memory given back after a large message", test_reassembly_memory_returned);
    run_test("failing allocator at every call", test_alloc_failure);
}
