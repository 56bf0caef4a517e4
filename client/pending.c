/* pending.c - the table of outstanding requests, keyed by request id.
 *
 * Replies may arrive in any order, so completion needs a lookup by id. Ids
 * are handed out sequentially, which makes `id & mask` a collision-free home
 * slot for a window of `capacity` consecutive ids: on the hot path an insert
 * and a removal are one probe each and nothing is allocated. A request that
 * stays outstanding while many later ones complete (a straggler) just makes
 * a later id probe one slot further. Removal uses backward-shift deletion,
 * so there are no tombstones and probe chains stay short. */
#include <stdlib.h>
#include <string.h>

#include "client/client.h"

#define PENDING_MIN_CAP 64

static size_t home(const client_pending *t, uint64_t id) { return (size_t)id & t->mask; }

/* Places e in its probe chain of a table known to have room. */
static void place(client_pending *t, const client_pending_entry *e)
{
    size_t i = home(t, e->id);
    while (t->slots[i].id != 0)
        i = (i + 1) & t->mask;
    t->slots[i] = *e;
}

static int grow(client_pending *t)
{
    size_t oldcap = t->slots ? t->mask + 1 : 0;
    size_t cap = oldcap ? oldcap * 2 : PENDING_MIN_CAP;
    if (cap > SIZE_MAX / sizeof(client_pending_entry))
        return -1;
    client_pending_entry *old = t->slots;
    client_pending_entry *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -1;
    t->slots = slots;
    t->mask = cap - 1;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].id != 0)
            place(t, &old[i]);
    free(old);
    return 0;
}

client_pending_entry *client_pending_add(client_pending *t, uint64_t id)
{
    /* keep the load at or below one half: probes stay short */
    if (!t->slots || (t->count + 1) * 2 > t->mask + 1) {
        if (grow(t))
            return NULL;
    }
    size_t i = home(t, id);
    while (t->slots[i].id != 0)
        i = (i + 1) & t->mask;
    client_pending_entry *e = &t->slots[i];
    memset(e, 0, sizeof(*e));
    e->id = id;
    t->count++;
    t->live++;
    return e;
}

static size_t find(const client_pending *t, uint64_t id)
{
    if (!t->slots || id == 0)
        return SIZE_MAX;
    size_t i = home(t, id);
    while (t->slots[i].id != 0) {
        if (t->slots[i].id == id)
            return i;
        i = (i + 1) & t->mask;
    }
    return SIZE_MAX;
}

/* Empties slot i and shifts later members of its cluster back so that every
 * entry stays reachable from its home slot. */
static void remove_at(client_pending *t, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        if (t->slots[j].id == 0)
            break;
        size_t k = home(t, t->slots[j].id);
        /* the entry at j may move to i if i lies on its path from k to j */
        if (((j - k) & t->mask) >= ((j - i) & t->mask)) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i].id = 0;
    t->count--;
}

int client_pending_take(client_pending *t, uint64_t id, client_pending_entry *out)
{
    size_t i = find(t, id);
    if (i == SIZE_MAX)
        return 0;
    *out = t->slots[i];
    if (!out->abandoned)
        t->live--;
    remove_at(t, i);
    return 1;
}

void client_pending_abandon(client_pending *t, const void *arg)
{
    if (!t->slots)
        return;
    for (size_t i = 0; i <= t->mask; i++) {
        client_pending_entry *e = &t->slots[i];
        if (e->id != 0 && !e->abandoned && e->arg == arg) {
            e->abandoned = 1;
            e->fn = NULL;
            e->cb = NULL;
            e->arg = NULL;
            t->live--;
        }
    }
}

client_pending_entry *client_pending_detach(client_pending *t, size_t *cap)
{
    client_pending_entry *slots = t->slots;
    *cap = slots ? t->mask + 1 : 0;
    memset(t, 0, sizeof(*t));
    return slots;
}

void client_pending_free(client_pending *t)
{
    free(t->slots);
    memset(t, 0, sizeof(*t));
}
