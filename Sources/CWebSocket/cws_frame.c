/*
 * cws_frame.c — frame headers (RFC 6455 §5.2), control and close frames, fragmentation.
 *
 * Header layout (RFC 6455 §5.2):
 *
 *   byte 0:  FIN(0x80) RSV1(0x40) RSV2(0x20) RSV3(0x10) opcode(0x0F)
 *   byte 1:  MASK(0x80) len7(0x7F)
 *   len7 0-125: that is the payload length
 *   len7 126:   16-bit big-endian length follows
 *   len7 127:   64-bit big-endian length follows; its top bit must be 0
 *   then 4 masking-key bytes when MASK is set
 */
#include "cws_internal.h"

bool cws_close_code_is_valid(uint16_t code) {
    if (code >= 1000 && code <= 1003) return true;
    if (code >= 1007 && code <= 1011) return true;
    if (code >= 3000 && code <= 4999) return true;
    return false;
}

/* ---- header parsing --------------------------------------------------------------------------- */

CWS_INLINE bool cws__opcode_is_reserved(uint8_t op) {
    /* 3-7 reserved data, 0xB-0xF reserved control (RFC 6455 §5.2). */
    return (op >= 0x3 && op <= 0x7) || op >= 0xB;
}

int cws_frame_header_parse(const void *buf, size_t len, cws_role role, uint8_t allowed_rsv,
                           cws_frame_header *hdr, size_t *needed) {
    const uint8_t *p = (const uint8_t *)buf;
    if (len < 2) {
        /* The first byte alone can already be judged. */
        if (len == 1) {
            uint8_t op = p[0] & 0x0F;
            if (cws__opcode_is_reserved(op)) return CWS_ERR_RESERVED_OPCODE;
            if (p[0] & 0x70 & ~allowed_rsv) return CWS_ERR_RESERVED_BITS;
            if ((op & 0x8) && !(p[0] & 0x80)) return CWS_ERR_CONTROL_FRAGMENTED;
        }
        if (needed) *needed = 2;
        return CWS_WANT_READ;
    }
    uint8_t b0 = p[0], b1 = p[1];
    uint8_t op = b0 & 0x0F;
    uint8_t len7 = b1 & 0x7F;
    bool masked = (b1 & 0x80) != 0;

    /* One up-front check for the rare bad header; only the error path pays for the detail. */
    bool bad = cws__opcode_is_reserved(op) || (b0 & 0x70 & ~allowed_rsv) ||
               ((op & 0x8) && (!(b0 & 0x80) || len7 > 125)) ||
               (masked != (role == CWS_ROLE_SERVER));
    if (CWS_UNLIKELY(bad)) {
        if (cws__opcode_is_reserved(op)) return CWS_ERR_RESERVED_OPCODE;
        if (b0 & 0x70 & ~allowed_rsv) return CWS_ERR_RESERVED_BITS;
        if ((op & 0x8) && !(b0 & 0x80)) return CWS_ERR_CONTROL_FRAGMENTED;
        if ((op & 0x8) && len7 > 125) return CWS_ERR_CONTROL_TOO_LONG;
        return role == CWS_ROLE_SERVER ? CWS_ERR_UNMASKED : CWS_ERR_MASKED;
    }

    size_t hlen = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
    if (len < hlen) {
        /* The top bit of a 64-bit length can be judged as soon as its byte is here. */
        if (len7 == 127 && len >= 3 && (p[2] & 0x80)) return CWS_ERR_LENGTH_TOP_BIT;
        if (needed) *needed = hlen;
        return CWS_WANT_READ;
    }
    uint64_t plen;
    const uint8_t *q = p + 2;
    if (len7 < 126) {
        plen = len7;
    } else if (len7 == 126) {
        plen = ((uint64_t)q[0] << 8) | q[1];
        q += 2;
    } else {
        if (q[0] & 0x80) return CWS_ERR_LENGTH_TOP_BIT;
        plen = 0;
        for (int i = 0; i < 8; i++) plen = (plen << 8) | q[i];
        q += 8;
    }
    hdr->payload_length = plen;
    hdr->fin = (b0 & 0x80) ? 1 : 0;
    hdr->rsv = b0 & 0x70;
    hdr->opcode = op;
    hdr->masked = masked ? 1 : 0;
    if (masked) memcpy(hdr->mask_key, q, 4);
    else memset(hdr->mask_key, 0, 4);
    hdr->header_length = (uint8_t)hlen;
    if (needed) *needed = hlen;
    return CWS_OK;
}

/* ---- writing ---------------------------------------------------------------------------------- */

int cws_frame_header_write(void *out, size_t cap, size_t *written, bool fin, uint8_t rsv,
                           uint8_t opcode, uint64_t payload_length, const void *mask_key) {
    if (opcode > 0xF || cws__opcode_is_reserved(opcode) || (rsv & ~0x70) ||
        (payload_length >> 63))
        return CWS_ERR_INVALID_ARGUMENT;
    if ((opcode & 0x8) && (!fin || payload_length > 125)) return CWS_ERR_INVALID_ARGUMENT;
    size_t hlen = 2 + (payload_length < 126 ? 0 : payload_length <= 0xFFFF ? 2 : 8) +
                  (mask_key ? 4 : 0);
    if (out == NULL || cap < hlen) return CWS_ERR_BUFFER_TOO_SMALL;
    uint8_t *p = (uint8_t *)out;
    p[0] = (uint8_t)((fin ? 0x80 : 0) | rsv | opcode);
    uint8_t mbit = mask_key ? 0x80 : 0;
    size_t i = 2;
    if (payload_length < 126) {
        p[1] = (uint8_t)(mbit | payload_length);
    } else if (payload_length <= 0xFFFF) {
        p[1] = mbit | 126;
        p[2] = (uint8_t)(payload_length >> 8);
        p[3] = (uint8_t)payload_length;
        i = 4;
    } else {
        p[1] = mbit | 127;
        for (int k = 0; k < 8; k++) p[2 + k] = (uint8_t)(payload_length >> (56 - 8 * k));
        i = 10;
    }
    if (mask_key) {
        memcpy(p + i, mask_key, 4);
        i += 4;
    }
    if (written) *written = i;
    return CWS_OK;
}

int cws_control_frame_write(void *out, size_t cap, size_t *written, uint8_t opcode,
                            const void *payload, size_t len, const void *mask_key) {
    if (opcode != CWS_OP_PING && opcode != CWS_OP_PONG) return CWS_ERR_INVALID_ARGUMENT;
    if (len > 125 || (len > 0 && payload == NULL)) return CWS_ERR_INVALID_ARGUMENT;
    size_t h = 0;
    int st = cws_frame_header_write(out, cap, &h, true, 0, opcode, len, mask_key);
    if (st != CWS_OK) return st;
    if (cap - h < len) return CWS_ERR_BUFFER_TOO_SMALL;
    uint8_t *p = (uint8_t *)out;
    if (len) {
        memcpy(p + h, payload, len);
        if (mask_key) (void)cws_mask(p + h, len, mask_key, 0);
    }
    if (written) *written = h + len;
    return CWS_OK;
}

int cws_close_frame_write(void *out, size_t cap, size_t *written, uint16_t code,
                          const void *reason, size_t reason_len, const void *mask_key) {
    if (code == 0) {
        if (reason_len != 0) return CWS_ERR_INVALID_ARGUMENT;
    } else {
        if (!cws_close_code_is_valid(code)) return CWS_ERR_INVALID_CLOSE_CODE;
        /* RFC 6455 §5.5: control payload <= 125, so the reason is at most 123 bytes; §5.5.1: UTF-8. */
        if (reason_len > 123 || (reason_len > 0 && reason == NULL)) return CWS_ERR_INVALID_ARGUMENT;
        if (cws_utf8_validate(reason, reason_len) != CWS_OK) return CWS_ERR_INVALID_ARGUMENT;
    }
    size_t plen = code ? 2 + reason_len : 0;
    size_t h = 0;
    int st = cws_frame_header_write(out, cap, &h, true, 0, CWS_OP_CLOSE, plen, mask_key);
    if (st != CWS_OK) return st;
    if (cap - h < plen) return CWS_ERR_BUFFER_TOO_SMALL;
    uint8_t *p = (uint8_t *)out + h;
    if (code) {
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        if (reason_len) memcpy(p + 2, reason, reason_len);
        if (mask_key) (void)cws_mask(p, plen, mask_key, 0);
    }
    if (written) *written = h + plen;
    return CWS_OK;
}

/* ---- fragmentation ---------------------------------------------------------------------------- */

int cws_fragmenter_init(cws_fragmenter *f, uint8_t opcode, uint8_t rsv, uint64_t total_length,
                        uint64_t max_frame_payload) {
    if (f == NULL || (opcode != CWS_OP_TEXT && opcode != CWS_OP_BINARY) || (rsv & ~0x70) ||
        (total_length >> 63))
        return CWS_ERR_INVALID_ARGUMENT;
    f->remaining = total_length;
    f->max_frame_payload = max_frame_payload ? max_frame_payload : UINT64_MAX;
    f->opcode = opcode;
    f->rsv = rsv;
    f->started = 0;
    return CWS_OK;
}

int cws_fragmenter_next(cws_fragmenter *f, void *out, size_t cap, size_t *written,
                        uint64_t *payload_length, const void *mask_key) {
    if (f == NULL) return CWS_ERR_INVALID_ARGUMENT;
    /* started: 0 = nothing sent, 1 = frames sent and more to come, 2 = final frame sent. */
    if (f->started == 2) return CWS_DONE;
    uint64_t n = f->remaining < f->max_frame_payload ? f->remaining : f->max_frame_payload;
    bool fin = (n == f->remaining);
    uint8_t op = f->started ? CWS_OP_CONTINUATION : f->opcode;
    uint8_t rsv = f->started ? 0 : f->rsv; /* RFC 7692 §6.1: RSV1 on the first frame only */
    int st = cws_frame_header_write(out, cap, written, fin, rsv, op, n, mask_key);
    if (st != CWS_OK) return st;
    f->remaining -= n;
    f->started = fin ? 2 : 1;
    if (payload_length) *payload_length = n;
    return CWS_OK;
}
