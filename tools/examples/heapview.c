/*
 * A small program for docs/how-malloc-works.md: every kind of memory the allocator panel names, in numbers
 * simple enough to check by hand.
 *
 *   cc -O0 -g -pthread -o heapview tools/examples/heapview.c
 *   malloctrace run --mmap -- ./heapview && malloctrace report malloctrace.heapview.*.mtrace --allocator
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SMALL 10000

static void *small[SMALL];
static void *pages[20];

/* 100-byte records from a second thread: glibc gives it an arena of its own. */
static void *worker(void *unused) {
    (void)unused;
    static void *records[1000];
    for (int i = 0; i < 1000; i++) records[i] = malloc(100);
    for (int i = 0; i < 1000; i++) free(records[i]);
    return NULL;
}

int main(void) {
    /* 25 bytes: one byte too many for a 32-byte chunk, so each takes 48 (40 usable). */
    for (int i = 0; i < SMALL; i++) small[i] = malloc(25);
    /* 130 KiB: just above the 128 KiB mmap threshold, so each is a mapping of its own (132 KiB). */
    for (int i = 0; i < 20; i++) memset(pages[i] = malloc(130 * 1024), 1, 130 * 1024);
    for (int i = 0; i < 20; i++) free(pages[i]);
    /* Freeing a 1 MiB mapped chunk raises glibc's threshold to 1 MiB + 4 KiB: now 130 KiB comes from the heap. */
    free(malloc(1 << 20));
    for (int i = 0; i < 20; i++) memset(pages[i] = malloc(130 * 1024), 1, 130 * 1024);

    pthread_t thread;
    pthread_create(&thread, NULL, worker, NULL);
    pthread_join(thread, NULL);

    /* Every other small block freed: the heap keeps the holes (free chunks) for reuse. */
    for (int i = 0; i < SMALL; i += 2) free(small[i]);

    /* A pool of 8 MiB that the program maps itself, as custom allocators do: malloc never sees it. */
    char *pool = mmap(NULL, 8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pool == MAP_FAILED) return 1;
    memset(pool, 1, 8 << 20);
    return 0;
}
