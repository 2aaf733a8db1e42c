/*
 * The control API (malloctrace.h) with exact expectations. argv[1] selects the scenario:
 *
 * pool     backing block of 1000 B claimed by pool "alpha"; alpha hands out 8 x 100 B, pool "beta" (memory from a
 *          static buffer, no backing) 5 x 64 B; alpha frees 3, a malloc(50) comes and goes, alpha is destroyed
 *          (5 blocks released), the backing block is freed; beta is never destroyed.
 *          Expected: 15 allocation calls, 2170 B allocated (1000 + 800 + 320 + 50), 4 free calls, peak 1120 B in
 *          13 blocks, leaked 320 B in 5 blocks (beta's), no unmatched free.
 * pause    a = 100 B, b = 200 B; pause; c = 300 B, d = 400 B, e = 500 B, free(b), free(c); resume; free(e),
 *          free(d), f = 600 B, free(a). Expected: 3 allocation calls (a, b, f), 900 B, 1 free call (a), peak 700 B
 *          in 2 blocks, leaked 600 B in 1 block, no unmatched free.
 * threads  mark "begin"; another thread pauses; this one allocates 5 blocks of 1000-1004 B; a third thread
 *          resumes; this one allocates 3 blocks of 2000-2002 B; mark "end". Expected between the marks: the
 *          2000-2002 B blocks, none of 1000-1004 B.
 * marks    mark "one"; 4 x 111 B; snapshot "s1"; mark "two"; 2 x 222 B; one 111 B block freed; snapshot "s2";
 *          mark "three". Expected: --from-mark one --to-mark two: 4 calls, 444 B, leaked 444 B in 4 blocks;
 *          --from-mark two --to-mark three: 2 calls, 444 B, leaked 444 B in 2 blocks; live at s1: 444 B in 4
 *          blocks, at s2: 777 B in 5 blocks.
 * poolscan three pools under a leak scan (`check`, `run --leak-kinds`): "kept" carves 2 x 30 B from a backing
 *          block a global still points to; "lost" carves 3 x 40 B from a backing block whose only pointer is
 *          hidden (xor) before exit; "static" hands out 4 x 16 B of a static buffer (no backing). None is
 *          destroyed. Expected: kept's 60 B reachable, lost's 120 B in 3 blocks definite, static's 64 B not
 *          scanned; the backing blocks themselves are not counted (claimed by their pools).
 * untraced prints "result N" (a checksum of the work) through write(2): the same with and without the tracer.
 */
#include "malloctrace.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile sink[16];

static int pool_scenario(void) {
    static char beta_memory[5 * 64];
    char *backing = malloc(1000);
    malloctrace_pool_t alpha = malloctrace_pool_create("alpha");
    malloctrace_pool_backing(alpha, backing);
    for (int i = 0; i < 8; i++) malloctrace_pool_alloc(alpha, backing + i * 100, 100);
    malloctrace_pool_t beta = malloctrace_pool_create("beta");
    for (int i = 0; i < 5; i++) malloctrace_pool_alloc(beta, beta_memory + i * 64, 64);
    for (int i = 0; i < 3; i++) malloctrace_pool_free(alpha, backing + i * 100);
    sink[0] = malloc(50);
    free(sink[0]);
    malloctrace_pool_destroy(alpha);
    free(backing);
    return 0;
}

static char *g_kept_backing;
static uintptr_t g_lost_backing_hidden;

/* Overwrites the dead frames below the caller, where a helper's locals may still hold a pointer. */
__attribute__((noinline)) static void clobber_stack(void) {
    volatile char area[16384];
    for (size_t i = 0; i < sizeof(area); i++) area[i] = 0;
}

__attribute__((noinline)) static void carve(const char *name, char *memory, int blocks, size_t size, int backed) {
    malloctrace_pool_t pool = malloctrace_pool_create(name);
    if (backed) malloctrace_pool_backing(pool, memory);
    for (int i = 0; i < blocks; i++) malloctrace_pool_alloc(pool, memory + (size_t)i * size, size);
}

__attribute__((noinline)) static void make_pools(void) {
    static char static_memory[4 * 16];
    g_kept_backing = malloc(256);
    carve("kept", g_kept_backing, 2, 30, 1);
    char *lost = malloc(512);
    carve("lost", lost, 3, 40, 1);
    g_lost_backing_hidden = (uintptr_t)lost ^ 0x5a5a5a5a5a5a5a5aull;
    carve("static", static_memory, 4, 16, 0);
}

static int poolscan_scenario(void) {
    make_pools();
    clobber_stack();
    return 0;
}

static int pause_scenario(void) {
    void *a = malloc(100), *b = malloc(200);
    malloctrace_pause();
    void *c = malloc(300), *d = malloc(400), *e = malloc(500);
    free(b);
    free(c);
    malloctrace_resume();
    free(e);
    free(d);
    sink[0] = malloc(600);
    free(a);
    return 0;
}

static void *pauser(void *unused) {
    (void)unused;
    malloctrace_pause();
    return NULL;
}

static void *resumer(void *unused) {
    (void)unused;
    malloctrace_resume();
    return NULL;
}

static int threads_scenario(void) {
    pthread_t thread;
    malloctrace_mark("begin");
    if (pthread_create(&thread, NULL, pauser, NULL) != 0 || pthread_join(thread, NULL) != 0) return 2;
    for (int i = 0; i < 5; i++) sink[i] = malloc(1000 + i);
    if (pthread_create(&thread, NULL, resumer, NULL) != 0 || pthread_join(thread, NULL) != 0) return 2;
    for (int i = 0; i < 3; i++) sink[5 + i] = malloc(2000 + i);
    malloctrace_mark("end");
    return 0;
}

static int marks_scenario(void) {
    malloctrace_mark("one");
    for (int i = 0; i < 4; i++) sink[i] = malloc(111);
    malloctrace_snapshot("s1");
    malloctrace_mark("two");
    for (int i = 0; i < 2; i++) sink[4 + i] = malloc(222);
    free(sink[0]);
    malloctrace_snapshot("s2");
    malloctrace_mark("three");
    return 0;
}

/* Work whose result does not depend on the tracer: a checksum over blocks of an annotated arena. */
static int untraced_scenario(void) {
    char *arena = malloc(1 << 16);
    if (arena == NULL) return 2;
    malloctrace_pool_t pool = malloctrace_pool_create("work");
    malloctrace_pool_backing(pool, arena);
    uint64_t sum = 0;
    for (int i = 0; i < 256; i++) {
        char *block = arena + i * 256;
        malloctrace_pool_alloc(pool, block, 256);
        memset(block, i, 256);
        sum = sum * 31 + (unsigned char)block[i % 256] + (uint64_t)malloctrace_is_paused();
        if (i % 64 == 0) malloctrace_mark("step");
    }
    malloctrace_pool_destroy(pool);
    free(arena);
    char line[64];
    int length = 0;
    memcpy(line, "result ", 7);
    length = 7;
    char digits[24];
    int count = 0;
    do digits[count++] = (char)('0' + sum % 10);
    while ((sum /= 10) != 0);
    while (count > 0) line[length++] = digits[--count];
    line[length++] = '\n';
    return write(1, line, (size_t)length) == length ? 0 : 3;
}

int main(int argc, char **argv) {
    if (argc < 2) return 1;
    if (strcmp(argv[1], "pool") == 0) return pool_scenario();
    if (strcmp(argv[1], "poolscan") == 0) return poolscan_scenario();
    if (strcmp(argv[1], "pause") == 0) return pause_scenario();
    if (strcmp(argv[1], "threads") == 0) return threads_scenario();
    if (strcmp(argv[1], "marks") == 0) return marks_scenario();
    if (strcmp(argv[1], "untraced") == 0) return untraced_scenario();
    return 1;
}
