/* Synthetic malloc/free churn for the malloctrace benchmark suite.
 *
 *   churn THREADS TOTAL_ALLOCATION_CALLS
 *
 * Every thread runs the same deterministic loop (xorshift PRNG seeded by its
 * index) and makes TOTAL/THREADS allocation calls (a mix of malloc, calloc
 * and realloc) from 512 call sites.  Each site has its own stack depth (0-23
 * extra frames through four different noinline functions; with the three
 * call sites in the loop and three in do_alloc, a few thousand distinct
 * allocation stacks) and its own size from 1 B to 64 KiB (mostly
 * small); one site in four varies its size over 8 values.
 *
 * Blocks live in a per-thread table of slots; about one block in four is
 * instead handed to the *next* thread through a mutex-protected queue (in
 * batches of 32) and freed there.  With THREADS == 1 the "next thread" is the
 * thread itself, so the single-thread and multi-thread runs execute exactly
 * the same code; only cross-thread frees and contention differ.
 *
 * The number of distinct (size, stack) pairs is kept to a few thousand on
 * purpose: heaptrack 1.4.0's heaptrack_interpret died with std::bad_alloc
 * (after growing to all of the machine's memory) on an earlier version of
 * this program that drew random sizes at every one of ~10,000 stacks; it
 * failed once about 30,000 distinct pairs had been seen.
 *
 * Build with -O2 -fno-builtin so the compiler keeps every malloc/free pair.
 * Prints one line: the number of allocation calls made (for checking).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 4096
#define BATCH 32
#define SITES 512
#define MAX_THREADS 64

struct block {
    struct block *next;
};

struct queue {
    pthread_mutex_t lock;
    struct block *head;
    char pad[64];
};

static struct queue queues[MAX_THREADS];
static int nthreads;
static long calls_per_thread;
static pthread_barrier_t barrier;
static volatile uintptr_t sink;

static inline uint64_t next_random(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

static size_t pick_size(uint64_t r) {
    unsigned class = (unsigned)(r % 100);
    if (class < 55) return 1 + (size_t)((r >> 8) % 64);     /* tiny */
    if (class < 85) return 64 + (size_t)((r >> 8) % 448);   /* small */
    if (class < 97) return 512 + (size_t)((r >> 8) % 3584); /* medium */
    return 4096 + (size_t)((r >> 8) % 61440);               /* large */
}

/* The allocation itself, at the bottom of a stack of varied depth. */
__attribute__((noinline)) static void *do_alloc(unsigned kind, size_t size, void *old) {
    void *p;
    switch (kind % 8) {
    case 0:
    case 1:
        p = calloc(1, size);
        break;
    case 2:
        p = realloc(old, size); /* old may be NULL: then it is a plain allocation */
        break;
    default:
        p = malloc(size);
        break;
    }
    if (p == NULL) abort();
    memset(p, 0xA5, size < 64 ? size : 64);
    return p;
}

typedef void *(*level_fn)(unsigned depth, unsigned path, unsigned kind, size_t size, void *old);
static void *level_a(unsigned, unsigned, unsigned, size_t, void *);
static void *level_b(unsigned, unsigned, unsigned, size_t, void *);
static void *level_c(unsigned, unsigned, unsigned, size_t, void *);
static void *level_d(unsigned, unsigned, unsigned, size_t, void *);
static level_fn const levels[4] = {level_a, level_b, level_c, level_d};

/* Each level picks the next one from two bits of `path`; the `sink` update
 * after the call prevents tail calls, so every level is a real frame. */
#define LEVEL(name, salt)                                                                                              \
    __attribute__((noinline)) static void *name(unsigned depth, unsigned path, unsigned kind, size_t size,             \
                                                void *old) {                                                           \
        void *p = depth == 0 ? do_alloc(kind, size, old)                                                               \
                             : levels[path & 3](depth - 1, path >> 2 | path << 30, kind, size, old);                   \
        sink += (uintptr_t)p & (salt);                                                                                 \
        return p;                                                                                                      \
    }
LEVEL(level_a, 1)
LEVEL(level_b, 2)
LEVEL(level_c, 4)
LEVEL(level_d, 8)

static void push_batch(struct queue *q, struct block *first, struct block *last) {
    pthread_mutex_lock(&q->lock);
    last->next = q->head;
    q->head = first;
    pthread_mutex_unlock(&q->lock);
}

static long drain(struct queue *q) {
    pthread_mutex_lock(&q->lock);
    struct block *b = q->head;
    q->head = NULL;
    pthread_mutex_unlock(&q->lock);
    long n = 0;
    while (b != NULL) {
        struct block *next = b->next;
        free(b);
        b = next;
        n++;
    }
    return n;
}

static void *worker(void *arg) {
    int self = (int)(intptr_t)arg;
    uint64_t state = 0x9E3779B97F4A7C15ull ^ ((uint64_t)(self + 1) * 0xD1B54A32D192ED03ull);
    void **slots = calloc(SLOTS, sizeof(void *));
    struct queue *target = &queues[(self + 1) % nthreads];
    struct queue *mine = &queues[self];
    struct block *batch_first = NULL, *batch_last = NULL;
    int batch_len = 0;

    for (long i = 0; i < calls_per_thread; i++) {
        uint64_t r = next_random(&state);
        /* One of SITES call sites: each has its own stack depth, path and size (like a
         * struct), and one site in four allocates one of 8 sizes (like a string). */
        uint32_t site = (uint32_t)((r >> 24) % SITES);
        unsigned depth = site % 24;
        unsigned path = site * 2654435761u;
        size_t size = pick_size((uint64_t)site * 0x9E3779B97F4A7C15ull >> 16);
        if (site % 4 == 0) size += 16 * ((r >> 8) & 7);
        unsigned kind = (unsigned)(r >> 29) & 7;
        unsigned slot = (unsigned)((r >> 40) % SLOTS);

        if ((r >> 60) < 4) {
            /* Hand this block to the next thread; it will free it. */
            if (size < sizeof(struct block)) size = sizeof(struct block);
            struct block *b = levels[path & 3](depth, path >> 2, kind == 2 ? 3 : kind, size, NULL);
            b->next = batch_first;
            if (batch_first == NULL) batch_last = b;
            batch_first = b;
            if (++batch_len == BATCH) {
                push_batch(target, batch_first, batch_last);
                batch_first = batch_last = NULL;
                batch_len = 0;
            }
        } else if (kind == 2) {
            /* realloc the slot's block in place of freeing it */
            slots[slot] = levels[path & 3](depth, path >> 2, kind, size, slots[slot]);
        } else {
            free(slots[slot]);
            slots[slot] = levels[path & 3](depth, path >> 2, kind, size, NULL);
        }
        if ((i & 255) == 255) drain(mine);
    }
    if (batch_first != NULL) push_batch(target, batch_first, batch_last);
    pthread_barrier_wait(&barrier); /* every push is done: drain what is left */
    drain(mine);
    for (unsigned s = 0; s < SLOTS; s++) free(slots[s]);
    free(slots);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s THREADS TOTAL_ALLOCATION_CALLS\n", argv[0]);
        return 2;
    }
    nthreads = atoi(argv[1]);
    long total = atol(argv[2]);
    if (nthreads < 1 || nthreads > MAX_THREADS || total < 1) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    calls_per_thread = total / nthreads;
    for (int t = 0; t < nthreads; t++) pthread_mutex_init(&queues[t].lock, NULL);
    pthread_barrier_init(&barrier, NULL, (unsigned)nthreads);
    pthread_t threads[MAX_THREADS];
    for (int t = 1; t < nthreads; t++) pthread_create(&threads[t], NULL, worker, (void *)(intptr_t)t);
    worker((void *)0);
    for (int t = 1; t < nthreads; t++) pthread_join(threads[t], NULL);
    printf("%ld allocation calls in %d thread(s)\n", calls_per_thread * nthreads, nthreads);
    return 0;
}
