/* Preloaded into the server by Benchmarks/pmd-memory.sh (LD_PRELOAD): on SIGUSR2 it appends one
 * line with glibc's mallinfo2() (every arena) to the file named by $MALLINFO_OUT, so the script
 * can tell the bytes in live allocations from what the process holds resident. mallinfo2 takes
 * the arenas' locks, so the script signals only while the server is idle.
 *
 *   cc -shared -fPIC -O2 Benchmarks/mallinfo-shim.c -o /tmp/mallinfo-shim.so
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void on_usr2(int sig) {
    (void)sig;
    const char *path = getenv("MALLINFO_OUT");
    if (path == NULL) return;
    struct mallinfo2 m = mallinfo2();
    char line[256];
    int n = snprintf(line, sizeof line, "arena=%zu mmapped=%zu in_use=%zu free=%zu\n", m.arena, m.hblkhd,
                     m.uordblks + m.hblkhd, m.fordblks);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return;
    if (n > 0) (void)!write(fd, line, (size_t)n);
    close(fd);
}

__attribute__((constructor)) static void install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
}
