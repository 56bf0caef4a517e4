#!/usr/bin/env bash
# Integration test of the `agate` CLI (docs/cli.md) driving real servers.
#
#   cli_test.sh AGATE AGATED [SRCDIR]
#
# Starts servers with `agate start server --port=0` in fresh directories,
# exercises every command (text and --json output), import/export round
# trips, exit codes, the shell fed through a pipe, and stops the servers.
# Every server started is killed by pid on exit, also when a check fails or
# the script is interrupted. Exits 77 (ctest: skipped) while AGATE is not
# built yet. The last line is "N passed, N failed".
set -u

AGATE=${1:?usage: cli_test.sh AGATE AGATED [SRCDIR]}
AGATED=${2:?usage: cli_test.sh AGATE AGATED [SRCDIR]}

if [ ! -x "$AGATE" ]; then
  echo "agate CLI not built ($AGATE): skipping"
  echo "0 passed, 0 failed"
  exit 77
fi
CLI_TEST_TAG=cli
. "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"

# =========================================================================
echo "# basics"
run 0 "version" -- A version
check "version text" out_has "0.1.0"
run 0 "version --json" -- A version --json
check "version --json parses" py_true 'j["agate"] == "0.1.0"'
run 0 "--version" -- A --version
run 0 "--help" -- A --help
run 0 "help put" -- A help put
check "help put mentions --region" out_has "--region"
run 0 "put --help" -- A put --help

# =========================================================================
echo "# start servers"
S1=$W/s1
add_daemon_dir "$S1"
run 0 "start server s1 (--json, port 0)" -- A start server --name=s1 --dir="$S1" --port=0 --threads=2 --json
check "start --json parses" out_is_json
P1=$(py 'j["port"]' 2>/dev/null)
PID1=$(py 'j["pid"]' 2>/dev/null)
[ -n "$PID1" ] && PIDS+=("$PID1")
check "start --json fields" py_true 'j["name"] == "s1" and j["role"] == "server" and j["port"] > 0 and j["pid"] > 0 and j["host"] == "127.0.0.1" and j["dir"] == "'"$S1"'" and j["log"].endswith("s1.log")'
check "status file says running" grep -q "^state=running" "$S1/agated.status"
check "daemon pid matches the status file" grep -q "^pid=$PID1\$" "$S1/agated.status"
SRV="--server=127.0.0.1:$P1"
if [ -z "$P1" ] || [ -z "$PID1" ]; then
  echo "cannot go on without a server"
  echo "$passed passed, $((failed + 1)) failed"
  failed=$((failed + 1))
  exit 1
fi

S2=$W/s2
add_daemon_dir "$S2"
run 0 "start server s2 (text, small limits)" -- A start server --name=s2 --dir="$S2" --port=0 --threads=1 --max-value-size=1K --max-key-size=32 --max-depth=4
check "start text line" grep -Eq '^Server s2 started: pid [0-9]+, listening on 127\.0\.0\.1:[0-9]+$' "$W/out"
P2=$(sed -n 's/^port=//p' "$S2/agated.status")
PID2=$(sed -n 's/^pid=//p' "$S2/agated.status")
[ -n "$PID2" ] && PIDS+=("$PID2")
SRV2="--server=127.0.0.1:$P2"

run 1 "start again on a locked directory" -- A start server --name=s1 --dir="$S1" --port=0
run 0 "s1 still running" -- A status server --dir="$S1"

# =========================================================================
echo "# status"
run 0 "status server --dir" -- A status server --dir="$S1"
check "status text says running" out_has "running"
run 0 "status server --dir --json" -- A status server --dir="$S1" --json
check "status --json" py_true 'j["state"] == "running" and j["role"] == "server" and j["alive"] is True and j["port"] == '"$P1"' and j["pid"] == '"$PID1"' and isinstance(j["info"], dict)'
run 0 "status server --server" -- A status server "$SRV"
run 0 "status server --server --json" -- A status server "$SRV" --json
check "status --server --json parses" out_is_json
run 1 "status of a directory with no server" -- A status server --dir="$W/nothing-here"
run 0 "connect" -- A connect "$SRV"
check "connect names the server" out_has "s1"
run 0 "connect --json" -- A connect "$SRV" --json
check "connect --json parses" out_is_json

# =========================================================================
echo "# regions"
run 0 "create region" -- A create region "$SRV" --name=orders --type=PARTITION --total-num-buckets=271
check "create region text" out_has "Region orders created"
run 1 "create existing region" -- A create region "$SRV" --name=orders --type=PARTITION
check "create existing: message" err_has "REGION_EXISTS"
run 0 "create --if-not-exists" -- A create region "$SRV" --name=orders --type=PARTITION --if-not-exists
run 0 "create region --json" -- A create region "$SRV" --name=repl --type=replicate --json
check "create --json" py_true 'j["created"] is True and j["region"]["name"] == "repl" and j["region"]["type"] == "REPLICATE"'
run 2 "create with an unknown type" -- A create region "$SRV" --name=x --type=NOPE
run 1 "create with a bad name" -- A create region "$SRV" --name='bad name' --type=PARTITION
run 1 "create REPLICATE with copies" -- A create region "$SRV" --name=rc --type=REPLICATE --redundant-copies=1
run 0 "list regions" -- A list regions "$SRV"
check "list shows orders" out_has "orders"
run 0 "list regions --json" -- A list regions "$SRV" --json
check "list --json" py_true 'sorted(r["name"] for r in j) == ["orders", "repl"]'
run 0 "describe region --json" -- A describe region "$SRV" --name=orders --json
check "describe --json fields" py_true 'j["name"] == "orders" and j["total_num_buckets"] == 271 and j["partitioned"] is True and j["persistent"] is False and j["entries"] == 0 and len(j["members"]) == 1 and j["members"][0]["member"] == "s1" and j["members"][0]["buckets"] == 271'
run 0 "describe region" -- A describe region "$SRV" --name=/orders
run 0 "destroy region" -- A destroy region "$SRV" --name=repl
run 1 "destroy missing region" -- A destroy region "$SRV" --name=repl
run 0 "destroy --if-exists" -- A destroy region "$SRV" --name=repl --if-exists
run 0 "destroy --json" -- A destroy region "$SRV" --name=repl --if-exists --json
check "destroy --json parses" out_is_json

# =========================================================================
echo "# put / get round trips"
# Each value is put, read back with get (text: one line of JSON) and compared
# as JSON with types kept (1 and 1.0 differ).
# BUG REPRODUCER (tools/cli/json_mp.c find_duplicate): an empty JSON object
# ('{}', also nested) computes NULL + 0 (j->keys + first before any key was
# stored): undefined behaviour, fatal under UBSan, so values 19 and 20 fail
# in sanitizer builds.
cat >"$W/cmp.py" <<'EOF'
import json, math, sys
def same(a, b):
    if type(a) != type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)
    return a == b
want = json.loads(sys.argv[1])
got = json.loads(open(sys.argv[2]).read())
sys.exit(0 if same(want, got) else 1)
EOF
i=0
while IFS= read -r value; do
  i=$((i + 1))
  run 0 "put value $i" -- A put "$SRV" --region=orders --key="v$i" --value="$value"
  run 0 "get value $i" -- A get "$SRV" --region=orders --key="v$i"
  check "value $i round trip: $value" python3 "$W/cmp.py" "$value" "$W/out"
done <<'EOF'
{"qty": 3, "tags": ["a", "b"], "nested": {"deep": [1, [2, [3, {"x": null}]]]}}
0
-1
9223372036854775807
18446744073709551615
-9223372036854775808
1.5
0.1
-2.25e-300
1e+300
-0.0
"héllo wörld ☃ 😀 日本"
"\u00e9\ud83d\ude00 escaped"
"quote \" backslash \\ slash / tab \t newline \n"
null
true
false
[]
{}
[null, true, false, 1, -1, 1.25, "s", [], {}]
""
EOF
run 0 "get --json" -- A get "$SRV" --region=orders --key=v1 --json
check "get --json fields" py_true 'j["key"] == "v1" and j["value"]["qty"] == 3 and j["version"]["member_id"] > 0 and j["version"]["counter"] > 0'
run 0 "put --json" -- A put "$SRV" --region=orders --key=pj --value='[1]' --json
check "put --json parses" out_is_json
run 1 "put invalid JSON" -- A put "$SRV" --region=orders --key=bad --value='hello'
check "invalid JSON: message" err_has "not valid JSON"
run 1 "put a duplicate object key" -- A put "$SRV" --region=orders --key=bad --value='{"a":1,"a":2}'
run 0 "put with a binary key" -- A put "$SRV" --region=orders --key-base64=AP8BAg== --value='"bin"'
run 0 "get with a binary key" -- A get "$SRV" --region=orders --key-base64=AP8BAg==
check "binary key value" out_has '"bin"'
run 0 "get binary key --json" -- A get "$SRV" --region=orders --key-base64=AP8BAg== --json
check "binary key shown as key_base64" py_true 'j["key_base64"] == "AP8BAg=="'
run 0 "size" -- A size "$SRV" --region=orders
NV=$(cat "$W/out")
run 0 "size --json" -- A size "$SRV" --region=orders --json
check "size --json" py_true 'j["region"] == "orders" and j["size"] == '"${NV:-0}"
run 0 "keys" -- A keys "$SRV" --region=orders
check "keys lists v1" grep -qx "v1" "$W/out"
check "keys shows the binary key as base64" grep -qx "base64:AP8BAg==" "$W/out"
run 0 "keys --limit=3 --json" -- A keys "$SRV" --region=orders --limit=3 --json
check "keys --json" py_true 'j["count"] == 3 and len(j["keys"]) == 3'
run 0 "remove" -- A remove "$SRV" --region=orders --key=v1
run 1 "remove a missing key" -- A remove "$SRV" --region=orders --key=v1
run 1 "get a missing key" -- A get "$SRV" --region=orders --key=v1
check "missing key: message" err_has "not found"

# =========================================================================
echo "# errors"
run 1 "unknown region" -- A get "$SRV" --region=nope --key=k
check "unknown region: message" err_has "UNKNOWN_REGION"
check "messages are prefixed agate:" grep -q "^agate: " "$W/err"
DEAD=$(dead_port)
run 1 "unreachable server" -- A list regions --server=127.0.0.1:"$DEAD"
check "unreachable: message" err_has "cannot connect"
run 1 "status of an unreachable server" -- A status server --server=127.0.0.1:"$DEAD"
run 2 "unknown command" -- A frobnicate
run 2 "unknown option" -- A put "$SRV" --region=orders --key=k --value=1 --bogus=1
run 2 "missing required option" -- A put "$SRV" --region=orders --key=k
run 2 "option given twice" -- A put "$SRV" --region=orders --region=x --key=k --value=1
run 2 "--server given twice" -- A size "$SRV" "$SRV2" --region=orders
run 2 "--server and --locator together" -- A size "$SRV" --locator="127.0.0.1[$DEAD]" --region=orders
run 2 "a malformed --locator" -- A size --locator=127.0.0.1 --region=orders
run 1 "a --locator that does not answer" -- A size --locator="127.0.0.1[$DEAD]" --region=orders
check "unreachable locator: message" err_has "cannot connect"
run 2 "bad number" -- A keys "$SRV" --region=orders --limit=abc
run 2 "create without --type" -- A create region "$SRV" --name=x
run 0 "create region on s2" -- A create region "$SRV2" --name=lim --type=PARTITION
BIG=$(python3 -c 'print("\"" + "x" * 2000 + "\"")')
run 1 "value above the server limit" -- A put "$SRV2" --region=lim --key=k --value="$BIG"
check "too large: message" err_has "TOO_LARGE"
run 1 "key above the server limit" -- A put "$SRV2" --region=lim --key="$(printf 'k%.0s' $(seq 40))" --value=1
run 1 "value too deep" -- A put "$SRV2" --region=lim --key=k --value='[[[[[1]]]]]'
check "too deep: message" err_has "TOO_DEEP"
run 0 "value at the depth limit" -- A put "$SRV2" --region=lim --key=k --value='[[[[1]]]]'

# =========================================================================
echo "# import / export"
python3 - "$W/data.jsonl" <<'EOF'
import json, random, sys
random.seed(7)
with open(sys.argv[1], "w") as f:
    for i in range(3000):
        kind = i % 6
        if kind == 0:
            v = {"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i % 7)], "ok": i % 2 == 0}
        elif kind == 1:
            v = i * 1000003 - 1500000000
        elif kind == 2:
            v = [random.random(), -i / 8.0, None]
        elif kind == 3:
            v = "ünïcødé ✓ %d" % i
        elif kind == 4:
            v = {"nested": {"a": [1, {"b": [2, {"c": i}]}]}}
        else:
            v = None
        f.write(json.dumps({"key": "k%05d" % i, "value": v}, ensure_ascii=(i % 2 == 0)) + "\n")
    f.write("\n")  # a blank line is ignored
EOF
run 0 "create region data" -- A create region "$SRV" --name=data --type=PARTITION
run 0 "import 3000 lines" -- A import data "$SRV" --region=data --file="$W/data.jsonl"
check "import summary" out_has "Imported 3000 entries"
run 0 "size after import" -- A size "$SRV" --region=data
check "3000 entries" grep -qx "3000" "$W/out"
run 0 "export" -- A export data "$SRV" --region=data --file="$W/export.jsonl"
check "export summary" out_has "Exported 3000 entries"
cat >"$W/same.py" <<'EOF'
import json, sys
def load(p):
    d = {}
    for line in open(p, encoding="utf-8"):
        if line.strip():
            e = json.loads(line)
            d[e.get("key", e.get("key_base64"))] = e["value"]
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
sys.exit(0 if a == b and len(a) == int(sys.argv[3]) else 1)
EOF
check "export equals the imported data" python3 "$W/same.py" "$W/data.jsonl" "$W/export.jsonl" 3000
run 0 "export to stdout" -- A export data "$SRV" --region=data --file=- --batch-size=500
check "stdout holds only the data" python3 "$W/same.py" "$W/data.jsonl" "$W/out" 3000
run 0 "import the export into another region (--json)" -- bash -c "'$AGATE' create region $SRV --name=data2 --type=PARTITION >/dev/null && '$AGATE' import data $SRV --region=data2 --file='$W/export.jsonl' --json"
check "import --json" py_true 'j["entries"] == 3000 and j["skipped"] == 0'
run 0 "export data2" -- A export data "$SRV" --region=data2 --file="$W/export2.jsonl"
check "second export equals the first" python3 "$W/same.py" "$W/export.jsonl" "$W/export2.jsonl" 3000
printf '{"key":"a","value":1}\n{"key":"b","vlaue":2}\n{"key":"c","value":3}\n' >"$W/bad.jsonl"
run 0 "create region bad" -- A create region "$SRV" --name=bad --type=PARTITION
run 1 "import stops at a bad line" -- A import data "$SRV" --region=bad --file="$W/bad.jsonl"
check "bad line: file and line number" err_has "bad.jsonl:2"
run 0 "size after the failed import" -- A size "$SRV" --region=bad
check "lines before the bad one are imported" grep -qx "1" "$W/out"
run 0 "import --skip-bad" -- A import data "$SRV" --region=bad --file="$W/bad.jsonl" --skip-bad
check "skip-bad reports the line" err_has "skipped"
run 1 "import into a missing region" -- A import data "$SRV" --region=nope --file="$W/data.jsonl"
run 0 "clear region" -- A clear region "$SRV" --name=data2 --json
check "clear --json" py_true 'j["removed"] == 3000'

# =========================================================================
echo "# query"
python3 - "$W/orders.jsonl" <<'EOF2'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(1, 21):
        v = {"id": i, "status": ["open", "paid", "shipped"][i % 3], "total": i * 5 + 0.5,
             "customer": {"name": "c%d" % (i % 4)}}
        f.write(json.dumps({"key": "o%02d" % i, "value": v}) + "\n")
EOF2
run 0 "create region q" -- A create region "$SRV" --name=q --type=PARTITION
run 0 "import 20 orders" -- A import data "$SRV" --region=q --file="$W/orders.jsonl"
run 0 "query: WHERE, ORDER BY, LIMIT" -- A query "$SRV" --query='SELECT o.id, o.total FROM /q o WHERE o.total > 50 ORDER BY o.total DESC LIMIT 3'
check "query: the columns are the header" grep -Eq '^o\.id +o\.total$' "$W/out"
check "query: rows in order" test "$(awk 'NR > 2 && NF == 2 {printf "%s/%s ", $1, $2}' "$W/out")" = "20/100.5 19/95.5 18/90.5 "
check "query: numbers right-aligned" grep -Eq '^  19     95\.5$' "$W/out"
check "query: summary line" grep -Eq '^3 rows \(11 matched, scanned 20 entries in [0-9]+\.[0-9] ms\)$' "$W/out"
run 0 "query: SELECT * shows values as JSON" -- A query "$SRV" --query='SELECT * FROM /q WHERE id = 5'
check "query: a value as compact JSON" out_has '^{"id":5,"status":"shipped","total":25.5,"customer":{"name":"c1"}}$'
check "query: one row" grep -Eq '^1 row \(1 matched, scanned 20 entries in ' "$W/out"
run 0 "query: GROUP BY with COUNT" -- A query "$SRV" --query='SELECT status, COUNT(*) AS n FROM /q GROUP BY status ORDER BY status'
check "query: strings are quoted as by get" grep -Eq '^"paid" +7$' "$W/out"
check "query: three groups" out_has '^3 rows (20 matched'
run 0 "query --explain" -- A query "$SRV" --explain --query='SELECT o.id FROM /q o WHERE o.total > 50 ORDER BY o.total DESC LIMIT 3'
check "explain: the scan, filter and top-n steps" bash -c "grep -q '1. scan: every entry of /q' '$W/out' && grep -q 'filter: o.total > 50' '$W/out' && grep -q 'only the best rows up to the limit' '$W/out'"
check "explain: nothing is run" bash -c "! grep -q 'rows (' '$W/out'"
run 0 "query: GROUP BY --json" -- A query "$SRV" --query='SELECT status, COUNT(*) AS n, SUM(id) AS s FROM /q GROUP BY status ORDER BY status' --json
check "query --json: row objects" py_true 'j == [{"status": "open", "n": 6, "s": 63}, {"status": "paid", "n": 7, "s": 70}, {"status": "shipped", "n": 7, "s": 77}]'
run 0 "query: \$1 and \$2 from --param" -- A query "$SRV" --query='SELECT o.id AS id FROM /q o WHERE o.status = $1 AND o.total < $2 ORDER BY o.id' --param='"paid"' --param=30 --json
check "query: parameters bound in order" py_true 'j == [{"id": 1}, {"id": 4}]'
run 0 "query: a repeated column name" -- A query "$SRV" --query='SELECT id, id, customer.name AS id_2 FROM /q WHERE id = 2' --json
check "query --json: repeated names get _2, _3" py_true 'list(j[0].items()) == [("id", 2), ("id_3", 2), ("id_2", "c2")]'
run 0 "query: no rows, --timeout=0" -- A query "$SRV" --query='SELECT id FROM /q WHERE id > 100' --timeout=0
check "query: 0 rows" out_has '^0 rows (0 matched, scanned 20 entries'
run 0 "query: no rows --json" -- A query "$SRV" --query='SELECT id FROM /q WHERE id > 100' --timeout=5000 --json
check "query --json: empty array" py_true 'j == []'
run 1 "query: a parse error" -- A query "$SRV" --query='SELECT * FORM /q'
check "parse error: the server's message" err_has "^agate: BAD_ARGUMENT: query: at 9: .*FORM"
check "parse error: the query" grep -qx '  SELECT \* FORM /q' "$W/err"
check "parse error: a caret under the place" grep -qx '           ^' "$W/err"
run 1 "query: a parse error on the second line" -- A query "$SRV" --query="$(printf 'SELECT id\nFROM /q WHERE id =')"
check "caret on the line of the error" bash -c "grep -A1 -x '  FROM /q WHERE id =' '$W/err' | tail -1 | grep -qx '                    ^'"
run 1 "query: a missing parameter" -- A query "$SRV" --query='SELECT * FROM /q WHERE id = $2' --param=1
check "missing parameter: message" err_has 'BAD_ARGUMENT'
run 1 "query: unknown region" -- A query "$SRV" --query='SELECT * FROM /nope'
check "unknown region: message" err_has "UNKNOWN_REGION"
run 1 "query: --param is not JSON" -- A query "$SRV" --query='SELECT * FROM /q WHERE status = $1' --param=paid
check "bad --param: message and hint" bash -c "grep -q 'not valid JSON' '$W/err' && grep -q 'hint' '$W/err'"
run 2 "query: unknown option" -- A query "$SRV" --query='SELECT * FROM /q' --bogus=1
run 2 "query: without --query" -- A query "$SRV"
run 2 "query: --query twice" -- A query "$SRV" --query='SELECT * FROM /q' --query='SELECT 1 FROM /q'
run 2 "query: a bad --timeout" -- A query "$SRV" --query='SELECT * FROM /q' --timeout=soon
run 0 "query --help" -- A query --help
check "query --help: --param repeats" out_has '\[--param=JSON\]\.\.\.'
printf 'connect %s\nquery --query="SELECT COUNT(*) AS n FROM /q WHERE status = $1" --param=\x27"open"\x27\n' "$SRV" >"$W/qscript"
run 0 "query in the shell" -- bash -c "'$AGATE' <'$W/qscript'"
check "shell query output" grep -Eq '^ *6$' "$W/out"

# =========================================================================
echo "# indexes"
IQ='SELECT o.id AS id FROM /q o WHERE o.status = $1 AND o.total >= 20 ORDER BY o.id'
run 0 "query before any index" -- A query "$SRV" --query="$IQ" --param='"paid"' --json
cp "$W/out" "$W/noindex.json"
run 0 "create index: hash" -- A create index "$SRV" --name=byStatus --region=q --expression=status --type=hash
check "create index: text" grep -qx 'Index byStatus created on q: hash index on status, 20 entries' "$W/out"
run 0 "create index: range by default, --json" -- A create index "$SRV" --name=byTotal --region=q --expression=o.total --json
check "create index --json" py_true 'j["created"] is True and j["index"]["type"] == "range" and j["index"]["expression"] == "o.total" and j["index"]["entries"] == 0'
run 0 "create index: a nested path" -- A create index "$SRV" --name=byCust --region=q --expression="customer['name']"
run 0 "create index: a path with an alias" -- A create index "$SRV" --name=byAlias --region=q --expression=o.id
check "a note: the path has no alias" err_has "note: no entry of q has a boolean, number or string at o.id; the expression is a path into the value without an alias"
run 0 "destroy that one" -- A destroy index "$SRV" --name=byAlias --region=q
run 1 "create index: a duplicate name" -- A create index "$SRV" --name=byStatus --region=q --expression=total
check "duplicate: INDEX_EXISTS" err_has "INDEX_EXISTS: index 'byStatus' already exists on region 'q'"
run 1 "create index: not a path" -- A create index "$SRV" --name=bad --region=q --expression='total * 2'
check "not a path: message with the position" err_has "BAD_ARGUMENT: index expression 'total \* 2': at 0: an index expression is a path"
run 1 "create index: a syntax error" -- A create index "$SRV" --name=bad --region=q --expression='total +'
check "syntax error: position" err_has "at 7:"
run 1 "create index: unknown region" -- A create index "$SRV" --name=i --region=nope --expression=id
check "unknown region: message" err_has "UNKNOWN_REGION"
run 1 "create index: bad name" -- A create index "$SRV" --name='a b' --region=q --expression=id
check "bad name: message" err_has "invalid index name"
run 2 "create index: bad --type" -- A create index "$SRV" --name=i --region=q --expression=id --type=key
run 2 "create index: no --expression" -- A create index "$SRV" --name=i --region=q
run 0 "list indexes" -- A list indexes "$SRV"
check "list: a row per index" bash -c "grep -Eq '^byStatus +q +hash +status +20 ' '$W/out' && grep -Eq '^byTotal +q +range +o.total +0 ' '$W/out' && grep -Eq \"^byCust +q +range +customer\\['name'\\] +20 \" '$W/out'"
run 0 "list indexes --json --region" -- A list indexes "$SRV" --region=q --json
check "list --json" py_true '[i["name"] for i in j] == ["byStatus", "byTotal", "byCust"] and all(i["valid"] and i["bytes"] > 0 and i["region"] == "q" for i in j)'
run 0 "explain names the index" -- A query "$SRV" --explain --query="$IQ"
check "explain: an index lookup" out_has "1. read /q through an index: index lookup: o.status = \$1 using hash index byStatus"
run 0 "explain: a range" -- A query "$SRV" --explain --query="SELECT * FROM /q WHERE customer['name'] > 'c1' AND customer['name'] <= 'c2'"
check "explain: an index range" out_has "index range: customer\['name'\] > 'c1' AND customer\['name'\] <= 'c2' using range index byCust"
run 0 "explain: no usable index" -- A query "$SRV" --explain --query="SELECT * FROM /q WHERE status = 'paid' OR total > 50"
check "explain: a full scan" out_has "1. scan: every entry of /q (full scan: no index applies)"
run 0 "a query through the index reads only the matches" -- A query "$SRV" --query="SELECT COUNT(*) AS n FROM /q WHERE status = 'paid'"
check "scanned 7 of 20 entries" out_has '^1 row (7 matched, scanned 7 entries'
run 0 "kept in step: put" -- A put "$SRV" --region=q --key=o99 --value='{"id": 99, "status": "paid", "total": 1000}'
run 0 "kept in step: remove" -- A remove "$SRV" --region=q --key=o01
run 0 "list after writes" -- A list indexes "$SRV" --region=q --json
check "entries follow the writes" py_true '[i["entries"] for i in j] == [20, 0, 19]'
run 0 "query with indexes" -- A query "$SRV" --query="$IQ" --param='"paid"' --json
check "same rows with the index, plus the new one" py_true 'j == [r for r in json.load(open("'"$W/noindex.json"'")) if r["id"] != 1] + [{"id": 99}]'
run 0 "destroy index" -- A destroy index "$SRV" --name=byStatus --region=q
check "destroy: text" grep -qx 'Index byStatus destroyed on q' "$W/out"
run 1 "destroy a missing index" -- A destroy index "$SRV" --name=byStatus --region=q
check "missing index: message" err_has "index byStatus not found on region q"
run 0 "destroy --if-exists" -- A destroy index "$SRV" --name=byStatus --region=q --if-exists --json
check "destroy --if-exists --json" py_true 'j["destroyed"] is False'
run 0 "destroying the region drops its indexes" -- A destroy region "$SRV" --name=q
run 0 "list indexes: none" -- A list indexes "$SRV"
check "no indexes left" grep -qx 'No indexes' "$W/out"
run 1 "list indexes of an unknown region" -- A list indexes "$SRV" --region=q

# =========================================================================
echo "# shell through a pipe"
printf 'connect %s\ncreate region --name=sh --type=PARTITION\nput --region=sh --key=a --value=\x27{"x": [1, 2]}\x27\nget --region=sh --key=a\nsize --region=sh\n' "$SRV" >"$W/script"
run 0 "shell script" -- bash -c "'$AGATE' <'$W/script'"
check "shell get output" grep -q '"x"' "$W/out"
check "shell size output" grep -qx "1" "$W/out"
printf 'connect %s\nget --region=sh --key=missing\n' "$SRV" >"$W/script2"
run 1 "shell exit status is the last command's" -- bash -c "'$AGATE' <'$W/script2'"
printf 'connect %s\nget --region=sh --key="unterminated\nsize --region=sh\nexit --code=3\n' "$SRV" >"$W/script3"
run 3 "shell: bad line reported, next line runs, exit --code" -- bash -c "'$AGATE' <'$W/script3'"
check "shell: bad line message" err_has "line 2"
check "shell: next line ran" grep -qx "1" "$W/out"
run 0 "shell with --server and no command" -- bash -c "printf 'size --region=sh\n' | '$AGATE' $SRV"
check "shell --server size" grep -qx "1" "$W/out"

# =========================================================================
echo "# continuous queries"
run 0 "create region for watch" -- A create region "$SRV" --name=cqw --type=PARTITION
run 0 "put before the watch" -- A put "$SRV" --region=cqw --key=pre --value='{"total": 500}'
run 0 "list cqs: none yet" -- A list cqs "$SRV"
check "list cqs: says none" out_has "^No continuous queries$"
# watch in the background until 4 events (or 30 s)
A watch "$SRV" --query='SELECT * FROM /cqw o WHERE o.total > 100' --initial --count=4 --timeout=30 \
  >"$W/watch.out" 2>"$W/watch.err" </dev/null &
WPID=$!
PIDS+=("$WPID")
wait_for 10 "list cqs --json shows the watch" json_true \
  'len(j) == 1 and j[0]["region"] == "cqw" and j[0]["name"].startswith("agate-watch-") and j[0]["client"] == "agate-cli" and j[0]["query"] == "SELECT * FROM /cqw o WHERE o.total > 100" and j[0]["buckets"] == 113' \
  A list cqs "$SRV" --json
run 0 "list cqs: table" -- A list cqs "$SRV"
check "list cqs: header" grep -Eq '^ *ID +NAME +REGION +CLIENT +PEER +BUCKETS +EVENTS +QUEUED +QUERY$' "$W/out"
check "list cqs: the watch's row" grep -Eq 'agate-watch-[0-9]+ +cqw +agate-cli +127\.0\.0\.1:[0-9]+ +113 ' "$W/out"
run 0 "watch: a put that does not match" -- A put "$SRV" --region=cqw --key=k1 --value='{"total": 5}'
run 0 "watch: a put that enters" -- A put "$SRV" --region=cqw --key=k1 --value='{"total": 200}'
run 0 "watch: a put inside" -- A put "$SRV" --region=cqw --key=k1 --value='{"total": 300}'
run 0 "watch: a remove" -- A remove "$SRV" --region=cqw --key=k1
wait "$WPID"
WRC=$?
check "watch --count exits 0" test "$WRC" -eq 0
printf 'INITIAL pre {"total":500}\nCREATE k1 {"total":200}\nUPDATE k1 {"total":300}\nDESTROY k1\n' >"$W/watch.want"
check "watch: one line per event" cmp -s "$W/watch.out" "$W/watch.want"
[ -s "$W/watch.err" ] && { echo "     watch stderr:"; sed 's/^/       /' "$W/watch.err"; }
# --json, without --query: every entry of --region
A watch "$SRV" --region=cqw --json --count=2 --timeout=30 >"$W/watch.out" 2>"$W/watch.err" </dev/null &
WPID=$!
PIDS+=("$WPID")
wait_for 10 "list cqs: the --region watch" json_true 'len(j) == 1 and j[0]["query"] == "SELECT * FROM /cqw WHERE true"' A list cqs "$SRV" --json
run 0 "watch --json: put" -- A put "$SRV" --region=cqw --key=k2 --value='[1, "x"]'
run 0 "watch --json: put again" -- A put "$SRV" --region=cqw --key=k2 --value='null'
wait "$WPID"
check "watch --json exits 0" test "$?" -eq 0
check "watch --json: one object per line" python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
a, b = [json.loads(l) for l in lines]
assert a["op"] == "create" and a["key"] == "k2" and a["value"] == [1, "x"] and a["bucket"] >= 0 and a["seq"] > 0
assert b["op"] == "update" and b["value"] is None and b["seq"] > a["seq"] and b["bucket"] == a["bucket"]
' "$W/watch.out"
wait_for 10 "list cqs: the watch is gone" json_true 'j == []' A list cqs "$SRV" --json
run 0 "watch --timeout with no event" -- A watch "$SRV" --region=cqw --timeout=1
check "watch --timeout: no output" test ! -s "$W/out"
run 1 "watch: not a plain SELECT *" -- A watch "$SRV" --query='SELECT o.total FROM /cqw o WHERE o.total > 1' --timeout=1
check "watch: the server's message" err_has "BAD_ARGUMENT"
run 1 "watch: unknown region" -- A watch "$SRV" --region=nosuch --timeout=1
run 1 "watch: --param is not JSON" -- A watch "$SRV" --query='SELECT * FROM /cqw WHERE total > $1' --param=big
run 1 "watch: no server" -- A watch --server=127.0.0.1:$(dead_port) --region=cqw --timeout=1
run 2 "watch: neither --query nor --region" -- A watch "$SRV"
run 2 "watch: --count=0" -- A watch "$SRV" --region=cqw --count=0
run 2 "list cqs: an unknown option" -- A list cqs "$SRV" --region=cqw
run 0 "watch --help" -- A watch --help
check "watch --help: the event kinds" out_has "DESTROY"

# =========================================================================
echo "# stop"
run 0 "stop server s2" -- A stop server --dir="$S2"
run 0 "stop server s1 --json" -- A stop server --dir="$S1" --json
check "stop --json" py_true 'j["name"] == "s1" and j["stopped"] is True and j["signal"] == "SIGTERM"'
check "status file says stopped" grep -q "^state=stopped" "$S1/agated.status"
# gone: no such process, or a zombie (a detached daemon is reaped by
# whoever adopted it, possibly late)
gone() {
  local st
  kill -0 "$1" 2>/dev/null || return 0
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
  [ -z "$st" ] || [ "$st" = Z ] || [ "$st" = X ]
}
check "s1 process is gone" gone "$PID1"
check "s2 process is gone" gone "$PID2"
run 1 "status of a stopped server" -- A status server --dir="$S1"
run 1 "stop a stopped server" -- A stop server --dir="$S1"
check "no sanitizer report in s1's output" bash -c "! grep -qE 'Sanitizer|runtime error' '$S1'/*.out '$S1'/*.log"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
