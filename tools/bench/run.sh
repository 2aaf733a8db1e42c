#!/usr/bin/env bash
# malloctrace benchmark suite: one command, see tools/bench/README.md.
#
#   tools/bench/run.sh [--quick] [--runs N] [--only LIST] [--reports-only] [--keep-temp]
#
# Installs what it needs with apt-get (when missing), builds a release CLI
# (`swift build -c release --static-swift-stdlib`) unless MALLOCTRACE_BIN names a malloctrace binary to use,
# then runs tools/bench/bench.py, which prints the results and writes them to
# tools/bench/results/latest.md (and latest.json).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: tools/bench/run.sh [--quick] [--runs N] [--only LIST] [--reports-only] [--keep-temp]

  --quick       smaller inputs and 3 runs per command instead of 5 (a few minutes)
  --runs N      runs per command (default 5, or 3 with --quick)
  --only LIST   comma-separated subset of: churn1,churn8,stl,sqlite,python,git,cc1,startup,scan1m
  --reports-only  trace each workload once per tool, then measure only reading the traces:
                `malloctrace report` (stored analysis, full pass, full pass with a filter) vs heaptrack_print
  --keep-temp   keep the scratch directory (inputs, logs) under /tmp

environment:
  MALLOCTRACE_BIN=/path/to/malloctrace   use this CLI instead of building a release one
  BENCH_TIMEOUT=SECONDS                  kill a single run after this long (default 900)
EOF
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bench_args=()
keep_temp=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) bench_args+=(--quick) ;;
        --runs) [ $# -ge 2 ] || { usage >&2; exit 2; }; bench_args+=(--runs "$2"); shift ;;
        --only) [ $# -ge 2 ] || { usage >&2; exit 2; }; bench_args+=(--only "$2"); shift ;;
        --reports-only) bench_args+=(--reports-only) ;;
        --keep-temp) keep_temp=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

started=$(date +%s)
say() { echo "run.sh: $*" >&2; }

# --- 1. Tools -------------------------------------------------------------------------------
# command or file -> Debian package
declare -A package_of=(
    [heaptrack]=heaptrack [heaptrack_print]=heaptrack [sqlite3]=sqlite3 [git]=git
    [gcc]=gcc [g++]=g++ [/usr/bin/python3]=python3 [zstd]=zstd
)
missing=()
for tool in "${!package_of[@]}"; do
    if [[ "$tool" == /* ]]; then [ -x "$tool" ] && continue; else command -v "$tool" >/dev/null 2>&1 && continue; fi
    missing+=("${package_of[$tool]}")
done
# Building the preload library needs libunwind-dev, which a fresh Debian does not have.
if [ -z "${MALLOCTRACE_BIN:-}" ] && [ ! -e /usr/include/libunwind.h ] \
    && [ ! -e /usr/include/x86_64-linux-gnu/libunwind.h ]; then
    missing+=(libunwind-dev)
fi
if [ ${#missing[@]} -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { say "need root (or sudo) to install: ${missing[*]}"; exit 1; }
        sudo_cmd=(sudo)
    fi
    say "installing: ${missing[*]}"
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# --- 2. The CLI under test --------------------------------------------------------------------
if [ -n "${MALLOCTRACE_BIN:-}" ]; then
    malloctrace="$MALLOCTRACE_BIN"
    [ -x "$malloctrace" ] || { say "MALLOCTRACE_BIN=$malloctrace is not an executable"; exit 1; }
    build="given binary (MALLOCTRACE_BIN=$malloctrace)"
else
    command -v swift >/dev/null 2>&1 || { say "swift not found: install the toolchain or set MALLOCTRACE_BIN"; exit 1; }
    say "building the release CLI: swift build -c release --static-swift-stdlib"
    (cd "$repo" && swift build -c release --static-swift-stdlib) >&2
    malloctrace="$repo/.build/release/malloctrace"
    build="release (swift build -c release --static-swift-stdlib)"
fi
malloctrace="$(cd "$(dirname "$malloctrace")" && pwd)/$(basename "$malloctrace")"

# --- 3. Run ----------------------------------------------------------------------------------
work="$(mktemp -d /tmp/malloctrace-bench.XXXXXX)"
cleanup() {
    if [ "$keep_temp" = 1 ]; then say "kept the scratch directory $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# bench.py runs in the background so that an interrupt reaches it even while bash waits: it then
# kills the run in progress (its own process group) and exits, and the EXIT trap cleans up.
/usr/bin/python3 "$here/bench.py" --malloctrace "$malloctrace" --build "$build" --work "$work" \
    --out "$here/results/latest.md" --timeout "${BENCH_TIMEOUT:-900}" ${bench_args[@]+"${bench_args[@]}"} &
bench_pid=$!
trap 'kill -TERM "$bench_pid" 2>/dev/null || true' INT TERM HUP
while :; do
    status=0
    wait "$bench_pid" || status=$?
    kill -0 "$bench_pid" 2>/dev/null || break # still running: a trap interrupted `wait`
done
say "finished in $(( $(date +%s) - started )) s (exit status $status)"
exit $status
