/* conn.h - one client connection: reads bytes, cuts frames, hands each to
 * the dispatcher, writes replies back. Lives on one worker thread. */
#ifndef AGATE_SERVER_CONN_H
#define AGATE_SERVER_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "server/worker.h"

struct event;

typedef struct conn {
    int fd;
    worker_t *w;
    struct event *rev, *wev;
    buf_t in, out;
    bool handshaken;
    bool close_after_flush; /* a fatal error was answered: close once sent */
    bool out_failed;        /* an allocation for the reply failed */
    bool reading_paused;    /* output above the high-water mark */
    char peer[128]; /* "ip:port", then " (client name)" after HELLO */
    struct conn *prev, *next;
    /* Replies still owed by other parts of the server (a write waiting for
     * its copies): the struct outlives the socket until they are done. */
    uint32_t waits;
    bool dead;               /* socket closed; freed when waits reaches 0 */
    /* Called once when the socket closes (the locator tracks member conns). */
    void (*on_close)(struct conn *c, void *arg);
    void *on_close_arg;
    /* Queries (server/query_cursor.h): open cursors, running QUERY_PARTs. */
    struct qcursor *cursors;
    uint32_t ncursors;
    uint64_t next_cursor;
    struct qpart_job *query_parts;
    /* Continuous queries opened here (server/cq.h), or NULL. */
    struct cq_sub *cq_sub;
    bool kicked;             /* on the worker's kicked list */
    struct conn *kick_next;
} conn_t;

/* Takes ownership of fd and starts reading. NULL (fd closed) on failure. */
conn_t *conn_new(worker_t *w, int fd);
/* Closes the socket and frees the connection. */
void conn_free(conn_t *c);
/* The worker is stopping: answer the requests already read, read no more,
 * and close once the replies are sent. May free c. */
void conn_drain(conn_t *c);
/* A late reply was appended to c->out: it is sent once the worker's
 * loop gets to it, with every other late reply of that pass (one send per
 * connection instead of arming write events). Not for dead conns. */
void conn_kick(conn_t *c);
/* Sends the output of every connection kicked on w (the worker's kick
 * event). */
void conn_send_kicked(worker_t *w);
/* One owed reply was delivered (or dropped): frees a dead conn at zero. */
void conn_wait_done(conn_t *c);
/* msgpack_packer write callback appending to c->out (data = conn_t *). */
int conn_pack_write(void *data, const char *p, size_t n);

#endif
