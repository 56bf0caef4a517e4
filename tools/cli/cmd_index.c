/* cmd_index.c - create, list and destroy indexes (docs/cli.md, "Indexes"). */
#include <stdlib.h>
#include <string.h>

#include "common/mp.h"
#include "tools/cli/cli.h"
#include "tools/cli/output.h"

/* One index of the INDEX_LIST reply (strings point into the reply). */
typedef struct index_row {
    char name[130], region[130], expr[1030], type[8];
    uint64_t entries, bytes;
    bool has_entries, has_bytes, valid;
    const uint8_t *members; /* a cluster's per-member figures (MessagePack), or NULL */
    size_t members_len;
} index_row;

static void copy_str(char *dst, size_t cap, const uint8_t *p, uint32_t n)
{
    if (n >= cap)
        n = (uint32_t)cap - 1;
    memcpy(dst, p, n);
    dst[n] = 0;
}

static bool key_is(const uint8_t *k, uint32_t n, const char *s)
{
    return strlen(s) == n && memcmp(k, s, n) == 0;
}

/* Reads one index map at c into row; unknown fields are skipped. */
static int read_row(mp_cursor *c, index_row *row)
{
    uint32_t n;
    memset(row, 0, sizeof(*row));
    row->valid = true;
    if (mp_read_map(c, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k, *s;
        uint32_t kn, sn;
        if (mp_read_str(c, &k, &kn))
            return -1;
        int rc = 0;
        if (key_is(k, kn, "name") || key_is(k, kn, "region") || key_is(k, kn, "expression") ||
            key_is(k, kn, "type")) {
            rc = mp_read_str(c, &s, &sn);
            if (!rc && k[0] == 'n')
                copy_str(row->name, sizeof row->name, s, sn);
            else if (!rc && k[0] == 'r')
                copy_str(row->region, sizeof row->region, s, sn);
            else if (!rc && k[0] == 'e')
                copy_str(row->expr, sizeof row->expr, s, sn);
            else if (!rc)
                copy_str(row->type, sizeof row->type, s, sn);
        } else if (key_is(k, kn, "entries")) {
            rc = mp_read_uint(c, &row->entries);
            row->has_entries = true;
        } else if (key_is(k, kn, "bytes")) {
            rc = mp_read_uint(c, &row->bytes);
            row->has_bytes = true;
        } else if (key_is(k, kn, "valid")) {
            rc = mp_read_bool(c, &row->valid);
        } else if (key_is(k, kn, "members")) {
            row->members = c->p;
            rc = mp_skip(c, 64);
            row->members_len = (size_t)(c->p - row->members);
        } else {
            rc = mp_skip(c, 64);
        }
        if (rc)
            return -1;
    }
    return 0;
}

/* The rows of an INDEX_LIST reply (malloc'd, *n of them), or NULL with a
 * message. */
static index_row *read_rows(const agate_buf *b, size_t *n)
{
    mp_cursor c;
    uint32_t count;
    mp_cursor_init(&c, b->data, b->len);
    if (mp_read_array(&c, &count) || count > 1u << 20) {
        cli_err("malformed index list from the server");
        return NULL;
    }
    index_row *rows = calloc(count ? count : 1, sizeof(*rows));
    if (!rows) {
        cli_err("out of memory");
        return NULL;
    }
    for (uint32_t i = 0; i < count; i++)
        if (read_row(&c, &rows[i])) {
            free(rows);
            cli_err("malformed index list from the server");
            return NULL;
        }
    *n = count;
    return rows;
}

static void row_json(jw_t *w, const index_row *r)
{
    jw_object(w, JSON_FIELDS(JF_STR("name", r->name), JF_STR("region", r->region),
                             JF_STR("expression", r->expr), JF_STR("type", r->type),
                             JF_IF(r->has_entries, JF_UINT("entries", r->entries)),
                             JF_IF(r->has_bytes, JF_UINT("bytes", r->bytes)),
                             JF_BOOL("valid", r->valid),
                             JF_IF(r->members != NULL, JF_MP("members", r->members, r->members_len))));
}

/* Fetches the indexes of region (NULL: all) into *rows, which point into
 * *b (free both), and releases c. */
static int fetch(cli_ctx *ctx, agate_client *c, const char *region, agate_buf *b,
                 index_row **rows, size_t *n)
{
    memset(b, 0, sizeof(*b));
    if (cli_finish(ctx, c, agate_index_list(c, region, b), NULL) != EXIT_OK)
        return EXIT_ERR;
    *rows = read_rows(b, n);
    return *rows ? EXIT_OK : EXIT_ERR;
}

/* create index: creates --name on --region over --expression, built over
 * the existing entries before it returns. */
int cmd_create_index(cli_ctx *ctx, const cli_args *a)
{
    const char *name = cli_str(a, "name"), *region = cli_str(a, "region");
    const char *expr = cli_str(a, "expression"), *type = cli_str_or(a, "type", "range");
    if (!*expr)
        return cli_usage_error(a->cmd, "--expression is empty");
    agate_client *c = cli_connect(ctx, a);
    if (!c)
        return EXIT_ERR;
    int rc = agate_index_create(c, region, name, expr, type);
    if (rc < 0)
        return cli_finish(ctx, c, rc, NULL);
    uint64_t size = 0;
    if (agate_size(c, region, &size) != 0)
        size = 0;
    index_row *rows = NULL;
    size_t n = 0;
    const index_row *row = NULL;
    agate_buf b;
    if (fetch(ctx, c, region, &b, &rows, &n) == EXIT_OK)
        for (size_t i = 0; i < n && !row; i++)
            if (strcmp(rows[i].name, name) == 0)
                row = &rows[i];
    int ret = EXIT_OK;
    if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        jw_fields(&d.w, JSON_FIELDS(JF_BOOL("created", true)));
        jw_ckey(&d.w, "index");
        if (row)
            row_json(&d.w, row);
        else
            jw_cstr(&d.w, name);
        jw_end_object(&d.w);
        ret = json_doc_print(&d);
    } else if (row && row->members) {
        printf("Index %s created on %s: %s index on %s; each member builds it over its buckets\n",
               name, region, row->type, row->expr);
    } else if (row && row->has_entries) {
        char e[32];
        fmt_count(row->entries, e, sizeof e);
        printf("Index %s created on %s: %s index on %s, %s entr%s\n", name, region, row->type,
               row->expr, e, row->entries == 1 ? "y" : "ies");
        /* the Geode habit of an alias in the expression indexes nothing */
        if (row->entries == 0 && size > 0)
            cli_err("note: no entry of %s has a boolean, number or string at %s; the expression "
                    "is a path into the value without an alias (status, not o.status)",
                    region, row->expr);
    } else {
        printf("Index %s created on %s: %s index on %s\n", name, region, type, expr);
    }
    free(rows);
    agate_buf_free(&b);
    return ret;
}

/* destroy index: destroys --name of --region; --if-exists makes a missing
 * index success. */
int cmd_destroy_index(cli_ctx *ctx, const cli_args *a)
{
    const char *name = cli_str(a, "name"), *region = cli_str(a, "region");
    agate_client *c = cli_connect(ctx, a);
    if (!c)
        return EXIT_ERR;
    int rc = agate_index_destroy(c, region, name);
    bool missing_ok = rc == AGATE_ENOTFOUND && cli_flag(a, "if-exists");
    if (rc == AGATE_ENOTFOUND && !missing_ok) {
        cli_release(ctx, c);
        cli_err("index %s not found on region %s", name, region);
        return EXIT_ERR;
    }
    if (cli_finish(ctx, c, missing_ok ? 0 : rc, NULL) != EXIT_OK)
        return EXIT_ERR;
    if (a->json)
        return json_print_object(stdout, JSON_FIELDS(JF_STR("index", name), JF_STR("region", region),
                                                      JF_BOOL("destroyed", !missing_ok)));
    printf(missing_ok ? "Index %s does not exist on %s\n" : "Index %s destroyed on %s\n", name,
           region);
    return EXIT_OK;
}

static void print_table(const index_row *rows, size_t n)
{
    static const char *headers[] = {"NAME", "REGION", "TYPE", "EXPRESSION", "ENTRIES", "BYTES",
                                    "VALID"};
    static const bool right[] = {false, false, false, false, true, true, false};
    table_t t;
    table_init(&t, 7, headers, right);
    for (size_t i = 0; i < n; i++) {
        char e[32] = "-", b[32] = "-";
        if (rows[i].has_entries)
            fmt_count(rows[i].entries, e, sizeof e);
        if (rows[i].has_bytes)
            fmt_bytes(rows[i].bytes, b, sizeof b);
        table_cell(&t, "%s", rows[i].name);
        table_cell(&t, "%s", rows[i].region);
        table_cell(&t, "%s", rows[i].type);
        table_cell(&t, "%s", rows[i].expr);
        table_cell(&t, "%s", e);
        table_cell(&t, "%s", b);
        table_cell(&t, "%s", rows[i].valid ? "yes" : "NO (destroy and create it again)");
    }
    table_print(&t, stdout);
    table_free(&t);
}

/* list indexes: a table of the indexes (of --region, or all), or a JSON
 * array. */
int cmd_list_indexes(cli_ctx *ctx, const cli_args *a)
{
    agate_client *c = cli_connect(ctx, a);
    if (!c)
        return EXIT_ERR;
    index_row *rows = NULL;
    size_t n = 0;
    agate_buf b;
    if (fetch(ctx, c, cli_str(a, "region"), &b, &rows, &n) != EXIT_OK) {
        agate_buf_free(&b);
        return EXIT_ERR;
    }
    int ret = EXIT_OK;
    if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_array(&d.w);
        for (size_t i = 0; i < n; i++)
            row_json(&d.w, &rows[i]);
        jw_end_array(&d.w);
        ret = json_doc_print(&d);
    } else if (n == 0) {
        printf("No indexes\n");
    } else {
        print_table(rows, n);
    }
    free(rows);
    agate_buf_free(&b);
    return ret;
}
