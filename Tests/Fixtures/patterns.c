/*
 * Allocation patterns with exactly known counts, bytes, leaks and peaks; see each function.
 * Usage: fixture-patterns leaks | peak | grouping | temporary | all-functions | threads | vfork | fork | grow |
 *        exit | abort | segv | spin
 *        fixture-patterns closefrom DIRECTORY PAIRS
 * Every helper is noinline so that it stays a frame of its own in the recorded stacks.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static void *volatile g_sink; /* keeps the compiler from reasoning about blocks */

static void fail(const char *message) {
    ssize_t ignored = write(2, message, strlen(message));
    (void)ignored;
    _exit(99);
}

/* leaks: 7 x 100 B from leak_hundreds, 10 x 33 B (calloc) from leak_calloc_33,
 * plus 5000 malloc/free pairs of 1..64 B from churn that all get freed. */
NOINLINE static void leak_hundreds(void) {
    for (int i = 0; i < 7; i++) g_sink = malloc(100);
}

NOINLINE static void leak_calloc_33(void) {
    for (int i = 0; i < 10; i++) g_sink = calloc(1, 33);
}

NOINLINE static void churn(int count) {
    for (int i = 0; i < count; i++) {
        void *block = malloc((size_t)(i % 64) + 1);
        g_sink = block;
        free(block);
    }
}

static int pattern_leaks(void) {
    churn(2500);
    leak_hundreds();
    churn(2500);
    leak_calloc_33();
    return 0;
}

/* peak: 10 x 1000 B live (10,000), free 5 (5,000), one 20,000 B block (25,000 = the peak, 6 blocks),
 * free everything, then 24,999 B in one block (below the peak). Nothing leaks. */
NOINLINE static void *peak_block(size_t size) { return malloc(size); }
NOINLINE static void *peak_big_block(size_t size) { return malloc(size); }

static int pattern_peak(void) {
    void *blocks[10];
    for (int i = 0; i < 10; i++) blocks[i] = peak_block(1000);
    for (int i = 0; i < 5; i++) free(blocks[i]);
    void *big = peak_big_block(20000);
    for (int i = 5; i < 10; i++) free(blocks[i]);
    free(big);
    void *almost = peak_block(24999);
    free(almost);
    return 0;
}

/* grouping: grouped_block() is called from two callers whose blocks are never live together. first_caller
 * keeps 4 x 1000 B live, then they are freed; second_caller then keeps 3 x 2000 B; other_block holds 500 B
 * throughout. Peak 6,500 B in 4 blocks: grouped_block 6,000 (second caller's stack) + other_block 500.
 * Adding up each stack's own maximum (heaptrack's merged peak) would wrongly give grouped_block 10,000.
 * allocation calls 8, nothing leaks. */
NOINLINE static void *grouped_block(size_t size) { return malloc(size); }
NOINLINE static void first_caller(void **blocks) {
    for (int i = 0; i < 4; i++) blocks[i] = grouped_block(1000);
}
NOINLINE static void second_caller(void **blocks) {
    for (int i = 0; i < 3; i++) blocks[i] = grouped_block(2000);
}
NOINLINE static void *other_block(void) { return malloc(500); }

static int pattern_grouping(void) {
    void *other = other_block();
    void *blocks[4];
    first_caller(blocks);
    for (int i = 0; i < 4; i++) free(blocks[i]);
    second_caller(blocks);
    for (int i = 0; i < 3; i++) free(blocks[i]);
    free(other);
    return 0;
}

/* temporary: 10 rounds of a = malloc(10), b = malloc(20), c = malloc(30), then free(a), free(b), free(c):
 * a is freed with 2 other allocations of the thread in between, b with 1, c with 0.
 * Temporary allocations: 10 (threshold 0: the c blocks, 300 B), 20 (threshold 1), 30 (threshold 2). */
NOINLINE static void temporary_rounds(void) {
    for (int i = 0; i < 10; i++) {
        void *a = malloc(10), *b = malloc(20), *c = malloc(30);
        free(a);
        free(b);
        free(c);
    }
}

/* all-functions: one successful call of each interposed function, each block freed; known sizes:
 *   malloc 10, calloc 3x7=21, realloc NULL->30, realloc 30->4000 (moves or not), reallocarray 5x8=40,
 *   posix_memalign(64) 50, aligned_alloc(128) 256, memalign(4096) 70, valloc 80, pvalloc 90,
 *   then realloc(p, 0) frees the reallocarray block.
 * allocation calls 10, free calls 9 (8 free + realloc(p, 0)), bytes 10+21+30+4000+40+50+256+70+80+90. */
static int pattern_all_functions(void) {
    char *a = malloc(10);
    char *b = calloc(3, 7);
    for (int i = 0; i < 21; i++)
        if (b[i] != 0) fail("calloc memory not zeroed\n");
    char *c = realloc(NULL, 30);
    memset(c, 'x', 30);
    c = realloc(c, 4000);
    if (c[29] != 'x') fail("realloc lost contents\n");
    char *d = reallocarray(NULL, 5, 8);
    void *e = NULL;
    if (posix_memalign(&e, 64, 50) != 0 || ((uintptr_t)e & 63) != 0) fail("posix_memalign\n");
    void *f = aligned_alloc(128, 256);
    if (((uintptr_t)f & 127) != 0) fail("aligned_alloc alignment\n");
    void *g = memalign(4096, 70);
    if (((uintptr_t)g & 4095) != 0) fail("memalign alignment\n");
    void *h = valloc(80);
    void *i = pvalloc(90);
    if (((uintptr_t)h & 4095) != 0 || ((uintptr_t)i & 4095) != 0) fail("valloc/pvalloc alignment\n");
    if (malloc_usable_size(a) < 10) fail("malloc_usable_size\n");
    if (realloc(d, 0) != NULL) fail("realloc(p, 0) should free and return NULL\n");
    free(a);
    free(b);
    free(c);
    free(e);
    free(f);
    free(g);
    free(h);
    free(i);
    free(NULL); /* not recorded */
    return 0;
}

/* threads: 4 workers; worker k allocates 2000 blocks of (k+1)*16 B and hands each to worker (k+1)%4,
 * which frees it. Fixture allocation calls: 8000, bytes 2000*(16+32+48+64) = 320,000, nothing leaks. */
#define WORKERS 4
#define PER_WORKER 2000

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    void *slots[PER_WORKER];
    int filled;
} mailbox_t;

static mailbox_t g_mailboxes[WORKERS];

NOINLINE static void *thread_block(size_t size) { return malloc(size); }

static void *worker(void *argument) {
    int self = (int)(intptr_t)argument;
    mailbox_t *out = &g_mailboxes[(self + 1) % WORKERS];
    mailbox_t *in = &g_mailboxes[self];
    for (int i = 0; i < PER_WORKER; i++) {
        void *block = thread_block((size_t)(self + 1) * 16);
        pthread_mutex_lock(&out->lock);
        out->slots[out->filled++] = block;
        pthread_cond_signal(&out->ready);
        pthread_mutex_unlock(&out->lock);
    }
    for (int freed = 0; freed < PER_WORKER;) {
        pthread_mutex_lock(&in->lock);
        while (in->filled == freed) pthread_cond_wait(&in->ready, &in->lock);
        int available = in->filled;
        pthread_mutex_unlock(&in->lock);
        for (; freed < available; freed++) free(in->slots[freed]);
    }
    return NULL;
}

static int pattern_threads(void) {
    pthread_t threads[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        pthread_mutex_init(&g_mailboxes[i].lock, NULL);
        pthread_cond_init(&g_mailboxes[i].ready, NULL);
    }
    for (int i = 0; i < WORKERS; i++) pthread_create(&threads[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < WORKERS; i++) pthread_join(threads[i], NULL);
    return 0;
}

/* vfork: the child shares our memory and fails to exec; its _exit must not end our trace.
 * Then 100 malloc/free pairs: allocation calls 100, free calls 100, normal exit. */
static int pattern_vfork(void) {
    pid_t child = vfork();
    if (child == 0) {
        execl("/nonexistent/program", "program", (char *)0);
        _exit(127);
    }
    int status;
    waitpid(child, &status, 0);
    for (int i = 0; i < 100; i++) free(malloc(1000));
    return 0;
}

/* fork: the parent leaks 5 x 50 B, forks; the child leaks 7 x 70 B and exits; the parent waits and leaks
 * 2 x 20 B more. With MALLOCTRACE_FOLLOW_CHILDREN=1 the child writes a trace of its own. */
NOINLINE static void leak_in_parent(int count, size_t size) {
    for (int i = 0; i < count; i++) g_sink = malloc(size);
}

NOINLINE static void leak_in_child(void) {
    for (int i = 0; i < 7; i++) g_sink = malloc(70);
}

static int pattern_fork(void) {
    leak_in_parent(5, 50);
    pid_t child = fork();
    if (child == 0) {
        leak_in_child();
        exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    leak_in_parent(2, 20);
    return status == 0 ? 0 : 1;
}

/* grow: 600,000 malloc/free pairs of 200..4199 B, enough events for a trace of more than one 4 MiB window
 * (about 5.6 MB), then one line on stdout. Nothing leaks. */
#define GROW_PAIRS 600000

static int pattern_grow(void) {
    for (int i = 0; i < GROW_PAIRS; i++) {
        void *block = malloc((size_t)(i % 4000) + 200);
        g_sink = block;
        free(block);
    }
    static const char line[] = "grow: 600000 blocks\n";
    return write(1, line, sizeof(line) - 1) == sizeof(line) - 1 ? 0 : 1;
}

/* closefrom DIRECTORY PAIRS: closes every descriptor from 3 up (the tracer's too, as a daemon does), opens
 * DIRECTORY/out.0 .. out.7 and writes "file N\n" into each, then makes PAIRS malloc/free pairs and exits
 * with the files still open. Their descriptors reuse the numbers the tracer had: the files must keep
 * exactly what the program wrote. One line on stdout. */
static int pattern_closefrom(const char *directory, long pairs) {
    closefrom(3);
    for (int i = 0; i < 8; i++) {
        char path[4096], text[] = "file N\n";
        size_t length = strlen(directory);
        if (length + 8 > sizeof(path)) return 2;
        memcpy(path, directory, length);
        memcpy(path + length, "/out.N", 7);
        path[length + 5] = text[5] = (char)('0' + i);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, text, 7) != 7) return 3;
    }
    for (long i = 0; i < pairs; i++) {
        void *block = malloc((size_t)(i % 4000) + 200);
        g_sink = block;
        free(block);
    }
    static const char line[] = "closefrom: 8 files\n";
    return write(1, line, sizeof(line) - 1) == sizeof(line) - 1 ? 0 : 1;
}

/* exit / abort / segv: 3 x 64 B live from block_before_end, then the process ends that way (_exit(3),
 * abort(), SIGSEGV). spin: same blocks, then loops until killed. */
NOINLINE static void block_before_end(void) {
    for (int i = 0; i < 3; i++) g_sink = malloc(64);
}

/* sampling (for --sample-rate 4096): known totals to estimate, and blocks every sample holds.
 *   sampled_small: 400,000 x 64 B, each freed at once (25,600,000 B);
 *   sampled_leak: 8 x 1 MiB never freed (sampled with probability 1 - e^-256: always);
 *   sampled_realloc: 16 blocks, each grown by realloc from 16 B to 1 MiB by doubling, then freed;
 *   sampled_thread_block: 4 threads x 500 x 64 KiB, each block freed by the next thread.
 * allocation calls 400,000 + 8 + 16 x 17 + 2,000 = 402,280 (each realloc is one call, the first from NULL);
 * bytes 25,600,000 + 8,388,608 + 16 x 2,097,136 + 2,000 x 65,536 = 198,614,784.
 * Leaks: exactly the 8 MiB from sampled_leak. */
NOINLINE static void sampled_small(void) {
    for (int i = 0; i < 400000; i++) {
        void *block = malloc(64);
        g_sink = block;
        free(block);
    }
}

NOINLINE static void sampled_leak(void) {
    for (int i = 0; i < 8; i++) g_sink = malloc(1 << 20);
}

NOINLINE static void sampled_realloc(void) {
    for (int i = 0; i < 16; i++) {
        void *block = NULL;
        for (size_t size = 16; size <= (1 << 20); size *= 2) {
            block = realloc(block, size);
            if (block == NULL) fail("realloc failed\n");
        }
        free(block);
    }
}

#define SAMPLING_THREADS 4
#define SAMPLING_BLOCKS 500
static void *g_sampling_blocks[SAMPLING_THREADS][SAMPLING_BLOCKS];
static pthread_barrier_t g_sampling_barrier;

NOINLINE static void *sampled_thread_block(void) { return malloc(64 << 10); }

static void *sampling_worker(void *argument) {
    int index = (int)(intptr_t)argument;
    for (int i = 0; i < SAMPLING_BLOCKS; i++) g_sampling_blocks[index][i] = sampled_thread_block();
    pthread_barrier_wait(&g_sampling_barrier);
    for (int i = 0; i < SAMPLING_BLOCKS; i++) free(g_sampling_blocks[(index + 1) % SAMPLING_THREADS][i]);
    return NULL;
}

static int pattern_sampling(void) {
    sampled_small();
    sampled_leak();
    sampled_realloc();
    pthread_t threads[SAMPLING_THREADS];
    pthread_barrier_init(&g_sampling_barrier, NULL, SAMPLING_THREADS);
    for (int i = 0; i < SAMPLING_THREADS; i++) pthread_create(&threads[i], NULL, sampling_worker, (void *)(intptr_t)i);
    for (int i = 0; i < SAMPLING_THREADS; i++) pthread_join(threads[i], NULL);
    return 0;
}

int main(int argc, char **argv) {
    const char *pattern = argc > 1 ? argv[1] : "";
    if (strcmp(pattern, "leaks") == 0) return pattern_leaks();
    if (strcmp(pattern, "peak") == 0) return pattern_peak();
    if (strcmp(pattern, "grouping") == 0) return pattern_grouping();
    if (strcmp(pattern, "temporary") == 0) {
        temporary_rounds();
        return 0;
    }
    if (strcmp(pattern, "all-functions") == 0) return pattern_all_functions();
    if (strcmp(pattern, "threads") == 0) return pattern_threads();
    if (strcmp(pattern, "vfork") == 0) return pattern_vfork();
    if (strcmp(pattern, "fork") == 0) return pattern_fork();
    if (strcmp(pattern, "grow") == 0) return pattern_grow();
    if (strcmp(pattern, "sampling") == 0) return pattern_sampling();
    if (strcmp(pattern, "closefrom") == 0 && argc == 4) return pattern_closefrom(argv[2], atol(argv[3]));
    block_before_end();
    if (strcmp(pattern, "exit") == 0) _exit(3);
    if (strcmp(pattern, "abort") == 0) abort();
    if (strcmp(pattern, "segv") == 0) raise(SIGSEGV);
    if (strcmp(pattern, "spin") == 0) {
        ssize_t ignored = write(1, "ready\n", 6);
        (void)ignored;
        for (;;) pause();
    }
    fail("usage: fixture-patterns leaks|peak|grouping|temporary|all-functions|threads|vfork|fork|grow|exit|abort|"
         "segv|spin\n");
    return 2;
}
