#!/usr/bin/env bash
# The cost of the library loaded but paused (`malloctrace run --paused`, MALLOCTRACE_START=paused): what a
# production process pays before `malloctrace ctl PID start`.
#
#   tools/bench/paused.sh [ALLOCATION_CALLS] [ROUNDS]      default 5,000,000 calls, 7 rounds
#
# Runs the churn workload (tools/bench/workloads/churn.c, 1 thread: malloc, calloc, realloc and free from
# 512 call sites) untraced, preloaded and paused with the control thread (the default with START=paused),
# paused without it (MALLOCTRACE_CONTROL=0), and preloaded recording, interleaved round by round, and
# prints the median wall and CPU times and the cost per allocator call (allocation calls + frees) over
# untraced. Uses $MALLOCTRACE_BIN's libmalloctrace.so, else builds .build/release/malloctrace.
set -euo pipefail
cd "$(dirname "$0")/../.."
calls=${1:-5000000}
rounds=${2:-7}
if [[ -z "${MALLOCTRACE_BIN:-}" ]]; then
    swift build -c release --static-swift-stdlib >/dev/null
    MALLOCTRACE_BIN=.build/release/malloctrace
fi
library=$("$MALLOCTRACE_BIN" preload-path)
work=$(mktemp -d /tmp/malloctrace-paused.XXXXXX)
trap 'rm -rf "$work"' EXIT
gcc -O2 -g -fno-builtin -pthread -o "$work/churn" tools/bench/workloads/churn.c
gcc -O2 -o "$work/measure" tools/bench/measure.c
# Calls the allocator sees: allocation calls and frees, counted from one recorded run.
"$work/measure" "$work/count" LD_PRELOAD="$library" MALLOCTRACE_OUTPUT="$work/count.mtrace" -- "$work/churn" 1 "$calls" >/dev/null
events=$("$MALLOCTRACE_BIN" report "$work/count.mtrace" --format json --sections summary |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print(s["allocation_calls"]+s["free_calls"])')
modes=(untraced paused paused-nocontrol recording)
settings() {
    case "$1" in
        untraced) ;;
        paused) echo "LD_PRELOAD=$library MALLOCTRACE_START=paused MALLOCTRACE_OUTPUT=$work/p.%p.mtrace" ;;
        paused-nocontrol)
            echo "LD_PRELOAD=$library MALLOCTRACE_START=paused MALLOCTRACE_CONTROL=0 MALLOCTRACE_OUTPUT=$work/q.%p.mtrace" ;;
        recording) echo "LD_PRELOAD=$library MALLOCTRACE_OUTPUT=$work/r.%p.mtrace" ;;
    esac
}
for round in $(seq "$rounds"); do
    for mode in "${modes[@]}"; do
        # shellcheck disable=SC2046
        "$work/measure" "$work/$mode.$round" $(settings "$mode") -- "$work/churn" 1 "$calls" >/dev/null
        rm -f "$work"/*.*.mtrace
    done
done
python3 - "$work" "$rounds" "$events" "$calls" "${modes[@]}" <<'PY'
import statistics, sys
work, rounds, events, calls, modes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
def medians(mode):
    rows = [open(f"{work}/{mode}.{r}").read().split() for r in range(1, rounds + 1)]
    return (statistics.median(int(r[0]) / 1e9 for r in rows), statistics.median((int(r[1]) + int(r[2])) / 1e6 for r in rows))
base_wall, base_cpu = medians("untraced")
print(f"churn, 1 thread, {calls:,} allocation calls ({events:,} allocator calls with the frees), median of {rounds}")
print()
print("| mode | wall | CPU | ns per allocator call over untraced (CPU) |")
print("|---|---:|---:|---:|")
names = {"untraced": "untraced", "paused": "paused (`MALLOCTRACE_START=paused`, control thread)",
         "paused-nocontrol": "paused, `MALLOCTRACE_CONTROL=0`", "recording": "recording (preload only)"}
for mode in modes:
    wall, cpu = medians(mode)
    extra = "" if mode == "untraced" else f"{(cpu - base_cpu) * 1e9 / events:+.1f}"
    print(f"| {names[mode]} | {wall:.3f} s ({wall / base_wall:.2f}×) | {cpu:.3f} s ({cpu / base_cpu:.2f}×) | {extra} |")
PY
