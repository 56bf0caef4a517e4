/* A server's cluster control plane (see member.h). */
#include "server/member.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cmap.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "server/cluster.h"
#include "server/cq.h"
#include "server/image_sync.h"
#include "server/index_sync.h"
#include "server/link.h"
#include "server/registry.h"

#define MEMBER_RECONNECT_MS 500
#define MEMBER_LEAVE_MAX_MS 30000
#define TOMBSTONE_MAX_AGE_S 60
#define TOMBSTONE_SWEEP_MS 10000

typedef struct member_agent {
    server_t *srv;
    struct event_base *base;
    int loc_idx;
    link_t *loc;
    bool joined;
    bool join_retry; /* the locator answered UNAVAILABLE: join again on the next beat */
    cmap_t *map;
    int64_t hb_sent_ms;
    bool hb_outstanding;
    struct event *hb_ev, *reconnect_ev, *sweep_ev, *leave_ev;
    image_sync *images;
    struct handoff *handoffs;
    void (*leave_done)(server_t *srv);
    link_t **peer_links; /* lease renewal through peers while the locator is away */
    size_t npeer_links;
} member_agent;

static void agent_connect(member_agent *a);
static void apply_map(member_agent *a, cmap_t *m);

static void lease_extend(member_agent *a, int64_t sent_ms)
{
    int64_t until = sent_ms + a->srv->cfg.member_timeout_ms / 2;
    int64_t cur = atomic_load(&a->srv->lease_until_ms);
    if (until > cur)
        atomic_store(&a->srv->lease_until_ms, until);
}

static void schedule(struct event *ev, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(ev, &tv);
}

/* ---- local regions from the map ---- */

static int ensure_region(server_t *srv, const cmap_region *mr)
{
    region_config cfg = {0};
    snprintf(cfg.name, sizeof cfg.name, "%s", mr->name);
    if (region_type_parse(mr->type, strlen(mr->type), &cfg.type))
        return -EINVAL;
    cfg.redundant_copies = mr->redundant_copies;
    cfg.total_num_buckets = mr->nbuckets;
    region_type existing;
    int rc = registry_create(srv->registry, &cfg, 1, &existing);
    return rc < 0 ? rc : 0;
}

/* Sets every bucket's role from the map; starts and cancels images. */
static void apply_region(member_agent *a, region_t *r, const cmap_region *mr)
{
    uint32_t me = a->srv->member_id;
    uint32_t targets[REGION_MAX_TARGETS];
    for (uint32_t b = 0; b < mr->nbuckets; b++) {
        const cmap_bucket *bk = &mr->buckets[b];
        enum cmap_role role = cmap_role(mr, b, me);
        uint32_t nt = 0;
        for (uint32_t i = 0; i < bk->ncopies && nt < REGION_MAX_TARGETS; i++)
            if (bk->copies[i].member_id != me)
                targets[nt++] = bk->copies[i].member_id;
        enum region_role rr = role == CMAP_PRIMARY ? ROLE_PRIMARY
                              : role == CMAP_COPY  ? ROLE_COPY
                              : role == CMAP_INIT  ? ROLE_INIT
                                                   : ROLE_NONE;
        uint32_t primary = cmap_primary(mr, b);
        enum region_role old = region_bucket_set_role(r, b, rr, bk->term, primary, targets, nt);
        if (rr == ROLE_INIT && primary)
            image_sync_want(a->images, mr->name, b, primary);
        else
            image_sync_cancel(a->images, mr->name, b);
        if (rr == ROLE_NONE && old != ROLE_NONE)
            region_bucket_drop(r, b);
        if (rr == ROLE_PRIMARY && old != ROLE_PRIMARY)
            cq_primary_gained(r, b); /* its CQs replay the bucket from its journal */
        if (rr == ROLE_PRIMARY && old != ROLE_PRIMARY)
            log_info("region %s bucket %u: primary here (term %llu)", mr->name, b,
                     (unsigned long long)bk->term);
    }
}

static void publish_peers(member_agent *a, const cmap_t *m)
{
    peer_addr *peers = calloc(m->nmembers ? m->nmembers : 1, sizeof(*peers));
    size_t n = 0;
    if (!peers)
        return;
    for (size_t i = 0; i < m->nmembers; i++) {
        if (m->members[i].id == a->srv->member_id)
            continue;
        peers[n].id = m->members[i].id;
        snprintf(peers[n].host, sizeof peers[n].host, "%s", m->members[i].host);
        peers[n].port = m->members[i].port;
        n++;
    }
    cluster_set_peers(a->srv, peers, n);
    free(peers);
}

static void store_blob(member_agent *a, const cmap_t *m)
{
    buf_t b = {0};
    msgpack_packer pk;
    mpw_init(&pk, &b);
    if (cmap_encode(m, &pk)) {
        buf_free(&b);
        return;
    }
    server_t *srv = a->srv;
    pthread_mutex_lock(&srv->peers_lock);
    free(srv->map_blob);
    srv->map_len = buf_readable(&b);
    srv->map_blob = malloc(srv->map_len);
    if (srv->map_blob)
        memcpy(srv->map_blob, buf_rptr(&b), srv->map_len);
    else
        srv->map_len = 0;
    pthread_mutex_unlock(&srv->peers_lock);
    buf_free(&b);
}

/* Regions the map no longer has are destroyed here. */
static void drop_unlisted(member_agent *a, const cmap_t *m)
{
    registry_t *reg = a->srv->registry;
    const registry_view *v = registry_snapshot(reg);
    char names[64][REGION_NAME_MAX + 1];
    size_t n = 0;
    for (size_t i = 0; i < registry_view_count(v) && n < 64; i++) {
        const char *name = region_cfg(registry_view_at(v, i))->name;
        if (!cmap_region_find(m, name, strlen(name)))
            snprintf(names[n++], sizeof names[0], "%s", name);
    }
    for (size_t i = 0; i < n; i++) {
        log_info("region %s was destroyed in the cluster", names[i]);
        registry_destroy(reg, (const uint8_t *)names[i], strlen(names[i]));
    }
}

static bool in_view(const cmap_t *m, uint32_t id) { return cmap_member_find(m, id) != NULL; }

static void rejoin_fresh(member_agent *a, const char *why);

static void apply_map(member_agent *a, cmap_t *m)
{
    if (a->map && m->version < a->map->version) {
        cmap_free(m);
        return;
    }
    if (!in_view(m, a->srv->member_id)) {
        cmap_free(m);
        if (a->joined)
            rejoin_fresh(a, "the cluster removed this member");
        return;
    }
    publish_peers(a, m); /* before roles: replication targets must have addresses */
    for (size_t i = 0; i < m->nregions; i++) {
        const cmap_region *mr = &m->regions[i];
        if (ensure_region(a->srv, mr)) {
            log_error("cannot create region %s from the cluster map", mr->name);
            continue;
        }
        region_t *r = registry_find(a->srv->registry, (const uint8_t *)mr->name, strlen(mr->name));
        if (r && region_cfg(r)->total_num_buckets == mr->nbuckets) {
            index_sync_region(a->base, a->srv, r, mr); /* before roles: images get indexed */
            apply_region(a, r, mr);
        }
    }
    drop_unlisted(a, m);
    store_blob(a, m);
    atomic_store(&a->srv->metadata_version, m->version);
    log_debug("applied cluster map version %llu (view %llu, %zu members)",
              (unsigned long long)m->version, (unsigned long long)m->view_id, m->nmembers);
    cmap_free(a->map);
    a->map = m;
}

static void apply_map_bytes(member_agent *a, const uint8_t *p, size_t n)
{
    cmap_t *m;
    if (cmap_decode(p, n, &m)) {
        log_error("the locator sent a malformed cluster map");
        return;
    }
    apply_map(a, m);
}

/* Removed from the view (paused past member-timeout, or cut off): what we
 * hold may be stale, so drop everything and join as if new. */
static void rejoin_fresh(member_agent *a, const char *why)
{
    log_warn("%s: dropping local data and rejoining", why);
    atomic_store(&a->srv->lease_until_ms, 0);
    a->joined = false;
    const registry_view *v = registry_snapshot(a->srv->registry);
    for (size_t i = 0; i < registry_view_count(v); i++) {
        region_t *r = registry_view_at(v, i);
        for (uint32_t b = 0; b < region_cfg(r)->total_num_buckets; b++) {
            region_bucket_set_role(r, b, ROLE_NONE, 0, 0, NULL, 0);
            region_bucket_drop(r, b);
        }
    }
    image_sync_cancel_all(a->images);
    cmap_free(a->map);
    a->map = NULL;
    link_free(a->loc);
    a->loc = NULL;
    schedule(a->reconnect_ev, 0);
}

/* ---- talking to the locator ---- */

static int loc_send(member_agent *a, uint32_t op, buf_t *args, uint32_t nargs, link_reply_fn fn)
{
    if (!a->loc)
        return -ENOTCONN;
    return link_request(a->loc, op, buf_rptr(args), buf_readable(args), nargs, fn, a);
}

static void on_join_reply(link_t *l, const msg_response *r, void *arg)
{
    (void)l;
    member_agent *a = arg;
    if (!r)
        return;
    if (r->status == ST_UNAVAILABLE) { /* e.g. a restarted locator waiting: retry */
        log_info("the locator asks to retry joining: %.*s", (int)r->errmsg_len,
                 (const char *)r->errmsg);
        a->join_retry = true;
        return;
    }
    if (r->status != ST_OK || r->nresults != 1) {
        log_error("the locator refused to let this member join: %.*s", (int)r->errmsg_len,
                  (const char *)r->errmsg);
        return;
    }
    a->joined = true;
    lease_extend(a, a->hb_sent_ms);
    mp_cursor c = r->results;
    apply_map_bytes(a, c.p, mp_left(&c));
    log_info("joined the cluster through %s as member %u", link_addr(a->loc), a->srv->member_id);
}

static void send_join(member_agent *a)
{
    server_t *srv = a->srv;
    buf_t b = {0};
    msgpack_packer pk;
    mpw_init(&pk, &b);
    msgpack_pack_map(&pk, 7);
    mpw_kv_str(&pk, "name", srv->cfg.name);
    mpw_kv_uint(&pk, "member_id", srv->member_id);
    mpw_kv_str(&pk, "host", srv->cfg.bind);
    mpw_kv_uint(&pk, "port", (uint64_t)srv->port);
    mpw_kv_uint(&pk, "pid", (uint64_t)getpid());
    mpw_kv_str(&pk, "dir", srv->cfg.dir);
    mpw_cstr(&pk, "map");
    if (a->map)
        cmap_encode(a->map, &pk);
    else
        msgpack_pack_nil(&pk);
    a->hb_sent_ms = cluster_now_ms();
    loc_send(a, OP_JOIN, &b, 1, on_join_reply);
    buf_free(&b);
}

static void on_loc_push(link_t *l, const msg_push *p, void *arg);

static void on_loc_state(link_t *l, bool up, void *arg)
{
    (void)l;
    member_agent *a = arg;
    if (up) {
        send_join(a);
        return;
    }
    log_warn("lost the locator at %s; retrying", link_addr(a->loc));
    a->hb_outstanding = false;
    schedule(a->reconnect_ev, MEMBER_RECONNECT_MS);
}

static void agent_connect(member_agent *a)
{
    server_config *cfg = &a->srv->cfg;
    if (a->loc && (link_is_up(a->loc)))
        return;
    link_free(a->loc);
    a->loc = NULL;
    const char *addr = cfg->locators[a->loc_idx++ % cfg->nlocators];
    char host[80];
    snprintf(host, sizeof host, "%s", addr);
    char *colon = strrchr(host, ':');
    *colon = 0;
    char name[96];
    snprintf(name, sizeof name, "member %s", cfg->name);
    link_callbacks cb = {.on_state = on_loc_state, .on_push = on_loc_push, .arg = a};
    a->loc = link_new(a->base, host, (uint16_t)atoi(colon + 1), name, cfg->member_timeout_ms, &cb);
    if (!a->loc || link_connect(a->loc))
        schedule(a->reconnect_ev, MEMBER_RECONNECT_MS);
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    agent_connect(arg);
}

static void on_hb_reply(link_t *l, const msg_response *r, void *arg)
{
    (void)l;
    member_agent *a = arg;
    a->hb_outstanding = false;
    if (!r)
        return;
    if (r->status == ST_BAD_ARGUMENT) { /* "not a member": we were removed */
        rejoin_fresh(a, "the locator no longer lists this member");
        return;
    }
    if (r->status == ST_OK)
        lease_extend(a, a->hb_sent_ms);
}

/* Stats the locator shows in list/describe member. */
static void pack_stats(member_agent *a, msgpack_packer *pk)
{
    const registry_view *v = registry_snapshot(a->srv->registry);
    size_t n = registry_view_count(v);
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        region_t *r = registry_view_at(v, i);
        uint64_t buckets = 0, primaries = 0, entries = 0, bytes = 0;
        for (uint32_t b = 0; b < region_cfg(r)->total_num_buckets; b++) {
            enum region_role role = region_bucket_role(r, b);
            if (role == ROLE_NONE)
                continue;
            buckets++;
            bytes += region_bucket_bytes(r, b);
            if (role == ROLE_PRIMARY) {
                primaries++;
                entries += region_bucket_size(r, b);
            }
        }
        msgpack_pack_array(pk, 6);
        mpw_cstr(pk, region_cfg(r)->name);
        msgpack_pack_uint64(pk, buckets);
        msgpack_pack_uint64(pk, primaries);
        msgpack_pack_uint64(pk, entries);
        msgpack_pack_uint64(pk, bytes);
        index_pack_stats(r, pk); /* the locator's list indexes shows them */
    }
}

static void peer_heartbeats(member_agent *a);

/* A heartbeat has waited more than half a beat for the locator's answer: a
 * hung locator keeps its connection up until member-timeout, longer than
 * the lease (member-timeout/2) lasts, so peers renew the lease meanwhile.
 * Asked at the next beat, they answer before the lease from the last
 * acknowledged heartbeat runs out (2.5 beats after it was sent). */
static bool locator_slow(const member_agent *a)
{
    return a->hb_outstanding &&
           cluster_now_ms() - a->hb_sent_ms > a->srv->cfg.member_timeout_ms / 10;
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    member_agent *a = arg;
    if (a->loc && link_is_up(a->loc) && a->joined && !a->hb_outstanding) {
        buf_t b = {0};
        msgpack_packer pk;
        mpw_init(&pk, &b);
        msgpack_pack_uint32(&pk, a->srv->member_id);
        msgpack_pack_uint64(&pk, atomic_load(&a->srv->metadata_version));
        pack_stats(a, &pk);
        a->hb_sent_ms = cluster_now_ms();
        if (loc_send(a, OP_HEARTBEAT, &b, 3, on_hb_reply) == 0)
            a->hb_outstanding = true;
        buf_free(&b);
    } else if (a->join_retry && a->loc && link_is_up(a->loc)) {
        a->join_retry = false;
        send_join(a);
    } else if (a->map && (!a->loc || !link_is_up(a->loc) || locator_slow(a))) {
        peer_heartbeats(a);
    }
    schedule(a->hb_ev, a->srv->cfg.member_timeout_ms / 5);
}

/* ---- peers renew the lease while the locator is away ---- */

typedef struct peer_hb {
    member_agent *a;
    int64_t sent_ms;
    uint64_t version;
} peer_hb;

static void on_peer_map(link_t *l, const msg_response *r, void *arg)
{
    (void)l;
    member_agent *a = arg;
    if (r && r->status == ST_OK && r->nresults == 1) {
        mp_cursor c = r->results;
        if (mp_read_nil(&c) != 0)
            apply_map_bytes(a, r->results.p, mp_left(&r->results));
    }
}

static void on_peer_hb(link_t *l, const msg_response *r, void *arg)
{
    peer_hb *h = arg;
    member_agent *a = h->a;
    uint64_t version;
    bool listed;
    mp_cursor c;
    if (r && r->status == ST_OK && r->nresults == 2 && (c = r->results, 1) &&
        mp_read_uint(&c, &version) == 0 && mp_read_bool(&c, &listed) == 0) {
        if (version > h->version) /* the cluster moved on: catch up first */
            link_request(l, OP_CLUSTER_MAP, NULL, 0, 0, on_peer_map, a);
        else if (listed)
            lease_extend(a, h->sent_ms);
    }
    free(h);
}

static link_t *peer_link(member_agent *a, const cmap_member *m)
{
    char addr[96];
    snprintf(addr, sizeof addr, "%s:%u", strcmp(m->host, "localhost") ? m->host : "127.0.0.1",
             m->port);
    for (size_t i = 0; i < a->npeer_links; i++)
        if (!strcmp(link_addr(a->peer_links[i]), addr))
            return a->peer_links[i];
    link_t **grown = realloc(a->peer_links, (a->npeer_links + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    a->peer_links = grown;
    link_t *l = link_new(a->base, m->host, m->port, "peer heartbeat", 2000, NULL);
    if (!l)
        return NULL;
    a->peer_links[a->npeer_links++] = l;
    return l;
}

static void peer_heartbeats(member_agent *a)
{
    for (size_t i = 0; i < a->map->nmembers; i++) {
        const cmap_member *m = &a->map->members[i];
        if (m->id == a->srv->member_id)
            continue;
        link_t *l = peer_link(a, m);
        if (!l || link_connect(l))
            continue;
        peer_hb *h = malloc(sizeof(*h));
        if (!h)
            continue;
        *h = (peer_hb){.a = a, .sent_ms = cluster_now_ms(), .version = a->map->version};
        buf_t b = {0};
        msgpack_packer pk;
        mpw_init(&pk, &b);
        msgpack_pack_uint32(&pk, a->srv->member_id);
        msgpack_pack_uint64(&pk, a->map->version);
        if (link_request(l, OP_PEER_HEARTBEAT, buf_rptr(&b), buf_readable(&b), 2, on_peer_hb, h))
            free(h);
        buf_free(&b);
    }
}

/* ---- image transfer (image_sync.c) ---- */

/* A new copy is complete: the locator marks it ready in the map. */
static void on_image_ready(const char *region, uint32_t bucket, void *arg)
{
    member_agent *a = arg;
    buf_t b = {0};
    msgpack_packer pk;
    mpw_init(&pk, &b);
    msgpack_pack_uint32(&pk, a->srv->member_id);
    mpw_cstr(&pk, region);
    msgpack_pack_uint32(&pk, bucket);
    loc_send(a, OP_BUCKET_READY, &b, 3, NULL);
    buf_free(&b);
}

/* ---- handoff, stop, pushes ---- */

typedef struct handoff {
    struct handoff *next; /* the agent's list, so that a stop frees them */
    member_agent *a;
    char region[REGION_NAME_MAX + 1];
    uint32_t bucket;
    int64_t deadline;
    struct event *ev;
} handoff;

/* After HANDOFF_DONE the map that moves the primary normally arrives at
 * once; a bucket still primary here this much later was not moved (the
 * locator gave the handoff up) and serves writes again. */
#define HANDOFF_RELEASE_MS 3000
/* Below the locator's handoff timeout (LOC_HANDOFF_MAX_MS, 5 s), so that
 * a HANDOFF_DONE never arrives after the locator gave the handoff up. */
#define HANDOFF_DRAIN_MS 4000

static void handoff_free(handoff *h)
{
    for (handoff **p = &h->a->handoffs; *p; p = &(*p)->next)
        if (*p == h) {
            *p = h->next;
            break;
        }
    event_free(h->ev);
    free(h);
}

static void on_handoff_release(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    handoff *h = arg;
    region_t *r = registry_find(h->a->srv->registry, (const uint8_t *)h->region, strlen(h->region));
    if (r && h->bucket < region_cfg(r)->total_num_buckets &&
        region_bucket_role(r, h->bucket) == ROLE_PRIMARY) {
        log_warn("region %s bucket %u: handoff not completed by the locator; serving writes again",
                 h->region, h->bucket);
        region_bucket_set_handoff(r, h->bucket, false);
    }
    handoff_free(h);
}

static void on_handoff_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    handoff *h = arg;
    member_agent *a = h->a;
    region_t *r = registry_find(a->srv->registry, (const uint8_t *)h->region, strlen(h->region));
    if (r && region_bucket_inflight(r, h->bucket)) {
        if (cluster_now_ms() < h->deadline) {
            schedule(h->ev, 2);
            return;
        }
        /* a copy does not acknowledge: moving the primary now could lose
         * what it has not applied; keep it (the locator's handoff expires) */
        log_warn("region %s bucket %u: writes not acknowledged by the copies within %d ms; "
                 "the handoff is abandoned", h->region, h->bucket, HANDOFF_DRAIN_MS);
        region_bucket_set_handoff(r, h->bucket, false);
        handoff_free(h);
        return;
    }
    buf_t b = {0};
    msgpack_packer pk;
    mpw_init(&pk, &b);
    msgpack_pack_uint32(&pk, a->srv->member_id);
    mpw_cstr(&pk, h->region);
    msgpack_pack_uint32(&pk, h->bucket);
    loc_send(a, OP_HANDOFF_DONE, &b, 3, NULL);
    buf_free(&b);
    event_assign(h->ev, a->base, -1, 0, on_handoff_release, h);
    schedule(h->ev, HANDOFF_RELEASE_MS);
}

static void start_handoff(member_agent *a, mp_cursor *c)
{
    const uint8_t *name;
    uint32_t n;
    uint64_t bucket;
    if (mp_read_str(c, &name, &n) || n > REGION_NAME_MAX || mp_read_uint(c, &bucket))
        return;
    handoff *h = calloc(1, sizeof(*h));
    if (!h)
        return;
    h->a = a;
    memcpy(h->region, name, n);
    h->bucket = (uint32_t)bucket;
    h->deadline = cluster_now_ms() + HANDOFF_DRAIN_MS;
    h->ev = event_new(a->base, -1, 0, on_handoff_poll, h);
    if (!h->ev) {
        free(h);
        return;
    }
    h->next = a->handoffs;
    a->handoffs = h;
    region_t *r = registry_find(a->srv->registry, name, n);
    if (r && bucket < region_cfg(r)->total_num_buckets)
        region_bucket_set_handoff(r, (uint32_t)bucket, true);
    schedule(h->ev, 0);
}

static void on_loc_push(link_t *l, const msg_push *p, void *arg)
{
    (void)l;
    member_agent *a = arg;
    mp_cursor c = p->items;
    if (p->event_kind == PUSH_MAP && p->nitems == 1)
        apply_map_bytes(a, c.p, mp_left(&c));
    else if (p->event_kind == PUSH_HANDOFF && p->nitems == 2)
        start_handoff(a, &c);
    else if (p->event_kind == PUSH_STOP) {
        log_info("the cluster is shutting down");
        atomic_store(&a->srv->shutting_down, 1);
        event_base_loopbreak(a->base);
    }
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    member_agent *a = arg;
    const registry_view *v = registry_snapshot(a->srv->registry);
    for (size_t i = 0; i < registry_view_count(v); i++)
        region_purge_tombstones(registry_view_at(v, i), TOMBSTONE_MAX_AGE_S);
    schedule(a->sweep_ev, TOMBSTONE_SWEEP_MS);
}

int member_start(server_t *srv)
{
    member_agent *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->srv = srv;
    a->base = srv->base;
    srv->agent = a;
    registry_set_clustered(srv->registry);
    a->hb_ev = event_new(a->base, -1, 0, on_heartbeat, a);
    a->reconnect_ev = event_new(a->base, -1, 0, on_reconnect, a);
    a->sweep_ev = event_new(a->base, -1, 0, on_sweep, a);
    a->images = image_sync_new(srv, a->base, on_image_ready, a);
    if (!a->hb_ev || !a->reconnect_ev || !a->sweep_ev || !a->images)
        return -ENOMEM;
    schedule(a->hb_ev, srv->cfg.member_timeout_ms / 5);
    schedule(a->sweep_ev, TOMBSTONE_SWEEP_MS);
    agent_connect(a);
    return 0;
}

/* ---- leaving ---- */

static void leave_finish(member_agent *a)
{
    void (*done)(server_t *) = a->leave_done;
    a->leave_done = NULL;
    if (done)
        done(a->srv);
}

static void on_leave_reply(link_t *l, const msg_response *r, void *arg)
{
    (void)l;
    member_agent *a = arg;
    if (r && r->status == ST_OK)
        log_info("the locator moved this member's buckets away; leaving");
    leave_finish(a);
}

static void on_leave_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    member_agent *a = arg;
    log_warn("leaving without the locator's confirmation");
    leave_finish(a);
}

void member_leave(server_t *srv, void (*done)(server_t *srv))
{
    member_agent *a = srv->agent;
    a->leave_done = done;
    buf_t b = {0};
    msgpack_packer pk;
    mpw_init(&pk, &b);
    msgpack_pack_uint32(&pk, srv->member_id);
    int rc = a->joined ? loc_send(a, OP_LEAVE, &b, 1, on_leave_reply) : -ENOTCONN;
    buf_free(&b);
    if (rc) {
        leave_finish(a);
        return;
    }
    a->leave_ev = event_new(a->base, -1, 0, on_leave_timeout, a);
    if (a->leave_ev)
        schedule(a->leave_ev, MEMBER_LEAVE_MAX_MS);
}

void member_stop(server_t *srv)
{
    member_agent *a = srv->agent;
    if (!a)
        return;
    image_sync_free(a->images);
    while (a->handoffs)
        handoff_free(a->handoffs);
    link_free(a->loc);
    for (size_t i = 0; i < a->npeer_links; i++)
        link_free(a->peer_links[i]);
    free(a->peer_links);
    event_free(a->hb_ev);
    event_free(a->reconnect_ev);
    event_free(a->sweep_ev);
    if (a->leave_ev)
        event_free(a->leave_ev);
    cmap_free(a->map);
    free(a);
    srv->agent = NULL;
}
