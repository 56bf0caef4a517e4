/* cq_cursor.c - per-bucket delivery cursors of a continuous query. */
#include "client/cq_cursor.h"

#include <stdlib.h>

#include "common/proto.h"

int cq_cursor_init(cq_cursor *k, uint32_t nbuckets)
{
    k->nbuckets = 0;
    k->last = NULL;
    k->cover = NULL;
    if (nbuckets == 0 || nbuckets > AGATE_MAX_BUCKETS)
        return -1;
    k->last = calloc(nbuckets, sizeof(*k->last));
    k->cover = calloc(nbuckets, sizeof(*k->cover));
    if (!k->last || !k->cover) {
        cq_cursor_free(k);
        return -1;
    }
    k->nbuckets = nbuckets;
    return 0;
}

void cq_cursor_free(cq_cursor *k)
{
    free(k->last);
    free(k->cover);
    k->last = NULL;
    k->cover = NULL;
    k->nbuckets = 0;
}

bool cq_cursor_head(cq_cursor *k, uint32_t b, uint64_t seq)
{
    if (b >= k->nbuckets)
        return false;
    k->cover[b]++;
    k->last[b] = seq;
    return true;
}

long cq_cursor_uncovered(cq_cursor *k)
{
    long bad = -1;
    for (uint32_t b = 0; b < k->nbuckets; b++) {
        if (k->cover[b] != 1 && bad < 0)
            bad = (long)b;
        k->cover[b] = 0;
    }
    return bad;
}

int cq_cursor_event(cq_cursor *k, uint32_t b, uint64_t seq)
{
    if (b >= k->nbuckets)
        return CQ_BAD_BUCKET;
    if (seq <= k->last[b])
        return CQ_DUPLICATE;
    k->last[b] = seq;
    return CQ_DELIVER;
}

int cq_cursor_replay(cq_cursor *k, uint32_t b, uint64_t complete_since)
{
    if (b >= k->nbuckets)
        return CQ_BAD_BUCKET;
    return complete_since > k->last[b];
}

int cq_cursor_progress(cq_cursor *k, uint32_t b, uint64_t seq)
{
    if (b >= k->nbuckets)
        return CQ_BAD_BUCKET;
    if (seq > k->last[b])
        k->last[b] = seq;
    return 0;
}
