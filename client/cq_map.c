/* cq_map.c - how a continuous query follows a cluster: the newest map
 * decides which members hold subscriptions. A connection to a locator
 * sends WATCH_MAP and receives every new map as a push; while no locator
 * answers it is tried again every second and the map is fetched from a
 * member meanwhile (CLUSTER_MAP on a subscription connection). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cq_impl.h"
#include "client/router.h"
#include "common/proto.h"

bool client_cq_member_addr(const cmap_member *m, char *out, size_t cap)
{
    int n = strchr(m->host, ':') ? snprintf(out, cap, "[%s]:%u", m->host, (unsigned)m->port)
                                 : snprintf(out, cap, "%s:%u", m->host, (unsigned)m->port);
    return n >= 0 && (size_t)n < cap;
}

static cq_sub *find_sub(const agate_cq *cq, uint32_t member_id)
{
    for (size_t i = 0; i < cq->nsubs; i++)
        if (!cq->subs[i]->gone && cq->subs[i]->member_id == member_id)
            return cq->subs[i];
    return NULL;
}

/* A newer map: subscribe on new members, let departed ones go. */
void client_cq_apply_map(agate_cq *cq, cmap_t *m)
{
    if (cq->map && m->version <= cq->map->version) {
        cmap_free(m);
        return;
    }
    if (!cmap_region_find(m, cq->region, strlen(cq->region))) {
        cmap_free(m);
        client_cq_fail(cq, AGATE_EUNKNOWN_REGION, "region '%s' was destroyed", cq->region);
        return;
    }
    for (size_t i = 0; i < m->nmembers; i++) {
        char addr[sizeof(cq->subs[0]->addr)];
        if (!client_cq_member_addr(&m->members[i], addr, sizeof(addr)))
            continue;
        cq_sub *s = find_sub(cq, m->members[i].id);
        if (s && strcmp(s->addr, addr) == 0)
            continue;
        if (s)
            s->gone = true; /* moved: a fresh subscription at the new address */
        s = client_cq_sub_add(cq, m->members[i].id, addr);
        if (!s) {
            cmap_free(m);
            client_cq_fail(cq, AGATE_ENOMEM, "out of memory");
            return;
        }
        s->retry_at = client_now_ms();
    }
    for (size_t i = 0; i < cq->nsubs; i++)
        if (!cmap_member_find(m, cq->subs[i]->member_id))
            cq->subs[i]->gone = true;
    cmap_free(cq->map);
    cq->map = m;
}

static int ok_map(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    (void)aux;
    cmap_t **out = call->out;
    mp_cursor cur = r->results;
    const uint8_t *p;
    size_t n;
    if (r->nresults < 1 || mp_read_nil(&cur) == 0)
        return client_bad_reply(c, "no cluster map");
    cur = r->results;
    int rc = client_read_raw(c, &cur, &p, &n);
    if (rc)
        return rc;
    if (cmap_decode(p, n, out))
        return client_bad_reply(c, "not a well-formed cluster map");
    return 0;
}

/* A synchronous WATCH_MAP or CLUSTER_MAP on conn; the map is applied. */
static int fetch_map(agate_cq *cq, agate_client *conn, int op)
{
    cmap_t *m = NULL;
    client_call call;
    client_call_init(&call, ok_map, &m);
    int rc = client_simple_call(conn, &call, op, NULL);
    if (rc) {
        cmap_free(m);
        return rc;
    }
    client_cq_apply_map(cq, m);
    return 0;
}

/* The locator watch: (re)connect and WATCH_MAP; else poll a member. */
void client_cq_map_work(agate_cq *cq, int64_t now)
{
    if (cq->watching && (cq->loc->conn->fd < 0 || cq->loc->conn->gen != cq->loc->reg_gen)) {
        cq->watching = false;
        cq->loc_retry_at = now;
        cq->map_poll_at = now;
    }
    if (cq->watching)
        return;
    if (cq->loc_retry_at >= 0 && now >= cq->loc_retry_at && cq->loc->conn &&
        cq->loc->conn->nservers > 0) {
        cq->loc_retry_at = now + CQ_MAP_POLL_MS;
        if (client_ensure_conn(cq->loc->conn) == 0 &&
            fetch_map(cq, cq->loc->conn, OP_WATCH_MAP) == 0) {
            cq->watching = true;
            cq->loc->reg_gen = cq->loc->conn->gen;
            return;
        }
    }
    if (now >= cq->map_poll_at) {
        cq->map_poll_at = now + CQ_MAP_POLL_MS;
        for (size_t i = 0; i < cq->nsubs; i++) {
            cq_sub *s = cq->subs[i];
            if (!s->gone && s->conn && s->conn->fd >= 0 &&
                fetch_map(cq, s->conn, OP_CLUSTER_MAP) == 0)
                break;
        }
    }
}

/* Starts the locator watch (cluster CQs). The locators: the map's, else
 * the ones the client was given. */
int client_cq_loc_start(agate_cq *cq, agate_client *c)
{
    char list[2048];
    size_t used = 0;
    list[0] = 0;
    if (cq->map->nlocators > 0) {
        for (size_t i = 0; i < cq->map->nlocators && used < sizeof(list); i++)
            used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? "," : "",
                                     cq->map->locators[i]);
    } else if (c->router && c->router->admin) {
        const agate_client *a = c->router->admin;
        for (size_t i = 0; i < a->nservers && used < sizeof(list); i++)
            used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? "," : "",
                                     a->servers[i].addr);
    }
    cq->loc = client_cq_sub_new(cq, 0, "locator");
    if (!cq->loc)
        return AGATE_ENOMEM;
    cq->loc->conn = agate_client_new(&cq->opts);
    if (!cq->loc->conn)
        return AGATE_ENOMEM;
    cq->loc->conn->plain = 1;
    cq->loc->conn->on_push = client_cq_on_push;
    cq->loc->conn->push_arg = cq->loc;
    cq->loc_retry_at = -1;
    cq->map_poll_at = client_now_ms() + CQ_MAP_POLL_MS;
    if (used > 0 && used < sizeof(list) && client_servers_parse(cq->loc->conn, list) == 0) {
        cq->loc_retry_at = client_now_ms();
        client_cq_map_work(cq, client_now_ms());
    }
    return 0;
}
