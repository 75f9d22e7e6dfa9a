/*
 * fuzz_handshake — the opening-handshake helpers (RFC 6455 §4.1, §4.2.2) and their base64/SHA-1.
 *
 * Input: byte 0 selects the key: bit 0 set = "make a key": bytes 1-16 are a nonce, base64-encoded
 * by cws_base64_encode, then byte 17 (if not 0) overwrites the character at byte 18 % 24 (to
 * probe the edges of validity); bit 0 clear = the rest of the input is the key as received.
 *
 * Invariants:
 *   - cws_handshake_key_is_valid is true exactly for canonical base64 of 16 bytes (24 characters),
 *     by an independent strict decoder (ref_b64_decode);
 *   - cws_handshake_accept succeeds exactly for valid keys; its 28 characters are canonical base64
 *     of 20 bytes, equal to SHA-1(key + GUID) computed through cws_sha1 on a concatenation;
 *   - cws_base64_encode of any input has length 4 * ceil(n / 3) and decodes back to the input;
 *   - no call reads outside its buffer (exact heap copies).
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; /* RFC 6455 §1.3 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    const uint8_t mode = fuzz_u8(&in);
    uint8_t *key;
    size_t klen;
    if (mode & 1) {
        uint8_t nonce[16];
        for (int i = 0; i < 16; i++) nonce[i] = fuzz_u8(&in);
        char k[24];
        FUZZ_ASSERT(cws_base64_encode(nonce, 16, k) == 24);
        uint8_t with = fuzz_u8(&in), at = fuzz_u8(&in);
        if (with) k[at % 24] = (char)with;
        key = fuzz_dup(k, 24);
        klen = 24;
    } else {
        key = fuzz_dup(in.p, in.n);
        klen = in.n;
    }

    uint8_t dec[64];
    const bool valid = klen == 24 && ref_b64_decode(key, klen, dec) == 16;
    FUZZ_ASSERT(cws_handshake_key_is_valid(key, klen) == valid);

    char *accept = (char *)malloc(CWS_ACCEPT_LENGTH);
    FUZZ_ASSERT(accept != NULL);
    int st = cws_handshake_accept(key, klen, accept);
    FUZZ_ASSERT(st == (valid ? CWS_OK : CWS_ERR_INVALID_KEY));
    if (st == CWS_OK) {
        uint8_t digest[20], got[21];
        FUZZ_ASSERT(ref_b64_decode(accept, CWS_ACCEPT_LENGTH, got) == 20);
        uint8_t cat[24 + sizeof guid - 1];
        memcpy(cat, key, 24);
        memcpy(cat + 24, guid, sizeof guid - 1);
        cws_sha1(cat, sizeof cat, digest);
        FUZZ_ASSERT(memcmp(got, digest, 20) == 0);
    }
    free(accept);

    /* base64 of the raw input: length rule and round trip */
    const size_t n = size;
    const size_t olen = 4 * ((n + 2) / 3);
    char *enc = (char *)malloc(olen + 1);
    uint8_t *back = (uint8_t *)malloc(olen / 4 * 3 + 1);
    FUZZ_ASSERT(enc != NULL && back != NULL);
    uint8_t *copy = fuzz_dup(data, n);
    FUZZ_ASSERT(cws_base64_encode(copy, n, enc) == olen);
    FUZZ_ASSERT(ref_b64_decode(enc, olen, back) == (long)n);
    FUZZ_ASSERT(n == 0 || memcmp(back, data, n) == 0);

    /* SHA-1 is a function: the same bytes at another address give the same digest */
    uint8_t d1[20], d2[20];
    cws_sha1(copy, n, d1);
    cws_sha1(data, n, d2);
    FUZZ_ASSERT(memcmp(d1, d2, 20) == 0);

    free(copy);
    free(back);
    free(enc);
    free(key);
    return 0;
}
