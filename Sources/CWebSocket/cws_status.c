/*
 * cws_status.c — the status table: the close code to send for each status (RFC 6455 §7.4.1) and a
 * short static description. One switch each, over the one cws_status enum.
 */
#include "cws_internal.h"

uint16_t cws_status_close_code(int status) {
    switch (status) {
    case CWS_ERR_RESERVED_OPCODE:
    case CWS_ERR_RESERVED_BITS:
    case CWS_ERR_CONTROL_FRAGMENTED:
    case CWS_ERR_CONTROL_TOO_LONG:
    case CWS_ERR_LENGTH_TOP_BIT:
    case CWS_ERR_UNMASKED:
    case CWS_ERR_MASKED:
    case CWS_ERR_UNEXPECTED_CONTINUATION:
    case CWS_ERR_EXPECTED_CONTINUATION:
    case CWS_ERR_CLOSE_PAYLOAD:
    case CWS_ERR_CLOSE_CODE:
        return CWS_CLOSE_PROTOCOL_ERROR;
    case CWS_ERR_INVALID_UTF8:
    case CWS_ERR_CLOSE_REASON_UTF8:
    case CWS_ERR_INFLATE:
        return CWS_CLOSE_INVALID_PAYLOAD;
    case CWS_ERR_PMD_RESPONSE: /* the client fails the connection; 1002 if a close is sent */
        return CWS_CLOSE_PROTOCOL_ERROR;
    case CWS_ERR_MESSAGE_TOO_BIG:
    case CWS_ERR_FRAME_TOO_BIG:
        return CWS_CLOSE_MESSAGE_TOO_BIG;
    case CWS_ERR_NOMEM:
        return CWS_CLOSE_INTERNAL_ERROR;
    default:
        return 0;
    }
}

const char *cws_strerror(int status) {
    switch (status) {
    case CWS_OK: return "ok";
    case CWS_WANT_READ: return "more input needed";
    case CWS_CLOSED: return "connection already closed";
    case CWS_DONE: return "done";
    case CWS_PMD_DECLINED: return "permessage-deflate declined";
    case CWS_ERR_RESERVED_OPCODE: return "reserved opcode";
    case CWS_ERR_RESERVED_BITS: return "reserved bits set";
    case CWS_ERR_CONTROL_FRAGMENTED: return "fragmented control frame";
    case CWS_ERR_CONTROL_TOO_LONG: return "control frame longer than 125 bytes";
    case CWS_ERR_LENGTH_TOP_BIT: return "64-bit length with top bit set";
    case CWS_ERR_UNMASKED: return "unmasked frame from client";
    case CWS_ERR_MASKED: return "masked frame from server";
    case CWS_ERR_UNEXPECTED_CONTINUATION: return "continuation frame without a message";
    case CWS_ERR_EXPECTED_CONTINUATION: return "new message before the previous one ended";
    case CWS_ERR_CLOSE_PAYLOAD: return "close frame with 1-byte payload";
    case CWS_ERR_CLOSE_CODE: return "invalid close code";
    case CWS_ERR_INVALID_UTF8: return "invalid UTF-8 in text message";
    case CWS_ERR_CLOSE_REASON_UTF8: return "invalid UTF-8 in close reason";
    case CWS_ERR_MESSAGE_TOO_BIG: return "message too big";
    case CWS_ERR_FRAME_TOO_BIG: return "frame too big";
    case CWS_ERR_INFLATE: return "invalid compressed data";
    case CWS_ERR_PMD_RESPONSE: return "invalid permessage-deflate response";
    case CWS_ERR_INVALID_ARGUMENT: return "invalid argument";
    case CWS_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case CWS_ERR_INVALID_CLOSE_CODE: return "close code not allowed on the wire";
    case CWS_ERR_INVALID_KEY: return "invalid Sec-WebSocket-Key";
    case CWS_ERR_NOMEM: return "out of memory";
    default: return "unknown status";
    }
}

/* RFC 6455 §7.4.1 defines 1000-1003 and 1007-1011 for use on the wire (1012-1014 are registered in
 * the IANA registry later but are not in RFC 6455; browsers and Autobahn accept only the RFC set
 * plus 3000-4999). 1004 is reserved, 1005/1006/1015 must never be sent. §7.4.2: 0-999 unused,
 * 3000-3999 registered, 4000-4999 private use. */
