/* Cluster facts shared by request handlers (see cluster.h). */
#include "server/cluster.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/worker.h"

int64_t cluster_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool cluster_serving(const server_t *srv)
{
    if (!srv->clustered)
        return true;
    return cluster_now_ms() < atomic_load_explicit(&srv->lease_until_ms, memory_order_acquire);
}

int cluster_peer_find(server_t *srv, uint32_t id, peer_addr *out)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&srv->peers_lock);
    for (size_t i = 0; i < srv->npeers; i++)
        if (srv->peers[i].id == id) {
            *out = srv->peers[i];
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&srv->peers_lock);
    return rc;
}

int cluster_set_peers(server_t *srv, const peer_addr *peers, size_t n)
{
    peer_addr *copy = malloc((n ? n : 1) * sizeof(*copy));
    if (!copy)
        return -ENOMEM;
    memcpy(copy, peers, n * sizeof(*copy));
    pthread_mutex_lock(&srv->peers_lock);
    bool same = n == srv->npeers && (n == 0 || !memcmp(copy, srv->peers, n * sizeof(*copy)));
    free(srv->peers);
    srv->peers = copy;
    srv->npeers = n;
    pthread_mutex_unlock(&srv->peers_lock);
    if (!same) {
        atomic_fetch_add(&srv->peers_version, 1);
        for (int i = 0; i < srv->nworkers; i++)
            worker_note(&srv->workers[i], WORKER_NOTE_VIEW);
    }
    return 0;
}
