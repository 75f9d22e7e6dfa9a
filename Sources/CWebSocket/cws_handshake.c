/*
 * cws_handshake.c — the opening-handshake helpers (RFC 6455 §4.2): SHA-1 (FIPS 180-4), base64
 * (RFC 4648 §4), Sec-WebSocket-Key validation and the Sec-WebSocket-Accept computation.
 *
 * Nothing here allocates: the SHA-1 state lives on the stack, and the accept value is hashed
 * incrementally (key, then GUID) instead of being concatenated into a buffer.
 */
#include "cws_internal.h"

/* ---------------------------------------------------------------------------------------------
 * SHA-1 (FIPS 180-4 §6.1)
 *
 * Message schedule and state are 32-bit big-endian words. Padding (§5.1.1): append 0x80, zeros
 * up to 56 mod 64, then the message length in bits as a 64-bit big-endian integer. A message
 * whose tail is 56..63 bytes mod 64 therefore needs one extra block for the length.
 * ------------------------------------------------------------------------------------------- */

typedef struct cws_sha1_ctx {
    uint32_t h[5];
    uint64_t total;     /* bytes hashed so far */
    uint8_t block[64];  /* pending bytes of the current block */
    size_t used;        /* how many of them (0-63) */
} cws_sha1_ctx;

static uint32_t cws_rol32(uint32_t x, unsigned n) { return (x << n) | (x >> (32u - n)); }

static uint32_t cws_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void cws_sha1_init(cws_sha1_ctx *c) {
    /* FIPS 180-4 §5.3.1 initial hash value. */
    c->h[0] = 0x67452301u;
    c->h[1] = 0xEFCDAB89u;
    c->h[2] = 0x98BADCFEu;
    c->h[3] = 0x10325476u;
    c->h[4] = 0xC3D2E1F0u;
    c->total = 0;
    c->used = 0;
}

/* One 512-bit block (§6.1.2). The 80-word schedule is kept as a rolling 16-word window:
 * W[t] = ROTL1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]), indices taken mod 16. */
static void cws_sha1_block(uint32_t h[5], const uint8_t *p) {
    uint32_t w[16];
    for (int i = 0; i < 16; i++) w[i] = cws_be32(p + 4 * i);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t wt;
        if (t < 16) {
            wt = w[t];
        } else {
            wt = cws_rol32(w[(t + 13) & 15] ^ w[(t + 8) & 15] ^ w[(t + 2) & 15] ^ w[t & 15], 1);
            w[t & 15] = wt;
        }
        /* §4.1.1 functions and §4.2.1 constants, by round group of 20. */
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d); /* Ch */
            k = 0x5A827999u;
        } else if (t < 40) {
            f = b ^ c ^ d; /* Parity */
            k = 0x6ED9EBA1u;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d); /* Maj */
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d; /* Parity */
            k = 0xCA62C1D6u;
        }
        uint32_t tmp = cws_rol32(a, 5) + f + e + k + wt;
        e = d;
        d = c;
        c = cws_rol32(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

/* Hashes the whole blocks of p[0..n) and keeps the rest (< 64 bytes) for cws_sha1_final. Called
 * once per context: every input is hashed in one piece. */
static void cws_sha1_update(cws_sha1_ctx *c, const uint8_t *p, size_t n) {
    c->total = n;
    while (n >= 64) {
        cws_sha1_block(c->h, p);
        p += 64;
        n -= 64;
    }
    if (n) memcpy(c->block, p, n);
    c->used = n;
}

static void cws_sha1_final(cws_sha1_ctx *c, uint8_t out[20]) {
    uint64_t bits = c->total * 8u; /* length mod 2^64 bits, as §5.1.1 allows for our inputs */
    c->block[c->used++] = 0x80;
    if (c->used > 56) {
        /* No room for the 8-byte length: finish this block with zeros, then one more. */
        memset(c->block + c->used, 0, 64 - c->used);
        cws_sha1_block(c->h, c->block);
        c->used = 0;
    }
    memset(c->block + c->used, 0, 56 - c->used);
    for (int i = 0; i < 8; i++) c->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    cws_sha1_block(c->h, c->block);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void cws_sha1(const void *data, size_t len, uint8_t out[20]) {
    cws_sha1_ctx c;
    cws_sha1_init(&c);
    if (len) cws_sha1_update(&c, (const uint8_t *)data, len);
    cws_sha1_final(&c, out);
}

/* ---------------------------------------------------------------------------------------------
 * Base64 (RFC 4648 §4): every 3 input bytes become 4 characters of 6 bits each, high bits first;
 * a final group of 1 or 2 bytes is zero-extended and padded with "==" or "=".
 * ------------------------------------------------------------------------------------------- */

static const char cws_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t cws_base64_encode(const void *data, size_t len, char *out) {
    const uint8_t *p = (const uint8_t *)data;
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8) | (uint32_t)p[i + 2];
        out[o++] = cws_b64_alphabet[(v >> 18) & 63];
        out[o++] = cws_b64_alphabet[(v >> 12) & 63];
        out[o++] = cws_b64_alphabet[(v >> 6) & 63];
        out[o++] = cws_b64_alphabet[v & 63];
    }
    size_t rest = len - i;
    if (rest) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (rest == 2) v |= (uint32_t)p[i + 1] << 8;
        out[o++] = cws_b64_alphabet[(v >> 18) & 63];
        out[o++] = cws_b64_alphabet[(v >> 12) & 63];
        out[o++] = rest == 2 ? cws_b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    return o;
}

/* Value of a base64 alphabet character, or -1. Written as ranges rather than a 256-entry table:
 * it runs 22 times per handshake. */
static int cws_b64_value(uint8_t ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

/* ---------------------------------------------------------------------------------------------
 * Sec-WebSocket-Key (RFC 6455 §4.1 item 7, §11.3.1): a base64-encoded 16-byte nonce.
 *
 * 16 bytes = 5 full groups (20 chars) + 1 leftover byte, which encodes as 2 chars + "==":
 *   char 21 (index 20): top 6 bits of byte 15
 *   char 22 (index 21): low 2 bits of byte 15, then 4 zero padding bits
 * Canonical encoding (RFC 4648 §3.5) requires those 4 padding bits to be zero, so char 22's
 * value is a multiple of 16: 'A' (0), 'Q' (16), 'g' (32) or 'w' (48).
 * ------------------------------------------------------------------------------------------- */

bool cws_handshake_key_is_valid(const void *key, size_t len) {
    if (key == NULL || len != 24) return false;
    const uint8_t *k = (const uint8_t *)key;
    for (size_t i = 0; i < 22; i++) {
        if (cws_b64_value(k[i]) < 0) return false;
    }
    if (k[22] != '=' || k[23] != '=') return false;
    return (cws_b64_value(k[21]) & 15) == 0;
}

/* RFC 6455 §1.3 / §4.2.2 step 5.4: the GUID appended to the key before hashing. */
static const char cws_ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int cws_handshake_accept(const void *key, size_t len, char out[CWS_ACCEPT_LENGTH]) {
    if (out == NULL) return CWS_ERR_INVALID_ARGUMENT;
    if (!cws_handshake_key_is_valid(key, len)) return CWS_ERR_INVALID_KEY;
    /* SHA-1 of key || GUID: 24 + 36 = 60 bytes, hashed in one piece. */
    uint8_t msg[24 + sizeof cws_ws_guid - 1];
    uint8_t digest[20];
    memcpy(msg, key, 24);
    memcpy(msg + 24, cws_ws_guid, sizeof cws_ws_guid - 1); /* no NUL */
    cws_sha1(msg, sizeof msg, digest);
    /* 20 bytes -> 4 * 7 = 28 characters, the last one '=' (CWS_ACCEPT_LENGTH). */
    (void)cws_base64_encode(digest, sizeof digest, out);
    return CWS_OK;
}
