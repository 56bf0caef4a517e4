/* cq.c - continuous queries, the client side (docs/query.md "Continuous
 * queries", docs/protocol.md CQ_OPEN ... PUSH_CQ_CLOSED).
 *
 * A CQ holds one subscription per member: a plain connection of its own on
 * which it sent CQ_OPEN, and on which the member pushes the events of the
 * buckets it is primary for. Pushes are copied into one queue as they are
 * read (the connection's dispatcher must not run user code) and handled in
 * arrival order by agate_cq_process: dedup and gap detection per bucket
 * (cq_cursor.h), then the callback.
 *
 * Membership: on a cluster a further connection to a locator sends
 * WATCH_MAP and receives every new map; while no locator answers, the map
 * is polled from a member every second. A member that appears gets a
 * subscription opened with "replay" (it replays the buckets it is primary
 * for); a subscription whose connection broke is re-opened with replay
 * while its member stays in the map (with backoff); a member that left
 * the map is dropped (the new primaries of its buckets replay to us).
 *
 * All requests here are synchronous on the CQ's own connections: they
 * happen at open, on membership changes and after failures, never per
 * event.
 *
 * Files (cq_impl.h): this one has the public calls, opening (registration
 * on every member, the coverage check, initial results) and closing;
 * cq_sub.c the subscriptions and their pushes; cq_map.c the map watch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "client/cq_impl.h"
#include "client/router.h"
#include "common/mpw.h"
#include "common/proto.h"

/* ---- Small helpers ------------------------------------------------------ */

void client_cq_deliver(agate_cq *cq, agate_cq_event *ev)
{
    ev->name = cq->name;
    if (ev->op >= AGATE_CQ_CREATE && ev->op <= AGATE_CQ_INITIAL)
        cq->stats.events++;
    cq->in_cb++;
    cq->cb(cq, ev, cq->arg);
    cq->in_cb--;
}

/* The CQ ended: one ERROR event, then every process call returns rc. */
int client_cq_fail(agate_cq *cq, int rc, const char *fmt, ...)
{
    if (cq->fail_rc)
        return cq->fail_rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cq->errmsg, sizeof(cq->errmsg), fmt, ap);
    va_end(ap);
    cq->fail_rc = rc;
    agate_cq_event ev = {.op = AGATE_CQ_ERROR, .errmsg = cq->errmsg};
    client_cq_deliver(cq, &ev);
    return rc;
}

/* The region of "SELECT * FROM /region ...": the name after the first FROM
 * outside string literals. The member parses the query for real; this only
 * tells the client which region's buckets to expect. */
static bool query_region(const char *q, char *out, size_t cap)
{
    const char *p = q;
    while (*p) {
        if (*p == '\'' || *p == '"') {
            char quote = *p++;
            while (*p && *p != quote)
                p++;
            if (*p)
                p++;
            continue;
        }
        bool word_start =
            p == q || !(p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z') ||
                        (p[-1] >= 'A' && p[-1] <= 'Z') || (p[-1] >= '0' && p[-1] <= '9'));
        if (word_start && strncasecmp(p, "from", 4) == 0 &&
            (p[4] == ' ' || p[4] == '\t' || p[4] == '\n' || p[4] == '\r' || p[4] == '/')) {
            p += 4;
            while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
                p++;
            if (*p == '/')
                p++;
            size_t n = 0;
            while ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z') ||
                   (p[n] >= '0' && p[n] <= '9') || p[n] == '_' || p[n] == '.' || p[n] == '-')
                n++;
            if (n == 0 || n >= cap || n > AGATE_MAX_REGION_NAME)
                return false;
            memcpy(out, p, n);
            out[n] = 0;
            return true;
        }
        p++;
    }
    return false;
}

/* ---- Driving ------------------------------------------------------------ */

static void epoll_add(agate_cq *cq, cq_sub *s)
{
    int fd = s && s->conn ? s->conn->fd : -1;
    /* the same number after a reconnect is another socket: gen tells */
    if (fd < 0 || (fd == s->reg_fd && s->conn->gen == s->ep_gen))
        return;
    /* a closed descriptor left the set by itself (we never dup them), so
     * there is nothing to delete: add, or modify when the number is back */
    struct epoll_event ev = {.events = EPOLLIN};
    if (epoll_ctl(cq->epfd, EPOLL_CTL_ADD, fd, &ev) && errno == EEXIST)
        epoll_ctl(cq->epfd, EPOLL_CTL_MOD, fd, &ev);
    s->reg_fd = fd;
    s->ep_gen = s->conn->gen;
}

/* Brings the epoll set up to date and arms the timer for the next due
 * registration or map poll. */
static void sync_fd(agate_cq *cq)
{
    int64_t due = -1;
    for (size_t i = 0; i < cq->nsubs; i++) {
        cq_sub *s = cq->subs[i];
        epoll_add(cq, s);
        if (!s->cq_id && s->retry_at >= 0 && (due < 0 || s->retry_at < due))
            due = s->retry_at;
    }
    if (cq->loc) {
        epoll_add(cq, cq->loc);
        if (!cq->watching) {
            if (due < 0 || cq->map_poll_at < due)
                due = cq->map_poll_at;
            if (cq->loc_retry_at >= 0 && cq->loc_retry_at < due)
                due = cq->loc_retry_at;
        }
    }
    if (cq->tfd < 0)
        return;
    struct itimerspec its = {0};
    if (due >= 0) {
        int64_t left = due - client_now_ms();
        if (left < 1)
            left = 1;
        its.it_value.tv_sec = left / 1000;
        its.it_value.tv_nsec = (left % 1000) * 1000000;
    }
    timerfd_settime(cq->tfd, 0, &its, NULL);
}

int agate_cq_process(agate_cq *cq)
{
    if (!cq || cq->in_cb)
        return AGATE_EINVAL; /* not from a callback: the queue is being drained */
    if (cq->fail_rc)
        return cq->fail_rc;
    uint64_t before = cq->stats.events;
    if (cq->tfd >= 0) {
        uint64_t ticks;
        if (read(cq->tfd, &ticks, sizeof(ticks)) < 0) {
            /* EAGAIN: not expired */
        }
    }
    for (size_t i = 0; i < cq->nsubs; i++)
        if (cq->subs[i]->conn && cq->subs[i]->conn->fd >= 0)
            client_io_read(cq->subs[i]->conn);
    if (cq->loc && cq->loc->conn && cq->loc->conn->fd >= 0)
        client_io_read(cq->loc->conn);
    client_cq_drain_queue(cq);
    int64_t now = client_now_ms();
    if (!cq->fail_rc && cq->loc)
        client_cq_map_work(cq, now);
    if (!cq->fail_rc)
        client_cq_sub_work(cq, now);
    client_cq_drain_queue(cq);
    client_cq_free_gone(cq);
    sync_fd(cq);
    if (cq->fail_rc)
        return cq->fail_rc;
    uint64_t n = cq->stats.events - before;
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

int agate_cq_wait(agate_cq *cq, int timeout_ms)
{
    if (!cq)
        return AGATE_EINVAL;
    if (cq->in_cb)
        return AGATE_EINVAL;
    int64_t deadline = timeout_ms >= 0 ? client_now_ms() + timeout_ms : -1;
    uint64_t before = cq->stats.events;
    cq->brk = false;
    for (;;) {
        int rc = agate_cq_process(cq);
        if (rc < 0)
            return rc;
        if (cq->brk)
            break;
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - client_now_ms();
            if (left <= 0)
                break;
            wait = left > 1000000 ? 1000000 : (int)left;
        }
        struct epoll_event ev[8];
        int n = epoll_wait(cq->epfd, ev, 8, wait);
        if (n < 0 && errno == EINTR)
            break;
    }
    uint64_t n = cq->stats.events - before;
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

void agate_cq_break(agate_cq *cq)
{
    if (cq)
        cq->brk = true;
}

int agate_cq_fd(const agate_cq *cq) { return cq ? cq->epfd : -1; }

const char *agate_cq_errmsg(const agate_cq *cq) { return cq ? cq->errmsg : ""; }

void agate_cq_stats_get(const agate_cq *cq, agate_cq_stats *out)
{
    if (!cq || !out)
        return;
    *out = cq->stats;
    out->members = 0;
    for (size_t i = 0; i < cq->nsubs; i++)
        out->members += cq->subs[i]->cq_id != 0;
}

/* ---- Open and close ----------------------------------------------------- */

static void cq_free(agate_cq *cq)
{
    if (!cq)
        return;
    for (size_t i = 0; i < cq->nsubs; i++)
        client_cq_sub_free(cq, cq->subs[i]);
    if (cq->loc)
        client_cq_sub_free(cq, cq->loc);
    while (cq->qhead) {
        cq_msg *m = cq->qhead;
        cq->qhead = m->next;
        free(m);
    }
    free(cq->subs);
    cmap_free(cq->map);
    cq_cursor_free(&cq->cur);
    if (cq->epfd >= 0)
        close(cq->epfd);
    if (cq->tfd >= 0)
        close(cq->tfd);
    free(cq->name);
    free(cq->query);
    free(cq->region);
    free(cq->params);
    free(cq->client_name);
    free(cq);
}

/* Closes every subscription and forgets what they sent (a failed open
 * attempt). */
static void drop_subs(agate_cq *cq)
{
    for (size_t i = 0; i < cq->nsubs; i++)
        client_cq_sub_free(cq, cq->subs[i]);
    cq->nsubs = 0;
}

/* Registers on every member of cq->map (or the one server) and checks
 * that the heads cover every bucket exactly once. results[i] belongs to
 * subs[i]. *retry: a failure that a newer map may cure. */
static int open_all(agate_cq *cq, agate_client *c, open_result *results, bool *retry)
{
    *retry = false;
    bool initial = cq->flags & AGATE_CQ_INITIAL_RESULTS;
    for (size_t i = 0; i < cq->nsubs; i++) {
        cq_sub *s = cq->subs[i];
        int rc = client_cq_sub_register(cq, s, false, initial, &results[i]);
        if (rc) {
            if (s->conn)
                memcpy(c->errmsg, s->conn->errmsg, sizeof(c->errmsg));
            else
                client_err(c, rc, "%s: %s", s->addr, agate_strerror(rc));
            if (cq->cluster) {
                rc = router_member_rc(c, cq->region, rc);
                *retry = router_retryable(rc);
            }
            return rc;
        }
        for (uint32_t k = 0; k < results[i].nheads; k++) {
            uint64_t b = results[i].heads[k][0];
            if (b >= cq->cur.nbuckets ||
                !cq_cursor_head(&cq->cur, (uint32_t)b, results[i].heads[k][1])) {
                *retry = cq->cluster;
                cq_cursor_uncovered(&cq->cur);
                return client_err(c, AGATE_EUNAVAILABLE,
                                  "%s reports bucket %llu of region '%s', which has %u buckets",
                                  s->addr, (unsigned long long)results[i].heads[k][0], cq->region,
                                  cq->cur.nbuckets);
            }
        }
    }
    long bad = cq_cursor_uncovered(&cq->cur);
    if (bad >= 0) {
        *retry = true;
        return client_err(c, AGATE_EUNAVAILABLE,
                          "bucket %ld of region '%s' is not served by exactly one member "
                          "(primaries moving, or a member is down)",
                          bad, cq->region);
    }
    return 0;
}

/* One attempt on a cluster: subscriptions on every member of the client's
 * current map. */
static int open_cluster_attempt(agate_cq *cq, agate_client *c, open_result **results, bool *retry)
{
    *retry = false;
    int rc = router_region_known(c, cq->region);
    if (rc)
        return rc;
    cmap_t *m = cmap_clone(c->router->map);
    if (!m)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    cmap_free(cq->map);
    cq->map = m;
    cmap_region *r = cmap_region_find(m, cq->region, strlen(cq->region));
    if (!r)
        return client_err(c, AGATE_EUNKNOWN_REGION, "region '%s' is not in the cluster map",
                          cq->region);
    if (cq->cur.nbuckets != r->nbuckets) {
        cq_cursor_free(&cq->cur);
        if (cq_cursor_init(&cq->cur, r->nbuckets))
            return client_err(c, AGATE_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < m->nmembers; i++) {
        char addr[sizeof(((cq_sub *)0)->addr)];
        if (!client_cq_member_addr(&m->members[i], addr, sizeof(addr)))
            continue;
        if (!client_cq_sub_add(cq, m->members[i].id, addr))
            return client_err(c, AGATE_ENOMEM, "out of memory");
    }
    if (cq->nsubs == 0) {
        *retry = true;
        return client_err(c, AGATE_EUNAVAILABLE, "the cluster has no members");
    }
    *results = calloc(cq->nsubs, sizeof(**results));
    if (!*results)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    return open_all(cq, c, *results, retry);
}

static int open_standalone(agate_cq *cq, agate_client *c, open_result **results)
{
    agate_region_info *info = NULL;
    int rc = agate_region_describe(c, cq->region, &info);
    if (rc)
        return rc;
    rc = cq_cursor_init(&cq->cur, info->total_num_buckets);
    agate_region_info_free(info);
    if (rc)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    const char *addr = agate_server_address(c);
    if (!addr)
        return client_err(c, AGATE_ECONNECT, "not connected");
    if (!client_cq_sub_add(cq, 0, addr))
        return client_err(c, AGATE_ENOMEM, "out of memory");
    *results = calloc(1, sizeof(**results));
    if (!*results)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    bool retry;
    return open_all(cq, c, *results, &retry);
}

static void free_results(open_result *results, size_t n)
{
    if (!results)
        return;
    for (size_t i = 0; i < n; i++)
        client_cq_open_result_free(&results[i]);
    free(results);
}

/* The initial results, as INITIAL events. */
static void deliver_initial(agate_cq *cq, const open_result *results, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mp_cursor cur;
        uint32_t count;
        mp_cursor_init(&cur, results[i].initial.data, results[i].initial.len);
        if (mp_read_array(&cur, &count))
            continue;
        for (uint32_t k = 0; k < count; k++) {
            uint32_t two;
            const uint8_t *key;
            uint32_t klen;
            bool is_str;
            if (mp_read_array(&cur, &two) || two != 2 || mp_read_bytes(&cur, &key, &klen, &is_str))
                break;
            const uint8_t *v = cur.p;
            if (mp_skip(&cur, MP_MAX_DEPTH_LIMIT))
                break;
            agate_cq_event ev = {.op = AGATE_CQ_INITIAL, .key = key, .klen = klen,
                                 .key_is_str = is_str, .value = v, .vlen = (size_t)(cur.p - v)};
            client_cq_deliver(cq, &ev);
        }
    }
}

static agate_cq *cq_new(agate_client *c, const char *name, const char *query, const char *region,
                        const void *params, size_t params_len, int flags, agate_cq_cb cb, void *arg)
{
    agate_cq *cq = calloc(1, sizeof(*cq));
    if (!cq)
        return NULL;
    cq->epfd = cq->tfd = -1;
    cq->name = strdup(name);
    cq->query = strdup(query);
    cq->region = strdup(region);
    cq->client_name = c->client_name ? strdup(c->client_name) : NULL;
    if (params) {
        cq->params = malloc(params_len);
        if (cq->params)
            memcpy(cq->params, params, params_len);
        cq->params_len = params_len;
    }
    cq->epfd = epoll_create1(EPOLL_CLOEXEC);
    cq->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (!cq->name || !cq->query || !cq->region || (params && !cq->params) ||
        (c->client_name && !cq->client_name) || cq->epfd < 0 || cq->tfd < 0) {
        cq_free(cq);
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN};
    if (epoll_ctl(cq->epfd, EPOLL_CTL_ADD, cq->tfd, &ev)) {
        cq_free(cq);
        return NULL;
    }
    agate_options_init(&cq->opts);
    cq->opts.connect_timeout_ms = c->connect_timeout_ms;
    cq->opts.request_timeout_ms = c->request_timeout_ms;
    cq->opts.client_name = cq->client_name;
    cq->flags = flags;
    cq->cb = cb;
    cq->arg = arg;
    cq->cluster = c->router != NULL;
    return cq;
}

int agate_cq_open(agate_client *c, const char *name, const char *query, const void *params,
                  size_t params_len, int flags, agate_cq_cb cb, void *arg, agate_cq **out)
{
    if (out)
        *out = NULL;
    if (!c)
        return AGATE_EINVAL;
    int rc = client_check_blocking(c, "agate_cq_open");
    if (rc)
        return rc;
    if (!out || !cb || !name || !query)
        return client_err(c, AGATE_EINVAL,
                          "agate_cq_open needs a name, a query, a callback and out");
    if (strlen(query) > UINT32_MAX || strlen(name) > UINT32_MAX)
        return client_err(c, AGATE_EINVAL, "name or query too long");
    if (flags & ~AGATE_CQ_INITIAL_RESULTS)
        return client_err(c, AGATE_EINVAL, "unknown flags 0x%x", (unsigned)flags);
    rc = client_check_params(c, params, params_len);
    if (rc)
        return rc;
    char region[AGATE_MAX_REGION_NAME + 1];
    if (!query_region(query, region, sizeof(region)))
        return client_err(c, AGATE_EBAD_ARGUMENT,
                          "query: a continuous query is SELECT * FROM /region [alias] WHERE ...");
    if (!c->router && c->fd < 0 && (rc = client_ensure_conn(c)) != 0)
        return rc;

    agate_cq *cq = cq_new(c, name, query, region, params, params_len, flags, cb, arg);
    if (!cq)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    open_result *results = NULL;
    if (!cq->cluster) {
        rc = open_standalone(cq, c, &results);
    } else {
        router_retry rt;
        router_retry_init(c, &rt);
        for (;;) {
            bool retry;
            rc = open_cluster_attempt(cq, c, &results, &retry);
            if (!rc || !retry)
                break;
            free_results(results, cq->nsubs);
            results = NULL;
            drop_subs(cq);
            rc = router_retry_next(c, &rt, rc);
            if (rc)
                break;
        }
        if (!rc)
            rc = client_cq_loc_start(cq, c) ? client_err(c, AGATE_ENOMEM, "out of memory") : 0;
    }
    if (rc) {
        free_results(results, cq->nsubs);
        cq_free(cq);
        return rc;
    }
    cq->stats.registrations = cq->nsubs;
    deliver_initial(cq, results, cq->nsubs);
    free_results(results, cq->nsubs);
    sync_fd(cq);
    *out = cq;
    return 0;
}

int agate_cq_close(agate_cq *cq)
{
    if (!cq)
        return 0;
    if (cq->in_cb)
        return AGATE_EINVAL;
    for (size_t i = 0; i < cq->nsubs; i++) {
        cq_sub *s = cq->subs[i];
        if (!s->cq_id || !s->conn || s->conn->fd < 0 || s->conn->gen != s->reg_gen)
            continue;
        client_call call;
        client_req rq;
        client_call_init(&call, NULL, NULL);
        s->conn->request_timeout_ms = CQ_CLOSE_WAIT_MS;
        if (client_call_begin(s->conn, &call, &rq, OP_CQ_CLOSE, 1, 0) == 0 &&
            client_call_end(s->conn, &call, &rq, msgpack_pack_uint64(&rq.pk, s->cq_id)) == 0)
            client_call_wait(s->conn, &call);
    }
    cq_free(cq);
    return 0;
}
