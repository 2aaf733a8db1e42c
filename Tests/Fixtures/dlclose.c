/*
 * Loads the library named by argv[1] (fixture-libleaky.so), calls its leak_in_library() (3 x 40 B that leak)
 * and unloads it with dlclose before exiting: reports must still name the function in the unloaded library.
 */
#include <dlfcn.h>
#include <string.h>
#include <unistd.h>

static void fail(const char *message) {
    ssize_t ignored = write(2, message, strlen(message));
    (void)ignored;
    _exit(99);
}

int main(int argc, char **argv) {
    if (argc < 2) fail("usage: fixture-dlclose LIBRARY\n");
    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) fail("dlopen failed\n");
    void (*leak)(int) = (void (*)(int))dlsym(library, "leak_in_library");
    if (leak == NULL) fail("dlsym failed\n");
    leak(3);
    if (dlclose(library) != 0) fail("dlclose failed\n");
    return 0;
}
