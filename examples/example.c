/* example.c - a short tour of libagate.
 *
 * Build against an installed libagate:
 *     cc example.c $(pkg-config --cflags --libs agate) -o example
 * Run against a server:
 *     ./example 127.0.0.1:40404
 * or against a cluster, through its locators (the calls are the same; the
 * library sends each key to the member holding it):
 *     ./example --locators=127.0.0.1[10334]
 *
 * Values are MessagePack; real programs would build them with msgpack-c.
 * To stay dependency-free this example encodes short strings by hand. */
#include <agate/agate.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Encodes s (at most 31 bytes) as a MessagePack fixstr into out. */
static size_t mp_fixstr(uint8_t *out, const char *s)
{
    size_t n = strlen(s);
    if (n > 31)
        n = 31;
    out[0] = (uint8_t)(0xa0 | n);
    memcpy(out + 1, s, n);
    return n + 1;
}

static int fail(agate_client *c, const char *what, int rc)
{
    fprintf(stderr, "%s: %s (%s)\n", what, agate_strerror(rc), agate_errmsg(c));
    agate_client_free(c);
    return 1;
}

/* Completion of an asynchronous put: count successes and failures. */
typedef struct tally {
    int ok;
    int failed;
} tally;

static void on_put(agate_client *c, const agate_reply *reply, void *arg)
{
    (void)c;
    tally *t = arg;
    if (reply->status == 0)
        t->ok++;
    else if (t->failed++ == 0)
        fprintf(stderr, "put failed: %s\n", reply->errmsg);
}

int main(int argc, char **argv)
{
    const char *servers = argc > 1 ? argv[1] : "127.0.0.1:40404";
    const char *locators = strncmp(servers, "--locators=", 11) == 0 ? servers + 11 : NULL;
    const char *region = "example";

    agate_options opts;
    agate_options_init(&opts);
    opts.client_name = "libagate-example";
    agate_client *c = agate_client_new(&opts);
    if (!c)
        return 1;

    int rc = locators ? agate_connect_locator(c, locators) : agate_connect(c, servers);
    if (rc)
        return fail(c, "connect", rc);
    const char *addr = agate_server_address(c);
    printf("connected to %s%s\n", addr ? addr : "a cluster", agate_is_cluster(c) ? " (cluster)" : "");

    agate_region_config cfg;
    agate_region_config_init(&cfg, region, AGATE_PARTITION);
    cfg.if_not_exists = 1;
    if ((rc = agate_region_create(c, &cfg)) != 0)
        return fail(c, "region create", rc);

    /* Synchronous put and get. */
    uint8_t value[32];
    size_t vlen = mp_fixstr(value, "hello, agate");
    if ((rc = agate_put(c, region, "greeting", 8, value, vlen)) != 0)
        return fail(c, "put", rc);
    agate_buf got;
    if ((rc = agate_get(c, region, "greeting", 8, &got)) != 0)
        return fail(c, "get", rc);
    printf("greeting = %.*s\n", (int)got.len - 1, (const char *)got.data + 1);
    agate_buf_free(&got);

    rc = agate_get(c, region, "missing", 7, &got);
    printf("missing: %s\n", rc == AGATE_ENOTFOUND ? "not found, as expected" : agate_strerror(rc));

    /* Pipelined asynchronous puts: queue many, then wait for all replies. */
    tally t = {0, 0};
    for (int i = 0; i < 1000; i++) {
        char key[32];
        int klen = snprintf(key, sizeof(key), "item:%04d", i);
        vlen = mp_fixstr(value, key);
        if ((rc = agate_put_async(c, region, key, (size_t)klen, value, vlen, on_put, &t)) != 0)
            return fail(c, "put_async", rc);
    }
    if ((rc = agate_wait(c, 10000)) != 0)
        return fail(c, "wait", rc);
    printf("async puts: %d ok, %d failed\n", t.ok, t.failed);

    /* Scan the keys, one page at a time. */
    uint64_t cursor = 0, seen = 0;
    do {
        agate_page page;
        if ((rc = agate_keys(c, region, cursor, 256, &page)) != 0)
            return fail(c, "keys", rc);
        seen += page.n;
        cursor = page.next_cursor;
        agate_page_free(&page);
    } while (cursor != 0);
    uint64_t size = 0;
    if ((rc = agate_size(c, region, &size)) != 0)
        return fail(c, "size", rc);
    printf("scan saw %llu keys; the region holds %llu entries\n", (unsigned long long)seen,
           (unsigned long long)size);

    agate_region_info *info;
    if ((rc = agate_region_describe(c, region, &info)) != 0)
        return fail(c, "describe", rc);
    printf("region %s: type %s, %u buckets, %llu bytes\n", info->name,
           agate_region_type_name(info->type), info->total_num_buckets,
           (unsigned long long)info->bytes);
    agate_region_info_free(info);

    if ((rc = agate_region_destroy(c, region)) != 0)
        return fail(c, "region destroy", rc);
    agate_client_free(c);
    return 0;
}
