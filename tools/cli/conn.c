/* conn.c - connecting to servers or through locators, error messages from
 * libagate, and the connect / disconnect commands. */
#include <stdlib.h>
#include <string.h>

#include "common/locators.h"
#include "tools/cli/cli.h"
#include "tools/cli/doc.h"
#include "tools/cli/output.h"

/* Requests like clear or a large put-all can take a while on a big region;
 * the library default (10 s) would turn a slow success into an error. */
#define CLI_REQUEST_TIMEOUT_MS 120000

cli_target cli_target_of(const cli_ctx *ctx, const cli_args *a, bool cluster)
{
    cli_target t = {NULL, false, false, NULL};
    if (a && a->server) {
        t.addr = a->server;
        t.source = "--server";
    } else if (a && a->locator) {
        t.addr = a->locator;
        t.locator = true;
        t.source = "--locator";
    } else if (ctx && ctx->conn_addr) {
        t.addr = ctx->conn_addr;
        t.locator = ctx->conn_locator;
        t.shell = ctx->conn != NULL;
        t.source = "connect";
    } else {
        const char *loc = getenv("AGATE_LOCATOR");
        const char *srv = getenv("AGATE_SERVER");
        if (loc && *loc) {
            t.addr = loc;
            t.locator = true;
            t.source = "$AGATE_LOCATOR";
        } else if (srv && *srv) {
            t.addr = srv;
            t.source = "$AGATE_SERVER";
        } else {
            t.addr = cluster ? CLI_DEFAULT_LOCATOR : CLI_DEFAULT_SERVER;
            t.locator = cluster;
            t.source = "the default";
        }
    }
    /* the shell's connection also serves a command naming it explicitly */
    if (!t.shell && ctx && ctx->conn && ctx->conn_addr && t.locator == ctx->conn_locator &&
        strcmp(t.addr, ctx->conn_addr) == 0)
        t.shell = true;
    return t;
}

void cli_target_name(const cli_target *t, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", t->locator ? "locator " : "", t->addr);
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

/* Prints why connecting to t failed. The library's message may already
 * name the address ("HOST:PORT: reason"); say it once. */
static void connect_error(agate_client *c, int rc, const cli_target *t)
{
    const char *msg = agate_errmsg(c);
    if (!msg || !*msg)
        msg = agate_strerror(rc);
    char name[300];
    cli_target_name(t, name, sizeof name);
    /* the library names an address as HOST:PORT; a single locator given as
     * HOST[PORT] is the same address */
    char addr[300];
    snprintf(addr, sizeof addr, "%s", t->addr);
    size_t al = strlen(addr);
    if (t->locator && !strchr(addr, ',') && al > 0 && addr[al - 1] == ']' && strchr(addr, '[')) {
        *strchr(addr, '[') = ':';
        addr[--al] = 0;
    }
    if (strncmp(msg, "cannot connect", 14) == 0)
        cli_err("%s", msg);
    else if (strncmp(msg, addr, al) == 0 && msg[al] == ':' && msg[al + 1] == ' ')
        cli_err("cannot connect to %s: %s", name, msg + al + 2);
    else
        cli_err("cannot connect to %s: %s", name, msg);
}

agate_client *cli_open(const cli_target *t, int connect_timeout_ms)
{
    if (t->locator) {
        char err[300];
        if (locators_check(t->addr, err, sizeof err) != 0) {
            cli_err("bad locator list in %s: %s", t->source ? t->source : "--locator", err);
            return NULL;
        }
    }
    agate_client *c = cli_client_new(connect_timeout_ms, CLI_REQUEST_TIMEOUT_MS);
    if (!c) {
        cli_err("out of memory");
        return NULL;
    }
    int rc = t->locator ? agate_connect_locator(c, t->addr) : agate_connect(c, t->addr);
    if (rc < 0) {
        connect_error(c, rc, t);
        agate_client_free(c);
        return NULL;
    }
    return c;
}

/* A connection to t: the shell's when t is it, else a new one. */
static agate_client *connect_target(cli_ctx *ctx, const cli_target *t)
{
    if (t->shell)
        return ctx->conn;
    return cli_open(t, 5000);
}

agate_client *cli_connect(cli_ctx *ctx, const cli_args *a)
{
    cli_target t = cli_target_of(ctx, a, false);
    return connect_target(ctx, &t);
}

agate_client *cli_connect_cluster(cli_ctx *ctx, const cli_args *a)
{
    cli_target t = cli_target_of(ctx, a, true);
    return connect_target(ctx, &t);
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

void cli_set_connection(cli_ctx *ctx, agate_client *c, char *addr, bool locator)
{
    agate_client_free(ctx->conn);
    free(ctx->conn_addr);
    ctx->conn = c;
    ctx->conn_addr = addr;
    ctx->conn_locator = locator;
}

/* Prints which server (or cluster) c is connected to (t's address unless
 * the library knows better), with its name and version from SERVER_INFO,
 * best effort. */
static void describe_connection(agate_client *c, const cli_target *t, bool json)
{
    agate_buf info = {0};
    const char *shown = t->locator ? NULL : agate_server_address(c);
    if (!shown)
        shown = t->addr;
    int rc = agate_server_info(c, &info);
    if (json) {
        json_print_object(stdout,
                          JSON_FIELDS(JF_BOOL("connected", true),
                                      JF_STR(t->locator ? "locator" : "server", shown),
                                      JF_IF(rc == 0, JF_MP("info", info.data, info.len))));
    } else {
        char name[128] = "?", version[64] = "?";
        if (rc == 0) {
            doc_get_str(doc_root(&info), "name", name, sizeof name);
            doc_get_str(doc_root(&info), "version", version, sizeof version);
        }
        if (t->locator)
            printf("Connected to the cluster through locator %s (%s, version %s)\n", shown, name,
                   version);
        else
            printf("Connected to %s (server %s, version %s)\n", shown, name, version);
    }
    agate_buf_free(&info);
}

/* connect: checks that a server (or a locator) answers; in the shell it
 * becomes the connection of the following commands. */
int cmd_connect(cli_ctx *ctx, const cli_args *a)
{
    cli_target t = cli_target_of(NULL, a, false);
    int timeout_ms = (int)cli_int(a, "timeout", 5) * 1000;
    agate_client *c = cli_open(&t, timeout_ms);
    if (!c)
        return EXIT_ERR;
    describe_connection(c, &t, a->json);
    if (!ctx->in_shell) {
        /* On the command line connect only checks that the server answers. */
        agate_client_free(c);
        return EXIT_OK;
    }
    char *copy = strdup(t.addr);
    if (!copy) {
        agate_client_free(c);
        cli_err("out of memory");
        return EXIT_ERR;
    }
    cli_set_connection(ctx, c, copy, t.locator);
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
        printf("Disconnected from %s%s\n", ctx->conn_locator ? "locator " : "", ctx->conn_addr);
    cli_set_connection(ctx, NULL, NULL, false);
    return EXIT_OK;
}
