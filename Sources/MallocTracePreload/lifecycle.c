/* Start, fork and exit of the traced process, and the one place that reports failures. */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Atomic int g_status = MT_STATUS_UNINITIALIZED;
MT_TLS uintptr_t t_guard;

/*
 * A hook runs below the frame that took the guard while that frame is live: nested calls and signal
 * handlers on the same stack are deeper, at lower addresses. A hook at or above it (a frame at the same
 * address is a later call from the same caller) means that frame is gone: a signal handler that
 * interrupted the tracer left by longjmp, and the guard would otherwise stay set for the rest of the
 * thread's life. A handler on an alternate signal stack can be anywhere: while on one, the guard holds.
 * Limit: a stale guard is noticed only once the thread allocates from a frame at least as shallow as
 * the interrupted hook's; deeper calls until then go untraced.
 */
bool mt_guard_is_stale(uintptr_t here) {
    if (here < t_guard) return false;
    stack_t alternate;
    if (sigaltstack(NULL, &alternate) == 0 && (alternate.ss_flags & SS_ONSTACK)) return false;
    t_guard = 0;
    return true;
}

static int g_stderr_fd = -1;
static dev_t g_stderr_device;
static ino_t g_stderr_inode;
static _Atomic bool g_reported_failure;
static size_t g_page_size;
static pid_t g_trace_owner;

bool mt_is_trace_owner(void) { return getpid() == g_trace_owner; }

size_t mt_page_size(void) { return g_page_size ? g_page_size : 4096; }

static void mt_append_part(char *line, size_t *length, size_t capacity, const char *part) {
    size_t n = strlen(part);
    if (n > capacity - *length) n = capacity - *length;
    memcpy(line + *length, part, n);
    *length += n;
}

/* Our copy of stderr outlives the program closing fd 2 (coreutils do at exit). If the program closed the
 * copy too and reused its number for a file of its own, fd 2 is all that is left. */
static int mt_stderr_descriptor(void) {
    struct stat now;
    if (g_stderr_fd >= 0 && fstat(g_stderr_fd, &now) == 0 && now.st_dev == g_stderr_device &&
        now.st_ino == g_stderr_inode)
        return g_stderr_fd;
    return g_stderr_fd == -EBADF ? -1 : 2; /* started without fd 2: a later fd 2 is the program's own file */
}

int mt_stderr_descriptor_number(void) { return g_stderr_fd; }

static void mt_say_parts(const char *first, va_list parts) {
    char line[1024];
    size_t length = 0, capacity = sizeof(line) - 1;
    mt_append_part(line, &length, capacity, "malloctrace: ");
    for (const char *part = first; part != NULL; part = va_arg(parts, const char *))
        mt_append_part(line, &length, capacity, part);
    line[length++] = '\n';
    int cancel_state = mt_cancel_off(); /* write is a cancellation point; callers may hold the file's mutex */
    int fd = mt_stderr_descriptor();
    ssize_t written = fd >= 0 ? write(fd, line, length) : 0;
    /* A seccomp filter may allow writes to 0-2 only: then the copy refuses (EPERM) where fd 2 would not, and
     * this line is the only sign that the tracer stopped. */
    if (written < 0 && fd != 2 && g_stderr_fd != -EBADF) written = write(2, line, length);
    (void)written;
    mt_cancel_restore(cancel_state);
}

void mt_say(const char *first, ...) {
    va_list parts;
    va_start(parts, first);
    mt_say_parts(first, parts);
    va_end(parts);
}

void mt_fail(const char *first, ...) {
    atomic_store(&g_status, MT_STATUS_OFF);
    if (atomic_exchange(&g_reported_failure, true)) return;
    va_list parts;
    va_start(parts, first);
    mt_say_parts(first, parts);
    va_end(parts);
}

static uint64_t mt_clock(clockid_t clock) {
    struct timespec now;
    clock_gettime(clock, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* /proc/self/cmdline, read without the allocator: NUL-separated arguments, truncated at 64 KiB. */
static size_t mt_read_command_line(char *buffer, size_t size) {
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t total = 0;
    while (total < size) {
        ssize_t n = read(fd, buffer + total, size - total);
        if (n <= 0) break;
        total += (size_t)n;
    }
    close(fd);
    return total;
}

static bool mt_open_trace(void) {
    static char exe[4096];
    static char argv[64 * 1024];
    ssize_t exe_length = readlink("/proc/self/exe", exe, sizeof(exe));
    mt_process_record_t process = {
        .pid = (uint32_t)getpid(),
        .ppid = (uint32_t)getppid(),
        .start_realtime_ns = mt_clock(CLOCK_REALTIME),
        .start_monotonic_ns = g_start_monotonic_ns,
        .page_size = (uint32_t)mt_page_size(),
        .max_depth = g_config.max_depth,
        .unwind_mode = g_config.unwind_mode,
        .sample_rate = g_config.sample_rate,
        .exe_length = exe_length > 0 ? (uint32_t)exe_length : 0,
        .argv_length = (uint32_t)mt_read_command_line(argv, sizeof(argv)),
    };
    return mt_file_open(g_config.output_path, &process, exe, process.exe_length, argv, process.argv_length);
}

/* Whether the trace just started begins paused: MALLOCTRACE_START=paused in a new process image, and in a forked
 * child whatever its parent was at the fork (its memory is a copy of the parent's). */
static bool g_pause_at_start;

/* Everything that starts a trace; runs in the parent at load and again in a followed child. */
static bool mt_start_tracing(bool new_image) {
    if (!mt_read_config()) return false;
    g_start_monotonic_ns = mt_clock(CLOCK_MONOTONIC);
    g_trace_owner = getpid();
    atomic_store(&g_sequence, 0);
    if (!mt_open_trace()) return false;
    mt_allocator_start(); /* its record comes before the first chunk: readers know it before decoding events */
    g_sample_rate = g_config.sample_rate;
    if (g_config.leak_scan) {
        mt_live_initialize();
        mt_leak_scan_initialize();
    }
    g_leak_scan = g_config.leak_scan;
    if (g_leak_scan) mt_unblock_stop_signal();
    mt_rss_start(g_config.rss_samples);
    g_pause_at_start = new_image ? g_config.start_paused : mt_control_is_paused();
    mt_control_start();
    mt_modules_refresh();
    return true;
}

/* Whether this thread took the tracer's locks for a fork. A fork from a signal handler that interrupted
 * the tracer (guard set) must not wait for locks this very thread may hold: it takes none, and the child
 * does not trace, since the tracer's state may be half-updated. */
static MT_TLS bool t_fork_locked;

static void mt_before_fork(void) {
    t_fork_locked = t_guard == 0;
    if (!t_fork_locked) return;
    t_guard = MT_GUARD_PINNED; /* held until the parent or child handler */
    mt_stacks_lock();
    mt_file_lock();
    mt_sampler_lock();
    if (g_leak_scan) mt_live_lock();
    mt_tracer_mappings_lock();
}

static void mt_after_fork_in_parent(void) {
    if (!t_fork_locked) return;
    mt_tracer_mappings_unlock();
    if (g_leak_scan) mt_live_unlock();
    mt_sampler_unlock();
    mt_file_unlock();
    mt_stacks_unlock();
    t_guard = 0;
}

static void mt_after_fork_in_child(void) {
    int status = atomic_load(&g_status);
    bool follow = status == MT_STATUS_TRACING && g_config.follow_children && t_fork_locked;
    /* First, and even when this thread took no lock (it may have been interrupted holding this one): the
     * resets below map memory, which takes it. Such a child does not trace, so the list need not be exact. */
    mt_tracer_mappings_reset_lock();
    /* Locks the parent held are released by forgetting them; nothing of the parent's file is
     * touched, since this process shares its pages. */
    mt_file_forget();
    mt_stacks_reset();
    mt_modules_reset();
    mt_recorder_reset_thread();
    mt_sampler_reset();
    if (g_leak_scan && t_fork_locked) mt_live_reset_locks();
    /* A followed child is controlled as its own process: it gets a control thread of its own. */
    if (follow && g_config.control) mt_control_server_start();
    if (t_fork_locked) t_guard = 0; /* else the interrupted tracer code clears it when the handler returns */
    /* A followed child starts its own trace at its first allocation, so that the common fork-then-exec
     * leaves no near-empty trace behind (the exec'd program writes one of its own). A fork before the
     * tracer started (from a library's constructor) leaves a child that starts as any process does. */
    if (status != MT_STATUS_UNINITIALIZED) atomic_store(&g_status, follow ? MT_STATUS_UNINITIALIZED : MT_STATUS_OFF);
}

/*
 * Prepare handlers run in the reverse order of registration and parent and child handlers in order, so the
 * tracer's must be the first registered: its prepare handler then takes the locks after every other one has
 * run (and recorded its allocations), and its child handler resets the tracer before any other runs. A
 * library's constructor runs before this library's, so __register_atfork (which pthread_atfork calls) is
 * interposed: the first registration in the process, whoever makes it, registers the tracer's handlers
 * first.
 */
extern void *__dso_handle;
static _Atomic bool g_fork_handlers_registered;

void mt_register_fork_handlers(void) {
    if (atomic_exchange(&g_fork_handlers_registered, true)) return;
    if (real.__register_atfork == NULL && !mt_resolve_real_functions()) return;
    real.__register_atfork(mt_before_fork, mt_after_fork_in_parent, mt_after_fork_in_child, &__dso_handle);
}

/* Not in tools/sanitizers.sh's harness build: the TSan runtime registers its own handlers while it
 * initializes, and an instrumented interposer would run before TSan is ready (SIGSEGV in TraceSkipGap). */
#ifndef MT_SANITIZER_HARNESS
MT_EXPORT int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso_handle) {
    mt_register_fork_handlers();
    if (real.__register_atfork == NULL) return ENOMEM;
    return real.__register_atfork(prepare, parent, child, dso_handle);
}
#endif

/* What every process image does once, before its first trace: find libc, keep a copy of stderr. */
static bool g_process_ready;

static void mt_prepare_process(void) {
    if (!mt_resolve_real_functions()) {
        syscall(SYS_exit_group, 127); /* cannot even forward malloc: nothing sensible can run */
    }
    g_stderr_fd = mt_duplicate_high(2);
    if (g_stderr_fd < 0 && errno == EBADF) g_stderr_fd = -EBADF;
    struct stat copy;
    if (g_stderr_fd >= 0 && fstat(g_stderr_fd, &copy) == 0) {
        g_stderr_device = copy.st_dev;
        g_stderr_inode = copy.st_ino;
    }
    g_page_size = (size_t)sysconf(_SC_PAGESIZE);
    mt_recorder_initialize();
}

void mt_initialize(void) {
    int expected = MT_STATUS_UNINITIALIZED;
    if (!atomic_compare_exchange_strong(&g_status, &expected, MT_STATUS_INITIALIZING)) return;
    int saved_errno = errno;
    int cancel_state = mt_cancel_off(); /* opens, reads and closes files; warms libunwind up */
    uintptr_t was_guarded = t_guard;
    t_guard = was_guarded ? was_guarded : mt_guard_token();
    bool first = !g_process_ready;
    if (first) mt_prepare_process();
    g_process_ready = true;
    bool tracing = mt_start_tracing(first);
    if (tracing && first) {
        mt_stacks_initialize();
        mt_register_fork_handlers();
        mt_register_quick_exit_handler();
    }
    /* Also when tracing could not start: programs this one execs would repeat the failure line and see
     * the tracer's variables. */
    Dl_info self;
    mt_scrub_environment(dladdr((void *)&mt_initialize, &self) ? self.dli_fname : NULL);
    /* mt_fail already set OFF on failure; don't overwrite it. */
    expected = MT_STATUS_INITIALIZING;
    atomic_compare_exchange_strong(&g_status, &expected, tracing ? MT_STATUS_TRACING : MT_STATUS_OFF);
    /* Paused once tracing (the pause is an event of the trace): the call that started the tracer is not recorded. */
    if (tracing && g_pause_at_start) mt_control_pause();
    t_guard = was_guarded;
    mt_cancel_restore(cancel_state);
    errno = saved_errno;
}

__attribute__((constructor)) static void mt_on_load(void) {
    if (atomic_load(&g_status) == MT_STATUS_UNINITIALIZED) mt_initialize();
    uintptr_t was_guarded = t_guard; /* setenv and pthread_create allocate */
    t_guard = was_guarded ? was_guarded : mt_guard_token();
    mt_scrub_deferred_environment();
    /* Here, not in mt_initialize: that may run inside the program's first malloc, before libc is ready. */
    if (atomic_load(&g_status) == MT_STATUS_TRACING && mt_is_trace_owner()) mt_control_server_start();
    t_guard = was_guarded;
}

/* Runs after main returned or exit() was called, after the target's own atexit handlers. Chunks that
 * are still open keep recording what later destructors free. */
__attribute__((destructor)) static void mt_on_unload(void) {
    if (atomic_load(&g_status) != MT_STATUS_TRACING || !mt_is_trace_owner()) return;
    uintptr_t was_guarded = t_guard;
    t_guard = was_guarded ? was_guarded : mt_guard_token();
    if (g_leak_scan) mt_leak_scan(MT_LEAK_SCAN_AT_EXIT);
    mt_rss_write_end_stats(MT_END_DESTRUCTOR);
    mt_end_record_t end = {.end_monotonic_ns = mt_now_ns(),
                           .last_sequence = atomic_load(&g_sequence),
                           .exit_status = -1,
                           .how = MT_END_DESTRUCTOR};
    mt_file_finish(&end);
    mt_control_server_remove_socket();
    mt_stacks_report_verification();
    t_guard = was_guarded;
}
