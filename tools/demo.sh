#!/usr/bin/env bash
# The README's first command: install what is missing, build, start a local
# Agate cluster (a locator and three servers on 127.0.0.1) and run a small
# workload against it through the CLI: create a PARTITION_REDUNDANT region,
# import a generated sample of orders (with a progress bar), read, update
# and remove entries while a continuous query (agate watch) prints their
# events, query, index a field and query through the index, kill a server
# (SIGKILL) and show that nothing was lost and redundancy comes back, add a
# server and rebalance, export, and report what was done. The cluster is shut down at the end; its
# directories stay for a look (path printed).
#   tools/demo.sh [--orders N] [--keep-running]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
orders=100000
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --orders) orders=$2; shift 2 ;;
    --orders=*) orders=${1#*=}; shift ;;
    --keep-running) keep=1; shift ;;
    *) echo "usage: tools/demo.sh [--orders N] [--keep-running]" >&2; exit 2 ;;
  esac
done

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Installing missing packages and building"
"$root/tools/install-deps.sh"
"$root/tools/build.sh" --quiet
agate="$root/build/bin/agate"

work=$(mktemp -d "${TMPDIR:-/tmp}/agate-demo.XXXXXX")
# A short member timeout so that the failover below takes seconds (the
# default is 5000 ms, as in Geode).
mt=2000
pids=()
cleanup() {
  [ "$keep" = 1 ] && return 0
  "$agate" shutdown --include-locators >/dev/null 2>&1 || true
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

json_field() { sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p"; }

step "Starting a locator and three servers (agate start locator / start server)"
out=$("$agate" start locator --name=locator1 --dir="$work/locator1" --port=0 --member-timeout=$mt --json)
lport=$(printf '%s' "$out" | json_field port)
pids+=("$(printf '%s' "$out" | json_field pid)")
export AGATE_LOCATOR="127.0.0.1[$lport]"
start_server() {
  local out
  out=$("$agate" start server --name="$1" --dir="$work/$1" --port=0 --locators="$AGATE_LOCATOR" \
        --member-timeout=$mt --json)
  pids+=("$(printf '%s' "$out" | json_field pid)")
  printf '%s' "$out" | json_field pid
}
pid1=$(start_server server1)
pid2=$(start_server server2)
pid3=$(start_server server3)
echo "locator1 on 127.0.0.1:$lport (AGATE_LOCATOR=$AGATE_LOCATOR); servers: pids $pid1 $pid2 $pid3"
for _ in $(seq 50); do
  n=$("$agate" list members --json | grep -o '"role": *"server"' | wc -l)
  [ "$n" -ge 3 ] && break
  sleep 0.1
done
"$agate" list members

step "Creating region /orders (PARTITION_REDUNDANT, 1 redundant copy, 113 buckets)"
"$agate" create region --name=orders --type=PARTITION_REDUNDANT --redundant-copies=1
wait_redundancy() {
  for _ in $(seq 200); do
    "$agate" status redundancy >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}
wait_redundancy
"$agate" status redundancy

step "Generating $orders sample orders"
data="$work/orders.jsonl"
awk -v n="$orders" 'BEGIN {
  split("Lisbon Oslo Quito Perth Dakar Hanoi Lima Bergen", city, " ");
  split("new paid shipped delivered", status, " ");
  srand(42);
  for (i = 1; i <= n; i++) {
    items = int(rand() * 4) + 1; total = 0; list = "";
    for (j = 1; j <= items; j++) {
      qty = int(rand() * 5) + 1; price = int(rand() * 9900 + 100) / 100; total += qty * price;
      list = list (j > 1 ? "," : "") sprintf("{\"sku\":\"SKU-%04d\",\"qty\":%d,\"price\":%.2f}", int(rand() * 5000), qty, price);
    }
    c = int(rand() * 2000);
    printf("{\"key\":\"order-%07d\",\"value\":{\"id\":%d,\"customer\":{\"id\":%d,\"city\":\"%s\"},\"status\":\"%s\",\"items\":[%s],\"total\":%.2f}}\n",
           i, i, c, city[c % 8 + 1], status[i % 4 + 1], list, total);
  }
}' > "$data"
echo "$(wc -l < "$data") lines, $(du -h "$data" | cut -f1) in $data"

step "Importing through the locator (each entry goes straight to its bucket's primary)"
"$agate" import data --region=orders --file="$data"

step "Describing the region: buckets, primaries and entries per server"
sleep 1 # entry counts come with the servers' heartbeats
"$agate" describe region --name=orders

step "Reading entries (agate get)"
last=$(printf "order-%07d" "$orders")
for k in order-0000001 order-0000042 "$last"; do
  printf '%s = ' "$k"
  "$agate" get --region=orders --key="$k" || true
done

step "Watching (agate watch: a continuous query, events pushed as writes happen)"
cq="SELECT * FROM /orders o WHERE o.id <= 5 OR o.status = 'cancelled'"
echo "$cq"
"$agate" watch --query="$cq" --count=6 --timeout=60 >"$work/watch.out" 2>&1 &
watch_pid=$!
pids+=("$watch_pid")
for _ in $(seq 100); do # registered on every server?
  "$agate" list cqs 2>/dev/null | grep -q "o.id <= 5" && break
  sleep 0.1
done
"$agate" list cqs

step "Writing and removing (agate put / remove)"
"$agate" put --region=orders --key=order-0000042 --value='{"id":42,"status":"cancelled","note":"changed by the demo"}'
printf 'order-0000042 = '; "$agate" get --region=orders --key=order-0000042
for i in 1 2 3 4 5; do "$agate" remove --region=orders --key="order-000000$i"; done
echo "removed order-0000001 .. order-0000005"
printf 'order-0000001 = '; "$agate" get --region=orders --key=order-0000001 || echo "(absent, as expected)"
echo "the watch saw (one line per event, in the order of each key's writes):"
wait "$watch_pid" || echo "(agate watch exited with status $?)"
cat "$work/watch.out"

step "Querying the cluster (agate query: every server runs its part, one gathers)"
"$agate" query --query="SELECT status, COUNT(*) AS orders, SUM(total) AS revenue FROM /orders GROUP BY status ORDER BY revenue DESC"
"$agate" query --query="SELECT o.id, o.customer.city, o.total FROM /orders o WHERE o.customer.city = 'Oslo' ORDER BY o.total DESC LIMIT 3"

step "Indexing (agate create index): the same query reads only the entries the index selects"
"$agate" create index --name=byCity --region=orders --expression=customer.city --type=hash
"$agate" query --explain --query="SELECT o.id, o.customer.city, o.total FROM /orders o WHERE o.customer.city = 'Oslo' ORDER BY o.total DESC LIMIT 3"
"$agate" query --query="SELECT o.id, o.customer.city, o.total FROM /orders o WHERE o.customer.city = 'Oslo' ORDER BY o.total DESC LIMIT 3"

step "Losing a server: SIGKILL of server2 (pid $pid2)"
kill -9 "$pid2"
t0=$(date +%s%N)
echo "the locator notices after member-timeout ($mt ms), promotes the copies of server2's primaries"
echo "and copies its buckets again on the two servers left; meanwhile clients retry"
printf 'entries now (waits for the failover): '; "$agate" size --region=orders
wait_redundancy
echo "redundancy restored $(( ($(date +%s%N) - t0) / 1000000 )) ms after the kill"
"$agate" status redundancy
printf 'order-0000042 = '; "$agate" get --region=orders --key=order-0000042

step "Adding a server and rebalancing (agate rebalance)"
pid4=$(start_server server4)
for _ in $(seq 50); do
  n=$("$agate" list members --json | grep -o '"role": *"server"' | wc -l)
  [ "$n" -ge 3 ] && break
  sleep 0.1
done
"$agate" rebalance
wait_redundancy
sleep 1
"$agate" describe region --name=orders
echo "the index followed the buckets to server4 (built as their images arrived):"
"$agate" list indexes --region=orders

step "Exporting (agate export data)"
"$agate" export data --region=orders --file="$work/export.jsonl"
exported=$(wc -l < "$work/export.jsonl")

step "Summary"
echo "imported $(wc -l < "$data") orders, updated 1, removed 5; after losing a server and a rebalance: exported $exported"
expected=$(( $(wc -l < "$data") - 5 ))
if [ "$exported" -ne "$expected" ]; then
  echo "MISMATCH: expected $expected entries" >&2
  exit 1
fi
"$agate" status cluster
if [ "$keep" = 1 ]; then
  echo "the cluster keeps running: AGATE_LOCATOR='$AGATE_LOCATOR' $agate   (stop: $agate shutdown --include-locators)"
else
  "$agate" shutdown --include-locators
  echo "files left in $work"
fi
