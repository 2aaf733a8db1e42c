/*
 * The exact table of live blocks that the leak scan needs (MALLOCTRACE_LEAK_SCAN=1 only): address →
 * requested size and whether ld.so allocated the block. Unlike the sampler's table it holds every block,
 * sampled or not, since reachability needs all of them.
 *
 * Sharded by address hash, each shard a small open-addressing table (linear probing, backward-shift
 * deletion, so no tombstones pile up) behind its own mutex: threads allocating at once rarely meet on
 * one lock. A mutex rather than a spinlock because the scan holds every shard for its whole duration
 * (up to a second with a million blocks): allocating threads then sleep in the futex instead of
 * spinning, and the scan's stop signal finds them there. Memory comes from mmap only.
 */
#include "internal.h"

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <sys/mman.h>

bool g_leak_scan;

#define MT_LIVE_FIRST_SLOTS 512u

typedef struct mt_live_shard {
    pthread_mutex_t mutex;
    mt_live_entry_t *slots; /* address 0 = empty */
    size_t mask;            /* capacity - 1; capacity 0 until the first insert */
    size_t used;
} __attribute__((aligned(64))) mt_live_shard_t;

static mt_live_shard_t g_shards[MT_LIVE_SHARDS];
static uintptr_t g_ldso_text_start, g_ldso_text_end;

static inline uint64_t mt_live_hash(uintptr_t address) { return (uint64_t)(address >> 4) * 0x9E3779B97F4A7C15ull; }
/* The top bits choose the shard, lower ones the slot, so the two are independent. */
static inline mt_live_shard_t *mt_shard_of(uint64_t hash) { return &g_shards[hash >> (64 - MT_LIVE_SHARD_BITS)]; }
static inline size_t mt_home_slot(uint64_t hash, size_t mask) { return (size_t)(hash >> 16) & mask; }

/* ld.so's executable segment, from its own program headers (AT_BASE is its load address). Blocks whose
 * allocating caller lies there (DTVs, dynamic TLS, link maps) count as reachable, LeakSanitizer's
 * use_ld_allocations rule: the pointers to them hide where a scan cannot see (LEAKSCAN.md §2). */
static void mt_find_ldso_text(void) {
    uintptr_t base = (uintptr_t)getauxval(AT_BASE);
    if (base == 0) return; /* ld.so ran as the program itself, or a static executable */
    const ElfW(Ehdr) *header = (const ElfW(Ehdr) *)base;
    const ElfW(Phdr) *phdrs = (const ElfW(Phdr) *)(base + header->e_phoff);
    for (int i = 0; i < header->e_phnum; i++) {
        if (phdrs[i].p_type != PT_LOAD || !(phdrs[i].p_flags & PF_X)) continue;
        g_ldso_text_start = base + phdrs[i].p_vaddr;
        g_ldso_text_end = g_ldso_text_start + phdrs[i].p_memsz;
        return;
    }
}

void mt_live_initialize(void) {
    static bool initialized;
    if (initialized) return; /* a followed child keeps the table it copied */
    initialized = true;
    for (size_t i = 0; i < MT_LIVE_SHARDS; i++) pthread_mutex_init(&g_shards[i].mutex, NULL);
    mt_find_ldso_text();
}

static void mt_place(mt_live_entry_t *slots, size_t mask, mt_live_entry_t entry) {
    size_t i = mt_home_slot(mt_live_hash(entry.address), mask);
    while (slots[i].address != 0) i = (i + 1) & mask;
    slots[i] = entry;
}

/* Doubles a shard. Shard locked. */
static bool mt_grow(mt_live_shard_t *shard) {
    size_t capacity = shard->slots ? (shard->mask + 1) * 2 : MT_LIVE_FIRST_SLOTS;
    mt_live_entry_t *slots = mt_map_memory(capacity * sizeof(mt_live_entry_t), 0);
    if (slots == NULL) return false;
    if (shard->slots != NULL) {
        for (size_t i = 0; i <= shard->mask; i++)
            if (shard->slots[i].address != 0) mt_place(slots, capacity - 1, shard->slots[i]);
        mt_unmap_memory(shard->slots, (shard->mask + 1) * sizeof(mt_live_entry_t));
    }
    shard->slots = slots;
    shard->mask = capacity - 1;
    return true;
}

/* Inserts or replaces the entry for `address`. */
static void mt_live_put(uintptr_t address, uint64_t info) {
    uint64_t hash = mt_live_hash(address);
    mt_live_shard_t *shard = mt_shard_of(hash);
    int saved_errno = errno;
    pthread_mutex_lock(&shard->mutex);
    bool room = true;
    if ((shard->used + 1) * 2 > (shard->slots ? shard->mask + 1 : 0)) room = mt_grow(shard);
    if (room) {
        size_t i = mt_home_slot(hash, shard->mask);
        while (shard->slots[i].address != 0 && shard->slots[i].address != address) i = (i + 1) & shard->mask;
        /* Already there: libc freed the old block past the hooks; the new one replaces it. */
        if (shard->slots[i].address == 0) shard->used++;
        shard->slots[i] = (mt_live_entry_t){.address = address, .info = info};
    }
    pthread_mutex_unlock(&shard->mutex);
    errno = saved_errno;
    if (!room) mt_fail("out of memory for the table of live blocks; tracing is off", NULL);
}

void mt_live_insert(const void *ptr, size_t size, const void *caller) {
    if (ptr == NULL) return;
    uint64_t info = size & MT_LIVE_SIZE_MASK;
    if ((uintptr_t)caller >= g_ldso_text_start && (uintptr_t)caller < g_ldso_text_end) info |= MT_LIVE_FROM_LDSO;
    mt_live_put((uintptr_t)ptr, info);
}

uint64_t mt_live_remove(const void *ptr) {
    uintptr_t address = (uintptr_t)ptr;
    uint64_t hash = mt_live_hash(address);
    mt_live_shard_t *shard = mt_shard_of(hash);
    uint64_t found = MT_LIVE_ABSENT;
    pthread_mutex_lock(&shard->mutex);
    if (shard->slots != NULL) {
        size_t mask = shard->mask, i = mt_home_slot(hash, mask);
        while (shard->slots[i].address != 0 && shard->slots[i].address != address) i = (i + 1) & mask;
        if (shard->slots[i].address == address) {
            found = shard->slots[i].info;
            /* Backward-shift deletion: move later members of the probe run into the hole when their
             * home slot does not lie (cyclically) between the hole and them. */
            size_t hole = i;
            for (size_t j = (i + 1) & mask; shard->slots[j].address != 0; j = (j + 1) & mask) {
                size_t home = mt_home_slot(mt_live_hash(shard->slots[j].address), mask);
                if (((j - home) & mask) >= ((j - hole) & mask)) {
                    shard->slots[hole] = shard->slots[j];
                    hole = j;
                }
            }
            shard->slots[hole].address = 0;
            shard->used--;
        }
    }
    pthread_mutex_unlock(&shard->mutex);
    return found;
}

void mt_live_reinsert(const void *ptr, uint64_t info) {
    if (info == MT_LIVE_ABSENT || ptr == NULL) return;
    mt_live_put((uintptr_t)ptr, info); /* the entry as it was, ld.so flag included */
}

void mt_live_lock(void) {
    for (size_t i = 0; i < MT_LIVE_SHARDS; i++) pthread_mutex_lock(&g_shards[i].mutex);
}

void mt_live_unlock(void) {
    for (size_t i = MT_LIVE_SHARDS; i-- > 0;) pthread_mutex_unlock(&g_shards[i].mutex);
}

/* In a forked child the forking thread held every lock (prepare handler); the other threads that could
 * have held one do not exist there. Fresh mutexes, same entries: the child has the same blocks. */
void mt_live_reset_locks(void) {
    for (size_t i = 0; i < MT_LIVE_SHARDS; i++) pthread_mutex_init(&g_shards[i].mutex, NULL);
}

size_t mt_live_count_locked(void) {
    size_t total = 0;
    for (size_t i = 0; i < MT_LIVE_SHARDS; i++) total += g_shards[i].used;
    return total;
}

size_t mt_live_copy_locked(mt_live_entry_t *out, size_t capacity) {
    size_t n = 0;
    for (size_t s = 0; s < MT_LIVE_SHARDS; s++) {
        const mt_live_shard_t *shard = &g_shards[s];
        if (shard->slots == NULL) continue;
        for (size_t i = 0; i <= shard->mask && n < capacity; i++)
            if (shard->slots[i].address != 0) out[n++] = shard->slots[i];
    }
    return n;
}
