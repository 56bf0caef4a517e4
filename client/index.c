/* index.c - index administration (docs/client.md, "Indexes"): create,
 * destroy and list indexes of a region. A cluster keeps index definitions
 * in its cluster map, so a clustered client sends these to the locator,
 * like region definitions. */
#include <string.h>

#include "client/client.h"
#include "client/router.h"
#include "common/mpw.h"
#include "common/proto.h"

static int index_create_one(agate_client *c, const char *region, const char *name,
                            const char *expression, const char *type)
{
    client_call call;
    client_req rq;
    client_call_init(&call, NULL, NULL);
    int rc = client_call_begin(c, &call, &rq, OP_INDEX_CREATE, 4, 0);
    if (rc)
        return rc;
    int e = mpw_cstr(&rq.pk, region) | mpw_cstr(&rq.pk, name) | mpw_cstr(&rq.pk, expression) |
            (type ? mpw_cstr(&rq.pk, type) : msgpack_pack_nil(&rq.pk));
    rc = client_call_end(c, &call, &rq, e);
    return rc ? rc : client_call_wait(c, &call);
}

int agate_index_create(agate_client *c, const char *region, const char *name,
                       const char *expression, const char *type)
{
    if (!c)
        return AGATE_EINVAL;
    if (!region || !name || !expression)
        return client_err(c, AGATE_EINVAL, "no region, index name or expression");
    if (c->router) {
        agate_client *admin;
        int rc = router_admin(c, "agate_index_create", &admin);
        return rc ? rc
                  : router_pass(c, admin,
                                agate_index_create(admin, region, name, expression, type));
    }
    return index_create_one(c, region, name, expression, type);
}

int agate_index_destroy(agate_client *c, const char *region, const char *name)
{
    if (!c)
        return AGATE_EINVAL;
    if (!region || !name)
        return client_err(c, AGATE_EINVAL, "no region or index name");
    if (c->router) {
        agate_client *admin;
        int rc = router_admin(c, "agate_index_destroy", &admin);
        return rc ? rc : router_pass(c, admin, agate_index_destroy(admin, region, name));
    }
    client_call call;
    client_req rq;
    client_call_init(&call, NULL, NULL);
    int rc = client_call_begin(c, &call, &rq, OP_INDEX_DESTROY, 2, 0);
    if (rc)
        return rc;
    int e = mpw_cstr(&rq.pk, region) | mpw_cstr(&rq.pk, name);
    rc = client_call_end(c, &call, &rq, e);
    return rc ? rc : client_call_wait(c, &call);
}

int agate_index_list(agate_client *c, const char *region, agate_buf *out)
{
    if (!c || !out)
        return c ? client_err(c, AGATE_EINVAL, "no output buffer") : AGATE_EINVAL;
    memset(out, 0, sizeof(*out));
    if (c->router) {
        agate_client *admin;
        int rc = router_admin(c, "agate_index_list", &admin);
        return rc ? rc : router_pass(c, admin, agate_index_list(admin, region, out));
    }
    client_call call;
    client_call_init(&call, client_ok_value, out);
    return client_simple_call(c, &call, OP_INDEX_LIST, region);
}
