/*
 * Keeps N blocks live at exit (default 1,000,000), for the cost of the exit-time leak scan
 * (`malloctrace run --leak-kinds`). Sizes 16–184 B as in LEAKSCAN.md §4. A global array holds every other
 * block; each block's first word points at an earlier block (so half are reached only through the heap,
 * as in a real object graph), the rest of the block is filled with small integers. Fixed seed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void **g_roots;

int main(int argc, char **argv) {
    size_t count = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    g_roots = malloc((count / 2 + 1) * sizeof(void *));
    if (g_roots == NULL) return 1;
    uint64_t state = 0x9E3779B97F4A7C15ull;
    void *previous = NULL;
    for (size_t i = 0; i < count; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        size_t size = 16 + (size_t)((state >> 33) % 169);
        uint64_t *block = malloc(size);
        if (block == NULL) return 1;
        for (size_t w = 1; w < size / 8; w++) block[w] = w;
        block[0] = (uint64_t)(uintptr_t)previous;
        previous = block;
        if (i % 2 == 0) g_roots[i / 2] = block;
    }
    printf("%zu blocks live\n", count);
    return 0;
}
