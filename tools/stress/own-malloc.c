/* A program that defines malloc, free, calloc and realloc itself (a bump allocator in the executable), for
 * tools/stress.sh. The executable comes first in symbol lookup, so LD_PRELOAD's hooks never see these calls:
 * the trace must hold none of them, and the program must run exactly as untraced. Prints "calls N". */
#include <stddef.h>
#include <string.h>
#include <unistd.h>

static _Alignas(16) char g_arena[64 << 20];
static size_t g_used;
static unsigned long g_calls;

void *malloc(size_t size) {
    size = (size + 15) & ~(size_t)15;
    if (size > sizeof g_arena - g_used) return NULL;
    void *block = g_arena + g_used;
    g_used += size;
    return block;
}
void free(void *block) { (void)block; }
void *calloc(size_t count, size_t size) {
    if (size != 0 && count > (size_t)-1 / size) return NULL;
    void *block = malloc(count * size);
    if (block) memset(block, 0, count * size);
    return block;
}
void *realloc(void *block, size_t size) {
    void *moved = malloc(size);
    if (moved && block) memcpy(moved, block, size); /* the arena is contiguous: over-reading is safe */
    return moved;
}

static __attribute__((noinline)) void *counted_malloc(size_t size) {
    g_calls++;
    return malloc(size);
}

int main(void) {
    for (int i = 0; i < 10000; i++) free(counted_malloc(4000 + (size_t)(i & 7)));
    char line[32] = "calls ", digits[24];
    size_t n = 6, d = 0;
    unsigned long value = g_calls;
    do digits[d++] = (char)('0' + value % 10);
    while ((value /= 10) != 0);
    while (d > 0) line[n++] = digits[--d];
    line[n++] = '\n';
    return write(1, line, n) == (ssize_t)n ? 0 : 1;
}
