# bench-lib.sh - what the benchmark scripts share (sourced by
# tools/bench-vs-redis.sh and tools/bench-query.sh): stopping processes by
# pid, starting a throwaway agated or a cluster (a locator and two servers,
# region bench PARTITION_REDUNDANT with one redundant copy) on 127.0.0.1,
# and reading the cluster's state with the agate CLI.
#
# The sourcing script sets BENCH_NAME (for messages), BIN (agated, agate),
# TMP (a directory of its own), AGATE_THREADS (may be empty) and SRV_PIN
# (an array, a command prefix such as `taskset -c 0`, may be empty). These
# functions set AGATE_PID/AGATE_PORT, LOC_PID/SRV1_PID/SRV2_PID, LOCATOR,
# LOC_PORT, PORT and REDUNDANCY, REDUNDANCY_OK, REDUNDANCY_BEFORE.

# Stops the given pids: SIGTERM to all, then SIGKILL to those still there
# after 5 s. (A cluster member given SIGTERM leaves the cluster gracefully,
# which needs the locator: all are told at once.)
stop_pids() {
    local pid live=()
    for pid in "$@"; do
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && live+=("$pid")
    done
    [ ${#live[@]} -gt 0 ] || return 0
    for _ in $(seq 50); do
        local still=()
        for pid in "${live[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then still+=("$pid"); else wait "$pid" 2>/dev/null || true; fi
        done
        [ ${#still[@]} -gt 0 ] || return 0
        live=("${still[@]}")
        sleep 0.1
    done
    for pid in "${live[@]}"; do
        echo "$BENCH_NAME: pid $pid did not stop on SIGTERM within 5 s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# wait_port DIR PID: waits (10 s) for the agated started in DIR to write
# its port into DIR/agated.status; sets PORT. Exits with its log if not.
wait_port() {
    local dir=$1 pid=$2
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        if [ -f "$dir/agated.status" ] && grep -q '^port=[1-9]' "$dir/agated.status"; then
            PORT=$(sed -n 's/^port=//p' "$dir/agated.status")
            return 0
        fi
        sleep 0.1
    done
    echo "$BENCH_NAME: agated in $dir did not start; its output and log:" >&2
    cat "$dir/log" "$dir"/*.log >&2 2>/dev/null || true
    exit 1
}

start_agate() {
    mkdir -p "$TMP/agate"
    "${SRV_PIN[@]}" "$BIN/agated" --role=server --name=bench --dir="$TMP/agate" --port=0 \
        ${AGATE_THREADS:+--threads="$AGATE_THREADS"} >"$TMP/agate/log" 2>&1 &
    AGATE_PID=$!
    wait_port "$TMP/agate" "$AGATE_PID"
    AGATE_PORT=$PORT
}

# The last lines of every cluster process's log, to stderr (on a failure).
cluster_logs() {
    local f
    for f in "$TMP"/cluster/*/*.log "$TMP"/cluster/*/log; do
        [ -s "$f" ] || continue
        echo "---- ${f#"$TMP"/} (last 40 lines)" >&2
        tail -n 40 "$f" >&2
    done
}

# Sets REDUNDANCY to "bench  PARTITION_REDUNDANT  1  113  0  50  reduced"
# of `agate status redundancy` as "reduced (50 of 113 buckets below
# redundancy, 0 without a primary)", and REDUNDANCY_OK to 1 when satisfied.
redundancy_state() {
    local out
    REDUNDANCY_OK=0
    out=$("$BIN/agate" status redundancy --locator="$LOCATOR" --region=bench 2>&1) && REDUNDANCY_OK=1
    REDUNDANCY=$(echo "$out" | awk '$1 == "bench" {f = 1
            printf "%s (%s of %s buckets below redundancy, %s without a primary)", $7, $6, $4, $5}
        END {if (!f) printf "unknown"}')
}

# Servers listed as up by the locator.
members_up() {
    "$BIN/agate" list members --locator="$LOCATOR" 2>/dev/null |
        awk '$2 == "server" && $5 == "up" {n++} END {print n + 0}'
}

# A locator and two servers joining it, all on 127.0.0.1 with free ports,
# and the region bench (PARTITION_REDUNDANT, redundant-copies=1) created
# through the locator with the agate CLI.
start_cluster() {
    local d="$TMP/cluster"
    mkdir -p "$d/locator" "$d/s1" "$d/s2"
    "${SRV_PIN[@]}" "$BIN/agated" --role=locator --name=locator --dir="$d/locator" --port=0 \
        >"$d/locator/log" 2>&1 &
    LOC_PID=$!
    wait_port "$d/locator" "$LOC_PID"
    LOC_PORT=$PORT
    LOCATOR="127.0.0.1[$LOC_PORT]"
    "${SRV_PIN[@]}" "$BIN/agated" --role=server --name=s1 --dir="$d/s1" --port=0 \
        --locators="$LOCATOR" ${AGATE_THREADS:+--threads="$AGATE_THREADS"} >"$d/s1/log" 2>&1 &
    SRV1_PID=$!
    "${SRV_PIN[@]}" "$BIN/agated" --role=server --name=s2 --dir="$d/s2" --port=0 \
        --locators="$LOCATOR" ${AGATE_THREADS:+--threads="$AGATE_THREADS"} >"$d/s2/log" 2>&1 &
    SRV2_PID=$!
    wait_port "$d/s1" "$SRV1_PID"
    wait_port "$d/s2" "$SRV2_PID"
    local up=0
    for _ in $(seq 100); do
        up=$(members_up)
        [ "$up" = 2 ] && break
        sleep 0.1
    done
    if [ "$up" != 2 ]; then
        echo "$BENCH_NAME: the locator lists $up of 2 servers as up after 10 s" >&2
        cluster_logs
        exit 1
    fi
    "$BIN/agate" create region --name=bench --type=PARTITION_REDUNDANT --redundant-copies=1 \
        --locator="$LOCATOR" >"$d/create.log" 2>&1 || {
        echo "$BENCH_NAME: agate create region through $LOCATOR failed:" >&2
        cat "$d/create.log" >&2
        cluster_logs
        exit 1
    }
    # an empty region's copies are ready within milliseconds
    for _ in $(seq 100); do
        redundancy_state
        REDUNDANCY_BEFORE=$REDUNDANCY
        [ "$REDUNDANCY_OK" = 1 ] && break
        sleep 0.1
    done
    if [ "$REDUNDANCY_OK" != 1 ]; then
        echo "$BENCH_NAME: warning: redundancy of region bench not satisfied 10 s after" \
            "creating it: $REDUNDANCY_BEFORE; running anyway (writes are still replicated to" \
            "initializing copies); see the report" >&2
    fi
}
