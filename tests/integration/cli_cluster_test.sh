#!/usr/bin/env bash
# Integration test of the `agate` CLI against a cluster (docs/cli.md,
# "Locator lifecycle" and "Cluster"; docs/cluster.md).
#
#   cli_cluster_test.sh AGATE AGATED [SRCDIR]
#
# First the checks that need no cluster: usage errors (exit 2), a locator
# that does not answer (exit 1), cluster commands given a stand-alone
# server. Then: start a locator and two servers joining it, list and
# describe the members, create a PARTITION_REDUNDANT region and put, get,
# import and export through the locator, describe the region (both members),
# status cluster, status redundancy (satisfied), start a third server,
# rebalance --simulate, rebalance, stop one server (graceful leave, no data
# lost), shutdown --include-locators, and check that every process is gone.
# Counts that come from heartbeats are polled for (wait_for) instead of
# being expected at once.
#
# Every daemon started is killed by pid on exit, also when a check fails or
# the script is interrupted. Exits 77 (ctest: skipped) while AGATE is not
# built yet. The last line is "N passed, N failed".
set -u

AGATE=${1:?usage: cli_cluster_test.sh AGATE AGATED [SRCDIR]}
AGATED=${2:?usage: cli_cluster_test.sh AGATE AGATED [SRCDIR]}

if [ ! -x "$AGATE" ]; then
  echo "agate CLI not built ($AGATE): skipping"
  echo "0 passed, 0 failed"
  exit 77
fi
CLI_TEST_TAG=cli-cluster
. "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"

# gone PID: no such process, or a zombie (a detached daemon is reaped by
# whoever adopted it, possibly late).
gone() {
  local st
  kill -0 "$1" 2>/dev/null || return 0
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
  [ -z "$st" ] || [ "$st" = Z ] || [ "$st" = X ]
}
all_gone() {
  local p
  for p in "$@"; do gone "$p" || return 1; done
}

# field FILE KEY: a value of a daemon's status file.
field() { sed -n "s/^$2=//p" "$1/agated.status"; }

A() { "$AGATE" "$@"; }

# Servers counted in `list members --json` (the list may include locators).
servers_listed() {
  json_true "len([m for m in j if m.get('role', 'server') == 'server']) == $1" \
    A list members "$LOC" --json
}

# =========================================================================
echo "# usage errors (exit 2)"
DEAD=$(dead_port)
run 2 "--locator without a port" -- A list members --locator=127.0.0.1
check "message says what is wrong" err_has "has no port"
run 2 "--locator with port 0" -- A list members --locator='127.0.0.1[0]'
check "message names the port range" err_has "1 to 65535"
run 2 "--locator with an unclosed bracket" -- A list members --locator="127.0.0.1[$DEAD"
run 2 "--locator list with an empty entry" -- A list members --locator="127.0.0.1[$DEAD],"
run 2 "--server and --locator together" -- A size --region=r --server=127.0.0.1:"$DEAD" --locator="127.0.0.1[$DEAD]"
check "message: not both" err_has "not both"
run 2 "start server with bad --locators" -- A start server --name=x --dir="$W/x" --locators=nowhere
check "nothing was created for it" test ! -e "$W/x"
run 2 "start server --member-timeout not a number" -- A start server --name=x --dir="$W/x" --member-timeout=soon
run 2 "start locator --member-timeout too small" -- A start locator --name=x --dir="$W/x" --member-timeout=10
run 2 "start locator --recovery-delay below -1" -- A start locator --name=x --dir="$W/x" --recovery-delay=-2
run 2 "start locator with an unknown option" -- A start locator --name=x --dir="$W/x" --threads=2
run 2 "describe member without --name" -- A describe member --locator="127.0.0.1[$DEAD]"
run 2 "rebalance with an unknown option" -- A rebalance --locator="127.0.0.1[$DEAD]" --force
run 2 "status redundancy with an empty --region" -- A status redundancy --locator="127.0.0.1[$DEAD]" --region=
run 2 "shutdown --include-locators=maybe" -- A shutdown --locator="127.0.0.1[$DEAD]" --include-locators=maybe
run 0 "start locator --help" -- A start locator --help
check "help shows --recovery-delay" out_has "--recovery-delay"
run 0 "status redundancy --help documents the exit status" -- A status redundancy --help
check "help says exit 1 when not satisfied" out_has "1 when one is not"

# =========================================================================
echo "# no cluster there (exit 1)"
run 1 "list members, locator not running" -- A list members --locator="127.0.0.1[$DEAD]"
check "message: cannot connect" err_has "cannot connect"
check "message names the port" err_has "$DEAD"
check "messages are prefixed agate:" grep -q "^agate: " "$W/err"
run 1 "put through a locator not running (host:port)" -- A put --locator=127.0.0.1:"$DEAD" --region=r --key=k --value=1
check "message: cannot connect" err_has "cannot connect"
run 1 "status cluster via \$AGATE_LOCATOR not running" -- env AGATE_LOCATOR="127.0.0.1[$DEAD]" "$AGATE" status cluster
check "message names the port" err_has "$DEAD"
run 1 "a malformed \$AGATE_LOCATOR" -- env AGATE_LOCATOR=nowhere "$AGATE" list members
check "message names AGATE_LOCATOR" err_has "AGATE_LOCATOR"
for c in "describe member --name=s1" "status redundancy" "rebalance" "rebalance --simulate" "shutdown"; do
  # shellcheck disable=SC2086
  run 1 "$c, locator not running" -- A $c --locator="127.0.0.1[$DEAD]"
done
run 1 "status locator of an empty directory" -- A status locator --dir="$W/nothing-here"
run 1 "stop locator of an empty directory" -- A stop locator --dir="$W/nothing-here"

S0=$W/s0
add_daemon_dir "$S0"
run 0 "start a stand-alone server" -- A start server --name=s0 --dir="$S0" --port=0 --json
P0=$(py 'j["port"]' 2>/dev/null)
PID0=$(py 'j["pid"]' 2>/dev/null)
[ -n "$PID0" ] && PIDS+=("$PID0")
if [ -n "$P0" ]; then
  run 1 "list members given a stand-alone server" -- A list members --server=127.0.0.1:"$P0"
  check "it says why" grep -q "^agate: " "$W/err"
  run 1 "status cluster given a stand-alone server" -- A status cluster --server=127.0.0.1:"$P0"
  run 1 "status locator on a server's directory" -- A status locator --dir="$S0"
  check "message: not a locator" err_has "not a locator"
  run 1 "stop locator on a server's directory" -- A stop locator --dir="$S0"
  check "the server still runs" A status server --dir="$S0"
  run 0 "stop the stand-alone server" -- A stop server --dir="$S0"
fi

# =========================================================================
echo "# start a locator and two servers"
LD=$W/locator1
add_daemon_dir "$LD"
run 0 "start locator (--json, port 0)" -- A start locator --name=locator1 --dir="$LD" --port=0 --member-timeout=2000 --json
LP=$(py 'j["port"]' 2>/dev/null)
LPID=$(py 'j["pid"]' 2>/dev/null)
[ -n "$LPID" ] && PIDS+=("$LPID")
if [ -z "$LP" ] || [ -z "$LPID" ]; then give_up "no locator (start locator failed)"; fi
check "start locator --json fields" py_true 'j["name"] == "locator1" and j["role"] == "locator" and j["port"] > 0 and j["dir"] == "'"$LD"'"'
check "status file says role=locator" grep -q "^role=locator$" "$LD/agated.status"
check "agated runs as --role=locator" grep -qa -- "--role=locator" "/proc/$LPID/cmdline"
check "--member-timeout was passed to agated" grep -qa -- "--member-timeout=2000" "/proc/$LPID/cmdline"
LOC="--locator=127.0.0.1[$LP]"
run 0 "status locator" -- A status locator --dir="$LD"
check "status locator says running" out_has "is running"
run 0 "status locator --json" -- A status locator --dir="$LD" --json
check "status locator --json fields" py_true 'j["role"] == "locator" and j["state"] == "running" and j["port"] == '"$LP"
run 0 "status locator --locator" -- A status locator "$LOC"
run 1 "status server on the locator's directory" -- A status server --dir="$LD"
check "message: not a server" err_has "not a server"
run 1 "start locator again in its directory" -- A start locator --name=locator1 --dir="$LD" --port=0
run 0 "list members of an empty cluster" -- A list members "$LOC"

S1=$W/s1 S2=$W/s2 S3=$W/s3
add_daemon_dir "$S1"
add_daemon_dir "$S2"
add_daemon_dir "$S3"
run 0 "start server s1 --locators=HOST[PORT]" -- A start server --name=s1 --dir="$S1" --port=0 --threads=1 --locators="127.0.0.1[$LP]" --member-timeout=2000 --json
P1=$(py 'j["port"]' 2>/dev/null)
PID1=$(py 'j["pid"]' 2>/dev/null)
[ -n "$PID1" ] && PIDS+=("$PID1")
run 0 "start server s2 --locators=HOST:PORT" -- A start server --name=s2 --dir="$S2" --port=0 --threads=1 --locators="127.0.0.1:$LP"
PID2=$(field "$S2" pid)
P2=$(field "$S2" port)
[ -n "$PID2" ] && PIDS+=("$PID2")
if [ -z "$PID1" ] || [ -z "$PID2" ]; then give_up "the servers did not start"; fi
check "--locators was passed to agated" grep -qa -- "--locators=127.0.0.1\[$LP\]" "/proc/$PID1/cmdline"
check "--member-timeout was passed to the server" grep -qa -- "--member-timeout=2000" "/proc/$PID1/cmdline"

wait_for 20 "list members shows the 2 servers" servers_listed 2
run 0 "list members (text)" -- A list members "$LOC"
check "table has s1 and s2" bash -c "grep -q '^s1 ' '$W/out' && grep -q '^s2 ' '$W/out'"
check "table has the columns" bash -c "head -1 '$W/out' | grep -q 'MEMBER ID.*ADDRESS.*STATUS.*BUCKETS.*PRIMARIES.*ENTRIES'"
run 0 "list members --json" -- A list members "$LOC" --json
check "member info fields" py_true 'all(m["status"] == "up" and m["host"] == "127.0.0.1" and m["member_id"] > 0 for m in j if m["role"] == "server") and sorted(m["port"] for m in j if m["role"] == "server") == sorted(['"$P1, $P2"'])'
run 0 "describe member s1" -- A describe member "$LOC" --name=s1
check "describe member text" bash -c "grep -q '^Name: *s1$' '$W/out' && grep -q '^Address: *127.0.0.1:$P1$' '$W/out'"
run 0 "describe member s1 --json" -- A describe member "$LOC" --name=s1 --json
check "describe member --json fields" py_true 'j["name"] == "s1" and j["role"] == "server" and j["port"] == '"$P1"' and j["pid"] == '"$PID1"' and j["dir"] == "'"$S1"'"'
run 1 "describe an unknown member" -- A describe member "$LOC" --name=nobody
run 0 "connect --locator" -- A connect "$LOC"
check "connect names the cluster" out_has "locator"

# =========================================================================
echo "# a region and data through the locator"
run 0 "create region PARTITION_REDUNDANT via --locator" -- A create region "$LOC" --name=orders --type=PARTITION_REDUNDANT
check "create region text" out_has "Region orders created"
run 0 "list regions via --locator" -- A list regions "$LOC"
check "list shows orders" out_has "orders"
run 0 "put via --locator" -- A put "$LOC" --region=orders --key=o1 --value='{"qty": 3, "tags": ["a"]}'
run 0 "get via --locator" -- A get "$LOC" --region=orders --key=o1
check "get returns the value" out_has '"qty":3'
run 0 "get via --locator=HOST:PORT" -- A get --locator=127.0.0.1:"$LP" --region=orders --key=o1
check "same value" out_has '"qty":3'
run 0 "get via \$AGATE_LOCATOR" -- env AGATE_LOCATOR="127.0.0.1[$LP]" "$AGATE" get --region=orders --key=o1
check "same value" out_has '"qty":3'
run 0 "get through a member (--server=s2)" -- A get --server=127.0.0.1:"$P2" --region=orders --key=o1
check "same value" out_has '"qty":3'
python3 - "$W/data.jsonl" <<'EOF'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(500):
        f.write(json.dumps({"key": "k%04d" % i, "value": {"i": i, "s": "v%d" % i}}) + "\n")
EOF
run 0 "import 500 entries via --locator" -- A import data "$LOC" --region=orders --file="$W/data.jsonl" --batch-size=64
run 0 "size via --locator" -- A size "$LOC" --region=orders
check "501 entries" grep -qx "501" "$W/out"
run 0 "keys via --locator --json" -- A keys "$LOC" --region=orders --json
check "501 keys" py_true 'j["count"] == 501 and len(set(j["keys"])) == 501'
run 0 "export via --locator" -- A export data "$LOC" --region=orders --file="$W/export.jsonl"
check "export holds 501 entries" test "$(grep -c . "$W/export.jsonl")" -eq 501
run 0 "remove via --locator" -- A remove "$LOC" --region=orders --key=k0000
run 1 "get the removed key" -- A get "$LOC" --region=orders --key=k0000
run 0 "put it back" -- A put "$LOC" --region=orders --key=k0000 --value='{"i": 0, "s": "v0"}'
printf 'connect %s\nsize --region=orders\nget --region=orders --key=k0042\n' "$LOC" >"$W/script"
run 0 "shell: connect --locator, then commands" -- bash -c "'$AGATE' <'$W/script'"
check "shell size" grep -qx "501" "$W/out"
check "shell get" out_has '"v42"'

# Region figures through the locator come from heartbeats: poll.
region_on_both() {
  json_true 'sorted(m["member"] for m in j["members"]) == ["s1", "s2"] and sum(m["buckets"] for m in j["members"]) == 2 * j["total_num_buckets"] and sum(m["primary_buckets"] for m in j["members"]) == j["total_num_buckets"] and all(m["primary_buckets"] > 0 for m in j["members"]) and j["entries"] == 501' \
    A describe region "$LOC" --name=orders --json
}
wait_for 20 "describe region: both members, every bucket twice, 501 entries" region_on_both
run 0 "describe region (text)" -- A describe region "$LOC" --name=orders
check "text: members table with buckets, primaries, entries" bash -c "grep -q 'MEMBER.*BUCKETS.*PRIMARIES.*ENTRIES' '$W/out' && grep -q '^s1 ' '$W/out' && grep -q '^s2 ' '$W/out'"

# =========================================================================
echo "# continuous queries through the locator"
# the CQ registers on both members; keys land on both (k0000..k0009 span buckets)
A watch "$LOC" --query='SELECT * FROM /orders o WHERE o.cq = true' --json --count=10 --timeout=60 \
  >"$W/watch.out" 2>"$W/watch.err" </dev/null &
WPID=$!
PIDS+=("$WPID")
wait_for 20 "list cqs via --locator: one row per member, every bucket once" json_true \
  'len(j) == 2 and all(c["region"] == "orders" and c["name"].startswith("agate-watch-") for c in j) and sum(c["buckets"] for c in j) == 113 and len(set(c["peer"] for c in j)) == 2' \
  A list cqs "$LOC" --json
for i in 0 1 2 3 4 5 6 7 8 9; do
  A put "$LOC" --region=orders --key=cq$i --value="{\"cq\": true, \"n\": $i}" >/dev/null 2>&1 || echo "put cq$i failed"
done
wait "$WPID"
check "watch via --locator exits 0" test "$?" -eq 0
check "watch via --locator: a CREATE for each put" python3 -c '
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
assert sorted(e["key"] for e in evs) == ["cq%d" % i for i in range(10)], evs
assert all(e["op"] == "create" and e["value"]["n"] == int(e["key"][2:]) for e in evs)
' "$W/watch.out"
[ -s "$W/watch.err" ] && { echo "     watch stderr:"; sed 's/^/       /' "$W/watch.err"; }
wait_for 10 "list cqs via --locator: gone after the watch" json_true 'j == []' A list cqs "$LOC" --json
for i in 0 1 2 3 4 5 6 7 8 9; do A remove "$LOC" --region=orders --key=cq$i >/dev/null 2>&1; done

# =========================================================================
echo "# cluster status and redundancy"
run 0 "status cluster --json" -- A status cluster "$LOC" --json
check "status cluster fields" py_true 'j["view_id"] > 0 and j["metadata_version"] > 0 and j["member_timeout_ms"] == 2000 and j["locator"]["name"] == "locator1" and sorted(m["name"] for m in j["members"]) == ["s1", "s2"] and [r["redundant_copies"] for r in j["regions"] if r["name"] == "orders"] == [1]'
check "status cluster carries the rebalance status" py_true 'j["rebalance"]["state"] in ("idle", "done")'
run 0 "status cluster (text)" -- A status cluster "$LOC"
check "text: view, members, regions" bash -c "grep -q '^Cluster view' '$W/out' && grep -q '^Members (2)' '$W/out' && grep -q '^orders ' '$W/out'"
wait_for 30 "status redundancy: orders satisfied (exit 0)" A status redundancy "$LOC" --region=orders
run 0 "status redundancy (text)" -- A status redundancy "$LOC"
check "text says satisfied" out_has "satisfied"
run 0 "status redundancy --json" -- A status redundancy "$LOC" --json
check "status redundancy --json" py_true 'j["satisfied"] is True and [r["redundancy"] for r in j["regions"] if r["name"] == "orders"] == ["satisfied"] and all(r["buckets_below_redundancy"] == 0 and r["buckets_without_primary"] == 0 for r in j["regions"])'
run 1 "status redundancy of an unknown region" -- A status redundancy "$LOC" --region=nope
check "message names the region" err_has "nope"

# =========================================================================
echo "# indexes through the locator"
IQ="SELECT o.i AS i FROM /orders o WHERE o.i >= 100 AND o.i < 110 ORDER BY o.i"
run 0 "query before the indexes" -- A query "$LOC" --query="$IQ" --json
cp "$W/out" "$W/iq_before.json"
check "ten rows" py_true 'len(j) == 10'
run 0 "create index via the locator" -- A create index "$LOC" --name=byI --region=orders --expression=i
check "create index text" grep -qx 'Index byI created on orders: range index on i; each member builds it over its buckets' "$W/out"
run 0 "create a hash index via the locator" -- A create index "$LOC" --name=byS --region=orders --expression=s --type=hash
run 1 "a duplicate index via the locator" -- A create index "$LOC" --name=byI --region=orders --expression=s
check "duplicate: INDEX_EXISTS" err_has "INDEX_EXISTS"
run 1 "a bad expression via the locator" -- A create index "$LOC" --name=bad --region=orders --expression='i +'
check "bad expression: position" err_has "BAD_ARGUMENT: index expression 'i +': at 3:"
run 1 "an index on an unknown region" -- A create index "$LOC" --name=x --region=nope --expression=i
check "unknown region" err_has "UNKNOWN_REGION"
run 0 "list indexes via the locator --json" -- A list indexes "$LOC" --json
check "the definitions" py_true '[(i["name"], i["type"], i["expression"]) for i in j] == [("byI", "range", "i"), ("byS", "hash", "s")]'
# Every member holds every bucket (one redundant copy), so each index
# holds 500 keys on each (o1 has neither i nor s); the figures come with
# the members' heartbeats.
members_indexed() {
  json_true '[(i["name"], i["entries"], i["valid"], sorted(m["member"] for m in i["members"] if m["built"] and m["entries"] == 500 and m["primary_entries"] > 0)) for i in j] == [("byI", 500, True, ["s1", "s2"]), ("byS", 500, True, ["s1", "s2"])]' \
    A list indexes "$LOC" --region=orders --json
}
wait_for 20 "s1 and s2 built both indexes over their copies" members_indexed
run 0 "list indexes via the locator (text)" -- A list indexes "$LOC"
check "a row per index with the entries" bash -c "grep -Eq '^byI +orders +range +i +500 ' '$W/out' && grep -Eq '^byS +orders +hash +s +500 ' '$W/out'"
run 0 "query with the indexes" -- A query "$LOC" --query="$IQ" --json
check "the same rows" py_true 'j == json.load(open("'"$W/iq_before.json"'"))'
run 0 "explain over the cluster names the index" -- A query "$LOC" --explain --query="$IQ"
check "explain: every member reads through byI" out_has "scatter: every member reads the buckets it is primary for of /orders through an index: index range: o.i >= 100 AND o.i < 110 using range index byI"
run 0 "the query reads only the matches" -- A query "$LOC" --query="SELECT COUNT(*) AS n FROM /orders WHERE s = 'v7'"
check "scanned 1 entry" out_has '^1 row (1 matched, scanned 1 entry in'
run 0 "a write reaches the index on both copies" -- A put "$LOC" --region=orders --key=k0105 --value='{"i": 1105, "s": "v105"}'
run 0 "query after the write" -- A query "$LOC" --query="$IQ" --json
check "the moved entry left the range" py_true '[r["i"] for r in j] == [100, 101, 102, 103, 104, 106, 107, 108, 109]'
run 0 "put it back" -- A put "$LOC" --region=orders --key=k0105 --value='{"i": 105, "s": "v105"}'

# =========================================================================
echo "# a third server and rebalance"
run 0 "start server s3" -- A start server --name=s3 --dir="$S3" --port=0 --threads=1 --locators="127.0.0.1[$LP]"
PID3=$(field "$S3" pid)
[ -n "$PID3" ] && PIDS+=("$PID3")
wait_for 20 "list members shows 3 servers" servers_listed 3
# Every bucket already has its copy, so joining moves nothing (docs/cluster.md).
run 0 "rebalance --simulate --json" -- A rebalance "$LOC" --simulate --json
check "the plan moves buckets to s3" py_true 'j["simulate"] is True and j["state"] == "done" and j["bucket_moves"] > 0 and any(r["name"] == "orders" for r in j["regions"])'
run 0 "rebalance --simulate (text)" -- A rebalance "$LOC" --simulate
check "text says nothing was moved" out_has "nothing was moved"
check "text has the before -> after table" bash -c "grep -q 'MEMBER.*BUCKETS.*PRIMARIES' '$W/out' && grep -q ' -> ' '$W/out'"
run 0 "describe member s3 after the simulation" -- A describe member "$LOC" --name=s3 --json
check "s3 still holds no bucket" py_true 'j.get("buckets", 0) == 0'
run 0 "rebalance" -- A rebalance "$LOC" --no-progress
check "rebalance says done" out_has "Rebalance done"
check "no progress bar without a terminal" bash -c "! grep -q \$'\r' '$W/err'"
wait_for 20 "s3 holds buckets and primaries after the rebalance" \
  json_true 'j["buckets"] > 0 and j["primary_buckets"] > 0' A describe member "$LOC" --name=s3 --json
region_balanced() {
  json_true 'len(j["members"]) == 3 and sum(m["buckets"] for m in j["members"]) == 2 * j["total_num_buckets"] and sum(m["primary_buckets"] for m in j["members"]) == j["total_num_buckets"] and max(m["buckets"] for m in j["members"]) - min(m["buckets"] for m in j["members"]) <= 1 and j["entries"] == 501' \
    A describe region "$LOC" --name=orders --json
}
wait_for 20 "orders evenly spread over 3 members, still 501 entries" region_balanced
run 0 "rebalance --json again" -- A rebalance "$LOC" --json
check "rebalance --json" py_true 'j["state"] == "done" and j["simulate"] is False'
run 0 "size after the rebalance" -- A size "$LOC" --region=orders
check "501 entries" grep -qx "501" "$W/out"
run 0 "query over the cluster --json" -- A query "$LOC" --query="SELECT COUNT(*) AS n FROM /orders" --json
check "the query counts every member's part" py_true 'j == [{"n": 501}]'
run 0 "query --explain over the cluster" -- A query "$LOC" --explain --query="SELECT COUNT(*) FROM /orders"
check "the plan scatters to the members" out_has "scatter: every member reads the buckets it is primary for"
run 0 "get after the rebalance" -- A get "$LOC" --region=orders --key=k0499
check "value" out_has '"v499"'
run 0 "list members (text)" -- A list members "$LOC"
check "s3 listed" grep -q '^s3 ' "$W/out"
s3_indexed() {
  json_true '[i["name"] for i in j] == ["byI", "byS"] and all(i["entries"] == 500 and i["valid"] and [m["built"] and m["entries"] > 0 and m["primary_entries"] > 0 for m in i["members"] if m["member"] == "s3"] == [True] for i in j)' \
    A list indexes "$LOC" --region=orders --json
}
wait_for 20 "s3, which joined later, indexes the buckets it received" s3_indexed
run 0 "query with the indexes after the rebalance" -- A query "$LOC" --query="$IQ" --json
check "still the same rows" py_true 'j == json.load(open("'"$W/iq_before.json"'"))'
run 0 "destroy an index via the locator" -- A destroy index "$LOC" --name=byS --region=orders
run 0 "list indexes after the destroy" -- A list indexes "$LOC" --json
check "only byI is left" py_true '[i["name"] for i in j] == ["byI"]'
run 1 "destroy it again" -- A destroy index "$LOC" --name=byS --region=orders
wait_for 30 "redundancy satisfied after the rebalance" A status redundancy "$LOC"

# =========================================================================
echo "# one server leaves"
run 0 "stop server s3 (graceful leave) --json" -- A stop server --dir="$S3" --timeout=60 --json
check "s3 stopped on SIGTERM" py_true 'j["stopped"] is True and j["signal"] == "SIGTERM"'
check "s3 process is gone" gone "$PID3"
wait_for 20 "list members shows 2 servers again" servers_listed 2
run 0 "size after s3 left" -- A size "$LOC" --region=orders
check "no entry lost" grep -qx "501" "$W/out"
run 0 "export after s3 left" -- A export data "$LOC" --region=orders --file="$W/export2.jsonl"
check "same data as before" bash -c "sort '$W/export.jsonl' | cmp -s - <(sort '$W/export2.jsonl')"
wait_for 30 "redundancy satisfied with 2 servers" A status redundancy "$LOC" --region=orders

# =========================================================================
echo "# shutdown"
run 0 "shutdown --include-locators --json" -- A shutdown "$LOC" --include-locators --json
check "shutdown --json" py_true 'j["stopped"] >= 2 and j["include_locators"] is True'
wait_for 30 "every process is gone" all_gone "$LPID" "$PID1" "$PID2" "$PID3"
run 1 "status locator after the shutdown" -- A status locator --dir="$LD"
run 1 "status server s1 after the shutdown" -- A status server --dir="$S1"
run 1 "list members after the shutdown" -- A list members "$LOC"
run 1 "stop locator after the shutdown" -- A stop locator --dir="$LD"

# The locator's directory keeps the region definitions; it starts again there.
run 0 "start the locator again in its directory" -- A start locator --name=locator1 --dir="$LD" --port=0 --json
LPID=$(py 'j["pid"]' 2>/dev/null)
LP2=$(py 'j["port"]' 2>/dev/null)
[ -n "$LPID" ] && PIDS+=("$LPID")
run 0 "the restarted locator still has the index" -- A list indexes --locator="127.0.0.1[$LP2]" --json
check "its definition" py_true '[(i["name"], i["region"], i["expression"]) for i in j] == [("byI", "orders", "i")]'
run 0 "stop locator --json" -- A stop locator --dir="$LD" --json
check "stop locator --json" py_true 'j["name"] == "locator1" and j["role"] == "locator" and j["stopped"] is True and j["signal"] == "SIGTERM"'
check "the locator is gone" gone "${LPID:-0}"
check "no sanitizer report in the daemons' output" bash -c "! cat '$LD'/*.out '$LD'/*.log '$S1'/*.out '$S1'/*.log '$S2'/*.out '$S2'/*.log '$S3'/*.out '$S3'/*.log 2>/dev/null | grep -qE 'Sanitizer|runtime error'"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
