/* error.c - error codes, their text, and the wire status -> code mapping. */
#include <stdio.h>
#include <string.h>

#include "client/client.h"
#include "common/proto.h"

const char *agate_strerror(int err)
{
    switch (err) {
    case AGATE_OK: return "success";
    case AGATE_ENOTFOUND: return "not found";
    case AGATE_EINVAL: return "invalid argument";
    case AGATE_ENOMEM: return "out of memory";
    case AGATE_ECONNECT: return "cannot connect to any server";
    case AGATE_EIO: return "connection lost";
    case AGATE_ETIMEDOUT: return "timed out";
    case AGATE_EPROTO: return "protocol error";
    case AGATE_EUNKNOWN_REGION: return "unknown region";
    case AGATE_EREGION_EXISTS: return "region exists";
    case AGATE_ETOO_LARGE: return "too large";
    case AGATE_ETOO_DEEP: return "value nested too deeply";
    case AGATE_EBAD_VALUE: return "bad value";
    case AGATE_EBAD_REQUEST: return "bad request";
    case AGATE_EBAD_ARGUMENT: return "bad argument";
    case AGATE_EVERSION: return "protocol version mismatch";
    case AGATE_ESHUTTING_DOWN: return "server shutting down";
    case AGATE_ESERVER: return "internal server error";
    case AGATE_EREDIRECT: return "not primary for the key";
    case AGATE_EUNAVAILABLE: return "the cluster cannot serve the key now";
    case AGATE_ECANCELLED: return "cancelled";
    case AGATE_EINDEX_EXISTS: return "index exists";
    default: return "unknown error";
    }
}

int client_err(agate_client *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    return rc;
}

int client_status_error(int status)
{
    switch (status) {
    case ST_NOT_FOUND: return AGATE_ENOTFOUND;
    case ST_REDIRECT: return AGATE_EREDIRECT;
    case ST_BAD_REQUEST: return AGATE_EBAD_REQUEST;
    case ST_UNKNOWN_REGION: return AGATE_EUNKNOWN_REGION;
    case ST_REGION_EXISTS: return AGATE_EREGION_EXISTS;
    case ST_TOO_LARGE: return AGATE_ETOO_LARGE;
    case ST_TOO_DEEP: return AGATE_ETOO_DEEP;
    case ST_BAD_VALUE: return AGATE_EBAD_VALUE;
    case ST_BAD_VERSION: return AGATE_EVERSION;
    /* we always say HELLO first: a server that disagrees is not following
     * the protocol as we understand it */
    case ST_NO_HANDSHAKE: return AGATE_EPROTO;
    case ST_SHUTTING_DOWN: return AGATE_ESHUTTING_DOWN;
    case ST_INTERNAL: return AGATE_ESERVER;
    case ST_BAD_ARGUMENT: return AGATE_EBAD_ARGUMENT;
    /* the server ran out of memory, not us; the message says so */
    case ST_NO_MEMORY: return AGATE_ESERVER;
    /* the member cannot serve the bucket right now: a router retries */
    case ST_UNAVAILABLE: return AGATE_EUNAVAILABLE;
    case ST_CANCELLED: return AGATE_ECANCELLED;
    case ST_INDEX_EXISTS: return AGATE_EINDEX_EXISTS;
    default:
        /* an unknown error status from a newer server is still an error;
         * an unknown outcome (3..9) is something we cannot interpret */
        return status >= ST_BAD_REQUEST ? AGATE_ESERVER : AGATE_EPROTO;
    }
}

void client_status_message(const msg_response *r, char *dst, size_t cap)
{
    const char *name = proto_status_name(r->status);
    if (r->errmsg && r->errmsg_len > 0) {
        snprintf(dst, cap, "%s: %.*s", name, (int)(r->errmsg_len > 4096 ? 4096 : r->errmsg_len),
                 (const char *)r->errmsg);
    } else if (r->status == ST_NOT_FOUND) {
        snprintf(dst, cap, "not found");
    } else {
        snprintf(dst, cap, "%s (status %d)", name, r->status);
    }
}

const char *agate_errmsg(const agate_client *c)
{
    if (!c)
        return "no client";
    return c->errmsg[0] ? c->errmsg : "no error";
}
