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
#define MT_MAX_EXCLUDED (MT_MAX_TRACER_MAPPINGS + 3)
#define MT_MAX_ROOT_RANGE (1ull << 32) /* a "stack" longer than this is a bogus pointer pair */

uintptr_t g_exit_stack_pointer;

static size_t (*g_usable_size)(void *);
static void **g_libc_stack_end;
static size_t g_static_tls_size, g_static_tls_align = 64;
static size_t g_sizeof_pthread = 2368; /* glibc 2.36 x86-64, in case libc does not tell (LEAKSCAN §2) */
static size_t g_pthread_tid_offset;    /* of struct pthread's tid; 0 = unknown */
static _Atomic bool g_scan_running;
/* The real malloc is glibc's. Another one (jemalloc, mimalloc, tcmalloc, preloaded or linked) keeps its metadata
 * in anonymous mappings the scan cannot tell from a custom allocator's arenas, full of stale pointers (jemalloc's
 * thread caches keep the address of every block they handed out): those would make every leak reachable. Then no
 * anonymous mapping is a root, as under LeakSanitizer (g_malloc_is_glibc, allocator.c). */
#define MT_SAVED_REGISTERS 6
/* Per thread: a second, concurrent caller writes its own before it finds a scan running. */
static MT_TLS uintptr_t t_own_registers[MT_SAVED_REGISTERS];

void mt_leak_scan_initialize(void) {
    g_usable_size = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
    g_libc_stack_end = (void **)dlsym(RTLD_DEFAULT, "__libc_stack_end");
    /* Both GLIBC_PRIVATE; LeakSanitizer reads the same two. Without them the TLS ranges are skipped. */
    void (*tls_info)(size_t *, size_t *) = (void (*)(size_t *, size_t *))dlsym(RTLD_DEFAULT, "_dl_get_tls_static_info");
    if (tls_info != NULL) tls_info(&g_static_tls_size, &g_static_tls_align);
    const unsigned int *sizeof_pthread = dlsym(RTLD_DEFAULT, "_thread_db_sizeof_pthread");
    if (sizeof_pthread != NULL) g_sizeof_pthread = *sizeof_pthread;
    if (g_static_tls_size > g_sizeof_pthread + (64u << 20)) g_static_tls_size = 0;
    if (g_static_tls_align == 0 || (g_static_tls_align & (g_static_tls_align - 1)) != 0) g_static_tls_align = 64;
    /* libthread_db's descriptor of the field: {bits, count, offset} (GLIBC_PRIVATE, like the two above). */
    const unsigned int *tid = dlsym(RTLD_DEFAULT, "_thread_db_pthread_tid");
    if (tid != NULL && tid[0] == 32 && tid[2] != 0 && tid[2] + 4 <= g_sizeof_pthread) g_pthread_tid_offset = tid[2];
}

/* ---- roots that are known before the stop -------------------------------------------------------- */

typedef struct mt_module_ranges {
    mt_range_t *ranges;
    size_t count;
    /* This library's static TLS block relative to the thread pointer (the same in every thread): the
     * recorder keeps the last pointer it encoded there, which would keep a leaked block alive. */
    intptr_t own_tls_offset;
    size_t own_tls_size;
    /* glibc's malloc state (main_arena) lies in libc's writable segments: their extent, found by the load
     * address of the module that holds malloc (`allocator_base`). */
    uintptr_t allocator_base;
    mt_range_t allocator_state;
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
        if (modules->allocator_base != 0 && info->dlpi_addr == modules->allocator_base) {
            mt_range_t *state = &modules->allocator_state;
            if (state->end == 0 || start < state->start) state->start = start;
            if (start + phdr->p_memsz > state->end) state->end = start + phdr->p_memsz;
        }
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

/* Whether the rest of a maps line after the permissions ("offset dev inode name") names no file: inode 0
 * and no name, or a name given with prctl(PR_SET_VMA_ANON_NAME). [heap], [stack] and the like are not. */
static bool mt_is_anonymous_line(const char *c, const char *line_end) {
    const char *inode = NULL;
    for (int field = 0; field < 3; field++) {
        while (c < line_end && *c == ' ') c++;
        inode = c;
        while (c < line_end && *c != ' ') c++;
    }
    if (c - inode != 1 || *inode != '0') return false;
    while (c < line_end && *c == ' ') c++;
    return c == line_end || (line_end - c >= 6 && memcmp(c, "[anon:", 6) == 0);
}

/* Readable mappings, in address order, merged where contiguous; the private anonymous read-write ones
 * (root candidates, one per line); and the main thread's [stack]. Raw open and read: nothing here
 * allocates or locks in user space, so it is safe while the others are parked. */
static size_t mt_read_mappings(char *buffer, mt_range_t *out, mt_range_t *anonymous, size_t *anonymous_count,
                               mt_range_t *main_stack) {
    /* The calling thread's view: once the main thread has left with pthread_exit, /proc/self (the thread group's
     * leader) reads as no mappings at all, and the scan would find every block gone. Linux 3.17+, else the leader's. */
    int fd = open("/proc/thread-self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    *anonymous_count = 0;
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
        if (line_end - c >= 7 && memcmp(line_end - 7, "[stack]", 7) == 0) *main_stack = (mt_range_t){start, stop};
        if (readable && stop > start) {
            if (count > 0 && out[count - 1].end == start)
                out[count - 1].end = stop; /* contiguous: one range */
            else
                out[count++] = (mt_range_t){start, stop};
            if (line_end - c >= 4 && c[1] == 'w' && c[3] == 'p' && mt_is_anonymous_line(c + 4, line_end) &&
                *anonymous_count < MT_MAX_MAPPINGS)
                anonymous[(*anonymous_count)++] = (mt_range_t){start, stop};
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

typedef struct mt_scratch {
    mt_module_ranges_t modules;
    mt_live_entry_t *blocks, *spare;
    size_t block_capacity;
    uint8_t *state, *queued;
    uint32_t *stack, *interior;
    char *maps_text;
    mt_range_t *mappings, *anonymous, *excluded;
    size_t anonymous_count;
} mt_scratch_t;

/* ---- anonymous mappings ---------------------------------------------------------------------------
 *
 * Private anonymous read-write mappings are roots, as in valgrind's memcheck, which scans every readable
 * and writable client mapping but its own heap (scan_memory_root_set, mc_leakcheck.c). LeakSanitizer
 * scans none of them and asks custom allocators to call __lsan_register_root_region. An interposer cannot
 * know the arenas of custom allocators — CPython's pymalloc keeps small objects, and the pointers they hold
 * to malloc blocks, in mmap'd arenas — so we follow memcheck. Left out, because they would hide leaks or
 * are scanned otherwise:
 *   - malloc's own memory: [heap] (by name), glibc's non-main heaps (by their heap_info header, even when
 *     empty: freed chunks keep stale pointers), and the pages of every live block (glibc's mmap'd chunks;
 *     page-wise, not the whole line, since the kernel merges adjacent anonymous mappings into one line)
 *   - a line holding a stopped thread's or this thread's stack pointer: stacks are scanned from the stack
 *     pointer up; below it lie dead frames
 *   - the stack of an exited thread, cached by glibc (struct pthread at the top, tid <= 0): dead frames. A live
 *     thread that missed the stop gets its whole stack scanned instead (LeakSanitizer's fallback when it
 *     has no registers), minus this library's TLS block.
 *   - the tracer's own mappings (tracer_memory.c), its loaded segments and its TLS block inside the main
 *     thread's TCB mapping (ld.so's), where the recorder keeps the last pointer it encoded
 * Limits: a stack line merged with a neighbouring mapping takes the neighbour with it (either way); an
 * allocator that keeps freed memory mapped contributes its stale pointers, as under memcheck. */

#define MT_GLIBC_HEAP_BYTES (64ull << 20) /* HEAP_MAX_SIZE on 64-bit: 2 * DEFAULT_MMAP_THRESHOLD_MAX */
#define MT_GLIBC_HEAP_INFO_BYTES 48       /* sizeof(heap_info) in glibc >= 2.35; the arena follows it */

/* The rw size of a glibc non-main heap starting at `at` (a 64 MiB boundary inside [at, end)), or 0.
 * heap_info: ar_ptr (the arena, just after the first heap's heap_info), prev (another heap or NULL),
 * size, mprotect_size (the read-write part), pagesize. */
static size_t mt_glibc_heap_at(uintptr_t at, uintptr_t end) {
    if (end - at < MT_GLIBC_HEAP_INFO_BYTES) return 0;
    const uintptr_t *info = (const uintptr_t *)at;
    size_t page = mt_page_size();
    bool plausible = (info[0] & (MT_GLIBC_HEAP_BYTES - 1)) == MT_GLIBC_HEAP_INFO_BYTES &&
                     (info[1] & (MT_GLIBC_HEAP_BYTES - 1)) == 0 && info[2] <= info[3] &&
                     info[3] <= MT_GLIBC_HEAP_BYTES && info[3] != 0 && info[3] % page == 0 && info[4] >= page &&
                     (info[4] & (info[4] - 1)) == 0;
    return plausible ? info[3] : 0;
}

/* First block that starts at or after `address`. */
static size_t mt_first_block_from(const mt_heap_t *heap, uintptr_t address) {
    size_t lo = 0, hi = heap->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (heap->blocks[mid].address < address)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* [start, end) as roots, but only its pages in memory (mincore): an untouched page reads as zeros, and a
 * large address-space reservation (a JIT's, a garbage collector's) would otherwise cost a page fault per
 * page. Swapped-out pages are skipped too: what they reference may be reported leaked. */
static void mt_mark_resident(mt_heap_t *heap, uintptr_t start, uintptr_t end) {
    size_t page = mt_page_size();
    unsigned char resident[512];
    for (uintptr_t at = start & ~(uintptr_t)(page - 1); at < end;) {
        size_t pages = (end - at + page - 1) / page;
        if (pages > sizeof(resident)) pages = sizeof(resident);
        if (mincore((void *)at, pages * page, resident) != 0) {
            mt_mark_root(heap, at > start ? at : start, end); /* cannot tell: read it all */
            return;
        }
        for (size_t p = 0; p < pages;) {
            size_t q = p;
            while (q < pages && (resident[q] & 1)) q++;
            if (q > p) {
                uintptr_t from = at + p * page, to = at + q * page;
                mt_mark_root(heap, from > start ? from : start, to < end ? to : end);
            }
            p = q + 1;
        }
        at += pages * page;
    }
}

/* [start, end) as roots, minus the pages of live blocks. */
static void mt_mark_between_blocks(mt_heap_t *heap, uintptr_t start, uintptr_t end) {
    uintptr_t page_mask = mt_page_size() - 1, cursor = start;
    size_t i = mt_first_block_from(heap, start);
    if (i > 0) i--; /* the one before may reach into the range */
    for (; i < heap->count && heap->blocks[i].address < end; i++) {
        uintptr_t size = heap->blocks[i].info & MT_LIVE_SIZE_MASK;
        uintptr_t first = heap->blocks[i].address & ~page_mask;
        uintptr_t last = (heap->blocks[i].address + (size ? size : 1) + page_mask) & ~page_mask;
        if (last <= cursor) continue;
        if (first > cursor) mt_mark_resident(heap, cursor, first < end ? first : end);
        cursor = last;
    }
    if (cursor < end) mt_mark_resident(heap, cursor, end);
}

/* [start, end) as roots, minus the excluded ranges (sorted by start) and glibc's heaps. */
static void mt_mark_outside(mt_heap_t *heap, const mt_range_t *excluded, size_t excluded_count, uintptr_t start,
                            uintptr_t end) {
    uintptr_t cursor = start;
    for (uintptr_t at = (start + MT_GLIBC_HEAP_BYTES - 1) & ~(MT_GLIBC_HEAP_BYTES - 1); at >= start && at < end;
         at += MT_GLIBC_HEAP_BYTES) {
        size_t heap_bytes = mt_glibc_heap_at(at, end);
        if (heap_bytes == 0) continue;
        mt_mark_outside(heap, excluded, excluded_count, cursor, at);
        cursor = at + heap_bytes;
    }
    for (size_t i = 0; i < excluded_count && cursor < end; i++) {
        if (excluded[i].end <= cursor) continue;
        if (excluded[i].start >= end) break;
        if (excluded[i].start > cursor) mt_mark_between_blocks(heap, cursor, excluded[i].start);
        cursor = excluded[i].end;
    }
    if (cursor < end) mt_mark_between_blocks(heap, cursor, end);
}

static bool mt_holds_stack_pointer(const mt_world_t *world, uintptr_t own_stack_pointer, uintptr_t start,
                                   uintptr_t end) {
    if (own_stack_pointer >= start && own_stack_pointer < end) return true;
    for (uint32_t i = 0; i < world->stopped; i++)
        if (world->threads[i].stack_pointer >= start && world->threads[i].stack_pointer < end) return true;
    return false;
}

static void mt_mark_anonymous(mt_heap_t *heap, const mt_module_ranges_t *modules, const mt_world_t *world,
                              const mt_range_t *anonymous, size_t anonymous_count, const mt_range_t *excluded,
                              size_t excluded_count, uintptr_t own_stack_pointer) {
    for (size_t m = 0; m < anonymous_count; m++) {
        uintptr_t start = anonymous[m].start, end = anonymous[m].end;
        if (mt_holds_stack_pointer(world, own_stack_pointer, start, end)) continue;
        /* A thread's stack block ends with its struct pthread (glibc's allocate_stack), whose first and
         * third words (tcbhead_t's tcb and self) point at itself. */
        uintptr_t thread = (end - g_sizeof_pthread) & ~(uintptr_t)(g_static_tls_align - 1);
        if (end - start > g_sizeof_pthread && thread >= start) {
            const uintptr_t *tcb = (const uintptr_t *)thread;
            if (tcb[0] == thread && tcb[2] == thread) {
                /* The kernel clears tid when the thread ends, glibc sets -1 when it caches the stack. */
                if (g_pthread_tid_offset == 0 || *(const volatile pid_t *)(thread + g_pthread_tid_offset) <= 0)
                    continue;                                            /* exited: dead frames only */
                mt_mark_thread_range(heap, modules, start, end, thread); /* alive but missed the stop */
                continue;
            }
        }
        mt_mark_outside(heap, excluded, excluded_count, start, end);
    }
}

/* The ranges mt_mark_anonymous leaves out besides malloc's: the tracer's mappings and segments and its TLS
 * block in the threads whose TLS may sit in an anonymous mapping (this one and the main thread); sorted.
 * Registry locked. False when some tracer mapping is not registered (then no anonymous mapping is a root). */
static bool mt_collect_exclusions(mt_range_t *out, size_t *count, const mt_module_ranges_t *modules,
                                  const mt_world_t *world) {
    const mt_range_t *registered;
    size_t n = mt_tracer_mappings_locked(&registered);
    if (n == SIZE_MAX) return false;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) out[k++] = registered[i];
    out[k++] = (mt_range_t){g_self_start, g_self_end};
    uintptr_t thread_pointers[2] = {(uintptr_t)pthread_self(), 0};
    pid_t pid = getpid();
    for (uint32_t i = 0; i < world->stopped; i++)
        if (world->threads[i].tid == pid) thread_pointers[1] = world->threads[i].thread_pointer;
    for (int t = 0; t < 2; t++) {
        if (thread_pointers[t] == 0 || modules->own_tls_size == 0) continue;
        uintptr_t hole = thread_pointers[t] + (uintptr_t)modules->own_tls_offset;
        out[k++] = (mt_range_t){hole, hole + modules->own_tls_size};
    }
    for (size_t i = 1; i < k; i++) { /* insertion sort: a few hundred ranges, and qsort may allocate */
        mt_range_t range = out[i];
        size_t j = i;
        for (; j > 0 && out[j - 1].start > range.start; j--) out[j] = out[j - 1];
        out[j] = range;
    }
    *count = k;
    return true;
}

/* Where the scan of the main thread's stack starts for a thread pointer `from`: there, unless it lies outside
 * [stack] (exit() from a signal handler on an alternate stack, or from a coroutine, or the thread parked there):
 * the frames below it still hold what main's frames hold, and where they end is unknown, so the whole [stack],
 * as LeakSanitizer does. */
static uintptr_t mt_main_stack_scan_start(uintptr_t from, mt_range_t main_stack) {
    return main_stack.end != 0 && (from < main_stack.start || from >= main_stack.end) ? main_stack.start : from;
}

/* All roots, then phases 2 and 3. `own_stack_pointer`: where the program's frames end on this thread. */
static void mt_mark_everything(mt_heap_t *heap, const mt_module_ranges_t *modules, const mt_world_t *world,
                               uint32_t trigger, mt_range_t main_stack, uintptr_t own_stack_pointer,
                               const mt_scratch_t *s) {
    uintptr_t stack_top = main_stack.end;
    pid_t pid = getpid();
    bool self_is_main = (pid_t)syscall(SYS_gettid) == pid;

    for (size_t i = 0; i < modules->count; i++) mt_mark_root(heap, modules->ranges[i].start, modules->ranges[i].end);
    size_t excluded_count = 0;
    if (g_malloc_is_glibc && mt_collect_exclusions(s->excluded, &excluded_count, modules, world))
        mt_mark_anonymous(heap, modules, world, s->anonymous, s->anonymous_count, s->excluded, excluded_count,
                          own_stack_pointer);
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
        mt_mark_thread(heap, modules, mt_main_stack_scan_start(from, main_stack), stack_top, self_tp);
    } else {
        mt_mark_thread(heap, modules, own_stack_pointer, self_tp + g_sizeof_pthread, self_tp);
    }
    for (uint32_t i = 0; i < world->stopped; i++) {
        const mt_stopped_thread_t *thread = &world->threads[i];
        bool is_main = thread->tid == pid;
        uintptr_t from = is_main ? mt_main_stack_scan_start(thread->stack_pointer, main_stack) : thread->stack_pointer;
        uintptr_t end = is_main ? stack_top : thread->thread_pointer + g_sizeof_pthread;
        mt_mark_thread(heap, modules, from, end, thread->thread_pointer);
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
    mt_scratch_unmap(s->anonymous, MT_MAX_MAPPINGS * sizeof(mt_range_t));
    mt_scratch_unmap(s->excluded, MT_MAX_EXCLUDED * sizeof(mt_range_t));
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
    if (!mt_stop_world_prepare()) return false;
    /* Held until the resume: a parked thread must not hold it, and the registry must not change while the
     * scan reads it and /proc/self/maps. */
    mt_tracer_mappings_lock();
    if (!mt_stop_world(&world)) {
        mt_tracer_mappings_unlock();
        return false;
    }
    mt_range_t main_stack = {0, 0};
    size_t mapping_count = mt_read_mappings(s->maps_text, s->mappings, s->anonymous, &s->anonymous_count, &main_stack);
    *heap = (mt_heap_t){.blocks = s->blocks,
                        .count = count,
                        .state = s->state,
                        .queued = s->queued,
                        .stack = s->stack,
                        .interior = s->interior,
                        .readable = s->mappings,
                        .readable_count = mapping_count,
                        .allocator_state = s->modules.allocator_state,
                        .usable_size = g_usable_size};
    mt_heap_prepare(heap);
    mt_mark_everything(heap, &s->modules, &world, trigger, main_stack, own_stack_pointer, s);
    mt_resume_world(&world);
    mt_tracer_mappings_unlock();
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
    scratch.anonymous = mt_scratch_map(MT_MAX_MAPPINGS * sizeof(mt_range_t));
    scratch.excluded = mt_scratch_map(MT_MAX_EXCLUDED * sizeof(mt_range_t));
    bool ok = scratch.modules.ranges && scratch.maps_text && scratch.mappings && scratch.anonymous &&
              scratch.excluded && g_usable_size != NULL;
    Dl_info allocator;
    if (ok && g_malloc_is_glibc && dladdr((void *)real.malloc, &allocator) != 0)
        scratch.modules.allocator_base = (uintptr_t)allocator.dli_fbase;
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
    t_guard = mt_guard_token();
    mt_leak_scan(MT_LEAK_SCAN_ON_DEMAND);
    t_guard = 0;
}
