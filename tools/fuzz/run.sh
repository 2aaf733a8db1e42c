#!/usr/bin/env bash
# Builds the libFuzzer target for the trace reader (FuzzTraceReader.swift + the MallocTraceFormat and
# MallocTraceAnalysis sources, with -sanitize=fuzzer,address) into .build-fuzz/ and runs it on the seed
# corpus. Extra arguments go to libFuzzer, e.g.
#   tools/fuzz/run.sh -max_total_time=600          # ten minutes
#   tools/fuzz/run.sh .build-fuzz/crash-1234abcd    # replay one input
# New inputs go to .build-fuzz/corpus (the committed seeds in tools/fuzz/corpus stay untouched); crashes
# are written as .build-fuzz/crash-*. See tools/fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.build-fuzz
mkdir -p "$out/include" "$out/corpus"

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
echo "fuzz: building $out/fuzz-trace-reader" >&2
module MallocTraceFormat
module MallocTraceAnalysis
swiftc "${flags[@]}" -module-name FuzzTraceReader tools/fuzz/FuzzTraceReader.swift \
    "$out/MallocTraceFormat.o" "$out/MallocTraceAnalysis.o" -lzstd -o "$out/fuzz-trace-reader"

if [[ $# -gt 0 && -f "$1" ]]; then
    exec "$out/fuzz-trace-reader" "$@"
fi
exec "$out/fuzz-trace-reader" "$out/corpus" tools/fuzz/corpus -artifact_prefix="$out/" -max_len=65536 \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@"
