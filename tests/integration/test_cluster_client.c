/* Integration tests of libagate's cluster routing (agate.h, "Clusters";
 * docs/cluster.md).
 *
 * The server side of clusters is being built in parallel, so these tests
 * stand a cluster up from parts that exist today:
 *   - a FAKE LOCATOR: a thread on a local socket that answers HELLO with
 *     role "locator", CLUSTER_MAP with a map built here by hand (the
 *     documented wire form, packed with msgpack-c, independent of
 *     common/cmap.c), and the admin opcodes with documents that echo what
 *     they were sent;
 *   - REAL stand-alone agated servers (tests/lib/tu_server.h) as the
 *     members. A stand-alone server does not check bucket ownership, so
 *     where a routed request lands is observable: with the map naming
 *     server bucket % 3 as primary, every key must end up on, or be read
 *     from, exactly that server (checked with a direct single-server
 *     client per server);
 *   - FAKE MEMBERS: threads that answer key operations with REDIRECT,
 *     UNAVAILABLE, a dropped connection or OK, and record the event ids
 *     they were sent.
 *
 * Writes routed to the real servers carry an event id argument, which a
 * stand-alone agated accepts only with the server change adding it (PUT up
 * to 4 arguments, REMOVE 3, PUT_ALL 3). The tests that need it are marked
 * NEEDS-EVENT-ID-SERVER below and are in the test case "writes"; the rest
 * place their data directly on each server. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agate/agate.h"
#include "common/hash.h"
#include "tu.h"
#include "tu_server.h"
#include "tu_wire.h"

#define NSRV 3
#define NKEYS 300
#define NBUCKETS 113
#define FIRST_ID 101 /* member id of srv[i] is FIRST_ID + i */

/* Real stand-alone servers shared by the "reads" and "writes" cases. */
static tu_server srv[NSRV];

static void start_servers(void)
{
    char name[32];
    for (int i = 0; i < NSRV; i++) {
        memset(&srv[i], 0, sizeof(srv[i]));
        snprintf(name, sizeof(name), "cclu%d", i);
        ck_assert_msg(tu_server_start(&srv[i], name, NULL) == 0, "cannot start agated");
    }
}

static void stop_servers(void)
{
    for (int i = 0; i < NSRV; i++) {
        char why[512];
        bool clean = tu_server_sanitizer_clean(&srv[i], why, sizeof(why));
        int rc = tu_server_stop(&srv[i], 15000 * tu_timeout_scale());
        if (rc != 0)
            tu_fail_outside("agated (%s) did not stop cleanly", srv[i].name);
        if (!clean)
            tu_fail_outside("agated (%s) reported: %s", srv[i].name, why);
        tu_server_cleanup(&srv[i], rc != 0 || !clean);
    }
}

static int timeout_ms(void) { return 10000 * tu_timeout_scale(); }

#define CK_OK(c, call)                                                                             \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        ck_assert_msg(rc_ >= 0, "%s = %d (%s): %s", #call, rc_, agate_strerror(rc_),               \
                      agate_errmsg(c));                                                            \
    } while (0)

/* ======================================================================
 * Fake servers: one thread each, serving any number of connections.
 * ====================================================================== */

#define FK_MAXCONN 16
#define FK_MAXOP 64

typedef struct fake fake;
/* Answers one request (not HELLO) by packing a whole response into pk.
 * Returns 1 to close the connection without answering instead. */
typedef int (*fake_fn)(fake *f, uint64_t id, uint32_t op, const msgpack_object *args,
                       uint32_t nargs, msgpack_packer *pk);

struct fake {
    int lfd;
    int port;
    char addr[64];
    pthread_t th;
    atomic_int stop;
    pthread_mutex_t mu;  /* guards what the handler records */
    int locator;         /* HELLO says role "locator" */
    uint64_t mdv;        /* HELLO's metadata_version */
    uint32_t member_id;
    fake_fn fn;
    int nops[FK_MAXOP];  /* requests served per opcode */
    int nconns;          /* connections accepted */
};

static void pk_cstr(msgpack_packer *pk, const char *s) { msgpack_pack_str_with_body(pk, s, strlen(s)); }

/* [1, id, status, <nresults follow>] */
static void resp_head(msgpack_packer *pk, uint64_t id, int status, uint32_t nresults)
{
    msgpack_pack_array(pk, 3 + nresults);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint64(pk, id);
    msgpack_pack_uint8(pk, (uint8_t)status);
}

static void resp_error(msgpack_packer *pk, uint64_t id, int status, const char *msg)
{
    resp_head(pk, id, status, 1);
    pk_cstr(pk, msg);
}

static void hello_reply(fake *f, uint64_t id, msgpack_packer *pk)
{
    resp_head(pk, id, 0, 1);
    msgpack_pack_map(pk, f->locator ? 10 : 9);
    pk_cstr(pk, "server");
    pk_cstr(pk, f->locator ? "fake-locator" : "fake-member");
    const char *keys[] = {"member_id", "protocol", "max_frame", "max_key", "max_value",
                          "max_depth", "metadata_version"};
    uint64_t vals[] = {f->member_id, 1, 64u << 20, 16u << 10, 16u << 20, 32, f->mdv};
    for (int i = 0; i < 7; i++) {
        pk_cstr(pk, keys[i]);
        msgpack_pack_uint64(pk, vals[i]);
    }
    pk_cstr(pk, "version");
    pk_cstr(pk, "0.1.0");
    if (f->locator) {
        pk_cstr(pk, "role");
        pk_cstr(pk, "locator");
    }
}

/* Serves one request frame. Returns 1 to close the connection. */
static int fake_serve(fake *f, int fd, const uint8_t *body, uint32_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int close_it = 1;
    if (msgpack_unpack_next(&u, (const char *)body, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size >= 3) {
        const msgpack_object *a = u.data.via.array.ptr;
        uint64_t id = a[1].via.u64;
        uint32_t op = (uint32_t)a[2].via.u64;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        pthread_mutex_lock(&f->mu);
        if (op < FK_MAXOP)
            f->nops[op]++;
        pthread_mutex_unlock(&f->mu);
        close_it = 0;
        if (op == 1)
            hello_reply(f, id, &pk);
        else if (f->fn)
            close_it = f->fn(f, id, op, a + 3, u.data.via.array.size - 3, &pk);
        else
            resp_error(&pk, id, 10, "unknown opcode");
        if (!close_it && tw_send_frame(fd, sb.data, sb.size) != 0)
            close_it = 1;
        msgpack_sbuffer_destroy(&sb);
    }
    msgpack_unpacked_destroy(&u);
    return close_it;
}

static void *fake_main(void *p)
{
    fake *f = p;
    int fds[FK_MAXCONN];
    int n = 0;
    while (!atomic_load(&f->stop)) {
        struct pollfd pfd[FK_MAXCONN + 1];
        pfd[0] = (struct pollfd){.fd = f->lfd, .events = POLLIN};
        for (int i = 0; i < n; i++)
            pfd[i + 1] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        if (poll(pfd, (nfds_t)n + 1, 50) <= 0)
            continue;
        for (int i = n - 1; i >= 0; i--) {
            if (!pfd[i + 1].revents)
                continue;
            uint8_t *body = NULL;
            uint32_t blen;
            int close_it = 1;
            if (tw_read_frame(fds[i], 2000, &body, &blen) == 1)
                close_it = fake_serve(f, fds[i], body, blen);
            free(body);
            if (close_it) {
                close(fds[i]);
                fds[i] = fds[--n];
            }
        }
        if (pfd[0].revents & POLLIN) {
            int fd = accept(f->lfd, NULL, NULL);
            if (fd >= 0 && n < FK_MAXCONN) {
                fds[n++] = fd;
                pthread_mutex_lock(&f->mu);
                f->nconns++;
                pthread_mutex_unlock(&f->mu);
            } else if (fd >= 0) {
                close(fd);
            }
        }
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return NULL;
}

static void fake_start(fake *f, fake_fn fn)
{
    f->fn = fn;
    atomic_init(&f->stop, 0);
    pthread_mutex_init(&f->mu, NULL);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(f->lfd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(f->lfd, 16), 0);
    ck_assert_int_eq(getsockname(f->lfd, (struct sockaddr *)&sa, &len), 0);
    f->port = ntohs(sa.sin_port);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", f->port);
    ck_assert_int_eq(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(fake *f)
{
    atomic_store(&f->stop, 1);
    pthread_join(f->th, NULL);
    close(f->lfd);
}

static int fake_count(fake *f, uint32_t op)
{
    pthread_mutex_lock(&f->mu);
    int n = f->nops[op];
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* ======================================================================
 * Cluster maps, packed by hand as docs/cluster.md describes them.
 * ====================================================================== */

typedef struct tmap {
    uint64_t version;
    char locator[64];
    int nmembers;
    uint32_t ids[4];
    int ports[4];
    uint32_t all_to; /* nonzero: every bucket's primary; else ids[bucket % nmembers] */
} tmap;

static const char *const map_regions[] = {"rd", "decoy", "scan", "clr", "async", "loop",
                                          "wr", "wr2", "wra", "ev", "fo"};
#define NMAP_REGIONS (sizeof(map_regions) / sizeof(map_regions[0]))

static uint32_t tmap_primary(const tmap *m, uint32_t bucket)
{
    return m->all_to ? m->all_to : m->ids[bucket % (uint32_t)m->nmembers];
}

static void pack_map(msgpack_packer *pk, const tmap *m)
{
    msgpack_pack_map(pk, 5);
    pk_cstr(pk, "version");
    msgpack_pack_uint64(pk, m->version);
    pk_cstr(pk, "view_id");
    msgpack_pack_uint64(pk, m->version);
    pk_cstr(pk, "locators");
    msgpack_pack_array(pk, 1);
    pk_cstr(pk, m->locator);
    pk_cstr(pk, "members");
    msgpack_pack_array(pk, (uint32_t)m->nmembers);
    for (int i = 0; i < m->nmembers; i++) {
        char name[32];
        snprintf(name, sizeof(name), "m%u", m->ids[i]);
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint32(pk, m->ids[i]);
        pk_cstr(pk, name);
        pk_cstr(pk, "127.0.0.1");
        msgpack_pack_uint16(pk, (uint16_t)m->ports[i]);
    }
    pk_cstr(pk, "regions");
    msgpack_pack_array(pk, NMAP_REGIONS);
    for (size_t r = 0; r < NMAP_REGIONS; r++) {
        msgpack_pack_array(pk, 5);
        pk_cstr(pk, map_regions[r]);
        pk_cstr(pk, "PARTITION");
        msgpack_pack_uint32(pk, 0);
        msgpack_pack_uint32(pk, NBUCKETS);
        msgpack_pack_array(pk, NBUCKETS);
        for (uint32_t b = 0; b < NBUCKETS; b++) {
            msgpack_pack_array(pk, 3);
            msgpack_pack_uint64(pk, 1);
            msgpack_pack_array(pk, 1);
            msgpack_pack_uint32(pk, tmap_primary(m, b));
            msgpack_pack_array(pk, 0);
        }
    }
}

/* The member index (0..NSRV-1) of the primary of key under the "real" map. */
static int primary_of(const char *key)
{
    uint32_t bucket = hash_bucket(hash_key(key, strlen(key)), NBUCKETS);
    return (int)(bucket % NSRV);
}

/* ======================================================================
 * The fake locator.
 * ====================================================================== */

typedef struct loc {
    fake f;              /* first: the handler gets the fake */
    tmap maps[2];
    int cur;             /* index of the map served */
    int64_t switch_at;   /* > 0: serve maps[1] from this time on */
} loc;

static void pack_args_echo(msgpack_packer *pk, uint32_t op, const msgpack_object *args,
                           uint32_t nargs)
{
    msgpack_pack_map(pk, 2);
    pk_cstr(pk, "op");
    msgpack_pack_uint32(pk, op);
    pk_cstr(pk, "args");
    msgpack_pack_array(pk, nargs);
    for (uint32_t i = 0; i < nargs; i++)
        msgpack_pack_object(pk, args[i]);
}

/* The map the locator serves now. */
static const tmap *loc_map(loc *l)
{
    pthread_mutex_lock(&l->f.mu);
    if (l->switch_at > 0 && tu_now_ms() >= l->switch_at)
        l->cur = 1;
    const tmap *m = &l->maps[l->cur];
    pthread_mutex_unlock(&l->f.mu);
    return m;
}

/* Serves maps[cur] from now on, or (at > 0) maps[1] from time at on. */
static void loc_switch(loc *l, int cur, int64_t at)
{
    pthread_mutex_lock(&l->f.mu);
    l->switch_at = at;
    if (at <= 0)
        l->cur = cur;
    pthread_mutex_unlock(&l->f.mu);
}

static int loc_fn(fake *f, uint64_t id, uint32_t op, const msgpack_object *args, uint32_t nargs,
                  msgpack_packer *pk)
{
    loc *l = (loc *)f;
    switch (op) {
    case 2:  /* PING */
    case 10: /* REGION_CREATE */
    case 11: /* REGION_DESTROY */
        resp_head(pk, id, 0, 0);
        break;
    case 3: /* SERVER_INFO */
        resp_head(pk, id, 0, 1);
        msgpack_pack_map(pk, 1);
        pk_cstr(pk, "name");
        pk_cstr(pk, "fake-locator");
        break;
    case 4: /* CLUSTER_MAP */
        resp_head(pk, id, 0, 1);
        pack_map(pk, loc_map(l));
        break;
    case 12: /* REGION_LIST */
        resp_head(pk, id, 0, 1);
        msgpack_pack_array(pk, 0);
        break;
    case 5: case 6: case 7: case 8: case 9: /* the admin documents */
        resp_head(pk, id, 0, 1);
        pack_args_echo(pk, op, args, nargs);
        break;
    case 14: { /* SHUTDOWN: 3 members, +1 with the locators */
        const msgpack_object *inc = nargs == 1 ? tw_map_get(&args[0], "include_locators") : NULL;
        resp_head(pk, id, 0, 1);
        msgpack_pack_uint32(pk, inc && inc->type == MSGPACK_OBJECT_BOOLEAN && inc->via.boolean ? 4 : 3);
        break;
    }
    default:
        resp_error(pk, id, 10, "unknown opcode");
    }
    return 0;
}

/* A fake locator whose map names the real servers srv[0..NSRV). */
static void loc_start_real(loc *l)
{
    memset(l, 0, sizeof(*l));
    l->f.locator = 1;
    l->f.mdv = 1;
    fake_start(&l->f, loc_fn);
    for (int v = 0; v < 2; v++) {
        tmap *m = &l->maps[v];
        m->version = (uint64_t)v + 1;
        snprintf(m->locator, sizeof(m->locator), "%s", l->f.addr);
        m->nmembers = NSRV;
        for (int i = 0; i < NSRV; i++) {
            m->ids[i] = FIRST_ID + (uint32_t)i;
            m->ports[i] = srv[i].port;
        }
    }
}

/* A client routing through the locator, named Geode style: host[port]. */
static agate_client *router_for(const loc *l, int request_ms)
{
    agate_options o;
    agate_options_init(&o);
    o.request_timeout_ms = request_ms;
    o.client_name = "cluster-tests";
    agate_client *c = agate_client_new(&o);
    ck_assert_ptr_nonnull(c);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1[%d]", l->f.port);
    int rc = agate_connect_locator(c, addr);
    ck_assert_msg(rc == 0, "connect_locator %s: %d %s", addr, rc, agate_errmsg(c));
    ck_assert_int_eq(agate_is_cluster(c), 1);
    return c;
}

/* A plain client of one server (a stand-alone server: no routing). */
static agate_client *direct(const char *addr)
{
    agate_options o;
    agate_options_init(&o);
    o.request_timeout_ms = timeout_ms();
    agate_client *c = agate_client_new(&o);
    ck_assert_ptr_nonnull(c);
    int rc = agate_connect(c, addr);
    ck_assert_msg(rc == 0, "connect %s: %d %s", addr, rc, agate_errmsg(c));
    ck_assert_int_eq(agate_is_cluster(c), 0);
    return c;
}

/* ---- values ---- */

typedef struct val {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} val;

static void val_str(val *v, const char *s)
{
    msgpack_sbuffer_init(&v->sb);
    msgpack_packer_init(&v->pk, &v->sb, msgpack_sbuffer_write);
    pk_cstr(&v->pk, s);
}

static void val_free(val *v) { msgpack_sbuffer_destroy(&v->sb); }

/* Whether b holds exactly the MessagePack string s. */
static bool is_str(const void *p, size_t n, const char *s)
{
    val v;
    val_str(&v, s);
    bool eq = n == v.sb.size && memcmp(p, v.sb.data, n) == 0;
    val_free(&v);
    return eq;
}

static void put_str(agate_client *c, const char *region, const char *key, const char *s)
{
    val v;
    val_str(&v, s);
    CK_OK(c, agate_put(c, region, key, strlen(key), v.sb.data, v.sb.size));
    val_free(&v);
}

static void key_name(char *out, size_t cap, const char *prefix, int i)
{
    snprintf(out, cap, "%s-%04d", prefix, i);
}

/* Creates region on every real server directly (stand-alone servers). */
static void create_everywhere(agate_client *const d[NSRV], const char *region)
{
    for (int s = 0; s < NSRV; s++) {
        agate_region_config cfg;
        agate_region_config_init(&cfg, region, AGATE_PARTITION);
        cfg.if_not_exists = 1;
        CK_OK(d[s], agate_region_create(d[s], &cfg));
        CK_OK(d[s], agate_clear(d[s], region, NULL));
    }
}

static void directs_open(agate_client *d[NSRV])
{
    for (int s = 0; s < NSRV; s++)
        d[s] = direct(srv[s].addr);
}

static void directs_close(agate_client *d[NSRV])
{
    for (int s = 0; s < NSRV; s++)
        agate_client_free(d[s]);
}

/* Region with key-i on its primary server only, value "v-i". */
static void place_on_primaries(agate_client *const d[NSRV], const char *region, int n)
{
    create_everywhere(d, region);
    for (int i = 0; i < n; i++) {
        char key[32], v[32];
        key_name(key, sizeof(key), region, i);
        snprintf(v, sizeof(v), "v-%d", i);
        put_str(d[primary_of(key)], region, key, v);
    }
}

/* ======================================================================
 * offline
 * ====================================================================== */

START_TEST(unavailable_error_and_admin_calls_need_a_cluster)
{
    ck_assert_str_eq(agate_strerror(AGATE_EUNAVAILABLE), "the cluster cannot serve the key now");
    ck_assert_int_eq(agate_is_cluster(NULL), 0);
    agate_client *c = agate_client_new(NULL);
    ck_assert_int_eq(agate_is_cluster(c), 0);
    agate_buf b;
    uint64_t n = 99;
    ck_assert_int_eq(agate_cluster_status(c, &b), AGATE_EINVAL);
    ck_assert_str_eq(agate_errmsg(c), "not connected to a cluster");
    ck_assert_ptr_null(b.data);
    ck_assert_int_eq(agate_member_list(c, &b), AGATE_EINVAL);
    ck_assert_int_eq(agate_member_describe(c, "m1", &b), AGATE_EINVAL);
    ck_assert_int_eq(agate_rebalance(c, 1, &b), AGATE_EINVAL);
    ck_assert_int_eq(agate_rebalance_status(c, &b), AGATE_EINVAL);
    ck_assert_int_eq(agate_shutdown_cluster(c, 0, &n), AGATE_EINVAL);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(agate_connect_locator(c, NULL), AGATE_EINVAL);
    ck_assert_int_eq(agate_connect_locator(c, " , "), AGATE_EINVAL);
    agate_client_free(c);
}
END_TEST

/* ======================================================================
 * reads: data placed directly on the servers, read through the router
 * ====================================================================== */

START_TEST(get_goes_to_the_primary)
{
    agate_client *d[NSRV];
    directs_open(d);
    place_on_primaries(d, "rd", NKEYS);
    /* "decoy": every key on every server, valued with the server's index:
     * a get through the router must return its primary's */
    create_everywhere(d, "decoy");
    for (int i = 0; i < NKEYS; i++) {
        char key[32];
        key_name(key, sizeof(key), "decoy", i);
        for (int s = 0; s < NSRV; s++)
            put_str(d[s], "decoy", key, s == 0 ? "s0" : s == 1 ? "s1" : "s2");
    }
    loc l;
    loc_start_real(&l);
    agate_client *c = router_for(&l, timeout_ms());
    int per_server[NSRV] = {0};
    for (int i = 0; i < NKEYS; i++) {
        char key[32], want[32];
        agate_buf v;
        key_name(key, sizeof(key), "decoy", i);
        int p = primary_of(key);
        per_server[p]++;
        CK_OK(c, agate_get(c, "decoy", key, strlen(key), &v));
        snprintf(want, sizeof(want), "s%d", p);
        ck_assert_msg(is_str(v.data, v.len, want), "%s was not read from its primary s%d", key, p);
        agate_buf_free(&v);

        key_name(key, sizeof(key), "rd", i);
        snprintf(want, sizeof(want), "v-%d", i);
        CK_OK(c, agate_get(c, "rd", key, strlen(key), &v));
        ck_assert(is_str(v.data, v.len, want));
        agate_buf_free(&v);
        agate_version ver;
        CK_OK(c, agate_get_entry(c, "rd", key, strlen(key), &v, &ver));
        ck_assert(is_str(v.data, v.len, want));
        ck_assert_uint_gt(ver.counter, 0);
        agate_buf_free(&v);
        ck_assert_int_eq(agate_contains_key(c, "rd", key, strlen(key)), 1);
    }
    for (int s = 0; s < NSRV; s++) /* the test means something: all three are used */
        ck_assert_int_gt(per_server[s], 50);
    agate_buf v;
    ck_assert_int_eq(agate_get(c, "rd", "absent", 6, &v), AGATE_ENOTFOUND);
    ck_assert_int_eq(agate_contains_key(c, "rd", "absent", 6), 0);
    /* a region the map does not know: refreshed once, then refused */
    int before = fake_count(&l.f, 4);
    ck_assert_int_eq(agate_get(c, "nosuch", "k", 1, &v), AGATE_EUNKNOWN_REGION);
    ck_assert_int_eq(fake_count(&l.f, 4), before + 1);
    /* ping and server info go to the locator */
    CK_OK(c, agate_ping(c));
    ck_assert_int_eq(fake_count(&l.f, 2), 1);
    CK_OK(c, agate_server_info(c, &v));
    ck_assert_ptr_nonnull(v.data);
    agate_buf_free(&v);
    ck_assert_ptr_nonnull(agate_server_address(c));
    ck_assert_str_eq(agate_server_address(c), l.f.addr);
    agate_client_free(c);
    fake_stop(&l.f);
    directs_close(d);
}
END_TEST

START_TEST(get_all_size_scans_and_clear_combine_members)
{
    agate_client *d[NSRV];
    directs_open(d);
    place_on_primaries(d, "scan", NKEYS);
    loc l;
    loc_start_real(&l);
    agate_client *c = router_for(&l, timeout_ms());

    /* get_all: keys in a scrambled order with absent keys among them */
    enum { N = NKEYS + 5 };
    char names[N][32];
    agate_key keys[N];
    agate_buf vals[N];
    for (int i = 0; i < N; i++) {
        int k = (i * 7) % N; /* 7 is coprime with 305 */
        if (k < NKEYS)
            key_name(names[i], sizeof(names[i]), "scan", k);
        else
            snprintf(names[i], sizeof(names[i]), "missing-%d", k);
        keys[i].key = names[i];
        keys[i].klen = strlen(names[i]);
    }
    CK_OK(c, agate_get_all(c, "scan", keys, N, vals));
    for (int i = 0; i < N; i++) {
        int k = (i * 7) % N;
        if (k >= NKEYS) {
            ck_assert_ptr_null(vals[i].data);
            continue;
        }
        char want[32];
        snprintf(want, sizeof(want), "v-%d", k);
        ck_assert_msg(is_str(vals[i].data, vals[i].len, want), "get_all[%d] (%s) wrong", i,
                      names[i]);
        agate_buf_free(&vals[i]);
    }

    uint64_t size = 0;
    CK_OK(c, agate_size(c, "scan", &size));
    ck_assert_uint_eq(size, NKEYS);

    /* keys and entries: every key exactly once, the member index in the
     * cursor's top 16 bits */
    for (int entries = 0; entries < 2; entries++) {
        int seen[NKEYS] = {0};
        int pages = 0, member_switches = 0;
        uint64_t cursor = 0, last_member = 0;
        do {
            agate_page page;
            int rc = entries ? agate_entries(c, "scan", cursor, 13, &page)
                             : agate_keys(c, "scan", cursor, 7, &page);
            ck_assert_msg(rc == 0, "scan: %d %s", rc, agate_errmsg(c));
            for (size_t i = 0; i < page.n; i++) {
                int k = -1;
                char name[32];
                snprintf(name, sizeof(name), "%.*s", (int)page.keys[i].len,
                         (const char *)page.keys[i].data);
                ck_assert_int_eq(sscanf(name, "scan-%4d", &k), 1);
                ck_assert(k >= 0 && k < NKEYS);
                seen[k]++;
                if (entries) {
                    char want[32];
                    snprintf(want, sizeof(want), "v-%d", k);
                    ck_assert(is_str(page.values[i].data, page.values[i].len, want));
                }
            }
            cursor = page.next_cursor;
            if (cursor && (cursor >> 48) != last_member) {
                ck_assert_uint_eq(cursor >> 48, last_member + 1);
                last_member = cursor >> 48;
                member_switches++;
            }
            agate_page_free(&page);
            pages++;
        } while (cursor != 0 && pages < 10000);
        ck_assert_int_eq(cursor, 0);
        ck_assert_int_eq(member_switches, NSRV - 1);
        for (int k = 0; k < NKEYS; k++)
            ck_assert_msg(seen[k] == 1, "scan-%04d seen %d times", k, seen[k]);
    }

    /* clear: every member's share, summed */
    uint64_t removed = 0;
    CK_OK(c, agate_clear(c, "scan", &removed));
    ck_assert_uint_eq(removed, NKEYS);
    for (int s = 0; s < NSRV; s++) {
        CK_OK(d[s], agate_size(d[s], "scan", &size));
        ck_assert_uint_eq(size, 0);
    }
    CK_OK(c, agate_size(c, "scan", &size));
    ck_assert_uint_eq(size, 0);
    agate_client_free(c);
    fake_stop(&l.f);
    directs_close(d);
}
END_TEST

typedef struct got {
    int calls;
    int status;
    char value[32];
} got;

static void on_get(agate_client *c, const agate_reply *r, void *arg)
{
    got *g = arg;
    g->calls++;
    g->status = r->status;
    g->value[0] = '\0';
    /* a fixstr "v-N" / "sN": decode it for the check */
    const uint8_t *p = r->value;
    if (r->status == 0 && r->vlen > 0 && (p[0] & 0xe0) == 0xa0 && r->vlen - 1 < sizeof(g->value))
        snprintf(g->value, sizeof(g->value), "%.*s", (int)(r->vlen - 1), (const char *)p + 1);
    ck_assert_int_eq(agate_is_cluster(c), 1); /* the routing client, not a member's */
}

START_TEST(async_gets_route_and_complete_once)
{
    agate_client *d[NSRV];
    directs_open(d);
    place_on_primaries(d, "async", NKEYS);
    loc l;
    loc_start_real(&l);
    agate_client *c = router_for(&l, timeout_ms());
    static got g[NKEYS];
    memset(g, 0, sizeof(g));
    for (int i = 0; i < NKEYS; i++) {
        char key[32];
        key_name(key, sizeof(key), "async", i);
        CK_OK(c, agate_get_async(c, "async", key, strlen(key), on_get, &g[i]));
    }
    ck_assert_uint_eq(agate_pending(c), NKEYS);
    CK_OK(c, agate_wait(c, timeout_ms()));
    ck_assert_uint_eq(agate_pending(c), 0);
    for (int i = 0; i < NKEYS; i++) {
        char want[32];
        snprintf(want, sizeof(want), "v-%d", i);
        ck_assert_int_eq(g[i].calls, 1);
        ck_assert_int_eq(g[i].status, 0);
        ck_assert_str_eq(g[i].value, want);
    }

    /* the same through an event loop on agate_fd (an epoll set): it must
     * wake up by itself, so a long poll timeout must never expire */
    int fd = agate_fd(c);
    ck_assert_int_ge(fd, 0);
    memset(g, 0, sizeof(g));
    for (int i = 0; i < NKEYS; i++) {
        char key[32];
        key_name(key, sizeof(key), "async", i);
        CK_OK(c, agate_get_async(c, "async", key, strlen(key), on_get, &g[i]));
    }
    ck_assert_int_eq(agate_fd(c), fd); /* stable */
    int expired_polls = 0, rounds = 0;
    while (agate_pending(c) > 0 && rounds++ < 10000) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 3000) == 0)
            expired_polls++;
        ck_assert_int_ge(agate_process(c), 0);
    }
    ck_assert_int_eq(expired_polls, 0);
    ck_assert_uint_eq(agate_pending(c), 0);
    for (int i = 0; i < NKEYS; i++) {
        ck_assert_int_eq(g[i].calls, 1);
        ck_assert_int_eq(g[i].status, 0);
    }
    agate_client_free(c);
    fake_stop(&l.f);
    directs_close(d);
}
END_TEST

START_TEST(connect_to_a_locator_routes)
{
    agate_client *d[NSRV];
    directs_open(d);
    place_on_primaries(d, "loop", 30);
    loc l;
    loc_start_real(&l);
    /* agate_connect to the locator's address: HELLO says role "locator" */
    agate_options o;
    agate_options_init(&o);
    agate_client *c = agate_client_new(&o);
    int rc = agate_connect(c, l.f.addr);
    ck_assert_msg(rc == 0, "%d %s", rc, agate_errmsg(c));
    ck_assert_int_eq(agate_is_cluster(c), 1);
    for (int i = 0; i < 30; i++) {
        char key[32], want[32];
        agate_buf v;
        key_name(key, sizeof(key), "loop", i);
        snprintf(want, sizeof(want), "v-%d", i);
        CK_OK(c, agate_get(c, "loop", key, strlen(key), &v));
        ck_assert(is_str(v.data, v.len, want));
        agate_buf_free(&v);
    }
    /* agate_connect again, to a stand-alone server: single-server mode */
    CK_OK(c, agate_connect(c, srv[0].addr));
    ck_assert_int_eq(agate_is_cluster(c), 0);
    agate_buf b;
    ck_assert_int_eq(agate_cluster_status(c, &b), AGATE_EINVAL);
    agate_client_free(c);
    fake_stop(&l.f);
    directs_close(d);
}
END_TEST

/* A fake member of the map that is itself what agate_connect reaches:
 * HELLO with a metadata_version, CLUSTER_MAP with the locator's map. */
typedef struct entry_member {
    fake f;
    loc *l;
} entry_member;

static int entry_fn(fake *f, uint64_t id, uint32_t op, const msgpack_object *args,
                    uint32_t nargs, msgpack_packer *pk)
{
    entry_member *m = (entry_member *)f;
    if (op == 4) {
        resp_head(pk, id, 0, 1);
        pack_map(pk, loc_map(m->l));
    } else {
        resp_error(pk, id, 10, "entry member serves CLUSTER_MAP only");
    }
    return 0;
}

START_TEST(connect_to_a_member_routes)
{
    agate_client *d[NSRV];
    directs_open(d);
    place_on_primaries(d, "loop", 30);
    loc l;
    loc_start_real(&l);
    entry_member m = {.l = &l};
    m.f.mdv = 7;
    m.f.member_id = 999; /* not in the map: its connection is not kept */
    fake_start(&m.f, entry_fn);
    agate_client *c = agate_client_new(NULL);
    int rc = agate_connect(c, m.f.addr);
    ck_assert_msg(rc == 0, "%d %s", rc, agate_errmsg(c));
    ck_assert_int_eq(agate_is_cluster(c), 1);
    ck_assert_int_eq(fake_count(&m.f, 4), 1);
    for (int i = 0; i < 30; i++) {
        char key[32], want[32];
        agate_buf v;
        key_name(key, sizeof(key), "loop", i);
        snprintf(want, sizeof(want), "v-%d", i);
        CK_OK(c, agate_get(c, "loop", key, strlen(key), &v));
        ck_assert(is_str(v.data, v.len, want));
        agate_buf_free(&v);
    }
    /* admin calls go to the locator the map names */
    agate_buf b;
    CK_OK(c, agate_cluster_status(c, &b));
    agate_buf_free(&b);
    ck_assert_int_eq(fake_count(&l.f, 7), 1);
    agate_client_free(c);
    fake_stop(&m.f);
    fake_stop(&l.f);
    directs_close(d);
}
END_TEST

/* Decodes an admin echo {"op": op, "args": [...]} from the fake locator. */
static void check_echo(const agate_buf *b, uint32_t op, const char *arg_key, int arg_bool,
                       const char *arg_str)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(msgpack_unpack_next(&u, (const char *)b->data, b->len, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *o = tw_map_get(&u.data, "op");
    ck_assert_ptr_nonnull(o);
    ck_assert_uint_eq(o->via.u64, op);
    const msgpack_object *a = tw_map_get(&u.data, "args");
    ck_assert_ptr_nonnull(a);
    if (arg_key) {
        ck_assert_uint_eq(a->via.array.size, 1);
        const msgpack_object *v = tw_map_get(&a->via.array.ptr[0], arg_key);
        ck_assert_ptr_nonnull(v);
        ck_assert_int_eq(v->type, MSGPACK_OBJECT_BOOLEAN);
        ck_assert_int_eq(v->via.boolean, arg_bool);
    } else if (arg_str) {
        ck_assert_uint_eq(a->via.array.size, 1);
        ck_assert(tw_obj_is_str(&a->via.array.ptr[0], arg_str));
    } else {
        ck_assert_uint_eq(a->via.array.size, 0);
    }
    msgpack_unpacked_destroy(&u);
}

START_TEST(admin_calls_go_to_the_locator)
{
    loc l;
    loc_start_real(&l);
    agate_client *c = router_for(&l, timeout_ms());
    agate_buf b;
    CK_OK(c, agate_cluster_status(c, &b));
    check_echo(&b, 7, NULL, 0, NULL);
    agate_buf_free(&b);
    CK_OK(c, agate_member_list(c, &b));
    check_echo(&b, 5, NULL, 0, NULL);
    agate_buf_free(&b);
    CK_OK(c, agate_member_describe(c, "m102", &b));
    check_echo(&b, 6, NULL, 0, "m102");
    agate_buf_free(&b);
    CK_OK(c, agate_rebalance(c, 1, &b));
    check_echo(&b, 8, "simulate", 1, NULL);
    agate_buf_free(&b);
    CK_OK(c, agate_rebalance(c, 0, &b));
    check_echo(&b, 8, "simulate", 0, NULL);
    agate_buf_free(&b);
    CK_OK(c, agate_rebalance_status(c, &b));
    check_echo(&b, 9, NULL, 0, NULL);
    agate_buf_free(&b);
    uint64_t stopped = 0;
    CK_OK(c, agate_shutdown_cluster(c, 0, &stopped));
    ck_assert_uint_eq(stopped, 3);
    CK_OK(c, agate_shutdown_cluster(c, 1, &stopped));
    ck_assert_uint_eq(stopped, 4);
    /* region definitions go to the locator, and a create refreshes the map */
    int maps = fake_count(&l.f, 4);
    agate_region_config cfg;
    agate_region_config_init(&cfg, "newregion", AGATE_PARTITION_REDUNDANT);
    CK_OK(c, agate_region_create(c, &cfg));
    ck_assert_int_eq(fake_count(&l.f, 10), 1);
    ck_assert_int_eq(fake_count(&l.f, 4), maps + 1);
    CK_OK(c, agate_region_destroy(c, "newregion"));
    ck_assert_int_eq(fake_count(&l.f, 11), 1);
    agate_region_info *infos;
    size_t n = 9;
    CK_OK(c, agate_region_list(c, &infos, &n));
    ck_assert_uint_eq(n, 0);
    agate_region_list_free(infos, n);
    agate_client_free(c);
    fake_stop(&l.f);
}
END_TEST

/* ======================================================================
 * fake members: redirects, unavailability, lost answers, event ids
 * ====================================================================== */

enum { MEM_OK, MEM_REDIRECT, MEM_UNAVAILABLE, MEM_DROP };

typedef struct logged {
    uint32_t op;
    uint32_t nargs;
    uint64_t cid, seq; /* the last argument when it is [uint, uint] */
    uint32_t nentries; /* PUT_ALL */
    char first_key[32];
} logged;

typedef struct fmember {
    fake f;
    int mode;
    int remaining; /* MEM_UNAVAILABLE, MEM_DROP: how many more times */
    loc *l;        /* MEM_REDIRECT: switches it to maps[1] */
    logged log[128];
    int nlog;
} fmember;

static void log_request(fmember *m, uint32_t op, const msgpack_object *args, uint32_t nargs)
{
    if (m->nlog >= 128)
        return;
    logged *e = &m->log[m->nlog++];
    memset(e, 0, sizeof(*e));
    e->op = op;
    e->nargs = nargs;
    const msgpack_object *last = nargs ? &args[nargs - 1] : NULL;
    if (last && last->type == MSGPACK_OBJECT_ARRAY && last->via.array.size == 2) {
        e->cid = last->via.array.ptr[0].via.u64;
        e->seq = last->via.array.ptr[1].via.u64;
    }
    if (op == 24 && nargs >= 2 && args[1].type == MSGPACK_OBJECT_MAP) {
        e->nentries = args[1].via.map.size;
        const msgpack_object *k = &args[1].via.map.ptr[0].key;
        if (e->nentries && k->type == MSGPACK_OBJECT_STR)
            snprintf(e->first_key, sizeof(e->first_key), "%.*s", (int)k->via.str.size,
                     k->via.str.ptr);
    }
}

static int member_fn(fake *f, uint64_t id, uint32_t op, const msgpack_object *args,
                     uint32_t nargs, msgpack_packer *pk)
{
    fmember *m = (fmember *)f;
    pthread_mutex_lock(&f->mu);
    log_request(m, op, args, nargs);
    int mode = m->mode;
    if ((mode == MEM_UNAVAILABLE || mode == MEM_DROP) && m->remaining-- <= 0)
        mode = MEM_OK;
    pthread_mutex_unlock(&f->mu);
    if (mode == MEM_DROP)
        return 1;
    if (mode == MEM_UNAVAILABLE) {
        resp_error(pk, id, 22, "bucket is moving");
    } else if (mode == MEM_REDIRECT) {
        loc_switch(m->l, 1, 0);
        resp_head(pk, id, 2, 2);
        msgpack_pack_uint64(pk, 2);
        msgpack_pack_uint64(pk, 0);
    } else if (op == 21) { /* GET */
        resp_head(pk, id, 0, 1);
        pk_cstr(pk, "fake");
    } else if (op == 24) { /* PUT_ALL */
        resp_head(pk, id, 0, 1);
        msgpack_pack_uint32(pk, nargs >= 2 ? args[1].via.map.size : 0);
    } else {
        resp_head(pk, id, 0, 0);
    }
    return 0;
}

/* A locator whose map v1 sends every bucket to fake member a; v2 to b. */
static void loc_start_fakes(loc *l, fmember *a, fmember *b)
{
    memset(l, 0, sizeof(*l));
    l->f.locator = 1;
    fake_start(&l->f, loc_fn);
    fmember *ms[2] = {a, b};
    for (int v = 0; v < 2; v++) {
        tmap *m = &l->maps[v];
        m->version = (uint64_t)v + 1;
        snprintf(m->locator, sizeof(m->locator), "%s", l->f.addr);
        m->nmembers = 2;
        m->ids[0] = 201;
        m->ids[1] = 202;
        m->ports[0] = a->f.port;
        m->ports[1] = b->f.port;
        m->all_to = ms[v] == a ? 201 : 202;
    }
}

static void member_start(fmember *m, int mode, int remaining, loc *l)
{
    memset(m, 0, sizeof(*m));
    m->mode = mode;
    m->remaining = remaining;
    m->l = l;
    fake_start(&m->f, member_fn);
}

static logged log_at(fmember *m, int i)
{
    pthread_mutex_lock(&m->f.mu);
    ck_assert_int_lt(i, m->nlog);
    logged e = m->log[i];
    pthread_mutex_unlock(&m->f.mu);
    return e;
}

static int log_len(fmember *m)
{
    pthread_mutex_lock(&m->f.mu);
    int n = m->nlog;
    pthread_mutex_unlock(&m->f.mu);
    return n;
}

START_TEST(writes_carry_event_ids)
{
    fmember a, b;
    loc l;
    member_start(&a, MEM_OK, 0, NULL);
    member_start(&b, MEM_OK, 0, NULL);
    loc_start_fakes(&l, &a, &b);
    agate_client *c = router_for(&l, timeout_ms());
    put_str(c, "ev", "k1", "x");
    put_str(c, "ev", "k2", "x");
    CK_OK(c, agate_remove(c, "ev", "k1", 2));
    agate_buf v;
    CK_OK(c, agate_get(c, "ev", "k1", 2, &v));
    agate_buf_free(&v);
    agate_kv kvs[10];
    char names[10][8];
    val one;
    val_str(&one, "x");
    for (int i = 0; i < 10; i++) {
        snprintf(names[i], sizeof(names[i]), "pa%d", i);
        kvs[i] = (agate_kv){names[i], strlen(names[i]), one.sb.data, one.sb.size};
    }
    CK_OK(c, agate_put_all(c, "ev", kvs, 10));
    CK_OK(c, agate_put_all(c, "ev", kvs, 3));
    put_str(c, "ev", "k3", "x");
    val_free(&one);

    ck_assert_int_eq(log_len(&a), 7);
    logged p1 = log_at(&a, 0), p2 = log_at(&a, 1), r = log_at(&a, 2), g = log_at(&a, 3);
    logged pa = log_at(&a, 4), pb = log_at(&a, 5), p3 = log_at(&a, 6);
    ck_assert_uint_eq(p1.op, 20);
    ck_assert_uint_eq(p1.nargs, 4); /* region, key, value, [client_id, seq] */
    ck_assert_uint_ne(p1.cid, 0);
    ck_assert_uint_eq(p2.cid, p1.cid);
    ck_assert_uint_eq(p2.seq, p1.seq + 1);
    ck_assert_uint_eq(r.op, 22);
    ck_assert_uint_eq(r.nargs, 3); /* region, key, [client_id, seq] */
    ck_assert_uint_eq(r.cid, p1.cid);
    ck_assert_uint_eq(r.seq, p1.seq + 2);
    ck_assert_uint_eq(g.op, 21);
    ck_assert_uint_eq(g.nargs, 2); /* reads carry none */
    ck_assert_uint_eq(pa.op, 24);
    ck_assert_uint_eq(pa.nargs, 3); /* region, entries, [client_id, base] */
    ck_assert_uint_eq(pa.nentries, 10);
    ck_assert_uint_eq(pa.cid, p1.cid);
    ck_assert_uint_eq(pa.seq, p1.seq + 3);
    ck_assert_str_eq(pa.first_key, "pa0");
    /* the base reserved 10 numbers: the next put_all starts after them */
    ck_assert_uint_eq(pb.seq, pa.seq + 10);
    ck_assert_uint_eq(pb.nentries, 3);
    ck_assert_uint_eq(p3.seq, pb.seq + 3);
    ck_assert_int_eq(log_len(&b), 0);

    /* a second client has another client id */
    agate_client *c2 = router_for(&l, timeout_ms());
    put_str(c2, "ev", "k1", "x");
    ck_assert_uint_ne(log_at(&a, 7).cid, p1.cid);
    agate_client_free(c2);
    agate_client_free(c);
    fake_stop(&l.f);
    fake_stop(&a.f);
    fake_stop(&b.f);
}
END_TEST

START_TEST(lost_answer_is_resent_with_the_same_event_id)
{
    fmember a, b;
    loc l;
    member_start(&a, MEM_DROP, 1, NULL); /* the first request: connection closed, no answer */
    member_start(&b, MEM_OK, 0, NULL);
    loc_start_fakes(&l, &a, &b);
    agate_client *c = router_for(&l, timeout_ms());
    put_str(c, "ev", "k1", "x");
    ck_assert_int_eq(log_len(&a), 2);
    logged first = log_at(&a, 0), again = log_at(&a, 1);
    ck_assert_uint_eq(first.op, 20);
    ck_assert_uint_eq(again.op, 20);
    ck_assert_uint_eq(again.cid, first.cid);
    ck_assert_uint_eq(again.seq, first.seq);

    /* the same for remove and put_all */
    pthread_mutex_lock(&a.f.mu);
    a.mode = MEM_DROP;
    a.remaining = 1;
    pthread_mutex_unlock(&a.f.mu);
    CK_OK(c, agate_remove(c, "ev", "k1", 2));
    logged r1 = log_at(&a, 2), r2 = log_at(&a, 3);
    ck_assert_uint_eq(r1.op, 22);
    ck_assert_uint_eq(r2.seq, r1.seq);
    ck_assert_uint_eq(r1.seq, first.seq + 1);

    pthread_mutex_lock(&a.f.mu);
    a.mode = MEM_DROP;
    a.remaining = 1;
    pthread_mutex_unlock(&a.f.mu);
    val one;
    val_str(&one, "x");
    agate_kv kvs[4] = {{"q0", 2, one.sb.data, one.sb.size}, {"q1", 2, one.sb.data, one.sb.size},
                       {"q2", 2, one.sb.data, one.sb.size}, {"q3", 2, one.sb.data, one.sb.size}};
    CK_OK(c, agate_put_all(c, "ev", kvs, 4));
    logged a1 = log_at(&a, 4), a2 = log_at(&a, 5);
    ck_assert_uint_eq(a1.op, 24);
    ck_assert_uint_eq(a2.op, 24);
    ck_assert_uint_eq(a2.nentries, 4);
    ck_assert_uint_eq(a2.seq, a1.seq);
    ck_assert_uint_eq(a2.cid, a1.cid);

    /* async: the callback runs once, after the resend with the same id */
    pthread_mutex_lock(&a.f.mu);
    a.mode = MEM_DROP;
    a.remaining = 1;
    pthread_mutex_unlock(&a.f.mu);
    got g = {0};
    CK_OK(c, agate_put_async(c, "ev", "k9", 2, one.sb.data, one.sb.size, on_get, &g));
    CK_OK(c, agate_wait(c, timeout_ms()));
    ck_assert_int_eq(g.calls, 1);
    ck_assert_int_eq(g.status, 0);
    logged s1 = log_at(&a, 6), s2 = log_at(&a, 7);
    ck_assert_uint_eq(s1.op, 20);
    ck_assert_uint_eq(s2.seq, s1.seq);
    ck_assert_int_eq(log_len(&a), 8);
    val_free(&one);
    agate_client_free(c);
    fake_stop(&l.f);
    fake_stop(&a.f);
    fake_stop(&b.f);
}
END_TEST

START_TEST(unavailable_is_retried_with_backoff)
{
    fmember a, b;
    loc l;
    member_start(&a, MEM_UNAVAILABLE, 3, NULL); /* UNAVAILABLE 3 times, then OK */
    member_start(&b, MEM_OK, 0, NULL);
    loc_start_fakes(&l, &a, &b);
    agate_client *c = router_for(&l, timeout_ms());
    int maps = fake_count(&l.f, 4);
    int64_t t0 = tu_now_ms();
    put_str(c, "ev", "k1", "x");
    int64_t took = tu_now_ms() - t0;
    ck_assert_msg(took >= 50 + 100 + 200 - 20, "retried after %lld ms only", (long long)took);
    ck_assert_int_eq(log_len(&a), 4);
    /* each UNAVAILABLE refreshed the map */
    ck_assert_int_ge(fake_count(&l.f, 4), maps + 3);
    /* not applied for sure: every attempt may take a new sequence number */
    for (int i = 1; i < 4; i++) {
        ck_assert_uint_eq(log_at(&a, i).cid, log_at(&a, 0).cid);
        ck_assert_uint_gt(log_at(&a, i).seq, log_at(&a, i - 1).seq);
    }

    /* async, driven by an event loop: the retry timer must wake the fd */
    pthread_mutex_lock(&a.f.mu);
    a.mode = MEM_UNAVAILABLE;
    a.remaining = 2;
    pthread_mutex_unlock(&a.f.mu);
    got g = {0};
    int fd = agate_fd(c);
    ck_assert_int_ge(fd, 0);
    CK_OK(c, agate_get_async(c, "ev", "k1", 2, on_get, &g));
    int expired_polls = 0, rounds = 0;
    while (agate_pending(c) > 0 && rounds++ < 1000) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 3000) == 0)
            expired_polls++;
        ck_assert_int_ge(agate_process(c), 0);
    }
    ck_assert_int_eq(expired_polls, 0);
    ck_assert_int_eq(g.calls, 1);
    ck_assert_int_eq(g.status, 0);
    ck_assert_str_eq(g.value, "fake");

    /* never available: gives up when the request timeout is used up */
    agate_client_free(c);
    pthread_mutex_lock(&a.f.mu);
    a.mode = MEM_UNAVAILABLE;
    a.remaining = 1000000;
    pthread_mutex_unlock(&a.f.mu);
    c = router_for(&l, 700);
    t0 = tu_now_ms();
    agate_buf v;
    int rc = agate_get(c, "ev", "k1", 2, &v);
    took = tu_now_ms() - t0;
    ck_assert_int_eq(rc, AGATE_EUNAVAILABLE);
    ck_assert_msg(took >= 650 && took < 3000, "gave up after %lld ms", (long long)took);
    ck_assert_msg(strstr(agate_errmsg(c), "bucket is moving") != NULL, "%s", agate_errmsg(c));
    g = (got){0};
    CK_OK(c, agate_get_async(c, "ev", "k1", 2, on_get, &g));
    CK_OK(c, agate_wait(c, timeout_ms()));
    ck_assert_int_eq(g.calls, 1);
    ck_assert_int_eq(g.status, AGATE_EUNAVAILABLE);
    agate_client_free(c);
    fake_stop(&l.f);
    fake_stop(&a.f);
    fake_stop(&b.f);
}
END_TEST

START_TEST(redirect_refetches_the_map)
{
    fmember a, b;
    loc l;
    member_start(&a, MEM_REDIRECT, 0, NULL);
    member_start(&b, MEM_OK, 0, NULL);
    loc_start_fakes(&l, &a, &b);
    a.l = &l;
    agate_client *c = router_for(&l, timeout_ms());
    int maps = fake_count(&l.f, 4);
    agate_buf v;
    CK_OK(c, agate_get(c, "ev", "k1", 2, &v)); /* a redirects (and moves the map to b) */
    ck_assert(is_str(v.data, v.len, "fake"));
    agate_buf_free(&v);
    ck_assert_int_eq(log_len(&a), 1);
    ck_assert_int_eq(log_len(&b), 1);
    ck_assert_int_eq(fake_count(&l.f, 4), maps + 1);
    /* from now on straight to b */
    CK_OK(c, agate_get(c, "ev", "k2", 2, &v));
    agate_buf_free(&v);
    ck_assert_int_eq(log_len(&a), 1);
    ck_assert_int_eq(log_len(&b), 2);

    /* async with a redirect: once, with b's answer */
    loc_switch(&l, 0, 0);
    agate_client *c2 = router_for(&l, timeout_ms());
    got g = {0};
    CK_OK(c2, agate_get_async(c2, "ev", "k3", 2, on_get, &g));
    CK_OK(c2, agate_wait(c2, timeout_ms()));
    ck_assert_int_eq(g.calls, 1);
    ck_assert_int_eq(g.status, 0);
    ck_assert_str_eq(g.value, "fake");
    ck_assert_int_eq(log_len(&a), 2);
    ck_assert_int_eq(log_len(&b), 3);

    /* put_all split across the redirect: every entry lands once, on b */
    loc_switch(&l, 0, 0);
    agate_client *c3 = router_for(&l, timeout_ms());
    val one;
    val_str(&one, "x");
    agate_kv kvs[3] = {{"x0", 2, one.sb.data, one.sb.size}, {"x1", 2, one.sb.data, one.sb.size},
                       {"x2", 2, one.sb.data, one.sb.size}};
    CK_OK(c3, agate_put_all(c3, "ev", kvs, 3));
    val_free(&one);
    logged last = log_at(&b, log_len(&b) - 1);
    ck_assert_uint_eq(last.op, 24);
    ck_assert_uint_eq(last.nentries, 3);
    agate_client_free(c3);
    agate_client_free(c2);
    agate_client_free(c);
    fake_stop(&l.f);
    fake_stop(&a.f);
    fake_stop(&b.f);
}
END_TEST

/* Redirect from a fake member to a REAL server: the refetched map names
 * the server, and the value comes from it. */
START_TEST(redirect_to_a_real_server)
{
    agate_client *d[NSRV];
    directs_open(d);
    create_everywhere(d, "ev");
    put_str(d[1], "ev", "k1", "from-srv1");
    fmember a;
    member_start(&a, MEM_REDIRECT, 0, NULL);
    loc l;
    memset(&l, 0, sizeof(l));
    l.f.locator = 1;
    fake_start(&l.f, loc_fn);
    a.l = &l;
    for (int v = 0; v < 2; v++) {
        tmap *m = &l.maps[v];
        m->version = (uint64_t)v + 1;
        snprintf(m->locator, sizeof(m->locator), "%s", l.f.addr);
        m->nmembers = 2;
        m->ids[0] = 201;
        m->ports[0] = a.f.port;
        m->ids[1] = FIRST_ID + 1;
        m->ports[1] = srv[1].port;
        m->all_to = v == 0 ? 201 : FIRST_ID + 1;
    }
    agate_client *c = router_for(&l, timeout_ms());
    agate_buf v;
    CK_OK(c, agate_get(c, "ev", "k1", 2, &v));
    ck_assert(is_str(v.data, v.len, "from-srv1"));
    agate_buf_free(&v);
    ck_assert_int_eq(log_len(&a), 1);
    agate_client_free(c);
    fake_stop(&l.f);
    fake_stop(&a.f);
    directs_close(d);
}
END_TEST

/* ======================================================================
 * writes through the router to real servers
 * NEEDS-EVENT-ID-SERVER: agated must accept the event id argument (PUT 4
 * arguments, REMOVE 3, PUT_ALL 3); a server without it answers BAD_REQUEST.
 * ====================================================================== */

/* Each server holds exactly the keys (prefix-0000 .. n-1) whose primary it
 * is, except those flagged in gone[] (may be NULL). */
static void check_placement(agate_client *const d[NSRV], const char *region, int n,
                            const bool *gone)
{
    int expect[NSRV] = {0};
    for (int i = 0; i < n; i++) {
        char key[32];
        key_name(key, sizeof(key), region, i);
        int p = primary_of(key);
        for (int s = 0; s < NSRV; s++) {
            int want = s == p && !(gone && gone[i]);
            int has = agate_contains_key(d[s], region, key, strlen(key));
            ck_assert_msg(has == want, "%s on server %d: %d, expected %d (primary %d)", key, s,
                          has, want, p);
        }
        if (!(gone && gone[i]))
            expect[p]++;
    }
    for (int s = 0; s < NSRV; s++) {
        uint64_t size;
        CK_OK(d[s], agate_size(d[s], region, &size));
        ck_assert_uint_eq(size, (uint64_t)expect[s]);
    }
}

START_TEST(puts_and_removes_land_on_the_primary)
{
    agate_client *d[NSRV];
    directs_open(d);
    create_everywhere(d, "wr");
    loc l;
    loc_start_real(&l);
    agate_client *c = router_for(&l, timeout_ms());
    for (int i = 0; i < NKEYS; i++) {
        char key[32], v[32];
        key_name(key, sizeof(key), "wr", i);
        snprintf(v, sizeof(v), "v-%d", i);
        put_str(c, "wr", key, v);
    }
    check_placement(d, "wr", NKEYS, NULL);
    bool gone[NKEYS] = {false};
    for (int i = 0; i < NKEYS; i += 6) {
        char key[32];
        key_name(key, sizeof(key), "wr", i);
        CK_OK(c, agate_remove(c, "wr", key, strlen(key)));
        gone[i] = true;
    }
    check_placement(d, "wr", NKEYS, gone);
    uint64_t size;
    CK_OK(c, agate_size(c, "wr", &size));
    ck_assert_uint_eq(size, NKEYS - NKEYS / 6);
    agate_client_free(c);
    fake_stop(&l.f);
    directs_close(d);
}
END_TEST

START_TEST(put_all_and_async_puts_land_on_the_primary)
{
    agate_client *d[NSRV];
    directs_open(d);
    create_everywhere(d, "wr2");
    create_everywhere(d, "wra");
    loc l;
    loc_start_real(&l);
    agate_client *c = router_for(&l, timeout_ms());
    static char names[NKEYS][32];
    static agate_kv kvs[NKEYS];
    val one;
    val_str(&one, "pv");
    for (int i = 0; i < NKEYS; i++) {
        key_name(names[i], sizeof(names[i]), "wr2", i);
        kvs[i] = (agate_kv){names[i], strlen(names[i]), one.sb.data, one.sb.size};
    }
    CK_OK(c, agate_put_all(c, "wr2", kvs, NKEYS));
    check_placement(d, "wr2", NKEYS, NULL);

    static got g[NKEYS];
    memset(g, 0, sizeof(g));
    for (int i = 0; i < NKEYS; i++) {
        char key[32];
        key_name(key, sizeof(key), "wra", i);
        CK_OK(c, agate_put_async(c, "wra", key, strlen(key), one.sb.data, one.sb.size, on_get,
                                 &g[i]));
    }
    CK_OK(c, agate_wait(c, timeout_ms()));
    for (int i = 0; i < NKEYS; i++) {
        ck_assert_int_eq(g[i].calls, 1);
        ck_assert_msg(g[i].status == 0, "async put %d: %d", i, g[i].status);
    }
    check_placement(d, "wra", NKEYS, NULL);
    val_free(&one);
    agate_client_free(c);
    fake_stop(&l.f);
    directs_close(d);
}
END_TEST

/* ======================================================================
 * failover: a member SIGKILLed, the map changes later
 * ====================================================================== */

START_TEST(member_killed_reads_retry_until_the_map_changes)
{
    tu_server s[2];
    memset(s, 0, sizeof(s));
    ck_assert(tu_server_start(&s[0], "cfo0", NULL) == 0);
    ck_assert(tu_server_start(&s[1], "cfo1", NULL) == 0);
    agate_client *d0 = direct(s[0].addr), *d1 = direct(s[1].addr);
    agate_client *ds[2] = {d0, d1};
    /* every key on both servers (s[0] holds the "copies") */
    for (int k = 0; k < 2; k++) {
        agate_region_config cfg;
        agate_region_config_init(&cfg, "fo", AGATE_PARTITION);
        CK_OK(ds[k], agate_region_create(ds[k], &cfg));
        for (int i = 0; i < 40; i++) {
            char key[32], v[32];
            key_name(key, sizeof(key), "fo", i);
            snprintf(v, sizeof(v), "v-%d", i);
            put_str(ds[k], "fo", key, v);
        }
    }
    agate_client_free(d0);
    agate_client_free(d1);

    loc l;
    memset(&l, 0, sizeof(l));
    l.f.locator = 1;
    fake_start(&l.f, loc_fn);
    for (int v = 0; v < 2; v++) {
        tmap *m = &l.maps[v];
        m->version = (uint64_t)v + 1;
        snprintf(m->locator, sizeof(m->locator), "%s", l.f.addr);
        m->nmembers = 2;
        m->ids[0] = 301;
        m->ports[0] = s[0].port;
        m->ids[1] = 302;
        m->ports[1] = s[1].port;
        m->all_to = v == 0 ? 0 : 301; /* v1: buckets alternate; v2: all on s[0] */
    }
    agate_client *c = router_for(&l, timeout_ms());
    /* a key whose primary is s[1] under v1 */
    char key[32] = "", want[32] = "";
    for (int i = 0; i < 40 && !key[0]; i++) {
        char k[32];
        key_name(k, sizeof(k), "fo", i);
        if (hash_bucket(hash_key(k, strlen(k)), NBUCKETS) % 2 == 1) {
            snprintf(key, sizeof(key), "%s", k);
            snprintf(want, sizeof(want), "v-%d", i);
        }
    }
    ck_assert(key[0]);
    agate_buf v;
    CK_OK(c, agate_get(c, "fo", key, strlen(key), &v)); /* connects to s[1] */
    agate_buf_free(&v);

    tu_server_kill(&s[1]);
    /* the locator notices later (member timeout + check in a real one) */
    loc_switch(&l, 1, tu_now_ms() + 1500);
    int64_t t0 = tu_now_ms();
    int rc = agate_get(c, "fo", key, strlen(key), &v);
    int64_t took = tu_now_ms() - t0;
    ck_assert_msg(rc == 0, "get after the kill: %d %s", rc, agate_errmsg(c));
    ck_assert(is_str(v.data, v.len, want));
    agate_buf_free(&v);
    ck_assert_msg(took >= 1400 && took < 9000, "took %lld ms", (long long)took);

    /* async too, on a fresh client whose map still names the dead member */
    loc_switch(&l, 0, 0);
    agate_client *c2 = router_for(&l, timeout_ms());
    loc_switch(&l, 1, tu_now_ms() + 1000);
    got g = {0};
    CK_OK(c2, agate_get_async(c2, "fo", key, strlen(key), on_get, &g));
    CK_OK(c2, agate_wait(c2, timeout_ms()));
    ck_assert_int_eq(g.calls, 1);
    ck_assert_int_eq(g.status, 0);
    ck_assert_str_eq(g.value, want);
    agate_client_free(c2);

    /* the map never changes: gives up after the request timeout */
    loc_switch(&l, 0, 0);
    agate_client *c3 = router_for(&l, 800);
    t0 = tu_now_ms();
    rc = agate_get(c3, "fo", key, strlen(key), &v);
    took = tu_now_ms() - t0;
    ck_assert_msg(rc == AGATE_ECONNECT || rc == AGATE_EIO, "%d %s", rc, agate_errmsg(c3));
    ck_assert_msg(took >= 700 && took < 4000, "gave up after %lld ms", (long long)took);
    ck_assert_msg(strstr(agate_errmsg(c3), "retried for") != NULL, "%s", agate_errmsg(c3));
    agate_client_free(c3);

    agate_client_free(c);
    fake_stop(&l.f);
    tu_server_cleanup(&s[1], false);
    ck_assert_int_eq(tu_server_stop(&s[0], 15000 * tu_timeout_scale()), 0);
    tu_server_cleanup(&s[0], false);
}
END_TEST

/* ======================================================================
 * A real cluster: an agated locator and three agated members.
 * ====================================================================== */

#define REAL_MEMBER_TIMEOUT "--member-timeout=1000"

typedef struct real_cluster {
    tu_server loc;
    tu_server mem[NSRV];
    char locators[64]; /* "127.0.0.1[port]" */
} real_cluster;

/* Elements of the MessagePack array in b (-1 if it is not one). */
static int buf_array_len(const agate_buf *b)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int n = -1;
    if (msgpack_unpack_next(&u, (const char *)b->data, b->len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_ARRAY)
        n = (int)u.data.via.array.size;
    msgpack_unpacked_destroy(&u);
    return n;
}

static agate_client *real_router(const real_cluster *rc, int request_ms)
{
    agate_options o;
    agate_options_init(&o);
    o.request_timeout_ms = request_ms;
    agate_client *c = agate_client_new(&o);
    ck_assert_ptr_nonnull(c);
    int rc_ = agate_connect_locator(c, rc->locators);
    ck_assert_msg(rc_ == 0, "connect_locator: %d %s", rc_, agate_errmsg(c));
    return c;
}

/* Starts the locator and the members and waits until all have joined. */
static void real_start(real_cluster *rc)
{
    memset(rc, 0, sizeof(*rc));
    const char *largs[] = {"--role=locator", REAL_MEMBER_TIMEOUT, NULL};
    ck_assert(tu_server_start(&rc->loc, "crloc", largs) == 0);
    snprintf(rc->locators, sizeof(rc->locators), "127.0.0.1[%d]", rc->loc.port);
    char larg[80];
    snprintf(larg, sizeof(larg), "--locators=%s", rc->locators);
    const char *margs[] = {larg, REAL_MEMBER_TIMEOUT, NULL};
    for (int i = 0; i < NSRV; i++) {
        char name[32];
        snprintf(name, sizeof(name), "crm%d", i);
        ck_assert(tu_server_start(&rc->mem[i], name, margs) == 0);
    }
    agate_client *c = real_router(rc, timeout_ms());
    int n = 0;
    for (int64_t end = tu_now_ms() + 20000 * tu_timeout_scale(); tu_now_ms() < end;
         tu_sleep_ms(50)) {
        agate_buf b;
        CK_OK(c, agate_member_list(c, &b));
        n = buf_array_len(&b);
        agate_buf_free(&b);
        if (n == NSRV)
            break;
    }
    ck_assert_int_eq(n, NSRV);
    agate_client_free(c);
}

static void real_stop(real_cluster *rc)
{
    for (int i = 0; i < NSRV; i++) {
        tu_server_kill(&rc->mem[i]);
        tu_server_cleanup(&rc->mem[i], false);
    }
    tu_server_kill(&rc->loc);
    tu_server_cleanup(&rc->loc, false);
}

static void real_region(agate_client *c, const char *name)
{
    agate_region_config cfg;
    agate_region_config_init(&cfg, name, AGATE_PARTITION_REDUNDANT);
    cfg.redundant_copies = 1;
    CK_OK(c, agate_region_create(c, &cfg));
}

/* SIZE straight to one member (its primary buckets only), over the wire. */
static uint64_t raw_size(int port, const char *region)
{
    int fd = tw_open(port);
    tw_msg m;
    tw_resp r;
    tw_req(&m, 2, 26, 1);
    tw_pack_cstr(&m.pk, region);
    tw_call(fd, &m, &r);
    ck_assert_int_eq(r.status, 0);
    uint64_t n = r.results[0].via.u64;
    tw_resp_free(&r);
    tw_msg_free(&m);
    close(fd);
    return n;
}

START_TEST(real_cluster_routes_and_combines)
{
    real_cluster rc;
    real_start(&rc);
    agate_client *c = real_router(&rc, timeout_ms());
    real_region(c, "rc");
    for (int i = 0; i < NKEYS; i++) {
        char key[32], v[32];
        key_name(key, sizeof(key), "rc", i);
        snprintf(v, sizeof(v), "v-%d", i);
        put_str(c, "rc", key, v);
    }
    /* each member counts its primary buckets: the shares add up, and
     * every member has one */
    uint64_t total = 0;
    for (int s = 0; s < NSRV; s++) {
        uint64_t n = raw_size(rc.mem[s].port, "rc");
        ck_assert_uint_gt(n, 0);
        total += n;
    }
    ck_assert_uint_eq(total, NKEYS);
    /* a key is served by exactly one member (the others redirect): the
     * router found it there */
    int fds[NSRV];
    for (int s = 0; s < NSRV; s++)
        fds[s] = tw_open(rc.mem[s].port);
    for (int i = 0; i < NKEYS; i += 10) {
        char key[32];
        key_name(key, sizeof(key), "rc", i);
        int ok = 0, redirected = 0;
        for (int s = 0; s < NSRV; s++) {
            uint8_t *out = NULL;
            size_t len;
            int st = tw_get_raw(fds[s], "rc", key, &out, &len);
            ok += st == 0;
            redirected += st == 2;
            free(out);
        }
        ck_assert_msg(ok == 1 && redirected == NSRV - 1, "%s: %d OK, %d REDIRECT", key, ok,
                      redirected);
    }
    for (int s = 0; s < NSRV; s++)
        close(fds[s]);

    /* through the router: get_all, size, scan, put_all, remove, clear */
    static char names[2 * NKEYS][32];
    static agate_key keys[2 * NKEYS];
    static agate_kv kvs[NKEYS];
    static agate_buf vals[2 * NKEYS];
    for (int i = 0; i < 2 * NKEYS; i++) {
        key_name(names[i], sizeof(names[i]), "rc", i);
        keys[i] = (agate_key){names[i], strlen(names[i])};
    }
    CK_OK(c, agate_get_all(c, "rc", keys, 2 * NKEYS, vals));
    for (int i = 0; i < 2 * NKEYS; i++) {
        char want[32];
        snprintf(want, sizeof(want), "v-%d", i);
        if (i >= NKEYS)
            ck_assert_ptr_null(vals[i].data);
        else
            ck_assert(is_str(vals[i].data, vals[i].len, want));
        agate_buf_free(&vals[i]);
    }
    val one;
    val_str(&one, "pa");
    for (int i = 0; i < NKEYS; i++)
        kvs[i] = (agate_kv){names[NKEYS + i], strlen(names[NKEYS + i]), one.sb.data, one.sb.size};
    CK_OK(c, agate_put_all(c, "rc", kvs, NKEYS));
    val_free(&one);
    uint64_t size;
    CK_OK(c, agate_size(c, "rc", &size));
    ck_assert_uint_eq(size, 2 * NKEYS);
    static int seen[2 * NKEYS];
    memset(seen, 0, sizeof(seen));
    uint64_t cursor = 0;
    int pages = 0;
    do {
        agate_page page;
        CK_OK(c, agate_keys(c, "rc", cursor, 50, &page));
        for (size_t i = 0; i < page.n; i++) {
            char name[32];
            int k = -1;
            snprintf(name, sizeof(name), "%.*s", (int)page.keys[i].len,
                     (const char *)page.keys[i].data);
            ck_assert_int_eq(sscanf(name, "rc-%4d", &k), 1);
            ck_assert(k >= 0 && k < 2 * NKEYS);
            seen[k]++;
        }
        cursor = page.next_cursor;
        agate_page_free(&page);
    } while (cursor && ++pages < 10000);
    for (int k = 0; k < 2 * NKEYS; k++)
        ck_assert_msg(seen[k] == 1, "rc-%04d seen %d times", k, seen[k]);
    for (int i = 0; i < 20; i++)
        CK_OK(c, agate_remove(c, "rc", names[i], strlen(names[i])));
    ck_assert_int_eq(agate_remove(c, "rc", names[0], strlen(names[0])), AGATE_ENOTFOUND);
    uint64_t removed;
    CK_OK(c, agate_clear(c, "rc", &removed));
    ck_assert_uint_eq(removed, 2 * NKEYS - 20);
    CK_OK(c, agate_size(c, "rc", &size));
    ck_assert_uint_eq(size, 0);

    /* admin documents from the real locator */
    agate_buf b;
    CK_OK(c, agate_cluster_status(c, &b));
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(msgpack_unpack_next(&u, (const char *)b.data, b.len, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *members = tw_map_get(&u.data, "members");
    ck_assert_ptr_nonnull(members);
    ck_assert_uint_eq(members->via.array.size, NSRV);
    msgpack_unpacked_destroy(&u);
    agate_buf_free(&b);
    CK_OK(c, agate_member_list(c, &b));
    ck_assert_int_eq(buf_array_len(&b), NSRV);
    agate_buf_free(&b);

    /* agate_connect to a member routes too */
    agate_client *cm = agate_client_new(NULL);
    CK_OK(cm, agate_connect(cm, rc.mem[1].addr));
    ck_assert_int_eq(agate_is_cluster(cm), 1);
    put_str(cm, "rc", "via-member", "x");
    CK_OK(cm, agate_size(cm, "rc", &size));
    ck_assert_uint_eq(size, 1);
    agate_client_free(cm);

    agate_client_free(c);
    real_stop(&rc);
}
END_TEST

START_TEST(real_member_killed_reads_and_writes_continue)
{
    real_cluster rc;
    real_start(&rc);
    agate_client *c = real_router(&rc, timeout_ms());
    real_region(c, "rk");
    enum { N = 200 };
    for (int i = 0; i < N; i++) {
        char key[32], v[32];
        key_name(key, sizeof(key), "rk", i);
        snprintf(v, sizeof(v), "v-%d", i);
        put_str(c, "rk", key, v);
    }
    tu_server_kill(&rc.mem[1]);
    int64_t t0 = tu_now_ms();
    /* every acknowledged write is readable through the router, which
     * retries until the locator has promoted the copies */
    for (int i = 0; i < N; i++) {
        char key[32], want[32];
        agate_buf v;
        key_name(key, sizeof(key), "rk", i);
        snprintf(want, sizeof(want), "v-%d", i);
        int rc_ = agate_get(c, "rk", key, strlen(key), &v);
        ck_assert_msg(rc_ == 0, "%s after the kill (%lld ms): %d %s", key,
                      (long long)(tu_now_ms() - t0), rc_, agate_errmsg(c));
        ck_assert(is_str(v.data, v.len, want));
        agate_buf_free(&v);
    }
    for (int i = N; i < N + 50; i++) {
        char key[32];
        key_name(key, sizeof(key), "rk", i);
        put_str(c, "rk", key, "after");
    }
    uint64_t size;
    CK_OK(c, agate_size(c, "rk", &size));
    ck_assert_uint_eq(size, N + 50);
    agate_client_free(c);
    real_stop(&rc);
}
END_TEST

static Suite *cluster_suite(void)
{
    Suite *s = suite_create("cluster_client");
    TCase *tc = tu_tcase(s, "offline", 30);
    tcase_add_test(tc, unavailable_error_and_admin_calls_need_a_cluster);

    tc = tu_tcase(s, "fake_members", 60);
    tcase_add_test(tc, writes_carry_event_ids);
    tcase_add_test(tc, lost_answer_is_resent_with_the_same_event_id);
    tcase_add_test(tc, unavailable_is_retried_with_backoff);
    tcase_add_test(tc, redirect_refetches_the_map);

    tc = tu_tcase(s, "reads", 120);
    tcase_add_unchecked_fixture(tc, start_servers, stop_servers);
    tcase_add_test(tc, get_goes_to_the_primary);
    tcase_add_test(tc, get_all_size_scans_and_clear_combine_members);
    tcase_add_test(tc, async_gets_route_and_complete_once);
    tcase_add_test(tc, connect_to_a_locator_routes);
    tcase_add_test(tc, connect_to_a_member_routes);
    tcase_add_test(tc, admin_calls_go_to_the_locator);
    tcase_add_test(tc, redirect_to_a_real_server);

    /* NEEDS-EVENT-ID-SERVER */
    tc = tu_tcase(s, "writes", 120);
    tcase_add_unchecked_fixture(tc, start_servers, stop_servers);
    tcase_add_test(tc, puts_and_removes_land_on_the_primary);
    tcase_add_test(tc, put_all_and_async_puts_land_on_the_primary);

    tc = tu_tcase(s, "failover", 120);
    tcase_add_test(tc, member_killed_reads_retry_until_the_map_changes);

    tc = tu_tcase(s, "real_cluster", 120);
    tcase_add_test(tc, real_cluster_routes_and_combines);
    tcase_add_test(tc, real_member_killed_reads_and_writes_continue);
    return s;
}

int main(void)
{
    Suite *s = cluster_suite();
    return tu_run(&s, 1);
}
