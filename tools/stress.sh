#!/usr/bin/env bash
# Stress battery: hostile programs (signals, cancellation, fork/exec in threads, raw clone, vfork,
# posix_spawn, closed and redirected descriptors, resource limits, dlopen churn, deep recursion, C++
# exceptions, swapcontext, a program with its own malloc) run untraced, under `malloctrace run` and under
# plain LD_PRELOAD; exit status, stdout and exact allocation counts must agree. Programs: tools/stress/ and
# Tests/Fixtures/hostile.c (built by `swift build --build-tests`). Usage: tools/stress.sh [--quick] [CASE...]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 tools/stress/stress.py "$@"
