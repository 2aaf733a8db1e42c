/*
 * A shared library that fixture-hostile links at build time (not dlopen): its constructor runs before
 * the tracer's own and registers fork handlers that allocate, as libraries with per-process state do.
 * Each handler makes 10 mallocs of 4101 B (prepare), 4102 B (parent) or 4103 B (child), all kept.
 */
#include <pthread.h>
#include <stdlib.h>

#define EXPORT __attribute__((visibility("default")))

static void *volatile g_sink;

static void allocate_ten(size_t size) {
    for (int i = 0; i < 10; i++) g_sink = malloc(size);
}

static void before_fork(void) { allocate_ten(4101); }
static void after_fork_in_parent(void) { allocate_ten(4102); }
static void after_fork_in_child(void) { allocate_ten(4103); }

__attribute__((constructor)) static void library_loaded(void) {
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

/* Referenced by the program so that the link keeps the library. */
EXPORT int atfork_library_loaded(void) { return 1; }
