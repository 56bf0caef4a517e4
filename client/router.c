/* router.c - cluster routing: entering and leaving router mode, the
 * cluster map, key -> member routing, member connections, and the retry
 * policy shared by every routed call (docs/cluster.md, "Key operations in
 * a cluster"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/router.h"
#include "common/hash.h"
#include "common/mpw.h"
#include "common/proto.h"

/* ---- Small helpers ----------------------------------------------------- */

int router_pass(agate_client *c, const agate_client *child, int rc)
{
    if (rc < 0 && child && child != c)
        memcpy(c->errmsg, child->errmsg, sizeof(c->errmsg));
    return rc;
}

bool router_retryable(int rc)
{
    return rc == AGATE_EREDIRECT || rc == AGATE_EUNAVAILABLE || rc == AGATE_EIO ||
           rc == AGATE_ECONNECT || rc == AGATE_ETIMEDOUT;
}

bool router_answerless(int rc) { return rc == AGATE_EIO || rc == AGATE_ETIMEDOUT; }

uint64_t router_next_seq(agate_client *c, uint64_t n)
{
    uint64_t s = c->next_seq;
    c->next_seq += n;
    return s;
}

/* "host:port" of a map member; IPv6 literals in brackets. Returns false
 * when it does not fit in cap. */
static bool member_addr(const cmap_member *m, char *out, size_t cap)
{
    int n = strchr(m->host, ':') ? snprintf(out, cap, "[%s]:%u", m->host, (unsigned)m->port)
                                 : snprintf(out, cap, "%s:%u", m->host, (unsigned)m->port);
    return n >= 0 && (size_t)n < cap;
}

static client_router *router_new(void)
{
    client_router *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return NULL;
    rt->epfd = -1;
    rt->tfd = -1;
    rt->retry_min = -1;
    rt->admin_reg.fd = -1;
    return rt;
}

/* ---- The cluster map --------------------------------------------------- */

/* CLUSTER_MAP's result: the map, or nil on a stand-alone server. */
static int ok_cluster_map(agate_client *c, client_call *call, const msg_response *r,
                          uintptr_t aux)
{
    cmap_t **out = call->out;
    mp_cursor cur = r->results;
    if (r->nresults < 1)
        return client_bad_reply(c, "CLUSTER_MAP reply without a result");
    if (mp_read_nil(&cur) == 0)
        return 0; /* stand-alone: *out stays NULL */
    cur = r->results;
    const uint8_t *p;
    size_t n;
    int rc = client_read_raw(c, &cur, &p, &n);
    if (rc)
        return rc;
    rc = cmap_decode(p, n, out);
    if (rc == -ENOMEM)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    if (rc)
        return client_bad_reply(c, "CLUSTER_MAP reply is not a well-formed cluster map");
    return 0;
}

/* Asks conn (a plain connection) for the cluster map, waiting at most
 * timeout_ms (<= 0: its request timeout). *out: the map (caller frees), or
 * NULL for a stand-alone server. */
static int fetch_map(agate_client *conn, int timeout_ms, cmap_t **out)
{
    *out = NULL;
    int saved = conn->request_timeout_ms;
    if (timeout_ms > 0)
        conn->request_timeout_ms = timeout_ms;
    client_call call;
    client_call_init(&call, ok_cluster_map, out);
    int rc = client_simple_call(conn, &call, OP_CLUSTER_MAP, NULL);
    conn->request_timeout_ms = saved;
    if (rc) {
        cmap_free(*out);
        *out = NULL;
    }
    return rc;
}

static long find_member(const client_router *rt, uint32_t id)
{
    for (size_t i = 0; i < rt->nmembers; i++)
        if (rt->members[i].id == id)
            return (long)i;
    return -1;
}

/* Appends an entry for member id at addr. Index, or -1 if out of memory. */
static long add_member(client_router *rt, uint32_t id, const char *addr)
{
    if (rt->nmembers == rt->capmembers) {
        size_t cap = rt->capmembers ? rt->capmembers * 2 : 8;
        router_member *m = realloc(rt->members, cap * sizeof(*m));
        if (!m)
            return -1;
        rt->members = m;
        rt->capmembers = cap;
    }
    router_member *m = &rt->members[rt->nmembers];
    memset(m, 0, sizeof(*m));
    m->id = id;
    snprintf(m->addr, sizeof(m->addr), "%s", addr);
    m->reg.fd = -1;
    return (long)rt->nmembers++;
}

long router_member_of(agate_client *c, uint32_t id)
{
    client_router *rt = c->router;
    long i = find_member(rt, id);
    if (i >= 0)
        return i;
    const cmap_member *m = cmap_member_find(rt->map, id);
    if (!m)
        return -1;
    char addr[sizeof(rt->members[0].addr)];
    if (!member_addr(m, addr, sizeof(addr)))
        return -1;
    return add_member(rt, id, addr);
}

/* Points the admin connection at the map's locators when it has none (the
 * router was entered through a member). */
static void admin_from_map(agate_client *c)
{
    client_router *rt = c->router;
    if (rt->admin->nservers > 0 || rt->map->nlocators == 0)
        return;
    size_t cap = rt->map->nlocators * sizeof(rt->map->locators[0]) + 1;
    char *list = malloc(cap);
    if (!list)
        return;
    size_t used = 0;
    for (size_t i = 0; i < rt->map->nlocators; i++)
        used += (size_t)snprintf(list + used, cap - used, "%s%s", i ? "," : "",
                                 rt->map->locators[i]);
    client_servers_parse(rt->admin, list); /* a bad address: no admin, errors say so */
    free(list);
}

/* Installs m (taking it) unless it is older than the map held. Members
 * whose address changed get a new connection. */
static int set_map(agate_client *c, cmap_t *m)
{
    client_router *rt = c->router;
    if (rt->map && m->version < rt->map->version) {
        cmap_free(m);
        return 0;
    }
    for (size_t i = 0; i < m->nmembers; i++) {
        char addr[sizeof(rt->members[0].addr)];
        if (!member_addr(&m->members[i], addr, sizeof(addr)))
            continue; /* cannot happen: the map bounds host names */
        long j = find_member(rt, m->members[i].id);
        if (j < 0) {
            if (add_member(rt, m->members[i].id, addr) < 0) {
                cmap_free(m);
                return client_err(c, AGATE_ENOMEM, "out of memory");
            }
        } else if (strcmp(rt->members[j].addr, addr) != 0) {
            /* outstanding async requests fail with EIO and are retried */
            agate_client_free(rt->members[j].child);
            rt->members[j].child = NULL;
            rt->members[j].reg.fd = -1;
            snprintf(rt->members[j].addr, sizeof(rt->members[j].addr), "%s", addr);
        }
    }
    cmap_free(rt->map);
    rt->map = m;
    admin_from_map(c);
    return 0;
}

/* Asks the members for the map: connected ones first, then the others. */
static int refresh_from_members(agate_client *c, int timeout_ms, cmap_t **out)
{
    client_router *rt = c->router;
    if (!rt->map)
        return AGATE_ECONNECT;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < rt->map->nmembers; i++) {
            long j = router_member_of(c, rt->map->members[i].id);
            if (j < 0)
                continue;
            agate_client *child = rt->members[j].child;
            bool connected = child && child->fd >= 0;
            if (connected != (pass == 0))
                continue;
            if (router_child(c, (size_t)j, true, &child))
                continue;
            if (fetch_map(child, timeout_ms, out) == 0 && *out)
                return 0;
        }
    }
    return AGATE_ECONNECT;
}

/* The map from the locator, waiting at most ROUTER_LOCATOR_WAIT_MS once a
 * map is held (the members are the fallback); why holds the error. */
static int refresh_from_locator(agate_client *c, int timeout_ms, cmap_t **m, char *why)
{
    client_router *rt = c->router;
    if (rt->map && (timeout_ms <= 0 || timeout_ms > ROUTER_LOCATOR_WAIT_MS))
        timeout_ms = ROUTER_LOCATOR_WAIT_MS;
    int rc = fetch_map(rt->admin, timeout_ms, m);
    if (!rc && !*m) {
        const char *addr = agate_server_address(rt->admin);
        rc = client_err(rt->admin, AGATE_EINVAL, "%s is a stand-alone server, not a locator",
                        addr ? addr : "the locator");
    }
    if (rc) {
        memcpy(why, rt->admin->errmsg, CLIENT_ERRMSG_MAX);
        rt->locator_skip_until = client_now_ms() + ROUTER_LOCATOR_SKIP_MS;
    }
    return rc;
}

int router_refresh(agate_client *c, int timeout_ms)
{
    client_router *rt = c->router;
    cmap_t *m = NULL;
    int rc = AGATE_ECONNECT;
    char why[CLIENT_ERRMSG_MAX] = "the cluster map names no locator";
    bool has_locator = rt->admin->nservers > 0;
    /* after the locator failed to answer, members first for a while */
    bool members_first = rt->map && client_now_ms() < rt->locator_skip_until;
    if (has_locator && !members_first)
        rc = refresh_from_locator(c, timeout_ms, &m, why);
    /* the locator is unreachable: any member has the map too */
    if (!m && rt->map && refresh_from_members(c, timeout_ms, &m) == 0)
        rc = 0;
    if (!m && has_locator && members_first)
        rc = refresh_from_locator(c, timeout_ms, &m, why);
    if (!m)
        return client_err(c, rc, "cannot fetch the cluster map: %s", why);
    return set_map(c, m);
}

/* ---- Routing ------------------------------------------------------------ */

/* The map region of a region name (a leading '/' is ignored, as servers do). */
static cmap_region *find_region(const client_router *rt, const char *region)
{
    if (region[0] == '/')
        region++;
    return rt->map ? cmap_region_find(rt->map, region, strlen(region)) : NULL;
}

int router_member_rc(const agate_client *c, const char *region, int rc)
{
    if (rc == AGATE_EUNKNOWN_REGION && find_region(c->router, region))
        return AGATE_EUNAVAILABLE;
    return rc;
}

static int lookup_region(agate_client *c, const char *region, bool may_block, cmap_region **out)
{
    client_router *rt = c->router;
    *out = find_region(rt, region);
    if (*out)
        return 0;
    /* created since our map was fetched? */
    if (!may_block)
        return ROUTER_EWOULDBLOCK;
    router_refresh(c, 0);
    *out = find_region(rt, region);
    if (*out)
        return 0;
    return client_err(c, AGATE_EUNKNOWN_REGION, "region '%s' is not in the cluster map", region);
}

int router_region_known(agate_client *c, const char *region)
{
    cmap_region *r;
    return lookup_region(c, region, true, &r);
}

int router_route(agate_client *c, const char *region, const void *key, size_t klen,
                 bool may_block, size_t *member)
{
    static const uint8_t empty[1];
    cmap_region *r;
    int rc = lookup_region(c, region, may_block, &r);
    if (rc)
        return rc;
    uint32_t bucket = hash_bucket(hash_key(key ? key : empty, klen), r->nbuckets);
    uint32_t primary = cmap_primary(r, bucket);
    long i = primary ? find_member(c->router, primary) : -1;
    if (primary && i < 0)
        i = router_member_of(c, primary);
    if (i < 0)
        return client_err(c, AGATE_EUNAVAILABLE,
                          "bucket %u of region '%s' has no primary in cluster map version %llu",
                          bucket, r->name, (unsigned long long)c->router->map->version);
    *member = (size_t)i;
    return 0;
}

int router_child(agate_client *c, size_t i, bool may_block, agate_client **out)
{
    router_member *m = &c->router->members[i];
    *out = NULL;
    if (m->child && m->child->fd >= 0) {
        *out = m->child;
        return 0;
    }
    if (!may_block)
        return ROUTER_EWOULDBLOCK;
    int rc;
    if (!m->child) {
        m->child = client_child_new(c);
        if (!m->child)
            return client_err(c, AGATE_ENOMEM, "out of memory");
        rc = agate_connect(m->child, m->addr);
    } else {
        rc = client_ensure_conn(m->child);
    }
    if (rc)
        return router_pass(c, m->child, rc);
    *out = m->child;
    return 0;
}

/* ---- Retry policy ------------------------------------------------------- */

void router_retry_init(const agate_client *c, router_retry *rt)
{
    rt->start = client_now_ms();
    rt->deadline = c->request_timeout_ms > 0 ? rt->start + c->request_timeout_ms : -1;
    rt->backoff_ms = ROUTER_BACKOFF_MIN_MS;
    rt->redirects = 0;
    rt->answered_rc = 0;
    rt->answered_msg[0] = 0;
}

int router_retry_budget(const agate_client *c, const router_retry *rt)
{
    if (rt->deadline < 0)
        return c->request_timeout_ms;
    int64_t left = rt->deadline - client_now_ms();
    return left < 1 ? 1 : left > 1000000000 ? 1000000000 : (int)left;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Gives up on rc at the deadline. An attempt cut short by the deadline
 * says less than what a member answered before it (UNAVAILABLE: "bucket
 * is moving"), so that answer is reported instead. */
static int retry_give_up(agate_client *c, const router_retry *rt, int rc, const char *why)
{
    long long spent = (long long)(client_now_ms() - rt->start);
    if (router_answerless(rc) && rt->answered_rc)
        return client_err(c, rt->answered_rc, "%s (retried for %lld ms)", rt->answered_msg, spent);
    return client_err(c, rc, "%s (retried for %lld ms)", why, spent);
}

int router_retry_next(agate_client *c, router_retry *rt, int rc)
{
    char why[CLIENT_ERRMSG_MAX];
    memcpy(why, c->errmsg, sizeof(why));
    if (!router_answerless(rc) && rc != AGATE_ECONNECT) {
        rt->answered_rc = rc;
        memcpy(rt->answered_msg, why, sizeof(why));
    }
    if (rt->deadline >= 0 && client_now_ms() >= rt->deadline)
        return retry_give_up(c, rt, rc, why);
    uint64_t before = c->router->map->version;
    router_refresh(c, router_retry_budget(c, rt)); /* a failure: retry with the map we have */
    memcpy(c->errmsg, why, sizeof(why));
    /* a redirect that a newer map explains is retried at once */
    if (rc == AGATE_EREDIRECT && c->router->map->version > before)
        return 0;
    int wait = rt->backoff_ms;
    if (rt->deadline >= 0) {
        int64_t left = rt->deadline - client_now_ms();
        if (left < wait)
            wait = left < 0 ? 0 : (int)left;
    }
    sleep_ms(wait);
    rt->backoff_ms = rt->backoff_ms * 2 > ROUTER_BACKOFF_MAX_MS ? ROUTER_BACKOFF_MAX_MS
                                                                 : rt->backoff_ms * 2;
    /* no time left for another attempt: it could only time out */
    if (rt->deadline >= 0 && client_now_ms() >= rt->deadline)
        return retry_give_up(c, rt, rc, why);
    return 0;
}

const char *router_server_address(const agate_client *c)
{
    const client_router *rt = c->router;
    const char *a = agate_server_address(rt->admin);
    for (size_t i = 0; !a && i < rt->nmembers; i++)
        if (rt->members[i].child)
            a = agate_server_address(rt->members[i].child);
    return a;
}

/* ---- Entering and leaving router mode ---------------------------------- */

/* Starts routing on c with admin as the locator connection and fetches
 * the map. On failure c is left a disconnected single-server client. */
static int enter(agate_client *c, agate_client *admin)
{
    client_router *rt = router_new();
    if (!rt) {
        agate_client_free(admin);
        return client_err(c, AGATE_ENOMEM, "out of memory");
    }
    rt->admin = admin;
    c->router = rt;
    int rc = router_refresh(c, 0);
    if (rc) {
        char why[CLIENT_ERRMSG_MAX];
        memcpy(why, c->errmsg, sizeof(why));
        router_free(c);
        return client_err(c, rc, "%s", why);
    }
    return 0;
}

/* The server c just connected to is a member: route with the map m it
 * gave (taken), keeping this connection as that member's. */
static int enter_via_member(agate_client *c, cmap_t *m)
{
    client_router *rt = router_new();
    agate_client *admin = client_child_new(c);
    if (!rt || !admin) {
        free(rt);
        agate_client_free(admin);
        cmap_free(m);
        return client_err(c, AGATE_ENOMEM, "out of memory");
    }
    rt->admin = admin;
    c->router = rt;
    int rc = set_map(c, m);
    if (rc) {
        router_free(c);
        return rc;
    }
    long i = find_member(rt, c->member_id);
    if (i >= 0 && !rt->members[i].child) {
        agate_client *child = client_child_new(c);
        if (child) {
            client_conn_move(child, c);
            rt->members[i].child = child;
        }
    }
    /* whatever was not handed over is not used by a router */
    client_conn_fail(c, AGATE_EIO, "connection handed over to the cluster router");
    client_servers_free(c);
    return 0;
}

int router_detect(agate_client *c)
{
    if (c->hello_locator) {
        agate_client *admin = client_child_new(c);
        if (!admin)
            return client_err(c, AGATE_ENOMEM, "out of memory");
        client_conn_move(admin, c);
        return enter(c, admin);
    }
    if (c->hello_mdv == 0)
        return 0; /* a stand-alone server */
    cmap_t *m;
    int rc = fetch_map(c, 0, &m);
    if (rc == AGATE_EBAD_REQUEST)
        return 0; /* a server without clusters: no CLUSTER_MAP opcode */
    if (rc) {
        client_conn_fail(c, rc, "%s", c->errmsg);
        return rc;
    }
    return m ? enter_via_member(c, m) : 0;
}

/* Appends one locator address to list in "host:port" form: "host[port]"
 * (Geode), "host:port", "[v6]:port", or a bare host (port 10334). */
static int locator_addr(agate_client *c, const char *p, size_t n, char *list, size_t cap,
                        size_t *used)
{
    const char *open = memchr(p, '[', n);
    int w;
    if (p[0] != '[' && open && p[n - 1] == ']')
        w = snprintf(list + *used, cap - *used, "%s%.*s:%.*s", *used ? "," : "",
                     (int)(open - p), p, (int)(n - (size_t)(open - p) - 2), open + 1);
    else if ((p[0] == '[' && p[n - 1] == ']') || (p[0] != '[' && !memchr(p, ':', n)))
        w = snprintf(list + *used, cap - *used, "%s%.*s:%d", *used ? "," : "", (int)n, p,
                     AGATE_DEFAULT_LOCATOR_PORT);
    else
        w = snprintf(list + *used, cap - *used, "%s%.*s", *used ? "," : "", (int)n, p);
    if (w < 0 || (size_t)w >= cap - *used)
        return client_err(c, AGATE_EINVAL, "locator list too long");
    *used += (size_t)w;
    return 0;
}

/* Rewrites a locator list into agate_connect's "host:port,..." form. */
static int locator_list(agate_client *c, const char *in, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    while (*in) {
        const char *end = strchr(in, ',');
        if (!end)
            end = in + strlen(in);
        const char *a = in, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (a < b) {
            int rc = locator_addr(c, a, (size_t)(b - a), out, cap, &used);
            if (rc)
                return rc;
        }
        in = *end ? end + 1 : end;
    }
    return used ? 0 : client_err(c, AGATE_EINVAL, "empty locator list");
}

int router_connect_locators(agate_client *c, const char *locators)
{
    size_t cap = strlen(locators) * 2 + 64;
    char *list = malloc(cap);
    if (!list)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    int rc = locator_list(c, locators, list, cap);
    agate_client *admin = rc ? NULL : client_child_new(c);
    if (!rc && !admin)
        rc = client_err(c, AGATE_ENOMEM, "out of memory");
    if (rc) {
        free(list);
        return rc;
    }
    if (c->router)
        router_free(c);
    if (c->fd >= 0)
        client_conn_fail(c, AGATE_EIO, "agate_connect_locator: dropping the previous connection");
    client_servers_free(c);
    rc = agate_connect(admin, list);
    free(list);
    if (rc) {
        router_pass(c, admin, rc);
        agate_client_free(admin);
        return rc;
    }
    return enter(c, admin);
}

void router_free(agate_client *c)
{
    client_router *rt = c->router;
    if (!rt)
        return;
    rt->closing = 1;
    /* outstanding async requests fail with AGATE_EIO: their callbacks run */
    for (size_t i = 0; i < rt->nmembers; i++) {
        agate_client_free(rt->members[i].child);
        rt->members[i].child = NULL;
    }
    router_async_fail_all(c, AGATE_EIO, "connection closed");
    agate_client_free(rt->admin);
    cmap_free(rt->map);
    router_epoll_close(rt);
    free(rt->members);
    free(rt);
    c->router = NULL;
}
