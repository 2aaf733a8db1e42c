/*
 * The trace file: created exclusively, extended in windows of MT_WINDOW_BYTES that are allocated
 * on disk first (fallocate, so a full disk is an error here instead of a SIGBUS later) and then
 * mapped MAP_SHARED. Threads write their chunks straight into the mapping: the page cache keeps
 * every byte even if the process is killed. A window is unmapped once it is no longer the current
 * one and none of its chunks can grow any more. One mutex guards reservation; it is taken once per
 * chunk (tens of thousands of events), never per event.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define MT_WINDOW_BYTES (4u << 20)

typedef struct mt_window {
    uint8_t *base;
    uint64_t file_offset;
    uint64_t size; /* MT_WINDOW_BYTES, less near a file size limit or a full disk */
    uint32_t open_chunks;
    bool current;
} mt_window_t;

static pthread_mutex_t g_file_mutex = PTHREAD_MUTEX_INITIALIZER;
static int g_fd = -1;
static dev_t g_file_device;
static ino_t g_file_inode;
static mt_window_t *g_current;
static uint64_t g_next_offset;
static bool g_finished;
/* An exec is under way (set by mt_file_begin_exec): other threads that need a new chunk wait for its outcome
 * instead of losing their events; on success they vanish with the image. */
static bool g_exec_pending;
static pthread_t g_exec_thread;
static pthread_cond_t g_exec_outcome = PTHREAD_COND_INITIALIZER;
static uint64_t g_end_offset; /* where the last END record starts */

static void mt_drop_window(mt_window_t *window) {
    munmap(window->base, window->size);
    real.free(window);
}

static void mt_stop_writing(const char *what) {
    g_finished = true;
    mt_fail(what, ": ", strerror(errno), "; tracing stopped, the trace ends here", NULL);
}

/* The program may close our descriptor (closefrom, a daemon's cleanup) and get its number back for a file
 * of its own: never extend, map, truncate or close anything but the trace itself. */
static bool mt_descriptor_is_trace(void) {
    struct stat now;
    return g_fd >= 0 && fstat(g_fd, &now) == 0 && now.st_dev == g_file_device && now.st_ino == g_file_inode;
}

static bool mt_open_window(uint64_t offset) {
    if (!mt_descriptor_is_trace()) {
        errno = EBADF;
        mt_stop_writing("the program closed the trace file's descriptor");
        return false;
    }
    /* Near a file size limit or a full disk, a smaller window keeps what still fits, down to one page: the
     * trace then holds as much as it can (at least its header) instead of ending empty. */
    uint64_t size = MT_WINDOW_BYTES, page = mt_page_size();
    struct rlimit limit;
    if (getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && offset + size > limit.rlim_cur) {
        size = limit.rlim_cur > offset ? (limit.rlim_cur - offset) / page * page : 0;
        if (size == 0 && offset == 0) {
            g_finished = true;
            mt_fail("no trace file: the file size limit (ulimit -f) leaves no room for one; tracing is off", NULL);
            return false;
        }
        if (size == 0) {
            /* Growing past the limit would raise SIGXFSZ in the target: stop before that. */
            errno = EFBIG;
            mt_stop_writing("the trace file reached the file size limit (ulimit -f)");
            return false;
        }
    }
    while (fallocate(g_fd, 0, (off_t)offset, (off_t)size) != 0) {
        if (errno == EOPNOTSUPP && ftruncate(g_fd, (off_t)(offset + size)) == 0) break;
        if (errno != ENOSPC || size <= page) {
            mt_stop_writing("cannot extend the trace file");
            return false;
        }
        size = size / 2 / page * page;
        if (size < page) size = page;
    }
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, g_fd, (off_t)offset);
    mt_window_t *window = base == MAP_FAILED ? NULL : real.malloc(sizeof(mt_window_t));
    if (window == NULL) {
        if (base != MAP_FAILED) munmap(base, size);
        mt_stop_writing("cannot map the trace file");
        return false;
    }
    *window = (mt_window_t){.base = base, .file_offset = offset, .size = size, .open_chunks = 0, .current = true};
    mt_window_t *previous = g_current;
    g_current = window;
    if (previous != NULL) {
        previous->current = false;
        if (previous->open_chunks == 0) mt_drop_window(previous);
    }
    return true;
}

/* Returns room for a whole record (header included, `total` a multiple of 8). Mutex held. */
static uint8_t *mt_reserve_locked(size_t total) {
    if (g_finished || g_current == NULL || total > MT_WINDOW_BYTES) return NULL;
    uint64_t window_end = g_current->file_offset + g_current->size;
    if (g_next_offset + total > window_end) {
        uint64_t rest = window_end - g_next_offset;
        if (rest >= sizeof(mt_record_header_t)) {
            mt_record_header_t *padding =
                (mt_record_header_t *)(g_current->base + (g_next_offset - g_current->file_offset));
            padding->kind = MT_RECORD_PADDING;
            padding->length = (uint32_t)(rest - sizeof(mt_record_header_t));
        }
        g_next_offset = window_end;
        if (!mt_open_window(window_end)) return NULL;
    }
    uint8_t *at = g_current->base + (g_next_offset - g_current->file_offset);
    g_next_offset += total;
    return at;
}

static size_t mt_record_size(size_t payload) {
    return (sizeof(mt_record_header_t) + payload + MT_RECORD_ALIGNMENT - 1) & ~(size_t)(MT_RECORD_ALIGNMENT - 1);
}

/* Writes a whole record made of up to three byte ranges (unused ones NULL with length 0: memcpy must not
 * see them, a NULL source is undefined behaviour even for 0 bytes). Mutex held. */
static bool mt_write_record_locked(uint8_t kind, const void *a, size_t a_length, const void *b, size_t b_length,
                                   const void *c, size_t c_length) {
    size_t payload = a_length + b_length + c_length;
    uint8_t *at = mt_reserve_locked(mt_record_size(payload));
    if (at == NULL) return false;
    mt_record_header_t header = {.kind = kind, .length = (uint32_t)payload};
    memcpy(at, &header, sizeof(header));
    at += sizeof(header);
    if (a_length != 0) memcpy(at, a, a_length);
    if (b_length != 0) memcpy(at + a_length, b, b_length);
    if (c_length != 0) memcpy(at + a_length + b_length, c, c_length);
    return true;
}

int mt_duplicate_high(int fd) {
    /* Keep low descriptor numbers free for the target, which may expect them. */
    struct rlimit limit;
    int floor = 3;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur > 256)
        floor = (int)(limit.rlim_cur - 128);
    return fcntl(fd, F_DUPFD_CLOEXEC, floor);
}

static int mt_high_descriptor(int fd) {
    int moved = mt_duplicate_high(fd);
    if (moved < 0) return fd;
    close(fd);
    return moved;
}

static int mt_create(const char *path) { return open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600); }

/* The file exists: a followed process that execs keeps its pid, so its new image finds its old trace under
 * the same name, and a restarted PID 1 in a container finds its previous run's. Never overwritten: the trace
 * goes to NAME-2.mtrace (then -3, ...) instead. */
static int mt_create_next_free(const char *path, char *chosen, size_t size) {
    size_t length = strlen(path);
    if (length + 24 > size) return -1;
    size_t stem = length >= 7 && strcmp(path + length - 7, ".mtrace") == 0 ? length - 7 : length;
    for (uint32_t n = 2; n < 100000; n++) {
        char digits[12];
        size_t count = 0;
        for (uint32_t rest = n; rest != 0; rest /= 10) digits[count++] = (char)('0' + rest % 10);
        char *out = chosen;
        memcpy(out, path, stem);
        out += stem;
        *out++ = '-';
        while (count > 0) *out++ = digits[--count];
        memcpy(out, path + stem, length - stem + 1);
        int fd = mt_create(chosen);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1;
}

bool mt_file_open(const char *path, const mt_process_record_t *process, const char *exe, size_t exe_length,
                  const char *argv, size_t argv_length) {
    int fd = mt_create(path);
    const char *created = path;
    if (fd < 0 && errno == EEXIST) {
        static char alternative[4096 + 24];
        fd = mt_create_next_free(path, alternative, sizeof(alternative));
        created = alternative;
        /* Followed children that exec do this all the time, and `run` finds their files by the pattern. */
        if (fd >= 0 && !g_config.follow_children)
            mt_say(path, " exists; the trace goes to ", alternative, " instead", NULL);
    }
    if (fd < 0) {
        mt_fail("cannot create trace file ", path, ": ", strerror(errno), "; tracing is off", NULL);
        return false;
    }
    pthread_mutex_lock(&g_file_mutex);
    g_fd = mt_high_descriptor(fd);
    struct stat opened;
    if (fstat(g_fd, &opened) == 0) {
        g_file_device = opened.st_dev;
        g_file_inode = opened.st_ino;
    }
    g_finished = false;
    g_next_offset = 0;
    bool ok = mt_open_window(0);
    if (!ok) unlink(created); /* not even a header fits (ulimit -f below a page): no empty file behind */
    if (ok) {
        mt_file_header_t header = {.version = MT_FORMAT_VERSION_UNCOMPRESSED, .header_size = sizeof(mt_file_header_t)};
        memcpy(header.magic, MT_MAGIC, MT_MAGIC_SIZE);
        memcpy(g_current->base, &header, sizeof(header));
        g_next_offset = sizeof(header);
        ok = mt_write_record_locked(MT_RECORD_PROCESS, process, sizeof(*process), exe, exe_length, argv, argv_length);
    }
    pthread_mutex_unlock(&g_file_mutex);
    return ok;
}

mt_chunk_header_t *mt_file_reserve_chunk(uint32_t tid, uint32_t capacity, void **window) {
    int cancel_state = mt_cancel_off(); /* fallocate: a cancellation point, with the mutex held */
    pthread_mutex_lock(&g_file_mutex);
    while (g_exec_pending && !pthread_equal(g_exec_thread, pthread_self()))
        pthread_cond_wait(&g_exec_outcome, &g_file_mutex);
    uint8_t *at = mt_reserve_locked(sizeof(mt_record_header_t) + capacity);
    mt_chunk_header_t *chunk = NULL;
    if (at != NULL) {
        mt_record_header_t header = {.kind = MT_RECORD_CHUNK, .length = capacity};
        memcpy(at, &header, sizeof(header));
        chunk = (mt_chunk_header_t *)(at + sizeof(header));
        chunk->tid = tid;
        chunk->used = 0;
        g_current->open_chunks++;
        *window = g_current;
    }
    pthread_mutex_unlock(&g_file_mutex);
    mt_cancel_restore(cancel_state);
    return chunk;
}

void mt_file_release_chunk(void *token) {
    mt_window_t *window = token;
    pthread_mutex_lock(&g_file_mutex);
    if (window->open_chunks > 0) window->open_chunks--;
    if (!window->current && window->open_chunks == 0) mt_drop_window(window);
    pthread_mutex_unlock(&g_file_mutex);
}

void mt_file_finish(const mt_end_record_t *end) {
    int cancel_state = mt_cancel_off();
    pthread_mutex_lock(&g_file_mutex);
    if (!g_finished && g_current != NULL) {
        if (mt_write_record_locked(MT_RECORD_END, end, sizeof(*end), NULL, 0, NULL, 0))
            g_end_offset = g_next_offset - mt_record_size(sizeof(*end)); /* the last record reserved */
        /* Nothing is reserved past this point any more, so the zeroed tail of the last window can
         * go; chunks that are still open lie below it and keep recording late frees. */
        g_finished = true;
        if (mt_descriptor_is_trace() && ftruncate(g_fd, (off_t)g_next_offset) != 0) {
            /* The reader stops at the zero fill anyway; the file is only larger. */
        }
    }
    pthread_mutex_unlock(&g_file_mutex);
    mt_cancel_restore(cancel_state);
}

void mt_file_begin_exec(void) {
    pthread_mutex_lock(&g_file_mutex);
    g_exec_pending = true;
    g_exec_thread = pthread_self();
    pthread_mutex_unlock(&g_file_mutex);
}

void mt_file_resume(void) {
    int cancel_state = mt_cancel_off();
    pthread_mutex_lock(&g_file_mutex);
    const char *failure = NULL;
    if (g_finished && g_current != NULL && mt_descriptor_is_trace()) {
        /* The exec failed: give the current window its disk space back, make the END a padding record (the
         * trace has not ended) and go on after it. */
        uint64_t window_end = g_current->file_offset + g_current->size;
        bool restored = window_end == g_next_offset ||
                        fallocate(g_fd, 0, (off_t)g_next_offset, (off_t)(window_end - g_next_offset)) == 0 ||
                        (errno == EOPNOTSUPP && ftruncate(g_fd, (off_t)window_end) == 0);
        if (restored) {
            if (g_end_offset >= g_current->file_offset)
                ((mt_record_header_t *)(g_current->base + (g_end_offset - g_current->file_offset)))->kind =
                    MT_RECORD_PADDING;
            g_finished = false;
        } else {
            failure = strerror(errno);
        }
    }
    g_exec_pending = false;
    pthread_cond_broadcast(&g_exec_outcome);
    pthread_mutex_unlock(&g_file_mutex);
    if (failure != NULL)
        mt_fail("cannot take the trace up again after a failed exec: ", failure,
                "; tracing stopped, the trace ends here", NULL);
    mt_cancel_restore(cancel_state);
}

int mt_file_descriptor(void) { return g_fd; }

bool mt_file_descriptor_is_trace(void) { return mt_descriptor_is_trace(); }

void mt_file_lock(void) { pthread_mutex_lock(&g_file_mutex); }
void mt_file_unlock(void) { pthread_mutex_unlock(&g_file_mutex); }

void mt_file_forget(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    g_file_mutex = fresh;
    if (mt_descriptor_is_trace()) close(g_fd);
    g_fd = -1;
    g_current = NULL; /* the parent's windows stay mapped in this copy, untouched */
    g_next_offset = 0;
    g_finished = true;
    g_exec_pending = false;
    pthread_cond_t fresh_condition = PTHREAD_COND_INITIALIZER;
    g_exec_outcome = fresh_condition;
}

bool mt_file_write_record(uint8_t kind, const void *a, size_t a_length, const void *b, size_t b_length) {
    pthread_mutex_lock(&g_file_mutex);
    bool ok = mt_write_record_locked(kind, a, a_length, b, b_length, NULL, 0);
    pthread_mutex_unlock(&g_file_mutex);
    return ok;
}
