/*
 * fuzz_pmd_negotiate — the Sec-WebSocket-Extensions parser and permessage-deflate negotiation
 * (RFC 7692 §5, §7.1; grammar of RFC 6455 §9.1), both roles.
 *
 * Input: byte 0-1 choose the server's and the client's cws_pmd_config (window bits 9-15, peer
 * window bits 9-15, the two no_context_takeover flags, dedicated or shared); byte 2 the response
 * buffer size; the rest is a header value, used as the client's offers and as a server's answer.
 *
 * Invariants:
 *   - cws_pmd_negotiate returns CWS_OK, CWS_PMD_DECLINED or CWS_ERR_BUFFER_TOO_SMALL (only when
 *     the buffer is smaller than the answer, which the full-size call gives); nothing is written
 *     unless CWS_OK; the answer is at most CWS_PMD_HEADER_MAX bytes;
 *   - what is agreed respects the configuration: our window <= window_bits and >= 9, the
 *     client's <= peer_window_bits or 15 (not offered), no_context_takeover set when configured
 *     or shared;
 *   - the answer, given to a client that offered client_max_window_bits, is accepted with the
 *     same parameters (unless it names 8 for the client's window, which our client refuses);
 *   - negotiating on the answer itself accepts it again with the same parameters;
 *   - cws_pmd_response_accept on the raw input returns OK, DECLINED or CWS_ERR_PMD_RESPONSE, and
 *     on OK its parameters are in range with a client window of at least 9;
 *   - the first acceptable offer decides: appending ", permessage-deflate" to an accepted header
 *     never changes the answer;
 *   - no read outside the input (exact heap copies).
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cws_pmd_config make_cfg(uint8_t b) {
    cws_pmd_config c;
    cws_pmd_config_init(&c);
    c.window_bits = (uint8_t)(9 + (b & 7) % 7);
    c.peer_window_bits = (uint8_t)(9 + ((b >> 3) & 7) % 7);
    c.no_context_takeover = (b >> 6) & 1;
    c.peer_no_context_takeover = (b >> 7) & 1;
    c.memory = (b % 5 == 0) ? CWS_PMD_MEMORY_SHARED : CWS_PMD_MEMORY_DEDICATED;
    return c;
}

static bool same(const cws_pmd_params *a, const cws_pmd_params *b) {
    return a->server_max_window_bits == b->server_max_window_bits &&
           a->client_max_window_bits == b->client_max_window_bits &&
           a->server_no_context_takeover == b->server_no_context_takeover &&
           a->client_no_context_takeover == b->client_no_context_takeover;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    const cws_pmd_config server = make_cfg(fuzz_u8(&in));
    const cws_pmd_config client = make_cfg(fuzz_u8(&in));
    const size_t small = fuzz_u8(&in) % (CWS_PMD_HEADER_MAX + 1);
    uint8_t *hdr = fuzz_dup(in.p, in.n);
    const size_t hlen = in.n;

    /* Missing arguments are refused before anything is read. */
    {
        cws_pmd_params p;
        size_t w;
        uint8_t b[CWS_PMD_HEADER_MAX];
        FUZZ_ASSERT(cws_pmd_negotiate(NULL, hdr, hlen, &p, b, sizeof b, &w) == CWS_ERR_INVALID_ARGUMENT);
        FUZZ_ASSERT(cws_pmd_offer_write(NULL, b, sizeof b, &w) == CWS_ERR_INVALID_ARGUMENT);
        FUZZ_ASSERT(cws_pmd_response_accept(NULL, hdr, hlen, &p) == CWS_ERR_INVALID_ARGUMENT);
    }

    /* Server role. */
    const cws_pmd_params junk = {99, 99, true, true}; /* what "nothing written" leaves */
    cws_pmd_params agreed = junk;
    uint8_t resp[CWS_PMD_HEADER_MAX];
    size_t rn = 999;
    int st = cws_pmd_negotiate(&server, hdr, hlen, &agreed, resp, sizeof resp, &rn);
    FUZZ_ASSERT(st == CWS_OK || st == CWS_PMD_DECLINED);
    if (st != CWS_OK) {
        FUZZ_ASSERT(rn == 999 && same(&agreed, &junk));
    } else {
        const bool shared = server.memory == CWS_PMD_MEMORY_SHARED;
        FUZZ_ASSERT(rn >= 18 && rn <= CWS_PMD_HEADER_MAX);
        FUZZ_ASSERT(agreed.server_max_window_bits >= 9 &&
                    agreed.server_max_window_bits <= server.window_bits);
        FUZZ_ASSERT(agreed.client_max_window_bits >= 8 && agreed.client_max_window_bits <= 15);
        FUZZ_ASSERT(agreed.client_max_window_bits <= server.peer_window_bits ||
                    agreed.client_max_window_bits == 15);
        if (server.no_context_takeover || shared) FUZZ_ASSERT(agreed.server_no_context_takeover);
        if (server.peer_no_context_takeover) FUZZ_ASSERT(agreed.client_no_context_takeover);
        if (shared) FUZZ_ASSERT(agreed.server_max_window_bits == server.window_bits);

        /* A smaller buffer: refused exactly when too small, and then nothing is written. */
        uint8_t *sb = (uint8_t *)malloc(small ? small : 1);
        size_t sn = 999;
        cws_pmd_params a2 = junk;
        int st2 = cws_pmd_negotiate(&server, hdr, hlen, &a2, sb, small, &sn);
        if (small < rn) {
            FUZZ_ASSERT(st2 == CWS_ERR_BUFFER_TOO_SMALL && sn == 999 && same(&a2, &junk));
        } else {
            FUZZ_ASSERT(st2 == CWS_OK && sn == rn && memcmp(sb, resp, rn) == 0 && same(&a2, &agreed));
        }
        free(sb);

        /* A client that offered a bare client_max_window_bits accepts the answer as agreed. */
        cws_pmd_config any;
        cws_pmd_config_init(&any);
        cws_pmd_params c;
        uint8_t *r = fuzz_dup(resp, rn);
        int sc = cws_pmd_response_accept(&any, r, rn, &c);
        if (agreed.client_max_window_bits == 8) {
            FUZZ_ASSERT(sc == CWS_ERR_PMD_RESPONSE);
        } else {
            FUZZ_ASSERT(sc == CWS_OK && same(&c, &agreed));
        }
        /* The answer read as an offer by the same server is accepted again with the same
         * parameters (everything stated is within what it allows). */
        cws_pmd_params again;
        uint8_t resp2[CWS_PMD_HEADER_MAX];
        size_t rn2 = 0;
        int sa = cws_pmd_negotiate(&server, r, rn, &again, resp2, sizeof resp2, &rn2);
        FUZZ_ASSERT(sa == CWS_OK);
        FUZZ_ASSERT(again.server_max_window_bits == agreed.server_max_window_bits &&
                    again.server_no_context_takeover == agreed.server_no_context_takeover &&
                    again.client_no_context_takeover == agreed.client_no_context_takeover);
        free(r);

        /* Appending another offer never changes the answer to the first acceptable one. */
        uint8_t *more = (uint8_t *)malloc(hlen + 20);
        memcpy(more, hdr, hlen);
        memcpy(more + hlen, ", permessage-deflate", 20);
        uint8_t resp3[CWS_PMD_HEADER_MAX];
        size_t rn3 = 0;
        cws_pmd_params a3;
        int s3 = cws_pmd_negotiate(&server, more, hlen + 20, &a3, resp3, sizeof resp3, &rn3);
        FUZZ_ASSERT(s3 == CWS_OK && rn3 == rn && memcmp(resp3, resp, rn) == 0 && same(&a3, &agreed));
        free(more);
    }

    /* Client role: the raw input as the server's answer to `client`'s offer. */
    cws_pmd_params ca = junk;
    int sc = cws_pmd_response_accept(&client, hdr, hlen, &ca);
    FUZZ_ASSERT(sc == CWS_OK || sc == CWS_PMD_DECLINED || sc == CWS_ERR_PMD_RESPONSE);
    if (sc == CWS_OK) {
        FUZZ_ASSERT(ca.client_max_window_bits >= 9 && ca.client_max_window_bits <= client.window_bits);
        FUZZ_ASSERT(ca.server_max_window_bits >= 8 && ca.server_max_window_bits <= 15);
        if (client.peer_window_bits < 15) FUZZ_ASSERT(ca.server_max_window_bits <= client.peer_window_bits);
        if (client.peer_no_context_takeover) FUZZ_ASSERT(ca.server_no_context_takeover);
        if (client.no_context_takeover || client.memory == CWS_PMD_MEMORY_SHARED)
            FUZZ_ASSERT(ca.client_no_context_takeover);
    } else {
        FUZZ_ASSERT(same(&ca, &junk));
    }

    /* The client's own offer is accepted by a default server. */
    uint8_t offer[CWS_PMD_HEADER_MAX];
    size_t on = 0;
    FUZZ_ASSERT(cws_pmd_offer_write(&client, offer, sizeof offer, &on) == CWS_OK);
    cws_pmd_config dflt;
    cws_pmd_config_init(&dflt);
    cws_pmd_params sa;
    uint8_t r4[CWS_PMD_HEADER_MAX];
    size_t rn4 = 0;
    FUZZ_ASSERT(cws_pmd_negotiate(&dflt, offer, on, &sa, r4, sizeof r4, &rn4) == CWS_OK);

    free(hdr);
    return 0;
}
