#!/usr/bin/env bash
# A one-billion-event trace, made here and never committed: tools/bench/churn.c (one thread, 8 distinct
# stacks, at most 64 blocks live) makes 500 M allocation calls and as many frees under the preload library.
# Then `malloctrace report --no-index --symbolizer none` (a full pass over every event; names from symbol
# tables, so that llvm-symbolizer's own memory, which follows debug info, stays out) reads it on one core
# (taskset) and on all of them, and the same is done for a trace ten times smaller: time per event, and max RSS that must
# not grow with the number of events (it follows live blocks and distinct stacks).
#
# Usage: tools/bench/billion.sh [work-dir]     (default /tmp/malloctrace-billion; needs ~12 GB free there)
# Environment: CALLS (allocation calls of the large trace, default 500000000: 1e9 events).
# Prints a Markdown table; the traces stay in work-dir (delete them afterwards).
set -euo pipefail
cd "$(dirname "$0")/../.."
tools/install-deps.sh time
work=${1:-/tmp/malloctrace-billion}
calls=${CALLS:-500000000}
mkdir -p "$work"

swift build -c release --static-swift-stdlib >/dev/null
bin=$PWD/.build/release/malloctrace
library=$("$bin" preload-path)
cc -O2 -fno-builtin -o "$work/churn" tools/bench/churn.c
cores=$(nproc)

# record OUTPUT CALLS: traces churn with the preload library alone; prints its wall seconds.
record() {
    rm -f "$1"
    /usr/bin/time -f %e env MALLOCTRACE_OUTPUT="$1" LD_PRELOAD="$library" "$work/churn" "$2" 2>&1 >/dev/null | tail -1
}

# measure LABEL TRACE EVENTS [taskset args...]: one full pass; prints a table row.
measure() {
    local label=$1 trace=$2 events=$3
    shift 3
    local out
    out=$({ /usr/bin/time -f "%e %M" "$@" "$bin" report --no-index --symbolizer none "$trace" >/dev/null; } 2>&1 | tail -1)
    read -r seconds rss_kb <<<"$out"
    awk -v l="$label" -v s="$seconds" -v r="$rss_kb" -v e="$events" -v size="$(stat -c %s "$trace")" 'BEGIN {
        printf "| %s | %.0f M | %.1f GB | %.1f s | %.1f ns | %.1f MiB |\n", l, e / 1e6, size / 1e9, s, s * 1e9 / e, r / 1024
    }'
}

echo "| trace, reading | events | file | full pass | per event | max RSS |"
echo "|---|---:|---:|---:|---:|---:|"
for n in $((calls / 10)) "$calls"; do
    trace=$work/churn-$n.mtrace
    seconds=$(record "$trace" "$n")
    echo "recorded $((2 * n)) events in $seconds s: $trace" >&2
    events=$((2 * n))
    measure "raw, 1 core" "$trace" "$events" taskset -c 0
    measure "raw, $cores cores" "$trace" "$events"
    "$bin" compress "$trace" >/dev/null
    measure "zstd, 1 core" "$trace" "$events" taskset -c 0
    measure "zstd, $cores cores" "$trace" "$events"
    default=$({ /usr/bin/time -f "%e %M" "$bin" report "$trace" >/dev/null; } 2>&1 | tail -1)
    echo "default report of $trace (stored index): ${default% *} s, $((${default#* } / 1024)) MiB max RSS" >&2
done
