/* cmd_query.c - query: runs a query (docs/query.md) on the server and
 * prints its rows as a table, or as JSON row objects with --json. */
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mpw.h"
#include "tools/cli/cli.h"
#include "tools/cli/doc.h"
#include "tools/cli/json_mp.h"
#include "tools/cli/output.h"
#include "tools/cli/query_text.h"

/* How deep a value in a row may nest when it is skipped over (the server's
 * own limit is far lower); a row is one level more. */
#define QUERY_SKIP_DEPTH (MP_MAX_DEPTH_LIMIT - 1)

/* ---- the result ------------------------------------------------------------ */

/* [columns, rows, stats] read from agate_query's buffer (whose shape the
 * library has checked). */
typedef struct query_result {
    uint32_t ncols;
    char **cols;       /* ncols names, NUL-terminated copies */
    uint32_t nrows;
    mp_cursor rows;    /* at the first row */
    uint64_t matched, scanned, elapsed_us;
} query_result;

static void result_free(query_result *r)
{
    for (uint32_t i = 0; r->cols && i < r->ncols; i++)
        free(r->cols[i]);
    free(r->cols);
    memset(r, 0, sizeof(*r));
}

/* Reads the result. Returns 0, or EXIT_ERR after the message. */
static int result_read(const agate_buf *buf, query_result *r)
{
    memset(r, 0, sizeof(*r));
    mp_cursor cur = doc_root(buf);
    uint32_t n;
    if (mp_read_array(&cur, &n) || n != 3 || mp_read_array(&cur, &r->ncols))
        goto bad;
    r->cols = calloc(r->ncols ? r->ncols : 1, sizeof(*r->cols));
    if (!r->cols) {
        cli_err("out of memory");
        return EXIT_ERR;
    }
    for (uint32_t i = 0; i < r->ncols; i++) {
        const uint8_t *s;
        uint32_t len;
        if (mp_read_str(&cur, &s, &len))
            goto bad;
        r->cols[i] = strndup((const char *)s, len);
        if (!r->cols[i]) {
            result_free(r);
            cli_err("out of memory");
            return EXIT_ERR;
        }
    }
    if (mp_read_array(&cur, &r->nrows))
        goto bad;
    r->rows = cur;
    for (uint32_t i = 0; i < r->nrows; i++)
        if (mp_skip(&cur, QUERY_SKIP_DEPTH + 1))
            goto bad;
    /* a missing statistic (another server version) shows as 0 */
    doc_get_uint(cur, "matched", &r->matched);
    doc_get_uint(cur, "scanned", &r->scanned);
    doc_get_uint(cur, "elapsed_us", &r->elapsed_us);
    return 0;
bad:
    result_free(r);
    cli_err("the server's query result is malformed");
    return EXIT_ERR;
}

/* Reads the header of the next row; false when it is not an array of one
 * value per column (the library checked; this only keeps us safe). */
static bool row_begin(mp_cursor *cur, const query_result *r)
{
    uint32_t n;
    return mp_read_array(cur, &n) == 0 && n == r->ncols;
}

static bool is_number(const mp_cursor *cur)
{
    mp_type t;
    return mp_peek_type(cur, &t) == 0 &&
           (t == MP_UINT || t == MP_INT || t == MP_FLOAT || t == MP_DOUBLE);
}

/* Prints the rows as a table, each cell the value as compact JSON; a column
 * whose values are all numbers is right-aligned. Returns EXIT_OK, or
 * EXIT_ERR after the message. */
static int print_table(const query_result *r)
{
    bool *right = calloc(r->ncols ? r->ncols : 1, sizeof(*right));
    if (!right) {
        cli_err("out of memory");
        return EXIT_ERR;
    }
    for (uint32_t k = 0; k < r->ncols; k++)
        right[k] = r->nrows > 0;
    table_t t;
    table_init(&t, (int)r->ncols, (const char **)r->cols, right);
    buf_t cell;
    buf_init(&cell);
    mp_cursor cur = r->rows;
    int ret = EXIT_OK;
    for (uint32_t i = 0; i < r->nrows && ret == EXIT_OK; i++) {
        if (!row_begin(&cur, r)) {
            cli_err("the server's query result is malformed");
            ret = EXIT_ERR;
            break;
        }
        for (uint32_t k = 0; k < r->ncols; k++) {
            if (!is_number(&cur))
                right[k] = false;
            const uint8_t *start = cur.p;
            int jr = mp_skip(&cur, QUERY_SKIP_DEPTH);
            buf_reset(&cell);
            if (jr == 0)
                jr = json_mp_to_json(start, (size_t)(cur.p - start), &cell, 0);
            if (jr != 0) {
                cli_err("row %" PRIu32 ", column %s: the value cannot be shown as JSON (%s)", i + 1,
                        r->cols[k], json_conv_strerror(jr));
                ret = EXIT_ERR;
                break;
            }
            table_cell(&t, "%s", (const char *)cell.data);
        }
    }
    buf_free(&cell);
    if (ret == EXIT_OK && r->ncols > 0)
        table_print(&t, stdout);
    table_free(&t);
    free(right);
    return ret;
}

/* The line after the last page. */
static void print_summary(uint64_t rows, const query_result *last, uint64_t elapsed_us)
{
    printf("%" PRIu64 " row%s (%" PRIu64 " matched, scanned %" PRIu64 " entr%s in %.1f ms)\n",
           rows, rows == 1 ? "" : "s", last->matched, last->scanned,
           last->scanned == 1 ? "y" : "ies", (double)elapsed_us / 1000.0);
}

/* True if name is one of names[0..n). */
static bool name_in(char **names, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (names[i] && strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* The member names of the --json row objects: the column names, where a
 * name already taken gets _2, _3, ... (never a name another column has).
 * Returns a new array of r->ncols strings, or NULL when out of memory. */
static char **unique_names(const query_result *r)
{
    char **keys = calloc(r->ncols ? r->ncols : 1, sizeof(*keys));
    if (!keys)
        return NULL;
    for (uint32_t i = 0; i < r->ncols; i++) {
        char *name = strdup(r->cols[i]);
        for (unsigned k = 2; name && (name_in(keys, i, name) ||
                                      (k > 2 && name_in(r->cols, r->ncols, name)));
             k++) {
            free(name);
            if (asprintf(&name, "%s_%u", r->cols[i], k) < 0)
                name = NULL;
        }
        if (!name) {
            for (uint32_t j = 0; j < i; j++)
                free(keys[j]);
            free(keys);
            return NULL;
        }
        keys[i] = name;
    }
    return keys;
}

/* Prints a page's rows as elements of one JSON array of objects {column:
 * value} that spans every page: "[" before the first row of the first
 * page, "," between rows (*nprinted counts them), "]" by the caller. */
static int print_json(const query_result *r, uint64_t *nprinted)
{
    char **keys = unique_names(r);
    if (!keys) {
        cli_err("out of memory");
        return EXIT_ERR;
    }
    mp_cursor cur = r->rows;
    int ret = EXIT_OK;
    for (uint32_t i = 0; i < r->nrows && ret == EXIT_OK; i++) {
        if (!row_begin(&cur, r)) {
            cli_err("the server's query result is malformed");
            ret = EXIT_ERR;
            break;
        }
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        for (uint32_t k = 0; k < r->ncols; k++) {
            jw_ckey(&d.w, keys[k]);
            int jr = jw_mp(&d.w, &cur);
            if (jr != 0) {
                cli_err("row %" PRIu32 ", column %s: the value cannot be shown as JSON (%s)", i + 1,
                        r->cols[k], json_conv_strerror(jr));
                ret = EXIT_ERR;
                break;
            }
        }
        if (ret != EXIT_OK) {
            json_doc_free(&d);
            break;
        }
        jw_end_object(&d.w);
        fputs(*nprinted ? ",\n" : "\n", stdout);
        (*nprinted)++;
        /* json_doc_print adds a newline: the separator goes before the next */
        if (d.w.err) {
            json_doc_free(&d);
            cli_err("out of memory while formatting JSON output");
            ret = EXIT_ERR;
            break;
        }
        fwrite(d.buf.data, 1, d.buf.len, stdout);
        json_doc_free(&d);
    }
    for (uint32_t k = 0; k < r->ncols; k++)
        free(keys[k]);
    free(keys);
    return ret;
}

/* --explain: the plan's steps, one per line, numbered. */
static int print_plan(const query_result *r)
{
    mp_cursor c = r->rows;
    printf("Plan:\n");
    for (uint32_t i = 0; i < r->nrows; i++) {
        uint32_t n;
        const uint8_t *s;
        uint32_t len;
        if (mp_read_array(&c, &n) || n != 1 || mp_read_str(&c, &s, &len)) {
            cli_err("the server's plan is malformed");
            return EXIT_ERR;
        }
        printf("  %" PRIu32 ". %.*s\n", i + 1, (int)len, (const char *)s);
    }
    return EXIT_OK;
}

/* ---- the command ---------------------------------------------------------- */

/* The client a query runs on, for Ctrl-C (agate_interrupt only sets a
 * flag: safe in a signal handler). */
static agate_client *volatile running_client;

static void on_sigint(int sig)
{
    (void)sig;
    agate_client *c = running_client;
    if (c)
        agate_interrupt(c);
}

/* Prints one page (table or JSON); *rows counts what was printed, *elapsed
 * the server's time; last gets the page's running counts. */
static int print_page(const agate_buf *page, bool json, bool first, uint64_t *rows,
                      uint64_t *elapsed, query_result *last)
{
    query_result r;
    int ret = result_read(page, &r);
    if (ret != EXIT_OK)
        return ret;
    if (json) {
        ret = print_json(&r, rows);
    } else {
        if (!first && r.nrows)
            putchar('\n');
        if (first || r.nrows)
            ret = print_table(&r);
        *rows += r.nrows;
    }
    last->matched = r.matched;
    last->scanned = r.scanned;
    *elapsed += r.elapsed_us;
    result_free(&r);
    fflush(stdout);
    return ret;
}

/* Reads the cursor to its end, printing each page as it comes. */
static int print_pages(agate_client *c, agate_cursor *cur, const char *text, bool json)
{
    agate_buf page;
    uint64_t rows = 0, elapsed = 0;
    query_result last = {0};
    int ret = EXIT_OK, rc;
    bool first = true;
    if (json)
        fputs("[", stdout);
    while (ret == EXIT_OK && (rc = agate_cursor_next(cur, &page)) == 1) {
        ret = print_page(&page, json, first, &rows, &elapsed, &last);
        agate_buf_free(&page);
        first = false;
    }
    if (ret == EXIT_OK && rc < 0) {
        if (json)
            fputs("\n]\n", stdout);
        fflush(stdout);
        if (rc == AGATE_ECANCELLED) {
            cli_err("query cancelled");
            return 130;
        }
        return cli_query_failed(c, rc, text);
    }
    if (ret != EXIT_OK)
        return ret;
    if (json)
        fputs(rows ? "\n]\n" : "]\n", stdout);
    else
        print_summary(rows, &last, elapsed);
    return EXIT_OK;
}

/* query: runs --query with the --param values as $1, $2, ... and prints
 * the rows, a page at a time. */
int cmd_query(cli_ctx *ctx, const cli_args *a)
{
    const char *text = cli_str(a, "query");
    agate_query_options qo = {.timeout_ms = (int)cli_int(a, "timeout", -1),
                              .page_size = (uint32_t)cli_int(a, "page-size", 0)};
    buf_t params;
    buf_init(&params);
    int ret = cli_query_params(a, &params);
    if (ret) {
        buf_free(&params);
        return ret;
    }
    agate_client *c = cli_connect(ctx, a);
    if (!c) {
        buf_free(&params);
        return EXIT_ERR;
    }
    bool explain = cli_flag(a, "explain");
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask);
    running_client = c;
    sigaction(SIGINT, &sa, &old);
    if (explain) {
        agate_buf out = {0};
        int rc = agate_query_explain(c, text, &out);
        if (rc < 0) {
            ret = cli_query_failed(c, rc, text);
        } else {
            query_result r;
            ret = result_read(&out, &r);
            if (ret == EXIT_OK && a->json) {
                uint64_t n = 0;
                fputs("[", stdout);
                ret = print_json(&r, &n);
                if (ret == EXIT_OK)
                    fputs(n ? "\n]\n" : "]\n", stdout);
            } else if (ret == EXIT_OK) {
                ret = print_plan(&r);
            }
            if (ret == EXIT_OK || r.cols)
                result_free(&r);
        }
        agate_buf_free(&out);
    } else {
        agate_cursor *cur;
        int rc = agate_query_open(c, text, params.data, params.len, &qo, &cur);
        if (rc == AGATE_ECANCELLED) {
            cli_err("query cancelled");
            ret = 130;
        } else if (rc < 0) {
            ret = cli_query_failed(c, rc, text);
        } else {
            ret = print_pages(c, cur, text, a->json);
            agate_cursor_close(cur);
        }
    }
    sigaction(SIGINT, &old, NULL);
    running_client = NULL;
    buf_free(&params);
    cli_release(ctx, c);
    return ret;
}
