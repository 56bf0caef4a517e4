/* cmd_entry.c - put, get, remove, size, keys. */
#include <string.h>

#include "tools/cli/cli.h"
#include "tools/cli/json_mp.h"
#include "tools/cli/output.h"

/* What put, get and remove work on: a region, a key and a connection. */
typedef struct entry_op {
    const char *region;
    const void *key;
    size_t klen;
    char shown_key[160]; /* the key for messages (fmt_key) */
    buf_t key_bytes;     /* holds the key given as --key-base64 */
    buf_t value;     /* put: --value converted to MessagePack */
    agate_client *c;
} entry_op;

/* The key of a put/get/remove: --key as text or --key-base64 as bytes,
 * exactly one of them. Decoded bytes live in store. Returns 0, or
 * EXIT_USAGE after the message. */
static int read_key(const cli_args *a, buf_t *store, const void **key, size_t *klen)
{
    const char *k = cli_str(a, "key");
    const char *k64 = cli_str(a, "key-base64");
    if (k && k64)
        return cli_usage_error(a->cmd, "give either --key or --key-base64, not both");
    if (!k && !k64)
        return cli_usage_error(a->cmd, "missing required option --key (or --key-base64)");
    if (k) {
        *key = k;
        *klen = strlen(k);
        return 0;
    }
    if (b64_decode(k64, strlen(k64), store) != 0)
        return cli_usage_error(a->cmd, "--key-base64 is not valid base64: '%s'", k64);
    *key = store->data ? (const void *)store->data : "";
    *klen = store->len;
    return 0;
}

/* Converts put's --value from JSON to MessagePack appended to out. Returns
 * 0, or EXIT_ERR after the message (with a hint for the usual mistake: a
 * bare word meant as a string). */
static int read_value(const char *text, buf_t *out)
{
    json_mp_error err;
    if (json_mp_parse(text, strlen(text), out, &err) == 0)
        return 0;
    cli_err("--value is not valid JSON (column %d): %s", err.column, err.text);
    char c0 = text[0];
    if ((c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z'))
        fprintf(stderr, "agate: hint: a string value needs JSON quotes, e.g. --value='\"%s\"'\n",
                text);
    return EXIT_ERR;
}

/* Ends what entry_op_begin started: releases the connection and frees the
 * buffers. Returns ret, the command's exit code. */
static int entry_op_end(cli_ctx *ctx, entry_op *op, int ret)
{
    cli_release(ctx, op->c);
    buf_free(&op->key_bytes);
    buf_free(&op->value);
    return ret;
}

/* Starts put, get or remove: reads --region and the key, with with_value
 * (put) converts --value, and connects, in that order, so that a usage
 * error is reported before a bad value and both before a connection
 * problem. Returns 0 with op ready (finish with entry_op_end), or an exit
 * code after the message, with nothing left to release. */
static int entry_op_begin(cli_ctx *ctx, const cli_args *a, bool with_value, entry_op *op)
{
    memset(op, 0, sizeof(*op));
    op->region = cli_str(a, "region");
    buf_init(&op->key_bytes);
    buf_init(&op->value);
    int rc = read_key(a, &op->key_bytes, &op->key, &op->klen);
    if (rc == 0)
        fmt_key(op->key, op->klen, op->shown_key, sizeof op->shown_key);
    if (rc == 0 && with_value)
        rc = read_value(cli_str(a, "value"), &op->value);
    if (rc == 0 && !(op->c = cli_connect(ctx, a)))
        rc = EXIT_ERR;
    return rc ? entry_op_end(ctx, op, rc) : 0;
}

/* Reports a failed get or remove (rc < 0): a missing key by name, anything
 * else with the library's message. Returns EXIT_ERR. */
static int entry_failed(const entry_op *op, int rc)
{
    if (rc != AGATE_ENOTFOUND)
        return cli_fail(op->c, rc, NULL);
    cli_err("key %s not found in region %s", op->shown_key, op->region);
    return EXIT_ERR;
}

/* Reports a stored value that cannot be shown as JSON (jr from jw_mp or
 * json_mp_to_json). Returns EXIT_ERR. */
static int bad_stored_value(int jr)
{
    cli_err("the stored value is not valid MessagePack (%s)", json_conv_strerror(jr));
    return EXIT_ERR;
}

/* Prints put's or remove's --json result: {"region": ..., "key": ...,
 * done: true}. */
static int print_entry_done(const entry_op *op, const char *done)
{
    return json_print_object(stdout, JSON_FIELDS(JF_STR("region", op->region),
                                                  JF_KEY(op->key, op->klen), JF_BOOL(done, true)));
}

/* put: stores --value, converted from JSON, under the key in --region. */
int cmd_put(cli_ctx *ctx, const cli_args *a)
{
    entry_op op;
    int ret = entry_op_begin(ctx, a, true, &op);
    if (ret)
        return ret;
    int rc = agate_put(op.c, op.region, op.key, op.klen, op.value.data, op.value.len);
    if (rc < 0)
        ret = cli_fail(op.c, rc, NULL);
    else if (a->json)
        ret = print_entry_done(&op, "put");
    else
        printf("Put key %s into region %s (%zu bytes)\n", op.shown_key, op.region, op.value.len);
    return entry_op_end(ctx, &op, ret);
}

/* Prints get --json: {"key": ..., "value": ..., "version": {...}}. */
static int print_entry_json(const entry_op *op, const agate_buf *value, const agate_version *ver)
{
    json_doc d;
    json_doc_init(&d);
    jw_begin_object(&d.w);
    jw_fields(&d.w, JSON_FIELDS(JF_KEY(op->key, op->klen)));
    jw_ckey(&d.w, "value");
    mp_cursor cur;
    mp_cursor_init(&cur, value->data, value->len);
    int jr = jw_mp(&d.w, &cur);
    if (jr != 0) {
        json_doc_free(&d);
        return bad_stored_value(jr);
    }
    const json_field *version = JSON_FIELDS(JF_UINT("member_id", ver->member_id),
                                            JF_UINT("counter", ver->counter));
    jw_fields(&d.w, JSON_FIELDS(JF_OBJECT("version", version)));
    jw_end_object(&d.w);
    return json_doc_print(&d);
}

/* Prints a value as one line of compact JSON (get without --json). */
static int print_value_line(const agate_buf *value)
{
    buf_t out;
    buf_init(&out);
    int jr = json_mp_to_json(value->data, value->len, &out, 0);
    if (jr == 0) {
        fwrite(out.data, 1, out.len, stdout);
        fputc('\n', stdout);
    }
    buf_free(&out);
    return jr == 0 ? EXIT_OK : bad_stored_value(jr);
}

/* get: prints the value under the key as JSON (with its version for
 * --json); a missing key is an error. */
int cmd_get(cli_ctx *ctx, const cli_args *a)
{
    entry_op op;
    int ret = entry_op_begin(ctx, a, false, &op);
    if (ret)
        return ret;
    agate_buf value = {0};
    agate_version ver = {0, 0};
    int rc = agate_get_entry(op.c, op.region, op.key, op.klen, &value, &ver);
    if (rc < 0)
        ret = entry_failed(&op, rc);
    else if (a->json)
        ret = print_entry_json(&op, &value, &ver);
    else
        ret = print_value_line(&value);
    agate_buf_free(&value);
    return entry_op_end(ctx, &op, ret);
}

/* remove: removes the key from --region; a missing key is an error. */
int cmd_remove(cli_ctx *ctx, const cli_args *a)
{
    entry_op op;
    int ret = entry_op_begin(ctx, a, false, &op);
    if (ret)
        return ret;
    int rc = agate_remove(op.c, op.region, op.key, op.klen);
    if (rc < 0)
        ret = entry_failed(&op, rc);
    else if (a->json)
        ret = print_entry_done(&op, "removed");
    else
        printf("Removed key %s from region %s\n", op.shown_key, op.region);
    return entry_op_end(ctx, &op, ret);
}

/* size: prints the number of entries in --region. */
int cmd_size(cli_ctx *ctx, const cli_args *a)
{
    const char *region = cli_str(a, "region");
    agate_client *c = cli_connect(ctx, a);
    uint64_t n = 0;
    if (!c || cli_finish(ctx, c, agate_size(c, region, &n), NULL) != EXIT_OK)
        return EXIT_ERR;
    if (a->json)
        return json_print_object(stdout, JSON_FIELDS(JF_STR("region", region), JF_UINT("size", n)));
    printf("%llu\n", (unsigned long long)n);
    return EXIT_OK;
}

/* Prints one key of the keys command: a line, or with json an element of
 * the open array: a string when UTF-8, else {"key_base64": ...}. */
static void print_listed_key(const agate_buf *k, json_doc *json)
{
    const void *key = k->data ? (const void *)k->data : "";
    if (!json) {
        print_key(stdout, key, k->len);
        fputc('\n', stdout);
    } else if (utf8_valid(key, k->len)) {
        jw_str(&json->w, key, k->len);
    } else {
        jw_object(&json->w, JSON_FIELDS(JF_KEY(key, k->len)));
    }
}

/* Pages through the keys of region and prints at most limit of them (all
 * when limit < 0) with print_listed_key; *shown counts them. Returns
 * EXIT_OK, or EXIT_ERR after the message. */
static int list_keys(agate_client *c, const char *region, long long limit, json_doc *json,
                     uint64_t *shown)
{
    uint64_t cursor = 0;
    do {
        uint32_t page_size = 1000;
        if (limit >= 0 && (uint64_t)limit - *shown < page_size)
            page_size = (uint32_t)((uint64_t)limit - *shown);
        if (page_size == 0)
            break;
        agate_page page;
        memset(&page, 0, sizeof page);
        int rc = agate_keys(c, region, cursor, page_size, &page);
        if (rc < 0)
            return cli_fail(c, rc, NULL);
        for (size_t i = 0; i < page.n && (limit < 0 || *shown < (uint64_t)limit); i++, (*shown)++)
            print_listed_key(&page.keys[i], json);
        cursor = page.next_cursor;
        agate_page_free(&page);
    } while (cursor != 0);
    return EXIT_OK;
}

/* keys: prints the keys of --region (at most --limit), one per line or as
 * a JSON array. */
int cmd_keys(cli_ctx *ctx, const cli_args *a)
{
    const char *region = cli_str(a, "region");
    long long limit = cli_int(a, "limit", -1);
    agate_client *c = cli_connect(ctx, a);
    if (!c)
        return EXIT_ERR;
    json_doc d;
    memset(&d, 0, sizeof d);
    if (a->json) {
        json_doc_init(&d);
        jw_begin_object(&d.w);
        jw_fields(&d.w, JSON_FIELDS(JF_STR("region", region)));
        jw_ckey(&d.w, "keys");
        jw_begin_array(&d.w);
    }
    uint64_t shown = 0;
    int ret = list_keys(c, region, limit, a->json ? &d : NULL, &shown);
    cli_release(ctx, c);
    if (!a->json)
        return ret;
    if (ret != EXIT_OK) {
        json_doc_free(&d);
        return ret;
    }
    jw_end_array(&d.w);
    jw_fields(&d.w, JSON_FIELDS(JF_UINT("count", shown)));
    jw_end_object(&d.w);
    return json_doc_print(&d);
}
