/* worker.h - worker threads, memcached style: each runs its own event_base
 * and owns the connections the listener hands it; a connection never moves
 * between workers, so its state needs no lock. */
#ifndef AGATE_SERVER_WORKER_H
#define AGATE_SERVER_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "server/server.h"

#define WORKER_OPS_TRACKED 32 /* opcodes below this are counted per op */

struct conn;

/* Work another thread hands to a worker (worker_post): fn runs on the
 * worker's thread inside worker_enter/leave, or, when the worker stopped
 * before getting to it, from worker_join with orphan true (then only
 * release what the task holds: the worker's loop and base are gone). */
typedef struct worker_task {
    void (*fn)(struct worker_task *t, bool orphan);
    struct worker_task *next;
} worker_task;

typedef struct worker {
    int id;
    server_t *srv;
    pthread_t thread;
    struct event_base *base;
    int notify_rd, notify_wr; /* the listener writes accepted fds here */
    struct event *notify_ev;
    struct conn *conns;       /* all open connections, for shutdown */
    buf_t scratch;            /* per-worker temporary space for handlers */
    bool draining;            /* stopping: answer what was read, read nothing new */
    struct repl *repl;        /* replication links and waits (server/replicate.h) */
    struct part_link *query_links; /* kept links to the members for queries (query_cursor.c) */
    struct conn *kicked;      /* conns with late replies to send (conn_kick) */
    struct event *kick_ev;    /* sends them once per loop pass */
    int online_depth;         /* nesting of worker_enter */
    pthread_mutex_t posted_lock; /* guards posted */
    worker_task *posted;      /* tasks from other threads (worker_post) */
    struct event *posted_ev;  /* runs them */
    /* statistics: written only by this worker, read by any */
    _Alignas(64) _Atomic uint64_t nconns;
    _Atomic uint64_t ops[WORKER_OPS_TRACKED];
} worker_t;

/* Creates the worker's loop and starts its thread. 0 or -errno. */
int worker_start(worker_t *w, server_t *srv, int id);
/* Gives an accepted, non-blocking socket to w. Called from the listener
 * thread. 0 or -errno (then the caller closes fd). */
int worker_handoff(worker_t *w, int fd);
/* Notes a worker can be sent through its notify pipe (fds are >= 0). */
#define WORKER_NOTE_STOP (-1)
#define WORKER_NOTE_VIEW (-2) /* the cluster view changed */
void worker_note(worker_t *w, int note);
/* Queues t to run on w's thread (see worker_task). Any thread; never fails. */
void worker_post(worker_t *w, worker_task *t);
/* Asks w to stop: it reads nothing new, answers every request it has read,
 * closes each connection once its replies are sent, and exits when all are
 * closed or drain_ms have passed (then the rest are closed as they are). */
void worker_signal_stop(worker_t *w);
/* Waits for a signalled worker to exit and frees it. */
void worker_join(worker_t *w);
/* Marks the worker online for QSBR (it may hold region pointers) for the
 * duration of an event callback; nests. */
static inline void worker_enter(worker_t *w)
{
    if (w->online_depth++ == 0)
        qsbr_online(w->srv->qsbr, w->id);
}
static inline void worker_leave(worker_t *w)
{
    if (--w->online_depth == 0)
        qsbr_offline(w->srv->qsbr, w->id);
}

/* Counts one processed request of opcode op. */
static inline void worker_count_op(worker_t *w, uint32_t op)
{
    if (op < WORKER_OPS_TRACKED) {
        uint64_t n = atomic_load_explicit(&w->ops[op], memory_order_relaxed);
        atomic_store_explicit(&w->ops[op], n + 1, memory_order_relaxed);
    }
}

#endif
