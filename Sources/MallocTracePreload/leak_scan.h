/*
 * Declarations shared by the leak scan's parts: stopping the other threads (thread_stop.c), the mark
 * phase (leak_mark.c) and the scan that drives them and writes the records (leak_scan.c). While the
 * other threads are parked nothing here may allocate, use stdio or take a lock that a parked thread may
 * hold (LEAKSCAN.md §1): all scratch memory comes from mmap.
 */
#ifndef MALLOCTRACE_LEAK_SCAN_H
#define MALLOCTRACE_LEAK_SCAN_H

#include "internal.h"

#include <sys/mman.h>
#include <sys/types.h>

/* Scratch memory: registered as the tracer's (never a root), reserved lazily. */
static inline void *mt_scratch_map(size_t bytes) { return mt_map_memory(bytes, MAP_NORESERVE); }
static inline void mt_scratch_unmap(void *memory, size_t bytes) { mt_unmap_memory(memory, bytes); }

/* ---- thread_stop.c ---------------------------------------------------------------------------- */

typedef struct mt_stopped_thread {
    uintptr_t stack_pointer; /* in its signal handler: the interrupted registers lie above it */
    uintptr_t thread_pointer;
    pid_t tid;
    _Atomic int ready;
} mt_stopped_thread_t;

typedef struct mt_world {
    mt_stopped_thread_t *threads; /* the first `stopped` are filled */
    uint32_t stopped;
    uint32_t missed; /* signalled, alive, but never answered within the timeout */
} mt_world_t;

/* Maps what mt_stop_world needs, once (before the tracer's mapping registry is locked). */
bool mt_stop_world_prepare(void);
/* Parks every other thread of the process in a signal handler; false if the handler could not be
 * installed (nothing stopped then). */
bool mt_stop_world(mt_world_t *world);
/* Wakes them all and restores the program's handler for the signal. */
void mt_resume_world(mt_world_t *world);

/* ---- leak_mark.c ------------------------------------------------------------------------------ */

enum mt_block_state {
    MT_STATE_UNMARKED = 0,
    MT_STATE_REACHABLE,
    MT_STATE_POSSIBLE,
    MT_STATE_INDIRECT,
    MT_STATE_DEFINITE,
    MT_STATE_GONE, /* in the table but not mapped readable: libc freed it past the hooks */
};

typedef struct mt_heap {
    const mt_live_entry_t *blocks; /* sorted by address */
    size_t count;
    uint8_t *state;     /* enum mt_block_state, one per block */
    uint8_t *queued;    /* on the interior worklist already */
    uint32_t *stack;    /* worklist, `count` entries */
    uint32_t *interior; /* blocks hit by interior pointers from reachable memory, `count` entries */
    size_t interior_count;
    uintptr_t low, high;        /* lowest start, highest end */
    const mt_range_t *readable; /* readable mappings, sorted */
    size_t readable_count;
    mt_range_t allocator_state; /* glibc's writable segments (main_arena), or {0, 0} */
    size_t (*usable_size)(void *);
} mt_heap_t;

/* Sorts `blocks` by address with a radix sort (qsort may allocate); `spare` holds as many entries. */
void mt_sort_blocks(mt_live_entry_t *blocks, mt_live_entry_t *spare, size_t count);
/* Prepares states (GONE for blocks outside readable memory) and the heap span. */
void mt_heap_prepare(mt_heap_t *heap);
/* Phase 1 for one root range: the parts of it that are readable, followed transitively. */
void mt_mark_root(mt_heap_t *heap, uintptr_t start, uintptr_t end);
/* Phase 1 for one block treated as a root itself (ld.so's allocations). */
void mt_mark_block_reachable(mt_heap_t *heap, size_t index);
/* Phases 2 and 3, after every root: possible, then indirect and definite. */
void mt_mark_finish(mt_heap_t *heap);

#endif /* MALLOCTRACE_LEAK_SCAN_H */
