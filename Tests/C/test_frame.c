/*
 * test_frame.c — close codes and the status table; frame, control and close writers and the fragmenter.
 */
#include "test_harness.h"

/* ---- close codes: every 16-bit value through the engine ------------------------------------ */

static void test_close_codes(void) {
    for (unsigned code = 0; code <= 0xFFFF; code++) {
        context("close code %u", code);
        CHECK(cws_close_code_is_valid((uint16_t)code) == ref_close_code_ok(code));
        if (code % 7 && !(code >= 990 && code <= 1020) && !(code >= 2990 && code <= 3010) &&
            !(code >= 4990 && code <= 5010))
            continue; /* the engine runs on a sample; the predicate above on all */
        uint8_t f[4] = {0x88, 0x02, (uint8_t)(code >> 8), (uint8_t)code};
        cws_config cfg;
        cws_config_init(&cfg, CWS_ROLE_CLIENT);
        cws_conn *c;
        CHECK(cws_conn_new(&cfg, &c) == CWS_OK);
        size_t used;
        cws_event ev;
        int st = cws_conn_parse(c, f, 4, &used, &ev);
        if (ref_close_code_ok(code)) {
            CHECK(st == CWS_OK && ev.type == CWS_EVENT_CLOSE && ev.close_code == code && ev.length == 0);
        } else {
            CHECK(st == CWS_ERR_CLOSE_CODE && ev.type == CWS_EVENT_ERROR && ev.close_code == 1002);
        }
        cws_conn_free(c);
    }
    /* The status table: every -2xx/-5xx has a close code, everything else 0 (cws.h). */
    static const struct { int st; uint16_t code; } table[] = {
        {CWS_ERR_RESERVED_OPCODE, 1002}, {CWS_ERR_RESERVED_BITS, 1002},
        {CWS_ERR_CONTROL_FRAGMENTED, 1002}, {CWS_ERR_CONTROL_TOO_LONG, 1002},
        {CWS_ERR_LENGTH_TOP_BIT, 1002}, {CWS_ERR_UNMASKED, 1002}, {CWS_ERR_MASKED, 1002},
        {CWS_ERR_UNEXPECTED_CONTINUATION, 1002}, {CWS_ERR_EXPECTED_CONTINUATION, 1002},
        {CWS_ERR_CLOSE_PAYLOAD, 1002}, {CWS_ERR_CLOSE_CODE, 1002}, {CWS_ERR_INVALID_UTF8, 1007},
        {CWS_ERR_CLOSE_REASON_UTF8, 1007}, {CWS_ERR_MESSAGE_TOO_BIG, 1009},
        {CWS_ERR_FRAME_TOO_BIG, 1009}, {CWS_ERR_NOMEM, 1011}, {CWS_OK, 0}, {CWS_WANT_READ, 0},
        {CWS_CLOSED, 0}, {CWS_DONE, 0}, {CWS_ERR_INVALID_ARGUMENT, 0},
        {CWS_ERR_BUFFER_TOO_SMALL, 0}, {CWS_ERR_INVALID_CLOSE_CODE, 0}, {CWS_ERR_INVALID_KEY, 0},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        context("status %d", table[i].st);
        CHECK(cws_status_close_code(table[i].st) == table[i].code);
        const char *s = cws_strerror(table[i].st);
        CHECK(s != NULL && s[0] != 0 && strcmp(s, cws_strerror(12345)) != 0);
    }
    CHECK(cws_strerror(12345) != NULL && cws_status_close_code(12345) == 0);
}

/* ---- writers ----------------------------------------------------------------------------------- */

static void test_writers(void) {
    uint8_t out[CWS_MAX_CONTROL_FRAME_SIZE + 8];
    size_t w;
    uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    /* RFC 6455 §5.7 masked "Hello" header, then the 16- and 64-bit length forms */
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0, CWS_OP_TEXT, 5, key) == CWS_OK);
    CHECK(w == 6 && memcmp(out, "\x81\x85\x37\xfa\x21\x3d", 6) == 0);
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0, CWS_OP_BINARY, 256, NULL) == CWS_OK);
    CHECK(w == 4 && memcmp(out, "\x82\x7e\x01\x00", 4) == 0);
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0, CWS_OP_BINARY, 65536, NULL) == CWS_OK);
    CHECK(w == 10 && memcmp(out, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10) == 0);
    /* shortest form boundaries, and a parse round trip of each in both roles */
    static const uint64_t lens[] = {0, 125, 126, 65535, 65536, (1ull << 63) - 1};
    for (size_t i = 0; i < 6; i++)
        for (int m = 0; m < 2; m++) {
            context("header len %llu masked %d", (unsigned long long)lens[i], m);
            CHECK(cws_frame_header_write(out, sizeof out, &w, false, CWS_RSV1, CWS_OP_BINARY, lens[i], m ? key : NULL) == CWS_OK);
            size_t want = 2 + (lens[i] < 126 ? 0 : lens[i] < 65536 ? 2 : 8) + (m ? 4 : 0);
            CHECK(w == want);
            cws_frame_header h;
            size_t need = 0;
            CHECK(cws_frame_header_parse(out, w, m ? CWS_ROLE_SERVER : CWS_ROLE_CLIENT, 0x40, &h, &need) == CWS_OK);
            CHECK(h.payload_length == lens[i] && h.fin == 0 && h.rsv == CWS_RSV1 && h.opcode == CWS_OP_BINARY);
            CHECK(h.masked == m && h.header_length == w && need == w);
            if (m) CHECK(memcmp(h.mask_key, key, 4) == 0);
            for (size_t cut = 0; cut < w; cut++) { /* every prefix wants more */
                int st = cws_frame_header_parse(out, cut, m ? CWS_ROLE_SERVER : CWS_ROLE_CLIENT, 0x40, &h, &need);
                CHECK(st == CWS_WANT_READ && need > cut && need <= w);
            }
            CHECK(cws_frame_header_write(out, w - 1, &w, false, 0, CWS_OP_BINARY, lens[i], m ? key : NULL) == CWS_ERR_BUFFER_TOO_SMALL);
        }
    /* invalid arguments */
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0, 3, 0, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0, 0x10, 0, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0x08, CWS_OP_TEXT, 0, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_frame_header_write(out, sizeof out, &w, false, 0, CWS_OP_PING, 0, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0, CWS_OP_PING, 126, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_frame_header_write(out, sizeof out, &w, true, 0, CWS_OP_BINARY, 1ull << 63, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_frame_header_write(NULL, 0, &w, true, 0, CWS_OP_BINARY, 1, NULL) == CWS_ERR_BUFFER_TOO_SMALL);
    /* control frames */
    CHECK(cws_control_frame_write(out, sizeof out, &w, CWS_OP_PING, "Hello", 5, key) == CWS_OK);
    CHECK(w == 11 && memcmp(out, "\x89\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11) == 0);
    CHECK(cws_control_frame_write(out, sizeof out, &w, CWS_OP_PONG, NULL, 0, NULL) == CWS_OK && w == 2);
    CHECK(cws_control_frame_write(out, sizeof out, &w, CWS_OP_CLOSE, NULL, 0, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_control_frame_write(out, sizeof out, &w, CWS_OP_PING, out, 126, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_control_frame_write(out, sizeof out, &w, CWS_OP_PING, NULL, 3, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_control_frame_write(out, 6, &w, CWS_OP_PING, "Hello", 5, NULL) == CWS_ERR_BUFFER_TOO_SMALL);
    CHECK(cws_control_frame_write(out, 1, &w, CWS_OP_PING, "Hello", 5, NULL) == CWS_ERR_BUFFER_TOO_SMALL);
    /* close frames */
    CHECK(cws_close_frame_write(out, sizeof out, &w, 1000, "bye", 3, NULL) == CWS_OK);
    CHECK(w == 7 && memcmp(out, "\x88\x05\x03\xe8" "bye", 7) == 0);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 0, NULL, 0, key) == CWS_OK && w == 6);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 0, "x", 1, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 1005, NULL, 0, NULL) == CWS_ERR_INVALID_CLOSE_CODE);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 1006, NULL, 0, NULL) == CWS_ERR_INVALID_CLOSE_CODE);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 1015, NULL, 0, NULL) == CWS_ERR_INVALID_CLOSE_CODE);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 1000, "\xc3\x28", 2, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 1000, out, 124, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_close_frame_write(out, sizeof out, &w, 1000, NULL, 2, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_close_frame_write(out, 3, &w, 1000, "bye", 3, NULL) == CWS_ERR_BUFFER_TOO_SMALL);
    CHECK(cws_close_frame_write(out, 1, &w, 1000, "bye", 3, NULL) == CWS_ERR_BUFFER_TOO_SMALL);
    /* fragmenter: 10 bytes in frames of 4 -> 4, 4, 2; RSV1 on the first frame only */
    cws_fragmenter f;
    uint64_t pl;
    CHECK(cws_fragmenter_init(&f, CWS_OP_TEXT, CWS_RSV1, 10, 4) == CWS_OK);
    CHECK(cws_fragmenter_next(&f, out, sizeof out, &w, &pl, NULL) == CWS_OK && pl == 4 && out[0] == 0x41);
    CHECK(cws_fragmenter_next(&f, out, sizeof out, &w, &pl, NULL) == CWS_OK && pl == 4 && out[0] == 0x00);
    CHECK(cws_fragmenter_next(&f, out, sizeof out, &w, &pl, NULL) == CWS_OK && pl == 2 && out[0] == 0x80);
    CHECK(cws_fragmenter_next(&f, out, sizeof out, &w, &pl, NULL) == CWS_DONE);
    CHECK(cws_fragmenter_init(&f, CWS_OP_BINARY, 0, 0, 0) == CWS_OK); /* empty: one empty frame */
    CHECK(cws_fragmenter_next(&f, out, sizeof out, &w, &pl, NULL) == CWS_OK && pl == 0 && out[0] == 0x82);
    CHECK(cws_fragmenter_next(&f, out, sizeof out, &w, &pl, NULL) == CWS_DONE);
    CHECK(cws_fragmenter_init(&f, CWS_OP_PING, 0, 1, 0) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_fragmenter_init(NULL, CWS_OP_TEXT, 0, 1, 0) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_fragmenter_init(&f, CWS_OP_TEXT, 0x01, 1, 0) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_fragmenter_init(&f, CWS_OP_TEXT, 0, 1ull << 63, 0) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_fragmenter_next(NULL, out, sizeof out, &w, &pl, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_fragmenter_init(&f, CWS_OP_TEXT, 0, 1, 0) == CWS_OK);
    CHECK(cws_fragmenter_next(&f, out, 1, &w, &pl, NULL) == CWS_ERR_BUFFER_TOO_SMALL);
    CHECK(cws_fragmenter_next(&f, out, sizeof out, &w, &pl, NULL) == CWS_OK && pl == 1); /* retry works */
}

void frame_tests(void) {
    run_test("close codes and status table", test_close_codes);
    run_test("frame, control and close writers, fragmenter", test_writers);
}
