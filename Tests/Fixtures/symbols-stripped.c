/*
 * Built stripped (-s) and with -rdynamic (the -stripped suffix asks the build plugin for it): no .symtab and
 * no debug information, so exported_leak is named from .dynsym only and the static hidden_leak has no name
 * anywhere. Leaks 64 B from exported_leak and 48 B from hidden_leak.
 */
#include <stdlib.h>

void *volatile g_sink;

__attribute__((noinline)) static void hidden_leak(void) { g_sink = malloc(48); }

__attribute__((noinline)) void exported_leak(void) {
    g_sink = malloc(64);
    hidden_leak();
}

int main(void) {
    exported_leak();
    return 0;
}
