#!/usr/bin/env bash
# The HTML report of a large trace: its size and how long headless Chromium takes to draw it.
#
#   tools/bench/html.sh [ALLOCATION_CALLS]      default 5,300,000 calls (over 10 M events with the frees)
#
# Traces the churn workload (tools/bench/workloads/churn.c, one thread), writes `report --format html`,
# then loads the page three times in headless Chromium. The page stamps `data-render-ms` on <body> when
# its script has drawn everything (performance.now(): from navigation start); the median is printed.
# Uses $MALLOCTRACE_BIN, else builds .build/release/malloctrace. Needs chromium (apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/../.."
calls=${1:-5300000}
command -v chromium >/dev/null || { echo "html.sh: chromium is not installed (apt-get install chromium)" >&2; exit 1; }
if [[ -z "${MALLOCTRACE_BIN:-}" ]]; then
    swift build -c release --static-swift-stdlib >/dev/null
    MALLOCTRACE_BIN=.build/release/malloctrace
fi
work=$(mktemp -d /tmp/malloctrace-html.XXXXXX)
trap 'rm -rf "$work"' EXIT
gcc -O2 -g -fno-builtin -pthread -o "$work/churn" tools/bench/workloads/churn.c
"$MALLOCTRACE_BIN" run -o "$work/churn.mtrace" -- "$work/churn" 1 "$calls" >/dev/null 2>"$work/run.log"
events=$("$MALLOCTRACE_BIN" report "$work/churn.mtrace" --format json --sections summary |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print(s["allocation_calls"]+s["free_calls"]+s["failed_calls"])')
start=$(date +%s.%N)
"$MALLOCTRACE_BIN" report "$work/churn.mtrace" --format html -o "$work/report.html"
end=$(date +%s.%N)
size=$(stat -c %s "$work/report.html")
times=()
for run in 1 2 3; do
    dom=$(timeout 120 chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=10000 --dump-dom \
        "file://$work/report.html" 2>/dev/null)
    ms=$(grep -o 'data-render-ms="[0-9]*"' <<<"$dom" | grep -o '[0-9]*' || true)
    [[ -n "$ms" ]] || { echo "html.sh: the page did not finish drawing (no data-render-ms)" >&2; exit 1; }
    times+=("$ms")
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
python3 -c 'import sys; e, t, s, m, all = sys.argv[1:]; print(f"events {int(e):,}, report --format html {t} s, page {int(s):,} bytes ({int(s)/1e6:.2f} MB), render {m} ms (median of {all})")' \
    "$events" "$(python3 -c "print(round($end - $start, 1))")" "$size" "$median" "${times[*]}"
