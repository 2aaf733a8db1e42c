/*
 * A running multi-threaded program driven through stdin, for `malloctrace ctl`. Writes nothing through stdio.
 * Four worker threads are created at start; then, for each byte read from stdin, every worker runs that
 * phase and the program writes "done\n" to stdout once all four have finished it (EOF ends
 * the program, which leaves phase 3's blocks live). The first line is "ready PID\n":
 *
 *   '1'  work_one:   each worker keeps 1,000 blocks of 48 B                      (4,000 calls, 192,000 B)
 *   '2'  work_two:   each frees those, then keeps 500 blocks of 80 B             (4,000 frees; 2,000 calls, 160,000 B)
 *   '3'  work_three: each frees 250 of its 80 B blocks and keeps 777 blocks of 24 B
 *
 * Traced paused, started before '1' and stopped before '3' (as CtlTests does), the report counts the work_*
 * calls of phases 1 and 2: 6,000 allocation calls, 4,000 frees, 352,000 B allocated, peak 192,000 B; phase 3's
 * frees, made while paused, still release their blocks: 80,000 B in 1,000 blocks live at exit.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define WORKERS 4

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int phase, generation, finished;

typedef struct {
    void *one[1000], *two[500], *three[777];
} worker_blocks_t;

static __attribute__((noinline)) void work_one(worker_blocks_t *b) {
    for (int i = 0; i < 1000; i++) b->one[i] = malloc(48);
}

static __attribute__((noinline)) void work_two(worker_blocks_t *b) {
    for (int i = 0; i < 1000; i++) free(b->one[i]);
    for (int i = 0; i < 500; i++) b->two[i] = malloc(80);
}

static __attribute__((noinline)) void work_three(worker_blocks_t *b) {
    for (int i = 0; i < 250; i++) free(b->two[i]);
    for (int i = 0; i < 777; i++) b->three[i] = malloc(24);
}

static void *worker(void *argument) {
    worker_blocks_t *blocks = argument;
    int seen = 0;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (generation == seen) pthread_cond_wait(&changed, &lock);
        seen = generation;
        int now = phase;
        pthread_mutex_unlock(&lock);
        if (now == 'q') return NULL;
        if (now == '1') work_one(blocks);
        if (now == '2') work_two(blocks);
        if (now == '3') work_three(blocks);
        pthread_mutex_lock(&lock);
        finished++;
        pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&lock);
    }
}

static void run_phase(int which) {
    pthread_mutex_lock(&lock);
    phase = which;
    finished = 0;
    generation++;
    pthread_cond_broadcast(&changed);
    while (which != 'q' && finished < WORKERS) pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
}

static void say(const char *line, size_t length) {
    ssize_t ignored = write(1, line, length);
    (void)ignored;
}

int main(void) {
    static worker_blocks_t blocks[WORKERS];
    pthread_t threads[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        if (pthread_create(&threads[i], NULL, worker, &blocks[i]) != 0) return 2;
    char ready[32] = "ready ", digits[16];
    size_t length = 6, count = 0;
    for (long pid = getpid(); pid > 0; pid /= 10) digits[count++] = (char)('0' + pid % 10);
    while (count > 0) ready[length++] = digits[--count];
    ready[length++] = '\n';
    say(ready, length);
    char command;
    while (read(0, &command, 1) == 1) {
        if (command < '1' || command > '3') continue;
        run_phase(command);
        say("done\n", 5);
    }
    run_phase('q');
    for (int i = 0; i < WORKERS; i++) pthread_join(threads[i], NULL);
    return 0;
}
