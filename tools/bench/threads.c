/* 8 threads of malloc/free churn for reader benchmarks (the merge of thread streams). Blocks are
 * swapped through a shared ring, so about 7 in 8 frees release a block that another thread allocated.
 * Usage: threads [calls per thread]   (default 250,000: 4 M heap events). Build with -fno-builtin. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#define THREADS 8
#define RING 256

static _Atomic(void *) ring[RING];
static long per_thread = 250000;

static void *worker(void *arg) {
    uint64_t x = 88172645463325252ull ^ (uintptr_t)arg * 0x9E3779B97F4A7C15ull;
    for (long i = 0; i < per_thread; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        void *block = malloc((x >> 16) % 512 + 1);
        free(atomic_exchange(&ring[x % RING], block));
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) per_thread = atol(argv[1]);
    pthread_t threads[THREADS];
    for (long t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, worker, (void *)(t + 1));
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
    for (int i = 0; i < RING; i++) free(ring[i]);
    return 0;
}
