/*
 * test_main.c — runs the C tests of the engine, one module after another (test_conn.c,
 * test_frame.c, test_mask.c, test_utf8.c, test_handshake.c, test_deflate.c, test_extension.c,
 * test_handover.c),
 * built plain (make test) and with ASan + UBSan + LSan (make test-sanitize). Every test can fail:
 * expectations come from the vector files, from the independent reference code in cws_test_ref.h,
 * or from RFC text, never from the engine itself.
 *
 *   test_engine [VECTOR_DIR]             run everything (VECTOR_DIR defaults to CWS_VECTOR_DIR)
 *   test_engine --emit-seeds DIR [VDIR]  write fuzz_parse seeds made from the vectors into DIR
 *
 * Output: one line per failed check (file:line), then "N passed, M failed" (N, M count tests).
 * Exit status 0 only when nothing failed.
 */
#include "test_harness.h"

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "--emit-seeds") == 0) {
        if (argc >= 4) g_vector_dir = argv[3];
        return emit_seeds(argv[2]);
    }
    if (argc >= 2) g_vector_dir = argv[1];
    conn_tests();
    frame_tests();
    mask_tests();
    utf8_tests();
    handshake_tests();
    deflate_tests();
    extension_tests();
    handover_tests();
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
