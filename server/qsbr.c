#include "server/qsbr.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One counter per thread, on its own cache line: odd while online. */
typedef struct qsbr_slot {
    _Alignas(64) _Atomic uint64_t ctr;
} qsbr_slot;

typedef struct retired {
    struct retired *next;
    void *p;
    void (*free_fn)(void *);
    uint64_t snap[]; /* each thread's counter when p was retired */
} retired;

struct qsbr {
    int n;
    qsbr_slot *slots;
    pthread_mutex_t lock;
    retired *list;
};

qsbr_t *qsbr_new(int nthreads)
{
    qsbr_t *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->slots = aligned_alloc(_Alignof(qsbr_slot), sizeof(qsbr_slot) * (size_t)nthreads);
    if (!q->slots) {
        free(q);
        return NULL;
    }
    for (int i = 0; i < nthreads; i++)
        atomic_init(&q->slots[i].ctr, 0);
    q->n = nthreads;
    pthread_mutex_init(&q->lock, NULL);
    return q;
}

void qsbr_free(qsbr_t *q)
{
    if (!q)
        return;
    retired *r = q->list;
    while (r) {
        retired *next = r->next;
        r->free_fn(r->p);
        free(r);
        r = next;
    }
    pthread_mutex_destroy(&q->lock);
    free(q->slots);
    free(q);
}

/* seq_cst: the online mark must be visible before this thread loads any
 * shared pointer, else a writer could miss it and free under our feet. */
void qsbr_online(qsbr_t *q, int i)
{
    atomic_fetch_add(&q->slots[i].ctr, 1);
    atomic_thread_fence(memory_order_seq_cst);
}

void qsbr_offline(qsbr_t *q, int i)
{
    atomic_fetch_add_explicit(&q->slots[i].ctr, 1, memory_order_release);
}

void qsbr_retire(qsbr_t *q, void *p, void (*free_fn)(void *))
{
    retired *r = malloc(sizeof(*r) + sizeof(uint64_t) * (size_t)q->n);
    if (!r) {
        /* cannot track it: leaking is safe, freeing is not */
        return;
    }
    r->p = p;
    r->free_fn = free_fn;
    atomic_thread_fence(memory_order_seq_cst);
    for (int i = 0; i < q->n; i++)
        r->snap[i] = atomic_load(&q->slots[i].ctr);
    pthread_mutex_lock(&q->lock);
    r->next = q->list;
    q->list = r;
    pthread_mutex_unlock(&q->lock);
}

static int safe_to_free(qsbr_t *q, const retired *r)
{
    for (int i = 0; i < q->n; i++) {
        uint64_t now = atomic_load(&q->slots[i].ctr);
        if ((r->snap[i] & 1) && now == r->snap[i])
            return 0; /* still inside the section it was in at retire time */
    }
    return 1;
}

size_t qsbr_reclaim(qsbr_t *q)
{
    size_t freed = 0;
    pthread_mutex_lock(&q->lock);
    retired **link = &q->list;
    while (*link) {
        retired *r = *link;
        if (safe_to_free(q, r)) {
            *link = r->next;
            r->free_fn(r->p);
            free(r);
            freed++;
        } else {
            link = &r->next;
        }
    }
    pthread_mutex_unlock(&q->lock);
    return freed;
}
