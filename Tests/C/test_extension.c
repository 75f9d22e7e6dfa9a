#include <string.h>
/*
 * test_extension.c — the Sec-WebSocket-Extensions parser and permessage-deflate negotiation
 * (RFC 7692 §5, §7.1; header syntax RFC 9110 §5.6, RFC 6455 §9.1) in both roles: a table of
 * offers with the answer each must get, written from the RFC text, plus every argument check.
 */
#include "test_harness.h"

/* Server configurations used by the table. */
enum { S_DEFAULT, S_PEER10, S_SHARED, S_NCT, S_WIN12, S_COUNT };

static cws_pmd_config server_cfg(int which) {
    cws_pmd_config c;
    cws_pmd_config_init(&c);
    switch (which) {
    case S_PEER10: c.peer_window_bits = 10; break;
    case S_SHARED: c.memory = CWS_PMD_MEMORY_SHARED; break;
    case S_NCT: c.no_context_takeover = true; c.peer_no_context_takeover = true; break;
    case S_WIN12: c.window_bits = 12; break;
    default: break;
    }
    return c;
}

typedef struct offer_case {
    int cfg;
    const char *offers;
    int status;           /* CWS_OK or CWS_PMD_DECLINED */
    const char *response; /* on CWS_OK */
    uint8_t sbits, cbits; /* agreed window bits */
    bool snct, cnct;
} offer_case;

#define PMD "permessage-deflate"

static const offer_case offer_cases[] = {
    {S_DEFAULT, PMD, CWS_OK, PMD, 15, 15, false, false},
    /* client_max_window_bits without a value: the client may use any window; we ask nothing */
    {S_DEFAULT, PMD "; client_max_window_bits", CWS_OK, PMD, 15, 15, false, false},
    {S_DEFAULT, PMD "; client_max_window_bits=10", CWS_OK, PMD "; client_max_window_bits=10", 15, 10, false, false},
    {S_DEFAULT, PMD "; client_max_window_bits=8", CWS_OK, PMD "; client_max_window_bits=8", 15, 8, false, false},
    {S_DEFAULT, PMD "; server_max_window_bits=12", CWS_OK, PMD "; server_max_window_bits=12", 12, 15, false, false},
    {S_DEFAULT, PMD "; server_max_window_bits=\"10\"", CWS_OK, PMD "; server_max_window_bits=10", 10, 15, false, false},
    {S_DEFAULT, PMD "; client_max_window_bits=\"1\\0\"", CWS_OK, PMD "; client_max_window_bits=10", 15, 10, false, false},
    {S_DEFAULT, PMD "; server_no_context_takeover; client_no_context_takeover", CWS_OK,
     PMD "; server_no_context_takeover; client_no_context_takeover", 15, 15, true, true},
    {S_DEFAULT, "PerMessage-Deflate ;\tClient_Max_Window_Bits = 9 ", CWS_OK, PMD "; client_max_window_bits=9", 15, 9, false, false},
    /* zlib cannot deflate with a 256-byte window: declined, the next offer taken */
    {S_DEFAULT, PMD "; server_max_window_bits=8", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; server_max_window_bits=8, " PMD, CWS_OK, PMD, 15, 15, false, false},
    /* bad parameters decline the element (RFC 7692 §5.1, §7.1) */
    {S_DEFAULT, PMD "; server_no_context_takeover; server_no_context_takeover", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; client_no_context_takeover; client_no_context_takeover", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; server_no_context_takeover=1", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; client_no_context_takeover=1", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; server_max_window_bits", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; server_max_window_bits=10; server_max_window_bits=10", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; client_max_window_bits=10; client_max_window_bits", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; server_max_window_bits=16", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; server_max_window_bits=08", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; server_max_window_bits=7", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; server_max_window_bits=1a", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; client_max_window_bits=\"123456789\"", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; mystery", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    /* syntax errors skip the element */
    {S_DEFAULT, PMD "; client_max_window_bits=\"\"", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; client_max_window_bits=\"1\x01\"", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; client_max_window_bits=\"1\\\x01\"", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; client_max_window_bits=\"10", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; client_max_window_bits=\"1\\", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; client_max_window_bits=\"a b\"", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; client_max_window_bits=, " PMD, CWS_OK, PMD, 15, 15, false, false},
    {S_DEFAULT, PMD ";", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, PMD "; =1, " PMD "; client_max_window_bits=11", CWS_OK, PMD "; client_max_window_bits=11", 15, 11, false, false},
    {S_DEFAULT, PMD " x, " PMD, CWS_OK, PMD, 15, 15, false, false},
    {S_DEFAULT, "\"" PMD "\", " PMD, CWS_OK, PMD, 15, 15, false, false},
    {S_DEFAULT, PMD "; a=\"x\\\"y, z\", " PMD, CWS_OK, PMD, 15, 15, false, false},
    {S_DEFAULT, PMD "; a=\"x\\", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    /* other extensions, quoted commas in them, empty elements */
    {S_DEFAULT, "x-webkit-deflate-frame; no_context_takeover, foo; bar=\"x,y\", " PMD, CWS_OK, PMD, 15, 15, false, false},
    {S_DEFAULT, " , ,\t" PMD " ,, ", CWS_OK, PMD, 15, 15, false, false},
    {S_DEFAULT, "", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_DEFAULT, "foo, bar", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    /* our wishes */
    {S_PEER10, PMD "; client_max_window_bits", CWS_OK, PMD "; client_max_window_bits=10", 15, 10, false, false},
    {S_PEER10, PMD "; client_max_window_bits=9", CWS_OK, PMD "; client_max_window_bits=9", 15, 9, false, false},
    {S_PEER10, PMD, CWS_OK, PMD, 15, 15, false, false}, /* not offered: we cannot ask */
    {S_SHARED, PMD, CWS_OK, PMD "; server_no_context_takeover", 15, 15, true, false},
    {S_SHARED, PMD "; server_max_window_bits=12", CWS_PMD_DECLINED, NULL, 0, 0, false, false},
    {S_SHARED, PMD "; server_max_window_bits=15", CWS_OK, PMD "; server_no_context_takeover; server_max_window_bits=15", 15, 15, true, false},
    {S_NCT, PMD, CWS_OK, PMD "; server_no_context_takeover; client_no_context_takeover", 15, 15, true, true},
    {S_WIN12, PMD, CWS_OK, PMD "; server_max_window_bits=12", 12, 15, false, false},
    {S_WIN12, PMD "; server_max_window_bits=14", CWS_OK, PMD "; server_max_window_bits=12", 12, 15, false, false},
    {S_WIN12, PMD "; server_max_window_bits=10", CWS_OK, PMD "; server_max_window_bits=10", 10, 15, false, false},
};

static void test_negotiate_table(void) {
    for (size_t i = 0; i < sizeof offer_cases / sizeof offer_cases[0]; i++) {
        const offer_case *t = &offer_cases[i];
        context("case %zu: %s", i, t->offers);
        const cws_pmd_config cfg = server_cfg(t->cfg);
        cws_pmd_params agreed = {0, 0, false, false};
        char resp[CWS_PMD_HEADER_MAX];
        size_t n = 0;
        const size_t len = strlen(t->offers);
        /* an exactly sized copy: no read past the header value */
        char *offers = (char *)xmalloc(len);
        memcpy(offers, t->offers, len);
        int st = cws_pmd_negotiate(&cfg, len ? offers : NULL, len, &agreed, resp, sizeof resp, &n);
        CHECK(st == t->status);
        if (st == CWS_OK && t->status == CWS_OK) {
            CHECK(n == strlen(t->response) && memcmp(resp, t->response, n) == 0);
            CHECK(agreed.server_max_window_bits == t->sbits && agreed.client_max_window_bits == t->cbits);
            CHECK(agreed.server_no_context_takeover == t->snct && agreed.client_no_context_takeover == t->cnct);
            /* one byte short: refused, nothing written */
            cws_pmd_params again = {1, 2, false, false};
            size_t m = 777;
            CHECK(cws_pmd_negotiate(&cfg, offers, len, &again, resp, n - 1, &m) == CWS_ERR_BUFFER_TOO_SMALL);
            CHECK(m == 777 && again.server_max_window_bits == 1);
            CHECK(cws_pmd_negotiate(&cfg, offers, len, &again, NULL, sizeof resp, &m) == CWS_ERR_BUFFER_TOO_SMALL);
        }
        free(offers);
    }
}

/* Client role: the offer we write, and the answers we accept (RFC 7692 §7.1, client side). */
static void test_client_role(void) {
    cws_pmd_config cfg;
    cws_pmd_config_init(&cfg);
    char out[CWS_PMD_HEADER_MAX];
    size_t n = 0;
    CHECK(cws_pmd_offer_write(&cfg, out, sizeof out, &n) == CWS_OK);
    CHECK(n == strlen(PMD "; client_max_window_bits") && memcmp(out, PMD "; client_max_window_bits", n) == 0);
    cfg.window_bits = 10;
    cfg.peer_window_bits = 12;
    cfg.no_context_takeover = true;
    cfg.peer_no_context_takeover = true;
    const char *full = PMD "; client_no_context_takeover; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=10";
    CHECK(cws_pmd_offer_write(&cfg, out, sizeof out, &n) == CWS_OK);
    CHECK(n == strlen(full) && memcmp(out, full, n) == 0);
    CHECK(cws_pmd_offer_write(&cfg, out, strlen(full) - 1, &n) == CWS_ERR_BUFFER_TOO_SMALL);
    cws_pmd_config_init(&cfg);
    cfg.memory = CWS_PMD_MEMORY_SHARED;
    CHECK(cws_pmd_offer_write(&cfg, out, sizeof out, &n) == CWS_OK);
    CHECK(n == strlen(PMD "; client_no_context_takeover; client_max_window_bits") &&
          memcmp(out, PMD "; client_no_context_takeover; client_max_window_bits", n) == 0);

    enum { C_DEFAULT, C_PNCT, C_PEER10, C_WIN10, C_SHARED };
    const struct {
        int cfg;
        const char *resp;
        int status;
        uint8_t sbits, cbits;
        bool snct, cnct;
    } cases[] = {
        {C_DEFAULT, "", CWS_PMD_DECLINED, 0, 0, false, false},
        {C_DEFAULT, PMD, CWS_OK, 15, 15, false, false},
        {C_DEFAULT, PMD "; server_max_window_bits=10; server_no_context_takeover", CWS_OK, 10, 15, true, false},
        {C_DEFAULT, PMD "; client_max_window_bits=10; client_no_context_takeover", CWS_OK, 15, 10, false, true},
        {C_DEFAULT, PMD ", " PMD, CWS_ERR_PMD_RESPONSE, 0, 0, false, false},
        {C_DEFAULT, "x-foo", CWS_ERR_PMD_RESPONSE, 0, 0, false, false},
        {C_DEFAULT, PMD "; mystery", CWS_ERR_PMD_RESPONSE, 0, 0, false, false},
        {C_DEFAULT, PMD "; client_max_window_bits", CWS_ERR_PMD_RESPONSE, 0, 0, false, false},
        {C_DEFAULT, PMD "; client_max_window_bits=8", CWS_ERR_PMD_RESPONSE, 0, 0, false, false},
        {C_PNCT, PMD, CWS_ERR_PMD_RESPONSE, 0, 0, false, false},
        {C_PNCT, PMD "; server_no_context_takeover", CWS_OK, 15, 15, true, false},
        {C_PEER10, PMD, CWS_ERR_PMD_RESPONSE, 0, 0, false, false},
        {C_PEER10, PMD "; server_max_window_bits=11", CWS_ERR_PMD_RESPONSE, 0, 0, false, false},
        {C_PEER10, PMD "; server_max_window_bits=9", CWS_OK, 9, 15, false, false},
        {C_WIN10, PMD "; client_max_window_bits=12", CWS_ERR_PMD_RESPONSE, 0, 0, false, false},
        {C_WIN10, PMD, CWS_OK, 15, 10, false, false},
        {C_SHARED, PMD, CWS_OK, 15, 15, false, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        context("response %zu: %s", i, cases[i].resp);
        cws_pmd_config_init(&cfg);
        if (cases[i].cfg == C_PNCT) cfg.peer_no_context_takeover = true;
        if (cases[i].cfg == C_PEER10) cfg.peer_window_bits = 10;
        if (cases[i].cfg == C_WIN10) cfg.window_bits = 10;
        if (cases[i].cfg == C_SHARED) cfg.memory = CWS_PMD_MEMORY_SHARED;
        cws_pmd_params p = {0, 0, false, false};
        const size_t len = strlen(cases[i].resp);
        char *r = (char *)xmalloc(len);
        memcpy(r, cases[i].resp, len);
        int st = cws_pmd_response_accept(&cfg, len ? r : NULL, len, &p);
        CHECK(st == cases[i].status);
        if (st == CWS_OK && cases[i].status == CWS_OK) {
            CHECK(p.server_max_window_bits == cases[i].sbits && p.client_max_window_bits == cases[i].cbits);
            CHECK(p.server_no_context_takeover == cases[i].snct && p.client_no_context_takeover == cases[i].cnct);
        }
        free(r);
    }
}

/* Every argument check: NULL pointers one at a time, and each configuration field out of range,
 * in every function that takes a configuration. */
static void test_pmd_arguments(void) {
    cws_pmd_config_init(NULL); /* allowed, does nothing */
    cws_pmd_config ok;
    cws_pmd_config_init(&ok);
    CHECK(ok.window_bits == 15 && ok.peer_window_bits == 15 && !ok.no_context_takeover &&
          !ok.peer_no_context_takeover && ok.level == 1 && ok.mem_level == 0 &&
          ok.memory == CWS_PMD_MEMORY_DEDICATED && ok.threshold == 256);
    cws_pmd_params p;
    char out[CWS_PMD_HEADER_MAX];
    size_t n;
    const char *offer = PMD;
    CHECK(cws_pmd_negotiate(NULL, offer, 18, &p, out, sizeof out, &n) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_pmd_negotiate(&ok, offer, 18, NULL, out, sizeof out, &n) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_pmd_negotiate(&ok, offer, 18, &p, out, sizeof out, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_pmd_negotiate(&ok, NULL, 18, &p, out, sizeof out, &n) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_pmd_negotiate(&ok, NULL, 0, &p, out, sizeof out, &n) == CWS_PMD_DECLINED);
    CHECK(cws_pmd_offer_write(NULL, out, sizeof out, &n) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_pmd_offer_write(&ok, out, sizeof out, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_pmd_offer_write(&ok, NULL, sizeof out, &n) == CWS_ERR_BUFFER_TOO_SMALL);
    CHECK(cws_pmd_response_accept(NULL, offer, 18, &p) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_pmd_response_accept(&ok, offer, 18, NULL) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_pmd_response_accept(&ok, NULL, 18, &p) == CWS_ERR_INVALID_ARGUMENT);
    CHECK(cws_pmd_response_accept(&ok, NULL, 0, &p) == CWS_PMD_DECLINED);

    for (int field = 0; field < 9; field++) {
        cws_pmd_config bad = ok;
        switch (field) {
        case 0: bad.window_bits = 8; break;
        case 1: bad.window_bits = 16; break;
        case 2: bad.peer_window_bits = 8; break;
        case 3: bad.peer_window_bits = 16; break;
        case 4: bad.level = 10; break;
        case 5: bad.mem_level = 10; break;
        case 6: bad.memory = (cws_pmd_memory)2; break;
        case 7: bad.window_bits = 0; break;
        default: bad.peer_window_bits = 0; break;
        }
        context("config field case %d", field);
        CHECK(cws_pmd_negotiate(&bad, offer, 18, &p, out, sizeof out, &n) == CWS_ERR_INVALID_ARGUMENT);
        CHECK(cws_pmd_offer_write(&bad, out, sizeof out, &n) == CWS_ERR_INVALID_ARGUMENT);
        CHECK(cws_pmd_response_accept(&bad, offer, 18, &p) == CWS_ERR_INVALID_ARGUMENT);
        cws_deflater *d = NULL;
        CHECK(cws_deflater_new(&bad, NULL, CWS_ROLE_SERVER, NULL, &d) == CWS_ERR_INVALID_ARGUMENT && d == NULL);
    }

    /* Agreed parameters out of range: the engine and the deflater refuse them. */
    for (int field = 0; field < 4; field++) {
        cws_pmd_params a = {15, 15, false, false};
        switch (field) {
        case 0: a.server_max_window_bits = 7; break;
        case 1: a.server_max_window_bits = 16; break;
        case 2: a.client_max_window_bits = 7; break;
        default: a.client_max_window_bits = 16; break;
        }
        context("agreed field case %d", field);
        cws_config cfg;
        cws_config_init(&cfg, CWS_ROLE_SERVER);
        cfg.pmd = &a;
        cws_conn *c = NULL;
        CHECK(cws_conn_new(&cfg, &c) == CWS_ERR_INVALID_ARGUMENT && c == NULL);
        cws_deflater *d = NULL;
        CHECK(cws_deflater_new(&ok, &a, CWS_ROLE_SERVER, NULL, &d) == CWS_ERR_INVALID_ARGUMENT && d == NULL);
    }
}

/* RFC 9110 §5.6.2 tokens: every tchar in, every other byte out, empty out. */
static void test_http_token(void) {
    CHECK(cws_http_is_token("chat.v2", 7));
    CHECK(cws_http_is_token("!#$%&'*+-.^_`|~09azAZ", 21));
    CHECK(!cws_http_is_token("", 0));
    CHECK(!cws_http_is_token(NULL, 0));
    CHECK(!cws_http_is_token("chat v1", 7));
    int tchars = 0;
    for (int c = 0; c < 256; c++) {
        unsigned char b = (unsigned char)c;
        bool expected = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
        CHECK(cws_http_is_token(&b, 1) == expected);
        tchars += expected;
    }
    CHECK(tchars == 77);
}

void extension_tests(void) {
    run_test("permessage-deflate negotiation: offers and answers (RFC 7692 §7.1)", test_negotiate_table);
    run_test("permessage-deflate client role: offer and response checks", test_client_role);
    run_test("permessage-deflate arguments", test_pmd_arguments);
    run_test("HTTP tokens (RFC 9110 §5.6.2)", test_http_token);
}
