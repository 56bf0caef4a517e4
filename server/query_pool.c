#include "server/query_pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct qpool {
    server_t *srv;
    pthread_mutex_t lock;
    pthread_cond_t ready;
    qjob *head, *tail;  /* queued, oldest first */
    qjob **running;     /* per thread: the job it runs, for qpool_stop */
    bool stopping;
    _Atomic unsigned busy;
    int nthreads;
    int qsbr_first;
    pthread_t *threads;
};

typedef struct pool_thread {
    qpool_t *p;
    int index;
} pool_thread;

static void job_finished(qjob *j)
{
    worker_post(j->w, &j->task);
}

/* worker_task entry: the done callback on the worker. */
static void on_task(worker_task *t, bool orphan)
{
    qjob *j = (qjob *)t; /* task is the first member */
    j->done(j, orphan);
}

static qjob *take(qpool_t *p, int index)
{
    pthread_mutex_lock(&p->lock);
    while (!p->head && !p->stopping)
        pthread_cond_wait(&p->ready, &p->lock);
    qjob *j = p->head;
    if (j) {
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->running[index] = j;
    }
    pthread_mutex_unlock(&p->lock);
    return j;
}

static void *pool_main(void *arg)
{
    pool_thread pt = *(pool_thread *)arg;
    free(arg);
    qpool_t *p = pt.p;
    qjob *j;
    /* queued jobs are still run after a stop: cancelled, they end at once */
    while ((j = take(p, pt.index))) {
        qsbr_online(p->srv->qsbr, p->qsbr_first + pt.index);
        j->run(j);
        qsbr_offline(p->srv->qsbr, p->qsbr_first + pt.index);
        pthread_mutex_lock(&p->lock);
        p->running[pt.index] = NULL;
        pthread_mutex_unlock(&p->lock);
        atomic_fetch_sub(&p->busy, 1);
        job_finished(j);
    }
    return NULL;
}

qpool_t *qpool_new(server_t *srv, int nthreads, int qsbr_first)
{
    qpool_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->srv = srv;
    p->qsbr_first = qsbr_first;
    p->threads = calloc((size_t)nthreads, sizeof(pthread_t));
    p->running = calloc((size_t)nthreads, sizeof(qjob *));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->ready, NULL);
    if (!p->threads || !p->running)
        goto fail;
    for (int i = 0; i < nthreads; i++) {
        pool_thread *pt = malloc(sizeof(*pt));
        if (pt)
            *pt = (pool_thread){p, i};
        if (!pt || pthread_create(&p->threads[i], NULL, pool_main, pt)) {
            free(pt);
            goto fail;
        }
        p->nthreads++;
        char name[16];
        snprintf(name, sizeof name, "agate-q%u", (unsigned)i % 1000u);
        pthread_setname_np(p->threads[i], name);
    }
    return p;
fail:
    qpool_stop(p);
    qpool_free(p);
    return NULL;
}

void qpool_submit(qpool_t *p, qjob *j)
{
    j->task.fn = on_task;
    j->next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        atomic_store(&j->cancel, true);
        job_finished(j); /* never run: done sees the cancel */
        return;
    }
    atomic_store(&j->cancel, false);
    atomic_fetch_add(&p->busy, 1);
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->ready);
    pthread_mutex_unlock(&p->lock);
}

void qpool_stop(qpool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    for (qjob *j = p->head; j; j = j->next)
        atomic_store(&j->cancel, true);
    for (int i = 0; i < p->nthreads; i++)
        if (p->running[i])
            atomic_store(&p->running[i]->cancel, true);
    pthread_cond_broadcast(&p->ready);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    p->nthreads = 0;
}

void qpool_free(qpool_t *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->ready);
    free(p->threads);
    free(p->running);
    free(p);
}

unsigned qpool_busy(const qpool_t *p) { return p ? atomic_load(&p->busy) : 0; }
