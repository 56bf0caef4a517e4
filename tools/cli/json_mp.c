/* json_mp.c - JSON <-> MessagePack conversion, a JSON writer, base64.
 * See json_mp.h for the mapping and why it is done without a JSON tree. */
#include "tools/cli/json_mp.h"

#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mpw.h"

/* ---- UTF-8 ------------------------------------------------------------ */

/* Length (1..4) of the well-formed UTF-8 sequence at p (n > 0 bytes
 * available), or 0 if the bytes there are not one. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t b = p[0];
    if (b < 0x80)
        return 1;
    if (b < 0xc2)
        return 0; /* continuation byte or overlong 2-byte lead */
    if (b < 0xe0)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (b < 0xf0) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if (b == 0xe0 && p[1] < 0xa0)
            return 0; /* overlong */
        if (b == 0xed && p[1] >= 0xa0)
            return 0; /* UTF-16 surrogate */
        return 3;
    }
    if (b < 0xf5) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if (b == 0xf0 && p[1] < 0x90)
            return 0; /* overlong */
        if (b == 0xf4 && p[1] >= 0x90)
            return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

bool utf8_valid(const void *p, size_t n)
{
    const uint8_t *s = p;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(s + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

/* Appends code point cp (a valid scalar value) as UTF-8. */
static int put_utf8(buf_t *b, uint32_t cp)
{
    uint8_t t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (uint8_t)(0xc0 | cp >> 6);
        t[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (uint8_t)(0xe0 | cp >> 12);
        t[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        t[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        t[0] = (uint8_t)(0xf0 | cp >> 18);
        t[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        t[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        t[3] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return buf_append(b, t, n);
}

/* ---- base64 ----------------------------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_encode(const void *p, size_t n, buf_t *out)
{
    const uint8_t *s = p;
    if (buf_reserve(out, (n + 2) / 3 * 4 + 1))
        return -1;
    char *o = (char *)out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = b64_alphabet[(v >> 6) & 63];
        *o++ = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = b64_alphabet[(v >> 6) & 63];
        *o++ = '=';
    }
    out->len = (size_t)(o - (char *)out->data);
    return 0;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int b64_decode(const char *s, size_t n, buf_t *out)
{
    size_t start = out->len;
    /* Strip up to two '=' of padding; then the length mod 4 must not be 1. */
    size_t pad = 0;
    while (n > 0 && s[n - 1] == '=' && pad < 2) {
        n--;
        pad++;
    }
    if (n % 4 == 1 || (pad && (n + pad) % 4 != 0))
        return -1;
    if (buf_reserve(out, n / 4 * 3 + 3))
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(s[i]);
        if (v < 0) {
            out->len = start;
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out->data[out->len++] = (uint8_t)(acc >> bits);
        }
    }
    return 0;
}

/* ---- JSON parser ------------------------------------------------------ */

typedef struct key_ref {
    size_t off; /* payload offset in out */
    size_t len;
} key_ref;

typedef struct jp {
    const char *start;
    const char *p;
    const char *end;
    buf_t *out;
    msgpack_packer pk;
    buf_t scratch;      /* decoded string or number text */
    key_ref *keys;      /* keys of the open objects, innermost last */
    size_t nkeys, capkeys;
    int depth;
    json_mp_error *err;
} jp;

/* Records the first failure at the current position. Always returns -1 so
 * callers can `return fail(...)`. */
static int fail(jp *j, const char *fmt, ...)
{
    if (!j->err)
        return -1;
    json_mp_error *e = j->err;
    e->offset = (size_t)(j->p - j->start);
    e->line = 1;
    e->column = 1;
    for (const char *q = j->start; q < j->p; q++) {
        if (*q == '\n') {
            e->line++;
            e->column = 1;
        } else {
            e->column++;
        }
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof(e->text), fmt, ap);
    va_end(ap);
    return -1;
}

static int oom(jp *j) { return fail(j, "out of memory"); }

static void skip_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* Describes the byte at the current position for an error message. */
static const char *here(jp *j, char *tmp, size_t n)
{
    if (j->p >= j->end)
        return "end of input";
    unsigned char c = (unsigned char)*j->p;
    if (c >= 0x20 && c < 0x7f)
        snprintf(tmp, n, "'%c'", c);
    else
        snprintf(tmp, n, "byte 0x%02x", c);
    return tmp;
}

static int hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Decodes the string whose opening quote is at j->p into j->scratch. */
static int parse_string(jp *j)
{
    buf_reset(&j->scratch);
    j->p++; /* opening quote */
    for (;;) {
        const char *q = j->p;
        while (q < j->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20 &&
               (unsigned char)*q < 0x80)
            q++;
        if (buf_append(&j->scratch, j->p, (size_t)(q - j->p)))
            return oom(j);
        j->p = q;
        if (j->p >= j->end)
            return fail(j, "unterminated string");
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            return 0;
        }
        if (c < 0x20)
            return fail(j, "control character 0x%02x in string (must be escaped)", c);
        if (c >= 0x80) {
            size_t k = utf8_seq((const uint8_t *)j->p, (size_t)(j->end - j->p));
            if (k == 0)
                return fail(j, "invalid UTF-8 in string");
            if (buf_append(&j->scratch, j->p, k))
                return oom(j);
            j->p += k;
            continue;
        }
        /* backslash */
        if (j->end - j->p < 2)
            return fail(j, "unterminated string");
        char e = j->p[1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e != 0 && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            char ch = map[simple - "\"\\/bfnrt"];
            if (buf_append(&j->scratch, &ch, 1))
                return oom(j);
            j->p += 2;
            continue;
        }
        if (e != 'u')
            return fail(j, "invalid escape '\\%c' in string", e >= 0x20 && e < 0x7f ? e : '?');
        uint32_t cp;
        if (j->end - j->p < 6 || hex4(j->p + 2, &cp))
            return fail(j, "invalid \\u escape (needs 4 hex digits)");
        j->p += 6;
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return fail(j, "invalid \\u escape: lone low surrogate");
        if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t lo;
            if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || hex4(j->p + 2, &lo) ||
                lo < 0xdc00 || lo > 0xdfff)
                return fail(j, "invalid \\u escape: high surrogate without low surrogate");
            j->p += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (put_utf8(&j->scratch, cp))
            return oom(j);
    }
}

static int parse_number(jp *j)
{
    const char *s = j->p;
    const char *p = s;
    bool neg = false;
    if (p < j->end && *p == '-') {
        neg = true;
        p++;
    }
    if (p >= j->end || *p < '0' || *p > '9') {
        j->p = p;
        return fail(j, "invalid number");
    }
    const char *digits = p;
    if (*p == '0') {
        p++;
        if (p < j->end && *p >= '0' && *p <= '9') {
            j->p = p;
            return fail(j, "invalid number (leading zero)");
        }
    } else {
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    }
    const char *digits_end = p;
    bool is_int = true;
    if (p < j->end && *p == '.') {
        p++;
        if (p >= j->end || *p < '0' || *p > '9') {
            j->p = p;
            return fail(j, "invalid number (digit expected after '.')");
        }
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
        is_int = false;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < j->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= j->end || *p < '0' || *p > '9') {
            j->p = p;
            return fail(j, "invalid number (digit expected in exponent)");
        }
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
        is_int = false;
    }
    if (is_int) {
        uint64_t mag = 0;
        bool overflow = false;
        for (const char *d = digits; d < digits_end; d++) {
            unsigned dv = (unsigned)(*d - '0');
            if (mag > (UINT64_MAX - dv) / 10) {
                overflow = true;
                break;
            }
            mag = mag * 10 + dv;
        }
        if (!overflow && !neg) {
            j->p = p;
            return msgpack_pack_uint64(&j->pk, mag) ? oom(j) : 0;
        }
        if (!overflow && neg && mag <= (uint64_t)INT64_MAX + 1) {
            int64_t v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
            j->p = p;
            return msgpack_pack_int64(&j->pk, v) ? oom(j) : 0;
        }
        /* Outside the 64-bit integer range: a double, as JavaScript would. */
    }
    buf_reset(&j->scratch);
    if (buf_append(&j->scratch, s, (size_t)(p - s)) || buf_append(&j->scratch, "", 1))
        return oom(j);
    double d = strtod((const char *)j->scratch.data, NULL);
    if (isinf(d))
        return fail(j, "number out of range");
    j->p = p;
    return msgpack_pack_double(&j->pk, d) ? oom(j) : 0;
}

static int literal(jp *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return fail(j, "invalid literal (expected %s)", word);
    j->p += n;
    return 0;
}

/* Rewrites the 5-byte placeholder header at hdr (written as map32/array32)
 * into the smallest header for n elements, moving the body down. */
static void finish_header(jp *j, size_t hdr, uint32_t n, bool map)
{
    uint8_t *h = j->out->data + hdr;
    size_t body = j->out->len - hdr - 5;
    if (n <= 15) {
        h[0] = (uint8_t)((map ? 0x80 : 0x90) | n);
        memmove(h + 1, h + 5, body);
        j->out->len -= 4;
    } else if (n <= 0xffff) {
        h[0] = map ? 0xde : 0xdc;
        h[1] = (uint8_t)(n >> 8);
        h[2] = (uint8_t)n;
        memmove(h + 3, h + 5, body);
        j->out->len -= 2;
    } else {
        h[0] = map ? 0xdf : 0xdd;
        h[1] = (uint8_t)(n >> 24);
        h[2] = (uint8_t)(n >> 16);
        h[3] = (uint8_t)(n >> 8);
        h[4] = (uint8_t)n;
    }
}

static int key_cmp(const void *a, const void *b, void *arg)
{
    const uint8_t *base = arg;
    const key_ref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(base + x->off, base + y->off, n);
    if (c)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* Checks the keys of the object being closed (keys[first..nkeys)) for
 * duplicates. Returns the index of a duplicate, or (size_t)-1. Sorting
 * reorders only this object's slice, which is dropped right after. */
static size_t find_duplicate(jp *j, size_t first)
{
    size_t n = j->nkeys - first;
    if (n < 2)
        return (size_t)-1; /* also keeps NULL + 0 (no keys yet) from being formed */
    key_ref *k = j->keys + first;
    const uint8_t *base = j->out->data;
    if (n <= 16) {
        for (size_t a = 0; a < n; a++)
            for (size_t b = a + 1; b < n; b++)
                if (key_cmp(&k[a], &k[b], (void *)base) == 0)
                    return first + a;
        return (size_t)-1;
    }
    qsort_r(k, n, sizeof(*k), key_cmp, (void *)base);
    for (size_t a = 0; a + 1 < n; a++)
        if (key_cmp(&k[a], &k[a + 1], (void *)base) == 0)
            return first + a;
    return (size_t)-1;
}

static int parse_value(jp *j);

static int parse_container(jp *j, bool map)
{
    if (++j->depth > JSON_MP_MAX_DEPTH)
        return fail(j, "nested too deeply (more than %d levels)", JSON_MP_MAX_DEPTH);
    size_t hdr = j->out->len;
    static const uint8_t placeholder[5] = {0xdd, 0, 0, 0, 0};
    if (buf_append(j->out, placeholder, 5))
        return oom(j);
    size_t first_key = j->nkeys;
    uint64_t n = 0;
    char close = map ? '}' : ']';
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
    } else {
        for (;;) {
            char tmp[24];
            skip_ws(j);
            if (map) {
                if (j->p >= j->end || *j->p != '"')
                    return fail(j, "expected a string (object key), found %s", here(j, tmp, sizeof tmp));
                if (parse_string(j))
                    return -1;
                if (j->nkeys == j->capkeys) {
                    size_t cap = j->capkeys ? j->capkeys * 2 : 16;
                    key_ref *k = realloc(j->keys, cap * sizeof(*k));
                    if (!k)
                        return oom(j);
                    j->keys = k;
                    j->capkeys = cap;
                }
                if (mpw_str(&j->pk, j->scratch.data, j->scratch.len))
                    return oom(j);
                j->keys[j->nkeys].off = j->out->len - j->scratch.len;
                j->keys[j->nkeys].len = j->scratch.len;
                j->nkeys++;
                skip_ws(j);
                if (j->p >= j->end || *j->p != ':')
                    return fail(j, "expected ':' after object key, found %s", here(j, tmp, sizeof tmp));
                j->p++;
            }
            if (parse_value(j))
                return -1;
            if (++n > UINT32_MAX)
                return fail(j, "too many elements in one container");
            skip_ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == close) {
                j->p++;
                break;
            }
            return fail(j, "expected ',' or '%c', found %s", close, here(j, tmp, sizeof tmp));
        }
    }
    if (map) {
        size_t dup = find_duplicate(j, first_key);
        if (dup != (size_t)-1) {
            key_ref k = j->keys[dup];
            int shown = k.len > 60 ? 60 : (int)k.len;
            j->p--; /* point at the closing brace */
            return fail(j, "duplicate key \"%.*s\"%s in object", shown,
                        (const char *)j->out->data + k.off, k.len > 60 ? "..." : "");
        }
        j->nkeys = first_key;
    }
    finish_header(j, hdr, (uint32_t)n, map);
    j->depth--;
    return 0;
}

static int parse_value(jp *j)
{
    char tmp[24];
    skip_ws(j);
    if (j->p >= j->end)
        return fail(j, "unexpected end of input (a value was expected)");
    switch (*j->p) {
    case '{':
        return parse_container(j, true);
    case '[':
        return parse_container(j, false);
    case '"':
        if (parse_string(j))
            return -1;
        return mpw_str(&j->pk, j->scratch.data, j->scratch.len) ? oom(j) : 0;
    case 't':
        return literal(j, "true") || msgpack_pack_true(&j->pk) ? -1 : 0;
    case 'f':
        return literal(j, "false") || msgpack_pack_false(&j->pk) ? -1 : 0;
    case 'n':
        return literal(j, "null") || msgpack_pack_nil(&j->pk) ? -1 : 0;
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
            return parse_number(j);
        return fail(j, "unexpected %s (a JSON value was expected)", here(j, tmp, sizeof tmp));
    }
}

int json_mp_parse(const char *text, size_t len, buf_t *out, json_mp_error *err)
{
    jp j;
    memset(&j, 0, sizeof(j));
    j.start = j.p = text;
    j.end = text + len;
    j.out = out;
    j.err = err;
    mpw_init(&j.pk, out);
    buf_init(&j.scratch);
    size_t start_len = out->len;
    int rc = parse_value(&j);
    if (rc == 0) {
        skip_ws(&j);
        if (j.p < j.end) {
            char tmp[24];
            rc = fail(&j, "unexpected %s after the JSON value", here(&j, tmp, sizeof tmp));
        }
    }
    if (rc)
        out->len = start_len;
    buf_free(&j.scratch);
    free(j.keys);
    return rc ? -1 : 0;
}

/* ---- JSON writer ------------------------------------------------------ */

void jw_init(jw_t *w, buf_t *out, int indent)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->indent = indent;
}

void jw_free(jw_t *w)
{
    free(w->count);
    free(w->is_obj);
    w->count = NULL;
    w->is_obj = NULL;
    w->cap = w->depth = 0;
}

static int jw_put(jw_t *w, const void *p, size_t n)
{
    if (buf_append(w->out, p, n))
        w->err = 1;
    return w->err ? -1 : 0;
}

static int jw_newline(jw_t *w)
{
    if (!w->indent)
        return 0;
    if (jw_put(w, "\n", 1))
        return -1;
    for (int i = 0; i < w->depth * w->indent; i++)
        if (jw_put(w, " ", 1))
            return -1;
    return 0;
}

/* Separator and indentation before a value (or a key when is_key). */
static int jw_pre(jw_t *w, bool is_key)
{
    if (w->err)
        return -1;
    if (w->depth == 0)
        return is_key ? (w->err = 1, -1) : 0;
    int d = w->depth - 1;
    if (w->is_obj[d] && !is_key) {
        if (!w->after_key)
            return w->err = 1, -1;
        w->after_key = false;
        return 0;
    }
    if (!w->is_obj[d] && is_key)
        return w->err = 1, -1;
    if (w->count[d]++ > 0 && jw_put(w, ",", 1))
        return -1;
    return jw_newline(w);
}

static int jw_open(jw_t *w, bool obj)
{
    if (jw_pre(w, false) || jw_put(w, obj ? "{" : "[", 1))
        return -1;
    if (w->depth == w->cap) {
        int cap = w->cap ? w->cap * 2 : 8;
        uint32_t *c = realloc(w->count, (size_t)cap * sizeof(*c));
        if (!c)
            return w->err = 1, -1;
        w->count = c;
        bool *o = realloc(w->is_obj, (size_t)cap * sizeof(*o));
        if (!o)
            return w->err = 1, -1;
        w->is_obj = o;
        w->cap = cap;
    }
    w->count[w->depth] = 0;
    w->is_obj[w->depth] = obj;
    w->depth++;
    return 0;
}

static int jw_close(jw_t *w, bool obj)
{
    if (w->err || w->depth == 0 || w->is_obj[w->depth - 1] != obj || w->after_key)
        return w->err = 1, -1;
    w->depth--;
    if (w->count[w->depth] > 0 && jw_newline(w))
        return -1;
    return jw_put(w, obj ? "}" : "]", 1);
}

int jw_begin_object(jw_t *w) { return jw_open(w, true); }
int jw_end_object(jw_t *w) { return jw_close(w, true); }
int jw_begin_array(jw_t *w) { return jw_open(w, false); }
int jw_end_array(jw_t *w) { return jw_close(w, false); }

/* Appends s as a quoted JSON string. Bytes that are not valid UTF-8 become
 * U+FFFD so the output is always valid JSON. */
static int jw_quoted(jw_t *w, const void *sv, size_t n)
{
    const uint8_t *s = sv;
    if (jw_put(w, "\"", 1))
        return -1;
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        if (run > i && jw_put(w, s + i, run - i))
            return -1;
        i = run;
        if (i >= n)
            break;
        uint8_t c = s[i];
        if (c >= 0x80) {
            size_t k = utf8_seq(s + i, n - i);
            if (k == 0) {
                if (jw_put(w, "\xef\xbf\xbd", 3))
                    return -1;
                i++;
            } else {
                if (jw_put(w, s + i, k))
                    return -1;
                i += k;
            }
            continue;
        }
        char esc[8];
        switch (c) {
        case '"': memcpy(esc, "\\\"", 3); break;
        case '\\': memcpy(esc, "\\\\", 3); break;
        case '\n': memcpy(esc, "\\n", 3); break;
        case '\r': memcpy(esc, "\\r", 3); break;
        case '\t': memcpy(esc, "\\t", 3); break;
        case '\b': memcpy(esc, "\\b", 3); break;
        case '\f': memcpy(esc, "\\f", 3); break;
        default: snprintf(esc, sizeof esc, "\\u%04x", c); break;
        }
        if (jw_put(w, esc, strlen(esc)))
            return -1;
        i++;
    }
    return jw_put(w, "\"", 1);
}

int jw_key(jw_t *w, const void *s, size_t n)
{
    if (jw_pre(w, true) || jw_quoted(w, s, n) || jw_put(w, w->indent ? ": " : ":", w->indent ? 2 : 1))
        return -1;
    w->after_key = true;
    return 0;
}

int jw_ckey(jw_t *w, const char *s) { return jw_key(w, s, strlen(s)); }

int jw_str(jw_t *w, const void *s, size_t n)
{
    return jw_pre(w, false) || jw_quoted(w, s, n) ? -1 : 0;
}

int jw_cstr(jw_t *w, const char *s) { return s ? jw_str(w, s, strlen(s)) : jw_null(w); }

int jw_int(jw_t *w, int64_t v)
{
    char t[32];
    int n = snprintf(t, sizeof t, "%lld", (long long)v);
    return jw_pre(w, false) || jw_put(w, t, (size_t)n) ? -1 : 0;
}

int jw_uint(jw_t *w, uint64_t v)
{
    char t[32];
    int n = snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    return jw_pre(w, false) || jw_put(w, t, (size_t)n) ? -1 : 0;
}

/* Shortest %g text that reads back as exactly v (or as exactly the float v
 * when is_float), made to look like a real so it parses back as one. */
static void format_real(double v, bool is_float, char *t, size_t n)
{
    for (int prec = is_float ? 6 : 15; prec <= 17; prec++) {
        snprintf(t, n, "%.*g", prec, v);
        double back = strtod(t, NULL);
        if (is_float ? (float)back == (float)v : back == v)
            break;
    }
    if (!strpbrk(t, ".eE"))
        strncat(t, ".0", n - strlen(t) - 1);
}

static int jw_real(jw_t *w, double v, bool is_float)
{
    if (!isfinite(v))
        return jw_null(w);
    char t[48];
    format_real(v, is_float, t, sizeof t);
    return jw_pre(w, false) || jw_put(w, t, strlen(t)) ? -1 : 0;
}

int jw_double(jw_t *w, double v) { return jw_real(w, v, false); }

int jw_bool(jw_t *w, bool v)
{
    return jw_pre(w, false) || jw_put(w, v ? "true" : "false", v ? 4 : 5) ? -1 : 0;
}

int jw_null(jw_t *w) { return jw_pre(w, false) || jw_put(w, "null", 4) ? -1 : 0; }

int jw_base64(jw_t *w, const void *p, size_t n)
{
    if (jw_pre(w, false) || jw_put(w, "\"", 1))
        return -1;
    if (b64_encode(p, n, w->out))
        return w->err = 1, -1;
    return jw_put(w, "\"", 1);
}

#define JW_MAX_MP_DEPTH 1024

/* A map key that is not a string is written as its JSON text, and that text
 * is escaped once more for every such key it sits in: each level doubles
 * the backslashes, so the output would grow exponentially with the nesting
 * (2^k bytes from 2k bytes of input). Keys within keys deeper than this fail
 * with MP_EDEPTH instead. */
#define JW_MAX_KEY_NESTING 4

static int mp_to_jw(jw_t *w, mp_cursor *c, int depth, int key_nesting);

/* Writes a map key: strings as they are, bin as base64, anything else as its
 * compact JSON text (JSON object names must be strings). key_nesting counts
 * the keys of that kind this one is part of. */
static int mp_key_to_jw(jw_t *w, mp_cursor *c, int depth, int key_nesting)
{
    mp_cursor save = *c;
    mp_item it;
    int rc = mp_next(c, &it);
    if (rc)
        return rc;
    if (it.type == MP_STR)
        return jw_key(w, it.v.s.ptr, it.v.s.len) ? JW_EFAIL : 0;
    buf_t tmp;
    buf_init(&tmp);
    if (it.type == MP_BIN) {
        rc = b64_encode(it.v.s.ptr, it.v.s.len, &tmp) ? JW_EFAIL : 0;
    } else if (key_nesting >= JW_MAX_KEY_NESTING) {
        rc = MP_EDEPTH;
    } else {
        jw_t sub;
        jw_init(&sub, &tmp, 0);
        *c = save;
        rc = mp_to_jw(&sub, c, depth, key_nesting + 1);
        jw_free(&sub);
    }
    if (rc == 0 && jw_key(w, tmp.data ? (const void *)tmp.data : "", tmp.len))
        rc = JW_EFAIL;
    buf_free(&tmp);
    return rc;
}

static int mp_to_jw(jw_t *w, mp_cursor *c, int depth, int key_nesting)
{
    mp_item it;
    int rc = mp_next(c, &it);
    if (rc)
        return rc;
    switch (it.type) {
    case MP_NIL: rc = jw_null(w); break;
    case MP_BOOL: rc = jw_bool(w, it.v.b); break;
    case MP_UINT: rc = jw_uint(w, it.v.u); break;
    case MP_INT: rc = jw_int(w, it.v.i); break;
    case MP_FLOAT: rc = jw_real(w, it.v.d, true); break;
    case MP_DOUBLE: rc = jw_real(w, it.v.d, false); break;
    case MP_STR: rc = jw_str(w, it.v.s.ptr, it.v.s.len); break;
    case MP_BIN: rc = jw_base64(w, it.v.s.ptr, it.v.s.len); break;
    case MP_EXT:
        rc = jw_begin_object(w) || jw_ckey(w, "$ext") || jw_int(w, it.v.s.ext_type) ||
             jw_ckey(w, "base64") || jw_base64(w, it.v.s.ptr, it.v.s.len) || jw_end_object(w);
        break;
    case MP_ARRAY:
    case MP_MAP: {
        if (depth >= JW_MAX_MP_DEPTH)
            return MP_EDEPTH;
        bool map = it.type == MP_MAP;
        uint32_t n = it.v.n;
        if (map ? jw_begin_object(w) : jw_begin_array(w))
            return JW_EFAIL;
        for (uint32_t i = 0; i < n; i++) {
            if (map && (rc = mp_key_to_jw(w, c, depth + 1, key_nesting)) != 0)
                return rc;
            if ((rc = mp_to_jw(w, c, depth + 1, key_nesting)) != 0)
                return rc;
        }
        rc = map ? jw_end_object(w) : jw_end_array(w);
        break;
    }
    }
    return rc ? JW_EFAIL : 0;
}

int jw_mp(jw_t *w, mp_cursor *c) { return mp_to_jw(w, c, 0, 0); }

int json_mp_to_json(const void *mp, size_t n, buf_t *out, int indent)
{
    jw_t w;
    mp_cursor c;
    jw_init(&w, out, indent);
    mp_cursor_init(&c, mp, n);
    size_t start = out->len;
    int rc = jw_mp(&w, &c);
    jw_free(&w);
    if (rc == 0 && mp_left(&c) != 0)
        rc = MP_EINVALID;
    if (rc == 0 && buf_append(out, "", 1))
        rc = JW_EFAIL;
    if (rc) {
        out->len = start;
        return rc;
    }
    out->len--; /* keep the NUL outside the length */
    return 0;
}
