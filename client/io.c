/* io.c - moving bytes: writing queued requests, reading and dispatching
 * replies, the blocking wait loop, and dropping a broken connection.
 *
 * Output: requests are appended to c->out; one send() writes as much of it
 * as the socket takes. Input: recv() into c->in in large chunks, then every
 * complete frame in the buffer is validated and dispatched before the next
 * read, so the buffer only ever holds one partial frame between reads. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "common/frame.h"
#include "common/proto.h"

int64_t client_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmp_entry_id(const void *a, const void *b)
{
    uint64_t x = ((const client_pending_entry *)a)->id;
    uint64_t y = ((const client_pending_entry *)b)->id;
    return x < y ? -1 : x > y;
}

/* Completes one request without a reply. */
static void complete_failed(agate_client *c, const client_pending_entry *e, int err)
{
    if (e->fn)
        e->fn(c, NULL, err, e->arg, e->aux);
    else
        client_async_complete(c, e, NULL, err);
}

void client_conn_fail(agate_client *c, int err, const char *fmt, ...)
{
    if (c->fd < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->failmsg, sizeof(c->failmsg), fmt, ap);
    va_end(ap);
    memcpy(c->errmsg, c->failmsg, sizeof(c->errmsg));
    close(c->fd);
    c->fd = -1;
    c->gen++;
    c->fail_rc = err;
    buf_reset(&c->in);
    buf_reset(&c->out);
    buf_shrink_idle(&c->in, CLIENT_IDLE_KEEP);
    buf_shrink_idle(&c->out, CLIENT_IDLE_KEEP);

    /* Detach the table first: callbacks may queue new requests, which must
     * not land among the ones being failed. Fail them in the order they
     * were made, which is what a caller counting replies expects. */
    size_t cap, n = 0;
    client_pending_entry *all = client_pending_detach(&c->pend, &cap);
    for (size_t i = 0; i < cap; i++)
        if (all[i].id != 0 && !all[i].abandoned)
            all[n++] = all[i];
    if (n > 1)
        qsort(all, n, sizeof(*all), cmp_entry_id);
    c->failing++;
    for (size_t i = 0; i < n; i++)
        complete_failed(c, &all[i], err);
    c->failing--;
    free(all);
}

int client_io_write(agate_client *c)
{
    if (c->fd < 0)
        return c->fail_rc ? c->fail_rc : AGATE_EIO;
    size_t n = buf_readable(&c->out);
    if (n == 0)
        return 0;
    /* MSG_NOSIGNAL: a peer that went away must give EPIPE, not kill the
     * application with SIGPIPE */
    ssize_t w = send(c->fd, buf_rptr(&c->out), n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        char tmp[128];
        client_conn_fail(c, AGATE_EIO, "write to %s: %s", c->servers[c->cur].addr,
                         strerror_r(errno, tmp, sizeof(tmp)));
        return AGATE_EIO;
    }
    buf_consume(&c->out, (size_t)w);
    if (buf_readable(&c->out) == 0)
        buf_shrink_idle(&c->out, CLIENT_IDLE_KEEP);
    return 0;
}

/* A reply whose id is 0 reports a connection-level error (e.g. a request
 * frame above the server's limit); the server closes right after it. */
static void conn_level_error(agate_client *c, const msg_response *r)
{
    char msg[CLIENT_ERRMSG_MAX];
    client_status_message(r, msg, sizeof(msg));
    /* the requests in flight are not what was refused: they fail as on any
     * broken connection, with the server's reason in the message */
    if (r->status >= ST_BAD_REQUEST)
        client_conn_fail(c, AGATE_EIO, "server closed the connection: %s", msg);
    else
        client_conn_fail(c, AGATE_EPROTO, "reply with request id 0 and status %d", r->status);
}

static void dispatch_frame(agate_client *c, const uint8_t *body, uint32_t len)
{
    msg_response r;
    int rc = msg_response_parse(body, len, c->parse_depth, &r);
    if (rc == MSG_EKIND) {
        /* a push goes to the connection's subscriber, if any (client/cq.c);
         * a well-formed push nobody asked for is ignored */
        msg_push push;
        if (msg_push_parse(body, len, c->parse_depth, &push) == 0) {
            if (c->on_push)
                c->on_push(c, &push, body, len, c->push_arg);
            return;
        }
    }
    if (rc) {
        client_conn_fail(c, AGATE_EPROTO, "malformed reply from %s%s", c->servers[c->cur].addr,
                         c->handshaking ? " (is it an Agate server?)" : "");
        return;
    }
    if (r.id == 0) {
        conn_level_error(c, &r);
        return;
    }
    client_pending_entry e;
    /* unknown ids (a duplicate, or a reply we gave up waiting for) are
     * dropped; ids are never reused, so they cannot be mistaken */
    if (!client_pending_take(&c->pend, r.id, &e) || e.abandoned)
        return;
    rc = e.fn ? e.fn(c, &r, 0, e.arg, e.aux) : client_async_complete(c, &e, &r, 0);
    if (rc == AGATE_EPROTO)
        client_conn_fail(c, AGATE_EPROTO, "%s", c->errmsg);
}

/* Dispatches every complete frame in c->in. */
static void dispatch_all(agate_client *c)
{
    uint64_t gen = c->gen;
    while (buf_readable(&c->in) > 0) {
        const uint8_t *body;
        uint32_t blen;
        long n = frame_next(buf_rptr(&c->in), buf_readable(&c->in), c->max_reply, &body, &blen);
        if (n == FRAME_NEED_MORE)
            break;
        if (n < 0) {
            client_conn_fail(c, AGATE_EPROTO, "%s reply frame from %s%s",
                             n == FRAME_EEMPTY ? "empty" : "oversized",
                             c->servers[c->cur].addr,
                             c->handshaking ? " (is it an Agate server?)" : "");
            return;
        }
        dispatch_frame(c, body, blen);
        if (c->gen != gen)
            return; /* the connection was dropped: c->in is gone */
        buf_consume(&c->in, (size_t)n);
    }
    if (buf_readable(&c->in) == 0)
        buf_shrink_idle(&c->in, CLIENT_IDLE_KEEP);
}

/* Full reads one client_io_read may do before it returns: a server that
 * never stops sending must not keep a caller past its deadline, nor make
 * agate_process block. */
#define CLIENT_READS_PER_CALL 8

int client_io_read(agate_client *c)
{
    uint64_t gen = c->gen;
    for (int reads = 0; reads < CLIENT_READS_PER_CALL; reads++) {
        if (c->fd < 0)
            return c->fail_rc ? c->fail_rc : AGATE_EIO;
        if (buf_reserve(&c->in, CLIENT_READ_CHUNK)) {
            client_conn_fail(c, AGATE_ENOMEM, "out of memory reading a reply");
            return AGATE_ENOMEM;
        }
        size_t room = c->in.cap - c->in.len;
        ssize_t r = recv(c->fd, c->in.data + c->in.len, room, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            char tmp[128];
            client_conn_fail(c, AGATE_EIO, "read from %s: %s", c->servers[c->cur].addr,
                             strerror_r(errno, tmp, sizeof(tmp)));
            return AGATE_EIO;
        }
        if (r == 0) {
            client_conn_fail(c, AGATE_EIO, "%s closed the connection", c->servers[c->cur].addr);
            return AGATE_EIO;
        }
        c->in.len += (size_t)r;
        dispatch_all(c);
        if (c->gen != gen)
            return c->fail_rc;
        /* a short read means the socket is drained: skip the recv() that
         * would only say EAGAIN */
        if ((size_t)r < room)
            return 0;
    }
    return 0; /* more may be waiting: the next readiness event brings us back */
}

int client_io_run(agate_client *c, client_until_fn until, void *arg, int timeout_ms)
{
    int64_t deadline = timeout_ms > 0 ? client_now_ms() + timeout_ms : -1;
    for (;;) {
        if (until(c, arg))
            return 0;
        if (*c->interrupt) {
            *c->interrupt = 0;
            return client_err(c, AGATE_ECANCELLED, "interrupted");
        }
        if (c->fd < 0) {
            if (!c->fail_rc)
                return client_err(c, AGATE_EIO, "not connected");
            return c->fail_rc;
        }
        if (buf_readable(&c->out) > 0) {
            client_io_write(c);
            if (c->fd < 0)
                continue;
            /* a flush is done once written: do not wait for input first */
            if (until(c, arg))
                return 0;
        }
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - client_now_ms();
            wait = left <= 0 ? 0 : left > 1000000 ? 1000000 : (int)left;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (buf_readable(&c->out) > 0)
            pfd.events |= POLLOUT;
        int n = poll(&pfd, 1, wait);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            char tmp[128];
            client_conn_fail(c, AGATE_EIO, "poll: %s", strerror_r(errno, tmp, sizeof(tmp)));
            continue;
        }
        if (n > 0 && (pfd.revents & (POLLIN | POLLERR | POLLHUP)))
            client_io_read(c);
        /* POLLOUT: the write at the top of the loop. The deadline is checked
         * on every round, not only when poll times out: a socket that stays
         * busy with other replies must not keep us here forever. */
        if (deadline >= 0 && client_now_ms() >= deadline && !until(c, arg))
            return client_err(c, AGATE_ETIMEDOUT, "timed out after %d ms", timeout_ms);
    }
}
