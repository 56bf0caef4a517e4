/* region.c - region types and the region administration calls. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/client.h"
#include "client/router.h"
#include "common/mpw.h"
#include "common/proto.h"

/* Indexed by agate_region_type; Geode's names, as on the wire. */
static const char *const type_names[] = {
    [AGATE_PARTITION] = "PARTITION",
    [AGATE_PARTITION_REDUNDANT] = "PARTITION_REDUNDANT",
    [AGATE_PARTITION_PERSISTENT] = "PARTITION_PERSISTENT",
    [AGATE_PARTITION_REDUNDANT_PERSISTENT] = "PARTITION_REDUNDANT_PERSISTENT",
    [AGATE_REPLICATE] = "REPLICATE",
    [AGATE_REPLICATE_PERSISTENT] = "REPLICATE_PERSISTENT",
};
#define NTYPES (sizeof(type_names) / sizeof(type_names[0]))

const char *agate_region_type_name(agate_region_type t)
{
    return (unsigned)t < NTYPES ? type_names[t] : NULL;
}

int agate_region_type_parse(const char *name, agate_region_type *out)
{
    if (!name || !out)
        return AGATE_EINVAL;
    for (size_t i = 0; i < NTYPES; i++) {
        if (strcasecmp(name, type_names[i]) == 0) {
            *out = (agate_region_type)i;
            return 0;
        }
    }
    return AGATE_EINVAL;
}

void agate_region_config_init(agate_region_config *cfg, const char *name, agate_region_type type)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->name = name;
    cfg->type = type;
    cfg->redundant_copies = -1;
    cfg->total_num_buckets = 0;
    cfg->if_not_exists = 0;
}

/* The options map holds only what differs from the server's defaults. */
static int pack_options(msgpack_packer *pk, const agate_region_config *cfg)
{
    uint32_t n = (cfg->redundant_copies >= 0) + (cfg->total_num_buckets > 0) +
                 (cfg->if_not_exists != 0);
    int e = msgpack_pack_map(pk, n);
    if (cfg->redundant_copies >= 0)
        e |= mpw_cstr(pk, "redundant_copies") | msgpack_pack_int(pk, cfg->redundant_copies);
    if (cfg->total_num_buckets > 0)
        e |= mpw_cstr(pk, "total_num_buckets") | msgpack_pack_int(pk, cfg->total_num_buckets);
    if (cfg->if_not_exists)
        e |= mpw_cstr(pk, "if_not_exists") | msgpack_pack_true(pk);
    return e;
}

int agate_region_create(agate_client *c, const agate_region_config *cfg)
{
    if (!c)
        return AGATE_EINVAL;
    if (!cfg || !cfg->name)
        return client_err(c, AGATE_EINVAL, "no region config or name");
    const char *type = agate_region_type_name(cfg->type);
    if (!type)
        return client_err(c, AGATE_EINVAL, "unknown region type %d", (int)cfg->type);
    if (cfg->redundant_copies < -1 || cfg->total_num_buckets < 0)
        return client_err(c, AGATE_EINVAL, "negative redundant_copies or total_num_buckets");
    if (c->router)
        return router_region_create(c, cfg);
    client_call call;
    client_req rq;
    client_call_init(&call, NULL, NULL);
    int rc = client_call_begin(c, &call, &rq, OP_REGION_CREATE, 3, 0);
    if (rc)
        return rc;
    int e = mpw_cstr(&rq.pk, cfg->name) | mpw_cstr(&rq.pk, type) | pack_options(&rq.pk, cfg);
    rc = client_call_end(c, &call, &rq, e);
    return rc ? rc : client_call_wait(c, &call);
}

int agate_region_destroy(agate_client *c, const char *name)
{
    if (!c)
        return AGATE_EINVAL;
    if (!name)
        return client_err(c, AGATE_EINVAL, "no region name");
    if (c->router)
        return router_region_destroy(c, name);
    client_call call;
    client_call_init(&call, NULL, NULL);
    return client_simple_call(c, &call, OP_REGION_DESTROY, name);
}

static int ok_describe(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    if (r->nresults < 1)
        return client_bad_reply(c, "REGION_DESCRIBE reply without a region info");
    agate_region_info *info = calloc(1, sizeof(*info));
    if (!info)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    mp_cursor cur = r->results;
    int rc = client_region_info_parse(c, &cur, info);
    if (rc) {
        free(info);
        return rc;
    }
    *(agate_region_info **)call->out = info;
    return 0;
}

int agate_region_describe(agate_client *c, const char *name, agate_region_info **out)
{
    if (!c)
        return AGATE_EINVAL;
    if (!name || !out)
        return client_err(c, AGATE_EINVAL, "no region name or output");
    *out = NULL;
    if (c->router)
        return router_region_describe(c, name, out);
    client_call call;
    client_call_init(&call, ok_describe, out);
    return client_simple_call(c, &call, OP_REGION_DESCRIBE, name);
}

void agate_region_info_free(agate_region_info *info)
{
    if (!info)
        return;
    client_region_info_clear(info);
    free(info);
}

static int ok_list(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    mp_cursor cur = r->results;
    uint32_t n;
    if (r->nresults < 1 || mp_read_array(&cur, &n))
        return client_bad_reply(c, "REGION_LIST reply is not an array");
    /* n is bounded by the reply's size */
    agate_region_info *infos = calloc(n ? n : 1, sizeof(*infos));
    if (!infos)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        int rc = client_region_info_parse(c, &cur, &infos[i]);
        if (rc) {
            agate_region_list_free(infos, i);
            return rc;
        }
    }
    *(agate_region_info **)call->out = infos;
    *(size_t *)call->out2 = n;
    return 0;
}

int agate_region_list(agate_client *c, agate_region_info **out, size_t *n)
{
    if (!c)
        return AGATE_EINVAL;
    if (!out || !n)
        return client_err(c, AGATE_EINVAL, "no output");
    *out = NULL;
    *n = 0;
    if (c->router)
        return router_region_list(c, out, n);
    client_call call;
    client_call_init(&call, ok_list, out);
    call.out2 = n;
    return client_simple_call(c, &call, OP_REGION_LIST, NULL);
}

void agate_region_list_free(agate_region_info *infos, size_t n)
{
    if (!infos)
        return;
    for (size_t i = 0; i < n; i++)
        client_region_info_clear(&infos[i]);
    free(infos);
}
