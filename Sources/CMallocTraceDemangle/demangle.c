#define _GNU_SOURCE
#include "malloctrace_demangle.h"

#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

/* libstdc++ (C++ ABI); declared here because its header is C++. */
extern char *__cxa_demangle(const char *mangled, char *buffer, size_t *length, int *status);

/* libswiftCore: always loaded in a Swift program, so the reference binds at link time. */
extern char *swift_demangle(const char *mangled, size_t length, char *buffer, size_t *buffer_size, uint32_t flags);

char *mt_demangle_cxx(const char *mangled) {
    int status = 0;
    char *result = __cxa_demangle(mangled, NULL, NULL, &status);
    return status == 0 ? result : NULL;
}

char *mt_demangle_swift(const char *mangled, size_t length) { return swift_demangle(mangled, length, NULL, NULL, 0); }

int mt_swift_runtime_path(char *buffer, size_t size) {
    Dl_info info;
    if (dladdr((void *)swift_demangle, &info) == 0 || info.dli_fname == NULL) return -1;
    size_t length = strlen(info.dli_fname);
    if (length + 1 > size) return -1;
    memcpy(buffer, info.dli_fname, length + 1);
    return 0;
}
