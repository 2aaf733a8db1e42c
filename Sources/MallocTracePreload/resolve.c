/* Finding libc's functions behind ours, and the arena that serves allocations made meanwhile. */
#include "internal.h"

#include <dlfcn.h>
#include <string.h>

mt_real_functions_t real;

bool mt_resolve_real_functions(void) {
    mt_real_functions_t found;
#define MT_REAL(ret, name, params)                                                                                     \
    found.name = (ret(*) params)dlsym(RTLD_NEXT, #name);                                                               \
    if (found.name == NULL) {                                                                                          \
        mt_fail("cannot find libc's " #name " (dlsym RTLD_NEXT failed); tracing is off", NULL);                        \
        return false;                                                                                                  \
    }
#include "hooks.def"
#undef MT_REAL
    real = found;
    return true;
}

/*
 * glibc 2.36's dlsym does not allocate on success, but other libcs and failed lookups do (dlerror
 * buffers). Those calls arrive here before `real` is filled, so they are served from this static
 * arena. Its blocks are never passed to the real free (a range check in every hook sees to that)
 * and are never reused.
 */
_Alignas(64) uint8_t g_bootstrap[MT_BOOTSTRAP_BYTES];
static _Atomic size_t g_bootstrap_used;

typedef struct {
    size_t size;
    size_t padding;
} mt_bootstrap_block_t;

void *mt_bootstrap_alloc(size_t size, size_t alignment) {
    if (alignment < 16) alignment = 16;
    if (alignment > 4096 || (alignment & (alignment - 1)) != 0 || size > MT_BOOTSTRAP_BYTES) return NULL;
    size_t used = atomic_load(&g_bootstrap_used);
    for (;;) {
        size_t start = (used + sizeof(mt_bootstrap_block_t) + alignment - 1) & ~(alignment - 1);
        size_t end = start + size;
        if (end > MT_BOOTSTRAP_BYTES) return NULL;
        if (atomic_compare_exchange_weak(&g_bootstrap_used, &used, end)) {
            mt_bootstrap_block_t *block = (mt_bootstrap_block_t *)(g_bootstrap + start) - 1;
            block->size = size;
            return g_bootstrap + start; /* static storage is zeroed and never reused: calloc-ready */
        }
    }
}

size_t mt_bootstrap_size(const void *ptr) { return ((const mt_bootstrap_block_t *)ptr - 1)->size; }
