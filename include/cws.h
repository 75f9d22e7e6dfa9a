/*
 * cws.h — the whole public API of the Sockets C protocol engine (RFC 6455).
 *
 * Sans-IO: the engine never reads or writes a socket. Bytes go in (cws_conn_parse), events come
 * out one at a time; frame headers are written into caller memory (cws_frame_header_write) so a
 * payload can follow them in a gather write without being copied.
 *
 * Conventions
 *   - Every function that can fail returns an `int` holding a `cws_status`: CWS_OK (0) or a negative
 *     code. Counts come back through out-parameters.
 *   - Byte buffers are `void *` / `const void *` plus a `size_t` length. `buf` may be NULL when its
 *     length is 0.
 *   - Nothing here prints, aborts, reads the environment or keeps global mutable state, except the
 *     write-once kernel table that is filled on first use from the CPU's features.
 *   - Ownership of every buffer is written next to each declaration.
 *
 * C11; includes only <stddef.h>, <stdint.h> and <stdbool.h>.
 */
#ifndef CWS_H
#define CWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CWS_NODISCARD __attribute__((warn_unused_result))
#else
#define CWS_NODISCARD
#endif

/* ------------------------------------------------------------------------------------------------
 * Status codes
 *
 * Grouped by hundreds: -1xx "want" (not an error), -2xx protocol violations by the peer (each maps
 * to a close code, see cws_status_close_code), -3xx bad arguments from the caller, -5xx fatal.
 * A connection that returned a -2xx or -5xx status keeps returning it: the only useful calls left
 * are cws_conn_free and the writers (to send the close frame).
 * ---------------------------------------------------------------------------------------------- */
typedef enum cws_status {
    CWS_OK = 0,

    /* -1xx: want */
    CWS_WANT_READ = -101,   /* all input consumed, no complete event yet: feed more bytes */
    CWS_CLOSED = -102,      /* a close frame was already delivered; input after it is discarded */
    CWS_DONE = -103,        /* an iterator (cws_fragmenter_next) has nothing left */
    CWS_PMD_DECLINED = -104,/* permessage-deflate: no acceptable offer, or the server answered
                             * with no extension; go on without compression (not an error) */

    /* -2xx: protocol errors (peer's fault); see cws_status_close_code */
    CWS_ERR_RESERVED_OPCODE = -201,        /* opcode 3-7 or 0xB-0xF (1002) */
    CWS_ERR_RESERVED_BITS = -202,          /* RSV bit that no negotiated extension allows (1002) */
    CWS_ERR_CONTROL_FRAGMENTED = -203,     /* control frame without FIN (1002) */
    CWS_ERR_CONTROL_TOO_LONG = -204,       /* control frame payload > 125 bytes (1002) */
    CWS_ERR_LENGTH_TOP_BIT = -205,         /* 64-bit payload length with the top bit set (1002) */
    CWS_ERR_UNMASKED = -206,               /* unmasked frame from a client (server role) (1002) */
    CWS_ERR_MASKED = -207,                 /* masked frame from a server (client role) (1002) */
    CWS_ERR_UNEXPECTED_CONTINUATION = -208,/* continuation frame with no message in progress (1002) */
    CWS_ERR_EXPECTED_CONTINUATION = -209,  /* new data frame while a fragmented one is open (1002) */
    CWS_ERR_CLOSE_PAYLOAD = -210,          /* close frame with a 1-byte payload (1002) */
    CWS_ERR_CLOSE_CODE = -211,             /* close code not valid on the wire (1002) */
    CWS_ERR_INVALID_UTF8 = -212,           /* text message is not UTF-8 (1007) */
    CWS_ERR_CLOSE_REASON_UTF8 = -213,      /* close reason is not UTF-8 (1007) */
    CWS_ERR_MESSAGE_TOO_BIG = -214,        /* message exceeds max_message_size (1009) */
    CWS_ERR_FRAME_TOO_BIG = -215,          /* frame exceeds max_frame_size (1009) */
    CWS_ERR_INFLATE = -216,                /* compressed payload is not valid DEFLATE data, or does
                                            * not end on a block boundary once 00 00 ff ff is
                                            * appended (RFC 7692 §7.2.1) (1007) */
    CWS_ERR_PMD_RESPONSE = -217,           /* the server's permessage-deflate answer does not fit
                                            * our offer: fail the connection (RFC 7692 §5; no close
                                            * frame before the handshake; the table says 1002) */

    /* -3xx: caller errors; nothing was changed */
    CWS_ERR_INVALID_ARGUMENT = -301,
    CWS_ERR_BUFFER_TOO_SMALL = -302,
    CWS_ERR_INVALID_CLOSE_CODE = -303,     /* asked to send a close code not valid on the wire */
    CWS_ERR_INVALID_KEY = -304,            /* Sec-WebSocket-Key is not base64 of 16 bytes */

    /* -5xx: fatal */
    CWS_ERR_FATAL = -500,                  /* threshold: status <= CWS_ERR_FATAL is fatal */
    CWS_ERR_NOMEM = -501                   /* the allocator failed (1011) */
} cws_status;

/* The close code to send for a status: 1002 protocol error, 1007 invalid payload data, 1009
 * message too big, 1011 internal error. Returns 0 for statuses that are not peer/fatal errors. */
uint16_t cws_status_close_code(int status);

/* A short static, NUL-terminated English description of a status (never NULL, never freed). */
const char *cws_strerror(int status);

/* ------------------------------------------------------------------------------------------------
 * Opcodes, close codes, roles
 * ---------------------------------------------------------------------------------------------- */
enum {
    CWS_OP_CONTINUATION = 0x0,
    CWS_OP_TEXT = 0x1,
    CWS_OP_BINARY = 0x2,
    CWS_OP_CLOSE = 0x8,
    CWS_OP_PING = 0x9,
    CWS_OP_PONG = 0xA
};

/* RSV bits as they sit in the first header byte. */
enum { CWS_RSV1 = 0x40, CWS_RSV2 = 0x20, CWS_RSV3 = 0x10 };

enum {
    CWS_CLOSE_NORMAL = 1000,
    CWS_CLOSE_GOING_AWAY = 1001,
    CWS_CLOSE_PROTOCOL_ERROR = 1002,
    CWS_CLOSE_UNSUPPORTED_DATA = 1003,
    CWS_CLOSE_NO_STATUS = 1005,      /* reported to the application, never sent */
    CWS_CLOSE_ABNORMAL = 1006,       /* reported to the application, never sent */
    CWS_CLOSE_INVALID_PAYLOAD = 1007,
    CWS_CLOSE_POLICY_VIOLATION = 1008,
    CWS_CLOSE_MESSAGE_TOO_BIG = 1009,
    CWS_CLOSE_MANDATORY_EXTENSION = 1010,
    CWS_CLOSE_INTERNAL_ERROR = 1011
};

/* True when `code` may appear in a close frame on the wire (RFC 6455 §7.4): 1000-1003,
 * 1007-1011 and 3000-4999. False for 1004, 1005, 1006, 1015 and everything else. */
bool cws_close_code_is_valid(uint16_t code);

typedef enum cws_role {
    CWS_ROLE_SERVER = 0, /* receives masked frames, sends unmasked ones */
    CWS_ROLE_CLIENT = 1  /* receives unmasked frames, sends masked ones */
} cws_role;

/* ------------------------------------------------------------------------------------------------
 * Masking (RFC 6455 §5.3)
 * ---------------------------------------------------------------------------------------------- */

/* XORs buf[0..len) in place with the 4-byte masking key `key` (the 4 bytes as they are on the
 * wire), starting at key byte `phase & 3`. Returns the phase for the next byte, (phase + len) & 3,
 * so a payload can be unmasked across chunks. Masking is its own inverse.
 * buf is the caller's and is only touched inside [0, len); key is read, not kept. Never allocates. */
uint32_t cws_mask(void *buf, size_t len, const void *key, uint32_t phase);

/* ------------------------------------------------------------------------------------------------
 * UTF-8 validation (RFC 3629; RFC 6455 §8.1)
 *
 * Rejects overlong forms, surrogates (U+D800-DFFF), code points above U+10FFFF, stray continuation
 * bytes, bytes F5-FF and C0/C1, and truncated sequences at the end of the input.
 * ---------------------------------------------------------------------------------------------- */

/* Validates a complete text: CWS_OK or CWS_ERR_INVALID_UTF8. Reads buf[0..len) only. */
CWS_NODISCARD int cws_utf8_validate(const void *buf, size_t len);

/* Streaming validation of a text that arrives in pieces (chunks, fragments). The struct is the
 * caller's (embed it anywhere, no allocation); its fields are private. */
typedef struct cws_utf8_stream {
    uint8_t partial[4];   /* bytes of a sequence cut by the end of the last piece */
    uint32_t partial_len; /* how many of them (0-3) */
} cws_utf8_stream;

/* Starts a new text. */
void cws_utf8_stream_init(cws_utf8_stream *s);

/* Feeds the next piece. Fails fast: returns CWS_ERR_INVALID_UTF8 as soon as the bytes seen so far
 * cannot begin a valid UTF-8 text; a sequence cut by the end of this piece is kept (at most 3
 * bytes, copied into *s) and is not an error until cws_utf8_stream_finish. Reads buf[0..len) only;
 * buf is not kept. After an error the stream stays failed until re-initialised. */
CWS_NODISCARD int cws_utf8_stream_feed(cws_utf8_stream *s, const void *buf, size_t len);

/* Ends the text: CWS_ERR_INVALID_UTF8 if a sequence is still incomplete, else CWS_OK. */
CWS_NODISCARD int cws_utf8_stream_finish(const cws_utf8_stream *s);

/* Fused decode: unmasks buf[0..len) in place (key, phase as in cws_mask) and feeds the unmasked
 * bytes to the stream, in one pass over memory where the kernel allows. On CWS_OK all of buf is
 * unmasked; on CWS_ERR_INVALID_UTF8 how much of buf was unmasked is unspecified. */
CWS_NODISCARD int cws_unmask_utf8_stream(cws_utf8_stream *s, void *buf, size_t len, const void *key,
                                         uint32_t phase);

/* ------------------------------------------------------------------------------------------------
 * Frame headers (RFC 6455 §5.2)
 * ---------------------------------------------------------------------------------------------- */

/* The largest frame header: 2 + 8 (64-bit length) + 4 (masking key). */
#define CWS_MAX_HEADER_SIZE 14
/* The largest control frame: header + 125 payload bytes. */
#define CWS_MAX_CONTROL_FRAME_SIZE (CWS_MAX_HEADER_SIZE + 125)

typedef struct cws_frame_header {
    uint64_t payload_length;
    uint8_t fin;           /* 1 when FIN is set */
    uint8_t rsv;           /* RSV bits in place: a combination of CWS_RSV1/2/3 */
    uint8_t opcode;        /* 0x0-0xF */
    uint8_t masked;        /* 1 when a masking key follows */
    uint8_t mask_key[4];   /* valid when masked */
    uint8_t header_length; /* 2-14: bytes the header took */
} cws_frame_header;

/* Parses one frame header from buf[0..len) and checks it in the given role:
 *   - CWS_OK: *hdr is filled; the payload starts at buf + hdr->header_length.
 *   - CWS_WANT_READ: the header is incomplete; *needed (if not NULL) is the total header length
 *     known so far to be required (2 until the second byte is seen).
 *   - CWS_ERR_RESERVED_OPCODE, CWS_ERR_RESERVED_BITS (bits outside `allowed_rsv`),
 *     CWS_ERR_CONTROL_FRAGMENTED, CWS_ERR_CONTROL_TOO_LONG, CWS_ERR_LENGTH_TOP_BIT,
 *     CWS_ERR_UNMASKED (server role), CWS_ERR_MASKED (client role).
 * The checks that need only the first two bytes are made as soon as they are present, so an
 * error can come back before the whole header has arrived. Reads buf[0..len) only. */
CWS_NODISCARD int cws_frame_header_parse(const void *buf, size_t len, cws_role role,
                                         uint8_t allowed_rsv, cws_frame_header *hdr,
                                         size_t *needed);

/* Writes a frame header into out[0..cap): FIN if `fin`, RSV bits `rsv`, `opcode`, the shortest
 * length form for `payload_length`, and the masking key when `mask_key` is not NULL (4 bytes;
 * client role). The payload is not written: send it after the header (a gather write). A masked
 * frame's payload must be masked by the caller (cws_mask, phase 0) before it is sent.
 * Sets *written to 2-14. Errors: CWS_ERR_BUFFER_TOO_SMALL (nothing written), CWS_ERR_INVALID_ARGUMENT
 * for a reserved opcode, RSV bits outside 0x70, a fragmented or >125-byte control frame, or a
 * length with the top bit set. out is the caller's; nothing is kept. */
CWS_NODISCARD int cws_frame_header_write(void *out, size_t cap, size_t *written, bool fin,
                                         uint8_t rsv, uint8_t opcode, uint64_t payload_length,
                                         const void *mask_key);

/* Writes a whole control frame (ping, pong) with its payload into out[0..cap): header plus a copy
 * of payload[0..len), masked when mask_key is not NULL. len <= 125; cap >= CWS_MAX_CONTROL_FRAME_SIZE
 * always suffices. Errors as cws_frame_header_write, plus CWS_ERR_INVALID_ARGUMENT when opcode is
 * not a control opcode (use cws_close_frame_write for close). */
CWS_NODISCARD int cws_control_frame_write(void *out, size_t cap, size_t *written, uint8_t opcode,
                                          const void *payload, size_t len, const void *mask_key);

/* Writes a whole close frame into out[0..cap). code 0 writes an empty close frame (no code, no
 * reason; reason_len must be 0). Otherwise the code must be valid on the wire
 * (CWS_ERR_INVALID_CLOSE_CODE: never 1005, 1006 or 1015) and the reason at most 123 bytes of valid
 * UTF-8 (CWS_ERR_INVALID_ARGUMENT). Masked when mask_key is not NULL. */
CWS_NODISCARD int cws_close_frame_write(void *out, size_t cap, size_t *written, uint16_t code,
                                        const void *reason, size_t reason_len,
                                        const void *mask_key);

/* Splits one message of `total_length` bytes into frames of at most `max_frame_payload` bytes.
 * The struct is the caller's; its fields are private. */
typedef struct cws_fragmenter {
    uint64_t remaining;
    uint64_t max_frame_payload;
    uint8_t opcode;
    uint8_t rsv;
    uint8_t started;
} cws_fragmenter;

/* Starts a message: opcode TEXT or BINARY; rsv goes on the first frame only (RFC 7692);
 * max_frame_payload 0 means no limit (one frame). CWS_ERR_INVALID_ARGUMENT for other opcodes. */
CWS_NODISCARD int cws_fragmenter_init(cws_fragmenter *f, uint8_t opcode, uint8_t rsv,
                                      uint64_t total_length, uint64_t max_frame_payload);

/* Writes the next frame's header into out[0..cap) (as cws_frame_header_write) and sets
 * *payload_length to the number of message bytes that follow it; the caller sends those next.
 * Returns CWS_DONE (nothing written) once every byte was framed. A zero-length message gives one
 * empty frame. */
CWS_NODISCARD int cws_fragmenter_next(cws_fragmenter *f, void *out, size_t cap, size_t *written,
                                      uint64_t *payload_length, const void *mask_key);

/* ------------------------------------------------------------------------------------------------
 * The connection engine
 * ---------------------------------------------------------------------------------------------- */

/* Where the engine gets memory. Every allocation goes through it (reassembly buffers, the engine
 * itself), except reassembly buffers when cws_config.reassembly is set. `realloc` may be NULL
 * (then alloc + copy + free is used). */
typedef struct cws_allocator {
    void *(*alloc)(size_t size, void *user);
    void *(*realloc)(void *ptr, size_t size, void *user);
    void (*free)(void *ptr, void *user);
    void *user;
} cws_allocator;

typedef struct cws_config {
    cws_role role;
    /* Largest message (all fragments together) accepted; larger ones fail with
     * CWS_ERR_MESSAGE_TOO_BIG (1009) on the frame header that would pass the limit, before any
     * byte past it is stored. Default 65536 (the reference's MaxMessageSize). */
    uint64_t max_message_size;
    /* Largest single frame payload accepted (CWS_ERR_FRAME_TOO_BIG, 1009). Default 65536. A frame
     * of a compressed message (permessage-deflate) carries compressed bytes and may be
     * max_frame_size + max_frame_size / 8 + 64, so incompressible data that fits the limit
     * uncompressed is never refused for the few bytes deflate adds. */
    uint64_t max_frame_size;
    /* RSV bits a negotiated extension allows on data frames (CWS_RSV1 for permessage-deflate).
     * Default 0: any RSV bit is CWS_ERR_RESERVED_BITS. */
    uint8_t allowed_rsv;
    /* NULL: the C library's malloc/realloc/free. Copied at cws_conn_new; the functions and
     * `user` must stay valid until cws_conn_free. */
    const cws_allocator *allocator;
    /* Reassembly handover. NULL (the default): a message that is not delivered in place (a frame
     * split across reads, a fragmented or an inflated message) is reassembled in a buffer the
     * engine owns and lends with the event until the next call (the caller copies it to keep it),
     * and the engine keeps up to 4 KiB of it for the next message.
     * Set: reassembly buffers come from this allocator (alloc, realloc or alloc + copy + free as
     * above, with its `user`), and the buffer of a TEXT or BINARY event with in_input = 0 and
     * length > 0 is handed over with the event: ev->data is the first byte of a block from this
     * allocator (holding at least ev->length bytes), and from then on it is the caller's, to free
     * with this allocator's `free` whenever it likes (or to keep). The engine forgets it at once
     * and starts the next message in a new buffer, so it holds no reassembly memory between
     * messages (a new buffer starts at 1 KiB, or at up to 4 KiB once an inflated message filled
     * its buffer: the size the kept buffer would have had without a handover). An empty message
     * hands over nothing (data is NULL). A buffer that was not handed over (a message in
     * progress when the connection fails or cws_conn_free is called) is still the engine's, freed
     * by it no later than cws_conn_free. Control frames and error reasons stay engine memory as
     * without it. Copied at cws_conn_new (CWS_ERR_INVALID_ARGUMENT when alloc or free is NULL);
     * the functions and `user` must stay valid until cws_conn_free and as long as the caller
     * frees handed-over buffers with them. */
    const cws_allocator *reassembly;
    /* permessage-deflate (RFC 7692): the parameters agreed in the opening handshake (filled by
     * cws_pmd_negotiate or cws_pmd_response_accept), or NULL (the default) when the extension is
     * not in use. Copied at cws_conn_new; not kept. When set, RSV1 is allowed on the first frame of
     * a data message and such messages are inflated; see the permessage-deflate section below. */
    const struct cws_pmd_params *pmd;
    /* permessage-deflate: a pool of inflaters shared by the engines of one thread (see
     * cws_inflater_pool_new), or NULL (the default): the engine then creates its own inflater on
     * its first compressed message and keeps it. With a pool the engine holds no zlib state
     * between messages: it borrows an inflater at the first frame of a compressed message and
     * gives it back, reset, when the message is delivered, fails, or the engine is freed. That
     * needs the peer to reset after every message: `pmd` must have the peer's no_context_takeover
     * agreed (client_no_context_takeover for a server; a server states it unasked when
     * cws_pmd_config.peer_no_context_takeover is set, RFC 7692 §7.1.1.2), else cws_conn_new fails
     * with CWS_ERR_INVALID_ARGUMENT. A peer that keeps its context anyway sends references into a
     * window that is gone: CWS_ERR_INFLATE (1007) for that connection only. Not copied: the pool
     * must outlive the engine. */
    struct cws_inflater_pool *inflaters;
} cws_config;

/* Fills *cfg with the defaults above for `role` (allocator, reassembly, pmd, inflaters NULL). */
void cws_config_init(cws_config *cfg, cws_role role);

typedef struct cws_conn cws_conn;

/* Creates an engine. CWS_ERR_INVALID_ARGUMENT (bad role, zero limits), CWS_ERR_NOMEM.
 * The engine is freed with cws_conn_free. One engine per connection; an engine may move between
 * threads but must not be used from two at once. */
CWS_NODISCARD int cws_conn_new(const cws_config *cfg, cws_conn **out);

/* Frees the engine and every buffer it owns. NULL is allowed. */
void cws_conn_free(cws_conn *c);

typedef enum cws_event_type {
    CWS_EVENT_TEXT = 1,   /* a complete text message (valid UTF-8) */
    CWS_EVENT_BINARY = 2, /* a complete binary message */
    CWS_EVENT_CLOSE = 8,  /* a close frame: close_code (1005 if none) and the reason as payload */
    CWS_EVENT_PING = 9,
    CWS_EVENT_PONG = 10,
    CWS_EVENT_ERROR = 255 /* a protocol error: close_code to send, payload = static reason */
} cws_event_type;

typedef struct cws_event {
    /* Where the payload is. When in_input is 1 it lies in the buffer given to the cws_conn_parse
     * call that returned the event, at buf + offset (unmasked in place): borrowed, valid as long as
     * the caller keeps that buffer. When in_input is 0 it lies in memory the engine owns (a
     * reassembled or split message, a control frame split across reads, an error reason), valid
     * until the next call on this engine; `offset` is then 0. Except with cws_config.reassembly:
     * a TEXT or BINARY event with in_input 0 then hands its buffer to the caller (see there).
     * `data` points at the payload in either case (NULL when length is 0). */
    const void *data;
    size_t offset;
    size_t length;
    uint8_t type;       /* cws_event_type */
    uint8_t in_input;
    uint8_t rsv;        /* RSV bits of the message's first frame (for extensions) */
    uint16_t close_code;/* CLOSE: the peer's code (1005 when none); ERROR: the code to send */
} cws_event;

/* Feeds buf[0..len) and takes at most one event.
 *   - CWS_OK: *ev holds an event; *consumed bytes of buf were used (up to the end of the frame
 *     that completed the event). Call again with the rest.
 *   - CWS_WANT_READ: all of buf was used (*consumed == len) and no event is complete yet.
 *   - CWS_CLOSED: a close event was already returned; the input is discarded (*consumed == len).
 *   - a -2xx status: the peer broke the protocol. *ev is an ERROR event with the close code to send
 *     and a static reason. Every later call returns the same status.
 *   - CWS_ERR_NOMEM: reassembly could not grow (fatal).
 * On CWS_OK and CWS_WANT_READ, payload bytes are unmasked in place only inside buf[0..*consumed);
 * after a protocol error, bytes of the failing frame past *consumed may have been unmasked too
 * (the connection is over, so they are never read again). A message that arrives in one
 * unfragmented frame wholly inside buf is delivered in place (in_input = 1): no copy. Fragmented
 * messages and frames split across calls are copied into a reassembly buffer (the engine's, or
 * one handed to the caller with cws_config.reassembly), which grows only as bytes arrive and never
 * past max_message_size. Feeding the same bytes in chunks of any size gives the same events.
 * Never reads past buf + len; allocates only to grow the reassembly buffer. */
CWS_NODISCARD int cws_conn_parse(cws_conn *c, void *buf, size_t len, size_t *consumed,
                                 cws_event *ev);

/* ------------------------------------------------------------------------------------------------
 * Opening handshake helpers (RFC 6455 §4.2)
 * ---------------------------------------------------------------------------------------------- */

/* Length of a Sec-WebSocket-Accept value (base64 of a SHA-1 digest), without a NUL. */
#define CWS_ACCEPT_LENGTH 28

/* True when key[0..len) is a valid Sec-WebSocket-Key: the base64 encoding of exactly 16 bytes
 * (24 characters, ending in "==", canonical padding bits). Surrounding whitespace is the caller's
 * to trim. */
bool cws_handshake_key_is_valid(const void *key, size_t len);

/* True when s[0..len) is a non-empty HTTP token (RFC 9110 §5.6.2: "!#$%&'*+-.^_`|~", digits,
 * letters), as subprotocol and extension names must be. Borrows s for the call; s may be NULL when
 * len is 0 (then false). */
bool cws_http_is_token(const void *s, size_t len);

/* Computes Sec-WebSocket-Accept = base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) into
 * out[0..CWS_ACCEPT_LENGTH) (not NUL-terminated). CWS_ERR_INVALID_KEY when the key is not valid
 * (cws_handshake_key_is_valid). Never allocates. */
CWS_NODISCARD int cws_handshake_accept(const void *key, size_t len, char out[CWS_ACCEPT_LENGTH]);

/* ================================================================================================
 * permessage-deflate (RFC 7692)
 *
 * Three parts, all sans-IO:
 *   1. Negotiation: header bytes in, a decision and a response header value out. The server calls
 *      cws_pmd_negotiate on the client's Sec-WebSocket-Extensions offers; a client writes its offer
 *      with cws_pmd_offer_write and checks the answer with cws_pmd_response_accept. Both fill a
 *      cws_pmd_params with what was agreed.
 *   2. Receiving: put a pointer to the agreed cws_pmd_params in cws_config.pmd. cws_conn_parse then
 *      accepts RSV1 on the first frame of a data message (RFC 7692 §6) and delivers such a message
 *      inflated, in engine-owned memory (in_input = 0, rsv = CWS_RSV1 as on the wire), valid until
 *      the next call (or handed over, with cws_config.reassembly). The inflated size is what
 *      max_message_size limits (CWS_ERR_MESSAGE_TOO_BIG, 1009, as soon as the output would pass
 *      it: the engine never holds more than the limit, whatever the compression ratio). The
 *      compressed bytes of one message may be at most max_message_size + max_message_size / 8 + 64
 *      (more than deflate's worst-case expansion).
 *      Text is UTF-8 validated on the inflated bytes as they come out (fail fast, 1007). Corrupt
 *      DEFLATE data is CWS_ERR_INFLATE (1007). RSV1 on a continuation or control frame, or
 *      without the extension, stays CWS_ERR_RESERVED_BITS (1002). Uncompressed messages take the
 *      same zero-copy paths as without the extension. The inflater (zlib state plus its window)
 *      is allocated through the engine's allocator on the first compressed message, so a
 *      connection that never receives one costs nothing extra.
 *   3. Sending: a cws_deflater compresses whole messages into caller memory; send the result with
 *      RSV1 on the first frame only (cws_fragmenter_init(..., CWS_RSV1, ...)).
 *
 * Memory per connection. zlib 1.2.13 allocates (counted through zalloc by
 * Benchmarks/zlib-sizes.c): a deflater (1 << (window_bits + 2)) + (1 << (mem_level + 9)) + 5,952
 * bytes, an inflater (1 << window) + 7,160 bytes, both on the first compressed message in their
 * direction. Measured by Benchmarks/run-deflate.sh (2000 engines, each after one compressed
 * 300-byte message in each direction, bytes asked of the allocator; Benchmarks/RESULTS-deflate.md,
 * before the inflater pool): the engine alone is 336 bytes; the inflater (engine-owned, sized by
 * the PEER's window, so ask for a small one with peer_window_bits) includes a 1 KiB reassembly
 * buffer; the deflater is the caller's:
 *   our window (memLevel)      deflater      inflater at the same peer window
 *   9 (2)                      10.0 KiB      8.6 KiB
 *   12 (5)                     38.0 KiB      12.1 KiB
 *   15 (8)                     262.0 KiB     40.1 KiB
 * With CWS_PMD_MEMORY_SHARED the deflater is one per thread (262 KiB at window 15), and with
 * cws_config.inflaters the engine holds no inflater between messages. A whole server connection
 * in each mode, end to end (the Swift server, 2,000 Python websockets clients, messages up to
 * 64 KiB, resident memory and malloc's bytes in use): Benchmarks/RESULTS-pmd-memory.md.
 * ============================================================================================== */

/* The longest header value cws_pmd_negotiate and cws_pmd_offer_write write: "permessage-deflate"
 * with all four parameters and two-digit values. A buffer this big never gets
 * CWS_ERR_BUFFER_TOO_SMALL. */
#define CWS_PMD_HEADER_MAX 128

typedef enum cws_pmd_memory {
    /* One deflater per connection (cws_deflater_new with the agreed parameters), with the
     * configured window and context takeover. */
    CWS_PMD_MEMORY_DEDICATED = 0,
    /* One deflater per thread, shared by every connection on it (cws_deflater_new with
     * agreed = NULL). It resets after every message, so negotiation always states
     * no_context_takeover for our direction, and declines offers that demand a smaller window
     * than window_bits (a shared deflater has one window size). No deflater memory per
     * connection; the price is the ratio that context takeover would have given. */
    CWS_PMD_MEMORY_SHARED = 1
} cws_pmd_memory;

/* What this endpoint wants (the server's wishes, or the client's offer). "Our" direction is what
 * we send (server_* parameters for a server, client_* for a client); "peer" is what we receive.
 * Set with cws_pmd_config_init, then change fields. */
typedef struct cws_pmd_config {
    /* Our compressor's LZ77 window, 2^window_bits bytes: 9-15. Never 8: zlib cannot produce a
     * raw stream with a 256-byte window (it would use 512, breaking the agreement), so offers that
     * demand 8 for our direction are declined. Default 15. */
    uint8_t window_bits;
    /* The largest window we ask the peer to compress with, 9-15: it sizes our inflater. A server
     * can only ask a client that offered client_max_window_bits; otherwise the client may use 15
     * and the inflater follows. Never 8: most peers deflate with zlib and could not honour it
     * (a peer that offers 8 on its own is accepted: inflating with 8 is fine). Default 15 (ask
     * nothing). */
    uint8_t peer_window_bits;
    /* Reset our compressor after every message (state no_context_takeover for our direction).
     * Forced on by CWS_PMD_MEMORY_SHARED. Default false. */
    bool no_context_takeover;
    /* Ask the peer to reset after every message: our inflater then starts each message afresh
     * (inflateReset; its memory stays allocated). Default false. */
    bool peer_no_context_takeover;
    /* zlib compression level 0-9 (0: stored blocks, no compression). Default 1. Measured on
     * JSON-like messages of 300 B-2 KiB with a 15-bit window (Benchmarks/RESULTS-deflate.md):
     * level 1 is the fastest (level 2 ties up to 1 KiB), 1.3-1.9x level 3-4 and 2.7-5.5x level 6;
     * its output is 4% larger than level 2's, 10-12% larger than level 4's and 19-22% larger
     * than level 6's. */
    uint8_t level;
    /* zlib memLevel 1-9: hash table and pending buffer size. 0 (default) matches the window:
     * window_bits - 7 (8 at window 15, 5 at 12, 2 at 9). */
    uint8_t mem_level;
    /* Default CWS_PMD_MEMORY_DEDICATED. */
    cws_pmd_memory memory;
    /* Messages shorter than this many bytes are sent uncompressed (deflate's headers and the
     * flush cost more than they save on tiny messages; hummingbird uses 256 too). Default 256. */
    uint32_t threshold;
} cws_pmd_config;

/* Fills *cfg with the defaults above. */
void cws_pmd_config_init(cws_pmd_config *cfg);

/* The agreed parameters, as RFC 7692 §7.1 names them (so they read the same in both roles).
 * Window bits are 8-15 and are effective limits: 15 when the handshake stated nothing. */
typedef struct cws_pmd_params {
    uint8_t server_max_window_bits;
    uint8_t client_max_window_bits;
    bool server_no_context_takeover;
    bool client_no_context_takeover;
} cws_pmd_params;

/* Server role (RFC 7692 §5, §7.1). Reads the Sec-WebSocket-Extensions value offers[0..len): a
 * comma-separated list of extension offers, each a name and ';'-separated parameters with or
 * without a value (token or quoted-string). Names compare case-insensitively; empty list
 * elements and whitespace around ',' ';' '=' are allowed. Offers of other extensions are skipped.
 * A permessage-deflate offer is declined, and the next one tried, when it has an unknown or
 * duplicated parameter, a value where none belongs or none where one is required, a window size
 * that is not 8-15 written without leading zeros, a syntax error, or when it cannot be honoured
 * (server_max_window_bits=8, or below window_bits in CWS_PMD_MEMORY_SHARED mode). Several header
 * lines: join them with "," in order, or call once per line in order and stop at the first
 * CWS_OK; both give the same answer.
 * The first acceptable offer decides, within what the client allows (cfg decides the rest):
 *   - server_no_context_takeover if the client asked for it or cfg->no_context_takeover or SHARED;
 *   - server_max_window_bits = min(cfg->window_bits, offered value), stated whenever below 15;
 *   - client_no_context_takeover if the client offered it or cfg->peer_no_context_takeover;
 *   - client_max_window_bits = min(cfg->peer_window_bits, offered value), stated only when the
 *     client offered the parameter and the result is below 15 or the client gave a value.
 * Returns:
 *   - CWS_OK: *agreed is filled and response[0..*written) holds the response header value (not
 *     NUL-terminated), which states exactly what was agreed, e.g.
 *     "permessage-deflate; server_no_context_takeover; client_max_window_bits=10".
 *   - CWS_PMD_DECLINED: no acceptable offer; answer without the extension (not a failed handshake).
 *   - CWS_ERR_BUFFER_TOO_SMALL: cap < the response length (CWS_PMD_HEADER_MAX always suffices).
 *   - CWS_ERR_INVALID_ARGUMENT: a field of cfg out of range, or a NULL pointer.
 * *agreed and *written are only written on CWS_OK. offers is read only; nothing is kept. */
CWS_NODISCARD int cws_pmd_negotiate(const cws_pmd_config *cfg, const void *offers, size_t len,
                                    cws_pmd_params *agreed, void *response, size_t cap,
                                    size_t *written);

/* Client role: writes our one offer into out[0..cap) (not NUL-terminated) and sets *written:
 * "permessage-deflate", then client_no_context_takeover if cfg->no_context_takeover or SHARED,
 * server_no_context_takeover if cfg->peer_no_context_takeover, server_max_window_bits=N if
 * cfg->peer_window_bits < 15, and client_max_window_bits (with =N when cfg->window_bits < 15)
 * so the server may size its inflater. CWS_ERR_BUFFER_TOO_SMALL, CWS_ERR_INVALID_ARGUMENT. */
CWS_NODISCARD int cws_pmd_offer_write(const cws_pmd_config *cfg, void *out, size_t cap,
                                      size_t *written);

/* Client role: checks the server's Sec-WebSocket-Extensions value response[0..len) against the
 * offer that cws_pmd_offer_write made from the same cfg (RFC 7692 §7.1):
 *   - CWS_OK: *agreed is filled (window bits effective: the server's values, else our offered
 *     limits, else 15).
 *   - CWS_PMD_DECLINED: the value is empty (the server accepted no extension).
 *   - CWS_ERR_PMD_RESPONSE: anything else than exactly one valid permessage-deflate answer: other
 *     or repeated extensions, unknown or duplicated parameters, bad values, a parameter we asked
 *     for and the server left out (server_no_context_takeover, server_max_window_bits), a window
 *     above what we offered, client_max_window_bits when we did not offer it, or
 *     client_max_window_bits=8 (our zlib deflater cannot honour it). Fail the connection.
 *   - CWS_ERR_INVALID_ARGUMENT.
 * Reads response[0..len) only; *agreed is only written on CWS_OK. */
CWS_NODISCARD int cws_pmd_response_accept(const cws_pmd_config *cfg, const void *response,
                                          size_t len, cws_pmd_params *agreed);

/* A message compressor (zlib raw deflate, RFC 7692 §7.2.1). Not thread-safe: one thread at a
 * time. Its fields are private. */
/* A pool of inflaters for the engines of one thread (cws_config.inflaters): idle inflaters wait
 * in the pool; an engine borrows one only while a compressed message is arriving, so a thread
 * holds as many as it has messages in progress at once (one, when each message arrives in one
 * read), not one per connection. Every inflater has a 15-bit window (it inflates any peer window)
 * and allocates through the pool's allocator: its state (~7 KiB) when created, its 32 KiB window
 * on first output; reset, not freed, between messages. Taking and giving back are guarded by a
 * spin lock, so engines on several threads may share one pool (and an engine may be freed on
 * another thread than the one it parsed on); one pool per thread keeps the inflaters local. */
typedef struct cws_inflater_pool cws_inflater_pool;

/* Creates an empty pool. `allocator` as in cws_config (NULL: malloc/free), copied; its functions
 * and `user` must stay valid until cws_inflater_pool_free. CWS_ERR_INVALID_ARGUMENT,
 * CWS_ERR_NOMEM. */
CWS_NODISCARD int cws_inflater_pool_new(const cws_allocator *allocator, cws_inflater_pool **out);

/* Frees the pool and its inflaters. Every engine using it must have been freed first. NULL is
 * allowed. */
void cws_inflater_pool_free(cws_inflater_pool *pool);

/* Inflaters the pool has created (idle or lent): the most messages that were in progress at once
 * on its engines. */
size_t cws_inflater_pool_count(const cws_inflater_pool *pool);

typedef struct cws_deflater cws_deflater;

/* Creates a deflater for sending in `role` (our direction: server_* parameters for a server).
 *   - agreed != NULL: a dedicated deflater for one connection. Window =
 *     min(cfg->window_bits, our agreed max window); it resets after every message when our
 *     direction's no_context_takeover was agreed or cfg->no_context_takeover is set, and otherwise
 *     keeps its window across messages (context takeover).
 *   - agreed == NULL: a shared deflater (CWS_PMD_MEMORY_SHARED): window cfg->window_bits, reset
 *     after every message, usable by every connection on one thread whose agreement came from
 *     cws_pmd_negotiate/accept with the same cfg.
 * Level, mem_level and threshold come from cfg. Allocates a small handle now; the zlib state
 * (the bulk, see the table above) on the first message it actually compresses. Every allocation,
 * zlib's included, goes through `allocator` (NULL: malloc/free), which must stay valid until
 * cws_deflater_free. CWS_ERR_INVALID_ARGUMENT (cfg out of range, agreed window 8),
 * CWS_ERR_NOMEM. */
CWS_NODISCARD int cws_deflater_new(const cws_pmd_config *cfg, const cws_pmd_params *agreed,
                                   cws_role role, const cws_allocator *allocator,
                                   cws_deflater **out);

/* Frees the deflater and its zlib state. NULL is allowed. */
void cws_deflater_free(cws_deflater *d);

/* An output size that is always enough for cws_deflate_message of `len` bytes, with any
 * parameters: len + len/8 + len/64 + 16 (deflate's stored-block worst case plus the flush).
 * SIZE_MAX if that overflows. */
size_t cws_deflate_bound(size_t len);

/* Flags for cws_deflate_message. */
enum {
    CWS_DEFLATE_DEFAULT = 0,
    CWS_DEFLATE_NO_COMPRESS = 1 /* the sender marked this message "don't compress" */
};

/* Compresses one whole message in[0..len) into out[0..cap).
 * The decision comes first, before the data touches the deflater, so a message sent
 * uncompressed never enters the context-takeover window (which the peer's inflater would not
 * have): a message shorter than cfg->threshold, or with CWS_DEFLATE_NO_COMPRESS, sets
 * *compressed = false and *written = 0; send in[0..len) as it is, with no RSV bits.
 * Otherwise the message is compressed with a sync flush and the 00 00 ff ff tail removed
 * (RFC 7692 §7.2.1); *compressed = true and out[0..*written) is the payload to send with RSV1 on
 * its first frame. A deflater that resets after every message may still answer
 * *compressed = false when the compressed form would not be smaller (its window is reset
 * anyway, so nothing diverges).
 * Errors (nothing sent, deflater unchanged): CWS_ERR_BUFFER_TOO_SMALL when
 * cap < cws_deflate_bound(len) (checked before compressing), CWS_ERR_INVALID_ARGUMENT,
 * CWS_ERR_NOMEM (zlib state could not be allocated). in and out are the caller's; nothing is
 * kept. */
CWS_NODISCARD int cws_deflate_message(cws_deflater *d, const void *in, size_t len, uint32_t flags,
                                      void *out, size_t cap, size_t *written, bool *compressed);

#ifdef __cplusplus
}
#endif

#endif /* CWS_H */
