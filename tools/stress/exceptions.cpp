// C++ exceptions for tools/stress.sh: 20000 throws through three frames, each after a counted allocation
// (operator new in counted_new); prints "calls N" (its own count) and exits 0.
#include <cstdio>
#include <stdexcept>
#include <unistd.h>

static unsigned long g_calls;
static int *volatile g_sink;

__attribute__((noinline)) static int *counted_new(int value) {
    g_calls++;
    return new int(value);
}

__attribute__((noinline)) static void thrower(int depth, int value) {
    if (depth == 0) {
        int *block = counted_new(value);
        g_sink = block;
        delete block;
        throw std::runtime_error("stress");
    }
    thrower(depth - 1, value);
}

int main() {
    unsigned long caught = 0;
    for (int i = 0; i < 20000; i++) {
        try {
            thrower(3, i);
        } catch (const std::exception &) {
            caught++;
        }
    }
    if (caught != 20000) return 1;
    char line[64];
    int n = snprintf(line, sizeof line, "calls %lu\n", g_calls);
    return write(1, line, (size_t)n) == n ? 0 : 1;
}
