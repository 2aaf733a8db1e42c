/*
 * The exported replacements for libc's allocator. Each one: pass through when the tracer must not
 * record (guard set, tracing off); otherwise set the guard, call the real function, keep its errno,
 * take a global sequence number, record, restore errno, clear the guard.
 *
 * Sequence numbers give the reader one order across threads. An allocation takes its number after
 * the real call returns but before the pointer reaches the caller, so no other thread can free the
 * block with an earlier number; a free takes its number before the real free, so nobody can be handed
 * the same address again with an earlier number. realloc takes one of each.
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Before libc's functions are known (inside dlsym), allocations come from the bootstrap arena. */
#define MT_PASS(name, args, size, alignment)                                                                           \
    (MT_LIKELY(real.name != NULL) ? real.name args : mt_bootstrap_alloc((size), (alignment)))

#define MT_ALLOC_HOOK(name, opcode, params, args, size, alignment)                                                     \
    MT_EXPORT void *name params {                                                                                      \
        if (MT_UNLIKELY(!mt_should_record())) return MT_PASS(name, args, size, alignment);                             \
        if (MT_UNLIKELY(mt_control_is_paused()) || (MT_UNLIKELY(g_sample_rate != 0) && !mt_sample_allocation(size))) { \
            void *unsampled = real.name args;                                                                          \
            if (MT_UNLIKELY(g_leak_scan)) mt_live_insert(unsampled, size, __builtin_return_address(0));                \
            return unsampled;                                                                                          \
        }                                                                                                              \
        t_guard = mt_guard_token();                                                                                    \
        void *result = real.name args;                                                                                 \
        int saved_errno = errno;                                                                                       \
        if (MT_UNLIKELY(g_sample_rate != 0) && result != NULL) mt_sampled_insert(result);                              \
        mt_record_alloc(opcode, mt_next_sequence(), size, result, alignment);                                          \
        mt_recorded_note(result);                                                                                      \
        if (MT_UNLIKELY(g_leak_scan)) mt_live_insert(result, size, __builtin_return_address(0));                       \
        errno = saved_errno;                                                                                           \
        t_guard = 0;                                                                                                   \
        return result;                                                                                                 \
    }
#include "hooks.def"
#undef MT_ALLOC_HOOK

MT_EXPORT void free(void *ptr) {
    if (MT_UNLIKELY(ptr == NULL || mt_bootstrap_owns(ptr))) return;
    if (MT_UNLIKELY(!mt_should_record())) {
        if (real.free != NULL) real.free(ptr);
        return;
    }
    /* Out of the live table before the real free: afterwards another thread may get the same address. */
    if (MT_UNLIKELY(g_leak_scan)) mt_live_remove(ptr);
    if (MT_UNLIKELY(g_sample_rate != 0) && !mt_sampled_may_contain(ptr)) {
        real.free(ptr);
        return;
    }
    /* Paused: only a block that may have been recorded needs its release recorded (sampled: the table says). */
    if (MT_UNLIKELY(mt_control_is_paused()) && g_sample_rate == 0 && !mt_recorded_may_contain(ptr)) {
        real.free(ptr);
        return;
    }
    t_guard = mt_guard_token();
    int saved_errno = errno;
    if (MT_LIKELY(g_sample_rate == 0) || mt_sampled_remove(ptr)) mt_record_free(mt_next_sequence(), ptr);
    real.free(ptr);
    errno = saved_errno;
    t_guard = 0;
}

/* A bootstrap block cannot be resized in place or freed: copy it into a real block. */
static void *mt_realloc_bootstrap_block(void *ptr, size_t size) {
    if (size == 0) return NULL; /* glibc's realloc(p, 0) frees p and returns NULL */
    void *result = malloc(size);
    if (result != NULL) {
        size_t old_size = mt_bootstrap_size(ptr);
        memcpy(result, ptr, old_size < size ? old_size : size);
    }
    return result;
}

/* The real realloc or reallocarray, as `is_array` says. */
static inline void *mt_real_realloc(bool is_array, void *ptr, size_t count, size_t size) {
    return is_array ? real.reallocarray(ptr, count, size) : real.realloc(ptr, size);
}

/* realloc when sampling: the old block's release is recorded when the old block was, the new block when
 * its bytes hold a sample point. Recorded as a realloc from NULL (new block only), a free (old block
 * only) or a whole realloc (both). */
static void *mt_sampled_realloc(uint8_t opcode, void *ptr, size_t count, size_t size, size_t requested) {
    bool is_array = opcode == MT_EVENT_REALLOCARRAY;
    bool new_sampled = !mt_control_is_paused() && mt_sample_allocation(requested);
    if (!new_sampled && (ptr == NULL || !mt_sampled_may_contain(ptr)))
        return mt_real_realloc(is_array, ptr, count, size);
    t_guard = mt_guard_token();
    /* Out of the table before the call: afterwards another thread may be handed the same address. */
    bool old_sampled = ptr != NULL && mt_sampled_remove(ptr);
    uint64_t seq_before = mt_next_sequence();
    void *result = mt_real_realloc(is_array, ptr, count, size);
    int saved_errno = errno;
    uint64_t seq_after = mt_next_sequence();
    bool failed = result == NULL && requested != 0; /* the old block is intact */
    if (failed && old_sampled) mt_sampled_insert(ptr);
    if (new_sampled) {
        if (result != NULL) mt_sampled_insert(result);
        mt_record_realloc(opcode, seq_before, seq_after, requested, old_sampled ? ptr : NULL, result);
    } else if (old_sampled && !failed) {
        mt_record_free(seq_before, ptr);
    }
    errno = saved_errno;
    t_guard = 0;
    return result;
}

/* realloc while paused (not sampling): the new block is not recorded, the old one's release is when the old
 * block may have been recorded (as a FREE at the first sequence number, unless the call failed). */
static void *mt_paused_realloc(void *ptr, bool is_array, size_t count, size_t size, size_t requested) {
    if (ptr == NULL || !mt_recorded_may_contain(ptr)) return mt_real_realloc(is_array, ptr, count, size);
    t_guard = mt_guard_token();
    uint64_t seq_before = mt_next_sequence();
    void *result = mt_real_realloc(is_array, ptr, count, size);
    int saved_errno = errno;
    if (result != NULL || requested == 0) mt_record_free(seq_before, ptr);
    errno = saved_errno;
    t_guard = 0;
    return result;
}

/* Always inlined into realloc and reallocarray: the guard's token must be the exported hook's frame. */
static inline __attribute__((always_inline)) void *mt_traced_realloc(uint8_t opcode, void *ptr, size_t count,
                                                                     size_t size, const void *caller) {
    bool is_array = opcode == MT_EVENT_REALLOCARRAY;
    size_t requested = is_array ? mt_saturating_product(count, size) : size;
    if (MT_UNLIKELY(mt_bootstrap_owns(ptr))) {
        if (requested == SIZE_MAX && is_array) {
            errno = ENOMEM;
            return NULL;
        }
        return mt_realloc_bootstrap_block(ptr, requested);
    }
    if (MT_UNLIKELY(!mt_should_record())) {
        if (is_array && real.reallocarray != NULL) return real.reallocarray(ptr, count, size);
        if (!is_array && real.realloc != NULL) return real.realloc(ptr, size);
        return ptr == NULL && requested != SIZE_MAX ? mt_bootstrap_alloc(requested, 16) : NULL;
    }
    uint64_t live_info = MT_LIVE_ABSENT;
    if (MT_UNLIKELY(g_leak_scan) && ptr != NULL) live_info = mt_live_remove(ptr);
    void *result;
    if (MT_UNLIKELY(g_sample_rate != 0)) {
        result = mt_sampled_realloc(opcode, ptr, count, size, requested);
    } else if (MT_UNLIKELY(mt_control_is_paused())) {
        result = mt_paused_realloc(ptr, is_array, count, size, requested);
    } else {
        t_guard = mt_guard_token();
        uint64_t seq_before = mt_next_sequence();
        result = mt_real_realloc(is_array, ptr, count, size);
        int saved_errno = errno;
        uint64_t seq_after = mt_next_sequence();
        mt_record_realloc(opcode, seq_before, seq_after, requested, ptr, result);
        mt_recorded_note(result);
        errno = saved_errno;
        t_guard = 0;
    }
    if (MT_UNLIKELY(g_leak_scan)) {
        if (result != NULL)
            mt_live_insert(result, requested, caller);
        else if (requested != 0)
            mt_live_reinsert(ptr, live_info); /* failed: the old block is intact */
    }
    return result;
}

MT_EXPORT void *realloc(void *ptr, size_t size) {
    return mt_traced_realloc(MT_EVENT_REALLOC, ptr, 1, size, __builtin_return_address(0));
}

MT_EXPORT void *reallocarray(void *ptr, size_t count, size_t size) {
    return mt_traced_realloc(MT_EVENT_REALLOCARRAY, ptr, count, size, __builtin_return_address(0));
}

MT_EXPORT int posix_memalign(void **out, size_t alignment, size_t size) {
    if (MT_UNLIKELY(!mt_should_record())) {
        if (real.posix_memalign != NULL) return real.posix_memalign(out, alignment, size);
        void *block = mt_bootstrap_alloc(size, alignment);
        if (block == NULL) return ENOMEM;
        *out = block;
        return 0;
    }
    if (MT_UNLIKELY(mt_control_is_paused()) || (MT_UNLIKELY(g_sample_rate != 0) && !mt_sample_allocation(size))) {
        int unsampled = real.posix_memalign(out, alignment, size);
        if (MT_UNLIKELY(g_leak_scan) && unsampled == 0) mt_live_insert(*out, size, __builtin_return_address(0));
        return unsampled;
    }
    t_guard = mt_guard_token();
    int result = real.posix_memalign(out, alignment, size);
    int saved_errno = errno;
    if (MT_UNLIKELY(g_sample_rate != 0) && result == 0) mt_sampled_insert(*out);
    mt_record_alloc(MT_EVENT_POSIX_MEMALIGN, mt_next_sequence(), size, result == 0 ? *out : NULL, alignment);
    if (result == 0) mt_recorded_note(*out);
    if (MT_UNLIKELY(g_leak_scan) && result == 0) mt_live_insert(*out, size, __builtin_return_address(0));
    errno = saved_errno;
    t_guard = 0;
    return result;
}

/* Ends the trace with an END record of the given reason. A vfork child shares the parent's memory and
 * file: its _exit or exec must leave the parent's trace alone. */
static bool mt_end_trace(uint32_t how, int status) {
    /* With the guard set, this thread is inside the tracer (a signal handler interrupted it), possibly
     * holding the file's lock: leave the trace without an END record rather than deadlock. */
    if (t_guard || atomic_load(&g_status) != MT_STATUS_TRACING || !mt_is_trace_owner()) return false;
    uintptr_t was_guarded = t_guard;
    t_guard = mt_guard_token();
    /* _exit and quick_exit skip the destructor, so the scan happens here; from this thread's live frames. */
    if (g_leak_scan && how == MT_END_UNDERSCORE_EXIT) mt_leak_scan(MT_LEAK_SCAN_AT_UNDERSCORE_EXIT);
    if (g_leak_scan && how == MT_END_QUICK_EXIT) mt_leak_scan(MT_LEAK_SCAN_AT_QUICK_EXIT);
    if (how == MT_END_EXEC) mt_file_begin_exec();
    mt_rss_write_end_stats(how);
    mt_end_record_t end = {
        .end_monotonic_ns = mt_now_ns(), .last_sequence = atomic_load(&g_sequence), .exit_status = status, .how = how};
    mt_file_finish(&end);
    if (how != MT_END_EXEC) mt_control_server_remove_socket(); /* an exec'd image takes the pid's socket over */
    t_guard = was_guarded;
    return true;
}

/* _exit skips destructors: close the trace here so that it ends with an END record. */
static void mt_end_before_underscore_exit(int status) { mt_end_trace(MT_END_UNDERSCORE_EXIT, status); }

/* exec replaces the image without destructors: end the trace first, and take it up again if exec fails.
 * Meanwhile other threads wait for a new chunk rather than lose events, so this thread must not wait for
 * anything they may hold (the stacks mutex): the exec itself runs guarded, its rare allocations untraced.
 * With children followed, an environment that lacks the tracer's variables gets them back (`followed`, passed
 * by `with_environment`): the new image is traced as the user asked. (posix_spawn and system() exec in a new
 * child process, which starts a trace of its own when followed.) */
#define MT_MAX_FOLLOWED_ENVIRONMENT 4096
#define MT_EXEC_HOOK(name, params, args, environment, with_environment)                                                \
    MT_EXPORT int name params {                                                                                        \
        if (real.name == NULL) mt_resolve_real_functions();                                                            \
        size_t followed_size = mt_follow_environment_size(environment);                                                \
        /* An environment of thousands of entries stays as it is rather than take that much stack. */                  \
        if (followed_size > MT_MAX_FOLLOWED_ENVIRONMENT) followed_size = 0;                                            \
        char *followed_storage[followed_size > 0 ? followed_size : 1];                                                 \
        char **followed = followed_size > 0 ? followed_storage : NULL;                                                 \
        if (followed != NULL) mt_follow_environment(environment, followed);                                            \
        mt_exec_stop_signal_mask(true);                                                                                \
        bool ended = mt_end_trace(MT_END_EXEC, -1);                                                                    \
        if (ended) t_guard = mt_guard_token();                                                                         \
        int result = followed != NULL ? with_environment : real.name args;                                             \
        int saved_errno = errno;                                                                                       \
        mt_exec_stop_signal_mask(false);                                                                               \
        if (ended) {                                                                                                   \
            mt_file_resume();                                                                                          \
            t_guard = 0;                                                                                               \
        }                                                                                                              \
        errno = saved_errno;                                                                                           \
        return result;                                                                                                 \
    }
MT_EXEC_HOOK(execve, (const char *path, char *const argv[], char *const envp[]), (path, argv, envp), envp,
             real.execve(path, argv, followed))
MT_EXEC_HOOK(execv, (const char *path, char *const argv[]), (path, argv), environ, real.execve(path, argv, followed))
MT_EXEC_HOOK(execvp, (const char *file, char *const argv[]), (file, argv), environ, real.execvpe(file, argv, followed))
MT_EXEC_HOOK(execvpe, (const char *file, char *const argv[], char *const envp[]), (file, argv, envp), envp,
             real.execvpe(file, argv, followed))
MT_EXEC_HOOK(fexecve, (int fd, char *const argv[], char *const envp[]), (fd, argv, envp), envp,
             real.fexecve(fd, argv, followed))

/* glibc's execl, execlp and execle call its internal execve directly, past the hooks above: collect their
 * arguments (counted first, into an array of just that size, as glibc does) and go through the hooked
 * vector forms instead. */
static size_t mt_count_arguments(const char *first, va_list arguments) {
    size_t count = 0;
    for (const char *next = first; next != NULL; next = va_arg(arguments, const char *)) count++;
    return count;
}

#define MT_COLLECT_ARGUMENTS(first, vector)                                                                            \
    va_list arguments, counting;                                                                                       \
    va_start(arguments, first);                                                                                        \
    va_copy(counting, arguments);                                                                                      \
    size_t count = mt_count_arguments(first, counting);                                                                \
    va_end(counting);                                                                                                  \
    const char *vector[count + 1];                                                                                     \
    vector[0] = first;                                                                                                 \
    for (size_t i = 1; i <= count; i++) vector[i] = i < count ? va_arg(arguments, const char *) : NULL;

MT_EXPORT int execl(const char *path, const char *arg, ...) {
    MT_COLLECT_ARGUMENTS(arg, argv)
    va_end(arguments);
    return execv(path, (char *const *)argv);
}

MT_EXPORT int execlp(const char *file, const char *arg, ...) {
    MT_COLLECT_ARGUMENTS(arg, argv)
    va_end(arguments);
    return execvp(file, (char *const *)argv);
}

MT_EXPORT int execle(const char *path, const char *arg, ...) {
    MT_COLLECT_ARGUMENTS(arg, argv)
    if (count > 0) (void)va_arg(arguments, const char *); /* the NULL after them (or `arg` itself was it) */
    char *const *envp = va_arg(arguments, char *const *);
    va_end(arguments);
    return execve(path, (char *const *)argv, envp);
}

/* Only for the leak scan: an explicit exit() on the main thread leaves its callers' frames live while
 * the destructor scans, so the scan starts here instead of at __libc_stack_end (which would skip them).
 * Returning from main does not come through here (libc calls its own exit). */
MT_EXPORT void exit(int status) {
    if (real.exit == NULL) mt_resolve_real_functions();
    if (g_leak_scan && gettid() == getpid()) {
        __builtin_unwind_init(); /* the caller's callee-saved registers, spilled into this frame */
        volatile uintptr_t marker = 0;
        g_exit_stack_pointer = (uintptr_t)&marker;
    }
    real.exit(status);
    __builtin_unreachable();
}

MT_EXPORT void _exit(int status) {
    mt_end_before_underscore_exit(status);
    if (real._exit == NULL) mt_resolve_real_functions();
    real._exit(status);
    __builtin_unreachable();
}

/* quick_exit runs the at_quick_exit handlers, then libc's own _exit, past the hook above. The tracer's
 * handler, registered at start before the program's, runs after all of them (in reverse order) and ends
 * the trace with the status the hook kept. */
static int g_quick_exit_status;

static void mt_end_at_quick_exit(void) { mt_end_trace(MT_END_QUICK_EXIT, g_quick_exit_status); }

void mt_register_quick_exit_handler(void) { at_quick_exit(mt_end_at_quick_exit); }

MT_EXPORT void quick_exit(int status) {
    g_quick_exit_status = status;
    if (real.quick_exit == NULL) mt_resolve_real_functions();
    real.quick_exit(status);
    __builtin_unreachable();
}

MT_EXPORT void _Exit(int status) {
    mt_end_before_underscore_exit(status);
    if (real._Exit == NULL) mt_resolve_real_functions();
    real._Exit(status);
    __builtin_unreachable();
}

/* Refreshes the module map right after a library is unloaded (see modules.c), so that the interned
 * stacks with addresses in it are retired before another library loaded at the same address runs. Unlike
 * dlopen, dlclose does not depend on its caller: the wrapper changes nothing for the program. The library's
 * destructors run inside the real dlclose, traced as usual. */
MT_EXPORT int dlclose(void *handle) {
    if (real.dlclose == NULL) mt_resolve_real_functions();
    int result = real.dlclose(handle);
    if (t_guard || atomic_load(&g_status) != MT_STATUS_TRACING || !mt_is_trace_owner()) return result;
    int saved_errno = errno;
    t_guard = mt_guard_token();
    mt_modules_refresh();
    t_guard = 0;
    errno = saved_errno;
    return result;
}
