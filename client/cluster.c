/* cluster.c - the public cluster API: connecting through locators and the
 * administration calls sent to the locator (docs/cluster.md, "Opcodes").
 * The admin calls hand back the locator's MessagePack result as is. */
#include <string.h>

#include "client/router.h"
#include "common/mpw.h"
#include "common/proto.h"

int agate_connect_locator(agate_client *c, const char *locators)
{
    if (!c)
        return AGATE_EINVAL;
    int rc = client_check_blocking(c, "agate_connect_locator");
    if (rc)
        return rc;
    if (!locators)
        return client_err(c, AGATE_EINVAL, "no locator list");
    return router_connect_locators(c, locators);
}

int agate_is_cluster(const agate_client *c) { return c && c->router ? 1 : 0; }

/* The locator connection of a routing client, or an error: not a cluster,
 * called from a callback, no locator known. */
static int locator_of(agate_client *c, const char *what, agate_client **out)
{
    if (!c->router)
        return client_err(c, AGATE_EINVAL, "not connected to a cluster");
    return router_admin(c, what, out);
}

/* Sends op to the locator with at most one argument: a string (name), or
 * an options map {opt: flag} (opt not NULL); on_ok reads the result. */
static int admin_call(agate_client *c, const char *what, int op, const char *name,
                      const char *opt, int flag, client_ok_fn on_ok, void *out)
{
    agate_client *admin = NULL;
    int rc = locator_of(c, what, &admin);
    if (rc)
        return rc;
    client_call call;
    client_req rq;
    client_call_init(&call, on_ok, out);
    rc = client_call_begin(admin, &call, &rq, op, (name || opt) ? 1 : 0, 0);
    if (!rc) {
        int e = 0;
        if (name)
            e = mpw_cstr(&rq.pk, name);
        else if (opt)
            e = msgpack_pack_map(&rq.pk, 1) | mpw_kv_bool(&rq.pk, opt, flag != 0);
        rc = client_call_end(admin, &call, &rq, e);
    }
    if (!rc)
        rc = client_call_wait(admin, &call);
    return router_pass(c, admin, rc);
}

/* Checks and zeroes an agate_buf output. */
static int out_buf(agate_client *c, agate_buf *out)
{
    if (!c)
        return AGATE_EINVAL;
    if (!out)
        return client_err(c, AGATE_EINVAL, "no output buffer");
    memset(out, 0, sizeof(*out));
    return 0;
}

int agate_cluster_status(agate_client *c, agate_buf *out)
{
    int rc = out_buf(c, out);
    return rc ? rc
              : admin_call(c, "agate_cluster_status", OP_CLUSTER_STATUS, NULL, NULL, 0, client_ok_value,
                           out);
}

int agate_member_list(agate_client *c, agate_buf *out)
{
    int rc = out_buf(c, out);
    return rc ? rc
              : admin_call(c, "agate_member_list", OP_MEMBER_LIST, NULL, NULL, 0, client_ok_value, out);
}

int agate_member_describe(agate_client *c, const char *name, agate_buf *out)
{
    int rc = out_buf(c, out);
    if (!rc && !name)
        rc = client_err(c, AGATE_EINVAL, "no member name");
    return rc ? rc
              : admin_call(c, "agate_member_describe", OP_MEMBER_DESCRIBE, name, NULL, 0, client_ok_value,
                           out);
}

int agate_rebalance(agate_client *c, int simulate, agate_buf *out)
{
    int rc = out_buf(c, out);
    return rc ? rc
              : admin_call(c, "agate_rebalance", OP_REBALANCE, NULL, "simulate", simulate, client_ok_value,
                           out);
}

int agate_rebalance_status(agate_client *c, agate_buf *out)
{
    int rc = out_buf(c, out);
    return rc ? rc
              : admin_call(c, "agate_rebalance_status", OP_REBALANCE_STATUS, NULL, NULL, 0,
                           client_ok_value, out);
}

int agate_shutdown_cluster(agate_client *c, int include_locators, uint64_t *stopped)
{
    if (!c)
        return AGATE_EINVAL;
    if (stopped)
        *stopped = 0;
    return admin_call(c, "agate_shutdown_cluster", OP_SHUTDOWN, NULL, "include_locators",
                      include_locators, client_ok_uint, stopped);
}
