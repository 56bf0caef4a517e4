/* link.h - an outbound connection from this process to another agated:
 * the member's line to its locator, a worker's replication line to a peer,
 * an image transfer, the locator's liveness check.
 *
 * A link lives on one event_base and is used only from that base's thread.
 * It connects, performs the HELLO handshake, then carries requests whose
 * replies are matched by id (they arrive in order from agated, but any
 * order works) and delivers pushes. When it fails every outstanding
 * request completes with r == NULL; reconnecting is the owner's choice. */
#ifndef AGATE_SERVER_LINK_H
#define AGATE_SERVER_LINK_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/msg.h"

struct event_base;
typedef struct link link_t;

/* A reply (r) or, with r == NULL, the link failed or timed out first. */
typedef void (*link_reply_fn)(link_t *l, const msg_response *r, void *arg);
typedef void (*link_push_fn)(link_t *l, const msg_push *p, void *arg);
/* up: the handshake completed; !up: the link failed or closed (it can be
 * connected again with link_connect, or freed). */
typedef void (*link_state_fn)(link_t *l, bool up, void *arg);

typedef struct link_callbacks {
    link_state_fn on_state;
    link_push_fn on_push;
    void *arg;
} link_callbacks;

/* A new, unconnected link to host:port (IPv4 dotted quad or "localhost").
 * timeout_ms bounds the connect + handshake and each request. */
link_t *link_new(struct event_base *base, const char *host, uint16_t port, const char *client_name,
                 int timeout_ms, const link_callbacks *cb);
/* Closes (outstanding requests fail, on_state is NOT called) and frees. */
void link_free(link_t *l);
/* Starts connecting. 0 or -errno. Requests may be queued at once: they are
 * sent after the handshake. */
int link_connect(link_t *l);
bool link_is_up(const link_t *l);
/* Requests queued or in flight. */
size_t link_outstanding(const link_t *l);
const char *link_addr(const link_t *l);

/* Sends [0, id, op, args...]: args holds nargs already packed MessagePack
 * objects. fn (may be NULL) gets the reply. 0 or -ENOMEM/-ENOTCONN (link
 * closed and not connecting). */
int link_request(link_t *l, uint32_t op, const uint8_t *args, size_t args_len, uint32_t nargs,
                 link_reply_fn fn, void *arg);
/* The same with this request's own timeout (<= 0: the link's), and its
 * request id in *id (may be NULL), e.g. to cancel it. A request past its
 * timeout fails the link as a whole (the peer does not answer). */
int link_request_ex(link_t *l, uint32_t op, const uint8_t *args, size_t args_len, uint32_t nargs,
                    int timeout_ms, link_reply_fn fn, void *arg, uint64_t *id);

#endif
