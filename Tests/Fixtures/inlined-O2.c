/*
 * Built with -O2 -g (the -O2 suffix asks the build plugin for it): make_record is inlined into
 * build_records, so one return address stands for two source frames. Leaks 4 x 100 B from one stack,
 * which is also the whole peak (400 B in 4 blocks). The MARK comments give the tests their line numbers.
 */
#include <stdlib.h>

static void *volatile g_sink;

static inline void *make_record(size_t size) { return malloc(size * 2); /* MARK:helper-malloc */ }

__attribute__((noinline)) static void build_records(int count) {
    /* Not unrolled: one call site, so one stack. */
#pragma clang loop unroll(disable)
    for (int i = 0; i < count; i++) g_sink = make_record(50); /* MARK:build-call */
}

int main(void) {
    build_records(4); /* MARK:main-call */
    return 0;
}
