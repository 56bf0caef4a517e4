#include "region/tracker.h"

#include <errno.h>
#include <stdlib.h>

static inline tracker_slot *set_of(const tracker_t *t, uint64_t client_id)
{
    uint64_t x = client_id * 0x9E3779B97F4A7C15ULL;
    return (tracker_slot *)t->slot[x >> 58]; /* top 6 bits: 64 sets */
}

bool tracker_is_dup(const tracker_t *t, uint64_t client_id, uint64_t seq)
{
    if (!t || client_id == 0)
        return false;
    const tracker_slot *s = set_of(t, client_id);
    for (int i = 0; i < TRACKER_WAYS; i++)
        if (s[i].client_id == client_id)
            return seq <= s[i].seq;
    return false;
}

int tracker_note(tracker_t **tp, uint64_t client_id, uint64_t seq)
{
    if (client_id == 0)
        return 0;
    if (!*tp && !(*tp = calloc(1, sizeof(tracker_t))))
        return -ENOMEM;
    tracker_t *t = *tp;
    tracker_slot *s = set_of(t, client_id);
    tracker_slot *victim = &s[0];
    for (int i = 0; i < TRACKER_WAYS; i++) {
        if (s[i].client_id == client_id) {
            if (seq > s[i].seq)
                s[i].seq = seq;
            s[i].touch = ++t->clock;
            return 0;
        }
        if (s[i].touch < victim->touch)
            victim = &s[i];
    }
    victim->client_id = client_id;
    victim->seq = seq;
    victim->touch = ++t->clock;
    return 0;
}

size_t tracker_export(const tracker_t *t, uint64_t (*pairs)[2], size_t cap)
{
    size_t n = 0;
    if (!t)
        return 0;
    for (int i = 0; i < TRACKER_SETS; i++)
        for (int j = 0; j < TRACKER_WAYS && n < cap; j++)
            if (t->slot[i][j].client_id) {
                pairs[n][0] = t->slot[i][j].client_id;
                pairs[n][1] = t->slot[i][j].seq;
                n++;
            }
    return n;
}
