/*
 * The allocator's view: which allocator serves the calls (glibc's own, or one preloaded after this library),
 * the usable size and chunk flags of every block, and (opt-in) the program's own mappings.
 *
 * On glibc the usable size and flags come from the chunk header, the size word just before the user's pointer:
 * one load, no call. Most blocks are exactly what the reader derives from the requested size (a chunk of the
 * thread's arena, rounded up to 16 bytes with 8 of header), so a CHUNK_INFO event is written only for the others:
 * mmapped chunks, a remainder too small to split, memalign, a thread that changed arena.
 *
 * glibc's malloc maps and grows its heap through its internal __mmap and __sbrk, never through the exported
 * symbols, so the mmap, munmap, mremap, brk and sbrk hooks below see only the program's own calls (and libraries'
 * such as CPython's pymalloc). The tracer's own mappings pass through them with the guard set.
 */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <gnu/libc-version.h>
#include <link.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

uint8_t g_chunk_mode;
bool g_trace_mappings;
bool g_malloc_is_glibc = true;
static size_t (*g_usable_size)(void *);

/* True when the real malloc is glibc's own: it lies in the object that defines gnu_get_libc_version (libc.so.6),
 * not in a jemalloc, mimalloc or tcmalloc preloaded after this library. _dl_find_object takes no lock. */
static bool mt_real_malloc_is_glibc(void) {
    struct dl_find_object malloc_object, libc_object;
    if (_dl_find_object((void *)real.malloc, &malloc_object) != 0) return false;
    if (_dl_find_object((void *)gnu_get_libc_version, &libc_object) != 0) return false;
    return malloc_object.dlfo_map_start == libc_object.dlfo_map_start;
}

static unsigned mt_parse_unsigned(const char **text) {
    unsigned value = 0;
    while (**text >= '0' && **text <= '9') value = value * 10 + (unsigned)(*(*text)++ - '0');
    return value;
}

/* glibc's value of a malloc setting: the tunable in GLIBC_TUNABLES, else the MALLOC_*_ variable; NULL if unset. */
static const char *mt_malloc_setting(const char *tunable, const char *variable) {
    const char *tunables = mt_getenv("GLIBC_TUNABLES");
    size_t length = strlen(tunable);
    for (const char *p = tunables; p != NULL && *p != '\0'; p = strchr(p, ':'), p = p ? p + 1 : NULL)
        if (strncmp(p, tunable, length) == 0 && p[length] == '=') return p + length + 1;
    return mt_getenv(variable);
}

/* The mmap threshold at start, and whether glibc will move it: setting any of these turns the dynamic threshold
 * off (glibc's do_set_* functions set no_dyn_threshold). */
static void mt_initial_threshold(mt_allocator_record_t *record) {
    record->mmap_threshold = MT_GLIBC_DEFAULT_MMAP_THRESHOLD;
    record->threshold_is_dynamic = 1;
    const char *threshold = mt_malloc_setting("glibc.malloc.mmap_threshold", "MALLOC_MMAP_THRESHOLD_");
    if (threshold != NULL && *threshold >= '0' && *threshold <= '9') {
        const char *p = threshold;
        unsigned value = mt_parse_unsigned(&p);
        if (value <= MT_GLIBC_MMAP_THRESHOLD_MAX) {
            record->mmap_threshold = value;
            record->threshold_is_dynamic = 0;
        }
    }
    if (mt_malloc_setting("glibc.malloc.trim_threshold", "MALLOC_TRIM_THRESHOLD_") != NULL ||
        mt_malloc_setting("glibc.malloc.top_pad", "MALLOC_TOP_PAD_") != NULL ||
        mt_malloc_setting("glibc.malloc.mmap_max", "MALLOC_MMAP_MAX_") != NULL)
        record->threshold_is_dynamic = 0;
}

void mt_allocator_start(void) {
    mt_allocator_record_t record = {0};
    const char *version = gnu_get_libc_version();
    record.libc_major = mt_parse_unsigned(&version);
    if (*version == '.') version++;
    record.libc_minor = mt_parse_unsigned(&version);
    g_chunk_mode = MT_CHUNKS_OFF;
    g_malloc_is_glibc = mt_real_malloc_is_glibc();
    if (g_malloc_is_glibc) {
        record.allocator = MT_ALLOCATOR_GLIBC;
        mt_initial_threshold(&record);
        if (g_config.usable_sizes) g_chunk_mode = MT_CHUNKS_GLIBC;
    } else {
        record.allocator = MT_ALLOCATOR_OTHER;
        g_usable_size = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
        if (g_config.usable_sizes && g_usable_size != NULL) g_chunk_mode = MT_CHUNKS_OTHER;
    }
    if (g_chunk_mode != MT_CHUNKS_OFF) record.features |= MT_ALLOCATOR_USABLE_SIZES;
    if (g_chunk_mode == MT_CHUNKS_GLIBC) record.features |= MT_ALLOCATOR_CHUNK_FLAGS;
    g_trace_mappings = g_config.trace_mappings;
    if (g_trace_mappings) record.features |= MT_ALLOCATOR_MAPPINGS;
    mt_file_write_record(MT_RECORD_ALLOCATOR, &record, sizeof(record), NULL, 0);
}

bool mt_chunk_info_other(const void *ptr, size_t requested, uint64_t *value) {
    size_t usable = g_usable_size((void *)ptr);
    if (usable <= requested) return false;
    *value = (uint64_t)(usable - requested) << 2;
    return true;
}

/* ---- the program's own mappings --------------------------------------------------------------- */

/* Recording a mapping call: tracing, not paused (malloctrace_pause, ctl stop) and not the tracer's own call (no
 * initialization from here: mmap can come before the first malloc, from places that must not start the tracer). */
static inline bool mt_records_mapping(void) {
    return MT_UNLIKELY(g_trace_mappings) && t_guard == 0 &&
           atomic_load_explicit(&g_status, memory_order_relaxed) == MT_STATUS_TRACING && !mt_control_is_paused();
}

/* MAPPING event, guard held:  0x84 | v length | v seq | v call | v stack | v a | v b | v c | v d */
static void mt_record_mapping(uint32_t call, uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
    uint8_t payload[7 * MT_MAX_VARINT_BYTES];
    uint8_t *end = mt_put_varint(payload, mt_next_sequence());
    end = mt_put_varint(end, call);
    end = mt_put_varint(end, mt_current_stack_id());
    end = mt_put_varint(end, a);
    end = mt_put_varint(end, b);
    end = mt_put_varint(end, c);
    end = mt_put_varint(end, d);
    mt_record_sized(MT_EVENT_MAPPING, payload, (size_t)(end - payload));
}

/* Before libc's functions are known (the tracer maps memory while it starts), the system call itself. */
static void *mt_real_mmap(void *address, size_t length, int prot, int flags, int fd, off_t offset) {
    if (MT_LIKELY(real.mmap != NULL)) return real.mmap(address, length, prot, flags, fd, offset);
    return (void *)syscall(SYS_mmap, address, length, prot, flags, fd, offset);
}

static void *mt_traced_mmap(void *address, size_t length, int prot, int flags, int fd, off_t offset) {
    if (!(flags & MAP_ANONYMOUS) || !mt_records_mapping())
        return mt_real_mmap(address, length, prot, flags, fd, offset);
    t_guard = mt_guard_token();
    void *result = mt_real_mmap(address, length, prot, flags, fd, offset);
    int saved_errno = errno;
    if (result != MAP_FAILED)
        mt_record_mapping(MT_MAPPING_MMAP, (uintptr_t)result, length, (uint64_t)(unsigned)prot,
                          (uint64_t)(unsigned)flags);
    errno = saved_errno;
    t_guard = 0;
    return result;
}

MT_EXPORT void *mmap(void *address, size_t length, int prot, int flags, int fd, off_t offset) {
    return mt_traced_mmap(address, length, prot, flags, fd, offset);
}

MT_EXPORT void *mmap64(void *address, size_t length, int prot, int flags, int fd, off_t offset) {
    return mt_traced_mmap(address, length, prot, flags, fd, offset);
}

MT_EXPORT int munmap(void *address, size_t length) {
    bool recording = mt_records_mapping();
    if (recording) t_guard = mt_guard_token();
    int result = real.munmap != NULL ? real.munmap(address, length) : (int)syscall(SYS_munmap, address, length);
    if (!recording) return result;
    int saved_errno = errno;
    if (result == 0) mt_record_mapping(MT_MAPPING_MUNMAP, (uintptr_t)address, length, 0, 0);
    errno = saved_errno;
    t_guard = 0;
    return result;
}

MT_EXPORT void *mremap(void *old_address, size_t old_length, size_t new_length, int flags, ...) {
    void *wanted = NULL;
    if (flags & MREMAP_FIXED) {
        va_list arguments;
        va_start(arguments, flags);
        wanted = va_arg(arguments, void *);
        va_end(arguments);
    }
    bool recording = mt_records_mapping();
    if (recording) t_guard = mt_guard_token();
    void *result = real.mremap != NULL
                       ? real.mremap(old_address, old_length, new_length, flags, wanted)
                       : (void *)syscall(SYS_mremap, old_address, old_length, new_length, flags, wanted);
    if (!recording) return result;
    int saved_errno = errno;
    if (result != MAP_FAILED)
        mt_record_mapping(MT_MAPPING_MREMAP, (uintptr_t)old_address, old_length, (uintptr_t)result, new_length);
    errno = saved_errno;
    t_guard = 0;
    return result;
}

/* libc's own function when `real` is not filled in yet (a call before the tracer started, or a start that failed). */
#define MT_REAL_OR_NEXT(name) (real.name != NULL ? real.name : (__typeof__(real.name))dlsym(RTLD_NEXT, #name))

MT_EXPORT int brk(void *address) {
    if (!mt_records_mapping()) return MT_REAL_OR_NEXT(brk)(address);
    t_guard = mt_guard_token();
    uintptr_t before = (uintptr_t)real.sbrk(0);
    int result = real.brk(address);
    int saved_errno = errno;
    uintptr_t after = (uintptr_t)real.sbrk(0);
    if (result == 0 && after != before) mt_record_mapping(MT_MAPPING_BRK, before, after, 0, 0);
    errno = saved_errno;
    t_guard = 0;
    return result;
}

MT_EXPORT void *sbrk(intptr_t increment) {
    if (increment == 0 || !mt_records_mapping()) return MT_REAL_OR_NEXT(sbrk)(increment);
    t_guard = mt_guard_token();
    void *before = real.sbrk(increment);
    int saved_errno = errno;
    if (before != (void *)-1)
        mt_record_mapping(MT_MAPPING_SBRK, (uintptr_t)before, (uintptr_t)before + (uintptr_t)increment, 0, 0);
    errno = saved_errno;
    t_guard = 0;
    return before;
}

/* mallopt moves glibc's mmap threshold (and turns its dynamic adjustment off): recorded whenever tracing, so that
 * the report's threshold over time is exact.  0x85 | v length | v seq | z parameter | z value | v result */
MT_EXPORT int mallopt(int parameter, int value) {
    if (!mt_should_record()) return MT_REAL_OR_NEXT(mallopt)(parameter, value);
    t_guard = mt_guard_token();
    int result = real.mallopt(parameter, value);
    int saved_errno = errno;
    uint8_t payload[4 * MT_MAX_VARINT_BYTES];
    uint8_t *end = mt_put_varint(payload, mt_next_sequence());
    end = mt_put_zigzag(end, parameter);
    end = mt_put_zigzag(end, value);
    end = mt_put_varint(end, (uint64_t)(unsigned)result);
    mt_record_sized(MT_EVENT_MALLOPT, payload, (size_t)(end - payload));
    errno = saved_errno;
    t_guard = 0;
    return result;
}
