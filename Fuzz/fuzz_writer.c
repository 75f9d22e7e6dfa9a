/*
 * fuzz_writer — the writers (RFC 6455 §5.2, §5.5, §5.4) checked against the parser and the engine.
 *
 * Input: byte 0 picks the operation (mod 5), the fields below come next, the rest is a payload.
 *   0  header:   cws_frame_header_write with input-chosen fin/rsv/opcode/length/mask/capacity.
 *                The status must match an independent reading of the rules (reserved opcode, RSV
 *                outside 0x70, control > 125 or not FIN, length top bit, capacity vs. the shortest
 *                form); a written header parses back (cws_frame_header_parse) to the same fields
 *                in the matching role, every prefix of it wants more, and the wrong role or a
 *                disallowed RSV bit is rejected.
 *   1  control:  cws_control_frame_write -> the engine delivers the same ping/pong payload.
 *   2  close:    cws_close_frame_write -> the engine delivers the same code (1005 for an empty
 *                close) and reason; the status matches the rules for codes and reasons.
 *   3  message:  cws_fragmenter splits the payload (or valid UTF-8 made from it) into frames, with
 *                pings between fragments, masked or not; the engine, fed in input-chosen chunks,
 *                returns the pings and then exactly the message, or the error the message
 *                deserves (invalid UTF-8, over the limit).
 *   4  config:   cws_conn_new with input-chosen role, limits, RSV bits and allocator (complete or
 *                missing a function): CWS_ERR_INVALID_ARGUMENT exactly when cws.h says so; the
 *                engine's caller-error checks leave it usable.
 * Every operation also checks cws_strerror / cws_status_close_code on an input-chosen status.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool reserved_opcode(unsigned op) { return (op >= 3 && op <= 7) || op >= 0xB; }

static size_t shortest_header(uint64_t len, bool masked) {
    return 2 + (len < 126 ? 0 : len <= 0xFFFF ? 2 : 8) + (masked ? 4 : 0);
}

/* Feeds frame[0..n) to a fresh engine in chunks of 1..max bytes and collects up to `cap` events;
 * returns the final status (CWS_WANT_READ, CWS_CLOSED or an error). Event payloads are copied into
 * `store` back to back (the engine's memory is only valid until the next call). */
typedef struct evrec {
    uint8_t type, rsv;
    uint16_t code;
    size_t len, at;
} evrec;

static int engine_run(const cws_config *cfg, const uint8_t *frame, size_t n, uint64_t seed, size_t max,
                      evrec *ev, size_t cap, size_t *nev, uint8_t *store) {
    cws_conn *c = NULL;
    FUZZ_ASSERT(cws_conn_new(cfg, &c) == CWS_OK);
    size_t pos = 0, stored = 0;
    int status = CWS_WANT_READ;
    *nev = 0;
    while (pos < n && status == CWS_WANT_READ) {
        size_t m = 1 + (size_t)(ref_rand(&seed) % max);
        if (m > n - pos) m = n - pos;
        uint8_t *chunk = fuzz_dup(frame + pos, m);
        size_t off = 0;
        while (off < m) {
            size_t used;
            cws_event e;
            int st = cws_conn_parse(c, chunk + off, m - off, &used, &e);
            FUZZ_ASSERT(used <= m - off);
            off += used;
            if (st == CWS_OK) {
                FUZZ_ASSERT(*nev < cap);
                ev[*nev] = (evrec){e.type, e.rsv, e.close_code, e.length, stored};
                if (e.length) memcpy(store + stored, e.data, e.length);
                stored += e.length;
                (*nev)++;
                continue;
            }
            if (st != CWS_WANT_READ) status = st;
            break;
        }
        free(chunk);
        pos += m;
    }
    cws_conn_free(c);
    return status;
}

static void op_header(fuzz_in *in) {
    const uint8_t flags = fuzz_u8(in);
    const bool fin = flags & 1, masked = flags & 2;
    const uint8_t rsv = fuzz_u8(in), opcode = fuzz_u8(in), lensel = fuzz_u8(in);
    uint64_t len;
    switch (lensel & 3) {
    case 0: len = fuzz_u64(in); break;
    case 1: len = fuzz_u8(in); break;
    case 2: len = fuzz_u16(in); break;
    default: len = 65536 + (uint64_t)(int8_t)fuzz_u8(in); break; /* around the 16/64-bit switch */
    }
    if (lensel & 4) len |= 1ull << 63;
    uint8_t key[4];
    for (int i = 0; i < 4; i++) key[i] = fuzz_u8(in);
    const size_t cap = fuzz_u8(in) % 20;

    const bool args_ok = opcode <= 0xF && !reserved_opcode(opcode) && !(rsv & ~0x70) && !(len >> 63) &&
                         !((opcode & 8) && (!fin || len > 125));
    const size_t hlen = shortest_header(len, masked);
    uint8_t *out = (uint8_t *)malloc(cap ? cap : 1);
    FUZZ_ASSERT(out != NULL);
    size_t written = 999;
    int st = cws_frame_header_write(out, cap, &written, fin, rsv, opcode, len, masked ? key : NULL);
    if (!args_ok) FUZZ_ASSERT(st == CWS_ERR_INVALID_ARGUMENT);
    else if (cap < hlen) FUZZ_ASSERT(st == CWS_ERR_BUFFER_TOO_SMALL);
    else FUZZ_ASSERT(st == CWS_OK && written == hlen);
    if (st == CWS_OK) {
        const cws_role role = masked ? CWS_ROLE_SERVER : CWS_ROLE_CLIENT;
        cws_frame_header h;
        size_t need = 0;
        FUZZ_ASSERT(cws_frame_header_parse(out, written, role, rsv, &h, &need) == CWS_OK);
        FUZZ_ASSERT(h.payload_length == len && h.fin == fin && h.rsv == rsv && h.opcode == opcode);
        FUZZ_ASSERT(h.masked == masked && h.header_length == written && need == written);
        FUZZ_ASSERT(!masked || memcmp(h.mask_key, key, 4) == 0);
        for (size_t cut = 0; cut < written; cut++) {
            uint8_t *pre = fuzz_dup(out, cut);
            FUZZ_ASSERT(cws_frame_header_parse(pre, cut, role, rsv, &h, &need) == CWS_WANT_READ);
            FUZZ_ASSERT(need > cut && need <= written);
            free(pre);
        }
        const cws_role other = masked ? CWS_ROLE_CLIENT : CWS_ROLE_SERVER;
        FUZZ_ASSERT(cws_frame_header_parse(out, written, other, rsv, &h, NULL) ==
                    (masked ? CWS_ERR_MASKED : CWS_ERR_UNMASKED));
        if (rsv) FUZZ_ASSERT(cws_frame_header_parse(out, written, role, 0, &h, NULL) == CWS_ERR_RESERVED_BITS);
    }
    free(out);
}

static void op_control(fuzz_in *in) {
    const uint8_t opcode = fuzz_u8(in), flags = fuzz_u8(in);
    const bool masked = flags & 1, null_payload = flags & 2;
    uint8_t key[4];
    for (int i = 0; i < 4; i++) key[i] = fuzz_u8(in);
    const size_t cap = fuzz_u8(in) % 160;
    size_t len = fuzz_u8(in) % 131;
    if (len > in->n) len = in->n;
    const uint8_t *payload = null_payload ? NULL : in->p;

    const bool args_ok = (opcode == CWS_OP_PING || opcode == CWS_OP_PONG) && len <= 125 &&
                         (payload != NULL || len == 0);
    const size_t need = 2 + (masked ? 4 : 0) + len;
    uint8_t *out = (uint8_t *)malloc(cap ? cap : 1);
    FUZZ_ASSERT(out != NULL);
    size_t written = 0;
    uint8_t *pcopy = payload ? fuzz_dup(payload, len) : NULL;
    int st = cws_control_frame_write(out, cap, &written, opcode, pcopy, len, masked ? key : NULL);
    if (!args_ok) FUZZ_ASSERT(st == CWS_ERR_INVALID_ARGUMENT);
    else if (cap < need) FUZZ_ASSERT(st == CWS_ERR_BUFFER_TOO_SMALL);
    else FUZZ_ASSERT(st == CWS_OK && written == need);
    if (st == CWS_OK) {
        cws_config cfg;
        cws_config_init(&cfg, masked ? CWS_ROLE_SERVER : CWS_ROLE_CLIENT);
        evrec ev[2];
        size_t nev;
        uint8_t store[128];
        int fst = engine_run(&cfg, out, written, flags, 1 + (flags >> 2), ev, 2, &nev, store);
        FUZZ_ASSERT(fst == CWS_WANT_READ && nev == 1);
        FUZZ_ASSERT(ev[0].type == (opcode == CWS_OP_PING ? CWS_EVENT_PING : CWS_EVENT_PONG));
        FUZZ_ASSERT(ev[0].len == len && (len == 0 || memcmp(store, payload, len) == 0));
    }
    free(pcopy);
    free(out);
}

static void op_close(fuzz_in *in) {
    const uint16_t code = fuzz_u16(in);
    const uint8_t flags = fuzz_u8(in);
    const bool masked = flags & 1, null_reason = flags & 2;
    uint8_t key[4];
    for (int i = 0; i < 4; i++) key[i] = fuzz_u8(in);
    const size_t cap = fuzz_u8(in) % 160;
    size_t rlen = fuzz_u8(in) % 130;
    if (rlen > in->n) rlen = in->n;
    const uint8_t *reason = null_reason ? NULL : in->p;

    int want;
    if (code == 0) {
        want = rlen ? CWS_ERR_INVALID_ARGUMENT : CWS_OK;
    } else if (!ref_close_code_ok(code)) {
        want = CWS_ERR_INVALID_CLOSE_CODE;
    } else if (rlen > 123 || (reason == NULL && rlen) || (reason && !ref_utf8_valid(reason, rlen))) {
        want = CWS_ERR_INVALID_ARGUMENT;
    } else {
        want = CWS_OK;
    }
    const size_t plen = code ? 2 + rlen : 0;
    if (want == CWS_OK && cap < 2 + (masked ? 4u : 0u) + plen) want = CWS_ERR_BUFFER_TOO_SMALL;

    uint8_t *out = (uint8_t *)malloc(cap ? cap : 1);
    FUZZ_ASSERT(out != NULL);
    uint8_t *rcopy = reason ? fuzz_dup(reason, rlen) : NULL;
    size_t written = 0;
    int st = cws_close_frame_write(out, cap, &written, code, rcopy, rlen, masked ? key : NULL);
    FUZZ_ASSERT(st == want);
    if (st == CWS_OK) {
        FUZZ_ASSERT(written == 2 + (masked ? 4u : 0u) + plen);
        cws_config cfg;
        cws_config_init(&cfg, masked ? CWS_ROLE_SERVER : CWS_ROLE_CLIENT);
        evrec ev[2];
        size_t nev;
        uint8_t store[128];
        int fst = engine_run(&cfg, out, written, flags, 1 + (flags >> 2), ev, 2, &nev, store);
        FUZZ_ASSERT(nev == 1 && ev[0].type == CWS_EVENT_CLOSE);
        FUZZ_ASSERT(fst == CWS_WANT_READ || fst == CWS_CLOSED);
        FUZZ_ASSERT(ev[0].code == (code ? code : CWS_CLOSE_NO_STATUS));
        FUZZ_ASSERT(ev[0].len == (code ? rlen : 0) && (ev[0].len == 0 || memcmp(store, reason, rlen) == 0));
    }
    free(rcopy);
    free(out);
}

static void op_message(fuzz_in *in) {
    const uint8_t flags = fuzz_u8(in);
    const uint8_t opsel = fuzz_u8(in), rsv = fuzz_u8(in);
    const uint64_t maxf = fuzz_u16(in) % 700; /* 0: one frame */
    uint8_t key[4];
    for (int i = 0; i < 4; i++) key[i] = fuzz_u8(in);
    const uint8_t ping_mask = fuzz_u8(in), seed = fuzz_u8(in), hcap = fuzz_u8(in);
    const bool masked = flags & 1, make_text = flags & 2, at_limit = flags & 4, over_limit = flags & 8;
    /* opcode: text or binary mostly, anything else sometimes */
    const uint8_t opcode = (opsel & 0x80) ? opsel & 0x0F : (opsel & 1) ? CWS_OP_TEXT : CWS_OP_BINARY;

    uint8_t *msg;
    size_t n;
    if (make_text) {
        msg = (uint8_t *)malloc(4 * (in->n / 3 + 1));
        FUZZ_ASSERT(msg != NULL);
        n = fuzz_make_text(in->p, in->n, msg);
    } else {
        msg = fuzz_dup(in->p, in->n);
        n = in->n;
    }

    cws_fragmenter f;
    int st = cws_fragmenter_init(&f, opcode, rsv, n, maxf);
    const bool args_ok = (opcode == CWS_OP_TEXT || opcode == CWS_OP_BINARY) && !(rsv & ~0x70);
    FUZZ_ASSERT(st == (args_ok ? CWS_OK : CWS_ERR_INVALID_ARGUMENT));
    if (st != CWS_OK) {
        free(msg);
        return;
    }
    /* frames + pings into one wire buffer: at most one header per frame, one ping per frame */
    const size_t frames = maxf ? n / maxf + 1 : 1;
    uint8_t *wire = (uint8_t *)malloc(n + frames * (CWS_MAX_HEADER_SIZE + 6 + 1) + 16);
    FUZZ_ASSERT(wire != NULL);
    size_t w = 0, done = 0, nframes = 0, pings = 0;
    for (;;) {
        size_t hw;
        uint64_t pl;
        /* a too small header buffer first: nothing may change, the retry must work */
        if (hcap % 14 < 2) {
            uint8_t tiny[1];
            int s2 = cws_fragmenter_next(&f, tiny, hcap % 2, &hw, &pl, masked ? key : NULL);
            FUZZ_ASSERT(s2 == CWS_ERR_BUFFER_TOO_SMALL || s2 == CWS_DONE);
        }
        st = cws_fragmenter_next(&f, wire + w, CWS_MAX_HEADER_SIZE, &hw, &pl, masked ? key : NULL);
        if (st == CWS_DONE) break;
        FUZZ_ASSERT(st == CWS_OK);
        FUZZ_ASSERT(maxf == 0 || pl <= maxf);
        FUZZ_ASSERT(nframes < frames);
        w += hw;
        memcpy(wire + w, msg + done, (size_t)pl);
        if (masked) ref_mask(wire + w, (size_t)pl, key, 0);
        w += (size_t)pl;
        done += (size_t)pl;
        if (done < n && (ping_mask >> (nframes & 7)) & 1) { /* RFC 6455 §5.4: control between fragments */
            size_t cw;
            FUZZ_ASSERT(cws_control_frame_write(wire + w, 7, &cw, CWS_OP_PING, "p", 1, masked ? key : NULL) == CWS_OK);
            w += cw;
            pings++;
        }
        nframes++;
    }
    FUZZ_ASSERT(done == n);
    FUZZ_ASSERT(cws_fragmenter_next(&f, wire, CWS_MAX_HEADER_SIZE, NULL, NULL, NULL) == CWS_DONE);

    cws_config cfg;
    cws_config_init(&cfg, masked ? CWS_ROLE_SERVER : CWS_ROLE_CLIENT);
    cfg.allowed_rsv = rsv;
    cfg.max_frame_size = maxf ? maxf : (n ? n : 1);
    cfg.max_message_size = n ? n : 1;
    if (over_limit && n > 1) cfg.max_message_size = n - 1;
    else if (!at_limit) cfg.max_message_size = n + 1000;

    evrec *ev = (evrec *)malloc((pings + 2) * sizeof *ev);
    uint8_t *store = (uint8_t *)malloc(n + pings + 1);
    FUZZ_ASSERT(ev != NULL && store != NULL);
    size_t nev;
    int fst = engine_run(&cfg, wire, w, seed, 1 + (size_t)(seed % 64) * (seed & 1 ? 1 : 97), ev, pings + 2, &nev, store);

    const bool text_checked = opcode == CWS_OP_TEXT && rsv == 0;
    const bool utf8_bad = text_checked && !ref_utf8_valid(msg, n);
    const bool too_big = n > cfg.max_message_size;
    /* everything before the message event (or before the error) is one of the pings */
    const size_t before = (fst == CWS_WANT_READ && nev) ? nev - 1 : nev;
    for (size_t i = 0; i < before; i++) FUZZ_ASSERT(ev[i].type == CWS_EVENT_PING && ev[i].len == 1);
    if (!utf8_bad && !too_big) {
        FUZZ_ASSERT(fst == CWS_WANT_READ && nev == pings + 1);
        const evrec *m = &ev[nev - 1];
        FUZZ_ASSERT(m->type == (opcode == CWS_OP_TEXT ? CWS_EVENT_TEXT : CWS_EVENT_BINARY));
        FUZZ_ASSERT(m->rsv == rsv && m->len == n && (n == 0 || memcmp(store + m->at, msg, n) == 0));
    } else if (utf8_bad && !too_big) {
        FUZZ_ASSERT(fst == CWS_ERR_INVALID_UTF8);
    } else if (!utf8_bad) {
        FUZZ_ASSERT(fst == CWS_ERR_MESSAGE_TOO_BIG);
    } else {
        /* both: whichever comes first in the stream (fail-fast UTF-8 or the frame over the limit) */
        FUZZ_ASSERT(fst == CWS_ERR_INVALID_UTF8 || fst == CWS_ERR_MESSAGE_TOO_BIG);
    }
    free(store);
    free(ev);
    free(wire);
    free(msg);
}

static void *plain_alloc(size_t n, void *u) { (void)u; return malloc(n); }
static void *plain_realloc(void *p, size_t n, void *u) { (void)u; return realloc(p, n); }
static void plain_free(void *p, void *u) { (void)u; free(p); }

static void op_config(fuzz_in *in) {
    const uint8_t role = fuzz_u8(in), sel = fuzz_u8(in), rsv = fuzz_u8(in), alloc_sel = fuzz_u8(in) % 5;
    const uint64_t mm = (sel & 1) ? 0 : 1 + fuzz_u64(in) % 100000;
    const uint64_t mf = (sel & 2) ? 0 : 1 + fuzz_u64(in) % 100000;
    cws_allocator a = {plain_alloc, plain_realloc, plain_free, NULL};
    if (alloc_sel == 2) a.alloc = NULL;
    if (alloc_sel == 3) a.free = NULL;
    if (alloc_sel == 4) a.realloc = NULL; /* allowed */
    cws_config cfg;
    cws_config_init(&cfg, (cws_role)role);
    cfg.max_message_size = mm;
    cfg.max_frame_size = mf;
    cfg.allowed_rsv = rsv;
    cfg.allocator = alloc_sel ? &a : NULL;
    const bool ok = role <= 1 && mm && mf && !(rsv & ~0x70) && alloc_sel != 2 && alloc_sel != 3;
    cws_conn *c = NULL;
    FUZZ_ASSERT(cws_conn_new(&cfg, &c) == (ok ? CWS_OK : CWS_ERR_INVALID_ARGUMENT));
    FUZZ_ASSERT(cws_conn_new(NULL, &c) == CWS_ERR_INVALID_ARGUMENT);
    FUZZ_ASSERT(cws_conn_new(&cfg, NULL) == CWS_ERR_INVALID_ARGUMENT);
    cws_config_init(NULL, CWS_ROLE_SERVER);
    if (!ok) return;
    /* caller errors are reported and change nothing (cws.h: -3xx) */
    size_t used = 1;
    cws_event ev;
    FUZZ_ASSERT(cws_conn_parse(c, NULL, 1 + in->n, &used, &ev) == CWS_ERR_INVALID_ARGUMENT && used == 0);
    FUZZ_ASSERT(cws_conn_parse(c, NULL, 0, &used, NULL) == CWS_ERR_INVALID_ARGUMENT);
    FUZZ_ASSERT(cws_conn_parse(NULL, NULL, 0, &used, &ev) == CWS_ERR_INVALID_ARGUMENT);
    FUZZ_ASSERT(cws_conn_parse(c, NULL, 0, NULL, &ev) == CWS_WANT_READ);
    cws_conn_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    const uint8_t op = fuzz_u8(&in);
    const int status = (int16_t)fuzz_u16(&in);
    const char *s = cws_strerror(status);
    FUZZ_ASSERT(s != NULL && s[0] != 0);
    const uint16_t code = cws_status_close_code(status);
    FUZZ_ASSERT(code == 0 || code == 1002 || code == 1007 || code == 1009 || code == 1011);
    /* -201..-215: RFC 6455 errors; -216, -217: permessage-deflate (RFC 7692) errors. */
    FUZZ_ASSERT((code != 0) == ((status <= -201 && status >= -217) || status == CWS_ERR_NOMEM));
    switch (op % 5) {
    case 0: op_header(&in); break;
    case 1: op_control(&in); break;
    case 2: op_close(&in); break;
    case 3: op_message(&in); break;
    default: op_config(&in); break;
    }
    return 0;
}
