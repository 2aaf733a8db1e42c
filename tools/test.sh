#!/usr/bin/env bash
# Runs the whole test suite: unit tests of the reader, analysis and symbol tables, and integration tests
# that trace the fixture programs under Tests/Fixtures with the built CLI. Extra arguments go to
# `swift test` (e.g. `--filter ThreadTests`).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh --test
swift test "$@"
