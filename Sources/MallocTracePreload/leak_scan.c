/*
 * The leak scan (MALLOCTRACE_LEAK_SCAN=1): at exit, at _exit and on demand, a conservative mark phase
 * over every live block, then LEAK_SCAN records with the kind of each. Order matters (LEAKSCAN.md §1):
 *
 *   1. module list (dl_iterate_phdr may wait for a lock that a parked thread holds: only before the stop)
 *   2. lock the live table (allocating threads then park in the hooks), copy and sort it
 *   3. stop the other threads, read /proc/self/maps with raw syscalls (an exact, allocation-free view)
 *   4. mark from the roots; 5. resume, unlock, restore the signal handler; 6. only then write records
 */
#include "leak_scan.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MT_MAX_MODULE_RANGES 8192
#define MT_MAPS_BUFFER_BYTES (16u << 20)
#define MT_MAX_MAPPINGS (MT_MAPS_BUFFER_BYTES / 32)
#define MT_MAX_ROOT_RANGE (1ull << 32) /* a "stack" longer than this is a bogus pointer pair */

uintptr_t g_exit_stack_pointer;

static size_t (*g_usable_size)(void *);
static void **g_libc_stack_end;
static size_t g_static_tls_size;
static size_t g_sizeof_pthread = 2368; /* glibc 2.36 x86-64, in case libc does not tell (LEAKSCAN §2) */
static _Atomic bool g_scan_running;
#define MT_SAVED_REGISTERS 6
/* Per thread: a second, concurrent caller writes its own before it finds a scan running. */
static MT_TLS uintptr_t t_own_registers[MT_SAVED_REGISTERS];

void mt_leak_scan_initialize(void) {
    g_usable_size = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
    g_libc_stack_end = (void **)dlsym(RTLD_DEFAULT, "__libc_stack_end");
    /* Both GLIBC_PRIVATE; LeakSanitizer reads the same two. Without them the TLS ranges are skipped. */
    void (*tls_info)(size_t *, size_t *) = (void (*)(size_t *, size_t *))dlsym(RTLD_DEFAULT, "_dl_get_tls_static_info");
    if (tls_info != NULL) {
        size_t align;
        tls_info(&g_static_tls_size, &align);
    }
    const unsigned int *sizeof_pthread = dlsym(RTLD_DEFAULT, "_thread_db_sizeof_pthread");
    if (sizeof_pthread != NULL) g_sizeof_pthread = *sizeof_pthread;
    if (g_static_tls_size > g_sizeof_pthread + (64u << 20)) g_static_tls_size = 0;
}

/* ---- roots that are known before the stop -------------------------------------------------------- */

typedef struct mt_module_ranges {
    mt_range_t *ranges;
    size_t count;
    /* This library's static TLS block relative to the thread pointer (the same in every thread): the
     * recorder keeps the last pointer it encoded there, which would keep a leaked block alive. */
    intptr_t own_tls_offset;
    size_t own_tls_size;
} mt_module_ranges_t;

/* Every writable PT_LOAD of every module but this library (LeakSanitizer's global roots): data, .bss
 * (including the anonymous tail that /proc/self/maps shows without a name) and RELRO. */
static int mt_collect_module(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    mt_module_ranges_t *modules = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *phdr = &info->dlpi_phdr[i];
        if (phdr->p_type != PT_LOAD) continue;
        uintptr_t start = info->dlpi_addr + phdr->p_vaddr;
        if (mt_is_own_frame(start)) { /* our tables point at blocks: never a root */
            for (int t = 0; t < info->dlpi_phnum; t++)
                if (info->dlpi_phdr[t].p_type == PT_TLS && info->dlpi_tls_data != NULL) {
                    modules->own_tls_offset = (intptr_t)((uintptr_t)info->dlpi_tls_data - (uintptr_t)pthread_self());
                    modules->own_tls_size = info->dlpi_phdr[t].p_memsz;
                }
            return 0;
        }
        if (!(phdr->p_flags & PF_W) || modules->count >= MT_MAX_MODULE_RANGES) continue;
        modules->ranges[modules->count++] = (mt_range_t){start, start + phdr->p_memsz};
    }
    return 0;
}

/* ---- /proc/self/maps ----------------------------------------------------------------------------- */

static uintptr_t mt_parse_hex(const char **cursor, const char *end) {
    uintptr_t value = 0;
    for (const char *c = *cursor; c < end; c++) {
        int digit = *c >= '0' && *c <= '9' ? *c - '0' : *c >= 'a' && *c <= 'f' ? *c - 'a' + 10 : -1;
        if (digit < 0) {
            *cursor = c;
            return value;
        }
        value = value << 4 | (uintptr_t)digit;
    }
    *cursor = end;
    return value;
}

/* Readable mappings, in address order, and the end of the main thread's [stack]. Raw open and read:
 * nothing here allocates or locks in user space, so it is safe while the others are parked. */
static size_t mt_read_mappings(char *buffer, mt_range_t *out, uintptr_t *stack_top) {
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t length = 0;
    for (;;) {
        ssize_t n = read(fd, buffer + length, MT_MAPS_BUFFER_BYTES - length);
        if (n <= 0) break;
        length += (size_t)n;
    }
    close(fd);
    size_t count = 0;
    const char *c = buffer, *end = buffer + length;
    while (c < end && count < MT_MAX_MAPPINGS) {
        const char *line_end = memchr(c, '\n', (size_t)(end - c));
        if (line_end == NULL) line_end = end;
        uintptr_t start = mt_parse_hex(&c, line_end);
        c++;
        uintptr_t stop = mt_parse_hex(&c, line_end);
        c++;
        bool readable = c < line_end && *c == 'r';
        if (line_end - c >= 7 && memcmp(line_end - 7, "[stack]", 7) == 0) *stack_top = stop;
        if (readable && stop > start) {
            if (count > 0 && out[count - 1].end == start)
                out[count - 1].end = stop; /* contiguous: one range */
            else
                out[count++] = (mt_range_t){start, stop};
        }
        c = line_end + 1;
    }
    return count;
}

/* ---- the scan ------------------------------------------------------------------------------------ */

typedef struct mt_scan_result {
    uint64_t sequence, time_ns, duration_ns;
    uint32_t threads_scanned, threads_missed;
} mt_scan_result_t;

static bool mt_sane_range(uintptr_t start, uintptr_t end) { return start < end && end - start < MT_MAX_ROOT_RANGE; }

/* A thread's range, minus this library's TLS block inside it. */
static void mt_mark_thread_range(mt_heap_t *heap, const mt_module_ranges_t *modules, uintptr_t start, uintptr_t end,
                                 uintptr_t thread_pointer) {
    uintptr_t hole = thread_pointer + (uintptr_t)modules->own_tls_offset, hole_end = hole + modules->own_tls_size;
    if (modules->own_tls_size == 0 || hole_end <= start || hole >= end) {
        mt_mark_root(heap, start, end);
        return;
    }
    if (start < hole) mt_mark_root(heap, start, hole);
    if (hole_end < end) mt_mark_root(heap, hole_end, end);
}

static void mt_mark_thread(mt_heap_t *heap, const mt_module_ranges_t *modules, uintptr_t stack_pointer,
                           uintptr_t stack_end, uintptr_t thread_pointer) {
    if (mt_sane_range(stack_pointer, stack_end))
        mt_mark_thread_range(heap, modules, stack_pointer, stack_end, thread_pointer);
    /* Static TLS and the TCB (pthread_setspecific's first-level values live in struct pthread). For
     * threads other than main it is also the top of the stack range; the main thread's sits in an
     * anonymous mapping of ld.so's (LEAKSCAN §2). */
    if (g_static_tls_size != 0 && thread_pointer != 0)
        mt_mark_thread_range(heap, modules, thread_pointer + g_sizeof_pthread - g_static_tls_size,
                             thread_pointer + g_sizeof_pthread, thread_pointer);
}

/* All roots, then phases 2 and 3. `own_stack_pointer`: where the program's frames end on this thread. */
static void mt_mark_everything(mt_heap_t *heap, const mt_module_ranges_t *modules, const mt_world_t *world,
                               uint32_t trigger, uintptr_t stack_top, uintptr_t own_stack_pointer) {
    pid_t pid = getpid();
    bool self_is_main = (pid_t)syscall(SYS_gettid) == pid;

    for (size_t i = 0; i < modules->count; i++) mt_mark_root(heap, modules->ranges[i].start, modules->ranges[i].end);
    mt_mark_root(heap, (uintptr_t)t_own_registers, (uintptr_t)(t_own_registers + MT_SAVED_REGISTERS));

    uintptr_t self_tp = (uintptr_t)pthread_self();
    if (self_is_main) {
        uintptr_t from = own_stack_pointer;
        /* After main returned its frame is dead but not cleared: stale copies there would hide leaks
         * (LEAKSCAN §2). An explicit exit() left its caller's frames live: from there. */
        if (trigger == MT_LEAK_SCAN_AT_EXIT)
            from = g_exit_stack_pointer ? g_exit_stack_pointer
                   : g_libc_stack_end   ? (uintptr_t)*g_libc_stack_end
                                        : own_stack_pointer;
        mt_mark_thread(heap, modules, from, stack_top, self_tp);
    } else {
        mt_mark_thread(heap, modules, own_stack_pointer, self_tp + g_sizeof_pthread, self_tp);
    }
    for (uint32_t i = 0; i < world->stopped; i++) {
        const mt_stopped_thread_t *thread = &world->threads[i];
        uintptr_t end = thread->tid == pid ? stack_top : thread->thread_pointer + g_sizeof_pthread;
        mt_mark_thread(heap, modules, thread->stack_pointer, end, thread->thread_pointer);
    }
    /* LeakSanitizer's use_ld_allocations: DTVs and dynamic TLS are referenced where no scan looks. */
    for (size_t i = 0; i < heap->count; i++)
        if (heap->blocks[i].info & MT_LIVE_FROM_LDSO) mt_mark_block_reachable(heap, i);
    mt_mark_finish(heap);
}

static uint64_t mt_monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static const uint8_t g_kind_of_state[] = {
    [MT_STATE_REACHABLE] = MT_LEAK_REACHABLE, [MT_STATE_POSSIBLE] = MT_LEAK_POSSIBLE,
    [MT_STATE_INDIRECT] = MT_LEAK_INDIRECT,   [MT_STATE_DEFINITE] = MT_LEAK_DEFINITE,
    [MT_STATE_UNMARKED] = MT_LEAK_DEFINITE, /* not reached by phase 3: cannot happen */
};

/* Writes the scan as records of at most MT_LEAK_SCAN_MAX_PAYLOAD bytes (diagram: malloctrace_format.h). */
static void mt_write_scan(const mt_heap_t *heap, const mt_scan_result_t *result, uint32_t trigger) {
    uint32_t total = 0;
    for (size_t i = 0; i < heap->count; i++) total += heap->state[i] != MT_STATE_GONE;
    size_t capacity = MT_LEAK_SCAN_MAX_PAYLOAD - sizeof(mt_leak_scan_record_t);
    uint8_t *entries = mt_scratch_map(capacity);
    if (entries == NULL) {
        mt_say("cannot map memory for the leak scan's records; the trace has no leak kinds", NULL);
        return;
    }
    mt_leak_scan_record_t fixed = {.scan_sequence = result->sequence,
                                   .scan_time_ns = result->time_ns,
                                   .threads_scanned = result->threads_scanned,
                                   .threads_missed = result->threads_missed,
                                   .duration_ns = result->duration_ns,
                                   .trigger = trigger,
                                   .total_blocks = total};
    size_t i = 0;
    do {
        uint8_t *cursor = entries;
        uintptr_t previous = 0;
        fixed.entry_count = 0;
        /* 10 bytes: the longest varint of a 64-bit value. */
        for (; i < heap->count && (size_t)(cursor - entries) + 10 <= capacity; i++) {
            if (heap->state[i] == MT_STATE_GONE) continue;
            uintptr_t address = heap->blocks[i].address;
            cursor = mt_put_varint(cursor, (uint64_t)(address - previous) << 3 | g_kind_of_state[heap->state[i]]);
            previous = address;
            fixed.entry_count++;
        }
        if (!mt_file_write_record(MT_RECORD_LEAK_SCAN, &fixed, sizeof(fixed), entries, (size_t)(cursor - entries)))
            break;
        fixed.part++;
    } while (i < heap->count);
    mt_scratch_unmap(entries, capacity);
}

typedef struct mt_scratch {
    mt_module_ranges_t modules;
    mt_live_entry_t *blocks, *spare;
    size_t block_capacity;
    uint8_t *state, *queued;
    uint32_t *stack, *interior;
    char *maps_text;
    mt_range_t *mappings;
} mt_scratch_t;

static bool mt_map_blocks(mt_scratch_t *s, size_t capacity) {
    s->block_capacity = capacity;
    s->blocks = mt_scratch_map(capacity * sizeof(mt_live_entry_t));
    s->spare = mt_scratch_map(capacity * sizeof(mt_live_entry_t));
    s->state = mt_scratch_map(capacity);
    s->queued = mt_scratch_map(capacity);
    s->stack = mt_scratch_map(capacity * sizeof(uint32_t));
    s->interior = mt_scratch_map(capacity * sizeof(uint32_t));
    return s->blocks && s->spare && s->state && s->queued && s->stack && s->interior;
}

static void mt_unmap_scratch(mt_scratch_t *s) {
    size_t n = s->block_capacity;
    mt_scratch_unmap(s->modules.ranges, MT_MAX_MODULE_RANGES * sizeof(mt_range_t));
    mt_scratch_unmap(s->blocks, n * sizeof(mt_live_entry_t));
    mt_scratch_unmap(s->spare, n * sizeof(mt_live_entry_t));
    mt_scratch_unmap(s->state, n);
    mt_scratch_unmap(s->queued, n);
    mt_scratch_unmap(s->stack, n * sizeof(uint32_t));
    mt_scratch_unmap(s->interior, n * sizeof(uint32_t));
    mt_scratch_unmap(s->maps_text, MT_MAPS_BUFFER_BYTES);
    mt_scratch_unmap(s->mappings, MT_MAX_MAPPINGS * sizeof(mt_range_t));
}

/* Everything between locking the table and unlocking it. */
static bool mt_scan_locked(mt_scratch_t *s, uint32_t trigger, mt_heap_t *heap, mt_scan_result_t *result,
                           uintptr_t own_stack_pointer) {
    result->sequence = atomic_load(&g_sequence);
    result->time_ns = mt_now_ns();
    uint64_t started = mt_monotonic_ns();
    size_t count = mt_live_count_locked();
    if (!mt_map_blocks(s, count)) return false;
    count = mt_live_copy_locked(s->blocks, count);
    mt_sort_blocks(s->blocks, s->spare, count); /* before the stop: the others wait only for the lock */

    mt_world_t world;
    if (!mt_stop_world(&world)) return false;
    uintptr_t stack_top = 0;
    size_t mapping_count = mt_read_mappings(s->maps_text, s->mappings, &stack_top);
    *heap = (mt_heap_t){.blocks = s->blocks,
                        .count = count,
                        .state = s->state,
                        .queued = s->queued,
                        .stack = s->stack,
                        .interior = s->interior,
                        .readable = s->mappings,
                        .readable_count = mapping_count,
                        .usable_size = g_usable_size};
    mt_heap_prepare(heap);
    mt_mark_everything(heap, &s->modules, &world, trigger, stack_top, own_stack_pointer);
    mt_resume_world(&world);
    result->duration_ns = mt_monotonic_ns() - started;
    result->threads_scanned = world.stopped + 1;
    result->threads_missed = world.missed;
    return true;
}

static __attribute__((noinline)) void mt_leak_scan_from(uint32_t trigger, uintptr_t own_stack_pointer) {
    if (atomic_exchange(&g_scan_running, true)) return; /* another thread is scanning */
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    int saved_errno = errno;
    mt_scratch_t scratch = {0};
    scratch.modules.ranges = mt_scratch_map(MT_MAX_MODULE_RANGES * sizeof(mt_range_t));
    scratch.maps_text = mt_scratch_map(MT_MAPS_BUFFER_BYTES);
    scratch.mappings = mt_scratch_map(MT_MAX_MAPPINGS * sizeof(mt_range_t));
    bool ok = scratch.modules.ranges && scratch.maps_text && scratch.mappings && g_usable_size != NULL;
    if (ok) dl_iterate_phdr(mt_collect_module, &scratch.modules);
    mt_heap_t heap = {0};
    mt_scan_result_t result = {0};
    if (ok) {
        mt_live_lock();
        ok = mt_scan_locked(&scratch, trigger, &heap, &result, own_stack_pointer);
        mt_live_unlock();
    }
    if (ok)
        mt_write_scan(&heap, &result, trigger);
    else
        mt_say("the leak scan could not run (out of memory or no signal handler); the trace has no leak kinds", NULL);
    mt_unmap_scratch(&scratch);
    errno = saved_errno;
    pthread_setcancelstate(cancel_state, NULL);
    atomic_store(&g_scan_running, false);
}

/* The program's frames on this thread end at our caller's stack pointer; our own frames below it hold
 * the scan's state (the heap span, copied entries), which must not count as roots. The program's
 * callee-saved registers, still unchanged at this entry (this wrapper does nothing before the asm),
 * are copied to t_own_registers, a root of its own. Caller-saved ones are dead across the call. */
__attribute__((noinline)) void mt_leak_scan(uint32_t trigger) {
    __asm__ volatile("mov %%rbx, 0(%0)\n\t"
                     "mov %%r12, 8(%0)\n\t"
                     "mov %%r13, 16(%0)\n\t"
                     "mov %%r14, 24(%0)\n\t"
                     "mov %%r15, 32(%0)"
                     :
                     : "a"(t_own_registers) /* rax: caller-saved, so no callee-saved one is touched first */
                     : "memory");
    uintptr_t *frame = __builtin_frame_address(0);
    t_own_registers[5] = frame[0]; /* the caller's rbp, pushed by this function's prologue */
    mt_leak_scan_from(trigger, (uintptr_t)(frame + 2));
}

MT_EXPORT void malloctrace_scan_leaks(void) {
    if (t_guard || !g_leak_scan || atomic_load(&g_status) != MT_STATUS_TRACING || !mt_is_trace_owner()) return;
    t_guard = 1;
    mt_leak_scan(MT_LEAK_SCAN_ON_DEMAND);
    t_guard = 0;
}
