/*
 * A shared library for fixture-reload: reload_alloc_b(n) makes n calls to malloc(48), all from one site,
 * and frees them. libreloada.c is the same file with a for b and 40 for 48: the same code layout, so that
 * when fixture-reload loads it where this one was, its call site has the same address.
 */
#include <stdlib.h>

static void *volatile g_blocks[128];

__attribute__((noinline)) void reload_alloc_b(int count) {
    for (int i = 0; i < count; i++) g_blocks[i & 127] = malloc(48);
    for (int i = 0; i < 128 && i < count; i++) free(g_blocks[i]);
}
