/* router_async.c - asynchronous requests of a routing client, and the calls
 * that drive I/O over all of its connections (agate_wait, agate_flush,
 * agate_process, agate_fd).
 *
 * Each *_async request becomes a router_req holding a copy of its region,
 * key and value and its event id. It is queued on the member child with
 * req_done as the child's callback. A retryable outcome (REDIRECT,
 * UNAVAILABLE, the member connection failing) puts it on the retry list
 * with a due time (backoff); the I/O drivers refresh the map and issue due
 * requests again outside callbacks. The user callback runs exactly once:
 * with the final reply, with the last error when the request timeout is
 * used up, or with AGATE_EIO when the client is freed.
 *
 * agate_fd of a router is an epoll set holding the children's sockets
 * (EPOLLIN, plus EPOLLOUT while a child has output queued) and a timerfd
 * that fires when the next retry is due. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "client/router.h"
#include "common/proto.h"

struct router_req {
    router_req *next;    /* on the retry list */
    agate_client *c;     /* the routing client */
    int op;              /* OP_PUT, OP_GET, OP_REMOVE */
    const char *region;  /* these point into data[] */
    const uint8_t *key;
    size_t klen;
    const uint8_t *value;
    size_t vlen;
    uint64_t seq;        /* event sequence number of a write */
    bool answerless;     /* an attempt got no answer: keep seq */
    int redirects;
    int backoff_ms;
    int64_t deadline;    /* -1: none */
    int64_t due;
    int last_rc;
    char msg[256];       /* last_rc's text */
    agate_reply_cb cb;
    void *arg;
    uint8_t data[];      /* region (NUL-terminated), key, value */
};

static bool is_write(int op) { return op == OP_PUT || op == OP_REMOVE; }

static bool expired(const router_req *req, int64_t now)
{
    return req->deadline >= 0 && now >= req->deadline;
}

/* ---- Completion ---------------------------------------------------------- */

/* Runs the user callback once and frees req. */
static void deliver(agate_client *c, router_req *req, const agate_reply *r)
{
    c->router->live--;
    if (req->cb) {
        c->cb_depth++;
        req->cb(c, r, req->arg);
        c->cb_depth--;
    }
    free(req);
}

static void deliver_error(agate_client *c, router_req *req, int rc, const char *msg)
{
    snprintf(c->replymsg, sizeof(c->replymsg), "%s", msg);
    agate_reply r = {.status = rc, .errmsg = c->replymsg};
    deliver(c, req, &r);
}

/* ---- The retry list ------------------------------------------------------ */

static int64_t next_due(const client_router *rt) { return rt->retry_min; }

static void retry_push(client_router *rt, router_req *req)
{
    req->next = NULL;
    if (rt->retry_tail)
        rt->retry_tail->next = req;
    else
        rt->retry = req;
    rt->retry_tail = req;
    if (rt->retry_min < 0 || req->due < rt->retry_min)
        rt->retry_min = req->due;
}

/* Takes the whole retry list (for pump and fail_all). */
static router_req *retry_take_all(client_router *rt)
{
    router_req *all = rt->retry;
    rt->retry = rt->retry_tail = NULL;
    rt->retry_min = -1;
    return all;
}

/* Arms the timerfd for the next due retry (disarms when there is none). */
static void arm_timer(client_router *rt)
{
    if (rt->tfd < 0)
        return;
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    int64_t due = next_due(rt);
    if (due >= 0) {
        if (due < 1)
            due = 1; /* an all-zero it_value would disarm */
        its.it_value.tv_sec = due / 1000;
        its.it_value.tv_nsec = (long)(due % 1000) * 1000000L;
    }
    timerfd_settime(rt->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Puts req on the retry list, due after delay_ms (capped by its deadline). */
static void schedule(agate_client *c, router_req *req, int delay_ms)
{
    client_router *rt = c->router;
    int64_t due = client_now_ms() + delay_ms;
    if (req->deadline >= 0 && due > req->deadline)
        due = req->deadline;
    req->due = due;
    int64_t before = rt->retry_min;
    retry_push(rt, req);
    if (rt->retry_min != before)
        arm_timer(rt);
}

/* Records why req failed, for the callback if it is never retried. */
static void note(router_req *req, int rc, const char *msg)
{
    req->last_rc = rc;
    /* a long message is cut: it only explains the failure */
    if (snprintf(req->msg, sizeof(req->msg), "%s", msg ? msg : agate_strerror(rc)) >= (int)sizeof(req->msg))
        req->msg[sizeof(req->msg) - 1] = 0;
}

/* Delay before the next attempt after rc: at once after a first REDIRECT
 * (the refreshed map names the new primary), else the growing backoff. */
static int retry_delay(router_req *req, int rc)
{
    if (rc == AGATE_EREDIRECT && req->redirects++ == 0)
        return 0;
    if (rc == ROUTER_EWOULDBLOCK)
        return 0;
    int d = req->backoff_ms;
    req->backoff_ms = d * 2 > ROUTER_BACKOFF_MAX_MS ? ROUTER_BACKOFF_MAX_MS : d * 2;
    return d;
}

/* ---- Issuing -------------------------------------------------------------- */

static void req_done(agate_client *child, const agate_reply *r, void *arg);

/* Sends req to the primary of its key. Without may_block, work that would
 * block (a map refresh, a connection) is deferred to the I/O drivers. On
 * the first attempt a non-retryable error is returned (req freed, no
 * callback); later it completes req. */
static int issue(agate_client *c, router_req *req, bool may_block, bool first)
{
    size_t mi;
    agate_client *child = NULL;
    int rc = router_route(c, req->region, req->key, req->klen, may_block, &mi);
    if (!rc)
        rc = router_child(c, mi, may_block, &child);
    if (!rc) {
        client_evid ev = {c->client_id, req->seq};
        rc = client_queue_keyed(child, req->op, req->region, req->key, req->klen,
                                req->op == OP_PUT ? req->value : NULL, req->vlen,
                                is_write(req->op) ? &ev : NULL, req_done, req);
        router_pass(c, child, rc);
    }
    if (!rc) {
        router_epoll_sync(c->router);
        return 0;
    }
    if (rc == ROUTER_EWOULDBLOCK || (router_retryable(rc) && !expired(req, client_now_ms()))) {
        if (rc != ROUTER_EWOULDBLOCK) {
            note(req, rc, c->errmsg);
            req->answerless |= router_answerless(rc);
            c->router->map_stale = 1;
        }
        schedule(c, req, retry_delay(req, rc));
        return 0;
    }
    if (first) {
        c->router->live--;
        free(req);
        return rc;
    }
    deliver_error(c, req, rc, c->errmsg);
    return 0;
}

/* The child's callback: completes req, or schedules another attempt. */
static void req_done(agate_client *child, const agate_reply *r, void *arg)
{
    router_req *req = arg;
    agate_client *c = req->c;
    client_router *rt = c->router;
    int status = router_member_rc(c, req->region, r->status);
    if (rt->closing || !router_retryable(status) || expired(req, client_now_ms())) {
        /* an attempt cut short by the deadline says less than the member
         * answer before it (see router_retry_next) */
        if (!rt->closing && router_answerless(status) && req->last_rc &&
            !router_answerless(req->last_rc) && req->last_rc != AGATE_ECONNECT)
            deliver_error(c, req, req->last_rc, req->msg);
        else
            deliver(c, req, r);
        return;
    }
    note(req, status, r->errmsg);
    req->answerless |= router_answerless(status);
    /* not applied for sure: a fresh id (see router_keyed) */
    if (is_write(req->op) && !req->answerless)
        req->seq = router_next_seq(c, 1);
    rt->map_stale = 1;
    schedule(c, req, retry_delay(req, status));
}

int router_async_submit(agate_client *c, int op, const char *region, const void *key,
                        size_t klen, const void *value, size_t vlen, agate_reply_cb cb,
                        void *arg)
{
    client_router *rt = c->router;
    if (rt->closing)
        return client_err(c, AGATE_EIO, "the client is closing");
    int rc = client_check_keyed(c, region, key, klen);
    if (rc)
        return rc;
    size_t rlen = strlen(region) + 1;
    if (!value)
        vlen = 0;
    router_req *req = malloc(sizeof(*req) + rlen + klen + vlen);
    if (!req)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    memset(req, 0, sizeof(*req));
    memcpy(req->data, region, rlen);
    if (klen)
        memcpy(req->data + rlen, key, klen);
    if (vlen)
        memcpy(req->data + rlen + klen, value, vlen);
    req->c = c;
    req->op = op;
    req->region = (const char *)req->data;
    req->key = req->data + rlen;
    req->klen = klen;
    req->value = req->data + rlen + klen;
    req->vlen = vlen;
    req->seq = is_write(op) ? router_next_seq(c, 1) : 0;
    req->backoff_ms = ROUTER_BACKOFF_MIN_MS;
    req->deadline = c->request_timeout_ms > 0 ? client_now_ms() + c->request_timeout_ms : -1;
    req->cb = cb;
    req->arg = arg;
    rt->live++;
    /* inside a callback nothing may block: a refresh or connect waits for
     * the next agate_wait / agate_process */
    return issue(c, req, c->cb_depth == 0, true);
}

/* Issues every due retry; refreshes the map first when a failure asked. */
static void pump(agate_client *c)
{
    client_router *rt = c->router;
    int64_t now = client_now_ms();
    if (rt->retry_min < 0 || rt->retry_min > now)
        return;
    router_req *due = NULL, **tail = &due, *r = retry_take_all(rt);
    while (r) { /* due ones out, in order; the rest back on the list */
        router_req *next = r->next;
        r->next = NULL;
        if (r->due <= now) {
            *tail = r;
            tail = &r->next;
        } else {
            retry_push(rt, r);
        }
        r = next;
    }
    if (rt->map_stale) {
        rt->map_stale = 0;
        router_refresh(c, 0); /* on failure: retry with the map we have */
    }
    while (due) {
        r = due;
        due = r->next;
        r->next = NULL;
        if (expired(r, client_now_ms()) && r->last_rc)
            deliver_error(c, r, r->last_rc, r->msg);
        else
            issue(c, r, true, false);
    }
    arm_timer(rt);
}

void router_async_fail_all(agate_client *c, int err, const char *msg)
{
    router_req *r = retry_take_all(c->router);
    while (r) {
        router_req *next = r->next;
        deliver_error(c, r, err, msg);
        r = next;
    }
}

size_t router_pending(const agate_client *c) { return c->router->live; }

/* ---- Connections ----------------------------------------------------------- */

/* The i-th connection of the router: members' children, then the admin
 * connection (i == nmembers). NULL for a member not connected yet. */
static agate_client *conn_at(const client_router *rt, size_t i, router_reg **reg)
{
    if (i == rt->nmembers) {
        if (reg)
            *reg = (router_reg *)&rt->admin_reg;
        return rt->admin;
    }
    if (reg)
        *reg = &rt->members[i].reg;
    return rt->members[i].child;
}

static bool has_output(const agate_client *k) { return k && k->fd >= 0 && buf_readable(&k->out); }

int router_wants_write(const agate_client *c)
{
    const client_router *rt = c->router;
    for (size_t i = 0; i <= rt->nmembers; i++)
        if (has_output(conn_at(rt, i, NULL)))
            return 1;
    return 0;
}

/* ---- epoll (agate_fd) -------------------------------------------------------- */

/* Registers k's socket as it is now. A socket that was closed left the
 * epoll set by itself; its descriptor number may belong to another child
 * by now, so a stale registration is forgotten, never deleted. */
static void reg_update(client_router *rt, router_reg *reg, const agate_client *k)
{
    int fd = k ? k->fd : -1;
    if (reg->fd >= 0 && (reg->fd != fd || reg->gen != k->gen))
        reg->fd = -1;
    if (fd < 0)
        return;
    uint32_t want = EPOLLIN | (buf_readable(&k->out) ? EPOLLOUT : 0);
    struct epoll_event ev = {.events = want, .data.u64 = 0};
    if (reg->fd < 0) {
        int r = epoll_ctl(rt->epfd, EPOLL_CTL_ADD, fd, &ev);
        if (r != 0 && errno == EEXIST)
            r = epoll_ctl(rt->epfd, EPOLL_CTL_MOD, fd, &ev);
        if (r != 0)
            return;
        reg->fd = fd;
        reg->gen = k->gen;
        reg->events = want;
    } else if (reg->events != want && epoll_ctl(rt->epfd, EPOLL_CTL_MOD, fd, &ev) == 0) {
        reg->events = want;
    }
}

void router_epoll_sync(client_router *rt)
{
    if (rt->epfd < 0)
        return;
    for (size_t i = 0; i <= rt->nmembers; i++) {
        router_reg *reg;
        agate_client *k = conn_at(rt, i, &reg);
        reg_update(rt, reg, k);
    }
}

void router_epoll_close(client_router *rt)
{
    if (rt->tfd >= 0)
        close(rt->tfd);
    if (rt->epfd >= 0)
        close(rt->epfd);
    rt->tfd = rt->epfd = -1;
}

int router_fd(const agate_client *c)
{
    client_router *rt = c->router;
    if (rt->epfd < 0) {
        rt->epfd = epoll_create1(EPOLL_CLOEXEC);
        rt->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1};
        if (rt->epfd < 0 || rt->tfd < 0 ||
            epoll_ctl(rt->epfd, EPOLL_CTL_ADD, rt->tfd, &ev) != 0) {
            router_epoll_close(rt);
            return -1;
        }
    }
    router_epoll_sync(rt);
    arm_timer(rt);
    return rt->epfd;
}

/* ---- Driving I/O -------------------------------------------------------------- */

int router_process(agate_client *c)
{
    client_router *rt = c->router;
    if (rt->tfd >= 0) { /* consume the expiry; the timer is re-armed below */
        uint64_t ticks;
        ssize_t r = read(rt->tfd, &ticks, sizeof(ticks));
        (void)r;
    }
    pump(c);
    for (size_t i = 0; i <= rt->nmembers; i++) {
        agate_client *k = conn_at(rt, i, NULL);
        if (!k || k->fd < 0)
            continue;
        client_io_write(k);
        if (k->fd >= 0)
            client_io_read(k);
        if (has_output(k))
            client_io_write(k);
    }
    router_epoll_sync(rt);
    arm_timer(rt);
    return rt->live > INT_MAX ? INT_MAX : (int)rt->live;
}

typedef bool (*router_until_fn)(const agate_client *c);

static bool idle(const agate_client *c) { return c->router->live == 0; }

static bool flushed(const agate_client *c) { return !router_wants_write(c); }

/* Writes what is queued on every connection. */
static void write_all(client_router *rt)
{
    for (size_t i = 0; i <= rt->nmembers; i++) {
        agate_client *k = conn_at(rt, i, NULL);
        if (has_output(k))
            client_io_write(k);
    }
}

/* Polls every connected child once, waiting at most wait_ms, and reads
 * what arrived. */
static int poll_once(client_router *rt, int wait_ms)
{
    size_t n = rt->nmembers + 1, nfds = 0;
    struct pollfd *pfd = malloc(n * sizeof(*pfd));
    agate_client **conn = malloc(n * sizeof(*conn));
    if (!pfd || !conn) {
        free(pfd);
        free(conn);
        return AGATE_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        agate_client *k = conn_at(rt, i, NULL);
        if (!k || k->fd < 0)
            continue;
        pfd[nfds].fd = k->fd;
        pfd[nfds].events = (short)(POLLIN | (buf_readable(&k->out) ? POLLOUT : 0));
        conn[nfds++] = k;
    }
    if (nfds == 0 && wait_ms < 0)
        wait_ms = 10; /* nothing to wait on: cannot happen while requests are live */
    int r = poll(pfd, nfds, wait_ms);
    for (size_t i = 0; r > 0 && i < nfds; i++)
        if ((pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) && conn[i]->fd == pfd[i].fd)
            client_io_read(conn[i]);
    free(pfd);
    free(conn);
    return r < 0 && errno != EINTR ? AGATE_EIO : 0;
}

/* Issues due retries, writes, polls and reads until until(c) holds or
 * timeout_ms passes (<= 0: no limit). */
static int run(agate_client *c, router_until_fn until, int timeout_ms)
{
    client_router *rt = c->router;
    int64_t deadline = timeout_ms > 0 ? client_now_ms() + timeout_ms : -1;
    int rc = 0;
    for (;;) {
        pump(c);
        write_all(rt);
        if (until(c))
            break;
        int64_t now = client_now_ms(), wake = deadline, due = next_due(rt);
        if (due >= 0 && (wake < 0 || due < wake))
            wake = due;
        int wait = wake < 0 ? -1 : wake <= now ? 0 : wake - now > 1000000 ? 1000000 : (int)(wake - now);
        rc = poll_once(rt, wait);
        if (rc)
            break;
        if (deadline >= 0 && client_now_ms() >= deadline && !until(c)) {
            rc = client_err(c, AGATE_ETIMEDOUT, "timed out after %d ms with %zu requests pending",
                            timeout_ms, rt->live);
            break;
        }
    }
    router_epoll_sync(rt);
    arm_timer(rt);
    return rc;
}

int router_wait(agate_client *c, int timeout_ms) { return run(c, idle, timeout_ms); }

int router_flush(agate_client *c, int timeout_ms) { return run(c, flushed, timeout_ms); }
