#include "server/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "server/conn.h"
#include "server/query_cursor.h"
#include "server/cq.h"
#include "server/replicate.h"

/* How long a stopping worker may spend answering what it has already read. */
#define WORKER_DRAIN_MS 5000

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    event_base_loopbreak(w->base);
}

/* Enters drain mode: see worker_signal_stop. */
static void start_draining(worker_t *w)
{
    struct timeval deadline = {WORKER_DRAIN_MS / 1000, (WORKER_DRAIN_MS % 1000) * 1000};
    w->draining = true;
    event_del(w->notify_ev);
    event_base_once(w->base, -1, EV_TIMEOUT, on_drain_deadline, w, &deadline);
    cq_worker_draining(w); /* subscribers hear PUSH_CQ_CLOSED before their connections close */
    for (conn_t *c = w->conns, *next; c; c = next) {
        next = c->next;
        conn_drain(c);
    }
    if (!w->conns)
        event_base_loopbreak(w->base);
}

/* Accepted fds arrive as ints written to the notify pipe; -1 means stop.
 * Writes of sizeof(int) <= PIPE_BUF are atomic, so no queue or lock. */
static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    int fds[64];
    ssize_t n = read(fd, fds, sizeof(fds));
    if (n <= 0)
        return;
    worker_enter(w);
    for (ssize_t i = 0; i < n / (ssize_t)sizeof(int); i++) {
        if (fds[i] == WORKER_NOTE_VIEW)
            repl_view_changed(w);
        else if (fds[i] < 0)
            w->draining = true;
        else if (w->draining)
            close(fds[i]); /* accepted just before the stop */
        else
            conn_new(w, fds[i]);
    }
    if (w->draining)
        start_draining(w);
    worker_leave(w);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    event_base_dispatch(w->base);
    /* the drain deadline passed (or nothing was left): close the rest */
    while (w->conns)
        conn_free(w->conns);
    qcursor_worker_stop(w);
    cq_worker_stop(w);
    repl_free(w->repl);
    w->repl = NULL;
    return NULL;
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_send_kicked(arg);
}

/* Takes the posted tasks, oldest first. */
static worker_task *take_posted(worker_t *w)
{
    pthread_mutex_lock(&w->posted_lock);
    worker_task *t = w->posted, *rev = NULL;
    w->posted = NULL;
    pthread_mutex_unlock(&w->posted_lock);
    while (t) { /* the list was built newest first */
        worker_task *next = t->next;
        t->next = rev;
        rev = t;
        t = next;
    }
    return rev;
}

static void run_posted(worker_t *w, bool orphan)
{
    for (worker_task *t = take_posted(w), *next; t; t = next) {
        next = t->next;
        t->fn(t, orphan);
    }
}

static void on_posted(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_t *w = arg;
    worker_enter(w);
    run_posted(w, false);
    worker_leave(w);
}

void worker_post(worker_t *w, worker_task *t)
{
    pthread_mutex_lock(&w->posted_lock);
    t->next = w->posted;
    w->posted = t;
    pthread_mutex_unlock(&w->posted_lock);
    event_active(w->posted_ev, 0, 0);
}

int worker_start(worker_t *w, server_t *srv, int id)
{
    int p[2];
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->srv = srv;
    buf_init(&w->scratch);
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
        return -errno;
    w->notify_rd = p[0];
    w->notify_wr = p[1];
    /* the write end blocks: a handoff must not be dropped */
    fcntl(w->notify_wr, F_SETFL, 0);
    w->base = event_base_new();
    if (!w->base)
        return -ENOMEM;
    w->notify_ev = event_new(w->base, w->notify_rd, EV_READ | EV_PERSIST, on_notify, w);
    if (!w->notify_ev || event_add(w->notify_ev, NULL))
        return -ENOMEM;
    w->kick_ev = event_new(w->base, -1, 0, on_kick, w);
    if (!w->kick_ev)
        return -ENOMEM;
    pthread_mutex_init(&w->posted_lock, NULL);
    w->posted_ev = event_new(w->base, -1, 0, on_posted, w);
    if (!w->posted_ev)
        return -ENOMEM;
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc)
        return -rc;
    char name[16];
    snprintf(name, sizeof(name), "agate-w%d", id);
    pthread_setname_np(w->thread, name);
    return 0;
}

int worker_handoff(worker_t *w, int fd)
{
    ssize_t n;
    do
        n = write(w->notify_wr, &fd, sizeof(fd));
    while (n < 0 && errno == EINTR);
    return n == sizeof(fd) ? 0 : -errno;
}

void worker_note(worker_t *w, int note)
{
    if (w->base && write(w->notify_wr, &note, sizeof(note)) != sizeof(note))
        log_error("worker %d: cannot notify: %s", w->id, strerror(errno));
}

void worker_signal_stop(worker_t *w)
{
    int stop = -1;
    if (w->base && write(w->notify_wr, &stop, sizeof(stop)) != sizeof(stop))
        log_error("worker %d: cannot signal stop: %s", w->id, strerror(errno));
}

void worker_join(worker_t *w)
{
    if (!w->base)
        return;
    pthread_join(w->thread, NULL);
    /* the main thread now: what other threads posted too late is released */
    run_posted(w, true);
    event_free(w->notify_ev);
    event_free(w->kick_ev);
    event_free(w->posted_ev);
    pthread_mutex_destroy(&w->posted_lock);
    event_base_free(w->base);
    close(w->notify_rd);
    close(w->notify_wr);
    buf_free(&w->scratch);
    w->base = NULL;
}
