/*
 * The process's memory as the kernel counts it: resident set size and program break, sampled while the
 * process runs (MT_EVENT_RSS_SAMPLE) and once when the trace ends (MT_RECORD_PROCESS_STATS).
 *
 * Samples ride on the recorder's clock: a thread reads the coarse clock every g_config.clock_every events, and only
 * when that clock has moved does it compare it with g_rss_next_sample_ns. The per-event path gains nothing;
 * a sample costs one pread of /proc/self/statm (~1.5 us) at most every MT_RSS_SAMPLE_INTERVAL_NS.
 */
#include "internal.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

_Atomic uint64_t g_rss_next_sample_ns = UINT64_MAX;

static int g_statm_fd = -1;
static dev_t g_statm_device;
static ino_t g_statm_inode;
static uintptr_t g_start_break;

int mt_rss_descriptor(void) { return g_statm_fd; }

/* The program may close our descriptor and get its number back for a file of its own: read only our statm. */
static bool mt_statm_is_ours(void) {
    struct stat now;
    return g_statm_fd >= 0 && fstat(g_statm_fd, &now) == 0 && now.st_dev == g_statm_device &&
           now.st_ino == g_statm_inode;
}

/* The kernel's start of the brk heap (field 47 of /proc/self/stat, start_brk, Linux 3.5+): the break before
 * anyone moved it, even if libc's arena grew before tracing started. sbrk(0) when it cannot be read. */
static uintptr_t mt_initial_break(void) {
    static char text[4096];
    uintptr_t fallback = (uintptr_t)sbrk(0);
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fallback;
    ssize_t length = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (length <= 0) return fallback;
    /* Fields count from after the command name, which ends with the last ')' and may hold spaces. */
    ssize_t i = length - 1;
    while (i > 0 && text[i] != ')') i--;
    int field = 2;
    uint64_t value = 0;
    for (i++; i < length && field < 47; i++)
        if (text[i] == ' ') field++;
    for (; i < length && text[i] >= '0' && text[i] <= '9'; i++) value = value * 10 + (uint64_t)(text[i] - '0');
    return field == 47 && value != 0 && value <= fallback ? (uintptr_t)value : fallback;
}

void mt_rss_start(bool sampling) {
    atomic_store_explicit(&g_rss_next_sample_ns, UINT64_MAX, memory_order_relaxed);
    /* A followed child inherited the parent's descriptor, which names the parent's /proc/PID/statm. */
    if (mt_statm_is_ours()) close(g_statm_fd);
    g_statm_fd = -1;
    g_start_break = mt_initial_break();
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    int moved = mt_duplicate_high(fd);
    if (moved >= 0) {
        close(fd);
        fd = moved;
    }
    struct stat opened;
    if (fstat(fd, &opened) != 0) {
        close(fd);
        return;
    }
    g_statm_device = opened.st_dev;
    g_statm_inode = opened.st_ino;
    g_statm_fd = fd;
    if (sampling) atomic_store_explicit(&g_rss_next_sample_ns, 0, memory_order_relaxed);
}

bool mt_rss_claim_sample(uint64_t now) {
    uint64_t due = atomic_load_explicit(&g_rss_next_sample_ns, memory_order_relaxed);
    return now >= due &&
           atomic_compare_exchange_strong_explicit(&g_rss_next_sample_ns, &due, now + MT_RSS_SAMPLE_INTERVAL_NS,
                                                   memory_order_relaxed, memory_order_relaxed);
}

/* /proc/self/statm is "size resident shared text lib data dt", in pages. The raw syscall, unlike pread, is not a
 * cancellation point, so a sample inside a hook needs no mt_cancel_off. errno is the hooks' to restore. */
uint64_t mt_rss_resident_bytes(void) {
    if (!mt_statm_is_ours()) return 0;
    char text[128];
    long length = syscall(SYS_pread64, g_statm_fd, text, sizeof(text), 0);
    long i = 0;
    while (i < length && text[i] != ' ') i++; /* size */
    i++;
    uint64_t pages = 0;
    bool digits = false;
    for (; i < length && text[i] >= '0' && text[i] <= '9'; i++, digits = true)
        pages = pages * 10 + (uint64_t)(text[i] - '0');
    return digits ? pages * mt_page_size() : 0;
}

uint64_t mt_rss_break_bytes(void) {
    uintptr_t now = (uintptr_t)sbrk(0);
    return now != (uintptr_t)-1 && now > g_start_break ? now - g_start_break : 0;
}

void mt_rss_write_end_stats(uint32_t how) {
    struct rusage usage;
    mt_process_stats_record_t stats = {
        .time_ns = mt_now_ns(),
        .peak_rss_bytes = getrusage(RUSAGE_SELF, &usage) == 0 ? (uint64_t)usage.ru_maxrss * 1024u : 0,
        .rss_bytes = mt_rss_resident_bytes(),
        .brk_bytes = mt_rss_break_bytes(),
        .start_break = g_start_break,
        .how = how,
    };
    int cancel_state = mt_cancel_off(); /* a new window means fallocate, with the file's mutex held */
    mt_file_write_record(MT_RECORD_PROCESS_STATS, &stats, sizeof(stats), NULL, 0);
    mt_cancel_restore(cancel_state);
}
