/*
 * Turning calls into events. Each thread owns a chunk of the trace file (mapped memory) and appends
 * packed events to it without any lock; only reserving the next chunk takes the file's mutex. After
 * every event the chunk's `used` field is updated in place, so whatever the process dies of, the
 * file holds every completed event.
 */
#include "internal.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Atomic uint64_t g_sequence;
uint64_t g_start_monotonic_ns;

/* Enough for the largest fixed event: a realloc with every varint at full width, plus a TIME. */
#define MT_MAX_EVENT_BYTES 96
/* Small first chunks keep the unused tail of short-lived threads small; busy threads double up to the
 * largest size. Any chunk grows to fit its first event (module events can be ~8 KiB). */
#define MT_FIRST_CHUNK_BYTES (4 * 1024)
/* Reading even the coarse clock on every event costs ~5 ns; its resolution is a kernel tick (~4 ms),
 * far longer than 16 events take, so by default it is read every 16 events (g_config.clock_every). The price:
 * a thread that goes idle stamps up to 15 of its next events with the time of its last read, which is why
 * periodic profiles (`run --profile-every`) and sampled traces read it for every event. */
#define MT_LARGEST_CHUNK_BYTES (256 * 1024)

typedef struct mt_thread_state {
    mt_chunk_header_t *chunk; /* NULL until the thread records its first event */
    uint8_t *events;          /* first event byte of the chunk */
    uint8_t *cursor;
    uint8_t *limit;
    void *window;
    /* Per-chunk delta state: reset to zero at every chunk start (chunks are self-contained). */
    uint64_t last_sequence;
    uint64_t last_pointer;
    uint64_t last_time;
    uint32_t events_until_clock; /* the clock is read every g_config.clock_every events */
    uint32_t tid;
    uint32_t next_capacity;
    uint8_t arena; /* non-main-arena bit the reader assumes for this chunk's blocks (see MT_EVENT_CHUNK_INFO) */
    bool registered_for_exit;
} mt_thread_state_t;

static MT_TLS mt_thread_state_t t_state;
static pthread_key_t g_thread_exit_key;

static uint64_t mt_clock_ns(clockid_t clock) {
    struct timespec now;
    clock_gettime(clock, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

uint64_t mt_now_ns(void) {
    uint64_t now = mt_clock_ns(CLOCK_MONOTONIC);
    return now > g_start_monotonic_ns ? now - g_start_monotonic_ns : 0;
}

/* The coarse clock costs ~5 ns instead of ~24 ns; its resolution (one kernel tick) is the time
 * resolution of events, documented in docs/trace-format.md. */
static inline uint64_t mt_coarse_now_ns(void) {
    uint64_t now = mt_clock_ns(CLOCK_MONOTONIC_COARSE);
    return now > g_start_monotonic_ns ? now - g_start_monotonic_ns : 0;
}

/* A thread's last chunk is handed back when it exits so that its mapping can be dropped. */
static void mt_thread_exiting(void *state) {
    mt_thread_state_t *t = state;
    uintptr_t was_guarded = t_guard;
    t_guard = was_guarded ? was_guarded : mt_guard_token();
    if (t->chunk != NULL) mt_file_release_chunk(t->window);
    t->chunk = NULL;
    t->cursor = t->limit = NULL;
    t->registered_for_exit = false;
    t->next_capacity = 0; /* frees in later destructors get a small chunk, not the largest size */
    mt_unwind_thread_exit();
    t_guard = was_guarded;
}

void mt_recorder_initialize(void) { pthread_key_create(&g_thread_exit_key, mt_thread_exiting); }

void mt_recorder_reset_thread(void) {
    mt_thread_state_t fresh = {0};
    t_state = fresh;
}

static uint8_t *mt_put_time(mt_thread_state_t *t, uint8_t *out, uint64_t now) {
    *out++ = MT_EVENT_TIME;
    t->last_time = now;
    return mt_put_varint(out, now);
}

static bool mt_start_chunk(mt_thread_state_t *t, size_t need) {
    if (t->tid == 0) t->tid = (uint32_t)syscall(SYS_gettid);
    if (!t->registered_for_exit) {
        pthread_setspecific(g_thread_exit_key, t);
        t->registered_for_exit = true;
    }
    if (t->chunk != NULL) mt_file_release_chunk(t->window);
    t->chunk = NULL;
    t->cursor = t->limit = NULL;

    uint32_t capacity = t->next_capacity ? t->next_capacity : MT_FIRST_CHUNK_BYTES;
    while (capacity < need + sizeof(mt_chunk_header_t) + MT_MAX_EVENT_BYTES) capacity *= 2;
    t->next_capacity = capacity < MT_LARGEST_CHUNK_BYTES ? capacity * 2 : capacity;

    mt_chunk_header_t *chunk = mt_file_reserve_chunk(t->tid, capacity, &t->window);
    if (chunk == NULL) return false;
    t->chunk = chunk;
    t->events = (uint8_t *)(chunk + 1);
    t->limit = (uint8_t *)chunk + capacity;
    t->last_sequence = 0;
    t->last_pointer = 0;
    t->arena = 0;
    t->cursor = mt_put_time(t, t->events, mt_coarse_now_ns());
    chunk->used = (uint32_t)(t->cursor - t->events);
    return true;
}

/* An RSS sample, when this thread is the one to take it (see rss.c). Fits in the MT_MAX_EVENT_BYTES that
 * mt_begin_event keeps beyond `need`, together with the TIME before it.
 *
 *   0x82 | v length | v time_ns | v rss_bytes | v brk_bytes        e.g. 82 0a 80 ad e2 04 80 80 80 02 80 20
 *                                                                       (10 ms, 4 MiB resident, 4 KiB of brk)
 */
static __attribute__((noinline)) uint8_t *mt_put_rss(uint8_t *out, uint64_t now) {
    if (!mt_rss_claim_sample(now)) return out;
    uint8_t payload[3 * MT_MAX_VARINT_BYTES];
    uint8_t *end = mt_put_varint(payload, now);
    end = mt_put_varint(end, mt_rss_resident_bytes());
    end = mt_put_varint(end, mt_rss_break_bytes());
    *out++ = MT_EVENT_RSS_SAMPLE;
    out = mt_put_varint(out, (uint64_t)(end - payload));
    for (uint8_t *p = payload; p < end; p++) *out++ = *p;
    return out;
}

/* Returns where to write an event of at most `need` bytes, or NULL when tracing stopped. The TIME
 * event that precedes it when the clock moved is already written. */
static inline uint8_t *mt_begin_event(mt_thread_state_t *t, size_t need) {
    if (MT_UNLIKELY(t->cursor == NULL || (size_t)(t->limit - t->cursor) < need + MT_MAX_EVENT_BYTES)) {
        if (!mt_start_chunk(t, need)) return NULL;
    }
    if (MT_LIKELY(t->events_until_clock-- != 0)) return t->cursor;
    t->events_until_clock = g_config.clock_every - 1;
    uint64_t now = mt_coarse_now_ns();
    if (now == t->last_time) return t->cursor;
    uint8_t *out = mt_put_time(t, t->cursor, now);
    /* Only here, where the clock moved: the per-event path pays nothing for RSS samples. */
    if (MT_UNLIKELY(now >= atomic_load_explicit(&g_rss_next_sample_ns, memory_order_relaxed)))
        out = mt_put_rss(out, now);
    return out;
}

/* Publishes the event: a crash after this line cannot lose it. A release store (a plain store on x86-64),
 * so that a reader of the live file (`run --profile-every`) that sees the new `used` sees the event's bytes. */
static inline void mt_commit_event(mt_thread_state_t *t, uint8_t *end) {
    t->cursor = end;
    atomic_store_explicit((_Atomic uint32_t *)&t->chunk->used, (uint32_t)(end - t->events), memory_order_release);
}

static inline uint8_t *mt_put_sequence(mt_thread_state_t *t, uint8_t *out, uint64_t seq) {
    out = mt_put_varint(out, seq - t->last_sequence);
    t->last_sequence = seq;
    return out;
}

static inline uint8_t *mt_put_pointer(mt_thread_state_t *t, uint8_t *out, const void *ptr) {
    uint64_t value = (uint64_t)(uintptr_t)ptr;
    out = mt_put_zigzag(out, (int64_t)(value - t->last_pointer));
    if (value != 0) t->last_pointer = value;
    return out;
}

/* The block's usable size and chunk flags, when the reader cannot derive them (see mt_chunk_info).
 *
 *   0x83 | v length | v (usable - requested) << 2 | mmapped << 1 | non_main_arena
 *   e.g. 83 02 c2 15: malloc(200000) got an mmapped chunk of 200704 bytes, 200688 usable (688 << 2 | 2)
 */
static inline uint8_t *mt_put_chunk_info(mt_thread_state_t *t, uint8_t *out, const void *ptr, size_t requested) {
    uint64_t value;
    if (MT_LIKELY(g_chunk_mode == MT_CHUNKS_OFF) || ptr == NULL || !mt_chunk_info(ptr, requested, &t->arena, &value))
        return out;
    *out++ = MT_EVENT_CHUNK_INFO;
    uint8_t *length = out++;
    uint8_t *end = mt_put_varint(out, value);
    *length = (uint8_t)(end - out);
    return end;
}

static inline bool mt_is_aligned_kind(uint8_t opcode) {
    return opcode >= MT_EVENT_POSIX_MEMALIGN && opcode <= MT_EVENT_PVALLOC;
}

void mt_record_alloc(uint8_t opcode, uint64_t seq, size_t size, const void *ptr, size_t alignment) {
    uint32_t stack = mt_current_stack_id();
    mt_thread_state_t *t = &t_state;
    uint8_t *out = mt_begin_event(t, MT_MAX_EVENT_BYTES);
    if (out == NULL) return;
    *out++ = opcode;
    out = mt_put_sequence(t, out, seq);
    out = mt_put_varint(out, size);
    out = mt_put_pointer(t, out, ptr);
    out = mt_put_varint(out, stack);
    if (mt_is_aligned_kind(opcode)) out = mt_put_varint(out, alignment);
    out = mt_put_chunk_info(t, out, ptr, size);
    mt_commit_event(t, out);
}

void mt_record_realloc(uint8_t opcode, uint64_t seq_before, uint64_t seq_after, size_t size, const void *old_ptr,
                       const void *new_ptr) {
    uint32_t stack = mt_current_stack_id();
    mt_thread_state_t *t = &t_state;
    uint8_t *out = mt_begin_event(t, MT_MAX_EVENT_BYTES);
    if (out == NULL) return;
    *out++ = opcode;
    out = mt_put_sequence(t, out, seq_before);
    out = mt_put_sequence(t, out, seq_after);
    out = mt_put_varint(out, size);
    uint64_t old_value = (uint64_t)(uintptr_t)old_ptr, new_value = (uint64_t)(uintptr_t)new_ptr;
    out = mt_put_zigzag(out, (int64_t)(old_value - t->last_pointer));
    out = mt_put_zigzag(out, (int64_t)(new_value - old_value));
    if (new_value != 0)
        t->last_pointer = new_value;
    else if (old_value != 0)
        t->last_pointer = old_value;
    out = mt_put_varint(out, stack);
    out = mt_put_chunk_info(t, out, new_ptr, size);
    mt_commit_event(t, out);
}

void mt_record_free(uint64_t seq, const void *ptr) {
    mt_thread_state_t *t = &t_state;
    uint8_t *out = mt_begin_event(t, MT_MAX_EVENT_BYTES);
    if (out == NULL) return;
    *out++ = MT_EVENT_FREE;
    out = mt_put_sequence(t, out, seq);
    out = mt_put_pointer(t, out, ptr);
    mt_commit_event(t, out);
}

void mt_record_sized(uint8_t opcode, const uint8_t *payload, size_t length) {
    mt_thread_state_t *t = &t_state;
    uint8_t *out = mt_begin_event(t, length + 2 * MT_MAX_VARINT_BYTES);
    if (out == NULL) return;
    *out++ = opcode;
    out = mt_put_varint(out, length);
    for (size_t i = 0; i < length; i++) out[i] = payload[i];
    mt_commit_event(t, out + length);
}

bool mt_record_stack_definition(uint32_t id, const uintptr_t *frames, uint32_t count) {
    mt_thread_state_t *t = &t_state;
    uint8_t *out = mt_begin_event(t, (size_t)(count + 3) * MT_MAX_VARINT_BYTES);
    if (out == NULL) return false;
    *out++ = MT_EVENT_STACK;
    out = mt_put_varint(out, id);
    out = mt_put_varint(out, count);
    for (uint32_t i = 0; i < count; i++) {
        out = i == 0 ? mt_put_varint(out, frames[0]) : mt_put_zigzag(out, (int64_t)(frames[i] - frames[i - 1]));
    }
    mt_commit_event(t, out);
    return true;
}
