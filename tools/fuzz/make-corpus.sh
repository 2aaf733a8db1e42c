#!/usr/bin/env bash
# Regenerates the fuzzer's seed corpus (tools/fuzz/corpus) from traces of the test fixtures: every record
# kind and event opcode the writer produces (all allocator functions, realloc, failed calls, stacks, module
# load and unload, several threads, _exit, a crash without END), each compacted by compact-trace.py.
# Needs `swift build --build-tests` first. The seeds hold this machine's paths and addresses.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(swift build --show-bin-path)
cli=$bin/malloctrace
fixtures=$bin/malloctrace_IntegrationTests.resources
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
corpus=tools/fuzz/corpus
rm -rf "$corpus"
mkdir -p "$corpus"

seed() { # NAME MAX_BYTES DEPTH PROGRAM ARGS...
    local name=$1 max=$2 depth=$3
    shift 3
    "$cli" run --no-compress -o "$work/$name.mtrace" --depth "$depth" -- "$@" >/dev/null 2>&1 || true
    python3 tools/fuzz/compact-trace.py "$work/$name.mtrace" "$corpus/$name.mtrace" "$max"
}

seed peak 0 16 "$fixtures/fixture-patterns" peak
seed all-functions 0 16 "$fixtures/fixture-patterns" all-functions
seed underscore-exit 0 16 "$fixtures/fixture-patterns" exit
seed abort-no-end 0 16 "$fixtures/fixture-patterns" abort
seed leaks 24000 8 "$fixtures/fixture-patterns" leaks
seed api-pool 0 8 "$fixtures/fixture-api" pool
seed api-pause 0 8 "$fixtures/fixture-api" pause
seed api-marks 0 8 "$fixtures/fixture-api" marks
seed threads 16000 4 "$fixtures/fixture-patterns" threads
seed semantics-dlopen 50000 8 "$fixtures/fixture-semantics"
# ALLOCATOR record, CHUNK_INFO (mmapped chunks, an unsplit remainder), MALLOPT; MAPPING (mmap, munmap, mremap, sbrk)
seed chunks-mallopt 0 8 "$fixtures/fixture-chunks" mallopt "$work/chunks.txt"
MALLOCTRACE_MMAP=1 seed chunks-mappings 0 8 "$fixtures/fixture-chunks" mappings "$work/chunks.txt"
# A leak scan (LEAK_SCAN record: leak kinds) at exit, of a program with leaks of every kind.
leak_seed() { # NAME SCENARIO
    "$cli" run --no-compress --leak-kinds -o "$work/$1.mtrace" --depth 8 -- "$fixtures/fixture-leakkinds" "$2" \
        >/dev/null 2>&1 || true
    python3 tools/fuzz/compact-trace.py "$work/$1.mtrace" "$corpus/$1.mtrace"
}
leak_seed leak-scan-chain chain
leak_seed leak-scan-interior interior
# A followed fork child: its own trace, whose PROCESS record names a parent.
MALLOCTRACE_FOLLOW_CHILDREN=1 "$cli" run -o "$work/fork.%p.mtrace" --depth 8 -- "$fixtures/fixture-patterns" fork \
    >/dev/null 2>&1 || true
child=$(ls -S "$work"/fork.*.mtrace | tail -1)
python3 tools/fuzz/compact-trace.py "$child" "$corpus/fork-child.mtrace"
# Compressed chunks (version 2) and keyed blocks (version 3, as `malloctrace run` writes): copies of seeds.
for name in all-functions threads; do
    cp "$corpus/$name.mtrace" "$corpus/$name-zstd.mtrace"
    "$cli" compress --keep-addresses "$corpus/$name-zstd.mtrace" >/dev/null 2>&1
done
for name in all-functions threads leak-scan-chain semantics-dlopen; do
    cp "$corpus/$name.mtrace" "$corpus/$name-keyed.mtrace"
    "$cli" compress "$corpus/$name-keyed.mtrace" >/dev/null 2>&1
done
du -cb "$corpus"/* | tail -1
