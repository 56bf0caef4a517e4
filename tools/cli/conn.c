/* conn.c - connecting to servers, error messages from libagate, and the
 * connect / disconnect commands. */
#include <stdlib.h>
#include <string.h>

#include "tools/cli/cli.h"
#include "tools/cli/output.h"

/* Requests like clear or a large put-all can take a while on a big region;
 * the library default (10 s) would turn a slow success into an error. */
#define CLI_REQUEST_TIMEOUT_MS 120000

const char *cli_server(const cli_ctx *ctx, const cli_args *a)
{
    if (a && a->server)
        return a->server;
    if (ctx && ctx->conn_addr)
        return ctx->conn_addr;
    const char *env = getenv("AGATE_SERVER");
    return env && *env ? env : CLI_DEFAULT_SERVER;
}

agate_client *cli_client_new(int connect_timeout_ms, int request_timeout_ms)
{
    agate_options o;
    agate_options_init(&o);
    o.connect_timeout_ms = connect_timeout_ms;
    o.request_timeout_ms = request_timeout_ms;
    o.client_name = "agate-cli";
    return agate_client_new(&o);
}

/* Prints why connecting to addr failed. The library's message may already
 * name the address ("HOST:PORT: reason"); say it once. */
static void connect_error(agate_client *c, int rc, const char *addr)
{
    const char *msg = agate_errmsg(c);
    if (!msg || !*msg)
        msg = agate_strerror(rc);
    size_t al = strlen(addr);
    if (strncmp(msg, "cannot connect", 14) == 0)
        cli_err("%s", msg);
    else if (strncmp(msg, addr, al) == 0 && msg[al] == ':' && msg[al + 1] == ' ')
        cli_err("cannot connect to %s: %s", addr, msg + al + 2);
    else
        cli_err("cannot connect to %s: %s", addr, msg);
}

/* Opens a connection to addr with a given connect timeout and the CLI's
 * request timeout. NULL after printing the reason. */
static agate_client *open_with_timeout(const char *addr, int connect_timeout_ms)
{
    agate_client *c = cli_client_new(connect_timeout_ms, CLI_REQUEST_TIMEOUT_MS);
    if (!c) {
        cli_err("out of memory");
        return NULL;
    }
    int rc = agate_connect(c, addr);
    if (rc < 0) {
        connect_error(c, rc, addr);
        agate_client_free(c);
        return NULL;
    }
    return c;
}

agate_client *cli_open(const char *addr) { return open_with_timeout(addr, 5000); }

agate_client *cli_connect(cli_ctx *ctx, const cli_args *a)
{
    if (ctx->conn && (!a->server || (ctx->conn_addr && strcmp(a->server, ctx->conn_addr) == 0)))
        return ctx->conn;
    return cli_open(cli_server(ctx, a));
}

void cli_release(cli_ctx *ctx, agate_client *c)
{
    if (c && c != ctx->conn)
        agate_client_free(c);
}

int cli_fail(agate_client *c, int rc, const char *what)
{
    const char *msg = c ? agate_errmsg(c) : NULL;
    if (!msg || !*msg)
        msg = agate_strerror(rc);
    if (what)
        cli_err("%s: %s", what, msg);
    else
        cli_err("%s", msg);
    return EXIT_ERR;
}

int cli_finish(cli_ctx *ctx, agate_client *c, int rc, const char *what)
{
    int ret = rc < 0 ? cli_fail(c, rc, what) : EXIT_OK;
    cli_release(ctx, c);
    return ret;
}

void cli_set_connection(cli_ctx *ctx, agate_client *c, char *addr)
{
    agate_client_free(ctx->conn);
    free(ctx->conn_addr);
    ctx->conn = c;
    ctx->conn_addr = addr;
}

/* Points val at the value under key in the MessagePack map info. */
static bool info_find(const agate_buf *info, const char *key, mp_cursor *val)
{
    mp_cursor c;
    uint32_t n;
    mp_cursor_init(&c, info->data, info->len);
    if (mp_read_map(&c, &n))
        return false;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k;
        uint32_t len;
        bool is_str;
        if (mp_read_bytes(&c, &k, &len, &is_str))
            return false;
        if (len == kl && memcmp(k, key, kl) == 0) {
            *val = c;
            return true;
        }
        if (mp_skip(&c, MP_MAX_DEPTH_LIMIT))
            return false;
    }
    return false;
}

bool cli_info_uint(const agate_buf *info, const char *key, uint64_t *out)
{
    mp_cursor c;
    return info_find(info, key, &c) && mp_read_uint(&c, out) == 0;
}

bool cli_info_str(const agate_buf *info, const char *key, char *out, size_t cap)
{
    mp_cursor c;
    const uint8_t *p;
    uint32_t n;
    if (!info_find(info, key, &c) || mp_read_str(&c, &p, &n))
        return false;
    snprintf(out, cap, "%.*s", (int)n, (const char *)p);
    return true;
}

/* Prints which server c is connected to (addr unless the library knows
 * better), with its name and version from SERVER_INFO, best effort. */
static void describe_connection(agate_client *c, const char *addr, bool json)
{
    agate_buf info = {0};
    const char *shown = agate_server_address(c);
    if (!shown)
        shown = addr;
    int rc = agate_server_info(c, &info);
    if (json) {
        json_print_object(stdout, JSON_FIELDS(JF_BOOL("connected", true), JF_STR("server", shown),
                                              JF_IF(rc == 0, JF_MP("info", info.data, info.len))));
    } else {
        char name[128] = "?", version[64] = "?";
        if (rc == 0) {
            cli_info_str(&info, "name", name, sizeof name);
            cli_info_str(&info, "version", version, sizeof version);
        }
        printf("Connected to %s (server %s, version %s)\n", shown, name, version);
    }
    agate_buf_free(&info);
}

/* connect: checks that a server answers; in the shell it becomes the
 * connection of the following commands. */
int cmd_connect(cli_ctx *ctx, const cli_args *a)
{
    const char *addr = a->server ? a->server : cli_server(NULL, NULL);
    int timeout_ms = (int)cli_int(a, "timeout", 5) * 1000;
    agate_client *c = open_with_timeout(addr, timeout_ms);
    if (!c)
        return EXIT_ERR;
    describe_connection(c, addr, a->json);
    if (!ctx->in_shell) {
        /* On the command line connect only checks that the server answers. */
        agate_client_free(c);
        return EXIT_OK;
    }
    char *copy = strdup(addr);
    if (!copy) {
        agate_client_free(c);
        cli_err("out of memory");
        return EXIT_ERR;
    }
    cli_set_connection(ctx, c, copy);
    return EXIT_OK;
}

/* disconnect: closes the shell's connection. */
int cmd_disconnect(cli_ctx *ctx, const cli_args *a)
{
    if (a->json)
        json_print_object(stdout, JSON_FIELDS(JF_BOOL("connected", false)));
    else if (!ctx->conn)
        printf("Not connected\n");
    else
        printf("Disconnected from %s\n", ctx->conn_addr);
    cli_set_connection(ctx, NULL, NULL);
    return EXIT_OK;
}
