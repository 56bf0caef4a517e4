#include "server/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/frame.h"
#include "common/log.h"
#include "common/proto.h"
#include "server/dispatch.h"
#include "server/cq.h"
#include "server/query_cursor.h"

/* Room made for each read, and what an idle connection keeps: 16 KiB holds
 * over a hundred typical pipelined requests, yet 10,000 idle connections pin
 * only 160 MiB of input buffers. Larger frames grow the buffer as they arrive. */
#define READ_CHUNK (16 * 1024)
/* Stop reading new requests while this much output waits for a slow reader:
 * a client that pipelines without reading cannot make us buffer unbounded. */
#define OUT_HIGH_WATER (8u << 20)
#define OUT_LOW_WATER (1u << 20)
/* Idle buffers shrink back to this so one large frame does not pin memory. */
#define IDLE_BUF_KEEP READ_CHUNK

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

int conn_pack_write(void *data, const char *p, size_t n)
{
    conn_t *c = data;
    if (buf_append(&c->out, p, n)) {
        c->out_failed = true;
        return -1;
    }
    return 0;
}

static void describe_peer(conn_t *c)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    char ip[INET_ADDRSTRLEN];
    if (getpeername(c->fd, (struct sockaddr *)&sa, &len) != 0 || sa.sin_family != AF_INET ||
        !inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip))) {
        snprintf(c->peer, sizeof(c->peer), "fd %d", c->fd);
        return;
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, ntohs(sa.sin_port));
}

conn_t *conn_new(worker_t *w, int fd)
{
    conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->w = w;
    buf_init(&c->in);
    buf_init(&c->out);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    describe_peer(c);
    c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(w->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    if (!c->rev || !c->wev || event_add(c->rev, NULL)) {
        log_error("connection from %s: cannot register events", c->peer);
        conn_free(c);
        return NULL;
    }
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    atomic_fetch_add_explicit(&w->nconns, 1, memory_order_relaxed);
    log_debug("connection from %s on worker %d", c->peer, w->id);
    return c;
}

static void unkick(conn_t *c);

void conn_free(conn_t *c)
{
    worker_t *w = c->w;
    if (c->dead)
        return;
    if (c->kicked)
        unkick(c);
    qcursor_conn_closed(c); /* before dead: it may give back owed replies */
    if (c->cq_sub)
        cq_conn_closed(c); /* its continuous queries end with it */
    if (c->on_close)
        c->on_close(c, c->on_close_arg);
    c->on_close = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else if (w->conns == c)
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    c->rev = c->wev = NULL;
    close(c->fd);
    c->fd = -1;
    buf_free(&c->in);
    buf_free(&c->out);
    atomic_fetch_sub_explicit(&w->nconns, 1, memory_order_relaxed);
    log_debug("connection from %s closed", c->peer);
    c->dead = true;
    c->prev = c->next = NULL;
    if (c->waits == 0)
        free(c);
    if (w->draining && !w->conns)
        event_base_loopbreak(w->base);
}

void conn_wait_done(conn_t *c)
{
    if (--c->waits == 0 && c->dead)
        free(c);
}

void conn_kick(conn_t *c)
{
    if (c->dead)
        return;
    if (c->out_failed) {
        conn_free(c);
        return;
    }
    if (c->kicked)
        return;
    c->kicked = true;
    c->kick_next = c->w->kicked;
    c->w->kicked = c;
    event_active(c->w->kick_ev, 0, 0);
}

static void unkick(conn_t *c)
{
    for (conn_t **p = &c->w->kicked; *p; p = &(*p)->kick_next)
        if (*p == c) {
            *p = c->kick_next;
            break;
        }
    c->kicked = false;
}

/* Writes as much output as the socket takes. Returns 0, or -1 if the
 * connection is dead. */
static int write_out(conn_t *c)
{
    while (buf_readable(&c->out) > 0) {
        ssize_t n = send(c->fd, buf_rptr(&c->out), buf_readable(&c->out), MSG_NOSIGNAL);
        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    buf_shrink_idle(&c->out, IDLE_BUF_KEEP);
    return 0;
}

void conn_send_kicked(worker_t *w)
{
    while (w->kicked) {
        conn_t *c = w->kicked;
        w->kicked = c->kick_next;
        c->kicked = false;
        if (write_out(c)) {
            conn_free(c);
            continue;
        }
        if (buf_readable(&c->out) > 0)
            event_add(c->wev, NULL);
    }
}

/* Cuts and dispatches whole frames from the input buffer until it holds no
 * whole frame or the output backs up. Returns true when it stopped for the
 * output with input left over (a backlog to resume once output drains). */
static bool process_input(conn_t *c)
{
    uint32_t max = c->w->srv->cfg.max_frame;
    while (!c->close_after_flush) {
        if (buf_readable(&c->out) >= OUT_HIGH_WATER)
            return buf_readable(&c->in) > 0;
        const uint8_t *body;
        uint32_t len;
        long n = frame_next(buf_rptr(&c->in), buf_readable(&c->in), max, &body, &len);
        if (n == FRAME_NEED_MORE)
            break;
        if (n < 0) {
            dispatch_frame_error(c, n == FRAME_ETOOBIG ? ST_TOO_LARGE : ST_BAD_REQUEST,
                                 n == FRAME_ETOOBIG ? "frame larger than the server's limit"
                                                    : "empty frame");
            buf_reset(&c->in);
            break;
        }
        dispatch_frame(c, body, len);
        buf_consume(&c->in, (size_t)n);
    }
    buf_shrink_idle(&c->in, IDLE_BUF_KEEP);
    return false;
}

static void set_reading(conn_t *c, bool on)
{
    if (on && c->reading_paused)
        event_add(c->rev, NULL);
    else if (!on && !c->reading_paused)
        event_del(c->rev);
    c->reading_paused = !on;
}

/* Processes buffered input and sends replies until the input holds no whole
 * frame or the peer stops taking output; then waits for the right events:
 * reading is paused while a backlog waits for output room (resumed by
 * on_write) and after a fatal error. Returns -1 when c was freed. */
static int pump(conn_t *c)
{
    bool backlog;
    do {
        backlog = process_input(c);
        if (c->out_failed) {
            log_warn("connection from %s: out of memory building a reply; closing", c->peer);
            conn_free(c);
            return -1;
        }
        if (write_out(c)) {
            conn_free(c);
            return -1;
        }
    } while (backlog && buf_readable(&c->out) < OUT_LOW_WATER);
    bool done = c->close_after_flush || (c->w->draining && !backlog);
    if (buf_readable(&c->out) == 0 && done) {
        conn_free(c);
        return -1;
    }
    set_reading(c, !backlog && !c->close_after_flush && !c->w->draining);
    if (buf_readable(&c->out) > 0)
        event_add(c->wev, NULL);
    else
        event_del(c->wev);
    return 0;
}

void conn_drain(conn_t *c) { pump(c); }

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    worker_t *w = c->w;
    if (buf_reserve(&c->in, READ_CHUNK)) {
        log_warn("connection from %s: out of memory for input; closing", c->peer);
        conn_free(c);
        return;
    }
    ssize_t n = recv(fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        conn_free(c);
        return;
    }
    if (n < 0)
        return;
    c->in.len += (size_t)n;
    worker_enter(w);
    pump(c);
    worker_leave(w);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    worker_t *w = c->w;
    if (write_out(c)) {
        conn_free(c);
        return;
    }
    bool backlog_waits = c->reading_paused && !c->close_after_flush;
    if ((backlog_waits || c->w->draining) && buf_readable(&c->out) < OUT_LOW_WATER) {
        /* requests already buffered were waiting for room, or we are
         * draining and must close once everything is answered */
        worker_enter(w);
        pump(c);
        worker_leave(w);
        return;
    }
    if (buf_readable(&c->out) == 0) {
        if (c->close_after_flush) {
            conn_free(c);
            return;
        }
        event_del(c->wev);
    }
}
