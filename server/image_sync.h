/* image_sync.h - fills a member's new bucket copies from their primaries
 * by IMAGE_PAGE transfer (docs/cluster.md, "Image transfer"), on the main
 * thread's event base.
 *
 * The member says which buckets it wants (image_sync_want, for every
 * bucket the map gives it as an INIT copy) and which it no longer wants
 * (image_sync_cancel). At most IMAGE_SYNC_MAX_RUNNING transfers run at
 * once; a failed one is retried after a short delay, from whichever
 * member the map names as primary by then. A finished bucket is reported
 * through the ready callback, again every IMAGE_SYNC_READY_RESEND_MS until
 * the map stops asking for it (the report can be lost with the locator's
 * connection), without transferring it again. */
#ifndef AGATE_SERVER_IMAGE_SYNC_H
#define AGATE_SERVER_IMAGE_SYNC_H

#include <event2/event.h>
#include <stdint.h>

#include "server/server.h"

#define IMAGE_SYNC_MAX_RUNNING 8
#define IMAGE_SYNC_RETRY_MS 200
#define IMAGE_SYNC_READY_RESEND_MS 1000

typedef struct image_sync image_sync;

/* Called when region's bucket holds a full image (and on each resend). */
typedef void (*image_ready_fn)(const char *region, uint32_t bucket, void *arg);

/* NULL when out of memory. */
image_sync *image_sync_new(server_t *srv, struct event_base *base, image_ready_fn ready, void *arg);
/* Stops every transfer and frees s (NULL is ignored). */
void image_sync_free(image_sync *s);

/* Wants region's bucket filled from primary. Wanting a bucket again with
 * the same primary changes nothing; with another primary, a transfer in
 * progress goes on (it fails over by itself if the old primary stopped
 * serving), and a finished one is done again from the new primary, which
 * may hold writes the old one never sent. */
void image_sync_want(image_sync *s, const char *region, uint32_t bucket, uint32_t primary);
/* No longer wants it (the map made it a ready copy, or took it away). */
void image_sync_cancel(image_sync *s, const char *region, uint32_t bucket);
void image_sync_cancel_all(image_sync *s);
/* Buckets wanted and not yet reported ready (for status and tests). */
size_t image_sync_pending(const image_sync *s);

#endif
