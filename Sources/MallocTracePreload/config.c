/* MALLOCTRACE_* environment variables (documented in README.md, "Environment variables"). */
#include "internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

mt_config_t g_config;
extern char **environ;

#define MT_DEFAULT_DEPTH 64
#define MT_DEFAULT_OUTPUT "malloctrace.%e.%p.mtrace"

static bool mt_parse_number(const char *text, uint64_t max, uint64_t *value) {
    if (text == NULL || *text == '\0') return false;
    uint64_t result = 0;
    for (; *text; text++) {
        if (*text < '0' || *text > '9') return false;
        result = result * 10 + (uint64_t)(*text - '0');
        if (result > max) return false;
    }
    *value = result;
    return true;
}

static char *mt_append(char *out, char *end, const char *text, size_t length) {
    size_t room = (size_t)(end - out);
    if (length > room) length = room;
    memcpy(out, text, length);
    return out + length;
}

static char *mt_append_number(char *out, char *end, uint64_t value) {
    char digits[24];
    size_t n = 0;
    do {
        digits[sizeof(digits) - 1 - n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    return mt_append(out, end, digits + sizeof(digits) - n, n);
}

static const char *mt_executable_name(size_t *length) {
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (n <= 0) {
        *length = 7;
        return "unknown";
    }
    path[n] = '\0';
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    *length = strlen(name);
    return name;
}

/*
 * An allocation in a .preinit_array function starts the tracer before libc's initializer has set environ:
 * getenv sees nothing then. The variables the process started with are in /proc/self/environ; only the
 * tracer's own are kept (read without the allocator, NUL-separated).
 */
static char g_early_environment[16 * 1024];
static size_t g_early_length;
static bool g_early_loaded;

/* The tracer's variables, and glibc's malloc settings (allocator.c reads the mmap threshold from them). */
static bool mt_is_tracer_variable(const char *entry, size_t length) {
    return (length > 12 && memcmp(entry, "MALLOCTRACE_", 12) == 0) ||
           (length > 7 && memcmp(entry, "MALLOC_", 7) == 0) || (length > 11 && memcmp(entry, "LD_PRELOAD=", 11) == 0) ||
           (length > 15 && memcmp(entry, "GLIBC_TUNABLES=", 15) == 0);
}

/* What a followed child needs to be traced in turn: the tracer's own variables and LD_PRELOAD. */
static bool mt_is_follow_variable(const char *entry, size_t length) {
    return (length > 12 && memcmp(entry, "MALLOCTRACE_", 12) == 0) ||
           (length > 11 && memcmp(entry, "LD_PRELOAD=", 11) == 0);
}

/* The entries of /proc/self/environ (the environment this image started with) that `wanted` keeps, copied into
 * `out` NUL-separated; returns their bytes. Read without the allocator. */
static size_t mt_read_start_environment(bool (*wanted)(const char *, size_t), char *out, size_t capacity) {
    size_t used = 0;
    int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char block[4096], entry[8192];
    size_t entry_length = 0;
    bool too_long = false;
    ssize_t n;
    while ((n = read(fd, block, sizeof(block))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (block[i] != '\0') {
                if (entry_length < sizeof(entry))
                    entry[entry_length++] = block[i];
                else
                    too_long = true;
                continue;
            }
            if (!too_long && wanted(entry, entry_length) && used + entry_length + 1 <= capacity) {
                memcpy(out + used, entry, entry_length);
                out[used + entry_length] = '\0';
                used += entry_length + 1;
            }
            entry_length = 0;
            too_long = false;
        }
    }
    close(fd);
    return used;
}

static void mt_load_early_environment(void) {
    g_early_loaded = true;
    g_early_length = mt_read_start_environment(mt_is_tracer_variable, g_early_environment, sizeof(g_early_environment));
}

const char *mt_getenv(const char *name) {
    if (environ != NULL) return getenv(name);
    if (!g_early_loaded) mt_load_early_environment();
    size_t length = strlen(name);
    for (const char *entry = g_early_environment; entry < g_early_environment + g_early_length;
         entry += strlen(entry) + 1)
        if (strncmp(entry, name, length) == 0 && entry[length] == '=') return entry + length + 1;
    return NULL;
}

/* A 0/1 variable: unset or empty gives `fallback`; anything else fails (after one message). */
static bool mt_read_switch(const char *name, bool fallback, bool *value) {
    const char *text = mt_getenv(name);
    *value = text == NULL || *text == '\0' ? fallback : strcmp(text, "1") == 0;
    if (text == NULL || *text == '\0' || strcmp(text, "0") == 0 || strcmp(text, "1") == 0) return true;
    mt_fail(name, " must be 0 or 1, not '", text, "'; tracing is off", NULL);
    return false;
}

/* Expands %p (pid), %e (executable name), %t (start time, seconds since the epoch), %h (host name) and %%
 * in the output pattern; false (after one message) on any other escape, which is more likely a typo than a
 * wish for a literal percent sign. */
static bool mt_expand_output(const char *pattern, char *out, size_t size) {
    char *cursor = out, *end = out + size - 1;
    for (const char *p = pattern; *p && cursor < end; p++) {
        if (p[0] != '%') {
            *cursor++ = *p;
            continue;
        }
        p++;
        if (*p == 'p') {
            cursor = mt_append_number(cursor, end, (uint64_t)getpid());
        } else if (*p == 'e') {
            size_t length;
            const char *name = mt_executable_name(&length);
            cursor = mt_append(cursor, end, name, length);
        } else if (*p == 't') {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            cursor = mt_append_number(cursor, end, (uint64_t)now.tv_sec);
        } else if (*p == 'h') {
            char host[256];
            if (gethostname(host, sizeof(host)) != 0) strcpy(host, "unknown");
            host[sizeof(host) - 1] = '\0';
            cursor = mt_append(cursor, end, host, strlen(host));
        } else if (*p == '%') {
            *cursor++ = '%';
        } else {
            char escape[3] = {'%', *p, '\0'};
            mt_fail("MALLOCTRACE_OUTPUT has an unknown escape '", escape, "' in '", pattern,
                    "' (use %p, %e, %t, %h or %%); tracing is off", NULL);
            return false;
        }
    }
    *cursor = '\0';
    return true;
}

bool mt_read_config(void) {
    /* A relative pattern names a file in the directory the process started in: a followed child forked
     * after a chdir reads the pattern again and must not put its trace elsewhere. */
    static char pattern[4096];
    if (pattern[0] == '\0') {
        const char *output = mt_getenv("MALLOCTRACE_OUTPUT");
        output = output && *output ? output : MT_DEFAULT_OUTPUT;
        size_t length = strlen(output);
        char directory[2048];
        char *out = pattern, *end = pattern + sizeof(pattern) - 1;
        if (output[0] != '/' && getcwd(directory, sizeof(directory)) != NULL && strcmp(directory, "/") != 0) {
            for (const char *c = directory; *c; c++) { /* a '%' in the directory is no escape */
                out = mt_append(out, end, c, 1);
                if (*c == '%') out = mt_append(out, end, "%", 1);
            }
            out = mt_append(out, end, "/", 1);
        }
        out = mt_append(out, end, output, length);
        *out = '\0';
    }
    if (!mt_expand_output(pattern, g_config.output_path, sizeof(g_config.output_path))) return false;

    uint64_t depth = MT_DEFAULT_DEPTH;
    const char *depth_text = mt_getenv("MALLOCTRACE_DEPTH");
    if (depth_text != NULL && !mt_parse_number(depth_text, MT_MAX_STACK_DEPTH, &depth)) {
        mt_fail("MALLOCTRACE_DEPTH must be a whole number from 0 to 256, not '", depth_text, "'; tracing is off", NULL);
        return false;
    }
    g_config.max_depth = (uint32_t)depth;

    const char *unwind = mt_getenv("MALLOCTRACE_UNWIND");
    if (unwind == NULL || strcmp(unwind, "fast") == 0) {
        g_config.unwind_mode = MT_UNWIND_FAST;
    } else if (strcmp(unwind, "libunwind") == 0) {
        g_config.unwind_mode = MT_UNWIND_LIBUNWIND;
    } else if (strcmp(unwind, "none") == 0) {
        g_config.unwind_mode = MT_UNWIND_NONE;
    } else if (strcmp(unwind, "verify") == 0) {
        g_config.unwind_mode = MT_UNWIND_VERIFY;
    } else {
        mt_fail("MALLOCTRACE_UNWIND must be 'fast', 'libunwind', 'none' or 'verify', not '", unwind,
                "'; tracing is off", NULL);
        return false;
    }

    uint64_t rate = 0;
    const char *rate_text = mt_getenv("MALLOCTRACE_SAMPLE_RATE");
    if (rate_text != NULL && *rate_text != '\0' && !mt_parse_number(rate_text, UINT32_MAX, &rate)) {
        mt_fail("MALLOCTRACE_SAMPLE_RATE must be a whole number of bytes from 0 (record every call) to 4294967295, "
                "not '",
                rate_text, "'; tracing is off", NULL);
        return false;
    }
    g_config.sample_rate = (uint32_t)rate;
    const char *seed_text = mt_getenv("MALLOCTRACE_SAMPLE_SEED");
    g_config.sample_seed_given = seed_text != NULL && *seed_text != '\0';
    if (g_config.sample_seed_given && !mt_parse_number(seed_text, UINT64_MAX / 10, &g_config.sample_seed)) {
        mt_fail("MALLOCTRACE_SAMPLE_SEED must be a whole number, not '", seed_text, "'; tracing is off", NULL);
        return false;
    }

    if (!mt_read_switch("MALLOCTRACE_LEAK_SCAN", false, &g_config.leak_scan) ||
        !mt_read_switch("MALLOCTRACE_RSS", true, &g_config.rss_samples) ||
        !mt_read_switch("MALLOCTRACE_USABLE", true, &g_config.usable_sizes) ||
        !mt_read_switch("MALLOCTRACE_MMAP", false, &g_config.trace_mappings))
        return false;

    /* Sampled events are rare: reading the clock for each costs nothing measurable, and 16 of them can span
     * minutes, which would put an event far before its time (in a periodic profile, in the wrong interval). */
    uint64_t clock_every = g_config.sample_rate != 0 ? 1 : MT_DEFAULT_CLOCK_EVERY;
    const char *clock_text = mt_getenv("MALLOCTRACE_CLOCK_EVERY");
    if (clock_text != NULL && *clock_text != '\0' &&
        (!mt_parse_number(clock_text, MT_DEFAULT_CLOCK_EVERY, &clock_every) || clock_every == 0)) {
        mt_fail("MALLOCTRACE_CLOCK_EVERY must be a whole number of events from 1 to 16, not '", clock_text,
                "'; tracing is off", NULL);
        return false;
    }
    g_config.clock_every = (uint32_t)clock_every;

    const char *start = mt_getenv("MALLOCTRACE_START");
    g_config.start_paused = start != NULL && strcmp(start, "paused") == 0;
    if (start != NULL && *start != '\0' && !g_config.start_paused && strcmp(start, "running") != 0) {
        mt_fail("MALLOCTRACE_START must be 'running' or 'paused', not '", start, "'; tracing is off", NULL);
        return false;
    }
    const char *control = mt_getenv("MALLOCTRACE_CONTROL");
    if (control != NULL && *control != '\0' && strcmp(control, "0") != 0 && strcmp(control, "1") != 0) {
        mt_fail("MALLOCTRACE_CONTROL must be 0 or 1, not '", control, "'; tracing is off", NULL);
        return false;
    }
    /* Starting paused without a way to start is useless: paused implies control, unless turned off. */
    g_config.control = control != NULL && *control != '\0' ? strcmp(control, "1") == 0 : g_config.start_paused;
    const char *control_dir = mt_getenv("MALLOCTRACE_CONTROL_DIR");
    g_config.control_dir[0] = '\0';
    if (control_dir != NULL && *control_dir != '\0') {
        if (control_dir[0] != '/' || strlen(control_dir) >= sizeof(g_config.control_dir) - 16) {
            mt_fail("MALLOCTRACE_CONTROL_DIR must be an absolute path of at most 90 bytes, not '", control_dir,
                    "'; tracing is off", NULL);
            return false;
        }
        strcpy(g_config.control_dir, control_dir);
    }

    const char *follow = mt_getenv("MALLOCTRACE_FOLLOW_CHILDREN");
    g_config.follow_children = follow != NULL && strcmp(follow, "1") == 0;
    return true;
}

static bool mt_is_own_entry(const char *entry, size_t length, const char *self_path) {
    size_t self_length = self_path ? strlen(self_path) : 0;
    if (self_length == length && memcmp(entry, self_path, length) == 0) return true;
    static const char own_name[] = "libmalloctrace.so";
    size_t name_length = sizeof(own_name) - 1;
    return length >= name_length && memcmp(entry + length - name_length, own_name, name_length) == 0 &&
           (length == name_length || entry[length - name_length - 1] == '/');
}

/*
 * Processes this one execs would otherwise load the tracer too and fight over the output file.
 * Unless children are followed, remove the tracer from LD_PRELOAD and drop the variables it read,
 * which leaves the environment as it was before `malloctrace run` added them.
 */
static bool g_scrub_deferred;
static char g_scrub_self_path[4096];

/* With children followed: the variables this image started with, for an exec whose environment lacks them. */
static char g_follow_environment[16 * 1024];
static size_t g_follow_length;

void mt_scrub_environment(const char *self_path) {
    if (g_config.follow_children) {
        g_follow_length =
            mt_read_start_environment(mt_is_follow_variable, g_follow_environment, sizeof(g_follow_environment));
        return;
    }
    if (environ == NULL) {
        /* Before libc's initializer (see mt_getenv): it is about to set environ to the original variables,
         * so the scrub waits for this library's constructor (mt_scrub_deferred_environment). */
        g_scrub_deferred = true;
        if (self_path != NULL && strlen(self_path) < sizeof(g_scrub_self_path)) strcpy(g_scrub_self_path, self_path);
        return;
    }
    const char *preload = getenv("LD_PRELOAD");
    if (preload != NULL) {
        static char kept[8192];
        char *out = kept, *end = kept + sizeof(kept) - 1;
        const char *p = preload;
        while (*p) {
            while (*p == ':' || *p == ' ') p++;
            const char *start = p;
            while (*p && *p != ':' && *p != ' ') p++;
            size_t length = (size_t)(p - start);
            if (length == 0 || mt_is_own_entry(start, length, self_path)) continue;
            if (out != kept) out = mt_append(out, end, ":", 1);
            out = mt_append(out, end, start, length);
        }
        *out = '\0';
        if (kept[0] == '\0')
            unsetenv("LD_PRELOAD");
        else
            setenv("LD_PRELOAD", kept, 1);
    }
    unsetenv("MALLOCTRACE_OUTPUT");
    unsetenv("MALLOCTRACE_DEPTH");
    unsetenv("MALLOCTRACE_UNWIND");
    unsetenv("MALLOCTRACE_FOLLOW_CHILDREN");
    unsetenv("MALLOCTRACE_SAMPLE_RATE");
    unsetenv("MALLOCTRACE_SAMPLE_SEED");
    unsetenv("MALLOCTRACE_LEAK_SCAN");
    unsetenv("MALLOCTRACE_RSS");
    unsetenv("MALLOCTRACE_USABLE");
    unsetenv("MALLOCTRACE_MMAP");
    unsetenv("MALLOCTRACE_CLOCK_EVERY");
    unsetenv("MALLOCTRACE_START");
    unsetenv("MALLOCTRACE_CONTROL");
    unsetenv("MALLOCTRACE_CONTROL_DIR");
}

/* Whether `environment` has an entry for the variable `entry` (NAME=VALUE) names. */
static bool mt_has_variable(char *const environment[], const char *entry) {
    size_t name_length = (size_t)(strchr(entry, '=') - entry) + 1; /* with the '=' */
    for (size_t i = 0; environment != NULL && environment[i] != NULL; i++)
        if (strncmp(environment[i], entry, name_length) == 0) return true;
    return false;
}

size_t mt_follow_environment_size(char *const environment[]) {
    if (!g_config.follow_children || g_follow_length == 0) return 0;
    size_t present = 0, missing = 0;
    while (environment != NULL && environment[present] != NULL) present++;
    const char *end = g_follow_environment + g_follow_length;
    for (const char *entry = g_follow_environment; entry < end; entry += strlen(entry) + 1)
        if (!mt_has_variable(environment, entry)) missing++;
    return missing == 0 ? 0 : present + missing + 1;
}

void mt_follow_environment(char *const environment[], char **followed) {
    size_t next = 0;
    while (environment != NULL && environment[next] != NULL) {
        followed[next] = environment[next];
        next++;
    }
    const char *end = g_follow_environment + g_follow_length;
    for (const char *entry = g_follow_environment; entry < end; entry += strlen(entry) + 1)
        if (!mt_has_variable(environment, entry)) followed[next++] = (char *)entry;
    followed[next] = NULL;
}

void mt_scrub_deferred_environment(void) {
    if (!g_scrub_deferred || environ == NULL) return;
    g_scrub_deferred = false;
    mt_scrub_environment(g_scrub_self_path[0] ? g_scrub_self_path : NULL);
}
