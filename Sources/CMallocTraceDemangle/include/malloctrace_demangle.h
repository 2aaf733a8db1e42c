/*
 * Demanglers the Swift side cannot declare itself: libstdc++'s __cxa_demangle and the Swift runtime's
 * swift_demangle, wrapped so that Swift sees two plain C functions. Linked into the CLI only; this target
 * defines no allocator function (it must never interpose the CLI's own malloc).
 */
#ifndef MALLOCTRACE_DEMANGLE_H
#define MALLOCTRACE_DEMANGLE_H

#include <stddef.h>

/* The demangled form of an Itanium C++ name (`_Z...`), or NULL when it is not one.
 * The result is malloc'ed: the caller frees it. */
char *mt_demangle_cxx(const char *mangled);

/* The demangled form of a Swift name (`$s...`, `_$s...`, `$S...`, `_T0...`), or NULL when it is not one.
 * The result is malloc'ed: the caller frees it. */
char *mt_demangle_swift(const char *mangled, size_t length);

/* Copies the path of the loaded Swift runtime library (libswiftCore.so) into `buffer`; returns 0 on
 * success, -1 when it is unknown or does not fit. Used to find the toolchain's own tools. */
int mt_swift_runtime_path(char *buffer, size_t size);

#endif
