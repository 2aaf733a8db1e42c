#!/usr/bin/env python3
"""The stress battery behind tools/stress.sh: hostile programs run untraced, under `malloctrace run` and
under plain LD_PRELOAD; each traced run must exit as the untraced one did, print the same stdout, and its
trace must hold exactly the allocations the program says it made (its "calls N" line, compared with
`malloctrace report --include FUNCTION --format json`). One PASS/FAIL line per case and mode, then
"N passed, M failed"; exit status 1 on any failure. --quick runs a subset in about a minute; case names
as arguments run only those.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, ".build-stress")


class Case:
    def __init__(self, name, argv, include=("counted_malloc",), quick=False, same_stdout=True, expected=None,
                 timeout=120):
        self.name, self.argv, self.include, self.quick = name, argv, list(include), quick
        # same_stdout: the program's output is deterministic (else only the traced run's own count is used).
        self.same_stdout, self.expected, self.timeout = same_stdout, expected, timeout


def sh(*argv):
    subprocess.run(argv, check=True, cwd=ROOT)


def build(bin_path):
    os.makedirs(BUILD, exist_ok=True)
    sources = [("stress", "stress.c", ["clang", "-O1", "-g", "-pthread"], ["-ldl"]),
               ("exceptions", "exceptions.cpp", ["clang++", "-O1", "-g"], []),
               ("own-malloc", "own-malloc.c", ["clang", "-O1", "-g"], [])]
    for name, source, compiler, libraries in sources:
        path, output = os.path.join(ROOT, "tools/stress", source), os.path.join(BUILD, name)
        if not os.path.exists(output) or os.path.getmtime(output) < os.path.getmtime(path):
            sh(*compiler, path, "-o", output, *libraries)
    fixtures = os.path.join(bin_path, "malloctrace_IntegrationTests.resources")
    return fixtures if os.path.isdir(fixtures) else None


def cases(fixtures):
    stress = os.path.join(BUILD, "stress")
    result = [
        Case("sigalrm", [stress, "sigalrm"]),
        Case("fork-exec-threads", [stress, "fork-exec"]),
        Case("raw-clone", [stress, "clone"], quick=True),
        Case("vfork", [stress, "vfork"], quick=True),
        Case("posix_spawn", [stress, "spawn"], quick=True),
        Case("closefrom", [stress, "closefrom"]),
        Case("redirected-stdout", [stress, "redirect"], quick=True),
        Case("rlimit-fsize", [stress, "fsize"]),
        Case("rlimit-nofile", [stress, "nofile"], quick=True),
        Case("rlimit-as", [stress, "as"]),
        Case("recursion-100k", [stress, "recursion"], quick=True),
        Case("swapcontext", [stress, "coroutines"], quick=True),
        Case("cxx-exceptions", [os.path.join(BUILD, "exceptions")], include=["counted_new"], quick=True),
        # The executable's own malloc comes before the preloaded one: nothing of it may reach the trace.
        Case("own-malloc", [os.path.join(BUILD, "own-malloc")], quick=True, expected=0),
    ]
    if fixtures:
        result.append(Case("dlopen-churn", [stress, "dlopen", os.path.join(fixtures, "fixture-libleaky.so")],
                           quick=True))
        hostile = os.path.join(fixtures, "fixture-hostile")
        result += [
            Case("hostile-cancel", [hostile, "cancel"], include=["cancellable_worker", "cleanup_allocates"],
                 same_stdout=False),
            Case("hostile-quick-exit", [hostile, "quick-exit"], include=[], expected=None),
            Case("hostile-chdir-fork", [hostile, "chdir-fork"], include=[], expected=None),
        ]
    return result


def execute(argv, env, timeout):
    try:
        done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, b"", b""
    return done.returncode, done.stdout, done.stderr


def trace_calls(cli, trace, include):
    argv = [cli, "report", "--format", "json", "--symbolizer", "none", "--sections", "summary", trace]
    for pattern in include:
        argv += ["--include", pattern]
    done = subprocess.run(argv, capture_output=True, timeout=300)
    if done.returncode != 0:
        return None, done.stderr.decode(errors="replace").strip()
    summary = json.loads(done.stdout)["summary"]
    # A failed malloc is a call the program made; the trace counts it apart from the allocations.
    return summary["allocation_calls"] + summary["failed_calls"], "truncated" if summary["truncated"] else ""


def pick_trace(directory, stderr):
    files = sorted(glob.glob(os.path.join(directory, "*.mtrace")))
    if len(files) <= 1:
        return files[0] if files else None
    match = re.search(rb"^pid (\d+)$", stderr, re.M)
    if match:
        for path in files:
            if f".{match.group(1).decode()}." in os.path.basename(path):
                return path
    return min(files, key=os.path.getmtime)


def main():
    quick = "--quick" in sys.argv[1:]
    only = [argument for argument in sys.argv[1:] if not argument.startswith("--")]
    bin_path = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    cli = os.path.join(bin_path, "malloctrace")
    library = subprocess.run([cli, "preload-path"], capture_output=True, text=True, check=True).stdout.strip()
    fixtures = build(bin_path)
    passed = failed = 0
    work = tempfile.mkdtemp(prefix="malloctrace-stress.")
    try:
        for case in cases(fixtures):
            if (quick and not case.quick) or (only and case.name not in only):
                continue
            base = dict(os.environ)
            base.pop("LD_PRELOAD", None)
            status, stdout, _ = execute(case.argv, base, case.timeout)
            for mode in ("run", "preload"):
                directory = os.path.join(work, f"{case.name}-{mode}")
                os.makedirs(directory)
                output = os.path.join(directory, "trace.%p.mtrace")
                if mode == "run":
                    argv, env = [cli, "run", "-o", output, "--", *case.argv], base
                else:
                    argv, env = case.argv, dict(base, LD_PRELOAD=library, MALLOCTRACE_OUTPUT=output)
                traced_status, traced_stdout, traced_stderr = execute(argv, env, case.timeout)
                problems = []
                if traced_status is None:
                    problems.append(f"timed out after {case.timeout} s")
                elif traced_status != status:
                    problems.append(f"exit status {traced_status}, untraced {status}")
                if case.same_stdout and traced_stdout != stdout:
                    problems.append(f"stdout {traced_stdout[:80]!r}, untraced {stdout[:80]!r}")
                said = re.search(rb"^calls (\d+)$", traced_stdout, re.M)
                expected = case.expected if case.expected is not None else (int(said.group(1)) if said else None)
                if case.include and expected is not None and traced_status is not None:
                    trace = pick_trace(directory, traced_stderr)
                    if trace is None:
                        problems.append("no trace written")
                    else:
                        calls, note = trace_calls(cli, trace, case.include)
                        if calls is None:
                            problems.append(f"report failed: {note}")
                        elif calls != expected:
                            problems.append(f"trace has {calls} calls, the program made {expected}"
                                            + (f" ({note})" if note else ""))
                if problems:
                    failed += 1
                    stderr_line = traced_stderr.decode(errors="replace").strip().splitlines()
                    tracer = [line for line in stderr_line if line.startswith("malloctrace")][:2]
                    print(f"FAIL {case.name} [{mode}]: " + "; ".join(problems)
                          + (f" — stderr: {' | '.join(tracer)}" if tracer else ""), flush=True)
                else:
                    passed += 1
                    detail = f" ({expected} calls)" if case.include and expected is not None else ""
                    print(f"PASS {case.name} [{mode}]{detail}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
