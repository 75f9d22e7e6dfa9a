/*
 * cws_extension.c — permessage-deflate negotiation (RFC 7692 §5, §7.1) over the
 * Sec-WebSocket-Extensions grammar (RFC 6455 §9.1):
 *
 *   Sec-WebSocket-Extensions = extension-list
 *   extension-list  = 1#extension                  ; comma list, RFC 9110 §5.6.1: empty elements
 *                                                  ; and OWS around "," are allowed
 *   extension       = extension-token *( ";" extension-param )
 *   extension-param = token [ "=" (token | quoted-string) ]
 *       ; a quoted value, once unescaped, must itself be a token (RFC 6455 §9.1)
 *
 * RFC 6455 writes its grammar with implied linear whitespace, so OWS (SP / HTAB) is accepted
 * around ";" and "=" too. Names compare case-insensitively (ASCII); our output is lowercase.
 *
 * Pure functions over caller bytes: nothing allocates, nothing is kept, and every read is
 * bounds-checked against the given length, so a fuzzer can drive them with raw bytes.
 */
#include "cws_internal.h"

/* ---- config -------------------------------------------------------------------------------------- */

void cws_pmd_config_init(cws_pmd_config *cfg) {
    if (cfg == NULL) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->window_bits = 15;
    cfg->peer_window_bits = 15;
    cfg->no_context_takeover = false;
    cfg->peer_no_context_takeover = false;
    cfg->level = 1;
    cfg->mem_level = 0;
    cfg->memory = CWS_PMD_MEMORY_DEDICATED;
    cfg->threshold = 256;
}

bool cws__pmd_config_valid(const cws_pmd_config *cfg) {
    return cfg->window_bits >= 9 && cfg->window_bits <= 15 && cfg->peer_window_bits >= 9 &&
           cfg->peer_window_bits <= 15 && cfg->level <= 9 && cfg->mem_level <= 9 &&
           (cfg->memory == CWS_PMD_MEMORY_DEDICATED || cfg->memory == CWS_PMD_MEMORY_SHARED);
}

bool cws__pmd_params_valid(const cws_pmd_params *p) {
    return p->server_max_window_bits >= 8 && p->server_max_window_bits <= 15 &&
           p->client_max_window_bits >= 8 && p->client_max_window_bits <= 15;
}

/* ---- lexer ----------------------------------------------------------------------------------------- */

/* RFC 9110 §5.6.2 tchar: "!#$%&'*+-.^_`|~", DIGIT, ALPHA. Bit i of word (c >> 5) is set for
 * character c; only 0x20-0x7F can be set. */
static const uint32_t cws__tchar_bits[8] = {
    0x00000000u,
    /* 0x20-0x3F: ! # $ % & ' * + - . 0-9 */
    0x03FF6CFAu,
    /* 0x40-0x5F: A-Z ^ _ */
    0xC7FFFFFEu,
    /* 0x60-0x7F: ` a-z | ~ */
    0x57FFFFFFu,
    0, 0, 0, 0};

CWS_INLINE bool cws__is_tchar(uint8_t c) { return (cws__tchar_bits[c >> 5] >> (c & 31)) & 1u; }
bool cws_http_is_token(const void *s, size_t len) {
    const uint8_t *p = (const uint8_t *)s;
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++)
        if (!cws__is_tchar(p[i])) return false;
    return true;
}

CWS_INLINE bool cws__is_ows(uint8_t c) { return c == ' ' || c == '\t'; }
CWS_INLINE uint8_t cws__lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c; }

typedef struct cws__cursor {
    const uint8_t *p;
    size_t n;
    size_t i;
} cws__cursor;

static void cws__skip_ows(cws__cursor *c) {
    while (c->i < c->n && cws__is_ows(c->p[c->i])) c->i++;
}

/* Reads a token; returns its length (0: none here). */
static size_t cws__token(cws__cursor *c, const uint8_t **start) {
    *start = c->p + c->i;
    size_t s = c->i;
    while (c->i < c->n && cws__is_tchar(c->p[c->i])) c->i++;
    return c->i - s;
}

static bool cws__ieq(const uint8_t *a, size_t n, const char *lit) {
    size_t m = strlen(lit);
    if (n != m) return false;
    for (size_t k = 0; k < n; k++)
        if (cws__lower(a[k]) != (uint8_t)lit[k]) return false;
    return true;
}

/* Reads a quoted-string (RFC 9110 §5.6.4) starting at the opening quote, unescaping into
 * val[0..cap); *vlen is the unescaped length, which may exceed cap (the excess is counted, not
 * stored). False on a syntax error or a missing closing quote. */
static bool cws__quoted(cws__cursor *c, uint8_t *val, size_t cap, size_t *vlen) {
    size_t n = 0;
    c->i++; /* the opening quote */
    while (c->i < c->n) {
        uint8_t ch = c->p[c->i++];
        if (ch == '"') {
            *vlen = n;
            return true;
        }
        if (ch == '\\') {
            /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
            if (c->i >= c->n) return false;
            ch = c->p[c->i++];
            if (!(ch == '\t' || ch >= 0x20) || ch == 0x7F) return false;
        } else if (!(ch == '\t' || ch >= 0x20) || ch == 0x7F) {
            /* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text (the quote and backslash
             * were handled above) */
            return false;
        }
        if (n < cap) val[n] = ch;
        n++;
    }
    return false;
}

/* Skips from the start of an element to the next top-level ',' (or the end), stepping over
 * quoted-strings, to resynchronise after a syntax error. */
static void cws__skip_element(cws__cursor *c, size_t start) {
    bool quoted = false;
    c->i = start;
    while (c->i < c->n) {
        uint8_t ch = c->p[c->i];
        if (quoted) {
            if (ch == '\\') c->i++;
            else if (ch == '"') quoted = false;
        } else if (ch == '"') {
            quoted = true;
        } else if (ch == ',') {
            return;
        }
        c->i++;
    }
    if (c->i > c->n) c->i = c->n;
}

/* ---- permessage-deflate elements ------------------------------------------------------------------ */

typedef struct cws__pmd_offer {
    int8_t smwb; /* server_max_window_bits: -1 absent, else 8-15 */
    int8_t cmwb; /* client_max_window_bits: -1 absent, 0 present without a value, else 8-15 */
    bool snct;   /* server_no_context_takeover */
    bool cnct;   /* client_no_context_takeover */
} cws__pmd_offer;

enum {
    CWS__EL_OTHER = 0,   /* another extension (well-formed) */
    CWS__EL_PMD = 1,     /* a valid permessage-deflate element, in *o */
    CWS__EL_BAD_PMD = 2, /* permessage-deflate with a bad parameter (declined) */
    CWS__EL_SYNTAX = 3   /* malformed element (skipped) */
};

/* RFC 7692 §7.1.2: window bits are "a decimal integer value without leading zeroes between 8 to
 * 15, inclusive". -1 when v[0..n) is not one. */
static int cws__window_value(const uint8_t *v, size_t n) {
    if (n == 1 && v[0] >= '8' && v[0] <= '9') return v[0] - '0';
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + (v[1] - '0');
    return -1;
}

/* Parses one element starting at a non-OWS, non-',' byte, up to (not including) the next
 * top-level ',' or the end. */
static int cws__element(cws__cursor *c, cws__pmd_offer *o) {
    const size_t start = c->i;
    const uint8_t *name;
    size_t nlen = cws__token(c, &name);
    if (nlen == 0) goto syntax;
    const bool pmd = cws__ieq(name, nlen, "permessage-deflate");
    bool bad = false;
    o->smwb = -1;
    o->cmwb = -1;
    o->snct = false;
    o->cnct = false;
    for (;;) {
        cws__skip_ows(c);
        if (c->i == c->n || c->p[c->i] == ',') break;
        if (c->p[c->i] != ';') goto syntax;
        c->i++;
        cws__skip_ows(c);
        const uint8_t *pn;
        size_t pnlen = cws__token(c, &pn);
        if (pnlen == 0) goto syntax;
        cws__skip_ows(c);
        bool has_value = false;
        uint8_t vbuf[8];
        const uint8_t *v = NULL;
        size_t vlen = 0;
        if (c->i < c->n && c->p[c->i] == '=') {
            c->i++;
            cws__skip_ows(c);
            if (c->i < c->n && c->p[c->i] == '"') {
                if (!cws__quoted(c, vbuf, sizeof vbuf, &vlen)) goto syntax;
                /* RFC 6455 §9.1: the unescaped value must be a token. */
                if (vlen == 0 || vlen > sizeof vbuf) {
                    bad = true; /* not a window value either way; still a syntactic element */
                    if (vlen == 0) goto syntax;
                } else {
                    for (size_t k = 0; k < vlen; k++)
                        if (!cws__is_tchar(vbuf[k])) goto syntax;
                }
                v = vbuf;
            } else {
                vlen = cws__token(c, &v);
                if (vlen == 0) goto syntax;
            }
            has_value = true;
        }
        if (!pmd || bad) continue;
        /* RFC 7692 §7.1: the four parameters, each at most once; anything else declines. */
        if (cws__ieq(pn, pnlen, "server_no_context_takeover")) {
            if (o->snct || has_value) bad = true;
            o->snct = true;
        } else if (cws__ieq(pn, pnlen, "client_no_context_takeover")) {
            if (o->cnct || has_value) bad = true;
            o->cnct = true;
        } else if (cws__ieq(pn, pnlen, "server_max_window_bits")) {
            int w = has_value ? cws__window_value(v, vlen) : -1; /* a value is required */
            if (o->smwb >= 0 || w < 0) bad = true;
            o->smwb = (int8_t)(w < 0 ? 15 : w);
        } else if (cws__ieq(pn, pnlen, "client_max_window_bits")) {
            int w = has_value ? cws__window_value(v, vlen) : 0; /* the value is optional */
            if (o->cmwb >= 0 || w < 0) bad = true;
            o->cmwb = (int8_t)(w < 0 ? 15 : w);
        } else {
            bad = true;
        }
    }
    if (!pmd) return CWS__EL_OTHER;
    return bad ? CWS__EL_BAD_PMD : CWS__EL_PMD;
syntax:
    cws__skip_element(c, start);
    return CWS__EL_SYNTAX;
}

/* Steps to the next element of a list: skips OWS and empty elements. False at the end. */
static bool cws__next_element(cws__cursor *c) {
    for (;;) {
        cws__skip_ows(c);
        if (c->i == c->n) return false;
        if (c->p[c->i] != ',') return true;
        c->i++;
    }
}

/* ---- response writing ------------------------------------------------------------------------------ */

typedef struct cws__hbuf {
    char b[CWS_PMD_HEADER_MAX];
    size_t n;
} cws__hbuf;

static void cws__put(cws__hbuf *h, const char *s) {
    size_t m = strlen(s);
    memcpy(h->b + h->n, s, m); /* callers stay within CWS_PMD_HEADER_MAX (see its comment) */
    h->n += m;
}

static void cws__put_bits(cws__hbuf *h, const char *name, int bits) {
    cws__put(h, name);
    if (bits > 0) {
        char num[4] = {'=', 0, 0, 0};
        if (bits >= 10) {
            num[1] = '1';
            num[2] = (char)('0' + bits - 10);
        } else {
            num[1] = (char)('0' + bits);
        }
        cws__put(h, num);
    }
}

static int cws__emit(const cws__hbuf *h, void *out, size_t cap, size_t *written) {
    if (out == NULL || cap < h->n) return CWS_ERR_BUFFER_TOO_SMALL;
    memcpy(out, h->b, h->n);
    *written = h->n;
    return CWS_OK;
}

/* ---- server role ------------------------------------------------------------------------------------ */

/* Decides on one valid offer (RFC 7692 §7.1.1, §7.1.2). False when it cannot be honoured. */
static bool cws__decide(const cws_pmd_config *cfg, const cws__pmd_offer *o, cws_pmd_params *p,
                        cws__hbuf *h) {
    const bool shared = cfg->memory == CWS_PMD_MEMORY_SHARED;
    int sbits = cfg->window_bits;
    if (o->smwb >= 0) {
        /* §7.1.2.1: accept with the same or a smaller value. Our zlib deflater cannot go below
         * 9, and a shared deflater has exactly one window size. */
        if (o->smwb < 9) return false;
        if (shared && o->smwb < cfg->window_bits) return false;
        if (o->smwb < sbits) sbits = o->smwb;
    }
    const bool state_sbits = sbits < 15 || o->smwb >= 0;
    int cbits = 15;
    bool state_cbits = false;
    if (o->cmwb >= 0) {
        /* §7.1.2.2: only when offered; a value in the offer caps ours. Without the parameter
         * the client may use 15 and we must not state it. */
        int limit = o->cmwb > 0 ? o->cmwb : 15;
        cbits = cfg->peer_window_bits < limit ? cfg->peer_window_bits : limit;
        state_cbits = cbits < 15 || o->cmwb > 0;
    }
    p->server_no_context_takeover = o->snct || cfg->no_context_takeover || shared;
    p->client_no_context_takeover = o->cnct || cfg->peer_no_context_takeover;
    p->server_max_window_bits = (uint8_t)sbits;
    p->client_max_window_bits = (uint8_t)cbits;
    h->n = 0;
    cws__put(h, "permessage-deflate");
    if (p->server_no_context_takeover) cws__put(h, "; server_no_context_takeover");
    if (p->client_no_context_takeover) cws__put(h, "; client_no_context_takeover");
    if (state_sbits) cws__put_bits(h, "; server_max_window_bits", sbits);
    if (state_cbits) cws__put_bits(h, "; client_max_window_bits", cbits);
    return true;
}

int cws_pmd_negotiate(const cws_pmd_config *cfg, const void *offers, size_t len,
                      cws_pmd_params *agreed, void *response, size_t cap, size_t *written) {
    if (cfg == NULL || agreed == NULL || written == NULL || (offers == NULL && len != 0) ||
        !cws__pmd_config_valid(cfg))
        return CWS_ERR_INVALID_ARGUMENT;
    cws__cursor c = {(const uint8_t *)offers, len, 0};
    while (cws__next_element(&c)) {
        cws__pmd_offer o;
        if (cws__element(&c, &o) != CWS__EL_PMD) continue; /* others skipped, bad ones declined */
        cws_pmd_params p;
        cws__hbuf h;
        if (!cws__decide(cfg, &o, &p, &h)) continue;
        int st = cws__emit(&h, response, cap, written);
        if (st == CWS_OK) *agreed = p;
        return st;
    }
    return CWS_PMD_DECLINED;
}

/* ---- client role ------------------------------------------------------------------------------------ */

int cws_pmd_offer_write(const cws_pmd_config *cfg, void *out, size_t cap, size_t *written) {
    if (cfg == NULL || written == NULL || !cws__pmd_config_valid(cfg))
        return CWS_ERR_INVALID_ARGUMENT;
    cws__hbuf h = {{0}, 0};
    cws__put(&h, "permessage-deflate");
    if (cfg->no_context_takeover || cfg->memory == CWS_PMD_MEMORY_SHARED)
        cws__put(&h, "; client_no_context_takeover");
    if (cfg->peer_no_context_takeover) cws__put(&h, "; server_no_context_takeover");
    if (cfg->peer_window_bits < 15)
        cws__put_bits(&h, "; server_max_window_bits", cfg->peer_window_bits);
    /* Always offered, so the server may size its inflater; a value when ours is smaller. */
    cws__put_bits(&h, "; client_max_window_bits", cfg->window_bits < 15 ? cfg->window_bits : 0);
    return cws__emit(&h, out, cap, written);
}

int cws_pmd_response_accept(const cws_pmd_config *cfg, const void *response, size_t len,
                            cws_pmd_params *agreed) {
    if (cfg == NULL || agreed == NULL || (response == NULL && len != 0) ||
        !cws__pmd_config_valid(cfg))
        return CWS_ERR_INVALID_ARGUMENT;
    cws__cursor c = {(const uint8_t *)response, len, 0};
    cws__pmd_offer o;
    int found = 0;
    while (cws__next_element(&c)) {
        /* RFC 6455 §9.1: the server may only answer with extensions the client offered, and
         * RFC 7692 §5: exactly one permessage-deflate element, with valid parameters. */
        if (cws__element(&c, &o) != CWS__EL_PMD || found) return CWS_ERR_PMD_RESPONSE;
        found = 1;
    }
    if (!found) return CWS_PMD_DECLINED;
    /* §7.1.1.1: the server accepts server_no_context_takeover by stating it. */
    if (cfg->peer_no_context_takeover && !o.snct) return CWS_ERR_PMD_RESPONSE;
    /* §7.1.2.1: the server may state server_max_window_bits even unasked; when we asked, it
     * must, with the same or a smaller value. */
    if (cfg->peer_window_bits < 15 && (o.smwb < 0 || o.smwb > cfg->peer_window_bits))
        return CWS_ERR_PMD_RESPONSE;
    int cbits = cfg->window_bits;
    if (o.cmwb >= 0) {
        /* §7.1.2.2: a value is required in a response, at most what we offered; and 8 is one
         * our zlib deflater cannot honour, so the connection cannot go on. */
        if (o.cmwb == 0 || o.cmwb > cfg->window_bits || o.cmwb < 9) return CWS_ERR_PMD_RESPONSE;
        cbits = o.cmwb;
    }
    agreed->server_max_window_bits = (uint8_t)(o.smwb >= 0 ? o.smwb : 15);
    agreed->client_max_window_bits = (uint8_t)cbits;
    agreed->server_no_context_takeover = o.snct;
    agreed->client_no_context_takeover =
        o.cnct || cfg->no_context_takeover || cfg->memory == CWS_PMD_MEMORY_SHARED;
    return CWS_OK;
}
