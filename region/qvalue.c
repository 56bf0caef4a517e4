/* qvalue.c - decoding, navigation, comparison, hashing and LIKE for the
 * query engine's values (qvalue.h, docs/query.md "Types" and "Ordering").
 *
 * Everything here reads MessagePack in place with common/mp.h's bounded
 * cursor and allocates nothing: navigation walks the encoded map or array,
 * and arrays and maps are compared, ordered and hashed by walking their
 * encodings item by item.
 *
 * Numbers. Integers (int64, uint64) and floats compare by their exact
 * mathematical value: an int64 is never converted to a double to be
 * compared (2^53 + 1 is not equal to 2^53 as a double). NaN has one place
 * in every rule, as in PostgreSQL: NaN equals NaN and is greater than every
 * other number (also +Infinity). That keeps qvalue_compare, qvalue_equal,
 * qvalue_order and qvalue_hash consistent with each other, so sorting,
 * MIN/MAX, DISTINCT and GROUP BY all see one NaN value; -0.0 equals 0.0. */
#include "region/qvalue.h"

#include <math.h>
#include <msgpack.h>
#include <string.h>

#include "common/hash.h"
#include "common/mp.h"

/* 2^63 and 2^64 as doubles (both exact). */
#define TWO63 9223372036854775808.0
#define TWO64 18446744073709551616.0

/* ---- decoding ------------------------------------------------------------ */

/* The qvalue of one item header; arrays and maps get only their type (the
 * caller fills v.mp). MessagePack extensions are binaries of their payload. */
static qvalue item_value(const mp_item *it)
{
    qvalue v = qv_undefined();
    switch (it->type) {
    case MP_NIL: v.type = QT_NULL; break;
    case MP_BOOL: v = qv_bool(it->v.b); break;
    case MP_UINT:
        if (it->v.u <= INT64_MAX) {
            v = qv_int((int64_t)it->v.u);
        } else {
            v.type = QT_UINT;
            v.v.u = it->v.u;
        }
        break;
    case MP_INT: v = qv_int(it->v.i); break;
    case MP_FLOAT: case MP_DOUBLE: v = qv_float(it->v.d); break;
    case MP_STR: v = qv_str(it->v.s.ptr, it->v.s.len); break;
    case MP_BIN: case MP_EXT:
        v.type = QT_BIN;
        v.v.s.p = it->v.s.ptr;
        v.v.s.n = it->v.s.len;
        break;
    case MP_ARRAY: v.type = QT_ARRAY; break;
    case MP_MAP: v.type = QT_MAP; break;
    }
    return v;
}

size_t qvalue_decode(const uint8_t *p, size_t n, int depth, qvalue *out)
{
    mp_cursor c;
    mp_item it;
    if (!p || n == 0)
        return 0;
    mp_cursor_init(&c, p, n);
    if (mp_next(&c, &it))
        return 0;
    if (it.type != MP_ARRAY && it.type != MP_MAP) {
        *out = item_value(&it);
        return (size_t)(c.p - p);
    }
    /* mp_skip counts a top-level container as depth 1; it treats a
     * negative limit as "its maximum", which must not happen here. */
    if (depth < 1)
        return 0;
    mp_cursor_init(&c, p, n);
    if (mp_skip(&c, depth))
        return 0;
    *out = item_value(&it);
    out->v.mp.p = p;
    out->v.mp.n = (size_t)(c.p - p);
    return out->v.mp.n;
}

/* ---- navigation ------------------------------------------------------------ */

/* Opens the encoding of container v (of type want) and reads its count.
 * False when v is not of that type or its bytes do not start with one. */
static bool open_container(const qvalue *v, qtype want, mp_cursor *c, uint32_t *count)
{
    mp_item it;
    if (v->type != want || !v->v.mp.p)
        return false;
    mp_cursor_init(c, v->v.mp.p, v->v.mp.n);
    if (mp_next(c, &it) || it.type != (want == QT_MAP ? MP_MAP : MP_ARRAY))
        return false;
    *count = it.v.n;
    return true;
}

static bool skip_one(mp_cursor *c) { return mp_skip(c, MP_MAX_DEPTH_LIMIT) == 0; }

/* Decodes the object under the cursor (a nested one: its container was
 * already checked to the caller's depth, so the widest limit is fine). */
static qvalue decode_here(const mp_cursor *c)
{
    qvalue v;
    if (!qvalue_decode(c->p, mp_left(c), MP_MAX_DEPTH_LIMIT, &v))
        return qv_undefined();
    return v;
}

qvalue qvalue_field(const qvalue *m, const char *name, size_t len)
{
    mp_cursor c;
    uint32_t pairs;
    if (!open_container(m, QT_MAP, &c, &pairs))
        return qv_undefined();
    for (uint32_t i = 0; i < pairs; i++) {
        mp_cursor key = c;
        mp_item it;
        if (mp_next(&key, &it))
            return qv_undefined();
        /* the first pair with the name wins, like qvalue_subscript */
        if (it.type == MP_STR && it.v.s.len == len && memcmp(it.v.s.ptr, name, len) == 0)
            return decode_here(&key);
        if (!skip_one(&c) || !skip_one(&c))
            return qv_undefined();
    }
    return qv_undefined();
}

qvalue qvalue_element(const qvalue *a, int64_t i)
{
    mp_cursor c;
    uint32_t count;
    if (!open_container(a, QT_ARRAY, &c, &count))
        return qv_undefined();
    if (i < 0)
        i += count; /* count < 2^32: no overflow */
    if (i < 0 || i >= (int64_t)count)
        return qv_undefined();
    for (int64_t k = 0; k < i; k++)
        if (!skip_one(&c))
            return qv_undefined();
    return decode_here(&c);
}

/* m[k] over a map: the first key equal to k (numbers by value). */
static qvalue map_lookup(const qvalue *m, const qvalue *k)
{
    mp_cursor c;
    uint32_t pairs;
    if (!open_container(m, QT_MAP, &c, &pairs))
        return qv_undefined();
    for (uint32_t i = 0; i < pairs; i++) {
        qvalue key = decode_here(&c);
        if (key.type == QT_UNDEFINED || !skip_one(&c))
            return qv_undefined();
        if (qvalue_equal(&key, k))
            return decode_here(&c);
        if (!skip_one(&c))
            return qv_undefined();
    }
    return qv_undefined();
}

qvalue qvalue_subscript(const qvalue *base, const qvalue *k)
{
    if (base->type == QT_MAP)
        return map_lookup(base, k);
    /* only an integer indexes an array; a QT_UINT is beyond any array */
    if (base->type == QT_ARRAY && k->type == QT_INT)
        return qvalue_element(base, k->v.i);
    return qv_undefined();
}

/* ---- numbers ----------------------------------------------------------------- */

bool qvalue_is_number(const qvalue *v)
{
    return v->type == QT_INT || v->type == QT_UINT || v->type == QT_FLOAT;
}

static int sgn_u64(uint64_t a, uint64_t b) { return (a > b) - (a < b); }
static int sgn_i64(int64_t a, int64_t b) { return (a > b) - (a < b); }

/* Doubles in the total order: NaN equal to NaN and above everything. */
static int cmp_f64(double x, double y)
{
    bool nx = isnan(x), ny = isnan(y);
    if (nx || ny)
        return (int)nx - (int)ny;
    return (x > y) - (x < y);
}

/* i against d exactly; d is not NaN. In [-2^63, 2^63) trunc(d) converts to
 * int64 exactly, and its fraction decides a tie of the integer parts. */
static int cmp_i64_f64(int64_t i, double d)
{
    if (d >= TWO63)
        return -1;
    if (d < -TWO63)
        return 1;
    double t = trunc(d);
    int c = sgn_i64(i, (int64_t)t);
    if (c)
        return c;
    return (t > d) - (t < d);
}

/* u against d exactly; d is not NaN. */
static int cmp_u64_f64(uint64_t u, double d)
{
    if (d < 0)
        return 1;
    if (d >= TWO64)
        return -1;
    double t = trunc(d);
    int c = sgn_u64(u, (uint64_t)t);
    if (c)
        return c;
    return (t > d) - (t < d);
}

/* Integer a (QT_INT or QT_UINT) against double d. */
static int cmp_int_f64(const qvalue *a, double d)
{
    if (isnan(d))
        return -1;
    return a->type == QT_INT ? cmp_i64_f64(a->v.i, d) : cmp_u64_f64(a->v.u, d);
}

/* Two integers; a QT_UINT of any value is handled (hand-made ones too). */
static int cmp_int_int(const qvalue *a, const qvalue *b)
{
    if (a->type == QT_INT && b->type == QT_INT)
        return sgn_i64(a->v.i, b->v.i);
    if (a->type == QT_INT)
        return a->v.i < 0 ? -1 : sgn_u64((uint64_t)a->v.i, b->v.u);
    if (b->type == QT_INT)
        return b->v.i < 0 ? 1 : sgn_u64(a->v.u, (uint64_t)b->v.i);
    return sgn_u64(a->v.u, b->v.u);
}

/* Two numbers by value, in the total order (NaN last). */
static int cmp_num(const qvalue *a, const qvalue *b)
{
    if (a->type == QT_FLOAT && b->type == QT_FLOAT)
        return cmp_f64(a->v.f, b->v.f);
    if (a->type == QT_FLOAT)
        return -cmp_int_f64(b, a->v.f);
    if (b->type == QT_FLOAT)
        return cmp_int_f64(a, b->v.f);
    return cmp_int_int(a, b);
}

/* ---- scalars and encodings in the total order ---------------------------- */

/* Rank of a type in the total order; numbers share one rank. */
static int type_rank(qtype t)
{
    switch (t) {
    case QT_UNDEFINED: return 0;
    case QT_NULL: return 1;
    case QT_BOOL: return 2;
    case QT_INT: case QT_UINT: case QT_FLOAT: return 3;
    case QT_STR: return 4;
    case QT_BIN: return 5;
    case QT_ARRAY: return 6;
    case QT_MAP: return 7;
    }
    return 8;
}

static int cmp_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return sgn_u64(an, bn);
}

/* Orders two items met while walking encodings: by rank, then by value;
 * containers by their counts (their elements follow as further items). */
static int cmp_item(const mp_item *ia, const mp_item *ib)
{
    qvalue a = item_value(ia), b = item_value(ib);
    int c = type_rank(a.type) - type_rank(b.type);
    if (c)
        return c < 0 ? -1 : 1;
    switch (a.type) {
    case QT_BOOL: return (int)a.v.b - (int)b.v.b;
    case QT_INT: case QT_UINT: case QT_FLOAT: return cmp_num(&a, &b);
    case QT_STR: case QT_BIN: return cmp_bytes(a.v.s.p, a.v.s.n, b.v.s.p, b.v.s.n);
    case QT_ARRAY: case QT_MAP: return sgn_u64(ia->v.n, ib->v.n);
    default: return 0;
    }
}

/* Elements an item adds to the walk (map pairs are two items each). */
static uint64_t item_children(const mp_item *it)
{
    if (it->type == MP_ARRAY)
        return it->v.n;
    if (it->type == MP_MAP)
        return (uint64_t)it->v.n * 2;
    return 0;
}

/* Arrays and maps: walks both encodings in lockstep and orders them by the
 * first item that differs. As long as the items agree the two have the same
 * shape, so one pending count serves both. A malformed encoding (only a
 * hand-made qvalue can hold one) falls back to its raw bytes. */
static int cmp_encoded(const qvalue *a, const qvalue *b)
{
    mp_cursor ca, cb;
    mp_cursor_init(&ca, a->v.mp.p, a->v.mp.n);
    mp_cursor_init(&cb, b->v.mp.p, b->v.mp.n);
    for (uint64_t pending = 1; pending > 0; pending--) {
        mp_item ia, ib;
        if (mp_next(&ca, &ia) || mp_next(&cb, &ib))
            return cmp_bytes(a->v.mp.p, a->v.mp.n, b->v.mp.p, b->v.mp.n);
        int c = cmp_item(&ia, &ib);
        if (c)
            return c;
        pending += item_children(&ia);
    }
    return 0;
}

/* Two values of one rank (the same type, or both numbers). */
static int cmp_same_rank(const qvalue *a, const qvalue *b)
{
    switch (a->type) {
    case QT_BOOL: return (int)a->v.b - (int)b->v.b;
    case QT_INT: case QT_UINT: case QT_FLOAT: return cmp_num(a, b);
    case QT_STR: case QT_BIN: return cmp_bytes(a->v.s.p, a->v.s.n, b->v.s.p, b->v.s.n);
    case QT_ARRAY: case QT_MAP: return cmp_encoded(a, b);
    default: return 0; /* UNDEFINED, NULL: one value each */
    }
}

bool qvalue_compare(const qvalue *a, const qvalue *b, int *cmp)
{
    bool numbers = qvalue_is_number(a) && qvalue_is_number(b);
    if (!numbers && a->type != b->type)
        return false;
    if (a->type == QT_NULL || a->type == QT_UNDEFINED)
        return false;
    *cmp = cmp_same_rank(a, b);
    return true;
}

bool qvalue_equal(const qvalue *a, const qvalue *b)
{
    return qvalue_order(a, b) == 0;
}

int qvalue_order(const qvalue *a, const qvalue *b)
{
    int c = type_rank(a->type) - type_rank(b->type);
    if (c)
        return c < 0 ? -1 : 1;
    return cmp_same_rank(a, b);
}

/* ---- hashing -------------------------------------------------------------------- */

/* splitmix64's finalizer: spreads every input bit over the low bits that
 * open-addressing tables use. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

enum { H_UNDEF = 1, H_NULL, H_BOOL, H_NUM, H_STR, H_BIN, H_ARRAY, H_MAP };

/* A number hashes as the integer it equals when there is one (so 1 and
 * 1.0 agree, and -0.0 is 0), else as its bits; every NaN alike. */
static uint64_t hash_num(const qvalue *v)
{
    uint64_t bits;
    if (v->type == QT_INT) {
        bits = (uint64_t)v->v.i;
    } else if (v->type == QT_UINT) {
        bits = v->v.u;
    } else if (isnan(v->v.f)) {
        bits = 0x7ff8000000000000ULL;
    } else if (trunc(v->v.f) == v->v.f && v->v.f >= -TWO63 && v->v.f < TWO63) {
        bits = (uint64_t)(int64_t)v->v.f;
    } else if (trunc(v->v.f) == v->v.f && v->v.f >= 0 && v->v.f < TWO64) {
        bits = (uint64_t)v->v.f;
    } else {
        memcpy(&bits, &v->v.f, sizeof bits);
    }
    return mix64(bits ^ ((uint64_t)H_NUM << 56));
}

/* The hash of one scalar, or of a container's header (its type and count). */
static uint64_t hash_scalar(const qvalue *v, uint64_t count)
{
    switch (v->type) {
    case QT_UNDEFINED: return mix64(H_UNDEF);
    case QT_NULL: return mix64(H_NULL);
    case QT_BOOL: return mix64(H_BOOL * 2 + v->v.b);
    case QT_INT: case QT_UINT: case QT_FLOAT: return hash_num(v);
    case QT_STR: return mix64(hash_key(v->v.s.p, v->v.s.n) ^ H_STR);
    case QT_BIN: return mix64(hash_key(v->v.s.p, v->v.s.n) ^ H_BIN);
    case QT_ARRAY: return mix64(count ^ ((uint64_t)H_ARRAY << 56));
    case QT_MAP: return mix64(count ^ ((uint64_t)H_MAP << 56));
    }
    return 0;
}

/* Hashes an array or map item by item, with the same normalization as
 * cmp_encoded (so equal encodings hash alike). */
static uint64_t hash_encoded(const qvalue *v)
{
    mp_cursor c;
    uint64_t h = 0x243f6a8885a308d3ULL;
    mp_cursor_init(&c, v->v.mp.p, v->v.mp.n);
    for (uint64_t pending = 1; pending > 0; pending--) {
        mp_item it;
        if (mp_next(&c, &it))
            return mix64(hash_key(v->v.mp.p, v->v.mp.n));
        qvalue s = item_value(&it);
        h = (h << 7 | h >> 57) ^ hash_scalar(&s, it.type == MP_ARRAY || it.type == MP_MAP ? it.v.n : 0);
        h *= 0x9e3779b97f4a7c15ULL;
        pending += item_children(&it);
    }
    return mix64(h);
}

uint64_t qvalue_hash(const qvalue *v)
{
    if (v->type == QT_ARRAY || v->type == QT_MAP)
        return hash_encoded(v);
    return hash_scalar(v, 0);
}

/* ---- LIKE ----------------------------------------------------------------------- */

/* Length of the UTF-8 character at p (n > 0 bytes left). A byte that does
 * not start a well-formed sequence is a character of its own, so that any
 * byte string splits into characters one way, the same for the subject
 * and the pattern. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    size_t len;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4;
    else
        return 1;
    if (len > n)
        return 1;
    for (size_t k = 1; k < len; k++)
        if ((p[k] & 0xc0) != 0x80)
            return 1;
    return len;
}

typedef enum { TOK_STAR, TOK_ANY, TOK_LIT } tok_kind;

/* One pattern token at pat[i..): %, _, or a literal character (what
 * follows a backslash is literal; a backslash that ends the pattern is a
 * literal backslash). plen is its length in the pattern. */
typedef struct tok {
    tok_kind kind;
    size_t plen;
    const uint8_t *lit;
    size_t litlen;
} tok;

static tok next_tok(const uint8_t *pat, size_t patn, size_t i)
{
    tok t = {TOK_LIT, 1, pat + i, 1};
    if (pat[i] == '%') {
        t.kind = TOK_STAR;
    } else if (pat[i] == '_') {
        t.kind = TOK_ANY;
    } else if (pat[i] == '\\' && i + 1 < patn) {
        t.lit = pat + i + 1;
        t.litlen = utf8_len(t.lit, patn - i - 1);
        t.plen = 1 + t.litlen;
    } else if (pat[i] != '\\') {
        t.litlen = utf8_len(t.lit, patn - i);
        t.plen = t.litlen;
    }
    return t;
}

/* Greedy matching that, on a mismatch, goes back only to the last % and
 * lets it take one more character. Backtracking to earlier %s is never
 * needed (whatever an earlier % could take, the last one can take too), so
 * the work is O(|s| * |pat|) in the worst case, never exponential. */
bool qvalue_like(const uint8_t *s, size_t n, const uint8_t *pat, size_t patn)
{
    size_t si = 0, pi = 0;
    size_t star_pi = SIZE_MAX, star_si = 0;
    while (si < n) {
        if (pi < patn) {
            tok t = next_tok(pat, patn, pi);
            if (t.kind == TOK_STAR) {
                pi += t.plen;
                star_pi = pi;
                star_si = si;
                continue;
            }
            size_t cl = utf8_len(s + si, n - si);
            if (t.kind == TOK_ANY || (t.litlen == cl && memcmp(t.lit, s + si, cl) == 0)) {
                si += cl;
                pi += t.plen;
                continue;
            }
        }
        if (star_pi == SIZE_MAX)
            return false;
        star_si += utf8_len(s + star_si, n - star_si);
        si = star_si;
        pi = star_pi;
    }
    while (pi < patn && pat[pi] == '%')
        pi++;
    return pi == patn;
}

/* ---- output --------------------------------------------------------------------- */

/* A string or binary; an empty body is not written (its pointer may be
 * NULL). Returns the packer's error code unchanged. */
static int pack_bytes(msgpack_packer *pk, bool str, const qvalue *v)
{
    int rc = str ? msgpack_pack_str(pk, v->v.s.n) : msgpack_pack_bin(pk, v->v.s.n);
    if (rc || !v->v.s.n)
        return rc;
    return str ? msgpack_pack_str_body(pk, v->v.s.p, v->v.s.n)
               : msgpack_pack_bin_body(pk, v->v.s.p, v->v.s.n);
}

int qvalue_pack(const qvalue *v, void *pkv)
{
    msgpack_packer *pk = pkv;
    switch (v->type) {
    case QT_UNDEFINED: case QT_NULL: return msgpack_pack_nil(pk);
    case QT_BOOL: return v->v.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case QT_INT: return msgpack_pack_int64(pk, v->v.i);
    case QT_UINT: return msgpack_pack_uint64(pk, v->v.u);
    case QT_FLOAT: return msgpack_pack_double(pk, v->v.f);
    case QT_STR: return pack_bytes(pk, true, v);
    case QT_BIN: return pack_bytes(pk, false, v);
    case QT_ARRAY: case QT_MAP:
        return v->v.mp.n ? pk->callback(pk->data, (const char *)v->v.mp.p, v->v.mp.n) : -1;
    }
    return -1;
}

const char *qtype_name(qtype t)
{
    switch (t) {
    case QT_UNDEFINED: return "undefined";
    case QT_NULL: return "null";
    case QT_BOOL: return "boolean";
    case QT_INT: case QT_UINT: return "integer";
    case QT_FLOAT: return "float";
    case QT_STR: return "string";
    case QT_BIN: return "binary";
    case QT_ARRAY: return "array";
    case QT_MAP: return "map";
    }
    return "unknown";
}
