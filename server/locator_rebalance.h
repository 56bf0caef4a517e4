/* locator_rebalance.h - REBALANCE and REBALANCE_STATUS on the locator:
 * plans with rebalance_plan.c over the members that are up and not
 * leaving, then carries the plan out step by step on the locator's thread
 * (docs/cluster.md, "Rebalance").
 *
 * A bucket move adds the new copy as initializing, waits for the member
 * to report it ready (image transfer), hands the primary over to it when
 * the old member was primary, and only then drops the old copy, so that
 * redundancy never drops. A primary move is a handoff. Moves whose bucket
 * changed meanwhile (a member was lost, a region destroyed) are skipped,
 * and a handoff that keeps failing is given up after a few attempts: the
 * new copy is then dropped again. At most RB_MAX_ACTIVE moves run at once. */
#ifndef AGATE_SERVER_LOCATOR_REBALANCE_H
#define AGATE_SERVER_LOCATOR_REBALANCE_H

#include <msgpack.h>

#include "server/command.h"
#include "server/locator_impl.h"

#define RB_MAX_ACTIVE 16
#define RB_HANDOFF_ATTEMPTS 3

/* REBALANCE [options {"simulate": bool}] -> rebalance status map. While
 * one runs, another request answers its status instead of starting one. */
void locator_rebalance_request(req_ctx *x);
/* REBALANCE_STATUS -> rebalance status map (state "idle" before any). */
void locator_rebalance_status(req_ctx *x);
/* Appends the status map of the last rebalance to pk (CLUSTER_STATUS). */
void locator_rebalance_pack(locator *lc, msgpack_packer *pk);
/* Advances a running rebalance: called on every tick and whenever a copy
 * becomes ready or a handoff finishes. Publishes the map if it changed. */
void locator_rebalance_step(locator *lc);
void locator_rebalance_free(locator *lc);

#endif
