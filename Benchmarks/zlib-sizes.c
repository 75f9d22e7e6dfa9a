/* What zlib allocates for one raw deflate and one raw inflate stream, per windowBits and memLevel,
 * counted through zalloc: the figures behind CompressionSettings.Compressor and .Decompressor
 * (Benchmarks/RESULTS-pmd-memory.md). The inflater's window is allocated on its first output, so
 * one short message goes through each.
 *
 *   cc Benchmarks/zlib-sizes.c -lz -o /tmp/zlib-sizes && /tmp/zlib-sizes
 */
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

static size_t total;

static voidpf count_alloc(voidpf opaque, uInt items, uInt size) {
    (void)opaque;
    total += (size_t)items * size;
    return calloc(items, size);
}

static void count_free(voidpf opaque, voidpf p) {
    (void)opaque;
    free(p);
}

int main(void) {
    printf("zlib %s\n", zlibVersion());
    for (int wb = 9; wb <= 15; wb++) {
        for (int ml = 1; ml <= 9; ml++) {
            z_stream z = {0};
            z.zalloc = count_alloc;
            z.zfree = count_free;
            total = 0;
            if (deflateInit2(&z, 1, Z_DEFLATED, -wb, ml, Z_DEFAULT_STRATEGY) != Z_OK) return 1;
            printf("deflate windowBits %2d memLevel %d: %6zu bytes%s\n", wb, ml, total,
                   ml == wb - 7 ? "  <- memLevel = windowBits - 7" : "");
            deflateEnd(&z);
        }
    }
    for (int wb = 9; wb <= 15; wb++) {
        unsigned char packed[64], out[64];
        z_stream d = {0};
        if (deflateInit2(&d, 1, Z_DEFLATED, -wb, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 1;
        d.next_in = (Bytef *)"hello hello";
        d.avail_in = 11;
        d.next_out = packed;
        d.avail_out = sizeof packed;
        (void)deflate(&d, Z_SYNC_FLUSH);
        z_stream z = {0};
        z.zalloc = count_alloc;
        z.zfree = count_free;
        total = 0;
        if (inflateInit2(&z, -wb) != Z_OK) return 1;
        z.next_in = packed;
        z.avail_in = (uInt)(sizeof packed - d.avail_out);
        z.next_out = out;
        z.avail_out = sizeof out;
        (void)inflate(&z, Z_SYNC_FLUSH);
        printf("inflate windowBits %2d: %6zu bytes\n", wb, total);
        inflateEnd(&z);
        deflateEnd(&d);
    }
    return 0;
}
