/* Image transfer of new bucket copies (see image_sync.h). */
#include "server/image_sync.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "common/log.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "region/journal.h"
#include "server/cluster.h"
#include "server/link.h"
#include "server/registry.h"

/* A bucket waits for a free slot, transfers, then is done: done buckets
 * stay until cancelled so that the ready report can be repeated. */
enum job_state { JOB_WAITING, JOB_RUNNING, JOB_DONE };

/* How often the jobs are looked at while any exist, whatever woke them:
 * a wake-up lost to a race costs this much, never a stuck copy. */
#define IMAGE_SYNC_TICK_MS 500
#define IMAGE_SYNC_LINK_TIMEOUT_MS 30000

typedef struct image_job {
    struct image_job *next;
    char region[REGION_NAME_MAX + 1];
    uint32_t bucket;
    uint32_t primary;
    uint64_t cursor;
    link_t *link;
    enum job_state state;
    int64_t not_before_ms; /* WAITING: retry time; DONE: next ready report */
} image_job;

struct image_sync {
    server_t *srv;
    struct event_base *base;
    struct event *tick;
    image_ready_fn ready;
    void *ready_arg;
    image_job *jobs;
    int running;
};

static void on_tick(evutil_socket_t fd, short what, void *arg);

image_sync *image_sync_new(server_t *srv, struct event_base *base, image_ready_fn ready, void *arg)
{
    image_sync *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->srv = srv;
    s->base = base;
    s->ready = ready;
    s->ready_arg = arg;
    s->tick = event_new(base, -1, 0, on_tick, s);
    if (!s->tick) {
        free(s);
        return NULL;
    }
    return s;
}

void image_sync_free(image_sync *s)
{
    if (!s)
        return;
    image_sync_cancel_all(s);
    event_free(s->tick);
    free(s);
}

/* Looks at the jobs as soon as the loop gets to it. (Activated without
 * EV_TIMEOUT: libevent would let a later event_add postpone it.) */
static void wake(image_sync *s) { event_active(s->tick, 0, 0); }

static void wake_after(image_sync *s, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(s->tick, &tv);
}

static image_job **find(image_sync *s, const char *region, uint32_t bucket)
{
    image_job **p = &s->jobs;
    while (*p && ((*p)->bucket != bucket || strcmp((*p)->region, region)))
        p = &(*p)->next;
    return p;
}

/* Ends a running transfer (its link is closed; a reply in flight is
 * dropped by on_page, which finds the job no longer running it). */
static void stop_transfer(image_sync *s, image_job *j)
{
    if (j->state == JOB_RUNNING)
        s->running--;
    link_free(j->link);
    j->link = NULL;
}

void image_sync_want(image_sync *s, const char *region, uint32_t bucket, uint32_t primary)
{
    image_job **p = find(s, region, bucket);
    image_job *j = *p;
    if (j) {
        if (j->primary != primary && j->state == JOB_DONE) {
            j->state = JOB_WAITING;
            j->not_before_ms = 0;
            wake(s);
        }
        j->primary = primary;
        return;
    }
    j = calloc(1, sizeof(*j));
    if (!j) {
        log_error("out of memory: region %s bucket %u stays an incomplete copy", region, bucket);
        return;
    }
    snprintf(j->region, sizeof j->region, "%s", region);
    j->bucket = bucket;
    j->primary = primary;
    j->state = JOB_WAITING;
    j->next = s->jobs;
    s->jobs = j;
    wake(s);
}

void image_sync_cancel(image_sync *s, const char *region, uint32_t bucket)
{
    image_job **p = find(s, region, bucket);
    image_job *j = *p;
    if (!j)
        return;
    *p = j->next;
    bool was_running = j->state == JOB_RUNNING;
    stop_transfer(s, j);
    free(j);
    if (was_running)
        wake(s); /* a slot is free for a waiting bucket */
}

void image_sync_cancel_all(image_sync *s)
{
    while (s->jobs)
        image_sync_cancel(s, s->jobs->region, s->jobs->bucket);
}

size_t image_sync_pending(const image_sync *s)
{
    size_t n = 0;
    for (const image_job *j = s->jobs; j; j = j->next)
        n += j->state != JOB_DONE;
    return n;
}

/* ---- one transfer ---- */

static void fail(image_sync *s, image_job *j, const char *why)
{
    log_debug("region %s bucket %u: image transfer from member %u failed (%s), retrying",
              j->region, j->bucket, j->primary, why);
    stop_transfer(s, j);
    j->state = JOB_WAITING;
    j->not_before_ms = cluster_now_ms() + IMAGE_SYNC_RETRY_MS;
    wake_after(s, IMAGE_SYNC_RETRY_MS);
}

/* [[kind, key, value|nil, counter, member_id], ...] into the bucket. */
static int apply_entries(region_t *r, uint32_t bucket, mp_cursor *c)
{
    uint32_t n;
    if (mp_read_array(c, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        uint64_t kind, mid;
        region_op op = {0};
        if (mp_read_array(c, &k) || k != 5 || mp_read_uint(c, &kind) ||
            mp_read_bytes(c, &op.key, &op.klen, &op.key_is_str))
            return -1;
        op.kind = kind == REGION_OP_REMOVE ? REGION_OP_REMOVE : REGION_OP_PUT;
        op.value = c->p;
        if (mp_read_nil(c)) {
            if (mp_skip(c, -1))
                return -1;
            op.vlen = (uint32_t)(c->p - op.value);
        }
        if (mp_read_uint(c, &op.counter) || mp_read_uint(c, &mid))
            return -1;
        op.member_id = (uint32_t)mid;
        op.hash = hash_key(op.key, op.klen);
        if (region_image_apply(r, bucket, &op))
            return -1;
    }
    return 0;
}

/* The last page's tail: event-id tracker pairs, counter and clear floor. */
static int apply_tail(region_t *r, uint32_t bucket, mp_cursor *c)
{
    uint32_t n;
    uint64_t counter, floor;
    if (mp_read_array(c, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t two;
        uint64_t pair[1][2];
        if (mp_read_array(c, &two) || two != 2 || mp_read_uint(c, &pair[0][0]) ||
            mp_read_uint(c, &pair[0][1]) ||
            region_tracker_merge(r, bucket, (const uint64_t(*)[2])pair, 1))
            return -1;
    }
    if (mp_read_uint(c, &counter) || mp_read_uint(c, &floor))
        return -1;
    region_bucket_raise_counters(r, bucket, counter, floor);
    return 0;
}

/* The first page carries the primary's counter after it began replicating
 * here: the bucket's journal is complete above it (region/journal.h). c is
 * at the page's tail: [tracker, counter, floor]. */
static void note_image_start(region_t *r, uint32_t bucket, mp_cursor c)
{
    uint64_t counter;
    journal_t *jn = journal_find(r);
    if (jn && mp_skip(&c, -1) == 0 && mp_read_uint(&c, &counter) == 0)
        journal_image_start(jn, bucket, counter);
}

static void report_ready(image_sync *s, image_job *j)
{
    j->not_before_ms = cluster_now_ms() + IMAGE_SYNC_READY_RESEND_MS;
    s->ready(j->region, j->bucket, s->ready_arg);
}

static void finish(image_sync *s, image_job *j)
{
    log_info("region %s bucket %u: image complete from member %u", j->region, j->bucket, j->primary);
    stop_transfer(s, j);
    j->state = JOB_DONE;
    report_ready(s, j);
    wake(s); /* a slot is free */
}

typedef struct page_ctx {
    image_sync *s;
    image_job *j;
    link_t *link; /* the transfer this page belongs to */
} page_ctx;

static void request_page(image_sync *s, image_job *j);

/* IMAGE_PAGE reply: [next, entries, tracker, counter, floor]. */
static void on_page(link_t *l, const msg_response *r, void *arg)
{
    page_ctx pc = *(page_ctx *)arg;
    free(arg);
    image_job *j = NULL;
    for (image_job *x = pc.s->jobs; !j && x; x = x->next)
        if (x == pc.j)
            j = x;
    /* cancelled, or restarted on another link meanwhile */
    if (!j || j->state != JOB_RUNNING || j->link != l || l != pc.link)
        return;
    if (!r || r->status != ST_OK || r->nresults != 5) {
        fail(pc.s, j, !r ? "no answer" : proto_status_name(r->status));
        return;
    }
    region_t *reg = registry_find(pc.s->srv->registry, (const uint8_t *)j->region, strlen(j->region));
    mp_cursor c = r->results;
    uint64_t next;
    if (!reg || mp_read_uint(&c, &next) || apply_entries(reg, j->bucket, &c)) {
        fail(pc.s, j, reg ? "malformed page" : "region gone");
        return;
    }
    if (j->cursor == 0)
        note_image_start(reg, j->bucket, c);
    if (next) {
        j->cursor = next;
        request_page(pc.s, j);
        return;
    }
    if (apply_tail(reg, j->bucket, &c)) {
        fail(pc.s, j, "malformed last page");
        return;
    }
    finish(pc.s, j);
}

static void request_page(image_sync *s, image_job *j)
{
    page_ctx *pc = malloc(sizeof(*pc));
    if (!pc) {
        fail(s, j, "out of memory");
        return;
    }
    *pc = (page_ctx){.s = s, .j = j, .link = j->link};
    buf_t b = {0};
    msgpack_packer pk;
    mpw_init(&pk, &b);
    mpw_cstr(&pk, j->region);
    msgpack_pack_uint32(&pk, j->bucket);
    msgpack_pack_uint32(&pk, s->srv->member_id);
    msgpack_pack_uint64(&pk, j->cursor);
    /* the map that made this copy: the primary must have applied it, so
     * that it replicates every later write here (see handle_image_page) */
    msgpack_pack_uint64(&pk, atomic_load(&s->srv->metadata_version));
    int rc = link_request(j->link, OP_IMAGE_PAGE, buf_rptr(&b), buf_readable(&b), 5, on_page, pc);
    buf_free(&b);
    if (rc) {
        free(pc);
        fail(s, j, "cannot send");
    }
}

static void begin(image_sync *s, image_job *j)
{
    peer_addr p;
    if (cluster_peer_find(s->srv, j->primary, &p)) {
        /* the map naming the primary has not been applied yet */
        j->not_before_ms = cluster_now_ms() + IMAGE_SYNC_RETRY_MS;
        return;
    }
    j->link = link_new(s->base, p.host, p.port, "image transfer", IMAGE_SYNC_LINK_TIMEOUT_MS, NULL);
    if (!j->link || link_connect(j->link)) {
        link_free(j->link);
        j->link = NULL;
        j->not_before_ms = cluster_now_ms() + IMAGE_SYNC_RETRY_MS;
        return;
    }
    j->state = JOB_RUNNING;
    j->cursor = 0;
    s->running++;
    request_page(s, j);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    image_sync *s = arg;
    int64_t now = cluster_now_ms();
    for (image_job *j = s->jobs; j; j = j->next) {
        if (j->state == JOB_WAITING && s->running < IMAGE_SYNC_MAX_RUNNING && now >= j->not_before_ms)
            begin(s, j);
        else if (j->state == JOB_DONE && now >= j->not_before_ms)
            report_ready(s, j);
    }
    if (s->jobs)
        wake_after(s, IMAGE_SYNC_TICK_MS);
}
