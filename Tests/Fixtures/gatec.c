/*
 * A C program that uses what real programs use and frees what it allocates itself: stdio to a pipe or
 * file, a locale, local time, a user lookup through NSS, dlopen (left open, as programs do), a thread
 * created and joined that ends with pthread_exit, and a global that keeps a block until exit. The leaking
 * function's name contains "pthread_exit": a program's own leak is not glibc's, whatever its name.
 * Usage: fixture-gatec clean   `malloctrace check` must find nothing (what remains is glibc's or reachable)
 *        fixture-gatec leak    the same plus one leaked block of 4,321 B (MARK:gatec-leak)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <locale.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char *g_kept;

static void *worker(void *argument) {
    char *copy = strdup(argument);
    free(copy);
    pthread_exit(NULL);
}

__attribute__((noinline)) static void leak_before_pthread_exit(void) {
    void *lost = malloc(4321);          /* MARK:gatec-leak */
    __asm__ volatile("" : : "r"(lost)); /* the call stays; the only pointer dies with this frame */
}

int main(int argc, char **argv) {
    setlocale(LC_ALL, "C.UTF-8");
    g_kept = malloc(100);
    time_t now = time(NULL);
    struct tm *local = localtime(&now);
    struct passwd *user = getpwuid(getuid());
    void *libm = dlopen("libm.so.6", RTLD_NOW);
    pthread_t thread;
    pthread_create(&thread, NULL, worker, "hello");
    pthread_join(thread, NULL);
    printf("year %d, user %s, libm %s\n", local ? local->tm_year + 1900 : 0, user ? user->pw_name : "?",
           libm ? "loaded" : "missing");
    if (argc > 1 && strcmp(argv[1], "leak") == 0) leak_before_pthread_exit();
    return 0;
}
