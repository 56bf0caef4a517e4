/* registry.h - the member's regions by name.
 *
 * Readers (request handlers on worker threads) look regions up without a
 * lock: the registry publishes an immutable snapshot and swaps it on
 * create/destroy, and retired snapshots and regions are freed through QSBR.
 * A region pointer from registry_find is valid until the calling worker
 * goes offline (returns from its event callback). */
#ifndef AGATE_SERVER_REGISTRY_H
#define AGATE_SERVER_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "region/region.h"
#include "server/qsbr.h"

typedef struct registry registry_t;

registry_t *registry_new(qsbr_t *q, uint32_t member_id);
/* Frees the registry and all its regions; no reader may be online. */
void registry_free(registry_t *reg);

region_t *registry_find(registry_t *reg, const uint8_t *name, size_t n);
/* Number of regions and the i-th one (by creation order) of one snapshot.
 * Use registry_view to get a consistent snapshot for iteration. */
typedef struct registry_view registry_view;
const registry_view *registry_snapshot(registry_t *reg);
size_t registry_view_count(const registry_view *v);
region_t *registry_view_at(const registry_view *v, size_t i);

enum { REG_CREATED = 0, REG_EXISTED = 1 };
/* Creates a region. Returns REG_CREATED; REG_EXISTED when if_not_exists
 * and an identical-typed region exists; -EEXIST (*existing_type set),
 * -ENOMEM. cfg must have passed region_config_check. */
int registry_create(registry_t *reg, const region_config *cfg, int if_not_exists,
                    region_type *existing_type);
/* Unlinks and retires a region. 0 or -ENOENT. */
int registry_destroy(registry_t *reg, const uint8_t *name, size_t n);

/* Regions created after this get an event journal of bytes per bucket
 * (region/journal.h; 0: none, the default). */
void registry_set_journal_bytes(registry_t *reg, size_t bytes);

/* Regions created after this are cluster copies (region_set_clustered). */
void registry_set_clustered(registry_t *reg);

#endif
