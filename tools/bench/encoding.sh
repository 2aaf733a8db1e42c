#!/usr/bin/env bash
# Format version 2 against version 3 on raw traces (as the preload library writes them): the stored size and
# bytes per allocation call of each, and the CPU time of `malloctrace compress` (which also stores the analysis).
# Usage: tools/bench/encoding.sh TRACE...   (raw traces: LD_PRELOAD=$(malloctrace preload-path) ...)
# Environment: MALLOCTRACE_BIN (default: .build/release/malloctrace; build it as the README says).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cli="${MALLOCTRACE_BIN:-$here/../../.build/release/malloctrace}"
[ -x "$cli" ] || { echo "encoding.sh: no $cli; build it with: swift build -c release --static-swift-stdlib" >&2; exit 1; }
[ $# -gt 0 ] || { sed -n 2,5p "$0" >&2; exit 2; }
work="$(mktemp -d /tmp/malloctrace-encoding.XXXXXX)"
trap 'rm -rf "$work"' EXIT
echo "| trace | allocation calls | raw | version 2 | B/call | compress CPU | version 3 | B/call | compress CPU |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for trace in "$@"; do
    calls=$("$cli" report --format json --no-index --symbolizer none "$trace" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["allocation_calls"])')
    row="| $(basename "$trace") | $calls | $(stat -c %s "$trace")"
    for option in --keep-addresses ""; do
        cp "$trace" "$work/t.mtrace"
        /usr/bin/time -f "%U %S" -o "$work/time" "$cli" compress $option "$work/t.mtrace" >/dev/null 2>&1
        cpu=$(awk '{ printf "%.2f s", $1 + $2 }' "$work/time")
        size=$(stat -c %s "$work/t.mtrace")
        row+=" | $size | $(python3 -c "print('%.2f' % ($size / $calls))") | $cpu"
    done
    echo "$row |"
done
