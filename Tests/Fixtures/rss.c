/*
 * Resident memory for the RSS tests. Writes nothing through stdio.
 *
 *   rss peak FILE   mallocs 64 MiB, touches every page, frees it, then writes its own
 *                   getrusage(RUSAGE_SELF).ru_maxrss, in bytes, as decimal digits to FILE: the tracer's
 *                   PROCESS_STATS record must say the same (within a page: the tracer's exit may touch one).
 *   rss grow        64 steps 15 ms apart, each keeping one more 1 MiB block (touched) and making 32
 *                   malloc/free pairs of 16 B, so that RSS samples see the resident set grow by ~64 MiB.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024 * 1024)

static int write_number(const char *path, unsigned long long value) {
    char digits[32];
    int length = 0;
    do digits[sizeof(digits) - 1 - length++] = (char)('0' + value % 10);
    while ((value /= 10) != 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return 1;
    int ok = write(fd, digits + sizeof(digits) - length, (size_t)length) == length;
    close(fd);
    return ok ? 0 : 1;
}

static int peak(const char *path) {
    char *block = malloc(64 * MIB);
    if (block == NULL) return 2;
    memset(block, 1, 64 * MIB);
    volatile char sink = block[12345];
    (void)sink;
    free(block);
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0) return 3;
    return write_number(path, (unsigned long long)usage.ru_maxrss * 1024u);
}

static int grow(void) {
    static char *kept[64];
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 15 * 1000 * 1000};
    for (int step = 0; step < 64; step++) {
        kept[step] = malloc(MIB);
        if (kept[step] == NULL) return 2;
        memset(kept[step], 1, MIB);
        for (int i = 0; i < 32; i++) free(malloc(16));
        nanosleep(&pause, NULL);
    }
    for (int step = 0; step < 64; step++) free(kept[step]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "peak") == 0) return peak(argv[2]);
    if (argc == 2 && strcmp(argv[1], "grow") == 0) return grow();
    return 64;
}
