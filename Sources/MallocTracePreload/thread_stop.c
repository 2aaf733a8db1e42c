/*
 * Stopping every other thread for the leak scan, Boehm GC's way (LEAKSCAN.md §1): tgkill each tid of
 * /proc/self/task with MT_STOP_SIGNAL (internal.h); the handler records its own stack pointer (the kernel pushed the
 * interrupted registers, vector ones included, just above it) and thread pointer, acks, and futex-waits
 * on a generation word until the scan bumps it. Chosen over LeakSanitizer's ptrace tracer because it
 * works under strace and gdb-less debuggers alike and needs no clone; its cost: sleeping calls that are
 * never restarted (nanosleep, poll, select, epoll_wait) return EINTR early in the target.
 */
#include "leak_scan.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MT_MAX_STOPPED 65536u
#define MT_ACK_TIMEOUT_NS (200 * 1000000ull)

static _Atomic int g_active;
static _Atomic uint32_t g_generation;
static _Atomic uint32_t g_acks;
/* Allocated once and never unmapped: a late handler from an earlier scan may still write its slot. */
static mt_stopped_thread_t *g_slots;
static pid_t *g_signalled;
static uint32_t g_signalled_count;
static struct sigaction g_old_action;
static bool g_handler_kept;

static long mt_futex(_Atomic uint32_t *word, int op, uint32_t value) {
    return syscall(SYS_futex, word, op, value, NULL, NULL, 0);
}

static void mt_stop_handler(int signal, siginfo_t *info, void *context) {
    (void)signal, (void)info, (void)context;
    int saved_errno = errno;
    /* Generation first, then `active` (the scan clears active before bumping): never waits for a
     * generation that has already passed. */
    uint32_t generation = atomic_load(&g_generation);
    if (!atomic_load(&g_active)) {
        errno = saved_errno;
        return;
    }
    volatile uintptr_t marker = 0; /* its address: this thread's stack pointer, below the signal frame */
    uint32_t slot = atomic_fetch_add(&g_acks, 1);
    if (slot < MT_MAX_STOPPED) {
        g_slots[slot].stack_pointer = (uintptr_t)&marker;
        g_slots[slot].thread_pointer = (uintptr_t)pthread_self();
        g_slots[slot].tid = (pid_t)syscall(SYS_gettid);
        atomic_store_explicit(&g_slots[slot].ready, 1, memory_order_release);
    }
    while (atomic_load(&g_generation) == generation) mt_futex(&g_generation, FUTEX_WAIT_PRIVATE, generation);
    (void)marker;
    errno = saved_errno;
}

static uint64_t mt_monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static bool mt_was_signalled(pid_t tid) {
    for (uint32_t i = 0; i < g_signalled_count; i++)
        if (g_signalled[i] == tid) return true;
    return false;
}

/* Whether the main thread has exited (pthread_exit) while others run on: the thread group's leader then stays a
 * zombie until the last thread exits, listed and signallable, but it never runs a handler again. Raw reads of
 * /proc/self/stat: "pid (comm) S ...", the state after the last ')'. */
static bool mt_leader_is_zombie(void) {
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buffer[1024];
    ssize_t n = read(fd, buffer, sizeof(buffer) - 1);
    close(fd);
    if (n <= 0) return false;
    const char *state = NULL;
    for (ssize_t i = 0; i + 2 < n; i++)
        if (buffer[i] == ')' && buffer[i + 1] == ' ') state = &buffer[i + 2];
    return state != NULL && *state == 'Z';
}

/* Signals every thread not signalled yet; returns how many were new. getdents64, not opendir (which
 * allocates). */
static uint32_t mt_signal_new_threads(pid_t pid, pid_t self) {
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return 0;
    uint32_t added = 0;
    char buffer[4096] __attribute__((aligned(8)));
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buffer, sizeof(buffer));
        if (n <= 0) break;
        for (long at = 0; at < n;) {
            struct {
                uint64_t inode;
                int64_t offset;
                unsigned short length;
                unsigned char type;
                char name[];
            } *entry = (void *)(buffer + at);
            at += entry->length;
            pid_t tid = 0;
            const char *c = entry->name;
            if (*c < '0' || *c > '9') continue;
            for (; *c >= '0' && *c <= '9'; c++) tid = tid * 10 + (*c - '0');
            if (tid == self || mt_was_signalled(tid) || g_signalled_count >= MT_MAX_STOPPED) continue;
            if (tid == pid && mt_leader_is_zombie()) continue; /* main left with pthread_exit: nothing to stop */
            if (syscall(SYS_tgkill, pid, tid, MT_STOP_SIGNAL) != 0) continue; /* exited meanwhile */
            g_signalled[g_signalled_count++] = tid;
            added++;
        }
    }
    close(fd);
    return added;
}

static bool mt_has_acked(pid_t tid, uint32_t acks) {
    for (uint32_t i = 0; i < acks && i < MT_MAX_STOPPED; i++)
        if (atomic_load_explicit(&g_slots[i].ready, memory_order_acquire) && g_slots[i].tid == tid) return true;
    return false;
}

/* Signalled threads that are still alive and have not answered. */
static uint32_t mt_count_missing(pid_t pid) {
    uint32_t acks = atomic_load(&g_acks), missing = 0;
    for (uint32_t i = 0; i < g_signalled_count; i++) {
        if (mt_has_acked(g_signalled[i], acks)) continue;
        if (syscall(SYS_tgkill, pid, g_signalled[i], 0) == 0) missing++;
    }
    return missing;
}

/* Waits until every signalled thread answered or exited, at most until `deadline`. */
static uint32_t mt_wait_for_acks(pid_t pid, uint64_t deadline) {
    for (unsigned round = 0;; round++) {
        if (atomic_load(&g_acks) >= g_signalled_count) return 0;
        /* The full check (one syscall per thread) only now and then: exited threads never ack. */
        if (round % 16 == 15 || mt_monotonic_ns() >= deadline) {
            uint32_t missing = mt_count_missing(pid);
            if (missing == 0 || mt_monotonic_ns() >= deadline) return missing;
        }
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 50 * 1000};
        nanosleep(&pause, NULL);
    }
}

bool mt_stop_world_prepare(void) {
    if (g_slots == NULL) g_slots = mt_scratch_map(MT_MAX_STOPPED * sizeof(mt_stopped_thread_t));
    if (g_signalled == NULL) g_signalled = mt_scratch_map(MT_MAX_STOPPED * sizeof(pid_t));
    return g_slots != NULL && g_signalled != NULL;
}

bool mt_stop_world(mt_world_t *world) {
    *world = (mt_world_t){0};
    if (g_slots == NULL || g_signalled == NULL) return false;
    for (uint32_t i = 0; i < MT_MAX_STOPPED && atomic_load(&g_slots[i].ready); i++) atomic_store(&g_slots[i].ready, 0);
    atomic_store(&g_acks, 0);
    g_signalled_count = 0;
    /* SA_RESTART: reads, futex, mutex and condition waits continue transparently. No SA_ONSTACK: the
     * signal frame (the registers) must land on the thread's own stack. A full mask: nothing nests. */
    struct sigaction ours = {.sa_sigaction = mt_stop_handler, .sa_flags = SA_SIGINFO | SA_RESTART};
    sigfillset(&ours.sa_mask);
    struct sigaction old;
    if (sigaction(MT_STOP_SIGNAL, &ours, &old) != 0) return false;
    /* Kept installed after a scan whose threads did not all answer: their signal is still pending, and
     * the signal's default action would end the process when they unblock it. */
    if (!g_handler_kept) g_old_action = old;
    atomic_store(&g_active, 1);

    pid_t pid = getpid(), self = (pid_t)syscall(SYS_gettid);
    uint64_t deadline = mt_monotonic_ns() + MT_ACK_TIMEOUT_NS;
    uint32_t missing = 0;
    /* Threads that had not taken the signal yet may have created new ones: list again after the
     * answers, until a listing finds nobody new. */
    while (mt_signal_new_threads(pid, self) > 0) missing = mt_wait_for_acks(pid, deadline);
    uint32_t acks = atomic_load(&g_acks);
    if (acks > MT_MAX_STOPPED) acks = MT_MAX_STOPPED;
    /* An ack bumps the counter before its slot is filled: wait the few instructions for the rest. */
    for (uint32_t i = 0; i < acks; i++)
        while (!atomic_load_explicit(&g_slots[i].ready, memory_order_acquire)) sched_yield();
    world->threads = g_slots;
    world->stopped = acks;
    world->missed = missing;
    return true;
}

void mt_resume_world(mt_world_t *world) {
    atomic_store(&g_active, 0);
    atomic_fetch_add(&g_generation, 1);
    mt_futex(&g_generation, FUTEX_WAKE_PRIVATE, INT32_MAX);
    if (world->missed != 0) {
        g_handler_kept = true;
    } else {
        sigaction(MT_STOP_SIGNAL, &g_old_action, NULL);
        g_handler_kept = false;
    }
}

/* ---- keeping the stop signal deliverable ------------------------------------------------------------
 *
 * A thread that blocks the stop signal never answers: it costs the scan its full timeout, and its stack is
 * then scanned whole as a fallback (leak_scan.c). So while the leak scan is on, the signal is taken out of
 * every mask the program sets, as bdwgc's GC_pthread_sigmask does for its suspend signal. The program keeps
 * its own view: each thread remembers whether it asked for the signal blocked, and an old mask handed back
 * says so. Not covered: a new thread believes it inherited its creator's view but starts with the signal
 * unblocked; masks installed by sigsuspend, pselect, ppoll, epoll_pwait and signal handlers' sa_mask. */

static MT_TLS bool t_program_blocks_stop;

static bool mt_filtering_masks(void) { return g_leak_scan && atomic_load(&g_status) == MT_STATUS_TRACING; }

/* Returns what the real call returned (pthread_sigmask: an error number; sigprocmask: -1 and errno). */
static int mt_set_mask(bool per_thread, int how, const sigset_t *set, sigset_t *old) {
    if (real.pthread_sigmask == NULL || real.sigprocmask == NULL) mt_resolve_real_functions();
    bool known_how = how == SIG_BLOCK || how == SIG_UNBLOCK || how == SIG_SETMASK;
    if (!mt_filtering_masks() || !known_how)
        return per_thread ? real.pthread_sigmask(how, set, old) : real.sigprocmask(how, set, old);
    bool blocks = t_program_blocks_stop;
    sigset_t filtered;
    if (set != NULL) {
        bool named = sigismember(set, MT_STOP_SIGNAL) == 1;
        blocks = how == SIG_SETMASK ? named : how == SIG_BLOCK ? blocks || named : blocks && !named;
        if (named && how != SIG_UNBLOCK) {
            filtered = *set;
            sigdelset(&filtered, MT_STOP_SIGNAL);
            set = &filtered;
        }
    }
    bool previously = t_program_blocks_stop;
    int result = per_thread ? real.pthread_sigmask(how, set, old) : real.sigprocmask(how, set, old);
    if (result == 0) {
        if (old != NULL && previously) sigaddset(old, MT_STOP_SIGNAL);
        t_program_blocks_stop = blocks;
    }
    return result;
}

MT_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old) { return mt_set_mask(true, how, set, old); }

MT_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old) { return mt_set_mask(false, how, set, old); }

/* Blocks (SIG_BLOCK) or unblocks the stop signal alone in this thread's real mask. */
static int mt_mask_stop_signal(int how) {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, MT_STOP_SIGNAL);
    return real.pthread_sigmask(how, &stop, NULL);
}

void mt_exec_stop_signal_mask(bool before) {
    if (mt_filtering_masks() && t_program_blocks_stop) mt_mask_stop_signal(before ? SIG_BLOCK : SIG_UNBLOCK);
}

void mt_unblock_stop_signal(void) {
    sigset_t current;
    if (real.pthread_sigmask(SIG_BLOCK, NULL, &current) != 0 || sigismember(&current, MT_STOP_SIGNAL) != 1) return;
    if (mt_mask_stop_signal(SIG_UNBLOCK) == 0) t_program_blocks_stop = true;
}
