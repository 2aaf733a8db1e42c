/* The control API's cost in a program that is not traced (tools/bench/api.sh).
 *
 *   api tight N   N rounds of pool_alloc + pool_free on a bump arena, nothing else: the calls' own cost
 *   api arena N   N rounds of a realistic arena user: bump-allocate 48 B, fill it, hash it, every 4096 rounds a
 *                 malloc'd chunk, a mark and a reset (destroy + create)
 *
 * Built twice: as is, and with -DMALLOCTRACE_DISABLE (every call compiled away). Prints a checksum so that
 * the compiler keeps the work. */
#include "malloctrace.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t tight(long rounds) {
    static char arena[1 << 16];
    malloctrace_pool_t pool = malloctrace_pool_create("tight");
    uint64_t sum = 0;
    for (long i = 0; i < rounds; i++) {
        char *block = arena + (i & 1023) * 64;
        malloctrace_pool_alloc(pool, block, 64);
        sum += (uintptr_t)block & 0xff;
        malloctrace_pool_free(pool, block);
    }
    malloctrace_pool_destroy(pool);
    return sum;
}

static uint64_t realistic(long rounds) {
    enum { chunk_bytes = 4096 * 48 };
    malloctrace_pool_t pool = malloctrace_pool_create("arena");
    char *chunk = NULL;
    size_t used = chunk_bytes;
    uint64_t sum = 0;
    for (long i = 0; i < rounds; i++) {
        if (used + 48 > chunk_bytes) {
            malloctrace_pool_destroy(pool);
            free(chunk);
            malloctrace_mark("chunk");
            pool = malloctrace_pool_create("arena");
            chunk = malloc(chunk_bytes);
            if (chunk == NULL) abort();
            malloctrace_pool_backing(pool, chunk);
            used = 0;
        }
        char *block = chunk + used;
        used += 48;
        malloctrace_pool_alloc(pool, block, 48);
        memset(block, (int)i, 48);
        for (int b = 0; b < 48; b += 8) sum = sum * 1099511628211u + (unsigned char)block[b];
    }
    malloctrace_pool_destroy(pool);
    free(chunk);
    return sum;
}

int main(int argc, char **argv) {
    if (argc < 3) return 1;
    long rounds = atol(argv[2]);
    uint64_t sum = strcmp(argv[1], "tight") == 0 ? tight(rounds) : realistic(rounds);
    printf("%llu\n", (unsigned long long)sum);
    return 0;
}
