/*
 * Programs that do what real programs do and tracers get wrong. Usage: fixture-hostile SCENARIO [ARGS].
 * Every counted allocation has a size of its own (4000-4999 B), so tests count them among whatever libc
 * allocates besides; the numbers each scenario must give are written next to it. Nothing goes through
 * stdio; a scenario prints at most one line with write() and exits 0 unless a self-check failed.
 *
 *   cancel          8 threads malloc/free 4001 B in a loop, cancellation only at pthread_testcancel (every
 *                   20000 pairs: the tracer grows its file meanwhile); a cleanup handler allocates and frees
 *                   4002 B; all are cancelled after 3 ms, 10 rounds.
 *                   Prints "calls N" (its own count of 4001 + 4002 B mallocs; frees are the same number).
 *   longjmp         a SIGSEGV handler siglongjmps out of a malloc whose tracing faulted (the program's
 *                   .eh_frame_hdr made unreadable for a moment), then 1000 x malloc/free 4011 B.
 *   atfork          (libatfork's handlers were registered before the tracer's) main registers handlers of
 *                   its own (10 x 4104 B prepare, 10 x 4105 B parent, 10 x 4106 B child), forks twice; each
 *                   child _exits 0. Parent: 20 x 4101, 20 x 4102, 20 x 4104, 20 x 4105; each child: 10 x 4103,
 *                   10 x 4106.
 *   exec-fails      4 threads make 20000 malloc/free pairs of 4021 B each while main execs a missing file
 *                   200 times: 80000 allocations, 80000 frees.
 *   preinit         a .preinit_array function mallocs 4031 B (before libc has set environ); main then
 *                   prints "LD_PRELOAD=... MALLOCTRACE_OUTPUT=..." as its environment has them ("-" if unset).
 *   quick-exit      an at_quick_exit handler mallocs 4041 B; main mallocs 4042 B and quick_exit(3)s.
 *   chdir-fork      chdir("/"), then fork: the child mallocs 4051 B and exits 0; the parent waits.
 *   closed-fds FILE (run with 0-2 closed) opens FILE, FILE.1, FILE.2, writes "fd N\n" into each naming
 *                   its descriptor, then "stdout\n" to fd 1: untraced the files get 0, 1, 2.
 *   grow            50000 x malloc 4061 B, kept (a trace of a few MiB).
 *   mask-exec SET PROGRAM ARGS...  blocks SIGUSR1 and SIGTERM (SET "some") or every signal (SET "all"),
 *                   then execs PROGRAM: what the exec'd image sees is what the caller blocked.
 *   print-mask      prints the "SigBlk:" line of /proc/self/status (the signals blocked in this thread).
 *   fexec PROGRAM   mallocs 4081 B (kept), then replaces itself with PROGRAM through fexecve.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

extern int atfork_library_loaded(void);
static void *volatile g_sink;

static void say(const char *text) {
    ssize_t ignored = write(1, text, strlen(text));
    (void)ignored;
}

static void put_number(char *out, unsigned long value) {
    char digits[24];
    int n = 0;
    do digits[n++] = (char)('0' + value % 10);
    while ((value /= 10) != 0);
    while (n > 0) *out++ = digits[--n];
    *out = '\0';
}

/* ---- cancel ---------------------------------------------------------------------------------- */

static _Atomic unsigned long g_calls;

static void cleanup_allocates(void *unused) {
    (void)unused;
    void *block = malloc(4002);
    g_calls++;
    free(block);
}

static void *cancellable_worker(void *unused) {
    (void)unused;
    pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, NULL);
    pthread_cleanup_push(cleanup_allocates, NULL);
    for (;;) {
        for (int i = 0; i < 20000; i++) {
            void *block = malloc(4001);
            g_calls++;
            free(block);
        }
        pthread_testcancel();
    }
    pthread_cleanup_pop(0);
    return NULL;
}

static int scenario_cancel(void) {
    for (int round = 0; round < 10; round++) {
        pthread_t threads[8];
        for (int i = 0; i < 8; i++)
            if (pthread_create(&threads[i], NULL, cancellable_worker, NULL) != 0) return 2;
        struct timespec pause = {0, 3 * 1000 * 1000};
        nanosleep(&pause, NULL);
        for (int i = 0; i < 8; i++) pthread_cancel(threads[i]);
        for (int i = 0; i < 8; i++) pthread_join(threads[i], NULL);
    }
    char line[64] = "calls ";
    put_number(line + 6, g_calls);
    strcat(line, "\n");
    say(line);
    return 0;
}

/* ---- longjmp --------------------------------------------------------------------------------- */

static sigjmp_buf g_escape;
/* Two pages of read-only data between the code and .eh_frame_hdr (which follows .rodata), so the page
 * made unreadable holds no code. */
__attribute__((aligned(4096), used)) static const char g_rodata_pad[8192] = {1};
static uintptr_t g_protected_page;

static int find_eh_frame_header(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    (void)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        if (info->dlpi_phdr[i].p_type != PT_GNU_EH_FRAME) continue;
        g_protected_page = (info->dlpi_addr + info->dlpi_phdr[i].p_vaddr) & ~(uintptr_t)4095;
        if (g_protected_page < (uintptr_t)g_rodata_pad + sizeof(g_rodata_pad)) g_protected_page = 0;
        return 1;
    }
    return 1; /* the first entry is the program itself */
}

static void on_fault(int signal) {
    (void)signal;
    mprotect((void *)g_protected_page, 4096, PROT_READ);
    siglongjmp(g_escape, 1);
}

/* A call site the tracer has never unwound through: its unwinder must read .eh_frame_hdr. */
NOINLINE static void allocate_from_a_new_site(void) { g_sink = malloc(4010); }

static int scenario_longjmp(void) {
    dl_iterate_phdr(find_eh_frame_header, NULL);
    if (g_protected_page == 0) return 2;
    struct sigaction action = {.sa_handler = on_fault};
    sigaction(SIGSEGV, &action, NULL);
    if (sigsetjmp(g_escape, 1) == 0) {
        mprotect((void *)g_protected_page, 4096, PROT_NONE);
        allocate_from_a_new_site();
        mprotect((void *)g_protected_page, 4096, PROT_READ);
    }
    for (int i = 0; i < 1000; i++) {
        void *block = malloc(4011);
        g_sink = block;
        free(block);
    }
    return 0;
}

/* ---- atfork ---------------------------------------------------------------------------------- */

static void allocate_ten(size_t size) {
    for (int i = 0; i < 10; i++) g_sink = malloc(size);
}
static void late_prepare(void) { allocate_ten(4104); }
static void late_parent(void) { allocate_ten(4105); }
static void late_child(void) { allocate_ten(4106); }

static int scenario_atfork(void) {
    if (!atfork_library_loaded()) return 2;
    pthread_atfork(late_prepare, late_parent, late_child);
    for (int i = 0; i < 2; i++) {
        pid_t child = fork();
        if (child < 0) return 3;
        if (child == 0) _exit(0);
        int status;
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 4;
    }
    return 0;
}

/* ---- exec-fails ------------------------------------------------------------------------------ */

static void *pairs_worker(void *unused) {
    (void)unused;
    for (int i = 0; i < 20000; i++) {
        void *block = malloc(4021);
        g_sink = block;
        free(block);
    }
    return NULL;
}

static int scenario_exec_fails(void) {
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&threads[i], NULL, pairs_worker, NULL) != 0) return 2;
    char *argv[] = {"missing", NULL};
    for (int i = 0; i < 200; i++)
        if (execv("/nonexistent/missing-program", argv) != -1 || errno != ENOENT) return 3;
    for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
    return 0;
}

/* ---- preinit --------------------------------------------------------------------------------- */

static void allocate_before_libc(int argc, char **argv, char **envp) {
    (void)envp;
    if (argc > 1 && strcmp(argv[1], "preinit") == 0) g_sink = malloc(4031);
}
__attribute__((section(".preinit_array"), used)) static void (*g_preinit)(int, char **, char **) = allocate_before_libc;

static int scenario_preinit(void) {
    const char *names[] = {"LD_PRELOAD", "MALLOCTRACE_OUTPUT"};
    char line[8192] = "";
    for (int i = 0; i < 2; i++) {
        const char *value = getenv(names[i]);
        if (strlen(line) + strlen(names[i]) + (value ? strlen(value) : 1) + 4 > sizeof(line)) return 2;
        strcat(line, names[i]);
        strcat(line, "=");
        strcat(line, value ? value : "-");
        strcat(line, i == 0 ? " " : "\n");
    }
    say(line);
    return 0;
}

/* ---- quick-exit ------------------------------------------------------------------------------ */

static void quick_exit_handler(void) { g_sink = malloc(4041); }

static int scenario_quick_exit(void) {
    at_quick_exit(quick_exit_handler);
    g_sink = malloc(4042);
    quick_exit(3);
}

/* ---- chdir-fork ------------------------------------------------------------------------------ */

static int scenario_chdir_fork(void) {
    if (chdir("/") != 0) return 2;
    pid_t child = fork();
    if (child < 0) return 3;
    if (child == 0) {
        g_sink = malloc(4051);
        exit(0);
    }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 4;
    return 0;
}

/* ---- closed-fds ------------------------------------------------------------------------------ */

static int scenario_closed_fds(const char *path) {
    char name[4096];
    for (int i = 0; i < 3; i++) {
        if (strlen(path) + 3 > sizeof(name)) return 2;
        strcpy(name, path);
        if (i > 0) strcat(name, i == 1 ? ".1" : ".2");
        int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) return 3;
        char line[32] = "fd ";
        put_number(line + 3, (unsigned long)fd);
        strcat(line, "\n");
        if (write(fd, line, strlen(line)) < 0) return 4;
    }
    g_sink = malloc(4071);
    say("stdout\n");
    return 0;
}

/* ---- grow ------------------------------------------------------------------------------------ */

static int scenario_grow(void) {
    for (int i = 0; i < 50000; i++) g_sink = malloc(4061);
    return 0;
}

/* ---- mask-exec, print-mask ------------------------------------------------------------------------ */

static int scenario_mask_exec(const char *set, char **program) {
    sigset_t blocked;
    sigemptyset(&blocked);
    if (strcmp(set, "all") == 0) {
        sigfillset(&blocked);
    } else {
        sigaddset(&blocked, SIGUSR1);
        sigaddset(&blocked, SIGTERM);
    }
    if (sigprocmask(SIG_BLOCK, &blocked, NULL) != 0) return 2;
    execv(program[0], program);
    return 3;
}

static int scenario_print_mask(void) {
    char status[8192];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 2;
    ssize_t length = read(fd, status, sizeof(status) - 1);
    close(fd);
    if (length <= 0) return 3;
    status[length] = '\0';
    const char *line = strstr(status, "SigBlk:");
    if (line == NULL) return 4;
    char *end = strchr(line, '\n');
    if (end != NULL) end[1] = '\0';
    say(line);
    return 0;
}

static int scenario_fexec(char **program) {
    g_sink = malloc(4081);
    int fd = open(program[0], O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 2;
    extern char **environ;
    fexecve(fd, program, environ);
    return 3;
}

int main(int argc, char **argv) {
    const char *scenario = argc > 1 ? argv[1] : "";
    if (strcmp(scenario, "cancel") == 0) return scenario_cancel();
    if (strcmp(scenario, "longjmp") == 0) return scenario_longjmp();
    if (strcmp(scenario, "atfork") == 0) return scenario_atfork();
    if (strcmp(scenario, "exec-fails") == 0) return scenario_exec_fails();
    if (strcmp(scenario, "preinit") == 0) return scenario_preinit();
    if (strcmp(scenario, "quick-exit") == 0) return scenario_quick_exit();
    if (strcmp(scenario, "chdir-fork") == 0) return scenario_chdir_fork();
    if (strcmp(scenario, "closed-fds") == 0 && argc > 2) return scenario_closed_fds(argv[2]);
    if (strcmp(scenario, "grow") == 0) return scenario_grow();
    if (strcmp(scenario, "mask-exec") == 0 && argc > 3) return scenario_mask_exec(argv[2], argv + 3);
    if (strcmp(scenario, "print-mask") == 0) return scenario_print_mask();
    if (strcmp(scenario, "fexec") == 0 && argc > 2) return scenario_fexec(argv + 2);
    return 1;
}
