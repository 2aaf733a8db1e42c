#!/usr/bin/env bash
# Builds a libFuzzer target with -sanitize=fuzzer,address into .build-fuzz/ and runs it on the seed corpus:
#   reader    (the default) FuzzTraceReader.swift: the reader and the heap analysis
#   pipeline  FuzzPipeline.swift: reader, filtered pass, report, text and JSON, diff (symbol tables only)
# Extra arguments go to libFuzzer, e.g.
#   tools/fuzz/run.sh -max_total_time=600                     # the reader, ten minutes
#   tools/fuzz/run.sh pipeline -max_total_time=600            # the whole pipeline, ten minutes
#   tools/fuzz/run.sh pipeline .build-fuzz/crash-1234abcd     # replay one input
# New inputs go to .build-fuzz/corpus (.build-fuzz/corpus-pipeline); the committed seeds in
# tools/fuzz/corpus stay untouched; crashes are written as .build-fuzz/crash-* (pipeline-crash-*).
# See tools/fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.build-fuzz
target=reader
if [[ $# -gt 0 && ( $1 == reader || $1 == pipeline ) ]]; then
    target=$1
    shift
fi
mkdir -p "$out/include" "$out/corpus" "$out/corpus-pipeline"

# The reader imports the header-only C module CMallocTraceFormat, and libzstd as CZstd (for compressed
# chunks); SwiftPM would generate the first module map and finds the second in Sources/CZstd.
cat >"$out/include/module.modulemap" <<MAP
module CMallocTraceFormat {
    header "$PWD/Sources/CMallocTraceFormat/include/malloctrace_format.h"
    export *
}
module CZstd [system] {
    header "$PWD/Sources/CZstd/shim.h"
    link "zstd"
    export *
}
module CZlib [system] {
    header "$PWD/Sources/CZlib/shim.h"
    link "z"
    export *
}
module CMallocTraceDemangle {
    header "$PWD/Sources/CMallocTraceDemangle/include/malloctrace_demangle.h"
    export *
}
MAP

# The same language settings as Package.swift's swiftSettings.
flags=(
    -swift-version 6 -O -g -sanitize=fuzzer,address -parse-as-library -use-ld=lld
    -enable-upcoming-feature ExistentialAny -enable-upcoming-feature MemberImportVisibility
    -enable-upcoming-feature InternalImportsByDefault
    -I "$out/include" -I "$out"
)
module() { # NAME: compiles Sources/NAME into $out/NAME.o and $out/NAME.swiftmodule
    swiftc "${flags[@]}" -module-name "$1" -whole-module-optimization -emit-module \
        -emit-module-path "$out/$1.swiftmodule" -c Sources/"$1"/*.swift -o "$out/$1.o"
}
module MallocTraceFormat
module MallocTraceAnalysis
if [[ $target == reader ]]; then
    echo "fuzz: building $out/fuzz-trace-reader" >&2
    swiftc "${flags[@]}" -module-name FuzzTraceReader tools/fuzz/FuzzTraceReader.swift \
        "$out/MallocTraceFormat.o" "$out/MallocTraceAnalysis.o" -lzstd -o "$out/fuzz-trace-reader"
    if [[ $# -gt 0 && -f "$1" ]]; then
        exec "$out/fuzz-trace-reader" "$@"
    fi
    exec "$out/fuzz-trace-reader" "$out/corpus" tools/fuzz/corpus -artifact_prefix="$out/" -max_len=65536 \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@"
fi

# The pipeline adds symbolication (with the C demanglers, compiled by clang as SwiftPM would) and reports.
echo "fuzz: building $out/fuzz-pipeline" >&2
clang -O1 -g -fsanitize=address -I Sources/CMallocTraceDemangle/include -c Sources/CMallocTraceDemangle/demangle.c \
    -o "$out/CMallocTraceDemangle.o"
module MallocTraceSymbolication
module MallocTraceReports
swiftc "${flags[@]}" -module-name FuzzPipeline tools/fuzz/FuzzPipeline.swift "$out/MallocTraceFormat.o" \
    "$out/MallocTraceAnalysis.o" "$out/MallocTraceSymbolication.o" "$out/MallocTraceReports.o" \
    "$out/CMallocTraceDemangle.o" -lzstd -lz -lstdc++ -o "$out/fuzz-pipeline"
if [[ $# -gt 0 && -f "$1" ]]; then
    exec "$out/fuzz-pipeline" "$@"
fi
# Seeds: each committed trace behind a few control prefixes (see FuzzPipeline.swift): no options; a time
# range, a thread and both patterns; a diff against the second half with leak kinds and a huge top; and the
# allocator's view (report --allocator).
seeds=$out/seeds-pipeline
rm -rf "$seeds"
mkdir -p "$seeds"
for file in tools/fuzz/corpus/*.mtrace; do
    name=$(basename "$file" .mtrace)
    { printf '\x00\x00\x00\x00\x00\x00\x00\x00'; cat "$file"; } >"$seeds/$name-plain"
    { printf '\x1f\x00\x10\x01\x21\x04\x09\x00'; cat "$file"; } >"$seeds/$name-filtered"
    { printf '\x60\xfe\xfe\x00\x00\x22\x1a\x0f'; cat "$file"; } >"$seeds/$name-diff"
    { printf '\x00\x00\x00\x00\x00\x1e\x00\x10'; cat "$file"; } >"$seeds/$name-allocator"
done
exec "$out/fuzz-pipeline" "$out/corpus-pipeline" "$seeds" -artifact_prefix="$out/pipeline-" -max_len=65536 \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@"
