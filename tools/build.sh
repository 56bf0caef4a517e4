#!/usr/bin/env bash
# Configures and builds Agate into build/ (release with debug info).
#   tools/build.sh [--quiet] [cmake configure options...]
# --quiet keeps the compiler's progress in build/build.log and shows it only
# if the build fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
quiet=0
if [ "${1:-}" = "--quiet" ]; then quiet=1; shift; fi
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
if [ "$quiet" = 1 ]; then
  if ! cmake --build "$root/build" -j"$(nproc)" >"$root/build/build.log" 2>&1; then
    tail -n 60 "$root/build/build.log" >&2
    echo "build failed; the whole log is in build/build.log" >&2
    exit 1
  fi
  echo "built: $(ls "$root/build/bin" | tr '\n' ' ')(in build/bin)"
else
  cmake --build "$root/build" -j"$(nproc)"
fi
