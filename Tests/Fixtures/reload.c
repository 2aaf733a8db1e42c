/*
 * dlclose, then a dlopen that lands at the same address: loads argv[1] (fixture-libreloada.so), calls its
 * reload_alloc_a(100) (100 x 40 B, freed), unloads it, loads argv[2] (fixture-libreloadb.so, same layout)
 * and calls its reload_alloc_b(100) (100 x 48 B, freed), unloads it. Both calls go through the same call
 * sites here (one loop), so the two captured stacks have the same return addresses. Exits 3 when the second library
 * was not mapped at the first one's address, 4 when its function sits at another offset: the scenario
 * did not happen, and a test that passed would prove nothing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <unistd.h>

static void fail(const char *message, int status) {
    ssize_t ignored = write(2, message, strlen(message));
    (void)ignored;
    _exit(status);
}

/* The one call site of both functions. */
__attribute__((noinline)) static void call(void (*function)(int), int count) { function(count); }

static void *load(const char *path, const char *symbol, void **base, void **address) {
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) fail("dlopen failed\n", 99);
    *address = dlsym(library, symbol);
    if (*address == NULL) fail("dlsym failed\n", 99);
    Dl_info info;
    if (dladdr(*address, &info) == 0) fail("dladdr failed\n", 99);
    *base = info.dli_fbase;
    return library;
}

int main(int argc, char **argv) {
    if (argc < 3) fail("usage: fixture-reload LIBRARY-A LIBRARY-B\n", 99);
    static const char *const symbols[2] = {"reload_alloc_a", "reload_alloc_b"};
    void *bases[2], *functions[2];
    /* One loop, so that every return address of the two allocating stacks is the same. */
    for (int round = 0; round < 2; round++) {
        void *library = load(argv[1 + round], symbols[round], &bases[round], &functions[round]);
        if (round == 1 && bases[1] != bases[0])
            fail("the second library was not loaded at the first one's address\n", 3);
        if (round == 1 && (char *)functions[1] - (char *)bases[1] != (char *)functions[0] - (char *)bases[0])
            fail("the two functions are at different offsets\n", 4);
        call((void (*)(int))functions[round], 100);
        if (dlclose(library) != 0) fail("dlclose failed\n", 99);
    }
    return 0;
}
