/* Integration tests of continuous queries through libagate (agate.h,
 * "Continuous queries"; docs/query.md) against real agated processes.
 *
 * single: one stand-alone server shared by the case: the transitions
 *   (CREATE, UPDATE, DESTROY, no event, CLEAR), initial results, per-key
 *   order under pipelined writes, parameters, close and list, errors.
 * cluster: a locator and three members (PARTITION_REDUNDANT,
 *   redundant-copies=1, --member-timeout=1500), writer threads putting
 *   sequential versions of their keys while a CQ collects events; the
 *   member holding primaries is SIGKILLed under the writers; then a member
 *   joins and a rebalance hands primaries over, still under the writers.
 *   The checker (check_stream) requires, for every key, that the events are
 *   exactly the transitions of its acknowledged writes: none lost, no
 *   (bucket, seq) twice, versions strictly increasing; a write that failed
 *   (no acknowledgement) may or may not have been applied and delivered.
 *
 * Processes are started from the test process (PR_SET_PDEATHSIG) and
 * stopped by pid; directories are removed when the case passed. */
#include <arpa/inet.h>
#include <check.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agate/agate.h"
#include "tu.h"
#include "tu_server.h"
#include "tu_wire.h"

static int scale(void) { return tu_timeout_scale(); }

/* ======================================================================
 * Values: maps {"w": writer, "k": key index, "v": version, "m": matches,
 * "total": n}; the CQs select o.m = true (or o.total > N).
 * ====================================================================== */

typedef struct val {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} val;

static void val_init(val *x)
{
    msgpack_sbuffer_init(&x->sb);
    msgpack_packer_init(&x->pk, &x->sb, msgpack_sbuffer_write);
}

static void pk_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* {"w", "k", "v", "m"} */
static void val_wkv(val *x, int w, int k, int v, bool m)
{
    val_init(x);
    msgpack_pack_map(&x->pk, 4);
    pk_str(&x->pk, "w");
    msgpack_pack_int(&x->pk, w);
    pk_str(&x->pk, "k");
    msgpack_pack_int(&x->pk, k);
    pk_str(&x->pk, "v");
    msgpack_pack_int(&x->pk, v);
    pk_str(&x->pk, "m");
    if (m)
        msgpack_pack_true(&x->pk);
    else
        msgpack_pack_false(&x->pk);
}

/* {"total": t} */
static void val_total(val *x, long t)
{
    val_init(x);
    msgpack_pack_map(&x->pk, 1);
    pk_str(&x->pk, "total");
    msgpack_pack_long(&x->pk, t);
}

/* An integer field of a map value; LONG_MIN when absent. */
static long field_int(const void *p, size_t n, const char *name)
{
    long out = -1000000;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, p, n, NULL) == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *o = tw_map_get(&u.data, name);
        if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            out = (long)o->via.u64;
        else if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            out = (long)o->via.i64;
    }
    msgpack_unpacked_destroy(&u);
    return out;
}

/* ======================================================================
 * Collected events
 * ====================================================================== */

typedef struct ev {
    int op;
    char key[40];
    long v;       /* "v" or "total" of the value; -1 without a value */
    uint32_t bucket;
    uint64_t seq;
    int64_t at_ms;
} ev;

typedef struct sink {
    ev *e;
    size_t n, cap;
    const char *field; /* which value field goes into ev.v */
    char errmsg[256];
    long errors;
} sink;

static void on_ev(agate_cq *cq, const agate_cq_event *e, void *arg)
{
    (void)cq;
    sink *s = arg;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->e = realloc(s->e, s->cap * sizeof(*s->e));
        ck_assert_ptr_nonnull(s->e);
    }
    ev *x = &s->e[s->n++];
    memset(x, 0, sizeof(*x));
    x->op = e->op;
    if (e->key)
        snprintf(x->key, sizeof(x->key), "%.*s", (int)e->klen, (const char *)e->key);
    x->v = e->value ? field_int(e->value, e->vlen, s->field) : -1;
    x->bucket = e->bucket;
    x->seq = e->seq;
    x->at_ms = tu_now_ms();
    if (e->op == AGATE_CQ_ERROR) {
        s->errors++;
        snprintf(s->errmsg, sizeof(s->errmsg), "%s", e->errmsg ? e->errmsg : "");
    }
}

/* Runs the CQ until s holds at least n events (or the bound). */
static void wait_n(agate_cq *cq, sink *s, size_t n, int bound_ms)
{
    int64_t end = tu_now_ms() + bound_ms * scale();
    while (s->n < n && tu_now_ms() < end) {
        int rc = agate_cq_wait(cq, 50);
        ck_assert_msg(rc >= 0, "agate_cq_wait: %d %s", rc, agate_cq_errmsg(cq));
    }
    ck_assert_msg(s->n >= n, "expected %zu events, got %zu within %d ms", n, s->n, bound_ms);
}

static const char *opname(int op)
{
    static const char *names[] = {"?",     "CREATE",  "UPDATE", "DESTROY",
                                  "CLEAR", "INITIAL", "GAP",    "ERROR"};
    return op >= 0 && op <= 7 ? names[op] : "?";
}

/* ======================================================================
 * single: one stand-alone server
 * ====================================================================== */

static tu_server srv;

static void start_server(void)
{
    memset(&srv, 0, sizeof(srv));
    ck_assert_msg(tu_server_start(&srv, "cq", NULL) == 0, "cannot start agated");
}

static void stop_server(void)
{
    char why[512];
    bool clean = tu_server_sanitizer_clean(&srv, why, sizeof(why));
    int rc = tu_server_stop(&srv, 15000 * scale());
    if (rc != 0)
        tu_fail_outside("agated did not stop cleanly");
    if (!clean)
        tu_fail_outside("agated reported: %s", why);
    tu_server_cleanup(&srv, rc != 0 || !clean);
}

static agate_client *client(const char *name)
{
    agate_options o;
    agate_options_init(&o);
    o.request_timeout_ms = 10000 * scale();
    o.client_name = name;
    agate_client *c = agate_client_new(&o);
    ck_assert_ptr_nonnull(c);
    int rc = agate_connect(c, srv.addr);
    ck_assert_msg(rc == 0, "connect: %d %s", rc, agate_errmsg(c));
    return c;
}

static void make_region(agate_client *c, const char *name)
{
    agate_region_config cfg;
    agate_region_config_init(&cfg, name, AGATE_PARTITION);
    int rc = agate_region_create(c, &cfg);
    ck_assert_msg(rc == 0, "region_create %s: %d %s", name, rc, agate_errmsg(c));
}

static void put_total(agate_client *c, const char *region, const char *key, long total)
{
    val x;
    val_total(&x, total);
    int rc = agate_put(c, region, key, strlen(key), x.sb.data, x.sb.size);
    msgpack_sbuffer_destroy(&x.sb);
    ck_assert_msg(rc == 0, "put %s: %d %s", key, rc, agate_errmsg(c));
}

static void expect(const sink *s, size_t i, int op, const char *key, long v)
{
    ck_assert_msg(i < s->n, "event %zu missing", i);
    const ev *e = &s->e[i];
    ck_assert_msg(e->op == op && strcmp(e->key, key) == 0 && e->v == v,
                  "event %zu: %s %s %ld, expected %s %s %ld", i, opname(e->op), e->key, e->v,
                  opname(op), key, v);
}

/* The events of key from s, in arrival order, into out (out->e owned). */
static void split_key(const sink *s, const char *key, sink *out)
{
    out->n = 0;
    out->e = malloc((s->n ? s->n : 1) * sizeof(*out->e));
    ck_assert_ptr_nonnull(out->e);
    out->cap = s->n ? s->n : 1;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->e[i].key, key) == 0)
            out->e[out->n++] = s->e[i];
}

START_TEST(transitions)
{
    agate_client *c = client("cq-transitions");
    make_region(c, "tr");
    sink s = {.field = "total"};
    agate_cq *cq = NULL;
    int rc = agate_cq_open(c, "big", "SELECT * FROM /tr o WHERE o.total > 10", NULL, 0, 0, on_ev,
                           &s, &cq);
    ck_assert_msg(rc == 0, "cq_open: %d %s", rc, agate_errmsg(c));
    put_total(c, "tr", "a", 5);   /* no match: no event */
    put_total(c, "tr", "a", 20);  /* CREATE */
    put_total(c, "tr", "a", 30);  /* UPDATE */
    put_total(c, "tr", "a", 1);   /* DESTROY */
    put_total(c, "tr", "a", 2);   /* nothing */
    put_total(c, "tr", "a", 50);  /* CREATE */
    ck_assert_int_eq(agate_remove(c, "tr", "a", 1), 0); /* DESTROY */
    put_total(c, "tr", "b", 3);   /* nothing */
    ck_assert_int_eq(agate_remove(c, "tr", "b", 1), 0); /* nothing */
    put_total(c, "tr", "z", 99);  /* CREATE: the end marker */
    wait_n(cq, &s, 6, 10000);
    /* events of one key come in write order; keys of different buckets
     * are not ordered with each other */
    sink a = {.field = "total"}, z = {.field = "total"};
    split_key(&s, "a", &a);
    split_key(&s, "z", &z);
    ck_assert_uint_eq(a.n + z.n, 6);
    expect(&a, 0, AGATE_CQ_CREATE, "a", 20);
    expect(&a, 1, AGATE_CQ_UPDATE, "a", 30);
    expect(&a, 2, AGATE_CQ_DESTROY, "a", -1);
    expect(&a, 3, AGATE_CQ_CREATE, "a", 50);
    expect(&a, 4, AGATE_CQ_DESTROY, "a", -1);
    expect(&z, 0, AGATE_CQ_CREATE, "z", 99);
    /* seqs increase within a bucket */
    for (size_t i = 1; i < a.n; i++)
        ck_assert(a.e[i].seq > a.e[i - 1].seq);
    ck_assert_int_eq(a.e[0].bucket, 108); /* "a": docs/protocol.md's vector */
    free(a.e);
    free(z.e);
    /* a clear: CLEAR events (one per bucket), then new entries again */
    uint64_t removed = 0;
    ck_assert_int_eq(agate_clear(c, "tr", &removed), 0);
    put_total(c, "tr", "y", 77);
    /* until "y" came and then nothing for 300 ms (CLEARs of buckets after
     * y's may come after it: buckets are not ordered with each other) */
    int64_t end = tu_now_ms() + 10000 * scale(), quiet = 0;
    size_t ys = 0, clears = 0, seen = 6;
    while (tu_now_ms() < end && !(ys && quiet && tu_now_ms() - quiet >= 300)) {
        ck_assert_int_ge(agate_cq_wait(cq, 50), 0);
        for (; seen < s.n; seen++, quiet = tu_now_ms()) {
            const ev *e = &s.e[seen];
            if (e->op == AGATE_CQ_CLEAR) {
                ck_assert(e->key[0] == 0 && e->v == -1);
                clears++;
            } else {
                expect(&s, seen, AGATE_CQ_CREATE, "y", 77);
                ys++;
            }
        }
    }
    ck_assert_uint_eq(ys, 1);
    ck_assert_msg(clears >= 1 && clears <= 113, "%zu CLEAR events", clears);
    agate_cq_stats st;
    agate_cq_stats_get(cq, &st);
    ck_assert_uint_eq(st.events, s.n);
    ck_assert_uint_eq(st.gaps, 0);
    ck_assert_uint_eq(st.members, 1);
    ck_assert_int_eq(agate_cq_close(cq), 0);
    free(s.e);
    agate_client_free(c);
}
END_TEST

START_TEST(initial_results_and_params)
{
    agate_client *c = client("cq-initial");
    make_region(c, "ini");
    for (int i = 0; i < 40; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%02d", i);
        put_total(c, "ini", key, i);
    }
    /* $1 = 29: the ten entries 30..39 */
    uint8_t params[] = {0x91, 29};
    sink s = {.field = "total"};
    agate_cq *cq = NULL;
    int rc = agate_cq_open(c, "p", "SELECT * FROM /ini o WHERE o.total > $1", params,
                           sizeof(params), AGATE_CQ_INITIAL_RESULTS, on_ev, &s, &cq);
    ck_assert_msg(rc == 0, "cq_open: %d %s", rc, agate_errmsg(c));
    ck_assert_uint_eq(s.n, 10); /* delivered before agate_cq_open returned */
    bool seen[40] = {false};
    for (size_t i = 0; i < s.n; i++) {
        ck_assert_int_eq(s.e[i].op, AGATE_CQ_INITIAL);
        ck_assert(s.e[i].v >= 30 && s.e[i].v < 40 && !seen[s.e[i].v]);
        seen[s.e[i].v] = true;
        char key[16];
        snprintf(key, sizeof(key), "k%02ld", s.e[i].v);
        ck_assert_str_eq(s.e[i].key, key);
    }
    /* after the snapshot: changes only */
    put_total(c, "ini", "k05", 100); /* CREATE */
    put_total(c, "ini", "k31", 1);   /* DESTROY */
    /* with an event loop of one's own: poll agate_cq_fd, then process */
    int fd = agate_cq_fd(cq);
    ck_assert_int_ge(fd, 0);
    int64_t end = tu_now_ms() + 10000 * scale();
    while (s.n < 12 && tu_now_ms() < end) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, 1000);
        ck_assert_int_ge(pr, 0);
        ck_assert_int_ge(agate_cq_process(cq), 0);
    }
    ck_assert_int_eq(agate_cq_fd(cq), fd); /* the same for the CQ's life */
    ck_assert_uint_eq(s.n, 12);
    bool k05 = false, k31 = false; /* two buckets: in either order */
    for (size_t i = 10; i < 12; i++) {
        if (strcmp(s.e[i].key, "k05") == 0) {
            expect(&s, i, AGATE_CQ_CREATE, "k05", 100);
            k05 = true;
        } else {
            expect(&s, i, AGATE_CQ_DESTROY, "k31", -1);
            k31 = true;
        }
    }
    ck_assert(k05 && k31);
    agate_cq_close(cq);
    free(s.e);
    agate_client_free(c);
}
END_TEST

typedef struct counter {
    int ok, failed;
} counter;

static void on_reply(agate_client *c, const agate_reply *r, void *arg)
{
    (void)c;
    counter *n = arg;
    if (r->status == 0)
        n->ok++;
    else
        n->failed++;
}

START_TEST(per_key_order)
{
    enum { KEYS = 4, VERSIONS = 500 };
    agate_client *c = client("cq-order");
    make_region(c, "ord");
    sink s = {.field = "total"};
    agate_cq *cq = NULL;
    int rc = agate_cq_open(c, "all", "SELECT * FROM /ord o WHERE o.total >= 0", NULL, 0, 0, on_ev,
                           &s, &cq);
    ck_assert_msg(rc == 0, "cq_open: %d %s", rc, agate_errmsg(c));
    counter n = {0, 0};
    for (int v = 1; v <= VERSIONS; v++)
        for (int k = 0; k < KEYS; k++) {
            char key[8];
            snprintf(key, sizeof(key), "o%d", k);
            val x;
            val_total(&x, v);
            ck_assert_int_eq(agate_put_async(c, "ord", key, strlen(key), x.sb.data, x.sb.size,
                                             on_reply, &n), 0);
            msgpack_sbuffer_destroy(&x.sb);
        }
    ck_assert_int_eq(agate_wait(c, 30000 * scale()), 0);
    ck_assert_int_eq(n.ok, KEYS * VERSIONS);
    wait_n(cq, &s, KEYS * VERSIONS, 30000);
    long last[KEYS] = {0};
    for (size_t i = 0; i < s.n; i++) {
        int k = s.e[i].key[1] - '0';
        ck_assert(k >= 0 && k < KEYS);
        ck_assert_msg(s.e[i].v == last[k] + 1, "key o%d: v%ld after v%ld", k, s.e[i].v, last[k]);
        ck_assert_int_eq(s.e[i].op, last[k] == 0 ? AGATE_CQ_CREATE : AGATE_CQ_UPDATE);
        last[k] = s.e[i].v;
    }
    ck_assert_uint_eq(s.n, KEYS * VERSIONS);
    agate_cq_close(cq);
    free(s.e);
    agate_client_free(c);
}
END_TEST

/* Counts the CQs named name in a CQ_LIST result; checks the fields of one. */
static int list_count(agate_client *c, const char *name, const char *query)
{
    agate_buf b = {0};
    int rc = agate_cq_list(c, &b);
    ck_assert_msg(rc == 0, "cq_list: %d %s", rc, agate_errmsg(c));
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    ck_assert(msgpack_unpack_next(&u, (const char *)b.data, b.len, NULL) == MSGPACK_UNPACK_SUCCESS);
    ck_assert(u.data.type == MSGPACK_OBJECT_ARRAY);
    int n = 0;
    for (uint32_t i = 0; i < u.data.via.array.size; i++) {
        const msgpack_object *m = &u.data.via.array.ptr[i];
        if (!tw_obj_is_str(tw_map_get(m, "name"), name))
            continue;
        n++;
        ck_assert(tw_obj_is_str(tw_map_get(m, "query"), query));
        ck_assert(tw_obj_is_str(tw_map_get(m, "region"), "lst"));
        ck_assert(tw_obj_is_str(tw_map_get(m, "client"), "cq-list"));
        const msgpack_object *id = tw_map_get(m, "id");
        ck_assert(id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER && id->via.u64 > 0);
        const msgpack_object *bk = tw_map_get(m, "buckets");
        ck_assert(bk && bk->type == MSGPACK_OBJECT_POSITIVE_INTEGER && bk->via.u64 == 113);
        ck_assert(tw_map_get(m, "peer") && tw_map_get(m, "events") && tw_map_get(m, "queued"));
    }
    msgpack_unpacked_destroy(&u);
    agate_buf_free(&b);
    return n;
}

START_TEST(close_and_list)
{
    agate_client *c = client("cq-list");
    make_region(c, "lst");
    const char *q1 = "SELECT * FROM /lst o WHERE o.total > 1";
    const char *q2 = "SELECT * FROM /lst WHERE total < 0";
    sink s1 = {.field = "total"}, s2 = {.field = "total"};
    agate_cq *a = NULL, *b = NULL;
    ck_assert_int_eq(agate_cq_open(c, "one", q1, NULL, 0, 0, on_ev, &s1, &a), 0);
    ck_assert_int_eq(agate_cq_open(c, "two", q2, NULL, 0, 0, on_ev, &s2, &b), 0);
    ck_assert_int_eq(list_count(c, "one", q1), 1);
    ck_assert_int_eq(list_count(c, "two", q2), 1);
    ck_assert_int_eq(agate_cq_close(a), 0);
    ck_assert_int_eq(list_count(c, "one", q1), 0);
    ck_assert_int_eq(list_count(c, "two", q2), 1);
    /* the closed one gets nothing; the other still works */
    put_total(c, "lst", "neg", -5);
    wait_n(b, &s2, 1, 10000);
    expect(&s2, 0, AGATE_CQ_CREATE, "neg", -5);
    ck_assert_uint_eq(s1.n, 0);
    ck_assert_int_eq(agate_cq_close(b), 0);
    ck_assert_int_eq(list_count(c, "two", q2), 0);
    ck_assert_int_eq(agate_cq_close(NULL), 0);
    free(s2.e);
    agate_client_free(c);
}
END_TEST

START_TEST(errors)
{
    agate_client *c = client("cq-errors");
    make_region(c, "err");
    sink s = {.field = "total"};
    agate_cq *cq = (agate_cq *)1;
    int rc = agate_cq_open(c, "x", "SELECT o.total FROM /err o WHERE o.total > 1", NULL, 0, 0,
                           on_ev, &s, &cq);
    ck_assert_msg(rc == AGATE_EBAD_ARGUMENT, "projection: %d %s", rc, agate_errmsg(c));
    ck_assert_ptr_null(cq);
    rc = agate_cq_open(c, "x", "SELECT * FROM /err o WHERE o.total >", NULL, 0, 0, on_ev, &s, &cq);
    ck_assert_msg(rc == AGATE_EBAD_ARGUMENT && strstr(agate_errmsg(c), "at "), "parse: %d %s", rc,
                  agate_errmsg(c));
    rc = agate_cq_open(c, "x", "SELECT * FROM /err o WHERE o.total > 1 ORDER BY o.total", NULL, 0,
                       0, on_ev, &s, &cq);
    ck_assert_msg(rc == AGATE_EBAD_ARGUMENT, "order by: %d %s", rc, agate_errmsg(c));
    rc = agate_cq_open(c, "x", "SELECT * FROM /nosuch o WHERE o.total > 1", NULL, 0, 0, on_ev, &s,
                       &cq);
    ck_assert_msg(rc == AGATE_EUNKNOWN_REGION, "unknown region: %d %s", rc, agate_errmsg(c));
    rc = agate_cq_open(c, "x", "DELETE everything", NULL, 0, 0, on_ev, &s, &cq);
    ck_assert_msg(rc == AGATE_EBAD_ARGUMENT, "no FROM: %d %s", rc, agate_errmsg(c));
    uint8_t notarray[] = {0x05};
    rc = agate_cq_open(c, "x", "SELECT * FROM /err WHERE total > $1", notarray, 1, 0, on_ev, &s,
                       &cq);
    ck_assert_int_eq(rc, AGATE_EINVAL);
    rc = agate_cq_open(c, "x", "SELECT * FROM /err WHERE total > 1", NULL, 0, 0, NULL, &s, &cq);
    ck_assert_int_eq(rc, AGATE_EINVAL);
    ck_assert_int_eq(agate_cq_process(NULL), AGATE_EINVAL);
    /* the client still works */
    ck_assert_int_eq(agate_ping(c), 0);
    ck_assert_uint_eq(s.n, 0);
    agate_client_free(c);
}
END_TEST

START_TEST(region_destroyed_ends_cq)
{
    agate_client *c = client("cq-destroy");
    make_region(c, "gone");
    sink s = {.field = "total"};
    agate_cq *cq = NULL;
    ck_assert_int_eq(agate_cq_open(c, "g", "SELECT * FROM /gone WHERE total > 1", NULL, 0, 0,
                                   on_ev, &s, &cq), 0);
    ck_assert_int_eq(agate_region_destroy(c, "gone"), 0);
    agate_client_free(c); /* the CQ needs nothing of it any more */
    int rc = 0;
    int64_t end = tu_now_ms() + 10000 * scale();
    while (rc >= 0 && tu_now_ms() < end)
        rc = agate_cq_wait(cq, 100);
    ck_assert_msg(rc < 0, "the CQ did not end when its region was destroyed");
    ck_assert_int_eq(s.errors, 1);
    ck_assert_int_eq(s.e[s.n - 1].op, AGATE_CQ_ERROR);
    ck_assert_int_eq(agate_cq_process(cq), rc); /* stays ended */
    agate_cq_close(cq);
    free(s.e);
}
END_TEST

/* A subscriber that does not read while a writer floods its region with
 * pipelined puts: the journal (64 KiB here) evicts events the CQ had not
 * received (the member's pump falls behind, or pauses the full connection
 * and then closes the CQ as too slow, and the client re-registers with
 * replay); either way the client must report the lost stretches as GAPs
 * and go on delivering, never twice and never out of order. */
START_TEST(slow_subscriber_gets_a_gap)
{
    tu_server slow;
    memset(&slow, 0, sizeof(slow));
    const char *args[] = {"--journal-bytes-per-bucket=65536", NULL};
    ck_assert_msg(tu_server_start(&slow, "cqslow", args) == 0, "cannot start agated");
    agate_options o;
    agate_options_init(&o);
    o.request_timeout_ms = 10000 * scale();
    agate_client *c = agate_client_new(&o);
    ck_assert_int_eq(agate_connect(c, slow.addr), 0);
    agate_region_config cfg;
    agate_region_config_init(&cfg, "slow", AGATE_PARTITION);
    cfg.total_num_buckets = 1;
    ck_assert_int_eq(agate_region_create(c, &cfg), 0);
    sink s = {.field = "v"};
    agate_cq *cq = NULL;
    int rc = agate_cq_open(c, "slow", "SELECT * FROM /slow o WHERE o.m = true", NULL, 0, 0, on_ev,
                           &s, &cq);
    ck_assert_msg(rc == 0, "cq_open: %d %s", rc, agate_errmsg(c));
    /* 20 000 puts of about 1 KiB (a journal event holds the old and the new
     * value: about 30 fit 64 KiB): 20 MiB of events, far more than the
     * 1 MiB pause threshold plus what the sockets hold, while the CQ is
     * not read */
    enum { N = 20000 };
    char pad[1000];
    memset(pad, 'p', sizeof(pad));
    counter n = {0, 0};
    for (int v = 1; v <= N; v++) {
        val x;
        val_init(&x);
        msgpack_pack_map(&x.pk, 3);
        pk_str(&x.pk, "v");
        msgpack_pack_int(&x.pk, v);
        pk_str(&x.pk, "m");
        msgpack_pack_true(&x.pk);
        pk_str(&x.pk, "pad");
        msgpack_pack_str(&x.pk, sizeof(pad));
        msgpack_pack_str_body(&x.pk, pad, sizeof(pad));
        ck_assert_int_eq(agate_put_async(c, "slow", "k", 1, x.sb.data, x.sb.size, on_reply, &n), 0);
        msgpack_sbuffer_destroy(&x.sb);
        if (v % 256 == 0)
            ck_assert_int_eq(agate_wait(c, 30000 * scale()), 0);
    }
    ck_assert_int_eq(agate_wait(c, 30000 * scale()), 0);
    ck_assert_int_eq(n.ok, N);
    tu_sleep_ms(500); /* the server's tick finds the paused CQ behind its journal */
    /* now read: what was sent, the close, the re-registration's replay */
    int64_t end = tu_now_ms() + 20000 * scale();
    while (tu_now_ms() < end && (s.n == 0 || s.e[s.n - 1].v != N))
        ck_assert_int_ge(agate_cq_wait(cq, 100), 0);
    agate_cq_stats st;
    agate_cq_stats_get(cq, &st);
    size_t gaps = 0, events = 0;
    long last = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.e[i].op == AGATE_CQ_GAP) {
            gaps++;
            continue;
        }
        ck_assert_msg(s.e[i].v > last, "v%ld after v%ld", s.e[i].v, last);
        /* the first write is a CREATE; after a gap it may be gone */
        ck_assert_int_eq(s.e[i].op, last == 0 && !gaps ? AGATE_CQ_CREATE : AGATE_CQ_UPDATE);
        last = s.e[i].v;
        events++;
    }
    fprintf(stdout, "[slow] %d puts; %zu events, %zu gaps; closed by the member %llu, "
                    "registrations %llu, replays %llu\n",
            N, events, gaps, (unsigned long long)st.closed_by_member,
            (unsigned long long)st.registrations, (unsigned long long)st.replays);
    fflush(stdout);
    ck_assert_int_eq(last, N); /* the last write arrived */
    ck_assert_msg(events < N, "every event arrived: the subscriber was not slow enough to test");
    ck_assert_msg(gaps >= 1, "events were lost without a GAP");
    /* still subscribed: a new write arrives */
    put_total(c, "slow", "after", 1);
    val x;
    val_wkv(&x, 0, 0, N + 1, true);
    ck_assert_int_eq(agate_put(c, "slow", "k", 1, x.sb.data, x.sb.size), 0);
    msgpack_sbuffer_destroy(&x.sb);
    size_t before = s.n;
    wait_n(cq, &s, before + 1, 10000);
    ck_assert_int_eq(s.e[s.n - 1].op, AGATE_CQ_UPDATE);
    ck_assert_int_eq(s.e[s.n - 1].v, N + 1);
    agate_cq_close(cq);
    free(s.e);
    agate_client_free(c);
    char why[512];
    bool clean = tu_server_sanitizer_clean(&slow, why, sizeof(why));
    ck_assert_int_eq(tu_server_stop(&slow, 15000 * scale()), 0);
    ck_assert_msg(clean, "agated: %s", why);
    tu_server_cleanup(&slow, false);
}
END_TEST

/* ======================================================================
 * A scripted fake server: what the client does with pushes a real member
 * would not send (malformed ones), and with replays, progress and a close
 * exactly where the test wants them.
 * ====================================================================== */

typedef struct fake {
    int port;
    pid_t pid;
    char addr[64];
} fake;

static int fk_send(int fd, msgpack_sbuffer *sb)
{
    int rc = tw_send_frame(fd, sb->data, sb->size);
    msgpack_sbuffer_clear(sb);
    return rc;
}

/* Reads a request: its id and opcode, or -1. */
static int64_t fk_request(int fd, uint32_t *op)
{
    uint8_t *body;
    uint32_t len;
    if (tw_read_frame(fd, 10000, &body, &len) != 1)
        return -1;
    int64_t id = -1;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)body, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size >= 3) {
        id = (int64_t)u.data.via.array.ptr[1].via.u64;
        *op = (uint32_t)u.data.via.array.ptr[2].via.u64;
    }
    msgpack_unpacked_destroy(&u);
    free(body);
    return id;
}

/* The start of a reply [1, id, 0, ...n results]. */
static void fk_reply_head(msgpack_packer *pk, int64_t id, uint32_t n)
{
    msgpack_pack_array(pk, 3 + n);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint64(pk, (uint64_t)id);
    msgpack_pack_uint8(pk, 0);
}

/* The start of a push [2, cq_id, kind, ...n items]. */
static void fk_push_head(msgpack_packer *pk, uint64_t cq_id, int kind, uint32_t n)
{
    msgpack_pack_array(pk, 3 + n);
    msgpack_pack_uint8(pk, 2);
    msgpack_pack_uint64(pk, cq_id);
    msgpack_pack_uint8(pk, (uint8_t)kind);
}

/* HELLO as agated answers it (stand-alone). */
static int fk_hello(int fd, msgpack_sbuffer *sb, msgpack_packer *pk)
{
    uint32_t op = 0;
    int64_t id = fk_request(fd, &op);
    if (id < 0 || op != 1)
        return -1;
    fk_reply_head(pk, id, 1);
    msgpack_pack_map(pk, 2);
    pk_str(pk, "server");
    pk_str(pk, "fake");
    pk_str(pk, "metadata_version");
    msgpack_pack_uint8(pk, 0);
    return fk_send(fd, sb);
}

/* CQ_OPEN answered with cq_id, heads [[0, h0], [1, h1]], no initial. */
static int fk_open(int fd, msgpack_sbuffer *sb, msgpack_packer *pk, uint64_t cq_id, uint64_t h0,
                   uint64_t h1)
{
    uint32_t op = 0;
    int64_t id = fk_request(fd, &op);
    if (id < 0 || op != 35)
        return -1;
    fk_reply_head(pk, id, 3);
    msgpack_pack_uint64(pk, cq_id);
    msgpack_pack_array(pk, 2);
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint64(pk, h0);
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint64(pk, h1);
    msgpack_pack_array(pk, 0);
    return fk_send(fd, sb);
}

/* PUSH_CQ_EVENT [bucket, seq, op, key, {"total": total}]; a NULL key packs
 * an integer instead (malformed). */
static int fk_event(int fd, msgpack_sbuffer *sb, msgpack_packer *pk, uint64_t cq_id,
                    uint64_t bucket, uint64_t seq, int op, const char *key, long total)
{
    fk_push_head(pk, cq_id, 4, 5);
    msgpack_pack_uint64(pk, bucket);
    msgpack_pack_uint64(pk, seq);
    msgpack_pack_uint8(pk, (uint8_t)op);
    if (key)
        pk_str(pk, key);
    else
        msgpack_pack_int(pk, 42); /* not a key */
    msgpack_pack_map(pk, 1);
    pk_str(pk, "total");
    msgpack_pack_long(pk, total);
    return fk_send(fd, sb);
}

/* The script: connection 0 is the client's own (REGION_DESCRIBE), then
 * one subscription after the other; each ends with something the client
 * must answer by re-registering, the last with the region gone. */
static void fk_script(int fd, int index)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (fk_hello(fd, &sb, &pk))
        goto out;
    uint32_t op = 0;
    int64_t id;
    switch (index) {
    case 0: /* REGION_DESCRIBE: two buckets */
        id = fk_request(fd, &op);
        if (id < 0 || op != 13)
            goto out;
        fk_reply_head(&pk, id, 1);
        msgpack_pack_map(&pk, 3);
        pk_str(&pk, "name");
        pk_str(&pk, "f");
        pk_str(&pk, "type");
        pk_str(&pk, "PARTITION");
        pk_str(&pk, "total_num_buckets");
        msgpack_pack_uint8(&pk, 2);
        fk_send(fd, &sb);
        goto out;
    case 1:
        if (fk_open(fd, &sb, &pk, 7, 0, 0))
            goto out;
        fk_event(fd, &sb, &pk, 7, 0, 1, 1, "k", 1);   /* CREATE k: delivered */
        fk_event(fd, &sb, &pk, 99, 0, 2, 1, "x", 0);  /* another CQ id: ignored */
        fk_event(fd, &sb, &pk, 7, 5, 3, 1, "y", 0);   /* bucket 5 of 2: reset */
        break;
    case 2:
        if (fk_open(fd, &sb, &pk, 8, 0, 0))
            goto out;
        fk_push_head(&pk, 8, 5, 2); /* REPLAY bucket 0 from 0: no gap */
        msgpack_pack_uint8(&pk, 0);
        msgpack_pack_uint8(&pk, 0);
        fk_send(fd, &sb);
        fk_event(fd, &sb, &pk, 8, 0, 1, 1, "k", 1);   /* delivered before: dropped */
        fk_event(fd, &sb, &pk, 8, 0, 2, 1, "k2", 2);  /* CREATE k2 */
        fk_push_head(&pk, 8, 99, 0);                  /* an unknown kind: ignored */
        fk_send(fd, &sb);
        fk_event(fd, &sb, &pk, 8, 0, 3, 2, NULL, 0);  /* a key that is no key: reset */
        break;
    case 3:
        if (fk_open(fd, &sb, &pk, 9, 0, 0))
            goto out;
        fk_push_head(&pk, 9, 5, 2); /* REPLAY bucket 1 from 10: nothing seen there: GAP */
        msgpack_pack_uint8(&pk, 1);
        msgpack_pack_uint8(&pk, 10);
        fk_send(fd, &sb);
        fk_push_head(&pk, 9, 6, 1); /* PROGRESS bucket 0 judged up to 100 */
        msgpack_pack_array(&pk, 1);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint8(&pk, 0);
        msgpack_pack_uint8(&pk, 100);
        fk_send(fd, &sb);
        fk_event(fd, &sb, &pk, 9, 0, 50, 2, "k", 50);  /* below the progress: dropped */
        fk_event(fd, &sb, &pk, 9, 0, 101, 2, "k", 101); /* UPDATE k */
        fk_push_head(&pk, 9, 7, 2); /* CLOSED: UNKNOWN_REGION */
        msgpack_pack_uint8(&pk, 11);
        pk_str(&pk, "the region was destroyed");
        fk_send(fd, &sb);
        break;
    default:
        break;
    }
    tw_wait_closed(fd, 10000);
out:
    msgpack_sbuffer_destroy(&sb);
}

static void fake_start(fake *f, int nconns)
{
    int lfd = tw_listen(&f->port, f->addr, sizeof(f->addr));
    fflush(stdout);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        signal(SIGPIPE, SIG_IGN);
        for (int i = 0; i < nconns; i++) {
            struct pollfd p = {.fd = lfd, .events = POLLIN};
            if (poll(&p, 1, 20000) <= 0)
                break;
            int fd = accept(lfd, NULL, NULL);
            if (fd < 0)
                break;
            fk_script(fd, i);
            close(fd);
        }
        _exit(0);
    }
    close(lfd);
    tu_track_pid(pid);
    f->pid = pid;
}

static void fake_stop(fake *f)
{
    kill(f->pid, SIGKILL);
    waitpid(f->pid, NULL, 0);
    tu_untrack_pid(f->pid);
}

START_TEST(pushes_from_a_scripted_server)
{
    fake f;
    fake_start(&f, 4);
    agate_options o;
    agate_options_init(&o);
    o.request_timeout_ms = 5000 * scale();
    agate_client *c = agate_client_new(&o);
    ck_assert_int_eq(agate_connect(c, f.addr), 0);
    sink s = {.field = "total"};
    agate_cq *cq = NULL;
    int rc = agate_cq_open(c, "f", "SELECT * FROM /f WHERE total > 0", NULL, 0, 0, on_ev, &s, &cq);
    ck_assert_msg(rc == 0, "cq_open: %d %s", rc, agate_errmsg(c));
    int64_t end = tu_now_ms() + 15000 * scale();
    while (rc >= 0 && tu_now_ms() < end)
        rc = agate_cq_wait(cq, 100);
    ck_assert_int_eq(rc, AGATE_EUNKNOWN_REGION);
    ck_assert_msg(strstr(agate_cq_errmsg(cq), "the region was destroyed"), "%s",
                  agate_cq_errmsg(cq));
    ck_assert_uint_eq(s.n, 5);
    expect(&s, 0, AGATE_CQ_CREATE, "k", 1);
    expect(&s, 1, AGATE_CQ_CREATE, "k2", 2);
    ck_assert(s.e[2].op == AGATE_CQ_GAP && s.e[2].bucket == 1 && s.e[2].seq == 10);
    expect(&s, 3, AGATE_CQ_UPDATE, "k", 101);
    ck_assert_int_eq(s.e[4].op, AGATE_CQ_ERROR);
    agate_cq_stats st;
    agate_cq_stats_get(cq, &st);
    ck_assert_uint_eq(st.duplicates, 2);
    ck_assert_uint_eq(st.gaps, 1);
    ck_assert_uint_eq(st.registrations, 3);
    ck_assert_int_eq(agate_cq_process(cq), AGATE_EUNKNOWN_REGION);
    agate_cq_close(cq);
    agate_client_free(c);
    free(s.e);
    fake_stop(&f);
}
END_TEST

/* ======================================================================
 * cluster: a locator and three members, writers, a CQ, faults
 * ====================================================================== */

#define MT_ARG "--member-timeout=1500"
#define CREGION "cqf"
#define MAXMEM 4
#define NWRITERS 2
#define KEYS_PER_WRITER 50
#define MAXVER 100000

static int request_ms(void) { return (3 * 1500 + 3000) * scale(); }

typedef struct cluster {
    tu_server loc;
    tu_server mem[MAXMEM];
    int n;
    char locators[64];
} cluster;

/* A client through the locators; req_ms 0: request_ms(). */
static agate_client *cl_client_t(cluster *cl, const char *name, int req_ms)
{
    agate_options o;
    agate_options_init(&o);
    o.request_timeout_ms = req_ms ? req_ms : request_ms();
    o.connect_timeout_ms = 2000 * scale();
    o.client_name = name;
    agate_client *c = agate_client_new(&o);
    ck_assert_ptr_nonnull(c);
    int rc = agate_connect_locator(c, cl->locators);
    ck_assert_msg(rc == 0, "connect_locator: %d %s", rc, agate_errmsg(c));
    return c;
}

static agate_client *cl_client(cluster *cl, const char *name) { return cl_client_t(cl, name, 0); }

static void cl_member(cluster *cl, int i)
{
    char name[16], larg[96];
    snprintf(name, sizeof(name), "cqm%d", i);
    snprintf(larg, sizeof(larg), "--locators=%s", cl->locators);
    const char *args[] = {larg, MT_ARG, NULL};
    ck_assert_msg(tu_server_start(&cl->mem[i], name, args) == 0, "cannot start member %d", i);
    if (i >= cl->n)
        cl->n = i + 1;
}

/* Members in the view, primaries held by each (by name), from CLUSTER_STATUS;
 * ready: no bucket below redundancy or without primary. */
typedef struct cstat {
    int nm;
    char name[MAXMEM][32];
    uint64_t prim[MAXMEM];
    bool ready;
    char reb[16];
} cstat;

static void status(agate_client *c, cstat *st)
{
    memset(st, 0, sizeof(*st));
    agate_buf b = {0};
    if (agate_cluster_status(c, &b))
        return;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)b.data, b.len, NULL) == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *ms = tw_map_get(&u.data, "members");
        for (uint32_t i = 0; ms && ms->type == MSGPACK_OBJECT_ARRAY && i < ms->via.array.size &&
                             st->nm < MAXMEM;
             i++) {
            const msgpack_object *m = &ms->via.array.ptr[i], *nm = tw_map_get(m, "name"),
                                 *p = tw_map_get(m, "primary_buckets");
            if (nm && nm->type == MSGPACK_OBJECT_STR)
                snprintf(st->name[st->nm], sizeof(st->name[0]), "%.*s", (int)nm->via.str.size,
                         nm->via.str.ptr);
            st->prim[st->nm++] = p && p->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? p->via.u64 : 0;
        }
        const msgpack_object *rs = tw_map_get(&u.data, "regions");
        for (uint32_t i = 0; rs && rs->type == MSGPACK_OBJECT_ARRAY && i < rs->via.array.size;
             i++) {
            const msgpack_object *r = &rs->via.array.ptr[i];
            if (!tw_obj_is_str(tw_map_get(r, "name"), CREGION))
                continue;
            const msgpack_object *below = tw_map_get(r, "buckets_below_redundancy"),
                                 *without = tw_map_get(r, "buckets_without_primary");
            st->ready = below && without && below->via.u64 == 0 && without->via.u64 == 0;
        }
        const msgpack_object *rb = tw_map_get(&u.data, "rebalance");
        const msgpack_object *state = rb ? tw_map_get(rb, "state") : NULL;
        if (state && state->type == MSGPACK_OBJECT_STR)
            snprintf(st->reb, sizeof(st->reb), "%.*s", (int)state->via.str.size,
                     state->via.str.ptr);
    }
    msgpack_unpacked_destroy(&u);
    agate_buf_free(&b);
}

/* Waits until n members are in the view with full redundancy. */
static bool wait_ready(agate_client *c, int n, int bound_ms)
{
    int64_t end = tu_now_ms() + bound_ms * scale();
    cstat st;
    do {
        status(c, &st);
        if (st.nm == n && st.ready)
            return true;
        tu_sleep_ms(100);
    } while (tu_now_ms() < end);
    return false;
}

static agate_client *cl_up(cluster *cl, int n)
{
    memset(cl, 0, sizeof(*cl));
    const char *largs[] = {"--role=locator", MT_ARG, NULL};
    ck_assert_msg(tu_server_start(&cl->loc, "cqloc", largs) == 0, "cannot start the locator");
    snprintf(cl->locators, sizeof(cl->locators), "127.0.0.1[%d]", cl->loc.port);
    for (int i = 0; i < n; i++)
        cl_member(cl, i);
    agate_client *c = cl_client(cl, "cq-admin");
    cstat st;
    int64_t end = tu_now_ms() + 20000 * scale();
    do {
        status(c, &st);
        if (st.nm == n)
            break;
        tu_sleep_ms(100);
    } while (tu_now_ms() < end);
    ck_assert_msg(st.nm == n, "%d members did not join", n);
    agate_region_config cfg;
    agate_region_config_init(&cfg, CREGION, AGATE_PARTITION_REDUNDANT);
    cfg.redundant_copies = 1;
    int rc = agate_region_create(c, &cfg);
    ck_assert_msg(rc == 0, "region_create: %d %s", rc, agate_errmsg(c));
    ck_assert_msg(wait_ready(c, n, 20000), "the region did not become fully redundant");
    return c;
}

static void cl_down(cluster *cl, agate_client *c)
{
    uint64_t told = 0;
    int rc = agate_shutdown_cluster(c, 1, &told);
    agate_client_free(c);
    ck_assert_msg(rc == 0, "shutdown");
    tu_server *all[MAXMEM + 1];
    int n = 0;
    for (int i = 0; i < cl->n; i++)
        all[n++] = &cl->mem[i];
    all[n++] = &cl->loc;
    bool ok = true;
    for (int i = 0; i < n; i++) {
        if (all[i]->pid <= 0)
            continue;
        int status = 0;
        if (tu_wait_child(all[i]->pid, 15000 * scale(), &status) != 1) {
            tu_server_kill(all[i]);
            ok = false;
            continue;
        }
        all[i]->pid = -1;
        char why[512];
        if (!tu_server_sanitizer_clean(all[i], why, sizeof(why))) {
            fprintf(stdout, "%s: %s\n", all[i]->name, why);
            ok = false;
        }
    }
    for (int i = 0; i < n; i++)
        tu_server_cleanup(all[i], !ok);
    ck_assert_msg(ok, "a process did not stop cleanly after SHUTDOWN");
}

/* ---- writers: sequential versions per key, "m" = v % 3 != 0 ------------- */

static bool matches(int v) { return v % 3 != 0; }

typedef struct writer {
    int id;
    agate_client *c;
    pthread_t th;
    atomic_int stop;
    unsigned seed;
    int tried[KEYS_PER_WRITER];
    /* per key and version: 1 acknowledged, 2 failed (may have been applied) */
    uint8_t *state; /* KEYS_PER_WRITER * MAXVER */
    atomic_long ok, failed;
} writer;

static void *writer_main(void *arg)
{
    writer *w = arg;
    while (!atomic_load(&w->stop)) {
        int k = (int)(rand_r(&w->seed) % KEYS_PER_WRITER);
        if (w->tried[k] + 1 >= MAXVER)
            continue;
        int v = ++w->tried[k];
        char key[32];
        snprintf(key, sizeof(key), "w%d-%03d", w->id, k);
        val x;
        val_wkv(&x, w->id, k, v, matches(v));
        int rc = agate_put(w->c, CREGION, key, strlen(key), x.sb.data, x.sb.size);
        msgpack_sbuffer_destroy(&x.sb);
        w->state[k * MAXVER + v] = rc == 0 ? 1 : 2;
        atomic_fetch_add(rc == 0 ? &w->ok : &w->failed, 1);
        tu_sleep_ms(1);
    }
    return NULL;
}

/* req_ms: the writers' request timeout (0: long enough to ride a failover;
 * shorter makes puts fail during it, so some writes are unknown) */
static void writers_start(cluster *cl, writer *ws, int req_ms)
{
    for (int i = 0; i < NWRITERS; i++) {
        memset(&ws[i], 0, sizeof(ws[i]));
        ws[i].id = i;
        ws[i].seed = (unsigned)tu_now_ms() + (unsigned)i;
        ws[i].state = calloc((size_t)KEYS_PER_WRITER * MAXVER, 1);
        ck_assert_ptr_nonnull(ws[i].state);
        ws[i].c = cl_client_t(cl, "cq-writer", req_ms);
        ck_assert_int_eq(pthread_create(&ws[i].th, NULL, writer_main, &ws[i]), 0);
    }
}

static void writers_stop(writer *ws)
{
    for (int i = 0; i < NWRITERS; i++)
        atomic_store(&ws[i].stop, 1);
    for (int i = 0; i < NWRITERS; i++) {
        pthread_join(ws[i].th, NULL);
        agate_client_free(ws[i].c);
    }
}

/* ---- the CQ's collector thread ------------------------------------------ */

typedef struct collector {
    cluster *cl;
    pthread_t th;
    atomic_int stop;
    atomic_int opened;  /* 1 open, -1 failed */
    atomic_long count;  /* events so far */
    sink s;
    agate_cq_stats stats;
    int64_t max_gap_ms; /* longest silence between events while writers ran */
    atomic_llong gap_from, gap_to; /* the window in which max_gap_ms is measured */
    char err[256];
} collector;

static void *collector_main(void *arg)
{
    collector *co = arg;
    agate_client *c = cl_client(co->cl, "cq-collector");
    agate_cq *cq = NULL;
    co->s.field = "v";
    int rc = agate_cq_open(c, "faults", "SELECT * FROM /" CREGION " o WHERE o.m = true", NULL, 0,
                           0, on_ev, &co->s, &cq);
    if (rc) {
        snprintf(co->err, sizeof(co->err), "cq_open: %d %s", rc, agate_errmsg(c));
        atomic_store(&co->opened, -1);
        agate_client_free(c);
        return NULL;
    }
    atomic_store(&co->opened, 1);
    int64_t last = tu_now_ms();
    while (!atomic_load(&co->stop)) {
        rc = agate_cq_wait(cq, 100);
        if (rc < 0) {
            snprintf(co->err, sizeof(co->err), "cq_wait: %d %s", rc, agate_cq_errmsg(cq));
            break;
        }
        int64_t now = tu_now_ms();
        if (rc > 0) {
            int64_t from = atomic_load(&co->gap_from), to = atomic_load(&co->gap_to);
            if (now >= from && last <= (to ? to : now) && now - last > co->max_gap_ms)
                co->max_gap_ms = now - last;
            last = now;
        }
        atomic_store(&co->count, (long)co->s.n);
    }
    agate_cq_stats_get(cq, &co->stats);
    agate_cq_close(cq);
    agate_client_free(c);
    return NULL;
}

static void collector_start(cluster *cl, collector *co)
{
    memset(co, 0, sizeof(*co));
    co->cl = cl;
    ck_assert_int_eq(pthread_create(&co->th, NULL, collector_main, co), 0);
    int64_t end = tu_now_ms() + 20000 * scale();
    while (atomic_load(&co->opened) == 0 && tu_now_ms() < end)
        tu_sleep_ms(20);
    ck_assert_msg(atomic_load(&co->opened) == 1, "the CQ did not open: %s", co->err);
}

/* Waits until the collector saw no event for quiet_ms, then stops it. */
static void collector_stop(collector *co, int quiet_ms, int bound_ms)
{
    int64_t end = tu_now_ms() + bound_ms * scale();
    long n = -1;
    int64_t since = tu_now_ms();
    while (tu_now_ms() < end) {
        long now_n = atomic_load(&co->count);
        if (now_n != n) {
            n = now_n;
            since = tu_now_ms();
        } else if (tu_now_ms() - since >= quiet_ms) {
            break;
        }
        tu_sleep_ms(50);
    }
    atomic_store(&co->stop, 1);
    pthread_join(co->th, NULL);
}

/* ---- the checker ----------------------------------------------------------- */

typedef struct verdict {
    long events, expected, lost, unexpected, dup_seq, gaps, maybe;
    char first[512];
} verdict;

static void note(verdict *vd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(verdict *vd, const char *fmt, ...)
{
    if (vd->first[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(vd->first, sizeof(vd->first), fmt, ap);
    va_end(ap);
}

static int cmp_bs(const void *a, const void *b)
{
    const ev *x = a, *y = b;
    if (x->bucket != y->bucket)
        return x->bucket < y->bucket ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The events of one key, in arrival order, against its writes (versions
 * 1..tried, each acknowledged or failed). Walks the versions with the
 * state "the entry matches" and consumes the events each applied write
 * must produce:
 *   no match -> match: CREATE v, match -> match: UPDATE v,
 *   match -> no match: DESTROY, else nothing.
 * A failed write was applied iff the next event is the one it would
 * produce. After a failed write the state is uncertain (its primary may
 * have delivered it and died before the copy had it), so the next
 * acknowledged write may come as CREATE or UPDATE, or its DESTROY may be
 * missing when the state was already "no match". */
static void check_key(const writer *w, int k, const ev **es, size_t n, verdict *vd)
{
    const char *key_fmt = "w%d-%03d";
    char key[32];
    snprintf(key, sizeof(key), key_fmt, w->id, k);
    bool state = false, uncertain = false;
    size_t i = 0;
    for (int v = 1; v <= w->tried[k]; v++) {
        uint8_t st = w->state[k * MAXVER + v];
        bool m = matches(v);
        const ev *next = i < n ? es[i] : NULL;
        if (st == 2 || st == 0) { /* failed: applied iff its event is next */
            if (m && next && next->v == v &&
                (next->op == AGATE_CQ_CREATE || next->op == AGATE_CQ_UPDATE)) {
                i++;
                state = true;
                vd->maybe++;
            } else if (!m && next && next->op == AGATE_CQ_DESTROY && (state || uncertain)) {
                i++;
                state = false;
                vd->maybe++;
            }
            uncertain = true;
            continue;
        }
        /* acknowledged */
        if (m) {
            vd->expected++;
            if (!next || next->v != v ||
                (next->op != AGATE_CQ_CREATE && next->op != AGATE_CQ_UPDATE) ||
                (!uncertain && next->op != (state ? AGATE_CQ_UPDATE : AGATE_CQ_CREATE))) {
                vd->lost++;
                note(vd, "key %s: acknowledged v%d (match) expects %s v%d, next event is %s v%ld",
                     key, v, state ? "UPDATE" : "CREATE", v, next ? opname(next->op) : "none",
                     next ? next->v : -1);
                return;
            }
            i++;
        } else if (state || uncertain) {
            if (next && next->op == AGATE_CQ_DESTROY) {
                vd->expected++;
                i++;
            } else if (!uncertain) {
                vd->expected++;
                vd->lost++;
                note(vd, "key %s: acknowledged v%d (no match) after a match expects DESTROY, next "
                         "event is %s v%ld",
                     key, v, next ? opname(next->op) : "none", next ? next->v : -1);
                return;
            }
        }
        state = m;
        uncertain = false;
    }
    if (i < n) {
        vd->unexpected += (long)(n - i);
        note(vd, "key %s: %zu event(s) beyond its writes, the first %s v%ld (last version %d)",
             key, n - i, opname(es[i]->op), es[i]->v, w->tried[k]);
    }
}

static void check_stream(const writer *ws, collector *co, verdict *vd)
{
    memset(vd, 0, sizeof(*vd));
    sink *s = &co->s;
    vd->events = (long)s->n;
    /* no (bucket, seq) twice */
    ev *sorted = malloc((s->n ? s->n : 1) * sizeof(*sorted));
    ck_assert_ptr_nonnull(sorted);
    size_t m = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->e[i].op == AGATE_CQ_GAP) {
            vd->gaps++;
            uint64_t before = 0;
            for (size_t j = 0; j < i; j++)
                if (s->e[j].bucket == s->e[i].bucket && s->e[j].op != AGATE_CQ_GAP &&
                    s->e[j].seq > before)
                    before = s->e[j].seq;
            note(vd, "GAP in bucket %u: events complete only after seq %llu; the last event "
                     "delivered for it had seq %llu",
                 s->e[i].bucket, (unsigned long long)s->e[i].seq, (unsigned long long)before);
        }
        else if (s->e[i].op >= AGATE_CQ_CREATE && s->e[i].op <= AGATE_CQ_DESTROY)
            sorted[m++] = s->e[i];
        else
            note(vd, "unexpected %s event", opname(s->e[i].op));
    }
    qsort(sorted, m, sizeof(*sorted), cmp_bs);
    for (size_t i = 1; i < m; i++)
        if (sorted[i].bucket == sorted[i - 1].bucket && sorted[i].seq == sorted[i - 1].seq) {
            vd->dup_seq++;
            note(vd, "bucket %u seq %llu delivered twice (key %s)", sorted[i].bucket,
                 (unsigned long long)sorted[i].seq, sorted[i].key);
        }
    free(sorted);
    /* per key */
    const ev **es = malloc((s->n ? s->n : 1) * sizeof(*es));
    ck_assert_ptr_nonnull(es);
    for (int wi = 0; wi < NWRITERS; wi++)
        for (int k = 0; k < KEYS_PER_WRITER; k++) {
            char key[32];
            snprintf(key, sizeof(key), "w%d-%03d", wi, k);
            size_t n = 0;
            for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->e[i].key, key) == 0)
                    es[n++] = &s->e[i];
            check_key(&ws[wi], k, es, n, vd);
        }
    free(es);
}

static void report(const char *tag, const writer *ws, const collector *co, const verdict *vd)
{
    long ok = 0, failed = 0;
    for (int i = 0; i < NWRITERS; i++) {
        ok += atomic_load(&ws[i].ok);
        failed += atomic_load(&ws[i].failed);
    }
    fprintf(stdout,
            "[%s] puts %ld acknowledged, %ld failed; events %ld (expected from acknowledged "
            "writes %ld, from failed writes %ld); lost %ld, unexpected %ld, duplicate seqs %ld, "
            "gaps %ld; client dropped %llu duplicates, %llu replays, %llu registrations, %llu "
            "broken subscriptions; longest silence of the CQ during the fault %lld ms\n",
            tag, ok, failed, vd->events, vd->expected, vd->maybe, vd->lost, vd->unexpected,
            vd->dup_seq, vd->gaps, (unsigned long long)co->stats.duplicates,
            (unsigned long long)co->stats.replays, (unsigned long long)co->stats.registrations,
            (unsigned long long)co->stats.reconnects, (long long)co->max_gap_ms);
    fflush(stdout);
}

static void expect_clean(const writer *ws, collector *co, const char *tag)
{
    ck_assert_msg(!co->err[0], "%s: %s", tag, co->err);
    verdict vd;
    check_stream(ws, co, &vd);
    report(tag, ws, co, &vd);
    ck_assert_msg(!vd.first[0] && vd.lost == 0 && vd.unexpected == 0 && vd.dup_seq == 0 &&
                      vd.gaps == 0,
                  "%s: %s", tag, vd.first);
    ck_assert_msg(vd.expected > 100, "%s: only %ld events expected: the writers did little", tag,
                  vd.expected);
}

static int most_primaries(agate_client *c, cluster *cl)
{
    cstat st;
    status(c, &st);
    int best = -1;
    uint64_t most = 0;
    for (int i = 0; i < st.nm; i++)
        for (int j = 0; j < cl->n; j++)
            if (strcmp(st.name[i], cl->mem[j].name) == 0 && st.prim[i] > most) {
                most = st.prim[i];
                best = j;
            }
    return best;
}

static void kill_case(const char *tag, int writer_req_ms)
{
    cluster cl;
    agate_client *c = cl_up(&cl, 3);
    static writer ws[NWRITERS];
    static collector co;
    collector_start(&cl, &co);
    writers_start(&cl, ws, writer_req_ms);
    tu_sleep_ms(1500);
    int victim = most_primaries(c, &cl);
    ck_assert_int_ge(victim, 0);
    atomic_store(&co.gap_from, tu_now_ms());
    tu_server_kill(&cl.mem[victim]);
    int64_t t_kill = tu_now_ms();
    fprintf(stdout, "[%s] SIGKILL %s\n", tag, cl.mem[victim].name);
    /* the view loses it and redundancy comes back on the other two */
    bool back = wait_ready(c, 2, 30000);
    int64_t t_back = tu_now_ms();
    tu_sleep_ms(1500); /* writing on after the failover */
    atomic_store(&co.gap_to, tu_now_ms());
    writers_stop(ws);
    collector_stop(&co, 1500, 30000);
    ck_assert_msg(back, "redundancy not restored after the kill");
    fprintf(stdout, "[%s] redundancy restored %lld ms after the kill\n", tag,
            (long long)(t_back - t_kill));
    expect_clean(ws, &co, tag);
    ck_assert_msg(co.stats.replays > 0, "no REPLAY after the failover");
    for (int i = 0; i < NWRITERS; i++)
        free(ws[i].state);
    free(co.s.e);
    cl_down(&cl, c);
}

START_TEST(cq_survives_sigkill_of_a_primary)
{
    kill_case("kill", 0);
}
END_TEST

/* The same with writers whose puts give up after 800 ms: puts in flight
 * during the failover fail, and their events may or may not come (the
 * checker accepts either, but nothing acknowledged may be missing). */
START_TEST(cq_survives_sigkill_with_failing_writes)
{
    kill_case("kill-fail", 800 * scale());
}
END_TEST

START_TEST(cq_follows_join_and_rebalance)
{
    cluster cl;
    agate_client *c = cl_up(&cl, 2);
    static writer ws[NWRITERS];
    static collector co;
    collector_start(&cl, &co);
    writers_start(&cl, ws, 0);
    tu_sleep_ms(1000);
    atomic_store(&co.gap_from, tu_now_ms());
    cl_member(&cl, 2);
    ck_assert_msg(wait_ready(c, 3, 30000), "the third member did not join");
    agate_buf b = {0};
    int rc = agate_rebalance(c, 0, &b);
    ck_assert_msg(rc == 0, "rebalance: %d %s", rc, agate_errmsg(c));
    agate_buf_free(&b);
    int64_t t0 = tu_now_ms(), end = t0 + 30000 * scale();
    cstat st;
    do {
        tu_sleep_ms(100);
        status(c, &st);
    } while (strcmp(st.reb, "done") != 0 && tu_now_ms() < end);
    ck_assert_msg(strcmp(st.reb, "done") == 0, "rebalance not done: %s", st.reb);
    uint64_t prim_new = 0;
    for (int i = 0; i < st.nm; i++)
        if (strcmp(st.name[i], cl.mem[2].name) == 0)
            prim_new = st.prim[i];
    fprintf(stdout, "[rebal] rebalance done in %lld ms; the new member holds %llu primaries\n",
            (long long)(tu_now_ms() - t0), (unsigned long long)prim_new);
    tu_sleep_ms(1500);
    atomic_store(&co.gap_to, tu_now_ms());
    writers_stop(ws);
    collector_stop(&co, 1500, 30000);
    ck_assert_msg(prim_new > 0, "the rebalance moved no primary to the new member");
    expect_clean(ws, &co, "rebal");
    for (int i = 0; i < NWRITERS; i++)
        free(ws[i].state);
    free(co.s.e);
    cl_down(&cl, c);
}
END_TEST

/* The locator dies while the CQ runs: the subscriptions go on, the CQ
 * fetches the map from the members meanwhile, and once the locator is back
 * (same directory and port) its map watch resumes, so a member that joins
 * afterwards gets a subscription too and a rebalance onto it loses
 * nothing. */
START_TEST(cq_rides_a_locator_restart)
{
    cluster cl;
    agate_client *c = cl_up(&cl, 2);
    static writer ws[NWRITERS];
    static collector co;
    collector_start(&cl, &co);
    writers_start(&cl, ws, 0);
    tu_sleep_ms(1000);
    int port = cl.loc.port;
    tu_server_kill(&cl.loc);
    tu_sleep_ms(2500); /* writes and events go on without it */
    long mid = atomic_load(&co.count);
    char parg[32];
    snprintf(parg, sizeof(parg), "--port=%d", port);
    const char *largs[] = {"--role=locator", MT_ARG, parg, NULL};
    ck_assert_msg(tu_server_start_in(&cl.loc, "cqloc", cl.loc.dir, largs) == 0,
                  "cannot restart the locator");
    ck_assert_msg(wait_ready(c, 2, 30000), "the members did not come back to the locator");
    cl_member(&cl, 2);
    ck_assert_msg(wait_ready(c, 3, 30000), "the third member did not join");
    agate_buf b = {0};
    int rc = agate_rebalance(c, 0, &b);
    ck_assert_msg(rc == 0, "rebalance: %d %s", rc, agate_errmsg(c));
    agate_buf_free(&b);
    int64_t end = tu_now_ms() + 30000 * scale();
    cstat st;
    do {
        tu_sleep_ms(100);
        status(c, &st);
    } while (strcmp(st.reb, "done") != 0 && tu_now_ms() < end);
    ck_assert_msg(strcmp(st.reb, "done") == 0, "rebalance not done: %s", st.reb);
    tu_sleep_ms(1500);
    writers_stop(ws);
    collector_stop(&co, 1500, 30000);
    fprintf(stdout, "[locator] %ld events before the restart\n", mid);
    expect_clean(ws, &co, "locator");
    ck_assert_msg(co.stats.registrations >= 3,
                  "the CQ did not register on the member that joined after the locator "
                  "restart (%llu registrations)",
                  (unsigned long long)co.stats.registrations);
    for (int i = 0; i < NWRITERS; i++)
        free(ws[i].state);
    free(co.s.e);
    cl_down(&cl, c);
}
END_TEST

static Suite *cq_suite(void)
{
    Suite *s = suite_create("cq");
    TCase *tc = tu_tcase(s, "single", 120);
    tcase_add_unchecked_fixture(tc, start_server, stop_server);
    tcase_add_test(tc, transitions);
    tcase_add_test(tc, initial_results_and_params);
    tcase_add_test(tc, per_key_order);
    tcase_add_test(tc, close_and_list);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, region_destroyed_ends_cq);
    tcase_add_test(tc, slow_subscriber_gets_a_gap);
    tc = tu_tcase(s, "fake_server", 60);
    tcase_add_test(tc, pushes_from_a_scripted_server);
    tc = tu_tcase(s, "cluster", 240);
    tcase_add_test(tc, cq_survives_sigkill_of_a_primary);
    tcase_add_test(tc, cq_survives_sigkill_with_failing_writes);
    tcase_add_test(tc, cq_follows_join_and_rebalance);
    tcase_add_test(tc, cq_rides_a_locator_restart);
    return s;
}

int main(void)
{
    Suite *s = cq_suite();
    return tu_run(&s, 1);
}
