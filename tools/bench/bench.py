#!/usr/bin/env python3
"""malloctrace benchmark harness (standard library only). Normally started by tools/bench/run.sh.

For every workload it runs, interleaved round by round, the program untraced, under
`malloctrace run`, with the preload library alone (LD_PRELOAD, no CLI, no end-of-run summary)
and under `heaptrack`; it measures each run's wall time, CPU time (user + sys) and peak RSS with
wait4(), keeps the median of each, and compares trace sizes and the time and memory needed to read
the traces (`malloctrace report` vs `heaptrack_print`).  It also measures the fixed start-up cost
on /bin/true.  Results: a Markdown report (printed and written to --out) and a JSON file with every
raw measurement next to it.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS_DIR = os.path.join(HERE, "workloads")

# Input sizes.  The full sizes follow the project's performance issue (>= 5 M allocation calls for
# the synthetic churn, a 200 k-row SQL script, ...); --quick uses about a tenth.
SIZES = {
    "full": dict(churn_calls=5_000_000, stl_rounds=100, sql_rows=200_000, py_records=40_000,
                 git_commits=3000, cc_functions=600),
    "quick": dict(churn_calls=500_000, stl_rounds=10, sql_rows=20_000, py_records=5_000,
                  git_commits=300, cc_functions=60),
}

# Sampling mode's rate: the production setting the README suggests (tcmalloc's default is 2 MiB).
SAMPLE_RATE = "512K"
VARIANTS = ["base", "mt", "pre", "smp", "ht"]
# Measured too, in a table of its own: the exit-time leak scan (MALLOCTRACE_LEAK_SCAN=1).
MEASURED_VARIANTS = VARIANTS + ["lk"]
VARIANT_TITLES = {
    "base": "untraced",
    "mt": "malloctrace run",
    "pre": "preload only",
    "smp": "malloctrace run --sample-rate " + SAMPLE_RATE,
    "ht": "heaptrack",
    "lk": "malloctrace run --leak-kinds",
}
# Live blocks at exit of the leak scan's own workload (workloads/liveblocks.c).
LIVE_BLOCKS = {"full": 1_000_000, "quick": 1_000_000}


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Running one command and measuring it


class RunResult:
    def __init__(self, wall, user, sys_, maxrss_kb, status, timed_out):
        self.wall = wall
        self.cpu = user + sys_
        self.user = user
        self.sys = sys_
        self.maxrss_kb = maxrss_kb
        self.status = status  # exit code, or -N for signal N
        self.timed_out = timed_out

    @property
    def ok(self):
        return self.status == 0 and not self.timed_out

    def as_dict(self):
        return dict(wall=self.wall, user=self.user, sys=self.sys, maxrss_kb=self.maxrss_kb,
                    status=self.status, timed_out=self.timed_out)


MEASURE = None  # the compiled measure.c helper, set by main()


def build_measure_helper(work):
    global MEASURE
    MEASURE = os.path.join(work, "bin", "measure")
    os.makedirs(os.path.dirname(MEASURE), exist_ok=True)
    check_call(["gcc", "-O2", "-o", MEASURE, os.path.join(HERE, "measure.c")])


def run_measured(argv, env, log_path, stdin_path=None, timeout=900.0, target_env=None):
    """Runs argv through the measure helper, in its own process group (so a timeout can kill the
    whole tree); returns wall time, CPU time of the tree and peak RSS (see measure.c).
    target_env: variables for the program only, not for the helper (LD_PRELOAD)."""
    result_path = log_path + ".result"
    stdin_fd = os.open(stdin_path or os.devnull, os.O_RDONLY)
    stdout_fd = os.open(os.devnull, os.O_WRONLY)
    stderr_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    actions = [
        (os.POSIX_SPAWN_DUP2, stdin_fd, 0),
        (os.POSIX_SPAWN_DUP2, stdout_fd, 1),
        (os.POSIX_SPAWN_DUP2, stderr_fd, 2),
    ]
    try:
        os.unlink(result_path)
    except FileNotFoundError:
        pass
    timed_out = []
    try:
        settings = ["%s=%s" % item for item in (target_env or {}).items()]
        pid = os.posix_spawn(MEASURE, [MEASURE, result_path] + settings + ["--"] + argv, env,
                             file_actions=actions, setpgroup=0)
    finally:
        for fd in (stdin_fd, stdout_fd, stderr_fd):
            os.close(fd)

    def on_timeout():
        timed_out.append(True)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, on_timeout)
    timer.start()
    try:
        _, helper_status = os.waitpid(pid, 0)
    except BaseException:
        try:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        raise
    finally:
        timer.cancel()
    # Anything the command left behind in its group (it should not) goes too.
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        with open(result_path) as f:
            wall_ns, user_us, sys_us, maxrss_kb, status = (int(x) for x in f.read().split())
    except (OSError, ValueError):  # the helper could not start the program, or was killed
        return RunResult(0.0, 0.0, 0.0, 0, os.waitstatus_to_exitcode(helper_status), bool(timed_out))
    return RunResult(wall_ns / 1e9, user_us / 1e6, sys_us / 1e6, maxrss_kb, status, bool(timed_out))


def tail(path, lines=12):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return ""


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------------------------------
# Workloads


class Workload:
    def __init__(self, key, title, argv, env=None, prepare=None, note=""):
        self.key = key
        self.title = title
        self.argv = argv
        self.env = env or {}
        self.prepare = prepare
        self.note = note


def check_call(argv, **kwargs):
    log("  $ " + " ".join(argv))
    subprocess.run(argv, check=True, **kwargs)


def real_python():
    """A real interpreter binary (not a pyenv shim): /usr/bin/python3 if present."""
    for candidate in ("/usr/bin/python3", sys.executable):
        if candidate and os.path.isfile(candidate):
            path = os.path.realpath(candidate)
            with open(path, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    return path
    out = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return os.path.realpath(out)


def build_workloads(work, sizes, selected):
    """Compiles the synthetic programs and generates the fixed inputs; returns the workloads."""
    bin_dir = os.path.join(work, "bin")
    data_dir = os.path.join(work, "data")
    os.makedirs(bin_dir, exist_ok=True)
    os.makedirs(data_dir, exist_ok=True)
    gen = [real_python(), os.path.join(WORKLOADS_DIR, "gen.py")]
    workloads = []
    want = lambda key: selected is None or key in selected

    if want("churn1") or want("churn8"):
        churn = os.path.join(bin_dir, "churn")
        check_call(["gcc", "-O2", "-g", "-fno-builtin", "-pthread", "-o", churn,
                    os.path.join(WORKLOADS_DIR, "churn.c")])
        calls = sizes["churn_calls"]
        if want("churn1"):
            workloads.append(Workload("churn1", "churn, 1 thread", [churn, "1", str(calls)],
                                      note="{:,} allocation calls".format(calls)))
        if want("churn8"):
            workloads.append(Workload("churn8", "churn, 8 threads", [churn, "8", str(calls)],
                                      note="{:,} allocation calls, cross-thread frees".format(calls)))
    if want("stl"):
        stl = os.path.join(bin_dir, "stl")
        check_call(["g++", "-O2", "-g", "-fno-builtin", "-std=c++17", "-o", stl,
                    os.path.join(WORKLOADS_DIR, "stl.cpp")])
        workloads.append(Workload("stl", "C++ STL", [stl, str(sizes["stl_rounds"])],
                                  note="%d rounds" % sizes["stl_rounds"]))
    if want("sqlite"):
        script = os.path.join(data_dir, "script.sql")
        check_call(gen + ["sql", str(sizes["sql_rows"]), script])
        db = os.path.join(data_dir, "bench.db")

        def fresh_db():
            for suffix in ("", "-journal", "-wal", "-shm"):
                try:
                    os.unlink(db + suffix)
                except FileNotFoundError:
                    pass

        workloads.append(Workload("sqlite", "sqlite3", [shutil.which("sqlite3"), "-batch", db, ".read " + script],
                                  prepare=fresh_db, note="{:,}-row insert + queries".format(sizes["sql_rows"])))
    if want("python"):
        workloads.append(Workload(
            "python", "python3 (PYTHONMALLOC=malloc)",
            [real_python(), "-s", os.path.join(WORKLOADS_DIR, "pywork.py"), str(sizes["py_records"])],
            env={"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"},
            note="{:,} records".format(sizes["py_records"])))
    if want("git"):
        repo = os.path.join(data_dir, "repo")
        check_call(gen + ["git", str(sizes["git_commits"]), repo])
        workloads.append(Workload("git", "git log --stat", [shutil.which("git"), "-C", repo, "log", "--stat"],
                                  env={"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
                                       "GIT_PAGER": "cat"},
                                  note="{:,} commits".format(sizes["git_commits"])))
    if want("cc1"):
        source = os.path.join(data_dir, "big.c")
        check_call(gen + ["csource", str(sizes["cc_functions"]), source])
        cc1 = subprocess.run(["gcc", "-print-prog-name=cc1"], capture_output=True, text=True,
                             check=True).stdout.strip()
        workloads.append(Workload("cc1", "gcc's cc1 -O0", [cc1, "-quiet", "-O0", source, "-o", "/dev/null"],
                                  note="%d generated functions" % sizes["cc_functions"]))
    return workloads


# ---------------------------------------------------------------------------------------------
# The tracers


class Tracers:
    def __init__(self, malloctrace, work):
        self.malloctrace = malloctrace
        self.preload = subprocess.run([malloctrace, "preload-path"], capture_output=True, text=True,
                                      check=True).stdout.strip()
        self.heaptrack = shutil.which("heaptrack")
        self.heaptrack_print = shutil.which("heaptrack_print")
        self.work = work
        self.counter = 0

    def trace_dir(self, variant):
        path = os.path.join(self.work, "traces", variant)
        os.makedirs(path, exist_ok=True)
        return path

    def command(self, variant, argv, name):
        """`argv` run under `variant`: (argv, variables to set for the program only)."""
        self.counter += 1
        if variant == "base":
            return argv, {}
        if variant == "mt":
            pattern = os.path.join(self.trace_dir("mt"), "%s.%s.%%p.mtrace" % (name, self.counter))
            return [self.malloctrace, "run", "-o", pattern, "--"] + argv, {}
        if variant == "lk":
            pattern = os.path.join(self.trace_dir("lk"), "%s.%s.%%p.mtrace" % (name, self.counter))
            return [self.malloctrace, "run", "--leak-kinds", "-o", pattern, "--"] + argv, {}
        if variant == "smp":
            pattern = os.path.join(self.trace_dir("smp"), "%s.%s.%%p.mtrace" % (name, self.counter))
            return [self.malloctrace, "run", "--sample-rate", SAMPLE_RATE, "-o", pattern, "--"] + argv, {}
        if variant == "pre":
            pattern = os.path.join(self.trace_dir("pre"), "%s.%s.%%p.mtrace" % (name, self.counter))
            return argv, {"LD_PRELOAD": self.preload, "MALLOCTRACE_OUTPUT": pattern}
        if variant == "ht":
            prefix = os.path.join(self.trace_dir("ht"), "%s.%s" % (name, self.counter))
            return [self.heaptrack, "-o", prefix] + argv, {}
        raise ValueError(variant)

    def leak_scan(self, variant, timeout):
        """The leak scan of the largest trace the last run wrote (`summary.leak_scan` of its JSON report), or None."""
        files = [p for p in glob.glob(os.path.join(self.trace_dir(variant), "*")) if os.path.isfile(p)]
        if not files:
            return None
        trace = max(files, key=os.path.getsize)
        try:
            out = subprocess.run([self.malloctrace, "report", trace, "--format", "json", "--sections", "summary",
                                  "--symbolizer", "none"], capture_output=True, text=True, timeout=timeout)
            return json.loads(out.stdout)["summary"].get("leak_scan") if out.returncode == 0 else None
        except (subprocess.TimeoutExpired, ValueError, KeyError):
            return None

    def collect(self, variant, keep_as=None):
        """Total size of the trace files the last run wrote; deletes them, except that the largest
        one is moved to keep_as (plus its .zst/.gz suffix) when keep_as is given.
        Returns (total bytes or None for the untraced variant, kept path or None)."""
        if variant == "base":
            return None, None
        files = [p for p in glob.glob(os.path.join(self.trace_dir(variant), "*")) if os.path.isfile(p)]
        total = sum(os.path.getsize(p) for p in files)
        files.sort(key=os.path.getsize, reverse=True)
        kept = None
        if keep_as and files:
            os.makedirs(os.path.dirname(keep_as), exist_ok=True)
            kept = keep_as + "".join(re.findall(r"\.(?:zst|gz)$", files[0]))
            shutil.move(files.pop(0), kept)
        for p in files:
            os.unlink(p)
        return total, kept


# ---------------------------------------------------------------------------------------------
# Measuring


def base_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MALLOCTRACE_", "LD_PRELOAD", "PYTHON", "GIT_", "MALLOC_"))}
    env["LC_ALL"] = "C"
    return env


def measure_variants(tracers, name, argv, env, runs, warmup, prepare, timeout, work, keep,
                     variants=MEASURED_VARIANTS, scans=None):
    """Runs every variant `runs` times, interleaved (the order rotates each round). The leak scans of the
    "lk" runs (summary.leak_scan of their traces) are appended to `scans` when it is a list."""
    logs = os.path.join(work, "logs")
    os.makedirs(logs, exist_ok=True)
    results = {v: [] for v in variants}
    sizes = {v: [] for v in variants}
    failures = {}
    kept = {}
    for _ in range(warmup):
        if prepare:
            prepare()
        run_measured(argv, env, os.path.join(logs, name + ".warmup.log"), timeout=timeout)
    for round_index in range(runs):
        order = variants[round_index % len(variants):] + variants[:round_index % len(variants)]
        summary = []
        for variant in order:
            if prepare:
                prepare()
            command, target_env = tracers.command(variant, argv, name)
            log_path = os.path.join(logs, "%s.%s.log" % (name, variant))
            result = run_measured(command, env, log_path, timeout=timeout, target_env=target_env)
            keep_as = None  # the trace of the last successful run is kept for measure_reports
            if keep and result.ok and variant in ("mt", "ht"):
                keep_as = os.path.join(work, "kept", "%s.%s" % (name, variant))
            if variant == "lk" and result.ok and scans is not None:
                scan = tracers.leak_scan(variant, timeout)
                if scan is not None:
                    scans.append(scan)
            size, kept_path = tracers.collect(variant, keep_as=keep_as)
            if kept_path:
                kept[variant] = kept_path
            if result.ok:
                results[variant].append(result)
                if size is not None:
                    sizes[variant].append(size)
            else:
                why = "timed out after %.0f s" % timeout if result.timed_out else "exit status %d" % result.status
                failures.setdefault(variant, "%s; stderr ends:\n%s" % (why, tail(log_path)))
            summary.append("%s %.2fs%s" % (variant, result.wall, "" if result.ok else " FAILED"))
        log("    round %d/%d: %s" % (round_index + 1, runs, ", ".join(summary)))
    return results, sizes, failures, kept


def stats_of(results):
    if not results:
        return None
    return dict(
        wall=median(r.wall for r in results),
        cpu=median(r.cpu for r in results),
        maxrss_mb=median(r.maxrss_kb for r in results) / 1024.0,
        runs=len(results),
    )


def heaptrack_calls(print_output):
    match = re.search(r"calls to allocation functions:\s*(\d+)", print_output)
    return int(match.group(1)) if match else None


def measure_reports(tracers, name, kept, runs, timeout, work):
    """malloctrace report vs heaptrack_print, each on its own trace of the same workload."""
    logs = os.path.join(work, "logs")
    info = {}
    failures = {}
    if "mt" in kept:
        try:
            out = subprocess.run([tracers.malloctrace, "report", kept["mt"], "--format", "json"],
                                 capture_output=True, text=True, timeout=timeout, errors="replace")
            summary = json.loads(out.stdout)["summary"] if out.returncode == 0 else None
        except (subprocess.TimeoutExpired, ValueError, KeyError) as error:
            out, summary = None, None
            failures["mt"] = "`malloctrace report --format json` failed: %s" % error
        if summary is not None:
            info["mt_calls"] = summary["allocation_calls"]
            info["mt_truncated"] = summary.get("truncated", False)
        elif out is not None:
            failures["mt"] = "`malloctrace report --format json` exit status %d; stderr ends:\n%s" % (
                out.returncode, "\n".join(out.stderr.splitlines()[-12:]))
    if "ht" in kept:
        try:
            out = subprocess.run([tracers.heaptrack_print, kept["ht"]], capture_output=True, text=True,
                                 timeout=timeout, errors="replace")
            info["ht_calls"] = heaptrack_calls(out.stdout)
        except subprocess.TimeoutExpired:
            info["ht_calls"] = None
    commands = {}
    if "mt" in kept and "mt_calls" in info:
        # The default report (from the trace's stored analysis), a full pass over the events with the same
        # options, and a full pass with a filter that selects every event (the filtering path).
        commands["mt"] = [tracers.malloctrace, "report", kept["mt"]]
        commands["mt-full"] = [tracers.malloctrace, "report", "--no-index", kept["mt"]]
        commands["mt-filter"] = [tracers.malloctrace, "report", "--from", "0", kept["mt"]]
    if "ht" in kept:
        commands["ht"] = [tracers.heaptrack_print, kept["ht"]]
    results = {k: [] for k in commands}
    keys = list(commands)
    for round_index in range(runs):
        order = keys[round_index % max(1, len(keys)):] + keys[:round_index % max(1, len(keys))]
        for key in order:
            log_path = os.path.join(logs, "%s.report-%s.log" % (name, key))
            result = run_measured(commands[key], base_env(), log_path, timeout=timeout)
            if result.ok:
                results[key].append(result)
            else:
                failures.setdefault(key, "exit status %d; stderr ends:\n%s" % (result.status, tail(log_path)))
    info["stats"] = {k: stats_of(v) for k, v in results.items()}
    info["raw"] = {k: [r.as_dict() for r in v] for k, v in results.items()}
    info["failures"] = failures
    return info


def measure_workload(tracers, w, env0, runs, timeout, work, reports_only=False):
    """Everything measured for one workload: the four variants, trace sizes, reading the traces.
    `reports_only`: one traced run each with malloctrace and heaptrack, then only the reading of the traces."""
    env = dict(env0, **w.env)
    scans = []
    variants = ["mt", "ht"] if reports_only else MEASURED_VARIANTS
    results, sizes, failures, kept = measure_variants(
        tracers, w.key, w.argv, env, 1 if reports_only else runs, 0 if reports_only else 1, w.prepare, timeout,
        work, keep=True, variants=variants, scans=scans)
    entry = dict(stats={v: stats_of(results[v]) for v in variants},
                 raw={v: [r.as_dict() for r in results[v]] for v in variants},
                 failures=failures, trace_bytes={}, bytes_per_call={}, leak_scans=scans)
    log("    reading the traces: malloctrace report vs heaptrack_print, %d runs each" % runs)
    entry["reports"] = measure_reports(tracers, w.key, kept, runs, timeout, work)
    # Bytes per allocation call use malloctrace's count (heaptrack's if malloctrace's report failed).
    calls = entry["reports"].get("mt_calls") or entry["reports"].get("ht_calls")
    for v in ("mt", "smp", "ht"):
        size = median(sizes.get(v, []))
        entry["trace_bytes"][v] = size
        entry["bytes_per_call"][v] = size / calls if size is not None and calls else None
    shutil.rmtree(os.path.join(work, "kept"), ignore_errors=True)
    shutil.rmtree(os.path.join(work, "traces"), ignore_errors=True)
    return entry


def measure_big_scan(tracers, work, blocks, env0, runs, timeout):
    """The leak scan's own duration with `blocks` live blocks at exit (workloads/liveblocks.c)."""
    program = os.path.join(work, "bin", "liveblocks")
    os.makedirs(os.path.dirname(program), exist_ok=True)
    check_call(["gcc", "-O2", "-g", "-fno-builtin", "-o", program, os.path.join(WORKLOADS_DIR, "liveblocks.c")])
    log("== leak scan of {:,} live blocks: {} runs each".format(blocks, runs))
    scans = []
    results, _, failures, _ = measure_variants(
        tracers, "scan1m", [program, str(blocks)], env0, runs, 1, None, timeout, work, keep=False,
        variants=["base", "mt", "lk"], scans=scans)
    shutil.rmtree(os.path.join(work, "traces"), ignore_errors=True)
    return dict(blocks=blocks, runs=runs, stats={v: stats_of(r) for v, r in results.items()}, scans=scans,
                failures=failures)


def scan_medians(scans):
    """(median scan duration in seconds, median live blocks scanned) of a list of summary.leak_scan objects."""
    durations = [s["duration_ns"] / 1e9 for s in scans if s.get("duration_ns") is not None]
    blocks = median([s["blocks"] for s in scans if s.get("blocks") is not None])
    return median(durations), None if blocks is None else int(blocks)


def render_leak_scan(add, workloads, data, scan_big):
    """The leak scan's tables: its cost on the real workloads and on a million live blocks."""
    add("## Leak scan: `malloctrace run --leak-kinds` (median wall, ratio to untraced)")
    add("")
    add("The scan itself runs once, at exit; the rest of the difference to *malloctrace run* is the table of live "
        "blocks the hooks keep while it is on. *scan* is the scan's own duration as the trace records it "
        "(`summary.leak_scan.duration_ns`), *live blocks* what it classified.")
    add("")
    add("| workload | untraced | malloctrace run | --leak-kinds | --leak-kinds − run | scan | live blocks |")
    add("|---|---:|---:|---:|---:|---:|---:|")
    for w, entry in measured(workloads, data):
        s = entry["stats"]
        base, mt, lk = s.get("base"), s.get("mt"), s.get("lk")
        duration, blocks = scan_medians(entry.get("leak_scans", []))
        cell = lambda v: ("%s (%s)" % (fmt_s(v["wall"]), fmt_ratio(ratio(v["wall"], base["wall"])))
                          if v and base else "–")
        add("| %s | %s | %s | %s | %s | %s | %s |" % (
            w.title, fmt_s(base["wall"]) if base else "FAILED", cell(mt),
            cell(lk) if lk else ("FAILED" if "lk" in entry["failures"] else "–"),
            "%+.0f ms" % ((lk["wall"] - mt["wall"]) * 1000) if lk and mt else "–",
            fmt_ms(duration) if duration is not None else "–", fmt_count(blocks)))
    add("")
    if scan_big:
        s = scan_big["stats"]
        duration, blocks = scan_medians(scan_big["scans"])
        add("A program that keeps {:,} blocks of 16–184 B live at exit (`workloads/liveblocks.c`, median of {} "
            "runs): the scan took **{}** for {} blocks; wall untraced {}, `malloctrace run` {}, "
            "`--leak-kinds` {}.".format(
                scan_big["blocks"], scan_big["runs"], fmt_ms(duration) if duration is not None else "–",
                fmt_count(blocks), *(fmt_s(s[v]["wall"]) if s.get(v) else "FAILED" for v in ("base", "mt", "lk"))))
        add("")


# ---------------------------------------------------------------------------------------------
# Output


def fmt_s(seconds):
    if seconds is None:
        return "–"
    if seconds >= 100:
        return "%.0f s" % seconds
    if seconds >= 10:
        return "%.1f s" % seconds
    if seconds >= 1:
        return "%.2f s" % seconds
    return "%.3f s" % seconds


def fmt_ms(seconds):
    return "–" if seconds is None else "%.1f ms" % (seconds * 1000)


def fmt_ratio(value):
    return "–" if value is None else "%.2f×" % value


def fmt_mb(value):
    if value is None:
        return "–"
    return "%.0f MB" % value if value >= 100 else "%.1f MB" % value


def fmt_count(value):
    return "–" if value is None else "{:,}".format(value)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def tool_versions(malloctrace, python):
    def first_line(argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    return [
        ("malloctrace", "%s (%s)" % (first_line([malloctrace, "--version"]), malloctrace)),
        ("heaptrack", first_line(["heaptrack", "--version"]).replace("heaptrack ", "")),
        ("sqlite3", " ".join(first_line(["sqlite3", "--version"]).split()[:1])),
        ("git", first_line(["git", "--version"]).replace("git version ", "")),
        ("gcc", first_line(["gcc", "-dumpfullversion"])),
        ("python (workload)", "%s (%s)" % (first_line([python, "--version"]), python)),
        ("zstd", " ".join(re.findall(r"v\d+\.\d+\.\d+", first_line(["zstd", "--version"]))[:1]) or "?"),
    ]


def machine_info():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    distro = "?"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return dict(nproc=len(os.sched_getaffinity(0)), cpu=model, kernel=platform.release(), distro=distro,
                memory="%.1f GiB" % mem_gb)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def repo_revision():
    root = os.path.dirname(os.path.dirname(HERE))
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def combine(verdicts):
    """False if any check failed, None (not measured) if any is missing, else True."""
    if any(v is False for v in verdicts):
        return False
    if any(v is None for v in verdicts) or not verdicts:
        return None
    return True


def evaluate_targets(workloads, data, startup):
    """The targets of the performance issue; returns (name, passed: True/False/None, detail) tuples."""
    targets = []

    def wall_ratio(key, variant):
        stats = data.get(key, {}).get("stats", {})
        base, other = stats.get("base"), stats.get(variant)
        return other["wall"] / base["wall"] if base and other else None

    verdicts, details = [], []
    for w in workloads:
        mt, ht = wall_ratio(w.key, "mt"), wall_ratio(w.key, "ht")
        if mt is None or ht is None:
            verdicts.append(None)
            details.append("%s n/a" % w.key)
            continue
        ok = (mt - 1) <= (ht - 1) / 4
        verdicts.append(ok)
        share = "%.0f%%" % (100 * (mt - 1) / (ht - 1)) if ht > 1 else "∞"
        details.append("%s %s %s" % (w.key, "ok" if ok else "FAIL", share))
    targets.append(("malloctrace overhead (wall ratio − 1) ≤ ¼ of heaptrack's on every workload",
                    combine(verdicts), "malloctrace's overhead as a share of heaptrack's: " + ", ".join(details)))

    for key in ("sqlite", "git"):
        if key in data:
            mt = wall_ratio(key, "mt")
            targets.append(("≤ 1.30× untraced wall on %s" % key, None if mt is None else mt <= 1.3,
                            "malloctrace run: %s" % fmt_ratio(mt)))

    if startup:
        name = "start-up of `malloctrace run -- /bin/true` ≤ 30 ms above untraced"
        base, mt = startup["stats"].get("base"), startup["stats"].get("mt")
        if base and mt:
            extra = mt["wall"] - base["wall"]
            targets.append((name, extra <= 0.030, "+%.1f ms (%s vs %s)" % (
                extra * 1000, fmt_ms(mt["wall"]), fmt_ms(base["wall"]))))
        else:
            targets.append((name, None, "n/a"))

    if "churn1" in data and "churn8" in data:
        one, eight = wall_ratio("churn1", "mt"), wall_ratio("churn8", "mt")
        passed = None if one is None or eight is None else eight <= 1.5 * one
        detail = "%s with 8 threads vs %s with 1" % (fmt_ratio(eight), fmt_ratio(one))
        if passed is not None:
            detail += ": %.2f× the single-thread ratio" % (eight / one)
        targets.append(("8-thread churn ratio ≤ 1.5 × the single-thread ratio", passed, detail))

    verdicts, details = [], []
    for w in workloads:
        per_call = data.get(w.key, {}).get("bytes_per_call", {})
        mt, ht = per_call.get("mt"), per_call.get("ht")
        if mt is None or ht is None:
            verdicts.append(None)
            details.append("%s n/a" % w.key)
            continue
        verdicts.append(mt <= ht)
        details.append("%s %s %.1f vs %.1f" % (w.key, "ok" if mt <= ht else "FAIL", mt, ht))
    targets.append(("trace bytes per allocation call ≤ heaptrack's on every workload", combine(verdicts),
                    "B/call, malloctrace vs heaptrack: " + ", ".join(details)))

    # Reading the traces: (command, its name in the target, speed-up it must reach).
    for key, title, factor in (("mt", "`malloctrace report`", 10),
                               ("mt-full", "full pass (`report --no-index`)", 3),
                               ("mt-filter", "full pass with a filter (`report --from 0`)", 3)):
        verdicts, details = [], []
        for w in workloads:
            stats = data.get(w.key, {}).get("reports", {}).get("stats", {})
            mt, ht = stats.get(key), stats.get("ht")
            if not mt or not ht:
                verdicts.append(None)
                details.append("%s n/a" % w.key)
                continue
            speedup = ht["wall"] / mt["wall"]
            ok = speedup >= factor and mt["maxrss_mb"] <= ht["maxrss_mb"]
            verdicts.append(ok)
            details.append("%s %s %.2f× as fast, %s vs %s RSS" % (
                w.key, "ok" if ok else "FAIL", speedup, fmt_mb(mt["maxrss_mb"]), fmt_mb(ht["maxrss_mb"])))
        targets.append(("%s ≥ %d× faster than heaptrack_print with max RSS no larger, every workload" % (title, factor),
                        combine(verdicts), ", ".join(details)))
    return targets



def traced_cells(entry, metric):
    """The malloctrace run, preload-only and heaptrack cells of one workload's row: the median `metric`
    ("wall" or "cpu") and its ratio to the untraced run, or why there is none."""
    s = entry["stats"]
    base = s.get("base")
    cells = []
    for v in ("mt", "pre", "ht"):
        if s.get(v) and base:
            cells.append("%s (%s)" % (fmt_s(s[v][metric]), fmt_ratio(ratio(s[v][metric], base[metric]))))
        else:
            cells.append("FAILED" if v in entry["failures"] else "–")
    return cells

def measured(workloads, data):
    """(workload, its results) for every workload that has results, in table order."""
    return [(w, data[w.key]) for w in workloads if data.get(w.key)]


def render_reading(add, workloads, data):
    """The table of `malloctrace report` (stored analysis, full pass, full pass with a filter) vs heaptrack_print."""
    add("## Reading the trace: `malloctrace report` vs `heaptrack_print` (median wall, peak RSS)")
    add("")
    add("| workload | report (stored analysis) | full pass (`--no-index`) | full pass, filter (`--from 0`) |"
        " heaptrack_print | speed-up: default / full / filter | RSS: default / full / filter |"
        " RSS heaptrack_print |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|")
    for w, entry in measured(workloads, data):
        stats = entry.get("reports", {}).get("stats", {})
        ht = stats.get("ht")
        mts = [stats.get(k) for k in ("mt", "mt-full", "mt-filter")]
        add("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            w.title, *[fmt_s(m["wall"]) if m else "–" for m in mts], fmt_s(ht["wall"]) if ht else "–",
            " / ".join(fmt_ratio(ht["wall"] / m["wall"]) if m and ht else "–" for m in mts),
            " / ".join(fmt_mb(m["maxrss_mb"]) if m else "–" for m in mts),
            fmt_mb(ht["maxrss_mb"]) if ht else "–"))
    add("")
    add("CPU time (user + sys, median) of the same runs: on a busy machine wall time also counts waiting for a CPU.")
    add("")
    add("| workload | report (stored analysis) | full pass | full pass, filter | heaptrack_print |"
        " speed-up by CPU: default / full / filter |")
    add("|---|---:|---:|---:|---:|---:|")
    for w, entry in measured(workloads, data):
        stats = entry.get("reports", {}).get("stats", {})
        ht = stats.get("ht")
        mts = [stats.get(k) for k in ("mt", "mt-full", "mt-filter")]
        add("| %s | %s | %s | %s | %s | %s |" % (
            w.title, *[fmt_s(m["cpu"]) if m else "–" for m in mts], fmt_s(ht["cpu"]) if ht else "–",
            " / ".join(fmt_ratio(ht["cpu"] / m["cpu"]) if m and ht and m["cpu"] > 0 else "–" for m in mts)))
    add("")


def render_header(add, meta):
    add("- Date: %s; mode: %s, %d runs per command (medians), interleaved" % (
        meta["date"], meta["mode"], meta["runs"]))
    m = meta["machine"]
    add("- Machine: %d CPUs (%s), %s RAM, %s, kernel %s; load average %s at start, %s at end" % (
        m["nproc"], m["cpu"], m["memory"], m["distro"], m["kernel"], meta["load_start"], meta["load_end"]))
    add("- Repository: %s; malloctrace build: %s" % (meta["revision"], meta["build"]))
    add("- Tools: " + "; ".join("%s: %s" % (k, v) for k, v in meta["versions"]))
    add("- Total benchmark time: %s" % fmt_s(meta["elapsed"]))


def render_reports_only(meta, workloads, data, targets):
    """`--reports-only`: each workload traced once by each tool, then only the reading of the traces."""
    lines = []
    add = lines.append
    add("# malloctrace benchmark results: reading the traces")
    add("")
    render_header(add, meta)
    add("")
    render_reading(add, workloads, data)
    add("## Targets (from the performance issue)")
    add("")
    for name, passed, detail in targets:
        if "report" not in name and "full pass" not in name:
            continue
        mark = "PASS" if passed else ("N/A" if passed is None else "FAIL")
        add("- **%s** %s — %s" % (mark, name, detail))
    add("")
    add("Each workload was traced once with `malloctrace run` and once with `heaptrack`; the commands above then"
        " read those traces, interleaved round by round. See tools/bench/README.md.")
    return "\n".join(lines) + "\n"


def render(meta, workloads, data, startup, targets, scan_big=None):
    lines = []
    add = lines.append
    add("# malloctrace benchmark results")
    add("")
    render_header(add, meta)
    if "/release/" not in meta["malloctrace"] and not meta["build"].startswith("release"):
        add("")
        add("> The malloctrace CLI measured here may not be a release build (%s): `malloctrace report`"
            " and the end-of-run summary of `malloctrace run` are much slower in a debug build."
            % meta["malloctrace"])
    add("")

    add("## Overhead: wall time (median), ratio to untraced")
    add("")
    add("| workload | input | allocation calls | untraced | malloctrace run | preload only | heaptrack |"
        " mt overhead / ht overhead |")
    add("|---|---|---:|---:|---:|---:|---:|---:|")
    for w, entry in measured(workloads, data):
        s = entry["stats"]
        base = s.get("base")
        cells = traced_cells(entry, "wall")
        share = "–"
        if base and s.get("mt") and s.get("ht") and s["ht"]["wall"] > base["wall"]:
            share = "%.0f%%" % (100 * (s["mt"]["wall"] - base["wall"]) / (s["ht"]["wall"] - base["wall"]))
        add("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            w.title, w.note, fmt_count(entry.get("reports", {}).get("mt_calls")),
            fmt_s(base["wall"]) if base else "FAILED", cells[0], cells[1], cells[2], share))
    add("")

    add("## Sampling mode: `malloctrace run --sample-rate %s` (median wall and CPU, ratio to untraced)" % SAMPLE_RATE)
    add("")
    add("| workload | untraced wall | sampled wall | untraced CPU | sampled CPU | trace | B/call |")
    add("|---|---:|---:|---:|---:|---:|---:|")
    for w, entry in measured(workloads, data):
        s = entry["stats"]
        base, smp = s.get("base"), s.get("smp")
        size, bpc = entry["trace_bytes"].get("smp"), entry["bytes_per_call"].get("smp")
        cells = []
        for metric in ("wall", "cpu"):
            cells.append(fmt_s(base[metric]) if base else "FAILED")
            cells.append("%s (%s)" % (fmt_s(smp[metric]), fmt_ratio(ratio(smp[metric], base[metric])))
                         if smp and base else ("FAILED" if "smp" in entry["failures"] else "–"))
        add("| %s | %s | %s | %s | %s | %s | %s |" % (
            w.title, *cells, fmt_mb(size / 1e6) if size is not None else "–",
            "–" if bpc is None else "%.2f" % bpc))
    add("")

    render_leak_scan(add, workloads, data, scan_big)

    add("## Overhead: CPU time (user + sys of the whole process tree, median), ratio to untraced")
    add("")
    add("| workload | untraced | malloctrace run | preload only | heaptrack |")
    add("|---|---:|---:|---:|---:|")
    for w, entry in measured(workloads, data):
        s = entry["stats"]
        base = s.get("base")
        cells = traced_cells(entry, "cpu")
        add("| %s | %s | %s | %s | %s |" % (w.title, fmt_s(base["cpu"]) if base else "FAILED", *cells))
    add("")

    add("## Peak RSS while tracing (largest single process of the tree, median)")
    add("")
    add("| workload | untraced | malloctrace run | preload only | sampled (%s) | heaptrack |" % SAMPLE_RATE)
    add("|---|---:|---:|---:|---:|---:|")
    for w, entry in measured(workloads, data):
        s = entry["stats"]
        add("| %s | %s |" % (w.title, " | ".join(fmt_mb(s[v]["maxrss_mb"]) if s.get(v) else "–" for v in VARIANTS)))
    add("")

    add("## Trace size")
    add("")
    add("| workload | allocation calls (malloctrace / heaptrack) | malloctrace trace | B/call |"
        " heaptrack trace (.zst) | B/call |")
    add("|---|---:|---:|---:|---:|---:|")
    for w, entry in measured(workloads, data):
        r = entry.get("reports", {})
        size = entry["trace_bytes"]
        bpc = entry["bytes_per_call"]
        add("| %s | %s / %s | %s | %s | %s | %s |" % (
            w.title, fmt_count(r.get("mt_calls")), fmt_count(r.get("ht_calls")),
            fmt_mb(size["mt"] / 1e6) if size.get("mt") is not None else "–",
            "–" if bpc.get("mt") is None else "%.1f" % bpc["mt"],
            fmt_mb(size["ht"] / 1e6) if size.get("ht") is not None else "–",
            "–" if bpc.get("ht") is None else "%.1f" % bpc["ht"]))
    add("")

    render_reading(add, workloads, data)

    if startup:
        add("## Fixed start-up cost: /bin/true (median of %d runs)" % startup["runs"])
        add("")
        add("| command | wall | above untraced | CPU | peak RSS |")
        add("|---|---:|---:|---:|---:|")
        titles = {"base": "`/bin/true`", "mt": "`malloctrace run -- /bin/true`",
                  "pre": "`LD_PRELOAD=libmalloctrace.so /bin/true`",
                  "smp": "`malloctrace run --sample-rate %s -- /bin/true`" % SAMPLE_RATE,
                  "ht": "`heaptrack /bin/true`"}
        base = startup["stats"].get("base")
        for v in VARIANTS:
            s = startup["stats"].get(v)
            if not s:
                add("| %s | FAILED | | | |" % titles[v])
                continue
            extra = "" if v == "base" or not base else "+%.1f ms" % ((s["wall"] - base["wall"]) * 1000)
            add("| %s | %s | %s | %s | %s |" % (titles[v], fmt_ms(s["wall"]), extra, fmt_ms(s["cpu"]),
                                               fmt_mb(s["maxrss_mb"])))
        add("")

    add("## Targets (from the performance issue)")
    add("")
    for name, passed, detail in targets:
        mark = "PASS" if passed else ("N/A" if passed is None else "FAIL")
        add("- **%s** %s — %s" % (mark, name, detail))
    add("")

    failures = [(w, v, why) for w in workloads for v, why in data.get(w.key, {}).get("failures", {}).items()]
    failures += [(w, "report-" + k, why) for w in workloads
                 for k, why in data.get(w.key, {}).get("reports", {}).get("failures", {}).items()]
    if startup:
        failures += [(None, v, why) for v, why in startup["failures"].items()]
    if failures:
        add("## Failed runs")
        add("")
        for w, v, why in failures:
            add("- %s, %s: " % (w.title if w else "start-up", VARIANT_TITLES.get(v, v)))
            add("")
            add("  ```")
            for line in why.splitlines():
                add("  " + line)
            add("  ```")
        add("")

    add("Columns: *malloctrace run* is the CLI (`malloctrace run -o … -- CMD`, including its end-of-run"
        " summary, which reads the trace back); *preload only* is `LD_PRELOAD=$(malloctrace preload-path)"
        " MALLOCTRACE_OUTPUT=… CMD` (recording alone); *heaptrack* is `heaptrack -o … CMD` (recording,"
        " its out-of-process interpreter and zstd). Ratios are median traced / median untraced."
        " See tools/bench/README.md.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------


def stop_on_signal(signum, _frame):
    """SIGTERM/SIGHUP (run.sh forwards an interrupt as SIGTERM): unwind, which kills the run in
    progress (see run_measured), and exit."""
    raise SystemExit(128 + signum)


def main():
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop_on_signal)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--malloctrace", required=True, help="the malloctrace CLI binary")
    parser.add_argument("--build", default="?", help="how the CLI was built (shown in the report)")
    parser.add_argument("--work", required=True, help="scratch directory (traces, inputs, logs)")
    parser.add_argument("--out", required=True, help="Markdown report to write (JSON goes next to it)")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer runs")
    parser.add_argument("--runs", type=int, help="runs per command (default 5, or 3 with --quick)")
    parser.add_argument("--only", help="comma-separated workloads: churn1,churn8,stl,sqlite,python,git,cc1,startup,"
                                       "scan1m")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before one run is killed")
    parser.add_argument("--reports-only", action="store_true",
                        help="trace each workload once per tool, then measure only the reading of the traces")
    args = parser.parse_args()

    started = time.time()
    mode = "quick" if args.quick else "full"
    runs = args.runs or (3 if args.quick else 5)
    selected = set(args.only.split(",")) if args.only else None
    all_keys = {"churn1", "churn8", "stl", "sqlite", "python", "git", "cc1", "startup", "scan1m"}
    if selected and not selected <= all_keys:
        parser.error("unknown workload(s): %s" % ", ".join(sorted(selected - all_keys)))
    malloctrace = os.path.abspath(args.malloctrace)
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    python = real_python()
    build_measure_helper(work)

    meta = dict(malloctrace=os.path.realpath(malloctrace), date=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), mode=mode, runs=runs,
                machine=machine_info(), load_start=loadavg(), revision=repo_revision(), build=args.build,
                versions=tool_versions(malloctrace, python))
    log("== preparing workloads (%s sizes) in %s" % (mode, work))
    workloads = build_workloads(work, SIZES[mode], selected)
    tracers = Tracers(malloctrace, work)
    env0 = base_env()

    startup = None
    if (selected is None or "startup" in selected) and not args.reports_only:
        startup_runs = 10 if args.quick else 20
        log("== start-up cost: /bin/true, %d runs each" % startup_runs)
        results, _, failures, _ = measure_variants(
            tracers, "startup", ["/bin/true"], env0, startup_runs, 3, None, args.timeout, work, keep=False,
            variants=VARIANTS)
        startup = dict(runs=startup_runs, stats={v: stats_of(results[v]) for v in VARIANTS},
                       raw={v: [r.as_dict() for r in results[v]] for v in VARIANTS}, failures=failures)

    data = {}
    for index, w in enumerate(workloads, 1):
        log("== [%d/%d] %s (%s): %s" % (index, len(workloads), w.title, w.note, " ".join(w.argv)))
        workload_start = time.time()
        data[w.key] = measure_workload(tracers, w, env0, runs, args.timeout, work, reports_only=args.reports_only)
        data[w.key]["elapsed"] = time.time() - workload_start
        log("    done in %.0f s" % data[w.key]["elapsed"])

    scan_big = None
    if (selected is None or "scan1m" in selected) and not args.reports_only:
        scan_big = measure_big_scan(tracers, work, LIVE_BLOCKS[mode], env0, runs, args.timeout)

    meta["load_end"] = loadavg()
    meta["elapsed"] = time.time() - started
    targets = evaluate_targets(workloads, data, startup)
    if args.reports_only:
        report = render_reports_only(meta, workloads, data, targets)
    else:
        report = render(meta, workloads, data, startup, targets, scan_big)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(report)
    json_path = os.path.splitext(args.out)[0] + ".json"
    with open(json_path, "w") as f:
        json.dump(dict(meta=meta, workloads={w.key: dict(title=w.title, note=w.note, argv=w.argv) for w in workloads},
                       results=data, startup=startup, scan_big=scan_big,
                       targets=[dict(name=n, passed=p, detail=d) for n, p, d in targets]),
                  f, indent=1, default=str)
    print(report)
    log("wrote %s and %s" % (args.out, json_path))


if __name__ == "__main__":
    main()
