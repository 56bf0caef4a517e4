/* progress.h - a one-line progress bar on stderr for long transfers.
 *
 * Drawn only when stderr is a terminal, so scripts and logs never see
 * carriage returns; redrawn at most ten times a second, so a fast import
 * does not spend its time writing to the terminal. */
#ifndef AGATE_CLI_PROGRESS_H
#define AGATE_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef enum progress_unit {
    PROGRESS_BYTES,   /* done/total are bytes (import: of the input file) */
    PROGRESS_ENTRIES, /* done/total are entries (export: of the region size) */
    PROGRESS_MOVES,   /* done/total are bucket and primary moves (rebalance); no rate */
} progress_unit;

typedef struct progress {
    bool enabled;
    progress_unit unit;
    uint64_t total;   /* 0: unknown, no percentage or ETA */
    double start;
    double last_draw;
    int last_width;   /* characters drawn last time, to blank leftovers */
} progress_t;

/* Starts a bar. It is disabled (all calls do nothing) when stderr is not a
 * terminal. */
void progress_init(progress_t *p, progress_unit unit, uint64_t total);
/* Reports progress: done in the bar's unit, entries transferred so far (for
 * the rate; ignored for moves). Redraws if 100 ms passed since the last
 * draw, or when force. p->total may be changed between calls (a plan that
 * grows). */
void progress_update(progress_t *p, uint64_t done, uint64_t entries, bool force);
/* Erases the bar so the summary line starts on a clean line. */
void progress_finish(progress_t *p);

#endif
