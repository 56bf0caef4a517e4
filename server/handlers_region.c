/* Region administration: create, destroy, list, describe. */
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/mpw.h"
#include "common/proto.h"
#include "server/handlers.h"
#include "server/registry.h"

static int key_is(const uint8_t *p, uint32_t n, const char *s)
{
    return strlen(s) == n && memcmp(p, s, n) == 0;
}

/* Reads REGION_CREATE's options map into cfg / *if_not_exists. */
static int read_create_options(req_ctx *x, region_config *cfg, bool *if_not_exists)
{
    mp_cursor c;
    uint32_t n;
    arg_cursor(x, 2, &c);
    if (mp_read_nil(&c) == 0)
        return 0;
    if (mp_read_map(&c, &n)) {
        reply_error(x, ST_BAD_REQUEST, "REGION_CREATE: options must be a map");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k;
        uint32_t klen;
        uint64_t u;
        if (mp_read_str(&c, &k, &klen)) {
            reply_error(x, ST_BAD_REQUEST, "REGION_CREATE: option names must be strings");
            return -1;
        }
        if (key_is(k, klen, "if_not_exists")) {
            if (mp_read_bool(&c, if_not_exists))
                goto bad_type;
        } else if (key_is(k, klen, "redundant_copies") || key_is(k, klen, "total_num_buckets")) {
            if (mp_read_uint(&c, &u))
                goto bad_type;
            uint32_t v = u > UINT32_MAX ? UINT32_MAX : (uint32_t)u;
            if (k[0] == 'r')
                cfg->redundant_copies = v;
            else
                cfg->total_num_buckets = v;
        } else {
            reply_error(x, ST_BAD_ARGUMENT, "REGION_CREATE: unknown option '%.*s'", (int)klen, k);
            return -1;
        }
        continue;
    bad_type:
        reply_error(x, ST_BAD_REQUEST, "REGION_CREATE: option '%.*s' has the wrong type",
                    (int)klen, k);
        return -1;
    }
    return 0;
}

int region_create_args(req_ctx *x, region_config *cfg, bool *if_not_exists)
{
    const uint8_t *p, *t;
    uint32_t n, tn;
    if (arg_str(x, 0, &p, &n) || arg_str(x, 1, &t, &tn))
        return -1;
    size_t len = n;
    if (region_name_check(&p, &len)) {
        reply_error(x, ST_BAD_ARGUMENT,
                    "invalid region name '%.*s': use 1-128 characters of A-Z a-z 0-9 _ . -",
                    (int)(n > 64 ? 64 : n), p);
        return -1;
    }
    memset(cfg, 0, sizeof(*cfg));
    memcpy(cfg->name, p, len);
    if (region_type_parse((const char *)t, tn, &cfg->type)) {
        reply_error(x, ST_BAD_ARGUMENT,
                    "unknown region type '%.*s'; expected PARTITION, PARTITION_REDUNDANT, "
                    "PARTITION_PERSISTENT, PARTITION_REDUNDANT_PERSISTENT, REPLICATE or "
                    "REPLICATE_PERSISTENT",
                    (int)(tn > 64 ? 64 : tn), t);
        return -1;
    }
    cfg->redundant_copies = region_type_default_copies(cfg->type);
    cfg->total_num_buckets = AGATE_DEFAULT_BUCKETS;
    *if_not_exists = false;
    if (x->req->argc > 2 && read_create_options(x, cfg, if_not_exists))
        return -1;
    const char *why;
    if (region_config_check(cfg, &why)) {
        reply_error(x, ST_BAD_ARGUMENT, "region '%s': %s", cfg->name, why);
        return -1;
    }
    return 0;
}

void handle_region_create(req_ctx *x)
{
    region_config cfg;
    bool if_not_exists;
    region_type existing;
    if (x->srv->clustered) {
        reply_error(x, ST_BAD_REQUEST, "this server is a member of a cluster: create regions "
                                       "through its locator (%s)", x->srv->cfg.locators[0]);
        return;
    }
    if (region_create_args(x, &cfg, &if_not_exists))
        return;
    int rc = registry_create(x->srv->registry, &cfg, if_not_exists, &existing);
    if (rc == -EEXIST) {
        reply_error(x, ST_REGION_EXISTS, "region '%s' already exists (type %s)", cfg.name,
                    region_type_name(existing));
        return;
    }
    if (rc < 0) {
        reply_error(x, ST_NO_MEMORY, "out of memory creating region '%s'", cfg.name);
        return;
    }
    if (rc == REG_CREATED)
        log_info("created region %s type=%s redundant-copies=%u total-num-buckets=%u", cfg.name,
                 region_type_name(cfg.type), cfg.redundant_copies, cfg.total_num_buckets);
    reply_status(x, ST_OK);
}

void handle_region_destroy(req_ctx *x)
{
    const uint8_t *p;
    uint32_t n;
    if (x->srv->clustered) {
        reply_error(x, ST_BAD_REQUEST, "this server is a member of a cluster: destroy regions "
                                       "through its locator (%s)", x->srv->cfg.locators[0]);
        return;
    }
    if (arg_str(x, 0, &p, &n))
        return;
    size_t len = n;
    if (region_name_check(&p, &len)) {
        reply_error(x, ST_BAD_ARGUMENT, "REGION_DESTROY: invalid region name '%.*s'",
                    (int)(n > 64 ? 64 : n), p);
        return;
    }
    if (registry_destroy(x->srv->registry, p, len)) {
        reply_error(x, ST_UNKNOWN_REGION, "region '%.*s' not found", (int)len, p);
        return;
    }
    log_info("destroyed region %.*s", (int)len, p);
    reply_status(x, ST_OK);
}

/* The region info map of docs/protocol.md. */
static void pack_region_info(req_ctx *x, region_t *r)
{
    msgpack_packer *pk = &x->pk;
    const region_config *cfg = region_cfg(r);
    uint64_t entries = region_size(r);
    msgpack_pack_map(pk, 9);
    mpw_kv_str(pk, "name", cfg->name);
    mpw_kv_str(pk, "type", region_type_name(cfg->type));
    mpw_kv_uint(pk, "redundant_copies", cfg->redundant_copies);
    mpw_kv_uint(pk, "total_num_buckets", cfg->total_num_buckets);
    mpw_kv_bool(pk, "partitioned", region_type_partitioned(cfg->type));
    mpw_kv_bool(pk, "persistent", region_type_persistent(cfg->type));
    mpw_kv_uint(pk, "entries", entries);
    mpw_kv_uint(pk, "bytes", region_bytes(r));
    /* one member for now: it holds every bucket, all as primary */
    mpw_cstr(pk, "members");
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 5);
    mpw_kv_str(pk, "member", x->srv->cfg.name);
    mpw_kv_uint(pk, "member_id", x->srv->member_id);
    mpw_kv_uint(pk, "buckets", cfg->total_num_buckets);
    mpw_kv_uint(pk, "primary_buckets", cfg->total_num_buckets);
    mpw_kv_uint(pk, "entries", entries);
}

void handle_region_describe(req_ctx *x)
{
    region_t *r;
    if (arg_region(x, 0, &r))
        return;
    reply_head(x, ST_OK, 1);
    pack_region_info(x, r);
    reply_done(x);
}

void handle_region_list(req_ctx *x)
{
    const registry_view *v = registry_snapshot(x->srv->registry);
    size_t n = registry_view_count(v);
    reply_head(x, ST_OK, 1);
    msgpack_pack_array(&x->pk, n);
    for (size_t i = 0; i < n; i++)
        pack_region_info(x, registry_view_at(v, i));
    reply_done(x);
}
