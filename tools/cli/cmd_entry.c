/* cmd_entry.c - put, get, remove, size, keys. */
#include <string.h>

#include "tools/cli/cli.h"
#include "tools/cli/json_mp.h"
#include "tools/cli/output.h"

/* The key of a put/get/remove: --key as text or --key-base64 as bytes,
 * exactly one of them. Decoded bytes live in store. Returns 0, or
 * EXIT_USAGE after the message. */
static int get_key(const cli_args *a, buf_t *store, const void **key, size_t *klen)
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

/* Writes a key as a JSON member: "key": text when UTF-8, else
 * "key_base64": base64 (the import/export format). */
static void key_member(jw_t *w, const void *key, size_t klen)
{
    if (utf8_valid(key, klen)) {
        jw_ckey(w, "key");
        jw_str(w, key, klen);
    } else {
        jw_ckey(w, "key_base64");
        jw_base64(w, key, klen);
    }
}

static int not_found(const void *key, size_t klen, const char *region)
{
    char k[160];
    fmt_key(key, klen, k, sizeof k);
    cli_err("key %s not found in region %s", k, region);
    return EXIT_ERR;
}

int cmd_put(cli_ctx *ctx, const cli_args *a)
{
    const char *region = cli_str(a, "region");
    const char *text = cli_str(a, "value");
    buf_t kbuf, value;
    buf_init(&kbuf);
    buf_init(&value);
    const void *key;
    size_t klen;
    int rc = get_key(a, &kbuf, &key, &klen);
    if (rc) {
        buf_free(&kbuf);
        return rc;
    }
    json_mp_error err;
    if (json_mp_parse(text, strlen(text), &value, &err) != 0) {
        cli_err("--value is not valid JSON (column %d): %s", err.column, err.text);
        /* The usual mistake: a bare word meant as a string. */
        char c0 = text[0];
        if ((c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z'))
            fprintf(stderr, "agate: hint: a string value needs JSON quotes, e.g. --value='\"%s\"'\n",
                    text);
        buf_free(&kbuf);
        buf_free(&value);
        return EXIT_ERR;
    }
    agate_client *c = cli_connect(ctx, a);
    if (!c) {
        buf_free(&kbuf);
        buf_free(&value);
        return EXIT_ERR;
    }
    rc = agate_put(c, region, key, klen, value.data, value.len);
    int ret = EXIT_OK;
    if (rc < 0) {
        ret = cli_fail(c, rc, NULL);
    } else if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        jw_ckey(&d.w, "region");
        jw_cstr(&d.w, region);
        key_member(&d.w, key, klen);
        jw_ckey(&d.w, "put");
        jw_bool(&d.w, true);
        jw_end_object(&d.w);
        ret = json_doc_print(&d);
    } else {
        char k[160];
        fmt_key(key, klen, k, sizeof k);
        printf("Put key %s into region %s (%zu bytes)\n", k, region, value.len);
    }
    cli_release(ctx, c);
    buf_free(&kbuf);
    buf_free(&value);
    return ret;
}

int cmd_get(cli_ctx *ctx, const cli_args *a)
{
    const char *region = cli_str(a, "region");
    buf_t kbuf;
    buf_init(&kbuf);
    const void *key;
    size_t klen;
    int rc = get_key(a, &kbuf, &key, &klen);
    if (rc) {
        buf_free(&kbuf);
        return rc;
    }
    agate_client *c = cli_connect(ctx, a);
    if (!c) {
        buf_free(&kbuf);
        return EXIT_ERR;
    }
    agate_buf value = {0};
    agate_version ver = {0, 0};
    rc = agate_get_entry(c, region, key, klen, &value, &ver);
    int ret = EXIT_OK;
    if (rc == AGATE_ENOTFOUND) {
        ret = not_found(key, klen, region);
    } else if (rc < 0) {
        ret = cli_fail(c, rc, NULL);
    } else if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        key_member(&d.w, key, klen);
        jw_ckey(&d.w, "value");
        mp_cursor cur;
        mp_cursor_init(&cur, value.data, value.len);
        int jr = jw_mp(&d.w, &cur);
        if (jr == 0) {
            jw_ckey(&d.w, "version");
            jw_begin_object(&d.w);
            jw_ckey(&d.w, "member_id");
            jw_uint(&d.w, ver.member_id);
            jw_ckey(&d.w, "counter");
            jw_uint(&d.w, ver.counter);
            jw_end_object(&d.w);
            jw_end_object(&d.w);
            ret = json_doc_print(&d);
        } else {
            json_doc_free(&d);
            cli_err("the stored value is not valid MessagePack (%s)",
                    jr == JW_EFAIL ? "out of memory" : mp_strerror(jr));
            ret = EXIT_ERR;
        }
    } else {
        buf_t out;
        buf_init(&out);
        int jr = json_mp_to_json(value.data, value.len, &out, 0);
        if (jr == 0) {
            fwrite(out.data, 1, out.len, stdout);
            fputc('\n', stdout);
        } else {
            cli_err("the stored value is not valid MessagePack (%s)",
                    jr == JW_EFAIL ? "out of memory" : mp_strerror(jr));
            ret = EXIT_ERR;
        }
        buf_free(&out);
    }
    agate_buf_free(&value);
    cli_release(ctx, c);
    buf_free(&kbuf);
    return ret;
}

int cmd_remove(cli_ctx *ctx, const cli_args *a)
{
    const char *region = cli_str(a, "region");
    buf_t kbuf;
    buf_init(&kbuf);
    const void *key;
    size_t klen;
    int rc = get_key(a, &kbuf, &key, &klen);
    if (rc) {
        buf_free(&kbuf);
        return rc;
    }
    agate_client *c = cli_connect(ctx, a);
    if (!c) {
        buf_free(&kbuf);
        return EXIT_ERR;
    }
    rc = agate_remove(c, region, key, klen);
    int ret = EXIT_OK;
    if (rc == AGATE_ENOTFOUND) {
        ret = not_found(key, klen, region);
    } else if (rc < 0) {
        ret = cli_fail(c, rc, NULL);
    } else if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        jw_ckey(&d.w, "region");
        jw_cstr(&d.w, region);
        key_member(&d.w, key, klen);
        jw_ckey(&d.w, "removed");
        jw_bool(&d.w, true);
        jw_end_object(&d.w);
        ret = json_doc_print(&d);
    } else {
        char k[160];
        fmt_key(key, klen, k, sizeof k);
        printf("Removed key %s from region %s\n", k, region);
    }
    cli_release(ctx, c);
    buf_free(&kbuf);
    return ret;
}

int cmd_size(cli_ctx *ctx, const cli_args *a)
{
    const char *region = cli_str(a, "region");
    agate_client *c = cli_connect(ctx, a);
    if (!c)
        return EXIT_ERR;
    uint64_t n = 0;
    int rc = agate_size(c, region, &n);
    int ret = EXIT_OK;
    if (rc < 0) {
        ret = cli_fail(c, rc, NULL);
    } else if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        jw_ckey(&d.w, "region");
        jw_cstr(&d.w, region);
        jw_ckey(&d.w, "size");
        jw_uint(&d.w, n);
        jw_end_object(&d.w);
        ret = json_doc_print(&d);
    } else {
        printf("%llu\n", (unsigned long long)n);
    }
    cli_release(ctx, c);
    return ret;
}

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
        jw_ckey(&d.w, "region");
        jw_cstr(&d.w, region);
        jw_ckey(&d.w, "keys");
        jw_begin_array(&d.w);
    }
    uint64_t cursor = 0, shown = 0;
    int ret = EXIT_OK;
    do {
        uint32_t page_size = 1000;
        if (limit >= 0 && (uint64_t)limit - shown < page_size)
            page_size = (uint32_t)((uint64_t)limit - shown);
        if (page_size == 0)
            break;
        agate_page page;
        memset(&page, 0, sizeof page);
        int rc = agate_keys(c, region, cursor, page_size, &page);
        if (rc < 0) {
            ret = cli_fail(c, rc, NULL);
            break;
        }
        for (size_t i = 0; i < page.n && (limit < 0 || shown < (uint64_t)limit); i++, shown++) {
            const agate_buf *k = &page.keys[i];
            if (a->json) {
                if (utf8_valid(k->data, k->len)) {
                    jw_str(&d.w, k->data ? (const void *)k->data : "", k->len);
                } else {
                    jw_begin_object(&d.w);
                    jw_ckey(&d.w, "key_base64");
                    jw_base64(&d.w, k->data, k->len);
                    jw_end_object(&d.w);
                }
            } else {
                print_key(stdout, k->data ? (const void *)k->data : "", k->len);
                fputc('\n', stdout);
            }
        }
        cursor = page.next_cursor;
        agate_page_free(&page);
    } while (cursor != 0);
    cli_release(ctx, c);
    if (a->json) {
        if (ret != EXIT_OK) {
            json_doc_free(&d);
            return ret;
        }
        jw_end_array(&d.w);
        jw_ckey(&d.w, "count");
        jw_uint(&d.w, shown);
        jw_end_object(&d.w);
        return json_doc_print(&d);
    }
    return ret;
}
