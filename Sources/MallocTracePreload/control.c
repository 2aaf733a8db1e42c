/*
 * The control API's core: pause and resume, marks, snapshots and pools (allocators that do not go through
 * malloc). The exported malloctrace_* functions (malloctrace.h resolves them at run time) and the external
 * control channel both call the mt_control_* functions here; each writes one sized event (0x88-0x8F, see
 * malloctrace_format.h) into the calling thread's chunk, with a sequence number so that the reader puts
 * events of all threads in one order.
 *
 * Pausing costs the hooks one load of g_paused (a line that only pause/resume write). While paused no
 * allocation is recorded, but the release of a block recorded before the pause still is: otherwise it would
 * stay live in every report. Which blocks were recorded is answered by g_recorded_filter, one byte per 256-byte
 * granule of addresses, set for every recorded block and never cleared: "no" is exact, "maybe" records the
 * free, and the reader ignores a free of an address it does not hold (a block allocated while paused).
 */
#include "internal.h"

#include <string.h>
#include <sys/mman.h>

_Atomic bool g_paused;
_Atomic(_Atomic uint8_t *) g_recorded_filter;

static _Atomic uint64_t g_next_pool_id;

/* Names longer than this are cut (a name is a label, not data). */
#define MT_CONTROL_NAME_BYTES 256
#define MT_CONTROL_EVENT_BYTES (MT_CONTROL_NAME_BYTES + 8 * MT_MAX_VARINT_BYTES)

void mt_control_start(void) {
    atomic_store_explicit(&g_paused, false, memory_order_relaxed);
    if (atomic_load_explicit(&g_recorded_filter, memory_order_relaxed) != NULL) return;
    /* Untouched pages cost nothing: a program touches one page of it per 1 MiB of heap addresses it uses. */
    void *filter = mt_map_memory(MT_RECORDED_FILTER_SLOTS, MAP_NORESERVE);
    if (filter != NULL) atomic_store_explicit(&g_recorded_filter, filter, memory_order_release);
}

bool mt_recorded_may_contain(const void *ptr) {
    _Atomic uint8_t *filter = atomic_load_explicit(&g_recorded_filter, memory_order_acquire);
    /* Without a filter (its mmap failed) every free while paused is recorded: the reader ignores extras. */
    return filter == NULL || atomic_load_explicit(&filter[mt_recorded_slot(ptr)], memory_order_relaxed) != 0;
}

/* True when a control event may be written now by this thread: tracing, in the process that owns the trace.
 * The guard is the caller's business (see internal.h). */
static bool mt_control_ready(void) {
    if (atomic_load_explicit(&g_status, memory_order_relaxed) == MT_STATUS_UNINITIALIZED) mt_initialize();
    return atomic_load_explicit(&g_status, memory_order_relaxed) == MT_STATUS_TRACING && mt_is_trace_owner();
}

/* Encodes a name: v length | bytes, cut at MT_CONTROL_NAME_BYTES. NULL reads as the empty name. */
static uint8_t *mt_put_name(uint8_t *out, const char *name) {
    size_t length = name == NULL ? 0 : strnlen(name, MT_CONTROL_NAME_BYTES);
    out = mt_put_varint(out, length);
    memcpy(out, name, length);
    return out + length;
}

/* Writes one control event with the guard taken (unless the caller holds it already). */
static void mt_control_emit(uint8_t opcode, const uint8_t *payload, size_t length) {
    uintptr_t was_guarded = t_guard;
    t_guard = was_guarded ? was_guarded : mt_guard_token();
    mt_record_sized(opcode, payload, length);
    t_guard = was_guarded;
}

/*   0x8D | v length | v seq | v time_ns | v state          state: 1 = paused from here on, 0 = resumed
 * Pausing takes its number after the flag is set, resuming before it is cleared, so that every allocation
 * recorded with a number between the two was recorded by a thread that had not yet seen the change: the
 * reader drops those, which makes the paused interval exact in sequence order across threads. */
static void mt_control_pause_event(bool paused) {
    uint8_t payload[3 * MT_MAX_VARINT_BYTES], *end = payload;
    end = mt_put_varint(end, mt_next_sequence());
    end = mt_put_varint(end, mt_now_ns());
    end = mt_put_varint(end, paused ? 1 : 0);
    mt_control_emit(MT_EVENT_PAUSE, payload, (size_t)(end - payload));
}

void mt_control_pause(void) {
    if (!mt_control_ready()) return;
    bool expected = false;
    if (!atomic_compare_exchange_strong(&g_paused, &expected, true)) return;
    mt_control_pause_event(true);
}

void mt_control_resume(void) {
    if (!mt_control_ready() || !atomic_load(&g_paused)) return;
    mt_control_pause_event(false);
    atomic_store(&g_paused, false);
}

/*   0x8E / 0x8F | v length | v seq | v time_ns | v name_length | name
 * A mark names a moment (report --from-mark/--to-mark); a snapshot asks the reader for the live set at it. */
static void mt_control_named_event(uint8_t opcode, const char *name) {
    if (!mt_control_ready()) return;
    uint8_t payload[MT_CONTROL_EVENT_BYTES], *end = payload;
    end = mt_put_varint(end, mt_next_sequence());
    end = mt_put_varint(end, mt_now_ns());
    end = mt_put_name(end, name);
    mt_control_emit(opcode, payload, (size_t)(end - payload));
}

void mt_control_mark(const char *name) { mt_control_named_event(MT_EVENT_MARK, name); }
void mt_control_snapshot(const char *name) { mt_control_named_event(MT_EVENT_SNAPSHOT, name); }

/* ---- pools ---------------------------------------------------------------------------------------- */

/* Pool events are recorded in full even in a sampled trace: they are the program's own declarations. */

/*   0x88 | v length | v seq | v pool_id | v stack_id | v name_length | name */
uint64_t mt_control_pool_create(const char *name) {
    if (!mt_control_ready()) return 0;
    uint64_t id = atomic_fetch_add_explicit(&g_next_pool_id, 1, memory_order_relaxed) + 1;
    uintptr_t was_guarded = t_guard;
    t_guard = was_guarded ? was_guarded : mt_guard_token();
    uint8_t payload[MT_CONTROL_EVENT_BYTES], *end = payload;
    end = mt_put_varint(end, mt_next_sequence());
    end = mt_put_varint(end, id);
    end = mt_put_varint(end, mt_current_stack_id());
    end = mt_put_name(end, name);
    mt_record_sized(MT_EVENT_POOL_CREATE, payload, (size_t)(end - payload));
    t_guard = was_guarded;
    return id;
}

/*   0x89 | v length | v seq | v pool_id | v ptr | v size | v stack_id
 * Not while paused (as malloc). The block is noted in the filter so that its release while paused is kept. */
void mt_control_pool_alloc(uint64_t pool, const void *ptr, size_t size) {
    if (pool == 0 || ptr == NULL || mt_control_is_paused() || !mt_control_ready()) return;
    uintptr_t was_guarded = t_guard;
    t_guard = was_guarded ? was_guarded : mt_guard_token();
    uint8_t payload[5 * MT_MAX_VARINT_BYTES], *end = payload;
    uint64_t seq = mt_next_sequence();
    mt_recorded_note(ptr);
    end = mt_put_varint(end, seq);
    end = mt_put_varint(end, pool);
    end = mt_put_varint(end, (uint64_t)(uintptr_t)ptr);
    end = mt_put_varint(end, size);
    end = mt_put_varint(end, mt_current_stack_id());
    mt_record_sized(MT_EVENT_POOL_ALLOC, payload, (size_t)(end - payload));
    t_guard = was_guarded;
}

/* Writes v seq | v pool_id [| v ptr] under `opcode`. */
static void mt_control_pool_event(uint8_t opcode, uint64_t pool, const void *ptr) {
    uint8_t payload[3 * MT_MAX_VARINT_BYTES], *end = payload;
    end = mt_put_varint(end, mt_next_sequence());
    end = mt_put_varint(end, pool);
    if (opcode != MT_EVENT_POOL_DESTROY) end = mt_put_varint(end, (uint64_t)(uintptr_t)ptr);
    mt_control_emit(opcode, payload, (size_t)(end - payload));
}

/*   0x8A | v length | v seq | v pool_id | v ptr         (while paused only if the block may have been recorded) */
void mt_control_pool_free(uint64_t pool, const void *ptr) {
    if (pool == 0 || ptr == NULL || !mt_control_ready()) return;
    if (mt_control_is_paused() && !mt_recorded_may_contain(ptr)) return;
    mt_control_pool_event(MT_EVENT_POOL_FREE, pool, ptr);
}

/*   0x8B | v length | v seq | v pool_id                 (every live block of the pool is released) */
void mt_control_pool_destroy(uint64_t pool) {
    if (pool == 0 || !mt_control_ready()) return;
    mt_control_pool_event(MT_EVENT_POOL_DESTROY, pool, NULL);
}

/*   0x8C | v length | v seq | v pool_id | v ptr         (a heap block the pool carves its blocks from) */
void mt_control_pool_backing(uint64_t pool, const void *block) {
    if (pool == 0 || block == NULL || !mt_control_ready()) return;
    mt_control_pool_event(MT_EVENT_POOL_BACKING, pool, block);
}

/* ---- the exported API (malloctrace.h) ------------------------------------------------------------- */

/* A call made inside the tracer (a signal handler that interrupted a hook, or the tracer's own code) must not
 * write into the chunk that the interrupted code is writing: it does nothing. */
static inline __attribute__((always_inline)) bool mt_api_may_record(void) {
    return !(MT_UNLIKELY(t_guard) && !mt_guard_is_stale(mt_guard_token()));
}

MT_EXPORT void malloctrace_pause(void) {
    if (mt_api_may_record()) mt_control_pause();
}
MT_EXPORT void malloctrace_resume(void) {
    if (mt_api_may_record()) mt_control_resume();
}
MT_EXPORT int malloctrace_is_paused(void) { return mt_control_is_paused(); }
MT_EXPORT void malloctrace_mark(const char *name) {
    if (mt_api_may_record()) mt_control_mark(name);
}
MT_EXPORT void malloctrace_snapshot(const char *name) {
    if (mt_api_may_record()) mt_control_snapshot(name);
}
MT_EXPORT void *malloctrace_pool_create(const char *name) {
    return mt_api_may_record() ? (void *)(uintptr_t)mt_control_pool_create(name) : NULL;
}
MT_EXPORT void malloctrace_pool_alloc(void *pool, const void *ptr, size_t size) {
    if (mt_api_may_record()) mt_control_pool_alloc((uint64_t)(uintptr_t)pool, ptr, size);
}
MT_EXPORT void malloctrace_pool_free(void *pool, const void *ptr) {
    if (mt_api_may_record()) mt_control_pool_free((uint64_t)(uintptr_t)pool, ptr);
}
MT_EXPORT void malloctrace_pool_destroy(void *pool) {
    if (mt_api_may_record()) mt_control_pool_destroy((uint64_t)(uintptr_t)pool);
}
MT_EXPORT void malloctrace_pool_backing(void *pool, const void *block) {
    if (mt_api_may_record()) mt_control_pool_backing((uint64_t)(uintptr_t)pool, block);
}
