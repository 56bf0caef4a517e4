/* locator.h - the locator role: membership view, failure detection,
 * cluster-wide region definitions (kept in DIR/cluster.regions) and bucket
 * placement (docs/cluster.md). All its state lives on the locator's single
 * worker thread; its requests arrive there through its own command table. */
#ifndef AGATE_SERVER_LOCATOR_H
#define AGATE_SERVER_LOCATOR_H

#include "server/command.h"
#include "server/server.h"

/* Loads region definitions and starts the locator's timers on worker 0.
 * Call after the workers started. 0 or -errno. */
int locator_start(server_t *srv);
void locator_stop(server_t *srv);
/* The locator's row for op, or NULL. */
const command *locator_command_lookup(uint32_t op);

#endif
