/* measure RESULT_FILE [NAME=VALUE...] -- PROGRAM [ARGS...]
 *
 * Runs PROGRAM (searched in PATH) with the same stdin, stdout and stderr and
 * the same environment plus the NAME=VALUE settings, waits for it with wait4()
 * and writes one line to RESULT_FILE:
 *
 *   wall_ns user_us sys_us maxrss_kb exit_status
 *
 * exit_status is the exit code, or -N if signal N ended the program.  The CPU
 * times cover the program and every descendant it waited for; maxrss_kb is the
 * peak RSS of the largest single process of that tree, as /usr/bin/time
 * reports it.
 *
 * Why not time it from Python: a child started with vfork (posix_spawn) or
 * fork inherits the parent's RSS high-water mark until it execs, so a Python
 * parent would put its own ~15 MB into every max-RSS figure.  This helper is
 * small, so the floor is about 1 MB, and it timestamps right around the
 * spawn.  The NAME=VALUE settings reach PROGRAM only: an LD_PRELOAD in this
 * helper's own environment would load the preload library into the helper.
 */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv) {
    int dashes = 2;
    while (dashes < argc && strcmp(argv[dashes], "--") != 0) dashes++;
    if (dashes + 1 >= argc) {
        fprintf(stderr, "usage: %s RESULT_FILE [NAME=VALUE...] -- PROGRAM [ARGS...]\n", argv[0]);
        return 125;
    }
    /* The child's environment: ours, minus the names that are set again, plus the settings. */
    size_t count = 0;
    while (environ[count] != NULL) count++;
    char **envp = calloc(count + (size_t)argc, sizeof(char *));
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        int overridden = 0;
        for (int a = 2; a < dashes; a++) {
            size_t name_length = strcspn(argv[a], "=");
            if (strncmp(environ[i], argv[a], name_length) == 0 && environ[i][name_length] == '=') overridden = 1;
        }
        if (!overridden) envp[used++] = environ[i];
    }
    for (int a = 2; a < dashes; a++) envp[used++] = argv[a];
    envp[used] = NULL;

    char **program = argv + dashes + 1;
    struct timespec start, end;
    pid_t pid;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int error = posix_spawnp(&pid, program[0], NULL, NULL, program, envp);
    if (error != 0) {
        fprintf(stderr, "measure: cannot run %s: %s\n", program[0], strerror(error));
        return 127;
    }
    int status;
    struct rusage usage;
    if (wait4(pid, &status, 0, &usage) < 0) {
        perror("measure: wait4");
        return 125;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    long long wall_ns = (long long)(end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    FILE *out = fopen(argv[1], "w");
    if (out == NULL) {
        perror("measure: result file");
        return 125;
    }
    fprintf(out, "%lld %lld %lld %ld %d\n", wall_ns,
            (long long)usage.ru_utime.tv_sec * 1000000 + usage.ru_utime.tv_usec,
            (long long)usage.ru_stime.tv_sec * 1000000 + usage.ru_stime.tv_usec, usage.ru_maxrss, code);
    fclose(out);
    return 0;
}
