/*
 * loadgen.c — WebSocket load generator for echo servers, built on the engine's own client role.
 * Run by Benchmarks/run-echo.sh and Benchmarks/alloc-check.sh; Benchmarks/build-tools.sh builds it
 * (with the engine's C files compiled in, -O2, into Benchmarks/bin/loadgen).
 *
 * One thread, epoll (level-triggered), non-blocking sockets, 127.0.0.0/8 targets only. Each
 * connection does its own HTTP upgrade (random Sec-WebSocket-Key; the answer must be 101 with the
 * Sec-WebSocket-Accept that cws_handshake_accept computes), then:
 *
 *   echo mode (default)  keeps --depth messages of --size bytes in flight (a new one is sent for
 *                        each echo), for --warmup seconds unmeasured then --seconds measured, or
 *                        exactly --messages per connection when that is given. Every echo is
 *                        checked byte for byte against what was sent, in order (message k of a
 *                        connection starts at a different offset of a random pattern, so a lost,
 *                        repeated or reordered echo does not compare equal). All sends queued while
 *                        handling one read go out in one write.
 *   --idle               opens --conns connections (at most --concurrency handshakes at once),
 *                        reports handshakes/s, prints "HOLDING" and keeps them open until
 *                        SIGINT/SIGTERM/SIGUSR1, --hold seconds, or (--hold-stdin) EOF on stdin.
 *                        With --messages M, each connection first echoes M messages (one in
 *                        flight, checked as in echo mode) and "HOLDING" comes once all have: the
 *                        server then holds what a connection costs after traffic (its
 *                        compression state, for example).
 *
 * Payload: by default message k of a connection is a slice of one random pattern (printable ASCII
 * for text). --json makes every message a JSON object of exactly --size bytes (at least 128): the
 * connection, a sequence number, and records of words, numbers and tags drawn at random for each
 * message, like an application's updates (it compresses, but not to nothing, and no two messages
 * are alike). --deflate offers permessage-deflate (the engine's client role: window 15, level 1,
 * messages of 256 bytes and more compressed; inflated by the engine) and the run fails when the
 * server declines it.
 *
 * Output: human-readable lines on stderr, and one line on stdout for scripts:
 *   RESULT mode=echo conns=.. depth=.. size=.. type=text|binary deflate=0|1 seconds=.. msgs=..
 *          msg_per_s=.. mb_per_s=.. p50_us=.. p99_us=.. errors=.. mismatches=.. open_failures=..
 *          total_msgs=.. cpu_s=..
 *   RESULT mode=idle conns=.. open=.. handshake_seconds=.. handshakes_per_s=.. messages=.. errors=..
 *          (with --messages, handshake_seconds and handshakes_per_s include the echoes)
 * msgs counts echoes received in the measured window; total_msgs every echo of the run, warm-up
 * included (a server's CPU time over the whole run divided by it is a cost per message);
 * mb_per_s is echoed payload bytes per second in one direction, in 10^6 bytes; cpu_s is loadgen's
 * own user + system time over the whole run (near the wall time: loadgen may be the limit). Latency is from
 * queueing a message to reading its echo (log-linear histogram, < 1.6% bucket error). errors
 * counts everything that went wrong (refused or failed connections and handshakes, protocol
 * errors, unexpected closes, mismatches); the exit status is 1 when it is not 0.
 *
 * Bounded: every run ends by itself (the echo run after warm-up + measured time + a 5 s close
 * grace; --timeout seconds overall, default 60 plus those times).
 */
#define _GNU_SOURCE

#include "cws.h"
#include "cws_testing.h" /* cws_base64_encode for the client key */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------
 * Options
 * ---------------------------------------------------------------------------------------------- */
static struct {
    struct sockaddr_in addr;
    const char *host;
    const char *path;
    int conns;
    int depth;
    size_t size;
    bool binary;
    bool json;
    bool deflate;
    double warmup;
    double seconds;
    long long messages; /* > 0: exactly this many per connection, no timing phases */
    bool idle;
    double hold;
    bool hold_stdin;
    int concurrency;
    double timeout;
    bool quiet;
} opt = {
    .host = "127.0.0.1", .path = "/", .conns = 100, .depth = 1, .size = 32, .warmup = 2,
    .seconds = 8, .hold = 60, .concurrency = 200, .timeout = -1,
};

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port N [--host 127.0.0.1|localhost] [--path /]\n"
            "               [--conns 100] [--depth 1] [--size 32] [--binary | --json] [--deflate]\n"
            "               [--warmup 2] [--seconds 8] [--messages M] [--timeout S] [--quiet]\n"
            "       loadgen --idle --port N [--conns 10000] [--concurrency 200] [--hold 60] [--hold-stdin]\n"
            "                            [--messages M --size S [--json] [--deflate]]\n"
            "       loadgen --free-port     prints a TCP port free on 127.0.0.1 right now\n");
    exit(2);
}

/* ------------------------------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------------------------------- */
static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(3);
    }
    return p;
}

static uint64_t rng_state;
static uint64_t rng_next(void) { /* xorshift64*: masking keys and the payload pattern */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) {
    (void)sig;
    stop_signal = 1;
}

/* Latency histogram, in units of 100 ns: values below 128 have a bucket each; above, 64 buckets
 * per power of two (relative width 1/64). */
#define HIST_LINEAR 128
#define HIST_SUB 64
#define HIST_BUCKETS (HIST_LINEAR + 48 * HIST_SUB)
static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_count;

static void hist_add(uint64_t ns) {
    uint64_t x = ns / 100;
    size_t b;
    if (x < HIST_LINEAR) {
        b = (size_t)x;
    } else {
        int msb = 63 - __builtin_clzll(x); /* >= 7 */
        b = HIST_LINEAR + (size_t)(msb - 7) * HIST_SUB + (size_t)((x >> (msb - 6)) & (HIST_SUB - 1));
        if (b >= HIST_BUCKETS) b = HIST_BUCKETS - 1;
    }
    hist[b]++;
    hist_count++;
}

/* The latency below which a fraction q of the samples lie, in microseconds (bucket midpoint). */
static double hist_quantile_us(double q) {
    if (hist_count == 0) return 0;
    uint64_t rank = (uint64_t)(q * (double)(hist_count - 1)) + 1, seen = 0;
    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        seen += hist[b];
        if (seen >= rank) {
            if (b < HIST_LINEAR) return ((double)b + 0.5) / 10.0;
            size_t k = b - HIST_LINEAR;
            int msb = (int)(k / HIST_SUB) + 7;
            double lo = (double)((uint64_t)(HIST_SUB + k % HIST_SUB) << (msb - 6));
            double width = (double)(1ull << (msb - 6));
            return (lo + width / 2) / 10.0;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * Connections
 * ---------------------------------------------------------------------------------------------- */
enum { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING, ST_DONE };

typedef struct conn {
    int fd;
    int state;
    int index;
    bool want_out;        /* EPOLLOUT registered */
    cws_conn *engine;
    cws_deflater *deflater;
    char *hs;             /* response head being read (handshake only) */
    size_t hs_len;
    char accept[CWS_ACCEPT_LENGTH];
    uint8_t *out;         /* bytes to write: out[out_off..out_len) */
    size_t out_off, out_len, out_cap;
    uint64_t *sent_at;    /* ring of --depth send times, by sequence number */
    uint8_t *msgs;        /* --json: ring of the --depth messages in flight, --size bytes each */
    uint64_t sent, received;
    void *spare;          /* a reassembly block given back, kept for the next message (see ra_alloc) */
} conn;
#define RA_HEADER 16      /* a reassembly block's capacity is stored before it */

static conn *conns;
static int epfd;
static uint8_t *pattern;        /* opt.size + 256 random bytes (printable ASCII for text) */
static uint8_t *deflate_scratch;
static size_t deflate_scratch_cap;
static char pmd_offer[CWS_PMD_HEADER_MAX];
static size_t pmd_offer_len;
static cws_pmd_config pmd_cfg;
static uint8_t *read_buf;
static size_t read_cap;

static struct {
    long long open_failures;  /* connect or handshake failed */
    long long protocol;       /* the engine reported an error, or an unexpected frame */
    long long unexpected;     /* the server closed (TCP or close frame) before we asked */
    long long mismatches;     /* an echo differed from what was sent */
} err;

static int open_conns, handshakes_done, live, pmd_agreed;
static int conns_done_msgs; /* --idle --messages: connections that have all their echoes */
static bool sending = true;             /* false once the measured window is over */
static bool measuring;
static uint64_t measured_msgs;
static int pending_connects;

static long long errors_total(void) {
    return err.open_failures + err.protocol + err.unexpected + err.mismatches;
}

static void ep_set(conn *c, bool out) {
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) perror("epoll_ctl");
    c->want_out = out;
}

static void conn_finish(conn *c) {
    if (c->state == ST_DONE) return;
    if (c->state == ST_OPEN || c->state == ST_CLOSING) open_conns--;
    if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE) pending_connects--;
    c->state = ST_DONE;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    cws_conn_free(c->engine); /* may give a block back (ra_free): freed below */
    c->engine = NULL;
    if (c->spare) free((uint8_t *)c->spare - RA_HEADER);
    c->spare = NULL;
    cws_deflater_free(c->deflater);
    c->deflater = NULL;
    free(c->hs);
    c->hs = NULL;
    free(c->out);
    c->out = NULL;
    c->out_cap = c->out_len = c->out_off = 0;
    free(c->sent_at);
    c->sent_at = NULL;
    free(c->msgs);
    c->msgs = NULL;
    live--;
}

static uint8_t *out_reserve(conn *c, size_t n) {
    if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
    if (c->out_len + n > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + n > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 256;
            while (cap < c->out_len + n) cap *= 2;
            uint8_t *p = realloc(c->out, cap);
            if (!p) {
                fprintf(stderr, "loadgen: out of memory\n");
                exit(3);
            }
            c->out = p;
            c->out_cap = cap;
        }
    }
    return c->out + c->out_len;
}

/* The engine's reassembly allocator (cws_config.reassembly): echoes larger than one read are
 * reassembled in a block of at least --size bytes, handed back to us with the event and kept for
 * the next message (one block per connection). The engine grows a message's buffer as bytes
 * arrive; here that growth is free (the block is already large enough), so a 1 MiB echo costs
 * one copy from the read buffer instead of a chain of reallocations, copies and page faults
 * (which made loadgen, not the server, the limit of W3). Each block starts with its capacity. */
static void *ra_block(size_t size) {
    size_t cap = size > opt.size + 64 ? size : opt.size + 64;
    uint8_t *b = malloc(RA_HEADER + cap);
    if (!b) return NULL;
    memcpy(b, &cap, sizeof cap);
    return b + RA_HEADER;
}
static size_t ra_cap(void *p) {
    size_t cap;
    memcpy(&cap, (uint8_t *)p - RA_HEADER, sizeof cap);
    return cap;
}
static void *ra_alloc(size_t size, void *user) {
    conn *c = user;
    if (c->spare && ra_cap(c->spare) >= size) {
        void *p = c->spare;
        c->spare = NULL;
        return p;
    }
    return ra_block(size);
}
static void *ra_realloc(void *p, size_t size, void *user) {
    if (!p) return ra_alloc(size, user); /* as realloc(NULL, size): the engine starts a buffer so */
    if (ra_cap(p) >= size) return p;
    void *q = ra_block(size);
    if (!q) return NULL;
    memcpy(q, p, ra_cap(p));
    free((uint8_t *)p - RA_HEADER);
    return q;
}
static void ra_free(void *p, void *user) {
    conn *c = user;
    if (!p) return;
    if (!c->spare) {
        c->spare = p;
        return;
    }
    free((uint8_t *)p - RA_HEADER);
}

/* dst[0..len) = src[0..len) masked with key (RFC 6455 §5.3), in one pass. */
static void copy_masked(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4]) {
    uint64_t k;
    uint8_t k8[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
    memcpy(&k, k8, 8);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= k;
        memcpy(dst + i, &w, 8);
    }
    for (; i < len; i++) dst[i] = src[i] ^ key[i & 3];
}

/* Writes what is queued; registers for EPOLLOUT when the socket is full. */
static void conn_flush(conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out) ep_set(c, true);
            return;
        } else {
            if (c->state != ST_CLOSING) err.unexpected++;
            conn_finish(c);
            return;
        }
    }
    c->out_off = c->out_len = 0;
    if (c->want_out) ep_set(c, false);
}

static void mask_key(uint8_t key[4]) {
    uint32_t k = (uint32_t)rng_next();
    if (k == 0) k = 1;
    memcpy(key, &k, 4);
}

/* Queues one masked frame with payload p[0..len). */
static void queue_frame(conn *c, uint8_t opcode, uint8_t rsv, const void *p, size_t len) {
    uint8_t key[4];
    mask_key(key);
    uint8_t *dst = out_reserve(c, CWS_MAX_HEADER_SIZE + len);
    size_t hlen;
    if (cws_frame_header_write(dst, CWS_MAX_HEADER_SIZE, &hlen, true, rsv, opcode, len, key) != CWS_OK) {
        fprintf(stderr, "loadgen: cannot write a frame header\n");
        exit(3);
    }
    if (len) copy_masked(dst + hlen, p, len, key);
    c->out_len += hlen + len;
}

static void queue_close(conn *c, uint16_t code) {
    uint8_t key[4];
    mask_key(key);
    uint8_t *dst = out_reserve(c, CWS_MAX_CONTROL_FRAME_SIZE);
    size_t n;
    if (cws_close_frame_write(dst, CWS_MAX_CONTROL_FRAME_SIZE, &n, code, NULL, 0, key) == CWS_OK)
        c->out_len += n;
}

/* --json: an object of exactly `size` bytes (>= 128) for message `seq` of connection `index`, the
 * rest drawn from rng_next: {"type":"update","conn":I,"seq":K,"user":"W_N","items":[{"id":N,
 * "name":"W W","tags":["W","W"],"price":N.NN,"in_stock":true|false},...],"note":"W W ..."}, the
 * note filled (its last word cut) to the exact size. */
static const char *const json_words[64] = {
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "red", "green", "blue", "yellow",
    "purple", "orange", "silver", "golden", "north", "south", "east", "west", "river", "mountain",
    "forest", "desert", "ocean", "island", "valley", "canyon", "meadow", "harbor", "bridge",
    "tower", "garden", "market", "station", "library", "museum", "theater", "stadium", "airport",
    "castle", "temple", "village", "city", "planet", "comet"};

typedef struct jbuf {
    uint8_t *p, *end;
} jbuf;
static bool jput(jbuf *b, const char *s, size_t n) {
    if ((size_t)(b->end - b->p) < n) return false;
    memcpy(b->p, s, n);
    b->p += n;
    return true;
}
static bool jstr(jbuf *b, const char *s) { return jput(b, s, strlen(s)); }
static bool juint(jbuf *b, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do tmp[sizeof tmp - ++n] = (char)('0' + v % 10), v /= 10;
    while (v);
    return jput(b, tmp + sizeof tmp - n, n);
}
static const char *jword(void) { return json_words[rng_next() >> 58]; }

static void json_message(uint8_t *dst, size_t size, int index, uint64_t seq) {
    jbuf b = {dst, dst + size - 2}; /* room for the closing "} */
    (void)(jstr(&b, "{\"type\":\"update\",\"conn\":") && juint(&b, (uint64_t)index) &&
           jstr(&b, ",\"seq\":") && juint(&b, seq) && jstr(&b, ",\"user\":\"") && jstr(&b, jword()) &&
           jstr(&b, "_") && juint(&b, rng_next() >> 54) && jstr(&b, "\","));
    /* Records while one of the longest (< 128 bytes) still leaves 24 bytes for the note. */
    if (b.end - b.p >= 16 + 128 + 24) {
        jstr(&b, "\"items\":[");
        for (bool first = true; b.end - b.p >= 128 + 24 + 2; first = false) {
            uint64_t r = rng_next();
            if (!first) jstr(&b, ",");
            jstr(&b, "{\"id\":"), juint(&b, r >> 44), jstr(&b, ",\"name\":\""), jstr(&b, jword()),
                jstr(&b, " "), jstr(&b, jword()), jstr(&b, "\",\"tags\":[\""), jstr(&b, jword()),
                jstr(&b, "\",\""), jstr(&b, jword()), jstr(&b, "\"],\"price\":"), juint(&b, (r >> 20) % 1000),
                jstr(&b, "."), juint(&b, 10 + (r >> 12) % 90),
                jstr(&b, (r & 1) ? ",\"in_stock\":true}" : ",\"in_stock\":false}");
        }
        jstr(&b, "],");
    }
    jstr(&b, "\"note\":\"");
    for (bool first = true; b.p < b.end; first = false) {
        const char *w = jword();
        size_t n = strlen(w), room = (size_t)(b.end - b.p);
        if (!first) *b.p++ = ' ', room--;
        memcpy(b.p, w, n < room ? n : room);
        b.p += n < room ? n : room;
    }
    memcpy(b.p, "\"}", 2);
}

/* Message k of connection i is pattern[(k * 7 + i) % 251 ..][0..size), or with --json the copy
 * kept of what was sent (slot k % depth: it is not reused before echo k has been checked). */
static const uint8_t *message_bytes(const conn *c, uint64_t k) {
    if (opt.json) return c->msgs + (size_t)(k % (uint64_t)opt.depth) * opt.size;
    return pattern + (size_t)((k * 7 + (uint64_t)c->index) % 251);
}

static void queue_message(conn *c, uint64_t now) {
    if (opt.json)
        json_message(c->msgs + (size_t)(c->sent % (uint64_t)opt.depth) * opt.size, opt.size, c->index, c->sent);
    const uint8_t *src = message_bytes(c, c->sent);
    uint8_t opcode = opt.binary ? CWS_OP_BINARY : CWS_OP_TEXT;
    if (c->deflater) {
        size_t w = 0;
        bool compressed = false;
        if (cws_deflate_message(c->deflater, src, opt.size, CWS_DEFLATE_DEFAULT, deflate_scratch,
                                deflate_scratch_cap, &w, &compressed) != CWS_OK) {
            fprintf(stderr, "loadgen: deflate failed\n");
            exit(3);
        }
        if (compressed)
            queue_frame(c, opcode, CWS_RSV1, deflate_scratch, w);
        else
            queue_frame(c, opcode, 0, src, opt.size);
    } else {
        queue_frame(c, opcode, 0, src, opt.size);
    }
    c->sent_at[c->sent % (uint64_t)opt.depth] = now;
    c->sent++;
}

/* Sends up to --depth in flight, unless the run is over for this connection. */
static void top_up(conn *c, uint64_t now) {
    if (c->state != ST_OPEN || (opt.idle && opt.messages == 0)) return;
    while (c->sent - c->received < (uint64_t)opt.depth) {
        if (opt.messages > 0 ? c->sent >= (uint64_t)opt.messages : !sending) break;
        queue_message(c, now);
    }
    if (opt.messages > 0 && c->received >= (uint64_t)opt.messages && !opt.idle) {
        queue_close(c, CWS_CLOSE_NORMAL);
        c->state = ST_CLOSING;
    }
}

static void start_close(conn *c) {
    if (c->state != ST_OPEN) return;
    queue_close(c, CWS_CLOSE_NORMAL);
    c->state = ST_CLOSING;
    conn_flush(c);
}

/* ------------------------------------------------------------------------------------------------
 * Opening handshake (RFC 6455 §4.1)
 * ---------------------------------------------------------------------------------------------- */
static void send_request(conn *c) {
    uint8_t raw[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = rng_next();
        memcpy(raw + i, &r, 8);
    }
    char key[25];
    size_t klen = cws_base64_encode(raw, 16, key);
    key[klen] = 0;
    if (cws_handshake_accept(key, klen, c->accept) != CWS_OK) {
        fprintf(stderr, "loadgen: bad key\n");
        exit(3);
    }
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                     "Origin: http://%s:%d\r\n%s%.*s%s\r\n",
                     opt.path, opt.host, ntohs(opt.addr.sin_port), key, opt.host,
                     ntohs(opt.addr.sin_port), opt.deflate ? "Sec-WebSocket-Extensions: " : "",
                     (int)pmd_offer_len, pmd_offer, opt.deflate ? "\r\n" : "");
    memcpy(out_reserve(c, (size_t)n), req, (size_t)n);
    c->out_len += (size_t)n;
    c->state = ST_HANDSHAKE;
    c->hs = xmalloc(4096);
    c->hs_len = 0;
    conn_flush(c);
}

/* The value of header `name` in head[0..len) (lines end in CRLF), trimmed; NULL if absent. */
static const char *header_value(const char *head, size_t len, const char *name, size_t *vlen) {
    size_t nlen = strlen(name);
    const char *p = memchr(head, '\n', len), *end = head + len;
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) break;
        if ((size_t)(eol - line) > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

static void handshake_failed(conn *c, const char *why) {
    if (!opt.quiet && err.open_failures < 5) fprintf(stderr, "loadgen: connection %d: %s\n", c->index, why);
    err.open_failures++;
    conn_finish(c);
}

static void feed(conn *c, size_t len, uint64_t now);

/* Reads the 101 response; bytes after the head go to the engine. */
static void handshake_read(conn *c, uint64_t now) {
    ssize_t n = read(c->fd, c->hs + c->hs_len, 4095 - c->hs_len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        handshake_failed(c, n == 0 ? "closed during the handshake" : strerror(errno));
        return;
    }
    c->hs_len += (size_t)n;
    c->hs[c->hs_len] = 0;
    char *end = strstr(c->hs, "\r\n\r\n");
    if (!end) {
        if (c->hs_len >= 4095) handshake_failed(c, "response head too long");
        return;
    }
    size_t head_len = (size_t)(end - c->hs) + 4;
    if (strncmp(c->hs, "HTTP/1.1 101", 12) != 0) {
        handshake_failed(c, "no 101 response");
        return;
    }
    size_t vlen;
    const char *v = header_value(c->hs, head_len, "Sec-WebSocket-Accept", &vlen);
    if (!v || vlen != CWS_ACCEPT_LENGTH || memcmp(v, c->accept, CWS_ACCEPT_LENGTH) != 0) {
        handshake_failed(c, "missing or wrong Sec-WebSocket-Accept");
        return;
    }
    cws_config cfg;
    cws_config_init(&cfg, CWS_ROLE_CLIENT);
    cfg.max_message_size = cfg.max_frame_size = (opt.size > (1u << 20) ? opt.size : (1u << 20)) * 2;
    cws_allocator reassembly = {ra_alloc, ra_realloc, ra_free, c};
    cfg.reassembly = &reassembly; /* copied by cws_conn_new */
    cws_pmd_params agreed;
    bool pmd = false;
    v = header_value(c->hs, head_len, "Sec-WebSocket-Extensions", &vlen);
    if (opt.deflate) {
        int st = cws_pmd_response_accept(&pmd_cfg, v ? v : "", v ? vlen : 0, &agreed);
        if (st == CWS_OK) {
            pmd = true;
        } else if (st == CWS_PMD_DECLINED) {
            handshake_failed(c, "the server declined permessage-deflate");
            return;
        } else {
            handshake_failed(c, "invalid permessage-deflate response");
            return;
        }
    } else if (v) {
        handshake_failed(c, "extension in the response that was not offered");
        return;
    }
    if (pmd) {
        pmd_agreed++;
        cfg.pmd = &agreed;
        if (cws_deflater_new(&pmd_cfg, &agreed, CWS_ROLE_CLIENT, NULL, &c->deflater) != CWS_OK) {
            handshake_failed(c, "cws_deflater_new failed");
            return;
        }
    }
    if (cws_conn_new(&cfg, &c->engine) != CWS_OK) {
        handshake_failed(c, "cws_conn_new failed");
        return;
    }
    /* Bytes after the head are already frames: keep them for on_opened's first parse. */
    size_t extra = c->hs_len - head_len;
    memcpy(read_buf, c->hs + head_len, extra);
    free(c->hs);
    c->hs = NULL;
    c->state = ST_OPEN;
    pending_connects--;
    open_conns++;
    handshakes_done++;
    bool echoes = !opt.idle || opt.messages > 0;
    if (echoes) c->sent_at = xmalloc(sizeof(uint64_t) * (size_t)opt.depth);
    if (echoes && opt.json) c->msgs = xmalloc(opt.size * (size_t)opt.depth);
    if (extra) feed(c, extra, now); /* rare: the server sent frames right behind the 101 */
    if (opt.idle && opt.messages > 0 && c->state == ST_OPEN) { /* start at once, not when all are open */
        top_up(c, now);
        conn_flush(c);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Frames
 * ---------------------------------------------------------------------------------------------- */
/* Parses read_buf[0..len) for connection c: checks echoes, answers pings, handles close. */
static void feed(conn *c, size_t len, uint64_t now) {
    size_t off = 0;
    while (c->state == ST_OPEN || c->state == ST_CLOSING) {
        size_t used = 0;
        cws_event ev;
        int st = cws_conn_parse(c->engine, read_buf + off, len - off, &used, &ev);
        off += used;
        if (st == CWS_WANT_READ || st == CWS_CLOSED) break;
        if (st != CWS_OK) {
            if (!opt.quiet && err.protocol < 5)
                fprintf(stderr, "loadgen: connection %d: %s\n", c->index, cws_strerror(st));
            err.protocol++;
            conn_finish(c);
            return;
        }
        switch (ev.type) {
        case CWS_EVENT_TEXT:
        case CWS_EVENT_BINARY: {
            if ((opt.idle && opt.messages == 0) || c->received >= c->sent) {
                if (!ev.in_input && ev.data) ra_free((void *)ev.data, c);
                err.protocol++; /* a message we did not send */
                conn_finish(c);
                return;
            }
            uint64_t k = c->received++;
            bool type_ok = ev.type == (opt.binary ? CWS_EVENT_BINARY : CWS_EVENT_TEXT);
            if (!type_ok || ev.length != opt.size ||
                (opt.size && memcmp(ev.data, message_bytes(c, k), opt.size) != 0)) {
                if (!opt.quiet && err.mismatches < 5)
                    fprintf(stderr, "loadgen: connection %d: echo %llu differs from what was sent\n",
                            c->index, (unsigned long long)k);
                err.mismatches++;
            }
            if (!ev.in_input && ev.data) ra_free((void *)ev.data, c); /* handed over to us */
            if (measuring && c->state == ST_OPEN) {
                measured_msgs++;
                hist_add(now - c->sent_at[k % (uint64_t)opt.depth]);
            }
            if (opt.idle && c->received == (uint64_t)opt.messages) conns_done_msgs++;
            break;
        }
        case CWS_EVENT_PING: {
            uint8_t key[4];
            mask_key(key);
            uint8_t *dst = out_reserve(c, CWS_MAX_CONTROL_FRAME_SIZE);
            size_t n;
            if (cws_control_frame_write(dst, CWS_MAX_CONTROL_FRAME_SIZE, &n, CWS_OP_PONG, ev.data,
                                        ev.length, key) == CWS_OK)
                c->out_len += n;
            break;
        }
        case CWS_EVENT_PONG:
            break;
        case CWS_EVENT_CLOSE:
            if (c->state != ST_CLOSING) {
                if (!opt.quiet && err.unexpected < 5)
                    fprintf(stderr, "loadgen: connection %d: server closed with %u\n", c->index,
                            ev.close_code);
                err.unexpected++;
                queue_close(c, 0);
                conn_flush(c);
            }
            conn_finish(c);
            return;
        default:
            err.protocol++;
            conn_finish(c);
            return;
        }
    }
}

static void conn_readable(conn *c, uint64_t now) {
    ssize_t n = read(c->fd, read_buf, read_cap);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        if (c->state != ST_CLOSING) {
            if (!opt.quiet && err.unexpected < 5)
                fprintf(stderr, "loadgen: connection %d: %s\n", c->index,
                        n == 0 ? "TCP closed by the server" : strerror(errno));
            err.unexpected++;
        }
        conn_finish(c);
        return;
    }
    feed(c, (size_t)n, now);
    if (c->state == ST_OPEN) top_up(c, now);
    if (c->state == ST_OPEN || c->state == ST_CLOSING) conn_flush(c);
}

/* ------------------------------------------------------------------------------------------------
 * Connecting
 * ---------------------------------------------------------------------------------------------- */
static void start_connect(conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        perror("loadgen: socket (raise ulimit -n?)");
        exit(3);
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = ST_CONNECTING;
    live++;
    pending_connects++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->want_out = true;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        perror("loadgen: epoll_ctl");
        exit(3);
    }
    if (connect(c->fd, (struct sockaddr *)&opt.addr, sizeof opt.addr) != 0 && errno != EINPROGRESS) {
        handshake_failed(c, strerror(errno));
    }
}

static void conn_writable(conn *c) {
    if (c->state == ST_CONNECTING) {
        int e = 0;
        socklen_t len = sizeof e;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len);
        if (e != 0) {
            handshake_failed(c, strerror(e));
            return;
        }
        ep_set(c, false);
        send_request(c);
        return;
    }
    conn_flush(c);
}

/* ------------------------------------------------------------------------------------------------
 * Main
 * ---------------------------------------------------------------------------------------------- */
static double arg_num(char **argv, int *i, int argc) {
    if (*i + 1 >= argc) usage();
    char *end;
    double v = strtod(argv[++*i], &end);
    if (*end) usage();
    return v;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("loadgen: free port");
        return 1;
    }
    printf("%d\n", ntohs(a.sin_port));
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    int port = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--port")) port = (int)arg_num(argv, &i, argc);
        else if (!strcmp(a, "--host") && i + 1 < argc) opt.host = argv[++i];
        else if (!strcmp(a, "--path") && i + 1 < argc) opt.path = argv[++i];
        else if (!strcmp(a, "--conns")) opt.conns = (int)arg_num(argv, &i, argc);
        else if (!strcmp(a, "--depth")) opt.depth = (int)arg_num(argv, &i, argc);
        else if (!strcmp(a, "--size")) opt.size = (size_t)arg_num(argv, &i, argc);
        else if (!strcmp(a, "--binary")) opt.binary = true;
        else if (!strcmp(a, "--text")) opt.binary = false;
        else if (!strcmp(a, "--json")) opt.json = true;
        else if (!strcmp(a, "--deflate")) opt.deflate = true;
        else if (!strcmp(a, "--warmup")) opt.warmup = arg_num(argv, &i, argc);
        else if (!strcmp(a, "--seconds")) opt.seconds = arg_num(argv, &i, argc);
        else if (!strcmp(a, "--messages")) opt.messages = (long long)arg_num(argv, &i, argc);
        else if (!strcmp(a, "--idle")) opt.idle = true;
        else if (!strcmp(a, "--hold")) opt.hold = arg_num(argv, &i, argc);
        else if (!strcmp(a, "--hold-stdin")) opt.hold_stdin = true;
        else if (!strcmp(a, "--concurrency")) opt.concurrency = (int)arg_num(argv, &i, argc);
        else if (!strcmp(a, "--timeout")) opt.timeout = arg_num(argv, &i, argc);
        else if (!strcmp(a, "--quiet")) opt.quiet = true;
        else if (!strcmp(a, "--free-port")) return free_port();
        else usage();
    }
    if (port <= 0 || port > 65535 || opt.conns < 1 || opt.conns > 1000000 || opt.depth < 1 ||
        opt.depth > 1 << 20 || opt.size > (256u << 20) || opt.warmup < 0 || opt.seconds <= 0 ||
        opt.concurrency < 1 || opt.hold < 0 || opt.path[0] != '/' ||
        (opt.json && (opt.binary || opt.size < 128)))
        usage();
    if (opt.idle) opt.depth = 1;
    if (opt.timeout < 0) opt.timeout = 60 + (opt.idle ? opt.hold : opt.warmup + opt.seconds);

    /* Loopback only: this tool floods its target. */
    const char *ip = !strcmp(opt.host, "localhost") ? "127.0.0.1" : opt.host;
    opt.addr.sin_family = AF_INET;
    opt.addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &opt.addr.sin_addr) != 1 ||
        (ntohl(opt.addr.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "loadgen: refusing target %s: only 127.0.0.0/8 and localhost\n", opt.host);
        return 2;
    }

    uint64_t seed = now_ns() ^ ((uint64_t)getpid() << 32);
    int ur = open("/dev/urandom", O_RDONLY);
    if (ur >= 0) {
        if (read(ur, &seed, sizeof seed) != (ssize_t)sizeof seed) seed ^= 0x9e3779b97f4a7c15ull;
        close(ur);
    }
    rng_state = seed | 1;

    pattern = xmalloc(opt.size + 256);
    for (size_t i = 0; i < opt.size + 256; i++) {
        uint8_t r = (uint8_t)(rng_next() >> 56);
        pattern[i] = opt.binary ? r : (uint8_t)(' ' + r % 95); /* text: printable ASCII */
    }
    if (opt.deflate) {
        cws_pmd_config_init(&pmd_cfg);
        if (cws_pmd_offer_write(&pmd_cfg, pmd_offer, sizeof pmd_offer, &pmd_offer_len) != CWS_OK) {
            fprintf(stderr, "loadgen: cannot write the permessage-deflate offer\n");
            return 3;
        }
        deflate_scratch_cap = cws_deflate_bound(opt.size);
        deflate_scratch = xmalloc(deflate_scratch_cap);
    }
    read_cap = 256 * 1024;
    read_buf = xmalloc(read_cap > 4096 ? read_cap : 4096);

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (opt.hold_stdin) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev) != 0) {
            perror("loadgen: --hold-stdin needs a pipe or socket on stdin");
            return 2;
        }
    }
    conns = calloc((size_t)opt.conns, sizeof(conn));
    if (!conns) return 3;
    for (int i = 0; i < opt.conns; i++) {
        conns[i].index = i;
        conns[i].fd = -1;
        conns[i].state = -1; /* not started */
    }

    uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(opt.timeout * 1e9);
    uint64_t t_open = 0, t_measure = 0, t_end = 0, t_stop = 0;
    int next = 0;
    bool timed_out = false, holding = false, stdin_eof = false;
    struct epoll_event evs[256];

    for (;;) {
        uint64_t now = now_ns();
        /* Open connections, at most --concurrency handshakes at a time. */
        while (next < opt.conns && pending_connects < opt.concurrency) start_connect(&conns[next++]);

        if (!t_open && next == opt.conns && pending_connects == 0 &&
            !(opt.idle && opt.messages > 0 && conns_done_msgs < open_conns)) {
            t_open = now;
            double hs = (double)(t_open - t0) / 1e9;
            if (!opt.quiet)
                fprintf(stderr, "loadgen: %d of %d connections open in %.3f s (%.0f handshakes/s)%s\n",
                        open_conns, opt.conns, hs, handshakes_done / hs,
                        !opt.deflate ? "" : pmd_agreed ? ", permessage-deflate agreed" : ", permessage-deflate declined");
            if (opt.idle) {
                printf("RESULT mode=idle conns=%d open=%d handshake_seconds=%.3f handshakes_per_s=%.0f "
                       "messages=%lld errors=%lld\n", opt.conns, open_conns, hs, handshakes_done / hs,
                       opt.messages, errors_total());
                printf("HOLDING\n");
                fflush(stdout);
                holding = true;
                t_end = now + (uint64_t)(opt.hold * 1e9);
            } else {
                t_measure = now + (uint64_t)(opt.warmup * 1e9);
                t_end = t_measure + (uint64_t)(opt.seconds * 1e9);
                measuring = opt.warmup == 0 && opt.messages == 0;
                for (int i = 0; i < opt.conns; i++) {
                    top_up(&conns[i], now);
                    if (conns[i].state == ST_OPEN) conn_flush(&conns[i]);
                }
            }
        }
        if (t_open && !opt.idle && opt.messages == 0) {
            if (!measuring && sending && now >= t_measure) measuring = true;
            if (sending && now >= t_end) {
                /* Measured window over: stop counting and sending, close every connection. */
                measuring = false;
                sending = false;
                t_stop = now;
                deadline = deadline < now + 5000000000ull ? deadline : now + 5000000000ull;
                for (int i = 0; i < opt.conns; i++) start_close(&conns[i]);
            }
        }
        if (holding && (stop_signal || now >= t_end || stdin_eof)) {
            for (int i = 0; i < opt.conns; i++) conn_finish(&conns[i]);
            break;
        }
        if (!opt.idle && stop_signal && sending) t_end = now; /* stop early, report what we have */
        if (live == 0 && next == opt.conns && !holding) break;
        if (now >= deadline) {
            timed_out = !opt.idle || !holding;
            break;
        }

        int n = epoll_wait(epfd, evs, 256, 50);
        now = now_ns();
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) { /* stdin */
                char b[256];
                ssize_t r = read(0, b, sizeof b);
                if (r <= 0) {
                    stdin_eof = true;
                    epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
                }
                continue;
            }
            if (c->state == ST_DONE) continue;
            if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
                if (c->state == ST_CONNECTING || (evs[i].events & EPOLLOUT)) conn_writable(c);
                if (c->state == ST_DONE) continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                if (c->state == ST_HANDSHAKE) handshake_read(c, now);
                else if (c->state == ST_OPEN || c->state == ST_CLOSING) conn_readable(c, now);
            }
        }
    }
    uint64_t t_done = now_ns();
    if (timed_out) {
        int left = 0;
        for (int i = 0; i < opt.conns; i++)
            if (conns[i].state != ST_DONE && conns[i].state != -1) left++, conn_finish(&conns[i]);
        fprintf(stderr, "loadgen: timed out with %d connections still open\n", left);
        err.unexpected += left;
    }
    if (opt.idle) {
        if (!t_open)
            printf("RESULT mode=idle conns=%d open=%d handshake_seconds=0 handshakes_per_s=0 errors=%lld\n",
                   opt.conns, open_conns, errors_total());
        fprintf(stderr, "loadgen: idle run over, errors=%lld\n", errors_total());
        return errors_total() ? 1 : 0;
    }

    double secs;
    if (opt.messages > 0) {
        secs = t_open ? (double)(t_done - t_open) / 1e9 : 0;
        measured_msgs = 0;
        for (int i = 0; i < opt.conns; i++) measured_msgs += conns[i].received;
    } else {
        uint64_t stop = t_stop ? t_stop : t_done;
        secs = stop > t_measure && t_measure ? (double)(stop - t_measure) / 1e9 : 0;
    }
    uint64_t total_msgs = 0; /* every echo, warm-up and close included: for costs per message */
    for (int i = 0; i < opt.conns; i++) total_msgs += conns[i].received;
    double rate = secs > 0 ? (double)measured_msgs / secs : 0;
    double mbps = rate * (double)opt.size / 1e6;
    double p50 = hist_quantile_us(0.50), p99 = hist_quantile_us(0.99);
    if (!opt.quiet)
        fprintf(stderr,
                "loadgen: %llu echoes in %.2f s: %.0f msg/s, %.1f MB/s, latency p50 %.0f us p99 %.0f us; "
                "errors %lld (open %lld, protocol %lld, unexpected close %lld, mismatches %lld)\n",
                (unsigned long long)measured_msgs, secs, rate, mbps, p50, p99, errors_total(),
                err.open_failures, err.protocol, err.unexpected, err.mismatches);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("RESULT mode=echo conns=%d depth=%d size=%zu type=%s deflate=%d seconds=%.3f msgs=%llu "
           "msg_per_s=%.0f mb_per_s=%.2f p50_us=%.1f p99_us=%.1f errors=%lld mismatches=%lld "
           "open_failures=%lld total_msgs=%llu cpu_s=%.2f\n",
           opt.conns, opt.depth, opt.size, opt.binary ? "binary" : "text", opt.deflate ? 1 : 0, secs,
           (unsigned long long)measured_msgs, rate, mbps, p50, p99, errors_total(), err.mismatches,
           err.open_failures, (unsigned long long)total_msgs, cpu_s);
    return errors_total() || measured_msgs == 0 ? 1 : 0;
}
