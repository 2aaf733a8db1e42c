/*
 * The tracer's own data mappings, in one registry. The leak scan treats private anonymous mappings as
 * roots (memcheck's rule, leak_scan.c), so every mapping of ours that can hold a heap pointer — the
 * live-block shards, the sampler's table, the stack table, the scan's scratch — must be known and left
 * out: the copied block array alone points at every live block. Each such mapping is made and dropped
 * here. Not registered: the per-thread unwind rule caches (code addresses and CFA rules only, one per
 * thread) and the trace file's windows (shared file mappings, never roots).
 *
 * A mutex, not a lock-free list: the scan holds it from before the stop until after the resume, so the
 * list it reads cannot be half-updated by a thread parked inside mt_map_memory. It is the innermost lock
 * (taken under the live-table shards, the sampler's and the stack table's locks, never the reverse).
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>

static pthread_mutex_t g_registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static mt_range_t g_registry[MT_MAX_TRACER_MAPPINGS];
static size_t g_registry_count;
/* Mappings made while the registry was full: until they are gone, no anonymous mapping is a root. */
static size_t g_unregistered;

void *mt_map_memory(size_t bytes, int extra_flags) {
    if (bytes == 0) bytes = 1;
    int saved_errno = errno;
    void *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
    if (memory == MAP_FAILED) {
        errno = saved_errno;
        return NULL;
    }
    pthread_mutex_lock(&g_registry_mutex);
    if (g_registry_count < MT_MAX_TRACER_MAPPINGS)
        g_registry[g_registry_count++] = (mt_range_t){(uintptr_t)memory, (uintptr_t)memory + bytes};
    else
        g_unregistered++;
    pthread_mutex_unlock(&g_registry_mutex);
    errno = saved_errno;
    return memory;
}

void mt_unmap_memory(void *memory, size_t bytes) {
    if (memory == NULL) return;
    if (bytes == 0) bytes = 1;
    int saved_errno = errno;
    pthread_mutex_lock(&g_registry_mutex);
    size_t i = 0;
    while (i < g_registry_count && g_registry[i].start != (uintptr_t)memory) i++;
    if (i < g_registry_count)
        g_registry[i] = g_registry[--g_registry_count];
    else if (g_unregistered > 0)
        g_unregistered--;
    munmap(memory, bytes); /* under the lock: the range is never mapped and unlisted at once */
    pthread_mutex_unlock(&g_registry_mutex);
    errno = saved_errno;
}

void mt_tracer_mappings_lock(void) { pthread_mutex_lock(&g_registry_mutex); }
void mt_tracer_mappings_unlock(void) { pthread_mutex_unlock(&g_registry_mutex); }
void mt_tracer_mappings_reset_lock(void) { pthread_mutex_init(&g_registry_mutex, NULL); }

size_t mt_tracer_mappings_locked(const mt_range_t **mappings) {
    *mappings = g_registry;
    return g_unregistered > 0 ? SIZE_MAX : g_registry_count;
}
