#!/usr/bin/env bash
# Installs the Debian packages Agate needs, only if some are missing.
#   tools/install-deps.sh            build dependencies
#   tools/install-deps.sh --test     plus what the test suite needs (clang, its sanitizer/fuzzer runtime)
#   tools/install-deps.sh --bench    plus redis (for tools/bench-vs-redis.sh)
set -euo pipefail

pkgs=(build-essential cmake pkg-config libevent-dev libmsgpack-dev libxxhash-dev
      libedit-dev check)
for arg in "$@"; do
  case "$arg" in
    --test) pkgs+=(clang libclang-rt-14-dev python3 procps libsqlite3-dev) ;;
    --bench) pkgs+=(redis-server redis-tools procps) ;;
    *) echo "install-deps.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps.sh: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
