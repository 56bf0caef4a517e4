/* router_ops.c - the synchronous calls of a routing client: key operations
 * go to the primary member of the key's bucket; put_all and get_all are
 * split by member; size, clear and scans combine every member's share;
 * region administration, ping and server info go to the locator.
 *
 * Every routed call retries REDIRECT, UNAVAILABLE and member connection
 * failures until the request timeout is used up (router_retry_next). */
#include <stdlib.h>
#include <string.h>

#include "client/router.h"
#include "common/proto.h"

/* Member cursor bits in a routed scan cursor; the member's index in the
 * map's member list is above them. */
#define SCAN_MEMBER_SHIFT 48
#define SCAN_CURSOR_MASK ((UINT64_C(1) << SCAN_MEMBER_SHIFT) - 1)

/* ---- Key operations ----------------------------------------------------- */

/* One attempt of k on the member's connection, with ev for writes. */
static int keyop_send(agate_client *child, const router_keyop *k, const client_evid *ev,
                      int budget_ms)
{
    child->request_timeout_ms = budget_ms;
    switch (k->op) {
    case OP_PUT:
        return client_put(child, k->region, k->key, k->klen, k->value, k->vlen, ev);
    case OP_GET:
        return agate_get(child, k->region, k->key, k->klen, k->out);
    case OP_GET_ENTRY:
        return agate_get_entry(child, k->region, k->key, k->klen, k->out, k->ver);
    case OP_REMOVE:
        return client_remove(child, k->region, k->key, k->klen, ev);
    default:
        return agate_contains_key(child, k->region, k->key, k->klen);
    }
}

int router_keyed(agate_client *c, const router_keyop *k)
{
    int rc = client_check_blocking(c, proto_op_name(k->op));
    if (!rc)
        rc = client_check_keyed(c, k->region, k->key, k->klen);
    if (!rc && k->op == OP_PUT)
        rc = client_check_value(c, k->value, k->vlen);
    if (rc)
        return rc;
    bool write = k->op == OP_PUT || k->op == OP_REMOVE;
    client_evid ev = {c->client_id, write ? router_next_seq(c, 1) : 0};
    bool answerless = false; /* an attempt may have been applied */
    router_retry rt;
    router_retry_init(c, &rt);
    for (;;) {
        size_t mi;
        agate_client *child = NULL;
        rc = router_route(c, k->region, k->key, k->klen, true, &mi);
        if (!rc)
            rc = router_child(c, mi, true, &child);
        if (!rc) {
            rc = router_pass(c, child, keyop_send(child, k, write ? &ev : NULL,
                                                  router_retry_budget(c, &rt)));
            rc = router_member_rc(c, k->region, rc);
        }
        if (!router_retryable(rc))
            return rc;
        answerless |= router_answerless(rc);
        rc = router_retry_next(c, &rt, rc);
        if (rc)
            return rc;
        /* Not applied for sure (REDIRECT, UNAVAILABLE, not connected): a
         * new sequence number is safe, and needed if a later write of ours
         * reached the bucket meanwhile. After no answer the same id must be
         * resent so that the member can tell a duplicate. */
        if (write && !answerless)
            ev.seq = router_next_seq(c, 1);
    }
}

/* ---- put_all and get_all ------------------------------------------------ */

/* Scratch of a split batch: per item its member, and one group's slices. */
typedef struct split {
    size_t n;
    long *member;    /* member index per item, -1: no primary now */
    uint8_t *state;  /* SPLIT_* flags per item */
    size_t *idx;     /* the group's items, in caller order */
    size_t m;        /* items in the group */
} split;

enum { SPLIT_DONE = 1, SPLIT_ANSWERLESS = 2 };

static int split_init(agate_client *c, split *s, size_t n)
{
    memset(s, 0, sizeof(*s));
    s->n = n;
    s->member = malloc(n * sizeof(*s->member));
    s->state = calloc(n, 1);
    s->idx = malloc(n * sizeof(*s->idx));
    if (!s->member || !s->state || !s->idx)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    return 0;
}

static void split_free(split *s)
{
    free(s->member);
    free(s->state);
    free(s->idx);
}

/* Routes every pending item. Returns 0, or a non-retryable error (the region
 * is unknown); items without a primary get member -1 and *unavail is set. */
static int split_route(agate_client *c, split *s, const char *region,
                       const void *(*key_of)(const void *, size_t, size_t *),
                       const void *items, int *unavail)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->state[i] & SPLIT_DONE)
            continue;
        size_t klen, mi;
        const void *key = key_of(items, i, &klen);
        int rc = router_route(c, region, key, klen, true, &mi);
        if (rc == AGATE_EUNAVAILABLE)
            *unavail = rc;
        else if (rc)
            return rc;
        s->member[i] = rc ? -1 : (long)mi;
    }
    return 0;
}

/* Collects the pending items routed to member j into s->idx. */
static size_t split_group(split *s, long j)
{
    s->m = 0;
    for (size_t i = 0; i < s->n; i++)
        if (!(s->state[i] & SPLIT_DONE) && s->member[i] == j)
            s->idx[s->m++] = i;
    return s->m;
}

static bool split_done(const split *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (!(s->state[i] & SPLIT_DONE))
            return false;
    return true;
}

static const void *kv_key(const void *items, size_t i, size_t *klen)
{
    const agate_kv *kv = (const agate_kv *)items + i;
    *klen = kv->klen;
    return kv->key;
}

static const void *key_key(const void *items, size_t i, size_t *klen)
{
    const agate_key *k = (const agate_key *)items + i;
    *klen = k->klen;
    return k->key;
}

/* Numbers the group's items for its PUT_ALL: an item that was never sent
 * without an answer takes a new sequence number (consecutive in the
 * group's order, so one event id covers them); the others keep theirs so
 * that the member can tell a duplicate (see router_keyed). */
static void number_group(agate_client *c, const split *s, uint64_t *seq)
{
    size_t fresh = 0;
    for (size_t x = 0; x < s->m; x++)
        fresh += !(s->state[s->idx[x]] & SPLIT_ANSWERLESS);
    uint64_t next = router_next_seq(c, fresh);
    for (size_t x = 0; x < s->m; x++)
        if (!(s->state[s->idx[x]] & SPLIT_ANSWERLESS))
            seq[s->idx[x]] = next++;
}

/* Sends one group of a put_all (s->idx) to member j and records each item's
 * outcome. Returns 0, a retryable error (some items remain), or a final one. */
static int put_group(agate_client *c, split *s, long j, const char *region,
                     const agate_kv *kvs, uint64_t *seq, agate_kv *gkv, uint64_t *gseq,
                     int *grc, int budget_ms)
{
    number_group(c, s, seq);
    for (size_t x = 0; x < s->m; x++) {
        gkv[x] = kvs[s->idx[x]];
        gseq[x] = seq[s->idx[x]];
    }
    agate_client *child;
    int rc = router_child(c, (size_t)j, true, &child);
    if (rc)
        return rc;
    child->request_timeout_ms = budget_ms;
    rc = router_pass(c, child,
                     client_put_all_ev(child, region, gkv, s->m, c->client_id, gseq, grc));
    rc = router_member_rc(c, region, rc);
    int retry = 0, final = 0;
    for (size_t x = 0; x < s->m; x++) {
        size_t i = s->idx[x];
        grc[x] = grc[x] < 0 ? router_member_rc(c, region, grc[x]) : grc[x];
        if (grc[x] == 0)
            s->state[i] |= SPLIT_DONE;
        else if (router_answerless(grc[x]))
            s->state[i] |= SPLIT_ANSWERLESS;
        if (grc[x] < 0 && !router_retryable(grc[x]) && !final)
            final = grc[x];
        else if (grc[x] != 0)
            retry = grc[x] < 0 ? grc[x] : AGATE_EUNAVAILABLE;
    }
    if (final || (rc && !router_retryable(rc)))
        return final ? final : rc;
    return retry ? (rc ? rc : retry) : 0;
}

/* One round of a put_all: every pending item to its primary. */
static int put_all_round(agate_client *c, split *s, const char *region, const agate_kv *kvs,
                         uint64_t *seq, agate_kv *gkv, uint64_t *gseq, int *grc, int budget_ms)
{
    int retry = 0;
    int rc = split_route(c, s, region, kv_key, kvs, &retry);
    if (rc)
        return rc;
    size_t nmembers = c->router->nmembers;
    for (long j = 0; j < (long)nmembers; j++) {
        if (!split_group(s, j))
            continue;
        rc = put_group(c, s, j, region, kvs, seq, gkv, gseq, grc, budget_ms);
        if (rc && !router_retryable(rc))
            return rc;
        if (rc)
            retry = rc;
    }
    return retry;
}

int router_put_all(agate_client *c, const char *region, const agate_kv *kvs, size_t n)
{
    split s;
    int rc = split_init(c, &s, n);
    uint64_t *seq = malloc(n * sizeof(*seq));
    uint64_t *gseq = malloc(n * sizeof(*gseq));
    agate_kv *gkv = malloc(n * sizeof(*gkv));
    int *grc = malloc(n * sizeof(*grc));
    if (!rc && (!seq || !gseq || !gkv || !grc))
        rc = client_err(c, AGATE_ENOMEM, "out of memory");
    if (!rc) {
        router_retry rt;
        router_retry_init(c, &rt);
        for (;;) {
            rc = put_all_round(c, &s, region, kvs, seq, gkv, gseq, grc,
                               router_retry_budget(c, &rt));
            if (!router_retryable(rc) || split_done(&s))
                break;
            rc = router_retry_next(c, &rt, rc);
            if (rc)
                break;
        }
    }
    split_free(&s);
    free(seq);
    free(gseq);
    free(gkv);
    free(grc);
    return rc < 0 ? rc : 0;
}

/* Fetches one group of a get_all (s->idx) from member j into values. */
static int get_group(agate_client *c, split *s, long j, const char *region,
                     const agate_key *keys, agate_buf *values, agate_key *gkeys,
                     agate_buf *gvals, int budget_ms)
{
    for (size_t x = 0; x < s->m; x++)
        gkeys[x] = keys[s->idx[x]];
    agate_client *child;
    int rc = router_child(c, (size_t)j, true, &child);
    if (rc)
        return rc;
    child->request_timeout_ms = budget_ms;
    rc = router_pass(c, child, agate_get_all(child, region, gkeys, s->m, gvals));
    rc = router_member_rc(c, region, rc);
    if (rc)
        return rc;
    for (size_t x = 0; x < s->m; x++) {
        values[s->idx[x]] = gvals[x];
        s->state[s->idx[x]] |= SPLIT_DONE;
    }
    return 0;
}

static int get_all_round(agate_client *c, split *s, const char *region, const agate_key *keys,
                         agate_buf *values, agate_key *gkeys, agate_buf *gvals, int budget_ms)
{
    int retry = 0;
    int rc = split_route(c, s, region, key_key, keys, &retry);
    if (rc)
        return rc;
    size_t nmembers = c->router->nmembers;
    for (long j = 0; j < (long)nmembers; j++) {
        if (!split_group(s, j))
            continue;
        rc = get_group(c, s, j, region, keys, values, gkeys, gvals, budget_ms);
        if (rc && !router_retryable(rc))
            return rc;
        if (rc)
            retry = rc;
    }
    return retry;
}

int router_get_all(agate_client *c, const char *region, const agate_key *keys, size_t n,
                   agate_buf *values)
{
    split s;
    int rc = split_init(c, &s, n);
    agate_key *gkeys = malloc(n * sizeof(*gkeys));
    agate_buf *gvals = malloc(n * sizeof(*gvals));
    if (!rc && (!gkeys || !gvals))
        rc = client_err(c, AGATE_ENOMEM, "out of memory");
    if (!rc) {
        router_retry rt;
        router_retry_init(c, &rt);
        for (;;) {
            rc = get_all_round(c, &s, region, keys, values, gkeys, gvals,
                               router_retry_budget(c, &rt));
            if (!router_retryable(rc) || split_done(&s))
                break;
            rc = router_retry_next(c, &rt, rc);
            if (rc)
                break;
        }
    }
    if (rc) /* all or nothing, as for a single server */
        for (size_t i = 0; i < n; i++)
            agate_buf_free(&values[i]);
    split_free(&s);
    free(gkeys);
    free(gvals);
    return rc;
}

/* ---- Every member: size, clear ------------------------------------------- */

/* What one member contributes to an every-member call. */
typedef int (*member_fn)(agate_client *child, const char *region, uint64_t *v);

static int member_size(agate_client *child, const char *region, uint64_t *v)
{
    return agate_size(child, region, v);
}

static int member_clear(agate_client *child, const char *region, uint64_t *v)
{
    return agate_clear(child, region, v);
}

/* One round of fn over the map's members, adding into *sum. */
static int every_member_round(agate_client *c, member_fn fn, const char *region, uint64_t *sum,
                              int budget_ms)
{
    const cmap_t *map = c->router->map;
    for (size_t i = 0; i < map->nmembers; i++) {
        long j = router_member_of(c, map->members[i].id);
        if (j < 0)
            return client_err(c, AGATE_ENOMEM, "out of memory");
        agate_client *child;
        int rc = router_child(c, (size_t)j, true, &child);
        uint64_t v = 0;
        if (!rc) {
            child->request_timeout_ms = budget_ms;
            rc = router_pass(c, child, fn(child, region, &v));
            rc = router_member_rc(c, region, rc);
        }
        if (rc)
            return rc;
        *sum += v;
    }
    return 0;
}

/* fn on every member, retried as a whole after a member failure. With
 * accumulate, what earlier rounds counted is kept (clear: those entries
 * are gone); else each round starts from zero (size). */
static int every_member(agate_client *c, member_fn fn, const char *what, const char *region,
                        bool accumulate, uint64_t *out)
{
    int rc = client_check_blocking(c, what);
    if (!rc)
        rc = router_region_known(c, region);
    if (rc)
        return rc;
    uint64_t sum = 0;
    router_retry rt;
    router_retry_init(c, &rt);
    for (;;) {
        uint64_t round = 0;
        rc = every_member_round(c, fn, region, &round, router_retry_budget(c, &rt));
        if (accumulate || !rc)
            sum += round;
        if (!router_retryable(rc))
            break;
        rc = router_retry_next(c, &rt, rc);
        if (rc)
            break;
    }
    if (!rc && out)
        *out = sum;
    return rc;
}

int router_size(agate_client *c, const char *region, uint64_t *count)
{
    return every_member(c, member_size, "agate_size", region, false, count);
}

int router_clear(agate_client *c, const char *region, uint64_t *removed)
{
    return every_member(c, member_clear, "agate_clear", region, true, removed);
}

/* ---- Scans --------------------------------------------------------------- */

/* One page from member index idx of the map onwards: skips members whose
 * share is exhausted so that a page is empty only at the very end. */
static int scan_from(agate_client *c, bool values, const char *region, size_t idx,
                     uint64_t mcursor, uint32_t limit, agate_page *page, int budget_ms)
{
    const cmap_t *map = c->router->map;
    for (; idx < map->nmembers; idx++, mcursor = 0) {
        long j = router_member_of(c, map->members[idx].id);
        if (j < 0)
            return client_err(c, AGATE_ENOMEM, "out of memory");
        agate_client *child;
        int rc = router_child(c, (size_t)j, true, &child);
        if (!rc) {
            child->request_timeout_ms = budget_ms;
            rc = values ? agate_entries(child, region, mcursor, limit, page)
                        : agate_keys(child, region, mcursor, limit, page);
            rc = router_member_rc(c, region, router_pass(c, child, rc));
        }
        if (rc)
            return rc;
        uint64_t next = page->next_cursor;
        if (next & ~SCAN_CURSOR_MASK) {
            agate_page_free(page);
            return client_err(c, AGATE_EPROTO, "member %s returned a scan cursor above 2^48",
                              c->router->members[j].addr);
        }
        if (next) {
            page->next_cursor = (uint64_t)idx << SCAN_MEMBER_SHIFT | next;
            return 0;
        }
        if (page->n > 0) { /* this member is done: the next page starts the next one */
            page->next_cursor =
                idx + 1 < map->nmembers ? (uint64_t)(idx + 1) << SCAN_MEMBER_SHIFT : 0;
            return 0;
        }
        agate_page_free(page);
    }
    page->next_cursor = 0;
    return 0;
}

int router_scan(agate_client *c, bool values, const char *region, uint64_t cursor,
                uint32_t limit, agate_page *page)
{
    int rc = client_check_blocking(c, values ? "agate_entries" : "agate_keys");
    if (!rc)
        rc = router_region_known(c, region);
    if (rc)
        return rc;
    size_t idx = (size_t)(cursor >> SCAN_MEMBER_SHIFT);
    uint64_t mcursor = cursor & SCAN_CURSOR_MASK;
    router_retry rt;
    router_retry_init(c, &rt);
    for (;;) {
        rc = scan_from(c, values, region, idx, mcursor, limit, page, router_retry_budget(c, &rt));
        if (!router_retryable(rc))
            return rc;
        rc = router_retry_next(c, &rt, rc);
        if (rc)
            return rc;
    }
}

/* ---- Through the locator ------------------------------------------------- */

int router_admin(agate_client *c, const char *what, agate_client **out)
{
    int rc = client_check_blocking(c, what);
    if (rc)
        return rc;
    *out = c->router->admin;
    if ((*out)->nservers == 0)
        return client_err(c, AGATE_ECONNECT, "no locator known (the cluster map names none)");
    return 0;
}

int router_ping(agate_client *c)
{
    agate_client *admin;
    int rc = router_admin(c, "agate_ping", &admin);
    return rc ? rc : router_pass(c, admin, agate_ping(admin));
}

int router_server_info(agate_client *c, agate_buf *out)
{
    agate_client *admin;
    int rc = router_admin(c, "agate_server_info", &admin);
    return rc ? rc : router_pass(c, admin, agate_server_info(admin, out));
}

int router_region_create(agate_client *c, const agate_region_config *cfg)
{
    agate_client *admin;
    int rc = router_admin(c, "agate_region_create", &admin);
    if (!rc)
        rc = router_pass(c, admin, agate_region_create(admin, cfg));
    if (!rc)
        router_refresh(c, 0); /* learn its buckets now; else its first use will */
    return rc;
}

int router_region_destroy(agate_client *c, const char *name)
{
    agate_client *admin;
    int rc = router_admin(c, "agate_region_destroy", &admin);
    if (!rc)
        rc = router_pass(c, admin, agate_region_destroy(admin, name));
    if (!rc)
        router_refresh(c, 0);
    return rc;
}

int router_region_describe(agate_client *c, const char *name, agate_region_info **out)
{
    agate_client *admin;
    int rc = router_admin(c, "agate_region_describe", &admin);
    return rc ? rc : router_pass(c, admin, agate_region_describe(admin, name, out));
}

int router_region_list(agate_client *c, agate_region_info **out, size_t *n)
{
    agate_client *admin;
    int rc = router_admin(c, "agate_region_list", &admin);
    return rc ? rc : router_pass(c, admin, agate_region_list(admin, out, n));
}
