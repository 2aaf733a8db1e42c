#!/usr/bin/env bash
# The quick start: builds malloctrace, traces the bundled example program (tools/examples/leaky.c) and
# prints its report. Leaves the trace in .build/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build
mkdir -p .build/demo
clang -g -O0 -fno-builtin -o .build/demo/leaky tools/examples/leaky.c
trace=.build/demo/leaky.$$.mtrace
.build/debug/malloctrace run --leak-kinds -o "$trace" -- .build/demo/leaky
.build/debug/malloctrace report "$trace" --top 3
