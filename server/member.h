/* member.h - a server's control plane in a cluster, on the main thread:
 * joins through a locator, heartbeats (which renew the lease that lets it
 * act as primary), applies every cluster map the locator pushes (creating
 * regions, setting bucket roles, dropping buckets it lost), fills new
 * copies by image transfer, fences a bucket for a primary handoff, and
 * leaves gracefully (docs/cluster.md). */
#ifndef AGATE_SERVER_MEMBER_H
#define AGATE_SERVER_MEMBER_H

#include "server/server.h"

/* Starts joining the cluster of srv->cfg.locators. 0 or -errno. */
int member_start(server_t *srv);
/* Asks the locator to move this member's primaries away, then calls done
 * (on the main thread) once it may exit, or after a bounded wait. */
void member_leave(server_t *srv, void (*done)(server_t *srv));
void member_stop(server_t *srv);

#endif
