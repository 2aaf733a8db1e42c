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
#include <string.h>

/* Before libc's functions are known (inside dlsym), allocations come from the bootstrap arena. */
#define MT_PASS(name, args, size, alignment)                                                                           \
    (MT_LIKELY(real.name != NULL) ? real.name args : mt_bootstrap_alloc((size), (alignment)))

#define MT_ALLOC_HOOK(name, opcode, params, args, size, alignment)                                                     \
    MT_EXPORT void *name params {                                                                                      \
        if (MT_UNLIKELY(!mt_should_record())) return MT_PASS(name, args, size, alignment);                             \
        t_guard = 1;                                                                                                   \
        void *result = real.name args;                                                                                 \
        int saved_errno = errno;                                                                                       \
        mt_record_alloc(opcode, mt_next_sequence(), size, result, alignment);                                          \
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
    t_guard = 1;
    int saved_errno = errno;
    mt_record_free(mt_next_sequence(), ptr);
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

static void *mt_traced_realloc(uint8_t opcode, void *ptr, size_t count, size_t size) {
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
    t_guard = 1;
    uint64_t seq_before = mt_next_sequence();
    void *result = is_array ? real.reallocarray(ptr, count, size) : real.realloc(ptr, size);
    int saved_errno = errno;
    uint64_t seq_after = mt_next_sequence();
    mt_record_realloc(opcode, seq_before, seq_after, requested, ptr, result);
    errno = saved_errno;
    t_guard = 0;
    return result;
}

MT_EXPORT void *realloc(void *ptr, size_t size) { return mt_traced_realloc(MT_EVENT_REALLOC, ptr, 1, size); }

MT_EXPORT void *reallocarray(void *ptr, size_t count, size_t size) {
    return mt_traced_realloc(MT_EVENT_REALLOCARRAY, ptr, count, size);
}

MT_EXPORT int posix_memalign(void **out, size_t alignment, size_t size) {
    if (MT_UNLIKELY(!mt_should_record())) {
        if (real.posix_memalign != NULL) return real.posix_memalign(out, alignment, size);
        void *block = mt_bootstrap_alloc(size, alignment);
        if (block == NULL) return ENOMEM;
        *out = block;
        return 0;
    }
    t_guard = 1;
    int result = real.posix_memalign(out, alignment, size);
    int saved_errno = errno;
    mt_record_alloc(MT_EVENT_POSIX_MEMALIGN, mt_next_sequence(), size, result == 0 ? *out : NULL, alignment);
    errno = saved_errno;
    t_guard = 0;
    return result;
}

/* _exit skips destructors: close the trace here so that it ends with an END record. A vfork child
 * shares the parent's memory and file: its _exit must leave the parent's trace alone. */
static void mt_end_before_underscore_exit(int status) {
    if (atomic_load(&g_status) != MT_STATUS_TRACING || !mt_is_trace_owner()) return;
    t_guard = 1;
    mt_end_record_t end = {.end_monotonic_ns = mt_now_ns(),
                           .last_sequence = atomic_load(&g_sequence),
                           .exit_status = status,
                           .how = MT_END_UNDERSCORE_EXIT};
    mt_file_finish(&end);
}

MT_EXPORT void _exit(int status) {
    mt_end_before_underscore_exit(status);
    if (real._exit == NULL) mt_resolve_real_functions();
    real._exit(status);
    __builtin_unreachable();
}

MT_EXPORT void _Exit(int status) {
    mt_end_before_underscore_exit(status);
    if (real._Exit == NULL) mt_resolve_real_functions();
    real._Exit(status);
    __builtin_unreachable();
}
