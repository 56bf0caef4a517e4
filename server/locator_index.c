/* The locator's index definitions (docs/cluster.md, docs/query.md
 * "Indexes"): INDEX_CREATE, INDEX_DESTROY and INDEX_LIST update and read
 * the cluster map, where members find them (server/index_sync.c), and the
 * definitions are saved with the region definitions so that a restarted
 * locator still has them. Everything here runs on the locator's worker. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "region/qindex.h"
#include "server/index_args.h"
#include "server/locator_impl.h"
#include "server/request.h"

/* The map's region named by argument i, or NULL after an error reply. */
static cmap_region *arg_map_region(req_ctx *x, int i)
{
    const uint8_t *p;
    uint32_t n;
    if (arg_str(x, i, &p, &n))
        return NULL;
    size_t len = n;
    cmap_region *r = NULL;
    if (!region_name_check(&p, &len))
        r = cmap_region_find(x->srv->locator->map, (const char *)p, len);
    if (!r)
        reply_error(x, ST_UNKNOWN_REGION, "region '%.*s' not found", (int)(n > 128 ? 128 : n), p);
    return r;
}

void loc_index_create(req_ctx *x)
{
    locator *lc = x->srv->locator;
    index_args ia;
    cmap_region *r = arg_map_region(x, 0);
    if (!r || index_args_read(x, &ia))
        return;
    const char *name = ia.name, *expr = ia.expr;
    uint32_t elen = ia.elen;
    qindex_kind kind = ia.kind;
    qerror err;
    if (qindex_expr_check(expr, elen, &err) || strlen(expr) != elen) {
        reply_error(x, ST_BAD_ARGUMENT, "index expression '%.200s': at %u: %s", expr, err.pos,
                    err.msg);
        return;
    }
    int rc = cmap_index_add(r, name, qindex_kind_name(kind), expr);
    if (rc == -EEXIST) {
        reply_error(x, ST_INDEX_EXISTS, "index '%s' already exists on region '%s'", name, r->name);
        return;
    }
    if (rc == -ENOSPC) {
        reply_error(x, ST_BAD_ARGUMENT, "region '%s' has the most indexes it can (%d)", r->name,
                    CMAP_MAX_INDEXES);
        return;
    }
    if (rc) {
        reply_error(x, ST_NO_MEMORY, "out of memory");
        return;
    }
    log_info("created %s index %s on %s (%s): members build it as they apply the map",
             qindex_kind_name(kind), name, r->name, expr);
    locator_save_definitions(lc);
    locator_publish(lc);
    reply_status(x, ST_OK);
}

void loc_index_destroy(req_ctx *x)
{
    locator *lc = x->srv->locator;
    char name[QINDEX_NAME_MAX + 1];
    cmap_region *r = arg_map_region(x, 0);
    if (!r || index_arg_name(x, 1, name))
        return;
    if (cmap_index_remove(r, name)) {
        reply_error(x, ST_NOT_FOUND, "index '%s' not found on region '%s'", name, r->name);
        return;
    }
    log_info("destroyed index %s on %s", name, r->name);
    locator_save_definitions(lc);
    locator_publish(lc);
    reply_status(x, ST_OK);
}

/* One member's figures of one index, from its last heartbeat
 * (server/index_sync.c, index_pack_stats). */
typedef struct ix_stats {
    bool found, valid;
    uint64_t primary, entries, bytes;
} ix_stats;

static bool str_is(const uint8_t *p, uint32_t n, const char *s)
{
    return strlen(s) == n && memcmp(p, s, n) == 0;
}

/* Reads the index list of a region's stats at c for index name. */
static void read_index_stats(mp_cursor *c, const char *name, ix_stats *out)
{
    uint32_t n, k;
    if (mp_read_array(c, &n))
        return;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p;
        uint32_t pn;
        ix_stats s = {.found = true};
        if (mp_read_array(c, &k) || k != 5 || mp_read_str(c, &p, &pn) ||
            mp_read_uint(c, &s.primary) || mp_read_uint(c, &s.entries) ||
            mp_read_uint(c, &s.bytes) || mp_read_bool(c, &s.valid))
            return;
        if (str_is(p, pn, name)) {
            *out = s;
            return;
        }
    }
}

static ix_stats member_index_stats(const lmember *m, const char *region, const char *name)
{
    ix_stats out = {0};
    mp_cursor c;
    uint32_t n, k;
    if (!m->stats)
        return out;
    mp_cursor_init(&c, m->stats, m->stats_len);
    if (mp_read_array(&c, &n))
        return out;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p;
        uint32_t pn;
        if (mp_read_array(&c, &k) || k < 5 || mp_read_str(&c, &p, &pn))
            return out;
        for (uint32_t f = 1; f < 5; f++)
            if (mp_skip(&c, 2))
                return out;
        if (k == 6 && str_is(p, pn, region)) {
            read_index_stats(&c, name, &out);
            return out;
        }
        for (uint32_t f = 5; f < k; f++)
            if (mp_skip(&c, 8))
                return out;
    }
    return out;
}

/* One index: its definition, and per member of the view its figures from
 * the last heartbeat; entries sums the members' primary shares, so it is
 * the region's indexed keys once every member has built it. */
static void pack_index(req_ctx *x, const cmap_region *r, const cmap_index *ix)
{
    locator *lc = x->srv->locator;
    const cmap_t *m = lc->map;
    uint64_t entries = 0, bytes = 0;
    bool valid = true;
    for (size_t i = 0; i < m->nmembers; i++) {
        const lmember *lm = locator_member(lc, m->members[i].id);
        ix_stats s = lm ? member_index_stats(lm, r->name, ix->name) : (ix_stats){0};
        entries += s.primary;
        bytes += s.bytes;
        valid = valid && (!s.found || s.valid);
    }
    msgpack_pack_map(&x->pk, 8);
    mpw_kv_str(&x->pk, "name", ix->name);
    mpw_kv_str(&x->pk, "region", r->name);
    mpw_kv_str(&x->pk, "expression", ix->expr);
    mpw_kv_str(&x->pk, "type", ix->type);
    mpw_kv_uint(&x->pk, "entries", entries);
    mpw_kv_uint(&x->pk, "bytes", bytes);
    mpw_kv_bool(&x->pk, "valid", valid);
    mpw_cstr(&x->pk, "members");
    msgpack_pack_array(&x->pk, (uint32_t)m->nmembers);
    for (size_t i = 0; i < m->nmembers; i++) {
        const lmember *lm = locator_member(lc, m->members[i].id);
        ix_stats s = lm ? member_index_stats(lm, r->name, ix->name) : (ix_stats){0};
        msgpack_pack_map(&x->pk, 6);
        mpw_kv_str(&x->pk, "member", m->members[i].name);
        mpw_kv_bool(&x->pk, "built", s.found);
        mpw_kv_uint(&x->pk, "primary_entries", s.primary);
        mpw_kv_uint(&x->pk, "entries", s.entries);
        mpw_kv_uint(&x->pk, "bytes", s.bytes);
        mpw_kv_bool(&x->pk, "valid", !s.found || s.valid);
    }
}

/* INDEX_LIST [region?]: the definitions with every member's figures. */
void loc_index_list(req_ctx *x)
{
    const cmap_t *m = x->srv->locator->map;
    const cmap_region *only = NULL;
    if (x->req->argc > 0) {
        mp_cursor c;
        arg_cursor(x, 0, &c);
        if (mp_read_nil(&c) != 0 && !(only = arg_map_region(x, 0)))
            return;
    }
    uint32_t total = 0;
    for (size_t i = 0; i < m->nregions; i++)
        if (!only || &m->regions[i] == only)
            total += m->regions[i].nindexes;
    reply_head(x, ST_OK, 1);
    msgpack_pack_array(&x->pk, total);
    for (size_t i = 0; i < m->nregions; i++) {
        const cmap_region *r = &m->regions[i];
        if (only && r != only)
            continue;
        for (uint32_t k = 0; k < r->nindexes; k++)
            pack_index(x, r, &r->indexes[k]);
    }
    reply_done(x);
}

/* ---- the definitions file ----
 * After the region lines: "index REGION NAME TYPE EXPRESSION" per index,
 * the expression being the rest of the line (it may hold spaces; it holds
 * no newline: the parser refuses control characters outside strings, and
 * a newline inside a string literal is written as is, so such indexes are
 * not saved and say so). */
void locator_index_save(FILE *f, const cmap_t *m)
{
    for (size_t i = 0; i < m->nregions; i++) {
        const cmap_region *r = &m->regions[i];
        for (uint32_t k = 0; k < r->nindexes; k++) {
            const cmap_index *ix = &r->indexes[k];
            if (strchr(ix->expr, '\n')) {
                log_warn("index %s on %s is not saved: its expression holds a newline", ix->name,
                         r->name);
                continue;
            }
            fprintf(f, "index %s %s %s %s\n", r->name, ix->name, ix->type, ix->expr);
        }
    }
}

bool locator_index_load(cmap_t *m, const char *line)
{
    char region[CMAP_NAME_MAX + 1], name[CMAP_NAME_MAX + 1], type[8];
    int off = 0;
    if (strncmp(line, "index ", 6) != 0)
        return false;
    if (sscanf(line + 6, "%128s %128s %7s %n", region, name, type, &off) != 3 || off == 0) {
        log_warn("ignoring a malformed index line in the definitions file");
        return true;
    }
    char expr[CMAP_INDEX_EXPR_MAX + 1];
    snprintf(expr, sizeof expr, "%s", line + 6 + off);
    expr[strcspn(expr, "\n")] = 0;
    cmap_region *r = cmap_region_find(m, region, strlen(region));
    qerror err;
    if (!r || qindex_expr_check(expr, strlen(expr), &err) ||
        cmap_index_add(r, name, type, expr) != 0)
        log_warn("ignoring index %s on %s from the definitions file", name, region);
    return true;
}
