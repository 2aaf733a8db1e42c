/*
 * Sampling by bytes (MALLOCTRACE_SAMPLE_RATE), as tcmalloc and jemalloc do: sample points fall on the
 * stream of allocated bytes as a Poisson process with mean distance `rate`, so an allocation of s bytes
 * is recorded with probability 1 - exp(-s / rate), and the reader scales each one back up by that
 * probability. Each thread draws its own exponential distances, so the fast path is one thread-local
 * subtraction and no shared state.
 *
 * Only the frees of recorded blocks are recorded. An exact table of live sampled blocks answers
 * "was this one sampled?"; a per-bucket count in front of it answers "no" for almost every free
 * without the table's lock.
 */
#include "internal.h"

#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

uint64_t g_sample_rate;
MT_TLS uint64_t t_bytes_until_sample;
_Atomic uint32_t g_sampled_counts[MT_SAMPLED_BUCKETS];

static MT_TLS uint64_t t_random_state;
static _Atomic uint64_t g_sampling_threads;

/* ---- random distances ------------------------------------------------------------------------ */

/* Natural logarithm for x in (0, 1], without libm (the library links only libc and libunwind):
 * x = m * 2^e with m in [sqrt(1/2), sqrt(2)), then ln m = 2 atanh((m - 1) / (m + 1)) by its series,
 * which is exact to about 1e-11 on that range. */
static double mt_log(double x) {
    uint64_t bits;
    memcpy(&bits, &x, sizeof(bits));
    int exponent = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    double m;
    memcpy(&m, &bits, sizeof(m));
    if (m > 1.4142135623730951) {
        m *= 0.5;
        exponent++;
    }
    double t = (m - 1) / (m + 1), t2 = t * t;
    double series = 2.0 / 11;
    series = 2.0 / 9 + t2 * series;
    series = 2.0 / 7 + t2 * series;
    series = 2.0 / 5 + t2 * series;
    series = 2.0 / 3 + t2 * series;
    series = 2.0 + t2 * series;
    return t * series + exponent * 0.6931471805599453;
}

/* xorshift64*: small, fast and plenty for choosing sample points. */
static uint64_t mt_next_random(void) {
    uint64_t x = t_random_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t_random_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void mt_seed_thread(void) {
    /* With MALLOCTRACE_SAMPLE_SEED, the n-th thread that samples gets the same sequence on every run. */
    uint64_t index = atomic_fetch_add_explicit(&g_sampling_threads, 1, memory_order_relaxed);
    uint64_t seed = g_config.sample_seed_given ? g_config.sample_seed : mt_now_ns() ^ (uint64_t)(uintptr_t)&index;
    seed ^= (index + 1) * 0x9E3779B97F4A7C15ull;
    t_random_state = seed != 0 ? seed : 1;
}

/* Bytes to the next sample point: an exponential distance with mean `rate`, at least 1. */
static uint64_t mt_draw_distance(void) {
    double uniform = (double)((mt_next_random() >> 11) + 1) * 0x1p-53; /* in (0, 1] */
    return (uint64_t)(-mt_log(uniform) * (double)g_sample_rate) + 1;
}

bool mt_sample_slow(size_t size) {
    if (t_random_state == 0) {
        mt_seed_thread();
        t_bytes_until_sample = mt_draw_distance();
        if (size < t_bytes_until_sample) {
            t_bytes_until_sample -= size;
            return false;
        }
    }
    /* The next sample point lies inside this allocation: record it once. Points are memoryless, so the
     * distance from the block's end to the following one is a fresh draw, however many more fell inside
     * the block (no loop over them: malloc(SIZE_MAX) at one point per byte would never end). */
    t_bytes_until_sample = mt_draw_distance();
    return true;
}

void mt_sampler_reset_thread(void) {
    t_random_state = 0;
    t_bytes_until_sample = 0;
}

/* ---- the table of live sampled blocks ------------------------------------------------------- */

static pthread_mutex_t g_table_mutex = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t *g_slots; /* open addressing, linear probing; 0 = empty */
static size_t g_capacity;  /* a power of two */
static size_t g_used;

#define MT_FIRST_TABLE_SLOTS 4096

static size_t mt_slot_of(uintptr_t key, size_t capacity) {
    return (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> 32) & (capacity - 1);
}

static void mt_place(uintptr_t *slots, size_t capacity, uintptr_t key) {
    size_t i = mt_slot_of(key, capacity);
    while (slots[i] != 0) i = (i + 1) & (capacity - 1);
    slots[i] = key;
}

/* Doubles the table (memory from mmap: the tracer must not allocate through the traced allocator). */
static bool mt_grow_table(void) {
    size_t capacity = g_capacity ? g_capacity * 2 : MT_FIRST_TABLE_SLOTS;
    uintptr_t *slots = mt_map_memory(capacity * sizeof(uintptr_t), 0);
    if (slots == NULL) return false;
    for (size_t i = 0; i < g_capacity; i++)
        if (g_slots[i] != 0) mt_place(slots, capacity, g_slots[i]);
    mt_unmap_memory(g_slots, g_capacity * sizeof(uintptr_t));
    g_slots = slots;
    g_capacity = capacity;
    return true;
}

static bool mt_find(uintptr_t key, size_t *slot) {
    if (g_capacity == 0) return false;
    for (size_t i = mt_slot_of(key, g_capacity);; i = (i + 1) & (g_capacity - 1)) {
        if (g_slots[i] == key) {
            *slot = i;
            return true;
        }
        if (g_slots[i] == 0) return false;
    }
}

void mt_sampled_insert(const void *ptr) {
    uintptr_t key = (uintptr_t)ptr;
    size_t slot;
    pthread_mutex_lock(&g_table_mutex);
    /* Already there: its free went past the hooks (libc freeing its own blocks); the block is one. */
    bool present = mt_find(key, &slot);
    bool room = present || (g_used + 1) * 2 <= g_capacity || mt_grow_table();
    if (!present && room) {
        mt_place(g_slots, g_capacity, key);
        g_used++;
        atomic_fetch_add_explicit(&g_sampled_counts[mt_sampled_bucket(ptr)], 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&g_table_mutex);
    if (!room) mt_fail("out of memory for the table of sampled blocks; tracing is off", NULL);
}

bool mt_sampled_remove(const void *ptr) {
    uintptr_t key = (uintptr_t)ptr;
    size_t slot;
    pthread_mutex_lock(&g_table_mutex);
    bool found = mt_find(key, &slot);
    if (found) {
        /* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
        size_t hole = slot;
        for (size_t i = (hole + 1) & (g_capacity - 1); g_slots[i] != 0; i = (i + 1) & (g_capacity - 1)) {
            size_t home = mt_slot_of(g_slots[i], g_capacity);
            bool movable = hole <= i ? (home <= hole || home > i) : (home <= hole && home > i);
            if (movable) {
                g_slots[hole] = g_slots[i];
                hole = i;
            }
        }
        g_slots[hole] = 0;
        g_used--;
        atomic_fetch_sub_explicit(&g_sampled_counts[mt_sampled_bucket(ptr)], 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&g_table_mutex);
    return found;
}

void mt_sampler_lock(void) { pthread_mutex_lock(&g_table_mutex); }
void mt_sampler_unlock(void) { pthread_mutex_unlock(&g_table_mutex); }

/* In a forked child (which starts a trace of its own, if any): the parent's sampled blocks are not part
 * of it, so forget them, and the lock the forking thread held. */
void mt_sampler_reset(void) {
    for (size_t i = 0; i < g_capacity; i++) {
        if (g_slots[i] == 0) continue;
        atomic_store_explicit(&g_sampled_counts[mt_sampled_bucket((const void *)g_slots[i])], 0, memory_order_relaxed);
        g_slots[i] = 0;
    }
    g_used = 0;
    pthread_mutex_init(&g_table_mutex, NULL);
    mt_sampler_reset_thread();
}
