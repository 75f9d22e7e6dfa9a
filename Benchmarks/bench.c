/*
 * bench.c — C micro-benchmark of the engine's hot paths, run by Benchmarks/run-c.sh.
 *
 * Every case is timed in the same run as memcpy of the same size, and reported as a ratio against
 * it (vs_memcpy = memcpy time / case time; above 1 means faster than memcpy). Output, one line per
 * case and size, meant for scripts that compare commits:
 *
 *   case=<name> size=<bytes> gbps=<GB/s> ns_per_op=<ns> vs_memcpy=<ratio>
 *
 * Lines starting with '#' are comments (machine, kernels, allocation counts, cross-checks).
 *
 * Cases
 *   memcpy       memcpy(dst, src, size) into a second buffer: the bound a pass over memory has.
 *   unmask       cws_mask over the buffer in place (RFC 6455 §5.3). Masking twice restores it,
 *                and its cost does not depend on the data, so it is simply repeated.
 *   utf8_ascii   cws_utf8_validate of ASCII text.
 *   utf8_mixed   cws_utf8_validate of text made only of 2-, 3- and 4-byte sequences, chosen at
 *                random (fixed seed).
 *   decode_text  cws_conn_parse (server role) of one masked, unfragmented text frame of `size`
 *                payload bytes: header parse, unmask in place, UTF-8 validation, event.
 *   decode_small cws_conn_parse over a buffer of many consecutive masked 32-byte text frames, one
 *                call per frame; ns_per_op is per frame, gbps counts payload bytes, and the
 *                memcpy it is compared with is one 32-byte memcpy call.
 *
 * Decoding unmasks in place, so a decoded buffer is no longer the masked frame. Restoring it:
 * payloads are ASCII and every masking key byte is below 0x80, so masked and unmasked payloads are
 * both ASCII. Decoding the same frame again therefore does exactly the same work (a full unmask
 * and a full validation of valid ASCII text) and needs no restore between iterations. The key is
 * never all zero (cws_mask skips a zero key). For 64 KiB and 1 MiB, a '#' cross-check times
 * single decodes of a frame with a high-byte key that is re-masked outside the timed region before
 * each decode, against single decodes with the shortcut.
 *
 * Noise (2 shared cores): each sample runs a case for ~SAMPLE_NS; the cases are measured
 * round-robin, one sample each per round, and the best (lowest) time over ROUNDS rounds is kept,
 * so memcpy and the case it is compared with see the same machine conditions.
 *
 * Allocations: the engine gets a counting cws_allocator; the counts taken across the timed decode
 * loops are printed as "# allocs_per_frame=...".
 */
#define _POSIX_C_SOURCE 200809L

#include "cws_testing.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS 100
#define SAMPLE_NS 3000000.0 /* ~3 ms per sample */
#define SMALL_FRAMES 2048   /* frames in the decode_small buffer */
#define SMALL_PAYLOAD 32

/* Keeps the compiler from dropping or merging the work on `p` (it must assume memory changed). */
#define CLOBBER(p) __asm__ volatile("" : : "r"(p) : "memory")

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "bench: %s\n", what);
    exit(1);
}

static void *xalloc(size_t n) {
    /* 64-byte aligned, size rounded up as aligned_alloc requires; touched so no page fault is
     * timed. */
    size_t r = (n + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, r ? r : 64);
    if (p == NULL) die("out of memory");
    memset(p, 0, r ? r : 64);
    return p;
}

/* ---- counting allocator ------------------------------------------------------------------------ */

typedef struct counts {
    unsigned long allocs, reallocs, frees;
} counts;

static void *count_alloc(size_t n, void *u) {
    ((counts *)u)->allocs++;
    return malloc(n);
}
static void *count_realloc(void *p, size_t n, void *u) {
    ((counts *)u)->reallocs++;
    return realloc(p, n);
}
static void count_free(void *p, void *u) {
    ((counts *)u)->frees++;
    free(p);
}

/* ---- inputs ------------------------------------------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint32_t rng(void) { /* xorshift64*, fixed seed: the same input every run */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Du) >> 32);
}

/* Printable ASCII, a little like English text: letters, spaces, punctuation. */
static void fill_ascii(uint8_t *p, size_t n) {
    static const char pool[] = "etaoin shrdlu cmfwyp vbgkqj xz ETAOIN, SHRDLU. 0123456789 {\"a\":1}";
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)pool[rng() % (sizeof pool - 1)];
}

/* Exactly n bytes of valid UTF-8 made of 2-, 3- and 4-byte sequences only (n >= 2). The length
 * of each sequence is random among those that do not leave a 1-byte remainder. */
static void fill_mixed(uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t r = n - i, k;
        do {
            k = 2 + rng() % 3;
        } while (k > r || r - k == 1);
        uint32_t cp;
        if (k == 2) {
            cp = 0x80 + rng() % (0x800 - 0x80);
            p[i] = (uint8_t)(0xC0 | (cp >> 6));
            p[i + 1] = (uint8_t)(0x80 | (cp & 0x3F));
        } else if (k == 3) {
            do cp = 0x800 + rng() % (0x10000 - 0x800);
            while (cp >= 0xD800 && cp <= 0xDFFF); /* no surrogates (RFC 3629 §3) */
            p[i] = (uint8_t)(0xE0 | (cp >> 12));
            p[i + 1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            p[i + 2] = (uint8_t)(0x80 | (cp & 0x3F));
        } else {
            cp = 0x10000 + rng() % (0x110000 - 0x10000);
            p[i] = (uint8_t)(0xF0 | (cp >> 18));
            p[i + 1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            p[i + 2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            p[i + 3] = (uint8_t)(0x80 | (cp & 0x3F));
        }
        i += k;
    }
}

/* A masking key with every byte in 0x01..0x7F: never zero, and XOR keeps ASCII ASCII. */
static void ascii_key(uint8_t key[4]) {
    for (int i = 0; i < 4; i++) key[i] = (uint8_t)(1 + rng() % 0x7F);
}

/* Byte-at-a-time masking, independent of the library, to build the masked frames. */
static void mask_bytes(uint8_t *p, size_t n, const uint8_t key[4]) {
    for (size_t i = 0; i < n; i++) p[i] ^= key[i & 3];
}

/* Writes a masked text frame with payload text[0..n) at out; returns its length. */
static size_t make_frame(uint8_t *out, size_t cap, const uint8_t *text, size_t n,
                         const uint8_t key[4]) {
    size_t h = 0;
    if (cws_frame_header_write(out, cap, &h, true, 0, CWS_OP_TEXT, n, key) != CWS_OK)
        die("cws_frame_header_write failed");
    if (cap - h < n) die("frame buffer too small");
    memcpy(out + h, text, n);
    mask_bytes(out + h, n, key);
    return h + n;
}

/* ---- cases ------------------------------------------------------------------------------------- */

enum { C_MEMCPY, C_UNMASK, C_UTF8_ASCII, C_UTF8_MIXED, C_DECODE_TEXT, C_DECODE_SMALL, C_COUNT };
static const char *const case_names[C_COUNT] = {"memcpy",     "unmask",      "utf8_ascii",
                                                "utf8_mixed", "decode_text", "decode_small"};

typedef struct bench_case {
    int kind;
    size_t size;       /* payload bytes per op */
    uint8_t *buf;      /* input (frame buffer for decodes) */
    uint8_t *dst;      /* memcpy destination */
    size_t buf_len;    /* bytes of buf used (whole frame / frame stream for decodes) */
    uint8_t key[4];
    cws_conn *conn;
    size_t iters;      /* ops per sample */
    double best_ns;    /* best time per op */
    unsigned long ops_in_allocs; /* frames decoded while allocations were counted */
    int failed;
} bench_case;

/* Runs `iters` operations of case c; returns nonzero if any operation failed. */
static int run(bench_case *c, size_t iters) {
    int bad = 0;
    size_t consumed;
    cws_event ev;
    switch (c->kind) {
    case C_MEMCPY:
        for (size_t i = 0; i < iters; i++) {
            memcpy(c->dst, c->buf, c->size);
            CLOBBER(c->dst);
        }
        break;
    case C_UNMASK:
        for (size_t i = 0; i < iters; i++) {
            (void)cws_mask(c->buf, c->size, c->key, 0);
            CLOBBER(c->buf);
        }
        break;
    case C_UTF8_ASCII:
    case C_UTF8_MIXED:
        for (size_t i = 0; i < iters; i++) {
            bad |= cws_utf8_validate(c->buf, c->size) != CWS_OK;
            CLOBBER(c->buf);
        }
        break;
    case C_DECODE_TEXT:
        for (size_t i = 0; i < iters; i++) {
            int st = cws_conn_parse(c->conn, c->buf, c->buf_len, &consumed, &ev);
            bad |= st != CWS_OK || consumed != c->buf_len || ev.length != c->size;
            CLOBBER(c->buf);
        }
        break;
    case C_DECODE_SMALL:
        for (size_t i = 0; i < iters; i++) {
            /* iters counts whole passes over the stream; each pass is SMALL_FRAMES frames */
            size_t pos = 0;
            while (pos < c->buf_len) {
                int st = cws_conn_parse(c->conn, c->buf + pos, c->buf_len - pos, &consumed, &ev);
                bad |= st != CWS_OK || ev.length != SMALL_PAYLOAD;
                pos += consumed;
                if (consumed == 0) return 1;
            }
            CLOBBER(c->buf);
        }
        break;
    }
    return bad;
}

static size_t ops_per_iter(const bench_case *c) {
    return c->kind == C_DECODE_SMALL ? SMALL_FRAMES : 1;
}

/* Picks iters so that one sample takes about SAMPLE_NS. */
static void calibrate(bench_case *c) {
    size_t it = 1;
    for (;;) {
        double t0 = now_ns();
        if (run(c, it)) c->failed = 1;
        double t = now_ns() - t0;
        if (t > SAMPLE_NS / 8 || it > ((size_t)1 << 40)) {
            double per = t / (double)it;
            size_t want = (size_t)(SAMPLE_NS / (per > 0.1 ? per : 0.1));
            c->iters = want ? want : 1;
            return;
        }
        it *= 2;
    }
}

static bench_case *find(bench_case *cs, size_t n, int kind, size_t size) {
    for (size_t i = 0; i < n; i++)
        if (cs[i].kind == kind && cs[i].size == size) return &cs[i];
    return NULL;
}

/* Cross-check of the ASCII-key shortcut with single, individually timed decodes, alternating
 * (so both see the same machine conditions) between two frames of the same text:
 *   A: a key with high bytes, so its masked payload is not ASCII; re-masked outside the timed
 *      region before each decode, and the result compared with the text every time;
 *   B: an ASCII key, decoded again as it is, as the timed loops do; before each decode the same
 *      untimed byte loop runs over it with an all-zero key (it rewrites every byte unchanged), so
 *      both frames reach their timed decode with the same cache state.
 * Sets the best ns per decode of each. */
static void single_decodes(cws_conn *conn, size_t size, double *best_a, double *best_b) {
    uint8_t *text = xalloc(size);
    uint8_t *fa = xalloc(size + CWS_MAX_HEADER_SIZE);
    uint8_t *fb = xalloc(size + CWS_MAX_HEADER_SIZE);
    uint8_t ka[4] = {0x9C, 0xE1, 0x37, 0xD2}, kb[4], kz[4];
    volatile uint8_t zero = 0; /* opaque to the compiler: the loop over fb must run */
    ascii_key(kb);
    for (int i = 0; i < 4; i++) kz[i] = zero;
    fill_ascii(text, size);
    size_t la = make_frame(fa, size + CWS_MAX_HEADER_SIZE, text, size, ka);
    size_t lb = make_frame(fb, size + CWS_MAX_HEADER_SIZE, text, size, kb);
    size_t h = la - size;
    *best_a = *best_b = 1e300;
    for (int r = 0; r < 300; r++) {
        size_t consumed;
        cws_event ev;
        if (r > 0) mask_bytes(fa + h, size, ka); /* the last decode unmasked it */
        double t0 = now_ns();
        int st = cws_conn_parse(conn, fa, la, &consumed, &ev);
        double t = now_ns() - t0;
        if (st != CWS_OK || ev.length != size || memcmp(fa + h, text, size) != 0)
            die("single decodes: wrong result");
        if (t < *best_a) *best_a = t;
        mask_bytes(fb + h, size, kz);
        t0 = now_ns();
        st = cws_conn_parse(conn, fb, lb, &consumed, &ev);
        t = now_ns() - t0;
        if (st != CWS_OK || ev.length != size) die("single decodes: decode failed");
        if (t < *best_b) *best_b = t;
    }
    free(text);
    free(fa);
    free(fb);
}

int main(void) {
    static const size_t memcpy_sizes[] = {SMALL_PAYLOAD, 125, 4096, 65536, 1048576};
    static const size_t sizes[] = {125, 4096, 65536, 1048576};
    enum { NM = sizeof memcpy_sizes / sizeof memcpy_sizes[0], NS = sizeof sizes / sizeof sizes[0] };

    counts cnt = {0, 0, 0};
    cws_allocator allocator = {count_alloc, count_realloc, count_free, &cnt};
    cws_config cfg;
    cws_config_init(&cfg, CWS_ROLE_SERVER);
    cfg.max_message_size = 2u << 20; /* the 1 MiB frame is above the 64 KiB defaults */
    cfg.max_frame_size = 2u << 20;
    cfg.allocator = &allocator;
    cws_conn *conn = NULL;
    if (cws_conn_new(&cfg, &conn) != CWS_OK) die("cws_conn_new failed");

    bench_case cs[NM + 5 * NS];
    size_t n = 0;
    memset(cs, 0, sizeof cs);

    for (size_t i = 0; i < NM; i++) {
        bench_case *c = &cs[n++];
        c->kind = C_MEMCPY;
        c->size = memcpy_sizes[i];
        c->buf = xalloc(c->size);
        c->dst = xalloc(c->size);
        fill_ascii(c->buf, c->size);
    }
    for (size_t i = 0; i < NS; i++) {
        size_t s = sizes[i];
        bench_case *c = &cs[n++];
        c->kind = C_UNMASK;
        c->size = s;
        c->buf = find(cs, n, C_MEMCPY, s)->buf; /* memcpy of the same buffer */
        c->key[0] = 0x37, c->key[1] = 0xFA, c->key[2] = 0x21, c->key[3] = 0x3D;

        c = &cs[n++];
        c->kind = C_UTF8_ASCII;
        c->size = s;
        c->buf = xalloc(s);
        fill_ascii(c->buf, s);

        c = &cs[n++];
        c->kind = C_UTF8_MIXED;
        c->size = s;
        c->buf = xalloc(s);
        fill_mixed(c->buf, s);
        if (cws_utf8_validate(c->buf, s) != CWS_OK) die("mixed text rejected");
        c->buf[s / 2] = 0xFF; /* sanity: the validator really looks at the bytes */
        if (cws_utf8_validate(c->buf, s) == CWS_OK) die("validator accepted 0xFF");
        fill_mixed(c->buf, s);

        c = &cs[n++];
        c->kind = C_DECODE_TEXT;
        c->size = s;
        c->conn = conn;
        uint8_t *text = xalloc(s);
        fill_ascii(text, s);
        ascii_key(c->key);
        c->buf = xalloc(s + CWS_MAX_HEADER_SIZE);
        c->buf_len = make_frame(c->buf, s + CWS_MAX_HEADER_SIZE, text, s, c->key);
        /* Correctness first: one decode must give back the text, in place. */
        size_t consumed;
        cws_event ev;
        if (cws_conn_parse(conn, c->buf, c->buf_len, &consumed, &ev) != CWS_OK ||
            ev.type != CWS_EVENT_TEXT || consumed != c->buf_len || ev.length != s ||
            !ev.in_input || memcmp(c->buf + ev.offset, text, s) != 0)
            die("decode_text: first decode is wrong");
        free(text);
    }
    {
        bench_case *c = &cs[n++];
        c->kind = C_DECODE_SMALL;
        c->size = SMALL_PAYLOAD;
        c->conn = conn;
        size_t cap = SMALL_FRAMES * (SMALL_PAYLOAD + 6);
        c->buf = xalloc(cap);
        uint8_t text[SMALL_PAYLOAD];
        for (size_t f = 0; f < SMALL_FRAMES; f++) {
            uint8_t key[4];
            ascii_key(key); /* a fresh key per frame, as a client sends */
            fill_ascii(text, sizeof text);
            c->buf_len += make_frame(c->buf + c->buf_len, cap - c->buf_len, text, sizeof text, key);
        }
        if (run(c, 1)) die("decode_small: first pass failed");
    }

    cws_kernel mk = cws_mask_kernel_selected(), uk = cws_utf8_kernel_selected();
    printf("# kernels: mask=%s utf8=%s\n", cws_kernel_name(mk), cws_kernel_name(uk));
    printf("# method: best of %d round-robin samples of ~%.0f ms per case; decode_text/decode_small "
           "payloads are ASCII with masking keys of bytes 0x01-0x7F (re-decoding needs no restore)\n",
           ROUNDS, SAMPLE_NS / 1e6);
    fflush(stdout);

    for (size_t i = 0; i < n; i++) calibrate(&cs[i]);
    for (size_t i = 0; i < n; i++) cs[i].best_ns = 1e300;

    unsigned long frames = 0;
    counts before = cnt;
    for (int r = 0; r < ROUNDS; r++) {
        for (size_t i = 0; i < n; i++) {
            bench_case *c = &cs[i];
            double t0 = now_ns();
            if (run(c, c->iters)) c->failed = 1;
            double t = (now_ns() - t0) / (double)(c->iters * ops_per_iter(c));
            if (t < c->best_ns) c->best_ns = t;
            if (c->kind == C_DECODE_TEXT || c->kind == C_DECODE_SMALL)
                frames += (unsigned long)(c->iters * ops_per_iter(c));
        }
    }
    counts after = cnt;

    for (int k = 0; k < C_COUNT; k++) {
        for (size_t i = 0; i < n; i++) {
            bench_case *c = &cs[i];
            if (c->kind != k) continue;
            if (c->failed) {
                printf("# case=%s size=%zu FAILED (an operation returned an error)\n",
                       case_names[k], c->size);
                continue;
            }
            double base = find(cs, n, C_MEMCPY, c->size)->best_ns;
            printf("case=%s size=%zu gbps=%.2f ns_per_op=%.2f vs_memcpy=%.2f\n", case_names[k],
                   c->size, (double)c->size / c->best_ns, c->best_ns, base / c->best_ns);
        }
    }
    unsigned long allocs = (after.allocs - before.allocs) + (after.reallocs - before.reallocs);
    printf("# allocs_per_frame=%.6f allocs=%lu frees=%lu frames=%lu (timed decode loops, "
           "counting cws_allocator)\n",
           frames ? (double)allocs / (double)frames : 0.0, allocs, after.frees - before.frees,
           frames);

    /* Cross-check of the ASCII-key shortcut (see single_decodes). A ratio near 1 says the
     * shortcut does not change the work. */
    for (size_t i = 0; i < NS; i++) {
        if (sizes[i] < 65536) continue;
        double remasked, shortcut;
        single_decodes(conn, sizes[i], &remasked, &shortcut);
        printf("# check decode_text size=%zu single timed decodes: remasked_ns=%.0f "
               "ascii_key_ns=%.0f ratio=%.2f\n",
               sizes[i], remasked, shortcut, remasked / shortcut);
    }

    int failed = 0;
    for (size_t i = 0; i < n; i++) failed |= cs[i].failed;
    cws_conn_free(conn);
    return failed ? 1 : 0;
}
