#!/usr/bin/env bash
# The cost of the allocator's view (issue #13): usable sizes and chunk flags (MALLOCTRACE_USABLE, on by default)
# and the program's own mappings (MALLOCTRACE_MMAP, run --mmap). Runs each workload untraced, traced with
# MALLOCTRACE_USABLE=0, traced as by default and traced with MALLOCTRACE_MMAP=1, interleaved round by round, and
# prints the median wall time of each and the trace's event bytes per allocation call (uncompressed, as the
# library writes them; they do not vary between runs).
#
#   tools/bench/allocator.sh [ROUNDS]        (default 5; the CLI is taken from .build/debug unless MALLOCTRACE_BIN)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${1:-5}
cli=${MALLOCTRACE_BIN:-$root/.build/debug/malloctrace}
library=$("$cli" preload-path)
work=$(mktemp -d /tmp/malloctrace-allocator.XXXXXX)
trap 'rm -rf "$work"' EXIT
cc -O2 -g -fno-builtin -o "$work/churn" "$root/tools/bench/workloads/churn.c" -lpthread
python=$(readlink -f /usr/bin/python3)

# name | environment of the program (traced or not) | command (run in $work)
workloads=(
    "churn1||$work/churn 1 1000000"
    "churn8||$work/churn 8 1000000"
    "python|PYTHONMALLOC=malloc|$python $root/tools/bench/workloads/pywork.py 5000"
    "pymalloc||$python $root/tools/bench/workloads/pywork.py 5000"
)
modes=(untraced usable0 default mmap)

environment() {
    case $1 in
    untraced) echo "" ;;
    usable0) echo "LD_PRELOAD=$library MALLOCTRACE_OUTPUT=$work/t.mtrace MALLOCTRACE_USABLE=0" ;;
    default) echo "LD_PRELOAD=$library MALLOCTRACE_OUTPUT=$work/t.mtrace" ;;
    mmap) echo "LD_PRELOAD=$library MALLOCTRACE_OUTPUT=$work/t.mtrace MALLOCTRACE_MMAP=1" ;;
    esac
}

now() { date +%s%N; }

# The event bytes of a trace: the `used` bytes of its CHUNK records (a chunk record's length is its capacity,
# so the file size moves in steps of whole chunks).
event_bytes() {
    python3 - "$1" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
offset, used = 16, 0
while offset + 8 <= len(data):
    kind, _, _, length = struct.unpack_from("<BBHI", data, offset)
    if kind == 0:
        break
    if kind == 2:
        used += struct.unpack_from("<I", data, offset + 12)[0]
    offset = (offset + 8 + length + 7) & ~7
print(used)
PY
}

printf '| workload | untraced | MALLOCTRACE_USABLE=0 | default (usable sizes) | MALLOCTRACE_MMAP=1 | bytes/call USABLE=0 | bytes/call default | cost of usable sizes |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for entry in "${workloads[@]}"; do
    name=${entry%%|*}
    rest=${entry#*|}
    program_environment=${rest%%|*}
    command=${rest#*|}
    declare -A times=()
    declare -A bytes=()
    (cd "$work" && env $program_environment $command >/dev/null 2>&1) # warm-up: page cache, the interpreter's files
    for ((round = 0; round < rounds; round++)); do
        for mode in "${modes[@]}"; do
            rm -f "$work/t.mtrace"
            start=$(now)
            (cd "$work" && env $program_environment $(environment "$mode") $command >/dev/null 2>&1)
            end=$(now)
            times[$mode]+="$(((end - start) / 1000000)) "
            if [[ $mode != untraced && $round == 0 ]]; then
                calls=$("$cli" report "$work/t.mtrace" --format json --sections summary |
                    python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["allocation_calls"])')
                size=$(event_bytes "$work/t.mtrace")
                bytes[$mode]=$(python3 -c "print(f'{$size / max($calls, 1):.3f}')")
            fi
        done
    done
    median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] " ms" }'; }
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$(median "${times[untraced]}")" \
        "$(median "${times[usable0]}")" "$(median "${times[default]}")" "$(median "${times[mmap]}")" \
        "${bytes[usable0]}" "${bytes[default]}" \
        "$(python3 -c "print(f'{${bytes[default]} - ${bytes[usable0]}:+.3f} B/call ({(${bytes[default]} / ${bytes[usable0]} - 1) * 100:+.1f}%)')")"
    unset times bytes
done
