/*
 * A shared library that allocates, loaded with dlopen by fixture-semantics. The build plugin compiles
 * every Tests/Fixtures/libNAME.c into fixture-libNAME.so next to the fixture programs.
 * Its constructor allocates 40 B and its destructor frees them again; library_allocate is the leak site
 * the integration test looks for in the trace.
 */
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

static char *g_from_constructor;

__attribute__((constructor)) static void library_loaded(void) {
    g_from_constructor = malloc(40);
    if (g_from_constructor != NULL) strcpy(g_from_constructor, "allocated by the library's constructor");
}

__attribute__((destructor)) static void library_unloaded(void) { free(g_from_constructor); }

EXPORT int library_self_check(void) {
    return g_from_constructor != NULL && strcmp(g_from_constructor, "allocated by the library's constructor") == 0;
}

EXPORT __attribute__((noinline)) void *library_allocate(size_t size) { return malloc(size); }
