/*
 * Process-level patterns for the exec and follow-children tests.
 * Usage: fixture-processes exec | exec-fails | spawn FIXTURE
 *   exec        3 x 64 B from before_exec, then execv("/bin/true"): the trace ends with reason exec.
 *   exec-fails  3 x 64 B from before_exec, execv of a missing file fails, then 100 malloc/free pairs:
 *               the trace goes on (allocation calls 103, free calls 100) and ends at exit.
 *   spawn F     posix_spawn "F leaks" and "F peak" (F = fixture-patterns), waits for both.
 *   system F    system("F leaks"): through /bin/sh.
 */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static void *volatile g_sink;

__attribute__((noinline)) static void before_exec(void) {
    for (int i = 0; i < 3; i++) g_sink = malloc(64);
}

static int spawn_and_wait(const char *program, const char *pattern) {
    pid_t child;
    char *argv[] = {(char *)program, (char *)pattern, NULL};
    if (posix_spawn(&child, program, NULL, NULL, argv, environ) != 0) return 1;
    int status;
    waitpid(child, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *pattern = argc > 1 ? argv[1] : "";
    if (strcmp(pattern, "system") == 0 && argc > 2) {
        char command[4096];
        if (strlen(argv[2]) > sizeof(command) - 16) return 1;
        strcpy(command, argv[2]);
        strcat(command, " leaks");
        return system(command) == 0 ? 0 : 1;
    }
    if (strcmp(pattern, "spawn") == 0 && argc > 2)
        return spawn_and_wait(argv[2], "leaks") | spawn_and_wait(argv[2], "peak");
    before_exec();
    if (strcmp(pattern, "exec") == 0) {
        execl("/bin/true", "true", (char *)NULL);
        return 3;
    }
    if (strcmp(pattern, "exec-fails") == 0) {
        if (execl("/nonexistent/program", "program", (char *)NULL) != -1) return 4;
        for (int i = 0; i < 100; i++) free(malloc(1000));
        return 0;
    }
    return 2;
}
