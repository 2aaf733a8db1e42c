/* A shared library for fixture-dlclose (lib*.c files are built as fixture-lib*.so): leaks count x 40 B. */
#include <stdlib.h>

void *volatile g_library_sink;

__attribute__((noinline)) void leak_in_library(int count) {
    for (int i = 0; i < count; i++) g_library_sink = malloc(40);
}
