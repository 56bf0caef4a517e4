/* cluster.h - what request handlers need to know about the cluster: is
 * this member serving (its lease is valid), where are its peers, and how
 * to tell the workers that the view changed. The control plane itself is
 * server/member.c (members) and server/locator.c (locators). */
#ifndef AGATE_SERVER_CLUSTER_H
#define AGATE_SERVER_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "server/server.h"

/* Monotonic milliseconds. */
int64_t cluster_now_ms(void);
/* True when this member may act as a primary now: stand-alone servers
 * always, members while their lease is valid. */
bool cluster_serving(const server_t *srv);
/* Copies a peer's address. 0, or -ENOENT when it is not in the view. */
int cluster_peer_find(server_t *srv, uint32_t id, peer_addr *out);
/* Replaces the peer table and tells every worker (they drop replication
 * to members that left). Called by the control thread. */
int cluster_set_peers(server_t *srv, const peer_addr *peers, size_t n);

#endif
