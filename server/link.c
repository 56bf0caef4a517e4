/* Outbound connections between agated processes (see link.h). */
#include "server/link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frame.h"
#include "common/log.h"
#include "common/mpw.h"
#include "common/proto.h"

/* Replies between members can hold a whole image page; bound them anyway. */
#define LINK_MAX_FRAME (256u << 20)
#define LINK_TICK_MS 100

typedef struct link_req {
    uint64_t id;
    link_reply_fn fn;
    void *arg;
    int64_t deadline_ms;
} link_req;

struct link {
    struct event_base *base;
    struct bufferevent *bev;
    struct event *tick;
    char host[64];
    uint16_t port;
    char addr[80];
    char client_name[96];
    int timeout_ms;
    link_callbacks cb;
    bool up;         /* handshake done */
    bool connecting;
    int busy;        /* > 0 while callbacks run */
    bool dead;       /* link_free was called during a callback */
    uint64_t next_id;
    link_req *reqs;  /* FIFO: [head, head + n) modulo cap */
    size_t head, n, cap;
    int64_t hello_deadline_ms;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

link_t *link_new(struct event_base *base, const char *host, uint16_t port, const char *client_name,
                 int timeout_ms, const link_callbacks *cb)
{
    link_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->base = base;
    snprintf(l->host, sizeof l->host, "%s", strcmp(host, "localhost") ? host : "127.0.0.1");
    l->port = port;
    snprintf(l->addr, sizeof l->addr, "%s:%u", l->host, port);
    snprintf(l->client_name, sizeof l->client_name, "%s", client_name ? client_name : "");
    l->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    if (cb)
        l->cb = *cb;
    l->next_id = 1;
    return l;
}

const char *link_addr(const link_t *l) { return l->addr; }
bool link_is_up(const link_t *l) { return l->up; }
size_t link_outstanding(const link_t *l) { return l->n; }

static int reqs_push(link_t *l, const link_req *r)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        link_req *grown = malloc(cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        for (size_t i = 0; i < l->n; i++)
            grown[i] = l->reqs[(l->head + i) % l->cap];
        free(l->reqs);
        l->reqs = grown;
        l->cap = cap;
        l->head = 0;
    }
    l->reqs[(l->head + l->n) % l->cap] = *r;
    l->n++;
    return 0;
}

/* Takes the request with this id (normally the oldest). */
static int reqs_take(link_t *l, uint64_t id, link_req *out)
{
    for (size_t i = 0; i < l->n; i++) {
        link_req *r = &l->reqs[(l->head + i) % l->cap];
        if (r->id != id)
            continue;
        *out = *r;
        if (i == 0) {
            l->head = (l->head + 1) % l->cap;
        } else {
            for (size_t j = i; j + 1 < l->n; j++)
                l->reqs[(l->head + j) % l->cap] = l->reqs[(l->head + j + 1) % l->cap];
        }
        l->n--;
        return 1;
    }
    return 0;
}

static void close_socket(link_t *l)
{
    if (l->bev)
        bufferevent_free(l->bev);
    l->bev = NULL;
    if (l->tick)
        event_free(l->tick);
    l->tick = NULL;
    l->up = false;
    l->connecting = false;
}

static void really_free(link_t *l)
{
    close_socket(l);
    free(l->reqs);
    free(l);
}

/* Closes the socket and fails everything outstanding. Returns false when a
 * callback freed the link (then l is gone). */
static bool fail(link_t *l, const char *why)
{
    bool was = l->up || l->connecting;
    close_socket(l);
    if (was)
        log_debug("link to %s closed: %s", l->addr, why);
    l->busy++;
    while (l->n && !l->dead) {
        link_req r = l->reqs[l->head];
        l->head = (l->head + 1) % l->cap;
        l->n--;
        if (r.fn)
            r.fn(l, NULL, r.arg);
    }
    if (was && !l->dead && l->cb.on_state)
        l->cb.on_state(l, false, l->cb.arg);
    l->busy--;
    if (l->dead && l->busy == 0) {
        really_free(l);
        return false;
    }
    return !l->dead;
}

void link_free(link_t *l)
{
    if (!l)
        return;
    if (l->busy) {
        l->dead = true;
        return;
    }
    l->busy++;
    l->dead = true;
    while (l->n) {
        link_req r = l->reqs[l->head];
        l->head = (l->head + 1) % l->cap;
        l->n--;
        if (r.fn)
            r.fn(l, NULL, r.arg);
    }
    l->busy--;
    really_free(l);
}

static int write_frame(link_t *l, uint64_t id, uint32_t op, const uint8_t *args, size_t len,
                       uint32_t nargs)
{
    buf_t b = {0};
    msgpack_packer pk;
    mpw_init(&pk, &b);
    size_t off = frame_begin(&b);
    int rc = msgpack_pack_array(&pk, 3 + nargs);
    rc |= msgpack_pack_uint32(&pk, MSG_REQUEST);
    rc |= msgpack_pack_uint64(&pk, id);
    rc |= msgpack_pack_uint32(&pk, op);
    rc |= mpw_raw(&pk, args, len);
    if (rc || frame_end(&b, off) || bufferevent_write(l->bev, buf_rptr(&b), buf_readable(&b))) {
        buf_free(&b);
        return -ENOMEM;
    }
    buf_free(&b);
    return 0;
}

int link_request_ex(link_t *l, uint32_t op, const uint8_t *args, size_t args_len, uint32_t nargs,
                    int timeout_ms, link_reply_fn fn, void *arg, uint64_t *id)
{
    if (!l->bev)
        return -ENOTCONN;
    link_req r = {.id = l->next_id++, .fn = fn, .arg = arg,
                  .deadline_ms = now_ms() + (timeout_ms > 0 ? timeout_ms : l->timeout_ms)};
    if (write_frame(l, r.id, op, args, args_len, nargs))
        return -ENOMEM;
    int rc = reqs_push(l, &r);
    if (!rc && id)
        *id = r.id;
    return rc;
}

int link_request(link_t *l, uint32_t op, const uint8_t *args, size_t args_len, uint32_t nargs,
                 link_reply_fn fn, void *arg)
{
    return link_request_ex(l, op, args, args_len, nargs, 0, fn, arg, NULL);
}

static void on_hello(link_t *l, const msg_response *r, void *arg)
{
    (void)arg;
    if (!r || r->status != ST_OK) {
        /* fail() runs from the caller when r is NULL; for a refusal close here */
        if (r) {
            log_warn("link to %s: handshake refused (%s)", l->addr, proto_status_name(r->status));
            l->hello_deadline_ms = 0; /* fail on the next tick */
        }
        return;
    }
    l->up = true;
    l->connecting = false;
    if (l->cb.on_state)
        l->cb.on_state(l, true, l->cb.arg);
}

/* Dispatches every complete frame. Returns false if the link went away. */
static bool read_frames(link_t *l)
{
    struct evbuffer *in = bufferevent_get_input(l->bev);
    for (;;) {
        uint8_t hdr[4];
        if (evbuffer_copyout(in, hdr, 4) < 4)
            return true;
        uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
        if (len == 0 || len > LINK_MAX_FRAME)
            return fail(l, "bad frame length");
        if (evbuffer_get_length(in) < (size_t)len + 4)
            return true;
        const uint8_t *body = evbuffer_pullup(in, (ssize_t)len + 4) + 4;
        int kind = msg_server_kind(body, len);
        bool ok = true;
        l->busy++;
        if (kind == MSG_RESPONSE) {
            msg_response r;
            link_req q;
            if (msg_response_parse(body, len, 64, &r))
                ok = false;
            else if (reqs_take(l, r.id, &q) && q.fn)
                q.fn(l, &r, q.arg);
        } else if (kind == MSG_PUSH) {
            msg_push p;
            if (msg_push_parse(body, len, 64, &p))
                ok = false;
            else if (l->cb.on_push)
                l->cb.on_push(l, &p, l->cb.arg);
        } else {
            ok = false;
        }
        l->busy--;
        if (l->dead) {
            if (l->busy == 0)
                really_free(l);
            return false;
        }
        if (!l->bev)
            return false; /* closed by a callback (link_free was deferred or fail ran) */
        evbuffer_drain(in, (size_t)len + 4);
        if (!ok)
            return fail(l, "malformed frame");
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    read_frames(arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    link_t *l = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(l->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        fail(l, what & BEV_EVENT_EOF ? "closed by peer" : strerror(EVUTIL_SOCKET_ERROR()));
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_t *l = arg;
    int64_t now = now_ms();
    if (!l->up && l->connecting && now >= l->hello_deadline_ms) {
        fail(l, "connect or handshake timed out");
        return;
    }
    /* requests may carry their own timeouts: any one past its deadline
     * means the peer does not answer */
    for (size_t i = 0; i < l->n; i++)
        if (now >= l->reqs[(l->head + i) % l->cap].deadline_ms) {
            fail(l, "request timed out");
            return;
        }
}

static int pack_hello(link_t *l, buf_t *b)
{
    msgpack_packer pk;
    mpw_init(&pk, b);
    int rc = mpw_cstr(&pk, AGATE_PROTO_MAGIC);
    rc |= msgpack_pack_uint32(&pk, AGATE_PROTO_VERSION);
    rc |= mpw_cstr(&pk, l->client_name);
    rc |= msgpack_pack_nil(&pk);
    return rc ? -ENOMEM : 0;
}

int link_connect(link_t *l)
{
    if (l->bev)
        return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(l->port)};
    if (inet_pton(AF_INET, l->host, &sa.sin_addr) != 1)
        return -EINVAL;
    l->bev = bufferevent_socket_new(l->base, -1, BEV_OPT_CLOSE_ON_FREE);
    struct timeval every = {0, LINK_TICK_MS * 1000};
    l->tick = event_new(l->base, -1, EV_PERSIST, on_tick, l);
    if (!l->bev || !l->tick || event_add(l->tick, &every)) {
        close_socket(l);
        return -ENOMEM;
    }
    bufferevent_setcb(l->bev, on_read, NULL, on_event, l);
    bufferevent_enable(l->bev, EV_READ | EV_WRITE);
    l->connecting = true;
    l->hello_deadline_ms = now_ms() + l->timeout_ms;
    if (bufferevent_socket_connect(l->bev, (struct sockaddr *)&sa, sizeof sa)) {
        close_socket(l);
        return -ECONNREFUSED;
    }
    buf_t b = {0};
    int rc = pack_hello(l, &b);
    if (!rc)
        rc = link_request(l, OP_HELLO, buf_rptr(&b), buf_readable(&b), 4, on_hello, NULL);
    buf_free(&b);
    if (rc)
        close_socket(l);
    return rc;
}
