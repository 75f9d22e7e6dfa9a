/*
 * cws_alloc.c — the allocator in force for an engine or a deflater: the caller's cws_allocator, or
 * the C library's malloc/realloc/free. Every byte the library allocates goes through the result
 * (zlib's state included, see cws_deflate.c).
 */
#include "cws_internal.h"

#include <stdlib.h>

static void *cws__default_alloc(size_t n, void *u) { (void)u; return malloc(n); }
static void *cws__default_realloc(void *p, size_t n, void *u) { (void)u; return realloc(p, n); }
static void cws__default_free(void *p, void *u) { (void)u; free(p); }

int cws__allocator_resolve(const cws_allocator *given, cws_allocator *out) {
    if (given != NULL) {
        if (given->alloc == NULL || given->free == NULL) return CWS_ERR_INVALID_ARGUMENT;
        *out = *given;
        return CWS_OK;
    }
    out->alloc = cws__default_alloc;
    out->realloc = cws__default_realloc;
    out->free = cws__default_free;
    out->user = NULL;
    return CWS_OK;
}
