/* agated - an Agate member process. Runs in the foreground; `agate start
 * server` runs it detached. See server_config_usage for options. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/proto.h"
#include "server/daemon_files.h"
#include "server/locator.h"
#include "server/member.h"
#include "server/server.h"
#include "server/query_pool.h"
#include "server/worker.h"

#define RECLAIM_INTERVAL_MS 200
#define ACCEPT_PAUSE_MS 100

/* Binds and listens; returns the socket or -errno, and the real port. */
static int listen_on(const char *addr, int port, int *bound_port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    socklen_t len = sizeof(sa);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1024) ||
        getsockname(fd, (struct sockaddr *)&sa, &len)) {
        int err = errno;
        close(fd);
        return -err;
    }
    *bound_port = ntohs(sa.sin_port);
    return fd;
}

/* Listener thread: hand each accepted socket to the next worker. */
static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    server_t *srv = arg;
    if (atomic_load(&srv->shutting_down) == 1) {
        close(fd);
        return;
    }
    worker_t *w = &srv->workers[srv->next_worker++ % (unsigned)srv->nworkers];
    if (worker_handoff(w, fd)) {
        log_error("cannot hand a connection to worker %d", w->id);
        close(fd);
    }
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    server_t *srv = arg;
    if (!atomic_load(&srv->shutting_down))
        evconnlistener_enable(srv->listener);
}

/* Out of descriptors, the pending connection stays in the backlog and the
 * listening socket stays readable: retrying at once would spin a CPU. Pause
 * accepting briefly instead; connections wait in the backlog meanwhile. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    server_t *srv = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        static log_limit lim = LOG_LIMIT(10); /* the condition can last */
        log_limited(&lim, LOG_WARN,
                    "accept failed: %s; pausing accepts for %d ms; raise the descriptor limit "
                    "(ulimit -n)", strerror(err), ACCEPT_PAUSE_MS);
        struct timeval pause = {0, ACCEPT_PAUSE_MS * 1000};
        evconnlistener_disable(l);
        event_base_once(srv->base, -1, EV_TIMEOUT, on_accept_resume, srv, &pause);
        return;
    }
    log_warn("accept failed: %s", evutil_socket_error_to_string(err));
}

static void on_left(server_t *srv)
{
    atomic_store(&srv->shutting_down, 1);
    event_base_loopbreak(srv->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    server_t *srv = arg;
    log_info("received %s; shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    if (srv->agent && !atomic_load(&srv->shutting_down)) {
        /* a member first hands its primaries to other members */
        atomic_store(&srv->shutting_down, 2);
        member_leave(srv, on_left);
        return;
    }
    on_left(srv);
}

static void on_reclaim(evutil_socket_t fd, short what, void *arg)
{
    server_t *srv = arg;
    qsbr_reclaim(srv->qsbr);
}

/* Everything that can fail with a message for the operator before we serve. */
static int prepare(server_t *srv, int *listen_fd)
{
    const server_config *cfg = &srv->cfg;
    char path[PATH_MAX + 80];
    long holder;
    int rc = dir_ensure(cfg->dir);
    if (rc) {
        fprintf(stderr, "agated: cannot create directory %s: %s\n", cfg->dir, strerror(-rc));
        return -1;
    }
    rc = dir_lock(cfg->dir, &holder);
    if (rc < 0) {
        if (rc == -EWOULDBLOCK)
            fprintf(stderr, "agated: directory %s is in use by another member (pid %ld)\n",
                    cfg->dir, holder);
        else
            fprintf(stderr, "agated: cannot lock %s: %s\n", cfg->dir, strerror(-rc));
        return -1;
    }
    snprintf(path, sizeof(path), "%s/%s.log", cfg->dir, cfg->name);
    if ((rc = log_open(path))) {
        fprintf(stderr, "agated: cannot open log %s: %s\n", path, strerror(-rc));
        return -1;
    }
    log_set_level(cfg->log_level);
    if ((rc = member_id_load(cfg->dir, &srv->member_id))) {
        log_error("cannot read or create member.id in %s: %s", cfg->dir, strerror(-rc));
        fprintf(stderr, "agated: cannot read or create member.id: %s\n", strerror(-rc));
        return -1;
    }
    *listen_fd = listen_on(cfg->bind, cfg->port, &srv->port);
    if (*listen_fd < 0) {
        log_error("cannot listen on %s:%d: %s", cfg->bind, cfg->port, strerror(-*listen_fd));
        fprintf(stderr, "agated: cannot listen on %s:%d: %s\n", cfg->bind, cfg->port,
                strerror(-*listen_fd));
        return -1;
    }
    return 0;
}

static int start_workers(server_t *srv)
{
    srv->nworkers = srv->cfg.threads;
    srv->workers = calloc((size_t)srv->nworkers, sizeof(worker_t));
    /* QSBR slots: the workers, then the query threads */
    srv->qsbr = qsbr_new(srv->nworkers + srv->cfg.query_threads);
    srv->registry = srv->qsbr ? registry_new(srv->qsbr, srv->member_id) : NULL;
    if (srv->registry)
        registry_set_journal_bytes(srv->registry, srv->cfg.journal_bytes);
    if (!srv->workers || !srv->registry)
        return -ENOMEM;
    for (int i = 0; i < srv->nworkers; i++) {
        int rc = worker_start(&srv->workers[i], srv, i);
        if (rc) {
            srv->nworkers = i + 1; /* stop the ones that started */
            return rc;
        }
    }
    srv->qpool = qpool_new(srv, srv->cfg.query_threads, srv->nworkers);
    return srv->qpool ? 0 : -ENOMEM;
}

static void stop_all(server_t *srv)
{
    if (srv->listener)
        evconnlistener_free(srv->listener);
    /* all workers drain at once, each under its own deadline, not one after another */
    for (int i = 0; i < srv->nworkers; i++)
        worker_signal_stop(&srv->workers[i]);
    /* running scans are cancelled, and their results reach the workers
     * while they drain */
    qpool_stop(srv->qpool);
    for (int i = 0; i < srv->nworkers; i++)
        worker_join(&srv->workers[i]);
    qpool_free(srv->qpool);
    registry_free(srv->registry);
    qsbr_free(srv->qsbr);
    free(srv->workers);
}

static int serve(server_t *srv, int listen_fd)
{
    struct event *sigterm = evsignal_new(srv->base, SIGTERM, on_signal, srv);
    struct event *sigint = evsignal_new(srv->base, SIGINT, on_signal, srv);
    struct event *reclaim = event_new(srv->base, -1, EV_PERSIST, on_reclaim, srv);
    struct timeval every = {0, RECLAIM_INTERVAL_MS * 1000};
    srv->listener = evconnlistener_new(srv->base, on_accept, srv,
                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1,
                                       listen_fd);
    if (!sigterm || !sigint || !reclaim || !srv->listener || evsignal_add(sigterm, NULL) ||
        evsignal_add(sigint, NULL) || event_add(reclaim, &every)) {
        log_error("cannot set up the main event loop");
        return -1;
    }
    evconnlistener_set_error_cb(srv->listener, on_accept_error);
    if (srv->is_locator && locator_start(srv)) {
        log_error("cannot start the locator");
        return -1;
    }
    if (srv->clustered && member_start(srv)) {
        log_error("cannot start the cluster agent");
        return -1;
    }
    int rc = status_write(&srv->cfg, srv->port, "running");
    if (rc)
        log_warn("cannot write agated.status: %s", strerror(-rc));
    log_info("%s %s (id %u) listening on %s:%d with %d worker threads",
             srv->is_locator ? "locator" : "member", srv->cfg.name, srv->member_id, srv->cfg.bind,
             srv->port, srv->nworkers);
    event_base_dispatch(srv->base);
    event_free(sigterm);
    event_free(sigint);
    event_free(reclaim);
    return 0;
}

int main(int argc, char **argv)
{
    static server_t srv;
    char err[256];
    int rc = server_config_parse(argc, argv, &srv.cfg, err, sizeof(err));
    if (rc != 0) {
        if (rc < 0) {
            fprintf(stderr, "agated: %s\n", err);
            server_config_usage(stderr);
        }
        return rc < 0 ? 2 : 0;
    }
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads(); /* the control thread adds events to workers' bases */
    pthread_mutex_init(&srv.peers_lock, NULL);
    srv.is_locator = srv.cfg.locator;
    srv.clustered = srv.cfg.nlocators > 0;
    srv.started = time(NULL);
    int listen_fd;
    if (prepare(&srv, &listen_fd))
        return 1;
    log_info("agated %s starting: name=%s dir=%s pid=%ld", AGATE_VERSION, srv.cfg.name,
             srv.cfg.dir, (long)getpid());
    srv.base = event_base_new();
    if (!srv.base || start_workers(&srv)) {
        log_error("cannot start worker threads");
        fprintf(stderr, "agated: cannot start worker threads\n");
        return 1;
    }
    rc = serve(&srv, listen_fd);
    member_stop(&srv);
    stop_all(&srv);
    locator_stop(&srv);
    event_base_free(srv.base);
    status_write(&srv.cfg, srv.port, "stopped");
    log_info("member %s stopped", srv.cfg.name);
    log_close();
    return rc ? 1 : 0;
}
