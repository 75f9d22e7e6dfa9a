/*
 * test_harness.c — the shared code of the C tests (see test_harness.h).
 */
#include "test_harness.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- a tiny harness ------------------------------------------------------------------------ */

int g_test_failed;   /* checks failed in the current test */
int g_passed, g_failed;
char g_context[256]; /* what the current loop is doing, printed with a failure */

void check_failed(const char *file, int line, const char *what) {
    /* Print the first few failures of a test; a broken kernel would otherwise print millions. */
    if (g_test_failed < 8)
        fprintf(stderr, "%s:%d: check failed: %s%s%s%s\n", file, line, what, g_context[0] ? "  [" : "",
                g_context, g_context[0] ? "]" : "");
    g_test_failed++;
}

void context(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_context, sizeof g_context, fmt, ap);
    va_end(ap);
}

void run_test(const char *name, void (*fn)(void)) {
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

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- recorded events and feeding a stream -------------------------------------------------- */

void result_free(run_result *r) {
    for (size_t i = 0; i < r->n; i++) free(r->ev[i].data);
    free(r->ev);
    memset(r, 0, sizeof *r);
}

void result_push(run_result *r, const cws_event *e) {
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

/* Feeds stream[0..len) to engine `c` cut as `ch`, each chunk copied into its own exactly sized heap
 * block (so ASan sees any read past the end of what was passed), checks the per-call contract and
 * records the events. Ends with one more call with no input to read the final status. */
void feed(cws_conn *c, const uint8_t *stream, size_t len, const chunking *ch, run_result *r) {
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
                if (r->handover != NULL && !ev.in_input && ev.length > 0 &&
                    (ev.type == CWS_EVENT_TEXT || ev.type == CWS_EVENT_BINARY)) {
                    r->handover->free((void *)ev.data, r->handover->user); /* ours now */
                    r->handed++;
                }
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

int run_stream(const cws_config *cfg, const uint8_t *stream, size_t len, const chunking *ch,
                      run_result *r) {
    cws_conn *c = NULL;
    int st = cws_conn_new(cfg, &c);
    CHECK(st == CWS_OK);
    if (st != CWS_OK) return st;
    feed(c, stream, len, ch, r);
    cws_conn_free(c);
    return CWS_OK;
}

bool results_equal(const run_result *a, const run_result *b) {
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

void buf_push(uint8_t **b, size_t *len, size_t *cap, uint8_t v) {
    if (*len == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        *b = (uint8_t *)realloc(*b, *cap);
        if (*b == NULL) exit(2);
    }
    (*b)[(*len)++] = v;
}

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Appends the bytes of one token: "-" (nothing), "48656c" (hex pairs), "aa*256" (a repeat), or
 * such pieces joined by '+' ("61*3+62" is 61 61 61 62). */
bool parse_hex_token(const char *t, uint8_t **b, size_t *len, size_t *cap) {
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
bool parse_hex_line(char *line, uint8_t **b, size_t *len, size_t *cap) {
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    for (char *t = strtok(line, " \t\r\n"); t; t = strtok(NULL, " \t\r\n"))
        if (!parse_hex_token(t, b, len, cap)) return false;
    return true;
}

int event_type_of(const char *w) {
    if (!strcmp(w, "text")) return CWS_EVENT_TEXT;
    if (!strcmp(w, "binary")) return CWS_EVENT_BINARY;
    if (!strcmp(w, "ping")) return CWS_EVENT_PING;
    if (!strcmp(w, "pong")) return CWS_EVENT_PONG;
    if (!strcmp(w, "close")) return CWS_EVENT_CLOSE;
    return -1;
}

bool load_vector(const char *dir, const char *file, vector *v) {
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

void vector_free(vector *v) {
    free(v->data);
    result_free(&v->expect);
}

/* Masks an unmasked stream frame by frame for the server role (RFC 6455 §5.3), with a different
 * key per frame (every fifth key all zero, which the engine may short-cut). Frames cut by the end
 * of the stream are converted as far as they go. Returns false if a frame is already masked. */
bool mirror_to_server(const uint8_t *in, size_t len, uint8_t **out, size_t *olen) {
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

void config_for(const vector *v, cws_role role, cws_config *cfg) {
    cws_config_init(cfg, role);
    cfg->max_message_size = v->max_message;
    cfg->max_frame_size = v->max_frame;
    cfg->allowed_rsv = v->rsv;
}

/* Replays one stream in every chunking against the vector's expectation. */
void check_stream(const vector *v, cws_role role, const uint8_t *s, size_t len) {
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

const char *g_vector_dir = CWS_VECTOR_DIR;

/* Lists the .hex files of the vector directory, sorted. */
char **list_vectors(size_t *count) {
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

/* ---- random streams: whole == 1 byte == random chunks == what was sent --------------------- */

/* A random valid UTF-8 text of exactly n bytes: a mix of 1-4 byte sequences, the edge values of
 * each length included (U+007F, U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFF, U+10000, U+10FFFF). */
void random_text(uint64_t *seed, uint8_t *out, size_t n) {
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
void random_stream(uint64_t *seed, bool masked, int nmsg, uint8_t **out, size_t *olen,
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

/* ---- guard pages ------------------------------------------------------------------------------
 * [PROT_NONE page][data pages][PROT_NONE page]: a buffer placed at the start of the data touches
 * the front guard, one placed at the end touches the back guard, so any read or write outside it
 * faults even without a sanitizer (picohttpparser's test does the same). */

guarded guarded_new(size_t data_pages) {
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

uint8_t *guarded_end(const guarded *g) { return g->map + g->size - g->page; }

void guarded_free(guarded *g) { munmap(g->map, g->size); }

const cws_kernel all_kernels[NKERNELS] = {CWS_KERNEL_AUTO, CWS_KERNEL_REFERENCE, CWS_KERNEL_WORD,
                                         CWS_KERNEL_SSE, CWS_KERNEL_AVX2, CWS_KERNEL_NEON};

/* ---- limits, and the reassembly buffer's memory ---------------------------------------------- */

void *t_alloc(size_t n, void *u) {
    tracking *t = (tracking *)u;
    if (t->calls++ == t->fail_at) return NULL;
    if (t->first_done && n > t->biggest) t->biggest = n;
    t->first_done = true;
    void *p = malloc(n);
    if (p) t->live++;
    return p;
}
void *t_realloc(void *p, size_t n, void *u) {
    tracking *t = (tracking *)u;
    if (t->calls++ == t->fail_at) return NULL;
    if (n > t->biggest) t->biggest = n;
    void *q = realloc(p, n);
    if (q && p == NULL) t->live++;
    return q;
}
void t_free(void *p, void *u) {
    tracking *t = (tracking *)u;
    if (p) t->live--;
    free(p);
}

/* A stream that makes the engine allocate at every site it has: the engine, reassembly growth in
 * several steps (fragmented binary and text, a frame split across reads), a message over the
 * 64 KiB kept capacity (freed on the next call), then growth from empty again. */
void alloc_stream(uint8_t **s, size_t *len, run_result *expect) {
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

/* ---- seeds for fuzz_parse ------------------------------------------------------------------- */

int emit_seeds(const char *outdir) {
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
