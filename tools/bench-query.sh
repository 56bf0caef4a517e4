#!/usr/bin/env bash
# bench-query.sh - the query benchmark of issue 4: loads N orders
# {id, status, total, customer:{city}} into a throwaway agated and runs
# agate-bench's query tests on it, then prints a markdown table. With
# --cluster, the same on a throwaway cluster (a locator and two servers, a
# PARTITION_REDUNDANT region with one redundant copy) through
# agate-bench --locator, in the same run.
#
# Tests (agate-bench -t pointget,query; docs/benchmarks.md, "Queries"):
#   POINTGET  agate_get of key:%012d of a random id: the floor a point
#             query could approach with an index
#   POINT     SELECT * FROM /bench WHERE id = $1 (a random id)
#   RANGE     SELECT id, total FROM /bench WHERE total >= $1 AND total < $2
#             (a random window holding ~0.1% of the orders)
#   SCAN      SELECT status, COUNT(*), SUM(total) FROM /bench GROUP BY status
# each for --duration seconds with every client count of --clients (one
# query in flight per connection), first without indexes (every query
# reads every entry), then POINT and RANGE again after
#   agate create index --name=byId --expression=id --type=hash
#   agate create index --name=byTotal --expression=total --type=range
# (shown as POINT+IDX and RANGE+IDX).
#
# Redis has no query language, so there is no Redis column; the key-value
# comparison with Redis is tools/bench-vs-redis.sh.
#
# Installs nothing. Needs a build of agated, agate-bench and the agate CLI
# (cmake -S . -B build -DCMAKE_BUILD_TYPE=Release &&
# cmake --build build -j2). Every process it starts is killed by pid when
# it exits.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/build/bin"
ENTRIES=1000000
DURATION=""
CLIENT_LIST="1,4"
QUICK=0
OUT=""
AGATE_THREADS=""
CLUSTER=0

usage() {
    cat <<EOF
Usage: tools/bench-query.sh [--entries N] [--duration S] [--clients LIST] [--quick]
                            [--out FILE] [--bin DIR] [--agate-threads N] [--cluster]

  --entries N         orders loaded (default 1000000)
  --duration S        seconds per test (default 8)
  --clients LIST      comma-separated connection counts, each a run of every
                      test (default 1,4): 1 measures one query at a time,
                      more measure queries queueing on the server
  --quick             --entries 100000 --duration 2 --clients 1: a smoke test,
                      not a measurement
  --out FILE          also write the markdown report to FILE
  --bin DIR           where agated, agate-bench and agate are
                      (default build/bin)
  --agate-threads N   agated --threads (default: agated's own, CPUs - 1, at least 1)
  --cluster           also run every test on a cluster: a locator and two
                      servers on 127.0.0.1, region PARTITION_REDUNDANT with
                      redundant-copies=1 (created with the agate CLI through
                      the locator), agate-bench --locator
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --entries) ENTRIES=${2:?--entries needs a number}; shift 2 ;;
    --entries=*) ENTRIES=${1#*=}; shift ;;
    --duration) DURATION=${2:?--duration needs a number}; shift 2 ;;
    --duration=*) DURATION=${1#*=}; shift ;;
    --clients) CLIENT_LIST=${2:?--clients needs a list}; shift 2 ;;
    --clients=*) CLIENT_LIST=${1#*=}; shift ;;
    --quick) QUICK=1; shift ;;
    --out) OUT=${2:?--out needs a file}; shift 2 ;;
    --out=*) OUT=${1#*=}; shift ;;
    --bin) BIN=${2:?--bin needs a directory}; shift 2 ;;
    --bin=*) BIN=${1#*=}; shift ;;
    --agate-threads) AGATE_THREADS=${2:?--agate-threads needs a number}; shift 2 ;;
    --agate-threads=*) AGATE_THREADS=${1#*=}; shift ;;
    --cluster) CLUSTER=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench-query: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
if [ "$QUICK" = 1 ]; then
    ENTRIES=100000
    DURATION=${DURATION:-2}
    CLIENT_LIST=1
fi
DURATION=${DURATION:-8}
case "$ENTRIES" in
'' | *[!0-9]* | 0 | 0*) echo "bench-query: --entries wants a positive integer" >&2; exit 2 ;;
esac
case "$DURATION" in
'' | *[!0-9.]* | *.*.* | .) echo "bench-query: --duration wants a number of seconds" >&2; exit 2 ;;
esac
IFS=, read -r -a CLIENTS <<<"$CLIENT_LIST"
[ ${#CLIENTS[@]} -gt 0 ] || { echo "bench-query: --clients names no count" >&2; exit 2; }
for c in "${CLIENTS[@]}"; do
    case "$c" in
    '' | *[!0-9]* | 0 | 0*) echo "bench-query: --clients wants positive integers: '$CLIENT_LIST'" >&2; exit 2 ;;
    esac
done

# ---- prerequisites -----------------------------------------------------
missing=0
progs=(agated agate-bench agate)
for prog in "${progs[@]}"; do
    if [ ! -x "$BIN/$prog" ]; then
        echo "bench-query: $BIN/$prog not found; build it first:" >&2
        echo "    cmake -S $ROOT -B $ROOT/build -DCMAKE_BUILD_TYPE=Release && cmake --build $ROOT/build -j2" >&2
        missing=1
    fi
done
if [ "$missing" = 0 ] && ! "$BIN/agate-bench" --help | grep -q -- '--duration'; then
    echo "bench-query: $BIN/agate-bench has no query tests (built before them?): rebuild it" >&2
    missing=1
fi
for tool in awk timeout; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench-query: $tool not found" >&2; missing=1; }
done
[ "$missing" = 0 ] || exit 1

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-query.XXXXXX")
BENCH_NAME=bench-query
SRV_PIN=() # no CPU pinning here
# shellcheck source=tools/bench-lib.sh
. "$ROOT/tools/bench-lib.sh"
AGATE_PID=""
LOC_PID=""   # the cluster's locator
SRV1_PID=""  # and its two servers
SRV2_PID=""

cleanup() {
    stop_pids "$AGATE_PID" "$SRV1_PID" "$SRV2_PID" "$LOC_PID"
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A benchmark command that runs longer than this is stopped (a hung server).
TEST_LIMIT=600

# run_bench SIDE CLIENTS TESTS SUFFIX EXTRA...: one agate-bench run of
# TESTS (-t) on SIDE (agate or cluster) with CLIENTS connections; appends
# its CSV lines to $TMP/results as "side|clients|csv fields", SUFFIX added
# to the test names.
run_bench() {
    local side=$1 c=$2 tests=$3 suffix=$4
    shift 4
    local target
    if [ "$side" = cluster ]; then
        target=(--locator "$LOCATOR")
    else
        target=(-h 127.0.0.1 -p "$AGATE_PORT")
    fi
    echo "  $side, -c $c: $tests$suffix, ${DURATION} s each" >&2
    timeout "$TEST_LIMIT" "$BIN/agate-bench" "${target[@]}" -r "$ENTRIES" -c "$c" \
        -t "$tests" --duration "$DURATION" --csv "$@" >"$TMP/out.csv" 2>"$TMP/err" || {
        local rc=$?
        echo "bench-query: agate-bench failed on $side (exit status $rc$([ "$rc" = 124 ] && echo ": still running after $TEST_LIMIT s, stopped"))" >&2
        cat "$TMP/err" >&2
        [ "$side" = cluster ] && cluster_logs
        exit 1
    }
    # the load line ("LOAD: N orders in S seconds ...") goes to stderr with --csv
    grep '^LOAD:' "$TMP/err" | sed "s/^/$side: /" >>"$TMP/loads" || true
    grep -v '^"test"' "$TMP/out.csv" | tr -d '"' | sed "s/^\([A-Z]*\),/$side|$c|\1$suffix,/" >>"$TMP/results"
}

# create_indexes SIDE: the two indexes on region bench, through the CLI.
create_indexes() {
    local side=$1 target
    if [ "$side" = cluster ]; then target=(--locator="$LOCATOR"); else target=(--server="127.0.0.1:$AGATE_PORT"); fi
    "$BIN/agate" create index --name=byId --region=bench --expression=id --type=hash \
        "${target[@]}" >"$TMP/index.log" 2>&1 &&
        "$BIN/agate" create index --name=byTotal --region=bench --expression=total --type=range \
            "${target[@]}" >>"$TMP/index.log" 2>&1 || {
        echo "bench-query: creating the indexes on $side failed:" >&2
        cat "$TMP/index.log" >&2
        exit 1
    }
    grep -h "created" "$TMP/index.log" | sed "s/^/  $side: /" >&2 || true
}

SIDES=(agate)
start_agate
if [ "$CLUSTER" = 1 ]; then
    SIDES+=(cluster)
    start_cluster
fi

cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
agate_workers=$(sed -n 's/.* with \([0-9]*\) worker threads.*/\1/p' "$TMP/agate/bench.log" 2>/dev/null | tail -n 1)
agate_threads="${agate_workers:-?}${AGATE_THREADS:+ (--threads=$AGATE_THREADS)}"
[ -z "$AGATE_THREADS" ] && agate_threads="$agate_threads (default on $(nproc) CPUs)"
{
    echo "- Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, $(uname -sr); servers and benchmark client share these CPUs"
    rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
    built=$(date -u -r "$BIN/agated" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || echo unknown)
    echo "- Versions: $("$BIN/agated" --version), agated worker threads: $agate_threads"
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); source: $rev (working tree now; $BIN/agated built $built)"
    echo "- Workload: $ENTRIES orders {id, status, total, customer:{city}} under key:%012d, loaded with agate_put_all before the tests; agate-bench -r $ENTRIES -t pointget,query --duration $DURATION -c C for C in ${CLIENTS[*]}"
    if [ "$CLUSTER" = 1 ]; then
        echo "- Cluster: 1 locator + 2 servers on 127.0.0.1, region bench PARTITION_REDUNDANT with redundant-copies=1 (agate create region through the locator); agate-bench --locator: each query goes to one member, which gathers the other's part"
    fi
} >"$TMP/header"
cat "$TMP/header"
echo

: >"$TMP/results"
: >"$TMP/loads"
for side in "${SIDES[@]}"; do
    first=1
    for c in "${CLIENTS[@]}"; do
        if [ "$first" = 1 ]; then
            run_bench "$side" "$c" pointget,query "" # loads the orders first
            first=0
        else
            run_bench "$side" "$c" pointget,query "" --no-prefill
        fi
    done
    create_indexes "$side"
    for c in "${CLIENTS[@]}"; do
        run_bench "$side" "$c" point,range "+IDX" --no-prefill
    done
done
if [ "$CLUSTER" = 1 ]; then
    redundancy_state
    REDUNDANCY_AFTER=$REDUNDANCY
    MEMBERS_AFTER=$(members_up)
fi

# results lines: side|clients|test,qps,avg,min,p50,p95,p99,max,queries,seconds,
#   avg_rows,avg_matched,avg_scanned,avg_server_ms,scanned_per_s_server,scanned_per_s_wall
{
    cat "$TMP/header"
    sed 's/^\([a-z]*\): LOAD: \([0-9]*\) orders in \([0-9.]*\) seconds (\([0-9]*\) entries per second.*/- Load (\1): \2 orders in \3 s, \4 entries\/s (untimed for the tests)/' "$TMP/loads"
    echo
    echo "| test | target | clients | queries | queries/s | p50 ms | p99 ms | max ms | rows/query | scanned/query | server ms/query | entries scanned/s |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'|' '{
        split($3, f, ",");
        side = $1 == "agate" ? "1 server" : "cluster (2 servers)";
        scanned = f[13] > 0 ? sprintf("%.0f", f[13]) : "-";
        srvms = f[13] > 0 ? sprintf("%.1f", f[14]) : "-";
        rate = f[13] > 0 ? sprintf("%.2f M", f[15] / 1e6) : "-";
        rows = f[1] == "POINTGET" ? "1" : sprintf("%.1f", f[11]);
        printf "| %s | %s | %s | %s | %.1f | %.3f | %.3f | %.3f | %s | %s | %s | %s |\n",
            f[1], side, $2, f[9], f[2], f[5], f[7], f[8], rows, scanned, srvms, rate
    }' "$TMP/results"
    echo
    echo "POINTGET is agate_get of the key of the same random order: the floor for a point query. POINT, RANGE and SCAN read every entry; POINT+IDX and RANGE+IDX are the same queries after creating a hash index on id and a range index on total (each member reads only the entries its index part selects). Latency: around each synchronous agate_query/agate_get call; p99 of fewer than 100 queries is close to the maximum. Entries scanned/s: the replies' stats, scanned / elapsed_us (server time per query). Redis has no query language: no Redis column."
    if [ "$CLUSTER" = 1 ]; then
        echo
        echo "Cluster after the tests: $MEMBERS_AFTER of 2 servers up; redundancy $REDUNDANCY_AFTER."
    fi
} >"$TMP/report"

tail -n +$(($(wc -l <"$TMP/header") + 1)) "$TMP/report"
if [ -n "$OUT" ]; then
    cp "$TMP/report" "$OUT"
    echo
    echo "report written to $OUT"
fi
