/*
 * fuzz_inflate — permessage-deflate receiving (RFC 7692 §6, §7.2.2) through cws_conn_parse with a
 * tiny message limit, and the deflater feeding it.
 *
 * Input: byte 0: bit 0 role (client: unmasked frames), bit 1 peer no_context_takeover, bit 2
 * "make": compress the messages with cws_deflate_message first (else the bytes are sent as the
 * compressed payload as they are, for the inflater's error paths), bit 3 binary instead of text,
 * bit 4 a deflater without context takeover, bits 5-7 the deflater level (0-7);
 * byte 1: peer window bits (8 + b % 8; 9 + b % 7 in "make" mode), byte 2-3: max_message_size (1 + v % 4096) and,
 * in bit 15, "pool": the engine borrows its inflater from a cws_inflater_pool (the peer then
 * resets after every message, as the pool requires), in bit 14, "handover": the same allocator is
 * cws_config.reassembly, so every inflated message's buffer is handed over and freed here once
 * checked; byte 4: the
 * largest fragment (1 + b); byte 5: bits 0-2 chunk size index (ref_fuzz_chunk_max), bits 3-7 an
 * allocation to fail (0: none, k: the k-th call of the engine's allocator, and of a second
 * deflater's, returns NULL). Then messages: a 2-byte length and that many bytes, until the input
 * ends.
 *
 * Invariants:
 *   - the allocator never holds more than the engine, zlib's fixed state (< 48 KiB with a 32 KiB
 *     window) and max_message_size: a bomb costs no more than the limit;
 *   - every message delivered is at most max_message_size bytes; text is valid UTF-8 (reference);
 *   - "make" mode: every message comes back equal to what was compressed, until the first
 *     message above the limit (1009) or invalid text (1007), which end the run with that status;
 *   - errors carry the close code of their status (1002, 1007, 1009, 1011 only); nothing leaks;
 *   - a failed allocation is CWS_ERR_NOMEM (1011) and nothing else, in the engine and the deflater.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct counter {
    size_t live, peak;
    unsigned calls, fail_at; /* allocation calls so far; fail the fail_at-th (0: never) */
    size_t sizes_n;
    void *ptrs[64];
    size_t sizes[64];
} counter;

static void *c_alloc(size_t n, void *u) {
    counter *c = (counter *)u;
    if (++c->calls == c->fail_at) return NULL;
    FUZZ_ASSERT(c->sizes_n < 64);
    void *p = malloc(n ? n : 1);
    FUZZ_ASSERT(p != NULL);
    c->ptrs[c->sizes_n] = p;
    c->sizes[c->sizes_n++] = n;
    c->live += n;
    if (c->live > c->peak) c->peak = c->live;
    return p;
}

static size_t c_forget(counter *c, void *p) {
    for (size_t i = 0; i < c->sizes_n; i++) {
        if (c->ptrs[i] == p) {
            size_t n = c->sizes[i];
            c->ptrs[i] = c->ptrs[c->sizes_n - 1];
            c->sizes[i] = c->sizes[c->sizes_n - 1];
            c->sizes_n--;
            return n;
        }
    }
    FUZZ_FAIL("free of a pointer the allocator never gave");
}

static void c_free(void *p, void *u) {
    if (p == NULL) return;
    counter *c = (counter *)u;
    c->live -= c_forget(c, p);
    free(p);
}

static void *c_realloc(void *p, size_t n, void *u) {
    counter *c = (counter *)u;
    if (p == NULL) return c_alloc(n, u);
    if (++c->calls == c->fail_at) return NULL;
    size_t old = c_forget(c, p);
    void *q = realloc(p, n ? n : 1);
    FUZZ_ASSERT(q != NULL);
    c->ptrs[c->sizes_n] = q;
    c->sizes[c->sizes_n++] = n;
    c->live = c->live - old + n;
    if (c->live > c->peak) c->peak = c->live;
    return q;
}

/* Appends one frame to out (capacity checked by the caller). */
static size_t put_frame(uint8_t *out, bool fin, uint8_t rsv, uint8_t op, const uint8_t *p, size_t n,
                        bool masked, uint8_t keyseed) {
    uint8_t key[4] = {keyseed, (uint8_t)(keyseed * 7 + 1), 0x5a, (uint8_t)~keyseed};
    size_t w = 0;
    FUZZ_ASSERT(cws_frame_header_write(out, CWS_MAX_HEADER_SIZE, &w, fin, rsv, op, n,
                                       masked ? key : NULL) == CWS_OK);
    if (n) memcpy(out + w, p, n);
    if (masked) ref_mask(out + w, n, key, 0);
    return w + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    const uint8_t b0 = fuzz_u8(&in);
    const bool client = b0 & 1, make = (b0 >> 2) & 1;
    const uint8_t opcode = (b0 & 8) ? CWS_OP_BINARY : CWS_OP_TEXT;
    /* "make" mode: 9-15, the windows our deflater can honour; otherwise 8-15. */
    const uint8_t peer_bits = (uint8_t)(make ? 9 + fuzz_u8(&in) % 7 : 8 + fuzz_u8(&in) % 8);
    const uint16_t b23 = fuzz_u16(&in);
    const uint64_t limit = 1 + b23 % 4096;
    const bool use_pool = b23 >> 15;
    const bool handover = (b23 >> 14) & 1;
    const bool peer_nct = ((b0 >> 1) & 1) || use_pool;
    const size_t max_frag = 1 + (size_t)fuzz_u8(&in);
    const uint8_t b5 = fuzz_u8(&in);
    const size_t chunk = ref_fuzz_chunk_max[b5 % 8];
    const unsigned fail_at = b5 >> 3;

    /* The peer's parameters: what the sender of the fuzzed bytes agreed to. */
    cws_pmd_params agreed = {15, 15, false, false};
    if (client) {
        agreed.server_max_window_bits = peer_bits;
        agreed.server_no_context_takeover = peer_nct;
    } else {
        agreed.client_max_window_bits = peer_bits;
        agreed.client_no_context_takeover = peer_nct;
    }
    cws_pmd_config dcfg;
    cws_pmd_config_init(&dcfg);
    dcfg.threshold = 0;
    dcfg.level = (uint8_t)(b0 >> 5);
    dcfg.no_context_takeover = (b0 >> 4) & 1;
    dcfg.window_bits = 15; /* the agreement caps it */
    cws_deflater *d = NULL;
    /* The deflater runs in the peer's role, under the same agreement. */
    if (make) FUZZ_ASSERT(cws_deflater_new(&dcfg, &agreed, client ? CWS_ROLE_SERVER : CWS_ROLE_CLIENT,
                                           NULL, &d) == CWS_OK);
    if (make) {
        bool cz = true;
        size_t w = 1;
        uint8_t o[32];
        FUZZ_ASSERT(cws_deflate_message(NULL, o, 1, 0, o, sizeof o, &w, &cz) == CWS_ERR_INVALID_ARGUMENT);
        FUZZ_ASSERT(cws_deflate_message(d, NULL, 1, 0, o, sizeof o, &w, &cz) == CWS_ERR_INVALID_ARGUMENT);
        FUZZ_ASSERT(cws_deflate_message(d, o, 1, 2, o, sizeof o, &w, &cz) == CWS_ERR_INVALID_ARGUMENT);
    }
    if (make && fail_at) {
        /* A deflater whose allocator fails once: CWS_ERR_NOMEM at creation or at its first
         * message, and nothing held afterwards. */
        counter fc;
        memset(&fc, 0, sizeof fc);
        fc.fail_at = fail_at;
        cws_allocator fa = {c_alloc, c_realloc, c_free, &fc};
        cws_deflater *fd = NULL;
        int st = cws_deflater_new(&dcfg, &agreed, client ? CWS_ROLE_SERVER : CWS_ROLE_CLIENT, &fa, &fd);
        FUZZ_ASSERT(st == CWS_OK || st == CWS_ERR_NOMEM);
        if (st == CWS_OK) {
            static const uint8_t msg[] = "a message long enough to be compressed, compressed";
            uint8_t o[128];
            size_t w = 0;
            bool cz = false;
            st = cws_deflate_message(fd, msg, sizeof msg, 0, o, sizeof o, &w, &cz);
            FUZZ_ASSERT(st == CWS_OK || (st == CWS_ERR_NOMEM && w == 0 && !cz));
            cws_deflater_free(fd);
        }
        FUZZ_ASSERT(fc.live == 0);
    }

    /* Build the stream. */
    size_t cap = 64 + 2 * size + 16 * (size + 1);
    uint8_t *stream = (uint8_t *)malloc(cap);
    FUZZ_ASSERT(stream != NULL);
    size_t slen = 0;
    enum { MAXMSG = 64 };
    size_t orig_off[MAXMSG], orig_len[MAXMSG];
    int nmsg = 0;
    while (in.n > 0 && nmsg < MAXMSG) {
        size_t n = fuzz_u16(&in) % 2048;
        if (n > in.n) n = in.n;
        const uint8_t *m = in.p;
        in.p += n;
        in.n -= n;
        orig_off[nmsg] = (size_t)(m - data);
        orig_len[nmsg] = n;
        const uint8_t *payload = m;
        size_t plen = n;
        uint8_t *tmp = NULL;
        uint8_t rsv = CWS_RSV1;
        if (make) {
            size_t bound = cws_deflate_bound(n);
            tmp = (uint8_t *)malloc(bound);
            FUZZ_ASSERT(tmp != NULL);
            bool compressed = false;
            FUZZ_ASSERT(cws_deflate_message(d, m, n, 0, tmp, bound, &plen, &compressed) == CWS_OK);
            FUZZ_ASSERT(plen <= bound);
            if (compressed) {
                payload = tmp;
            } else {
                FUZZ_ASSERT((dcfg.no_context_takeover || peer_nct) && plen == 0); /* only a resetting deflater */
                plen = n;
                rsv = 0;
            }
        }
        size_t at = 0;
        do {
            size_t f = plen - at < max_frag ? plen - at : max_frag;
            FUZZ_ASSERT(slen + CWS_MAX_HEADER_SIZE + f <= cap);
            slen += put_frame(stream + slen, at + f == plen, at == 0 ? rsv : 0,
                              at == 0 ? opcode : CWS_OP_CONTINUATION, payload + at, f, !client,
                              (uint8_t)(nmsg + at));
            at += f;
        } while (at < plen);
        free(tmp);
        nmsg++;
    }

    counter cnt;
    memset(&cnt, 0, sizeof cnt);
    cnt.fail_at = fail_at;
    cws_allocator a = {c_alloc, c_realloc, c_free, &cnt};
    cws_config cfg;
    cws_config_init(&cfg, client ? CWS_ROLE_CLIENT : CWS_ROLE_SERVER);
    cfg.max_message_size = limit;
    cfg.max_frame_size = 1 << 20;
    cfg.allocator = &a;
    cfg.reassembly = handover ? &a : NULL;
    cfg.pmd = &agreed;
    cws_inflater_pool *pool = NULL;
    int created = use_pool ? cws_inflater_pool_new(&a, &pool) : CWS_OK;
    cfg.inflaters = pool;
    cws_conn *c = NULL;
    if (created == CWS_OK) created = cws_conn_new(&cfg, &c);
    FUZZ_ASSERT(created == CWS_OK || (created == CWS_ERR_NOMEM && cnt.calls == fail_at));
    if (created != CWS_OK) {
        cws_inflater_pool_free(pool);
        FUZZ_ASSERT(cnt.live == 0);
        cws_deflater_free(d);
        free(stream);
        return 0;
    }

    int got = 0, status = 0;
    size_t off = 0;
    while (off < slen && status == 0) {
        size_t n = slen - off < chunk ? slen - off : chunk;
        uint8_t *piece = fuzz_dup(stream + off, n);
        size_t pos = 0;
        for (;;) {
            size_t used = 0;
            cws_event ev;
            int st = cws_conn_parse(c, piece + pos, n - pos, &used, &ev);
            FUZZ_ASSERT(used <= n - pos);
            pos += used;
            /* Engine + zlib's inflate state (~7 KB) + window (<= 32 KiB) + the message limit. */
            FUZZ_ASSERT(cnt.peak <= limit + 48 * 1024);
            if (st == CWS_WANT_READ) break;
            if (st != CWS_OK) {
                FUZZ_ASSERT(st < 0 && ev.type == CWS_EVENT_ERROR);
                uint16_t code = ev.close_code;
                FUZZ_ASSERT(code == 1002 || code == 1007 || code == 1009 || code == 1011);
                FUZZ_ASSERT((st == CWS_ERR_NOMEM) == (code == 1011));
                if (st == CWS_ERR_NOMEM) FUZZ_ASSERT(fail_at != 0 && cnt.calls >= fail_at);
                status = st;
                break;
            }
            FUZZ_ASSERT(ev.type == opcode);
            FUZZ_ASSERT(ev.length <= limit);
            if (opcode == CWS_OP_TEXT) FUZZ_ASSERT(ref_utf8_valid(ev.data, ev.length));
            if (make) {
                FUZZ_ASSERT(got < nmsg);
                FUZZ_ASSERT(ev.length == orig_len[got]);
                FUZZ_ASSERT(ev.length == 0 || memcmp(ev.data, data + orig_off[got], ev.length) == 0);
            }
            /* the caller's now: c_free fails on a block the allocator does not hold */
            if (handover && !ev.in_input && ev.length > 0) a.free((void *)ev.data, a.user);
            got++;
        }
        free(piece);
        off += n;
    }
    if (make) {
        if (status == 0) {
            FUZZ_ASSERT(got == nmsg);
        } else {
            /* Only the limit or invalid text can stop a stream this code compressed itself. */
            FUZZ_ASSERT(got < nmsg);
            if (status == CWS_ERR_NOMEM) { /* the injected failure: checked above */ }
            else if (status == CWS_ERR_MESSAGE_TOO_BIG) FUZZ_ASSERT(orig_len[got] > limit);
            else FUZZ_ASSERT(status == CWS_ERR_INVALID_UTF8 && opcode == CWS_OP_TEXT &&
                             !ref_utf8_valid(data + orig_off[got], orig_len[got]));
        }
    }
    cws_conn_free(c);
    /* with a pool: at most one inflater, idle again once the engine is gone */
    FUZZ_ASSERT(cws_inflater_pool_count(pool) <= 1);
    cws_inflater_pool_free(pool);
    FUZZ_ASSERT(cnt.live == 0);
    cws_deflater_free(d);
    free(stream);
    return 0;
}
