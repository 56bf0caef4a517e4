/* session.c - the client object and its connection lifecycle: creating and
 * freeing, connecting with the HELLO handshake, and reconnecting after a
 * failure. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "client/router.h"
#include "common/mpw.h"
#include "common/proto.h"

/* Nesting a reply may have beyond the value limit: GET_ALL wraps values in
 * [[value], ...], REGION_LIST nests maps in arrays two levels deep. */
#define REPLY_EXTRA_DEPTH 4
#define HANDSHAKE_DEPTH 8

void agate_options_init(agate_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = 5000;
    o->request_timeout_ms = 10000;
    o->client_name = NULL;
}

static void reset_limits(agate_client *c)
{
    c->max_frame = AGATE_DEFAULT_MAX_FRAME;
    c->max_key = AGATE_DEFAULT_MAX_KEY;
    c->max_value = AGATE_DEFAULT_MAX_VALUE;
    c->max_depth = AGATE_DEFAULT_MAX_DEPTH;
    c->member_id = 0;
    c->max_reply = CLIENT_HANDSHAKE_MAX_REPLY;
    c->parse_depth = HANDSHAKE_DEPTH;
    c->hello_locator = 0;
    c->hello_mdv = 0;
}

/* A random 64-bit client id for event ids: getrandom, else /dev/urandom,
 * else the clock and pid (distinct enough for a fallback). Never 0. */
static uint64_t random_client_id(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v)) {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            v = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^
                ((uint64_t)getpid() << 32);
        }
        if (fd >= 0)
            close(fd);
    }
    return v ? v : 1;
}

agate_client *agate_client_new(const agate_options *opts)
{
    agate_options defaults;
    if (!opts) {
        agate_options_init(&defaults);
        opts = &defaults;
    }
    agate_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->connect_timeout_ms = opts->connect_timeout_ms;
    c->request_timeout_ms = opts->request_timeout_ms;
    if (opts->client_name) {
        c->client_name = strdup(opts->client_name);
        if (!c->client_name) {
            free(c);
            return NULL;
        }
    }
    c->fd = -1;
    c->interrupt = &c->interrupt_flag;
    c->next_id = 1; /* id 0 is the server's "no particular request" */
    c->client_id = random_client_id();
    c->next_seq = 1;
    buf_init(&c->in);
    buf_init(&c->out);
    reset_limits(c);
    return c;
}

agate_client *client_child_new(const agate_client *parent)
{
    agate_options o;
    agate_options_init(&o);
    o.connect_timeout_ms = parent->connect_timeout_ms;
    o.request_timeout_ms = parent->request_timeout_ms;
    o.client_name = parent->client_name;
    agate_client *c = agate_client_new(&o);
    if (c) {
        c->plain = 1;
        c->interrupt = parent->interrupt; /* agate_interrupt on the router reaches it */
    }
    return c;
}

#define SWAP(a, b)                                                                                 \
    do {                                                                                           \
        __typeof__(a) t_ = (a);                                                                    \
        (a) = (b);                                                                                 \
        (b) = t_;                                                                                  \
    } while (0)

void client_conn_move(agate_client *dst, agate_client *src)
{
    SWAP(dst->servers, src->servers);
    SWAP(dst->nservers, src->nservers);
    SWAP(dst->cur, src->cur);
    SWAP(dst->fd, src->fd);
    SWAP(dst->in, src->in);
    SWAP(dst->out, src->out);
    SWAP(dst->pend, src->pend);
    SWAP(dst->next_id, src->next_id);
    dst->max_frame = src->max_frame;
    dst->max_key = src->max_key;
    dst->max_value = src->max_value;
    dst->max_depth = src->max_depth;
    dst->member_id = src->member_id;
    dst->max_reply = src->max_reply;
    dst->parse_depth = src->parse_depth;
    dst->hello_locator = src->hello_locator;
    dst->hello_mdv = src->hello_mdv;
    dst->fail_rc = 0;
    src->gen++; /* anything still looping on src's connection bails out */
    reset_limits(src);
    client_servers_free(src);
}

void agate_client_free(agate_client *c)
{
    if (!c)
        return;
    /* no reconnect from the callbacks that run now */
    c->closing = 1;
    if (c->router)
        router_free(c);
    client_conn_fail(c, AGATE_EIO, "client closed");
    buf_free(&c->in);
    buf_free(&c->out);
    client_pending_free(&c->pend);
    client_servers_free(c);
    free(c->client_name);
    free(c);
}

const char *agate_server_address(const agate_client *c)
{
    if (c && c->router)
        return router_server_address(c);
    if (!c || c->fd < 0 || c->cur >= c->nservers)
        return NULL;
    return c->servers[c->cur].addr;
}

int client_check_blocking(agate_client *c, const char *what)
{
    if (c->cb_depth > 0)
        return client_err(c, AGATE_EINVAL, "%s cannot be called from a reply callback",
                          what ? what : "this call");
    return 0;
}

/* ---- Handshake -------------------------------------------------------- */

static uint32_t clamp32(uint64_t v) { return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v; }

static bool key_is(const uint8_t *k, uint32_t klen, const char *name)
{
    size_t n = strlen(name);
    return klen == n && memcmp(k, name, n) == 0;
}

/* Reads the limits we rely on from the HELLO info map; other keys (server
 * name, version, ...) are informational and skipped. */
static int hello_ok(agate_client *c, client_call *call, const msg_response *r, uintptr_t aux)
{
    mp_cursor cur = r->results;
    uint32_t n;
    if (r->nresults < 1 || mp_read_map(&cur, &n))
        return client_bad_reply(c, "HELLO reply is not a map");
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k;
        uint32_t klen;
        if (mp_read_str(&cur, &k, &klen))
            return client_bad_reply(c, "HELLO reply has a non-string key");
        uint64_t v;
        mp_type t;
        if (mp_peek_type(&cur, &t))
            return client_bad_reply(c, "truncated HELLO reply");
        bool numeric = t == MP_UINT;
        if (numeric && mp_read_uint(&cur, &v))
            return client_bad_reply(c, "truncated HELLO reply");
        if (!numeric && t == MP_STR && key_is(k, klen, "role")) {
            const uint8_t *role;
            uint32_t rlen;
            if (mp_read_str(&cur, &role, &rlen))
                return client_bad_reply(c, "truncated HELLO reply");
            c->hello_locator = key_is(role, rlen, "locator");
            continue;
        }
        if (!numeric) {
            if (mp_skip(&cur, HANDSHAKE_DEPTH))
                return client_bad_reply(c, "malformed HELLO reply");
            if (key_is(k, klen, "max_frame") || key_is(k, klen, "protocol"))
                return client_bad_reply(c, "HELLO reply has a non-integer limit");
            continue;
        }
        if (key_is(k, klen, "protocol") && v != AGATE_PROTO_VERSION)
            return client_err(c, AGATE_EVERSION, "server speaks protocol %llu, we speak %d",
                              (unsigned long long)v, AGATE_PROTO_VERSION);
        else if (key_is(k, klen, "max_frame") && v > 0)
            c->max_frame = clamp32(v);
        else if (key_is(k, klen, "max_key"))
            c->max_key = clamp32(v);
        else if (key_is(k, klen, "max_value"))
            c->max_value = clamp32(v);
        else if (key_is(k, klen, "max_depth"))
            c->max_depth = clamp32(v);
        else if (key_is(k, klen, "member_id"))
            c->member_id = clamp32(v);
        else if (key_is(k, klen, "metadata_version"))
            c->hello_mdv = v;
    }
    return 0;
}

static int handshake(agate_client *c)
{
    client_call call;
    client_req rq;
    client_call_init(&call, hello_ok, NULL);
    int rc = client_req_begin(c, &rq, OP_HELLO, 4, client_call_done, NULL, &call, 0);
    if (rc)
        return rc;
    const char *name = c->client_name ? c->client_name : "";
    int e = mpw_cstr(&rq.pk, AGATE_PROTO_MAGIC);
    e |= msgpack_pack_uint8(&rq.pk, AGATE_PROTO_VERSION);
    e |= mpw_cstr(&rq.pk, name);
    e |= msgpack_pack_nil(&rq.pk);
    rc = client_call_end(c, &call, &rq, e);
    if (rc)
        return rc;
    /* the handshake is part of connecting: it gets the connect timeout, or
     * the request timeout when connecting is unbounded (a peer that accepts
     * and says nothing must not hang us; the kernel never would) */
    int saved = c->request_timeout_ms;
    if (c->connect_timeout_ms > 0)
        c->request_timeout_ms = c->connect_timeout_ms;
    rc = client_call_wait(c, &call);
    c->request_timeout_ms = saved;
    return rc;
}

/* Connects to servers[idx] and shakes hands. */
static int connect_one(agate_client *c, size_t idx)
{
    const client_server *s = &c->servers[idx];
    char err[256];
    c->cur = idx;
    int fd = client_sock_connect(s->host, s->port, c->connect_timeout_ms, err, sizeof(err));
    if (fd < 0)
        return client_err(c, AGATE_ECONNECT, "%s: %s", s->addr, err);
    c->fd = fd;
    c->fail_rc = 0;
    buf_reset(&c->in);
    buf_reset(&c->out);
    reset_limits(c);
    c->handshaking = 1;
    int rc = handshake(c);
    if (rc) {
        char why[CLIENT_ERRMSG_MAX];
        const char *msg = c->errmsg;
        size_t alen = strlen(s->addr);
        if (strncmp(msg, s->addr, alen) == 0 && msg[alen] == ':' && msg[alen + 1] == ' ')
            msg += alen + 2; /* we add the address ourselves */
        snprintf(why, sizeof(why), "%s", msg);
        c->handshaking = 0;
        client_conn_fail(c, rc, "%s", why); /* nothing else is outstanding */
        /* a silent or vanishing peer is "could not connect"; a peer that
         * answered with an error (version, protocol) is reported as such */
        if (rc == AGATE_EIO || rc == AGATE_ETIMEDOUT)
            rc = AGATE_ECONNECT;
        return client_err(c, rc, "%s: handshake: %s", s->addr, why);
    }
    c->handshaking = 0;
    c->max_reply = c->max_frame > CLIENT_MAX_REPLY ? c->max_frame : CLIENT_MAX_REPLY;
    uint64_t depth = (uint64_t)c->max_depth + REPLY_EXTRA_DEPTH; /* no wrap on a huge claim */
    c->parse_depth = depth > MP_MAX_DEPTH_LIMIT - 1 ? MP_MAX_DEPTH_LIMIT - 1 : (int)depth;
    return 0;
}

int client_connect_from(agate_client *c, size_t first)
{
    char all[CLIENT_ERRMSG_MAX] = "";
    size_t used = 0;
    int result = AGATE_ECONNECT;
    size_t n = c->nservers;
    for (size_t i = 0; i < n; i++) {
        size_t idx = (first + i) % n;
        int rc = connect_one(c, idx);
        if (rc == 0)
            return 0;
        if (rc != AGATE_ECONNECT)
            result = rc;
        int w = snprintf(all + used, sizeof(all) - used, "%s%s", used ? "; " : "", c->errmsg);
        if (w > 0)
            used = used + (size_t)w >= sizeof(all) ? sizeof(all) - 1 : used + (size_t)w;
    }
    /* the next attempt starts over at first */
    c->cur = (first + n - 1) % n;
    return client_err(c, result, "%s", all);
}

int client_ensure_conn(agate_client *c)
{
    if (c->fd >= 0)
        return 0;
    /* Reconnecting blocks and reads; not from inside a callback, and not
     * from the callbacks of the requests a failure is completing. */
    if (c->failing || c->closing || c->cb_depth > 0)
        return client_err(c, AGATE_EIO, "connection lost: %s", c->failmsg);
    if (c->nservers == 0)
        return client_err(c, AGATE_ECONNECT, "not connected (call agate_connect first)");
    return client_connect_from(c, (c->cur + 1) % c->nservers);
}

int agate_connect(agate_client *c, const char *servers)
{
    if (!c)
        return AGATE_EINVAL;
    int rc = client_check_blocking(c, "agate_connect");
    if (rc)
        return rc;
    if (!servers)
        return client_err(c, AGATE_EINVAL, "no server list");
    rc = client_servers_parse(c, servers);
    if (rc)
        return rc; /* the previous list and connection are kept */
    c->cur = 0;    /* an index into the old list means nothing now */
    if (c->router)
        router_free(c); /* a new agate_connect starts over, cluster or not */
    if (c->fd >= 0)
        client_conn_fail(c, AGATE_EIO, "agate_connect: dropping the previous connection");
    rc = client_connect_from(c, 0);
    /* a locator, or a member of a cluster: route over the cluster */
    if (!rc && !c->plain)
        rc = router_detect(c);
    return rc;
}
