/* index_sync.h - a cluster member's indexes follow the cluster map.
 *
 * Index definitions are cluster-wide (the locator keeps them in the map
 * with their region, docs/cluster.md): each time the member applies a map
 * it makes its copy of every region carry exactly the map's indexes, so a
 * member that joins later, or receives buckets by image transfer, indexes
 * what it holds (the index set sees image entries as they arrive). Each
 * heartbeat carries the indexes' figures to the locator. */
#ifndef AGATE_SERVER_INDEX_SYNC_H
#define AGATE_SERVER_INDEX_SYNC_H

#include <msgpack.h>

#include "common/cmap.h"
#include "region/region.h"

struct event_base;
struct server;

/* Creates the indexes of mr that r lacks (or whose definition changed),
 * and destroys those mr no longer has. New indexes are used at once and
 * built a few buckets at a time by a timer on base (the member agent's),
 * so applying a map never holds the agent (and its heartbeats) for long.
 * Failures are logged; an index that could not be created is tried again
 * with the next map. */
void index_sync_region(struct event_base *base, struct server *srv, region_t *r,
                       const cmap_region *mr);

/* Heartbeat figures of r's indexes for the locator's INDEX_LIST: an array
 * of [name, primary_entries, entries, bytes, valid]: keys indexed in the
 * buckets this member is primary for, then in every copy it holds, and
 * the memory of the latter. Returns 0 or the packer's error. */
int index_pack_stats(region_t *r, msgpack_packer *pk);

#endif
