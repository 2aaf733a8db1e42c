/*
 * Allocations in phases over about 3.5 seconds, for the periodic profiles (`run --profile-every 1s`).
 * Writes nothing through stdio.
 *
 *   phases   t = 0 s:   phase_one keeps 100 blocks of 1,000 B
 *            t = 1.5 s: phase_two keeps 50 blocks of 3,000 B and frees 40 of phase_one's
 *            t = 2.5 s: phase_three frees phase_two's and keeps 10 blocks of 50,000 B
 *            t = 3.5 s: returns, leaving everything still kept live.
 *            Meanwhile a second thread keeps one 100 B block every 5 ms (tick_block) from start to end, so
 *            that every interval's end falls among allocations.
 *
 * In use from the phases (times since start, one interval per second):
 *   at 1 s: phase_one 100,000 B; at 2 s: phase_one 60,000 B, phase_two 150,000 B;
 *   at 3 s: phase_one 60,000 B, phase_three 500,000 B.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define MAX_TICKS 2000

static void *kept_one[100], *kept_two[50], *kept_three[10], *ticks[MAX_TICKS];
static atomic_int done;
static struct timespec start;

static void sleep_until(double seconds) {
    struct timespec at = start;
    long long nanoseconds = (long long)(seconds * 1e9) + at.tv_nsec;
    at.tv_sec += (time_t)(nanoseconds / 1000000000);
    at.tv_nsec = (long)(nanoseconds % 1000000000);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) != 0) {
    }
}

static __attribute__((noinline)) void *tick_block(void) { return malloc(100); }

static void *ticker(void *unused) {
    (void)unused;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
    for (int i = 0; i < MAX_TICKS && !atomic_load(&done); i++) {
        ticks[i] = tick_block();
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static __attribute__((noinline)) void phase_one(void) {
    for (int i = 0; i < 100; i++) kept_one[i] = malloc(1000);
}

static __attribute__((noinline)) void phase_two(void) {
    for (int i = 0; i < 50; i++) kept_two[i] = malloc(3000);
    for (int i = 0; i < 40; i++) free(kept_one[i]);
}

static __attribute__((noinline)) void phase_three(void) {
    for (int i = 0; i < 50; i++) free(kept_two[i]);
    for (int i = 0; i < 10; i++) kept_three[i] = malloc(50000);
}

int main(void) {
    clock_gettime(CLOCK_MONOTONIC, &start);
    pthread_t thread;
    if (pthread_create(&thread, NULL, ticker, NULL) != 0) return 2;
    phase_one();
    sleep_until(1.5);
    phase_two();
    sleep_until(2.5);
    phase_three();
    sleep_until(3.5);
    atomic_store(&done, 1);
    pthread_join(thread, NULL);
    return 0;
}
