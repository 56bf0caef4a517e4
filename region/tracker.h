/* tracker.h - the event ids a bucket has applied, so a retried write is
 * not applied twice (docs/cluster.md, "Event ids").
 *
 * Per client id it keeps the highest sequence applied. It is a cache of
 * TRACKER_SETS x TRACKER_WAYS clients, least recently used evicted within a
 * set: a client evicted by many newer ones loses duplicate detection for
 * writes it retries after that (a retry comes within a request timeout, far
 * sooner than 256 other clients writing to the same bucket would evict it). */
#ifndef AGATE_REGION_TRACKER_H
#define AGATE_REGION_TRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACKER_SETS 64
#define TRACKER_WAYS 4

typedef struct tracker_slot {
    uint64_t client_id; /* 0: empty */
    uint64_t seq;
    uint64_t touch;
} tracker_slot;

typedef struct tracker {
    uint64_t clock;
    tracker_slot slot[TRACKER_SETS][TRACKER_WAYS];
} tracker_t;

/* True when (client_id, seq) is not newer than what was applied. */
bool tracker_is_dup(const tracker_t *t, uint64_t client_id, uint64_t seq);
/* Records an applied write; allocates *t on first use. 0 or -ENOMEM. */
int tracker_note(tracker_t **t, uint64_t client_id, uint64_t seq);
/* Copies up to cap (client_id, seq) pairs out; returns how many. */
size_t tracker_export(const tracker_t *t, uint64_t (*pairs)[2], size_t cap);

#endif
