/* cmd_cq.c - watch: runs a continuous query and prints its events live;
 * list cqs: the continuous queries registered on the server or cluster. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/mpw.h"
#include "tools/cli/cli.h"
#include "tools/cli/json_mp.h"
#include "tools/cli/output.h"
#include "tools/cli/query_text.h"

/* ---- watch -------------------------------------------------------------- */

typedef struct watch_state {
    bool json;
    long long count; /* stop after this many printed events; 0: no limit */
    long long printed;
    int bad;         /* a value that could not be shown */
} watch_state;

static volatile sig_atomic_t watch_stop;

static void on_signal(int sig)
{
    (void)sig;
    watch_stop = 1;
}

static const char *op_name(int op)
{
    switch (op) {
    case AGATE_CQ_CREATE: return "CREATE";
    case AGATE_CQ_UPDATE: return "UPDATE";
    case AGATE_CQ_DESTROY: return "DESTROY";
    case AGATE_CQ_CLEAR: return "CLEAR";
    case AGATE_CQ_INITIAL: return "INITIAL";
    case AGATE_CQ_GAP: return "GAP";
    case AGATE_CQ_ERROR: return "ERROR";
    default: return "?";
    }
}

/* One event as a compact JSON object on one line. */
static void print_event_json(const agate_cq_event *ev, watch_state *st)
{
    buf_t out;
    buf_init(&out);
    jw_t w;
    jw_init(&w, &out, 0);
    char op[16];
    size_t i = 0;
    for (const char *p = op_name(ev->op); *p && i + 1 < sizeof(op); p++)
        op[i++] = (char)(*p - 'A' + 'a');
    op[i] = 0;
    jw_begin_object(&w);
    jw_ckey(&w, "op");
    jw_cstr(&w, op);
    if (ev->key)
        jw_fields(&w, JSON_FIELDS(JF_KEY(ev->key, ev->klen)));
    if (ev->value) {
        jw_ckey(&w, "value");
        mp_cursor cur;
        mp_cursor_init(&cur, ev->value, ev->vlen);
        if (jw_mp(&w, &cur)) {
            jw_null(&w);
            st->bad++;
        }
    }
    if (ev->op != AGATE_CQ_INITIAL && ev->op != AGATE_CQ_ERROR)
        jw_fields(&w, JSON_FIELDS(JF_UINT("bucket", ev->bucket), JF_UINT("seq", ev->seq)));
    if (ev->errmsg)
        jw_fields(&w, JSON_FIELDS(JF_STR("error", ev->errmsg)));
    jw_end_object(&w);
    if (!w.err && out.len > 0) {
        fwrite(out.data, 1, out.len, stdout);
        fputc('\n', stdout);
    }
    jw_free(&w);
    buf_free(&out);
}

/* One event as "OP key value" for people. */
static void print_event_text(const agate_cq_event *ev, watch_state *st)
{
    fputs(op_name(ev->op), stdout);
    if (ev->key) {
        fputc(' ', stdout);
        print_key(stdout, ev->key, ev->klen);
    }
    if (ev->value) {
        buf_t out;
        buf_init(&out);
        if (json_mp_to_json(ev->value, ev->vlen, &out, 0) == 0) {
            fputc(' ', stdout);
            fwrite(out.data, 1, out.len, stdout);
        } else {
            fputs(" <value is not valid MessagePack>", stdout);
            st->bad++;
        }
        buf_free(&out);
    }
    if (ev->op == AGATE_CQ_CLEAR)
        printf(" bucket %u", ev->bucket);
    else if (ev->op == AGATE_CQ_GAP)
        printf(" bucket %u: events before seq %" PRIu64 " may have been lost", ev->bucket, ev->seq);
    else if (ev->op == AGATE_CQ_ERROR)
        printf(" %s", ev->errmsg ? ev->errmsg : "");
    fputc('\n', stdout);
}

static void on_event(agate_cq *cq, const agate_cq_event *ev, void *arg)
{
    watch_state *st = arg;
    if (st->count > 0 && st->printed >= st->count)
        return;
    if (st->json)
        print_event_json(ev, st);
    else
        print_event_text(ev, st);
    fflush(stdout); /* live, also into a pipe */
    st->printed++;
    if (st->count > 0 && st->printed >= st->count)
        agate_cq_break(cq);
}

/* The query: --query as given, or every entry of --region. */
static int watch_query(const cli_args *a, char *out, size_t cap)
{
    const char *q = cli_str(a, "query"), *r = cli_str(a, "region");
    if (!q && !r)
        return cli_usage_error(a->cmd,
                               "give --query (SELECT * FROM /region WHERE ...) or --region");
    if (q) {
        if (strlen(q) + 1 > cap)
            return cli_usage_error(a->cmd, "--query is too long");
        memcpy(out, q, strlen(q) + 1);
        return 0;
    }
    int n = snprintf(out, cap, "SELECT * FROM /%s WHERE true", r[0] == '/' ? r + 1 : r);
    if (n < 0 || (size_t)n >= cap)
        return cli_usage_error(a->cmd, "--region is too long");
    return 0;
}

/* Runs the CQ until --count events, --timeout seconds, Ctrl-C or an error. */
static int watch_run(agate_cq *cq, watch_state *st, long long timeout_s)
{
    double end = timeout_s > 0 ? now_seconds() + (double)timeout_s : 0;
    while (!watch_stop && !(st->count > 0 && st->printed >= st->count)) {
        int wait = 1000;
        if (timeout_s > 0) {
            double left = end - now_seconds();
            if (left <= 0)
                break;
            wait = left < 1.0 ? (int)(left * 1000) + 1 : 1000;
        }
        int rc = agate_cq_wait(cq, wait);
        if (rc < 0) {
            cli_err("continuous query ended: %s", agate_cq_errmsg(cq));
            return EXIT_ERR;
        }
    }
    return EXIT_OK;
}

/* watch: registers a CQ and prints one line per event. */
int cmd_watch(cli_ctx *ctx, const cli_args *a)
{
    char query[8192];
    int ret = watch_query(a, query, sizeof(query));
    if (ret)
        return ret;
    buf_t params;
    buf_init(&params);
    if (cli_query_params(a, &params)) {
        buf_free(&params);
        return EXIT_ERR;
    }
    agate_client *c = cli_connect(ctx, a);
    if (!c) {
        buf_free(&params);
        return EXIT_ERR;
    }
    watch_state st = {.json = a->json, .count = cli_int(a, "count", 0)};
    char name[64];
    snprintf(name, sizeof(name), "agate-watch-%ld", (long)getpid());
    agate_cq *cq = NULL;
    int flags = cli_flag(a, "initial") ? AGATE_CQ_INITIAL_RESULTS : 0;
    bool nparams = cli_count(a, "param") > 0;
    int rc = agate_cq_open(c, name, query, nparams ? buf_rptr(&params) : NULL,
                           nparams ? buf_readable(&params) : 0, flags, on_event, &st, &cq);
    buf_free(&params);
    if (rc < 0) { /* a query error gets the caret, as with agate query */
        ret = cli_query_failed(c, rc, query);
        cli_release(ctx, c);
        return ret;
    }
    if (!a->json && isatty(STDERR_FILENO))
        fprintf(stderr, "Watching %s (Ctrl-C to stop)\n", query);

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: the wait returns at once */
    sigemptyset(&sa.sa_mask);
    watch_stop = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    ret = watch_run(cq, &st, cli_int(a, "timeout", 0));
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    agate_cq_close(cq);
    cli_release(ctx, c);
    if (ret == EXIT_OK && st.bad > 0) {
        cli_err("%d value(s) were not valid MessagePack", st.bad);
        ret = EXIT_ERR;
    }
    return ret;
}

/* ---- list cqs ----------------------------------------------------------- */

/* The fields of one CQ_LIST map. */
typedef struct cq_row {
    uint64_t id, events, queued, buckets;
    char name[160], region[160], client[160], peer[80], query[512];
} cq_row;

static void copy_field(char *dst, size_t cap, const uint8_t *p, uint32_t n)
{
    if (n >= cap)
        n = (uint32_t)cap - 1;
    memcpy(dst, p, n);
    dst[n] = 0;
}

/* Reads one map; unknown keys and types are skipped. */
static int row_read(mp_cursor *cur, cq_row *r)
{
    memset(r, 0, sizeof(*r));
    uint32_t n;
    if (mp_read_map(cur, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k, *s;
        uint32_t kn, sn;
        if (mp_read_str(cur, &k, &kn))
            return -1;
        mp_cursor save = *cur;
        uint64_t u;
        if (mp_read_uint(cur, &u) == 0) {
            if (kn == 2 && !memcmp(k, "id", 2))
                r->id = u;
            else if (kn == 6 && !memcmp(k, "events", 6))
                r->events = u;
            else if (kn == 6 && !memcmp(k, "queued", 6))
                r->queued = u;
            else if (kn == 7 && !memcmp(k, "buckets", 7))
                r->buckets = u;
            continue;
        }
        *cur = save;
        if (mp_read_str(cur, &s, &sn) == 0) {
            if (kn == 4 && !memcmp(k, "name", 4))
                copy_field(r->name, sizeof(r->name), s, sn);
            else if (kn == 6 && !memcmp(k, "region", 6))
                copy_field(r->region, sizeof(r->region), s, sn);
            else if (kn == 6 && !memcmp(k, "client", 6))
                copy_field(r->client, sizeof(r->client), s, sn);
            else if (kn == 4 && !memcmp(k, "peer", 4))
                copy_field(r->peer, sizeof(r->peer), s, sn);
            else if (kn == 5 && !memcmp(k, "query", 5))
                copy_field(r->query, sizeof(r->query), s, sn);
            continue;
        }
        *cur = save;
        if (mp_skip(cur, MP_MAX_DEPTH_LIMIT))
            return -1;
    }
    return 0;
}

static int print_cq_table(const agate_buf *list)
{
    mp_cursor cur;
    uint32_t n;
    mp_cursor_init(&cur, list->data, list->len);
    if (mp_read_array(&cur, &n)) {
        cli_err("malformed CQ list");
        return EXIT_ERR;
    }
    if (n == 0) {
        printf("No continuous queries\n");
        return EXIT_OK;
    }
    static const char *headers[] = {"ID", "NAME", "REGION", "CLIENT", "PEER", "BUCKETS",
                                    "EVENTS", "QUEUED", "QUERY"};
    static const bool right[] = {true, false, false, false, false, true, true, true, false};
    table_t t;
    table_init(&t, 9, headers, right);
    for (uint32_t i = 0; i < n; i++) {
        cq_row r;
        if (row_read(&cur, &r)) {
            table_free(&t);
            cli_err("malformed CQ list");
            return EXIT_ERR;
        }
        table_cell(&t, "%" PRIu64, r.id);
        table_cell(&t, "%s", r.name);
        table_cell(&t, "%s", r.region);
        table_cell(&t, "%s", r.client);
        table_cell(&t, "%s", r.peer);
        table_cell(&t, "%" PRIu64, r.buckets);
        table_cell(&t, "%" PRIu64, r.events);
        table_cell(&t, "%" PRIu64, r.queued);
        table_cell(&t, "%s", r.query);
    }
    table_print(&t, stdout);
    table_free(&t);
    return EXIT_OK;
}

/* list cqs: every member's continuous queries, as a table or JSON array. */
int cmd_list_cqs(cli_ctx *ctx, const cli_args *a)
{
    agate_client *c = cli_connect(ctx, a);
    agate_buf list = {0};
    if (!c || cli_finish(ctx, c, agate_cq_list(c, &list), NULL) != EXIT_OK)
        return EXIT_ERR;
    int ret;
    if (a->json) {
        buf_t out;
        buf_init(&out);
        int jr = json_mp_to_json(list.data, list.len, &out, 2);
        if (jr == 0) {
            fwrite(out.data, 1, out.len, stdout);
            fputc('\n', stdout);
            ret = EXIT_OK;
        } else {
            cli_err("malformed CQ list (%s)", json_conv_strerror(jr));
            ret = EXIT_ERR;
        }
        buf_free(&out);
    } else {
        ret = print_cq_table(&list);
    }
    agate_buf_free(&list);
    return ret;
}
