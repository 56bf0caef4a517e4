/* Integration tests of libagate (client/include/agate/agate.h) against real
 * agated processes: every public function, batching against a small frame
 * limit, paging, asynchronous requests, timeouts (a SIGSTOPped server),
 * connection loss (a SIGKILLed server) with failover to the next server of
 * the list, and the mapping of server errors to AGATE_E* codes. A few tests
 * use a fake server (a thread on a local socket) to provoke protocol
 * errors a real server never makes. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agate/agate.h"
#include "tu.h"
#include "tu_server.h"
#include "tu_wire.h"

/* Shared servers of the "api" test case: srv (defaults) and small (small
 * limits). Started by the unchecked fixture in the parent process. */
static tu_server srv, small;

static const char *const small_args[] = {"--max-frame-size=65536", "--max-key-size=64",
                                         "--max-value-size=8192", "--max-depth=4", NULL};

static void start_servers(void)
{
    memset(&srv, 0, sizeof(srv));
    memset(&small, 0, sizeof(small));
    ck_assert_msg(tu_server_start(&srv, "capi", NULL) == 0, "cannot start agated");
    ck_assert_msg(tu_server_start(&small, "csmall", small_args) == 0, "cannot start agated");
}

static void stop_one(tu_server *s)
{
    char why[512];
    bool clean = tu_server_sanitizer_clean(s, why, sizeof(why));
    int rc = tu_server_stop(s, 15000 * tu_timeout_scale());
    if (rc != 0)
        tu_fail_outside("agated (%s) did not stop cleanly", s->name);
    if (!clean)
        tu_fail_outside("agated (%s) reported: %s", s->name, why);
    tu_server_cleanup(s, rc != 0 || !clean);
}

static void stop_servers(void)
{
    stop_one(&srv);
    stop_one(&small);
}

/* ---- helpers ---- */

static int timeout_ms(void) { return 10000 * tu_timeout_scale(); }

static agate_client *client_for(const char *servers)
{
    agate_options o;
    agate_options_init(&o);
    o.request_timeout_ms = timeout_ms();
    o.client_name = "tests";
    agate_client *c = agate_client_new(&o);
    ck_assert_ptr_nonnull(c);
    int rc = agate_connect(c, servers);
    ck_assert_msg(rc == 0, "connect %s: %d %s", servers, rc, agate_errmsg(c));
    return c;
}

#define CK_OK(c, call)                                                                             \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        ck_assert_msg(rc_ >= 0, "%s = %d (%s): %s", #call, rc_, agate_strerror(rc_),               \
                      agate_errmsg(c));                                                            \
    } while (0)

/* One encoded MessagePack value in a static buffer (tests are serial). */
typedef struct val {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} val;

static msgpack_packer *val_begin(val *v)
{
    msgpack_sbuffer_init(&v->sb);
    msgpack_packer_init(&v->pk, &v->sb, msgpack_sbuffer_write);
    return &v->pk;
}
static void val_free(val *v) { msgpack_sbuffer_destroy(&v->sb); }

static void ensure_region(agate_client *c, const char *name)
{
    agate_region_config cfg;
    agate_region_config_init(&cfg, name, AGATE_PARTITION);
    cfg.if_not_exists = 1;
    CK_OK(c, agate_region_create(c, &cfg));
}

static int put_str(agate_client *c, const char *region, const char *key, const char *s)
{
    val v;
    msgpack_packer *pk = val_begin(&v);
    msgpack_pack_str_with_body(pk, s, strlen(s));
    int rc = agate_put(c, region, key, strlen(key), v.sb.data, v.sb.size);
    val_free(&v);
    return rc;
}

/* A port with nothing listening (bound, then closed). */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* ======================================================================
 * basics
 * ====================================================================== */

START_TEST(strerror_and_types)
{
    for (int e = 0; e >= AGATE_EREDIRECT; e--) {
        const char *s = agate_strerror(e);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_gt(strlen(s), 0);
        for (int f = 0; f > e; f--)
            ck_assert_msg(strcmp(s, agate_strerror(f)) != 0, "codes %d and %d share text", e, f);
    }
    ck_assert_ptr_nonnull(agate_strerror(-1000));
    ck_assert_ptr_nonnull(agate_strerror(5));
    static const char *names[] = {"PARTITION", "PARTITION_REDUNDANT", "PARTITION_PERSISTENT",
                                  "PARTITION_REDUNDANT_PERSISTENT", "REPLICATE",
                                  "REPLICATE_PERSISTENT"};
    for (int t = AGATE_PARTITION; t <= AGATE_REPLICATE_PERSISTENT; t++) {
        ck_assert_str_eq(agate_region_type_name((agate_region_type)t), names[t]);
        agate_region_type out;
        ck_assert_int_eq(agate_region_type_parse(names[t], &out), 0);
        ck_assert_int_eq(out, t);
    }
    agate_region_type out;
    ck_assert_int_eq(agate_region_type_parse("replicate", &out), 0);
    ck_assert_int_eq(out, AGATE_REPLICATE);
    ck_assert_int_eq(agate_region_type_parse("LOCAL", &out), AGATE_EINVAL);
    ck_assert_ptr_null(agate_region_type_name((agate_region_type)42));
    agate_options o;
    agate_options_init(&o);
    ck_assert_int_eq(o.connect_timeout_ms, 5000);
    ck_assert_int_eq(o.request_timeout_ms, 10000);
    agate_region_config cfg;
    agate_region_config_init(&cfg, "n", AGATE_PARTITION_REDUNDANT);
    ck_assert_str_eq(cfg.name, "n");
    ck_assert_int_eq(cfg.type, AGATE_PARTITION_REDUNDANT);
    ck_assert_int_eq(cfg.redundant_copies, -1);
    ck_assert_int_eq(cfg.total_num_buckets, 0);
    ck_assert_int_eq(cfg.if_not_exists, 0);
    agate_client_free(NULL);
    agate_buf_free(NULL);
}
END_TEST

START_TEST(connect_ping_info)
{
    agate_client *c = client_for(srv.addr);
    ck_assert_str_eq(agate_server_address(c), srv.addr);
    CK_OK(c, agate_ping(c));
    ck_assert_int_ge(agate_fd(c), 0);
    agate_buf info = {0};
    CK_OK(c, agate_server_info(c, &info));
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    ck_assert_int_eq(msgpack_unpack_next(&u, (const char *)info.data, info.len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_MAP);
    int saw_name = 0;
    for (uint32_t i = 0; i < u.data.via.map.size; i++) {
        msgpack_object *k = &u.data.via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 4 &&
            memcmp(k->via.str.ptr, "name", 4) == 0)
            saw_name = 1;
    }
    ck_assert(saw_name);
    msgpack_unpacked_destroy(&u);
    agate_buf_free(&info);
    ck_assert_ptr_null(info.data);
    agate_client_free(c);
}
END_TEST

START_TEST(connect_list_first_dead)
{
    char list[128];
    snprintf(list, sizeof(list), "127.0.0.1:%d,%s", dead_port(), srv.addr);
    agate_client *c = client_for(list);
    ck_assert_str_eq(agate_server_address(c), srv.addr);
    CK_OK(c, agate_ping(c));
    agate_client_free(c);
    /* also with spaces? only the documented form; and a single dead one */
    agate_client *d = agate_client_new(NULL);
    snprintf(list, sizeof(list), "127.0.0.1:%d", dead_port());
    ck_assert_int_eq(agate_connect(d, list), AGATE_ECONNECT);
    ck_assert_uint_gt(strlen(agate_errmsg(d)), 0);
    ck_assert_ptr_null(agate_server_address(d));
    /* calls without a connection fail, they do not crash */
    ck_assert_int_lt(agate_ping(d), 0);
    agate_client_free(d);
}
END_TEST

START_TEST(connect_bad_arguments)
{
    agate_client *c = agate_client_new(NULL);
    ck_assert_int_eq(agate_connect(c, ""), AGATE_EINVAL);
    ck_assert_int_lt(agate_connect(c, "no-port-here"), 0);
    ck_assert_int_lt(agate_connect(c, "127.0.0.1:notaport"), 0);
    ck_assert_int_lt(agate_connect(c, "127.0.0.1:99999"), 0);
    ck_assert_int_eq(agate_connect(c, NULL), AGATE_EINVAL);
    agate_client_free(c);
}
END_TEST

/* ======================================================================
 * regions
 * ====================================================================== */

START_TEST(region_lifecycle)
{
    agate_client *c = client_for(srv.addr);
    agate_region_config cfg;
    agate_region_config_init(&cfg, "orders", AGATE_PARTITION_REDUNDANT);
    cfg.total_num_buckets = 7;
    CK_OK(c, agate_region_create(c, &cfg));
    ck_assert_int_eq(agate_region_create(c, &cfg), AGATE_EREGION_EXISTS);
    ck_assert_uint_gt(strlen(agate_errmsg(c)), 0);
    cfg.if_not_exists = 1;
    CK_OK(c, agate_region_create(c, &cfg));
    agate_region_config other;
    agate_region_config_init(&other, "orders", AGATE_REPLICATE);
    other.if_not_exists = 1;
    ck_assert_int_eq(agate_region_create(c, &other), AGATE_EREGION_EXISTS);
    /* invalid: name, copies for a REPLICATE region, bucket count */
    agate_region_config bad;
    agate_region_config_init(&bad, "bad name", AGATE_PARTITION);
    ck_assert_int_eq(agate_region_create(c, &bad), AGATE_EBAD_ARGUMENT);
    agate_region_config_init(&bad, "repl", AGATE_REPLICATE);
    bad.redundant_copies = 2;
    ck_assert_int_eq(agate_region_create(c, &bad), AGATE_EBAD_ARGUMENT);
    agate_region_config_init(&bad, "buckets", AGATE_PARTITION);
    bad.total_num_buckets = 70000;
    ck_assert_int_lt(agate_region_create(c, &bad), 0);
    agate_region_config_init(&bad, NULL, AGATE_PARTITION);
    ck_assert_int_eq(agate_region_create(c, &bad), AGATE_EINVAL);

    agate_region_config rcfg;
    agate_region_config_init(&rcfg, "replicated", AGATE_REPLICATE_PERSISTENT);
    CK_OK(c, agate_region_create(c, &rcfg));
    ck_assert_int_eq(put_str(c, "orders", "o1", "first"), 0);

    agate_region_info *info = NULL;
    CK_OK(c, agate_region_describe(c, "orders", &info));
    ck_assert_str_eq(info->name, "orders");
    ck_assert_int_eq(info->type, AGATE_PARTITION_REDUNDANT);
    ck_assert_uint_eq(info->redundant_copies, 1);
    ck_assert_uint_eq(info->total_num_buckets, 7);
    ck_assert(info->partitioned);
    ck_assert(!info->persistent);
    ck_assert_uint_eq(info->entries, 1);
    ck_assert_uint_gt(info->bytes, 0);
    ck_assert_uint_eq(info->nmembers, 1);
    ck_assert_str_eq(info->members[0].member, "capi");
    ck_assert_uint_eq(info->members[0].buckets, 7);
    ck_assert_uint_eq(info->members[0].primary_buckets, 7);
    ck_assert_uint_eq(info->members[0].entries, 1);
    agate_region_info_free(info);
    agate_region_info_free(NULL);

    agate_region_info *list = NULL;
    size_t n = 0;
    CK_OK(c, agate_region_list(c, &list, &n));
    int saw_orders = 0, saw_repl = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].name, "orders") == 0)
            saw_orders = 1;
        if (strcmp(list[i].name, "replicated") == 0) {
            saw_repl = 1;
            ck_assert_int_eq(list[i].type, AGATE_REPLICATE_PERSISTENT);
            ck_assert(!list[i].partitioned);
            ck_assert(list[i].persistent);
            ck_assert_uint_eq(list[i].redundant_copies, 0);
            ck_assert_uint_eq(list[i].total_num_buckets, 113);
        }
    }
    ck_assert(saw_orders && saw_repl);
    agate_region_list_free(list, n);

    CK_OK(c, agate_region_destroy(c, "replicated"));
    ck_assert_int_eq(agate_region_destroy(c, "replicated"), AGATE_EUNKNOWN_REGION);
    info = NULL;
    ck_assert_int_eq(agate_region_describe(c, "replicated", &info), AGATE_EUNKNOWN_REGION);
    ck_assert_ptr_nonnull(strstr(agate_errmsg(c), "replicated"));
    agate_client_free(c);
}
END_TEST

/* ======================================================================
 * entries
 * ====================================================================== */

START_TEST(entry_functions)
{
    agate_client *c = client_for(srv.addr);
    ensure_region(c, "ent");
    /* put / get: the value's bytes come back unchanged */
    static const uint8_t v1[] = {0x92, 0xcd, 0x00, 0x01, 0xa2, 'h', 'i'};
    CK_OK(c, agate_put(c, "ent", "k1", 2, v1, sizeof(v1)));
    agate_buf out = {0};
    CK_OK(c, agate_get(c, "ent", "k1", 2, &out));
    ck_assert_uint_eq(out.len, sizeof(v1));
    ck_assert_mem_eq(out.data, v1, sizeof(v1));
    agate_buf_free(&out);
    ck_assert_ptr_null(out.data);
    ck_assert_int_eq(agate_get(c, "ent", "missing", 7, &out), AGATE_ENOTFOUND);
    /* binary and empty keys */
    static const uint8_t bk[] = {0xff, 0x00, 0xfe};
    CK_OK(c, agate_put(c, "ent", bk, sizeof(bk), "\xc3", 1));
    CK_OK(c, agate_put(c, "ent", "", 0, "\xc2", 1));
    ck_assert_int_eq(agate_contains_key(c, "ent", bk, sizeof(bk)), 1);
    ck_assert_int_eq(agate_contains_key(c, "ent", "", 0), 1);
    ck_assert_int_eq(agate_contains_key(c, "ent", "nope", 4), 0);
    uint64_t count = 0;
    CK_OK(c, agate_size(c, "ent", &count));
    ck_assert_uint_eq(count, 3);
    /* get_entry: versions grow, member id stays */
    agate_version v = {0}, w = {0};
    CK_OK(c, agate_get_entry(c, "ent", "k1", 2, &out, &v));
    agate_buf_free(&out);
    CK_OK(c, agate_put(c, "ent", "k1", 2, "\x01", 1));
    CK_OK(c, agate_get_entry(c, "ent", "k1", 2, &out, &w));
    ck_assert_uint_eq(out.len, 1);
    agate_buf_free(&out);
    ck_assert_uint_eq(v.member_id, w.member_id);
    ck_assert_uint_ne(v.member_id, 0);
    ck_assert_uint_gt(w.counter, v.counter);
    CK_OK(c, agate_get_entry(c, "ent", "k1", 2, &out, NULL)); /* ver may be NULL */
    agate_buf_free(&out);
    ck_assert_int_eq(agate_get_entry(c, "ent", "zz", 2, &out, &v), AGATE_ENOTFOUND);
    /* remove */
    CK_OK(c, agate_remove(c, "ent", "k1", 2));
    ck_assert_int_eq(agate_remove(c, "ent", "k1", 2), AGATE_ENOTFOUND);
    ck_assert_int_eq(agate_get(c, "ent", "k1", 2, &out), AGATE_ENOTFOUND);
    /* clear */
    uint64_t removed = 0;
    CK_OK(c, agate_clear(c, "ent", &removed));
    ck_assert_uint_eq(removed, 2);
    CK_OK(c, agate_clear(c, "ent", NULL));
    CK_OK(c, agate_size(c, "ent", &count));
    ck_assert_uint_eq(count, 0);
    agate_client_free(c);
}
END_TEST

START_TEST(error_codes)
{
    agate_client *c = client_for(srv.addr);
    agate_buf out = {0};
    ck_assert_int_eq(agate_put(c, "no-such", "k", 1, "\x01", 1), AGATE_EUNKNOWN_REGION);
    ck_assert_ptr_nonnull(strstr(agate_errmsg(c), "no-such"));
    ck_assert_int_eq(agate_get(c, "no-such", "k", 1, &out), AGATE_EUNKNOWN_REGION);
    uint64_t n;
    ck_assert_int_eq(agate_size(c, "no-such", &n), AGATE_EUNKNOWN_REGION);
    ensure_region(c, "errs");
    /* not MessagePack, nested too deep (default limit 32) */
    ck_assert_int_eq(agate_put(c, "errs", "k", 1, "\xc1", 1), AGATE_EBAD_VALUE);
    uint8_t deep[40];
    memset(deep, 0x91, 33);
    deep[33] = 0x01;
    ck_assert_int_eq(agate_put(c, "errs", "k", 1, deep, 34), AGATE_ETOO_DEEP);
    /* the connection survives server-side errors */
    CK_OK(c, agate_ping(c));
    /* bad arguments to the library */
    ck_assert_int_eq(agate_put(c, NULL, "k", 1, "\x01", 1), AGATE_EINVAL);
    agate_page page;
    ck_assert_int_lt(agate_keys(c, "errs", 0, 0, &page), 0);
    ck_assert_int_lt(agate_keys(c, "errs", 0, 10001, &page), 0);
    CK_OK(c, agate_ping(c));
    agate_client_free(c);

    /* the small server: key, value and depth limits */
    c = client_for(small.addr);
    ensure_region(c, "lim");
    char key[100];
    memset(key, 'k', sizeof(key));
    CK_OK(c, agate_put(c, "lim", key, 64, "\x01", 1));
    ck_assert_int_eq(agate_put(c, "lim", key, 65, "\x01", 1), AGATE_ETOO_LARGE);
    uint8_t *big = malloc(9000);
    big[0] = 0xc5;
    big[1] = (uint8_t)(8997 >> 8);
    big[2] = (uint8_t)(8997 & 0xff);
    memset(big + 3, 'v', 8997);
    ck_assert_int_eq(agate_put(c, "lim", "big", 3, big, 9000), AGATE_ETOO_LARGE);
    free(big);
    memset(deep, 0x91, 5);
    deep[5] = 0x01;
    ck_assert_int_eq(agate_put(c, "lim", "d", 1, deep, 6), AGATE_ETOO_DEEP);
    CK_OK(c, agate_put(c, "lim", "d", 1, deep + 1, 5));
    CK_OK(c, agate_ping(c));
    agate_client_free(c);
}
END_TEST

/* put_all of a batch much larger than the server's frame limit (64 KiB on
 * the small server) is split into several requests. */
START_TEST(put_all_split_and_get_all)
{
    agate_client *c = client_for(small.addr);
    ensure_region(c, "batch");
    const size_t N = 10000;
    agate_kv *kvs = calloc(N, sizeof(*kvs));
    char (*keys)[16] = calloc(N, 16);
    uint8_t(*vals)[120] = calloc(N, 120);
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], 16, "b%05zu", i);
        vals[i][0] = 0xc4; /* bin8 of 100 bytes */
        vals[i][1] = 100;
        memset(vals[i] + 2, (int)(i % 251), 100);
        kvs[i] = (agate_kv){keys[i], strlen(keys[i]), vals[i], 102};
    }
    /* ~1.2 MB in total against a 64 KiB frame limit */
    CK_OK(c, agate_put_all(c, "batch", kvs, N));
    uint64_t count = 0;
    CK_OK(c, agate_size(c, "batch", &count));
    ck_assert_uint_eq(count, N);
    /* get_all with every other key missing, also split */
    size_t M = 3000;
    agate_key *ks = calloc(M, sizeof(*ks));
    char (*kbuf)[16] = calloc(M, 16);
    for (size_t i = 0; i < M; i++) {
        if (i % 2)
            snprintf(kbuf[i], 16, "missing%zu", i);
        else
            snprintf(kbuf[i], 16, "b%05zu", i * 3);
        ks[i] = (agate_key){kbuf[i], strlen(kbuf[i])};
    }
    agate_buf *out = calloc(M, sizeof(*out));
    CK_OK(c, agate_get_all(c, "batch", ks, M, out));
    for (size_t i = 0; i < M; i++) {
        if (i % 2) {
            ck_assert_ptr_null(out[i].data);
        } else {
            ck_assert_ptr_nonnull(out[i].data);
            ck_assert_uint_eq(out[i].len, 102);
            ck_assert_mem_eq(out[i].data, vals[i * 3], 102);
        }
        agate_buf_free(&out[i]);
    }
    /* a batch with one entry above the value limit is refused */
    uint8_t *big = malloc(9000);
    big[0] = 0xc5;
    big[1] = (uint8_t)(8997 >> 8);
    big[2] = (uint8_t)(8997 & 0xff);
    memset(big + 3, 'x', 8997);
    agate_kv bad[2] = {{"fine", 4, "\x01", 1}, {"huge", 4, big, 9000}};
    ck_assert_int_eq(agate_put_all(c, "batch", bad, 2), AGATE_ETOO_LARGE);
    free(big);
    CK_OK(c, agate_put_all(c, "batch", kvs, 0)); /* an empty batch */
    free(out);
    free(kbuf);
    free(ks);
    free(vals);
    free(keys);
    free(kvs);
    agate_client_free(c);
}
END_TEST

static void scan_all(agate_client *c, const char *region, int entries, uint32_t limit, size_t n,
                     int *seen)
{
    uint64_t cursor = 0;
    int pages = 0;
    do {
        agate_page page;
        memset(&page, 0, sizeof(page));
        int rc = entries ? agate_entries(c, region, cursor, limit, &page)
                         : agate_keys(c, region, cursor, limit, &page);
        ck_assert_msg(rc >= 0, "scan: %d %s", rc, agate_errmsg(c));
        ck_assert(entries ? page.values != NULL || page.n == 0 : page.values == NULL);
        for (size_t i = 0; i < page.n; i++) {
            char tmp[32];
            ck_assert_uint_lt(page.keys[i].len, sizeof(tmp));
            memcpy(tmp, page.keys[i].data, page.keys[i].len);
            tmp[page.keys[i].len] = 0;
            size_t idx = (size_t)atol(tmp + 1);
            ck_assert_uint_lt(idx, n);
            seen[idx]++;
            if (entries) {
                /* the value is the key's number as a MessagePack uint */
                msgpack_unpacked u;
                msgpack_unpacked_init(&u);
                ck_assert_int_eq(msgpack_unpack_next(&u, (const char *)page.values[i].data,
                                                     page.values[i].len, NULL),
                                 MSGPACK_UNPACK_SUCCESS);
                ck_assert_uint_eq(u.data.via.u64, idx);
                msgpack_unpacked_destroy(&u);
            }
        }
        cursor = page.next_cursor;
        agate_page_free(&page);
        pages++;
    } while (cursor != 0);
    ck_assert_int_gt(pages, (int)(n / (limit + 16)) - 1);
}

START_TEST(keys_and_entries_paging)
{
    agate_client *c = client_for(srv.addr);
    ensure_region(c, "paged");
    const size_t N = 10000;
    agate_kv *kvs = calloc(N, sizeof(*kvs));
    char (*keys)[16] = calloc(N, 16);
    uint8_t(*vals)[8] = calloc(N, 8);
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], 16, "p%zu", i);
        val v;
        msgpack_pack_uint64(val_begin(&v), i);
        memcpy(vals[i], v.sb.data, v.sb.size);
        kvs[i] = (agate_kv){keys[i], strlen(keys[i]), vals[i], v.sb.size};
        val_free(&v);
    }
    CK_OK(c, agate_put_all(c, "paged", kvs, N));
    int *seen = calloc(N, sizeof(int));
    static const struct {
        int entries;
        uint32_t limit;
    } runs[] = {{0, 1000}, {0, 333}, {0, 10000}, {1, 1000}, {1, 77}};
    for (size_t r = 0; r < sizeof(runs) / sizeof(runs[0]); r++) {
        memset(seen, 0, N * sizeof(int));
        scan_all(c, "paged", runs[r].entries, runs[r].limit, N, seen);
        for (size_t i = 0; i < N; i++)
            ck_assert_msg(seen[i] == 1, "%s limit %u: key %zu seen %d times",
                          runs[r].entries ? "entries" : "keys", runs[r].limit, i, seen[i]);
    }
    agate_page empty;
    CK_OK(c, agate_region_destroy(c, "paged"));
    ck_assert_int_eq(agate_keys(c, "paged", 0, 10, &empty), AGATE_EUNKNOWN_REGION);
    free(seen);
    free(vals);
    free(keys);
    free(kvs);
    agate_client_free(c);
}
END_TEST

/* ======================================================================
 * queries
 * ====================================================================== */

/* agate_query's result decoded with msgpack-c: [columns, rows, stats]. */
typedef struct qres {
    msgpack_unpacked u;
    const msgpack_object *cols, *rows, *stats;
} qres;

static void qres_decode(const agate_buf *out, qres *q)
{
    ck_assert_ptr_nonnull(out->data);
    msgpack_unpacked_init(&q->u);
    size_t off = 0;
    ck_assert_int_eq(msgpack_unpack_next(&q->u, (const char *)out->data, out->len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, out->len);
    ck_assert_int_eq(q->u.data.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(q->u.data.via.array.size, 3);
    q->cols = &q->u.data.via.array.ptr[0];
    q->rows = &q->u.data.via.array.ptr[1];
    q->stats = &q->u.data.via.array.ptr[2];
    ck_assert_int_eq(q->cols->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_int_eq(q->rows->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_int_eq(q->stats->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < q->rows->via.array.size; i++) {
        ck_assert_int_eq(q->rows->via.array.ptr[i].type, MSGPACK_OBJECT_ARRAY);
        ck_assert_uint_eq(q->rows->via.array.ptr[i].via.array.size, q->cols->via.array.size);
    }
}

static void qres_free(qres *q) { msgpack_unpacked_destroy(&q->u); }

/* Asserts the column names are names[0..n). */
static void qres_columns(const qres *q, const char *const *names, uint32_t n)
{
    ck_assert_uint_eq(q->cols->via.array.size, n);
    for (uint32_t i = 0; i < n; i++)
        ck_assert_msg(tw_obj_is_str(&q->cols->via.array.ptr[i], names[i]),
                      "column %u is not '%s'", i, names[i]);
}

static uint32_t qres_nrows(const qres *q) { return q->rows->via.array.size; }

static const msgpack_object *qres_cell(const qres *q, uint32_t row, uint32_t col)
{
    ck_assert_uint_lt(row, q->rows->via.array.size);
    return &q->rows->via.array.ptr[row].via.array.ptr[col];
}

static int64_t qres_int(const qres *q, uint32_t row, uint32_t col)
{
    const msgpack_object *o = qres_cell(q, row, col);
    ck_assert_msg(o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                      o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER,
                  "row %u column %u is not an integer (type %d)", row, col, o->type);
    return o->via.i64;
}

static uint64_t qres_stat(const qres *q, const char *name)
{
    const msgpack_object *o = tw_map_get(q->stats, name);
    ck_assert_msg(o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "stats lack '%s'", name);
    return o->via.u64;
}

START_TEST(query_rows_params_and_errors)
{
    agate_client *c = client_for(srv.addr);
    ensure_region(c, "qry");
    /* 12 orders {"id": i, "grp": "g<i%3>", "total": i * 2.5} */
    for (int i = 0; i < 12; i++) {
        char key[8], grp[4];
        snprintf(key, sizeof(key), "o%02d", i);
        snprintf(grp, sizeof(grp), "g%d", i % 3);
        val v;
        msgpack_packer *pk = val_begin(&v);
        msgpack_pack_map(pk, 3);
        msgpack_pack_str_with_body(pk, "id", 2);
        msgpack_pack_int(pk, i);
        msgpack_pack_str_with_body(pk, "grp", 3);
        msgpack_pack_str_with_body(pk, grp, strlen(grp));
        msgpack_pack_str_with_body(pk, "total", 5);
        msgpack_pack_double(pk, i * 2.5);
        CK_OK(c, agate_put(c, "qry", key, strlen(key), v.sb.data, v.sb.size));
        val_free(&v);
    }

    /* WHERE with $1, ORDER BY, LIMIT; the server's default time limit */
    val p;
    msgpack_packer *pk = val_begin(&p);
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 8);
    agate_buf out;
    memset(&out, 0xAB, sizeof(out));
    CK_OK(c, agate_query(c, "SELECT o.id AS id, o.total AS total FROM /qry o WHERE o.id >= $1 "
                            "ORDER BY o.id DESC LIMIT 3",
                         p.sb.data, p.sb.size, -1, &out));
    val_free(&p);
    qres q;
    qres_decode(&out, &q);
    static const char *const id_total[] = {"id", "total"};
    qres_columns(&q, id_total, 2);
    ck_assert_uint_eq(qres_nrows(&q), 3);
    for (uint32_t r = 0; r < 3; r++) {
        ck_assert_int_eq(qres_int(&q, r, 0), 11 - (int)r);
        const msgpack_object *t = qres_cell(&q, r, 1);
        ck_assert_int_eq(t->type, MSGPACK_OBJECT_FLOAT64);
        ck_assert(t->via.f64 == (11 - (int)r) * 2.5);
    }
    ck_assert_uint_eq(qres_stat(&q, "matched"), 4);
    ck_assert_uint_eq(qres_stat(&q, "rows"), 3);
    ck_assert_uint_eq(qres_stat(&q, "scanned"), 12);
    (void)qres_stat(&q, "elapsed_us");
    qres_free(&q);
    agate_buf_free(&out);

    /* GROUP BY with COUNT and SUM, a string parameter, no time limit */
    pk = val_begin(&p);
    msgpack_pack_array(pk, 1);
    msgpack_pack_str_with_body(pk, "g0", 2);
    CK_OK(c, agate_query(c, "SELECT grp, COUNT(*) AS n, SUM(id) AS s FROM /qry WHERE grp <> $1 "
                            "GROUP BY grp ORDER BY grp",
                         p.sb.data, p.sb.size, 0, &out));
    val_free(&p);
    qres_decode(&out, &q);
    static const char *const grp_n_s[] = {"grp", "n", "s"};
    qres_columns(&q, grp_n_s, 3);
    ck_assert_uint_eq(qres_nrows(&q), 2);
    ck_assert(tw_obj_is_str(qres_cell(&q, 0, 0), "g1"));
    ck_assert_int_eq(qres_int(&q, 0, 1), 4);
    ck_assert_int_eq(qres_int(&q, 0, 2), 1 + 4 + 7 + 10);
    ck_assert(tw_obj_is_str(qres_cell(&q, 1, 0), "g2"));
    ck_assert_int_eq(qres_int(&q, 1, 1), 4);
    ck_assert_int_eq(qres_int(&q, 1, 2), 2 + 5 + 8 + 11);
    ck_assert_uint_eq(qres_stat(&q, "matched"), 8);
    qres_free(&q);
    agate_buf_free(&out);

    /* no parameters (NULL, or an empty array), a time limit */
    CK_OK(c, agate_query(c, "SELECT COUNT(*) FROM /qry", NULL, 0, 5000, &out));
    qres_decode(&out, &q);
    ck_assert_uint_eq(q.cols->via.array.size, 1);
    ck_assert_uint_eq(qres_nrows(&q), 1);
    ck_assert_int_eq(qres_int(&q, 0, 0), 12);
    qres_free(&q);
    agate_buf_free(&out);
    CK_OK(c, agate_query(c, "SELECT k FROM /qry.keys k WHERE k LIKE 'o0%'", "\x90", 1, -1, &out));
    qres_decode(&out, &q);
    ck_assert_uint_eq(qres_nrows(&q), 10);
    qres_free(&q);
    agate_buf_free(&out);

    /* server errors: the status and the server's message */
    memset(&out, 0xAB, sizeof(out));
    ck_assert_int_eq(agate_query(c, "SELECT * FORM /qry", NULL, 0, -1, &out), AGATE_EBAD_ARGUMENT);
    ck_assert_msg(strstr(agate_errmsg(c), "at 9:") != NULL, "parse error: %s", agate_errmsg(c));
    ck_assert_ptr_null(out.data);
    ck_assert_uint_eq(out.len, 0);
    pk = val_begin(&p);
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 1);
    ck_assert_int_eq(agate_query(c, "SELECT * FROM /qry WHERE id = $2", p.sb.data, p.sb.size, -1,
                                 &out),
                     AGATE_EBAD_ARGUMENT);
    ck_assert_int_eq(agate_query(c, "SELECT * FROM /no_such_region", NULL, 0, -1, &out),
                     AGATE_EUNKNOWN_REGION);
    ck_assert_ptr_nonnull(strstr(agate_errmsg(c), "no_such_region"));
    ck_assert_ptr_null(out.data);

    /* bad arguments are refused before anything is sent */
    ck_assert_int_eq(agate_query(c, "SELECT * FROM /qry", "\x01", 1, -1, &out), AGATE_EINVAL);
    ck_assert_ptr_nonnull(strstr(agate_errmsg(c), "array"));
    ck_assert_int_eq(agate_query(c, "SELECT * FROM /qry", "\x90\x90", 2, -1, &out), AGATE_EINVAL);
    ck_assert_int_eq(agate_query(c, "SELECT * FROM /qry", "\x92\x01", 2, -1, &out), AGATE_EINVAL);
    ck_assert_int_eq(agate_query(c, "SELECT * FROM /qry", NULL, 3, -1, &out), AGATE_EINVAL);
    ck_assert_int_eq(agate_query(c, "SELECT * FROM /qry", p.sb.data, 0, -1, &out), AGATE_EINVAL);
    ck_assert_int_eq(agate_query(c, NULL, NULL, 0, -1, &out), AGATE_EINVAL);
    ck_assert_int_eq(agate_query(c, "SELECT * FROM /qry", NULL, 0, -1, NULL), AGATE_EINVAL);
    ck_assert_int_eq(agate_query(NULL, "SELECT * FROM /qry", NULL, 0, -1, &out), AGATE_EINVAL);
    val_free(&p);
    /* the connection survived all of it */
    CK_OK(c, agate_ping(c));
    agate_client_free(c);

    /* a result above the reply limit (64 KiB on the small server) */
    c = client_for(small.addr);
    ensure_region(c, "qbig");
    char *s = malloc(6000);
    memset(s, 'x', 6000);
    for (int i = 0; i < 12; i++) {
        char key[8];
        snprintf(key, sizeof(key), "b%02d", i);
        val v;
        msgpack_pack_str_with_body(val_begin(&v), s, 6000);
        CK_OK(c, agate_put(c, "qbig", key, strlen(key), v.sb.data, v.sb.size));
        val_free(&v);
    }
    free(s);
    /* agate_query joins the server's pages */
    CK_OK(c, agate_query(c, "SELECT * FROM /qbig", NULL, 0, -1, &out));
    qres_decode(&out, &q);
    ck_assert_uint_eq(qres_nrows(&q), 12);
    qres_free(&q);
    agate_buf_free(&out);
    /* a cursor: pages of at most 5 rows and at most the reply limit, every
     * row exactly once, the server's cursor gone after the last page */
    agate_query_options qo = {.timeout_ms = -1, .page_size = 5};
    agate_cursor *cur;
    CK_OK(c, agate_query_open(c, "SELECT e.key FROM /qbig.entries e", NULL, 0, &qo, &cur));
    int pages = 0, seen[12] = {0};
    size_t rows = 0;
    int more;
    while ((more = agate_cursor_next(cur, &out)) == 1) {
        pages++;
        qres_decode(&out, &q);
        ck_assert_uint_le(qres_nrows(&q), 5);
        for (size_t i = 0; i < qres_nrows(&q); i++) {
            const msgpack_object *k = qres_cell(&q, i, 0);
            ck_assert_int_eq(k->type, MSGPACK_OBJECT_STR);
            int n = atoi(k->via.str.ptr + 1);
            ck_assert(n >= 0 && n < 12);
            seen[n]++;
        }
        rows += qres_nrows(&q);
        qres_free(&q);
        agate_buf_free(&out);
    }
    ck_assert_int_eq(more, 0);
    ck_assert_uint_eq(rows, 12);
    ck_assert_int_ge(pages, 3);
    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(seen[i], 1);
    ck_assert_uint_eq(agate_cursor_id(cur), 0);
    CK_OK(c, agate_cursor_close(cur));
    /* closing a cursor before its end drops the server's; 16 stay open at most */
    agate_cursor *open[17];
    qo.page_size = 1;
    for (int i = 0; i < 16; i++) {
        CK_OK(c, agate_query_open(c, "SELECT * FROM /qbig", NULL, 0, &qo, &open[i]));
        ck_assert_uint_ne(agate_cursor_id(open[i]), 0);
    }
    ck_assert_int_eq(agate_query_open(c, "SELECT * FROM /qbig", NULL, 0, &qo, &open[16]),
                     AGATE_EBAD_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(agate_errmsg(c), "cursors are open"));
    for (int i = 0; i < 16; i++)
        CK_OK(c, agate_cursor_close(open[i]));
    CK_OK(c, agate_query_open(c, "SELECT * FROM /qbig", NULL, 0, &qo, &cur));
    CK_OK(c, agate_cursor_close(cur));
    /* an interrupt cancels the query it meets, and only that */
    agate_interrupt(c);
    ck_assert_int_eq(agate_query(c, "SELECT * FROM /qbig", NULL, 0, -1, &out), AGATE_ECANCELLED);
    ck_assert_ptr_null(out.data);
    CK_OK(c, agate_ping(c));
    CK_OK(c, agate_query(c, "SELECT * FROM /qbig LIMIT 2", NULL, 0, -1, &out));
    qres_decode(&out, &q);
    ck_assert_uint_eq(qres_nrows(&q), 2);
    ck_assert_int_eq(qres_cell(&q, 0, 0)->type, MSGPACK_OBJECT_STR);
    ck_assert_uint_eq(qres_cell(&q, 0, 0)->via.str.size, 6000);
    qres_free(&q);
    agate_buf_free(&out);
    agate_client_free(c);
}
END_TEST

/* ======================================================================
 * asynchronous requests
 * ====================================================================== */

typedef struct async_state {
    int calls;
    int ok;
    int notfound;
    int errors;
    int last_status;
    int chained;
    char last_value[64];
} async_state;

static void on_reply(agate_client *c, const agate_reply *r, void *arg)
{
    (void)c;
    async_state *s = arg;
    s->calls++;
    s->last_status = r->status;
    if (r->status == 0) {
        s->ok++;
        if (r->value && r->vlen < sizeof(s->last_value)) {
            memcpy(s->last_value, r->value, r->vlen);
            s->last_value[r->vlen] = 0;
        }
    } else if (r->status == AGATE_ENOTFOUND) {
        s->notfound++;
    } else {
        s->errors++;
        ck_assert_ptr_nonnull(r->errmsg);
    }
}

/* A callback that queues another request (allowed). */
static void on_reply_chain(agate_client *c, const agate_reply *r, void *arg)
{
    async_state *s = arg;
    on_reply(c, r, arg);
    if (s->chained < 5) {
        s->chained++;
        ck_assert_int_eq(agate_get_async(c, "async", "a0", 2, on_reply_chain, s), 0);
    }
}

START_TEST(async_put_get_wait)
{
    agate_client *c = client_for(srv.addr);
    ensure_region(c, "async");
    async_state puts = {0}, gets = {0}, misses = {0}, rms = {0};
    const int N = 1000;
    char key[32], v[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "a%d", i);
        int vl = snprintf(v + 1, sizeof(v) - 1, "val%d", i);
        v[0] = (char)(0xa0 | vl); /* fixstr */
        ck_assert_int_eq(agate_put_async(c, "async", key, strlen(key), v, (size_t)vl + 1,
                                         on_reply, &puts),
                         0);
    }
    ck_assert_uint_eq(agate_pending(c), (size_t)N);
    ck_assert_int_eq(puts.calls, 0); /* nothing runs before wait/process */
    CK_OK(c, agate_wait(c, timeout_ms()));
    ck_assert_uint_eq(agate_pending(c), 0);
    ck_assert_int_eq(puts.calls, N);
    ck_assert_int_eq(puts.ok, N);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "a%d", i);
        ck_assert_int_eq(agate_get_async(c, "async", key, strlen(key), on_reply, &gets), 0);
        snprintf(key, sizeof(key), "nokey%d", i);
        ck_assert_int_eq(agate_get_async(c, "async", key, strlen(key), on_reply, &misses), 0);
    }
    CK_OK(c, agate_wait(c, timeout_ms()));
    ck_assert_int_eq(gets.ok, N);
    ck_assert_int_eq(misses.notfound, N);
    ck_assert_str_eq(gets.last_value, "\xa6val999");
    /* remove_async, and errors reported through the callback */
    ck_assert_int_eq(agate_remove_async(c, "async", "a0", 2, on_reply, &rms), 0);
    ck_assert_int_eq(agate_remove_async(c, "async", "a0", 2, on_reply, &rms), 0);
    ck_assert_int_eq(agate_put_async(c, "nope", "k", 1, "\x01", 1, on_reply, &rms), 0);
    CK_OK(c, agate_wait(c, timeout_ms()));
    ck_assert_int_eq(rms.calls, 3);
    ck_assert_int_eq(rms.ok, 1);
    ck_assert_int_eq(rms.notfound, 1);
    ck_assert_int_eq(rms.errors, 1);
    ck_assert_int_eq(rms.last_status, AGATE_EUNKNOWN_REGION);
    /* callbacks may queue requests */
    async_state chain = {0};
    CK_OK(c, agate_put(c, "async", "a0", 2, "\x05", 1));
    ck_assert_int_eq(agate_get_async(c, "async", "a0", 2, on_reply_chain, &chain), 0);
    CK_OK(c, agate_wait(c, timeout_ms()));
    ck_assert_int_eq(chain.calls, 6);
    ck_assert_int_eq(chain.ok, 6);
    agate_client_free(c);
}
END_TEST

/* Driving the client from one's own poll loop: agate_fd, agate_wants_write,
 * agate_process. */
START_TEST(async_own_event_loop)
{
    agate_client *c = client_for(srv.addr);
    ensure_region(c, "loop");
    async_state st = {0};
    for (int i = 0; i < 500; i++) {
        char key[16];
        snprintf(key, sizeof(key), "l%d", i);
        ck_assert_int_eq(agate_put_async(c, "loop", key, strlen(key), "\x01", 1, on_reply, &st),
                         0);
    }
    int64_t deadline = tu_now_ms() + timeout_ms();
    int left;
    while ((left = agate_process(c)) > 0) {
        ck_assert_int_lt(tu_now_ms(), deadline);
        struct pollfd p = {.fd = agate_fd(c), .events = POLLIN};
        if (agate_wants_write(c))
            p.events |= POLLOUT;
        ck_assert_int_ge(p.fd, 0);
        poll(&p, 1, 100);
    }
    ck_assert_int_eq(left, 0);
    ck_assert_int_eq(st.ok, 500);
    /* flush: everything queued is written */
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(agate_get_async(c, "loop", "l1", 2, on_reply, &st), 0);
    CK_OK(c, agate_flush(c, timeout_ms()));
    ck_assert_int_eq(agate_wants_write(c), 0);
    CK_OK(c, agate_wait(c, timeout_ms()));
    ck_assert_int_eq(st.ok, 510);
    agate_client_free(c);
}
END_TEST

START_TEST(free_with_pending_requests)
{
    agate_client *c = client_for(srv.addr);
    ensure_region(c, "fr");
    async_state st = {0};
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(agate_put_async(c, "fr", "k", 1, "\x01", 1, on_reply, &st), 0);
    agate_client_free(c); /* every callback runs exactly once */
    ck_assert_int_eq(st.calls, 50);
    ck_assert_int_eq(st.ok + st.errors, 50);
    if (st.errors)
        ck_assert_int_eq(st.last_status, AGATE_EIO);
}
END_TEST

/* ======================================================================
 * timeouts and failures (each test runs its own servers)
 * ====================================================================== */

START_TEST(timeout_on_stopped_server)
{
    tu_server s = {0};
    ck_assert_int_eq(tu_server_start(&s, "stopped", NULL), 0);
    agate_options o;
    agate_options_init(&o);
    o.request_timeout_ms = 500;
    o.connect_timeout_ms = 1000;
    agate_client *c = agate_client_new(&o);
    CK_OK(c, agate_connect(c, s.addr));
    ensure_region(c, "t");
    CK_OK(c, agate_put(c, "t", "k", 1, "\x01", 1));
    ck_assert_int_eq(tu_server_signal(&s, SIGSTOP), 0);
    int64_t t0 = tu_now_ms();
    agate_buf out = {0};
    int rc = agate_get(c, "t", "k", 1, &out);
    int64_t took = tu_now_ms() - t0;
    ck_assert_msg(rc == AGATE_ETIMEDOUT, "get on a stopped server: %d %s", rc, agate_errmsg(c));
    ck_assert_int_ge(took, 400);
    ck_assert_int_lt(took, 5000 * tu_timeout_scale());
    /* async: agate_wait times out with the request still pending */
    async_state st = {0};
    ck_assert_int_eq(agate_get_async(c, "t", "k", 1, on_reply, &st), 0);
    ck_assert_int_eq(agate_wait(c, 300), AGATE_ETIMEDOUT);
    ck_assert_uint_ge(agate_pending(c), 1);
    ck_assert_int_eq(tu_server_signal(&s, SIGCONT), 0);
    /* the server is back: requests work again (on this or a new connection) */
    CK_OK(c, agate_wait(c, timeout_ms()));
    ck_assert_int_eq(st.calls, 1);
    rc = agate_get(c, "t", "k", 1, &out);
    ck_assert_msg(rc == 0, "get after SIGCONT: %d %s", rc, agate_errmsg(c));
    agate_buf_free(&out);
    agate_client_free(c);
    ck_assert_int_eq(tu_server_stop(&s, 15000 * tu_timeout_scale()), 0);
    tu_server_cleanup(&s, false);
}
END_TEST

START_TEST(connection_loss_and_failover)
{
    tu_server a = {0}, b = {0};
    ck_assert_int_eq(tu_server_start(&a, "fa", NULL), 0);
    ck_assert_int_eq(tu_server_start(&b, "fb", NULL), 0);
    char list[128];
    snprintf(list, sizeof(list), "%s,%s", a.addr, b.addr);
    agate_client *c = client_for(list);
    ck_assert_str_eq(agate_server_address(c), a.addr);
    ensure_region(c, "f");
    CK_OK(c, agate_put(c, "f", "on-a", 4, "\x01", 1));
    /* requests in flight when the server dies complete with AGATE_EIO */
    async_state st = {0};
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(agate_get_async(c, "f", "on-a", 4, on_reply, &st), 0);
    tu_server_kill(&a);
    int rc = agate_wait(c, timeout_ms());
    ck_assert_msg(rc == AGATE_EIO || rc == 0, "wait after SIGKILL: %d", rc);
    ck_assert_int_eq(st.calls, 20);
    if (rc == AGATE_EIO)
        ck_assert_int_eq(st.last_status, AGATE_EIO);
    /* a synchronous call on the dead connection: AGATE_EIO (or, if the
     * loss was already noticed, the call reconnects to b) */
    rc = agate_ping(c);
    if (rc == AGATE_EIO)
        rc = agate_ping(c); /* the next call reconnects to the next server */
    ck_assert_msg(rc == 0, "ping after failover: %d %s", rc, agate_errmsg(c));
    ck_assert_str_eq(agate_server_address(c), b.addr);
    ensure_region(c, "f");
    CK_OK(c, agate_put(c, "f", "on-b", 4, "\x02", 1));
    agate_buf out = {0};
    CK_OK(c, agate_get(c, "f", "on-b", 4, &out));
    agate_buf_free(&out);
    agate_client_free(c);

    /* a request outstanding when the server dies: AGATE_EIO */
    c = client_for(b.addr);
    ck_assert_int_eq(tu_server_signal(&b, SIGSTOP), 0);
    async_state st2 = {0};
    ck_assert_int_eq(agate_get_async(c, "f", "on-b", 4, on_reply, &st2), 0);
    /* BUG REPRODUCER (client/io.c client_io_run): agate_flush must return
     * once the output is written, not wait for a reply. client_io_run
     * checks its condition only before writing, then polls for input, so
     * flush blocks for its whole timeout when the server sends nothing
     * (here: stopped). */
    int64_t t0 = tu_now_ms();
    CK_OK(c, agate_flush(c, 5000));
    int64_t flush_took = tu_now_ms() - t0;
    tu_server_kill(&b);
    rc = agate_wait(c, timeout_ms());
    ck_assert_int_eq(rc, AGATE_EIO);
    ck_assert_int_eq(st2.calls, 1);
    ck_assert_int_eq(st2.last_status, AGATE_EIO);
    /* no server left: a clean error, not a hang */
    rc = agate_ping(c);
    ck_assert_msg(rc == AGATE_ECONNECT || rc == AGATE_EIO, "ping with no server: %d", rc);
    agate_client_free(c);
    tu_server_cleanup(&a, false);
    tu_server_cleanup(&b, false);
    ck_assert_msg(flush_took < 1500,
                  "agate_flush took %lld ms with all output written (known client bug)",
                  (long long)flush_took);
}
END_TEST

/* ---- fake servers ---- */

typedef struct fake {
    int lfd;
    int port;
    int mode; /* 0: garbage then close; 1: BAD_VERSION reply; 2: close at once */
    pthread_t th;
} fake;

static void *fake_main(void *p)
{
    fake *f = p;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    uint8_t buf[4096];
    if (f->mode == 0) {
        const char *g = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        if (write(fd, g, strlen(g)) < 0)
            perror("fake write");
    } else if (f->mode == 1) {
        /* read the HELLO frame's id, answer BAD_VERSION */
        ssize_t n = read(fd, buf, sizeof(buf));
        uint8_t id = n > 6 ? buf[6] : 1; /* [0, id<128, ...] after the header */
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 4);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_int(&pk, id);
        msgpack_pack_int(&pk, 16);
        msgpack_pack_str_with_body(&pk, "expected protocol 7", 19);
        uint8_t h[4] = {0, 0, 0, (uint8_t)sb.size};
        if (write(fd, h, 4) < 0 || write(fd, sb.data, sb.size) < 0)
            perror("fake write");
        msgpack_sbuffer_destroy(&sb);
        tu_sleep_ms(200);
    }
    close(fd);
    return NULL;
}

static void fake_start(fake *f, int mode)
{
    f->mode = mode;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(f->lfd, 4), 0);
    getsockname(f->lfd, (struct sockaddr *)&sa, &len);
    f->port = ntohs(sa.sin_port);
    ck_assert_int_eq(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(fake *f)
{
    shutdown(f->lfd, SHUT_RDWR);
    pthread_join(f->th, NULL);
    close(f->lfd);
}

START_TEST(not_an_agate_server)
{
    for (int mode = 0; mode < 3; mode++) {
        fake f;
        fake_start(&f, mode);
        char addr[64];
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", f.port);
        agate_options o;
        agate_options_init(&o);
        o.connect_timeout_ms = 2000 * tu_timeout_scale();
        o.request_timeout_ms = 2000 * tu_timeout_scale();
        agate_client *c = agate_client_new(&o);
        int rc = agate_connect(c, addr);
        if (mode == 1)
            ck_assert_msg(rc == AGATE_EVERSION, "BAD_VERSION reply: %d %s", rc, agate_errmsg(c));
        else
            ck_assert_msg(rc == AGATE_EPROTO || rc == AGATE_ECONNECT || rc == AGATE_EIO,
                          "mode %d: %d %s", mode, rc, agate_errmsg(c));
        agate_client_free(c);
        fake_stop(&f);
    }
}
END_TEST

/* ---- scripted fake servers (child processes) ----
 * A child process that accepts nconns connections one after the other and
 * runs a script on each. It is killed by pid (fk_stop), and also tracked
 * (tu_track_pid: killed by tu_kill_all at exit) and PR_SET_PDEATHSIG'd, so
 * it never outlives a test that failed an assertion. The scripts use only
 * blocking socket calls with deadlines: a client that misbehaves cannot keep
 * the child alive past FK_LIFETIME_MS either. */

#define FK_LIFETIME_MS 20000

typedef void (*fk_script)(int fd, int index, const void *arg);

typedef struct fk {
    int port;
    pid_t pid;
    char addr[64];
} fk;

static void fk_start(fk *f, int nconns, fk_script script, const void *arg)
{
    int lfd = tw_listen(&f->port, f->addr, sizeof(f->addr));
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        signal(SIGPIPE, SIG_IGN);
        int64_t end = tu_now_ms() + FK_LIFETIME_MS;
        for (int i = 0; i < nconns; i++) {
            int left = (int)(end - tu_now_ms());
            struct pollfd p = {.fd = lfd, .events = POLLIN};
            if (left <= 0 || poll(&p, 1, left) <= 0)
                break;
            int fd = accept(lfd, NULL, NULL);
            if (fd < 0)
                break;
            script(fd, i, arg);
            close(fd);
        }
        _exit(0); /* no atexit handlers, no leak check of the copied heap */
    }
    close(lfd);
    tu_track_pid(pid);
    f->pid = pid;
}

static void fk_stop(fk *f)
{
    if (f->pid <= 0)
        return;
    kill(f->pid, SIGKILL);
    waitpid(f->pid, NULL, 0);
    tu_untrack_pid(f->pid);
    f->pid = 0;
}

/* Sends a packed message as one frame. */
static int fk_send_msg(int fd, const msgpack_sbuffer *sb)
{
    uint8_t h[4] = {(uint8_t)(sb->size >> 24), (uint8_t)(sb->size >> 16), (uint8_t)(sb->size >> 8),
                    (uint8_t)sb->size};
    return tw_send(fd, h, 4) == 0 && tw_send(fd, sb->data, sb->size) == 0 ? 0 : -1;
}

/* Reads one request frame; returns its id and (if op) opcode, or -1. */
static int64_t fk_read_request(int fd, uint32_t *op)
{
    uint8_t *body;
    uint32_t blen;
    if (tw_read_frame(fd, 10000, &body, &blen) != 1)
        return -1;
    int64_t id = -1;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)body, blen, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size >= 3 &&
        u.data.via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        id = (int64_t)u.data.via.array.ptr[1].via.u64;
        if (op)
            *op = (uint32_t)u.data.via.array.ptr[2].via.u64;
    }
    msgpack_unpacked_destroy(&u);
    free(body);
    return id;
}

static void fk_pack_kv_uint(msgpack_packer *pk, const char *k, uint64_t v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_uint64(pk, v);
}

/* Reads the HELLO and answers it like agated, with max_depth as given.
 * Returns 0, or -1 if no HELLO came. */
static int fk_hello(int fd, uint64_t max_depth)
{
    uint32_t op = 0;
    int64_t id = fk_read_request(fd, &op);
    if (id < 0 || op != 1)
        return -1;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint64(&pk, (uint64_t)id);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_map(&pk, 9);
    msgpack_pack_str_with_body(&pk, "server", 6);
    msgpack_pack_str_with_body(&pk, "fake", 4);
    fk_pack_kv_uint(&pk, "member_id", 7);
    fk_pack_kv_uint(&pk, "protocol", 1);
    msgpack_pack_str_with_body(&pk, "version", 7);
    msgpack_pack_str_with_body(&pk, "0.1.0", 5);
    fk_pack_kv_uint(&pk, "max_frame", 64u << 20);
    fk_pack_kv_uint(&pk, "max_key", 16u << 10);
    fk_pack_kv_uint(&pk, "max_value", 16u << 20);
    fk_pack_kv_uint(&pk, "max_depth", max_depth);
    fk_pack_kv_uint(&pk, "metadata_version", 0);
    int rc = fk_send_msg(fd, &sb);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Waits (bounded) for the client to close its end, discarding its input. */
static void fk_linger(int fd) { tw_wait_closed(fd, 10000); }

/* A client with the given timeouts, connected to f (asserts). */
static agate_client *fk_client(const fk *f, int connect_ms, int request_ms)
{
    agate_options o;
    agate_options_init(&o);
    o.connect_timeout_ms = connect_ms;
    o.request_timeout_ms = request_ms;
    agate_client *c = agate_client_new(&o);
    ck_assert_ptr_nonnull(c);
    int rc = agate_connect(c, f->addr);
    ck_assert_msg(rc == 0, "connect to the fake server: %d %s", rc, agate_errmsg(c));
    return c;
}

/* ---- 1. a server that never stops sending ---- */

#define FLOOD_MS 8000

/* HELLO, then valid replies [1, 999999999, 0] for an id nobody asked for,
 * as fast as the socket takes them, for FLOOD_MS or until the client
 * closes. */
static void flood_script(int fd, int index, const void *arg)
{
    (void)index;
    (void)arg;
    if (fk_hello(fd, 32))
        return;
    static const uint8_t frame[12] = {0, 0, 0, 8, 0x93, 0x01, 0xce, 0x3b, 0x9a, 0xc9, 0xff, 0x00};
    enum { NFRAMES = 65536 / sizeof(frame) };
    static uint8_t buf[NFRAMES * sizeof(frame)];
    for (size_t i = 0; i < NFRAMES; i++)
        memcpy(buf + i * sizeof(frame), frame, sizeof(frame));
    /* a big send buffer and blocking sends (bounded by SO_SNDTIMEO, so
     * the deadline is still seen) keep the client's socket full */
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    size_t off = 0;
    int64_t end = tu_now_ms() + FLOOD_MS;
    while (tu_now_ms() < end) {
        ssize_t w = send(fd, buf + off, sizeof(buf) - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            return; /* the client went away */
        }
        off = (off + (size_t)w) % sizeof(buf); /* the buffer holds whole frames */
    }
}

static void noop_cb(agate_client *c, const agate_reply *r, void *arg)
{
    (void)c;
    int *status = arg;
    *status = r->status;
}

/* Regression: the read loop used to drain the socket until EAGAIN before
 * looking at the clock, so a server streaming replies kept agate_ping
 * 5-15 s past a 500 ms timeout, and agate_process looped for seconds. */
START_TEST(flooding_server_cannot_hold_the_caller)
{
    fk f = {0};
    fk_start(&f, 2, flood_script, NULL);

    /* synchronous calls: the request timeout holds (four of them, the
     * slowest counts: the old loop did stop early when a read happened to
     * drain the socket) */
    agate_client *c = fk_client(&f, 2000 * tu_timeout_scale(), 500);
    int rc = 0;
    int64_t took = 0;
    char msg[256] = "";
    for (int i = 0; i < 4 && (i == 0 || rc == AGATE_ETIMEDOUT); i++) {
        int64_t t0 = tu_now_ms();
        rc = agate_ping(c);
        int64_t dt = tu_now_ms() - t0;
        if (dt > took)
            took = dt;
        snprintf(msg, sizeof(msg), "%s", agate_errmsg(c));
    }
    agate_client_free(c);

    /* agate_process: each call is one bounded step, whatever the server
     * keeps sending. Driven from a poll loop for 4 s, as an application
     * would; the longest single call is measured. (One call right after
     * connecting is not enough to show the old behaviour: the first reads
     * may still catch up with the sender; once TCP has grown the windows,
     * a draining loop never does.) */
    c = fk_client(&f, 2000 * tu_timeout_scale(), 500);
    int status = 1;
    ck_assert_int_eq(agate_get_async(c, "r", "k", 1, noop_cb, &status), 0);
    int64_t process_took = 0, loop_end = tu_now_ms() + 4000;
    int left = 1, calls = 0;
    while (left == 1 && tu_now_ms() < loop_end) {
        struct pollfd p = {.fd = agate_fd(c), .events = POLLIN};
        if (agate_wants_write(c))
            p.events |= POLLOUT;
        poll(&p, 1, 100);
        int64_t t1 = tu_now_ms();
        left = agate_process(c);
        int64_t dt = tu_now_ms() - t1;
        if (dt > process_took)
            process_took = dt;
        calls++;
    }
    agate_client_free(c); /* the request fails with AGATE_EIO */
    fk_stop(&f);

    ck_assert_msg(rc == AGATE_ETIMEDOUT, "ping under a reply flood: %d (%s)", rc, msg);
    ck_assert_msg(took < 2000, "ping with a 500 ms timeout took %lld ms under a %d ms flood",
                  (long long)took, FLOOD_MS);
    ck_assert_msg(left == 1, "agate_process under a flood returned %d", left);
    ck_assert_msg(process_took < 1000,
                  "an agate_process call took %lld ms under a %d ms flood (%d calls)",
                  (long long)process_took, FLOOD_MS, calls);
    ck_assert_int_eq(status, AGATE_EIO);
}
END_TEST

/* ---- 2. a scan page far larger than asked for ---- */

#define HUGE_PAGE 100000

/* HELLO, then answers the KEYS request with 100000 one-byte keys. */
static void huge_page_script(int fd, int index, const void *arg)
{
    (void)index;
    (void)arg;
    if (fk_hello(fd, 32))
        return;
    uint32_t op = 0;
    int64_t id = fk_read_request(fd, &op);
    if (id < 0)
        return;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint64(&pk, (uint64_t)id);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint8(&pk, 0); /* next cursor: done */
    msgpack_pack_array(&pk, HUGE_PAGE);
    for (int i = 0; i < HUGE_PAGE; i++) {
        char k = (char)('a' + i % 26);
        msgpack_pack_str_with_body(&pk, &k, 1);
    }
    fk_send_msg(fd, &sb);
    msgpack_sbuffer_destroy(&sb);
    fk_linger(fd);
}

/* Regression: read_page trusted the reply's count (it only checked it
 * against the bytes received), so a 10-key page came back with 100000 keys
 * (and a bigger reply could cost hundreds of MB of allocations). */
START_TEST(scan_page_far_above_limit_is_refused)
{
    fk f = {0};
    fk_start(&f, 1, huge_page_script, NULL);
    agate_client *c = fk_client(&f, 2000 * tu_timeout_scale(), timeout_ms());
    agate_page page;
    memset(&page, 0, sizeof(page));
    int rc = agate_keys(c, "r", 0, 10, &page);
    size_t n = page.n;
    char msg[256];
    snprintf(msg, sizeof(msg), "%s", agate_errmsg(c));
    agate_page_free(&page);
    agate_client_free(c);
    fk_stop(&f);
    ck_assert_msg(rc == AGATE_EPROTO, "a %d-key page for limit 10: rc %d, %zu keys (%s)",
                  HUGE_PAGE, rc, n, msg);
    ck_assert_uint_eq(n, 0);
}
END_TEST

/* ---- 3. a server that accepts and never answers the HELLO ---- */

static void silent_script(int fd, int index, const void *arg)
{
    (void)index;
    (void)arg;
    fk_linger(fd); /* reads the HELLO, says nothing, until the client leaves */
}

typedef struct connect_result {
    int rc;
    int64_t took;
    char msg[256];
} connect_result;

/* Regression: with connect_timeout_ms <= 0 the handshake got no timeout
 * at all, so agate_connect to a peer that accepts and stays silent hung
 * forever. The connect runs in a child with a deadline so that a
 * regression fails instead of hanging the suite. */
START_TEST(silent_peer_with_unbounded_connect_timeout)
{
    fk f = {0};
    fk_start(&f, 1, silent_script, NULL);
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        agate_options o;
        agate_options_init(&o);
        o.connect_timeout_ms = 0;
        o.request_timeout_ms = 800;
        agate_client *c = agate_client_new(&o);
        connect_result res = {0};
        int64_t t0 = tu_now_ms();
        res.rc = agate_connect(c, f.addr);
        res.took = tu_now_ms() - t0;
        snprintf(res.msg, sizeof(res.msg), "%s", agate_errmsg(c));
        agate_client_free(c);
        _exit(write(pfd[1], &res, sizeof(res)) == (ssize_t)sizeof(res) ? 0 : 1);
    }
    ck_assert_int_ge(pid, 0);
    tu_track_pid(pid);
    close(pfd[1]);
    connect_result res = {0};
    ssize_t got = 0;
    struct pollfd p = {.fd = pfd[0], .events = POLLIN};
    int64_t deadline = tu_now_ms() + 8000;
    for (;;) {
        int left = (int)(deadline - tu_now_ms());
        if (left <= 0)
            break;
        int pr = poll(&p, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr > 0)
            got = read(pfd[0], &res, sizeof(res));
        break;
    }
    close(pfd[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    tu_untrack_pid(pid);
    fk_stop(&f);
    ck_assert_msg(got == (ssize_t)sizeof(res),
                  "agate_connect to a silent peer (connect_timeout_ms 0, request_timeout_ms "
                  "800) did not return within 8 s");
    ck_assert_msg(res.rc == AGATE_ECONNECT, "connect to a silent peer: %d (%s)", res.rc, res.msg);
    ck_assert_msg(res.took < 3000, "connect to a silent peer took %lld ms", (long long)res.took);
}
END_TEST

/* ---- 4. an id-0 error reply closing the connection ---- */

/* HELLO, then reads three PUTs; answers the first OK, then sends a
 * connection-level error (id 0, TOO_LARGE) and closes. */
static void id0_script(int fd, int index, const void *arg)
{
    (void)index;
    (void)arg;
    if (fk_hello(fd, 32))
        return;
    int64_t ids[3];
    for (int i = 0; i < 3; i++)
        if ((ids[i] = fk_read_request(fd, NULL)) < 0)
            return;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint64(&pk, (uint64_t)ids[0]);
    msgpack_pack_uint8(&pk, 0);
    fk_send_msg(fd, &sb);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint8(&pk, 13);
    msgpack_pack_str_with_body(&pk, "frame too large", 15);
    fk_send_msg(fd, &sb);
    msgpack_sbuffer_destroy(&sb);
    /* close our side once sent; wait for the client's close so that no
     * unread input turns our close into a reset */
    shutdown(fd, SHUT_WR);
    fk_linger(fd);
}

typedef struct put_state {
    int calls;
    int status;
    char errmsg[256];
} put_state;

static void put_cb(agate_client *c, const agate_reply *r, void *arg)
{
    (void)c;
    put_state *s = arg;
    s->calls++;
    s->status = r->status;
    snprintf(s->errmsg, sizeof(s->errmsg), "%s", r->errmsg ? r->errmsg : "(null)");
}

/* Regression: the requests in flight when the server closed with an id-0
 * error got that error's status (AGATE_ETOO_LARGE), as if each of them had
 * been refused; they must fail as on any lost connection (AGATE_EIO), with
 * the server's reason in the message. */
START_TEST(id0_error_fails_in_flight_requests_with_eio)
{
    fk f = {0};
    fk_start(&f, 1, id0_script, NULL);
    agate_client *c = fk_client(&f, 2000 * tu_timeout_scale(), timeout_ms());
    put_state st[3];
    memset(st, 0, sizeof(st));
    for (int i = 0; i < 3; i++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(agate_put_async(c, "r", key, 2, "\x01", 1, put_cb, &st[i]), 0);
    }
    int rc = agate_wait(c, timeout_ms());
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", agate_errmsg(c));
    agate_client_free(c);
    fk_stop(&f);
    ck_assert_msg(rc == AGATE_EIO, "agate_wait: %d (%s)", rc, msg);
    ck_assert_msg(strstr(msg, "frame too large") != NULL, "agate_errmsg: %s", msg);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(st[i].calls, 1);
    ck_assert_msg(st[0].status == 0, "first PUT: %d (%s)", st[0].status, st[0].errmsg);
    for (int i = 1; i < 3; i++) {
        ck_assert_msg(st[i].status == AGATE_EIO, "PUT %d: %d %s (%s)", i, st[i].status,
                      agate_strerror(st[i].status), st[i].errmsg);
        ck_assert_msg(strstr(st[i].errmsg, "frame too large") != NULL, "PUT %d errmsg: %s", i,
                      st[i].errmsg);
    }
}
END_TEST

/* ---- 5. a huge max_depth in the HELLO reply ---- */

/* HELLO with max_depth 4294967295, then answers SERVER_INFO with a small
 * map. The map holds a value nested a few levels deep: with the old wrapped
 * limit (4294967295 + 4 = 3 in uint32) a flat map still parsed, this one
 * (6 levels with the reply's envelope) did not. */
static void huge_depth_script(int fd, int index, const void *arg)
{
    (void)index;
    (void)arg;
    if (fk_hello(fd, UINT32_MAX))
        return;
    int64_t id = fk_read_request(fd, NULL);
    if (id < 0)
        return;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint64(&pk, (uint64_t)id);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "name", 4);
    msgpack_pack_str_with_body(&pk, "fake", 4);
    msgpack_pack_str_with_body(&pk, "ops", 3);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "PING", 4);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_uint8(&pk, 1);
    fk_send_msg(fd, &sb);
    msgpack_sbuffer_destroy(&sb);
    fk_linger(fd);
}

/* Regression: max_depth + 4 was computed in uint32 and wrapped, so a
 * server announcing max_depth 4294967295 left the client parsing replies
 * with a depth limit of 3: AGATE_EPROTO on ordinary replies. */
START_TEST(huge_max_depth_in_hello)
{
    fk f = {0};
    fk_start(&f, 1, huge_depth_script, NULL);
    agate_client *c = fk_client(&f, 2000 * tu_timeout_scale(), timeout_ms());
    agate_buf info = {0};
    int rc = agate_server_info(c, &info);
    char msg[256];
    snprintf(msg, sizeof(msg), "%s", agate_errmsg(c));
    int shape_ok = 0;
    if (rc == 0) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        shape_ok = msgpack_unpack_next(&u, (const char *)info.data, info.len, NULL) ==
                       MSGPACK_UNPACK_SUCCESS &&
                   u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size == 2;
        msgpack_unpacked_destroy(&u);
    }
    agate_buf_free(&info);
    agate_client_free(c);
    fk_stop(&f);
    ck_assert_msg(rc == 0, "server_info after max_depth 4294967295: %d (%s)", rc, msg);
    ck_assert(shape_ok);
}
END_TEST

/* ---- 6. outputs are safe to free after argument errors ---- */

/* Regression: agate_keys and agate_get_all zeroed their outputs only after
 * checking the arguments, so after AGATE_EINVAL the caller's (documented
 * as safe) agate_page_free / agate_buf_free freed garbage pointers. */
START_TEST(outputs_zeroed_before_argument_errors)
{
    agate_client *c = agate_client_new(NULL);
    ck_assert_ptr_nonnull(c);
    agate_page page;
    memset(&page, 0xAB, sizeof(page));
    ck_assert_int_eq(agate_keys(c, NULL, 0, 10, &page), AGATE_EINVAL);
    ck_assert_ptr_null(page.keys);
    ck_assert_ptr_null(page.values);
    ck_assert_uint_eq(page.n, 0);
    agate_page_free(&page);
    memset(&page, 0xAB, sizeof(page));
    ck_assert_int_eq(agate_entries(c, NULL, 0, 10, &page), AGATE_EINVAL);
    agate_page_free(&page);

    agate_key keys[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
    agate_buf values[3];
    memset(values, 0xAB, sizeof(values));
    ck_assert_int_eq(agate_get_all(c, NULL, keys, 3, values), AGATE_EINVAL);
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_null(values[i].data);
        agate_buf_free(&values[i]);
    }
    agate_client_free(c);
}
END_TEST

/* ---- 7. queries: the request on the wire, the reply's shape ---- */

/* Reads one request; *args gets its arguments, which point into u and
 * *body (destroy u and free *body after use). Returns the id, or -1. */
static int64_t fk_read_args(int fd, uint8_t **body, msgpack_unpacked *u, uint32_t *op,
                            const msgpack_object **args, uint32_t *nargs)
{
    uint32_t blen;
    msgpack_unpacked_init(u);
    *body = NULL;
    if (tw_read_frame(fd, 10000, body, &blen) != 1)
        return -1;
    int64_t id = -1;
    if (msgpack_unpack_next(u, (const char *)*body, blen, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u->data.type == MSGPACK_OBJECT_ARRAY && u->data.via.array.size >= 3 &&
        u->data.via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        id = (int64_t)u->data.via.array.ptr[1].via.u64;
        *op = (uint32_t)u->data.via.array.ptr[2].via.u64;
        *args = u->data.via.array.ptr + 3;
        *nargs = u->data.via.array.size - 3;
    }
    return id;
}

/* Starts a reply [1, id, status, ...] with nresults results to come. */
static void fk_reply_head(msgpack_packer *pk, int64_t id, int status, uint32_t nresults)
{
    msgpack_pack_array(pk, 3 + nresults);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint64(pk, (uint64_t)id);
    msgpack_pack_uint8(pk, (uint8_t)status);
}

static bool obj_is_int(const msgpack_object *o, uint64_t v)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == v;
}

/* Connection 0: expects QUERY ["SELECT 1 FROM /r", []] and answers with a
 * row shorter than the columns. Connection 1: expects QUERY ["Q", [7, "x"],
 * {"timeout_ms": 1234}] and answers a valid result after 1.5 s. Anything
 * unexpected is answered with INTERNAL and a message saying what. */
static void query_script(int fd, int index, const void *arg)
{
    (void)arg;
    if (fk_hello(fd, 32))
        return;
    msgpack_unpacked u;
    uint8_t *body;
    uint32_t op = 0, nargs = 0;
    const msgpack_object *args = NULL;
    int64_t id = fk_read_args(fd, &body, &u, &op, &args, &nargs);
    if (id < 0) {
        msgpack_unpacked_destroy(&u);
        free(body);
        return;
    }
    bool expected;
    if (index == 0)
        expected = op == 31 && nargs == 2 && tw_obj_is_str(&args[0], "SELECT 1 FROM /r") &&
                   args[1].type == MSGPACK_OBJECT_ARRAY && args[1].via.array.size == 0;
    else
        expected = op == 31 && nargs == 3 && tw_obj_is_str(&args[0], "Q") &&
                   args[1].type == MSGPACK_OBJECT_ARRAY && args[1].via.array.size == 2 &&
                   obj_is_int(&args[1].via.array.ptr[0], 7) &&
                   tw_obj_is_str(&args[1].via.array.ptr[1], "x") &&
                   args[2].type == MSGPACK_OBJECT_MAP && args[2].via.map.size == 1 &&
                   tw_map_get(&args[2], "timeout_ms") &&
                   obj_is_int(tw_map_get(&args[2], "timeout_ms"), 1234);
    msgpack_unpacked_destroy(&u);
    free(body);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (!expected) {
        fk_reply_head(&pk, id, 19, 1);
        msgpack_pack_str_with_body(&pk, "fake: unexpected request", 24);
    } else {
        if (index == 1)
            usleep(1500 * 1000); /* longer than the request timeout */
        fk_reply_head(&pk, id, 0, 3);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_str_with_body(&pk, "a", 1);
        msgpack_pack_str_with_body(&pk, "b", 1);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_nil(&pk);
        msgpack_pack_array(&pk, index == 0 ? 1 : 2); /* connection 0: a short row */
        msgpack_pack_int(&pk, 2);
        if (index == 1)
            msgpack_pack_str_with_body(&pk, "two", 3);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "rows", 4);
        msgpack_pack_uint8(&pk, 2);
    }
    fk_send_msg(fd, &sb);
    msgpack_sbuffer_destroy(&sb);
    fk_linger(fd);
}

START_TEST(query_request_and_reply_shape)
{
    fk f = {0};
    fk_start(&f, 2, query_script, NULL);
    agate_client *c = fk_client(&f, 2000 * tu_timeout_scale(), 500);
    agate_buf out;
    memset(&out, 0xAB, sizeof(out));
    int rc1 = agate_query(c, "SELECT 1 FROM /r", NULL, 0, -1, &out);
    char msg1[256];
    snprintf(msg1, sizeof(msg1), "%s", agate_errmsg(c));
    void *data1 = out.data;
    /* the connection was dropped: this one reconnects to connection 1. Its
     * reply comes after 1.5 s, past the 500 ms request timeout but within
     * the query's own limit (1234 ms) plus the margin */
    static const uint8_t params[] = {0x92, 0x07, 0xa1, 'x'};
    int rc2 = agate_query(c, "Q", params, sizeof(params), 1234, &out);
    char msg2[256];
    snprintf(msg2, sizeof(msg2), "%s", agate_errmsg(c));
    /* the request timeout is back to 500 ms afterwards: the fake never
     * answers this ping */
    int64_t t0 = tu_now_ms();
    int rc3 = agate_ping(c);
    int64_t took = tu_now_ms() - t0;
    agate_client_free(c);
    fk_stop(&f);

    ck_assert_msg(rc1 == AGATE_EPROTO, "a row shorter than the columns: %d (%s)", rc1, msg1);
    ck_assert_ptr_null(data1);
    ck_assert_msg(rc2 == 0, "query: %d (%s)", rc2, msg2);
    static const uint8_t want[] = {0x93, 0x92, 0xa1, 'a', 0xa1, 'b', 0x92, 0x92, 0x01, 0xc0,
                                   0x92, 0x02, 0xa3, 't', 'w', 'o', 0x81, 0xa4, 'r', 'o', 'w',
                                   's', 0x02};
    ck_assert_uint_eq(out.len, sizeof(want));
    ck_assert_mem_eq(out.data, want, sizeof(want));
    agate_buf_free(&out);
    ck_assert_msg(rc3 == AGATE_ETIMEDOUT && took < 1400, "ping after the query: %d in %lld ms",
                  rc3, (long long)took);
}
END_TEST

/* Argument errors need no connection and leave *out zeroed. */
START_TEST(query_arguments_offline)
{
    agate_client *c = agate_client_new(NULL);
    ck_assert_ptr_nonnull(c);
    agate_buf out;
    memset(&out, 0xAB, sizeof(out));
    ck_assert_int_eq(agate_query(c, NULL, NULL, 0, -1, &out), AGATE_EINVAL);
    ck_assert_ptr_null(out.data);
    ck_assert_uint_eq(out.len, 0);
    memset(&out, 0xAB, sizeof(out));
    ck_assert_int_eq(agate_query(c, "SELECT * FROM /r", "\xa1x", 2, -1, &out), AGATE_EINVAL);
    ck_assert_ptr_null(out.data);
    ck_assert_ptr_nonnull(strstr(agate_errmsg(c), "array"));
    ck_assert_int_eq(agate_query(c, "SELECT * FROM /r", "\x91", 1, -1, &out), AGATE_EINVAL);
    ck_assert_int_eq(agate_query(c, "SELECT * FROM /r", "\x90", 1, -1, NULL), AGATE_EINVAL);
    agate_client_free(c);
}
END_TEST

static Suite *client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tu_tcase(s, "offline", 30);
    tcase_add_test(tc, strerror_and_types);
    tcase_add_test(tc, not_an_agate_server);
    tcase_add_test(tc, outputs_zeroed_before_argument_errors);
    tcase_add_test(tc, query_arguments_offline);

    tc = tu_tcase(s, "fake_servers", 60);
    tcase_add_test(tc, flooding_server_cannot_hold_the_caller);
    tcase_add_test(tc, scan_page_far_above_limit_is_refused);
    tcase_add_test(tc, silent_peer_with_unbounded_connect_timeout);
    tcase_add_test(tc, id0_error_fails_in_flight_requests_with_eio);
    tcase_add_test(tc, huge_max_depth_in_hello);
    tcase_add_test(tc, query_request_and_reply_shape);

    tc = tu_tcase(s, "api", 120);
    tcase_add_unchecked_fixture(tc, start_servers, stop_servers);
    tcase_add_test(tc, connect_ping_info);
    tcase_add_test(tc, connect_list_first_dead);
    tcase_add_test(tc, connect_bad_arguments);
    tcase_add_test(tc, region_lifecycle);
    tcase_add_test(tc, entry_functions);
    tcase_add_test(tc, error_codes);
    tcase_add_test(tc, put_all_split_and_get_all);
    tcase_add_test(tc, keys_and_entries_paging);
    tcase_add_test(tc, query_rows_params_and_errors);
    tcase_add_test(tc, async_put_get_wait);
    tcase_add_test(tc, async_own_event_loop);
    tcase_add_test(tc, free_with_pending_requests);

    tc = tu_tcase(s, "failures", 120);
    tcase_add_test(tc, timeout_on_stopped_server);
    tcase_add_test(tc, connection_loss_and_failover);
    return s;
}

int main(void)
{
    Suite *s = client_suite();
    return tu_run(&s, 1);
}
