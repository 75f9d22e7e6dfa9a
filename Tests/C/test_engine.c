/*
 * test_engine.c — C tests of the engine, built plain (make test) and with ASan + UBSan + LSan
 * (make test-sanitize). Every test can fail: expectations come from the vector files, from the
 * independent reference code in cws_test_ref.h, or from RFC text, never from the engine itself.
 *
 *   test_engine [VECTOR_DIR]             run everything (VECTOR_DIR defaults to CWS_VECTOR_DIR)
 *   test_engine --emit-seeds DIR [VDIR]  write fuzz_parse seeds made from the vectors into DIR
 *
 * Output: one line per failed check (file:line), then "N passed, M failed" (N, M count tests).
 * Exit status 0 only when nothing failed.
 */
#define _DEFAULT_SOURCE 1 /* mmap's MAP_ANONYMOUS, dirent */

#include "cws_testing.h"
#include "cws_test_ref.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef CWS_VECTOR_DIR
#define CWS_VECTOR_DIR "Tests/Vectors"
#endif

/* ---- a tiny harness ------------------------------------------------------------------------ */

static int g_test_failed;   /* checks failed in the current test */
static int g_passed, g_failed;
static char g_context[256]; /* what the current loop is doing, printed with a failure */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) check_failed(__FILE__, __LINE__, #cond);                                      \
    } while (0)

static void check_failed(const char *file, int line, const char *what) {
    /* Print the first few failures of a test; a broken kernel would otherwise print millions. */
    if (g_test_failed < 8)
        fprintf(stderr, "%s:%d: check failed: %s%s%s%s\n", file, line, what, g_context[0] ? "  [" : "",
                g_context, g_context[0] ? "]" : "");
    g_test_failed++;
}

static void context(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_context, sizeof g_context, fmt, ap);
    va_end(ap);
}

static void run_test(const char *name, void (*fn)(void)) {
    g_test_failed = 0;
    g_context[0] = 0;
    fn();
    if (g_test_failed) {
        g_failed++;
        fprintf(stderr, "FAIL %s (%d checks failed)\n", name, g_test_failed);
    } else {
        g_passed++;
        printf("ok   %s\n", name);
    }
    fflush(stdout);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- recorded events and feeding a stream -------------------------------------------------- */

typedef struct rec_event {
    uint8_t type, rsv;
    uint16_t code;
    size_t len;
    uint8_t *data;
} rec_event;

typedef struct run_result {
    rec_event *ev;
    size_t n, cap;
    int status;        /* final: CWS_WANT_READ, CWS_CLOSED or the latched error */
    uint16_t err_code; /* close code of the ERROR event */
    size_t in_place;   /* events delivered inside the caller's buffer */
} run_result;

static void result_free(run_result *r) {
    for (size_t i = 0; i < r->n; i++) free(r->ev[i].data);
    free(r->ev);
    memset(r, 0, sizeof *r);
}

static void result_push(run_result *r, const cws_event *e) {
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->ev = (rec_event *)realloc(r->ev, r->cap * sizeof *r->ev);
        if (r->ev == NULL) exit(2);
    }
    rec_event *x = &r->ev[r->n++];
    x->type = e->type;
    x->rsv = e->rsv;
    x->code = e->close_code;
    x->len = e->length;
    x->data = (uint8_t *)xmalloc(e->length);
    if (e->length) memcpy(x->data, e->data, e->length);
}

/* How a stream is cut into calls. */
typedef struct chunking {
    enum { CH_WHOLE, CH_FIXED, CH_SPLITS, CH_RANDOM } kind;
    size_t fixed;          /* CH_FIXED: every chunk this size */
    const size_t *splits;  /* CH_SPLITS: ascending cut positions */
    size_t nsplits;
    uint64_t seed;         /* CH_RANDOM: sizes 1..max from the PRNG */
    size_t max;
} chunking;

/* Feeds stream[0..len) to engine `c` cut as `ch`, each chunk copied into its own exactly sized heap
 * block (so ASan sees any read past the end of what was passed), checks the per-call contract and
 * records the events. Ends with one more call with no input to read the final status. */
static void feed(cws_conn *c, const uint8_t *stream, size_t len, const chunking *ch, run_result *r) {
    size_t pos = 0, k = 0;
    uint64_t seed = ch->seed;
    r->status = 0;
    bool stop = false;
    while (!stop && (pos < len || (pos == 0 && len == 0))) {
        size_t n;
        switch (ch->kind) {
        case CH_WHOLE: n = len - pos; break;
        case CH_FIXED: n = ch->fixed; break;
        case CH_SPLITS: n = (k < ch->nsplits ? ch->splits[k] : len) - pos; break;
        default: n = 1 + (size_t)(ref_rand(&seed) % ch->max); break;
        }
        k++;
        if (n > len - pos) n = len - pos;
        uint8_t *chunk = (uint8_t *)xmalloc(n);
        if (n) memcpy(chunk, stream + pos, n);
        size_t off = 0;
        for (;;) {
            size_t used = 12345;
            cws_event ev;
            memset(&ev, 0xA5, sizeof ev);
            int st = cws_conn_parse(c, chunk + off, n - off, &used, &ev);
            CHECK(used <= n - off);
            if (st == CWS_OK) {
                CHECK(ev.type == CWS_EVENT_TEXT || ev.type == CWS_EVENT_BINARY ||
                      ev.type == CWS_EVENT_CLOSE || ev.type == CWS_EVENT_PING ||
                      ev.type == CWS_EVENT_PONG);
                CHECK((ev.length == 0) == (ev.data == NULL));
                if (ev.in_input) {
                    /* in place: inside what this call consumed, at buf + offset */
                    CHECK(ev.offset + ev.length <= used);
                    CHECK(ev.length == 0 || (const uint8_t *)ev.data == chunk + off + ev.offset);
                    r->in_place++;
                } else {
                    CHECK(ev.offset == 0);
                }
                result_push(r, &ev);
                off += used;
                if (off == n) break;
                continue;
            }
            if (st == CWS_WANT_READ || st == CWS_CLOSED) {
                CHECK(used == n - off);
                break;
            }
            /* an error: ERROR event, close code from the status table, latched */
            CHECK(st <= -200);
            CHECK(ev.type == CWS_EVENT_ERROR);
            CHECK(ev.close_code == cws_status_close_code(st) && ev.close_code != 0);
            CHECK(ev.in_input == 0 && ev.data != NULL && ev.length == strlen((const char *)ev.data));
            r->status = st;
            r->err_code = ev.close_code;
            stop = true;
            break;
        }
        free(chunk);
        pos += n;
        if (len == 0) break;
    }
    cws_event ev;
    size_t used;
    int st = cws_conn_parse(c, NULL, 0, &used, &ev);
    if (r->status) {
        CHECK(st == r->status); /* latched */
        CHECK(ev.type == CWS_EVENT_ERROR && ev.close_code == r->err_code);
    } else {
        CHECK(st == CWS_WANT_READ || st == CWS_CLOSED);
        r->status = st;
    }
}

static int run_stream(const cws_config *cfg, const uint8_t *stream, size_t len, const chunking *ch,
                      run_result *r) {
    cws_conn *c = NULL;
    int st = cws_conn_new(cfg, &c);
    CHECK(st == CWS_OK);
    if (st != CWS_OK) return st;
    feed(c, stream, len, ch, r);
    cws_conn_free(c);
    return CWS_OK;
}

static bool results_equal(const run_result *a, const run_result *b) {
    if (a->n != b->n || a->status != b->status || a->err_code != b->err_code) return false;
    for (size_t i = 0; i < a->n; i++) {
        const rec_event *x = &a->ev[i], *y = &b->ev[i];
        if (x->type != y->type || x->rsv != y->rsv || x->code != y->code || x->len != y->len)
            return false;
        if (x->len && memcmp(x->data, y->data, x->len) != 0) return false;
    }
    return true;
}

/* ---- vector files ---------------------------------------------------------------------------- */

typedef struct vector {
    char name[128];
    cws_role role;
    bool mirror;
    uint64_t max_message, max_frame;
    uint8_t rsv;
    uint8_t *data;
    size_t len, cap;
    run_result expect; /* events and final status */
} vector;

static void buf_push(uint8_t **b, size_t *len, size_t *cap, uint8_t v) {
    if (*len == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        *b = (uint8_t *)realloc(*b, *cap);
        if (*b == NULL) exit(2);
    }
    (*b)[(*len)++] = v;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Appends the bytes of one token: "-" (nothing), "48656c" (hex pairs), "aa*256" (a repeat), or
 * such pieces joined by '+' ("61*3+62" is 61 61 61 62). */
static bool parse_hex_token(const char *t, uint8_t **b, size_t *len, size_t *cap) {
    if (!strcmp(t, "-")) return true;
    const char *plus = strchr(t, '+');
    if (plus) {
        char head[64];
        if ((size_t)(plus - t) >= sizeof head) return false;
        memcpy(head, t, (size_t)(plus - t));
        head[plus - t] = 0;
        return parse_hex_token(head, b, len, cap) && parse_hex_token(plus + 1, b, len, cap);
    }
    const char *star = strchr(t, '*');
    if (star) {
        if (star - t != 2 || hexval(t[0]) < 0 || hexval(t[1]) < 0) return false;
        char *end;
        unsigned long count = strtoul(star + 1, &end, 10);
        if (*end) return false;
        for (unsigned long i = 0; i < count; i++) buf_push(b, len, cap, (uint8_t)(hexval(t[0]) * 16 + hexval(t[1])));
        return true;
    }
    size_t n = strlen(t);
    if (n == 0 || n % 2) return false;
    for (size_t i = 0; i < n; i += 2) {
        if (hexval(t[i]) < 0 || hexval(t[i + 1]) < 0) return false;
        buf_push(b, len, cap, (uint8_t)(hexval(t[i]) * 16 + hexval(t[i + 1])));
    }
    return true;
}

/* A data line: tokens separated by white space, up to an optional '#' comment. */
static bool parse_hex_line(char *line, uint8_t **b, size_t *len, size_t *cap) {
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    for (char *t = strtok(line, " \t\r\n"); t; t = strtok(NULL, " \t\r\n"))
        if (!parse_hex_token(t, b, len, cap)) return false;
    return true;
}

static int event_type_of(const char *w) {
    if (!strcmp(w, "text")) return CWS_EVENT_TEXT;
    if (!strcmp(w, "binary")) return CWS_EVENT_BINARY;
    if (!strcmp(w, "ping")) return CWS_EVENT_PING;
    if (!strcmp(w, "pong")) return CWS_EVENT_PONG;
    if (!strcmp(w, "close")) return CWS_EVENT_CLOSE;
    return -1;
}

static bool load_vector(const char *dir, const char *file, vector *v) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (f == NULL) return false;
    memset(v, 0, sizeof *v);
    snprintf(v->name, sizeof v->name, "%s", file);
    v->role = CWS_ROLE_CLIENT;
    v->mirror = true;
    v->max_message = v->max_frame = 65536;
    v->expect.status = CWS_WANT_READ;
    static char line[1 << 16]; /* the 64 KiB vector is one "5a*65536" token, lines stay short */
    bool ok = true;
    int lineno = 0;
    while (ok && fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#') continue;
        if (line[0] != '@') {
            ok = parse_hex_line(line, &v->data, &v->len, &v->cap);
            continue;
        }
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *w[6] = {0};
        int nw = 0;
        for (char *t = strtok(line + 1, " \t\r\n"); t && nw < 6; t = strtok(NULL, " \t\r\n")) w[nw++] = t;
        if (nw < 2) { ok = false; break; }
        if (!strcmp(w[0], "role")) v->role = !strcmp(w[1], "server") ? CWS_ROLE_SERVER : CWS_ROLE_CLIENT;
        else if (!strcmp(w[0], "mirror")) v->mirror = strcmp(w[1], "no") != 0;
        else if (!strcmp(w[0], "max_message")) v->max_message = strtoull(w[1], NULL, 0);
        else if (!strcmp(w[0], "max_frame")) v->max_frame = strtoull(w[1], NULL, 0);
        else if (!strcmp(w[0], "rsv")) v->rsv = (uint8_t)strtoul(w[1], NULL, 0);
        else if (!strcmp(w[0], "event")) {
            cws_event e;
            memset(&e, 0, sizeof e);
            int t = event_type_of(w[1]);
            uint8_t *pl = NULL;
            size_t plen = 0, pcap = 0;
            if (t < 0 || nw < 3 || !parse_hex_token(w[2], &pl, &plen, &pcap)) { ok = false; free(pl); break; }
            e.type = (uint8_t)t;
            for (int i = 3; i < nw; i++) {
                if (!strncmp(w[i], "code=", 5)) e.close_code = (uint16_t)strtoul(w[i] + 5, NULL, 0);
                else if (!strncmp(w[i], "rsv=", 4)) e.rsv = (uint8_t)strtoul(w[i] + 4, NULL, 0);
                else ok = false;
            }
            e.data = pl;
            e.length = plen;
            result_push(&v->expect, &e);
            free(pl);
        } else if (!strcmp(w[0], "end")) {
            if (!strcmp(w[1], "want")) v->expect.status = CWS_WANT_READ;
            else if (!strcmp(w[1], "closed")) v->expect.status = CWS_CLOSED;
            else if (!strcmp(w[1], "error") && nw == 4) {
                v->expect.status = (int)strtol(w[2], NULL, 10);
                v->expect.err_code = (uint16_t)strtoul(w[3], NULL, 10);
            } else ok = false;
        } else ok = false;
    }
    fclose(f);
    if (!ok) fprintf(stderr, "%s:%d: cannot parse vector\n", path, lineno);
    return ok;
}

static void vector_free(vector *v) {
    free(v->data);
    result_free(&v->expect);
}

/* Masks an unmasked stream frame by frame for the server role (RFC 6455 §5.3), with a different
 * key per frame (every fifth key all zero, which the engine may short-cut). Frames cut by the end
 * of the stream are converted as far as they go. Returns false if a frame is already masked. */
static bool mirror_to_server(const uint8_t *in, size_t len, uint8_t **out, size_t *olen) {
    size_t cap = 0, pos = 0;
    *out = NULL;
    *olen = 0;
    unsigned frame = 0;
    while (pos < len) {
        uint8_t b0 = in[pos++];
        buf_push(out, olen, &cap, b0);
        if (pos == len) break;
        uint8_t b1 = in[pos++];
        if (b1 & 0x80) { free(*out); *out = NULL; return false; }
        buf_push(out, olen, &cap, (uint8_t)(b1 | 0x80));
        size_t ext = (b1 & 0x7F) == 126 ? 2 : (b1 & 0x7F) == 127 ? 8 : 0;
        uint64_t plen = b1 & 0x7F;
        if (ext) plen = 0;
        for (size_t i = 0; i < ext && pos < len; i++) {
            plen = (plen << 8) | in[pos];
            buf_push(out, olen, &cap, in[pos++]);
        }
        uint8_t key[4] = {(uint8_t)(0x3D + frame), 0xA7, (uint8_t)(0x11 * frame), 0xC4};
        if (frame % 5 == 4) memset(key, 0, 4);
        for (int i = 0; i < 4; i++) buf_push(out, olen, &cap, key[i]);
        for (uint64_t i = 0; i < plen && pos < len; i++)
            buf_push(out, olen, &cap, (uint8_t)(in[pos++] ^ key[i & 3]));
        frame++;
    }
    return true;
}

static void config_for(const vector *v, cws_role role, cws_config *cfg) {
    cws_config_init(cfg, role);
    cfg->max_message_size = v->max_message;
    cfg->max_frame_size = v->max_frame;
    cfg->allowed_rsv = v->rsv;
}

/* Replays one stream in every chunking against the vector's expectation. */
static void check_stream(const vector *v, cws_role role, const uint8_t *s, size_t len) {
    cws_config cfg;
    config_for(v, role, &cfg);
    const char *rname = role == CWS_ROLE_SERVER ? "server" : "client";

    chunking whole = {.kind = CH_WHOLE};
    run_result r = {0};
    context("%s as %s, whole", v->name, rname);
    run_stream(&cfg, s, len, &whole, &r);
    CHECK(results_equal(&r, &v->expect));
    /* RFC 6455 in-place contract: an unfragmented data frame wholly inside the input is not copied */
    result_free(&r);

    chunking one = {.kind = CH_FIXED, .fixed = 1};
    context("%s as %s, 1 byte at a time", v->name, rname);
    run_stream(&cfg, s, len, &one, &r);
    CHECK(results_equal(&r, &v->expect));
    result_free(&r);

    if (len <= 2048) {
        for (size_t cut = 1; cut < len; cut++) {
            chunking two = {.kind = CH_SPLITS, .splits = &cut, .nsplits = 1};
            context("%s as %s, split at %zu", v->name, rname, cut);
            run_stream(&cfg, s, len, &two, &r);
            CHECK(results_equal(&r, &v->expect));
            result_free(&r);
        }
    }
    if (len <= 64) {
        for (size_t a = 1; a < len; a++)
            for (size_t b = a + 1; b < len; b++) {
                size_t cuts[2] = {a, b};
                chunking three = {.kind = CH_SPLITS, .splits = cuts, .nsplits = 2};
                context("%s as %s, split at %zu and %zu", v->name, rname, a, b);
                run_stream(&cfg, s, len, &three, &r);
                CHECK(results_equal(&r, &v->expect));
                result_free(&r);
            }
    }
    for (uint64_t seed = 1; seed <= 16; seed++) {
        chunking rnd = {.kind = CH_RANDOM, .seed = seed, .max = seed <= 8 ? 7 : 1500};
        context("%s as %s, random chunks seed %llu", v->name, rname, (unsigned long long)seed);
        run_stream(&cfg, s, len, &rnd, &r);
        CHECK(results_equal(&r, &v->expect));
        result_free(&r);
    }
}

static const char *g_vector_dir = CWS_VECTOR_DIR;

/* Lists the .hex files of the vector directory, sorted. */
static char **list_vectors(size_t *count) {
    DIR *d = opendir(g_vector_dir);
    *count = 0;
    if (d == NULL) return NULL;
    char **names = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".hex") != 0) continue;
        if (*count == cap) {
            cap = cap ? 2 * cap : 64;
            names = (char **)realloc(names, cap * sizeof *names);
            if (names == NULL) exit(2);
        }
        names[(*count)++] = strdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 1; i < *count; i++) /* insertion sort: a few dozen names */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    return names;
}

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

/* ---- close codes: every 16-bit value through the engine ------------------------------------ */

static void test_close_codes(void) {
    for (unsigned code = 0; code <= 0xFFFF; code++) {
        context("close code %u", code);
        CHECK(cws_close_code_is_valid((uint16_t)code) == ref_close_code_ok(code));
        if (code % 7 && !(code >= 990 && code <= 1020) && !(code >= 2990 && code <= 3010) &&
            !(code >= 4990 && code <= 5010))
            continue; /* the engine runs on a sample; the predicate above on all */
        uint8_t f[4] = {0x88, 0x02, (uint8_t)(code >> 8), (uint8_t)code};
        cws_config cfg;
        cws_config_init(&cfg, CWS_ROLE_CLIENT);
        cws_conn *c;
        CHECK(cws_conn_new(&cfg, &c) == CWS_OK);
        size_t used;
        cws_event ev;
        int st = cws_conn_parse(c, f, 4, &used, &ev);
        if (ref_close_code_ok(code)) {
            CHECK(st == CWS_OK && ev.type == CWS_EVENT_CLOSE && ev.close_code == code && ev.length == 0);
        } else {
            CHECK(st == CWS_ERR_CLOSE_CODE && ev.type == CWS_EVENT_ERROR && ev.close_code == 1002);
        }
        cws_conn_free(c);
    }
    /* The status table: every -2xx/-5xx has a close code, everything else 0 (cws.h). */
    static const struct { int st; uint16_t code; } table[] = {
        {CWS_ERR_RESERVED_OPCODE, 1002}, {CWS_ERR_RESERVED_BITS, 1002},
        {CWS_ERR_CONTROL_FRAGMENTED, 1002}, {CWS_ERR_CONTROL_TOO_LONG, 1002},
        {CWS_ERR_LENGTH_TOP_BIT, 1002}, {CWS_ERR_UNMASKED, 1002}, {CWS_ERR_MASKED, 1002},
        {CWS_ERR_UNEXPECTED_CONTINUATION, 1002}, {CWS_ERR_EXPECTED_CONTINUATION, 1002},
        {CWS_ERR_CLOSE_PAYLOAD, 1002}, {CWS_ERR_CLOSE_CODE, 1002}, {CWS_ERR_INVALID_UTF8, 1007},
        {CWS_ERR_CLOSE_REASON_UTF8, 1007}, {CWS_ERR_MESSAGE_TOO_BIG, 1009},
        {CWS_ERR_FRAME_TOO_BIG, 1009}, {CWS_ERR_NOMEM, 1011}, {CWS_OK, 0}, {CWS_WANT_READ, 0},
        {CWS_CLOSED, 0}, {CWS_DONE, 0}, {CWS_ERR_INVALID_ARGUMENT, 0},
        {CWS_ERR_BUFFER_TOO_SMALL, 0}, {CWS_ERR_INVALID_CLOSE_CODE, 0}, {CWS_ERR_INVALID_KEY, 0},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        context("status %d", table[i].st);
        CHECK(cws_status_close_code(table[i].st) == table[i].code);
        const char *s = cws_strerror(table[i].st);
        CHECK(s != NULL && s[0] != 0 && strcmp(s, cws_strerror(12345)) != 0);
    }
    CHECK(cws_strerror(12345) != NULL && cws_status_close_code(12345) == 0);
}

/* ---- random streams: whole == 1 byte == random chunks == what was sent --------------------- */

/* A random valid UTF-8 text of exactly n bytes: a mix of 1-4 byte sequences, the edge values of
 * each length included (U+007F, U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFF, U+10000, U+10FFFF). */
static void random_text(uint64_t *seed, uint8_t *out, size_t n) {
    static const uint32_t edges[] = {0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF};
    size_t i = 0;
    while (i < n) {
        uint64_t r = ref_rand(seed);
        uint32_t cp;
        switch (r % 8) {
        case 0: cp = edges[(r >> 8) % 9]; break;
        case 1: cp = 0x80 + (uint32_t)((r >> 8) % 0x780); break;
        case 2: cp = 0x800 + (uint32_t)((r >> 8) % 0xF800); break;
        case 3: cp = 0x10000 + (uint32_t)((r >> 8) % 0x100000); break;
        default: cp = (uint32_t)((r >> 8) % 0x80); break;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xE000;
        size_t len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (len > n - i) { cp = 'a'; len = 1; }
        if (len == 1) out[i] = (uint8_t)cp;
        else if (len == 2) { out[i] = (uint8_t)(0xC0 | cp >> 6); out[i + 1] = (uint8_t)(0x80 | (cp & 0x3F)); }
        else if (len == 3) {
            out[i] = (uint8_t)(0xE0 | cp >> 12);
            out[i + 1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            out[i + 2] = (uint8_t)(0x80 | (cp & 0x3F));
        } else {
            out[i] = (uint8_t)(0xF0 | cp >> 18);
            out[i + 1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            out[i + 2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            out[i + 3] = (uint8_t)(0x80 | (cp & 0x3F));
        }
        i += len;
    }
}

/* Builds a random valid stream of `nmsg` messages with the writers (fragmented, with control frames
 * in between, masked when `masked`) and the events it must produce. */
static void random_stream(uint64_t *seed, bool masked, int nmsg, uint8_t **out, size_t *olen,
                          run_result *expect) {
    size_t cap = 0;
    *out = NULL;
    *olen = 0;
    for (int m = 0; m < nmsg; m++) {
        uint64_t r = ref_rand(seed);
        uint8_t key[4];
        uint64_t kr = ref_rand(seed);
        memcpy(key, &kr, 4);
        const void *mk = masked ? key : NULL;
        uint8_t hdr[CWS_MAX_CONTROL_FRAME_SIZE];
        size_t w;
        if (r % 5 == 0) { /* a ping */
            uint8_t pl[125];
            size_t n = (size_t)(ref_rand(seed) % 126);
            for (size_t i = 0; i < n; i++) pl[i] = (uint8_t)ref_rand(seed);
            CHECK(cws_control_frame_write(hdr, sizeof hdr, &w, CWS_OP_PING, pl, n, mk) == CWS_OK);
            for (size_t i = 0; i < w; i++) buf_push(out, olen, &cap, hdr[i]);
            cws_event e = {.type = CWS_EVENT_PING, .data = pl, .length = n};
            result_push(expect, &e);
            continue;
        }
        bool text = r & 2;
        size_t n = (size_t)(ref_rand(seed) % (r & 4 ? 3000 : 40));
        uint8_t *msg = (uint8_t *)xmalloc(n);
        if (text) {
            random_text(seed, msg, n);
            CHECK(ref_utf8_valid(msg, n));
        } else {
            for (size_t i = 0; i < n; i++) msg[i] = (uint8_t)ref_rand(seed);
        }
        cws_fragmenter f;
        uint64_t maxf = ref_rand(seed) % 4 == 0 ? 0 : 1 + ref_rand(seed) % 700;
        CHECK(cws_fragmenter_init(&f, text ? CWS_OP_TEXT : CWS_OP_BINARY, 0, n, maxf) == CWS_OK);
        size_t done = 0;
        uint64_t pl;
        int frames = 0;
        while (cws_fragmenter_next(&f, hdr, sizeof hdr, &w, &pl, mk) == CWS_OK) {
            for (size_t i = 0; i < w; i++) buf_push(out, olen, &cap, hdr[i]);
            for (size_t i = 0; i < pl; i++)
                buf_push(out, olen, &cap, (uint8_t)(msg[done + i] ^ (masked ? key[i & 3] : 0)));
            done += (size_t)pl;
            if (++frames == 2 && done < n && ref_rand(seed) % 2) { /* a pong between fragments (§5.4) */
                size_t cw;
                CHECK(cws_control_frame_write(hdr, sizeof hdr, &cw, CWS_OP_PONG, "p", 1, mk) == CWS_OK);
                for (size_t i = 0; i < cw; i++) buf_push(out, olen, &cap, hdr[i]);
                cws_event e = {.type = CWS_EVENT_PONG, .data = "p", .length = 1};
                result_push(expect, &e);
            }
        }
        CHECK(done == n);
        cws_event e = {.type = (uint8_t)(text ? CWS_EVENT_TEXT : CWS_EVENT_BINARY), .data = msg,
                       .length = n};
        result_push(expect, &e);
        free(msg);
    }
    uint8_t cf[CWS_MAX_CONTROL_FRAME_SIZE];
    size_t w;
    uint8_t key[4] = {1, 2, 3, 4};
    CHECK(cws_close_frame_write(cf, sizeof cf, &w, 1001, "bye", 3, masked ? key : NULL) == CWS_OK);
    for (size_t i = 0; i < w; i++) buf_push(out, olen, &cap, cf[i]);
    cws_event e = {.type = CWS_EVENT_CLOSE, .data = "bye", .length = 3, .close_code = 1001};
    result_push(expect, &e);
    expect->status = CWS_CLOSED;
}

static void test_random_streams(void) {
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

/* ---- guard pages ------------------------------------------------------------------------------
 * [PROT_NONE page][data pages][PROT_NONE page]: a buffer placed at the start of the data touches
 * the front guard, one placed at the end touches the back guard, so any read or write outside it
 * faults even without a sanitizer (picohttpparser's test does the same). */

typedef struct guarded {
    uint8_t *map, *data;
    size_t size, page;
} guarded;

static guarded guarded_new(size_t data_pages) {
    guarded g;
    g.page = (size_t)sysconf(_SC_PAGESIZE);
    g.size = (data_pages + 2) * g.page;
    g.map = (uint8_t *)mmap(NULL, g.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g.map == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    if (mprotect(g.map, g.page, PROT_NONE) != 0 ||
        mprotect(g.map + g.size - g.page, g.page, PROT_NONE) != 0) {
        perror("mprotect");
        exit(2);
    }
    g.data = g.map + g.page;
    return g;
}

static uint8_t *guarded_end(const guarded *g) { return g->map + g->size - g->page; }

static void guarded_free(guarded *g) { munmap(g->map, g->size); }

static const cws_kernel all_kernels[] = {CWS_KERNEL_AUTO, CWS_KERNEL_REFERENCE, CWS_KERNEL_WORD,
                                         CWS_KERNEL_SSE, CWS_KERNEL_AVX2, CWS_KERNEL_NEON};
#define NKERNELS (sizeof all_kernels / sizeof all_kernels[0])

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
static void test_utf8_kernels(void) {
    guarded g = guarded_new(1);
    uint64_t seed = 7;
    uint8_t text[512];
    static const uint8_t bad[] = {0x80, 0xBF, 0xC0, 0xC1, 0xF5, 0xFF, 0xE0, 0xED, 0xF0, 0xF4, 0xA0, 0x90, 0x00, 0x7F};
    size_t valid_seen = 0, invalid_seen = 0;
    for (size_t n = 0; n <= 300; n++) {
        for (size_t a = 0; a < 64; a++) {
            for (int variant = 0; variant < 3; variant++) {
                random_text(&seed, text, n);
                if (variant == 1 && n) text[ref_rand(&seed) % n] = bad[ref_rand(&seed) % sizeof bad];
                if (variant == 2 && n) { /* cut a multi-byte sequence at the end */
                    uint8_t lead[] = {0xC3, 0xE2, 0xF0};
                    text[n - 1] = lead[ref_rand(&seed) % 3];
                }
                bool want = ref_utf8_valid(text, n);
                if (want) valid_seen++; else invalid_seen++;
                for (size_t k = 0; k < NKERNELS; k++) {
                    cws_kernel kern = all_kernels[k];
                    if (!cws_utf8_kernel_available(kern)) continue;
                    context("utf8 kernel %s n=%zu a=%zu variant %d", cws_kernel_name(kern), n, a, variant);
                    uint8_t *p = g.data + a;
                    memcpy(p, text, n);
                    CHECK((cws_utf8_validate_with(kern, p, n) == CWS_OK) == want);
                    uint8_t *q = guarded_end(&g) - n;
                    memcpy(q, text, n);
                    CHECK((cws_utf8_validate_with(kern, q, n) == CWS_OK) == want);
                }
                if (a == 0) CHECK((cws_utf8_validate(text, n) == CWS_OK) == want);
            }
        }
    }
    CHECK(valid_seen > 10000 && invalid_seen > 10000);
    /* An unknown kernel value runs the reference (cws.h) */
    CHECK(cws_utf8_validate_with((cws_kernel)99, "\xc3\x28", 2) == CWS_ERR_INVALID_UTF8);
    CHECK(cws_utf8_validate_with((cws_kernel)99, "\xc3\xa9", 2) == CWS_OK);
    CHECK(cws_utf8_validate(NULL, 0) == CWS_OK);
    /* RFC 3629 §7 examples and the classic rejections */
    static const struct { const char *s; size_t n; bool ok; } cases[] = {
        {"\x41\xE2\x89\xA2\xCE\x91\x2E", 7, true},             /* "A<NOT IDENTICAL TO><ALPHA>." */
        {"\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4", 9, true},     /* Korean "hangugeo" */
        {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", 9, true},     /* Japanese "nihongo" */
        {"\xEF\xBB\xBF\xF0\xA3\x8E\xB4", 7, true},             /* BOM + U+233B4 */
        {"\xC0\xAF", 2, false}, {"\xE0\x80\xAF", 3, false}, {"\xF0\x80\x80\xAF", 4, false},
        {"\xED\xA0\x80", 3, false}, {"\xED\xBF\xBF", 3, false}, {"\xF4\x90\x80\x80", 4, false},
        {"\xF8\x88\x80\x80\x80", 5, false}, {"\xFE", 1, false}, {"\x80", 1, false},
        {"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80\x65\x64\x69\x74\x65\x64", 20, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t k = 0; k < NKERNELS; k++) {
            if (!cws_utf8_kernel_available(all_kernels[k])) continue;
            context("RFC 3629 case %zu kernel %s", i, cws_kernel_name(all_kernels[k]));
            CHECK(ref_utf8_valid(cases[i].s, cases[i].n) == cases[i].ok);
            CHECK((cws_utf8_validate_with(all_kernels[k], cases[i].s, cases[i].n) == CWS_OK) == cases[i].ok);
        }
    guarded_free(&g);
}

/* Streaming UTF-8: at every split point, each kernel gives the one-shot verdict at finish and the
 * fail-fast verdict after each piece; the fused unmask+validate gives the same and unmasks. */
static void test_utf8_streaming(void) {
    uint64_t seed = 99;
    uint8_t text[200], masked[200], work[200];
    static const uint8_t bad[] = {0x80, 0xC0, 0xF5, 0xE0, 0xED, 0xF4, 0x90, 0xA0, 0xBF};
    for (int iter = 0; iter < 120; iter++) {
        size_t n = 1 + (size_t)(ref_rand(&seed) % (iter < 60 ? 12 : 200));
        random_text(&seed, text, n);
        if (iter % 3 == 1) text[ref_rand(&seed) % n] = bad[ref_rand(&seed) % sizeof bad];
        if (iter % 3 == 2) text[n - 1] = 0xF0;
        bool whole = ref_utf8_valid(text, n);
        uint8_t key[4] = {(uint8_t)iter, 0x5A, 0xC3, (uint8_t)(iter * 17)};
        uint32_t phase0 = (uint32_t)iter & 3;
        memcpy(masked, text, n);
        ref_mask(masked, n, key, phase0);
        for (size_t k = 0; k < NKERNELS; k++) {
            cws_kernel kern = all_kernels[k];
            if (!cws_utf8_kernel_available(kern)) continue;
            size_t limit = n <= 12 ? n * n : n; /* two cuts for short texts, one otherwise */
            for (size_t sp = 0; sp <= limit; sp++) {
                size_t c1 = n <= 12 ? sp / (n + 1) : sp, c2 = n <= 12 ? sp % (n + 1) : n;
                if (c1 > c2) continue;
                size_t cuts[3] = {c1, c2, n};
                context("stream iter %d kernel %s cuts %zu %zu of %zu", iter, cws_kernel_name(kern), c1, c2, n);
                cws_utf8_stream s;
                cws_utf8_stream_init(&s);
                size_t from = 0;
                bool failed = false;
                for (int piece = 0; piece < 3; piece++) {
                    int st = kern == CWS_KERNEL_AUTO
                                 ? cws_utf8_stream_feed(&s, text + from, cuts[piece] - from)
                                 : cws_utf8_stream_feed_with(kern, &s, text + from, cuts[piece] - from);
                    bool expect_ok = !failed && ref_utf8_prefix_ok(text, cuts[piece]);
                    CHECK((st == CWS_OK) == expect_ok);
                    if (st != CWS_OK) failed = true;
                    from = cuts[piece];
                }
                CHECK((!failed && cws_utf8_stream_finish(&s) == CWS_OK) == whole);
                if (failed) CHECK(cws_utf8_stream_finish(&s) != CWS_OK);

                /* fused: unmask + validate, piece by piece, phase carried */
                memcpy(work, masked, n);
                cws_utf8_stream_init(&s);
                from = 0;
                failed = false;
                for (int piece = 0; piece < 3 && !failed; piece++) {
                    uint32_t ph = (uint32_t)((phase0 + from) & 3);
                    int st = kern == CWS_KERNEL_AUTO
                                 ? cws_unmask_utf8_stream(&s, work + from, cuts[piece] - from, key, ph)
                                 : cws_unmask_utf8_stream_with(kern, &s, work + from, cuts[piece] - from, key, ph);
                    CHECK((st == CWS_OK) == ref_utf8_prefix_ok(text, cuts[piece]));
                    if (st != CWS_OK) failed = true;
                    from = cuts[piece];
                }
                if (!failed) {
                    CHECK(memcmp(work, text, n) == 0); /* all unmasked on success */
                    CHECK((cws_utf8_stream_finish(&s) == CWS_OK) == whole);
                }
            }
        }
    }
}

/* ---- handshake (RFC 6455 §1.3, §4.2.2) and its SHA-1 / base64 ------------------------------ */

static void test_handshake(void) {
    /* RFC 6455 §1.3: "dGhlIHNhbXBsZSBub25jZQ==" -> "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" */
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    char out[CWS_ACCEPT_LENGTH + 1] = {0};
    CHECK(cws_handshake_key_is_valid(key, 24));
    CHECK(cws_handshake_accept(key, 24, out) == CWS_OK);
    CHECK(memcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", CWS_ACCEPT_LENGTH) == 0);
    static const char *bad[] = {
        "dGhlIHNhbXBsZSBub25jZQ=",   /* 23 chars */
        "dGhlIHNhbXBsZSBub25jZQ===", /* 25 */
        "dGhlIHNhbXBsZSBub25jZR==",  /* padding bits not zero (RFC 4648 §3.5) */
        "dGhlIHNhbXBsZSBub25j*Q==",  /* not base64 */
        "dGhlIHNhbXBsZSBub25jZQAA",  /* no padding: 18 bytes */
        "dGhlIHNhbXBsZSBub2=jZQ==",  /* '=' inside */
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        context("bad key %zu", i);
        CHECK(!cws_handshake_key_is_valid(bad[i], strlen(bad[i])));
        CHECK(cws_handshake_accept(bad[i], strlen(bad[i]), out) == CWS_ERR_INVALID_KEY);
    }
    CHECK(!cws_handshake_key_is_valid(NULL, 24));
    CHECK(cws_handshake_accept(key, 24, NULL) == CWS_ERR_INVALID_ARGUMENT);
    /* every 16-byte nonce whose bytes are one value: valid key, accept computed */
    for (int b = 0; b < 256; b++) {
        uint8_t nonce[16];
        memset(nonce, b, 16);
        char k[25] = {0};
        CHECK(cws_base64_encode(nonce, 16, k) == 24);
        uint8_t dec[24];
        CHECK(ref_b64_decode(k, 24, dec) == 16 && memcmp(dec, nonce, 16) == 0);
        CHECK(cws_handshake_key_is_valid(k, 24));
        CHECK(cws_handshake_accept(k, 24, out) == CWS_OK);
        CHECK(ref_b64_decode(out, 28, dec) == 20);
    }
    /* SHA-1: FIPS 180-2 examples */
    static const struct { const char *msg; const char *hex; } sha[] = {
        {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
    };
    for (size_t i = 0; i < sizeof sha / sizeof sha[0]; i++) {
        uint8_t d[20];
        char hex[41];
        cws_sha1(sha[i].msg, strlen(sha[i].msg), d);
        for (int j = 0; j < 20; j++) snprintf(hex + 2 * j, 3, "%02x", d[j]);
        context("sha1 %zu", i);
        CHECK(strcmp(hex, sha[i].hex) == 0);
    }
    {   /* one million 'a' */
        uint8_t *m = (uint8_t *)xmalloc(1000000);
        memset(m, 'a', 1000000);
        uint8_t d[20];
        char hex[41];
        cws_sha1(m, 1000000, d);
        for (int j = 0; j < 20; j++) snprintf(hex + 2 * j, 3, "%02x", d[j]);
        CHECK(strcmp(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f") == 0);
        free(m);
    }
    /* base64: RFC 4648 §10 */
    static const char *b64[][2] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
                                   {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < 7; i++) {
        char o[16] = {0};
        size_t n = cws_base64_encode(b64[i][0], strlen(b64[i][0]), o);
        context("base64 %zu", i);
        CHECK(n == strlen(b64[i][1]) && memcmp(o, b64[i][1], n) == 0);
    }
}

/* ---- writers ----------------------------------------------------------------------------------- */

static void test_writers(void) {
    uint8_t out[CWS_MAX_CONTROL_FRAME_SIZE + 8];
    size_t w;
    uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    /* RFC 6455 §5.7 masked "Hello" header, then the 16- and 64-bit length forms */
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0, CWS_OP_TEXT, 5, key) == CWS_OK);
    CHECK(w == 6 && memcmp(out, "\x81\x85\x37\xfa\x21\x3d", 6) == 0);
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0, CWS_OP_BINARY, 256, NULL) == CWS_OK);
    CHECK(w == 4 && memcmp(out, "\x82\x7e\x01\x00", 4) == 0);
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0, CWS_OP_BINARY, 65536, NULL) == CWS_OK);
    CHECK(w == 10 && memcmp(out, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10) == 0);
    /* shortest form boundaries, and a parse round trip of each in both roles */
    static const uint64_t lens[] = {0, 125, 126, 65535, 65536, (1ull << 63) - 1};
    for (size_t i = 0; i < 6; i++)
        for (int m = 0; m < 2; m++) {
            context("header len %llu masked %d", (unsigned long long)lens[i], m);
            CHECK(cws_frame_header_write(out, sizeof out, &w, false, CWS_RSV1, CWS_OP_BINARY, lens[i], m ? key : NULL) == CWS_OK);
            size_t want = 2 + (lens[i] < 126 ? 0 : lens[i] < 65536 ? 2 : 8) + (m ? 4 : 0);
            CHECK(w == want);
            cws_frame_header h;
            size_t need = 0;
            CHECK(cws_frame_header_parse(out, w, m ? CWS_ROLE_SERVER : CWS_ROLE_CLIENT, 0x40, &h, &need) == CWS_OK);
            CHECK(h.payload_length == lens[i] && h.fin == 0 && h.rsv == CWS_RSV1 && h.opcode == CWS_OP_BINARY);
            CHECK(h.masked == m && h.header_length == w && need == w);
            if (m) CHECK(memcmp(h.mask_key, key, 4) == 0);
            for (size_t cut = 0; cut < w; cut++) { /* every prefix wants more */
                int st = cws_frame_header_parse(out, cut, m ? CWS_ROLE_SERVER : CWS_ROLE_CLIENT, 0x40, &h, &need);
                CHECK(st == CWS_WANT_READ && need > cut && need <= w);
            }
            CHECK(cws_frame_header_write(out, w - 1, &w, false, 0, CWS_OP_BINARY, lens[i], m ? key : NULL) == CWS_ERR_BUFFER_TOO_SMALL);
        }
    /* invalid arguments */
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0, 3, 0, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0, 0x10, 0, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0x08, CWS_OP_TEXT, 0, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_frame_header_write(out, sizeof out, &w, false, 0, CWS_OP_PING, 0, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0, CWS_OP_PING, 126, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0, CWS_OP_BINARY, 1ull << 63, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_frame_header_write(NULL, 0, &w, true, 0, CWS_OP_BINARY, 1, NULL) == CWS_ERR_BUFFER_TOO_SMALL);
    /* control frames */
    CHECK(cws_control_frame_write(out, sizeof out, &w, CWS_OP_PING, "Hello", 5, key) == CWS_OK);
    CHECK(w == 11 && memcmp(out, "\x89\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11) == 0);
    CHECK(cws_control_frame_write(out, sizeof out, &w, CWS_OP_PONG, NULL, 0, NULL) == CWS_OK && w == 2);
    CHECK(cws_control_frame_write(out, sizeof out, &w, CWS_OP_CLOSE, NULL, 0, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_control_frame_write(out, sizeof out, &w, CWS_OP_PING, out, 126, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_control_frame_write(out, sizeof out, &w, CWS_OP_PING, NULL, 3, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_control_frame_write(out, 6, &w, CWS_OP_PING, "Hello", 5, NULL) == CWS_ERR_BUFFER_TOO_SMALL);
    CHECK(cws_control_frame_write(out, 1, &w, CWS_OP_PING, "Hello", 5, NULL) == CWS_ERR_BUFFER_TOO_SMALL);
    /* close frames */
    CHECK(cws_close_frame_write(out, sizeof out, &w, 1000, "bye", 3, NULL) == CWS_OK);
    CHECK(w == 7 && memcmp(out, "\x88\x05\x03\xe8" "bye", 7) == 0);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 0, NULL, 0, key) == CWS_OK && w == 6);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 0, "x", 1, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 1005, NULL, 0, NULL) == CWS_ERR_INVALID_CLOSE_CODE);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 1006, NULL, 0, NULL) == CWS_ERR_INVALID_CLOSE_CODE);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 1015, NULL, 0, NULL) == CWS_ERR_INVALID_CLOSE_CODE);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 1000, "\xc3\x28", 2, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 1000, out, 124, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 1000, NULL, 2, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_close_frame_write(out, 3, &w, 1000, "bye", 3, NULL) == CWS_ERR_BUFFER_TOO_SMALL);
    CHECK(cws_close_frame_write(out, 1, &w, 1000, "bye", 3, NULL) == CWS_ERR_BUFFER_TOO_SMALL);
    /* fragmenter: 10 bytes in frames of 4 -> 4, 4, 2; RSV1 on the first frame only */
    cws_fragmenter f;
    uint64_t pl;
    CHECK(cws_fragmenter_init(&f, CWS_OP_TEXT, CWS_RSV1, 10, 4) == CWS_OK);
    CHECK(cws_fragmenter_next(&f, out, sizeof out, &w, &pl, NULL) == CWS_OK && pl == 4 && out[0] == 0x41);
    CHECK(cws_fragmenter_next(&f, out, sizeof out, &w, &pl, NULL) == CWS_OK && pl == 4 && out[0] == 0x00);
    CHECK(cws_fragmenter_next(&f, out, sizeof out, &w, &pl, NULL) == CWS_OK && pl == 2 && out[0] == 0x80);
    CHECK(cws_fragmenter_next(&f, out, sizeof out, &w, &pl, NULL) == CWS_DONE);
    CHECK(cws_fragmenter_init(&f, CWS_OP_BINARY, 0, 0, 0) == CWS_OK); /* empty: one empty frame */
    CHECK(cws_fragmenter_next(&f, out, sizeof out, &w, &pl, NULL) == CWS_OK && pl == 0 && out[0] == 0x82);
    CHECK(cws_fragmenter_next(&f, out, sizeof out, &w, &pl, NULL) == CWS_DONE);
    CHECK(cws_fragmenter_init(&f, CWS_OP_PING, 0, 1, 0) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_fragmenter_init(NULL, CWS_OP_TEXT, 0, 1, 0) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_fragmenter_init(&f, CWS_OP_TEXT, 0x01, 1, 0) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_fragmenter_init(&f, CWS_OP_TEXT, 0, 1ull << 63, 0) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_fragmenter_next(NULL, out, sizeof out, &w, &pl, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_fragmenter_init(&f, CWS_OP_TEXT, 0, 1, 0) == CWS_OK);
    CHECK(cws_fragmenter_next(&f, out, 1, &w, &pl, NULL) == CWS_ERR_BUFFER_TOO_SMALL);
    CHECK(cws_fragmenter_next(&f, out, sizeof out, &w, &pl, NULL) == CWS_OK && pl == 1); /* retry works */
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

/* ---- limits, and the reassembly buffer's memory ---------------------------------------------- */

typedef struct tracking {
    long calls;      /* alloc + realloc calls so far */
    long fail_at;    /* fail the call with this index (-1: never) */
    long live;       /* blocks outstanding */
    size_t biggest;  /* largest block requested after the first (the engine itself) */
    bool first_done;
} tracking;

static void *t_alloc(size_t n, void *u) {
    tracking *t = (tracking *)u;
    if (t->calls++ == t->fail_at) return NULL;
    if (t->first_done && n > t->biggest) t->biggest = n;
    t->first_done = true;
    void *p = malloc(n);
    if (p) t->live++;
    return p;
}
static void *t_realloc(void *p, size_t n, void *u) {
    tracking *t = (tracking *)u;
    if (t->calls++ == t->fail_at) return NULL;
    if (n > t->biggest) t->biggest = n;
    void *q = realloc(p, n);
    if (q && p == NULL) t->live++;
    return q;
}
static void t_free(void *p, void *u) {
    tracking *t = (tracking *)u;
    if (p) t->live--;
    free(p);
}

/* A stream that makes the engine allocate at every site it has: the engine, reassembly growth in
 * several steps (fragmented binary and text, a frame split across reads), a message over the
 * 64 KiB kept capacity (freed on the next call), then growth from empty again. */
static void alloc_stream(uint8_t **s, size_t *len, run_result *expect) {
    size_t cap = 0;
    *s = NULL;
    *len = 0;
    uint8_t hdr[CWS_MAX_HEADER_SIZE];
    uint8_t key[4] = {9, 8, 7, 6};
    const size_t sizes[] = {5000, 70000, 3000};
    for (int m = 0; m < 3; m++) {
        size_t n = sizes[m];
        uint8_t *msg = (uint8_t *)xmalloc(n);
        for (size_t i = 0; i < n; i++) msg[i] = (uint8_t)('a' + i % 26);
        cws_fragmenter f;
        CHECK(cws_fragmenter_init(&f, m == 1 ? CWS_OP_TEXT : CWS_OP_BINARY, 0, n, m == 1 ? 20000 : 600) == CWS_OK);
        size_t done = 0, w;
        uint64_t pl;
        while (cws_fragmenter_next(&f, hdr, sizeof hdr, &w, &pl, key) == CWS_OK) {
            for (size_t i = 0; i < w; i++) buf_push(s, len, &cap, hdr[i]);
            for (size_t i = 0; i < pl; i++) buf_push(s, len, &cap, (uint8_t)(msg[done + i] ^ key[i & 3]));
            done += (size_t)pl;
        }
        cws_event e = {.type = (uint8_t)(m == 1 ? CWS_EVENT_TEXT : CWS_EVENT_BINARY), .data = msg, .length = n};
        result_push(expect, &e);
        free(msg);
    }
    expect->status = CWS_WANT_READ;
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

static void test_limits(void) {
    /* A message exactly at max_message_size in many fragments is accepted; one byte more is refused
     * on the header of the frame that would pass the limit, with no byte of it stored. */
    for (uint64_t limit = 1; limit <= 300; limit += 37) {
        for (int over = 0; over < 2; over++) {
            size_t n = (size_t)limit + (size_t)over;
            uint8_t *s = NULL;
            size_t len = 0, cap = 0, w;
            cws_fragmenter f;
            CHECK(cws_fragmenter_init(&f, CWS_OP_BINARY, 0, n, 7) == CWS_OK);
            uint8_t hdr[CWS_MAX_HEADER_SIZE];
            uint64_t pl;
            while (cws_fragmenter_next(&f, hdr, sizeof hdr, &w, &pl, NULL) == CWS_OK) {
                for (size_t i = 0; i < w; i++) buf_push(&s, &len, &cap, hdr[i]);
                for (size_t i = 0; i < pl; i++) buf_push(&s, &len, &cap, 0x42);
            }
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

/* ---- seeds for fuzz_parse ------------------------------------------------------------------- */

static int emit_seeds(const char *outdir) {
    size_t count;
    char **names = list_vectors(&count);
    if (count == 0) {
        fprintf(stderr, "no vectors in %s\n", g_vector_dir);
        return 1;
    }
    int written = 0;
    for (size_t i = 0; i < count; i++) {
        vector v;
        if (!load_vector(g_vector_dir, names[i], &v)) return 1;
        for (int mirror = 0; mirror < 2; mirror++) {
            const uint8_t *s = v.data;
            size_t len = v.len;
            uint8_t *m = NULL;
            cws_role role = v.role;
            if (mirror) {
                if (!v.mirror || v.role != CWS_ROLE_CLIENT || !mirror_to_server(v.data, v.len, &m, &len)) continue;
                s = m;
                role = CWS_ROLE_SERVER;
            }
            int mi = ref_fuzz_limit_index(v.max_message), fi = ref_fuzz_limit_index(v.max_frame);
            /* keep the corpus small: streams over 4 KiB (the 64 KiB ones) only once, unmasked */
            if (mi < 0 || fi < 0 || len > 80000 || (len > 4096 && mirror)) { free(m); continue; }
            uint8_t hdr[CWS_FUZZ_PARSE_HEADER];
            /* role, allowed RSV, realloc given, chunks of at most 16 bytes */
            hdr[0] = (uint8_t)((role == CWS_ROLE_CLIENT ? 1 : 0) | ((v.rsv & 0x40) ? 2 : 0) |
                               ((v.rsv & 0x20) ? 4 : 0) | ((v.rsv & 0x10) ? 8 : 0) | (2 << 5));
            hdr[1] = (uint8_t)(mi | (fi << 4));
            hdr[2] = (uint8_t)(i * 31 + 7);
            char path[1200];
            snprintf(path, sizeof path, "%s/%s.%s.bin", outdir, v.name, role == CWS_ROLE_SERVER ? "server" : "client");
            FILE *f = fopen(path, "wb");
            if (f == NULL || fwrite(hdr, 1, sizeof hdr, f) != sizeof hdr || fwrite(s, 1, len, f) != len) {
                fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
                return 1;
            }
            fclose(f);
            written++;
            free(m);
        }
        vector_free(&v);
        free(names[i]);
    }
    free(names);
    printf("%d seeds written to %s\n", written, outdir);
    return 0;
}

/* cws_force_kernel: every available kernel behind the plain entry points (cws_mask,
 * cws_utf8_validate and the engine), then back to the CPU's choice. */
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

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "--emit-seeds") == 0) {
        if (argc >= 4) g_vector_dir = argv[3];
        return emit_seeds(argv[2]);
    }
    if (argc >= 2) g_vector_dir = argv[1];
    run_test("vectors (RFC 6455 §5.7, rejections; whole, 1 byte, every split, random)", test_vectors);
    run_test("in-place delivery", test_in_place_delivery);
    run_test("close codes and status table", test_close_codes);
    run_test("random streams: whole == 1 byte == random chunks", test_random_streams);
    run_test("kernel names and availability", test_kernel_names);
    run_test("mask kernels vs reference, guard pages", test_mask_kernels);
    run_test("forced kernels behind the plain entry points", test_forced_kernels);
    run_test("utf8 kernels vs reference, guard pages", test_utf8_kernels);
    run_test("utf8 streaming at every split point, fused unmask", test_utf8_streaming);
    run_test("handshake accept, sha1, base64", test_handshake);
    run_test("frame, control and close writers, fragmenter", test_writers);
    run_test("API arguments", test_api_arguments);
    run_test("limits and reassembly memory", test_limits);
    run_test("failing allocator at every call", test_alloc_failure);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
