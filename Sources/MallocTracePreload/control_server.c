/*
 * The control channel: `malloctrace ctl PID start|stop|mark NAME|snapshot NAME` reaches a running process
 * through a Unix socket served by one thread of this library, started only when control is on
 * (MALLOCTRACE_CONTROL=1 or MALLOCTRACE_START=paused). Nothing happens on the hot path: the thread sleeps in
 * accept() and calls the control core (control.c), which writes into this thread's own chunk.
 *
 * Security (docs/control.md): the socket is DIR/PID.sock, DIR being MALLOCTRACE_CONTROL_DIR or
 * /tmp/malloctrace-EUID, a directory that must be owned by the process's effective user and open to nobody
 * else (mode 0700; created so when missing, refused when not: another user could have made it). Its
 * permissions keep other users out; in addition every request's peer credentials (SO_PEERCRED) must carry
 * the same uid, so that even root, who passes directory permissions, is refused. A request is one line of at
 * most MT_REQUEST_BYTES, read with a timeout: a client cannot hold the thread.
 *
 * Not changing the program: the thread blocks every signal (the program's handlers never run on it; the
 * scan's stop signal stays deliverable when the leak scan needs it), takes the guard for good (its own allocations go
 * untraced to libc), and works on a private copy of the descriptor table (unshare(CLONE_FILES)) from which it closes
 * everything but the tracer's own descriptors: its socket never takes a number the program expects, the
 * program closing or reusing a number cannot make it accept on the program's own socket, and it keeps none
 * of the program's files open. A followed child that fork()s gets a server of its own (created in the fork's
 * child handler); one that exec()s starts one like any process.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MT_REQUEST_BYTES 512
#define MT_SERVER_STACK_BYTES (256 * 1024)

static char g_socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static pid_t g_server_pid;
static uid_t g_server_uid;

/* ---- small string helpers (no stdio inside the target) ------------------------------------------ */

static char *mt_put_text(char *out, char *end, const char *text) {
    while (*text && out < end) *out++ = *text++;
    return out;
}

static char *mt_put_decimal(char *out, char *end, uint64_t value) {
    char digits[24];
    size_t n = 0;
    do digits[n++] = (char)('0' + value % 10);
    while ((value /= 10) != 0);
    while (n > 0 && out < end) *out++ = digits[--n];
    return out;
}

/* ---- the socket's directory and path ------------------------------------------------------------- */

/* DIR/PID.sock into g_socket_path; false (after one line) when DIR is missing and cannot be made, or is not
 * private to this user, or the path does not fit a socket address. */
static bool mt_prepare_socket_path(void) {
    char directory[sizeof(g_socket_path)];
    char *end = directory + sizeof(directory) - 1, *out = directory;
    if (g_config.control_dir[0] != '\0') {
        out = mt_put_text(out, end, g_config.control_dir);
    } else {
        out = mt_put_text(out, end, "/tmp/malloctrace-");
        out = mt_put_decimal(out, end, (uint64_t)geteuid());
    }
    *out = '\0';
    if (out == end) {
        mt_say("the control directory's name is too long for a socket; ctl is off", NULL);
        return false;
    }
    if (mkdir(directory, 0700) != 0 && errno != EEXIST) {
        mt_say("cannot create the control directory ", directory, ": ", strerror(errno), "; ctl is off", NULL);
        return false;
    }
    struct stat status;
    if (lstat(directory, &status) != 0 || !S_ISDIR(status.st_mode) || status.st_uid != geteuid() ||
        (status.st_mode & 077) != 0) {
        mt_say("the control directory ", directory,
               " is not a directory of this user's that only it can open (mode 0700); ctl is off", NULL);
        return false;
    }
    char *path = g_socket_path, *path_end = g_socket_path + sizeof(g_socket_path) - 1;
    path = mt_put_text(path, path_end, directory);
    path = mt_put_text(path, path_end, "/");
    path = mt_put_decimal(path, path_end, (uint64_t)getpid());
    path = mt_put_text(path, path_end, ".sock");
    *path = '\0';
    if (path == path_end) {
        mt_say("the control directory's name is too long for a socket; ctl is off", NULL);
        return false;
    }
    return true;
}

/* ---- the private descriptor table --------------------------------------------------------------- */

static int mt_compare_descriptors(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* Closes, in this thread's own table, every descriptor but the tracer's (the trace file, the stderr copy, the
 * RSS reader), which the control core may need to write an event. */
static void mt_close_program_descriptors(void) {
    int keep[3] = {mt_file_descriptor(), mt_stderr_descriptor_number(), mt_rss_descriptor()};
    qsort(keep, 3, sizeof(int), mt_compare_descriptors);
    unsigned int from = 0;
    for (size_t i = 0; i < 3; i++) {
        if (keep[i] < 0 || (unsigned int)keep[i] < from) continue;
        if ((unsigned int)keep[i] > from) close_range(from, (unsigned int)keep[i] - 1, 0);
        from = (unsigned int)keep[i] + 1;
    }
    close_range(from, ~0u, 0);
}

/* A followed child opens its trace after its control thread took its own table: before writing an event, the
 * thread gives its table the trace file under the same number, opened again through the process's table. */
static bool mt_sync_trace_descriptor(void) {
    int fd = mt_file_descriptor();
    if (fd < 0 || mt_file_descriptor_is_trace()) return true;
    char path[48], *end = path + sizeof(path) - 1, *out = path;
    out = mt_put_text(out, end, "/proc/self/fd/");
    out = mt_put_decimal(out, end, (uint64_t)fd);
    *out = '\0';
    int copy = open(path, O_RDWR | O_CLOEXEC);
    if (copy < 0) return false;
    bool ok = copy == fd || dup3(copy, fd, O_CLOEXEC) == fd;
    if (copy != fd) close(copy);
    return ok && mt_file_descriptor_is_trace();
}

/* ---- requests -------------------------------------------------------------------------------------- */

static void mt_reply(int client, const char *first, const char *second) {
    char line[MT_REQUEST_BYTES + 64];
    char *end = line + sizeof(line) - 1, *out = line;
    out = mt_put_text(out, end, first);
    if (second != NULL) out = mt_put_text(out, end, second);
    *out++ = '\n';
    ssize_t ignored = send(client, line, (size_t)(out - line), MSG_NOSIGNAL);
    (void)ignored;
}

/* Reads one request line (without its newline) into `request`; false on timeout, EOF or a line too long. */
static bool mt_read_request(int client, char *request, size_t size) {
    size_t length = 0;
    while (length < size - 1) {
        ssize_t n = recv(client, request + length, size - 1 - length, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        char *newline = memchr(request + length, '\n', (size_t)n);
        length += (size_t)n;
        if (newline != NULL) {
            *newline = '\0';
            return true;
        }
    }
    return false;
}

static void mt_serve(int client) {
    struct timeval timeout = {.tv_sec = 2, .tv_usec = 0};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    struct ucred peer;
    socklen_t peer_size = sizeof(peer);
    if (getsockopt(client, SOL_SOCKET, SO_PEERCRED, &peer, &peer_size) != 0 || peer.uid != g_server_uid) {
        char detail[96], *end = detail + sizeof(detail) - 1, *out = detail;
        out = mt_put_decimal(out, end, (uint64_t)g_server_uid);
        out = mt_put_text(out, end, ", not from uid ");
        out = mt_put_decimal(out, end, peer_size == sizeof(peer) ? (uint64_t)peer.uid : UINT64_MAX);
        *out = '\0';
        mt_reply(client, "refused: this process accepts control requests only from its own user, uid ", detail);
        return;
    }
    char request[MT_REQUEST_BYTES];
    if (!mt_read_request(client, request, sizeof(request))) {
        mt_reply(client, "error: no request line (at most 511 bytes, ending in a newline) within 2 s", NULL);
        return;
    }
    /* Never starts the trace itself: files it opened would be in this thread's table only. */
    if (atomic_load(&g_status) == MT_STATUS_UNINITIALIZED) {
        mt_reply(client,
                 "error: this process has not started its trace yet (a forked child starts it at its first"
                 " allocation call); try again",
                 NULL);
        return;
    }
    if (atomic_load(&g_status) != MT_STATUS_TRACING || !mt_is_trace_owner() || !mt_sync_trace_descriptor()) {
        mt_reply(client, "error: this process is not tracing (its trace could not be written)", NULL);
        return;
    }
    if (strcmp(request, "start") == 0) {
        bool was_paused = mt_control_is_paused();
        mt_control_resume();
        mt_reply(client, was_paused ? "ok: recording" : "ok: recording (it already was)", NULL);
    } else if (strcmp(request, "stop") == 0) {
        bool was_paused = mt_control_is_paused();
        mt_control_pause();
        mt_reply(client, was_paused ? "ok: paused (it already was)" : "ok: paused", NULL);
    } else if (strncmp(request, "mark ", 5) == 0) {
        mt_control_mark(request + 5);
        mt_reply(client, "ok: mark ", request + 5);
    } else if (strncmp(request, "snapshot ", 9) == 0) {
        mt_control_snapshot(request + 9);
        mt_reply(client, "ok: snapshot ", request + 9);
    } else if (strcmp(request, "status") == 0) {
        mt_reply(client, mt_control_is_paused() ? "ok: paused" : "ok: recording", NULL);
    } else {
        mt_reply(client, "error: unknown request (start, stop, mark NAME, snapshot NAME, status): ", request);
    }
}

static void *mt_server_main(void *unused) {
    (void)unused;
    t_guard = MT_GUARD_PINNED; /* for good: nothing this thread does is the program's */
    if (unshare(CLONE_FILES) != 0) {
        mt_say("cannot give the control thread a descriptor table of its own: ", strerror(errno), "; ctl is off", NULL);
        return NULL;
    }
    mt_close_program_descriptors();
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    memcpy(address.sun_path, g_socket_path, sizeof(g_socket_path));
    unlink(g_socket_path); /* a socket left by an earlier process with this pid (killed) */
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof(address)) != 0 ||
        chmod(g_socket_path, 0600) != 0 || listen(listener, 8) != 0) {
        mt_say("cannot listen on the control socket ", g_socket_path, ": ", strerror(errno), "; ctl is off", NULL);
        if (listener >= 0) close(listener);
        return NULL;
    }
    for (;;) {
        int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (client < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM)
                continue;
            mt_say("the control socket failed: ", strerror(errno), "; ctl is off", NULL);
            return NULL;
        }
        mt_serve(client);
        close(client);
    }
}

void mt_control_server_start(void) {
    if (!g_config.control || !mt_prepare_socket_path()) return;
    g_server_pid = getpid();
    g_server_uid = geteuid();
    /* The thread inherits this mask: every signal blocked, but the leak scan's stop signal when it is on. */
    sigset_t all, saved;
    sigfillset(&all);
    if (g_leak_scan) sigdelset(&all, MT_STOP_SIGNAL);
    real.pthread_sigmask(SIG_SETMASK, &all, &saved);
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, MT_SERVER_STACK_BYTES);
    pthread_t thread;
    int failed = pthread_create(&thread, &attributes, mt_server_main, NULL);
    pthread_attr_destroy(&attributes);
    real.pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (failed != 0) {
        g_server_pid = 0;
        mt_say("cannot start the control thread: ", strerror(failed), "; ctl is off", NULL);
    }
}

void mt_control_server_remove_socket(void) {
    if (g_server_pid != 0 && g_server_pid == getpid()) unlink(g_socket_path);
}
