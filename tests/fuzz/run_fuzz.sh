#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time, as a ctest test.
#   run_fuzz.sh FUZZER WORKDIR SECONDS SEED_DIR...
# New inputs go to WORKDIR/corpus (the committed seeds are only read);
# a crash leaves its reproducer in WORKDIR/artifacts/ and fails the test.
# AGATE_FUZZ_SECONDS overrides SECONDS.
set -u
fuzzer=$1 work=$2 secs=${AGATE_FUZZ_SECONDS:-$3}
shift 3
mkdir -p "$work/corpus" "$work/artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
"$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" "$@" 2>&1 | tail -n 40
rc=${PIPESTATUS[0]}
if [ "$rc" -eq 0 ]; then
  echo "1 passed, 0 failed"
else
  echo "fuzzer exited with $rc; reproducers in $work/artifacts/:"
  ls -l "$work/artifacts/" 2>/dev/null
  echo "replay one with: $fuzzer $work/artifacts/<file>"
  echo "0 passed, 1 failed"
fi
exit "$rc"
