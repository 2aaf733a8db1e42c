#!/usr/bin/env bash
# Checks formatting of every Swift and C source: swift-format (ships with the toolchain) and clang-format
# (Debian's clang-format package). Exit status is non-zero when anything is off; `tools/lint.sh --fix`
# rewrites the files instead.
set -euo pipefail
cd "$(dirname "$0")/.."

swift_paths=(Package.swift Sources Tests tools)
mapfile -t c_files < <(git ls-files '*.c' '*.h' '*.cpp' 2>/dev/null || find Sources Tests -name '*.[ch]' -o -name '*.cpp')

if [[ "${1:-}" == "--fix" ]]; then
    swift format format --in-place --recursive "${swift_paths[@]}"
    clang-format -i "${c_files[@]}"
    exit 0
fi

swift format lint --strict --recursive "${swift_paths[@]}"
if ! command -v clang-format >/dev/null; then
    echo "lint: clang-format is not installed (apt-get install clang-format)" >&2
    exit 1
fi
clang-format --dry-run --Werror "${c_files[@]}"
echo "lint: clean"
