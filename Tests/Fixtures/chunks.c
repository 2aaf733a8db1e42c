/*
 * glibc's own view of the blocks, for the allocator tests. Writes nothing through stdio: each scenario writes
 * lines of decimal numbers to FILE (argv[2]) with write(2).
 *
 *   chunks split FILE      mallocs the sizes below, one block each, all live at once; then writes, per block,
 *                          "requested usable" (malloc_usable_size), and "mmapped hblks hblkhd" from mallinfo2 taken
 *                          while they are live; frees them in allocation order.
 *   chunks mallopt FILE    mallopt(M_MMAP_THRESHOLD, 64 KiB) first (fixing the threshold), then as split.
 *   chunks dynamic FILE    malloc(1 MiB) and free it: glibc raises its threshold to that chunk (1 MiB + 4 KiB);
 *                          then as split, so the sizes between 128 KiB and 1 MiB come from the heap.
 *   chunks thread FILE     a second thread mallocs 10 blocks of 100 B (from a thread arena) and frees them;
 *                          writes nothing but an empty FILE.
 *   chunks mappings FILE   the program's own memory calls (MARK:mappings): mmap 1 MiB anonymous and 64 KiB of a
 *                          file (not recorded: not anonymous), munmap the first 256 KiB of the 1 MiB, mremap the
 *                          rest (768 KiB) to 2 MiB, sbrk(+64 KiB) and back, brk to where it was (no move: not
 *                          recorded), mmap 4 KiB and munmap it; writes nothing but an empty FILE. At the end 2 MiB
 *                          are still mapped; the most at once was 2 MiB + 4 KiB.
 *
 * The sizes straddle every boundary the report names: the 32-byte minimum chunk, a 16-byte class step (24/25 B),
 * the default mmap threshold (a request whose chunk, request + 8 rounded up to 16, reaches 128 KiB is mapped when
 * the top of the heap cannot serve it: 131,064 B is the smallest), and large mappings.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

static const size_t sizes[] = {1,      24,     25,     100,    1000,   4096,    65536,   100000,
                               131048, 131056, 131064, 131072, 200000, 1 << 19, 1 << 20, 4 << 20};
#define COUNT (sizeof(sizes) / sizeof(sizes[0]))

static char text[4096];
static size_t used;

static void put_number(unsigned long long value, char after) {
    char digits[24];
    int length = 0;
    do digits[length++] = (char)('0' + value % 10);
    while ((value /= 10) != 0);
    while (length > 0 && used < sizeof(text) - 2) text[used++] = digits[--length];
    text[used++] = after;
}

static int write_text(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return 1;
    int ok = write(fd, text, used) == (ssize_t)used;
    close(fd);
    return ok ? 0 : 1;
}

static int split(const char *path) {
    void *blocks[COUNT];
    for (size_t i = 0; i < COUNT; i++) {
        blocks[i] = malloc(sizes[i]);
        if (blocks[i] == NULL) return 2;
        memset(blocks[i], 1, sizes[i]);
    }
    struct mallinfo2 info = mallinfo2();
    for (size_t i = 0; i < COUNT; i++) {
        put_number(sizes[i], ' ');
        put_number(malloc_usable_size(blocks[i]), '\n');
    }
    text[used++] = 'm';
    text[used++] = ' ';
    put_number(info.hblks, ' ');
    put_number(info.hblkhd, '\n');
    for (size_t i = 0; i < COUNT; i++) free(blocks[i]);
    return write_text(path);
}

static void *small_blocks(void *unused) {
    (void)unused;
    void *blocks[10];
    for (int i = 0; i < 10; i++) blocks[i] = malloc(100);
    for (int i = 0; i < 10; i++) free(blocks[i]);
    return NULL;
}

static int mappings(const char *path) {
    char *big = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); /* MARK:mappings */
    if (big == MAP_FAILED) return 2;
    int fd = open("/proc/self/exe", O_RDONLY);
    void *file = fd < 0 ? MAP_FAILED : mmap(NULL, 64 << 10, PROT_READ, MAP_PRIVATE, fd, 0);
    if (file == MAP_FAILED) return 3;
    munmap(file, 64 << 10);
    close(fd);
    if (munmap(big, 256 << 10) != 0) return 4;
    char *moved = mremap(big + (256 << 10), 768 << 10, 2 << 20, MREMAP_MAYMOVE);
    if (moved == MAP_FAILED) return 5;
    void *start = sbrk(0);
    if (sbrk(64 << 10) == (void *)-1 || sbrk(-(64 << 10)) == (void *)-1) return 6;
    if (brk(start) != 0) return 7;
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED || munmap(page, 4096) != 0) return 8;
    return write_text(path);
}

int main(int argc, char **argv) {
    if (argc < 3) return 64;
    if (strcmp(argv[1], "split") == 0) return split(argv[2]);
    if (strcmp(argv[1], "mallopt") == 0) {
        if (mallopt(M_MMAP_THRESHOLD, 64 * 1024) != 1) return 3;
        return split(argv[2]);
    }
    if (strcmp(argv[1], "dynamic") == 0) {
        free(malloc(1 << 20));
        return split(argv[2]);
    }
    if (strcmp(argv[1], "mappings") == 0) return mappings(argv[2]);
    if (strcmp(argv[1], "thread") == 0) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, small_blocks, NULL) != 0) return 4;
        pthread_join(thread, NULL);
        return write_text(argv[2]);
    }
    return 64;
}
