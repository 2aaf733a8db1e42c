/*
 * malloctrace.h: tell malloctrace about custom allocators, and pause, resume, mark and snapshot a trace
 * from inside the program. One header, no library to link: copy it into your project.
 *
 * Each call looks its malloctrace_* function up once (dlsym in the running process) and does nothing when
 * the program runs without malloctrace, so a program built with these calls runs unchanged untraced. Define
 * MALLOCTRACE_DISABLE to compile every call to nothing. glibc before 2.34 needs -ldl. Details: docs/api.md.
 *
 * Copyright (c) 2026 the malloctrace authors.
 *
 * Permission is hereby granted, free of charge, to any person obtaining a copy of this file (malloctrace.h),
 * to deal in it without restriction, including without limitation the rights to use, copy, modify, merge,
 * publish, distribute, sublicense, and/or sell copies of it, and to permit persons to whom it is furnished to
 * do so, subject to the following condition: this notice shall be included in all copies or substantial
 * portions of it. THE FILE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
 * BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
 * IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY,
 * WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE FILE OR
 * THE USE OR OTHER DEALINGS IN IT. (MIT licence; the rest of malloctrace is Apache-2.0.)
 */
#ifndef MALLOCTRACE_H
#define MALLOCTRACE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A pool: any allocator whose blocks malloctrace cannot see (arenas, free lists, memory from mmap).
 * NULL when the program is not traced; every call accepts NULL and then does nothing. */
typedef struct malloctrace_pool *malloctrace_pool_t;

#if defined(MALLOCTRACE_DISABLE) || !defined(__linux__)

static inline malloctrace_pool_t malloctrace_pool_create(const char *name) { return (void)name, (malloctrace_pool_t)0; }
static inline void malloctrace_pool_alloc(malloctrace_pool_t pool, const void *ptr, size_t size) {
    (void)pool, (void)ptr, (void)size;
}
static inline void malloctrace_pool_free(malloctrace_pool_t pool, const void *ptr) { (void)pool, (void)ptr; }
static inline void malloctrace_pool_destroy(malloctrace_pool_t pool) { (void)pool; }
static inline void malloctrace_pool_backing(malloctrace_pool_t pool, const void *block) { (void)pool, (void)block; }
static inline void malloctrace_pause(void) {}
static inline void malloctrace_resume(void) {}
static inline int malloctrace_is_paused(void) { return 0; }
static inline void malloctrace_mark(const char *name) { (void)name; }
static inline void malloctrace_snapshot(const char *name) { (void)name; }

#else

#include <dlfcn.h>
#include <string.h>

/* Not part of the API. The function `name` of the preloaded libmalloctrace.so, or NULL without it; looked up
 * once per call site's translation unit (a relaxed atomic cache: concurrent first calls store the same value).
 * dlsym's handle 0 is RTLD_DEFAULT, spelled out so that _GNU_SOURCE is not required. */
#define MALLOCTRACE__UNRESOLVED ((void *)1)
static inline void *malloctrace__lookup(void **cache, const char *name) {
    void *function = __atomic_load_n(cache, __ATOMIC_RELAXED);
    if (__builtin_expect(function == MALLOCTRACE__UNRESOLVED, 0)) {
        function = dlsym((void *)0, name);
        __atomic_store_n(cache, function, __ATOMIC_RELAXED);
    }
    return function;
}
/* Declares `fn` as the function `name` of type `type`, or returns `absent` from the caller without it. The
 * memcpy turns the object pointer into a function pointer without a -Wpedantic warning; it compiles away. */
#define MALLOCTRACE__FUNCTION(fn, type, name, absent)                                                                  \
    static void *malloctrace__cache = MALLOCTRACE__UNRESOLVED;                                                         \
    void *malloctrace__address = malloctrace__lookup(&malloctrace__cache, name);                                       \
    if (__builtin_expect(malloctrace__address == 0, 1)) return absent;                                                 \
    type fn;                                                                                                           \
    memcpy(&fn, &malloctrace__address, sizeof(fn))

/* The exported functions' types. */
typedef void *(*malloctrace__create_t)(const char *);
typedef void (*malloctrace__alloc_t)(void *, const void *, size_t);
typedef void (*malloctrace__pointer_t)(void *, const void *);
typedef void (*malloctrace__destroy_t)(void *);
typedef void (*malloctrace__void_t)(void);
typedef int (*malloctrace__query_t)(void);
typedef void (*malloctrace__name_t)(const char *);

/* Declares a pool named `name` (copied; at most 256 bytes are kept) and returns its handle. */
static inline malloctrace_pool_t malloctrace_pool_create(const char *name) {
    MALLOCTRACE__FUNCTION(fn, malloctrace__create_t, "malloctrace_pool_create", (malloctrace_pool_t)0);
    return (malloctrace_pool_t)fn(name);
}
/* `size` bytes at `ptr` were handed out by the pool: a block with this call's stack, counted like a malloc'd
 * one (bytes, peak, leaks). Inside a block declared with malloctrace_pool_backing, its bytes are carved out
 * of that block instead of added to the heap. */
static inline void malloctrace_pool_alloc(malloctrace_pool_t pool, const void *ptr, size_t size) {
    MALLOCTRACE__FUNCTION(fn, malloctrace__alloc_t, "malloctrace_pool_alloc", );
    fn((void *)pool, ptr, size);
}
/* The pool's block at `ptr` was given back. */
static inline void malloctrace_pool_free(malloctrace_pool_t pool, const void *ptr) {
    MALLOCTRACE__FUNCTION(fn, malloctrace__pointer_t, "malloctrace_pool_free", );
    fn((void *)pool, ptr);
}
/* The pool is gone, and with it every block it still held. */
static inline void malloctrace_pool_destroy(malloctrace_pool_t pool) {
    MALLOCTRACE__FUNCTION(fn, malloctrace__destroy_t, "malloctrace_pool_destroy", );
    fn((void *)pool);
}
/* `block` (returned by malloc, calloc, realloc, ...) is memory the pool carves its blocks from: its bytes are
 * counted once, as the pool's blocks while they live and as the backing block's own bytes otherwise. */
static inline void malloctrace_pool_backing(malloctrace_pool_t pool, const void *block) {
    MALLOCTRACE__FUNCTION(fn, malloctrace__pointer_t, "malloctrace_pool_backing", );
    fn((void *)pool, block);
}
/* Until malloctrace_resume, no allocation is recorded (releases of recorded blocks still are). */
static inline void malloctrace_pause(void) {
    MALLOCTRACE__FUNCTION(fn, malloctrace__void_t, "malloctrace_pause", );
    fn();
}
static inline void malloctrace_resume(void) {
    MALLOCTRACE__FUNCTION(fn, malloctrace__void_t, "malloctrace_resume", );
    fn();
}
/* 1 while paused (by malloctrace_pause or from outside), 0 otherwise and when not traced. */
static inline int malloctrace_is_paused(void) {
    MALLOCTRACE__FUNCTION(fn, malloctrace__query_t, "malloctrace_is_paused", 0);
    return fn();
}
/* Names this moment: `malloctrace report --from-mark NAME --to-mark OTHER`, and the HTML report's timeline. */
static inline void malloctrace_mark(const char *name) {
    MALLOCTRACE__FUNCTION(fn, malloctrace__name_t, "malloctrace_mark", );
    fn(name);
}
/* Names the live set of this moment: `malloctrace diff TRACE@NAME TRACE@OTHER`. */
static inline void malloctrace_snapshot(const char *name) {
    MALLOCTRACE__FUNCTION(fn, malloctrace__name_t, "malloctrace_snapshot", );
    fn(name);
}

#undef MALLOCTRACE__FUNCTION

#endif

#ifdef __cplusplus
}
#endif

#endif /* MALLOCTRACE_H */
