/*
 * Many threads, many operations.
 * Usage: fixture-stress threads N OPS   N threads (<= 64); thread k allocates OPS blocks of 8 * (k % 8 + 1) B
 *                                       in alloc_block and hands each to thread (k + 1) % N, which frees it.
 *                                       Fixture allocation calls N * OPS, frees N * OPS, nothing leaks.
 *        fixture-stress fork-threads F  4 threads allocate and free without pause while the main thread
 *                                       forks F times; each child makes 100 allocations in child_block, frees
 *                                       them and calls _exit(0). Exits 0 when every child did.
 *        fixture-stress stack-race      4 threads at once each walk all 4,096 paths of a 12-level tree of
 *                                       calls (left_step / right_step, from the path's bits), each in its
 *                                       own order, and free one block of 8 B allocated in leaf_alloc at the
 *                                       end of every path: 16,384 allocation calls from 4,096 distinct stacks,
 *                                       most of them used by some thread before the chunk that defines them.
 * Bookkeeping memory comes from mmap so that only the blocks above are allocation calls.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define MAX_THREADS 64

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    void **slots;
    long filled;
} mailbox_t;

static mailbox_t g_boxes[MAX_THREADS];
static int g_threads;
static long g_operations;

NOINLINE static void *alloc_block(size_t size) { return malloc(size); }

static void *worker(void *argument) {
    int self = (int)(intptr_t)argument;
    mailbox_t *out = &g_boxes[(self + 1) % g_threads];
    mailbox_t *in = &g_boxes[self];
    size_t size = (size_t)(8 * (self % 8 + 1));
    for (long i = 0; i < g_operations; i++) {
        void *block = alloc_block(size);
        pthread_mutex_lock(&out->lock);
        out->slots[out->filled++] = block;
        pthread_cond_signal(&out->ready);
        pthread_mutex_unlock(&out->lock);
    }
    for (long freed = 0; freed < g_operations;) {
        pthread_mutex_lock(&in->lock);
        while (in->filled == freed) pthread_cond_wait(&in->ready, &in->lock);
        long available = in->filled;
        pthread_mutex_unlock(&in->lock);
        for (; freed < available; freed++) free(in->slots[freed]);
    }
    return NULL;
}

static int stress_threads(int threads, long operations) {
    if (threads < 1 || threads > MAX_THREADS || operations < 1) return 2;
    g_threads = threads;
    g_operations = operations;
    for (int i = 0; i < threads; i++) {
        pthread_mutex_init(&g_boxes[i].lock, NULL);
        pthread_cond_init(&g_boxes[i].ready, NULL);
        g_boxes[i].slots =
            mmap(NULL, (size_t)operations * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (g_boxes[i].slots == MAP_FAILED) return 3;
    }
    pthread_t ids[MAX_THREADS];
    for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
    return 0;
}

static atomic_bool g_stop;
static void *volatile g_sink;

static void *churner(void *argument) {
    (void)argument;
    while (!atomic_load(&g_stop)) {
        void *block = malloc(64);
        g_sink = block;
        free(block);
    }
    return NULL;
}

NOINLINE static void *child_block(void) { return malloc(32); }

static int fork_while_threads_allocate(int forks) {
    pthread_t ids[4];
    for (int i = 0; i < 4; i++) pthread_create(&ids[i], NULL, churner, NULL);
    int failures = 0;
    for (int f = 0; f < forks; f++) {
        pid_t child = fork();
        if (child == 0) {
            void *blocks[100];
            for (int i = 0; i < 100; i++) blocks[i] = child_block();
            for (int i = 0; i < 100; i++) free(blocks[i]);
            _exit(0);
        }
        int status = 0;
        if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failures++;
    }
    atomic_store(&g_stop, true);
    for (int i = 0; i < 4; i++) pthread_join(ids[i], NULL);
    return failures == 0 ? 0 : 1;
}

#define TREE_LEVELS 12

NOINLINE static void leaf_alloc(void) { free(malloc(8)); }

NOINLINE static void right_step(unsigned path, int level);
NOINLINE static void left_step(unsigned path, int level) {
    if (level == TREE_LEVELS) {
        leaf_alloc();
    } else if (path >> level & 1) {
        right_step(path, level + 1);
    } else {
        left_step(path, level + 1);
    }
    __asm__ volatile("" ::: "memory"); /* no tail call: every level stays a frame */
}
NOINLINE static void right_step(unsigned path, int level) {
    if (level == TREE_LEVELS) {
        leaf_alloc();
    } else if (path >> level & 1) {
        right_step(path, level + 1);
    } else {
        left_step(path, level + 1);
    }
    __asm__ volatile("" ::: "memory");
}

static atomic_int g_started;

static void *walk_paths(void *argument) {
    unsigned offset = (unsigned)(uintptr_t)argument * 1024;
    atomic_fetch_add(&g_started, 1);
    while (atomic_load(&g_started) < 4) {
    }
    for (unsigned i = 0; i < (1u << TREE_LEVELS); i++) left_step((i + offset) & ((1u << TREE_LEVELS) - 1), 0);
    return NULL;
}

static int stack_race(void) {
    pthread_t ids[4];
    for (uintptr_t i = 0; i < 4; i++) pthread_create(&ids[i], NULL, walk_paths, (void *)i);
    for (int i = 0; i < 4; i++) pthread_join(ids[i], NULL);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "stack-race") == 0) return stack_race();
    if (argc == 4 && strcmp(argv[1], "threads") == 0) return stress_threads(atoi(argv[2]), atol(argv[3]));
    if (argc == 3 && strcmp(argv[1], "fork-threads") == 0) return fork_while_threads_allocate(atoi(argv[2]));
    return 2;
}
