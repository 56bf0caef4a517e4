/* Fault tests of a REAL cluster (docs/cluster.md): an agated locator and
 * agated members on 127.0.0.1 (port 0, fresh directories), a region
 * PARTITION_REDUNDANT with redundant-copies=1 created through the locator,
 * and two writer threads (one libagate client each) putting keys
 * continuously while a member is killed, paused, added, or the locator is
 * killed and restarted.
 *
 * The invariant checked everywhere: a write that was acknowledged (the put
 * returned 0) is never lost. Each writer remembers, per key, the version of
 * its last acknowledged put and of its last attempted put; at the end every
 * key must read back a version in [acknowledged, attempted] (an attempt
 * that failed with a timeout may or may not have been applied, so a newer
 * value is fine; an older one or none at all is a lost write).
 *
 * Processes: every agated is spawned from the test's main thread (Check
 * forks each test; the servers get PR_SET_PDEATHSIG=SIGKILL and are
 * recorded by pid, see tests/lib/tu.h), so a failing assertion, whose
 * _exit ends the forked test, takes them down with it. A passing test stops
 * them with SHUTDOWN (locator included), requires exit status 0 and clean
 * sanitizer output, and removes their directories. A failing test keeps
 * the directories and prints them, the cluster status, the map entries of
 * the buckets of lost keys and the tails of every log (WARN/ERROR lines
 * first); lost keys carry the wall-clock time of their acknowledgement, in
 * the logs' format. AGATE_FAULTS_KEEP=1 keeps passing runs' directories.
 *
 * Timing: --member-timeout=1500 on every process; the clients' request
 * timeout is long enough to ride a failover (member timeout, the
 * locator's check, the new map, the client's backoff). */
#include <check.h>
#include <errno.h>
#include <msgpack.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agate/agate.h"
#include "common/hash.h"
#include "tu.h"
#include "tu_server.h"
#include "tu_wire.h"

#define MT_MS 1500 /* --member-timeout on every process */
#define MT_ARG "--member-timeout=1500"
#define REGION "faults"
#define NBUCKETS 113
#define MAXMEM 3
#define NWRITERS 2
#define MAXKEYS 200000 /* per writer */

static int scale(void) { return tu_timeout_scale(); }

/* Client request timeout: rides a failover (member timeout + a check of
 * member_timeout/2 + the new map + backoff up to 1 s), with room. */
static int request_ms(void) { return (3 * MT_MS + 3000) * scale(); }

/* ======================================================================
 * Failures: collected per case, reported with diagnostics at the end.
 * ====================================================================== */

typedef struct fcluster {
    const char *tag; /* case name, for messages */
    tu_server loc;
    tu_server mem[MAXMEM];
    int nstarted;          /* members started (mem[0..nstarted-1]) */
    char locators[64];     /* "127.0.0.1[port]" */
    char failures[8192];   /* collected failure messages */
    uint32_t lost_buckets[16];
    int nlost_buckets;
    bool diag_done;        /* diagnostics printed already */
    struct writer *ws;     /* running writers, if any */
} fcluster;

static void fail_note(fcluster *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_note(fcluster *cl, const char *fmt, ...)
{
    size_t n = strlen(cl->failures);
    if (n + 4 >= sizeof(cl->failures))
        return;
    if (n)
        cl->failures[n++] = '\n', cl->failures[n] = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cl->failures + n, sizeof(cl->failures) - n, fmt, ap);
    va_end(ap);
    fprintf(stdout, "[%s] FAILURE: %s\n", cl->tag, cl->failures + n);
    fflush(stdout);
}

static void diag(fcluster *cl);
static void writers_abandon(fcluster *cl);

/* Fails the test now (diagnostics first) if anything was noted. */
static void fail_if_noted(fcluster *cl)
{
    if (!cl->failures[0])
        return;
    if (!cl->diag_done)
        diag(cl);
    writers_abandon(cl);
    /* every process by pid (they would also die with this process); the
     * directories stay */
    tu_server_kill(&cl->loc);
    tu_server_cleanup(&cl->loc, true);
    for (int i = 0; i < cl->nstarted; i++) {
        tu_server_kill(&cl->mem[i]);
        tu_server_cleanup(&cl->mem[i], true);
    }
    ck_abort_msg("%s: %s", cl->tag, cl->failures);
}

/* An assertion that prints the diagnostics before failing. */
#define FCHECK(cl, cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fail_note((cl), __VA_ARGS__);                                                          \
            fail_if_noted(cl);                                                                     \
        }                                                                                          \
    } while (0)

/* ======================================================================
 * Values: a MessagePack str "w<writer>-<key>-v<version>|<filler>".
 * ====================================================================== */

#define FILLER "................................................................"

static size_t enc_str(uint8_t *out, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n > 255 || n + 2 > cap)
        return 0;
    if (n < 32) {
        out[0] = (uint8_t)(0xa0 | n);
        memcpy(out + 1, s, n);
        return n + 1;
    }
    out[0] = 0xd9;
    out[1] = (uint8_t)n;
    memcpy(out + 2, s, n);
    return n + 2;
}

/* The str in a MessagePack value into out (NUL-terminated); -1 if it is
 * not a str. */
static int dec_str(const uint8_t *p, size_t len, char *out, size_t cap)
{
    size_t off, n;
    if (len >= 1 && (p[0] & 0xe0) == 0xa0) {
        n = p[0] & 0x1f;
        off = 1;
    } else if (len >= 2 && p[0] == 0xd9) {
        n = p[1];
        off = 2;
    } else {
        return -1;
    }
    if (off + n != len || n + 1 > cap)
        return -1;
    memcpy(out, p + off, n);
    out[n] = 0;
    return 0;
}

static void key_of(char *out, size_t cap, int w, int k) { snprintf(out, cap, "w%d-%06d", w, k); }

static uint32_t bucket_of(const char *key) { return hash_bucket(hash_key(key, strlen(key)), NBUCKETS); }

/* ======================================================================
 * Cluster status (CLUSTER_STATUS, docs/cluster.md).
 * ====================================================================== */

typedef struct mstat {
    char name[64];
    uint64_t id, buckets, prim;
    char status[16];
} mstat;

typedef struct cstat {
    int rc;
    char err[256];
    uint64_t view_id, version;
    int nm;
    mstat m[8];
    int region; /* the region is listed */
    uint64_t below, without;
    char redundancy[16];
    int has_rebalance;
    char reb_state[16];
    char *text; /* printable form (malloc'd) */
} cstat;

static void cstat_free(cstat *s)
{
    free(s->text);
    s->text = NULL;
}

static void obj_str(const msgpack_object *o, char *out, size_t cap)
{
    out[0] = 0;
    if (o && o->type == MSGPACK_OBJECT_STR)
        snprintf(out, cap, "%.*s", (int)o->via.str.size, o->via.str.ptr);
}

static uint64_t obj_u64(const msgpack_object *o)
{
    return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64 : 0;
}

static char *print_obj(const msgpack_object *o)
{
    size_t cap = 256 * 1024;
    char *t = malloc(cap);
    if (t && msgpack_object_print_buffer(t, cap, *o) < 0)
        t[0] = 0;
    return t;
}

static char *print_buf(const agate_buf *b)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    char *t = NULL;
    if (msgpack_unpack_next(&u, (const char *)b->data, b->len, NULL) == MSGPACK_UNPACK_SUCCESS)
        t = print_obj(&u.data);
    msgpack_unpacked_destroy(&u);
    return t ? t : strdup("(not MessagePack)");
}

static void parse_rebalance(const msgpack_object *r, char *state, size_t cap)
{
    obj_str(tw_map_get(r, "state"), state, cap);
}

static int get_status(agate_client *c, cstat *s)
{
    memset(s, 0, sizeof(*s));
    agate_buf b = {0};
    s->rc = agate_cluster_status(c, &b);
    if (s->rc) {
        snprintf(s->err, sizeof(s->err), "%s", agate_errmsg(c));
        return s->rc;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)b.data, b.len, NULL) != MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP) {
        s->rc = -1;
        snprintf(s->err, sizeof(s->err), "CLUSTER_STATUS: not a map");
        msgpack_unpacked_destroy(&u);
        agate_buf_free(&b);
        return s->rc;
    }
    const msgpack_object *st = &u.data;
    s->text = print_obj(st);
    s->view_id = obj_u64(tw_map_get(st, "view_id"));
    s->version = obj_u64(tw_map_get(st, "metadata_version"));
    const msgpack_object *ms = tw_map_get(st, "members");
    if (ms && ms->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < ms->via.array.size && s->nm < 8; i++) {
            const msgpack_object *m = &ms->via.array.ptr[i];
            mstat *x = &s->m[s->nm++];
            obj_str(tw_map_get(m, "name"), x->name, sizeof(x->name));
            obj_str(tw_map_get(m, "status"), x->status, sizeof(x->status));
            x->id = obj_u64(tw_map_get(m, "member_id"));
            x->buckets = obj_u64(tw_map_get(m, "buckets"));
            x->prim = obj_u64(tw_map_get(m, "primary_buckets"));
        }
    const msgpack_object *rs = tw_map_get(st, "regions");
    if (rs && rs->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < rs->via.array.size; i++) {
            const msgpack_object *r = &rs->via.array.ptr[i];
            if (!tw_obj_is_str(tw_map_get(r, "name"), REGION))
                continue;
            s->region = 1;
            s->below = obj_u64(tw_map_get(r, "buckets_below_redundancy"));
            s->without = obj_u64(tw_map_get(r, "buckets_without_primary"));
            obj_str(tw_map_get(r, "redundancy"), s->redundancy, sizeof(s->redundancy));
        }
    const msgpack_object *rb = tw_map_get(st, "rebalance");
    if (rb && rb->type == MSGPACK_OBJECT_MAP) {
        s->has_rebalance = 1;
        parse_rebalance(rb, s->reb_state, sizeof(s->reb_state));
    }
    msgpack_unpacked_destroy(&u);
    agate_buf_free(&b);
    return 0;
}

static const mstat *status_member(const cstat *s, const char *name)
{
    for (int i = 0; i < s->nm; i++)
        if (strcmp(s->m[i].name, name) == 0)
            return &s->m[i];
    return NULL;
}

/* Full redundancy with exactly n members, all "up". */
static bool status_full(const cstat *s, int n)
{
    if (s->rc || s->nm != n || !s->region || s->below || s->without)
        return false;
    for (int i = 0; i < s->nm; i++)
        if (strcmp(s->m[i].status, "up") != 0)
            return false;
    return true;
}

static void status_line(const cstat *s, char *out, size_t cap)
{
    if (s->rc) {
        snprintf(out, cap, "status error %d: %s", s->rc, s->err);
        return;
    }
    int n = snprintf(out, cap, "view %llu version %llu, %d members [",
                     (unsigned long long)s->view_id, (unsigned long long)s->version, s->nm);
    for (int i = 0; i < s->nm && n > 0 && (size_t)n < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, "%s%s id %llu %s %llu buckets %llu primaries",
                      i ? ", " : "", s->m[i].name, (unsigned long long)s->m[i].id, s->m[i].status,
                      (unsigned long long)s->m[i].buckets, (unsigned long long)s->m[i].prim);
    if (n > 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, "], region %s: %llu below redundancy, %llu without primary (%s)",
                 s->region ? "listed" : "MISSING", (unsigned long long)s->below,
                 (unsigned long long)s->without, s->redundancy);
}

/* Polls until pred holds (or the bound). Returns the elapsed ms, or -1;
 * *last holds the last status either way. */
static int64_t wait_status(agate_client *c, cstat *last, int bound_ms,
                           bool (*pred)(const cstat *, const void *), const void *arg)
{
    int64_t t0 = tu_now_ms(), end = t0 + bound_ms;
    memset(last, 0, sizeof(*last));
    for (;;) {
        cstat_free(last);
        get_status(c, last);
        if (pred(last, arg))
            return tu_now_ms() - t0;
        if (tu_now_ms() >= end)
            return -1;
        tu_sleep_ms(50);
    }
}

static bool pred_full(const cstat *s, const void *arg) { return status_full(s, *(const int *)arg); }

static bool pred_members(const cstat *s, const void *arg)
{
    return s->rc == 0 && s->nm == *(const int *)arg;
}

static bool pred_gone(const cstat *s, const void *arg)
{
    return s->rc == 0 && status_member(s, (const char *)arg) == NULL;
}

/* ======================================================================
 * Processes
 * ====================================================================== */

static void cl_init(fcluster *cl, const char *tag)
{
    memset(cl, 0, sizeof(*cl));
    cl->tag = tag;
    cl->loc.pid = -1;
    for (int i = 0; i < MAXMEM; i++)
        cl->mem[i].pid = -1;
}

static void cl_start_locator(fcluster *cl, const char *port_arg)
{
    char name[32];
    snprintf(name, sizeof(name), "%.8sloc", cl->tag);
    const char *args[] = {"--role=locator", MT_ARG, port_arg, NULL};
    int rc = cl->loc.dir ? tu_server_start_in(&cl->loc, name, cl->loc.dir, args)
                         : tu_server_start(&cl->loc, name, args);
    FCHECK(cl, rc == 0, "cannot start the locator");
    if (!port_arg)
        snprintf(cl->locators, sizeof(cl->locators), "127.0.0.1[%d]", cl->loc.port);
}

static void cl_start_member(fcluster *cl, int i)
{
    char name[32], larg[96];
    snprintf(name, sizeof(name), "%.8sm%d", cl->tag, i);
    snprintf(larg, sizeof(larg), "--locators=%s", cl->locators);
    const char *args[] = {larg, MT_ARG, NULL};
    FCHECK(cl, tu_server_start(&cl->mem[i], name, args) == 0, "cannot start member %d", i);
    if (i >= cl->nstarted)
        cl->nstarted = i + 1;
}

static agate_client *cl_client(fcluster *cl, int req_ms)
{
    agate_options o;
    agate_options_init(&o);
    o.request_timeout_ms = req_ms;
    o.connect_timeout_ms = 2000 * scale();
    agate_client *c = agate_client_new(&o);
    FCHECK(cl, c != NULL, "agate_client_new");
    int rc = agate_connect_locator(c, cl->locators);
    FCHECK(cl, rc == 0, "agate_connect_locator(%s): %d %s", cl->locators, rc, agate_errmsg(c));
    return c;
}

/* Locator + n members, all joined; the region created and fully redundant;
 * a few keys put through c (the members know the region). Returns c. */
static agate_client *cl_up(fcluster *cl, int n)
{
    cl_start_locator(cl, NULL);
    for (int i = 0; i < n; i++)
        cl_start_member(cl, i);
    agate_client *c = cl_client(cl, request_ms());
    cstat st;
    char line[2048];
    /* every member has joined before the region is placed */
    int64_t t = wait_status(c, &st, 20000 * scale(), pred_members, &n);
    status_line(&st, line, sizeof(line));
    cstat_free(&st);
    FCHECK(cl, t >= 0, "%d members did not join: %s", n, line);
    agate_region_config cfg;
    agate_region_config_init(&cfg, REGION, AGATE_PARTITION_REDUNDANT);
    cfg.redundant_copies = 1;
    int rc = agate_region_create(c, &cfg);
    FCHECK(cl, rc == 0, "region_create: %d %s", rc, agate_errmsg(c));
    t = wait_status(c, &st, 20000 * scale(), pred_full, &n);
    status_line(&st, line, sizeof(line));
    bool spread = true;
    for (int i = 0; i < st.nm; i++)
        spread = spread && st.m[i].prim > 0;
    cstat_free(&st);
    FCHECK(cl, t >= 0, "the cluster did not come up with %d members and full redundancy: %s", n, line);
    FCHECK(cl, spread, "the region was placed without primaries on every member: %s", line);
    /* the members have the region: keys put through every primary */
    for (int i = 0; i < 60; i++) {
        char key[32], v[64];
        uint8_t val[80];
        snprintf(key, sizeof(key), "warm-%d", i);
        snprintf(v, sizeof(v), "warm-%d", i);
        size_t vl = enc_str(val, sizeof(val), v);
        int64_t end = tu_now_ms() + 5000 * scale();
        while ((rc = agate_put(c, REGION, key, strlen(key), val, vl)) != 0 && tu_now_ms() < end)
            tu_sleep_ms(50);
        FCHECK(cl, rc == 0, "warm-up put %s: %d %s", key, rc, agate_errmsg(c));
    }
    return c;
}

/* Every warm-up key still reads back (c may be any client). */
static void check_warm(fcluster *cl, agate_client *c)
{
    for (int i = 0; i < 60; i++) {
        char key[32], want[64], got[300];
        agate_buf b = {0};
        snprintf(key, sizeof(key), "warm-%d", i);
        snprintf(want, sizeof(want), "warm-%d", i);
        int rc = agate_get(c, REGION, key, strlen(key), &b);
        if (rc != 0)
            fail_note(cl, "warm-up key %s (bucket %u) lost: get = %d %s", key, bucket_of(key), rc,
                      agate_errmsg(c));
        else if (dec_str(b.data, b.len, got, sizeof(got)) || strcmp(got, want) != 0)
            fail_note(cl, "warm-up key %s has a wrong value", key);
        agate_buf_free(&b);
    }
}

static void wait_exit(tu_server *s, int ms)
{
    if (s->pid <= 0)
        return;
    int st = 0;
    if (tu_wait_child(s->pid, ms, &st) == 1) {
        s->exit_status = st;
        s->pid = -1;
    }
}

static bool exited_ok(const tu_server *s)
{
    return s->exit_status != -1 && WIFEXITED(s->exit_status) && WEXITSTATUS(s->exit_status) == 0;
}

static void check_clean(fcluster *cl, const tu_server *s)
{
    char why[1024];
    if (s->dir && !tu_server_sanitizer_clean(s, why, sizeof(why)))
        fail_note(cl, "%s (dir %s): sanitizer report on stderr: %s", s->name, s->dir, why);
}

/* SHUTDOWN (locator included) through c; each process must exit 0 with
 * clean sanitizer output. Frees c. Fails the test when something was
 * noted during the case; otherwise removes the directories. */
static void cl_finish(fcluster *cl, agate_client *c)
{
    if (cl->failures[0]) { /* while the cluster still runs */
        diag(cl);
        cl->diag_done = true;
    }
    uint64_t told = 0;
    int rc = agate_shutdown_cluster(c, 1, &told);
    if (rc != 0)
        fail_note(cl, "SHUTDOWN: %d %s", rc, agate_errmsg(c));
    agate_client_free(c);
    tu_server *all[MAXMEM + 1];
    int n = 0;
    for (int i = 0; i < cl->nstarted; i++)
        all[n++] = &cl->mem[i];
    all[n++] = &cl->loc;
    for (int i = 0; i < n; i++) {
        tu_server *s = all[i];
        if (s->pid <= 0)
            continue;
        wait_exit(s, 10000 * scale());
        if (s->pid > 0) {
            fail_note(cl, "%s (pid %ld) did not exit within %d ms of SHUTDOWN", s->name,
                      (long)s->pid, 10000 * scale());
            tu_server_kill(s);
        } else if (!exited_ok(s)) {
            fail_note(cl, "%s exited with %s %d after SHUTDOWN", s->name,
                      WIFEXITED(s->exit_status) ? "status" : "signal",
                      WIFEXITED(s->exit_status) ? WEXITSTATUS(s->exit_status)
                                                : WTERMSIG(s->exit_status));
        }
    }
    for (int i = 0; i < n; i++)
        check_clean(cl, all[i]);
    fail_if_noted(cl);
    const char *keep = getenv("AGATE_FAULTS_KEEP"); /* keep passing runs' logs too */
    for (int i = 0; i < n; i++)
        tu_server_cleanup(all[i], keep && *keep);
}

/* ======================================================================
 * Diagnostics
 * ====================================================================== */

static void print_tail(const char *path, int lines)
{
    char *t = tu_read_file(path, NULL);
    if (!t) {
        fprintf(stderr, "---- %s: (missing)\n", path);
        return;
    }
    size_t len = strlen(t);
    const char *p = t + len;
    int nl = 0;
    while (p > t && nl <= lines)
        if (*--p == '\n')
            nl++;
    if (p > t)
        p++;
    fprintf(stderr, "---- %s (last %d lines) ----\n%s\n", path, lines, p);
    free(t);
}

/* Log lines are "2026-01-01T00:00:00.000Z LEVEL message". */
static bool is_warning(const char *l, size_t len)
{
    return len > 30 && (strncmp(l + 25, "WARN", 4) == 0 || strncmp(l + 25, "ERROR", 5) == 0);
}

/* The WARN and ERROR lines of a log (the last max of them). */
static void print_warnings(const char *path, int max)
{
    char *t = tu_read_file(path, NULL);
    if (!t)
        return;
    int n = 0, i = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (char *l = t; l && *l;) {
            char *nl = strchr(l, '\n');
            size_t len = nl ? (size_t)(nl - l) : strlen(l);
            if (is_warning(l, len)) {
                if (pass == 0)
                    n++;
                else if (i++ >= n - max)
                    fprintf(stderr, "%.*s\n", (int)len, l);
            }
            l = nl ? nl + 1 : NULL;
        }
        if (pass == 0)
            fprintf(stderr, "---- %s: %d WARN/ERROR lines%s ----\n", path, n,
                    n > max ? " (the last ones)" : "");
    }
    free(t);
}

static void dump_server(const tu_server *s)
{
    if (!s->dir)
        return;
    char path[4400];
    fprintf(stderr, "==== %s: dir %s, pid %ld, port %d, exit status %d\n", s->name, s->dir,
            (long)s->pid, s->port, s->exit_status);
    snprintf(path, sizeof(path), "%s/%s.log", s->dir, s->name);
    print_warnings(path, 60);
    print_tail(path, 50);
    snprintf(path, sizeof(path), "%s/agated.stderr", s->dir);
    print_tail(path, 40);
}

/* The map entries of the buckets of lost keys, straight from the locator
 * (CLUSTER_MAP over the wire, no assertions: this runs while failing). */
static void dump_lost_buckets(fcluster *cl)
{
    if (!cl->nlost_buckets || cl->loc.pid <= 0)
        return;
    int fd = tw_connect(cl->loc.port);
    if (fd < 0)
        return;
    tw_msg m;
    tw_resp r;
    tw_req(&m, 1, 1, 4);
    tw_pack_cstr(&m.pk, "agate");
    msgpack_pack_uint8(&m.pk, 1);
    tw_pack_cstr(&m.pk, "faults-diag");
    msgpack_pack_nil(&m.pk);
    int ok = tw_msg_send(fd, &m) == 0 && tw_recv(fd, &r, 5000) == 1;
    tw_msg_free(&m);
    if (ok)
        tw_resp_free(&r);
    tw_req(&m, 2, 4, 0);
    ok = ok && tw_msg_send(fd, &m) == 0 && tw_recv(fd, &r, 5000) == 1;
    tw_msg_free(&m);
    if (ok) {
        const msgpack_object *map = r.nresults ? &r.results[0] : NULL;
        const msgpack_object *regions = tw_map_get(map, "regions");
        const msgpack_object *members = tw_map_get(map, "members");
        if (members) {
            char *t = print_obj(members);
            fprintf(stderr, "==== locator map: version %llu, members %s\n",
                    (unsigned long long)obj_u64(tw_map_get(map, "version")), t ? t : "?");
            free(t);
        }
        for (uint32_t i = 0; regions && regions->type == MSGPACK_OBJECT_ARRAY &&
                             i < regions->via.array.size;
             i++) {
            const msgpack_object *reg = &regions->via.array.ptr[i];
            if (reg->type != MSGPACK_OBJECT_ARRAY || reg->via.array.size < 5 ||
                !tw_obj_is_str(&reg->via.array.ptr[0], REGION))
                continue;
            const msgpack_object *bk = &reg->via.array.ptr[4];
            for (int j = 0; j < cl->nlost_buckets; j++) {
                uint32_t b = cl->lost_buckets[j];
                if (bk->type == MSGPACK_OBJECT_ARRAY && b < bk->via.array.size) {
                    char *t = print_obj(&bk->via.array.ptr[b]);
                    fprintf(stderr, "     bucket %u of a lost key: [term, [members], [init]] = %s\n", b,
                            t ? t : "?");
                    free(t);
                }
            }
        }
        tw_resp_free(&r);
    }
    close(fd);
}

static void diag(fcluster *cl)
{
    static int depth;
    if (depth++) /* a failure inside the diagnostics */
        return;
    fflush(stdout);
    fprintf(stderr, "======== diagnostics of %s (directories are kept) ========\n", cl->tag);
    if (cl->loc.pid > 0 && cl->locators[0]) {
        agate_options o;
        agate_options_init(&o);
        o.request_timeout_ms = 3000;
        o.connect_timeout_ms = 2000;
        agate_client *c = agate_client_new(&o);
        if (c && agate_connect_locator(c, cl->locators) == 0) {
            cstat st;
            get_status(c, &st);
            char line[2048];
            status_line(&st, line, sizeof(line));
            fprintf(stderr, "==== cluster status: %s\n%s\n", line, st.text ? st.text : "");
            cstat_free(&st);
            agate_buf b = {0};
            if (agate_rebalance_status(c, &b) == 0) {
                char *t = print_buf(&b);
                fprintf(stderr, "==== rebalance status: %s\n", t);
                free(t);
                agate_buf_free(&b);
            } else {
                fprintf(stderr, "==== rebalance status: %s\n", agate_errmsg(c));
            }
        } else {
            fprintf(stderr, "==== cluster status: cannot connect to the locator\n");
        }
        agate_client_free(c);
    }
    dump_lost_buckets(cl);
    dump_server(&cl->loc);
    for (int i = 0; i < cl->nstarted; i++)
        dump_server(&cl->mem[i]);
    fflush(stderr);
    depth--;
}

/* ======================================================================
 * Writers
 * ====================================================================== */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* As the servers' logs print times: 2026-01-01T00:00:00.000Z */
static void wall_str(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03dZ", (int)(ms % 1000));
}

typedef struct writer {
    int id;
    agate_client *c;
    pthread_t th;
    bool running; /* th was started */
    atomic_int stop;
    unsigned seed;
    /* per key: last acknowledged version (0: none) and last attempted one;
     * read by the main thread only after the join */
    int nkeys;
    int *acked, *tried;
    int64_t *ack_wall; /* wall clock (ms) of the last acknowledgement, for the logs */
    /* figures, read while running */
    atomic_long puts, ok, failed;
    atomic_long max_put_ms, max_gap_ms;
    atomic_llong last_ok_ms;
    pthread_mutex_t mu;
    char last_err[256];
    long err_by_code[24];
} writer;

static void *writer_main(void *arg)
{
    writer *w = arg;
    char key[32], v[200];
    uint8_t val[256];
    int64_t last_ok = tu_now_ms();
    while (!atomic_load(&w->stop)) {
        int k;
        if (w->nkeys > 0 && (w->nkeys >= MAXKEYS || rand_r(&w->seed) % 4 == 0))
            k = (int)(rand_r(&w->seed) % (unsigned)w->nkeys); /* overwrite one of ours */
        else
            k = w->nkeys++;
        int ver = ++w->tried[k];
        key_of(key, sizeof(key), w->id, k);
        snprintf(v, sizeof(v), "w%d-%06d-v%d|%s", w->id, k, ver, FILLER);
        size_t vl = enc_str(val, sizeof(val), v);
        int64_t t0 = tu_now_ms();
        int rc = agate_put(w->c, REGION, key, strlen(key), val, vl);
        int64_t t1 = tu_now_ms();
        atomic_fetch_add(&w->puts, 1);
        if (t1 - t0 > atomic_load(&w->max_put_ms))
            atomic_store(&w->max_put_ms, t1 - t0);
        if (rc == 0) {
            w->acked[k] = ver;
            w->ack_wall[k] = wall_ms();
            atomic_fetch_add(&w->ok, 1);
            if (t1 - last_ok > atomic_load(&w->max_gap_ms))
                atomic_store(&w->max_gap_ms, t1 - last_ok);
            last_ok = t1;
            atomic_store(&w->last_ok_ms, t1);
        } else {
            atomic_fetch_add(&w->failed, 1);
            pthread_mutex_lock(&w->mu);
            snprintf(w->last_err, sizeof(w->last_err), "put %s: %d %s", key, rc, agate_errmsg(w->c));
            if (-rc >= 0 && -rc < 24)
                w->err_by_code[-rc]++;
            pthread_mutex_unlock(&w->mu);
        }
        tu_sleep_ms(1); /* continuous, but leave the 2 CPUs to the members */
    }
    return NULL;
}

/* Before a failing test ends. In Check's fork mode its _exit ends the
 * writer threads (and PR_SET_PDEATHSIG the servers); with CK_FORK=no the
 * test longjmps out, so the writers must not outlive it. */
static void writers_abandon(fcluster *cl)
{
    writer *ws = cl->ws;
    const char *fork = getenv("CK_FORK");
    if (!ws)
        return;
    cl->ws = NULL;
    for (int i = 0; i < NWRITERS; i++)
        atomic_store(&ws[i].stop, 1);
    if (fork && strcmp(fork, "no") == 0)
        for (int i = 0; i < NWRITERS; i++)
            if (ws[i].running)
                pthread_join(ws[i].th, NULL);
}

static void writers_start(fcluster *cl, writer *ws)
{
    memset(ws, 0, NWRITERS * sizeof(*ws));
    for (int i = 0; i < NWRITERS; i++) {
        writer *w = &ws[i];
        w->id = i;
        w->seed = (unsigned)(tu_now_ms() * 7919 + i);
        w->acked = calloc(MAXKEYS, sizeof(int));
        w->tried = calloc(MAXKEYS, sizeof(int));
        w->ack_wall = calloc(MAXKEYS, sizeof(int64_t));
        FCHECK(cl, w->acked && w->tried && w->ack_wall, "out of memory");
        pthread_mutex_init(&w->mu, NULL);
        w->c = cl_client(cl, request_ms());
        atomic_store(&w->last_ok_ms, tu_now_ms());
        cl->ws = ws;
        FCHECK(cl, pthread_create(&w->th, NULL, writer_main, w) == 0, "pthread_create");
        w->running = true;
    }
}

static long writers_ok(writer *ws)
{
    long n = 0;
    for (int i = 0; i < NWRITERS; i++)
        n += atomic_load(&ws[i].ok);
    return n;
}

static void writers_stop(fcluster *cl, writer *ws)
{
    cl->ws = NULL;
    for (int i = 0; i < NWRITERS; i++)
        atomic_store(&ws[i].stop, 1);
    for (int i = 0; i < NWRITERS; i++) {
        pthread_join(ws[i].th, NULL);
        agate_client_free(ws[i].c);
        ws[i].c = NULL;
    }
}

static void writers_free(writer *ws)
{
    for (int i = 0; i < NWRITERS; i++) {
        free(ws[i].acked);
        free(ws[i].tried);
        free(ws[i].ack_wall);
        pthread_mutex_destroy(&ws[i].mu);
    }
}

typedef struct vres {
    long keys, acked_keys, puts, ok, failed, lost, regressed, bad, maybe_applied;
    long max_put_ms, max_gap_ms;
} vres;

static void note_lost_bucket(fcluster *cl, uint32_t b)
{
    for (int i = 0; i < cl->nlost_buckets; i++)
        if (cl->lost_buckets[i] == b)
            return;
    if (cl->nlost_buckets < 16)
        cl->lost_buckets[cl->nlost_buckets++] = b;
}

/* Reads every key the writers touched through c (get_all) and checks each
 * acknowledged version is there (or a newer attempted one). */
static void verify(fcluster *cl, agate_client *c, writer *ws, vres *vr)
{
    enum { BATCH = 256 };
    static char names[BATCH][32];
    agate_key keys[BATCH];
    agate_buf vals[BATCH];
    int reported = 0;
    memset(vr, 0, sizeof(*vr));
    for (int wi = 0; wi < NWRITERS; wi++) {
        writer *w = &ws[wi];
        vr->keys += w->nkeys;
        vr->puts += atomic_load(&w->puts);
        vr->ok += atomic_load(&w->ok);
        vr->failed += atomic_load(&w->failed);
        if (atomic_load(&w->max_put_ms) > vr->max_put_ms)
            vr->max_put_ms = atomic_load(&w->max_put_ms);
        if (atomic_load(&w->max_gap_ms) > vr->max_gap_ms)
            vr->max_gap_ms = atomic_load(&w->max_gap_ms);
        for (int k0 = 0; k0 < w->nkeys; k0 += BATCH) {
            int n = w->nkeys - k0 < BATCH ? w->nkeys - k0 : BATCH;
            for (int i = 0; i < n; i++) {
                key_of(names[i], sizeof(names[i]), wi, k0 + i);
                keys[i] = (agate_key){names[i], strlen(names[i])};
            }
            int rc = -1;
            for (int attempt = 0; attempt < 3 && rc != 0; attempt++) {
                rc = agate_get_all(c, REGION, keys, (size_t)n, vals);
                if (rc)
                    tu_sleep_ms(500);
            }
            if (rc != 0) {
                fail_note(cl, "get_all of %d keys from %s: %d %s", n, names[0], rc, agate_errmsg(c));
                return;
            }
            for (int i = 0; i < n; i++) {
                int k = k0 + i, acked = w->acked[k], tried = w->tried[k];
                char got[300] = "", *why = NULL;
                int gw = -1, gk = -1, gv = -1;
                vr->acked_keys += acked > 0;
                if (vals[i].data && (dec_str(vals[i].data, vals[i].len, got, sizeof(got)) ||
                                     sscanf(got, "w%d-%d-v%d|", &gw, &gk, &gv) != 3 || gw != wi ||
                                     gk != k)) {
                    vr->bad++;
                    why = "FOREIGN VALUE";
                } else if (!vals[i].data && acked) {
                    vr->lost++;
                    why = "LOST";
                } else if (vals[i].data && gv < acked) {
                    vr->regressed++;
                    why = "OLDER THAN ACKNOWLEDGED";
                } else if (vals[i].data && gv > tried) {
                    vr->bad++;
                    why = "NEVER WRITTEN VERSION";
                } else if (vals[i].data && gv > acked) {
                    vr->maybe_applied++; /* a timed-out attempt that was applied */
                }
                if (why) {
                    char when[40] = "never";
                    if (acked)
                        wall_str(w->ack_wall[k], when, sizeof(when));
                    note_lost_bucket(cl, bucket_of(names[i]));
                    if (reported++ < 20)
                        fprintf(stdout,
                                "[%s] %s: key %s (bucket %u): acknowledged v%d at %s, attempted "
                                "v%d, read %s%.40s\n",
                                cl->tag, why, names[i], bucket_of(names[i]), acked, when, tried,
                                vals[i].data ? "" : "nothing", got);
                }
                agate_buf_free(&vals[i]);
            }
        }
    }
    fflush(stdout);
    if (vr->lost || vr->regressed || vr->bad)
        fail_note(cl,
                  "acknowledged writes lost: %ld keys missing, %ld older than acknowledged, %ld "
                  "with a wrong value (of %ld keys, %ld acknowledged)",
                  vr->lost, vr->regressed, vr->bad, vr->keys, vr->acked_keys);
}

static void print_figures(const fcluster *cl, const vres *vr, writer *ws)
{
    fprintf(stdout,
            "[%s] keys %ld (acknowledged %ld); puts %ld: %ld acknowledged, %ld failed; lost %ld, "
            "older %ld, wrong %ld; timed-out puts applied %ld; longest put %ld ms, longest gap "
            "between acknowledgements %ld ms\n",
            cl->tag, vr->keys, vr->acked_keys, vr->puts, vr->ok, vr->failed, vr->lost,
            vr->regressed, vr->bad, vr->maybe_applied, vr->max_put_ms, vr->max_gap_ms);
    for (int i = 0; i < NWRITERS; i++)
        if (ws[i].last_err[0]) {
            fprintf(stdout, "[%s] writer %d failures by code:", cl->tag, i);
            for (int e = 0; e < 24; e++)
                if (ws[i].err_by_code[e])
                    fprintf(stdout, " %s=%ld", agate_strerror(-e), ws[i].err_by_code[e]);
            fprintf(stdout, "; last: %s\n", ws[i].last_err);
        }
    fflush(stdout);
}

/* Sleeps until at ms (tu_now_ms clock). */
static void sleep_until(int64_t at)
{
    int64_t d = at - tu_now_ms();
    if (d > 0)
        tu_sleep_ms((int)d);
}

/* Each writer got acknowledgements since `since` (tu_now_ms clock), within
 * bound_ms from now. */
static void expect_progress(fcluster *cl, writer *ws, int64_t since, int bound_ms, const char *when)
{
    int64_t end = tu_now_ms() + bound_ms;
    for (int i = 0; i < NWRITERS; i++) {
        while (atomic_load(&ws[i].last_ok_ms) <= since && tu_now_ms() < end)
            tu_sleep_ms(20);
        if (atomic_load(&ws[i].last_ok_ms) <= since) {
            pthread_mutex_lock(&ws[i].mu);
            fail_note(cl, "writer %d got no acknowledgement %s (last error: %s)", i, when,
                      ws[i].last_err);
            pthread_mutex_unlock(&ws[i].mu);
        }
    }
}

/* The size the cluster reports lies between the keys acknowledged and the
 * keys attempted (plus the warm-up keys and extra). */
static void check_size(fcluster *cl, agate_client *c, const vres *vr, long extra)
{
    uint64_t size = 0;
    int rc = agate_size(c, REGION, &size);
    if (rc)
        fail_note(cl, "size: %d %s", rc, agate_errmsg(c));
    else if ((long)size < vr->acked_keys + 60 || (long)size > vr->keys + 60 + extra)
        fail_note(cl, "size %llu outside [%ld, %ld]", (unsigned long long)size, vr->acked_keys + 60,
                  vr->keys + 60 + extra);
}

/* ======================================================================
 * 1. SIGKILL one of three members under writers
 * ====================================================================== */

START_TEST(kill_one_of_three_under_writers)
{
    fcluster cl;
    cl_init(&cl, "kill");
    agate_client *c = cl_up(&cl, 3);
    static writer ws[NWRITERS];
    writers_start(&cl, ws);
    tu_sleep_ms(1000);
    long before = writers_ok(ws);
    FCHECK(&cl, before > 0, "no write acknowledged before the kill");

    tu_server *victim = &cl.mem[1];
    tu_server_kill(victim);
    int64_t t_kill = tu_now_ms();
    /* the locator removes it: member timeout plus its check */
    cstat st;
    char line[2048];
    int64_t removed = wait_status(c, &st, (2 * MT_MS + 5000) * scale(), pred_gone, victim->name);
    status_line(&st, line, sizeof(line));
    cstat_free(&st);
    if (removed < 0)
        fail_note(&cl, "the killed member %s is still in the view after %d ms: %s", victim->name,
                  (2 * MT_MS + 5000) * scale(), line);
    else
        removed = tu_now_ms() - t_kill;
    /* writers keep going; their acknowledgements resume after the failover */
    int64_t t_removed = tu_now_ms();
    expect_progress(&cl, ws, t_removed, request_ms(), "after the failover");
    /* two members left: every bucket gets its copy back on the other
     * (watched while the writers go on, then waited for) */
    int two = 2;
    int64_t full = -1;
    while (tu_now_ms() < t_kill + 4000) {
        if (full < 0) {
            get_status(c, &st);
            if (status_full(&st, 2))
                full = tu_now_ms() - t_kill;
            cstat_free(&st);
        }
        tu_sleep_ms(50);
    }
    writers_stop(&cl, ws);
    long after = writers_ok(ws) - before;

    vres vr;
    verify(&cl, c, ws, &vr);
    check_warm(&cl, c);
    check_size(&cl, c, &vr, 0);

    int64_t bound = 20000 * scale() - (tu_now_ms() - t_kill);
    if (wait_status(c, &st, bound > 0 ? (int)bound : 0, pred_full, &two) < 0)
        fail_note(&cl, "redundancy not restored within %d ms of the kill: %s",
                  (int)(tu_now_ms() - t_kill), (status_line(&st, line, sizeof(line)), line));
    else if (full < 0)
        full = tu_now_ms() - t_kill;
    status_line(&st, line, sizeof(line));
    cstat_free(&st);
    print_figures(&cl, &vr, ws);
    fprintf(stdout,
            "[%s] %ld acknowledged before the kill, %ld after; member removed %lld ms after the "
            "kill; full redundancy (2 members) %lld ms after the kill; %s\n",
            cl.tag, before, after, (long long)removed, (long long)full, line);
    fflush(stdout);
    writers_free(ws);
    cl_finish(&cl, c);
}
END_TEST

/* ======================================================================
 * 2. SIGSTOP a member past member-timeout, SIGCONT: it must not serve
 *    stale data or take writes, and rejoins fresh
 * ====================================================================== */

#define NPROBES 4

/* Index of the member that is primary for key (the one that does not
 * REDIRECT), or -1. */
static int primary_of(fcluster *cl, const int *fds, const char *key)
{
    int who = -1;
    for (int i = 0; i < cl->nstarted; i++) {
        uint8_t *out = NULL;
        size_t len = 0;
        int st = tw_get_raw(fds[i], REGION, key, &out, &len);
        free(out);
        if (st != 2)
            who = who == -1 ? i : -2;
    }
    return who;
}

static void put_str_value(fcluster *cl, agate_client *c, const char *key, const char *v)
{
    uint8_t val[256];
    size_t vl = enc_str(val, sizeof(val), v);
    int rc = agate_put(c, REGION, key, strlen(key), val, vl);
    FCHECK(cl, rc == 0, "put %s: %d %s", key, rc, agate_errmsg(c));
}

START_TEST(stopped_member_rejoins)
{
    fcluster cl;
    cl_init(&cl, "stop");
    agate_client *c = cl_up(&cl, 3);
    const int vi = 1;
    tu_server *victim = &cl.mem[vi];

    /* probe keys whose primary is the victim, written "old-N" */
    char probes[NPROBES][32];
    int fds[MAXMEM];
    for (int i = 0; i < cl.nstarted; i++)
        fds[i] = tw_open(cl.mem[i].port);
    int np = 0;
    for (int i = 0; i < 400 && np < NPROBES; i++) {
        char key[32], v[32];
        snprintf(key, sizeof(key), "probe-%d", i);
        snprintf(v, sizeof(v), "old-%d", np);
        put_str_value(&cl, c, key, v);
        int p = primary_of(&cl, fds, key);
        FCHECK(&cl, p >= 0, "%s: %s primary among the members", key, p == -1 ? "no" : "more than one");
        if (p == vi)
            snprintf(probes[np++], sizeof(probes[0]), "%s", key);
        else
            agate_remove(c, REGION, key, strlen(key));
    }
    FCHECK(&cl, np == NPROBES, "found only %d probe keys on %s", np, victim->name);
    for (int i = 0; i < cl.nstarted; i++)
        close(fds[i]);
    /* a connection to the victim, open before it is paused */
    int vfd = tw_open(victim->port);

    static writer ws[NWRITERS];
    writers_start(&cl, ws);
    tu_sleep_ms(1000);
    long before = writers_ok(ws);

    FCHECK(&cl, tu_server_signal(victim, SIGSTOP) == 0, "SIGSTOP");
    int64_t t_stop = tu_now_ms();
    cstat st;
    char line[2048];
    int64_t removed = wait_status(c, &st, (2 * MT_MS + 5000) * scale(), pred_gone, victim->name);
    status_line(&st, line, sizeof(line));
    bool promoted = st.rc == 0 && st.without == 0;
    cstat_free(&st);
    if (removed < 0 || !promoted) {
        kill(victim->pid, SIGCONT);
        FCHECK(&cl, false, "the paused member %s was not removed (with its buckets promoted) "
                           "within %d ms: %s",
               victim->name, (2 * MT_MS + 5000) * scale(), line);
    }
    removed = tu_now_ms() - t_stop;
    /* the new primaries take the probes' new values (through a new
     * client: c's map still names the paused member, and a request on a
     * connection that stays open but silent waits its whole timeout) */
    agate_client *c2 = cl_client(&cl, request_ms());
    for (int i = 0; i < NPROBES; i++) {
        char v[32];
        snprintf(v, sizeof(v), "new-%d", i);
        put_str_value(&cl, c2, probes[i], v);
    }
    agate_client_free(c2);
    /* paused well past member-timeout: its lease ran out on its own clock */
    sleep_until(t_stop + 2 * MT_MS + 500);
    /* requests waiting for it when it wakes: GET of each probe, and a PUT */
    tw_msg m;
    for (int i = 0; i < NPROBES; i++) {
        tw_req(&m, 100 + (uint64_t)i, 21, 2);
        tw_pack_cstr(&m.pk, REGION);
        tw_pack_cstr(&m.pk, probes[i]);
        FCHECK(&cl, tw_msg_send(vfd, &m) == 0, "send to the paused member");
        tw_msg_free(&m);
    }
    uint8_t spv[64];
    size_t spl = enc_str(spv, sizeof(spv), "stale-put-value");
    tw_req(&m, 200, 20, 3);
    tw_pack_cstr(&m.pk, REGION);
    tw_pack_cstr(&m.pk, "stale-put");
    msgpack_sbuffer_write(&m.sb, (const char *)spv, spl);
    FCHECK(&cl, tw_msg_send(vfd, &m) == 0, "send to the paused member");
    tw_msg_free(&m);
    int64_t t_stopped = tu_now_ms() - t_stop;
    FCHECK(&cl, tu_server_signal(victim, SIGCONT) == 0, "SIGCONT");
    int64_t t_cont = tu_now_ms();

    char answers[512] = "";
    bool stale_put_acked = false;
    for (int i = 0; i < NPROBES + 1; i++) {
        tw_resp r;
        int got = tw_recv(vfd, &r, 5000 * scale());
        size_t al = strlen(answers);
        if (got != 1) {
            snprintf(answers + al, sizeof(answers) - al, " [no answer: %s]",
                     got == 0 ? "closed" : "timeout");
            break;
        }
        snprintf(answers + al, sizeof(answers) - al, " [id %llu: status %d]",
                 (unsigned long long)r.id, r.status);
        if (r.id >= 100 && r.id < 100 + NPROBES && r.status == 0 && r.nresults == 1) {
            int p = (int)(r.id - 100);
            char v[64] = "", old[32];
            snprintf(old, sizeof(old), "old-%d", p);
            dec_str(r.raw + r.roff[0], r.rlen[0], v, sizeof(v));
            if (strcmp(v, old) == 0)
                fail_note(&cl,
                          "STALE READ: %s, paused for %lld ms (removed from the view after %lld "
                          "ms), answered GET %s with the value it held before (\"%s\"; the "
                          "cluster has \"new-%d\")",
                          victim->name, (long long)t_stopped, (long long)removed, probes[p], v, p);
        }
        if (r.id == 200 && r.status == 0)
            stale_put_acked = true;
        tw_resp_free(&r);
    }
    close(vfd);
    fprintf(stdout, "[%s] the woken member answered:%s\n", cl.tag, answers);
    fflush(stdout);

    /* it learns it was removed, drops its data and joins again */
    int three = 3;
    int64_t conv = wait_status(c, &st, 20000 * scale(), pred_full, &three);
    status_line(&st, line, sizeof(line));
    cstat_free(&st);
    if (conv < 0)
        fail_note(&cl, "no full redundancy with 3 members within %d ms of SIGCONT: %s",
                  20000 * scale(), line);
    else
        conv = tu_now_ms() - t_cont;
    expect_progress(&cl, ws, t_cont, request_ms(), "after SIGCONT");
    sleep_until(t_cont + 2000);
    writers_stop(&cl, ws);
    long after = writers_ok(ws) - before;

    /* the rejoined member serves no stale value either */
    int fd = tw_open(victim->port);
    for (int i = 0; i < NPROBES; i++) {
        uint8_t *out = NULL;
        size_t len = 0;
        char v[64] = "", old[32];
        int s = tw_get_raw(fd, REGION, probes[i], &out, &len);
        snprintf(old, sizeof(old), "old-%d", i);
        if (s == 0 && dec_str(out, len, v, sizeof(v)) == 0 && strcmp(v, old) == 0)
            fail_note(&cl, "STALE READ after rejoining: %s answered GET %s with \"%s\"",
                      victim->name, probes[i], v);
        free(out);
    }
    close(fd);
    /* through the cluster: the probes' new values, and the put the woken
     * member acknowledged, if it did */
    for (int i = 0; i < NPROBES; i++) {
        agate_buf b = {0};
        char v[64] = "", want[32];
        snprintf(want, sizeof(want), "new-%d", i);
        int rc = agate_get(c, REGION, probes[i], strlen(probes[i]), &b);
        if (rc || dec_str(b.data, b.len, v, sizeof(v)) || strcmp(v, want) != 0)
            fail_note(&cl, "probe %s (bucket %u): get = %d, value \"%s\", want \"%s\"", probes[i],
                      bucket_of(probes[i]), rc, v, want);
        agate_buf_free(&b);
    }
    if (stale_put_acked) {
        agate_buf b = {0};
        int rc = agate_get(c, REGION, "stale-put", 9, &b);
        if (rc != 0) {
            note_lost_bucket(&cl, bucket_of("stale-put"));
            fail_note(&cl,
                      "LOST WRITE: %s acknowledged PUT stale-put when it woke with an expired "
                      "lease, and the cluster does not have it (get = %d)",
                      victim->name, rc);
        }
        agate_buf_free(&b);
    }
    vres vr;
    verify(&cl, c, ws, &vr);
    check_warm(&cl, c);
    check_size(&cl, c, &vr, NPROBES + 1);
    print_figures(&cl, &vr, ws);
    fprintf(stdout,
            "[%s] %ld acknowledged before SIGSTOP, %ld after; paused %lld ms; removed %lld ms "
            "after SIGSTOP; full redundancy with 3 members %lld ms after SIGCONT; %s\n",
            cl.tag, before, after, (long long)t_stopped, (long long)removed, (long long)conv, line);
    fflush(stdout);
    writers_free(ws);
    cl_finish(&cl, c);
}
END_TEST

/* ======================================================================
 * 3. A third member joins under load; rebalance spreads the primaries
 * ====================================================================== */

START_TEST(join_and_rebalance_under_load)
{
    fcluster cl;
    cl_init(&cl, "rebal");
    agate_client *c = cl_up(&cl, 2);
    static writer ws[NWRITERS];
    writers_start(&cl, ws);
    tu_sleep_ms(1000);

    int64_t t_join = tu_now_ms();
    cl_start_member(&cl, 2);
    cstat st;
    char line[2048];
    int three = 3;
    int64_t joined = wait_status(c, &st, 20000 * scale(), pred_full, &three);
    status_line(&st, line, sizeof(line));
    cstat_free(&st);
    if (joined < 0)
        fail_note(&cl, "the third member did not join (with full redundancy) within %d ms: %s",
                  20000 * scale(), line);
    else
        joined = tu_now_ms() - t_join;

    /* rebalance, then poll REBALANCE_STATUS until it is done */
    char *start_doc = NULL, *end_doc = NULL, reb_state[16] = "";
    int64_t t_reb = tu_now_ms(), reb_ms = -1;
    agate_buf b = {0};
    int rc = agate_rebalance(c, 0, &b);
    if (rc != 0) {
        fail_note(&cl, "REBALANCE: %d %s", rc, agate_errmsg(c));
    } else {
        start_doc = print_buf(&b);
        agate_buf_free(&b);
        int64_t end = t_reb + 30000 * scale();
        for (;;) {
            rc = agate_rebalance_status(c, &b);
            if (rc != 0) {
                fail_note(&cl, "REBALANCE_STATUS: %d %s", rc, agate_errmsg(c));
                break;
            }
            msgpack_unpacked u;
            msgpack_unpacked_init(&u);
            if (msgpack_unpack_next(&u, (const char *)b.data, b.len, NULL) == MSGPACK_UNPACK_SUCCESS)
                parse_rebalance(&u.data, reb_state, sizeof(reb_state));
            msgpack_unpacked_destroy(&u);
            free(end_doc);
            end_doc = print_buf(&b);
            agate_buf_free(&b);
            if (strcmp(reb_state, "done") == 0) {
                reb_ms = tu_now_ms() - t_reb;
                break;
            }
            if (tu_now_ms() >= end) {
                fail_note(&cl, "rebalance not done within %d ms: state \"%s\"", 30000 * scale(),
                          reb_state);
                break;
            }
            tu_sleep_ms(100);
        }
        fprintf(stdout, "[%s] REBALANCE answered: %s\n[%s] REBALANCE_STATUS last: %s\n", cl.tag,
                start_doc, cl.tag, end_doc ? end_doc : "(none)");
        fflush(stdout);
    }
    /* redundancy full, every member holds primaries, and CLUSTER_STATUS
     * carries the rebalance's state */
    int64_t full = wait_status(c, &st, 10000 * scale(), pred_full, &three);
    status_line(&st, line, sizeof(line));
    if (full < 0)
        fail_note(&cl, "no full redundancy with 3 members after the rebalance: %s", line);
    if (reb_ms >= 0) {
        if (!st.has_rebalance || strcmp(st.reb_state, "done") != 0)
            fail_note(&cl, "CLUSTER_STATUS has no \"rebalance\" map saying done (%s)",
                      st.has_rebalance ? st.reb_state : "no rebalance field");
        uint64_t total = 0;
        for (int i = 0; i < st.nm; i++)
            total += st.m[i].prim;
        for (int i = 0; i < st.nm; i++)
            if (st.m[i].prim == 0 || st.m[i].prim < total / (2 * (uint64_t)st.nm))
                fail_note(&cl, "primaries not spread: %s holds %llu of %llu (%s)", st.m[i].name,
                          (unsigned long long)st.m[i].prim, (unsigned long long)total, line);
    }
    cstat_free(&st);

    expect_progress(&cl, ws, tu_now_ms(), request_ms(), "after the rebalance");
    tu_sleep_ms(500);
    writers_stop(&cl, ws);
    vres vr;
    verify(&cl, c, ws, &vr);
    check_warm(&cl, c);
    check_size(&cl, c, &vr, 0);
    print_figures(&cl, &vr, ws);
    fprintf(stdout, "[%s] joined (full redundancy) %lld ms after start; rebalance done in %lld ms; %s\n",
            cl.tag, (long long)joined, (long long)reb_ms, line);
    fflush(stdout);
    free(start_doc);
    free(end_doc);
    writers_free(ws);
    cl_finish(&cl, c);
}
END_TEST

/* ======================================================================
 * 4. SIGKILL the locator: the members keep serving; a restarted locator
 *    (same directory, same port) adopts the map the members report
 * ====================================================================== */

START_TEST(locator_killed)
{
    fcluster cl;
    cl_init(&cl, "lockill");
    agate_client *c = cl_up(&cl, 3);
    cstat s0;
    get_status(c, &s0);
    FCHECK(&cl, s0.rc == 0 && s0.nm == 3, "status before the kill");
    static writer ws[NWRITERS];
    writers_start(&cl, ws);
    tu_sleep_ms(1000);
    long before = writers_ok(ws);

    int port = cl.loc.port;
    tu_server_kill(&cl.loc);
    int64_t t_kill = tu_now_ms();
    /* reads and writes go on past the members' own lease (member_timeout/2
     * after their last heartbeat the locator acknowledged): peers renew it */
    sleep_until(t_kill + MT_MS);
    check_warm(&cl, c);
    for (int i = 0; i < 20; i++) {
        char key[32];
        snprintf(key, sizeof(key), "nolocator-%d", i);
        put_str_value(&cl, c, key, key);
    }
    expect_progress(&cl, ws, t_kill + MT_MS, 3 * MT_MS * scale(),
                    "while the locator was down, after the members' leases would have expired");
    sleep_until(t_kill + 3000);
    expect_progress(&cl, ws, t_kill + 2500, 3 * MT_MS * scale(),
                    "while the locator was down, 2.5 s after the kill");
    long during = writers_ok(ws) - before;

    /* restart in the same directory on the same port */
    char parg[32];
    snprintf(parg, sizeof(parg), "--port=%d", port);
    int64_t t_restart = tu_now_ms();
    cl_start_locator(&cl, parg);
    cstat st;
    char line[2048];
    int three = 3;
    /* the members rejoin and the locator adopts their map: the same
     * members, the region, the same primaries, a version at least as new */
    int64_t adopted = wait_status(c, &st, (MT_MS + 10000) * scale(), pred_full, &three);
    status_line(&st, line, sizeof(line));
    if (adopted < 0)
        fail_note(&cl, "the restarted locator does not show 3 members with full redundancy "
                       "within %d ms: %s",
                  (MT_MS + 10000) * scale(), line);
    else
        adopted = tu_now_ms() - t_restart;
    if (st.rc == 0) {
        if (st.version < s0.version)
            fail_note(&cl, "the restarted locator's map version %llu is older than before the "
                           "kill (%llu)",
                      (unsigned long long)st.version, (unsigned long long)s0.version);
        for (int i = 0; i < s0.nm; i++) {
            const mstat *m = status_member(&st, s0.m[i].name);
            if (!m)
                fail_note(&cl, "member %s missing after the locator restart", s0.m[i].name);
            else if (m->id != s0.m[i].id || m->prim != s0.m[i].prim || m->buckets != s0.m[i].buckets)
                fail_note(&cl,
                          "member %s: id %llu, %llu buckets, %llu primaries after the restart; "
                          "before: id %llu, %llu buckets, %llu primaries (map not adopted)",
                          m->name, (unsigned long long)m->id, (unsigned long long)m->buckets,
                          (unsigned long long)m->prim, (unsigned long long)s0.m[i].id,
                          (unsigned long long)s0.m[i].buckets, (unsigned long long)s0.m[i].prim);
        }
    }
    cstat_free(&st);
    /* past its rejoin window nobody is dropped */
    tu_sleep_ms(MT_MS + MT_MS / 2 + 500);
    cstat s1;
    get_status(c, &s1);
    status_line(&s1, line, sizeof(line));
    if (!status_full(&s1, 3))
        fail_note(&cl, "after the restarted locator's rejoin window: %s", line);
    cstat_free(&s1);
    expect_progress(&cl, ws, tu_now_ms(), request_ms(), "after the locator restart");
    writers_stop(&cl, ws);
    long total = writers_ok(ws);

    /* the client that lived through it still works, region admin included */
    agate_region_info *info = NULL;
    int rc = agate_region_describe(c, REGION, &info);
    if (rc)
        fail_note(&cl, "region_describe after the restart: %d %s", rc, agate_errmsg(c));
    agate_region_info_free(info);
    for (int i = 0; i < 20; i++) {
        char key[32];
        agate_buf b = {0};
        snprintf(key, sizeof(key), "nolocator-%d", i);
        rc = agate_get(c, REGION, key, strlen(key), &b);
        if (rc)
            fail_note(&cl, "%s written while the locator was down: get = %d %s", key, rc,
                      agate_errmsg(c));
        agate_buf_free(&b);
    }
    put_str_value(&cl, c, "after-restart", "x");
    vres vr;
    verify(&cl, c, ws, &vr);
    check_warm(&cl, c);
    check_size(&cl, c, &vr, 21);
    print_figures(&cl, &vr, ws);
    fprintf(stdout,
            "[%s] acknowledged: %ld before the kill, %ld while the locator was down (3 s), %ld "
            "after its restart; map adopted (3 members, full redundancy) %lld ms after the "
            "restart; %s\n",
            cl.tag, before, during, total - before - during, (long long)adopted, line);
    fflush(stdout);
    cstat_free(&s0);
    writers_free(ws);
    cl_finish(&cl, c);
}
END_TEST

/* ======================================================================
 * 5. A member killed and restarted at once, in its directory (same member
 *    id), well within member-timeout: it comes back empty, so the locator
 *    must treat it as a new member (promote the copies) and not hand its
 *    old buckets back to it
 * ====================================================================== */

START_TEST(member_restarted_within_timeout)
{
    fcluster cl;
    cl_init(&cl, "restart");
    agate_client *c = cl_up(&cl, 3);
    static writer ws[NWRITERS];
    writers_start(&cl, ws);
    tu_sleep_ms(1000);
    long before = writers_ok(ws);
    FCHECK(&cl, before > 0, "no write acknowledged before the restart");

    tu_server *victim = &cl.mem[1];
    char name[64];
    snprintf(name, sizeof(name), "%s", victim->name);
    tu_server_kill(victim);
    int64_t t_kill = tu_now_ms();
    char larg[96];
    snprintf(larg, sizeof(larg), "--locators=%s", cl.locators);
    const char *args[] = {larg, MT_ARG, NULL};
    FCHECK(&cl, tu_server_start_in(victim, name, victim->dir, args) == 0,
           "cannot restart member %s", name);
    int64_t restarted = tu_now_ms() - t_kill;
    expect_progress(&cl, ws, tu_now_ms(), request_ms(), "after the restart");
    tu_sleep_ms(2000);
    writers_stop(&cl, ws);

    vres vr;
    verify(&cl, c, ws, &vr);
    check_warm(&cl, c);
    check_size(&cl, c, &vr, 0);
    /* the restarted member is in the view again, and every bucket has its
     * copy (on any of the three) */
    cstat st;
    char line[2048];
    int three = 3;
    if (wait_status(c, &st, 20000 * scale(), pred_full, &three) < 0)
        fail_note(&cl, "redundancy not restored after the restart: %s",
                  (status_line(&st, line, sizeof(line)), line));
    status_line(&st, line, sizeof(line));
    cstat_free(&st);
    print_figures(&cl, &vr, ws);
    fprintf(stdout, "[%s] restarted %lld ms after the kill; %ld acknowledged before; %s\n", cl.tag,
            (long long)restarted, before, line);
    fflush(stdout);
    writers_free(ws);
    cl_finish(&cl, c);
}
END_TEST

/* ======================================================================
 * 6. A REPLICATE region: every member holds every entry, a joining member
 *    receives a full image, and losing a member loses nothing
 * ====================================================================== */

#define REP_REGION "rep"
#define REP_KEYS 300

/* From CLUSTER_STATUS: the REP_REGION's buckets below redundancy (a
 * REPLICATE region wants a ready copy of every bucket on every member) and
 * the number of members in the view. */
static int region_status(agate_client *c, const char *region, uint64_t *below, int *members)
{
    agate_buf b = {0};
    *below = UINT64_MAX;
    *members = -1;
    if (agate_cluster_status(c, &b))
        return -1;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)b.data, b.len, NULL) == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *rs = tw_map_get(&u.data, "regions");
        for (uint32_t i = 0; rs && rs->type == MSGPACK_OBJECT_ARRAY && i < rs->via.array.size; i++)
            if (tw_obj_is_str(tw_map_get(&rs->via.array.ptr[i], "name"), region))
                *below = obj_u64(tw_map_get(&rs->via.array.ptr[i], "buckets_below_redundancy"));
        const msgpack_object *ms = tw_map_get(&u.data, "members");
        if (ms && ms->type == MSGPACK_OBJECT_ARRAY)
            *members = (int)ms->via.array.size;
    }
    msgpack_unpacked_destroy(&u);
    agate_buf_free(&b);
    return 0;
}

/* Waits until n members are in the view and region has every copy it
 * wants ready (a REPLICATE region: a copy of every bucket on every member). */
static bool region_full(agate_client *c, const char *region, int n, int bound_ms)
{
    for (int64_t end = tu_now_ms() + bound_ms; tu_now_ms() < end; tu_sleep_ms(100)) {
        uint64_t below;
        int members;
        if (region_status(c, region, &below, &members) == 0 && below == 0 && members == n)
            return true;
    }
    return false;
}

static bool rep_full(agate_client *c, int n, int bound_ms) { return region_full(c, REP_REGION, n, bound_ms); }

static void rep_check_keys(fcluster *cl, agate_client *c, const char *when)
{
    int missing = 0;
    for (int i = 0; i < REP_KEYS; i++) {
        char key[32], want[32], got[64];
        agate_buf b = {0};
        snprintf(key, sizeof(key), "r%04d", i);
        snprintf(want, sizeof(want), "rv%04d", i);
        int rc = agate_get(c, REP_REGION, key, strlen(key), &b);
        if (rc || dec_str(b.data, b.len, got, sizeof(got)) || strcmp(got, want))
            missing++;
        agate_buf_free(&b);
    }
    if (missing)
        fail_note(cl, "%s: %d of %d keys of the REPLICATE region missing or wrong", when, missing,
                  REP_KEYS);
}

START_TEST(replicated_region)
{
    fcluster cl;
    cl_init(&cl, "repl");
    cl_start_locator(&cl, NULL);
    cl_start_member(&cl, 0);
    cl_start_member(&cl, 1);
    agate_client *c = cl_client(&cl, request_ms());
    cstat st;
    int two = 2;
    int64_t t = wait_status(c, &st, 20000 * scale(), pred_members, &two);
    cstat_free(&st);
    FCHECK(&cl, t >= 0, "2 members did not join");
    agate_region_config cfg;
    agate_region_config_init(&cfg, REP_REGION, AGATE_REPLICATE);
    int rc = agate_region_create(c, &cfg);
    FCHECK(&cl, rc == 0, "region_create: %d %s", rc, agate_errmsg(c));
    for (int i = 0; i < REP_KEYS; i++) {
        char key[32], v[32];
        uint8_t val[48];
        snprintf(key, sizeof(key), "r%04d", i);
        snprintf(v, sizeof(v), "rv%04d", i);
        size_t vl = enc_str(val, sizeof(val), v);
        int64_t end = tu_now_ms() + 5000 * scale();
        while ((rc = agate_put(c, REP_REGION, key, strlen(key), val, vl)) != 0 && tu_now_ms() < end)
            tu_sleep_ms(50);
        FCHECK(&cl, rc == 0, "put %s: %d %s", key, rc, agate_errmsg(c));
    }
    if (!rep_full(c, 2, 10000 * scale()))
        fail_note(&cl, "the REPLICATE region is not on both members");
    int64_t t0 = tu_now_ms();
    cl_start_member(&cl, 2); /* receives a full image */
    if (!rep_full(c, 3, 20000 * scale()))
        fail_note(&cl, "the joining member did not get a ready copy of every bucket");
    int64_t imaged = tu_now_ms() - t0;
    rep_check_keys(&cl, c, "3 members");
    /* the writes reached every member, and the image gave the new one all:
     * whichever members are lost, the last one holds every entry */
    tu_server_kill(&cl.mem[0]);
    rep_check_keys(&cl, c, "after SIGKILL of the first member");
    tu_server_kill(&cl.mem[1]);
    rep_check_keys(&cl, c, "after SIGKILL of the second (only the joined member is left)");
    fprintf(stdout, "[%s] %d entries; the joining member held a ready copy of every bucket %lld ms "
            "after its start, and served every entry alone\n", cl.tag, REP_KEYS, (long long)imaged);
    fflush(stdout);
    cl_finish(&cl, c);
}
END_TEST

/* ======================================================================
 * 7. The locator hangs (SIGSTOP) for twice member-timeout: its connection
 *    stays open, yet members renew their leases from each other, so writes
 *    go on without a stall
 * ====================================================================== */

START_TEST(locator_paused)
{
    fcluster cl;
    cl_init(&cl, "lpause");
    agate_client *c = cl_up(&cl, 2);
    static writer ws[NWRITERS];
    writers_start(&cl, ws);
    tu_sleep_ms(500);
    for (int i = 0; i < NWRITERS; i++)
        atomic_store(&ws[i].max_gap_ms, 0);
    cstat st;
    get_status(c, &st);
    uint64_t view_before = st.view_id;
    cstat_free(&st);
    FCHECK(&cl, tu_server_signal(&cl.loc, SIGSTOP) == 0, "SIGSTOP of the locator");
    int64_t t0 = tu_now_ms();
    tu_sleep_ms(2 * MT_MS);
    expect_progress(&cl, ws, t0 + MT_MS, MT_MS * scale(), "while the locator is paused");
    long gap = 0;
    for (int i = 0; i < NWRITERS; i++)
        if (atomic_load(&ws[i].max_gap_ms) > gap)
            gap = atomic_load(&ws[i].max_gap_ms);
    FCHECK(&cl, tu_server_signal(&cl.loc, SIGCONT) == 0, "SIGCONT of the locator");
    /* leases last member-timeout/2; a stall until they are renewed from the
     * peers would be about that long */
    if (gap > MT_MS / 3 * scale())
        fail_note(&cl, "writes stalled %ld ms while the locator was paused", gap);
    tu_sleep_ms(2 * MT_MS); /* a removal would come within this */
    get_status(c, &st);
    /* the locator's own pause is not the members' silence */
    if (st.rc || st.view_id != view_before || st.nm != 2)
        fail_note(&cl, "the view changed over the locator's pause: view %llu -> %llu, %d members",
                  (unsigned long long)view_before, (unsigned long long)st.view_id, st.nm);
    cstat_free(&st);
    writers_stop(&cl, ws);
    vres vr;
    verify(&cl, c, ws, &vr);
    check_warm(&cl, c);
    print_figures(&cl, &vr, ws);
    fprintf(stdout, "[%s] locator paused %d ms; longest gap between acknowledgements meanwhile %ld ms\n",
            cl.tag, 2 * MT_MS, gap);
    fflush(stdout);
    writers_free(ws);
    cl_finish(&cl, c);
}
END_TEST

/* ======================================================================
 * 8. Queries over a partitioned region of three members: the member asked
 *    gathers every member's part (docs/query.md), also while a rebalance
 *    moves buckets and after a member is killed
 * ====================================================================== */

#define QREGION "qorders"
#define QROWS 900

static void qput(fcluster *cl, agate_client *c, int i)
{
    char key[24];
    snprintf(key, sizeof key, "q%05d", i);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    tw_pack_cstr(&pk, "n");
    msgpack_pack_int(&pk, i);
    tw_pack_cstr(&pk, "kind");
    tw_pack_cstr(&pk, i % 3 == 0 ? "a" : i % 3 == 1 ? "b" : "c");
    int rc = agate_put(c, QREGION, key, strlen(key), sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    FCHECK(cl, rc == 0, "put %s: %d %s", key, rc, agate_errmsg(c));
}

/* Runs text and returns the rows array (in *u, to destroy by the caller). */
/* Runs text; the rows array points into *u and *b (free both after). */
static const msgpack_object *qrun(fcluster *cl, agate_client *c, const char *text,
                                  msgpack_unpacked *u, agate_buf *b)
{
    int rc = agate_query(c, text, NULL, 0, -1, b);
    msgpack_unpacked_init(u);
    if (rc) {
        fail_note(cl, "query %s: %d %s", text, rc, agate_errmsg(c));
        return NULL;
    }
    size_t off = 0;
    const msgpack_object *rows = NULL;
    if (msgpack_unpack_next(u, (const char *)b->data, b->len, &off) == MSGPACK_UNPACK_SUCCESS &&
        u->data.type == MSGPACK_OBJECT_ARRAY && u->data.via.array.size == 3)
        rows = &u->data.via.array.ptr[1];
    if (!rows)
        fail_note(cl, "query %s: malformed reply", text);
    return rows;
}

static int64_t qint(const msgpack_object *rows, uint32_t r, uint32_t col)
{
    if (!rows || r >= rows->via.array.size)
        return INT64_MIN;
    const msgpack_object *o = &rows->via.array.ptr[r].via.array.ptr[col];
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)o->via.u64
           : o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? o->via.i64 : INT64_MIN;
}

/* A streamed query read through a cursor in pages of 64: every n exactly
 * once (pages made while buckets move are retried by the library). */
static void qcheck_pages(fcluster *cl, agate_client *c, const char *when)
{
    agate_query_options qo = {.timeout_ms = -1, .page_size = 64};
    agate_cursor *cur;
    int rc = agate_query_open(c, "SELECT n FROM /" QREGION, NULL, 0, &qo, &cur);
    if (rc) {
        fail_note(cl, "%s: agate_query_open: %s", when, agate_errmsg(c));
        return;
    }
    static int seen[QROWS];
    memset(seen, 0, sizeof seen);
    int pages = 0, bad = 0;
    agate_buf page;
    while ((rc = agate_cursor_next(cur, &page)) == 1) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        msgpack_unpack_next(&u, (const char *)page.data, page.len, NULL);
        const msgpack_object *rows = &u.data.via.array.ptr[1];
        if (rows->via.array.size > 64)
            bad++;
        for (uint32_t i = 0; i < rows->via.array.size; i++) {
            int64_t n = rows->via.array.ptr[i].via.array.ptr[0].via.i64;
            if (n >= 0 && n < QROWS)
                seen[n]++;
            else
                bad++;
        }
        msgpack_unpacked_destroy(&u);
        agate_buf_free(&page);
        pages++;
    }
    if (rc < 0)
        fail_note(cl, "%s: page %d: %s", when, pages + 1, agate_errmsg(c));
    for (int i = 0; i < QROWS && rc == 0; i++)
        if (seen[i] != 1) {
            fail_note(cl, "%s: paged: n=%d seen %d times", when, i, seen[i]);
            break;
        }
    if (bad || pages < QROWS / 64)
        fail_note(cl, "%s: paged: %d pages, %d bad rows", when, pages, bad);
    agate_cursor_close(cur);
}

/* The same answers as over one server, whatever member is asked. */
static void qcheck(fcluster *cl, agate_client *c, const char *when)
{
    qcheck_pages(cl, c, when);
    msgpack_unpacked u;
    agate_buf b = {0};
    const msgpack_object *rows = qrun(cl, c, "SELECT COUNT(*), SUM(n) FROM /" QREGION, &u, &b);
    if (qint(rows, 0, 0) != QROWS || qint(rows, 0, 1) != (int64_t)QROWS * (QROWS - 1) / 2)
        fail_note(cl, "%s: COUNT/SUM over the cluster = %lld/%lld, want %d/%lld", when,
                  (long long)qint(rows, 0, 0), (long long)qint(rows, 0, 1), QROWS,
                  (long long)QROWS * (QROWS - 1) / 2);
    msgpack_unpacked_destroy(&u);
    agate_buf_free(&b);
    rows = qrun(cl, c, "SELECT kind, COUNT(*) FROM /" QREGION " GROUP BY kind ORDER BY kind", &u, &b);
    if (!rows || rows->via.array.size != 3 || qint(rows, 0, 1) != QROWS / 3 ||
        qint(rows, 2, 1) != QROWS / 3)
        fail_note(cl, "%s: GROUP BY kind over the cluster is wrong", when);
    msgpack_unpacked_destroy(&u);
    agate_buf_free(&b);
    rows = qrun(cl, c, "SELECT n FROM /" QREGION " WHERE n >= 100 ORDER BY n DESC LIMIT 5", &u, &b);
    if (!rows || rows->via.array.size != 5 || qint(rows, 0, 0) != QROWS - 1 ||
        qint(rows, 4, 0) != QROWS - 5)
        fail_note(cl, "%s: ORDER BY n DESC LIMIT 5 over the cluster is wrong", when);
    msgpack_unpacked_destroy(&u);
    agate_buf_free(&b);
    rows = qrun(cl, c, "SELECT DISTINCT kind FROM /" QREGION, &u, &b);
    if (!rows || rows->via.array.size != 3)
        fail_note(cl, "%s: DISTINCT kind gave %d rows, want 3", when,
                  rows ? (int)rows->via.array.size : -1);
    msgpack_unpacked_destroy(&u);
    agate_buf_free(&b);
}

START_TEST(cluster_queries)
{
    fcluster cl;
    cl_init(&cl, "query");
    agate_client *c = cl_up(&cl, 2);
    agate_region_config cfg;
    agate_region_config_init(&cfg, QREGION, AGATE_PARTITION_REDUNDANT);
    cfg.redundant_copies = 1;
    FCHECK(&cl, agate_region_create(c, &cfg) == 0, "region_create: %s", agate_errmsg(c));
    for (int i = 0; i < QROWS; i++)
        qput(&cl, c, i);
    FCHECK(&cl, region_full(c, QREGION, 2, 20000 * scale()), "%s did not reach full redundancy", QREGION);
    qcheck(&cl, c, "2 members");
    /* a third member and a rebalance, queries all along */
    cl_start_member(&cl, 2);
    cstat st;
    int three = 3;
    int64_t t = wait_status(c, &st, 20000 * scale(), pred_members, &three);
    cstat_free(&st);
    FCHECK(&cl, t >= 0, "the third member did not join");
    agate_buf b = {0};
    FCHECK(&cl, agate_rebalance(c, 0, &b) == 0, "rebalance: %s", agate_errmsg(c));
    agate_buf_free(&b);
    for (int i = 0; i < 5; i++)
        qcheck(&cl, c, "during the rebalance");
    /* the rebalance done and every copy ready: losing a member then loses nothing */
    for (int64_t end = tu_now_ms() + 30000 * scale(); tu_now_ms() < end; tu_sleep_ms(100)) {
        get_status(c, &st);
        bool done = st.has_rebalance && !strcmp(st.reb_state, "done");
        cstat_free(&st);
        if (done)
            break;
    }
    FCHECK(&cl, region_full(c, QREGION, 3, 20000 * scale()), "%s did not reach full redundancy", QREGION);
    t = wait_status(c, &st, 20000 * scale(), pred_full, &three);
    cstat_free(&st);
    qcheck(&cl, c, "3 members");
    /* cancelled queries: the coordinator stops its parts on the other
     * members (QUERY_CANCEL on its kept links), and nothing is left stuck */
    for (int i = 0; i < 20; i++) {
        agate_buf out = {0};
        agate_interrupt(c);
        int rc = agate_query(c, "SELECT COUNT(*), SUM(n) FROM /" QREGION, NULL, 0, -1, &out);
        if (rc != AGATE_ECANCELLED)
            fail_note(&cl, "an interrupted query gave %d (%s), want AGATE_ECANCELLED", rc,
                      agate_errmsg(c));
        agate_buf_free(&out);
    }
    qcheck(&cl, c, "after 20 cancelled queries");
    /* a member lost: queries retry until its buckets are promoted */
    tu_server_kill(&cl.mem[1]);
    qcheck(&cl, c, "after SIGKILL of a member");
    cl_finish(&cl, c);
}
END_TEST

static Suite *faults_suite(void)
{
    Suite *s = suite_create("cluster_faults");
    TCase *tc = tu_tcase(s, "kill", 90);
    tcase_add_test(tc, kill_one_of_three_under_writers);
    tc = tu_tcase(s, "stop", 90);
    tcase_add_test(tc, stopped_member_rejoins);
    tc = tu_tcase(s, "rebalance", 90);
    tcase_add_test(tc, join_and_rebalance_under_load);
    tc = tu_tcase(s, "locator", 90);
    tcase_add_test(tc, locator_killed);
    tc = tu_tcase(s, "restart", 90);
    tcase_add_test(tc, member_restarted_within_timeout);
    tc = tu_tcase(s, "replicated", 90);
    tcase_add_test(tc, replicated_region);
    tc = tu_tcase(s, "lpause", 90);
    tcase_add_test(tc, locator_paused);
    tc = tu_tcase(s, "query", 120);
    tcase_add_test(tc, cluster_queries);
    return s;
}

int main(void)
{
    Suite *s = faults_suite();
    return tu_run(&s, 1);
}
