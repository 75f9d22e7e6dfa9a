/*
 * fuzz_parse — the connection engine (cws_conn_parse) in the server and client roles.
 *
 * Input: a 3-byte header (layout in Tests/C/cws_test_ref.h, "fuzz_parse input header") choosing
 * the role, allowed RSV bits, max message/frame size (small values included), the allocator and
 * the chunking; the rest is the byte stream from the peer.
 *
 * The stream is fed twice, to two engines: whole, and cut into chunks whose sizes the input's PRNG
 * seed draws. Every chunk is an exactly sized heap copy, so ASan sees any read past buf + len.
 * Invariants (cws.h, RFC 6455) that must hold on every call:
 *   - *consumed <= len; WANT_READ and CLOSED consume everything;
 *   - bytes past *consumed are left as they were (the engine unmasks only inside [0, *consumed)):
 *     checked on CWS_OK / CWS_WANT_READ / CWS_CLOSED. On a protocol error the engine may already
 *     have unmasked bytes of the offending frame past *consumed (found by this target: a masked
 *     text frame with invalid UTF-8); the connection is dead then, so it is not checked there;
 *   - an in-place event lies inside what the call consumed, at buf + offset;
 *   - data events are at most max_message_size; control payloads at most 125 bytes;
 *   - a text event without RSV bits is valid UTF-8 by the reference validator; so is a close reason;
 *   - a close event's code is valid on the wire, or 1005 with an empty payload;
 *   - an error is an ERROR event whose close code is cws_status_close_code(status) (valid on the
 *     wire), and every later call returns the same status; after a close event, CWS_CLOSED;
 *   - the reassembly buffer never grows past max_message_size; nothing leaks;
 * and between the two runs: the same events and the same final status, whatever the chunking.
 * A third run repeats the chunked one with allocation number (byte 2 % 6) failing: it must end in
 * CWS_ERR_NOMEM (close code 1011, latched) after a prefix of the same events, leaking nothing.
 * Reassembly handover (cws_config.reassembly, the same counting allocator): on in the whole run
 * when byte 2 has bit 6, in the chunked and failing runs when it has bit 7. Each handed-over buffer
 * is freed by the harness once the event is recorded (ASan checks that it is a live block), and
 * the events must still be the same, so every run compares the two modes too.
 */
#include "fuzz_common.h"

typedef struct rec {
    uint8_t type, rsv;
    uint16_t code;
    size_t len;
    uint8_t *data;
} rec;

typedef struct run {
    rec *ev;
    size_t n, cap;
    int status;
} run;

typedef struct track {
    long live;
    size_t biggest; /* largest block after the first one (the engine itself) */
    int blocks;
    int calls;      /* alloc + realloc calls */
    int fail_at;    /* fail the call with this index; -1 never */
} track;

static void *t_alloc(size_t n, void *u) {
    track *t = (track *)u;
    if (t->calls++ == t->fail_at) return NULL;
    if (t->blocks++ > 0 && n > t->biggest) t->biggest = n;
    void *p = malloc(n);
    if (p) t->live++;
    return p;
}
static void *t_realloc(void *p, size_t n, void *u) {
    track *t = (track *)u;
    if (t->calls++ == t->fail_at) return NULL;
    if (n > t->biggest) t->biggest = n;
    void *q = realloc(p, n);
    if (q && !p) t->live++;
    return q;
}
static void t_free(void *p, void *u) {
    track *t = (track *)u;
    if (p) t->live--;
    free(p);
}

static void push(run *r, const cws_event *e) {
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 8;
        r->ev = (rec *)realloc(r->ev, r->cap * sizeof *r->ev);
        FUZZ_ASSERT(r->ev != NULL);
    }
    rec *x = &r->ev[r->n++];
    x->type = e->type;
    x->rsv = e->rsv;
    x->code = e->close_code;
    x->len = e->length;
    x->data = fuzz_dup(e->data, e->length);
}

static void run_free(run *r) {
    for (size_t i = 0; i < r->n; i++) free(r->ev[i].data);
    free(r->ev);
}

static void check_event(const cws_config *cfg, const cws_event *ev) {
    switch (ev->type) {
    case CWS_EVENT_TEXT:
        FUZZ_ASSERT(ev->length <= cfg->max_message_size);
        if (ev->rsv == 0) FUZZ_ASSERT(ref_utf8_valid(ev->data, ev->length));
        break;
    case CWS_EVENT_BINARY:
        FUZZ_ASSERT(ev->length <= cfg->max_message_size);
        break;
    case CWS_EVENT_PING:
    case CWS_EVENT_PONG:
        FUZZ_ASSERT(ev->length <= 125 && ev->rsv == 0);
        break;
    case CWS_EVENT_CLOSE:
        FUZZ_ASSERT(ev->length <= 123);
        FUZZ_ASSERT(ref_close_code_ok(ev->close_code) || (ev->close_code == 1005 && ev->length == 0));
        FUZZ_ASSERT(ref_utf8_valid(ev->data, ev->length));
        break;
    default:
        FUZZ_FAIL("unknown event type");
    }
    FUZZ_ASSERT((ev->length == 0) == (ev->data == NULL));
    FUZZ_ASSERT(ev->rsv == 0 || (ev->rsv & ~cfg->allowed_rsv) == 0);
}

/* Feeds stream[0..len) in chunks of at most `max_chunk` bytes (0: whole). */
static void feed(const cws_config *cfg, const uint8_t *stream, size_t len, size_t max_chunk,
                 uint64_t seed, bool nomem_ok, run *r) {
    const cws_allocator *handover = cfg->reassembly;
    cws_conn *c = NULL;
    int created = cws_conn_new(cfg, &c);
    if (nomem_ok && created == CWS_ERR_NOMEM) { /* the engine itself could not be allocated */
        r->status = CWS_ERR_NOMEM;
        return;
    }
    FUZZ_ASSERT(created == CWS_OK);
    size_t pos = 0;
    int closed = 0;
    r->status = CWS_WANT_READ;
    while (pos < len) {
        size_t n = max_chunk ? 1 + (size_t)(ref_rand(&seed) % max_chunk) : len - pos;
        if (n > len - pos) n = len - pos;
        uint8_t *chunk = fuzz_dup(stream + pos, n);
        size_t off = 0;
        int stop = 0;
        for (;;) {
            size_t used = (size_t)-1;
            cws_event ev;
            memset(&ev, 0xA5, sizeof ev);
            int st = cws_conn_parse(c, chunk + off, n - off, &used, &ev);
            FUZZ_ASSERT(used <= n - off);
            if (st == CWS_OK || st == CWS_WANT_READ || st == CWS_CLOSED) {
                /* unmasked in place only inside what was consumed (not checked on errors: see top) */
                FUZZ_ASSERT(memcmp(chunk + off + used, stream + pos + off + used, n - off - used) == 0);
            }
            if (st == CWS_OK) {
                FUZZ_ASSERT(!closed);
                check_event(cfg, &ev);
                if (ev.in_input) {
                    FUZZ_ASSERT(ev.offset + ev.length <= used);
                    FUZZ_ASSERT(ev.length == 0 || (const uint8_t *)ev.data == chunk + off + ev.offset);
                } else {
                    FUZZ_ASSERT(ev.offset == 0);
                }
                if (ev.type == CWS_EVENT_CLOSE) closed = 1;
                push(r, &ev);
                if (handover != NULL && !ev.in_input && ev.length > 0 &&
                    (ev.type == CWS_EVENT_TEXT || ev.type == CWS_EVENT_BINARY))
                    handover->free((void *)ev.data, handover->user); /* the caller's now */
                off += used;
                if (off == n) break;
                continue;
            }
            if (st == CWS_WANT_READ) {
                FUZZ_ASSERT(!closed && used == n - off);
                break;
            }
            if (st == CWS_CLOSED) {
                FUZZ_ASSERT(closed && used == n - off);
                r->status = CWS_CLOSED;
                break;
            }
            /* a protocol error, or NOMEM from the failing allocator of the third run */
            FUZZ_ASSERT((st <= -201 && st >= -215) || (st == CWS_ERR_NOMEM && nomem_ok));
            FUZZ_ASSERT(ev.type == CWS_EVENT_ERROR && ev.in_input == 0 && ev.data != NULL);
            FUZZ_ASSERT(ev.close_code == cws_status_close_code(st));
            FUZZ_ASSERT(ref_close_code_ok(ev.close_code));
            size_t again_used;
            cws_event again;
            FUZZ_ASSERT(cws_conn_parse(c, chunk, n, &again_used, &again) == st); /* latched */
            FUZZ_ASSERT(again.type == CWS_EVENT_ERROR && again.close_code == ev.close_code);
            r->status = st;
            stop = 1;
            break;
        }
        free(chunk);
        pos += n;
        if (stop) break;
    }
    if (r->status == CWS_WANT_READ && closed) r->status = CWS_CLOSED;
    if (r->status != CWS_CLOSED && r->status >= -200) {
        size_t used;
        cws_event ev;
        FUZZ_ASSERT(cws_conn_parse(c, NULL, 0, &used, &ev) == CWS_WANT_READ);
    }
    cws_conn_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < CWS_FUZZ_PARSE_HEADER) return 0;
    const uint8_t b0 = data[0], b1 = data[1], b2 = data[2];
    const uint8_t *stream = data + CWS_FUZZ_PARSE_HEADER;
    const size_t len = size - CWS_FUZZ_PARSE_HEADER;

    track ta = {.fail_at = -1}, tb = {.fail_at = -1}, tc = {.fail_at = b2 % 6};
    cws_allocator aa = {t_alloc, (b0 & 0x10) ? NULL : t_realloc, t_free, &ta};
    cws_allocator ab = aa, ac = aa;
    ab.user = &tb;
    ac.user = &tc;
    cws_config cfg;
    cws_config_init(&cfg, (b0 & 1) ? CWS_ROLE_CLIENT : CWS_ROLE_SERVER);
    cfg.allowed_rsv = (uint8_t)(((b0 & 2) ? CWS_RSV1 : 0) | ((b0 & 4) ? CWS_RSV2 : 0) | ((b0 & 8) ? CWS_RSV3 : 0));
    cfg.max_message_size = ref_fuzz_limits[b1 & 15];
    cfg.max_frame_size = ref_fuzz_limits[b1 >> 4];

    run whole = {0}, chunked = {0}, failing = {0};
    cfg.allocator = &aa;
    cfg.reassembly = (b2 & 0x40) ? &aa : NULL;
    feed(&cfg, stream, len, 0, 0, false, &whole);
    cfg.allocator = &ab;
    cfg.reassembly = (b2 & 0x80) ? &ab : NULL;
    feed(&cfg, stream, len, ref_fuzz_chunk_max[b0 >> 5], b2, false, &chunked);
    /* the chunked run again, with allocation number b2 % 6 failing (0 = the engine itself) */
    cfg.allocator = &ac;
    cfg.reassembly = (b2 & 0x80) ? &ac : NULL;
    feed(&cfg, stream, len, ref_fuzz_chunk_max[b0 >> 5], b2, true, &failing);

    FUZZ_ASSERT(ta.live == 0 && tb.live == 0 && tc.live == 0);
    FUZZ_ASSERT(ta.biggest <= cfg.max_message_size && tb.biggest <= cfg.max_message_size);
    /* "Feeding the same bytes in chunks of any size gives the same events." (cws.h) */
    FUZZ_ASSERT(whole.status == chunked.status);
    FUZZ_ASSERT(whole.n == chunked.n);
    for (size_t i = 0; i < whole.n; i++) {
        const rec *x = &whole.ev[i], *y = &chunked.ev[i];
        FUZZ_ASSERT(x->type == y->type && x->rsv == y->rsv && x->code == y->code && x->len == y->len);
        FUZZ_ASSERT(x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
    }
    /* allocation failure: CWS_ERR_NOMEM (1011, latched, checked in feed) after a prefix of the
     * events, or, if the failing call never came, the same run as without it */
    if (tc.calls > tc.fail_at) {
        FUZZ_ASSERT(failing.status == CWS_ERR_NOMEM && failing.n <= chunked.n);
    } else {
        FUZZ_ASSERT(failing.status == chunked.status && failing.n == chunked.n);
    }
    for (size_t i = 0; i < failing.n; i++) {
        const rec *x = &failing.ev[i], *y = &chunked.ev[i];
        FUZZ_ASSERT(x->type == y->type && x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0));
    }
    run_free(&whole);
    run_free(&chunked);
    run_free(&failing);
    return 0;
}
