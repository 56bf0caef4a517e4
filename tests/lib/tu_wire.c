#include "tu_wire.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/mp.h"
#include "tu.h"

int tw_timeout(void) { return 10000 * tu_timeout_scale(); }

int tw_connect(int port) { return tw_connect_rcvbuf(port, 0); }

int tw_connect_rcvbuf(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int tw_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static void be32(uint8_t *h, uint32_t n)
{
    h[0] = (uint8_t)(n >> 24);
    h[1] = (uint8_t)(n >> 16);
    h[2] = (uint8_t)(n >> 8);
    h[3] = (uint8_t)n;
}

int tw_send_frame(int fd, const void *body, size_t n)
{
    uint8_t *f = malloc(n + 4);
    if (!f)
        return -1;
    be32(f, (uint32_t)n);
    memcpy(f + 4, body, n);
    int rc = tw_send(fd, f, n + 4);
    free(f);
    return rc;
}

void tw_msg_init(tw_msg *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

void tw_req(tw_msg *m, uint64_t id, uint32_t op, uint32_t argc)
{
    tw_msg_init(m);
    msgpack_pack_array(&m->pk, 3 + argc);
    msgpack_pack_uint8(&m->pk, 0);
    msgpack_pack_uint64(&m->pk, id);
    msgpack_pack_uint32(&m->pk, op);
}

void tw_msg_free(tw_msg *m) { msgpack_sbuffer_destroy(&m->sb); }

int tw_msg_send(int fd, tw_msg *m) { return tw_send_frame(fd, m->sb.data, m->sb.size); }

void tw_msg_append_frame(tw_msg *m, uint8_t **out, size_t *len)
{
    uint8_t *p = realloc(*out, *len + 4 + m->sb.size);
    ck_assert_ptr_nonnull(p);
    be32(p + *len, (uint32_t)m->sb.size);
    memcpy(p + *len + 4, m->sb.data, m->sb.size);
    *out = p;
    *len += 4 + m->sb.size;
}

void tw_pack_cstr(msgpack_packer *pk, const char *s) { tw_pack_str(pk, s, strlen(s)); }

void tw_pack_str(msgpack_packer *pk, const void *p, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, p, n);
}

void tw_pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, p, n);
}

void tw_pack_nested(msgpack_packer *pk, int depth)
{
    for (int i = 0; i < depth; i++)
        msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 1);
}

/* Reads exactly n bytes. 1, 0 at EOF before any byte, -1 otherwise. */
static int read_exact(int fd, uint8_t *p, size_t n, int64_t deadline)
{
    size_t got = 0;
    while (got < n) {
        int left = (int)(deadline - tu_now_ms());
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return -1;
        ssize_t r = recv(fd, p + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return got == 0 ? 0 : -1;
        if (r < 0)
            return -1;
        got += (size_t)r;
    }
    return 1;
}

int tw_read_frame(int fd, int timeout_ms, uint8_t **body, uint32_t *len)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    uint8_t h[4];
    int rc = read_exact(fd, h, 4, deadline);
    if (rc <= 0)
        return rc;
    uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (n == 0 || n > (256u << 20)) {
        fprintf(stderr, "tw_read_frame: implausible frame length %u\n", n);
        return -1;
    }
    uint8_t *b = malloc(n);
    if (!b)
        return -1;
    if (read_exact(fd, b, n, deadline) != 1) {
        fprintf(stderr, "tw_read_frame: connection ended inside a %u-byte frame\n", n);
        free(b);
        return -1;
    }
    *body = b;
    *len = n;
    return 1;
}

bool tw_wait_closed(int fd, int timeout_ms)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    uint8_t buf[4096];
    for (;;) {
        int left = (int)(deadline - tu_now_ms());
        if (left <= 0)
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return false;
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0 && errno != EINTR)
            return false;
    }
}

/* Length of the array header at p (1, 3 or 5), or 0. */
static size_t array_header_len(const uint8_t *p, size_t n)
{
    if (n >= 1 && (p[0] & 0xf0) == 0x90)
        return 1;
    if (n >= 3 && p[0] == 0xdc)
        return 3;
    if (n >= 5 && p[0] == 0xdd)
        return 5;
    return 0;
}

/* Fallback for replies too deep for msgpack-c: the envelope and the raw
 * spans of the results only (results is NULL). Uses common/mp.h. */
static int decode_deep(tw_resp *r)
{
    mp_cursor c;
    uint32_t n;
    uint64_t kind, id, status;
    mp_cursor_init(&c, r->raw, r->rawlen);
    if (mp_read_array(&c, &n) || n < 3 || mp_read_uint(&c, &kind) || kind != 1 ||
        mp_read_uint(&c, &id) || mp_read_uint(&c, &status)) {
        fprintf(stderr, "tw_recv: deep reply is not [1, id, status, ...]\n");
        return -1;
    }
    r->id = id;
    r->status = (int)status;
    r->nresults = n - 3;
    r->results = NULL;
    for (uint32_t i = 0; i < r->nresults; i++) {
        const uint8_t *start = c.p;
        if (mp_skip(&c, MP_MAX_DEPTH_LIMIT))
            return -1;
        if (i < 16) {
            r->roff[i] = (uint32_t)(start - r->raw);
            r->rlen[i] = (uint32_t)(c.p - start);
        }
    }
    return 1;
}

int tw_recv(int fd, tw_resp *r, int timeout_ms)
{
    memset(r, 0, sizeof(*r));
    msgpack_unpacked_init(&r->u);
    int rc = tw_read_frame(fd, timeout_ms, &r->raw, &r->rawlen);
    if (rc <= 0)
        return rc;
    size_t off = 0;
    if (msgpack_unpack_next(&r->u, (const char *)r->raw, r->rawlen, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        off != r->rawlen) {
        /* msgpack-c cannot nest deeper than 32; a reply carrying a value of
         * the server's maximum depth is 33 deep. Decode those by hand. */
        if (mp_check_one(r->raw, r->rawlen, MP_MAX_DEPTH_LIMIT) == 0)
            return decode_deep(r);
        fprintf(stderr, "tw_recv: reply is not exactly one MessagePack object\n");
        return -1;
    }
    msgpack_object *o = &r->u.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3 ||
        o->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        o->via.array.ptr[0].via.u64 != 1 ||
        o->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        o->via.array.ptr[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        fprintf(stderr, "tw_recv: reply is not [1, id, status, ...]\n");
        return -1;
    }
    r->id = o->via.array.ptr[1].via.u64;
    r->status = (int)o->via.array.ptr[2].via.u64;
    r->nresults = o->via.array.size - 3;
    r->results = o->via.array.ptr + 3;
    if (r->status >= 10) {
        if (r->nresults != 1 || r->results[0].type != MSGPACK_OBJECT_STR) {
            fprintf(stderr, "tw_recv: error reply without exactly one message\n");
            return -1;
        }
        snprintf(r->errmsg, sizeof(r->errmsg), "%.*s", (int)r->results[0].via.str.size,
                 r->results[0].via.str.ptr);
    }
    /* raw spans of the results */
    size_t pos = array_header_len(r->raw, r->rawlen);
    msgpack_unpacked tmp;
    msgpack_unpacked_init(&tmp);
    for (uint32_t i = 0; i < 3 + r->nresults && pos > 0; i++) {
        size_t start = pos;
        if (msgpack_unpack_next(&tmp, (const char *)r->raw, r->rawlen, &pos) !=
            MSGPACK_UNPACK_SUCCESS)
            break;
        if (i >= 3 && i - 3 < 16) {
            r->roff[i - 3] = (uint32_t)start;
            r->rlen[i - 3] = (uint32_t)(pos - start);
        }
    }
    msgpack_unpacked_destroy(&tmp);
    return 1;
}

void tw_resp_free(tw_resp *r)
{
    msgpack_unpacked_destroy(&r->u);
    free(r->raw);
    r->raw = NULL;
}

void tw_call(int fd, tw_msg *m, tw_resp *r)
{
    ck_assert_int_eq(tw_msg_send(fd, m), 0);
    int rc = tw_recv(fd, r, tw_timeout());
    ck_assert_msg(rc == 1, "no well-formed reply (rc %d)", rc);
}

void tw_hello(int fd)
{
    tw_msg m;
    tw_resp r;
    tw_req(&m, 1, 1, 4);
    tw_pack_cstr(&m.pk, "agate");
    msgpack_pack_uint8(&m.pk, 1);
    tw_pack_cstr(&m.pk, "tests");
    msgpack_pack_nil(&m.pk);
    tw_call(fd, &m, &r);
    ck_assert_msg(r.status == 0, "HELLO failed: status %d %s", r.status, r.errmsg);
    ck_assert_uint_eq(r.id, 1);
    tw_resp_free(&r);
    tw_msg_free(&m);
}

int tw_open(int port)
{
    int fd = tw_connect(port);
    ck_assert_msg(fd >= 0, "cannot connect to port %d", port);
    tw_hello(fd);
    return fd;
}

void tw_create_region(int fd, const char *name)
{
    tw_msg m;
    tw_resp r;
    tw_req(&m, 2, 10, 3);
    tw_pack_cstr(&m.pk, name);
    tw_pack_cstr(&m.pk, "PARTITION");
    msgpack_pack_map(&m.pk, 1);
    tw_pack_cstr(&m.pk, "if_not_exists");
    msgpack_pack_true(&m.pk);
    tw_call(fd, &m, &r);
    ck_assert_msg(r.status == 0, "REGION_CREATE %s failed: %d %s", name, r.status, r.errmsg);
    tw_resp_free(&r);
    tw_msg_free(&m);
}

int tw_put_raw(int fd, const char *region, const char *key, const void *value, size_t vlen)
{
    tw_msg m;
    tw_resp r;
    tw_req(&m, 3, 20, 3);
    tw_pack_cstr(&m.pk, region);
    tw_pack_cstr(&m.pk, key);
    msgpack_sbuffer_write(&m.sb, value, vlen);
    tw_call(fd, &m, &r);
    int st = r.status;
    tw_resp_free(&r);
    tw_msg_free(&m);
    return st;
}

int tw_get_raw(int fd, const char *region, const char *key, uint8_t **out, size_t *outlen)
{
    tw_msg m;
    tw_resp r;
    tw_req(&m, 4, 21, 2);
    tw_pack_cstr(&m.pk, region);
    tw_pack_cstr(&m.pk, key);
    tw_call(fd, &m, &r);
    int st = r.status;
    if (st == 0 && out) {
        ck_assert_uint_eq(r.nresults, 1);
        *out = malloc(r.rlen[0]);
        memcpy(*out, r.raw + r.roff[0], r.rlen[0]);
        *outlen = r.rlen[0];
    }
    tw_resp_free(&r);
    tw_msg_free(&m);
    return st;
}

void tw_assert_serves(int port)
{
    static unsigned counter;
    char key[64];
    snprintf(key, sizeof(key), "health-%ld-%u", (long)getpid(), counter++);
    int fd = tw_connect(port);
    ck_assert_msg(fd >= 0, "server on port %d no longer accepts connections", port);
    tw_hello(fd);
    tw_create_region(fd, "health");
    /* ["ok", 1, {"n": -2}] with a non-shortest integer encoding */
    static const uint8_t value[] = {0x93, 0xa2, 'o', 'k', 0xcd, 0x00, 0x01,
                                    0x81, 0xa1, 'n', 0xd0, 0xfe};
    ck_assert_int_eq(tw_put_raw(fd, "health", key, value, sizeof(value)), 0);
    uint8_t *got = NULL;
    size_t n = 0;
    ck_assert_int_eq(tw_get_raw(fd, "health", key, &got, &n), 0);
    ck_assert_uint_eq(n, sizeof(value));
    ck_assert_mem_eq(got, value, n);
    free(got);
    close(fd);
}

bool tw_obj_is_str(const msgpack_object *o, const char *s)
{
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

const msgpack_object *tw_map_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (tw_obj_is_str(&map->via.map.ptr[i].key, key))
            return &map->via.map.ptr[i].val;
    return NULL;
}

int tw_listen(int *port, char *addr, size_t cap)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(lfd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(lfd, 8), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    snprintf(addr, cap, "127.0.0.1:%d", *port);
    return lfd;
}
