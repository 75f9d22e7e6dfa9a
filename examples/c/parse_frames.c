/*
 * parse_frames.c — a small C program that uses libcws the way a server would.
 *
 * It builds what a client sends (RFC 6455 §5.7's examples plus a fragmented message and a close),
 * feeds it to a server-role engine in uneven pieces as if read from a socket, prints each event,
 * answers the ping with a pong written by cws_control_frame_write, and checks that it saw exactly
 * what was sent. Exit status 0 when everything matched.
 *
 * Build against an installed library:   cc parse_frames.c $(pkg-config --cflags --libs cws)
 * or from the repository:               make example
 */
#include <cws.h>

#include <stdio.h>
#include <string.h>

/* What a browser would send: every client frame is masked (RFC 6455 §5.3). */
static size_t client_stream(uint8_t *out, size_t cap) {
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = 0, w;
    uint8_t *p = out;

    /* RFC 6455 §5.7: a single-frame masked text message containing "Hello" */
    static const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    memcpy(p + n, hello, sizeof hello);
    n += sizeof hello;

    /* a ping with body "are you there?" */
    if (cws_control_frame_write(p + n, cap - n, &w, CWS_OP_PING, "are you there?", 14, key) != CWS_OK)
        return 0;
    n += w;

    /* a 300-byte binary message in frames of at most 128 bytes: header, then masked payload */
    uint8_t msg[300];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)i;
    cws_fragmenter f;
    if (cws_fragmenter_init(&f, CWS_OP_BINARY, 0, sizeof msg, 128) != CWS_OK) return 0;
    size_t done = 0;
    uint64_t len;
    while (cws_fragmenter_next(&f, p + n, cap - n, &w, &len, key) == CWS_OK) {
        n += w;
        memcpy(p + n, msg + done, (size_t)len);
        (void)cws_mask(p + n, (size_t)len, key, 0); /* each frame's payload starts at key byte 0 */
        n += (size_t)len;
        done += (size_t)len;
    }

    /* close, 1000 "done" */
    if (cws_close_frame_write(p + n, cap - n, &w, CWS_CLOSE_NORMAL, "done", 4, key) != CWS_OK) return 0;
    return n + w;
}

static const char *type_name(uint8_t t) {
    switch (t) {
    case CWS_EVENT_TEXT: return "text";
    case CWS_EVENT_BINARY: return "binary";
    case CWS_EVENT_CLOSE: return "close";
    case CWS_EVENT_PING: return "ping";
    case CWS_EVENT_PONG: return "pong";
    default: return "error";
    }
}

int main(void) {
    uint8_t wire[1024];
    size_t total = client_stream(wire, sizeof wire);
    if (total == 0) {
        fprintf(stderr, "could not build the client stream\n");
        return 1;
    }

    cws_config cfg;
    cws_config_init(&cfg, CWS_ROLE_SERVER);
    cws_conn *conn;
    int st = cws_conn_new(&cfg, &conn);
    if (st != CWS_OK) {
        fprintf(stderr, "cws_conn_new: %s\n", cws_strerror(st));
        return 1;
    }

    /* Read the stream in pieces of 7, 100, 7, 100, ... bytes, as a socket might deliver it. The
     * engine copes with frames and headers cut anywhere. */
    const uint8_t expect_types[] = {CWS_EVENT_TEXT, CWS_EVENT_PING, CWS_EVENT_BINARY, CWS_EVENT_CLOSE};
    size_t seen = 0, pos = 0, piece = 0;
    int failed = 0;
    while (pos < total && !failed) {
        size_t n = (piece++ % 2) ? 100 : 7;
        if (n > total - pos) n = total - pos;
        uint8_t *buf = wire + pos; /* unmasked in place by the engine */
        size_t off = 0;
        for (;;) {
            size_t used;
            cws_event ev;
            st = cws_conn_parse(conn, buf + off, n - off, &used, &ev);
            off += used;
            if (st == CWS_WANT_READ || st == CWS_CLOSED) break;
            if (st != CWS_OK) {
                printf("protocol error: %s -> send close %u\n", cws_strerror(st), ev.close_code);
                failed = 1;
                break;
            }
            printf("%-6s %4zu bytes%s", type_name(ev.type), ev.length, ev.in_input ? " (in place)" : "");
            if (ev.type == CWS_EVENT_TEXT || ev.type == CWS_EVENT_PING)
                printf(": \"%.*s\"", (int)ev.length, (const char *)ev.data);
            if (ev.type == CWS_EVENT_CLOSE)
                printf(": code %u \"%.*s\"", ev.close_code, (int)ev.length, (const char *)ev.data);
            printf("\n");
            if (seen >= sizeof expect_types || ev.type != expect_types[seen]) failed = 1;
            if (ev.type == CWS_EVENT_TEXT && (ev.length != 5 || memcmp(ev.data, "Hello", 5) != 0)) failed = 1;
            if (ev.type == CWS_EVENT_BINARY) {
                const uint8_t *d = (const uint8_t *)ev.data;
                if (ev.length != 300) failed = 1;
                for (size_t i = 0; i < ev.length && !failed; i++)
                    if (d[i] != (uint8_t)i) failed = 1;
            }
            if (ev.type == CWS_EVENT_PING) {
                /* answer with a pong carrying the same body; a server sends it unmasked */
                uint8_t pong[CWS_MAX_CONTROL_FRAME_SIZE];
                size_t w;
                if (cws_control_frame_write(pong, sizeof pong, &w, CWS_OP_PONG, ev.data, ev.length, NULL) != CWS_OK)
                    failed = 1;
                printf("       -> pong frame of %zu bytes written\n", w);
            }
            if (ev.type == CWS_EVENT_CLOSE && ev.close_code != CWS_CLOSE_NORMAL) failed = 1;
            seen++;
        }
        pos += n;
    }
    cws_conn_free(conn);
    if (failed || seen != sizeof expect_types) {
        fprintf(stderr, "unexpected events (%zu seen)\n", seen);
        return 1;
    }
    printf("ok: %zu events from %zu bytes\n", seen, total);
    return 0;
}
