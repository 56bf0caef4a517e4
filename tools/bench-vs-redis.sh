#!/usr/bin/env bash
# bench-vs-redis.sh - runs the same workloads on a throwaway redis-server and
# a throwaway agated, one after the other in the same run, and prints a
# markdown table: throughput, server CPU time per operation, latency.
# With --cluster, also on a throwaway Agate cluster (a locator and two
# servers, a PARTITION_REDUNDANT region with one redundant copy) driven by
# agate-bench --locator, in the same run.
#
# Workloads (as redis-benchmark -t set,get with -c 50 -d 100 -r 100000):
#   PUT/SET and GET, each with -P 1 and -P 16. Every test runs as its own
#   benchmark command so that the server's CPU time (utime+stime from
#   /proc/PID/stat) can be read before and after it. Both key spaces are
#   filled completely first (untimed), so every SET/PUT overwrites and every
#   GET hits, on both servers. Each test is repeated (--repeat, default 3;
#   the first server alternates) and the medians are reported.
#
# Installs nothing. Needs redis-server, redis-cli, redis-benchmark (Debian:
# apt-get install redis-server redis-tools, or tools/install-deps.sh --bench)
# and a build of agated and agate-bench, plus the agate CLI for --cluster
# (cmake -S . -B build && cmake --build build). Every process it starts is
# killed by pid when it exits.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/build/bin"
REQUESTS=""
REPEAT=""
QUICK=0
OUT=""
AGATE_THREADS=""
P16_FACTOR=5
PIN=0
CLUSTER=0

usage() {
    cat <<EOF
Usage: tools/bench-vs-redis.sh [--requests N] [--repeat K] [--quick] [--out FILE]
                               [--bin DIR] [--agate-threads N] [--pin] [--cluster]

  --requests N        requests per -P 1 test (default 200000); the -P 16 tests
                      use ${P16_FACTOR}x as many, so that they last long enough for
                      the CPU clock-tick counts to be meaningful
  --repeat K          run every test K times, report medians (default 3)
  --quick             fewer requests (20000), one repetition: a fast check
  --out FILE          also write the markdown report to FILE
  --bin DIR           where agated, agate-bench and (for --cluster) agate are
                      (default build/bin)
  --agate-threads N   agated --threads (default: agated's own, CPUs - 1, at least 1)
  --pin               run the servers on CPU 0 and the benchmark clients on
                      CPU 1 (taskset), instead of letting them share both CPUs
  --cluster           also run every test on an Agate cluster: a locator and
                      two servers on 127.0.0.1, region PARTITION_REDUNDANT with
                      redundant-copies=1 (created with the agate CLI through
                      the locator), agate-bench --locator (single hop)
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --requests) REQUESTS=${2:?--requests needs a number}; shift 2 ;;
    --requests=*) REQUESTS=${1#*=}; shift ;;
    --repeat) REPEAT=${2:?--repeat needs a number}; shift 2 ;;
    --repeat=*) REPEAT=${1#*=}; shift ;;
    --quick) QUICK=1; shift ;;
    --out) OUT=${2:?--out needs a file}; shift 2 ;;
    --out=*) OUT=${1#*=}; shift ;;
    --bin) BIN=${2:?--bin needs a directory}; shift 2 ;;
    --bin=*) BIN=${1#*=}; shift ;;
    --agate-threads) AGATE_THREADS=${2:?--agate-threads needs a number}; shift 2 ;;
    --agate-threads=*) AGATE_THREADS=${1#*=}; shift ;;
    --pin) PIN=1; shift ;;
    --cluster) CLUSTER=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench-vs-redis: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
if [ -z "$REQUESTS" ]; then
    if [ "$QUICK" = 1 ]; then REQUESTS=20000; else REQUESTS=200000; fi
fi
if [ -z "$REPEAT" ]; then
    if [ "$QUICK" = 1 ]; then REPEAT=1; else REPEAT=3; fi
fi
for v in "$REQUESTS" "$REPEAT"; do
    case "$v" in
    '' | *[!0-9]* | 0 | 0*) echo "bench-vs-redis: --requests and --repeat want positive integers" >&2; exit 2 ;;
    esac
done

# ---- prerequisites -----------------------------------------------------
missing=0
for tool in redis-server redis-cli redis-benchmark; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "bench-vs-redis: $tool not found (Debian: apt-get install redis-server redis-tools)" >&2
        missing=1
    fi
done
progs=(agated agate-bench)
[ "$CLUSTER" = 1 ] && progs+=(agate)
for prog in "${progs[@]}"; do
    if [ ! -x "$BIN/$prog" ]; then
        echo "bench-vs-redis: $BIN/$prog not found; build it first:" >&2
        echo "    cmake -S $ROOT -B $ROOT/build -DCMAKE_BUILD_TYPE=Release && cmake --build $ROOT/build -j2" >&2
        missing=1
    fi
done
SRV_PIN=()
CLI_PIN=()
if [ "$PIN" = 1 ]; then
    if ! command -v taskset >/dev/null 2>&1; then
        echo "bench-vs-redis: --pin needs taskset (util-linux)" >&2
        missing=1
    elif [ "$(nproc)" -lt 2 ]; then
        echo "bench-vs-redis: --pin needs at least 2 CPUs" >&2
        missing=1
    fi
    SRV_PIN=(taskset -c 0)
    CLI_PIN=(taskset -c 1)
fi
for tool in ss awk getconf timeout; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench-vs-redis: $tool not found" >&2; missing=1; }
done
[ "$missing" = 0 ] || exit 1

CLK_TCK=$(getconf CLK_TCK)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-vs-redis.XXXXXX")
BENCH_NAME=bench-vs-redis
# shellcheck source=tools/bench-lib.sh
. "$ROOT/tools/bench-lib.sh"
REDIS_PID=""
AGATE_PID=""
LOC_PID=""   # the cluster's locator
SRV1_PID=""  # and its two servers
SRV2_PID=""

cleanup() {
    stop_pids "$REDIS_PID" "$AGATE_PID" "$SRV1_PID" "$SRV2_PID" "$LOC_PID"
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- servers -----------------------------------------------------------
port_in_use() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

start_redis() {
    mkdir -p "$TMP/redis"
    for _ in $(seq 20); do
        local p=$((20000 + RANDOM % 40000))
        port_in_use "$p" && continue
        (cd "$TMP/redis" && exec "${SRV_PIN[@]}" redis-server --port "$p" --bind 127.0.0.1 --save "" \
            --appendonly no --daemonize no --dir "$TMP/redis" >"$TMP/redis/log" 2>&1) &
        REDIS_PID=$!
        for _ in $(seq 50); do
            kill -0 "$REDIS_PID" 2>/dev/null || break
            if [ "$(redis-cli -h 127.0.0.1 -p "$p" ping 2>/dev/null)" = PONG ]; then
                REDIS_PORT=$p
                return 0
            fi
            sleep 0.1
        done
        stop_pids "$REDIS_PID"
        REDIS_PID=""
    done
    echo "bench-vs-redis: could not start redis-server (log: $(cat "$TMP/redis/log" 2>/dev/null))" >&2
    exit 1
}

# busy (user+nice+system+irq+softirq) and steal ticks of the whole machine
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $9; exit}' /proc/stat; }

# utime+stime of processes (all threads), summed, in clock ticks
cpu_ticks() {
    local pid
    for pid in "$@"; do sed 's/.*) //' "/proc/$pid/stat"; done | awk '{n += $12 + $13} END {print n + 0}'
}

# A benchmark command that runs longer than this is stopped (a hung server).
TEST_LIMIT=300

# Runs "$@" (a benchmark command writing CSV) with the CPU of the server
# pids $1 (space-separated) measured around it. Sets CSV_LINE (the result
# line for test name $2), SRV_TICKS and CLI_CPU (client user+sys seconds).
measure() {
    local pids name=$2
    read -r -a pids <<<"$1"
    shift 2
    local before after m0 m1
    m0=$(machine_ticks)
    before=$(cpu_ticks "${pids[@]}")
    local TIMEFORMAT='%3R %3U %3S'
    { time "${CLI_PIN[@]}" timeout "$TEST_LIMIT" "$@" >"$TMP/out.csv" 2>"$TMP/err"; } 2>"$TMP/time" || {
        local rc=$?
        echo "bench-vs-redis: failed (exit status $rc$([ "$rc" = 124 ] && echo ": still running after $TEST_LIMIT s, stopped")): $*" >&2
        cat "$TMP/err" >&2
        case "$*" in *--locator*) cluster_logs ;; esac
        exit 1
    }
    after=$(cpu_ticks "${pids[@]}")
    m1=$(machine_ticks)
    SRV_TICKS=$((after - before))
    CLI_CPU=$(tail -n 1 "$TMP/time" | awk '{print $2 + $3}')
    # busy CPU time of the whole machine not spent by this server or this
    # client (other processes, unattributed interrupt work), and steal
    tail -n 1 "$TMP/time" | awk -v m0="$m0" -v m1="$m1" -v srv="$SRV_TICKS" -v hz="$CLK_TCK" '{
        split(m0, a, " "); split(m1, b, " ");
        printf "%.3f %.3f %.3f\n", $1, (b[1] - a[1] - srv) / hz - ($2 + $3), (b[2] - a[2]) / hz
    }' >>"$TMP/background"
    CSV_LINE=$(grep "^\"$name\"" "$TMP/out.csv" | tail -n 1 | tr -d '"')
    if [ -z "$CSV_LINE" ]; then
        echo "bench-vs-redis: no $name result from: $*" >&2
        cat "$TMP/out.csv" "$TMP/err" >&2
        exit 1
    fi
}

# Fills redis with key:000000000000 .. key:000000099999, 100-byte values of
# 'x' (what redis-benchmark -d 100 writes), through redis-cli --pipe.
fill_redis() {
    awk -v n="$KEYSPACE" -v d="$VSIZE" 'BEGIN {
        v = sprintf("%*s", d, ""); gsub(/ /, "x", v);
        for (i = 0; i < n; i++) {
            k = sprintf("key:%012d", i);
            printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, d, v;
        }
    }' | redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --pipe >"$TMP/fill.log" 2>&1 || {
        echo "bench-vs-redis: filling redis failed:" >&2
        cat "$TMP/fill.log" >&2
        exit 1
    }
}
# fill_agate SERVER_OPTIONS...: -h/-p of a server, or --locator of a cluster
fill_agate() {
    timeout "$TEST_LIMIT" "$BIN/agate-bench" "$@" -c "$CLIENTS" -n 1 -d "$VSIZE" \
        -r "$KEYSPACE" -t get -q >"$TMP/fill.log" 2>&1 || {
        echo "bench-vs-redis: filling agate ($*) failed:" >&2
        cat "$TMP/fill.log" >&2
        case "$*" in *--locator*) cluster_logs ;; esac
        exit 1
    }
}

CLIENTS=50
VSIZE=100
KEYSPACE=100000

SIDES=(redis agate)
start_redis
start_agate
if [ "$CLUSTER" = 1 ]; then
    SIDES+=(cluster)
    start_cluster
fi

# ---- runs --------------------------------------------------------------
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
# what the server really runs: its log names the worker count it started
agate_workers=$(sed -n 's/.* with \([0-9]*\) worker threads.*/\1/p' "$TMP/agate/bench.log" | tail -n 1)
agate_threads="${agate_workers:-?}${AGATE_THREADS:+ (--threads=$AGATE_THREADS)}"
[ -z "$AGATE_THREADS" ] && agate_threads="$agate_threads (default on $(nproc) CPUs)"
{
    if [ "$PIN" = 1 ]; then
        placement="servers pinned to CPU 0, benchmark clients to CPU 1"
    else
        placement="servers and benchmark clients share these CPUs"
    fi
    echo "- Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, $(uname -sr); $placement"
    echo "- Versions: $(redis-server --version | awk '{print $1, $2, $3}'), $(redis-benchmark --version); $("$BIN/agated" --version), agated worker threads: $agate_threads"
    rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
    # the tree at run time, which is not necessarily what the binaries were built from
    built=$(date -u -r "$BIN/agated" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || echo unknown)
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); source: $rev (working tree now; $BIN/agated built $built)"
    echo "- Workload: -c $CLIENTS -d $VSIZE -r $KEYSPACE; -n $REQUESTS for -P 1, -n $((REQUESTS * P16_FACTOR)) for -P 16; key space filled before the first test"
    if [ "$CLUSTER" = 1 ]; then
        echo "- Cluster: 1 locator + 2 servers on 127.0.0.1 (agated --role=locator; --role=server --locators=127.0.0.1[PORT], worker threads as above), region bench PARTITION_REDUNDANT with redundant-copies=1 and 113 buckets (agate create region through the locator); agate-bench --locator 127.0.0.1[PORT]: every connection is a cluster client sending each request to the key's primary"
        echo "- Cluster redundancy before the tests: $REDUNDANCY_BEFORE"
    fi
} >"$TMP/header"
cat "$TMP/header"
echo

# Context switches (voluntary + involuntary) of all the threads of the
# server processes $1 (space-separated pids).
ctx_switches() {
    local pid
    for pid in $1; do cat /proc/"$pid"/task/*/status 2>/dev/null; done |
        awk '/^(voluntary|nonvoluntary)_ctxt_switches/ {n += $2} END {print n + 0}'
}

# One test on one server: appends a line to $TMP/results.
#   label|side|rps|avg_ms|p50_ms|p99_ms|server_us_cpu_per_op|client_us_cpu_per_op|server_csw_per_op
run_one() {
    local side=$1 label=$2 test=$3 P=$4 N=$5
    local common=(-c "$CLIENTS" -n "$N" -d "$VSIZE" -r "$KEYSPACE" -P "$P" --csv)
    local pids name csw0 csw1
    if [ "$side" = redis ]; then
        pids=$REDIS_PID
        name=$(echo "$test" | tr "[:lower:]" "[:upper:]")
        echo "  $name -P $P (-n $N) on redis" >&2
        csw0=$(ctx_switches "$pids")
        measure "$pids" "$name" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" "${common[@]}" -t "$test"
    else
        local atest=$test extra=() target
        [ "$test" = set ] && atest=put
        [ "$test" = get ] && extra=(--no-prefill)
        if [ "$side" = cluster ]; then
            pids="$LOC_PID $SRV1_PID $SRV2_PID"
            target=(--locator "$LOCATOR")
        else
            pids=$AGATE_PID
            target=(-h 127.0.0.1 -p "$AGATE_PORT")
        fi
        name=$(echo "$atest" | tr "[:lower:]" "[:upper:]")
        echo "  $name -P $P (-n $N) on $side" >&2
        csw0=$(ctx_switches "$pids")
        measure "$pids" "$name" "$BIN/agate-bench" "${target[@]}" "${common[@]}" -t "$atest" \
            "${extra[@]}"
    fi
    csw1=$(ctx_switches "$pids")
    awk -v l="$label" -v s="$side" -v line="$CSV_LINE" -v n="$N" -v hz="$CLK_TCK" \
        -v t="$SRV_TICKS" -v c="$CLI_CPU" -v csw="$((csw1 - csw0))" 'BEGIN {
        split(line, f, ",");
        printf "%s|%s|%s|%s|%s|%s|%.3f|%.3f|%.3f\n", l, s, f[2], f[3], f[5], f[7],
            t / hz / n * 1e6, c / n * 1e6, csw / n;
    }' >>"$TMP/results"
}

# Both key spaces are filled completely before the first test (untimed):
# every SET/PUT then overwrites an existing key and every GET hits, the
# same steady state on both servers whatever order the tests run in.
echo "filling the key spaces ($KEYSPACE keys)" >&2
fill_redis
fill_agate -h 127.0.0.1 -p "$AGATE_PORT"
[ "$CLUSTER" = 1 ] && fill_agate --locator "$LOCATOR"

: >"$TMP/results"
: >"$TMP/background"
labels=()
for rep in $(seq "$REPEAT"); do
    echo "run $rep of $REPEAT" >&2
    # rotate which server goes first, so none always runs on a machine
    # just warmed (or disturbed) by another: redis agate, agate redis (and
    # with --cluster: redis agate cluster, agate cluster redis, ...)
    sides=()
    for i in "${!SIDES[@]}"; do
        sides+=("${SIDES[$(((i + rep - 1) % ${#SIDES[@]}))]}")
    done
    for P in 1 16; do
        N=$REQUESTS
        [ "$P" = 16 ] && N=$((REQUESTS * P16_FACTOR))
        for test in set get; do
            label="GET -P $P"
            [ "$test" = set ] && label="SET/PUT -P $P"
            [ "$rep" = 1 ] && labels+=("$label")
            for side in "${sides[@]}"; do
                run_one "$side" "$label" "$test" "$P" "$N"
            done
        done
    done
done

if [ "$CLUSTER" = 1 ]; then
    # the state the cluster is left in: a member removed during the tests
    # (suspected while the machine was saturated) would show here
    redundancy_state
    REDUNDANCY_AFTER=$REDUNDANCY
    MEMBERS_AFTER=$(members_up)
    LOC_CPU=$(awk -v t="$(cpu_ticks "$LOC_PID")" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
fi

# median of field $3 (1-based, of the results line) for label $1, side $2
median() {
    awk -F'|' -v l="$1" -v s="$2" -v f="$3" '$1 == l && $2 == s {print $f}' "$TMP/results" |
        sort -g | awk '{a[NR] = $1} END {
            if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2];
            else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
fmt() { awk -v v="$1" -v p="$2" 'BEGIN { printf "%." p "f", v }'; }

{
    cat "$TMP/header"
    echo
    if [ "$REPEAT" -gt 1 ]; then
        echo "Each figure is the median of $REPEAT runs (raw runs below)."
        echo
    fi
    echo "| workload | redis rps | agate rps | agate/redis | redis µs CPU/op | agate µs CPU/op | agate/redis | redis avg / p50 / p99 ms | agate avg / p50 / p99 ms |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for l in "${labels[@]}"; do
        rr=$(median "$l" redis 3) ar=$(median "$l" agate 3)
        rc=$(median "$l" redis 7) ac=$(median "$l" agate 7)
        echo "| $l | $(fmt "$rr" 0) | $(fmt "$ar" 0) | $(ratio "$ar" "$rr") | $(fmt "$rc" 2) | $(fmt "$ac" 2) | $(ratio "$ac" "$rc") | $(fmt "$(median "$l" redis 4)" 3) / $(fmt "$(median "$l" redis 5)" 3) / $(fmt "$(median "$l" redis 6)" 3) | $(fmt "$(median "$l" agate 4)" 3) / $(fmt "$(median "$l" agate 5)" 3) / $(fmt "$(median "$l" agate 6)" 3) |"
    done
    echo
    awk '{w += $1; o += $2; s += $3} END {
        if (w > 0) printf "Background during the measured tests: %.0f%% of one CPU busy outside the server and client under test (other processes, unattributed interrupt work); hypervisor steal %.0f%% of one CPU.\n\n", 100 * o / w, 100 * s / w }' "$TMP/background"
    echo "Server CPU/op: utime+stime of the server process (all threads) over the test, from /proc/PID/stat (${CLK_TCK} ticks/s), divided by the requests."
    echo
    echo "Benchmark clients and server context switches, per operation:"
    echo
    echo "| workload | redis-benchmark µs CPU/op | agate-bench µs CPU/op | redis-server ctx switches/op | agated ctx switches/op |"
    echo "|---|---:|---:|---:|---:|"
    for l in "${labels[@]}"; do
        echo "| $l | $(fmt "$(median "$l" redis 8)" 2) | $(fmt "$(median "$l" agate 8)" 2) | $(fmt "$(median "$l" redis 9)" 3) | $(fmt "$(median "$l" agate 9)" 3) |"
    done
    if [ "$CLUSTER" = 1 ]; then
        echo
        echo "Cluster (locator + 2 servers, PARTITION_REDUNDANT, redundant-copies=1) against Redis and the single agated:"
        echo
        echo "| workload | redis rps | agate rps | cluster rps | cluster/redis | cluster/agate | redis p50 / p99 ms | agate p50 / p99 ms | cluster p50 / p99 ms |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        for l in "${labels[@]}"; do
            rr=$(median "$l" redis 3) ar=$(median "$l" agate 3) cr=$(median "$l" cluster 3)
            echo "| $l | $(fmt "$rr" 0) | $(fmt "$ar" 0) | $(fmt "$cr" 0) | $(ratio "$cr" "$rr") | $(ratio "$cr" "$ar") | $(fmt "$(median "$l" redis 5)" 3) / $(fmt "$(median "$l" redis 6)" 3) | $(fmt "$(median "$l" agate 5)" 3) / $(fmt "$(median "$l" agate 6)" 3) | $(fmt "$(median "$l" cluster 5)" 3) / $(fmt "$(median "$l" cluster 6)" 3) |"
        done
        echo
        echo "| workload | redis µs CPU/op | agate µs CPU/op | cluster µs CPU/op (3 processes) | cluster/agate | cluster avg ms | agate-bench µs CPU/op, single / cluster | cluster ctx switches/op |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|"
        for l in "${labels[@]}"; do
            ac=$(median "$l" agate 7) cc=$(median "$l" cluster 7)
            echo "| $l | $(fmt "$(median "$l" redis 7)" 2) | $(fmt "$ac" 2) | $(fmt "$cc" 2) | $(ratio "$cc" "$ac") | $(fmt "$(median "$l" cluster 4)" 3) | $(fmt "$(median "$l" agate 8)" 2) / $(fmt "$(median "$l" cluster 8)" 2) | $(fmt "$(median "$l" cluster 9)" 3) |"
        done
        echo
        echo "Cluster CPU/op: utime+stime of the locator and both servers together. The locator used ${LOC_CPU} s of CPU over the whole run (heartbeats, map requests)."
        echo "Cluster after the tests: $MEMBERS_AFTER of 2 servers up; redundancy $REDUNDANCY_AFTER (before: $REDUNDANCY_BEFORE)."
    fi
    if [ "$REPEAT" -gt 1 ]; then
        echo
        echo "Raw runs (rps, server µs CPU/op):"
        echo
        echo "| workload | server | rps per run | µs CPU/op per run |"
        echo "|---|---|---|---|"
        for l in "${labels[@]}"; do
            for side in "${SIDES[@]}"; do
                echo "| $l | $side | $(awk -F'|' -v l="$l" -v s="$side" '$1 == l && $2 == s {printf "%s%.0f", (n++ ? ", " : ""), $3}' "$TMP/results") | $(awk -F'|' -v l="$l" -v s="$side" '$1 == l && $2 == s {printf "%s%.2f", (n++ ? ", " : ""), $7}' "$TMP/results") |"
            done
        done
    fi
} >"$TMP/report"

echo
sed '1,/^$/d' "$TMP/report"
if [ -n "$OUT" ]; then
    cp "$TMP/report" "$OUT"
    echo
    echo "report written to $OUT"
fi
