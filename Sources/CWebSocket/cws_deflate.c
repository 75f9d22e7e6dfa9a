/*
 * cws_deflate.c — permessage-deflate (RFC 7692 §7.2) on zlib's raw deflate/inflate.
 *
 * Sending (cws_deflater): one whole message per call. The decision to compress is taken before
 * the data reaches zlib (threshold, "don't compress" flag), because with context takeover every
 * byte that enters the deflater becomes part of the LZ77 window the peer's inflater must mirror:
 * a message that went in and then out uncompressed would leave the two windows different.
 * Each message ends with a sync flush, whose empty stored block ends in 00 00 ff ff; those four
 * bytes are removed (RFC 7692 §7.2.1) and the receiver puts them back.
 *
 * Receiving (cws__inflater, driven by cws_conn.c): the engine feeds the payload as it arrives,
 * in whatever pieces, into an output buffer it grows within the message limit, then the four
 * tail bytes as a separate input (never written past the caller's data), RFC 7692 §7.2.2.
 *
 * Raw streams (negative windowBits): RFC 7692 carries bare DEFLATE blocks, no zlib header or
 * checksum. zlib cannot deflate with a 256-byte window in raw mode (it refuses windowBits -8,
 * since 1.2.9), so negotiation never agrees to 8 for our deflater; inflating with 8 is fine.
 *
 * Context takeover off: deflateReset / inflateReset after the message. They keep the memory
 * (window, hash tables), so a connection pays zlib's allocation once, not per message.
 *
 * Memory: zlib allocates through the caller's cws_allocator (zalloc/zfree below). zlib's own
 * figures (zconf.h): deflate needs (1 << (windowBits + 2)) + (1 << (memLevel + 9)) bytes plus
 * its ~6 KB state; inflate needs 1 << windowBits plus its ~7 KB state, the window allocated on
 * first output. Benchmarks/run-deflate.sh measures the real totals per connection.
 */
#include "cws_internal.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>

#define ZLIB_CONST /* next_in is const: zlib never writes the input (zlib.h) */
#include <zlib.h>

/* ---- allocation through the engine's allocator ----------------------------------------------- */

static voidpf cws__zalloc(voidpf opaque, uInt items, uInt size) {
    const cws_allocator *a = (const cws_allocator *)opaque;
#if SIZE_MAX / UINT_MAX < UINT_MAX /* size_t cannot hold every product of two uInt (32-bit) */
    if (size != 0 && items > SIZE_MAX / size) return Z_NULL;
#endif
    return a->alloc((size_t)items * size, a->user);
}

/* zlib frees only what it allocated: every call site checks for Z_NULL first (ZFREE after a
 * test, TRY_FREE in deflate.c). */
static void cws__zfree(voidpf opaque, voidpf p) {
    const cws_allocator *a = (const cws_allocator *)opaque;
    a->free(p, a->user);
}

CWS_INLINE uInt cws__clamp_uint(size_t n) { return n > UINT_MAX ? UINT_MAX : (uInt)n; }

/* ---- inflater (receiving) ------------------------------------------------------------------------ */

struct cws__inflater {
    z_stream z;    /* z.opaque points at the engine's (or the pool's) allocator copy, which
                    * outlives the inflater */
    uint8_t ended; /* the last step ended a stream (BFINAL) and restarted it */
    cws__inflater *next; /* in a pool: the next idle inflater */
};

int cws__inflater_new(const cws_allocator *a, int window_bits, cws__inflater **out) {
    cws__inflater *zi = (cws__inflater *)a->alloc(sizeof *zi, a->user);
    if (zi == NULL) return CWS_ERR_NOMEM;
    memset(zi, 0, sizeof *zi);
    zi->z.zalloc = cws__zalloc;
    zi->z.zfree = cws__zfree;
    zi->z.opaque = (voidpf)a;
    int r = inflateInit2(&zi->z, -window_bits);
    if (r != Z_OK) {
        a->free(zi, a->user);
        return r == Z_MEM_ERROR ? CWS_ERR_NOMEM : CWS_ERR_INVALID_ARGUMENT;
    }
    *out = zi;
    return CWS_OK;
}

void cws__inflater_free(cws__inflater *zi) {
    if (zi == NULL) return;
    const cws_allocator *a = (const cws_allocator *)zi->z.opaque;
    (void)inflateEnd(&zi->z);
    a->free(zi, a->user);
}

void cws__inflater_reset(cws__inflater *zi) {
    (void)inflateReset(&zi->z);
    zi->ended = 0;
}

/* ---- a pool of inflaters for one thread -------------------------------------------------------- */

/* The idle list is guarded by a spin lock (C11 atomic_flag): taking and giving back are a few
 * pointer moves, once per compressed message, so an engine freed on another thread than the one
 * its pool serves cannot corrupt the list. Creating and resetting inflaters happen outside it. */
struct cws_inflater_pool {
    cws_allocator alloc;  /* the inflaters' zlib allocations point here */
    atomic_flag lock;
    cws__inflater *idle;  /* idle inflaters, reset */
    _Atomic size_t count; /* created: idle + lent */
};

static void cws__pool_lock(cws_inflater_pool *p) {
    while (atomic_flag_test_and_set_explicit(&p->lock, memory_order_acquire)) {
    }
}

static void cws__pool_unlock(cws_inflater_pool *p) { atomic_flag_clear_explicit(&p->lock, memory_order_release); }

int cws_inflater_pool_new(const cws_allocator *allocator, cws_inflater_pool **out) {
    if (out == NULL) return CWS_ERR_INVALID_ARGUMENT;
    cws_allocator a;
    if (cws__allocator_resolve(allocator, &a) != CWS_OK) return CWS_ERR_INVALID_ARGUMENT;
    cws_inflater_pool *p = (cws_inflater_pool *)a.alloc(sizeof *p, a.user);
    if (p == NULL) return CWS_ERR_NOMEM;
    memset(p, 0, sizeof *p);
    atomic_flag_clear(&p->lock);
    atomic_init(&p->count, 0);
    p->alloc = a;
    *out = p;
    return CWS_OK;
}

void cws_inflater_pool_free(cws_inflater_pool *p) {
    if (p == NULL) return;
    while (p->idle != NULL) {
        cws__inflater *zi = p->idle;
        p->idle = zi->next;
        cws__inflater_free(zi);
    }
    p->alloc.free(p, p->alloc.user);
}

size_t cws_inflater_pool_count(const cws_inflater_pool *p) {
    return p == NULL ? 0 : atomic_load_explicit(&((cws_inflater_pool *)p)->count, memory_order_relaxed);
}

int cws__pool_take(cws_inflater_pool *p, cws__inflater **out) {
    cws__pool_lock(p);
    cws__inflater *zi = p->idle;
    if (zi != NULL) p->idle = zi->next;
    cws__pool_unlock(p);
    if (zi == NULL) {
        /* A 15-bit window inflates what any smaller window produced (RFC 1951 distances). */
        const int st = cws__inflater_new(&p->alloc, 15, &zi);
        if (st != CWS_OK) return st;
        atomic_fetch_add_explicit(&p->count, 1, memory_order_relaxed);
    }
    zi->next = NULL;
    *out = zi;
    return CWS_OK;
}

void cws__pool_give(cws_inflater_pool *p, cws__inflater *zi) {
    cws__inflater_reset(zi);
    cws__pool_lock(p);
    zi->next = p->idle;
    p->idle = zi;
    cws__pool_unlock(p);
}

bool cws__inflater_at_boundary(const cws__inflater *zi) {
    /* zlib.h: data_type has 128 added when inflate() is waiting for the next block header (its
     * TYPE state), i.e. stopped just after a block ended; a restarted stream is at one too. */
    return zi->ended || (zi->z.data_type & 128) != 0;
}

int cws__inflate(cws__inflater *zi, const uint8_t **in, size_t *in_len, uint8_t *out, size_t cap,
                 size_t *produced, bool *progress) {
    z_stream *z = &zi->z;
    const uInt ai = cws__clamp_uint(*in_len);
    const uInt ao = cws__clamp_uint(cap);
    z->next_in = *in;
    z->avail_in = ai;
    z->next_out = out;
    z->avail_out = ao;
    int r = inflate(z, Z_SYNC_FLUSH);
    const size_t used = ai - z->avail_in;
    const size_t made = ao - z->avail_out;
    *in += used;
    *in_len -= used;
    *produced = made;
    *progress = used != 0 || made != 0;
    zi->ended = 0;
    switch (r) {
    case Z_OK:
    case Z_BUF_ERROR: /* no progress possible: the caller sees it in *progress */
        return CWS_OK;
    case Z_STREAM_END:
        /* A block with BFINAL set ended zlib's stream. RFC 7692 §7.2.3.4 allows it, and what
         * follows in the payload (at least the byte the RFC appends, then our 00 00 ff ff) starts
         * on a byte boundary as a new sequence of blocks that may refer back into the same window.
         * inflateResetKeep restarts the block parser, drops the final byte's padding bits and
         * keeps the window (zlib.h declares it; inflateReset would drop the window). Reaching the
         * end counts as progress: the next step needs new input. */
        (void)inflateResetKeep(z);
        zi->ended = 1;
        *progress = true;
        return CWS_OK;
    case Z_MEM_ERROR:
        return CWS_ERR_NOMEM;
    default: /* Z_DATA_ERROR (bad block, distance too far back), Z_NEED_DICT, Z_STREAM_ERROR */
        return CWS_ERR_INFLATE;
    }
}

/* ---- deflater (sending) ------------------------------------------------------------------------- */

struct cws_deflater {
    z_stream z;          /* z.opaque = &alloc; initialised on the first compressed message */
    cws_allocator alloc; /* copied at cws_deflater_new */
    uint32_t threshold;
    uint8_t window_bits; /* 9-15 */
    uint8_t mem_level;   /* 1-9 */
    uint8_t level;       /* 0-9 */
    uint8_t reset_each;  /* no context takeover for our direction: deflateReset after each message */
    uint8_t ready;       /* deflateInit2 done */
};

int cws_deflater_new(const cws_pmd_config *cfg, const cws_pmd_params *agreed, cws_role role,
                     const cws_allocator *allocator, cws_deflater **out) {
    if (cfg == NULL || out == NULL || !cws__pmd_config_valid(cfg)) return CWS_ERR_INVALID_ARGUMENT;
    if (role != CWS_ROLE_SERVER && role != CWS_ROLE_CLIENT) return CWS_ERR_INVALID_ARGUMENT;
    if (agreed != NULL && !cws__pmd_params_valid(agreed)) return CWS_ERR_INVALID_ARGUMENT;
    cws_allocator a;
    if (cws__allocator_resolve(allocator, &a) != CWS_OK) return CWS_ERR_INVALID_ARGUMENT;
    uint8_t bits = cfg->window_bits;
    bool reset = cfg->no_context_takeover || cfg->memory == CWS_PMD_MEMORY_SHARED || agreed == NULL;
    if (agreed != NULL) {
        /* Our direction's parameters (RFC 7692 §7.1.1, §7.1.2). */
        uint8_t limit = role == CWS_ROLE_SERVER ? agreed->server_max_window_bits
                                                : agreed->client_max_window_bits;
        bool nct = role == CWS_ROLE_SERVER ? agreed->server_no_context_takeover
                                           : agreed->client_no_context_takeover;
        if (limit < 9) return CWS_ERR_INVALID_ARGUMENT; /* 8: zlib cannot honour it */
        if (limit < bits) bits = limit;
        reset = reset || nct;
    }
    cws_deflater *d = (cws_deflater *)a.alloc(sizeof *d, a.user);
    if (d == NULL) return CWS_ERR_NOMEM;
    memset(d, 0, sizeof *d);
    d->alloc = a;
    d->threshold = cfg->threshold;
    d->window_bits = bits;
    /* memLevel set to match the window unless configured: the hash table then has as many
     * heads as the window has positions (zlib's own default pairs 15 with 8). */
    d->mem_level = cfg->mem_level ? cfg->mem_level : (uint8_t)(bits - 7);
    d->level = cfg->level;
    d->reset_each = reset ? 1 : 0;
    *out = d;
    return CWS_OK;
}

void cws_deflater_free(cws_deflater *d) {
    if (d == NULL) return;
    if (d->ready) (void)deflateEnd(&d->z);
    d->alloc.free(d, d->alloc.user);
}

size_t cws_deflate_bound(size_t len) {
    /* zlib's conservative bound for non-default parameters (deflateBound: len + len/8 + len/64
     * + 5) covers stored blocks as small as memLevel 1 makes them; +11 more for the sync flush's
     * empty stored block (at most 3 bits, padding and 4 bytes, of which the 4 are removed again)
     * and a margin. */
    size_t extra = (len >> 3) + (len >> 6) + 16;
    if (len > SIZE_MAX - extra) return SIZE_MAX;
    return len + extra;
}

static const uint8_t cws__tail[4] = {0x00, 0x00, 0xff, 0xff};

int cws_deflate_message(cws_deflater *d, const void *in, size_t len, uint32_t flags, void *out,
                        size_t cap, size_t *written, bool *compressed) {
    if (d == NULL || written == NULL || compressed == NULL || (in == NULL && len != 0) ||
        (flags & ~(uint32_t)CWS_DEFLATE_NO_COMPRESS))
        return CWS_ERR_INVALID_ARGUMENT;
    *written = 0;
    *compressed = false;
    /* Decide first: nothing below this line runs for a message that goes out uncompressed. */
    if ((flags & CWS_DEFLATE_NO_COMPRESS) || len < d->threshold) return CWS_OK;
    if (out == NULL || cap < cws_deflate_bound(len)) return CWS_ERR_BUFFER_TOO_SMALL;
    uint8_t *o = (uint8_t *)out;
    if (len == 0) {
        /* An empty message: one empty stored block (BFINAL 0, BTYPE 00, padding: the byte 0x00)
         * without its LEN/NLEN, which are the 00 00 ff ff the receiver appends. The previous
         * message ended on a byte boundary (sync flush), so this is right in any state, and zlib
         * is not asked: a second flush with no input in a row is a Z_BUF_ERROR there. */
        o[0] = 0x00;
        *written = 1;
        *compressed = true;
        return CWS_OK;
    }
    z_stream *z = &d->z;
    if (!d->ready) {
        z->zalloc = cws__zalloc;
        z->zfree = cws__zfree;
        z->opaque = (voidpf)&d->alloc;
        int r = deflateInit2(z, d->level, Z_DEFLATED, -(int)d->window_bits, d->mem_level,
                             Z_DEFAULT_STRATEGY);
        if (r != Z_OK) return r == Z_MEM_ERROR ? CWS_ERR_NOMEM : CWS_ERR_INVALID_ARGUMENT;
        d->ready = 1;
    }
    const uint8_t *ip = (const uint8_t *)in;
    size_t left = len, room = cap;
    bool done = false;
    for (;;) {
        const uInt ai = cws__clamp_uint(left);
        const uInt ao = cws__clamp_uint(room);
        const int flush = ai == left ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        z->next_in = ip;
        z->avail_in = ai;
        z->next_out = o + (cap - room);
        z->avail_out = ao;
        const int r = deflate(z, flush);
        const size_t used = ai - z->avail_in, made = ao - z->avail_out;
        ip += used;
        left -= used;
        room -= made;
        /* With cap >= the bound the output never fills, and the stream is ours alone: neither
         * can happen, but stop rather than loop. */
        if (room == 0 || r == Z_STREAM_ERROR) break;
        /* A sync flush is complete when zlib returns with output space left (zlib.h, deflate);
         * otherwise (more than 4 GiB of input or output: uInt counts) go on. */
        if (flush == Z_SYNC_FLUSH && z->avail_out != 0) {
            done = true;
            break;
        }
    }
    size_t total = cap - room;
    /* zlib.h: a completed sync flush ends with an empty stored block, 00 00 ff ff. */
    if (!done || memcmp(o + total - 4, cws__tail, 4) != 0) {
        /* Nothing is sent. A reset deflater never refers to earlier messages, which keeps it
         * consistent with the peer's inflater whatever that holds. */
        (void)deflateReset(z);
        return CWS_ERR_INVALID_ARGUMENT;
    }
    total -= 4; /* RFC 7692 §7.2.1: remove the tail 00 00 ff ff */
    if (d->reset_each) {
        (void)deflateReset(z);
        /* The window is gone anyway, so sending the original instead is still consistent. */
        if (total >= len) return CWS_OK;
    }
    *written = total;
    *compressed = true;
    return CWS_OK;
}
