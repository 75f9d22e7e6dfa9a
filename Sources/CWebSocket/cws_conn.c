/*
 * cws_conn.c — the streaming connection engine (RFC 6455 §5, §6.2, §7).
 *
 * Pull style: cws_conn_parse takes bytes and returns at most one event. The common case — a whole
 * unfragmented frame inside the fed buffer — is a straight line: parse the header in place, unmask
 * and validate the payload in place in one pass, return an event that points into the caller's
 * buffer. Only the uncommon cases pay:
 *   - a header split across calls is collected in `hbuf` (at most 14 bytes);
 *   - a control frame split across calls is collected in `cbuf` (at most 125 bytes);
 *   - a fragmented message, or a data frame split across calls, is appended to the reassembly
 *     buffer, which grows as bytes arrive (never ahead of them) and never past max_message_size,
 *     because every frame's length is checked against the limit on its header. With
 *     cws_config.reassembly set, that buffer comes from the caller's allocator and is handed over
 *     with the message's event (the engine forgets it), so the message is copied once, not twice.
 * UTF-8 of text messages is validated as the bytes arrive (fail fast), with the state carried
 * across chunks and fragments in `utf8`.
 *
 * permessage-deflate (RFC 7692), when cws_config.pmd is set: a data message whose first frame has
 * RSV1 is compressed. Its payload is unmasked in place as usual and fed to the inflater piece by
 * piece; the output goes to the reassembly buffer, which grows within max_message_size only,
 * and a 1-byte probe detects output past the limit without storing it. Text is validated on the
 * inflated bytes as they come out. Uncompressed messages are untouched by all of this.
 */
#include "cws_kernels.h"

struct cws_conn {
    /* Per-call state flags, together in one 8-byte word so the fast path tests them with one
     * load (uWS keeps its whole per-socket parser state to a few words for the same reason). */
    union {
        struct {
            uint8_t closed;     /* a close event was returned */
            uint8_t in_frame;   /* header parsed, payload bytes pending */
            uint8_t hlen;       /* header bytes collected in hbuf (split headers only) */
            uint8_t msg_open;   /* a non-FIN data frame started a fragmented message */
            uint8_t reset_rbuf; /* the reassembly buffer was handed out: empty it on the next call */
            uint8_t failed;     /* `error` is set */
            uint8_t unused[2];
        } f;
        uint64_t any; /* zero when every flag is clear */
    } flags;

    uint8_t mask_bit;    /* 0x80 when frames must be masked (server role), else 0 */
    uint8_t small_limit; /* largest 7-bit payload the fast path may accept (limits included) */
    cws_allocator alloc;
    uint64_t max_message;
    uint64_t max_frame;
    cws_role role;
    uint8_t allowed_rsv;

    int error; /* latched -2xx/-5xx status, 0 while healthy */

    /* current frame */
    uint8_t hbuf[CWS_MAX_HEADER_SIZE];
    cws_frame_header fh;
    uint64_t frame_got; /* payload bytes of the current frame seen so far */

    /* current message */
    uint8_t msg_opcode;   /* TEXT or BINARY */
    uint8_t msg_rsv;      /* RSV bits of the first frame */
    uint8_t msg_validate; /* validate UTF-8 as bytes arrive */
    uint64_t msg_len;     /* payload bytes of the message so far */
    cws_utf8_stream utf8;

    uint8_t *rbuf; /* reassembly buffer, owned (from `ralloc`) until handed over */
    size_t rcap;
    size_t rlen;
    size_t rfirst;        /* capacity of a new reassembly buffer: 1024, or with a handover what
                           * cws__inflate_finish found worth starting at (at most 4 KiB) */
    cws_allocator ralloc; /* where rbuf comes from: cws_config.reassembly, else `alloc` */
    uint8_t handover;     /* cws_config.reassembly is set: rbuf goes to the caller with its event */

    uint8_t cbuf[125]; /* control payload split across calls */

    /* permessage-deflate (RFC 7692) */
    uint8_t pmd_on;        /* the extension was negotiated */
    uint8_t pmd_bits;      /* the peer's window bits: our inflater's window */
    uint8_t pmd_reset;     /* the peer resets after each message: so do we (no context takeover) */
    uint8_t msg_inflate;   /* the current message is compressed */
    uint8_t msg_text_out;  /* validate the inflated bytes as UTF-8 */
    uint64_t max_wire;     /* compressed bytes allowed per message (see cws.h) */
    uint64_t max_frame_wire; /* compressed bytes allowed per frame of a compressed message */
    cws__inflater *zin;    /* created on the first compressed message, or borrowed from `pool`
                            * for one message */
    cws_inflater_pool *pool; /* cws_config.inflaters: NULL, or the thread's pool */
};

/* Reassembly capacity kept between messages; a larger buffer is returned to the allocator once
 * its message is delivered, so an idle connection does not hold a big message's memory. Small on
 * purpose: every message inflated in the shared permessage-deflate mode passes through this buffer,
 * and at 64 KiB (before) a server that had received mixed messages of up to 64 KiB held about that
 * much per connection (Benchmarks/RESULTS-pmd-memory.md); messages that arrive whole in one read
 * never use it. */
#define CWS__KEEP_RBUF 4096u

void cws_config_init(cws_config *cfg, cws_role role) {
    if (cfg == NULL) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->role = role;
    cfg->max_message_size = 65536;
    cfg->max_frame_size = 65536;
    cfg->allowed_rsv = 0;
    cfg->allocator = NULL;
    cfg->reassembly = NULL;
    cfg->pmd = NULL;
}

/* n plus deflate's worst-case expansion (see max_wire), saturated. */
static uint64_t cws__with_deflate_slack(uint64_t n) {
    const uint64_t slack = (n >> 3) + 64;
    return n > UINT64_MAX - slack ? UINT64_MAX : n + slack;
}

int cws_conn_new(const cws_config *cfg, cws_conn **out) {
    if (cfg == NULL || out == NULL) return CWS_ERR_INVALID_ARGUMENT;
    if ((cfg->role != CWS_ROLE_SERVER && cfg->role != CWS_ROLE_CLIENT) ||
        cfg->max_message_size == 0 || cfg->max_frame_size == 0 || (cfg->allowed_rsv & ~0x70))
        return CWS_ERR_INVALID_ARGUMENT;
    if (cfg->pmd != NULL && !cws__pmd_params_valid(cfg->pmd)) return CWS_ERR_INVALID_ARGUMENT;
    /* A shared inflater is reset after every message: only for a peer that resets too. */
    if (cfg->inflaters != NULL &&
        (cfg->pmd == NULL || !(cfg->role == CWS_ROLE_SERVER ? cfg->pmd->client_no_context_takeover
                                                             : cfg->pmd->server_no_context_takeover)))
        return CWS_ERR_INVALID_ARGUMENT;
    cws_allocator a, ra;
    if (cws__allocator_resolve(cfg->allocator, &a) != CWS_OK) return CWS_ERR_INVALID_ARGUMENT;
    if (cfg->reassembly != NULL && cws__allocator_resolve(cfg->reassembly, &ra) != CWS_OK)
        return CWS_ERR_INVALID_ARGUMENT;
    cws_conn *c = (cws_conn *)a.alloc(sizeof *c, a.user);
    if (c == NULL) return CWS_ERR_NOMEM;
    memset(c, 0, sizeof *c);
    c->alloc = a;
    c->ralloc = cfg->reassembly != NULL ? ra : a;
    c->handover = cfg->reassembly != NULL ? 1 : 0;
    c->role = cfg->role;
    c->max_message = cfg->max_message_size;
    c->max_frame = cfg->max_frame_size;
    c->allowed_rsv = cfg->allowed_rsv;
    c->mask_bit = cfg->role == CWS_ROLE_SERVER ? 0x80 : 0;
    uint64_t lim = 125;
    if (c->max_frame < lim) lim = c->max_frame;
    if (c->max_message < lim) lim = c->max_message;
    c->small_limit = (uint8_t)lim;
    c->rfirst = 1024;
    if (cfg->pmd != NULL) {
        /* RFC 7692 §6: the extension owns RSV1. What we receive was compressed by the peer, so
         * the peer's direction decides: client_* parameters for a server, server_* for a client. */
        const cws_pmd_params *p = cfg->pmd;
        bool server = cfg->role == CWS_ROLE_SERVER;
        c->pmd_on = 1;
        c->allowed_rsv |= CWS_RSV1;
        c->pmd_bits = server ? p->client_max_window_bits : p->server_max_window_bits;
        c->pmd_reset = (server ? p->client_no_context_takeover : p->server_no_context_takeover) ? 1 : 0;
        /* Deflate's worst expansion is a few percent (5 bytes per stored block of >= 127 bytes at
         * memLevel 1); an eighth plus 64 bytes is above it for any sender setting. Both limits
         * count compressed bytes with that slack, so neither refuses a message whose inflated
         * size is within max_message_size (incompressible data grows a little); the inflated
         * size itself is checked against max_message_size as it comes out. */
        c->max_wire = cws__with_deflate_slack(c->max_message);
        c->max_frame_wire = cws__with_deflate_slack(c->max_frame);
        c->pool = cfg->inflaters;
    }
    *out = c;
    return CWS_OK;
}

void cws_conn_free(cws_conn *c) {
    if (c == NULL) return;
    if (c->rbuf) c->ralloc.free(c->rbuf, c->ralloc.user); /* kept, or a message in progress */
    if (c->pool != NULL && c->zin != NULL) cws__pool_give(c->pool, c->zin);
    else cws__inflater_free(c->zin);
    c->alloc.free(c, c->alloc.user);
}

/* ---- helpers ---------------------------------------------------------------------------------- */

/* Writes *ev: the one place an event is filled. `data` is NULL when length is 0. */
CWS_INLINE void cws__event(cws_event *ev, uint8_t type, const void *data, size_t offset, size_t length,
                           uint8_t in_input, uint8_t rsv, uint16_t close_code) {
    ev->type = type;
    ev->data = length ? data : NULL;
    ev->offset = offset;
    ev->length = length;
    ev->in_input = in_input;
    ev->rsv = rsv;
    ev->close_code = close_code;
}

/* The fail-at step: latches a -2xx/-5xx status and reports it as an ERROR event with the close
 * code to send and the static reason. */
__attribute__((noinline)) static int cws__fail(cws_conn *c, int status, cws_event *ev) {
    c->error = status;
    c->flags.f.failed = 1;
    if (c->pool != NULL && c->zin != NULL) { /* nothing more is inflated: back to the pool */
        cws__pool_give(c->pool, c->zin);
        c->zin = NULL;
    }
    const char *why = cws_strerror(status);
    cws__event(ev, CWS_EVENT_ERROR, why, 0, strlen(why), 0, 0, cws_status_close_code(status));
    return status;
}

/* Grows the reassembly buffer to hold `need` bytes. `need` never exceeds max_message (checked on
 * every frame header), so neither does the capacity. */
static int cws__reserve(cws_conn *c, size_t need) {
    if (need <= c->rcap) return CWS_OK;
    size_t cap = c->rcap ? c->rcap * 2 : c->rfirst;
    if (cap < need) cap = need;
    if ((uint64_t)cap > c->max_message) cap = (size_t)c->max_message;
    if (cap < need) cap = need;
    uint8_t *p;
    const cws_allocator *a = &c->ralloc;
    if (a->realloc) {
        p = (uint8_t *)a->realloc(c->rbuf, cap, a->user);
        if (p == NULL) return CWS_ERR_NOMEM;
    } else {
        p = (uint8_t *)a->alloc(cap, a->user);
        if (p == NULL) return CWS_ERR_NOMEM;
        if (c->rlen) memcpy(p, c->rbuf, c->rlen);
        if (c->rbuf) a->free(c->rbuf, a->user);
    }
    c->rbuf = p;
    c->rcap = cap;
    return CWS_OK;
}

/* Unmasks p[0..n) in place (when the frame is masked) at payload position `pos`, and validates it
 * as the next piece of a text message when `validate`. */
static int cws__unmask_validate(cws_conn *c, uint8_t *p, size_t n, uint64_t pos, bool validate) {
    if (validate) {
        int st = c->fh.masked
                     ? cws_unmask_utf8_stream(&c->utf8, p, n, c->fh.mask_key, (uint32_t)(pos & 3))
                     : cws_utf8_stream_feed(&c->utf8, p, n);
        if (CWS_UNLIKELY(st != CWS_OK)) return CWS_ERR_INVALID_UTF8;
    } else if (c->fh.masked) {
        (void)cws_mask(p, n, c->fh.mask_key, (uint32_t)(pos & 3));
    }
    return CWS_OK;
}

/* Checks a new frame's header against the message state and the limits (RFC 6455 §5.4). */
static int cws__begin_frame(cws_conn *c) {
    const cws_frame_header *h = &c->fh;
    uint64_t plen = h->payload_length;
    if (h->opcode & 0x8) {
        /* Control frames: FIN and <= 125 bytes were checked with the header. No extension defines
         * RSV bits for them (RFC 7692 §6: RSV1 only on data frames). */
        return h->rsv ? CWS_ERR_RESERVED_BITS : CWS_OK;
    }
    /* A frame of a compressed message carries compressed bytes: its limit has deflate's slack. */
    const bool compressed = h->opcode == CWS_OP_CONTINUATION
                                ? c->flags.f.msg_open && c->msg_inflate
                                : c->pmd_on && (h->rsv & CWS_RSV1);
    if (plen > (compressed ? c->max_frame_wire : c->max_frame)) return CWS_ERR_FRAME_TOO_BIG;
    if (h->opcode == CWS_OP_CONTINUATION) {
        if (!c->flags.f.msg_open) return CWS_ERR_UNEXPECTED_CONTINUATION;
        /* RFC 7692 §6.1: RSV1 marks the first frame of a compressed message only; no other
         * extension is defined, so any RSV bit on a continuation frame is an error. */
        if (h->rsv) return CWS_ERR_RESERVED_BITS;
        /* Compressed messages: msg_len counts wire bytes, bounded by max_wire; the inflated
         * size is checked as it comes out (cws__inflate_into). */
        if (plen > (c->msg_inflate ? c->max_wire : c->max_message) - c->msg_len)
            return CWS_ERR_MESSAGE_TOO_BIG;
        return CWS_OK;
    }
    if (c->flags.f.msg_open) return CWS_ERR_EXPECTED_CONTINUATION;
    const bool inflate = compressed;
    if (plen > (inflate ? c->max_wire : c->max_message)) return CWS_ERR_MESSAGE_TOO_BIG;
    if (inflate && c->zin == NULL) {
        /* Created lazily: a connection that never receives a compressed message never pays.
         * With a pool, borrowed for this message only. */
        int st = c->pool != NULL ? cws__pool_take(c->pool, &c->zin)
                                 : cws__inflater_new(&c->alloc, c->pmd_bits, &c->zin);
        if (st != CWS_OK) return st;
    }
    c->msg_opcode = h->opcode;
    c->msg_rsv = h->rsv;
    c->msg_inflate = inflate ? 1 : 0;
    /* A message with RSV bits belongs to the extension that set them (compressed text is
     * validated after inflation), so only plain text is validated on the wire bytes. */
    c->msg_validate = (h->opcode == CWS_OP_TEXT && h->rsv == 0);
    c->msg_text_out = (h->opcode == CWS_OP_TEXT && inflate);
    c->msg_len = 0;
    c->flags.f.msg_open = h->fin ? 0 : 1;
    if (c->msg_validate || c->msg_text_out) cws_utf8_stream_init(&c->utf8);
    return CWS_OK;
}

/* Fills *ev for the completed control frame whose payload is p[0..n), already unmasked. When
 * in_input, p lies in the caller's buffer at `offset`. Close frames: RFC 6455 §5.5.1, §7.4. */
static int cws__control_event(cws_conn *c, const uint8_t *p, size_t n, size_t offset,
                              uint8_t in_input, cws_event *ev) {
    if (!in_input) offset = 0;
    if (c->fh.opcode == CWS_OP_PING || c->fh.opcode == CWS_OP_PONG) {
        cws__event(ev, c->fh.opcode, p, offset, n, in_input, 0, 0);
        return CWS_OK;
    }
    if (n == 1) return CWS_ERR_CLOSE_PAYLOAD;
    uint16_t code = CWS_CLOSE_NO_STATUS; /* reported, never sent */
    if (n >= 2) {
        code = (uint16_t)((p[0] << 8) | p[1]);
        if (!cws_close_code_is_valid(code)) return CWS_ERR_CLOSE_CODE;
        if (cws_utf8_validate(p + 2, n - 2) != CWS_OK) return CWS_ERR_CLOSE_REASON_UTF8;
        /* The payload handed out is the reason alone. */
        p += 2;
        n -= 2;
        if (in_input) offset += 2;
    }
    cws__event(ev, CWS_EVENT_CLOSE, p, offset, n, in_input, 0, code);
    c->flags.f.closed = 1;
    return CWS_OK;
}

/* ---- permessage-deflate (RFC 7692 §7.2.2) ------------------------------------------------------ */

/* Inflates in[0..n) (compressed bytes of the current message, already unmasked) into the
 * reassembly buffer, validating text as it comes out (fail fast). zlib writes straight into the
 * buffer's free space. When the buffer is full, inflate first gets a 1-byte probe: if nothing
 * comes out, the message fitted exactly and the buffer does not grow (a 64 KiB message keeps
 * reusing a 64 KiB buffer); if a byte comes out at max_message, the message is too big (1009)
 * and that byte is never stored; otherwise the buffer grows (geometrically, never past
 * max_message) and the byte is kept. So a bomb costs at most max_message bytes plus zlib's fixed
 * state, whatever the compression ratio. */
static int cws__inflate_into(cws_conn *c, const uint8_t *in, size_t n) {
    int st;
    if (c->rcap == 0 && c->max_message > 0) {
        st = cws__reserve(c, 1);
        if (st != CWS_OK) return st;
    }
    for (;;) {
        size_t produced = 0;
        bool progress = false;
        const bool full = c->rlen == c->rcap || c->rlen == c->max_message;
        uint8_t probe;
        uint8_t *out = full ? &probe : c->rbuf + c->rlen;
        const size_t room = full ? 1 : c->rcap - c->rlen;
        st = cws__inflate(c->zin, &in, &n, out, room, &produced, &progress);
        if (CWS_UNLIKELY(st != CWS_OK)) return st;
        if (full && produced) { /* the probe found more: past the limit, or grow and keep it */
            if (c->rlen == c->max_message) return CWS_ERR_MESSAGE_TOO_BIG;
            st = cws__reserve(c, c->rlen + 1);
            if (st != CWS_OK) return st;
            out = c->rbuf + c->rlen;
            *out = probe;
        }
        if (produced) {
            if (c->msg_text_out && cws_utf8_stream_feed(&c->utf8, out, produced) != CWS_OK)
                return CWS_ERR_INVALID_UTF8;
            c->rlen += produced;
        }
        /* Output space left over (for the probe: nothing came out) means zlib wrote all it could
         * from this input; a full buffer is probed on the next turn. */
        if (produced < room) {
            if (n == 0) return CWS_OK;
            if (!progress) return CWS_ERR_INFLATE;
        }
    }
}

/* Ends a compressed message: the 00 00 ff ff that the sender removed goes in as its own input
 * (never written after the caller's bytes), then the window is dropped if the peer does not keep
 * it (RFC 7692 §7.2.2), and the text must be complete UTF-8.
 * RFC 7692 §7.2.1 makes every compressed payload end with an empty stored block minus those four
 * bytes, so with them put back the inflater must stand between two blocks; anything else would
 * leave it mid-block and garble the next message, so it is CWS_ERR_INFLATE here. An empty
 * payload holds no block at all: it is an empty message and the inflater is not touched (feeding
 * it the tail alone would stop it inside a stored block's header). */
static int cws__inflate_finish(cws_conn *c) {
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    if (c->msg_len == 0) return CWS_OK;
    int st = cws__inflate_into(c, tail, sizeof tail);
    if (st != CWS_OK) return st;
    if (!cws__inflater_at_boundary(c->zin)) return CWS_ERR_INFLATE;
    if (c->pmd_reset && c->pool == NULL) cws__inflater_reset(c->zin); /* a pool resets on return */
    if (c->msg_text_out && cws_utf8_stream_finish(&c->utf8) != CWS_OK) return CWS_ERR_INVALID_UTF8;
    /* zlib decodes with its fast loop (inflate_fast) only while at least 258 bytes of output
     * space are left (inflate.c); the rest goes through its byte-at-a-time state machine, several
     * times slower. A message that ended that close to the end of a small buffer (1 KiB into
     * 1 KiB) spent up to a quarter of its bytes there, measured as 8% of the time at 1 KiB. So
     * the buffer grows once, by doubling, and the next messages of that size decode on the fast
     * path all the way. From 16 KiB the slow tail is under 2% and not worth the memory. Only
     * an optimisation: if the allocator refuses, the buffer stays as it was and that is fine.
     * When the buffer is handed over, the next message starts in a new one: that one starts at
     * the doubled size instead, within the 4 KiB a kept buffer may have (CWS__KEEP_RBUF), so
     * messages of the same size decode on the fast path in both modes. */
    if (c->rcap - c->rlen < 258 && c->rcap < 16384 && c->rcap < c->max_message) {
        if (!c->handover) (void)cws__reserve(c, c->rcap + 1);
        else if (c->rcap * 2 <= CWS__KEEP_RBUF) c->rfirst = c->rcap * 2; /* rcap >= rfirst */
    }
    return CWS_OK;
}

/* ---- the parser ------------------------------------------------------------------------------
 *
 * cws_conn_parse is a loop over small steps. Each step reads from the cursor below, moves `pos`
 * past the bytes it used, and returns CWS__NEXT (go on with the next step), CWS_OK (*ev is
 * filled), CWS_WANT_READ (all input used, pos == len) or an error status. The loop copies `pos`
 * into *consumed in one place, and an error goes to the fail-at step (cws__fail).
 *
 *   step_small    a whole small FIN text/binary frame at a frame boundary: the fast path
 *   step_header   a frame header (completed from hbuf when it was split), checked against the
 *                 message state and the limits
 *   step_control  a control frame's payload, in place or collected in cbuf
 *   step_data     a data frame's payload: in place when the message is one whole frame, else
 *                 appended (or inflated) into the reassembly buffer
 *   step_deliver  the last frame of a reassembled message: final checks, the event
 * ---------------------------------------------------------------------------------------------- */

typedef struct cws__input {
    uint8_t *buf;
    size_t len;
    size_t pos; /* bytes used so far: what *consumed becomes */
} cws__input;

/* Internal step result: go on with the next step. Never returned to the caller. */
#define CWS__NEXT 1

/* The small-frame fast path: a whole FIN text/binary frame with a 7-bit length and no RSV bits,
 * at a frame boundary, with no message open (checked by the caller through flags.any). This is
 * most frames of a chat or an RPC protocol, so it is a straight line, without the general header
 * parser or the streaming validator: the kernel layer's inline unmask reports the top bits of the
 * unmasked bytes, and only text that is not all ASCII pays for the validator. */
CWS_INLINE int cws__step_small(cws_conn *c, cws__input *in, cws_event *ev) {
    uint8_t *const b = in->buf;
    const uint8_t b0 = b[0], b1 = b[1];
    const size_t n = b1 & 0x7F;
    const size_t h = (b1 & 0x80) ? 6 : 2;
    if (!((b0 == 0x81 || b0 == 0x82) && n <= c->small_limit && (b1 & 0x80) == c->mask_bit &&
          in->len >= h + n))
        return CWS__NEXT;
    uint8_t *const p = b + h;
    uint64_t high;
    if (b1 & 0x80)
        high = cws__unmask_small_high(p, n, cws__load32(b + 2));
    else
        high = b0 == 0x81 ? cws__small_high(p, n) : 0;
    if (b0 == 0x81 && high && cws_utf8_validate(p, n) != CWS_OK) return CWS_ERR_INVALID_UTF8;
    in->pos = h + n;
    cws__event(ev, b0 & 0x0F, p, h, n, 1, 0, 0);
    return CWS_OK;
}

/* The next frame header, parsed in place or completed from hbuf (a header split across calls:
 * fewer than 14 bytes are kept aside, uWS's "spill"), then checked by cws__begin_frame. */
static int cws__step_header(cws_conn *c, cws__input *in) {
    int st;
    if (CWS_LIKELY(c->flags.f.hlen == 0)) {
        st = cws_frame_header_parse(in->buf + in->pos, in->len - in->pos, c->role, c->allowed_rsv,
                                    &c->fh, NULL);
        if (st == CWS_WANT_READ) {
            const size_t rest = in->len - in->pos;
            if (rest) memcpy(c->hbuf, in->buf + in->pos, rest);
            c->flags.f.hlen = (uint8_t)rest;
            in->pos = in->len;
            return CWS_WANT_READ;
        }
        if (st != CWS_OK) return st;
        in->pos += c->fh.header_length;
    } else {
        /* Take only the bytes the header still needs. */
        size_t need = 0;
        for (;;) {
            st = cws_frame_header_parse(c->hbuf, c->flags.f.hlen, c->role, c->allowed_rsv, &c->fh,
                                        &need);
            if (st == CWS_OK) break;
            if (st != CWS_WANT_READ || in->pos == in->len) return st;
            size_t take = need - c->flags.f.hlen;
            if (take > in->len - in->pos) take = in->len - in->pos;
            memcpy(c->hbuf + c->flags.f.hlen, in->buf + in->pos, take);
            c->flags.f.hlen = (uint8_t)(c->flags.f.hlen + take);
            in->pos += take;
        }
        c->flags.f.hlen = 0;
    }
    st = cws__begin_frame(c);
    if (CWS_UNLIKELY(st != CWS_OK)) return st;
    c->flags.f.in_frame = 1;
    c->frame_got = 0;
    return CWS__NEXT;
}

/* A control frame's payload (RFC 6455 §5.5: at most 125 bytes, may sit between fragments). */
static int cws__step_control(cws_conn *c, cws__input *in, cws_event *ev) {
    const size_t plen = (size_t)c->fh.payload_length;
    const size_t avail = in->len - in->pos;
    uint8_t *const p = in->buf + in->pos;
    if (c->frame_got == 0 && avail >= plen) {
        if (c->fh.masked) (void)cws_mask(p, plen, c->fh.mask_key, 0);
        c->flags.f.in_frame = 0;
        in->pos += plen;
        return cws__control_event(c, p, plen, (size_t)(p - in->buf), 1, ev);
    }
    size_t take = plen - (size_t)c->frame_got;
    if (take > avail) take = avail;
    if (take) { /* buf may be NULL when len is 0 */
        memcpy(c->cbuf + c->frame_got, p, take);
        if (c->fh.masked)
            (void)cws_mask(c->cbuf + c->frame_got, take, c->fh.mask_key, (uint32_t)(c->frame_got & 3));
        c->frame_got += take;
        in->pos += take;
    }
    if (c->frame_got < plen) return CWS_WANT_READ; /* pos == len: every byte was taken */
    c->flags.f.in_frame = 0;
    return cws__control_event(c, c->cbuf, plen, 0, 0, ev);
}

/* The last frame of a reassembled (or inflated) message is in: final checks, then the event,
 * which borrows the reassembly buffer until the next call, or, with cws_config.reassembly, takes
 * it: the engine forgets the buffer at once (so the next call takes the fast path again) and the
 * next message starts in a new one. An empty message hands over nothing (data is NULL): a buffer
 * the inflater allocated for it is freed here. */
static int cws__step_deliver(cws_conn *c, cws_event *ev) {
    if (c->msg_validate && cws_utf8_stream_finish(&c->utf8) != CWS_OK) return CWS_ERR_INVALID_UTF8;
    if (c->msg_inflate) {
        const int st = cws__inflate_finish(c);
        if (CWS_UNLIKELY(st != CWS_OK)) return st;
        c->msg_inflate = 0;
        if (c->pool != NULL) { /* reset there */
            cws__pool_give(c->pool, c->zin);
            c->zin = NULL;
        }
    }
    c->flags.f.msg_open = 0;
    cws__event(ev, c->msg_opcode, c->rbuf, 0, c->rlen, 0, c->msg_rsv, 0);
    if (c->handover) {
        if (c->rlen == 0 && c->rbuf != NULL) c->ralloc.free(c->rbuf, c->ralloc.user);
        c->rbuf = NULL;
        c->rcap = 0;
        c->rlen = 0;
    } else {
        c->flags.f.reset_rbuf = 1;
    }
    return CWS_OK;
}

/* A data frame's payload. A whole unfragmented, uncompressed message inside the input is
 * delivered in place with no copy; anything else is appended to the reassembly buffer (unmasked
 * and validated on the way), or unmasked in place and inflated into it. */
static int cws__step_data(cws_conn *c, cws__input *in, cws_event *ev) {
    const uint64_t plen = c->fh.payload_length;
    const size_t avail = in->len - in->pos;
    uint8_t *const p = in->buf + in->pos;
    int st;
    if (CWS_LIKELY(c->fh.fin && c->fh.opcode != CWS_OP_CONTINUATION && c->frame_got == 0 &&
                   avail >= plen && !c->msg_inflate)) {
        const size_t n = (size_t)plen;
        st = cws__unmask_validate(c, p, n, 0, c->msg_validate);
        if (st == CWS_OK && c->msg_validate) st = cws_utf8_stream_finish(&c->utf8);
        if (CWS_UNLIKELY(st != CWS_OK)) return CWS_ERR_INVALID_UTF8;
        c->flags.f.in_frame = 0;
        in->pos += n;
        cws__event(ev, c->msg_opcode, p, (size_t)(p - in->buf), n, 1, c->msg_rsv, 0);
        return CWS_OK;
    }
    size_t take = (size_t)(plen - c->frame_got);
    if (take > avail) take = avail;
    if (take) {
        if (c->msg_inflate) {
            /* Unmask in place (inside what this call consumes), inflate into the buffer. */
            if (c->fh.masked) (void)cws_mask(p, take, c->fh.mask_key, (uint32_t)(c->frame_got & 3));
            st = cws__inflate_into(c, p, take);
        } else {
            st = cws__unmask_validate(c, p, take, c->frame_got, c->msg_validate);
            if (st == CWS_OK) st = cws__reserve(c, c->rlen + take);
            if (st == CWS_OK) {
                memcpy(c->rbuf + c->rlen, p, take);
                c->rlen += take;
            }
        }
        if (CWS_UNLIKELY(st != CWS_OK)) return st;
        c->frame_got += take;
        c->msg_len += take;
        in->pos += take;
    }
    if (c->frame_got < plen) return CWS_WANT_READ; /* pos == len: every byte was taken */
    c->flags.f.in_frame = 0;
    if (!c->fh.fin) return CWS__NEXT; /* more fragments to come: next header */
    return cws__step_deliver(c, ev);
}

/* Everything but the fast path: the connection's state first, then the steps. */
__attribute__((noinline)) static int cws__parse_steps(cws_conn *c, cws__input *in, cws_event *ev) {
    if (CWS_UNLIKELY(c->flags.f.failed)) return c->error; /* reported again by cws__fail */
    if (CWS_UNLIKELY(c->flags.f.closed)) {
        in->pos = in->len;
        return CWS_CLOSED;
    }
    if (c->flags.f.reset_rbuf) {
        c->flags.f.reset_rbuf = 0;
        c->rlen = 0;
        if (c->rcap > CWS__KEEP_RBUF) {
            c->ralloc.free(c->rbuf, c->ralloc.user);
            c->rbuf = NULL;
            c->rcap = 0;
        }
    }
    int st;
    do {
        if (!c->flags.f.in_frame)
            st = cws__step_header(c, in);
        else if (c->fh.opcode & 0x8)
            st = cws__step_control(c, in, ev);
        else
            st = cws__step_data(c, in, ev);
    } while (st == CWS__NEXT);
    return st;
}

int cws_conn_parse(cws_conn *c, void *buf, size_t len, size_t *consumed, cws_event *ev) {
    size_t dummy;
    if (consumed == NULL) consumed = &dummy;
    cws__input in = {(uint8_t *)buf, len, 0};
    int st = CWS__NEXT;
    if (CWS_LIKELY(c != NULL && ev != NULL && buf != NULL && len >= 2 && c->flags.any == 0))
        st = cws__step_small(c, &in, ev);
    if (st == CWS__NEXT) {
        if (c == NULL || ev == NULL || (buf == NULL && len != 0)) {
            *consumed = 0;
            return CWS_ERR_INVALID_ARGUMENT;
        }
        st = cws__parse_steps(c, &in, ev);
    }
    *consumed = in.pos;
    /* -2xx (the peer's fault) and fatal statuses end the connection: the fail-at step. */
    if (CWS_UNLIKELY((st <= -200 && st > -300) || st <= CWS_ERR_FATAL)) return cws__fail(c, st, ev);
    return st;
}
