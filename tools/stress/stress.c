/*
 * Hostile programs for tools/stress.sh. Usage: stress SCENARIO [ARGS]. Every allocation the program counts
 * goes through counted_malloc() (a function of its own, so that `report --include counted_malloc` selects
 * exactly these); each scenario prints "calls N" with write() (N: its own count) and exits 0 unless a
 * self-check failed. The pid goes to stderr ("pid N"), for finding the trace of plain LD_PRELOAD runs.
 *
 *   sigalrm      a 50 us interval timer interrupts 200000 malloc/free pairs
 *   fork-exec    4 threads allocate while each forks and execs /bin/true 20 times
 *   clone        raw clone() (no CLONE_VM, no atfork handlers) children allocate and _exit; the parent counts
 *   vfork        vfork + exec /bin/true 100 times between allocations
 *   spawn        posix_spawn /bin/true 100 times between allocations
 *   closefrom    closes every descriptor above 2 (the tracer's trace file among them), then allocates
 *   redirect     dup2()s /dev/null over 1 and 2 mid-run (the result goes to fd 3 when open, else nowhere)
 *   fsize        RLIMIT_FSIZE 64 KiB, then 100000 allocations (the trace grows past the limit)
 *   nofile       RLIMIT_NOFILE at the descriptors open now, then allocations and a fork
 *   as           RLIMIT_AS 1 GiB: 200 x 1 MiB kept, one 2 GiB malloc that fails, 1000 pairs
 *   dlopen LIB   dlopen/dlclose LIB 300 times, allocating in between
 *   recursion    a 100000-frame recursion (in a thread with a 256 MiB stack) allocates at the bottom
 *   coroutines   two swapcontext coroutines on malloc'd stacks allocate and switch 20000 times
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

extern char **environ;
static _Atomic unsigned long g_calls;
static void *volatile g_sink;
static int g_out = 1;

static __attribute__((noinline)) void *counted_malloc(size_t size) {
    g_calls++;
    void *block = malloc(size);
    g_sink = block;
    return block;
}

static void put(int fd, const char *label, unsigned long value) {
    char text[64], digits[24];
    size_t n = strlen(label), d = 0;
    memcpy(text, label, n);
    do digits[d++] = (char)('0' + value % 10);
    while ((value /= 10) != 0);
    while (d > 0) text[n++] = digits[--d];
    text[n++] = '\n';
    ssize_t ignored = write(fd, text, n);
    (void)ignored;
}

static void pairs(int count, size_t size) {
    for (int i = 0; i < count; i++) free(counted_malloc(size + (size_t)(i & 7)));
}

static void run_true(void) {
    char *args[] = {"/bin/true", NULL};
    execve("/bin/true", args, environ);
    _exit(127);
}

static void on_alarm(int signal_number) { (void)signal_number; }

static int sigalrm(void) {
    struct sigaction action = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
    sigaction(SIGALRM, &action, NULL);
    struct itimerval timer = {.it_interval = {0, 50}, .it_value = {0, 50}};
    setitimer(ITIMER_REAL, &timer, NULL);
    pairs(200000, 4100);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    return 0;
}

static void *forking_worker(void *unused) {
    (void)unused;
    for (int i = 0; i < 20; i++) {
        pairs(500, 4200);
        pid_t child = fork();
        if (child == 0) run_true();
        int status = 0;
        if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            _exit(10);
    }
    return NULL;
}

static int fork_exec(void) {
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) pthread_create(&threads[i], NULL, forking_worker, NULL);
    for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
    return 0;
}

static __attribute__((noinline)) void child_allocations(void) {
    for (int i = 0; i < 100; i++) free(malloc(4300));
}

static int raw_clone(void) {
    for (int i = 0; i < 20; i++) {
        pairs(100, 4310);
        long child = syscall(SYS_clone, (unsigned long)SIGCHLD, NULL, NULL, NULL, NULL);
        if (child == 0) {
            child_allocations();
            syscall(SYS_exit_group, 0);
        }
        int status = 0;
        if (child < 0 || waitpid((pid_t)child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 11;
    }
    return 0;
}

static int do_vfork(void) {
    for (int i = 0; i < 100; i++) {
        pairs(50, 4400);
        pid_t child = vfork();
        if (child == 0) run_true();
        int status = 0;
        if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 12;
    }
    return 0;
}

static int spawn(void) {
    for (int i = 0; i < 100; i++) {
        pairs(50, 4500);
        char *args[] = {"/bin/true", NULL};
        pid_t child;
        if (posix_spawn(&child, "/bin/true", NULL, NULL, args, environ) != 0) return 13;
        int status = 0;
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 13;
    }
    return 0;
}

static int closefrom_all(void) {
    pairs(1000, 4600);
    for (int fd = 3; fd < 65536; fd++) close(fd);
    pairs(100000, 4610);
    return 0;
}

static int redirect(void) {
    pairs(1000, 4700);
    g_out = dup(1);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    close(null);
    pairs(50000, 4710);
    return 0;
}

static int fsize(void) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit = {65536, 65536};
    setrlimit(RLIMIT_FSIZE, &limit);
    pairs(100000, 4800);
    return 0;
}

static int nofile(void) {
    int highest = dup(0);
    close(highest);
    struct rlimit limit = {(rlim_t)highest, (rlim_t)highest};
    setrlimit(RLIMIT_NOFILE, &limit);
    pairs(50000, 4900);
    pid_t child = fork();
    if (child == 0) _exit(0);
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child) return 14;
    pairs(1000, 4910);
    return 0;
}

static int address_space(void) {
    /* The tracer's own mappings count against the limit too (about 11 MiB here), so the program stays well
     * below it: 200 x 1 MiB kept, then one 2 GiB request that must fail in every mode. */
    struct rlimit limit = {(rlim_t)1 << 30, (rlim_t)1 << 30};
    setrlimit(RLIMIT_AS, &limit);
    void *kept[200];
    for (int i = 0; i < 200; i++)
        if ((kept[i] = counted_malloc(1 << 20)) == NULL) return 15;
    if (counted_malloc((size_t)2 << 30) != NULL) return 15;
    for (int i = 0; i < 200; i++) free(kept[i]);
    pairs(1000, 5000);
    return 0;
}

static int dlopen_churn(const char *library) {
    for (int i = 0; i < 300; i++) {
        void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
        if (handle == NULL) return 16;
        pairs(10, 5100);
        dlclose(handle);
    }
    return 0;
}

static __attribute__((noinline)) int recurse(int depth) {
    volatile char frame[16];
    frame[0] = (char)depth;
    if (depth == 0) {
        pairs(100, 5200);
        return frame[0];
    }
    return recurse(depth - 1) + frame[0];
}

static void *deep(void *unused) {
    (void)unused;
    g_sink = (void *)(long)recurse(100000);
    return NULL;
}

static int recursion(void) {
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setstacksize(&attributes, 256u << 20);
    pthread_t thread;
    if (pthread_create(&thread, &attributes, deep, NULL) != 0) return 17;
    pthread_join(thread, NULL);
    return 0;
}

static ucontext_t g_main_context, g_contexts[2];

static void coroutine(int index) {
    for (int i = 0; i < 10000; i++) {
        free(counted_malloc(5300 + (size_t)index));
        swapcontext(&g_contexts[index], index == 0 ? &g_contexts[1] : &g_contexts[0]);
    }
}

static int coroutines(void) {
    for (int i = 0; i < 2; i++) {
        getcontext(&g_contexts[i]);
        g_contexts[i].uc_stack.ss_size = 256 * 1024;
        g_contexts[i].uc_stack.ss_sp = malloc(g_contexts[i].uc_stack.ss_size);
        g_contexts[i].uc_link = &g_main_context;
        makecontext(&g_contexts[i], (void (*)(void))coroutine, 1, i);
    }
    swapcontext(&g_main_context, &g_contexts[0]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    put(2, "pid ", (unsigned long)getpid());
    const char *scenario = argv[1];
    int status = 2;
    if (strcmp(scenario, "sigalrm") == 0)
        status = sigalrm();
    else if (strcmp(scenario, "fork-exec") == 0)
        status = fork_exec();
    else if (strcmp(scenario, "clone") == 0)
        status = raw_clone();
    else if (strcmp(scenario, "vfork") == 0)
        status = do_vfork();
    else if (strcmp(scenario, "spawn") == 0)
        status = spawn();
    else if (strcmp(scenario, "closefrom") == 0)
        status = closefrom_all();
    else if (strcmp(scenario, "redirect") == 0)
        status = redirect();
    else if (strcmp(scenario, "fsize") == 0)
        status = fsize();
    else if (strcmp(scenario, "nofile") == 0)
        status = nofile();
    else if (strcmp(scenario, "as") == 0)
        status = address_space();
    else if (strcmp(scenario, "dlopen") == 0 && argc > 2)
        status = dlopen_churn(argv[2]);
    else if (strcmp(scenario, "recursion") == 0)
        status = recursion();
    else if (strcmp(scenario, "coroutines") == 0)
        status = coroutines();
    if (status == 0) put(g_out, "calls ", g_calls);
    return status;
}
