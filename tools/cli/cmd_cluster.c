/* cmd_cluster.c - list members, describe member, status cluster, status
 * redundancy, rebalance, shutdown.
 *
 * Each asks the cluster's locator through one of libagate's admin calls,
 * which return MessagePack documents (member info maps, the cluster status
 * map, the rebalance status map: docs/cluster.md). --json prints the
 * document as JSON; the text output reads it with doc.h, showing "-" for
 * a field the locator did not send. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/cli/cli.h"
#include "tools/cli/doc.h"
#include "tools/cli/output.h"
#include "tools/cli/progress.h"

/* How often rebalance asks for the rebalance's status. */
#define REBALANCE_POLL_MS 200

/* ---- shared ------------------------------------------------------------ */

/* Ends a cluster command's use of c after its call returned rc: on failure
 * prints the library's message (and, when c talks to a stand-alone server
 * that did not understand the request, what to do instead), then releases
 * c. Returns EXIT_ERR when rc < 0, else EXIT_OK. */
static int cluster_finish(cli_ctx *ctx, agate_client *c, int rc)
{
    if (rc < 0) {
        cli_fail(c, rc, NULL);
        if (rc == AGATE_EBAD_REQUEST && !agate_is_cluster(c))
            fprintf(stderr, "agate: hint: %s is a stand-alone server, not a member of a cluster; "
                            "give the cluster's locator with --locator=HOST[PORT]\n",
                    agate_server_address(c) ? agate_server_address(c) : "the server");
    }
    cli_release(ctx, c);
    return rc < 0 ? EXIT_ERR : EXIT_OK;
}

/* Checks that an admin document is a map (want_map) or an array; else
 * reports it as an unexpected reply. Returns EXIT_OK or EXIT_ERR. */
static int check_doc(const agate_buf *doc, bool want_map, const char *what)
{
    mp_cursor root = doc_root(doc);
    if (want_map ? doc_is_map(root) : doc_is_array(root))
        return EXIT_OK;
    cli_err("unexpected reply from the cluster: %s is not %s", what, want_map ? "a map" : "an array");
    return EXIT_ERR;
}

typedef int (*admin_call)(agate_client *c, agate_buf *out);

/* Connects to the cluster, makes one admin call into *doc and checks the
 * document's shape. Returns EXIT_OK with *doc set (free it), or EXIT_ERR
 * after the message. */
static int fetch_doc(cli_ctx *ctx, const cli_args *a, admin_call call, bool want_map,
                     const char *what, agate_buf *doc)
{
    memset(doc, 0, sizeof(*doc));
    agate_client *c = cli_connect_cluster(ctx, a);
    if (!c)
        return EXIT_ERR;
    if (cluster_finish(ctx, c, call(c, doc)) != EXIT_OK ||
        check_doc(doc, want_map, what) != EXIT_OK) {
        agate_buf_free(doc);
        return EXIT_ERR;
    }
    return EXIT_OK;
}

/* "host:port" of a member info map, "-" when it lacks them. */
static void member_address(mp_cursor m, char *out, size_t cap)
{
    char host[128];
    uint64_t port;
    if (doc_get_str(m, "host", host, sizeof host) && doc_get_uint(m, "port", &port))
        snprintf(out, cap, "%s:%llu", host, (unsigned long long)port);
    else
        snprintf(out, cap, "-");
}

/* The str under key, "-" when absent. */
static void str_cell(mp_cursor obj, const char *key, char *out, size_t cap)
{
    if (!doc_get_str(obj, key, out, cap))
        snprintf(out, cap, "-");
}

/* Prints a table of member info maps (list members, status cluster):
 * name, role, member id, address, status, buckets, primaries, entries. */
static void print_member_table(doc_iter it)
{
    static const char *headers[] = {"NAME",   "ROLE",    "MEMBER ID", "ADDRESS",
                                    "STATUS", "BUCKETS", "PRIMARIES", "ENTRIES"};
    static const bool right[] = {false, false, true, false, false, true, true, true};
    table_t t;
    table_init(&t, 8, headers, right);
    mp_cursor m;
    while (doc_next(&it, &m)) {
        char cell[160];
        str_cell(m, "name", cell, sizeof cell);
        table_cell(&t, "%s", cell);
        str_cell(m, "role", cell, sizeof cell);
        table_cell(&t, "%s", cell);
        doc_get_cell(m, "member_id", false, cell, sizeof cell);
        table_cell(&t, "%s", cell);
        member_address(m, cell, sizeof cell);
        table_cell(&t, "%s", cell);
        str_cell(m, "status", cell, sizeof cell);
        table_cell(&t, "%s", cell);
        doc_get_cell(m, "buckets", true, cell, sizeof cell);
        table_cell(&t, "%s", cell);
        doc_get_cell(m, "primary_buckets", true, cell, sizeof cell);
        table_cell(&t, "%s", cell);
        doc_get_cell(m, "entries", true, cell, sizeof cell);
        table_cell(&t, "%s", cell);
    }
    table_print(&t, stdout);
    table_free(&t);
}

/* ---- list members ------------------------------------------------------ */

/* list members: a table of the cluster's members (MEMBER_LIST). */
int cmd_list_members(cli_ctx *ctx, const cli_args *a)
{
    agate_buf doc;
    if (fetch_doc(ctx, a, agate_member_list, false, "the member list", &doc) != EXIT_OK)
        return EXIT_ERR;
    int ret = EXIT_OK;
    doc_iter it;
    if (a->json)
        ret = doc_print_json(&doc);
    else if (!doc_array(doc_root(&doc), &it) || it.left == 0)
        printf("No members\n");
    else
        print_member_table(it);
    agate_buf_free(&doc);
    return ret;
}

/* ---- describe member ----------------------------------------------------- */

/* How a field of a member info map is shown. */
typedef enum field_format {
    FIELD_TEXT,  /* str */
    FIELD_UINT,  /* digits */
    FIELD_COUNT, /* 1,234 */
    FIELD_BYTES, /* 1.5 KiB (1536) */
    FIELD_AGE,   /* 120 ms ago */
} field_format;

typedef struct doc_field {
    const char *key;
    const char *label;
    field_format format;
} doc_field;

/* Adds the fields of obj that fields lists, and that obj has, to t as
 * "label: value" rows. */
static void add_field_rows(table_t *t, mp_cursor obj, const doc_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const doc_field *f = &fields[i];
        char v[256];
        uint64_t u;
        if (f->format == FIELD_TEXT) {
            if (doc_get_str(obj, f->key, v, sizeof v))
                table_pair(t, f->label, "%s", v);
            continue;
        }
        if (!doc_get_uint(obj, f->key, &u))
            continue;
        if (f->format == FIELD_COUNT) {
            fmt_count(u, v, sizeof v);
            table_pair(t, f->label, "%s", v);
        } else if (f->format == FIELD_BYTES) {
            fmt_bytes(u, v, sizeof v);
            table_pair(t, f->label, "%s (%llu)", v, (unsigned long long)u);
        } else if (f->format == FIELD_AGE) {
            table_pair(t, f->label, "%llu ms ago", (unsigned long long)u);
        } else {
            table_pair(t, f->label, "%llu", (unsigned long long)u);
        }
    }
}

/* Prints a member info map as "Label: value" lines. */
static void print_member_fields(mp_cursor m)
{
    static const doc_field head[] = {
        {"name", "Name:", FIELD_TEXT},
        {"member_id", "Member ID:", FIELD_UINT},
        {"role", "Role:", FIELD_TEXT},
    };
    static const doc_field tail[] = {
        {"pid", "PID:", FIELD_UINT},
        {"dir", "Directory:", FIELD_TEXT},
        {"status", "Status:", FIELD_TEXT},
        {"joined_view", "Joined view:", FIELD_UINT},
        {"heartbeat_age_ms", "Last heartbeat:", FIELD_AGE},
        {"buckets", "Buckets:", FIELD_COUNT},
        {"primary_buckets", "Primary buckets:", FIELD_COUNT},
        {"entries", "Entries:", FIELD_COUNT},
        {"bytes", "Bytes:", FIELD_BYTES},
    };
    table_t t;
    table_init(&t, 2, NULL, NULL);
    add_field_rows(&t, m, head, sizeof head / sizeof head[0]);
    char addr[160];
    member_address(m, addr, sizeof addr);
    table_pair(&t, "Address:", "%s", addr);
    add_field_rows(&t, m, tail, sizeof tail / sizeof tail[0]);
    table_print(&t, stdout);
    table_free(&t);
}

/* Prints a member's share of each region (its "regions" array) as a table,
 * after a blank line; nothing when it holds none. */
static void print_member_regions(mp_cursor m)
{
    doc_iter it;
    if (!doc_get_array(m, "regions", &it) || it.left == 0)
        return;
    static const char *headers[] = {"REGION", "BUCKETS", "PRIMARIES", "ENTRIES", "BYTES"};
    static const bool right[] = {false, true, true, true, true};
    table_t t;
    table_init(&t, 5, headers, right);
    mp_cursor r;
    while (doc_next(&it, &r)) {
        char cell[160];
        uint64_t bytes;
        str_cell(r, "name", cell, sizeof cell);
        table_cell(&t, "%s", cell);
        doc_get_cell(r, "buckets", true, cell, sizeof cell);
        table_cell(&t, "%s", cell);
        doc_get_cell(r, "primary_buckets", true, cell, sizeof cell);
        table_cell(&t, "%s", cell);
        doc_get_cell(r, "entries", true, cell, sizeof cell);
        table_cell(&t, "%s", cell);
        if (doc_get_uint(r, "bytes", &bytes))
            fmt_bytes(bytes, cell, sizeof cell);
        else
            snprintf(cell, sizeof cell, "-");
        table_cell(&t, "%s", cell);
    }
    printf("\n");
    table_print(&t, stdout);
    table_free(&t);
}

/* describe member: one member's info map (MEMBER_DESCRIBE). */
int cmd_describe_member(cli_ctx *ctx, const cli_args *a)
{
    const char *name = cli_str(a, "name");
    if (!*name)
        return cli_usage_error(a->cmd, "--name must not be empty");
    agate_client *c = cli_connect_cluster(ctx, a);
    if (!c)
        return EXIT_ERR;
    agate_buf doc = {0};
    if (cluster_finish(ctx, c, agate_member_describe(c, name, &doc)) != EXIT_OK) {
        agate_buf_free(&doc);
        return EXIT_ERR;
    }
    int ret = check_doc(&doc, true, "the member info");
    if (ret == EXIT_OK && a->json) {
        ret = doc_print_json(&doc);
    } else if (ret == EXIT_OK) {
        print_member_fields(doc_root(&doc));
        print_member_regions(doc_root(&doc));
    }
    agate_buf_free(&doc);
    return ret;
}

/* ---- status cluster / status redundancy ------------------------------- */

/* The redundancy state of a region of the cluster status: its
 * "redundancy" field, or when absent what its counts imply. */
static void region_redundancy(mp_cursor r, char *out, size_t cap)
{
    if (doc_get_str(r, "redundancy", out, cap))
        return;
    uint64_t no_primary, below;
    if (!doc_get_uint(r, "buckets_without_primary", &no_primary) ||
        !doc_get_uint(r, "buckets_below_redundancy", &below))
        snprintf(out, cap, "-");
    else
        snprintf(out, cap, "%s", no_primary ? "lost" : below ? "reduced" : "satisfied");
}

/* The next region of it that is called only (any region when only is
 * NULL) into *r. */
static bool next_region(doc_iter *it, const char *only, mp_cursor *r)
{
    while (doc_next(it, r)) {
        char name[160];
        if (!only || (doc_get_str(*r, "name", name, sizeof name) && strcmp(name, only) == 0))
            return true;
    }
    return false;
}

/* Counts the regions of it that next_region yields (*shown) and those
 * among them whose redundancy is not "satisfied" (*unsatisfied). */
static void count_redundancy(doc_iter it, const char *only, int *shown, int *unsatisfied)
{
    *shown = *unsatisfied = 0;
    mp_cursor r;
    while (next_region(&it, only, &r)) {
        char state[32];
        region_redundancy(r, state, sizeof state);
        (*shown)++;
        if (strcmp(state, "satisfied") != 0)
            (*unsatisfied)++;
    }
}

/* Prints the regions of a cluster status (only the one called only, when
 * only is not NULL) as a table with their redundancy, and with their
 * entries when with_entries. */
static void print_region_redundancy(doc_iter it, const char *only, bool with_entries)
{
    static const char *headers[] = {"REGION",     "TYPE",       "COPIES", "BUCKETS",
                                    "NO PRIMARY", "BELOW REDUNDANCY", "REDUNDANCY", "ENTRIES"};
    static const bool right[] = {false, false, true, true, true, true, false, true};
    table_t t;
    table_init(&t, with_entries ? 8 : 7, headers, right);
    mp_cursor r;
    while (next_region(&it, only, &r)) {
        char cell[160];
        str_cell(r, "name", cell, sizeof cell);
        table_cell(&t, "%s", cell);
        str_cell(r, "type", cell, sizeof cell);
        table_cell(&t, "%s", cell);
        doc_get_cell(r, "redundant_copies", false, cell, sizeof cell);
        table_cell(&t, "%s", cell);
        doc_get_cell(r, "total_num_buckets", false, cell, sizeof cell);
        table_cell(&t, "%s", cell);
        doc_get_cell(r, "buckets_without_primary", false, cell, sizeof cell);
        table_cell(&t, "%s", cell);
        doc_get_cell(r, "buckets_below_redundancy", false, cell, sizeof cell);
        table_cell(&t, "%s", cell);
        region_redundancy(r, cell, sizeof cell);
        table_cell(&t, "%s", cell);
        if (with_entries) {
            doc_get_cell(r, "entries", true, cell, sizeof cell);
            table_cell(&t, "%s", cell);
        }
    }
    table_print(&t, stdout);
    table_free(&t);
}

/* "idle", "running: 12/40 moves", "done: 40 bucket moves, 12 primary moves"
 * from a rebalance status map. */
static void rebalance_summary(mp_cursor rb, char *out, size_t cap)
{
    char state[32];
    uint64_t done = 0, total = 0, bm = 0, pm = 0;
    if (!doc_get_str(rb, "state", state, sizeof state)) {
        snprintf(out, cap, "-");
        return;
    }
    doc_get_uint(rb, "done", &done);
    doc_get_uint(rb, "total", &total);
    doc_get_uint(rb, "bucket_moves", &bm);
    doc_get_uint(rb, "primary_moves", &pm);
    if (strcmp(state, "running") == 0)
        snprintf(out, cap, "running: %llu/%llu moves", (unsigned long long)done,
                 (unsigned long long)total);
    else if (strcmp(state, "done") == 0)
        snprintf(out, cap, "done: %llu bucket moves, %llu primary moves", (unsigned long long)bm,
                 (unsigned long long)pm);
    else
        snprintf(out, cap, "%s", state);
}

/* Prints the head of status cluster: view, versions, timeouts, locator,
 * rebalance. */
static void print_cluster_head(mp_cursor root)
{
    char v[256];
    uint64_t view = 0, version = 0, u;
    int64_t i;
    doc_get_uint(root, "view_id", &view);
    doc_get_uint(root, "metadata_version", &version);
    printf("Cluster view %llu, metadata version %llu\n", (unsigned long long)view,
           (unsigned long long)version);
    table_t t;
    table_init(&t, 2, NULL, NULL);
    if (doc_get_uint(root, "member_timeout_ms", &u))
        table_pair(&t, "Member timeout:", "%llu ms", (unsigned long long)u);
    if (doc_get_int(root, "recovery_delay_ms", &i)) {
        if (i < 0)
            table_pair(&t, "Recovery delay:", "disabled (no automatic recovery)");
        else
            table_pair(&t, "Recovery delay:", "%lld ms", (long long)i);
    }
    mp_cursor loc;
    if (doc_get(root, "locator", &loc) && doc_is_map(loc)) {
        char name[160], addr[160];
        str_cell(loc, "name", name, sizeof name);
        member_address(loc, addr, sizeof addr);
        if (doc_get_uint(loc, "pid", &u))
            table_pair(&t, "Locator:", "%s at %s (pid %llu)", name, addr, (unsigned long long)u);
        else
            table_pair(&t, "Locator:", "%s at %s", name, addr);
    }
    mp_cursor rb;
    if (doc_get(root, "rebalance", &rb) && doc_is_map(rb)) {
        rebalance_summary(rb, v, sizeof v);
        table_pair(&t, "Rebalance:", "%s", v);
    }
    table_print(&t, stdout);
    table_free(&t);
}

/* status cluster: the whole cluster status (CLUSTER_STATUS). */
int cmd_status_cluster(cli_ctx *ctx, const cli_args *a)
{
    agate_buf doc;
    if (fetch_doc(ctx, a, agate_cluster_status, true, "the cluster status", &doc) != EXIT_OK)
        return EXIT_ERR;
    if (a->json) {
        int ret = doc_print_json(&doc);
        agate_buf_free(&doc);
        return ret;
    }
    mp_cursor root = doc_root(&doc);
    print_cluster_head(root);
    doc_iter it;
    if (doc_get_array(root, "members", &it)) {
        if (it.left == 0) {
            printf("\nMembers: none\n");
        } else {
            printf("\nMembers (%u):\n", it.left);
            print_member_table(it);
        }
    }
    if (doc_get_array(root, "regions", &it)) {
        if (it.left == 0) {
            printf("\nRegions: none\n");
        } else {
            printf("\nRegions (%u):\n", it.left);
            print_region_redundancy(it, NULL, true);
        }
    }
    agate_buf_free(&doc);
    return EXIT_OK;
}

/* Prints status redundancy --json: {"satisfied": bool, "regions": [...]}
 * with the cluster status's region maps as they are. */
static int print_redundancy_json(doc_iter it, const char *only, bool satisfied)
{
    json_doc d;
    json_doc_init(&d);
    jw_begin_object(&d.w);
    jw_fields(&d.w, JSON_FIELDS(JF_BOOL("satisfied", satisfied)));
    jw_ckey(&d.w, "regions");
    jw_begin_array(&d.w);
    mp_cursor r;
    while (next_region(&it, only, &r)) {
        int jr = jw_mp(&d.w, &r);
        if (jr != 0) {
            json_doc_free(&d);
            cli_err("the cluster status cannot be shown as JSON (%s)", json_conv_strerror(jr));
            return EXIT_ERR;
        }
    }
    jw_end_array(&d.w);
    jw_end_object(&d.w);
    return json_doc_print(&d);
}

/* status redundancy: per region (or only --region), whether every bucket
 * has its copies; exit 1 when some region's redundancy is not satisfied. */
int cmd_status_redundancy(cli_ctx *ctx, const cli_args *a)
{
    const char *only = cli_str(a, "region");
    if (only && *only == '/')
        only++; /* Geode style, as for region names everywhere */
    if (only && !*only)
        return cli_usage_error(a->cmd, "--region must not be empty");
    agate_buf doc;
    if (fetch_doc(ctx, a, agate_cluster_status, true, "the cluster status", &doc) != EXIT_OK)
        return EXIT_ERR;
    doc_iter it;
    if (!doc_get_array(doc_root(&doc), "regions", &it)) {
        agate_buf_free(&doc);
        cli_err("unexpected reply from the cluster: the cluster status has no regions array");
        return EXIT_ERR;
    }
    int shown, unsatisfied;
    count_redundancy(it, only, &shown, &unsatisfied);
    int ret = EXIT_OK;
    if (only && shown == 0) {
        cli_err("region %s not found in the cluster", only);
        ret = EXIT_ERR;
    } else if (a->json) {
        ret = print_redundancy_json(it, only, unsatisfied == 0);
    } else if (shown == 0) {
        printf("No regions\n");
    } else {
        print_region_redundancy(it, only, false);
        if (unsatisfied == 0)
            printf("\nRedundancy satisfied for %d region%s\n", shown, shown == 1 ? "" : "s");
        else
            printf("\nRedundancy NOT satisfied for %d of %d region%s\n", unsatisfied, shown,
                   shown == 1 ? "" : "s");
    }
    agate_buf_free(&doc);
    if (ret == EXIT_OK && unsatisfied > 0)
        ret = EXIT_ERR;
    return ret;
}

/* ---- rebalance ------------------------------------------------------------ */

/* One member's counts in a region before and after a rebalance. A member
 * missing from one side (it joined or left) held nothing there. */
typedef struct member_moves {
    char name[128];
    uint64_t buckets[2], primaries[2]; /* [0] before, [1] after */
} member_moves;

typedef struct moves_list {
    member_moves *v;
    size_t n, cap;
} moves_list;

/* The entry of member name in l, added when missing; NULL if out of
 * memory. */
static member_moves *moves_of(moves_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].name, name) == 0)
            return &l->v[i];
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        member_moves *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        l->v = v;
        l->cap = cap;
    }
    member_moves *m = &l->v[l->n++];
    memset(m, 0, sizeof(*m));
    snprintf(m->name, sizeof m->name, "%s", name);
    return m;
}

/* Reads a region's "before" (when = 0) or "after" (1) list of [member,
 * buckets, primaries] tuples into l. */
static void read_counts(mp_cursor region, int when, moves_list *l)
{
    doc_iter it;
    if (!doc_get_array(region, when ? "after" : "before", &it))
        return;
    mp_cursor tuple, v;
    while (doc_next(&it, &tuple)) {
        char name[128];
        uint64_t b = 0, p = 0;
        /* the member may be named by name or by id */
        if (!doc_index(tuple, 0, &v) || !doc_text(v, name, sizeof name))
            continue;
        if (doc_index(tuple, 1, &v))
            doc_uint(v, &b);
        if (doc_index(tuple, 2, &v))
            doc_uint(v, &p);
        member_moves *m = moves_of(l, name);
        if (!m)
            return;
        m->buckets[when] = b;
        m->primaries[when] = p;
    }
}

/* Prints one region of a rebalance status: its moves and each member's
 * bucket and primary counts before -> after. */
static void print_region_moves(mp_cursor region, bool simulate)
{
    char name[160];
    uint64_t bm = 0, pm = 0;
    str_cell(region, "name", name, sizeof name);
    doc_get_uint(region, "bucket_moves", &bm);
    doc_get_uint(region, "primary_moves", &pm);
    printf("\nRegion %s: %llu bucket move%s, %llu primary move%s%s\n", name,
           (unsigned long long)bm, bm == 1 ? "" : "s", (unsigned long long)pm, pm == 1 ? "" : "s",
           simulate ? " planned" : "");
    moves_list l = {NULL, 0, 0};
    read_counts(region, 0, &l);
    read_counts(region, 1, &l);
    if (l.n) {
        static const char *headers[] = {"MEMBER", "BUCKETS", "PRIMARIES"};
        static const bool right[] = {false, true, true};
        table_t t;
        table_init(&t, 3, headers, right);
        for (size_t i = 0; i < l.n; i++) {
            table_cell(&t, "%s", l.v[i].name);
            table_cell(&t, "%llu -> %llu", (unsigned long long)l.v[i].buckets[0],
                       (unsigned long long)l.v[i].buckets[1]);
            table_cell(&t, "%llu -> %llu", (unsigned long long)l.v[i].primaries[0],
                       (unsigned long long)l.v[i].primaries[1]);
        }
        table_print(&t, stdout);
        table_free(&t);
    }
    free(l.v);
}

/* Prints the outcome of a rebalance (or its plan) from its final status
 * map; seconds is how long it took as seen from here. */
static void print_rebalance(mp_cursor st, double seconds)
{
    bool simulate = false;
    uint64_t bm = 0, pm = 0, ms;
    doc_get_bool(st, "simulate", &simulate);
    doc_get_uint(st, "bucket_moves", &bm);
    doc_get_uint(st, "primary_moves", &pm);
    if (doc_get_uint(st, "elapsed_ms", &ms))
        seconds = (double)ms / 1000;
    if (simulate)
        printf("Rebalance plan (simulated, nothing was moved): %llu bucket move%s, "
               "%llu primary move%s\n",
               (unsigned long long)bm, bm == 1 ? "" : "s", (unsigned long long)pm,
               pm == 1 ? "" : "s");
    else if (bm == 0 && pm == 0)
        printf("Rebalance done in %.2f s: nothing to move, the cluster is balanced\n", seconds);
    else
        printf("Rebalance done in %.2f s: %llu bucket move%s, %llu primary move%s\n", seconds,
               (unsigned long long)bm, bm == 1 ? "" : "s", (unsigned long long)pm,
               pm == 1 ? "" : "s");
    doc_iter it;
    mp_cursor r;
    if (doc_get_array(st, "regions", &it))
        while (doc_next(&it, &r))
            print_region_moves(r, simulate);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls the rebalance's status into *st (which holds the last one) every
 * REBALANCE_POLL_MS until its state is "done", drawing a progress bar of
 * the moves done when bar. Returns EXIT_OK, or EXIT_ERR after the
 * message. */
static int wait_rebalance(agate_client *c, agate_buf *st, bool bar)
{
    progress_t p;
    progress_init(&p, PROGRESS_MOVES, 0);
    if (!bar)
        p.enabled = false;
    for (;;) {
        if (check_doc(st, true, "the rebalance status") != EXIT_OK) {
            progress_finish(&p);
            return EXIT_ERR;
        }
        mp_cursor root = doc_root(st);
        char state[32] = "";
        uint64_t done = 0, total = 0;
        doc_get_str(root, "state", state, sizeof state);
        doc_get_uint(root, "done", &done);
        doc_get_uint(root, "total", &total);
        p.total = total;
        progress_update(&p, done, done, strcmp(state, "done") == 0);
        if (strcmp(state, "done") == 0)
            break;
        if (strcmp(state, "running") != 0) {
            progress_finish(&p);
            cli_err("the locator reports no rebalance in progress (state '%s'): was it restarted? "
                    "See 'agate status cluster'",
                    state[0] ? state : "?");
            return EXIT_ERR;
        }
        sleep_ms(REBALANCE_POLL_MS);
        agate_buf next = {0};
        int rc = agate_rebalance_status(c, &next);
        if (rc < 0) {
            progress_finish(&p);
            cli_fail(c, rc, "rebalance status");
            cli_err("the rebalance may still be running: see 'agate status cluster'");
            return EXIT_ERR;
        }
        agate_buf_free(st);
        *st = next;
    }
    progress_finish(&p);
    return EXIT_OK;
}

/* rebalance: starts a rebalance (or with --simulate only plans it), waits
 * for it with a progress bar, and shows the moves and counts per region. */
int cmd_rebalance(cli_ctx *ctx, const cli_args *a)
{
    bool simulate = cli_flag(a, "simulate");
    agate_client *c = cli_connect_cluster(ctx, a);
    if (!c)
        return EXIT_ERR;
    double t0 = now_seconds();
    agate_buf st = {0};
    int rc = agate_rebalance(c, simulate, &st);
    if (rc < 0) {
        agate_buf_free(&st);
        return cluster_finish(ctx, c, rc);
    }
    int ret = wait_rebalance(c, &st, !cli_flag(a, "no-progress"));
    cli_release(ctx, c);
    if (ret == EXIT_OK && a->json)
        ret = doc_print_json(&st);
    else if (ret == EXIT_OK)
        print_rebalance(doc_root(&st), now_seconds() - t0);
    agate_buf_free(&st);
    return ret;
}

/* ---- shutdown --------------------------------------------------------------- */

/* shutdown: tells every server (and with --include-locators the locators)
 * to stop, without moving anything. */
int cmd_shutdown(cli_ctx *ctx, const cli_args *a)
{
    bool locators = cli_flag(a, "include-locators");
    agate_client *c = cli_connect_cluster(ctx, a);
    if (!c)
        return EXIT_ERR;
    uint64_t n = 0;
    if (cluster_finish(ctx, c, agate_shutdown_cluster(c, locators, &n)) != EXIT_OK)
        return EXIT_ERR;
    if (a->json)
        return json_print_object(stdout, JSON_FIELDS(JF_UINT("stopped", n),
                                                      JF_BOOL("include_locators", locators)));
    printf("Shutdown: told %llu member%s to stop%s\n", (unsigned long long)n, n == 1 ? "" : "s",
           locators ? ", locators included" : "");
    return EXIT_OK;
}
