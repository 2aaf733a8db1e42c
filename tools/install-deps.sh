#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages malloctrace needs beyond the Swift toolchain, if any is missing:
# libunwind-dev (the preload library links libunwind), libzstd-dev (the CLI compresses finished traces),
# python3, binutils, sqlite3, git and gcc (programs the tests trace; RealProgramTests skips those that are
# missing).
# Extra package names can be passed as arguments. Uses sudo when not run as root.
set -euo pipefail
packages=(libunwind-dev libzstd-dev binutils libc6-dev python3 sqlite3 git gcc "$@")
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
echo "install-deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
