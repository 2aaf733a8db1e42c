/*
 * The loaded-module map (path, load bias, PT_LOAD ranges, GNU build-id) that lets the reader turn
 * raw return addresses into module+offset and, later, symbols.
 *
 * dlopen and dlclose are deliberately not hooked: glibc resolves a dlopen'ed name against the
 * *caller's* RPATH/RUNPATH and namespace, found from the return address, so a wrapper would change
 * which library the target loads. Instead the map is refreshed whenever a new stack is interned
 * (cheap: dl_iterate_phdr's load/unload counters tell whether anything changed), which is before any
 * address from a new module can reach the trace (with one exception: see g_refresh_wanted). Called before
 * the stacks mutex is taken (see mt_modules_refresh). dlclose is hooked (interpose.c) to refresh right
 * after an unload: the unloaded module's stacks are retired (mt_stacks_retire) before a library loaded in
 * its place can reuse their ids.
 */
#include "internal.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define MT_MAX_TRACKED_MODULES 4096
#define MT_MAX_SEGMENTS 16
#define MT_MAX_BUILD_ID 64

typedef struct mt_known_module {
    uintptr_t load_bias;
    uintptr_t start, end; /* from the lowest PT_LOAD segment to the end of the highest */
    uint64_t name_hash;
    uint32_t id;
    bool present;
    bool seen;
} mt_known_module_t;

void mt_module_span(const struct dl_phdr_info *info, uintptr_t *start, uintptr_t *end) {
    *start = UINTPTR_MAX;
    *end = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *phdr = &info->dlpi_phdr[i];
        if (phdr->p_type != PT_LOAD) continue;
        uintptr_t segment = info->dlpi_addr + phdr->p_vaddr;
        if (segment < *start) *start = segment;
        if (segment + phdr->p_memsz > *end) *end = segment + phdr->p_memsz;
    }
}

static mt_known_module_t g_modules[MT_MAX_TRACKED_MODULES];
static uint32_t g_module_count;
static uint32_t g_next_module_id = 1;
static unsigned long long g_last_adds = ~0ull, g_last_subs = ~0ull;
/* Serializes refreshes. Only ever tried, never waited for: the thread holding it may be waiting for the
 * loader's lock, held by a thread whose dl_iterate_phdr callback allocates and lands here. A thread that
 * skips leaves its request in g_refresh_wanted for the holder. */
static pthread_mutex_t g_modules_mutex = PTHREAD_MUTEX_INITIALIZER;
/* Set by every refresh, cleared by the scan that answers it. A thread that finds the mutex taken leaves its
 * request here: the holder's walk may have begun before that thread's dlopen completed (the walk runs under
 * the loader's lock, so a module is either in it or not), and the holder scans again after it unlocks.
 * Either the holder sees the flag, or the requester's trylock comes after the unlock and succeeds. */
static _Atomic bool g_refresh_wanted;
static void mt_modules_scan(void);
static char g_exe_path[4096];
static size_t g_exe_path_length;

void mt_modules_reset(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    g_modules_mutex = fresh;
    memset(g_modules, 0, sizeof(g_modules));
    g_module_count = 0;
    g_next_module_id = 1;
    g_last_adds = g_last_subs = ~0ull;
    atomic_store(&g_refresh_wanted, false);
}

static uint64_t mt_hash_name(const char *name) {
    uint64_t hash = 0xcbf29ce484222325u;
    for (; *name; name++) hash = (hash ^ (uint8_t)*name) * 0x100000001b3u;
    return hash;
}

static const char *mt_module_path(const struct dl_phdr_info *info, size_t *length) {
    if (info->dlpi_name != NULL && info->dlpi_name[0] != '\0') {
        *length = strlen(info->dlpi_name);
        return info->dlpi_name;
    }
    if (g_exe_path_length == 0) {
        ssize_t n = readlink("/proc/self/exe", g_exe_path, sizeof(g_exe_path) - 1);
        g_exe_path_length = n > 0 ? (size_t)n : 0;
    }
    *length = g_exe_path_length;
    return g_exe_path;
}

static size_t mt_find_build_id(const struct dl_phdr_info *info, uint8_t *out) {
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *phdr = &info->dlpi_phdr[i];
        if (phdr->p_type != PT_NOTE) continue;
        const uint8_t *note = (const uint8_t *)(info->dlpi_addr + phdr->p_vaddr);
        const uint8_t *end = note + phdr->p_memsz;
        while (note + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *header = (const ElfW(Nhdr) *)note;
            const uint8_t *name = note + sizeof(ElfW(Nhdr));
            const uint8_t *desc = name + ((header->n_namesz + 3) & ~3u);
            const uint8_t *next = desc + ((header->n_descsz + 3) & ~3u);
            if (next > end) break;
            if (header->n_type == NT_GNU_BUILD_ID && header->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
                size_t length = header->n_descsz < MT_MAX_BUILD_ID ? header->n_descsz : MT_MAX_BUILD_ID;
                memcpy(out, desc, length);
                return length;
            }
            note = next;
        }
    }
    return 0;
}

static void mt_emit_module(const struct dl_phdr_info *info, uint32_t id) {
    uint8_t payload[8192];
    uint8_t *out = payload;
    out = mt_put_varint(out, id);
    out = mt_put_varint(out, info->dlpi_addr);
    uint32_t segments = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) segments += info->dlpi_phdr[i].p_type == PT_LOAD;
    if (segments > MT_MAX_SEGMENTS) segments = MT_MAX_SEGMENTS;
    out = mt_put_varint(out, segments);
    uint32_t written = 0;
    for (int i = 0; i < info->dlpi_phnum && written < segments; i++) {
        const ElfW(Phdr) *phdr = &info->dlpi_phdr[i];
        if (phdr->p_type != PT_LOAD) continue;
        out = mt_put_varint(out, info->dlpi_addr + phdr->p_vaddr);
        out = mt_put_varint(out, phdr->p_memsz);
        written++;
    }
    uint8_t build_id[MT_MAX_BUILD_ID];
    size_t build_id_length = mt_find_build_id(info, build_id);
    out = mt_put_varint(out, build_id_length);
    memcpy(out, build_id, build_id_length);
    out += build_id_length;
    size_t path_length;
    const char *path = mt_module_path(info, &path_length);
    if (path_length > 4096) path_length = 4096;
    out = mt_put_varint(out, path_length);
    memcpy(out, path, path_length);
    out += path_length;
    mt_record_sized(MT_EVENT_MODULE, payload, (size_t)(out - payload));
}

static int mt_read_counters(struct dl_phdr_info *info, size_t size, void *data) {
    unsigned long long *counters = data;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
        counters[0] = info->dlpi_adds;
        counters[1] = info->dlpi_subs;
    }
    return 1; /* the counters are the same in every entry: one is enough */
}

static int mt_visit_module(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    (void)data;
    size_t length;
    uint64_t name_hash = mt_hash_name(mt_module_path(info, &length));
    for (uint32_t i = 0; i < g_module_count; i++) {
        mt_known_module_t *known = &g_modules[i];
        if (known->present && known->load_bias == info->dlpi_addr && known->name_hash == name_hash) {
            known->seen = true;
            return 0;
        }
    }
    uint32_t id = g_next_module_id++;
    uintptr_t start, end;
    mt_module_span(info, &start, &end);
    if (g_module_count < MT_MAX_TRACKED_MODULES) {
        g_modules[g_module_count++] = (mt_known_module_t){.load_bias = info->dlpi_addr,
                                                          .start = start,
                                                          .end = end,
                                                          .name_hash = name_hash,
                                                          .id = id,
                                                          .present = true,
                                                          .seen = true};
    }
    mt_emit_module(info, id);
    return 0;
}

/* Serializes refreshes; see g_modules_mutex. */
void mt_modules_refresh(void) {
    atomic_store(&g_refresh_wanted, true);
    while (atomic_load(&g_refresh_wanted)) {
        if (pthread_mutex_trylock(&g_modules_mutex) != 0) return;
        atomic_store(&g_refresh_wanted, false);
        mt_modules_scan();
        pthread_mutex_unlock(&g_modules_mutex);
    }
}

static void mt_modules_scan(void) {
    unsigned long long counters[2] = {0, 0};
    dl_iterate_phdr(mt_read_counters, counters);
    if (counters[0] == g_last_adds && counters[1] == g_last_subs) return;
    g_last_adds = counters[0];
    g_last_subs = counters[1];

    for (uint32_t i = 0; i < g_module_count; i++) g_modules[i].seen = false;
    dl_iterate_phdr(mt_visit_module, NULL);
    for (uint32_t i = 0; i < g_module_count; i++) {
        mt_known_module_t *known = &g_modules[i];
        if (!known->present || known->seen) continue;
        known->present = false;
        uint8_t payload[MT_MAX_VARINT_BYTES];
        uint8_t *end = mt_put_varint(payload, known->id);
        mt_record_sized(MT_EVENT_MODULE_UNLOAD, payload, (size_t)(end - payload));
        /* After the walk (the loader's lock is released): modules -> stacks, see internal.h. */
        if (known->start < known->end) mt_stacks_retire(known->start, known->end);
    }
}
