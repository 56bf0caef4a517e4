#!/usr/bin/env bash
# The whole test suite, from a clean checkout: installs what is missing,
# builds with clang + AddressSanitizer + UBSan (and the libFuzzer targets)
# into build-test/, and runs every test with ctest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/install-deps.sh" --test
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
CC=clang cmake -S "$root" -B "$root/build-test" -DCMAKE_BUILD_TYPE=Debug \
  -DAGATE_SANITIZE=ON -DAGATE_FUZZ=ON -DAGATE_TESTS=ON >/dev/null
cmake --build "$root/build-test" -j"$(nproc)"
cd "$root/build-test"
ctest --output-on-failure -j"$(nproc)" --timeout 600
