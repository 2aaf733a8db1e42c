/* Single-thread malloc/free churn for reader benchmarks: N allocations of 1..512 bytes through 1..8
 * stack frames (8 distinct stacks), each freeing a random one of 64 slots first. 2N heap events.
 * Usage: churn [N]   (default 2,500,000). Build with -fno-builtin, or the compiler removes the pairs. */
#include <stdint.h>
#include <stdlib.h>

static void *volatile sink;

__attribute__((noinline)) static void *level(int depth, size_t size) {
    if (depth == 0) return malloc(size);
    void *p = level(depth - 1, size);
    sink = p;
    return p;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2500000;
    void *ring[64] = {0};
    uint64_t x = 88172645463325252ull;
    for (long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int slot = x & 63;
        free(ring[slot]);
        ring[slot] = level((int)((x >> 8) % 8), (x >> 16) % 512 + 1);
    }
    for (int i = 0; i < 64; i++) free(ring[i]);
    return 0;
}
