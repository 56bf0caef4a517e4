/* doc.c - lookups in the admin API's MessagePack documents. */
#include "tools/cli/doc.h"

#include <stdio.h>
#include <string.h>

#include "tools/cli/cli.h"
#include "tools/cli/output.h"

/* How deep a skipped value may nest: the documents are a few levels deep;
 * anything deeper is not what we are looking for. */
#define DOC_SKIP_DEPTH 64

mp_cursor doc_root(const agate_buf *doc)
{
    mp_cursor c;
    mp_cursor_init(&c, doc->data ? (const void *)doc->data : "", doc->data ? doc->len : 0);
    return c;
}

static bool is_type(mp_cursor v, mp_type want)
{
    mp_type t;
    return mp_peek_type(&v, &t) == 0 && t == want;
}

bool doc_is_map(mp_cursor v) { return is_type(v, MP_MAP); }
bool doc_is_array(mp_cursor v) { return is_type(v, MP_ARRAY); }

bool doc_get(mp_cursor obj, const char *key, mp_cursor *val)
{
    uint32_t n;
    if (mp_read_map(&obj, &n))
        return false;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < n; i++) {
        mp_type t;
        if (mp_peek_type(&obj, &t))
            return false;
        if (t == MP_STR) {
            const uint8_t *k;
            uint32_t len;
            if (mp_read_str(&obj, &k, &len))
                return false;
            if (len == kl && memcmp(k, key, kl) == 0) {
                *val = obj;
                return true;
            }
        } else if (mp_skip(&obj, DOC_SKIP_DEPTH)) { /* a key of another type */
            return false;
        }
        if (mp_skip(&obj, DOC_SKIP_DEPTH))
            return false;
    }
    return false;
}

bool doc_str(mp_cursor v, char *out, size_t cap)
{
    const uint8_t *p;
    uint32_t n;
    if (mp_read_str(&v, &p, &n))
        return false;
    snprintf(out, cap, "%.*s", (int)n, (const char *)p);
    return true;
}

bool doc_uint(mp_cursor v, uint64_t *out) { return mp_read_uint(&v, out) == 0; }
bool doc_int(mp_cursor v, int64_t *out) { return mp_read_int(&v, out) == 0; }
bool doc_bool(mp_cursor v, bool *out) { return mp_read_bool(&v, out) == 0; }

bool doc_text(mp_cursor v, char *out, size_t cap)
{
    int64_t i;
    uint64_t u;
    if (doc_str(v, out, cap))
        return true;
    if (doc_uint(v, &u)) {
        snprintf(out, cap, "%llu", (unsigned long long)u);
        return true;
    }
    if (doc_int(v, &i)) {
        snprintf(out, cap, "%lld", (long long)i);
        return true;
    }
    return false;
}

bool doc_get_str(mp_cursor obj, const char *key, char *out, size_t cap)
{
    mp_cursor v;
    return doc_get(obj, key, &v) && doc_str(v, out, cap);
}

bool doc_get_uint(mp_cursor obj, const char *key, uint64_t *out)
{
    mp_cursor v;
    return doc_get(obj, key, &v) && doc_uint(v, out);
}

bool doc_get_int(mp_cursor obj, const char *key, int64_t *out)
{
    mp_cursor v;
    return doc_get(obj, key, &v) && doc_int(v, out);
}

bool doc_get_bool(mp_cursor obj, const char *key, bool *out)
{
    mp_cursor v;
    return doc_get(obj, key, &v) && doc_bool(v, out);
}

void doc_get_cell(mp_cursor obj, const char *key, bool count, char *out, size_t cap)
{
    uint64_t u;
    if (!doc_get_uint(obj, key, &u))
        snprintf(out, cap, "-");
    else if (count)
        fmt_count(u, out, cap);
    else
        snprintf(out, cap, "%llu", (unsigned long long)u);
}

bool doc_array(mp_cursor v, doc_iter *it)
{
    it->left = 0;
    if (mp_read_array(&v, &it->left))
        return false;
    it->c = v;
    return true;
}

bool doc_get_array(mp_cursor obj, const char *key, doc_iter *it)
{
    mp_cursor v;
    it->left = 0;
    return doc_get(obj, key, &v) && doc_array(v, it);
}

bool doc_next(doc_iter *it, mp_cursor *elem)
{
    if (it->left == 0)
        return false;
    *elem = it->c;
    if (mp_skip(&it->c, DOC_SKIP_DEPTH)) {
        it->left = 0;
        return false;
    }
    it->left--;
    return true;
}

bool doc_index(mp_cursor v, uint32_t i, mp_cursor *elem)
{
    doc_iter it;
    if (!doc_array(v, &it) || i >= it.left)
        return false;
    for (uint32_t k = 0; k <= i; k++)
        if (!doc_next(&it, elem))
            return false;
    return true;
}

int doc_print_json(const agate_buf *doc)
{
    buf_t out;
    buf_init(&out);
    int jr = json_mp_to_json(doc->data ? (const void *)doc->data : "", doc->data ? doc->len : 0,
                             &out, 2);
    if (jr == 0) {
        fwrite(out.data, 1, out.len, stdout);
        fputc('\n', stdout);
    } else {
        cli_err("the reply cannot be shown as JSON (%s)", json_conv_strerror(jr));
    }
    buf_free(&out);
    return jr == 0 ? EXIT_OK : EXIT_ERR;
}
