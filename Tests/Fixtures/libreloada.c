/*
 * A shared library for fixture-reload: reload_alloc_a(n) makes n calls to malloc(40), all from one site,
 * and frees them. libreloadb.c is the same file with b for a and 48 for 40: the same code layout, so that
 * when fixture-reload loads it where this one was, its call site has the same address.
 */
#include <stdlib.h>

static void *volatile g_blocks[128];

__attribute__((noinline)) void reload_alloc_a(int count) {
    for (int i = 0; i < count; i++) g_blocks[i & 127] = malloc(40);
    for (int i = 0; i < 128 && i < count; i++) free(g_blocks[i]);
}
