#!/usr/bin/env bash
# The install path a library user takes: `cmake --install` into a fresh
# prefix, then the example in examples/ built against the installed
# libagate through pkg-config (shared and static), and run against an
# agated from the same prefix.
#   install_test.sh BUILD_DIR SOURCE_DIR CC [EXTRA_CFLAGS]
# EXTRA_CFLAGS carries the sanitizer flags of a sanitizer build, whose
# installed libraries need the sanitizer runtime linked into the program.
set -u
build=$1 src=$2 cc=$3 extra=${4:-}
base=${AGATE_TEST_TMPDIR:-${TMPDIR:-/tmp}}
mkdir -p "$base"
tmp=$(mktemp -d "$base/install.XXXXXX")
pid=""
pass=0 fail=0

cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# check DESCRIPTION COMMAND...: runs the command, records the outcome.
check() {
  local desc=$1; shift
  if "$@" >"$tmp/last.log" 2>&1; then
    pass=$((pass + 1)); echo "ok   $desc"
  else
    fail=$((fail + 1)); echo "FAIL $desc"; sed 's/^/     /' "$tmp/last.log" | tail -20
  fi
}

prefix=$tmp/prefix
check "cmake --install into a fresh prefix" cmake --install "$build" --prefix "$prefix"
for f in bin/agate bin/agated bin/agate-bench include/agate/agate.h lib/libagate.a \
         lib/libagate.so lib/pkgconfig/agate.pc; do
  check "installed $f" test -e "$prefix/$f"
done
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
check "pkg-config finds agate $(pkg-config --modversion agate 2>/dev/null)" pkg-config --exists agate
check "the installed libagate.so exports only agate_*" \
  bash -c "! nm -D --defined-only '$prefix/lib/libagate.so' | awk '{print \$3}' | grep -v '^agate_' | grep -q ."

mkdir -p "$tmp/ex" && cp "$src/examples/example.c" "$src/examples/Makefile" "$tmp/ex/"
flags="-O1 -g -Wall -Wextra -Werror $extra"
check "example builds against the shared library" make -s -C "$tmp/ex" CC="$cc" CFLAGS="$flags" example
check "example builds against the static library" make -s -C "$tmp/ex" CC="$cc" CFLAGS="$flags" static

"$prefix/bin/agated" --role=server --name=inst --dir="$tmp/srv" --port=0 >"$tmp/agated.out" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/^port=//p' "$tmp/srv/agated.status" 2>/dev/null)
  [ -n "$port" ] && grep -q '^state=running' "$tmp/srv/agated.status" && break
  sleep 0.1
done
check "installed agated starts (port ${port:-none})" test -n "$port"
if [ -n "$port" ]; then
  check "shared example runs against it" env LD_LIBRARY_PATH="$prefix/lib" "$tmp/ex/example" "127.0.0.1:$port"
  grep -q "greeting" "$tmp/last.log" || { fail=$((fail + 1)); echo "FAIL shared example output lacks the greeting"; }
  check "static example runs against it" "$tmp/ex/example-static" "127.0.0.1:$port"
  check "installed CLI reports the server" "$prefix/bin/agate" status server --dir="$tmp/srv"
  kill -TERM "$pid"
  wait "$pid"; rc=$?
  pid=""
  check "agated stops on SIGTERM with exit 0 (got $rc)" test "$rc" -eq 0
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
