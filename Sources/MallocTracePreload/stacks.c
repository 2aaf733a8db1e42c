/*
 * Call stacks: captured with libunwind, interned so that an event carries one small id.
 *
 * The intern table is open-addressed and lock-free for lookups: a slot is filled completely before
 * its hash is published with release order, and a full table is replaced by a larger copy while the
 * old one stays readable forever (tables are never freed). Only inserting a new stack takes the
 * mutex, and that happens once per distinct stack.
 */
#include "internal.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

/* Hook, recorder and interner frames at the top of every captured stack, dropped by address. */
#define MT_OWN_FRAMES_SLACK 8
#define MT_FIRST_TABLE_SLOTS (1u << 16)
#define MT_FRAME_ARENA_BYTES (4u << 20)

typedef struct mt_stack_slot {
    _Atomic uint64_t hash; /* 0 = empty; published last; MT_RETIRED_HASH = retired (see mt_stacks_retire) */
    uint32_t id;
    uint32_t count;
    const uintptr_t *frames;
} mt_stack_slot_t;

typedef struct mt_stack_table {
    uint64_t mask;
    uint64_t used;
    mt_stack_slot_t slots[];
} mt_stack_table_t;

/* A retired slot: nonzero, so that probes go on past it, and even, so that no hash (always odd) equals it. */
#define MT_RETIRED_HASH 2u

static _Atomic(mt_stack_table_t *) g_table;
static pthread_mutex_t g_stacks_mutex = PTHREAD_MUTEX_INITIALIZER;
static uint32_t g_next_stack_id = 1;
static uintptr_t *g_frame_arena;
static size_t g_frame_arena_left;
uintptr_t g_self_start, g_self_end;

static mt_stack_table_t *mt_new_table(uint64_t slots) {
    mt_stack_table_t *table = mt_map_memory(sizeof(mt_stack_table_t) + slots * sizeof(mt_stack_slot_t), 0);
    if (table != NULL) table->mask = slots - 1;
    return table;
}

static int mt_find_self(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    uintptr_t probe = (uintptr_t)data;
    uintptr_t start, end;
    mt_module_span(info, &start, &end);
    if (probe < start || probe >= end) return 0;
    g_self_start = start;
    g_self_end = end;
    return 1;
}

/* Descriptors below this stay free for the program when libunwind opens its pipe (mt_stacks_initialize). */
#define MT_UNWIND_PIPE_FLOOR 64

void mt_stacks_initialize(void) {
    dl_iterate_phdr(mt_find_self, (void *)(uintptr_t)&mt_stacks_initialize);
    atomic_store(&g_table, mt_new_table(MT_FIRST_TABLE_SLOTS));
    /* libunwind's first call costs ~0.5 ms and opens a pipe: pay for it here, predictably (the fast
     * unwinder falls back to it). The pipe's two descriptors stay open for good, and libunwind keeps their
     * numbers to itself, so they cannot be moved afterwards. Taking the lowest free numbers, they would
     * shift the program's: its first open() would return 5 instead of 3 (or not 0, in a program started
     * with 0-2 closed, and what it writes to "stdout" would go into the pipe). So every free number below
     * MT_UNWIND_PIPE_FLOOR is held by /dev/null for the call and released after it: the program finds
     * exactly the descriptors it started with, and the pipe sits where programs rarely count up to. */
    if (g_config.unwind_mode == MT_UNWIND_NONE) return;
    int placeholders[MT_UNWIND_PIPE_FLOOR], held = 0;
    struct rlimit limit;
    int floor = MT_UNWIND_PIPE_FLOOR;
    /* Room for the pipe and the program under a tight limit: then only half of it is held. */
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < 2 * (rlim_t)MT_UNWIND_PIPE_FLOOR)
        floor = (int)(limit.rlim_cur / 2);
    while (held < floor) {
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0) break;
        if (fd >= floor) {
            close(fd);
            break;
        }
        placeholders[held++] = fd;
    }
    void *warm_up[4];
    unw_backtrace(warm_up, 4);
    while (held > 0) close(placeholders[--held]);
}

void mt_stacks_reset(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    g_stacks_mutex = fresh;
    g_next_stack_id = 1;
    atomic_store(&g_table, mt_new_table(MT_FIRST_TABLE_SLOTS));
}

void mt_stacks_lock(void) { pthread_mutex_lock(&g_stacks_mutex); }
void mt_stacks_unlock(void) { pthread_mutex_unlock(&g_stacks_mutex); }

/* Each frame's term depends only on the frame and its position, so the multiplications of a stack run side
 * by side instead of as one chain of dependent multiply steps; a final mix spreads every bit into the low
 * bits that index the table. */
static inline uint64_t mt_hash_frames(const uintptr_t *frames, uint32_t count) {
    uint64_t hash = 0x9e3779b97f4a7c15u ^ count, position = 0;
    /* SSE2 has no 64-bit multiply: vector code would emulate it with three. */
#pragma clang loop vectorize(disable)
    for (uint32_t i = 0; i < count; i++) {
        position += 0x9e3779b97f4a7c15u;
        hash ^= (frames[i] ^ position) * 0xff51afd7ed558ccdu;
    }
    hash ^= hash >> 33; /* murmur3's finalizer */
    hash *= 0xc4ceb9fe1a85ec53u;
    hash ^= hash >> 33;
    return hash | 1; /* 0 marks an empty slot */
}

static inline uint32_t mt_find_stack(mt_stack_table_t *table, uint64_t hash, const uintptr_t *frames, uint32_t count) {
    for (uint64_t i = hash & table->mask;; i = (i + 1) & table->mask) {
        mt_stack_slot_t *slot = &table->slots[i];
        uint64_t found = atomic_load_explicit(&slot->hash, memory_order_acquire);
        if (found == 0) return 0;
        if (found == hash && slot->count == count && memcmp(slot->frames, frames, count * sizeof(uintptr_t)) == 0)
            return slot->id;
    }
}

static const uintptr_t *mt_store_frames(const uintptr_t *frames, uint32_t count) {
    size_t words = count ? count : 1;
    if (g_frame_arena_left < words) {
        g_frame_arena = mt_map_memory(MT_FRAME_ARENA_BYTES, 0);
        if (g_frame_arena == NULL) return NULL;
        g_frame_arena_left = MT_FRAME_ARENA_BYTES / sizeof(uintptr_t);
    }
    uintptr_t *stored = g_frame_arena;
    memcpy(stored, frames, count * sizeof(uintptr_t));
    g_frame_arena += words;
    g_frame_arena_left -= words;
    return stored;
}

static void mt_insert_slot(mt_stack_table_t *table, uint64_t hash, uint32_t id, const uintptr_t *frames,
                           uint32_t count) {
    uint64_t i = hash & table->mask;
    while (atomic_load_explicit(&table->slots[i].hash, memory_order_relaxed) != 0) i = (i + 1) & table->mask;
    table->slots[i].id = id;
    table->slots[i].count = count;
    table->slots[i].frames = frames;
    atomic_store_explicit(&table->slots[i].hash, hash, memory_order_release);
    table->used++;
}

/* Keeps the load factor at most 1/2; the old table stays valid for readers that still hold it. */
static mt_stack_table_t *mt_grow_table(mt_stack_table_t *table) {
    mt_stack_table_t *bigger = mt_new_table((table->mask + 1) * 4);
    if (bigger == NULL) return NULL;
    for (uint64_t i = 0; i <= table->mask; i++) {
        mt_stack_slot_t *slot = &table->slots[i];
        uint64_t hash = atomic_load_explicit(&slot->hash, memory_order_relaxed);
        if (hash != 0 && hash != MT_RETIRED_HASH) mt_insert_slot(bigger, hash, slot->id, slot->frames, slot->count);
    }
    atomic_store_explicit(&g_table, bigger, memory_order_release);
    return bigger;
}

static uint32_t mt_intern_new_stack(uint64_t hash, const uintptr_t *frames, uint32_t count) {
    /* Modules first, then the definition, then publication: a reader (or a crash) never sees an id
     * that other threads use before its definition is in the file. The module scan runs before the
     * stacks mutex is taken: dl_iterate_phdr holds the loader's lock while its callbacks run, and a
     * callback that allocates a new stack would otherwise wait for our mutex while we wait for it. */
    mt_modules_refresh();
    pthread_mutex_lock(&g_stacks_mutex);
    mt_stack_table_t *table = atomic_load_explicit(&g_table, memory_order_acquire);
    uint32_t id = table ? mt_find_stack(table, hash, frames, count) : 0;
    if (id == 0 && table != NULL) {
        if ((table->used + 1) * 2 > table->mask + 1) table = mt_grow_table(table);
        const uintptr_t *stored = table ? mt_store_frames(frames, count) : NULL;
        if (stored != NULL) {
            id = g_next_stack_id++;
            if (mt_record_stack_definition(id, stored, count))
                mt_insert_slot(table, hash, id, stored, count);
            else
                id = 0;
        }
    }
    pthread_mutex_unlock(&g_stacks_mutex);
    return id;
}

/* A module was unloaded: its address range may now hold another module, whose return addresses must not
 * find the ids interned (and defined, in the reader's eyes, against the old module) while it was loaded.
 * Every stack with a frame in [start, end] is retired in place: its slot keeps probing intact but never
 * matches again, so the next capture of the same addresses interns a new id, defined after the MODULE
 * record of whatever is loaded there by then. Lookups are untouched (they compare the hash, as before).
 * A lookup that read the slot just before it was retired still returns the old id: a library loaded at the
 * same address by another thread in that instant, and called, can still get it. Cost: one pass over the
 * table per unload, under the stacks mutex. Called with the modules mutex held (modules -> stacks). */
void mt_stacks_retire(uintptr_t start, uintptr_t end) {
    pthread_mutex_lock(&g_stacks_mutex);
    mt_stack_table_t *table = atomic_load_explicit(&g_table, memory_order_acquire);
    for (uint64_t i = 0; table != NULL && i <= table->mask; i++) {
        mt_stack_slot_t *slot = &table->slots[i];
        uint64_t hash = atomic_load_explicit(&slot->hash, memory_order_relaxed);
        if (hash == 0 || hash == MT_RETIRED_HASH) continue;
        for (uint32_t frame = 0; frame < slot->count; frame++) {
            if (slot->frames[frame] >= start && slot->frames[frame] <= end) {
                atomic_store_explicit(&slot->hash, MT_RETIRED_HASH, memory_order_relaxed);
                break;
            }
        }
    }
    pthread_mutex_unlock(&g_stacks_mutex);
}

/* Drops the tracer's own frames from the top of a captured stack; returns the first kept frame. */
static inline const uintptr_t *mt_without_own_frames(const uintptr_t *raw, int captured, uint32_t depth,
                                                     uint32_t *count) {
    int first = 0;
    while (first < captured && mt_is_own_frame(raw[first])) first++;
    *count = (uint32_t)(captured - first);
    if (*count > depth) *count = depth;
    return raw + first;
}

/* libunwind may validate addresses with msync and a write into its pipe (cancellation points), holding
 * locks of its own. */
static int mt_libunwind_backtrace(uintptr_t *frames, int max) {
    int cancel_state = mt_cancel_off();
    int captured = unw_backtrace((void **)frames, max);
    mt_cancel_restore(cancel_state);
    return captured;
}

static _Atomic uint64_t g_verified_stacks, g_fallback_stacks, g_mismatched_stacks;

/* MALLOCTRACE_UNWIND=verify: libunwind's answer is the reference for the fast unwinder's. */
static void mt_verify_fast_unwinder(bool fast, const uintptr_t *frames, uint32_t count, uint32_t depth) {
    atomic_fetch_add(&g_verified_stacks, 1);
    if (!fast) {
        atomic_fetch_add(&g_fallback_stacks, 1);
        return;
    }
    uintptr_t reference[MT_MAX_STACK_DEPTH + MT_OWN_FRAMES_SLACK];
    int captured = mt_libunwind_backtrace(reference, (int)(depth + MT_OWN_FRAMES_SLACK));
    uint32_t reference_count;
    const uintptr_t *expected = mt_without_own_frames(reference, captured, depth, &reference_count);
    if (reference_count != count || memcmp(expected, frames, count * sizeof(uintptr_t)) != 0)
        atomic_fetch_add(&g_mismatched_stacks, 1);
}

static char *mt_format_number(char *out, uint64_t value) {
    char digits[24];
    int n = 0;
    do digits[n++] = (char)('0' + value % 10);
    while ((value /= 10) != 0);
    while (n > 0) *out++ = digits[--n];
    *out = '\0';
    return out;
}

void mt_stacks_report_verification(void) {
    if (g_config.unwind_mode != MT_UNWIND_VERIFY) return;
    char verified[24], fallbacks[24], mismatched[24];
    mt_format_number(verified, atomic_load(&g_verified_stacks));
    mt_format_number(fallbacks, atomic_load(&g_fallback_stacks));
    mt_format_number(mismatched, atomic_load(&g_mismatched_stacks));
    mt_say("unwinder check: ", verified, " stacks, ", fallbacks, " by libunwind, ", mismatched,
           " different from libunwind", NULL);
}

uint32_t mt_current_stack_id(void) {
    uint32_t depth = g_config.max_depth;
    uint32_t mode = g_config.unwind_mode;
    if (depth == 0 || mode == MT_UNWIND_NONE) return 0;
    uintptr_t raw[MT_MAX_STACK_DEPTH + MT_OWN_FRAMES_SLACK];
    int limit = (int)(depth + MT_OWN_FRAMES_SLACK);
    /* The fast unwinder leaves the tracer's frames out itself, so `depth` frames are all it needs. */
    int captured = mode == MT_UNWIND_LIBUNWIND ? -1 : mt_fast_unwind(raw, (int)depth);
    bool fast = captured >= 0;
    if (!fast) captured = mt_libunwind_backtrace(raw, limit);
    uint32_t count;
    const uintptr_t *frames = mt_without_own_frames(raw, captured, depth, &count);
    if (MT_UNLIKELY(mode == MT_UNWIND_VERIFY)) mt_verify_fast_unwinder(fast, frames, count, depth);

    uint64_t hash = mt_hash_frames(frames, count);
    mt_stack_table_t *table = atomic_load_explicit(&g_table, memory_order_acquire);
    uint32_t id = table ? mt_find_stack(table, hash, frames, count) : 0;
    return MT_LIKELY(id != 0) ? id : mt_intern_new_stack(hash, frames, count);
}
