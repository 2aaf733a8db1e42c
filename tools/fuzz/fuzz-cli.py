#!/usr/bin/env python3
"""Fuzzes the malloctrace command line: random option values through the argument parser into run, report,
check, diff and compress, for a given time.

Each command's options are read from its `--help` (so new options are fuzzed without editing this file);
values are hostile: huge, negative, NaN and fractional numbers, empty strings, `%` escapes, non-UTF-8
bytes, FIFOs, /dev/full, directories, missing files, valid and damaged traces. Each vector runs with a
timeout and with stdout/stderr a pipe, closed, or /dev/full. Flagged:

  signal   death by SIGILL/SIGTRAP/SIGSEGV/SIGABRT/SIGBUS/SIGFPE (a Swift trap or a crash)
  hang     still running after the timeout
  silent   exit 0 with stdout closed or full although the same vector prints something to a pipe

Usage: tools/fuzz/fuzz-cli.py [--minutes M] [--seed S] [--cli PATH] [--timeout SECONDS]
Findings go to .build-fuzz/cli/findings.txt (one shell-quoted vector per line, with its kind); the exit
status is 1 when there were findings. Needs `swift build` first (and the fixture programs from
`swift build --build-tests` for richer traces).
"""
import argparse
import os
import shutil
import random
import re
import shlex
import signal
import stat
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COMMANDS = ["run", "report", "check", "diff", "compress"]
TRAP_SIGNALS = {signal.SIGILL, signal.SIGTRAP, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE}
DEVICES = ["/dev/null", "/dev/full"]
OPTION_LINE = re.compile(r"^\s{2}(?:-\w, )?(--[a-z][\w-]*)(?: <([^>]+)>)?")


def parse_options(cli, command):
    """(name, value name or None) for each option in `malloctrace COMMAND --help`."""
    text = subprocess.run([cli, command, "--help"], capture_output=True, text=True, timeout=30).stdout
    options = []
    for line in text.split("OPTIONS:", 1)[-1].splitlines():
        match = OPTION_LINE.match(line)
        if match and match.group(1) not in ("--help", "--version"):
            options.append((match.group(1), match.group(2)))
    return options


class Fixtures:
    """Files the values point at: traces (valid, damaged), a FIFO, a directory, names that do not exist."""

    def __init__(self, work, cli):
        self.work = work
        os.makedirs(work, exist_ok=True)
        self.fifo = os.path.join(work, "fifo")
        if not os.path.exists(self.fifo):
            os.mkfifo(self.fifo)
        # A reader that stays open (drained before every vector): writing to a FIFO nobody reads waits for
        # a reader, as with any Unix tool, which is not a hang of the CLI's own.
        self.fifo_reader = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        # The traced programs are copies in the work directory: an argument vector without `--` can make a
        # program's path the value of an output option (`check --sarif /bin/echo`), and the CLI, run as
        # root, would then rightly overwrite it. Only files under `work` may ever be written.
        self.programs = {}
        for name in ["true", "sh", "echo"]:
            copy = os.path.join(work, "bin-" + name)
            shutil.copy2(shutil.which(name) or "/bin/" + name, copy)
            self.programs[name] = copy
        self.directory = os.path.join(work, "dir")
        os.makedirs(self.directory, exist_ok=True)
        # Copies of the committed seeds: option values such as --save-baseline or --sarif may overwrite any
        # of these files, so they are restored before every vector (see restore()).
        self.originals = {}
        corpus = os.path.join(ROOT, "tools/fuzz/corpus")
        for name in sorted(os.listdir(corpus)):
            self.originals[os.path.join(work, "seed-" + name)] = open(os.path.join(corpus, name), "rb").read()
        self.traces = list(self.originals)
        fresh = os.path.join(work, "fresh.mtrace")
        if not os.path.exists(fresh):
            subprocess.run([cli, "run", "-o", fresh, "--", "/bin/sh", "-c", "echo x | cat"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        if os.path.exists(fresh):
            self.originals[fresh] = open(fresh, "rb").read()
            self.traces.append(fresh)
        rng = random.Random(1)
        self.damaged = []
        for index, trace in enumerate(self.traces[:6]):
            data = bytearray(self.originals[trace])
            for kind in ("cut", "flip", "header"):
                copy = bytearray(data)
                if kind == "cut":
                    copy = copy[: rng.randrange(1, max(2, len(copy)))]
                elif kind == "flip":
                    for _ in range(8):
                        position = rng.randrange(len(copy))
                        copy[position] ^= 1 << rng.randrange(8)
                else:
                    copy[4:16] = bytes(rng.randrange(256) for _ in range(12))
                path = os.path.join(work, f"damaged-{index}-{kind}.mtrace")
                self.originals[path] = bytes(copy)
                self.damaged.append(path)
        self.empty = os.path.join(work, "empty.mtrace")
        open(self.empty, "wb").close()
        self.text_file = os.path.join(work, "text.supp")
        open(self.text_file, "w").write("leak:malloc\n{\n  x\n  Memcheck:Leak\n  fun:*\n}\n{\n")
        self.stamps = {}
        self.restore()
        self.non_utf8 = os.path.join(work, "bad-\xff-name".encode("latin-1").decode("utf-8", "surrogateescape"))

    def restore(self):
        """Rewrites every trace fixture that a previous vector changed, replaced or removed."""
        try:
            while os.read(self.fifo_reader, 1 << 16):
                pass
        except BlockingIOError:
            pass
        for path, data in self.originals.items():
            try:
                info = os.lstat(path)
                stamp = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode)
            except OSError:
                stamp = None
            if stamp is None or stamp != self.stamps.get(path):
                if stamp is not None and not os.path.isfile(path):
                    subprocess.run(["rm", "-rf", path])
                elif stamp is not None:
                    os.unlink(path)
                with open(path, "wb") as file:
                    file.write(data)
                info = os.lstat(path)
                self.stamps[path] = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode)

    def path(self, rng, output=False):
        choices = [
            self.fifo, self.directory, "/dev/full", "/dev/null", "/nonexistent/x", "", " ", "-", "--", "%",
            self.empty, self.text_file, os.path.join(self.work, "new-%p-%e-%t-%h-%%"), "/proc/self/mem",
            os.path.join(self.work, "out-" + str(rng.randrange(1 << 30))), "a" * rng.choice([255, 256, 4097]),
            os.path.join(self.work, "x%q"), self.non_utf8, "/", ".",
        ]
        choices += self.traces + self.damaged
        return rng.choice(choices)

    def trace(self, rng):
        pick = rng.random()
        if pick < 0.45:
            return rng.choice(self.traces)
        if pick < 0.75:
            return rng.choice(self.damaged)
        return self.path(rng)


NUMBERS = [
    "0", "1", "-1", "7", "64", "256", "257", "-0", "+5", "1e308", "-1e308", "1e-320", "nan", "NaN", "-nan",
    "inf", "-inf", "Infinity", "0x10", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "18446744073709551615", "18446744073709551616", "99999999999999999999999", "1.5", ".5", "5.", "1_000",
    "", " ", "1 ", "١", "0.0000001", "4294967295", "4294967296", "2147483648",
]
SIZES = ["0", "1", "512K", "64MiB", "1M", "1G", "16E", "17E", "1e3K", "-1K", "0.5K", "1KiB", "99999999999T", "K",
         "nan", "inf", "18446744073709551615", "1.7976931348623157e308", "1 K", "1k", "1kb"]
STRINGS = ["", " ", "%", "%%", "%p%e%t%h", "%q", "%n%s%x", "*", "**", "?", "^", "$", "^$", "[", "\\", ",", ",,",
           "all", "all,all", "definite,,", "summary,bogus", "peak=3", "=", "peak=-1", "peak=1e308", "leaks=",
           "\x00".replace("\x00", "") + "é", "\udcff\udcfe", "a" * 5000, "--", "-", "-x"]


def value(rng, name, fixtures):
    name = (name or "").lower()
    pick = rng.random()
    if pick < 0.12:
        return rng.choice(STRINGS)
    if pick < 0.2:
        return rng.choice(NUMBERS)
    if name in ("path", "file", "dir"):
        return fixtures.path(rng, output=True)
    if name in ("size", "bytes"):
        return rng.choice(SIZES + NUMBERS)
    if name in ("n", "frames", "s", "tid", "pct"):
        return rng.choice(NUMBERS + ["5,6", "1,,2", "-3,4", "0.5", "1e2", "3%", "150"])
    if name in ("list", "kinds"):
        words = ["summary", "peak", "allocations", "bytes", "temporary", "leaks", "histogram", "threads", "all",
                 "definite", "indirect", "possible", "reachable", "none", "Leaks", ""]
        return ",".join(rng.choice(words) for _ in range(rng.randrange(0, 4)))
    if name == "pattern":
        return rng.choice(STRINGS + ["malloc", "main", "lib*.so", "*alloc*", "fixture-*"])
    if "|" in name:
        return rng.choice(name.split("|") + ["", "LARGEST", "stack,function"])
    if name == "format":
        return rng.choice(["text", "json", "", "JSON", "html"])
    return rng.choice(STRINGS + NUMBERS)


def positionals(rng, command, fixtures):
    if command == "report":
        return [fixtures.trace(rng)] if rng.random() < 0.95 else [fixtures.trace(rng), fixtures.trace(rng)]
    if command == "diff":
        return [fixtures.trace(rng) for _ in range(rng.choice([2, 2, 2, 1, 3]))]
    if command == "compress":
        # Compress copies, so that the committed seeds and shared fixtures stay as they are.
        paths = []
        for _ in range(rng.randrange(0, 3)):
            source = fixtures.trace(rng)
            if os.path.isfile(source) and source.endswith(".mtrace"):
                copy = os.path.join(fixtures.work, "compress-%d.mtrace" % rng.randrange(1 << 30))
                open(copy, "wb").write(open(source, "rb").read())
                paths.append(copy)
            else:
                paths.append(source)
        return paths
    sh, true, echo = fixtures.programs["sh"], fixtures.programs["true"], fixtures.programs["echo"]
    programs = [[true], [sh, "-c", "echo out; echo err >&2; exit 3"], ["/nonexistent"],
                [fixtures.directory], [fixtures.fifo], [fixtures.empty], [sh, "-c", "kill -SEGV $$"],
                [echo, "\udcff"], [""]]
    program = rng.choice(programs)
    if command == "check" and rng.random() < 0.4:
        return [fixtures.trace(rng) for _ in range(rng.randrange(0, 3))]
    return (["--"] if rng.random() < 0.9 else []) + program


def vector(rng, command, options, fixtures):
    argv = [command]
    for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4, 6])):
        name, value_name = rng.choice(options)
        if value_name is None:
            argv.append(name)
        elif rng.random() < 0.1:
            argv.append(name + "=" + value(rng, value_name, fixtures))
        elif rng.random() < 0.03:
            argv.append(name)  # value missing
        else:
            argv += [name, value(rng, value_name, fixtures)]
    rest = positionals(rng, command, fixtures)
    if rng.random() < 0.15:
        rng.shuffle(argv)
        argv.remove(command)
        argv.insert(0, command)
    return argv + rest


def encode(argument):
    return argument.encode("utf-8", "surrogateescape")


def execute(cli, argv, output_mode, timeout, work):
    """(returncode or None on timeout, stdout bytes or None)."""
    args = [encode(cli)] + [encode(a) for a in argv]
    env = dict(os.environ, MALLOCTRACE_SYMBOLIZER="none", GITHUB_STEP_SUMMARY=os.path.join(work, "summary.md"))
    stdout = subprocess.PIPE
    preexec = None
    full = None
    if output_mode == "closed":
        stdout = None

        def preexec():
            os.close(1)
            os.close(2)
    elif output_mode == "full":
        full = open("/dev/full", "wb")
        stdout = full
    try:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stdout,
                                   stderr=subprocess.DEVNULL if output_mode != "full" else full,
                                   cwd=work, env=env, preexec_fn=preexec, start_new_session=True)
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return None, None
        return process.returncode, out
    finally:
        if full:
            full.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--cli", default=os.path.join(ROOT, ".build/debug/malloctrace"))
    parser.add_argument("--timeout", type=float, default=20)
    parser.add_argument("--work", default=os.path.join(ROOT, ".build-fuzz/cli"))
    arguments = parser.parse_args()
    cli = os.path.abspath(arguments.cli)
    fixtures = Fixtures(arguments.work, cli)
    options = {command: parse_options(cli, command) for command in COMMANDS}
    rng = random.Random(arguments.seed)
    deadline = time.time() + arguments.minutes * 60
    findings_path = os.path.join(arguments.work, "findings.txt")
    seen = set()
    counts = {"invocations": 0, "signal": 0, "hang": 0, "silent": 0}
    print(f"fuzz-cli: seed {arguments.seed}, {arguments.minutes} minutes, {cli}", file=sys.stderr)
    with open(findings_path, "a", errors="backslashreplace") as findings:
        while time.time() < deadline:
            command = rng.choice(COMMANDS)
            argv = vector(rng, command, options[command], fixtures)
            mode = rng.choice(["pipe", "pipe", "closed", "full"])
            fixtures.restore()
            status, out = execute(cli, argv, mode, arguments.timeout, arguments.work)
            counts["invocations"] += 1
            damaged = [device for device in DEVICES if not stat.S_ISCHR(os.stat(device).st_mode)]
            if damaged:
                # Run as root, a rename over a device replaces it: stop at once, say which vector did it.
                print(f"fuzz-cli: STOP: {', '.join(damaged)} is no longer a device after"
                      f" malloctrace {shlex.join(argv)!r}; recreate with mknod -m 666 /dev/null c 1 3,"
                      " /dev/full c 1 7", file=sys.stderr)
                return 2
            kind = None
            if status is None:
                kind = "hang"
            elif status < 0 and -status in TRAP_SIGNALS:
                kind = "signal"
            elif status == 0 and mode != "pipe":
                # Confirmed twice from the same files: the first output-failed run, then a pipe.
                fixtures.restore()
                again, printed = execute(cli, argv, "pipe", arguments.timeout, arguments.work)
                fixtures.restore()
                confirm, _ = execute(cli, argv, mode, arguments.timeout, arguments.work)
                counts["invocations"] += 2
                if again == 0 and printed and confirm == 0:
                    kind = "silent"
            if kind is None:
                continue
            counts[kind] += 1
            key = (kind, command, status, tuple(sorted(a for a in argv if a.startswith("--"))))
            shown = [a if len(a) <= 120 else a[:60] + f"...({len(a)} chars)" for a in argv]
            line = f"{kind} status={status} stdout={mode}: malloctrace {shlex.join(shown)}"
            if key not in seen:
                seen.add(key)
                print("fuzz-cli: " + line.encode("utf-8", "backslashreplace").decode(), file=sys.stderr)
            findings.write(line + "\n")
            findings.flush()
    print(f"fuzz-cli: {counts['invocations']} invocations, {counts['signal']} signal deaths, {counts['hang']}"
          f" hangs, {counts['silent']} silent output failures (findings: {findings_path})", file=sys.stderr)
    return 1 if counts["signal"] + counts["hang"] + counts["silent"] else 0


if __name__ == "__main__":
    sys.exit(main())
