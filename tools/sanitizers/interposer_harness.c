/*
 * Drives the preload library's recorder, trace file, stack interner and module map from several threads,
 * without its malloc hooks (interpose.c), so that those sources can be compiled together with a sanitizer
 * runtime (-fsanitize=thread, -fsanitize=address,undefined). The hooks themselves cannot be: a sanitizer's
 * runtime defines malloc too, and the one that comes first in symbol lookup wins (tools/sanitizers.sh).
 *
 * Each worker records what a hooked malloc, realloc and free would record, from call stacks shaped by a
 * number (an alternating chain of two functions), so that threads look up stacks other threads interned
 * and intern new ones concurrently; one worker also dlopens and dlcloses libm so that the module map
 * changes under the others. Every 256th iteration a worker also uses the control core (control.c) as the
 * malloctrace_* API would: a pool of its own with four blocks (two freed, two released by the pool's
 * destruction), a mark and a snapshot, so that pool ids, names and control events race with the rest.
 * Usage (MALLOCTRACE_OUTPUT set):
 *   interposer-harness THREADS ITERATIONS
 * prints "harness: N allocations, N frees" for the script to compare with the trace.
 */
#include "internal.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

static long g_iterations;

#define POOL_EVERY 256 /* iterations between two uses of the control core */
#define POOL_BLOCKS 4  /* blocks a pool hands out each time; the first half is freed, the rest destroyed */
#define POOL_BLOCK_SIZE 48

/* Defined in interpose.c, which is not compiled here; lifecycle.c calls it at start. */
void mt_register_quick_exit_handler(void) {}

static void record_pair(uintptr_t id) {
    /* The library records with the guard set and calls libc directly, exactly as a hook does. */
    t_guard = 1;
    void *block = real.malloc(id % 256 + 1);
    mt_record_alloc(MT_EVENT_MALLOC, mt_next_sequence(), id % 256 + 1, block, 0);
    uint64_t before = mt_next_sequence();
    void *moved = real.realloc(block, id % 512 + 1);
    mt_record_realloc(MT_EVENT_REALLOC, before, mt_next_sequence(), id % 512 + 1, block, moved);
    mt_record_free(mt_next_sequence(), moved);
    real.free(moved);
    t_guard = 0;
}

NOINLINE static void left(uintptr_t id, int depth);
NOINLINE static void right(uintptr_t id, int depth);

NOINLINE static void left(uintptr_t id, int depth) {
    if (depth == 0) return record_pair(id);
    ((id >> depth) & 1 ? right : left)(id, depth - 1);
    __asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
}

NOINLINE static void right(uintptr_t id, int depth) {
    if (depth == 0) return record_pair(id);
    ((id >> depth) & 1 ? right : left)(id, depth - 1);
    __asm__ volatile("" ::: "memory");
}

/* A pool's life as a program annotated with malloctrace.h would live it. Pool blocks are carved from a buffer
 * of the thread's own (never malloc'd, so nothing is counted twice). */
static void use_control_core(uintptr_t self) {
    static _Thread_local char arena[POOL_BLOCKS * POOL_BLOCK_SIZE];
    uint64_t pool = mt_control_pool_create(self % 2 ? "odd" : "even");
    for (int i = 0; i < POOL_BLOCKS; i++) mt_control_pool_alloc(pool, arena + i * POOL_BLOCK_SIZE, POOL_BLOCK_SIZE);
    for (int i = 0; i < POOL_BLOCKS / 2; i++) mt_control_pool_free(pool, arena + i * POOL_BLOCK_SIZE);
    mt_control_mark("harness");
    mt_control_snapshot(self % 2 ? "odd" : "even");
    mt_control_pool_destroy(pool);
}

static void *worker(void *argument) {
    uintptr_t self = (uintptr_t)argument;
    for (long i = 0; i < g_iterations; i++) {
        /* Mostly one of 2,048 stacks that every thread uses (looked up without a lock once another thread
         * interned it); every 8th a stack of this thread's own, 20 frames deep (interned under the mutex;
         * with 4 x 80,000 iterations there are 40,000 of them and the table grows past 32,768). */
        if (i % 8 == 0) {
            left(((uintptr_t)(i / 8) * 64 + self) << 1, 20);
        } else {
            uintptr_t shared = (uintptr_t)(i * 7) % 2048;
            left(shared << 1, 12 + (int)(shared % 5));
        }
        if (i % POOL_EVERY == 0) use_control_core(self);
        if (self == 0 && i % 500 == 0) {
            void *library = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
            if (library != NULL) dlclose(library);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: interposer-harness THREADS ITERATIONS\n");
        return 2;
    }
    int threads = atoi(argv[1]);
    g_iterations = atol(argv[2]);
    if (atomic_load(&g_status) != MT_STATUS_TRACING) {
        fprintf(stderr, "harness: tracing did not start (is MALLOCTRACE_OUTPUT set?)\n");
        return 1;
    }
    pthread_t workers[64];
    if (threads < 1 || threads > 64) return 2;
    for (int i = 0; i < threads; i++) pthread_create(&workers[i], NULL, worker, (void *)(uintptr_t)i);
    for (int i = 0; i < threads; i++) pthread_join(workers[i], NULL);
    long total = threads * g_iterations;
    long pool_rounds = threads * ((g_iterations + POOL_EVERY - 1) / POOL_EVERY);
    printf("harness: %ld allocations, %ld frees\n", 2 * total + POOL_BLOCKS * pool_rounds,
           total + POOL_BLOCKS / 2 * pool_rounds);
    return 0;
}
