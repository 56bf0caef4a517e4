/* The locator (see locator.h). */
#include "server/locator.h"
#include "server/locator_impl.h"
#include "server/locator_rebalance.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cmap.h"
#include "common/frame.h"
#include "common/log.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "server/cluster.h"
#include "server/conn.h"
#include "server/handlers.h"
#include "server/link.h"
#include "server/placement.h"
#include "server/worker.h"

/* The process's locator, for link callbacks that carry only a member id. */
static locator *g_locator;

static locator *L(req_ctx *x) { return x->srv->locator; }

/* ---- persistence of region definitions ---- */

static void save_regions(locator *lc)
{
    char tmp[PATH_MAX + 40];
    snprintf(tmp, sizeof tmp, "%s.tmp", lc->regions_path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        log_error("cannot write %s: %s", tmp, strerror(errno));
        return;
    }
    fprintf(f, "# agate cluster region definitions: name type redundant_copies total_num_buckets\n");
    for (size_t i = 0; i < lc->map->nregions; i++) {
        const cmap_region *r = &lc->map->regions[i];
        fprintf(f, "%s %s %u %u\n", r->name, r->type, r->redundant_copies, r->nbuckets);
    }
    locator_index_save(f, lc->map); /* after the regions they belong to */
    if (fflush(f) || fsync(fileno(f)) || fclose(f) || rename(tmp, lc->regions_path))
        log_error("cannot save %s: %s", lc->regions_path, strerror(errno));
}

void locator_save_definitions(locator *lc) { save_regions(lc); }

static void load_regions(locator *lc)
{
    FILE *f = fopen(lc->regions_path, "r");
    if (!f)
        return;
    char line[CMAP_INDEX_EXPR_MAX + 512], name[CMAP_NAME_MAX + 1], type[CMAP_TYPE_MAX + 1];
    unsigned red, nb;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || locator_index_load(lc->map, line))
            continue;
        if (sscanf(line, "%128s %40s %u %u", name, type, &red, &nb) == 4 && nb > 0 &&
            nb <= AGATE_MAX_BUCKETS && red <= AGATE_MAX_REDUNDANT_COPIES)
            cmap_region_add(lc->map, name, type, red, nb);
    }
    fclose(f);
    log_info("loaded %zu region definitions from %s", lc->map->nregions, lc->regions_path);
}

/* ---- members ---- */

lmember *locator_member(locator *lc, uint32_t id)
{
    for (size_t i = 0; i < lc->nmembers; i++)
        if (lc->members[i].id == id)
            return &lc->members[i];
    return NULL;
}

static lmember *member_by_name(locator *lc, const uint8_t *name, size_t n)
{
    for (size_t i = 0; i < lc->nmembers; i++)
        if (strlen(lc->members[i].name) == n && !memcmp(lc->members[i].name, name, n))
            return &lc->members[i];
    return NULL;
}

/* Sends a push frame [2, 0, kind, payload...] to conn. */
static void push(locator *lc, conn_t *c, uint32_t kind, const uint8_t *items, size_t len,
                 uint32_t nitems)
{
    (void)lc;
    if (!c || c->dead)
        return;
    msgpack_packer pk;
    msgpack_packer_init(&pk, c, conn_pack_write);
    size_t off = frame_begin(&c->out);
    if (off == (size_t)-1)
        return;
    msgpack_pack_array(&pk, 3 + nitems);
    msgpack_pack_uint32(&pk, MSG_PUSH);
    msgpack_pack_uint32(&pk, 0);
    msgpack_pack_uint32(&pk, kind);
    mpw_raw(&pk, items, len);
    if (frame_end(&c->out, off))
        c->out_failed = true;
    conn_kick(c);
}

/* The map changed: new version, pushed to every member and watcher. */
void locator_publish(locator *lc)
{
    lc->map->version++;
    atomic_store(&lc->srv->metadata_version, lc->map->version);
    buf_t b = {0};
    msgpack_packer pk;
    mpw_init(&pk, &b);
    if (cmap_encode(lc->map, &pk) == 0) {
        for (size_t i = 0; i < lc->nmembers; i++)
            push(lc, lc->members[i].conn, PUSH_MAP, buf_rptr(&b), buf_readable(&b), 1);
        for (size_t i = 0; i < lc->nwatchers; i++)
            push(lc, lc->watchers[i], PUSH_MAP, buf_rptr(&b), buf_readable(&b), 1);
    }
    buf_free(&b);
}

static void on_member_conn_close(conn_t *c, void *arg)
{
    locator *lc = arg;
    for (size_t i = 0; i < lc->nmembers; i++)
        if (lc->members[i].conn == c)
            lc->members[i].conn = NULL;
    for (size_t i = 0; i < lc->nwatchers; i++)
        if (lc->watchers[i] == c)
            lc->watchers[i--] = lc->watchers[--lc->nwatchers];
}

static void member_forget(locator *lc, lmember *m)
{
    link_t *chk = m->check;
    m->check = NULL; /* its callback, run by link_free, must see it cancelled */
    link_free(chk);
    free(m->stats);
    if (m->conn) {
        m->conn->on_close = NULL;
        conn_t *c = m->conn;
        m->conn = NULL;
        c->close_after_flush = true;
        conn_kick(c);
    }
    *m = lc->members[--lc->nmembers];
}

static void fix_and_publish(locator *lc, bool add_copies)
{
    placement_report rep = {0};
    placement_fix(lc->map, add_copies, &rep);
    if (rep.promoted || rep.added || rep.lost || rep.dropped)
        log_info("placement: %u primaries promoted, %u copies added, %u copies dropped, %u "
                 "buckets lost", rep.promoted, rep.added, rep.dropped, rep.lost);
    locator_publish(lc);
}

/* Takes a member out of the view (crash, or a finished leave). */
static void member_remove(locator *lc, lmember *m, const char *why)
{
    log_warn("removing member %s (id %u) from the view: %s", m->name, m->id, why);
    cmap_member_remove(lc->map, m->id);
    lc->map->view_id++;
    member_forget(lc, m);
    int delay = lc->srv->cfg.recovery_delay_ms;
    bool now = delay == 0;
    if (delay > 0)
        lc->recover_at_ms = cluster_now_ms() + delay;
    fix_and_publish(lc, now);
}

static void on_check_reply(link_t *l, const msg_response *r, void *arg);

/* A silent member is checked directly before it is removed. */
static void start_check(locator *lc, lmember *m)
{
    m->check = link_new(lc->w->base, m->host, m->port, "locator check",
                        lc->srv->cfg.member_timeout_ms / 2, NULL);
    uint32_t *id = malloc(sizeof *id);
    if (!m->check || !id || link_connect(m->check) ||
        link_request(m->check, OP_PING, NULL, 0, 0, on_check_reply, id)) {
        free(id);
        member_remove(lc, m, "unreachable");
        return;
    }
    *id = m->id;
}

static void on_check_reply(link_t *l, const msg_response *r, void *arg)
{
    uint32_t id = *(uint32_t *)arg;
    free(arg);
    locator *lc = g_locator;
    lmember *m = locator_member(lc, id);
    if (!m || m->check != l)
        return; /* cancelled: a heartbeat came meanwhile, or the member went */
    if (r && r->status == ST_OK) {
        log_info("member %s answered its check: slow, not gone; keeping it", m->name);
        m->status = MS_UP;
        m->last_hb_ms = cluster_now_ms();
    } else {
        member_remove(lc, m, "missed heartbeats for member-timeout and failed its check");
        return;
    }
    link_t *chk = m->check;
    m->check = NULL;
    link_free(chk);
}

/* ---- handoffs and leaves ---- */

cmap_bucket *locator_bucket(locator *lc, const char *region, uint32_t b)
{
    cmap_region *r = cmap_region_find(lc->map, region, strlen(region));
    return r && b < r->nbuckets ? &r->buckets[b] : NULL;
}

static void send_handoff(locator *lc, const handoff_op *h)
{
    lmember *m = locator_member(lc, h->from);
    if (!m)
        return;
    buf_t b = {0};
    msgpack_packer pk;
    mpw_init(&pk, &b);
    mpw_cstr(&pk, h->region);
    msgpack_pack_uint32(&pk, h->bucket);
    push(lc, m->conn, PUSH_HANDOFF, buf_rptr(&b), buf_readable(&b), 2);
    buf_free(&b);
}

bool locator_handoff_pending(locator *lc, const char *region, uint32_t bucket)
{
    for (size_t i = 0; i < lc->nhandoffs; i++)
        if (lc->handoffs[i].bucket == bucket && !strcmp(lc->handoffs[i].region, region))
            return true;
    return false;
}

int locator_handoff_start(locator *lc, const char *region, uint32_t bucket, uint32_t from,
                          uint32_t to)
{
    if (!locator_member(lc, from) || !locator_member(lc, to))
        return -ENOENT;
    if (locator_handoff_pending(lc, region, bucket) ||
        lc->nhandoffs == sizeof lc->handoffs / sizeof lc->handoffs[0])
        return -EBUSY;
    handoff_op *h = &lc->handoffs[lc->nhandoffs++];
    snprintf(h->region, sizeof h->region, "%s", region);
    h->bucket = bucket;
    h->from = from;
    h->to = to;
    h->deadline = cluster_now_ms() + LOC_HANDOFF_MAX_MS;
    send_handoff(lc, h);
    return 0;
}

static void start_handoffs_for(locator *lc, lmember *m)
{
    for (size_t i = 0; i < lc->map->nregions; i++) {
        cmap_region *r = &lc->map->regions[i];
        for (uint32_t b = 0; b < r->nbuckets; b++) {
            cmap_bucket *bk = &r->buckets[b];
            if (!bk->ncopies || bk->copies[0].member_id != m->id)
                continue;
            uint32_t to = 0;
            for (uint32_t c = 1; c < bk->ncopies && !to; c++)
                if (!bk->copies[c].init)
                    to = bk->copies[c].member_id;
            if (to) /* else no ready copy elsewhere: the bucket goes with the member */
                locator_handoff_start(lc, r->name, b, m->id, to);
        }
    }
}

static bool has_primaries(locator *lc, uint32_t id)
{
    for (size_t i = 0; i < lc->map->nregions; i++) {
        const cmap_region *r = &lc->map->regions[i];
        for (uint32_t b = 0; b < r->nbuckets; b++)
            if (cmap_primary(r, b) == id)
                return true;
    }
    return false;
}

static void reply_late(locator *lc, conn_t *c, uint64_t id, int status)
{
    if (!c)
        return;
    if (!c->dead) {
        msg_request req = {.id = id};
        req_ctx x = {.conn = c, .w = lc->w, .srv = lc->srv, .req = &req};
        msgpack_packer_init(&x.pk, c, conn_pack_write);
        reply_status(&x, status);
        conn_kick(c);
    }
    conn_wait_done(c);
}

/* Whether member id is primary of a bucket that has a ready copy
 * elsewhere (a handoff can move it). */
static bool primaries_movable(locator *lc, uint32_t id)
{
    for (size_t i = 0; i < lc->map->nregions; i++) {
        const cmap_region *r = &lc->map->regions[i];
        for (uint32_t b = 0; b < r->nbuckets; b++) {
            const cmap_bucket *bk = &r->buckets[b];
            if (!bk->ncopies || bk->copies[0].member_id != id)
                continue;
            for (uint32_t c = 1; c < bk->ncopies; c++)
                if (!bk->copies[c].init)
                    return true;
        }
    }
    return false;
}

/* Moves leaving members' work forward, and lets each go once nothing it
 * holds depends on it: every bucket it alone held has a ready copy
 * elsewhere, and its primaries were handed over (or the deadline passed). */
static void finish_leaves(locator *lc)
{
    int64_t now = cluster_now_ms();
    for (size_t i = 0; i < lc->nmembers; i++) {
        lmember *m = &lc->members[i];
        if (!m->leaving)
            continue;
        uint32_t waiting;
        if (placement_cover_leaving(lc->map, m->id, &waiting))
            locator_publish(lc);
        start_handoffs_for(lc, m);
        bool handing = false;
        for (size_t k = 0; k < lc->nhandoffs; k++)
            handing |= lc->handoffs[k].from == m->id;
        if ((handing || waiting || primaries_movable(lc, m->id)) && now < m->leave_deadline)
            continue;
        conn_t *c = m->leave_conn;
        uint64_t rid = m->leave_req;
        m->leave_conn = NULL;
        if (has_primaries(lc, m->id))
            log_warn("member %s leaves with buckets no other member could take in time: "
                     "their data goes with it", m->name);
        else
            log_info("member %s leaves; every bucket it held has a ready copy elsewhere", m->name);
        member_remove(lc, m, "it is stopping");
        reply_late(lc, c, rid, ST_OK);
        i--;
    }
}

/* ---- the tick: failure detection, handoff deadlines, recovery ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    locator *lc = arg;
    worker_enter(lc->w);
    int64_t now = cluster_now_ms();
    int timeout = lc->srv->cfg.member_timeout_ms;
    /* The locator itself was paused (stopped, swapped out, a VM freeze):
     * it heard nothing meanwhile, which says nothing about the members.
     * Their silence counts from now; heartbeats already waiting in the
     * sockets are read next. */
    int64_t stalled = lc->last_tick_ms ? now - lc->last_tick_ms - LOC_TICK_MS : 0;
    if (stalled > LOC_TICK_MS) {
        log_warn("the locator did not run for %lld ms; member silence counts from now",
                 (long long)stalled);
        for (size_t i = 0; i < lc->nmembers; i++)
            if (lc->members[i].last_hb_ms < now)
                lc->members[i].last_hb_ms += stalled;
    }
    lc->last_tick_ms = now;
    for (size_t i = 0; i < lc->nmembers; i++) {
        lmember *m = &lc->members[i];
        if (m->status == MS_UP && now - m->last_hb_ms > timeout) {
            log_warn("member %s silent for %lld ms: suspect; checking it", m->name,
                     (long long)(now - m->last_hb_ms));
            m->status = MS_SUSPECT;
            size_t before = lc->nmembers;
            start_check(lc, m);
            if (lc->nmembers < before)
                i--;
        }
    }
    for (size_t i = 0; i < lc->nhandoffs; i++)
        if (now > lc->handoffs[i].deadline) {
            log_warn("handoff of %s bucket %u timed out", lc->handoffs[i].region,
                     lc->handoffs[i].bucket);
            lc->handoffs[i--] = lc->handoffs[--lc->nhandoffs];
        }
    finish_leaves(lc);
    if (lc->recover_at_ms && now >= lc->recover_at_ms) {
        lc->recover_at_ms = 0;
        fix_and_publish(lc, true);
    }
    locator_rebalance_step(lc);
    worker_leave(lc->w);
}

/* ---- requests ---- */

static void reply_map(req_ctx *x)
{
    reply_head(x, ST_OK, 1);
    cmap_encode(L(x)->map, &x->pk);
    reply_done(x);
}

static void loc_cluster_map(req_ctx *x) { reply_map(x); }

static void loc_watch_map(req_ctx *x)
{
    locator *lc = L(x);
    if (lc->nwatchers == sizeof lc->watchers / sizeof lc->watchers[0]) {
        reply_error(x, ST_UNAVAILABLE, "too many watchers");
        return;
    }
    lc->watchers[lc->nwatchers++] = x->conn;
    x->conn->on_close = on_member_conn_close;
    x->conn->on_close_arg = lc;
    reply_map(x);
}

static int read_join(req_ctx *x, lmember *m, const uint8_t **map, size_t *map_len)
{
    mp_cursor c;
    uint32_t n;
    arg_cursor(x, 0, &c);
    if (mp_read_map(&c, &n))
        return -1;
    *map = NULL;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k, *s;
        uint32_t kn, sn;
        uint64_t u;
        if (mp_read_str(&c, &k, &kn))
            return -1;
        if (kn == 3 && !memcmp(k, "map", 3)) {
            *map = c.p;
            if (mp_read_nil(&c) == 0) { /* a process that holds no map */
                *map = NULL;
                continue;
            }
            if (mp_skip(&c, -1))
                return -1;
            *map_len = (size_t)(c.p - *map);
        } else if ((kn == 4 && (!memcmp(k, "name", 4) || !memcmp(k, "host", 4))) ||
                   (kn == 3 && !memcmp(k, "dir", 3))) {
            char *dst = k[0] == 'n' ? m->name : k[0] == 'h' ? m->host : m->dir;
            size_t cap = k[0] == 'n' ? sizeof m->name : k[0] == 'h' ? sizeof m->host : sizeof m->dir;
            if (mp_read_str(&c, &s, &sn) || sn >= cap)
                return -1;
            memcpy(dst, s, sn);
            dst[sn] = 0;
        } else if (mp_read_uint(&c, &u)) {
            return -1;
        } else if (kn == 9 && !memcmp(k, "member_id", 9)) {
            m->id = (uint32_t)u;
        } else if (kn == 4 && !memcmp(k, "port", 4)) {
            m->port = (uint16_t)u;
        } else if (kn == 3 && !memcmp(k, "pid", 3)) {
            m->pid = u;
        }
    }
    return m->id && m->port && m->name[0] && m->host[0] ? 0 : -1;
}

/* A fresh locator adopts the newest map its returning members report. */
static void maybe_adopt(locator *lc, const uint8_t *p, size_t n)
{
    cmap_t *m;
    if (!p || lc->map->version > 0 || lc->nmembers > 0 || cmap_decode(p, n, &m))
        return;
    if (m->version == 0) {
        cmap_free(m);
        return;
    }
    /* region definitions on disk win; the members' buckets carry over */
    for (size_t i = 0; i < lc->map->nregions; i++)
        if (!cmap_region_find(m, lc->map->regions[i].name, strlen(lc->map->regions[i].name)))
            cmap_region_add(m, lc->map->regions[i].name, lc->map->regions[i].type,
                            lc->map->regions[i].redundant_copies, lc->map->regions[i].nbuckets);
    m->nlocators = 0;
    for (size_t i = 0; i < lc->map->nlocators; i++)
        cmap_locator_add(m, lc->map->locators[i]);
    cmap_free(lc->map);
    lc->map = m;
    int64_t now = cluster_now_ms();
    for (size_t i = 0; i < m->nmembers && lc->nmembers < LOC_MAX_MEMBERS; i++) {
        lmember *lm = &lc->members[lc->nmembers++];
        memset(lm, 0, sizeof *lm);
        lm->id = m->members[i].id;
        snprintf(lm->name, sizeof lm->name, "%s", m->members[i].name);
        snprintf(lm->host, sizeof lm->host, "%s", m->members[i].host);
        lm->port = m->members[i].port;
        lm->last_hb_ms = now; /* a member-timeout to come back */
        lm->joined_view = m->view_id;
    }
    log_info("adopted the cluster map version %llu from a returning member (%zu members)",
             (unsigned long long)m->version, m->nmembers);
}

static void loc_join(req_ctx *x)
{
    locator *lc = L(x);
    lmember in = {0};
    const uint8_t *map = NULL;
    size_t map_len = 0;
    if (read_join(x, &in, &map, &map_len)) {
        reply_error(x, ST_BAD_REQUEST, "JOIN: expected {name, member_id, host, port, pid, dir, map}");
        return;
    }
    if (!map && lc->map->version == 0 && cluster_now_ms() < lc->adopt_until_ms) {
        /* a member that still holds the map (and data) may be on its way:
         * building a new map first would give its buckets to others */
        reply_error(x, ST_UNAVAILABLE, "the locator restarted and waits up to %d ms for members "
                    "holding the cluster map; retry", lc->srv->cfg.member_timeout_ms);
        return;
    }
    maybe_adopt(lc, map, map_len);
    lmember *m = locator_member(lc, in.id);
    if (m && !map && cmap_member_find(lc->map, in.id)) {
        /* the process restarted: its buckets are empty now, so it must not
         * get them back as if it had only reconnected */
        if (m->conn == x->conn)
            m->conn = NULL; /* keep this connection: the new process uses it */
        member_remove(lc, m, "it restarted without its data");
        m = NULL;
    }
    bool fresh = m == NULL;
    if (fresh) {
        if (lc->nmembers == LOC_MAX_MEMBERS) {
            reply_error(x, ST_UNAVAILABLE, "the cluster has its maximum of %d members", LOC_MAX_MEMBERS);
            return;
        }
        if (member_by_name(lc, (const uint8_t *)in.name, strlen(in.name))) {
            reply_error(x, ST_BAD_ARGUMENT, "JOIN: a member named %s is already in the cluster", in.name);
            return;
        }
        m = &lc->members[lc->nmembers++];
        *m = in;
    } else {
        if (m->conn && m->conn != x->conn)
            m->conn->on_close = NULL;
        snprintf(m->dir, sizeof m->dir, "%s", in.dir);
        m->pid = in.pid;
    }
    m->conn = x->conn;
    m->last_hb_ms = cluster_now_ms();
    m->status = MS_UP;
    x->conn->on_close = on_member_conn_close;
    x->conn->on_close_arg = lc;
    cmap_member cm = {.id = m->id, .port = m->port};
    snprintf(cm.name, sizeof cm.name, "%s", m->name);
    snprintf(cm.host, sizeof cm.host, "%s", m->host);
    if (!cmap_member_find(lc->map, m->id)) {
        cmap_member_add(lc->map, &cm);
        lc->map->view_id++;
        m->joined_view = lc->map->view_id;
        log_info("member %s (id %u) at %s:%u joined; view %llu", m->name, m->id, m->host, m->port,
                 (unsigned long long)lc->map->view_id);
        placement_fix(lc->map, true, NULL); /* a join fills missing copies at once */
        locator_publish(lc);
    }
    reply_map(x);
}

static void loc_heartbeat(req_ctx *x)
{
    locator *lc = L(x);
    uint64_t id, version;
    if (arg_uint(x, 0, &id) || arg_uint(x, 1, &version))
        return;
    lmember *m = id <= UINT32_MAX ? locator_member(lc, (uint32_t)id) : NULL;
    if (!m || !cmap_member_find(lc->map, (uint32_t)id)) {
        reply_error(x, ST_BAD_ARGUMENT, "member %llu is not in the view; join again",
                    (unsigned long long)id);
        return;
    }
    m->last_hb_ms = cluster_now_ms();
    if (m->status == MS_SUSPECT) {
        m->status = MS_UP;
        link_t *chk = m->check;
        m->check = NULL;
        link_free(chk);
    }
    if (m->conn != x->conn) {
        m->conn = x->conn;
        x->conn->on_close = on_member_conn_close;
        x->conn->on_close_arg = lc;
    }
    free(m->stats);
    m->stats_len = x->req->arg[2].n;
    m->stats = malloc(m->stats_len);
    if (m->stats)
        memcpy(m->stats, x->req->arg[2].p, m->stats_len);
    reply_head(x, ST_OK, 1);
    msgpack_pack_uint64(&x->pk, lc->map->version);
    reply_done(x);
    if (version < lc->map->version) { /* it missed a push: send the map again */
        buf_t b = {0};
        msgpack_packer pk;
        mpw_init(&pk, &b);
        if (cmap_encode(lc->map, &pk) == 0)
            push(lc, m->conn, PUSH_MAP, buf_rptr(&b), buf_readable(&b), 1);
        buf_free(&b);
    }
}

static int arg_member_region_bucket(req_ctx *x, uint64_t *id, char *region, uint64_t *bucket)
{
    const uint8_t *p;
    uint32_t n;
    if (arg_uint(x, 0, id) || arg_str(x, 1, &p, &n) || arg_uint(x, 2, bucket))
        return -1;
    if (n > CMAP_NAME_MAX) {
        reply_error(x, ST_BAD_ARGUMENT, "bad region name");
        return -1;
    }
    memcpy(region, p, n);
    region[n] = 0;
    return 0;
}

static void loc_bucket_ready(req_ctx *x)
{
    locator *lc = L(x);
    uint64_t id, bucket;
    char region[CMAP_NAME_MAX + 1];
    if (arg_member_region_bucket(x, &id, region, &bucket))
        return;
    cmap_bucket *b = locator_bucket(lc, region, (uint32_t)bucket);
    bool changed = false;
    for (uint32_t i = 0; b && i < b->ncopies; i++)
        if (b->copies[i].member_id == id && b->copies[i].init) {
            b->copies[i].init = false;
            changed = true;
        }
    reply_status(x, ST_OK);
    if (changed)
        locator_publish(lc);
    locator_rebalance_step(lc);
    finish_leaves(lc);
}

static void loc_handoff_done(req_ctx *x)
{
    locator *lc = L(x);
    uint64_t id, bucket;
    char region[CMAP_NAME_MAX + 1];
    if (arg_member_region_bucket(x, &id, region, &bucket))
        return;
    reply_status(x, ST_OK);
    for (size_t i = 0; i < lc->nhandoffs; i++) {
        handoff_op *h = &lc->handoffs[i];
        if (h->bucket != bucket || h->from != id || strcmp(h->region, region))
            continue;
        cmap_bucket *b = locator_bucket(lc, region, (uint32_t)bucket);
        for (uint32_t c = 1; b && c < b->ncopies; c++) {
            if (b->copies[c].member_id != h->to || b->copies[c].init)
                continue;
            cmap_copy tmp = b->copies[0];
            b->copies[0] = b->copies[c];
            b->copies[c] = tmp;
            b->term++;
            break;
        }
        lc->handoffs[i] = lc->handoffs[--lc->nhandoffs];
        locator_publish(lc);
        locator_rebalance_step(lc);
        finish_leaves(lc);
        return;
    }
}

static void loc_leave(req_ctx *x)
{
    locator *lc = L(x);
    uint64_t id;
    if (arg_uint(x, 0, &id))
        return;
    lmember *m = id <= UINT32_MAX ? locator_member(lc, (uint32_t)id) : NULL;
    if (!m) {
        reply_status(x, ST_OK);
        return;
    }
    log_info("member %s is leaving: copying what only it holds and moving its primaries",
             m->name);
    m->leaving = true;
    m->leave_conn = x->conn;
    m->leave_req = x->req->id;
    m->leave_deadline = cluster_now_ms() + LOC_LEAVE_MAX_MS;
    x->conn->waits++;
    finish_leaves(lc);
}

/* ---- regions ---- */

static void loc_region_create(req_ctx *x)
{
    locator *lc = L(x);
    region_config cfg;
    bool if_not_exists;
    if (region_create_args(x, &cfg, &if_not_exists))
        return;
    cmap_region *r = cmap_region_find(lc->map, cfg.name, strlen(cfg.name));
    if (r) {
        if (if_not_exists && !strcmp(r->type, region_type_name(cfg.type))) {
            reply_status(x, ST_OK);
            return;
        }
        reply_error(x, ST_REGION_EXISTS, "region '%s' already exists (type %s)", cfg.name, r->type);
        return;
    }
    if (cmap_region_add(lc->map, cfg.name, region_type_name(cfg.type), cfg.redundant_copies,
                        cfg.total_num_buckets)) {
        reply_error(x, ST_NO_MEMORY, "out of memory");
        return;
    }
    save_regions(lc);
    log_info("created region %s type=%s redundant-copies=%u total-num-buckets=%u across %zu "
             "members", cfg.name, region_type_name(cfg.type), cfg.redundant_copies,
             cfg.total_num_buckets, lc->map->nmembers);
    fix_and_publish(lc, true);
    reply_status(x, ST_OK);
}

static void loc_region_destroy(req_ctx *x)
{
    locator *lc = L(x);
    const uint8_t *p;
    uint32_t n;
    if (arg_str(x, 0, &p, &n))
        return;
    size_t len = n;
    char name[CMAP_NAME_MAX + 1];
    if (region_name_check(&p, &len) || len > CMAP_NAME_MAX) {
        reply_error(x, ST_BAD_ARGUMENT, "REGION_DESTROY: invalid region name");
        return;
    }
    memcpy(name, p, len);
    name[len] = 0;
    if (cmap_region_remove(lc->map, name)) {
        reply_error(x, ST_UNKNOWN_REGION, "region '%s' not found", name);
        return;
    }
    save_regions(lc);
    log_info("destroyed region %s", name);
    locator_publish(lc);
    reply_status(x, ST_OK);
}

/* Per-member figures of one region from the members' last heartbeats. */
static void member_region_stats(const lmember *m, const char *region, uint64_t out[4])
{
    memset(out, 0, 4 * sizeof(uint64_t));
    if (!m->stats)
        return;
    mp_cursor c;
    uint32_t n, k;
    mp_cursor_init(&c, m->stats, m->stats_len);
    if (mp_read_array(&c, &n))
        return;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p;
        uint32_t pn;
        uint64_t v[4];
        if (mp_read_array(&c, &k) || (k != 5 && k != 6) || mp_read_str(&c, &p, &pn) ||
            mp_read_uint(&c, &v[0]) || mp_read_uint(&c, &v[1]) || mp_read_uint(&c, &v[2]) ||
            mp_read_uint(&c, &v[3]) || (k == 6 && mp_skip(&c, 8))) /* 6th: index stats */
            return;
        if (pn == strlen(region) && !memcmp(p, region, pn)) {
            memcpy(out, v, sizeof v);
            return;
        }
    }
}

static void pack_region(req_ctx *x, const cmap_region *r)
{
    locator *lc = L(x);
    msgpack_packer *pk = &x->pk;
    region_type t = REGION_PARTITION;
    region_type_parse(r->type, strlen(r->type), &t);
    uint64_t entries = 0, bytes = 0;
    for (size_t i = 0; i < lc->nmembers; i++) {
        uint64_t s[4];
        member_region_stats(&lc->members[i], r->name, s);
        entries += s[2];
        bytes += s[3];
    }
    msgpack_pack_map(pk, 9);
    mpw_kv_str(pk, "name", r->name);
    mpw_kv_str(pk, "type", r->type);
    mpw_kv_uint(pk, "redundant_copies", r->redundant_copies);
    mpw_kv_uint(pk, "total_num_buckets", r->nbuckets);
    mpw_kv_bool(pk, "partitioned", region_type_partitioned(t));
    mpw_kv_bool(pk, "persistent", region_type_persistent(t));
    mpw_kv_uint(pk, "entries", entries);
    mpw_kv_uint(pk, "bytes", bytes);
    mpw_cstr(pk, "members");
    msgpack_pack_array(pk, (uint32_t)lc->map->nmembers);
    for (size_t i = 0; i < lc->map->nmembers; i++) {
        const cmap_member *cm = &lc->map->members[i];
        const lmember *m = locator_member(lc, cm->id);
        uint32_t nb, np;
        uint64_t s[4] = {0};
        placement_load(r, cm->id, &nb, &np);
        if (m)
            member_region_stats(m, r->name, s);
        msgpack_pack_map(pk, 5);
        mpw_kv_str(pk, "member", cm->name);
        mpw_kv_uint(pk, "member_id", cm->id);
        mpw_kv_uint(pk, "buckets", nb);
        mpw_kv_uint(pk, "primary_buckets", np);
        mpw_kv_uint(pk, "entries", s[2]);
    }
}

static void loc_region_list(req_ctx *x)
{
    locator *lc = L(x);
    reply_head(x, ST_OK, 1);
    msgpack_pack_array(&x->pk, (uint32_t)lc->map->nregions);
    for (size_t i = 0; i < lc->map->nregions; i++)
        pack_region(x, &lc->map->regions[i]);
    reply_done(x);
}

static void loc_region_describe(req_ctx *x)
{
    const uint8_t *p;
    uint32_t n;
    if (arg_str(x, 0, &p, &n))
        return;
    size_t len = n;
    if (region_name_check(&p, &len)) {
        reply_error(x, ST_BAD_ARGUMENT, "invalid region name");
        return;
    }
    const cmap_region *r = cmap_region_find(L(x)->map, (const char *)p, len);
    if (!r) {
        reply_error(x, ST_UNKNOWN_REGION, "region '%.*s' not found", (int)len, p);
        return;
    }
    reply_head(x, ST_OK, 1);
    pack_region(x, r);
    reply_done(x);
}

/* ---- members and status ---- */

static void pack_member(req_ctx *x, const lmember *m)
{
    locator *lc = L(x);
    msgpack_packer *pk = &x->pk;
    uint64_t tb = 0, tp = 0, te = 0, tby = 0;
    for (size_t i = 0; i < lc->map->nregions; i++) {
        uint32_t nb, np;
        uint64_t s[4];
        placement_load(&lc->map->regions[i], m->id, &nb, &np);
        member_region_stats(m, lc->map->regions[i].name, s);
        tb += nb;
        tp += np;
        te += s[2];
        tby += s[3];
    }
    msgpack_pack_map(pk, 15);
    mpw_kv_str(pk, "name", m->name);
    mpw_kv_uint(pk, "member_id", m->id);
    mpw_kv_str(pk, "role", "server");
    mpw_kv_str(pk, "host", m->host);
    mpw_kv_uint(pk, "port", m->port);
    mpw_kv_uint(pk, "pid", m->pid);
    mpw_kv_str(pk, "dir", m->dir);
    mpw_kv_str(pk, "status", m->leaving ? "leaving" : m->status == MS_SUSPECT ? "suspect" : "up");
    mpw_kv_uint(pk, "joined_view", m->joined_view);
    int64_t age = cluster_now_ms() - m->last_hb_ms;
    mpw_kv_uint(pk, "heartbeat_age_ms", age < 0 ? 0 : (uint64_t)age);
    mpw_kv_uint(pk, "buckets", tb);
    mpw_kv_uint(pk, "primary_buckets", tp);
    mpw_kv_uint(pk, "entries", te);
    mpw_kv_uint(pk, "bytes", tby);
    mpw_cstr(pk, "regions");
    msgpack_pack_array(pk, (uint32_t)lc->map->nregions);
    for (size_t i = 0; i < lc->map->nregions; i++) {
        uint32_t nb, np;
        uint64_t s[4];
        placement_load(&lc->map->regions[i], m->id, &nb, &np);
        member_region_stats(m, lc->map->regions[i].name, s);
        msgpack_pack_map(pk, 5);
        mpw_kv_str(pk, "name", lc->map->regions[i].name);
        mpw_kv_uint(pk, "buckets", nb);
        mpw_kv_uint(pk, "primary_buckets", np);
        mpw_kv_uint(pk, "entries", s[2]);
        mpw_kv_uint(pk, "bytes", s[3]);
    }
}

static void loc_member_list(req_ctx *x)
{
    locator *lc = L(x);
    reply_head(x, ST_OK, 1);
    msgpack_pack_array(&x->pk, (uint32_t)lc->nmembers);
    for (size_t i = 0; i < lc->nmembers; i++)
        pack_member(x, &lc->members[i]);
    reply_done(x);
}

static void loc_member_describe(req_ctx *x)
{
    const uint8_t *p;
    uint32_t n;
    if (arg_str(x, 0, &p, &n))
        return;
    const lmember *m = member_by_name(L(x), p, n);
    if (!m) {
        reply_error(x, ST_BAD_ARGUMENT, "no member named '%.*s' in the cluster", (int)(n > 64 ? 64 : n), p);
        return;
    }
    reply_head(x, ST_OK, 1);
    pack_member(x, m);
    reply_done(x);
}

static void pack_redundancy(req_ctx *x, const cmap_region *r)
{
    locator *lc = L(x);
    uint32_t no_primary = 0, below = 0;
    uint32_t want = placement_replicated(r->type) ? (uint32_t)lc->map->nmembers : 1 + r->redundant_copies;
    for (uint32_t b = 0; b < r->nbuckets; b++) {
        no_primary += cmap_primary(r, b) == 0;
        below += cmap_ready_copies(r, b) < want;
    }
    uint64_t entries = 0;
    for (size_t i = 0; i < lc->nmembers; i++) {
        uint64_t s[4];
        member_region_stats(&lc->members[i], r->name, s);
        entries += s[2];
    }
    msgpack_packer *pk = &x->pk;
    msgpack_pack_map(pk, 8);
    mpw_kv_str(pk, "name", r->name);
    mpw_kv_str(pk, "type", r->type);
    mpw_kv_uint(pk, "redundant_copies", r->redundant_copies);
    mpw_kv_uint(pk, "total_num_buckets", r->nbuckets);
    mpw_kv_uint(pk, "buckets_without_primary", no_primary);
    mpw_kv_uint(pk, "buckets_below_redundancy", below);
    mpw_kv_str(pk, "redundancy", no_primary ? "lost" : below ? "reduced" : "satisfied");
    mpw_kv_uint(pk, "entries", entries);
}

static void loc_cluster_status(req_ctx *x)
{
    locator *lc = L(x);
    msgpack_packer *pk = &x->pk;
    reply_head(x, ST_OK, 1);
    msgpack_pack_map(pk, 8);
    mpw_kv_uint(pk, "view_id", lc->map->view_id);
    mpw_kv_uint(pk, "metadata_version", lc->map->version);
    mpw_kv_uint(pk, "member_timeout_ms", (uint64_t)lc->srv->cfg.member_timeout_ms);
    mpw_cstr(pk, "recovery_delay_ms");
    msgpack_pack_int(pk, lc->srv->cfg.recovery_delay_ms);
    mpw_cstr(pk, "locator");
    msgpack_pack_map(pk, 5);
    mpw_kv_str(pk, "name", lc->srv->cfg.name);
    mpw_kv_str(pk, "role", "locator");
    mpw_kv_str(pk, "host", lc->srv->cfg.bind);
    mpw_kv_uint(pk, "port", (uint64_t)lc->srv->port);
    mpw_kv_uint(pk, "pid", (uint64_t)getpid());
    mpw_cstr(pk, "members");
    msgpack_pack_array(pk, (uint32_t)lc->nmembers);
    for (size_t i = 0; i < lc->nmembers; i++)
        pack_member(x, &lc->members[i]);
    mpw_cstr(pk, "regions");
    msgpack_pack_array(pk, (uint32_t)lc->map->nregions);
    for (size_t i = 0; i < lc->map->nregions; i++)
        pack_redundancy(x, &lc->map->regions[i]);
    mpw_cstr(pk, "rebalance");
    locator_rebalance_pack(lc, pk);
    reply_done(x);
}

static void on_self_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    kill(getpid(), SIGTERM);
}

static void loc_shutdown(req_ctx *x)
{
    locator *lc = L(x);
    bool include = false;
    mp_cursor c;
    uint32_t n;
    if (x->req->argc > 0) {
        arg_cursor(x, 0, &c);
        if (mp_read_map(&c, &n) == 0)
            for (uint32_t i = 0; i < n; i++) {
                const uint8_t *k;
                uint32_t kn;
                bool v;
                if (mp_read_str(&c, &k, &kn) || mp_read_bool(&c, &v)) {
                    reply_error(x, ST_BAD_REQUEST, "SHUTDOWN: options must be {\"include_locators\": bool}");
                    return;
                }
                if (kn == 16 && !memcmp(k, "include_locators", 16))
                    include = v;
            }
    }
    uint64_t count = 0;
    for (size_t i = 0; i < lc->nmembers; i++)
        if (lc->members[i].conn) {
            push(lc, lc->members[i].conn, PUSH_STOP, NULL, 0, 0);
            count++;
        }
    log_info("shutdown: told %llu members to stop%s", (unsigned long long)count,
             include ? "; stopping this locator too" : "");
    reply_head(x, ST_OK, 1);
    msgpack_pack_uint64(&x->pk, count + (include ? 1 : 0));
    reply_done(x);
    if (include) {
        struct timeval tv = {0, 300000};
        event_base_once(lc->w->base, -1, EV_TIMEOUT, on_self_stop, NULL, &tv);
    }
}

static void loc_no_data(req_ctx *x)
{
    reply_error(x, ST_BAD_REQUEST, "this is a locator: it holds no data; send %s to a server",
                x->cmd->name);
}

#define MAX_OP 64
static const command loc_commands[MAX_OP] = {
    [OP_HELLO] = {OP_HELLO, "HELLO", handle_hello, 4, 4, 0, -1, {"magic", "version", "client_name", "credentials"}},
    [OP_PING] = {OP_PING, "PING", handle_ping, 0, 0, 0, -1, {0}},
    [OP_SERVER_INFO] = {OP_SERVER_INFO, "SERVER_INFO", handle_server_info, 0, 0, 0, -1, {0}},
    [OP_CLUSTER_MAP] = {OP_CLUSTER_MAP, "CLUSTER_MAP", loc_cluster_map, 0, 0, 0, -1, {0}},
    [OP_MEMBER_LIST] = {OP_MEMBER_LIST, "MEMBER_LIST", loc_member_list, 0, 0, 0, -1, {0}},
    [OP_MEMBER_DESCRIBE] = {OP_MEMBER_DESCRIBE, "MEMBER_DESCRIBE", loc_member_describe, 1, 1, 0, -1, {"name"}},
    [OP_CLUSTER_STATUS] = {OP_CLUSTER_STATUS, "CLUSTER_STATUS", loc_cluster_status, 0, 0, 0, -1, {0}},
    [OP_REBALANCE] = {OP_REBALANCE, "REBALANCE", locator_rebalance_request, 0, 1, 0, -1, {"options"}},
    [OP_REBALANCE_STATUS] = {OP_REBALANCE_STATUS, "REBALANCE_STATUS", locator_rebalance_status, 0, 0, 0, -1, {0}},
    [OP_SHUTDOWN] = {OP_SHUTDOWN, "SHUTDOWN", loc_shutdown, 0, 1, 0, -1, {"options"}},
    [OP_WATCH_MAP] = {OP_WATCH_MAP, "WATCH_MAP", loc_watch_map, 0, 0, 0, -1, {0}},
    [OP_REGION_CREATE] = {OP_REGION_CREATE, "REGION_CREATE", loc_region_create, 2, 3, 0, -1, {"name", "type", "options"}},
    [OP_REGION_DESTROY] = {OP_REGION_DESTROY, "REGION_DESTROY", loc_region_destroy, 1, 1, 0, -1, {"name"}},
    [OP_REGION_LIST] = {OP_REGION_LIST, "REGION_LIST", loc_region_list, 0, 0, 0, -1, {0}},
    [OP_REGION_DESCRIBE] = {OP_REGION_DESCRIBE, "REGION_DESCRIBE", loc_region_describe, 1, 1, 0, -1, {"name"}},
    [OP_INDEX_CREATE] = {OP_INDEX_CREATE, "INDEX_CREATE", loc_index_create, 3, 4, 0, -1, {"region", "name", "expression", "type"}},
    [OP_INDEX_DESTROY] = {OP_INDEX_DESTROY, "INDEX_DESTROY", loc_index_destroy, 2, 2, 0, -1, {"region", "name"}},
    [OP_INDEX_LIST] = {OP_INDEX_LIST, "INDEX_LIST", loc_index_list, 0, 1, 0, -1, {"region"}},
    [OP_PUT] = {OP_PUT, "PUT", loc_no_data, 0, 8, 0, -1, {0}},
    [OP_GET] = {OP_GET, "GET", loc_no_data, 0, 8, 0, -1, {0}},
    [OP_REMOVE] = {OP_REMOVE, "REMOVE", loc_no_data, 0, 8, 0, -1, {0}},
    [OP_CONTAINS_KEY] = {OP_CONTAINS_KEY, "CONTAINS_KEY", loc_no_data, 0, 8, 0, -1, {0}},
    [OP_PUT_ALL] = {OP_PUT_ALL, "PUT_ALL", loc_no_data, 0, 8, 1, -1, {0}},
    [OP_GET_ALL] = {OP_GET_ALL, "GET_ALL", loc_no_data, 0, 8, 0, -1, {0}},
    [OP_SIZE] = {OP_SIZE, "SIZE", loc_no_data, 0, 8, 0, -1, {0}},
    [OP_GET_ENTRY] = {OP_GET_ENTRY, "GET_ENTRY", loc_no_data, 0, 8, 0, -1, {0}},
    [OP_KEYS] = {OP_KEYS, "KEYS", loc_no_data, 0, 8, 0, -1, {0}},
    [OP_ENTRIES] = {OP_ENTRIES, "ENTRIES", loc_no_data, 0, 8, 0, -1, {0}},
    [OP_CLEAR] = {OP_CLEAR, "CLEAR", loc_no_data, 0, 8, 0, -1, {0}},
    [OP_QUERY] = {OP_QUERY, "QUERY", loc_no_data, 0, 8, 1, -1, {0}},
    [OP_JOIN] = {OP_JOIN, "JOIN", loc_join, 1, 1, 0, -1, {"member"}},
    [OP_HEARTBEAT] = {OP_HEARTBEAT, "HEARTBEAT", loc_heartbeat, 3, 3, 0, -1, {"member_id", "metadata_version", "stats"}},
    [OP_BUCKET_READY] = {OP_BUCKET_READY, "BUCKET_READY", loc_bucket_ready, 3, 3, 0, -1, {"member_id", "region", "bucket"}},
    [OP_LEAVE] = {OP_LEAVE, "LEAVE", loc_leave, 1, 1, 0, -1, {"member_id"}},
    [OP_HANDOFF_DONE] = {OP_HANDOFF_DONE, "HANDOFF_DONE", loc_handoff_done, 3, 3, 0, -1, {"member_id", "region", "bucket"}},
};

const command *locator_command_lookup(uint32_t op)
{
    return op < MAX_OP && loc_commands[op].fn ? &loc_commands[op] : NULL;
}

int locator_start(server_t *srv)
{
    locator *lc = calloc(1, sizeof(*lc));
    if (!lc)
        return -ENOMEM;
    lc->srv = srv;
    lc->w = &srv->workers[0];
    lc->map = cmap_new();
    if (!lc->map)
        return -ENOMEM;
    char addr[96];
    snprintf(addr, sizeof addr, "%s:%d", srv->cfg.bind, srv->port);
    cmap_locator_add(lc->map, addr);
    snprintf(lc->regions_path, sizeof lc->regions_path, "%s/cluster.regions", srv->cfg.dir);
    load_regions(lc);
    if (lc->map->nregions) /* a restart: members may hold the map */
        lc->adopt_until_ms = cluster_now_ms() + srv->cfg.member_timeout_ms;
    srv->locator = lc;
    g_locator = lc;
    lc->tick = event_new(lc->w->base, -1, EV_PERSIST, on_tick, lc);
    struct timeval every = {0, LOC_TICK_MS * 1000};
    if (!lc->tick || event_add(lc->tick, &every))
        return -ENOMEM;
    return 0;
}

void locator_stop(server_t *srv)
{
    locator *lc = srv->locator;
    if (!lc)
        return;
    event_free(lc->tick);
    locator_rebalance_free(lc);
    for (size_t i = 0; i < lc->nmembers; i++) {
        link_t *chk = lc->members[i].check;
        lc->members[i].check = NULL;
        link_free(chk);
        free(lc->members[i].stats);
    }
    cmap_free(lc->map);
    free(lc);
    srv->locator = NULL;
    g_locator = NULL;
}
