#!/usr/bin/env bash
# The control API (malloctrace.h) in a program that is not traced: the same program built with the calls and
# with -DMALLOCTRACE_DISABLE (every call compiled away), run without the preload library, compared by hyperfine.
# Also checks that both print the same and that the calls reach the preloaded library from gcc and clang
# builds, PIE and non-PIE.
#
#   tools/bench/api.sh [ROUNDS]        default 100,000,000 rounds (tight) and 20,000,000 (arena)
#
# Uses $MALLOCTRACE_BIN, else builds .build/release/malloctrace. Needs hyperfine (apt-get install hyperfine).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-100000000}
command -v hyperfine >/dev/null || { echo "api.sh: hyperfine is not installed (apt-get install hyperfine)" >&2; exit 1; }
if [[ -z "${MALLOCTRACE_BIN:-}" ]]; then
    swift build -c release --static-swift-stdlib >/dev/null
    MALLOCTRACE_BIN=.build/release/malloctrace
fi
work=$(mktemp -d /tmp/malloctrace-api.XXXXXX)
trap 'rm -rf "$work"' EXIT
include=Sources/CMallocTraceAPI/include
gcc -O2 -fno-builtin -I "$include" -o "$work/with-calls" tools/bench/api.c
gcc -O2 -fno-builtin -I "$include" -DMALLOCTRACE_DISABLE -o "$work/without" tools/bench/api.c

for mode in tight arena; do
    n=$([[ $mode == tight ]] && echo "$rounds" || echo $((rounds / 5)))
    [[ "$("$work/with-calls" $mode "$n")" == "$("$work/without" $mode "$n")" ]] || {
        echo "api.sh: $mode: the two builds print different results" >&2
        exit 1
    }
    hyperfine -N --warmup 2 --runs 15 --export-markdown "$work/$mode.md" \
        -n "$mode, calls compiled away" "$work/without $mode $n" \
        -n "$mode, calls, not traced" "$work/with-calls $mode $n" >/dev/null
    echo "## $mode, $n rounds"
    cat "$work/$mode.md"
    echo
done

# The calls reach the preloaded library however the program was built (dlsym finds it in every case).
for compiler in gcc clang; do
    for pie in -pie -no-pie; do
        "$compiler" -O2 -fno-builtin -fPIE "$pie" -I "$include" -o "$work/probe" tools/bench/api.c
        "$MALLOCTRACE_BIN" run --no-compress -o "$work/probe.mtrace" -- "$work/probe" arena 100000 >/dev/null 2>&1
        pools=$("$MALLOCTRACE_BIN" report "$work/probe.mtrace" --format json --sections summary |
            python3 -c 'import json,sys; p=json.load(sys.stdin)["summary"]["pools"]; print(p[0]["allocation_calls"] if p else 0)')
        echo "$compiler $pie: $pools pool blocks recorded (expected 100000)"
        rm -f "$work/probe.mtrace"
    done
done
