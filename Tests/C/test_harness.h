/*
 * test_harness.h — what the C test files (Tests/C/test_*.c) share: the CHECK harness, feeding a
 * stream to an engine and recording its events, the vector files of Tests/Vectors, guard pages, a
 * counting allocator that can fail any call, and random valid text. One binary runs every module
 * (test_main.c); test_harness.c holds the code.
 */
#ifndef CWS_TEST_HARNESS_H
#define CWS_TEST_HARNESS_H

#define _DEFAULT_SOURCE 1 /* mmap's MAP_ANONYMOUS, dirent */

#include "cws_testing.h"
#include "cws_test_ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CWS_VECTOR_DIR
#define CWS_VECTOR_DIR "Tests/Vectors"
#endif

extern int g_test_failed; /* checks failed in the current test */
extern int g_passed, g_failed;
extern char g_context[256]; /* what the current loop is doing, printed with a failure */
extern const char *g_vector_dir;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) check_failed(__FILE__, __LINE__, #cond);                                      \
    } while (0)

typedef struct rec_event {
    uint8_t type, rsv;
    uint16_t code;
    size_t len;
    uint8_t *data;
} rec_event;

typedef struct run_result {
    rec_event *ev;
    size_t n, cap;
    int status;        /* final: CWS_WANT_READ, CWS_CLOSED or the latched error */
    uint16_t err_code; /* close code of the ERROR event */
    size_t in_place;   /* events delivered inside the caller's buffer */
    /* When the engine hands reassembly buffers over (cws_config.reassembly), the same allocator:
     * feed frees each handed-over buffer with it once the event is recorded, and counts them. */
    const cws_allocator *handover;
    size_t handed;
} run_result;

typedef struct chunking {
    enum { CH_WHOLE, CH_FIXED, CH_SPLITS, CH_RANDOM } kind;
    size_t fixed;          /* CH_FIXED: every chunk this size */
    const size_t *splits;  /* CH_SPLITS: ascending cut positions */
    size_t nsplits;
    uint64_t seed;         /* CH_RANDOM: sizes 1..max from the PRNG */
    size_t max;
} chunking;

typedef struct vector {
    char name[128];
    cws_role role;
    bool mirror;
    uint64_t max_message, max_frame;
    uint8_t rsv;
    uint8_t *data;
    size_t len, cap;
    run_result expect; /* events and final status */
} vector;

typedef struct guarded {
    uint8_t *map, *data;
    size_t size, page;
} guarded;

typedef struct tracking {
    long calls;      /* alloc + realloc calls so far */
    long fail_at;    /* fail the call with this index (-1: never) */
    long live;       /* blocks outstanding */
    size_t biggest;  /* largest block requested after the first (the engine itself) */
    bool first_done;
} tracking;

#define NKERNELS 6
extern const cws_kernel all_kernels[NKERNELS];

void check_failed(const char *file, int line, const char *what);
void context(const char *fmt, ...);
void run_test(const char *name, void (*fn)(void));
void *xmalloc(size_t n);
void result_free(run_result *r);
void result_push(run_result *r, const cws_event *e);
void feed(cws_conn *c, const uint8_t *stream, size_t len, const chunking *ch, run_result *r);
int run_stream(const cws_config *cfg, const uint8_t *stream, size_t len, const chunking *ch, run_result *r);
bool results_equal(const run_result *a, const run_result *b);
void buf_push(uint8_t **b, size_t *len, size_t *cap, uint8_t v);
int hexval(char c);
bool parse_hex_token(const char *t, uint8_t **b, size_t *len, size_t *cap);
bool parse_hex_line(char *line, uint8_t **b, size_t *len, size_t *cap);
int event_type_of(const char *w);
bool load_vector(const char *dir, const char *file, vector *v);
void vector_free(vector *v);
bool mirror_to_server(const uint8_t *in, size_t len, uint8_t **out, size_t *olen);
void config_for(const vector *v, cws_role role, cws_config *cfg);
void check_stream(const vector *v, cws_role role, const uint8_t *s, size_t len);
char **list_vectors(size_t *count);
void random_text(uint64_t *seed, uint8_t *out, size_t n);
void random_stream(uint64_t *seed, bool masked, int nmsg, uint8_t **out, size_t *olen, run_result *expect);
guarded guarded_new(size_t data_pages);
uint8_t *guarded_end(const guarded *g);
void guarded_free(guarded *g);
void *t_alloc(size_t n, void *u);
void *t_realloc(void *p, size_t n, void *u);
void t_free(void *p, void *u);
void alloc_stream(uint8_t **s, size_t *len, run_result *expect);
int emit_seeds(const char *outdir);

/* test_conn.c: the engine on random streams (also run under each forced kernel, test_mask.c). */
void test_random_streams(void);

/* One entry per module: each runs its tests with run_test. */
void frame_tests(void);
void conn_tests(void);
void mask_tests(void);
void utf8_tests(void);
void handshake_tests(void);
void deflate_tests(void);
void extension_tests(void);
void handover_tests(void);

#endif /* CWS_TEST_HARNESS_H */
