/* Rebalance on the locator (see locator_rebalance.h). */
#include "server/locator_rebalance.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "server/cluster.h"
#include "server/placement.h"
#include "server/rebalance_plan.h"
#include "server/request.h"

enum mv_state { MV_PENDING, MV_COPYING, MV_HANDING, MV_DONE, MV_SKIPPED };

typedef struct rb_name {
    uint32_t id;
    char name[CMAP_NAME_MAX + 1];
} rb_name;

typedef struct rb_run {
    bool running;
    bool simulate;
    rb_plan plan;
    uint8_t *state;   /* enum mv_state per move */
    uint8_t *attempts; /* handoffs tried per move */
    rb_name *names;    /* the planned members' names, for the status */
    size_t nnames;
    uint32_t finished, skipped;
    int64_t start_ms, end_ms;
} rb_run;

static void run_free(rb_run *rb)
{
    if (!rb)
        return;
    rebalance_plan_free(&rb->plan);
    free(rb->state);
    free(rb->attempts);
    free(rb->names);
    free(rb);
}

void locator_rebalance_free(locator *lc)
{
    run_free(lc->rb);
    lc->rb = NULL;
}

static bool eligible(const lmember *m) { return m && m->status == MS_UP && !m->leaving; }

/* Plans over the members that are up and staying. NULL if out of memory. */
static rb_run *run_new(locator *lc, bool simulate)
{
    rb_run *rb = calloc(1, sizeof(*rb));
    uint32_t ids[LOC_MAX_MEMBERS];
    if (!rb || !(rb->names = calloc(LOC_MAX_MEMBERS, sizeof(rb_name)))) {
        free(rb);
        return NULL;
    }
    for (size_t i = 0; i < lc->nmembers; i++) {
        const lmember *m = &lc->members[i];
        if (!eligible(m))
            continue;
        ids[rb->nnames] = m->id;
        rb->names[rb->nnames].id = m->id;
        memcpy(rb->names[rb->nnames].name, m->name, sizeof m->name);
        rb->nnames++;
    }
    rb->simulate = simulate;
    rb->start_ms = rb->end_ms = cluster_now_ms();
    if (rebalance_plan(lc->map, ids, rb->nnames, &rb->plan)) {
        run_free(rb);
        return NULL;
    }
    size_t n = rb->plan.nmoves ? rb->plan.nmoves : 1;
    rb->state = calloc(n, 1);
    rb->attempts = calloc(n, 1);
    if (!rb->state || !rb->attempts) {
        run_free(rb);
        return NULL;
    }
    rb->running = !simulate && rb->plan.nmoves > 0;
    return rb;
}

/* ---- changing a bucket's copies ---- */

static int copy_at(const cmap_bucket *b, uint32_t id)
{
    for (uint32_t i = 0; b && i < b->ncopies; i++)
        if (b->copies[i].member_id == id)
            return (int)i;
    return -1;
}

static bool add_init_copy(cmap_bucket *b, uint32_t id)
{
    cmap_copy *v = malloc((b->ncopies + 1) * sizeof(*v));
    if (!v)
        return false;
    memcpy(v, b->copies, b->ncopies * sizeof(*v));
    v[b->ncopies] = (cmap_copy){.member_id = id, .init = true};
    bool ok = cmap_bucket_set(b, v, b->ncopies + 1) == 0;
    free(v);
    return ok;
}

/* Drops member id's copy (never the primary's slot: callers check). */
static void drop_copy(cmap_bucket *b, uint32_t id)
{
    int at = copy_at(b, id);
    if (at <= 0)
        return;
    memmove(&b->copies[at], &b->copies[at + 1], (b->ncopies - (uint32_t)at - 1) * sizeof(cmap_copy));
    b->ncopies--;
}

/* ---- moving ---- */

/* Starts (or restarts) the handoff of mv's bucket; false when it has been
 * tried too often. -EBUSY (another handoff of it runs) is tried later. */
static bool try_handoff(locator *lc, rb_run *rb, size_t i)
{
    const rb_move *mv = &rb->plan.moves[i];
    if (rb->attempts[i] >= RB_HANDOFF_ATTEMPTS)
        return false;
    int rc = locator_handoff_start(lc, mv->region, mv->bucket, mv->from, mv->to);
    if (rc == 0)
        rb->attempts[i]++;
    return rc != -ENOENT;
}

/* One step of a bucket move; returns its new state. */
static enum mv_state step_bucket(locator *lc, rb_run *rb, size_t i, bool *changed)
{
    const rb_move *mv = &rb->plan.moves[i];
    cmap_bucket *b = locator_bucket(lc, mv->region, mv->bucket);
    int from = copy_at(b, mv->from), to = copy_at(b, mv->to);
    switch ((enum mv_state)rb->state[i]) {
    case MV_PENDING:
        if (from < 0 || to >= 0 || !eligible(locator_member(lc, mv->to)) ||
            !locator_member(lc, mv->from) || locator_handoff_pending(lc, mv->region, mv->bucket))
            return MV_SKIPPED;
        if (!add_init_copy(b, mv->to))
            return MV_SKIPPED;
        *changed = true;
        return MV_COPYING;
    case MV_COPYING:
        if (to < 0)
            return MV_SKIPPED; /* the new copy's member was lost */
        if (b->copies[to].init)
            return MV_COPYING;
        if (from < 0)
            return MV_DONE; /* the old member was lost meanwhile */
        if (from > 0) {
            drop_copy(b, mv->from);
            *changed = true;
            return MV_DONE;
        }
        return try_handoff(lc, rb, i) ? MV_HANDING : MV_SKIPPED;
    case MV_HANDING:
        if (from < 0)
            return MV_DONE;
        if (from > 0) {
            drop_copy(b, mv->from);
            *changed = true;
            return MV_DONE;
        }
        if (locator_handoff_pending(lc, mv->region, mv->bucket) || try_handoff(lc, rb, i))
            return MV_HANDING;
        /* the primary would not move: keep it, and take the new copy back */
        log_warn("rebalance: %s bucket %u: primary handoff failed %d times; leaving it", mv->region,
                 mv->bucket, RB_HANDOFF_ATTEMPTS);
        drop_copy(b, mv->to);
        *changed = true;
        return MV_SKIPPED;
    default:
        return (enum mv_state)rb->state[i];
    }
}

/* One step of a primary move; returns its new state. */
static enum mv_state step_primary(locator *lc, rb_run *rb, size_t i)
{
    const rb_move *mv = &rb->plan.moves[i];
    cmap_bucket *b = locator_bucket(lc, mv->region, mv->bucket);
    int from = copy_at(b, mv->from), to = copy_at(b, mv->to);
    switch ((enum mv_state)rb->state[i]) {
    case MV_PENDING:
        if (from != 0 || to <= 0 || b->copies[to].init || !eligible(locator_member(lc, mv->to)))
            return MV_SKIPPED;
        if (!try_handoff(lc, rb, i))
            return MV_SKIPPED;
        return rb->attempts[i] ? MV_HANDING : MV_PENDING;
    case MV_HANDING:
        if (to == 0)
            return MV_DONE;
        if (from != 0 || to < 0)
            return MV_SKIPPED;
        if (locator_handoff_pending(lc, mv->region, mv->bucket) || try_handoff(lc, rb, i))
            return MV_HANDING;
        log_warn("rebalance: %s bucket %u: primary handoff failed %d times; leaving it", mv->region,
                 mv->bucket, RB_HANDOFF_ATTEMPTS);
        return MV_SKIPPED;
    default:
        return (enum mv_state)rb->state[i];
    }
}

static void finish(locator *lc, rb_run *rb)
{
    rb->running = false;
    rb->end_ms = cluster_now_ms();
    /* what the members hold now, not what was planned */
    for (size_t r = 0; r < rb->plan.nregions; r++) {
        rb_region *pr = &rb->plan.regions[r];
        const cmap_region *mr = cmap_region_find(lc->map, pr->name, strlen(pr->name));
        for (size_t i = 0; mr && i < pr->ncounts; i++)
            placement_load(mr, pr->after[i].member_id, &pr->after[i].buckets, &pr->after[i].primaries);
    }
    log_info("rebalance done in %lld ms: %u of %zu moves made, %u skipped",
             (long long)(rb->end_ms - rb->start_ms), rb->finished - rb->skipped, rb->plan.nmoves,
             rb->skipped);
}

void locator_rebalance_step(locator *lc)
{
    rb_run *rb = lc->rb;
    if (!rb || !rb->running)
        return;
    bool changed = false, buckets_left = false;
    size_t active = 0;
    for (size_t i = 0; i < rb->plan.nmoves; i++) {
        enum mv_state st = (enum mv_state)rb->state[i];
        if (st == MV_DONE || st == MV_SKIPPED)
            continue;
        const rb_move *mv = &rb->plan.moves[i];
        bool bucket = mv->kind == RB_BUCKET_MOVE;
        if (!bucket && buckets_left)
            break; /* a primary move may need a copy a bucket move makes */
        if (st == MV_PENDING && active >= RB_MAX_ACTIVE) {
            buckets_left |= bucket;
            continue;
        }
        st = bucket ? step_bucket(lc, rb, i, &changed) : step_primary(lc, rb, i);
        rb->state[i] = (uint8_t)st;
        if (st == MV_DONE || st == MV_SKIPPED) {
            rb->finished++;
            rb->skipped += st == MV_SKIPPED;
            continue;
        }
        active++;
        buckets_left |= bucket;
    }
    if (changed)
        locator_publish(lc);
    if (rb->finished == rb->plan.nmoves)
        finish(lc, rb);
}

/* ---- requests ---- */

static const char *name_of(const rb_run *rb, uint32_t id)
{
    for (size_t i = 0; i < rb->nnames; i++)
        if (rb->names[i].id == id)
            return rb->names[i].name;
    return "?";
}

static void pack_counts(msgpack_packer *pk, const rb_run *rb, const rb_count *c, size_t n)
{
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_array(pk, 3);
        mpw_cstr(pk, name_of(rb, c[i].member_id));
        msgpack_pack_uint32(pk, c[i].buckets);
        msgpack_pack_uint32(pk, c[i].primaries);
    }
}

static void pack_run(msgpack_packer *pk, const rb_run *rb)
{
    msgpack_pack_map(pk, 9);
    mpw_kv_str(pk, "state", rb->running ? "running" : "done");
    mpw_kv_bool(pk, "simulate", rb->simulate);
    mpw_kv_uint(pk, "total", rb->plan.nmoves);
    mpw_kv_uint(pk, "done", rb->simulate ? rb->plan.nmoves : rb->finished);
    mpw_kv_uint(pk, "skipped", rb->skipped);
    mpw_kv_uint(pk, "bucket_moves", rb->plan.bucket_moves);
    mpw_kv_uint(pk, "primary_moves", rb->plan.primary_moves);
    int64_t end = rb->running ? cluster_now_ms() : rb->end_ms;
    mpw_kv_uint(pk, "elapsed_ms", (uint64_t)(end - rb->start_ms));
    mpw_cstr(pk, "regions");
    msgpack_pack_array(pk, (uint32_t)rb->plan.nregions);
    for (size_t r = 0; r < rb->plan.nregions; r++) {
        const rb_region *pr = &rb->plan.regions[r];
        msgpack_pack_map(pk, 5);
        mpw_kv_str(pk, "name", pr->name);
        mpw_kv_uint(pk, "bucket_moves", pr->bucket_moves);
        mpw_kv_uint(pk, "primary_moves", pr->primary_moves);
        mpw_cstr(pk, "before");
        pack_counts(pk, rb, pr->before, pr->ncounts);
        mpw_cstr(pk, "after");
        pack_counts(pk, rb, pr->after, pr->ncounts);
    }
}

void locator_rebalance_pack(locator *lc, msgpack_packer *pk)
{
    if (lc->rb) {
        pack_run(pk, lc->rb);
        return;
    }
    msgpack_pack_map(pk, 9);
    mpw_kv_str(pk, "state", "idle");
    mpw_kv_bool(pk, "simulate", false);
    mpw_kv_uint(pk, "total", 0);
    mpw_kv_uint(pk, "done", 0);
    mpw_kv_uint(pk, "skipped", 0);
    mpw_kv_uint(pk, "bucket_moves", 0);
    mpw_kv_uint(pk, "primary_moves", 0);
    mpw_kv_uint(pk, "elapsed_ms", 0);
    mpw_cstr(pk, "regions");
    msgpack_pack_array(pk, 0);
}

/* The options map {"simulate": bool}; -1 after replying an error. */
static int read_options(req_ctx *x, bool *simulate)
{
    *simulate = false;
    if (x->req->argc == 0)
        return 0;
    mp_cursor c;
    uint32_t n;
    arg_cursor(x, 0, &c);
    if (mp_read_nil(&c) == 0)
        return 0;
    if (mp_read_map(&c, &n))
        goto bad;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k;
        uint32_t kn;
        if (mp_read_str(&c, &k, &kn))
            goto bad;
        if (kn == 8 && !memcmp(k, "simulate", 8)) {
            if (mp_read_bool(&c, simulate))
                goto bad;
        } else {
            reply_error(x, ST_BAD_ARGUMENT, "REBALANCE: unknown option '%.*s' (known: simulate)",
                        (int)(kn > 64 ? 64 : kn), (const char *)k);
            return -1;
        }
    }
    return 0;
bad:
    reply_error(x, ST_BAD_ARGUMENT, "REBALANCE: options must be {\"simulate\": bool}");
    return -1;
}

void locator_rebalance_request(req_ctx *x)
{
    locator *lc = x->srv->locator;
    bool simulate;
    if (read_options(x, &simulate))
        return;
    if (lc->rb && lc->rb->running) { /* one at a time: report the one running */
        reply_head(x, ST_OK, 1);
        pack_run(&x->pk, lc->rb);
        reply_done(x);
        return;
    }
    rb_run *rb = run_new(lc, simulate);
    if (!rb) {
        reply_error(x, ST_NO_MEMORY, "out of memory");
        return;
    }
    if (simulate) {
        reply_head(x, ST_OK, 1);
        pack_run(&x->pk, rb);
        reply_done(x);
        run_free(rb);
        return;
    }
    log_info("rebalance started over %zu members: %u bucket moves, %u primary moves", rb->nnames,
             rb->plan.bucket_moves, rb->plan.primary_moves);
    locator_rebalance_free(lc);
    lc->rb = rb;
    locator_rebalance_step(lc);
    reply_head(x, ST_OK, 1);
    pack_run(&x->pk, rb);
    reply_done(x);
}

void locator_rebalance_status(req_ctx *x)
{
    reply_head(x, ST_OK, 1);
    locator_rebalance_pack(x->srv->locator, &x->pk);
    reply_done(x);
}
