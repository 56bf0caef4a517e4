# cli_lib.sh - what the CLI integration scripts share: absolute paths for
# AGATE and AGATED, a work directory $W, cleanup of every daemon by pid (also
# through a watchdog when the script is killed outright), and the check
# helpers (run, check, wait_for, out_has, py_true, ...). Sourced after the
# script has set AGATE, AGATED and CLI_TEST_TAG (the work directory's prefix).
# absolute paths: the daemon is started from another working directory
AGATE=$(cd "$(dirname "$AGATE")" && pwd)/$(basename "$AGATE")
AGATED=$(cd "$(dirname "$AGATED")" && pwd)/$(basename "$AGATED")
if ! command -v python3 >/dev/null; then
  echo "python3 is needed to check JSON output (tools/install-deps.sh --test)"
  echo "0 passed, 1 failed"
  exit 1
fi

root=${AGATE_TEST_TMPDIR:-${TMPDIR:-/tmp}}
mkdir -p "$root"
W=$(mktemp -d "$root/$CLI_TEST_TAG-$$-XXXXXX")
export HOME=$W/home AGATE_DAEMON=$AGATED
unset AGATE_SERVER AGATE_LOCATOR
mkdir -p "$HOME"

passed=0
failed=0
PIDS=()
DAEMON_DIRS=()

# ---- cleanup: kill by pid, whatever happened ----------------------------
cleanup() {
  local d p
  for d in "${DAEMON_DIRS[@]}"; do
    if [ -f "$d/agated.status" ]; then
      p=$(sed -n 's/^pid=//p' "$d/agated.status")
      [ -n "$p" ] && PIDS+=("$p")
    fi
  done
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -CONT "$p" 2>/dev/null
      kill -KILL "$p" 2>/dev/null
    fi
  done
}
on_exit() {
  cleanup
  if [ "$failed" -eq 0 ]; then
    rm -rf "$W"
  else
    echo "keeping $W for inspection"
  fi
}
trap on_exit EXIT
trap 'echo "interrupted"; exit 130' INT TERM HUP

# A watchdog outside this process tree: if this script is killed outright
# (SIGKILL, e.g. by a test timeout) the daemons `agate start` detached are
# killed anyway. It reads the directories listed in $W/dirs, kills an agated
# pid found in their status files, and ends with the script.
touch "$W/dirs"
(
  setsid bash -c '
    script=$1 list=$2
    while kill -0 "$script" 2>/dev/null; do sleep 1; done
    while read -r d; do
      p=$(sed -n "s/^pid=//p" "$d/agated.status" 2>/dev/null)
      [ -n "$p" ] && grep -qa agated "/proc/$p/cmdline" 2>/dev/null && kill -KILL "$p"
    done <"$list" 2>/dev/null
  ' watchdog "$$" "$W/dirs" </dev/null >/dev/null 2>&1 &
)
add_daemon_dir() { DAEMON_DIRS+=("$1"); echo "$1" >>"$W/dirs"; }

# ---- reporting -----------------------------------------------------------
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() {
  failed=$((failed + 1))
  echo "FAIL $1"
  [ -n "${2:-}" ] && echo "     $2"
  if [ -s "$W/out" ]; then echo "     stdout:"; sed 's/^/       /' "$W/out" | head -20; fi
  if [ -s "$W/err" ]; then echo "     stderr:"; sed 's/^/       /' "$W/err" | head -20; fi
}
# Ends the script early (a step everything after depends on failed).
give_up() {
  echo "cannot go on: $1"
  echo "$passed passed, $failed failed"
  exit 1
}

# run EXPECTED_RC NAME -- CMD...: runs CMD with stdout in $W/out and stderr
# in $W/err, and checks the exit status.
run() {
  local want=$1 name=$2
  shift 3
  "$@" >"$W/out" 2>"$W/err" </dev/null
  RC=$?
  if [ "$RC" -eq "$want" ]; then
    ok "$name"
    return 0
  fi
  fail "$name" "exit status $RC, expected $want: $*"
  return 1
}

# check NAME COMMAND...: passes if COMMAND succeeds.
check() {
  local name=$1
  shift
  if "$@" >/dev/null 2>&1; then ok "$name"; else fail "$name" "check failed: $*"; fi
}

# wait_for SECONDS NAME COMMAND...: passes as soon as COMMAND succeeds
# (tried every 0.2 s), fails if it still does not after SECONDS, showing
# the last try's output. For what the cluster reports with a delay
# (heartbeats, image transfers, leaves).
wait_for() {
  local secs=$1 name=$2
  shift 2
  local deadline=$((SECONDS + secs))
  while :; do
    if "$@" >"$W/out" 2>"$W/err" </dev/null; then
      ok "$name"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      fail "$name" "still not true after ${secs} s: $*"
      return 1
    fi
    sleep 0.2
  done
}

# Output checks on the last run.
out_has() { grep -q -- "$1" "$W/out"; }
err_has() { grep -q -- "$1" "$W/err"; }
out_is_json() { python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$W/out"; }
# jq-like: py EXPR evaluates EXPR with j = the JSON document in $W/out.
py() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($1)" "$W/out"; }
py_true() { [ "$(py "$1" 2>/dev/null)" = "True" ]; }
# json_true EXPR CMD...: runs CMD (a --json command) and evaluates EXPR on
# its output; for wait_for.
json_true() {
  local expr=$1
  shift
  "$@" >"$W/out" 2>"$W/err" </dev/null && py_true "$expr"
}

dead_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

A() { "$AGATE" "$@"; }
