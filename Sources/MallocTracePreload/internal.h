/*
 * Shared declarations of the preload library. Everything here runs inside the traced process, so
 * the rules are strict: no stdio, no allocation through the traced allocator except with the guard
 * set, no lock that another thread holds on its hot path, errno preserved on every hook.
 *
 * Concurrency contract (the one place it is written down)
 *
 * Locks, in the only order they are ever nested: loader (glibc's dl_load_write_lock, held by
 * dl_iterate_phdr while its callbacks run) -> modules (g_modules_mutex, only ever tried) -> stacks
 * (g_stacks_mutex, per new stack) -> file (g_file_mutex, per chunk). The interner refreshes modules before
 * it takes the stacks mutex; a refresh that finds a module unloaded takes the stacks mutex inside the
 * modules mutex (after its dl_iterate_phdr walk, never inside it) to retire that module's stacks. No
 * thread holding stacks waits for modules (it is only ever tried), so the nesting cannot deadlock. The sampler's table
 * mutex is a leaf taken alone (only mmap inside); the fork prepare handler takes stacks, file, sampler in that order.
 * While an exec is under way, a thread that needs a chunk waits on the file mutex's condition variable, possibly
 * holding loader, modules or stacks: the exec'ing thread takes none of them until mt_file_resume, and runs the exec
 * itself guarded.
 *
 * The guard (t_guard): functions marked "Guard held." below run only with it set, so that whatever they
 * allocate (pthread_getattr_np, setenv, dlsym's error buffers) goes untraced to libc and never re-enters
 * them. It is a per-thread token, not a lock: a hook that finds it set passes straight through. A guard
 * abandoned by a longjmp out of a signal handler is recognised by the frame address it holds (see
 * mt_guard_is_stale).
 *
 * Async-signal safety: a hook entered from a signal handler that interrupted the tracer finds the guard set
 * and calls libc directly (as unsafe as libc's malloc itself is in a handler, no more). fork, _exit and
 * exec from such a handler take no tracer lock (the interrupted code may hold one): fork leaves the child
 * untraced, _exit and exec leave the trace without an END record. mt_say and mt_fail only write(2).
 * Nothing else here is async-signal-safe.
 *
 * Cancellation: the hooks contain no cancellation point on the per-event path. The slow paths that reach
 * one (fallocate, open, close, write, msync and write inside libunwind, pthread_getattr_np's fopen,
 * pthread_cond_wait) run with cancellation disabled (mt_cancel_off), so a deferred pthread_cancel never ends
 * a thread holding a tracer lock; the pending request acts at the program's next cancellation point.
 * Asynchronous cancellation inside malloc is undefined for libc already.
 *
 * Memory calls (allocator.c): the mmap, munmap, mremap, brk and sbrk hooks record only while tracing, with the guard
 * clear and not paused; they never start the tracer (mmap comes early, from places that must not) and, before libc's
 * functions are resolved, call the system directly. The tracer's own mappings reach them with the guard set and pass
 * straight through. glibc's malloc maps through its internal __mmap and __sbrk and never reaches them.
 *
 * Lock-free lookups inside malloc: the stack intern table (slots published with release order, old
 * tables never freed), the sampled-bucket counts, the pause flag and the recorded-address filter (control.c:
 * relaxed bytes, only ever set, mapped once before tracing starts), the next RSS sample time (one CAS elects the
 * sampling thread), and
 * _dl_find_object in the fast unwinder. glibc's _dl_find_object (new in glibc 2.35: this library needs 2.35 or later)
 * reads a snapshot that dlopen and dlclose update under the loader lock with a version counter; it never locks,
 * allocates or blocks, so it is safe where dl_iterate_phdr would take the loader lock.
 *
 * dlclose (hooked, unlike dlopen: it does not depend on its caller) refreshes the module map right after a
 * library is unloaded, so that its stacks are retired before another library loaded at the same address
 * can capture the same return addresses. An unload the hook does not see (a dlclose inside libc) is found
 * by the next refresh, as before.
 *
 * The module window (re-checked): modules.c skips a refresh when another thread holds the modules mutex,
 * assuming the holder emits what changed. That holds for a dlopen that completes before the holder's
 * dl_iterate_phdr walk (the walk runs under the loader lock, so a new module is either in it or not). A
 * dlopen that completes after the walk began was missed by the holder while the skipping thread went on to
 * intern a stack with addresses in the new module; with no later new stack, the module was never recorded.
 * Now the skipping thread leaves a request (g_refresh_wanted) that the holder answers with another scan
 * after it unlocks, so the MODULE record always comes, though possibly just after that stack's definition
 * (a crash in that instant loses it; waiting instead could deadlock, see g_modules_mutex).
 */
#ifndef MALLOCTRACE_INTERNAL_H
#define MALLOCTRACE_INTERNAL_H

#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h> /* sigset_t, in hooks.def */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "malloctrace_format.h"

#define MT_LIKELY(x) __builtin_expect(!!(x), 1)
#define MT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MT_EXPORT __attribute__((visibility("default")))
#define MT_TLS __thread __attribute__((tls_model("initial-exec")))

/* ---- real functions (resolve.c) --------------------------------------------------------------- */

typedef struct mt_real_functions {
#define MT_REAL(ret, name, params) ret(*name) params;
#include "hooks.def"
#undef MT_REAL
} mt_real_functions_t;

extern mt_real_functions_t real;

/* Looks every hooked function up with dlsym(RTLD_NEXT); false (after one message) if one is missing. */
bool mt_resolve_real_functions(void);

/* Static arena serving allocations made while dlsym itself runs; its blocks never reach real free. */
void *mt_bootstrap_alloc(size_t size, size_t alignment);
#define MT_BOOTSTRAP_BYTES (64 * 1024)
extern uint8_t g_bootstrap[MT_BOOTSTRAP_BYTES];
/* Inline: free() asks on every call. */
static inline bool mt_bootstrap_owns(const void *ptr) {
    return (const uint8_t *)ptr >= g_bootstrap && (const uint8_t *)ptr < g_bootstrap + MT_BOOTSTRAP_BYTES;
}
size_t mt_bootstrap_size(const void *ptr);

/* ---- lifecycle (lifecycle.c) ------------------------------------------------------------------ */

enum mt_status { MT_STATUS_UNINITIALIZED, MT_STATUS_INITIALIZING, MT_STATUS_TRACING, MT_STATUS_OFF };

extern _Atomic int g_status;
/* Nonzero while this thread is inside the tracer: every allocation it makes goes untraced to libc. The
 * value is the frame address of the outermost tracer frame that took it (MT_GUARD_PINNED when the guarded
 * region spans functions, as from a fork's prepare handler to its parent handler), so that a guard left
 * behind by a longjmp out of a signal handler can be told from a held one (mt_guard_is_stale). Taking it
 * stores a register instead of a constant: the hot path pays nothing. */
extern MT_TLS uintptr_t t_guard;
#define MT_GUARD_PINNED UINTPTR_MAX
/* The token for a guard taken in the calling function: its frame address (this library keeps frame
 * pointers). A macro, so that it names the frame of the function it is written in. */
#define mt_guard_token() ((uintptr_t)__builtin_frame_address(0))
/* With the guard found set at `here` (the frame address of a hook): true when the frame that took it is gone,
 * and the guard was released. Cold; see lifecycle.c. */
bool mt_guard_is_stale(uintptr_t here);

void mt_initialize(void);
/* Registers the tracer's fork handlers, once, before any other handler that reaches __register_atfork. */
void mt_register_fork_handlers(void);
/* Registers the handler that ends the trace at quick_exit (interpose.c). */
void mt_register_quick_exit_handler(void);
/* True in the process that opened the trace (not in a vfork child sharing its memory). */
bool mt_is_trace_owner(void);

/* True when this call should be recorded; initializes on first use. Always inlined: the guard's staleness
 * test compares the hook's own frame with the one that took the guard. */
static inline __attribute__((always_inline)) bool mt_should_record(void) {
    if (MT_UNLIKELY(t_guard) && !mt_guard_is_stale(mt_guard_token())) return false;
    int status = atomic_load_explicit(&g_status, memory_order_relaxed);
    if (MT_LIKELY(status == MT_STATUS_TRACING)) return true;
    if (status == MT_STATUS_UNINITIALIZED) {
        mt_initialize();
        return atomic_load_explicit(&g_status, memory_order_relaxed) == MT_STATUS_TRACING;
    }
    return false;
}

/* The failure policy: print one "malloctrace: ..." line (only the first time) and stop tracing.
 * The target keeps running untouched. Each part is a plain string; the call ends with NULL. */
void mt_fail(const char *first, ...) __attribute__((sentinel));
/* The copy of stderr that messages go to (-1 when none). */
int mt_stderr_descriptor_number(void);
/* Prints one "malloctrace: ..." line made of the parts, without changing anything. */
void mt_say(const char *first, ...) __attribute__((sentinel));

size_t mt_page_size(void);

/* ---- the tracer's own mappings (tracer_memory.c) ------------------------------------------------ */

#define MT_MAX_TRACER_MAPPINGS 1024

typedef struct mt_range {
    uintptr_t start, end;
} mt_range_t;

/* Every data mapping of the tracer that can hold a heap pointer comes from here (private, anonymous,
 * read-write, plus `extra_flags`), so that the leak scan can leave them out of its roots. NULL on
 * failure; errno kept. */
void *mt_map_memory(size_t bytes, int extra_flags);
void mt_unmap_memory(void *memory, size_t bytes);
/* The registry's lock (innermost of all; the scan holds it across the stop) and, in a forked child,
 * a fresh one. */
void mt_tracer_mappings_lock(void);
void mt_tracer_mappings_unlock(void);
void mt_tracer_mappings_reset_lock(void);
/* The registered ranges (unsorted); SIZE_MAX when some mapping could not be registered. Lock held. */
size_t mt_tracer_mappings_locked(const mt_range_t **mappings);

/* The tracer's slow paths reach cancellation points (fallocate, open, close, write, msync and write inside
 * libunwind): a deferred pthread_cancel would end the thread there, holding a tracer lock or the guard,
 * and every other thread would hang on the lock. They run with cancellation disabled (cheap, and never
 * on the per-event path); restoring the state does not act on a pending request, the program's next
 * cancellation point does. */
static inline int mt_cancel_off(void) {
    int state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
    return state;
}
static inline void mt_cancel_restore(int state) { pthread_setcancelstate(state, NULL); }

/* ---- configuration (config.c) ----------------------------------------------------------------- */

typedef struct mt_config {
    char output_path[4096];
    uint32_t max_depth;
    uint32_t unwind_mode; /* enum mt_unwind_mode */
    bool follow_children;
    uint32_t sample_rate; /* mean bytes between sample points; 0 = record every call */
    uint64_t sample_seed;
    bool sample_seed_given;
    bool leak_scan;      /* MALLOCTRACE_LEAK_SCAN=1 */
    bool rss_samples;    /* MALLOCTRACE_RSS, default 1: RSS and program break over time */
    bool usable_sizes;   /* MALLOCTRACE_USABLE, default 1: usable size and chunk flags of every block */
    bool trace_mappings; /* MALLOCTRACE_MMAP=1: the program's own anonymous mmap/munmap/mremap, brk/sbrk */
    /* MALLOCTRACE_CLOCK_EVERY: events per read of the coarse clock, 1-16 (16; 1 when sampling). A thread that
     * goes idle stamps up to this many of its next events with the time of its last read. */
    uint32_t clock_every;
    bool start_paused;     /* MALLOCTRACE_START=paused: the library loads idle until `ctl PID start` */
    bool control;          /* MALLOCTRACE_CONTROL=1 (or START=paused): serve `malloctrace ctl` (control_server.c) */
    char control_dir[108]; /* MALLOCTRACE_CONTROL_DIR; empty: /tmp/malloctrace-EUID */
} mt_config_t;

#define MT_DEFAULT_CLOCK_EVERY 16

extern mt_config_t g_config;

/* getenv that also works before libc's initializer set environ (for MALLOCTRACE_*, MALLOC_*, GLIBC_TUNABLES). */
const char *mt_getenv(const char *name);
/* Reads MALLOCTRACE_* variables; false (after one message) on a malformed value. */
bool mt_read_config(void);
/* Hides the tracer from processes this one execs, unless following children was asked for. */
void mt_scrub_environment(const char *self_path);
/* With children followed, an exec's `environment` gets the tracer's variables it lacks (MALLOCTRACE_*,
 * LD_PRELOAD, as this image started with them): `env -i`, `execve` with a list of its own are followed all the
 * same. The size of the array that takes it (0: it lacks none, or nothing is followed), then the array itself,
 * filled into `followed` (on the caller's stack: a vfork child must not allocate). */
size_t mt_follow_environment_size(char *const environment[]);
void mt_follow_environment(char *const environment[], char **followed);
/* Does the scrub that a start before libc's initializer had to leave for later (constructor). */
void mt_scrub_deferred_environment(void);

/* ---- trace file (trace_file.c) ---------------------------------------------------------------- */

/* A close-on-exec copy of `fd` with a high number (low numbers stay free for the target), or -1. */
int mt_duplicate_high(int fd);
/* Creates the file and writes its header and process record. Guard held (as every mt_file_* function). */
bool mt_file_open(const char *path, const mt_process_record_t *process, const char *exe, size_t exe_length,
                  const char *argv, size_t argv_length);
/* Reserves a chunk of `capacity` bytes of events for thread `tid`; returns the chunk header
 * (events follow it) or NULL when tracing stopped. `*window` is an opaque token for the release. */
mt_chunk_header_t *mt_file_reserve_chunk(uint32_t tid, uint32_t capacity, void **window);
/* Tells the file that a chunk will not grow any more, so its mapping can be dropped. */
void mt_file_release_chunk(void *window);
/* Appends one record of `kind` (payload = a then b) under the file's mutex; false when tracing stopped. */
bool mt_file_write_record(uint8_t kind, const void *a, size_t a_length, const void *b, size_t b_length);
/* Appends an END record and truncates the file to what was written. */
void mt_file_finish(const mt_end_record_t *end);
/* Before an exec (then mt_file_finish): until mt_file_resume, other threads that need a new chunk wait, so
 * that a failed exec loses none of their events. */
void mt_file_begin_exec(void);
/* After a failed exec: takes the finished file up again (its END becomes padding) and wakes the waiters. */
void mt_file_resume(void);
/* Locks for fork(): the child must not inherit a mutex held by another thread. */
void mt_file_lock(void);
void mt_file_unlock(void);
/* The trace file's descriptor (-1 when none), for the control thread's own descriptor table. */
int mt_file_descriptor(void);
/* Whether that descriptor, in the calling thread's table, is the trace file. */
bool mt_file_descriptor_is_trace(void);
/* In a forked child: forget the parent's file without touching it. */
void mt_file_forget(void);

/* ---- event recording (recorder.c) ------------------------------------------------------------- */

extern _Atomic uint64_t g_sequence;
extern uint64_t g_start_monotonic_ns;

static inline uint64_t mt_next_sequence(void) {
    return atomic_fetch_add_explicit(&g_sequence, 1, memory_order_relaxed) + 1;
}

/* Guard held (all mt_record_*). */
void mt_record_alloc(uint8_t opcode, uint64_t seq, size_t size, const void *ptr, size_t alignment);
void mt_record_realloc(uint8_t opcode, uint64_t seq_before, uint64_t seq_after, size_t size, const void *old_ptr,
                       const void *new_ptr);
void mt_record_free(uint64_t seq, const void *ptr);
/* Writes a sized event (opcode >= MT_EVENT_FIRST_SIZED) into this thread's chunk. */
void mt_record_sized(uint8_t opcode, const uint8_t *payload, size_t length);
/* Defines a stack id in this thread's chunk; called by the interner before it publishes the id. */
bool mt_record_stack_definition(uint32_t id, const uintptr_t *frames, uint32_t count);
/* Forget this thread's chunk (after fork, in the child). */
void mt_recorder_reset_thread(void);
void mt_recorder_initialize(void);
uint64_t mt_now_ns(void);

/* ---- resident set and program break (rss.c) --------------------------------------------------- */

/* The coarse time (ns since start) at or after which the next RSS sample is due; UINT64_MAX when sampling is
 * off. The recorder compares it only when its clock moved (every MT_CLOCK_EVERY events at most). */
extern _Atomic uint64_t g_rss_next_sample_ns;
/* Opens /proc/self/statm (above the low descriptors) and notes the program break; samples when `sampling`.
 * At every start of tracing. Guard held. */
void mt_rss_start(bool sampling);
/* True for the one thread that moves the next sample time past `now`: it takes the sample. */
bool mt_rss_claim_sample(uint64_t now);
uint64_t mt_rss_resident_bytes(void);
/* The /proc/self/statm descriptor (-1 when none). */
int mt_rss_descriptor(void);
uint64_t mt_rss_break_bytes(void);
/* Appends the PROCESS_STATS record for an END of reason `how` (enum mt_end_reason). Guard held. */
void mt_rss_write_end_stats(uint32_t how);

/* ---- the allocator's view (allocator.c) ------------------------------------------------------ */

enum mt_chunk_mode { MT_CHUNKS_OFF, MT_CHUNKS_OTHER, MT_CHUNKS_GLIBC };
/* How allocation events get their CHUNK_INFO (enum mt_chunk_mode), set once at start. */
extern uint8_t g_chunk_mode;
/* MALLOCTRACE_MMAP while tracing: the mapping hooks record. */
extern bool g_trace_mappings;
/* The real malloc is glibc's own, not one preloaded or linked after this library (set by mt_allocator_start, before
 * the leak scan is initialized: the scan's roots depend on it). */
extern bool g_malloc_is_glibc;
/* Finds out which allocator serves the calls and writes the ALLOCATOR record (before any chunk). Guard held. */
void mt_allocator_start(void);
/* Another allocator's block: true (with the CHUNK_INFO value) when its usable size exceeds the request. */
bool mt_chunk_info_other(const void *ptr, size_t requested, uint64_t *value);

/* The usable size glibc gives a request served from an arena: its chunk (request + 8 bytes of header, rounded up
 * to 16, at least 32) less the 8-byte size word. The reader derives the same (docs/trace-format.md). */
static inline uint64_t mt_glibc_derived_usable(uint64_t requested) {
    uint64_t chunk = (requested + 8 + 15) & ~(uint64_t)15;
    return (chunk < MT_GLIBC_MIN_CHUNK ? MT_GLIBC_MIN_CHUNK : chunk) - 8;
}

/* The CHUNK_INFO value of a successful allocation, when the reader could not derive it: true and `*value`.
 * `arena` is the chunk's current non-main-arena bit, updated by what is written. Guard held. */
static inline bool mt_chunk_info(const void *ptr, size_t requested, uint8_t *arena, uint64_t *value) {
    if (g_chunk_mode != MT_CHUNKS_GLIBC) return mt_chunk_info_other(ptr, requested, value);
    size_t word =
        ((const size_t *)ptr)[-1]; /* the chunk's size word: size | NON_MAIN_ARENA | IS_MMAPPED | PREV_INUSE */
    size_t chunk = word & ~(size_t)MT_GLIBC_SIZE_BITS;
    bool mmapped = (word & MT_GLIBC_IS_MMAPPED) != 0;
    uint8_t non_main = (word & MT_GLIBC_NON_MAIN_ARENA) != 0;
    /* glibc's malloc_usable_size: an mmapped chunk's header is 16 bytes, an arena chunk lends the next one's
     * prev_size word */
    size_t usable = chunk - (mmapped ? 16 : 8);
    if (!mmapped && non_main == *arena && usable == mt_glibc_derived_usable(requested)) return false;
    if (!mmapped) *arena = non_main;
    *value = (uint64_t)(usable > requested ? usable - requested : 0) << 2 | (uint64_t)mmapped << 1 | non_main;
    return true;
}

/* ---- control API (control.c) ----------------------------------------------------------------- */

/* Set between mt_control_pause and mt_control_resume: the hooks record no allocation, only the releases of
 * blocks that may have been recorded (g_recorded_filter). One well-predicted load on the hot path. */
extern _Atomic bool g_paused;
static inline bool mt_control_is_paused(void) { return atomic_load_explicit(&g_paused, memory_order_relaxed); }

/* One byte per 256-byte granule of the address space (modulo 1 GiB), set for every recorded block (malloc family
 * and pools), never cleared. Not hashed on purpose: neighbouring blocks share a byte and a cache line, so the
 * filter's working set is 1/256 of the heap's and noting a block costs no cache miss of its own (a hashed table
 * cost ~15% more CPU time on the churn benchmark). */
#define MT_RECORDED_FILTER_BITS 22
#define MT_RECORDED_FILTER_SLOTS (1u << MT_RECORDED_FILTER_BITS)
#define MT_RECORDED_GRANULE_SHIFT 8
extern _Atomic(_Atomic uint8_t *) g_recorded_filter;
static inline size_t mt_recorded_slot(const void *ptr) {
    return (size_t)((uintptr_t)ptr >> MT_RECORDED_GRANULE_SHIFT) & (MT_RECORDED_FILTER_SLOTS - 1);
}
/* Notes a recorded block; the store is skipped when the byte is set already, so lines stay shared. */
static inline void mt_recorded_note(const void *ptr) {
    _Atomic uint8_t *filter = atomic_load_explicit(&g_recorded_filter, memory_order_relaxed);
    if (MT_UNLIKELY(filter == NULL || ptr == NULL)) return;
    _Atomic uint8_t *slot = &filter[mt_recorded_slot(ptr)];
    if (!atomic_load_explicit(slot, memory_order_relaxed)) atomic_store_explicit(slot, 1, memory_order_relaxed);
}
/* False only for a block that was certainly never recorded (while paused, its release need not be). */
bool mt_recorded_may_contain(const void *ptr);

/* At every start of tracing (not paused; the filter is mapped once per process image). Guard held. */
void mt_control_start(void);
/* The control core, shared by the exported malloctrace_* functions (malloctrace.h) and any other control
 * channel. Each may be called with or without the guard held by the calling code itself, but never from a
 * signal handler that interrupted the tracer (they write into the calling thread's chunk). Each does nothing
 * unless this process is tracing. Pause and resume are idempotent (not counted). */
void mt_control_pause(void);
void mt_control_resume(void);
void mt_control_mark(const char *name);
void mt_control_snapshot(const char *name);
/* Pools: ids from 1; 0 means "no pool" (not tracing) and makes every other pool call do nothing. */
uint64_t mt_control_pool_create(const char *name);
void mt_control_pool_alloc(uint64_t pool, const void *ptr, size_t size);
void mt_control_pool_free(uint64_t pool, const void *ptr);
void mt_control_pool_destroy(uint64_t pool);
void mt_control_pool_backing(uint64_t pool, const void *block);

/* ---- control channel (control_server.c) ---------------------------------------------------------- */

/* Starts the thread that serves `malloctrace ctl` on DIR/PID.sock when control is on (g_config.control), once
 * per traced process (at load, and in a followed child's fork handler). Guard held. */
void mt_control_server_start(void);
/* Removes this process's socket (at exit); a socket left by a killed process is replaced by the next one. */
void mt_control_server_remove_socket(void);

/* ---- stacks (stacks.c) ------------------------------------------------------------------------ */

void mt_stacks_initialize(void);
/* The address range of this library's loaded segments (set by mt_stacks_initialize). */
extern uintptr_t g_self_start, g_self_end;
static inline bool mt_is_own_frame(uintptr_t address) { return address >= g_self_start && address < g_self_end; }
/* Captures the caller's stack and returns its interned id (0 = no stack). Guard held. */
uint32_t mt_current_stack_id(void);
void mt_stacks_lock(void);
void mt_stacks_unlock(void);
void mt_stacks_reset(void);
/* Makes the interned stacks with a frame in [start, end] (an unloaded module) unreachable: the same
 * addresses get a new id when next captured. Takes the stacks mutex. */
void mt_stacks_retire(uintptr_t start, uintptr_t end);

/* ---- fast unwinder (unwind.c) ---------------------------------------------------------------- */

/* Fills `frames` with return addresses, starting at the first caller outside this library; -1 when
 * libunwind must do it. */
__attribute__((noinline)) int mt_fast_unwind(uintptr_t *frames, int max);
/* Frees this thread's rule cache (thread exit). */
void mt_unwind_thread_exit(void);
/* Prints the verify mode's result, if it found differences. */
void mt_stacks_report_verification(void);

/* ---- modules (modules.c) ---------------------------------------------------------------------- */

/* Emits MODULE / MODULE_UNLOAD events for changes since the last call, and retires the interned stacks
 * with addresses in an unloaded module (mt_stacks_retire). Guard held. */
void mt_modules_refresh(void);

struct dl_phdr_info;
/* The runtime address range [start, end) that a module's PT_LOAD segments span (start > end: none). */
void mt_module_span(const struct dl_phdr_info *info, uintptr_t *start, uintptr_t *end);
void mt_modules_reset(void);

/* ---- sampling by bytes (sampler.c) ----------------------------------------------------------- */

/* g_config.sample_rate while tracing, as a 64-bit number the hooks test on every call. */
extern uint64_t g_sample_rate;
extern MT_TLS uint64_t t_bytes_until_sample;
bool mt_sample_slow(size_t size);

/* Consumes `size` bytes of this thread's distance to the next sample point; true when the allocation
 * holds a sample point and must be recorded. */
static inline bool mt_sample_allocation(size_t size) {
    if (MT_LIKELY(size < t_bytes_until_sample)) {
        t_bytes_until_sample -= size;
        return false;
    }
    return mt_sample_slow(size);
}

#define MT_SAMPLED_BUCKET_BITS 16
#define MT_SAMPLED_BUCKETS (1u << MT_SAMPLED_BUCKET_BITS)
/* Live sampled blocks per address bucket: zero means "certainly not sampled", without a lock. */
extern _Atomic uint32_t g_sampled_counts[MT_SAMPLED_BUCKETS];

static inline size_t mt_sampled_bucket(const void *ptr) {
    return (size_t)(((uint64_t)(uintptr_t)ptr * 0x9E3779B97F4A7C15ull) >> (64 - MT_SAMPLED_BUCKET_BITS));
}

static inline bool mt_sampled_may_contain(const void *ptr) {
    return atomic_load_explicit(&g_sampled_counts[mt_sampled_bucket(ptr)], memory_order_relaxed) != 0;
}

/* Remembers a recorded block (before its pointer reaches the caller). Guard held. */
void mt_sampled_insert(const void *ptr);
/* Forgets a block; true when it was a recorded one (so its release must be recorded too). */
bool mt_sampled_remove(const void *ptr);
void mt_sampler_lock(void);
void mt_sampler_unlock(void);
void mt_sampler_reset(void);
void mt_sampler_reset_thread(void);

/* ---- live blocks for the leak scan (live_blocks.c) ------------------------------------------- */

/* g_config.leak_scan while tracing: the hooks keep the live-block table only when it is set. */
extern bool g_leak_scan;

/* The signal that stops the other threads for the scan (thread_stop.c), kept out of the masks the program
 * sets while the scan is on. A real-time signal near the top of the range, which programs rarely name (they
 * count up from SIGRTMIN, and glibc reserves the lowest), not SIGPWR: that one has a meaning of its own (power
 * failure), and a program that blocks it and waits for it (sigwait, signalfd) was killed by it under the scan. */
#define MT_STOP_SIGNAL (SIGRTMAX - 1)

#define MT_LIVE_SHARD_BITS 7
#define MT_LIVE_SHARDS (1u << MT_LIVE_SHARD_BITS)
#define MT_LIVE_FROM_LDSO (1ull << 63)
#define MT_LIVE_SIZE_MASK (~MT_LIVE_FROM_LDSO)
#define MT_LIVE_ABSENT UINT64_MAX

typedef struct mt_live_entry {
    uintptr_t address;
    uint64_t info; /* requested size | MT_LIVE_FROM_LDSO */
} mt_live_entry_t;

void mt_live_initialize(void);
/* Adds a block (after the real allocation returned); `caller` is the hook's return address. errno kept. */
void mt_live_insert(const void *ptr, size_t size, const void *caller);
/* Removes a block (before the real free) and returns its info, or MT_LIVE_ABSENT. */
uint64_t mt_live_remove(const void *ptr);
/* Puts back what mt_live_remove returned (a failed realloc keeps the old block). */
void mt_live_reinsert(const void *ptr, uint64_t info);
/* Every shard, in one order (fork, scan). */
void mt_live_lock(void);
void mt_live_unlock(void);
void mt_live_reset_locks(void);
size_t mt_live_count_locked(void);
size_t mt_live_copy_locked(mt_live_entry_t *out, size_t capacity);

/* ---- leak scan (leak_scan.c) ----------------------------------------------------------------- */

/* Resolves what the scan needs once (with the guard set, at start). */
void mt_leak_scan_initialize(void);
/* Runs one scan and appends its LEAK_SCAN records (enum mt_leak_scan_trigger). Guard held. */
void mt_leak_scan(uint32_t trigger);
/* Unblocks the scan's stop signal in this thread if the program's environment had blocked it (the
 * mask survives exec), remembering that the program believes it blocked. At start, leak scan on. */
void mt_unblock_stop_signal(void);
/* Around an exec: the new image starts with the mask the program asked for, the stop signal blocked if it blocked
 * it (`before`: true just before the exec, then false if the exec failed). */
void mt_exec_stop_signal_mask(bool before);
/* Stack pointer of an explicit exit() call on the main thread (0: main returned, or not main). */
extern uintptr_t g_exit_stack_pointer;

/* ---- varint encoding (encode.h) --------------------------------------------------------------- */

static inline uint8_t *mt_put_varint(uint8_t *out, uint64_t value) {
    while (value >= 0x80) {
        *out++ = (uint8_t)(value | 0x80);
        value >>= 7;
    }
    *out++ = (uint8_t)value;
    return out;
}

static inline uint8_t *mt_put_zigzag(uint8_t *out, int64_t value) {
    return mt_put_varint(out, ((uint64_t)value << 1) ^ (uint64_t)(value >> 63));
}

static inline size_t mt_saturating_product(size_t a, size_t b) {
    size_t product;
    return __builtin_mul_overflow(a, b, &product) ? SIZE_MAX : product;
}

#endif /* MALLOCTRACE_INTERNAL_H */
