/* qsbr.h - quiescent-state-based reclamation.
 *
 * Lets worker threads read shared, rarely-changing structures (the region
 * registry) with no lock and no reference count on the request path. A
 * worker is "online" while it runs an event callback and offline between
 * callbacks. Memory unlinked by a writer is retired, and freed only once
 * every worker has been offline at least once since: then no worker can
 * still hold a pointer into it.
 *
 * Threads are registered by index 0..n-1 when the qsbr is created. */
#ifndef AGATE_SERVER_QSBR_H
#define AGATE_SERVER_QSBR_H

#include <stddef.h>

typedef struct qsbr qsbr_t;

qsbr_t *qsbr_new(int nthreads);
/* Frees everything still retired; call after all threads stopped. */
void qsbr_free(qsbr_t *q);
/* Marks thread i as inside / outside a read-side section. */
void qsbr_online(qsbr_t *q, int i);
void qsbr_offline(qsbr_t *q, int i);
/* Hands p to be freed with free_fn once no reader can hold it. Thread-safe. */
void qsbr_retire(qsbr_t *q, void *p, void (*free_fn)(void *));
/* Frees what is safe to free now; returns how many were freed. */
size_t qsbr_reclaim(qsbr_t *q);

#endif
