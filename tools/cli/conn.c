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

/* Opens a connection with a given connect timeout. */
static agate_client *open_with_timeout(const char *addr, int connect_timeout_ms)
{
    agate_options o;
    agate_options_init(&o);
    o.connect_timeout_ms = connect_timeout_ms;
    o.request_timeout_ms = CLI_REQUEST_TIMEOUT_MS;
    o.client_name = "agate-cli";
    agate_client *c = agate_client_new(&o);
    if (!c) {
        cli_err("out of memory");
        return NULL;
    }
    int rc = agate_connect(c, addr);
    if (rc < 0) {
        const char *msg = agate_errmsg(c);
        if (!msg || !*msg)
            msg = agate_strerror(rc);
        /* The library's message may already name the address
         * ("HOST:PORT: reason"); say it once. */
        size_t al = strlen(addr);
        if (strncmp(msg, "cannot connect", 14) == 0)
            cli_err("%s", msg);
        else if (strncmp(msg, addr, al) == 0 && msg[al] == ':' && msg[al + 1] == ' ')
            cli_err("cannot connect to %s: %s", addr, msg + al + 2);
        else
            cli_err("cannot connect to %s: %s", addr, msg);
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

/* Prints the server's name and version from SERVER_INFO, best effort. */
static void describe_connection(agate_client *c, const char *addr, bool json)
{
    agate_buf info = {0};
    const char *shown = agate_server_address(c);
    if (!shown)
        shown = addr;
    int rc = agate_server_info(c, &info);
    if (json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        jw_ckey(&d.w, "connected");
        jw_bool(&d.w, true);
        jw_ckey(&d.w, "server");
        jw_cstr(&d.w, shown);
        if (rc == 0) {
            mp_cursor cur;
            mp_cursor_init(&cur, info.data, info.len);
            jw_ckey(&d.w, "info");
            if (jw_mp(&d.w, &cur))
                jw_null(&d.w);
        }
        jw_end_object(&d.w);
        json_doc_print(&d);
    } else {
        char name[128] = "?", version[64] = "?";
        if (rc == 0) {
            mp_cursor cur;
            uint32_t n;
            mp_cursor_init(&cur, info.data, info.len);
            if (mp_read_map(&cur, &n) == 0) {
                for (uint32_t i = 0; i < n; i++) {
                    const uint8_t *k, *v;
                    uint32_t kl, vl;
                    if (mp_read_str(&cur, &k, &kl))
                        break;
                    char *dst = NULL;
                    size_t cap = 0;
                    if (kl == 4 && memcmp(k, "name", 4) == 0)
                        dst = name, cap = sizeof name;
                    else if (kl == 7 && memcmp(k, "version", 7) == 0)
                        dst = version, cap = sizeof version;
                    if (dst && mp_read_str(&cur, &v, &vl) == 0)
                        snprintf(dst, cap, "%.*s", (int)vl, (const char *)v);
                    else if (mp_skip(&cur, MP_MAX_DEPTH_LIMIT))
                        break;
                }
            }
        }
        printf("Connected to %s (server %s, version %s)\n", shown, name, version);
    }
    agate_buf_free(&info);
}

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
    if (ctx->conn)
        agate_client_free(ctx->conn);
    free(ctx->conn_addr);
    ctx->conn = c;
    ctx->conn_addr = copy;
    return EXIT_OK;
}

int cmd_disconnect(cli_ctx *ctx, const cli_args *a)
{
    if (!ctx->conn) {
        if (!a->json)
            printf("Not connected\n");
    } else if (!a->json) {
        printf("Disconnected from %s\n", ctx->conn_addr);
    }
    if (a->json)
        printf("{\n  \"connected\": false\n}\n");
    agate_client_free(ctx->conn);
    free(ctx->conn_addr);
    ctx->conn = NULL;
    ctx->conn_addr = NULL;
    return EXIT_OK;
}
