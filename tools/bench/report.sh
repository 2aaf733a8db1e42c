#!/usr/bin/env bash
# Benchmarks `malloctrace report`: wall time (median of hyperfine runs) and max RSS on traces of
# tools/bench/churn.c (one thread) and tools/bench/threads.c (8 threads, cross-thread frees), next to
# heaptrack_print on heaptrack traces of the same programs when heaptrack is installed; then the max RSS
# on a trace 20x larger (100 M events by default), raw and compressed, which must stay flat (memory
# follows live blocks and stacks, not events).
#
# Usage: tools/bench/report.sh [work-dir]     (default /tmp/malloctrace-bench)
# Environment: CALLS (churn's allocation calls, default 2500000: 5 M events), RUNS (default 7).
# Needs hyperfine and GNU time, installed here when missing; heaptrack is optional.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools/install-deps.sh hyperfine time
work=${1:-/tmp/malloctrace-bench}
calls=${CALLS:-2500000}
runs=${RUNS:-7}
mkdir -p "$work"

swift build -c release --static-swift-stdlib >/dev/null
bin=$PWD/.build/release/malloctrace
library=$("$bin" preload-path)
cc -O2 -fno-builtin -o "$work/churn" tools/bench/churn.c
cc -O2 -fno-builtin -pthread -o "$work/threads" tools/bench/threads.c

# trace OUTPUT PROGRAM ARGS...: runs the program under the preload library, writing OUTPUT.
trace() {
    rm -f "$1"
    MALLOCTRACE_OUTPUT="$1" LD_PRELOAD="$library" "${@:2}"
}
trace "$work/churn.mtrace" "$work/churn" "$calls"
trace "$work/threads.mtrace" "$work/threads" $((calls / 10))
trace "$work/churn-large.mtrace" "$work/churn" $((calls * 20))
cp "$work/churn-large.mtrace" "$work/churn-large-zstd.mtrace"
"$bin" compress "$work/churn-large-zstd.mtrace" >/dev/null

commands=(
    "$bin report $work/churn.mtrace"
    "$bin report $work/churn.mtrace --format json"
    "$bin report $work/threads.mtrace"
)
if command -v heaptrack >/dev/null && command -v heaptrack_print >/dev/null; then
    rm -f "$work"/heaptrack-churn.* "$work"/heaptrack-threads.*
    (cd "$work" && heaptrack -o "$work/heaptrack-churn" ./churn "$calls" >/dev/null 2>&1)
    (cd "$work" && heaptrack -o "$work/heaptrack-threads" ./threads $((calls / 10)) >/dev/null 2>&1)
    commands+=("heaptrack_print $work/heaptrack-churn.zst" "heaptrack_print $work/heaptrack-threads.zst")
fi

hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/times.json" "${commands[@]}" >/dev/null
python3 - "$work/times.json" <<'EOF'
import json, statistics, sys
for result in json.load(open(sys.argv[1]))["results"]:
    times = result["times"]
    print(f"{statistics.median(times) * 1000:8.1f} ms median  {min(times) * 1000:8.1f} ms min   {result['command']}")
EOF

# Max RSS: median of 5 runs, in MiB.
max_rss() {
    for _ in 1 2 3 4 5; do /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; done |
        sort -n | awk '{ rss[NR] = $1 } END { printf "%8.1f MiB max RSS  ", rss[3] / 1024 }'
    echo "${*/#$work\//}"
}
for command in "${commands[@]}" "$bin report $work/churn-large.mtrace" "$bin report $work/churn-large-zstd.mtrace"; do
    # shellcheck disable=SC2086  # the commands are word lists
    max_rss $command
done
ls -l "$work"/*.mtrace | awk '{ printf "%8.1f MiB  %s\n", $5 / 1048576, $9 }'
