#!/usr/bin/env bash
# The README's first command: install what is missing, build, start a local
# Agate server, and run a small workload against it through the CLI:
# create a region, import a generated sample of orders (with a progress bar),
# read, remove, export, and report what was done. The server is stopped at
# the end; its directory stays for a look (path printed).
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
dir="$work/server1"
stop_server() {
  [ "$keep" = 1 ] && return 0
  "$agate" stop server --dir="$dir" >/dev/null 2>&1 || true
}
trap stop_server EXIT

step "Starting a server (agate start server)"
out=$("$agate" start server --name=server1 --dir="$dir" --port=0 --json)
port=$(printf '%s' "$out" | sed -n 's/.*"port": *\([0-9]*\).*/\1/p')
pid=$(printf '%s' "$out" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
echo "server1: pid $pid, 127.0.0.1:$port, directory $dir"
export AGATE_SERVER="127.0.0.1:$port"

step "Creating region /orders (PARTITION_REDUNDANT, 113 buckets)"
"$agate" create region --name=orders --type=PARTITION_REDUNDANT

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

step "Importing (agate import data)"
"$agate" import data --region=orders --file="$data"

step "Describing the region"
"$agate" describe region --name=orders

step "Reading entries (agate get)"
last=$(printf "order-%07d" "$orders")
for k in order-0000001 order-0000042 "$last"; do
  printf '%s = ' "$k"
  "$agate" get --region=orders --key="$k" || true
done

step "Writing and removing (agate put / remove)"
"$agate" put --region=orders --key=order-0000042 --value='{"id":42,"status":"cancelled","note":"changed by the demo"}'
printf 'order-0000042 = '; "$agate" get --region=orders --key=order-0000042
for i in 1 2 3 4 5; do "$agate" remove --region=orders --key="order-000000$i"; done
echo "removed order-0000001 .. order-0000005"
printf 'order-0000001 = '; "$agate" get --region=orders --key=order-0000001 || echo "(absent, as expected)"

step "Exporting (agate export data)"
"$agate" export data --region=orders --file="$work/export.jsonl"
exported=$(wc -l < "$work/export.jsonl")

step "Summary"
echo "imported $(wc -l < "$data") orders, updated 1, removed 5, exported $exported"
"$agate" status server --dir="$dir"
if [ "$keep" = 1 ]; then
  echo "server1 keeps running: AGATE_SERVER=127.0.0.1:$port $agate   (stop: $agate stop server --dir=$dir)"
else
  "$agate" stop server --dir="$dir"
  echo "files left in $work"
fi
