/* cmd.c - the command table, argument parsing, dispatch and help.
 *
 * Parsing is generic: the table says which options a command has and their
 * types, so every command gets the same syntax (--name=value, --name value,
 * --flag), the same errors (exit 2 with the command's usage) and the same
 * help, on the command line and in the shell. */
#include "common/locators.h"
#include "tools/cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tools/cli/output.h"

#define END_OPTS {NULL, OPT_STR, false, NULL, NULL, NULL, 0, 0}

const cli_opt cli_global_opts[] = {
    {"server", OPT_STR, false, "HOST:PORT",
     "server to talk to (default: $AGATE_SERVER, else " CLI_DEFAULT_SERVER ")", NULL, 0, 0},
    {"locator", OPT_STR, false, "HOST[PORT]",
     "cluster to talk to, through its locators HOST[PORT],... (default: $AGATE_LOCATOR)", NULL, 0, 0},
    {"json", OPT_BOOL, false, NULL, "print one machine-readable JSON document on stdout", NULL, 0, 0},
    {"help", OPT_BOOL, false, NULL, "show the usage of the command", NULL, 0, 0},
    END_OPTS,
};

#define REGION_TYPES                                                                              \
    "PARTITION|PARTITION_REDUNDANT|PARTITION_PERSISTENT|PARTITION_REDUNDANT_PERSISTENT|REPLICATE|" \
    "REPLICATE_PERSISTENT"

static const cli_opt no_opts[] = {END_OPTS};

static const cli_opt start_server_opts[] = {
    {"name", OPT_STR, false, "NAME", "member name (default server1)", NULL, 0, 0},
    {"dir", OPT_STR, false, "DIR", "working directory, created if missing (default ./NAME)", NULL, 0, 0},
    {"port", OPT_INT, false, "PORT", "TCP port; 0 picks a free one (default 40404)", NULL, 0, 65535},
    {"bind-address", OPT_STR, false, "ADDR", "IPv4 address to listen on (server default 127.0.0.1)", NULL, 0, 0},
    {"threads", OPT_INT, false, "N", "worker threads (server default: number of CPUs)", NULL, 1, 1024},
    {"query-threads", OPT_INT, false, "N", "threads that run query scans (server default: CPUs / 2)", NULL, 1, 64},
    {"journal-bytes-per-bucket", OPT_SIZE, false, "BYTES", "event journal per bucket for continuous queries; 0: none (default 256K)", NULL, 0, 1LL << 30},
    {"max-frame-size", OPT_SIZE, false, "BYTES", "largest request frame (K/M/G suffixes allowed)", NULL, 1, 1LL << 40},
    {"max-key-size", OPT_SIZE, false, "BYTES", "largest key", NULL, 1, 1LL << 40},
    {"max-value-size", OPT_SIZE, false, "BYTES", "largest value", NULL, 1, 1LL << 40},
    {"max-depth", OPT_INT, false, "N", "deepest nesting of a value", NULL, 1, 100000},
    {"log-level", OPT_STR, false, "LEVEL", "server log level", "debug|info|warn|error", 0, 0},
    {"locators", OPT_STR, false, "HOST[PORT],...", "join the cluster of these locators (HOST:PORT also works)", NULL, 0, 0},
    {"member-timeout", OPT_INT, false, "MS", "how long the cluster waits for this member's heartbeat (default 5000)", NULL, 200, 3600000},
    {"timeout", OPT_INT, false, "SECONDS", "how long to wait for the server to come up (default 60)", NULL, 1, 86400},
    END_OPTS,
};

static const cli_opt start_locator_opts[] = {
    {"name", OPT_STR, false, "NAME", "locator name (default locator1)", NULL, 0, 0},
    {"dir", OPT_STR, false, "DIR", "working directory, created if missing (default ./NAME)", NULL, 0, 0},
    {"port", OPT_INT, false, "PORT", "TCP port; 0 picks a free one (default 10334)", NULL, 0, 65535},
    {"bind-address", OPT_STR, false, "ADDR", "IPv4 address to listen on (default 127.0.0.1)", NULL, 0, 0},
    {"member-timeout", OPT_INT, false, "MS", "a member silent this long is suspected, then removed (default 5000)", NULL, 200, 3600000},
    {"recovery-delay", OPT_INT, false, "MS", "restore redundancy this long after a member is lost; -1: never (default 0)", NULL, -1, 3600000},
    {"log-level", OPT_STR, false, "LEVEL", "locator log level", "debug|info|warn|error", 0, 0},
    {"timeout", OPT_INT, false, "SECONDS", "how long to wait for the locator to come up (default 60)", NULL, 1, 86400},
    END_OPTS,
};

static const cli_opt status_locator_opts[] = {
    {"name", OPT_STR, false, "NAME", "locator name, to find its directory ./NAME (default locator1)", NULL, 0, 0},
    {"dir", OPT_STR, false, "DIR", "the locator's working directory", NULL, 0, 0},
    END_OPTS,
};

static const cli_opt stop_locator_opts[] = {
    {"name", OPT_STR, false, "NAME", "locator name, to find its directory ./NAME (default locator1)", NULL, 0, 0},
    {"dir", OPT_STR, false, "DIR", "the locator's working directory", NULL, 0, 0},
    {"timeout", OPT_INT, false, "SECONDS", "wait this long after SIGTERM before SIGKILL (default 30)", NULL, 0, 86400},
    END_OPTS,
};

static const cli_opt describe_member_opts[] = {
    {"name", OPT_STR, true, "NAME", "member name (as in list members)", NULL, 0, 0},
    END_OPTS,
};

static const cli_opt status_redundancy_opts[] = {
    {"region", OPT_STR, false, "REGION", "only this region (default: every region)", NULL, 0, 0},
    END_OPTS,
};

static const cli_opt rebalance_opts[] = {
    {"simulate", OPT_BOOL, false, NULL, "only show the plan; move nothing", NULL, 0, 0},
    {"no-progress", OPT_BOOL, false, NULL, "no progress bar (it is only drawn on a terminal anyway)", NULL, 0, 0},
    END_OPTS,
};

static const cli_opt shutdown_opts[] = {
    {"include-locators", OPT_BOOL, false, NULL, "stop the locators too", NULL, 0, 0},
    END_OPTS,
};

static const cli_opt status_server_opts[] = {
    {"name", OPT_STR, false, "NAME", "member name, to find its directory ./NAME (default server1)", NULL, 0, 0},
    {"dir", OPT_STR, false, "DIR", "the server's working directory", NULL, 0, 0},
    END_OPTS,
};

static const cli_opt stop_server_opts[] = {
    {"name", OPT_STR, false, "NAME", "member name, to find its directory ./NAME (default server1)", NULL, 0, 0},
    {"dir", OPT_STR, false, "DIR", "the server's working directory", NULL, 0, 0},
    {"timeout", OPT_INT, false, "SECONDS", "wait this long after SIGTERM before SIGKILL (default 30)", NULL, 0, 86400},
    END_OPTS,
};

static const cli_opt create_region_opts[] = {
    {"name", OPT_STR, true, "REGION", "region name: 1-128 of [A-Za-z0-9_.-]", NULL, 0, 0},
    {"type", OPT_STR, true, "TYPE", "region type", REGION_TYPES, 0, 0},
    {"redundant-copies", OPT_INT, false, "N", "extra copies of each bucket (default: 1 for _REDUNDANT types, else 0)", NULL, 0, 1000},
    {"total-num-buckets", OPT_INT, false, "N", "number of buckets (default 113)", NULL, 1, 1000000},
    {"if-not-exists", OPT_BOOL, false, NULL, "succeed if a region of that name and type exists", NULL, 0, 0},
    END_OPTS,
};

static const cli_opt destroy_region_opts[] = {
    {"name", OPT_STR, true, "REGION", "region to destroy, with all its entries", NULL, 0, 0},
    {"if-exists", OPT_BOOL, false, NULL, "succeed if there is no such region", NULL, 0, 0},
    END_OPTS,
};

static const cli_opt create_index_opts[] = {
    {"name", OPT_STR, true, "INDEX", "index name: 1-128 of [A-Za-z0-9_.-], unique in the region", NULL, 0, 0},
    {"region", OPT_STR, true, "REGION", "region to index", NULL, 0, 0},
    {"expression", OPT_STR, true, "PATH", "what to index: a path into the value, e.g. status, customer.city, items[0]", NULL, 0, 0},
    {"type", OPT_STR, false, "TYPE", "range (=, IN, <, >; the default) or hash (= and IN only)", "range|hash", 0, 0},
    END_OPTS,
};

static const cli_opt destroy_index_opts[] = {
    {"name", OPT_STR, true, "INDEX", "index to destroy", NULL, 0, 0},
    {"region", OPT_STR, true, "REGION", "its region", NULL, 0, 0},
    {"if-exists", OPT_BOOL, false, NULL, "succeed if there is no such index", NULL, 0, 0},
    END_OPTS,
};

static const cli_opt list_indexes_opts[] = {
    {"region", OPT_STR, false, "REGION", "only this region's indexes (default: every region's)", NULL, 0, 0},
    END_OPTS,
};

static const cli_opt region_name_opts[] = {
    {"name", OPT_STR, true, "REGION", "region name", NULL, 0, 0},
    END_OPTS,
};

static const cli_opt put_opts[] = {
    {"region", OPT_STR, true, "REGION", "region name", NULL, 0, 0},
    {"key", OPT_STR, false, "KEY", "the key, as text", NULL, 0, 0},
    {"key-base64", OPT_STR, false, "B64", "the key, as base64 bytes (instead of --key)", NULL, 0, 0},
    {"value", OPT_STR, true, "JSON", "the value as JSON, e.g. '{\"a\": 1}' or '\"text\"'", NULL, 0, 0},
    END_OPTS,
};

static const cli_opt key_opts[] = {
    {"region", OPT_STR, true, "REGION", "region name", NULL, 0, 0},
    {"key", OPT_STR, false, "KEY", "the key, as text", NULL, 0, 0},
    {"key-base64", OPT_STR, false, "B64", "the key, as base64 bytes (instead of --key)", NULL, 0, 0},
    END_OPTS,
};

static const cli_opt size_opts[] = {
    {"region", OPT_STR, true, "REGION", "region name", NULL, 0, 0},
    END_OPTS,
};

static const cli_opt keys_opts[] = {
    {"region", OPT_STR, true, "REGION", "region name", NULL, 0, 0},
    {"limit", OPT_INT, false, "N", "print at most N keys (default: all)", NULL, 1, 1LL << 62},
    END_OPTS,
};

static const cli_opt import_opts[] = {
    {"region", OPT_STR, true, "REGION", "region to put the entries into", NULL, 0, 0},
    {"file", OPT_STR, true, "FILE", "JSON Lines file to read, - for stdin", NULL, 0, 0},
    {"batch-size", OPT_INT, false, "N", "entries per put-all request (default 1000)", NULL, 1, 1000000},
    {"skip-bad", OPT_BOOL, false, NULL, "report and skip bad lines instead of stopping", NULL, 0, 0},
    END_OPTS,
};

static const cli_opt export_opts[] = {
    {"region", OPT_STR, true, "REGION", "region to read", NULL, 0, 0},
    {"file", OPT_STR, true, "FILE", "JSON Lines file to write (replaced), - for stdout", NULL, 0, 0},
    {"batch-size", OPT_INT, false, "N", "entries per page (default 1000, at most 10000)", NULL, 1, 10000},
    END_OPTS,
};

static const cli_opt query_opts[] = {
    {"query", OPT_STR, true, "TEXT", "the query, e.g. 'SELECT * FROM /orders WHERE total > $1'", NULL, 0, 0},
    {"param", OPT_LIST, false, "JSON", "the value of $1, then $2, ... as JSON; repeat for each", NULL, 0, 0},
    {"timeout", OPT_INT, false, "MS", "how long the server may work on it; 0: no limit (default 30000)", NULL, 0, 2147483647},
    {"explain", OPT_BOOL, false, NULL, "show how the query would run (the plan) instead of running it", NULL, 0, 0},
    {"page-size", OPT_INT, false, "N", "rows fetched and printed at a time (default 1000)", NULL, 1, 100000},
    END_OPTS,
};

static const cli_opt watch_opts[] = {
    {"query", OPT_STR, false, "TEXT", "the continuous query: SELECT * FROM /region [alias] WHERE ...", NULL, 0, 0},
    {"region", OPT_STR, false, "NAME", "without --query: watch every entry of this region", NULL, 0, 0},
    {"param", OPT_LIST, false, "JSON", "the value of $1, then $2, ... as JSON; repeat for each", NULL, 0, 0},
    {"initial", OPT_BOOL, false, NULL, "print the matching entries first (INITIAL lines)", NULL, 0, 0},
    {"count", OPT_INT, false, "N", "exit after N events", NULL, 1, 1LL << 62},
    {"timeout", OPT_INT, false, "SECONDS", "exit after this long (default: until Ctrl-C)", NULL, 1, 31536000},
    END_OPTS,
};

static const cli_opt connect_opts[] = {
    {"timeout", OPT_INT, false, "SECONDS", "connect timeout (default 5)", NULL, 1, 3600},
    END_OPTS,
};

static const cli_opt exit_opts[] = {
    {"code", OPT_INT, false, "N", "exit status (default: that of the last command)", NULL, 0, 255},
    END_OPTS,
};

const cli_command cli_commands[] = {
    {"start server", "Server lifecycle", "Start a server (agated) in the background and wait until it answers",
     start_server_opts, cmd_start_server, 0,
     "The daemon is agated next to this agate binary, else on PATH; $AGATE_DAEMON overrides.\n"
     "Its output goes to DIR/NAME.out, its log to DIR/NAME.log.\n"
     "Example:\n"
     "  agate start server --name=s1 --dir=/var/lib/agate/s1 --port=40404"},
    {"status server", "Server lifecycle", "Show whether a server is running and its statistics",
     status_server_opts, cmd_status_server, 0,
     "Reads DIR/agated.status; exits 0 only when the process runs and answers a ping.\n"
     "With --server instead of --name/--dir, asks that server over the network.\n"
     "Example:\n"
     "  agate status server --dir=./s1"},
    {"stop server", "Server lifecycle", "Stop a server: SIGTERM, then SIGKILL after the timeout",
     stop_server_opts, cmd_stop_server, 0,
     "A member of a cluster first hands its buckets over (graceful leave).\n"
     "Example:\n"
     "  agate stop server --dir=./s1 --timeout=10"},
    {"start locator", "Locator lifecycle", "Start a locator (agated --role=locator) and wait until it answers",
     start_locator_opts, cmd_start_locator, 0,
     "A locator is the cluster's front door and coordinator; it holds no data.\n"
     "Servers join it with start server --locators=HOST[PORT]; clients and the\n"
     "cluster commands use --locator=HOST[PORT].\n"
     "Its output goes to DIR/NAME.out, its log to DIR/NAME.log.\n"
     "Example:\n"
     "  agate start locator --name=locator1 --dir=/var/lib/agate/locator1 --port=10334"},
    {"status locator", "Locator lifecycle", "Show whether a locator is running and its cluster's size",
     status_locator_opts, cmd_status_locator, 0,
     "Reads DIR/agated.status; exits 0 only when the process runs and answers a ping.\n"
     "With --locator instead of --name/--dir, asks that locator over the network.\n"
     "Example:\n"
     "  agate status locator --dir=./locator1"},
    {"stop locator", "Locator lifecycle", "Stop a locator: SIGTERM, then SIGKILL after the timeout",
     stop_locator_opts, cmd_stop_locator, 0,
     "The members keep serving without it, but membership changes wait for it.\n"
     "Example:\n"
     "  agate stop locator --dir=./locator1"},
    {"list members", "Cluster", "List the members of the cluster", no_opts, cmd_list_members, 0,
     "Asks the locator (--locator, $AGATE_LOCATOR, else " CLI_DEFAULT_LOCATOR ").\n"
     "Counts per member are at most one heartbeat old.\n"
     "Example:\n"
     "  agate list members --locator=127.0.0.1[10334]"},
    {"describe member", "Cluster", "Show a member's details and its share of each region",
     describe_member_opts, cmd_describe_member, 0,
     "Example:\n  agate describe member --name=s1 --locator=127.0.0.1[10334]"},
    {"status cluster", "Cluster", "Show the cluster's view, members, regions and redundancy",
     no_opts, cmd_status_cluster, 0,
     "Example:\n  agate status cluster --locator=127.0.0.1[10334]"},
    {"status redundancy", "Cluster", "Show whether each region has all its redundant copies",
     status_redundancy_opts, cmd_status_redundancy, 0,
     "Per region: redundant copies, buckets without a primary, buckets below\n"
     "redundancy, and the state: satisfied, reduced (some bucket lacks a copy) or\n"
     "lost (some bucket has no copy at all).\n"
     "Exit status: 0 when every region shown is satisfied, 1 when one is not (or\n"
     "on an error), 2 on a usage error.\n"
     "Example:\n  agate status redundancy --region=orders"},
    {"rebalance", "Cluster", "Even out buckets and primaries over the members",
     rebalance_opts, cmd_rebalance, 0,
     "Moves copies first and drops old ones after, so redundancy never drops.\n"
     "Shows a progress bar (moves done of planned) on a terminal, then the moves\n"
     "per region and each member's bucket and primary counts before -> after.\n"
     "Examples:\n"
     "  agate rebalance --simulate\n"
     "  agate rebalance --locator=10.0.0.5[10334]"},
    {"shutdown", "Cluster", "Stop every server of the cluster (all data in memory is lost)",
     shutdown_opts, cmd_shutdown, 0,
     "Nothing is moved: the servers just stop. Prints how many members were told to\n"
     "stop; they exit shortly after.\n"
     "Example:\n  agate shutdown --include-locators"},
    {"create region", "Regions", "Create a region", create_region_opts, cmd_create_region, 0,
     "Types: PARTITION, PARTITION_REDUNDANT, PARTITION_PERSISTENT,\n"
     "PARTITION_REDUNDANT_PERSISTENT, REPLICATE, REPLICATE_PERSISTENT.\n"
     "Example:\n"
     "  agate create region --name=orders --type=PARTITION --total-num-buckets=271"},
    {"destroy region", "Regions", "Destroy a region and all its entries", destroy_region_opts,
     cmd_destroy_region, 0, "Example:\n  agate destroy region --name=orders"},
    {"list regions", "Regions", "List the regions", no_opts, cmd_list_regions, 0, NULL},
    {"describe region", "Regions", "Show a region's settings, size and buckets per member",
     region_name_opts, cmd_describe_region, 0, "Example:\n  agate describe region --name=orders"},
    {"clear region", "Regions", "Remove every entry of a region (the region stays)",
     region_name_opts, cmd_clear_region, 0, NULL},
    {"create index", "Indexes", "Create an index on a region's values, built over its entries",
     create_index_opts, cmd_create_index, 0,
     "The expression is a path into each entry's value, written as in a WHERE without\n"
     "an alias: status, customer.city, items[0], customer['first name']. Queries whose\n"
     "WHERE has path = c, path IN (...) or a range on path (range indexes) read only the\n"
     "matching entries; --explain names the index. On a cluster the definition goes to\n"
     "the locator and every member, also later ones, indexes its buckets.\n"
     "Examples:\n"
     "  agate create index --name=byStatus --region=orders --expression=status --type=hash\n"
     "  agate create index --name=byTotal --region=orders --expression=total"},
    {"destroy index", "Indexes", "Destroy an index (queries scan again)", destroy_index_opts,
     cmd_destroy_index, 0, "Example:\n  agate destroy index --name=byStatus --region=orders"},
    {"list indexes", "Indexes", "List indexes: expression, type, entries, memory, validity",
     list_indexes_opts, cmd_list_indexes, 0,
     "An index shown as not valid ran out of memory while being kept up to date: queries\n"
     "no longer use it; destroy it and create it again."},
    {"put", "Entries", "Put one entry", put_opts, cmd_put, 0,
     "Exactly one of --key and --key-base64 is required.\n"
     "Examples:\n"
     "  agate put --region=orders --key=o1 --value='{\"qty\": 3, \"tags\": [\"a\"]}'\n"
     "  agate put --region=orders --key=o2 --value='\"just a string\"'"},
    {"get", "Entries", "Print an entry's value as JSON", key_opts, cmd_get, 0,
     "With --json: {\"key\": ..., \"value\": ..., \"version\": {\"member_id\": ..., \"counter\": ...}}.\n"
     "A missing key is an error (exit 1)."},
    {"remove", "Entries", "Remove an entry", key_opts, cmd_remove, 0,
     "A missing key is an error (exit 1)."},
    {"size", "Entries", "Print the number of entries in a region", size_opts, cmd_size, 0, NULL},
    {"keys", "Entries", "Print a region's keys, one per line", keys_opts, cmd_keys, 0,
     "Keys that are not printable UTF-8 are shown as base64:<...>."},
    {"import data", "Data", "Load entries from a JSON Lines file", import_opts, cmd_import_data, 0,
     "Each line: {\"key\": \"k\", \"value\": <any JSON>}; the key may be a number\n"
     "(stored as its decimal text), or given as \"key_base64\" for binary keys.\n"
     "Blank lines are ignored. A bad line stops the import (exit 1) unless --skip-bad.\n"
     "Example:\n"
     "  agate import data --region=orders --file=orders.jsonl --batch-size=5000"},
    {"export data", "Data", "Write all entries of a region to a JSON Lines file", export_opts,
     cmd_export_data, 0,
     "Writes the format import data reads; keys that are not UTF-8 as key_base64.\n"
     "Example:\n"
     "  agate export data --region=orders --file=orders.jsonl"},
    {"query", "Queries", "Run a query (SELECT ... FROM /region ...) and print its rows",
     query_opts, cmd_query, 0,
     "The language is described in docs/query.md. Each cell is the value as compact\n"
     "JSON, as get prints values (strings in quotes), followed by a summary line:\n"
     "  N rows (M matched, scanned S entries in X ms)\n"
     "With --json: an array of row objects {\"column\": value, ...} (a repeated column\n"
     "name gets _2, _3, ...). A query that does not parse is shown with a caret under\n"
     "the place of the problem (exit 1).\n"
     "Rows are fetched and printed a page at a time (--page-size rows, each page its\n"
     "own table), so a result of any size streams through. Ctrl-C cancels the query\n"
     "on the server too (exit 130).\n"
     "Examples:\n"
     "  agate query --query='SELECT o.id, o.total FROM /orders o WHERE o.total > 100 ORDER BY o.total DESC LIMIT 10'\n"
     "  agate query --query='SELECT status, COUNT(*) AS n FROM /orders GROUP BY status'\n"
     "  agate query --query='SELECT * FROM /orders WHERE status = $1 AND total > $2' --param='\"paid\"' --param=50"},
    {"watch", "Queries", "Run a continuous query and print its events as they happen",
     watch_opts, cmd_watch, 0,
     "One line per event: OP KEY VALUE, OP one of CREATE (entered the result), UPDATE\n"
     "(changed inside it), DESTROY (left it; no value), CLEAR (a bucket was cleared),\n"
     "INITIAL (--initial: matching at the start), GAP (events of a bucket may have been\n"
     "lost) and ERROR (the query ended). With --json: one compact JSON object per line\n"
     "{\"op\", \"key\", \"value\", \"bucket\", \"seq\"}. Runs until Ctrl-C, --count events\n"
     "or --timeout seconds (exit 0); on a cluster it follows failovers and new members.\n"
     "Examples:\n"
     "  agate watch --query='SELECT * FROM /orders o WHERE o.total > 100'\n"
     "  agate watch --region=orders --initial --json --count=10"},
    {"list cqs", "Queries", "List the continuous queries registered on the servers", no_opts,
     cmd_list_cqs, 0,
     "One row per CQ and member: its id on that member, name, region, the client's name\n"
     "and address, the primary buckets it serves there, events sent and queued."},
    {"connect", "Shell", "Connect to a server or a cluster (in the shell: for the following commands)",
     connect_opts, cmd_connect, 0,
     "Examples (shell):\n  connect --server=10.0.0.5:40404\n  connect --locator=10.0.0.5[10334]"},
    {"disconnect", "Shell", "Close the shell's connection", no_opts, cmd_disconnect, CMD_SHELL_ONLY, NULL},
    {"help", "Shell", "Show the commands, or the usage of one: help <command>", no_opts, cmd_help,
     CMD_POSITIONAL, NULL},
    {"version", "Shell", "Print the version", no_opts, cmd_version, 0, NULL},
    {"exit", "Shell", "Leave the shell", exit_opts, cmd_exit, CMD_SHELL_ONLY, NULL},
    {"quit", "Shell", "Leave the shell", exit_opts, cmd_exit, CMD_SHELL_ONLY, NULL},
    {NULL, NULL, NULL, NULL, NULL, 0, NULL},
};

const cli_command *cli_find(const char *name)
{
    for (const cli_command *c = cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

/* ---- usage and help --------------------------------------------------- */

/* Whether help hints should read "agate help" or just "help". Set per
 * command by cli_execute; messages are printed deep inside the parser. */
static bool hints_for_shell;

static void opt_synopsis(const cli_opt *o, char *out, size_t cap)
{
    if (o->type == OPT_BOOL)
        snprintf(out, cap, "--%s", o->name);
    else
        snprintf(out, cap, "--%s=%s", o->name, o->metavar ? o->metavar : "VALUE");
}

/* Writes an option's choices "a|b|c" as "a, b, c" into out (truncated to
 * cap). */
static void format_choices(const char *choices, char *out, size_t cap)
{
    size_t k = 0;
    for (const char *p = choices; *p && k + 3 < cap; p++) {
        if (*p == '|') {
            out[k++] = ',';
            out[k++] = ' ';
        } else {
            out[k++] = *p;
        }
    }
    out[k] = 0;
}

static void print_opt_lines(const cli_opt *opts, FILE *fp)
{
    for (const cli_opt *o = opts; o->name; o++) {
        char syn[64];
        opt_synopsis(o, syn, sizeof syn);
        fprintf(fp, "  %-28s %s%s\n", syn, o->help, o->required ? " (required)" : "");
        if (o->choices) {
            char list[512];
            format_choices(o->choices, list, sizeof list);
            fprintf(fp, "  %-28s one of: %s\n", "", list);
        }
    }
}

static void usage_line(const cli_command *cmd, FILE *fp)
{
    fprintf(fp, "Usage: agate %s", cmd->name);
    for (const cli_opt *o = cmd->opts; o->name; o++) {
        char syn[64];
        opt_synopsis(o, syn, sizeof syn);
        fprintf(fp, o->required ? " %s%s" : " [%s]%s", syn, o->type == OPT_LIST ? "..." : "");
    }
    if (cmd->flags & CMD_POSITIONAL)
        fputs(" [COMMAND]", fp);
    fputc('\n', fp);
}

/* The short form after a usage error: the synopsis and where to read more. */
static void print_synopsis(const cli_command *cmd, FILE *fp)
{
    usage_line(cmd, fp);
    fprintf(fp, "Run '%s%s --help' for the options.\n", hints_for_shell ? "" : "agate ", cmd->name);
}

void cli_print_usage(const cli_command *cmd, FILE *fp)
{
    usage_line(cmd, fp);
    fprintf(fp, "%s.%s\n", cmd->summary,
            cmd->flags & CMD_SHELL_ONLY ? " (Only in the shell.)" : "");
    if (cmd->opts[0].name) {
        fputs("Options:\n", fp);
        print_opt_lines(cmd->opts, fp);
    }
    fputs("Global options:\n", fp);
    print_opt_lines(cli_global_opts, fp);
    if (cmd->details)
        fprintf(fp, "%s\n", cmd->details);
}

void cli_print_help(FILE *fp, bool in_shell)
{
    if (!in_shell)
        fputs("Usage: agate [--server=HOST:PORT | --locator=HOST[PORT]] [--json] COMMAND [OPTIONS]\n"
              "       agate [--server=HOST:PORT | --locator=HOST[PORT]]    (interactive shell)\n"
              "Admin tool for Agate servers and clusters.\n",
              fp);
    const char *group = NULL;
    for (const cli_command *c = cli_commands; c->name; c++) {
        if ((c->flags & CMD_SHELL_ONLY) && !in_shell)
            continue;
        if (!group || strcmp(group, c->group) != 0) {
            group = c->group;
            fprintf(fp, "\n%s:\n", group);
        }
        fprintf(fp, "  %-18s %s\n", c->name, c->summary);
    }
    fputs("\nGlobal options (every command):\n", fp);
    print_opt_lines(cli_global_opts, fp);
    if (!in_shell)
        fputs("  --version                    print the version\n", fp);
    fprintf(fp, "\nRun '%shelp COMMAND' or '%sCOMMAND --help' for a command's options.\n"
                "Exit status: 0 success, 1 error, 2 usage error.\n",
            in_shell ? "" : "agate ", in_shell ? "" : "agate ");
}

int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_verr(fmt, ap);
    va_end(ap);
    if (cmd)
        print_synopsis(cmd, stderr);
    else
        fprintf(stderr, "Run '%shelp' for the list of commands.\n", hints_for_shell ? "" : "agate ");
    return EXIT_USAGE;
}

/* ---- parsing ---------------------------------------------------------- */

static int opt_index(const cli_opt *opts, const char *name, size_t n)
{
    for (int i = 0; opts[i].name; i++)
        if (strlen(opts[i].name) == n && strncmp(opts[i].name, name, n) == 0)
            return i;
    return -1;
}

/* Parses a number with an optional K/M/G suffix (OPT_SIZE) into *out.
 * Returns 0 or -1. */
static int parse_number(const char *s, bool suffixes, long long *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == ' ')
        return -1;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s)
        return -1;
    if (suffixes && *end) {
        int shift = 0;
        switch (*end) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        default: return -1;
        }
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (v < 0 || v > (LLONG_MAX >> shift))
            return -1;
        v <<= shift;
    }
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, long long *out)
{
    if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcmp(s, "1") || !strcasecmp(s, "on"))
        *out = 1;
    else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcmp(s, "0") || !strcasecmp(s, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}

static bool in_choices(const char *choices, const char *v)
{
    size_t n = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncasecmp(p, v, n) == 0)
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

/* Checks and stores one option value. Returns 0 or EXIT_USAGE. */
static int set_value(cli_args *a, const cli_command *cmd, const cli_opt *o, int idx, bool global,
                     const char *val)
{
    long long num = 0;
    if (o->type == OPT_BOOL) {
        if (parse_bool(val, &num))
            return cli_usage_error(cmd, "option --%s expects true or false, not '%s'", o->name, val);
    } else if (o->type == OPT_INT || o->type == OPT_SIZE) {
        if (parse_number(val, o->type == OPT_SIZE, &num))
            return cli_usage_error(cmd, "option --%s expects a number, not '%s'", o->name, val);
        if (o->min < o->max && (num < o->min || num > o->max))
            return cli_usage_error(cmd, "option --%s must be between %lld and %lld, not %s", o->name,
                                   o->min, o->max, val);
    } else if (o->choices && !in_choices(o->choices, val)) {
        char list[512];
        format_choices(o->choices, list, sizeof list);
        return cli_usage_error(cmd, "option --%s: '%s' is not one of: %s", o->name, val, list);
    }
    if (global) {
        if (strcmp(o->name, "server") == 0 || strcmp(o->name, "locator") == 0) {
            bool locator = o->name[0] == 'l';
            if ((locator ? a->locator : a->server) != NULL)
                return cli_usage_error(cmd, "option --%s given more than once", o->name);
            if (locator ? a->server : a->locator)
                return cli_usage_error(cmd, "give either --server or --locator, not both");
            if (!*val)
                return cli_usage_error(cmd, "option --%s needs %s", o->name,
                                       locator ? "HOST[PORT]" : "HOST:PORT");
            char err[300];
            if (locator && locators_check(val, err, sizeof err) != 0)
                return cli_usage_error(cmd, "option --locator: %s", err);
            *(locator ? &a->locator : &a->server) = val;
        } else if (strcmp(o->name, "json") == 0) {
            a->json = num != 0;
        } else {
            a->help = num != 0;
        }
        return 0;
    }
    if (o->type == OPT_LIST) {
        if (a->nrep == CLI_MAX_REPEAT)
            return cli_usage_error(cmd, "option --%s given more than %d times", o->name,
                                   CLI_MAX_REPEAT);
        a->rep[a->nrep] = val;
        a->rep_opt[a->nrep++] = (unsigned char)idx;
        if (!a->val[idx])
            a->val[idx] = val;
        a->num[idx]++;
        return 0;
    }
    if (a->val[idx])
        return cli_usage_error(cmd, "option --%s given more than once", o->name);
    a->val[idx] = val;
    a->num[idx] = num;
    return 0;
}

/* Parses one option word at argv[*i] (which starts with '-'). Advances *i
 * past a separate value word when it takes one. Returns 0 or EXIT_USAGE. */
static int parse_option(cli_args *a, const cli_command *cmd, int argc, char **argv, int *i)
{
    const char *w = argv[*i];
    if (strcmp(w, "-h") == 0) {
        a->help = true;
        return 0;
    }
    if (!cmd && strcmp(w, "--version") == 0) {
        a->version = true;
        return 0;
    }
    if (strncmp(w, "--", 2) != 0 || w[2] == 0 || w[2] == '=')
        return cli_usage_error(cmd, "unexpected argument '%s'", w);
    const char *name = w + 2;
    const char *eq = strchr(name, '=');
    size_t n = eq ? (size_t)(eq - name) : strlen(name);
    int idx = cmd ? opt_index(cmd->opts, name, n) : -1;
    bool global = false;
    const cli_opt *o;
    if (idx >= 0) {
        o = &cmd->opts[idx];
    } else {
        idx = opt_index(cli_global_opts, name, n);
        if (idx < 0) {
            if (cmd)
                return cli_usage_error(cmd, "unknown option '--%.*s' for '%s'", (int)n, name, cmd->name);
            return cli_usage_error(NULL, "unknown option '--%.*s'", (int)n, name);
        }
        o = &cli_global_opts[idx];
        global = true;
    }
    const char *val;
    if (eq) {
        val = eq + 1;
    } else if (o->type == OPT_BOOL) {
        val = "true";
    } else if (*i + 1 < argc) {
        val = argv[++*i];
    } else {
        return cli_usage_error(cmd, "option --%s needs a value", o->name);
    }
    return set_value(a, cmd, o, idx, global, val);
}

/* True if the words of cmd's name start with the n-byte word w followed by
 * more words ("create" starts "create region"). */
static bool command_group_of(const cli_command *cmd, const char *w, size_t n)
{
    return strncmp(cmd->name, w, n) == 0 && cmd->name[n] == ' ';
}

/* The number of words of name (space separated) if argv[0..argc) starts
 * with all of them, else 0. */
static int match_words(const char *name, int argc, char **argv)
{
    int k = 0;
    for (const char *p = name; *p; k++) {
        const char *sp = strchr(p, ' ');
        size_t len = sp ? (size_t)(sp - p) : strlen(p);
        if (k >= argc || strlen(argv[k]) != len || strncmp(argv[k], p, len) != 0)
            return 0;
        p += len + (sp ? 1 : 0);
    }
    return k;
}

/* The command whose words start argv[0..argc), the longest if several do;
 * NULL if none. *nwords gets its number of words. */
static const cli_command *match_command(int argc, char **argv, int *nwords)
{
    const cli_command *best = NULL;
    *nwords = 0;
    for (const cli_command *c = cli_commands; c->name; c++) {
        int k = match_words(c->name, argc, argv);
        if (k > *nwords) {
            best = c;
            *nwords = k;
        }
    }
    return best;
}

/* Reports argv[0..argc) as an unknown command. A known first word with a
 * wrong or missing second one lists the commands it starts, which is what
 * the user was after. Returns EXIT_USAGE. */
static int unknown_command(int argc, char **argv)
{
    char hint[512] = "";
    size_t hl = 0, n0 = strlen(argv[0]);
    for (const cli_command *c = cli_commands; c->name; c++)
        if (command_group_of(c, argv[0], n0) && hl + 64 < sizeof hint)
            hl += (size_t)snprintf(hint + hl, sizeof hint - hl, "%s'%s'", hl ? ", " : "", c->name);
    if (!hl)
        return cli_usage_error(NULL, "unknown command '%s'", argv[0]);
    if (argc > 1 && argv[1][0] != '-')
        return cli_usage_error(NULL, "unknown command '%s %s'; did you mean %s?", argv[0], argv[1],
                               hint);
    return cli_usage_error(NULL, "incomplete command '%s'; did you mean %s?", argv[0], hint);
}

/* Parses the words after a's command words, argv[i..argc): its options,
 * and free words for a CMD_POSITIONAL command ("--" ends the options).
 * Returns 0 or EXIT_USAGE. */
static int parse_command_words(cli_args *a, int argc, char **argv, int i)
{
    const cli_command *cmd = a->cmd;
    bool only_words = false;
    for (; i < argc; i++) {
        const char *w = argv[i];
        if (!only_words && strcmp(w, "--") == 0) {
            only_words = true;
            continue;
        }
        if (!only_words && w[0] == '-' && w[1] != 0) {
            int rc = parse_option(a, cmd, argc, argv, &i);
            if (rc)
                return rc;
            continue;
        }
        if (!(cmd->flags & CMD_POSITIONAL))
            return cli_usage_error(cmd, "unexpected argument '%s' for '%s'", w, cmd->name);
        if (!a->pos)
            a->pos = argv + i;
        a->npos++;
    }
    return 0;
}

int cli_parse(int argc, char **argv, cli_args *a)
{
    memset(a, 0, sizeof(*a));
    int i = 0;
    /* global options before the command words */
    for (; i < argc && argv[i][0] == '-'; i++) {
        int rc = parse_option(a, NULL, argc, argv, &i);
        if (rc)
            return rc;
    }
    if (i == argc)
        return 0;
    int nwords;
    a->cmd = match_command(argc - i, argv + i, &nwords);
    if (!a->cmd)
        return unknown_command(argc - i, argv + i);
    return parse_command_words(a, argc, argv, i + nwords);
}

/* Positional words must be contiguous for a->pos to describe them; they are
 * for `help`, whose words never mix with options in practice, so the parser
 * above only records the first run. Checked here to stay honest. */
static bool positional_contiguous(const cli_args *a, int argc, char **argv)
{
    if (!a->pos)
        return true;
    for (int k = 0; k < a->npos; k++) {
        if (a->pos + k >= argv + argc || a->pos[k][0] == '-')
            return false;
    }
    return true;
}

int cli_execute(cli_ctx *ctx, int argc, char **argv)
{
    cli_args a;
    hints_for_shell = ctx->in_shell;
    int rc = cli_parse(argc, argv, &a);
    if (rc)
        return rc;
    if (!a.cmd) {
        cli_print_help(stdout, ctx->in_shell);
        return a.help ? EXIT_OK : EXIT_USAGE;
    }
    if (!positional_contiguous(&a, argc, argv))
        return cli_usage_error(a.cmd, "options must come after the command words");
    if (a.help) {
        cli_print_usage(a.cmd, stdout);
        return EXIT_OK;
    }
    if ((a.cmd->flags & CMD_SHELL_ONLY) && !ctx->in_shell) {
        cli_err("'%s' is only available in the interactive shell (run agate without arguments)",
                a.cmd->name);
        return EXIT_USAGE;
    }
    for (int k = 0; a.cmd->opts[k].name; k++)
        if (a.cmd->opts[k].required && !a.val[k])
            return cli_usage_error(a.cmd, "missing required option --%s", a.cmd->opts[k].name);
    return a.cmd->handler(ctx, &a);
}

/* ---- accessors -------------------------------------------------------- */

static int must_index(const cli_args *a, const char *name)
{
    int i = opt_index(a->cmd->opts, name, strlen(name));
    if (i < 0) {
        /* A handler asked for an option its table entry lacks: a bug. */
        fprintf(stderr, "agate: internal error: '%s' has no option --%s\n", a->cmd->name, name);
        abort();
    }
    return i;
}

const cli_opt *cli_opt_of(const cli_args *a, const char *name)
{
    return &a->cmd->opts[must_index(a, name)];
}

const char *cli_str(const cli_args *a, const char *name) { return a->val[must_index(a, name)]; }

const char *cli_str_or(const cli_args *a, const char *name, const char *def)
{
    const char *v = cli_str(a, name);
    return v ? v : def;
}

long long cli_int(const cli_args *a, const char *name, long long def)
{
    int i = must_index(a, name);
    return a->val[i] ? a->num[i] : def;
}

bool cli_flag(const cli_args *a, const char *name)
{
    int i = must_index(a, name);
    return a->val[i] && a->num[i];
}

bool cli_has(const cli_args *a, const char *name) { return a->val[must_index(a, name)] != NULL; }

int cli_count(const cli_args *a, const char *name)
{
    int i = must_index(a, name);
    return a->val[i] ? (int)a->num[i] : 0;
}

const char *cli_nth(const cli_args *a, const char *name, int n)
{
    int i = must_index(a, name);
    for (int k = 0; k < a->nrep; k++)
        if (a->rep_opt[k] == i && n-- == 0)
            return a->rep[k];
    return NULL;
}

void cli_join_words(char **words, int n, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? " " : "", words[i]);
}

/* ---- small commands --------------------------------------------------- */

int cmd_help(cli_ctx *ctx, const cli_args *a)
{
    if (a->npos == 0) {
        cli_print_help(stdout, ctx->in_shell);
        return EXIT_OK;
    }
    char name[256];
    cli_join_words(a->pos, a->npos, name, sizeof name);
    const cli_command *c = cli_find(name);
    if (!c) {
        /* "help create" lists the commands starting with that word */
        bool any = false;
        size_t len = strlen(name);
        for (const cli_command *x = cli_commands; x->name; x++) {
            if (command_group_of(x, name, len)) {
                if (!any)
                    printf("Commands starting with '%s':\n", name);
                printf("  %-18s %s\n", x->name, x->summary);
                any = true;
            }
        }
        if (any)
            return EXIT_OK;
        cli_err("unknown command '%s'; run 'help' for the list", name);
        return EXIT_USAGE;
    }
    cli_print_usage(c, stdout);
    return EXIT_OK;
}

int cmd_version(cli_ctx *ctx, const cli_args *a)
{
    if (a->json)
        return json_print_object(stdout, JSON_FIELDS(JF_STR("agate", AGATE_VERSION_STRING)));
    printf("agate %s\n", AGATE_VERSION_STRING);
    return EXIT_OK;
}

int cmd_exit(cli_ctx *ctx, const cli_args *a)
{
    ctx->quit = true;
    ctx->quit_code = (int)cli_int(a, "code", -1);
    return EXIT_OK;
}
