/*
 * test_handshake.c — the accept key (RFC 6455 §4.2.2), SHA-1, base64.
 */
#include "test_harness.h"

/* ---- handshake (RFC 6455 §1.3, §4.2.2) and its SHA-1 / base64 ------------------------------ */

static void test_handshake(void) {
    /* RFC 6455 §1.3: "dGhlIHNhbXBsZSBub25jZQ==" -> "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" */
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    char out[CWS_ACCEPT_LENGTH + 1] = {0};
    CHECK(cws_handshake_key_is_valid(key, 24));
    CHECK(cws_handshake_accept(key, 24, out) == CWS_OK);
    CHECK(memcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", CWS_ACCEPT_LENGTH) == 0);
    static const char *bad[] = {
        "dGhlIHNhbXBsZSBub25jZQ=",   /* 23 chars */
        "dGhlIHNhbXBsZSBub25jZQ===", /* 25 */
        "dGhlIHNhbXBsZSBub25jZR==",  /* padding bits not zero (RFC 4648 §3.5) */
        "dGhlIHNhbXBsZSBub25j*Q==",  /* not base64 */
        "dGhlIHNhbXBsZSBub25jZQAA",  /* no padding: 18 bytes */
        "dGhlIHNhbXBsZSBub2=jZQ==",  /* '=' inside */
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        context("bad key %zu", i);
        CHECK(!cws_handshake_key_is_valid(bad[i], strlen(bad[i])));
        CHECK(cws_handshake_accept(bad[i], strlen(bad[i]), out) == CWS_ERR_INVALID_KEY);
    }
    CHECK(!cws_handshake_key_is_valid(NULL, 24));
    CHECK(cws_handshake_accept(key, 24, NULL) == CWS_ERR_INVALID_ARGUMENT);
    /* every 16-byte nonce whose bytes are one value: valid key, accept computed */
    for (int b = 0; b < 256; b++) {
        uint8_t nonce[16];
        memset(nonce, b, 16);
        char k[25] = {0};
        CHECK(cws_base64_encode(nonce, 16, k) == 24);
        uint8_t dec[24];
        CHECK(ref_b64_decode(k, 24, dec) == 16 && memcmp(dec, nonce, 16) == 0);
        CHECK(cws_handshake_key_is_valid(k, 24));
        CHECK(cws_handshake_accept(k, 24, out) == CWS_OK);
        CHECK(ref_b64_decode(out, 28, dec) == 20);
    }
    /* SHA-1: FIPS 180-2 examples */
    static const struct { const char *msg; const char *hex; } sha[] = {
        {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
    };
    for (size_t i = 0; i < sizeof sha / sizeof sha[0]; i++) {
        uint8_t d[20];
        char hex[41];
        cws_sha1(sha[i].msg, strlen(sha[i].msg), d);
        for (int j = 0; j < 20; j++) snprintf(hex + 2 * j, 3, "%02x", d[j]);
        context("sha1 %zu", i);
        CHECK(strcmp(hex, sha[i].hex) == 0);
    }
    {   /* one million 'a' */
        uint8_t *m = (uint8_t *)xmalloc(1000000);
        memset(m, 'a', 1000000);
        uint8_t d[20];
        char hex[41];
        cws_sha1(m, 1000000, d);
        for (int j = 0; j < 20; j++) snprintf(hex + 2 * j, 3, "%02x", d[j]);
        CHECK(strcmp(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f") == 0);
        free(m);
    }
    /* base64: RFC 4648 §10 */
    static const char *b64[][2] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
                                   {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < 7; i++) {
        char o[16] = {0};
        size_t n = cws_base64_encode(b64[i][0], strlen(b64[i][0]), o);
        context("base64 %zu", i);
        CHECK(n == strlen(b64[i][1]) && memcmp(o, b64[i][1], n) == 0);
    }
}

void handshake_tests(void) {
    run_test("handshake accept, sha1, base64", test_handshake);
}
