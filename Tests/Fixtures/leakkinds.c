/*
 * One leak scenario per run (argv[1]), each with its own block size so tests can tell the blocks apart,
 * for the exit-time leak scan (MALLOCTRACE_LEAK_SCAN=1). Expected kinds, as LeakSanitizer and memcheck
 * define them, next to each scenario. Leaking work happens in noinline helpers, and dead stack slots are
 * overwritten afterwards, so that no stale copy keeps a pointer alive by accident.
 *
 *   global          1001 B in a global                                → reachable
 *   library-bss     1002 B in a static of fixture-libleakroot.so (argv[2], dlopen'ed) → reachable
 *   thread-stack    1003 B only in a local of a thread blocked in read  → reachable
 *   registers       1004 B only in r12 of a thread spinning on a flag  → reachable
 *   tls             1005 B in a live thread's __thread variable,
 *                   1015 B in the main thread's                        → both reachable
 *   static-local    1006 B in a function-local static                  → reachable
 *   interior        1007 B, only (p + 8) kept in a global              → possible
 *   xor             1008 B, only (p ^ key) kept                        → definite
 *   chain           1009 → 1010 → 1011 B list, head pointer dropped    → 1009 definite, 1010 and 1011 indirect
 *   cycle           1012 ⇄ 1013 B, no outside pointer                   → one definite, the other indirect
 *   large           1 MiB (1048576 B, mmap'd by glibc), dropped        → definite
 *   underscore-exit 1014 B dropped, then _exit(0)                      → definite
 *   mmap-root       1016 B only in an anonymous mmap page               → reachable (memcheck; LSan: direct)
 *   exited-thread   1017 B only in a local of a thread that has exited
 *                   and was joined (its stack stays cached by glibc)   → definite (LSan and memcheck too)
 *   blocked-signal  1018 B only in a local of a thread that blocks
 *                   every signal and waits in read                     → reachable, no thread missed
 *   main-pthread-exit 1019 B in a global, 1020 B dropped; main leaves with pthread_exit while a thread
 *                   runs on, and the process ends with it                → 1019 reachable, 1020 definite
 *   altstack-exit   1021, 1022 and 1023 B only in a frame of main's stack; a SIGUSR1 handler on an
 *                   alternate signal stack calls exit                   → reachable
 *   intrusive       1032 B and 1048 B items of a list linked through their last 8 bytes (a global
 *                   points at the first link, the first link at the second): interior pointers
 *                   right where glibc's next chunk header would be       → both possible
 *   kept-interior   1049 B laid out as libstdc++'s copy-on-write string (length 10, capacity 1024,
 *                   refcount) with a global pointing at its characters → reachable (memcheck's default
 *                   stdstring heuristic; LSan counts interior pointers anyway)
 *   sigwait-power   1025 B in a global; the program blocks every signal, raises SIGPWR and takes it
 *                   with sigwait (it must not die of it under the scan) → reachable
 *   clean           everything freed                                   → nothing but runtime blocks
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void fail(const char *message) {
    ssize_t ignored = write(2, message, strlen(message));
    (void)ignored;
    _exit(99);
}

/* Overwrites the dead frames below the caller, where a helper's locals may still hold a pointer. */
__attribute__((noinline)) static void clobber_stack(void) {
    volatile char area[16384];
    for (size_t i = 0; i < sizeof(area); i++) area[i] = 0;
}

static int g_pipe[2];

static void wait_for_ready(int ready_fd) {
    char byte;
    if (read(ready_fd, &byte, 1) != 1) fail("leakkinds: thread did not start\n");
}

static void make_pipes(int ready[2]) {
    if (pipe(g_pipe) != 0 || pipe(ready) != 0) fail("leakkinds: pipe failed\n");
}

/* ---- global, static-local, interior, xor ---------------------------------------------------------- */

void *g_global;
uintptr_t g_interior;
uintptr_t g_xor;

__attribute__((noinline)) static void leak_global(void) { g_global = malloc(1001); }

__attribute__((noinline)) static void leak_static_local(void) {
    static void *kept;
    kept = malloc(1006);
    __asm__ volatile("" : : "m"(kept)); /* a use, for the compiler's unused-variable check */
}

__attribute__((noinline)) static void leak_interior(void) { g_interior = (uintptr_t)malloc(1007) + 8; }

__attribute__((noinline)) static void leak_xor(void) { g_xor = (uintptr_t)malloc(1008) ^ 0x5a5a5a5a5a5a5a5aull; }

/* ---- main-pthread-exit, altstack-exit, intrusive -------------------------------------------------- */

__attribute__((noinline)) static void leak_before_main_leaves(void) {
    g_global = malloc(1019);
    volatile char *dropped = malloc(1020);
    dropped[0] = 1;
}

static void *outliving_main(void *unused) {
    (void)unused;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000}; /* main has left by then */
    nanosleep(&pause, NULL);
    return NULL;
}

static char g_alternate_stack[64 * 1024];

static void exit_on_alternate_stack(int signal) {
    (void)signal;
    exit(0);
}

/* One call site per block: the tests tell blocks apart by their sites' sizes. */
__attribute__((noinline)) static void fill_held(void *volatile *held) {
    held[0] = malloc(1021);
    held[1] = malloc(1022);
    held[2] = malloc(1023);
}

/* No copy in a register may reach the signal frame that the kernel saves on the alternate stack (a root). */
__attribute__((noinline)) static void clobber_scratch_registers(void) {
#if defined(__x86_64__)
    __asm__ volatile("xor %%eax, %%eax; xor %%ecx, %%ecx; xor %%edx, %%edx; xor %%esi, %%esi; xor %%edi, %%edi;"
                     "xor %%r8d, %%r8d; xor %%r9d, %%r9d; xor %%r10d, %%r10d; xor %%r11d, %%r11d"
                     :
                     :
                     : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11");
#endif
}

__attribute__((noinline)) static void exit_from_alternate_stack(void) {
    stack_t alternate = {.ss_sp = g_alternate_stack, .ss_size = sizeof(g_alternate_stack)};
    struct sigaction action = {.sa_handler = exit_on_alternate_stack, .sa_flags = SA_ONSTACK};
    if (sigaltstack(&alternate, NULL) != 0 || sigaction(SIGUSR1, &action, NULL) != 0)
        fail("leakkinds: sigaltstack failed\n");
    void *volatile held[3]; /* only in this frame, on the main stack */
    fill_held(held);
    clobber_stack();
    clobber_scratch_registers();
    raise(SIGUSR1);
    for (int i = 0; i < 3; i++) free(held[i]); /* not reached */
}

/* A link is the last member of its item and points at the next item's link (container_of style). */
uintptr_t g_first_link;

__attribute__((noinline)) static void link_intrusive_list(void) {
    char *first = malloc(1032), *second = malloc(1048);
    memset(first, 0, 1032);
    memset(second, 0, 1048);
    *(uintptr_t *)(first + 1024) = (uintptr_t)(second + 1040);
    g_first_link = (uintptr_t)(first + 1024);
}

uintptr_t g_string_characters;

__attribute__((noinline)) static void keep_interior_pointers(void) {
    uint64_t *string = malloc(1049);
    memset(string, 'x', 1049);
    string[0] = 10;
    string[1] = 1024;
    string[2] = 0;
    g_string_characters = (uintptr_t)(string + 3);
}

__attribute__((noinline)) static void wait_for_power_signal(void) {
    g_global = malloc(1025);
    sigset_t all, power;
    sigfillset(&all);
    sigemptyset(&power);
    sigaddset(&power, SIGPWR);
    if (sigprocmask(SIG_BLOCK, &all, NULL) != 0) fail("leakkinds: sigprocmask failed\n");
    raise(SIGPWR);
    int taken = 0;
    if (sigwait(&power, &taken) != 0 || taken != SIGPWR) fail("leakkinds: sigwait did not take SIGPWR\n");
}

/* ---- library-bss --------------------------------------------------------------------------------- */

__attribute__((noinline)) static void leak_library_bss(const char *path) {
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) fail("leakkinds: dlopen failed\n");
    void (*keep)(void *) = (void (*)(void *))dlsym(library, "leakroot_keep");
    if (keep == NULL) fail("leakkinds: dlsym failed\n");
    keep(malloc(1002));
}

/* ---- thread-stack, registers, tls ---------------------------------------------------------------- */

static int g_ready[2];

static void *blocked_holding_local(void *unused) {
    (void)unused;
    volatile uintptr_t local = (uintptr_t)malloc(1003);
    clobber_stack();
    if (write(g_ready[1], "r", 1) != 1) fail("leakkinds: write failed\n");
    char byte;
    ssize_t ignored = read(g_pipe[0], &byte, 1); /* blocks until the process ends */
    (void)ignored;
    return (void *)local;
}

static volatile int g_stop_spinning;

__attribute__((noinline)) static void spin_holding_r12(void) {
    volatile uintptr_t slot = (uintptr_t)malloc(1004);
    __asm__ volatile("mov %0, %%r12" : : "m"(slot) : "r12");
    slot = 0;
    clobber_stack();
    if (write(g_ready[1], "r", 1) != 1) fail("leakkinds: write failed\n");
    /* From here the block's address is only in r12 (the loop is one asm statement: nothing spills it). */
    __asm__ volatile("1: pause\n\tcmpl $0, %0\n\tje 1b" : : "m"(g_stop_spinning) : "memory");
}

static void *spinning_thread(void *unused) {
    (void)unused;
    spin_holding_r12();
    return NULL;
}

static __thread void *t_kept;

static void *blocked_holding_tls(void *unused) {
    (void)unused;
    t_kept = malloc(1005);
    clobber_stack();
    if (write(g_ready[1], "r", 1) != 1) fail("leakkinds: write failed\n");
    char byte;
    ssize_t ignored = read(g_pipe[0], &byte, 1);
    (void)ignored;
    return NULL;
}

static void *exiting_with_local(void *unused) {
    (void)unused;
    volatile uintptr_t local = (uintptr_t)malloc(1017);
    (void)local;
    return NULL; /* the pointer stays behind in the dead frame, inside the cached stack */
}

static void *blocking_all_signals(void *unused) {
    (void)unused;
    sigset_t all;
    sigfillset(&all);
    if (pthread_sigmask(SIG_BLOCK, &all, NULL) != 0) fail("leakkinds: pthread_sigmask failed\n");
    volatile uintptr_t local = (uintptr_t)malloc(1018);
    clobber_stack();
    if (write(g_ready[1], "r", 1) != 1) fail("leakkinds: write failed\n");
    char byte;
    ssize_t ignored = read(g_pipe[0], &byte, 1);
    (void)ignored;
    return (void *)local;
}

static void start_thread(void *(*body)(void *)) {
    make_pipes(g_ready);
    pthread_t thread;
    if (pthread_create(&thread, NULL, body, NULL) != 0) fail("leakkinds: pthread_create failed\n");
    wait_for_ready(g_ready[0]);
}

/* ---- chain, cycle, large, underscore-exit, clean --------------------------------------------------- */

__attribute__((noinline)) static void leak_chain(void) {
    void **head = malloc(1009), **second = malloc(1010), **third = malloc(1011);
    memset(head, 0, 1009);
    memset(second, 0, 1010);
    memset(third, 0, 1011);
    head[0] = second;
    second[0] = third;
}

__attribute__((noinline)) static void leak_cycle(void) {
    void **a = malloc(1012), **b = malloc(1013);
    memset(a, 0, 1012);
    memset(b, 0, 1013);
    a[0] = b;
    b[0] = a;
}

__attribute__((noinline)) static void leak_large(void) {
    volatile char *block = malloc(1048576);
    block[0] = 1;
}

__attribute__((noinline)) static void leak_dropped(void) {
    volatile char *block = malloc(1014);
    block[0] = 1;
}

__attribute__((noinline)) static void leak_into_mmap_page(void) {
    void **page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) fail("leakkinds: mmap failed\n");
    page[7] = malloc(1016);
}

__attribute__((noinline)) static void run_exiting_thread(void) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, exiting_with_local, NULL) != 0) fail("leakkinds: pthread_create failed\n");
    if (pthread_join(thread, NULL) != 0) fail("leakkinds: pthread_join failed\n");
}

__attribute__((noinline)) static void allocate_and_free(void) {
    for (int i = 0; i < 16; i++) free(malloc(100 + (size_t)i));
    void *grown = realloc(malloc(10), 2000);
    free(grown);
}

__attribute__((noinline)) static void leak_then_underscore_exit(void) {
    leak_dropped();
    clobber_stack();
    _exit(0);
}

__attribute__((noinline)) static void leave_main_with_pthread_exit(void) {
    leak_before_main_leaves();
    pthread_t thread;
    if (pthread_create(&thread, NULL, outliving_main, NULL) != 0) fail("leakkinds: pthread_create failed\n");
    clobber_stack();
    pthread_exit(NULL);
}

__attribute__((noinline)) static void keep_in_main_tls(void) { t_kept = malloc(1015); }

/* Each scenario (but library-bss, which takes an argument): a thread to start first, then what main does. */
static const struct {
    const char *name;
    void *(*thread)(void *);
    void (*run)(void);
} g_scenarios[] = {
    {"global", NULL, leak_global},
    {"thread-stack", blocked_holding_local, NULL},
    {"registers", spinning_thread, NULL},
    {"tls", blocked_holding_tls, keep_in_main_tls},
    {"static-local", NULL, leak_static_local},
    {"interior", NULL, leak_interior},
    {"xor", NULL, leak_xor},
    {"chain", NULL, leak_chain},
    {"cycle", NULL, leak_cycle},
    {"large", NULL, leak_large},
    {"underscore-exit", NULL, leak_then_underscore_exit},
    {"mmap-root", NULL, leak_into_mmap_page},
    {"exited-thread", NULL, run_exiting_thread},
    {"blocked-signal", blocking_all_signals, NULL},
    {"main-pthread-exit", NULL, leave_main_with_pthread_exit},
    {"altstack-exit", NULL, exit_from_alternate_stack},
    {"intrusive", NULL, link_intrusive_list},
    {"kept-interior", NULL, keep_interior_pointers},
    {"sigwait-power", NULL, wait_for_power_signal},
    {"clean", NULL, allocate_and_free},
};

int main(int argc, char **argv) {
    const char *scenario = argc > 1 ? argv[1] : "";
    if (strcmp(scenario, "library-bss") == 0) {
        if (argc < 3) fail("usage: fixture-leakkinds library-bss LIBRARY\n");
        leak_library_bss(argv[2]);
        clobber_stack();
        return 0;
    }
    for (size_t i = 0; i < sizeof(g_scenarios) / sizeof(g_scenarios[0]); i++) {
        if (strcmp(scenario, g_scenarios[i].name) != 0) continue;
        if (g_scenarios[i].thread != NULL) start_thread(g_scenarios[i].thread);
        if (g_scenarios[i].run != NULL) g_scenarios[i].run();
        clobber_stack();
        return 0;
    }
    fail("usage: fixture-leakkinds SCENARIO (see the comment at the top)\n");
    return 2;
}
