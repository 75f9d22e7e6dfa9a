/*
 * malloccount.c — counts a process's allocation calls; LD_PRELOAD it (Benchmarks/alloc-check.sh).
 *
 *   LD_PRELOAD=Benchmarks/bin/malloccount.so MALLOCCOUNT_FILE=/tmp/counts some-server &
 *   kill -USR2 $!        # appends the counts so far to $MALLOCCOUNT_FILE
 *
 * Counts calls to malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign and valloc
 * ("allocs"; realloc counts as one, as SwiftNIO's allocation counter counts it), and to free with a
 * non-NULL pointer ("frees"), in all threads (relaxed atomics: the totals are exact, only their
 * order across threads is not). On SIGUSR2 and at exit it appends one line to the file named by
 * MALLOCCOUNT_FILE (standard error when unset):
 *
 *   allocs=<n> frees=<n>
 *
 * Allocation counts are deterministic for a given run of work, unlike times, so CI can gate on
 * them. The real allocator is glibc's, reached through its __libc_* entry points, so that no
 * dlsym call (which may itself allocate) is needed. glibc only.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_ullong allocs, frees;
static const char *report_path; /* MALLOCCOUNT_FILE, read once at load */

#define COUNT_ALLOC() atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed)

void *malloc(size_t n) {
    COUNT_ALLOC();
    return __libc_malloc(n);
}

void *calloc(size_t k, size_t n) {
    COUNT_ALLOC();
    return __libc_calloc(k, n);
}

void *realloc(void *p, size_t n) {
    COUNT_ALLOC();
    return __libc_realloc(p, n);
}

void free(void *p) {
    if (p) atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
    __libc_free(p);
}

int posix_memalign(void **out, size_t align, size_t n) {
    COUNT_ALLOC();
    if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(align, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n) {
    COUNT_ALLOC();
    return __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n) {
    COUNT_ALLOC();
    return __libc_memalign(align, n);
}

void *valloc(size_t n) {
    COUNT_ALLOC();
    return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

/* Formats without stdio (async-signal-safe) and appends one line. */
static char *put_u64(char *p, unsigned long long v) {
    char tmp[24];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10); while ((v /= 10) != 0);
    while (n) *p++ = tmp[--n];
    return p;
}

static void report(void) {
    int saved = errno;
    char line[96], *p = line;
    memcpy(p, "allocs=", 7), p += 7;
    p = put_u64(p, atomic_load_explicit(&allocs, memory_order_relaxed));
    memcpy(p, " frees=", 7), p += 7;
    p = put_u64(p, atomic_load_explicit(&frees, memory_order_relaxed));
    *p++ = '\n';
    const char *path = report_path;
    int fd = path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : 2;
    if (fd >= 0) {
        ssize_t w = write(fd, line, (size_t)(p - line));
        (void)w;
        if (path) close(fd);
    }
    errno = saved;
}

static void on_usr2(int sig) {
    (void)sig;
    report();
}

__attribute__((constructor)) static void start(void) {
    report_path = getenv("MALLOCCOUNT_FILE");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
}

__attribute__((destructor)) static void stop(void) { report(); }
