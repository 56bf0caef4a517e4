/* journal.h - the per-bucket event journal of a region (docs/query.md,
 * "Continuous queries"; docs/architecture.md, "The event journal").
 *
 * A journal watches a region as one of its observers (region_observe) and
 * keeps, per bucket, a bounded list of the writes applied here: seq (the
 * write's version counter), op, key, the old value and the new one. Writes
 * at the primary, and writes replicated to a copy, are events; the state an
 * image transfer copies in is not, and a bucket that leaves this member
 * forgets its events. Events are kept sorted by seq (replicated writes may
 * arrive out of order), and each bucket knows complete_since: every event
 * with seq > complete_since that this member applied is in the journal.
 *
 * Recording starts with journal_arm (the first continuous query on the
 * region at this member): until then a write costs the journal one branch.
 * Arming makes every bucket complete from its version counter at that
 * moment on.
 *
 * Memory: at most bytes_per_bucket per bucket (an event costs its key and
 * values plus about 32 bytes), allocated as events come; the oldest events
 * are evicted first, raising complete_since. An event larger than the whole
 * budget empties the bucket's journal (complete_since = its seq).
 *
 * Threads: writers append under the bucket's lock (the observer callback)
 * and never wait for readers. Readers copy events out under the same lock,
 * in bounded batches, and work on their copy. */
#ifndef AGATE_REGION_JOURNAL_H
#define AGATE_REGION_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "region/region.h"

typedef struct journal journal_t;

enum journal_op { JOURNAL_PUT = 1, JOURNAL_REMOVE = 2, JOURNAL_CLEAR = 3 };

/* One event as a reader sees it (pointers into the reader's batch). */
typedef struct journal_event {
    uint64_t seq;
    uint8_t op;               /* enum journal_op */
    bool key_is_str;
    const uint8_t *key;       /* CLEAR: NULL */
    uint32_t klen;
    const uint8_t *old_value; /* NULL: the key had no live entry (or CLEAR) */
    uint32_t old_vlen;
    const uint8_t *new_value; /* PUT only */
    uint32_t new_vlen;
} journal_event;

/* A bucket's state, read under its lock. */
typedef struct journal_info {
    bool serving;            /* this member serves the bucket: primary, or a stand-alone region */
    uint64_t last;           /* the highest seq recorded (0: none yet) */
    uint64_t complete_since; /* see above; UINT64_MAX after the bucket was dropped */
    uint64_t counter;        /* the bucket's version counter (>= last; a new primary's
                                term moves it without an event): where this member
                                serves the bucket, every write up to it was applied */
} journal_info;

/* Hooks for the journal's readers, process-wide (set once, before any
 * journal exists, or NULL). on_append runs under a bucket's lock after
 * each recorded event: it must be short and must not take bucket locks.
 * on_free runs when a journal is freed with its region. */
typedef struct journal_hooks {
    void (*on_append)(journal_t *j, uint32_t bucket);
    void (*on_free)(journal_t *j);
} journal_hooks;
void journal_set_hooks(const journal_hooks *h);

/* Creates r's journal and starts it observing r; it is freed by
 * region_free. bytes_per_bucket must be > 0 (0 means: no journal, do not
 * call). Returns the journal, or NULL (-ENOMEM, or no observer slot left;
 * r then has no journal). Call before r is shared, or at least before the
 * events that matter. */
journal_t *journal_attach(region_t *r, size_t bytes_per_bucket);
/* Starts recording (idempotent, any thread; takes each bucket's lock in
 * turn). */
void journal_arm(journal_t *j);
bool journal_armed(const journal_t *j);
/* The journal of r, or NULL. r must be alive (caller's business). */
journal_t *journal_find(const region_t *r);
region_t *journal_region(const journal_t *j);

/* Copies events of bucket with seq > after, in seq order, into out
 * (appended; decode with journal_next): at most max_events, and no more
 * once max_bytes are used (but always the first one). Fills *info.
 * Returns the number of events copied, or -ENOMEM (out unchanged). */
long journal_read(journal_t *j, uint32_t bucket, uint64_t after, size_t max_events,
                  size_t max_bytes, buf_t *out, journal_info *info);
/* Decodes the event at *off of a batch written by journal_read and
 * advances *off. Returns false at the end. */
bool journal_next(const buf_t *batch, size_t *off, journal_event *ev);

/* Under the bucket's lock: fills *info and, when the bucket is served
 * here and fn is not NULL, visits its live entries (a reader's initial
 * state, consistent with info->last). fn must not block. */
void journal_snapshot(journal_t *j, uint32_t bucket, region_visit_fn fn, void *arg,
                      journal_info *info);

/* An image transfer into bucket started: the primary's counter was
 * counter when it began replicating to this member, so every event above
 * it reaches this journal (complete_since = counter). */
void journal_image_start(journal_t *j, uint32_t bucket, uint64_t counter);

/* Lock-free peeks (a reader deciding whether to look closer). */
uint64_t journal_last(const journal_t *j, uint32_t bucket);
uint64_t journal_complete_since(const journal_t *j, uint32_t bucket);
uint32_t journal_nbuckets(const journal_t *j);
/* Bytes held by events of every bucket (racy sum, for stats). */
uint64_t journal_bytes(const journal_t *j);

#endif
