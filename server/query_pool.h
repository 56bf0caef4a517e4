/* query_pool.h - the threads that run query scans, off the workers.
 *
 * A scan of a large region takes seconds; on a worker thread it would
 * stall every other connection of that worker (and, on a cluster, delay
 * the coordinator's requests to the other members until its own scan
 * ended). So a worker hands the scan to this pool as a job and goes on
 * serving; the job's done callback runs back on that worker (worker_post),
 * where the connection and the query's cursor live.
 *
 * Pool threads are QSBR readers (slots qsbr_first .. qsbr_first+n-1): a job
 * is online while it runs, so it may look regions up in the registry and
 * use them until it returns. Jobs must look their region up themselves,
 * by name, inside run: a region pointer taken on the worker could be
 * reclaimed between the post and the job's start. */
#ifndef AGATE_SERVER_QUERY_POOL_H
#define AGATE_SERVER_QUERY_POOL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "server/worker.h"

typedef struct qjob qjob;
struct qjob {
    worker_task task;           /* how done reaches the worker: keep first */
    void (*run)(qjob *j);       /* on a pool thread; checks j->cancel now and then */
    void (*done)(qjob *j, bool orphan); /* on worker w afterwards (see worker_task) */
    worker_t *w;
    _Atomic bool cancel;        /* set by anyone: run should stop soon */
    qjob *next;                 /* the pool's queue */
};

typedef struct qpool qpool_t;

/* Starts nthreads threads using QSBR slots from qsbr_first on. NULL on
 * failure (no thread left running). */
qpool_t *qpool_new(server_t *srv, int nthreads, int qsbr_first);
/* Queues j (run, done and w set; cancel is cleared). Once stopped, j is not
 * run: its done is posted at once. */
void qpool_submit(qpool_t *p, qjob *j);
/* Cancels every queued and running job, waits for the threads to exit and
 * posts every done. Call before joining the workers. NULL is allowed. */
void qpool_stop(qpool_t *p);
/* Frees a stopped pool. NULL is allowed. */
void qpool_free(qpool_t *p);
/* Jobs queued or running now (statistics). */
unsigned qpool_busy(const qpool_t *p);

#endif
