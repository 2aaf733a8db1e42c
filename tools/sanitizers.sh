#!/usr/bin/env bash
# Runs what works under the sanitizers (see "Sanitizers" in tools/sanitizers/README.md for what does not):
#
#   asan        swift test --sanitize=address (scratch path .build-asan), LeakSanitizer on, with
#               tools/sanitizers/lsan.supp for leaks inside the Swift toolchain's own libraries
#   tsan        swift test --sanitize=thread (scratch path .build-tsan)
#   interposer  the preload library's C sources except the malloc hooks, driven from 4 threads by
#               tools/sanitizers/interposer_harness.c, built once with -fsanitize=thread and once with
#               -fsanitize=address,undefined; the trace each run writes must read back with exact counts
#
# Usage: tools/sanitizers.sh [asan] [tsan] [interposer]     (default: all three)
# Each Swift configuration is a full build of its own (1-2 minutes each on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh --test
steps=("$@")
[[ ${#steps[@]} -eq 0 ]] && steps=(asan tsan interposer)
failures=()

say() { printf 'sanitizers: %s\n' "$*" >&2; }

swift_tests() { # SANITIZER SCRATCH
    say "swift test --sanitize=$1 (scratch path $2)"
    swift build --build-tests --sanitize="$1" --scratch-path "$2" >/dev/null
    # swiftStacksMatch traces the CLI itself; a sanitized CLI defines malloc in its own executable (the
    # sanitizer runtime is linked in statically), which comes before LD_PRELOAD in symbol lookup, so the
    # hooks never run in it and the test would see no stacks at all.
    # fileSizeLimitBelowOneWindow runs the CLI under `prlimit --fsize`: the TSan runtime itself dies there
    # (its own writes hit SIGXFSZ: "ThreadSanitizer: DEADLYSIGNAL ... nested bug"), before any of our code.
    # tooManyLiveBlocksEndInOneLine runs the CLI under `ulimit -v`: a sanitized CLI cannot even start there,
    # since ASan and TSan reserve terabytes of shadow address space at start.
    # jemallocAndMimallocGiveTheSameFiguresAsGlibc preloads jemalloc and mimalloc into `malloctrace run` itself (as a
    # user would: LD_PRELOAD=libjemalloc.so.2 malloctrace run -- prog); a sanitized CLI cannot run on another malloc
    # ("AddressSanitizer: attempting free on address which was not malloc()-ed" inside libstdc++).
    local skips=(--skip swiftStacksMatch --skip tooManyLiveBlocksEndInOneLine
        --skip jemallocAndMimallocGiveTheSameFiguresAsGlibc)
    [[ $1 == thread ]] && skips+=(--skip fileSizeLimitBelowOneWindow)
    swift test --skip-build --sanitize="$1" --scratch-path "$2" "${skips[@]}" 2>&1 | tail -n 40 ||
        failures+=("swift test --sanitize=$1")
}

interposer() {
    local out=.build-sanitizers source=Sources/MallocTracePreload
    mkdir -p "$out"
    # Every source of the preload library except interpose.c, whose malloc would fight the sanitizer's (the
    # harness stands in for its mt_register_quick_exit_handler).
    local sources=()
    for file in "$source"/*.c; do
        [[ $file == */interpose.c ]] || sources+=("$file")
    done
    # MT_SANITIZER_HARNESS leaves out the __register_atfork interposer (lifecycle.c), another hook.
    local common=(-O1 -g -std=gnu11 -pthread -fno-omit-frame-pointer -ftls-model=initial-exec -Wall -Werror
        -DMT_SANITIZER_HARNESS -I Sources/CMallocTraceFormat/include -I "$source")
    # The toolchain's static TSan runtime carries libdispatch interceptors: link the toolchain's libdispatch.
    local swift_lib
    swift_lib=$(dirname "$(command -v swift)")/../lib/swift/linux
    local -A flags=(
        [thread]="-fsanitize=thread"
        [address]="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fuse-ld=lld"
    )
    local -A links=(
        [thread]="-L$swift_lib -ldispatch -lBlocksRuntime -Wl,-rpath,$swift_lib"
        [address]=""
    )
    swift build >/dev/null
    local cli
    cli=$(swift build --show-bin-path)/malloctrace
    for sanitizer in thread address; do
        say "interposer sources with ${flags[$sanitizer]%% *}"
        local library=$out/libmalloctrace-$sanitizer.so harness=$out/interposer-harness-$sanitizer
        local trace=$out/harness-$sanitizer.mtrace
        # The library is a separate object so that the harness's frames are not taken for the tracer's own.
        # shellcheck disable=SC2086
        clang ${flags[$sanitizer]} "${common[@]}" -shared -fPIC "${sources[@]}" -lunwind -o "$library"
        # shellcheck disable=SC2086
        clang ${flags[$sanitizer]} "${common[@]}" tools/sanitizers/interposer_harness.c "$library" \
            -Wl,-rpath,"$PWD/$out" ${links[$sanitizer]} -o "$harness" 2>&1 | grep -v "Cannot export local symbol" || true
        rm -f "$trace"
        local printed
        if ! printed=$(MALLOCTRACE_OUTPUT=$trace "$harness" 4 80000); then
            failures+=("interposer harness with $sanitizer sanitizer")
            continue
        fi
        local expected counted
        expected=$(sed -E 's/harness: ([0-9]+) allocations, ([0-9]+) frees/\1 \2 0 0 exit/' <<<"$printed")
        counted=$("$cli" report "$trace" --format json --top 0 | python3 -c '
import json, sys
report = json.load(sys.stdin)
summary = report["summary"]
print(summary["allocation_calls"], summary["free_calls"], summary["unmatched_frees"],
      len(report["trace"]["diagnostics"]), report["trace"]["end_reason"])')
        if [[ $counted != "$expected" ]]; then
            say "the harness's trace holds '$counted' (allocations, frees, unmatched, diagnostics, end), not '$expected'"
            failures+=("interposer harness trace with $sanitizer sanitizer")
        else
            say "clean: $printed, all in the trace"
        fi
    done
}

for step in "${steps[@]}"; do
    case $step in
    asan)
        ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$PWD/tools/sanitizers/lsan.supp \
            swift_tests address .build-asan
        ;;
    tsan) swift_tests thread .build-tsan ;;
    interposer) interposer ;;
    *)
        say "unknown step '$step' (asan, tsan, interposer)"
        exit 2
        ;;
    esac
done

if [[ ${#failures[@]} -ne 0 ]]; then
    say "FAILED: ${failures[*]}"
    exit 1
fi
say "all clean: ${steps[*]}"
