/*
 * The same allocations under any malloc: glibc's, or jemalloc's or mimalloc's, preloaded or linked (the
 * allocator tests build linked copies of this file). Uses only what all three define (no pvalloc or
 * reallocarray, which jemalloc lacks, and no realloc(p, 0), whose result differs) and checks every result.
 * Writes nothing through stdio. Every allocation comes from a function named work_*, so that reports can
 * leave out what the runtime allocates by itself (`--include work_`): libstdc++'s emergency pool when
 * jemalloc pulls libstdc++ in, and thread control blocks whose size depends on the libraries loaded.
 *
 * Allocation calls 3,165, free calls 3,142, bytes allocated 10,654,954, peak 8,425,198 B (at the 8 MiB
 * block), leaked 8,638 B in 7 blocks (work_leak, 1,234 B each).
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fail(const char *message) {
    ssize_t ignored = write(2, message, strlen(message));
    (void)ignored;
    exit(99);
}

static void *kept[1000];

/* 7 blocks of 1,234 B, never freed. */
static __attribute__((noinline)) void work_leak(void) {
    for (int i = 0; i < 7; i++) {
        char *block = malloc(1234);
        if (block == NULL) fail("malloc\n");
        memset(block, i, 1234);
    }
}

/* 1,000 blocks of 8 + 16 * (i % 7) B (55,952 B); the odd ones are freed at once, the even ones at the end. */
static __attribute__((noinline)) void work_small(void) {
    for (int i = 0; i < 1000; i++) {
        kept[i] = malloc(8 + 16 * (size_t)(i % 7));
        if (kept[i] == NULL || malloc_usable_size(kept[i]) < 8 + 16 * (size_t)(i % 7)) fail("malloc\n");
    }
    for (int i = 1; i < 1000; i += 2) free(kept[i]);
}

/* 100 x calloc(10, 33), zeroed, freed. */
static __attribute__((noinline)) void work_calloc(void) {
    for (int i = 0; i < 100; i++) {
        unsigned char *block = calloc(10, 33);
        if (block == NULL) fail("calloc\n");
        for (int j = 0; j < 330; j++)
            if (block[j] != 0) fail("calloc memory not zeroed\n");
        free(block);
    }
}

/* realloc from NULL to 16 B, then 16 doublings to 1 MiB (2,097,136 B in 17 calls), contents kept, freed. */
static __attribute__((noinline)) void work_realloc(void) {
    char *buffer = realloc(NULL, 16);
    if (buffer == NULL) fail("realloc\n");
    buffer[0] = 'x';
    for (size_t size = 32; size <= (1u << 20); size *= 2) {
        buffer = realloc(buffer, size);
        if (buffer == NULL || buffer[0] != 'x') fail("realloc lost contents\n");
        buffer[size - 1] = 'y';
    }
    free(buffer);
}

/* 10 each of posix_memalign(64, 100), aligned_alloc(64, 512), memalign(4096, 70), valloc(80) (7,620 B). */
static __attribute__((noinline)) void work_aligned(void) {
    long page = sysconf(_SC_PAGESIZE);
    for (int i = 0; i < 10; i++) {
        void *a = NULL;
        if (posix_memalign(&a, 64, 100) != 0 || ((uintptr_t)a & 63) != 0) fail("posix_memalign\n");
        void *b = aligned_alloc(64, 512);
        void *c = memalign(4096, 70);
        void *d = valloc(80);
        if (b == NULL || ((uintptr_t)b & 63) != 0) fail("aligned_alloc\n");
        if (c == NULL || ((uintptr_t)c & 4095) != 0) fail("memalign\n");
        if (d == NULL || ((uintptr_t)d & (uintptr_t)(page - 1)) != 0) fail("valloc\n");
        free(a);
        free(b);
        free(c);
        free(d);
    }
}

/* One block of 8 MiB, touched, freed: the peak. */
static __attribute__((noinline)) void work_large(void) {
    char *block = malloc(8u << 20);
    if (block == NULL) fail("malloc 8 MiB\n");
    memset(block, 1, 8u << 20);
    free(block);
}

/* Each of 2 threads: 1,000 blocks of 32 B, then frees them (64,000 B in all). */
static void *work_thread(void *unused) {
    (void)unused;
    void *blocks[1000];
    for (int i = 0; i < 1000; i++)
        if ((blocks[i] = malloc(32)) == NULL) fail("malloc in thread\n");
    for (int i = 0; i < 1000; i++) free(blocks[i]);
    return NULL;
}

int main(void) {
    work_leak();
    work_small();
    work_calloc();
    work_realloc();
    work_aligned();
    work_large();
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&threads[i], NULL, work_thread, NULL) != 0) fail("pthread_create\n");
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    for (int i = 0; i < 1000; i += 2) free(kept[i]);
    return 0;
}
