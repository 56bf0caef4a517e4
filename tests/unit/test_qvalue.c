/* Unit tests for region/qvalue.h: decoding every MessagePack type,
 * navigation, the comparison/equality/order/hash rules of docs/query.md
 * ("Types", "Ordering") and LIKE.
 *
 * Every encoded input is copied into a heap block of exactly its size, so
 * that AddressSanitizer catches a read one byte past the end. */
#include <check.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "region/qvalue.h"
#include "tools/cli/json_mp.h"
#include "tu.h"

/* ---- helpers ------------------------------------------------------------- */

static uint8_t *blocks[512];
static int nblocks;

static void free_blocks(void)
{
    while (nblocks > 0)
        free(blocks[--nblocks]);
}

/* An exact-size heap copy, freed by the fixture's teardown. */
static const uint8_t *keep(const void *p, size_t n)
{
    ck_assert_int_lt(nblocks, 512);
    uint8_t *c = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(c);
    if (n)
        memcpy(c, p, n);
    blocks[nblocks++] = c;
    return c;
}

/* JSON text -> MessagePack bytes (kept), length in *n. */
static const uint8_t *mp_json(const char *json, size_t *n)
{
    buf_t b;
    buf_init(&b);
    ck_assert_msg(json_mp_parse(json, strlen(json), &b, NULL) == 0, "bad JSON: %s", json);
    const uint8_t *p = keep(buf_rptr(&b), buf_readable(&b));
    *n = buf_readable(&b);
    buf_free(&b);
    return p;
}

/* JSON text -> a decoded qvalue. */
static qvalue J(const char *json)
{
    size_t n;
    const uint8_t *p = mp_json(json, &n);
    qvalue v;
    ck_assert_uint_eq(qvalue_decode(p, n, 64, &v), n);
    return v;
}

static qvalue U(uint64_t u) { return (qvalue){.type = QT_UINT, .v.u = u}; }
static qvalue S(const char *s) { return qv_str(s, (uint32_t)strlen(s)); }
static qvalue B(const char *s) { return (qvalue){.type = QT_BIN, .v.s = {(const uint8_t *)s, (uint32_t)strlen(s)}}; }

static int sgn(int x) { return (x > 0) - (x < 0); }

/* ---- decoding ---------------------------------------------------------------- */

typedef struct dcase {
    const char *what;
    uint8_t b[24];
    size_t n;
    qtype type;
    int64_t i;      /* QT_INT, QT_BOOL */
    uint64_t u;     /* QT_UINT; QT_STR/BIN: length */
    double f;       /* QT_FLOAT */
} dcase;

static const dcase DCASES[] = {
    {"nil", {0xc0}, 1, QT_NULL, 0, 0, 0},
    {"false", {0xc2}, 1, QT_BOOL, 0, 0, 0},
    {"true", {0xc3}, 1, QT_BOOL, 1, 0, 0},
    {"fixint 0", {0x00}, 1, QT_INT, 0, 0, 0},
    {"fixint 127", {0x7f}, 1, QT_INT, 127, 0, 0},
    {"negative fixint -32", {0xe0}, 1, QT_INT, -32, 0, 0},
    {"negative fixint -1", {0xff}, 1, QT_INT, -1, 0, 0},
    {"uint8 255", {0xcc, 0xff}, 2, QT_INT, 255, 0, 0},
    {"uint16 65535", {0xcd, 0xff, 0xff}, 3, QT_INT, 65535, 0, 0},
    {"uint32 max", {0xce, 0xff, 0xff, 0xff, 0xff}, 5, QT_INT, 4294967295LL, 0, 0},
    {"uint64 INT64_MAX", {0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, QT_INT, INT64_MAX, 0, 0},
    {"uint64 2^63", {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9, QT_UINT, 0, 1ULL << 63, 0},
    {"uint64 max", {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, QT_UINT, 0, UINT64_MAX, 0},
    {"int8 -128", {0xd0, 0x80}, 2, QT_INT, -128, 0, 0},
    {"int8 5 (signed encoding, positive)", {0xd0, 0x05}, 2, QT_INT, 5, 0, 0},
    {"int16 -32768", {0xd1, 0x80, 0x00}, 3, QT_INT, -32768, 0, 0},
    {"int32 min", {0xd2, 0x80, 0, 0, 0}, 5, QT_INT, INT32_MIN, 0, 0},
    {"int64 min", {0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9, QT_INT, INT64_MIN, 0, 0},
    {"int64 1", {0xd3, 0, 0, 0, 0, 0, 0, 0, 1}, 9, QT_INT, 1, 0, 0},
    {"float32 1.5", {0xca, 0x3f, 0xc0, 0, 0}, 5, QT_FLOAT, 0, 0, 1.5},
    {"float32 -inf", {0xca, 0xff, 0x80, 0, 0}, 5, QT_FLOAT, 0, 0, -INFINITY},
    {"float32 smallest subnormal", {0xca, 0, 0, 0, 1}, 5, QT_FLOAT, 0, 0, 1.401298464324817e-45},
    {"float64 0.1", {0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a}, 9, QT_FLOAT, 0, 0, 0.1},
    {"float64 -0.0", {0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9, QT_FLOAT, 0, 0, -0.0},
    {"float64 max", {0xcb, 0x7f, 0xef, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, QT_FLOAT, 0, 0, 1.7976931348623157e308},
    {"fixstr empty", {0xa0}, 1, QT_STR, 0, 0, 0},
    {"fixstr abc", {0xa3, 'a', 'b', 'c'}, 4, QT_STR, 0, 3, 0},
    {"str8", {0xd9, 2, 'h', 'i'}, 4, QT_STR, 0, 2, 0},
    {"str16", {0xda, 0, 2, 'h', 'i'}, 5, QT_STR, 0, 2, 0},
    {"str32", {0xdb, 0, 0, 0, 2, 'h', 'i'}, 7, QT_STR, 0, 2, 0},
    {"bin8", {0xc4, 3, 1, 2, 3}, 5, QT_BIN, 0, 3, 0},
    {"bin8 empty", {0xc4, 0}, 2, QT_BIN, 0, 0, 0},
    {"bin16", {0xc5, 0, 1, 9}, 4, QT_BIN, 0, 1, 0},
    {"bin32", {0xc6, 0, 0, 0, 1, 9}, 6, QT_BIN, 0, 1, 0},
    {"fixext1", {0xd4, 0x01, 0xaa}, 3, QT_BIN, 0, 1, 0},
    {"fixext16", {0xd8, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 18, QT_BIN, 0, 16, 0},
    {"ext8", {0xc7, 3, 0x05, 0xaa, 0xbb, 0xcc}, 6, QT_BIN, 0, 3, 0},
    {"ext16", {0xc8, 0, 1, 0x05, 0xaa}, 5, QT_BIN, 0, 1, 0},
    {"ext32", {0xc9, 0, 0, 0, 1, 0xfe, 0xaa}, 7, QT_BIN, 0, 1, 0},
    {"fixarray", {0x93, 1, 2, 3}, 4, QT_ARRAY, 0, 0, 0},
    {"array16", {0xdc, 0, 2, 0xc0, 0xc3}, 5, QT_ARRAY, 0, 0, 0},
    {"array32 empty", {0xdd, 0, 0, 0, 0}, 5, QT_ARRAY, 0, 0, 0},
    {"fixmap", {0x81, 0xa1, 'a', 1}, 4, QT_MAP, 0, 0, 0},
    {"map16", {0xde, 0, 1, 1, 2}, 5, QT_MAP, 0, 0, 0},
    {"map32 empty", {0xdf, 0, 0, 0, 0}, 5, QT_MAP, 0, 0, 0},
};
#define NDCASES (sizeof DCASES / sizeof DCASES[0])

static void check_decoded(const dcase *c, const uint8_t *p, const qvalue *v)
{
    ck_assert_msg(v->type == c->type, "%s: type %s", c->what, qtype_name(v->type));
    switch (c->type) {
    case QT_BOOL: ck_assert_int_eq(v->v.b, c->i); break;
    case QT_INT: ck_assert_int_eq(v->v.i, c->i); break;
    case QT_UINT: ck_assert_uint_eq(v->v.u, c->u); break;
    case QT_FLOAT:
        ck_assert_msg(v->v.f == c->f && signbit(v->v.f) == signbit(c->f), "%s: %g", c->what, v->v.f);
        break;
    case QT_STR: case QT_BIN:
        ck_assert_uint_eq(v->v.s.n, c->u);
        ck_assert_ptr_eq(v->v.s.p + v->v.s.n, p + c->n); /* points into the input, at its end */
        break;
    case QT_ARRAY: case QT_MAP:
        ck_assert_ptr_eq(v->v.mp.p, p);
        ck_assert_uint_eq(v->v.mp.n, c->n);
        break;
    default: break;
    }
}

START_TEST(decode_every_type)
{
    const dcase *c = &DCASES[_i];
    qvalue v;
    const uint8_t *p = keep(c->b, c->n);
    ck_assert_msg(qvalue_decode(p, c->n, 4, &v) == c->n, "%s", c->what);
    check_decoded(c, p, &v);
    /* trailing bytes are not part of the object */
    uint8_t more[32];
    memcpy(more, c->b, c->n);
    more[c->n] = 0xc0;
    const uint8_t *q = keep(more, c->n + 1);
    ck_assert_uint_eq(qvalue_decode(q, c->n + 1, 4, &v), c->n);
    /* every strict prefix is refused */
    for (size_t k = 0; k < c->n; k++)
        ck_assert_msg(qvalue_decode(keep(c->b, k), k, 4, &v) == 0, "%s: prefix %zu", c->what, k);
}
END_TEST

START_TEST(decode_refuses_malformed_and_deep)
{
    qvalue v;
    static const uint8_t c1[] = {0xc1};
    ck_assert_uint_eq(qvalue_decode(keep(c1, 1), 1, 4, &v), 0);
    ck_assert_uint_eq(qvalue_decode(NULL, 0, 4, &v), 0);
    /* an array whose count the input cannot hold */
    static const uint8_t big[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0};
    ck_assert_uint_eq(qvalue_decode(keep(big, sizeof big), sizeof big, 4, &v), 0);
    /* an element that is malformed deep inside */
    static const uint8_t bad_inner[] = {0x92, 0x01, 0x91, 0xc1};
    ck_assert_uint_eq(qvalue_decode(keep(bad_inner, 4), 4, 8, &v), 0);
    /* depth: [[1]] needs 2, a scalar 0; a negative limit is 0 */
    static const uint8_t nested[] = {0x91, 0x91, 0x01};
    const uint8_t *p = keep(nested, 3);
    ck_assert_uint_eq(qvalue_decode(p, 3, 1, &v), 0);
    ck_assert_uint_eq(qvalue_decode(p, 3, 2, &v), 3);
    ck_assert_uint_eq(qvalue_decode(p, 3, 0, &v), 0);
    ck_assert_uint_eq(qvalue_decode(p + 2, 1, 0, &v), 1);
    ck_assert_uint_eq(qvalue_decode(p, 3, -1, &v), 0);
    static const uint8_t empty_arr[] = {0x90};
    ck_assert_uint_eq(qvalue_decode(keep(empty_arr, 1), 1, 0, &v), 0);
    ck_assert_uint_eq(qvalue_decode(keep(empty_arr, 1), 1, 1, &v), 1);
    /* 300 nested arrays: refused even with a huge limit, never a crash */
    uint8_t deep[301];
    memset(deep, 0x91, 300);
    deep[300] = 0x01;
    ck_assert_uint_eq(qvalue_decode(keep(deep, 301), 301, 100000, &v), 0);
}
END_TEST

/* ---- navigation ------------------------------------------------------------------ */

START_TEST(navigation_fields)
{
    qvalue o = J("{\"customer\": {\"city\": \"Oslo\", \"zip\": 150}, \"items\": [10, 20, 30],"
                 " \"first name\": \"Ada\", \"n\": null}");
    qvalue c = qvalue_field(&o, "customer", 8);
    ck_assert_int_eq(c.type, QT_MAP);
    qvalue city = qvalue_field(&c, "city", 4);
    ck_assert_int_eq(city.type, QT_STR);
    ck_assert_mem_eq(city.v.s.p, "Oslo", 4);
    ck_assert_int_eq(qvalue_field(&c, "zip", 3).v.i, 150);
    ck_assert_int_eq(qvalue_field(&o, "first name", 10).type, QT_STR);
    ck_assert_int_eq(qvalue_field(&o, "n", 1).type, QT_NULL);
    /* missing, prefix of a name, a field of a non-map: UNDEFINED */
    ck_assert_int_eq(qvalue_field(&o, "missing", 7).type, QT_UNDEFINED);
    ck_assert_int_eq(qvalue_field(&o, "custom", 6).type, QT_UNDEFINED);
    ck_assert_int_eq(qvalue_field(&city, "x", 1).type, QT_UNDEFINED);
    qvalue items = qvalue_field(&o, "items", 5);
    ck_assert_int_eq(qvalue_field(&items, "0", 1).type, QT_UNDEFINED);
    qvalue undef = qv_undefined(), null = qv_null();
    ck_assert_int_eq(qvalue_field(&undef, "a", 1).type, QT_UNDEFINED);
    ck_assert_int_eq(qvalue_field(&null, "a", 1).type, QT_UNDEFINED);
}
END_TEST

START_TEST(navigation_odd_keys)
{
    /* {[1,2]: "x", 1: "one", b"a": "bin", "a": 1, "a": 2} built by hand:
     * container and integer keys are stepped over, a bin key is not a
     * field name, the first of duplicate keys wins */
    static const uint8_t m[] = {0x85, 0x92, 0x01, 0x02, 0xa1, 'x', 0x01, 0xa3, 'o', 'n', 'e',
                                0xc4, 0x01, 'a', 0xa3, 'b', 'i', 'n', 0xa1, 'a', 0x01,
                                0xa1, 'a', 0x02};
    const uint8_t *p = keep(m, sizeof m);
    qvalue v, k;
    ck_assert_uint_eq(qvalue_decode(p, sizeof m, 4, &v), sizeof m);
    ck_assert_int_eq(qvalue_field(&v, "a", 1).v.i, 1);
    k = qv_int(1);
    ck_assert_mem_eq(qvalue_subscript(&v, &k).v.s.p, "one", 3);
    k = qv_float(1.0); /* numbers by value */
    ck_assert_mem_eq(qvalue_subscript(&v, &k).v.s.p, "one", 3);
    k = B("a");
    ck_assert_mem_eq(qvalue_subscript(&v, &k).v.s.p, "bin", 3);
    k = S("a");
    ck_assert_int_eq(qvalue_subscript(&v, &k).v.i, 1);
    k = J("[1, 2.0]");
    ck_assert_mem_eq(qvalue_subscript(&v, &k).v.s.p, "x", 1);
    k = qv_int(2);
    ck_assert_int_eq(qvalue_subscript(&v, &k).type, QT_UNDEFINED);
    k = qv_undefined();
    ck_assert_int_eq(qvalue_subscript(&v, &k).type, QT_UNDEFINED);
}
END_TEST

START_TEST(navigation_elements)
{
    qvalue a = J("[10, [20, 21], {\"x\": 30}, \"s\"]");
    ck_assert_int_eq(qvalue_element(&a, 0).v.i, 10);
    qvalue inner = qvalue_element(&a, 1);
    ck_assert_int_eq(inner.type, QT_ARRAY);
    ck_assert_int_eq(qvalue_element(&inner, -1).v.i, 21);
    qvalue m = qvalue_element(&a, 2);
    ck_assert_int_eq(qvalue_field(&m, "x", 1).v.i, 30);
    ck_assert_int_eq(qvalue_element(&a, 3).type, QT_STR);
    ck_assert_int_eq(qvalue_element(&a, -1).type, QT_STR);
    ck_assert_int_eq(qvalue_element(&a, -4).v.i, 10);
    ck_assert_int_eq(qvalue_element(&a, 4).type, QT_UNDEFINED);
    ck_assert_int_eq(qvalue_element(&a, -5).type, QT_UNDEFINED);
    ck_assert_int_eq(qvalue_element(&a, INT64_MAX).type, QT_UNDEFINED);
    ck_assert_int_eq(qvalue_element(&a, INT64_MIN).type, QT_UNDEFINED);
    ck_assert_int_eq(qvalue_element(&m, 0).type, QT_UNDEFINED);
    qvalue e = J("[]");
    ck_assert_int_eq(qvalue_element(&e, 0).type, QT_UNDEFINED);
    ck_assert_int_eq(qvalue_element(&e, -1).type, QT_UNDEFINED);
    /* subscripts of arrays: integers only */
    qvalue k = qv_int(-2);
    ck_assert_int_eq(qvalue_subscript(&a, &k).type, QT_MAP);
    k = qv_float(1.0);
    ck_assert_int_eq(qvalue_subscript(&a, &k).type, QT_UNDEFINED);
    k = U(1ULL << 63);
    ck_assert_int_eq(qvalue_subscript(&a, &k).type, QT_UNDEFINED);
    k = S("0");
    ck_assert_int_eq(qvalue_subscript(&a, &k).type, QT_UNDEFINED);
    qvalue s = S("abc");
    k = qv_int(0);
    ck_assert_int_eq(qvalue_subscript(&s, &k).type, QT_UNDEFINED);
}
END_TEST

/* ---- numbers ------------------------------------------------------------------------ */

typedef struct ncase {
    qvalue a, b;
    int cmp;
} ncase;

#define I(x) {.type = QT_INT, .v.i = (x)}
#define UU(x) {.type = QT_UINT, .v.u = (x)}
#define F(x) {.type = QT_FLOAT, .v.f = (x)}

static const ncase NCASES[] = {
    {I(1), F(1.0), 0},
    {I(0), F(-0.0), 0},
    {F(0.0), F(-0.0), 0},
    {I(1), F(1.5), -1},
    {I(-1), F(-1.5), 1},
    {I(2), F(1.9999999999999998), 1},
    /* 2^53 + 1 is not the double 2^53 (a conversion would say equal) */
    {I(9007199254740993LL), F(9007199254740992.0), 1},
    {I(9007199254740992LL), F(9007199254740992.0), 0},
    /* INT64_MAX vs 2^63 as a double (what (double)INT64_MAX rounds to) */
    {I(INT64_MAX), F(9223372036854775808.0), -1},
    {I(INT64_MIN), F(-9223372036854775808.0), 0},
    {I(INT64_MIN), F(-9223372036854777856.0), 1},
    {I(INT64_MIN + 1), F(-9223372036854775808.0), 1},
    {UU(1ULL << 63), F(9223372036854775808.0), 0},
    {UU((1ULL << 63) + 1), F(9223372036854775808.0), 1},
    {UU(UINT64_MAX), F(18446744073709551616.0), -1},
    {UU(UINT64_MAX), F(18446744073709549568.0), 1},
    {UU(1ULL << 63), F(-1.0), 1},
    {UU(1ULL << 63), I(INT64_MAX), 1},
    {UU(1ULL << 63), I(-1), 1},
    {UU(UINT64_MAX), UU(1ULL << 63), 1},
    {I(-1), I(1), -1},
    {I(INT64_MIN), F(-INFINITY), 1},
    {UU(UINT64_MAX), F(INFINITY), -1},
    {F(-INFINITY), F(INFINITY), -1},
    /* NaN: equal to NaN, above every other number */
    {F(NAN), F(NAN), 0},
    {F(NAN), F(-NAN), 0},
    {F(NAN), F(INFINITY), 1},
    {I(INT64_MAX), F(NAN), -1},
    {UU(UINT64_MAX), F(NAN), -1},
    {F(NAN), I(0), 1},
    {F(0.1), F(0.2), -1},
};
#define NNCASES (sizeof NCASES / sizeof NCASES[0])

START_TEST(numbers_compare_exactly)
{
    const ncase *c = &NCASES[_i];
    int cmp = 99, back = 99;
    ck_assert(qvalue_compare(&c->a, &c->b, &cmp));
    ck_assert(qvalue_compare(&c->b, &c->a, &back));
    ck_assert_msg(sgn(cmp) == c->cmp, "case %d: compare %d, expected %d", _i, cmp, c->cmp);
    ck_assert_int_eq(sgn(back), -c->cmp);
    ck_assert_int_eq(sgn(qvalue_order(&c->a, &c->b)), c->cmp);
    ck_assert_int_eq(qvalue_equal(&c->a, &c->b), c->cmp == 0);
    if (c->cmp == 0)
        ck_assert_msg(qvalue_hash(&c->a) == qvalue_hash(&c->b), "case %d: hashes differ", _i);
    ck_assert(qvalue_is_number(&c->a) && qvalue_is_number(&c->b));
}
END_TEST

START_TEST(decoded_numbers_hash_alike)
{
    /* the same value in every encoding: one hash, all equal */
    static const uint8_t enc[][9] = {
        {0x01}, {0xcc, 1}, {0xcd, 0, 1}, {0xd0, 1}, {0xd3, 0, 0, 0, 0, 0, 0, 0, 1},
        {0xca, 0x3f, 0x80, 0, 0}, {0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0},
    };
    static const size_t len[] = {1, 2, 3, 2, 9, 5, 9};
    qvalue first;
    ck_assert_uint_gt(qvalue_decode(keep(enc[0], len[0]), len[0], 1, &first), 0);
    for (size_t i = 1; i < sizeof len / sizeof len[0]; i++) {
        qvalue v;
        ck_assert_uint_eq(qvalue_decode(keep(enc[i], len[i]), len[i], 1, &v), len[i]);
        ck_assert_msg(qvalue_equal(&first, &v), "encoding %zu", i);
        ck_assert_msg(qvalue_hash(&first) == qvalue_hash(&v), "encoding %zu", i);
    }
    qvalue two = qv_int(2), nan2 = qv_float(-NAN);
    qvalue one = qv_int(1), nan1 = qv_float(NAN);
    ck_assert(qvalue_hash(&one) != qvalue_hash(&two));
    ck_assert(qvalue_hash(&nan1) == qvalue_hash(&nan2));
    /* 1.5 is no integer: still hashes alike in float32 and float64 */
    static const uint8_t f32b[] = {0xca, 0x3f, 0xc0, 0, 0};
    qvalue f32, f64 = qv_float(1.5);
    ck_assert_uint_eq(qvalue_decode(keep(f32b, 5), 5, 1, &f32), 5);
    ck_assert(qvalue_equal(&f32, &f64));
    ck_assert(qvalue_hash(&f32) == qvalue_hash(&f64));
}
END_TEST

/* ---- other types --------------------------------------------------------------------- */

START_TEST(compare_types)
{
    int cmp;
    qvalue a = S("a"), b = S("b"), ab = S("ab"), e = S(""), eacute = S("\xc3\xa9"), z = S("z");
    ck_assert(qvalue_compare(&a, &b, &cmp) && cmp < 0);
    ck_assert(qvalue_compare(&ab, &a, &cmp) && cmp > 0);
    ck_assert(qvalue_compare(&e, &a, &cmp) && cmp < 0);
    ck_assert(qvalue_compare(&eacute, &z, &cmp) && cmp > 0); /* code point order */
    ck_assert(qvalue_compare(&a, &a, &cmp) && cmp == 0);
    qvalue t = qv_bool(true), f = qv_bool(false);
    ck_assert(qvalue_compare(&f, &t, &cmp) && cmp < 0);
    qvalue b1 = B("\x01"), b2 = B("\x02\x00");
    ck_assert(qvalue_compare(&b1, &b2, &cmp) && cmp < 0);
    /* different types: not comparable */
    qvalue ten_s = S("10"), ten = qv_int(10), n = qv_null(), u = qv_undefined(), one = qv_int(1);
    ck_assert(!qvalue_compare(&ten_s, &ten, &cmp));
    ck_assert(!qvalue_compare(&t, &one, &cmp));
    ck_assert(!qvalue_compare(&a, &b1, &cmp));
    ck_assert(!qvalue_compare(&n, &n, &cmp));
    ck_assert(!qvalue_compare(&u, &u, &cmp));
    ck_assert(!qvalue_compare(&n, &one, &cmp));
    qvalue arr = J("[1]"), map = J("{\"a\": 1}");
    ck_assert(!qvalue_compare(&arr, &map, &cmp));
    ck_assert(!qvalue_compare(&arr, &one, &cmp));
    /* but NULL = NULL and UNDEFINED = UNDEFINED for qvalue_equal */
    ck_assert(qvalue_equal(&n, &n));
    ck_assert(qvalue_equal(&u, &u));
    ck_assert(!qvalue_equal(&n, &u));
    ck_assert(!qvalue_equal(&a, &b1)); /* "a" and b"a"... */
    qvalue ba = B("a");
    ck_assert(!qvalue_equal(&a, &ba)); /* ...even with the same bytes */
}
END_TEST

START_TEST(containers_equal_with_numbers_normalized)
{
    int cmp;
    qvalue a = J("[1, 2, {\"k\": [3]}]"), b = J("[1.0, 2, {\"k\": [3.0]}]");
    ck_assert(qvalue_compare(&a, &b, &cmp) && cmp == 0);
    ck_assert(qvalue_equal(&a, &b));
    ck_assert(qvalue_hash(&a) == qvalue_hash(&b));
    qvalue c = J("[1, 2, {\"k\": [4]}]");
    ck_assert(qvalue_compare(&a, &c, &cmp) && cmp != 0);
    ck_assert(!qvalue_equal(&a, &c));
    /* maps by their encoding: the order of the pairs counts */
    qvalue m1 = J("{\"a\": 1, \"b\": 2}"), m2 = J("{\"b\": 2, \"a\": 1}"), m3 = J("{\"a\": 1.0, \"b\": 2}");
    ck_assert(!qvalue_equal(&m1, &m2));
    ck_assert(qvalue_equal(&m1, &m3));
    ck_assert(qvalue_hash(&m1) == qvalue_hash(&m3));
    /* the same elements nested differently are different */
    qvalue n1 = J("[[1], 2]"), n2 = J("[[1, 2]]"), n3 = J("[1, [2]]");
    ck_assert(!qvalue_equal(&n1, &n2));
    ck_assert(!qvalue_equal(&n1, &n3));
    /* different encodings of one array (fixarray, array16) are equal */
    static const uint8_t fix[] = {0x92, 0x01, 0xa1, 'x'};
    static const uint8_t a16[] = {0xdc, 0x00, 0x02, 0xd0, 0x01, 0xd9, 0x01, 'x'};
    qvalue f, g;
    ck_assert_uint_eq(qvalue_decode(keep(fix, sizeof fix), sizeof fix, 2, &f), sizeof fix);
    ck_assert_uint_eq(qvalue_decode(keep(a16, sizeof a16), sizeof a16, 2, &g), sizeof a16);
    ck_assert(qvalue_equal(&f, &g));
    ck_assert(qvalue_hash(&f) == qvalue_hash(&g));
    /* an ext element is its payload, as at the top level */
    static const uint8_t ext[] = {0x91, 0xd4, 0x07, 'q'};
    static const uint8_t bin[] = {0x91, 0xc4, 0x01, 'q'};
    ck_assert_uint_gt(qvalue_decode(keep(ext, 4), 4, 2, &f), 0);
    ck_assert_uint_gt(qvalue_decode(keep(bin, 4), 4, 2, &g), 0);
    ck_assert(qvalue_equal(&f, &g));
}
END_TEST

/* Values in ascending total order; neighbours marked equal are equal. */
START_TEST(total_order)
{
    struct { qvalue v; bool eq_prev; } o[] = {
        {qv_undefined(), false}, {qv_null(), false},
        {qv_bool(false), false}, {qv_bool(true), false},
        {qv_float(-INFINITY), false}, {qv_int(INT64_MIN), false}, {qv_float(-1.5), false},
        {qv_int(-1), false}, {qv_float(-0.0), false}, {qv_int(0), true}, {qv_float(0.5), false},
        {qv_int(1), false}, {qv_float(1.0), true}, {qv_int(INT64_MAX), false},
        {U(1ULL << 63), false}, {qv_float(9223372036854775808.0), true}, {U(UINT64_MAX), false},
        {qv_float(INFINITY), false}, {qv_float(NAN), false},
        {S(""), false}, {S("A"), false}, {S("a"), false}, {S("ab"), false}, {S("b"), false},
        {S("\xc3\xa9"), false},
        {B(""), false}, {B("a"), false},
        {J("[]"), false}, {J("[null]"), false}, {J("[1]"), false}, {J("[1.0]"), true},
        {J("[2]"), false}, {J("[\"a\"]"), false}, {J("[[]]"), false}, {J("[1, 2]"), false},
        {J("{}"), false}, {J("{\"a\": 1}"), false}, {J("{\"b\": 0}"), false},
    };
    int n = (int)(sizeof o / sizeof o[0]);
    int rank[64];
    for (int i = 0, r = 0; i < n; i++)
        rank[i] = o[i].eq_prev ? r : ++r;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int c = qvalue_order(&o[i].v, &o[j].v);
            ck_assert_msg(sgn(c) == sgn(rank[i] - rank[j]), "order(%d, %d) = %d", i, j, c);
            ck_assert_int_eq(qvalue_equal(&o[i].v, &o[j].v), rank[i] == rank[j]);
            if (rank[i] == rank[j])
                ck_assert(qvalue_hash(&o[i].v) == qvalue_hash(&o[j].v));
        }
}
END_TEST

START_TEST(hashes_spread)
{
    /* 2000 distinct values of several types: no two alike (a weak hash
     * would be a slow DISTINCT, not a wrong one, but collisions here mean
     * something is not hashed at all) */
    static uint64_t h[2000];
    char s[16][8];
    int n = 0;
    for (int i = 0; i < 1000; i++) {
        qvalue v = qv_int(i - 500);
        h[n++] = qvalue_hash(&v);
    }
    for (int i = 0; i < 984; i++) {
        qvalue v = qv_float(i + 0.25);
        h[n++] = qvalue_hash(&v);
    }
    for (int i = 0; i < 16; i++) {
        snprintf(s[i], sizeof s[i], "k%d", i);
        qvalue v = S(s[i]);
        h[n++] = qvalue_hash(&v);
    }
    /* (a plain if: each ck_assert records a checkpoint, too slow here) */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (h[i] == h[j])
                ck_abort_msg("%d and %d collide", i, j);
}
END_TEST

/* ---- LIKE ------------------------------------------------------------------------------ */

typedef struct lcase {
    const char *s, *pat;
    bool match;
} lcase;

static const lcase LCASES[] = {
    {"abc", "abc", true}, {"abc", "ab", false}, {"ab", "abc", false}, {"abc", "ABC", false},
    {"abc", "a%", true}, {"abc", "%c", true}, {"abc", "%b%", true}, {"abc", "%d%", false},
    {"abc", "a_c", true}, {"abc", "a__c", false}, {"abc", "___", true}, {"abc", "____", false},
    {"", "", true}, {"", "%", true}, {"", "%%", true}, {"", "_", false}, {"a", "", false},
    {"abc", "%%%", true}, {"abc", "a%%c", true}, {"abc", "%_%", true}, {"abc", "_%_%_", true},
    {"abc", "_%_%_%_", false},
    {"order-0042", "order-00%", true}, {"order-1042", "order-00%", false},
    /* backtracking: the last % has to take more */
    {"aaab", "%ab", true}, {"abcabd", "%abd", true}, {"mississippi", "m%iss%pi", true},
    {"mississippi", "m%iss%ppx", false}, {"ab", "%a%b%", true}, {"ba", "%a%b%", false},
    {"xaxbxc", "%a%b%c", true}, {"xaxbx", "%a%b%c", false},
    /* _ is one UTF-8 character */
    {"\xc3\xa9", "_", true}, {"\xc3\xa9", "__", false}, {"a\xc3\xa9" "b", "a_b", true},
    {"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "___", true},
    {"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "_\xe6\x9c\xac_", true},
    {"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "__", false},
    {"\xf0\x9f\x98\x80x", "_x", true}, {"\xf0\x9f\x98\x80x", "__x", false},
    {"x\xc3\xa9", "%_", true}, {"x\xc3\xa9", "%__", true}, {"x\xc3\xa9", "%___", false},
    {"\xc3\xa9", "%\xa9", false}, /* a % takes whole characters, not half of one */
    /* bytes that are not UTF-8 are one character each */
    {"\xff", "_", true}, {"\xc3", "_", true}, {"\xc3\x28", "__", true}, {"\xc3\x28", "_", false},
    {"\xe6\x97", "__", true},
    /* escapes */
    {"50%", "50\\%", true}, {"50x", "50\\%", false}, {"a_b", "a\\_b", true},
    {"axb", "a\\_b", false}, {"a\\b", "a\\\\b", true}, {"ab", "a\\\\b", false},
    {"%", "\\%", true}, {"a", "\\a", true}, {"\xc3\xa9", "\\\xc3\xa9", true},
    {"x%y", "%\\%%", true}, {"xy", "%\\%%", false},
    /* a backslash that ends the pattern is a literal backslash */
    {"a\\", "a\\", true}, {"a", "a\\", false},
};
#define NLCASES (sizeof LCASES / sizeof LCASES[0])

START_TEST(like_cases)
{
    const lcase *c = &LCASES[_i];
    size_t n = strlen(c->s), pn = strlen(c->pat);
    const uint8_t *s = keep(c->s, n), *p = keep(c->pat, pn);
    ck_assert_msg(qvalue_like(s, n, p, pn) == c->match, "'%s' LIKE '%s' should be %d", c->s, c->pat,
                  c->match);
}
END_TEST

/* A reference matcher: dynamic programming over characters (the same
 * tokenization), O(n * m) memory; slow but obviously right. */
static size_t ref_clen(const uint8_t *p, size_t n)
{
    size_t len = p[0] < 0x80 ? 1 : (p[0] >= 0xc2 && p[0] <= 0xdf) ? 2
               : (p[0] >= 0xe0 && p[0] <= 0xef) ? 3 : (p[0] >= 0xf0 && p[0] <= 0xf4) ? 4 : 1;
    if (len > n)
        return 1;
    for (size_t k = 1; k < len; k++)
        if ((p[k] & 0xc0) != 0x80)
            return 1;
    return len;
}

static bool ref_like(const uint8_t *s, size_t n, const uint8_t *pat, size_t pn)
{
    /* split both into tokens first */
    size_t soff[64], slen[64], ns = 0;
    for (size_t i = 0; i < n; i += slen[ns++]) {
        soff[ns] = i;
        slen[ns] = ref_clen(s + i, n - i);
    }
    int kind[64]; /* 0 literal, 1 %, 2 _ */
    size_t poff[64], plen[64], np = 0;
    for (size_t i = 0; i < pn; np++) {
        if (pat[i] == '%' || pat[i] == '_') {
            kind[np] = pat[i] == '%' ? 1 : 2;
            i++;
            continue;
        }
        if (pat[i] == '\\' && i + 1 < pn)
            i++;
        kind[np] = 0;
        poff[np] = i;
        plen[np] = pat[i] == '\\' && i + 1 == pn ? 1 : ref_clen(pat + i, pn - i);
        i += plen[np];
    }
    static bool dp[65][65]; /* dp[i][j]: s tokens from i match pattern tokens from j */
    for (size_t i = ns + 1; i-- > 0;)
        for (size_t j = np + 1; j-- > 0;) {
            if (j == np)
                dp[i][j] = i == ns;
            else if (kind[j] == 1)
                dp[i][j] = dp[i][j + 1] || (i < ns && dp[i + 1][j]);
            else if (i == ns)
                dp[i][j] = false;
            else if (kind[j] == 2)
                dp[i][j] = dp[i + 1][j + 1];
            else
                dp[i][j] = plen[j] == slen[i] && memcmp(pat + poff[j], s + soff[i], slen[i]) == 0 &&
                           dp[i + 1][j + 1];
        }
    return dp[0][0];
}

START_TEST(like_matches_reference)
{
    /* random subjects and patterns over a small alphabet with multi-byte
     * and invalid characters, against the DP reference */
    static const char *const salpha[] = {"a", "b", "\xc3\xa9", "\xe6\x97\xa5", "%", "_", "\\", "\xff"};
    static const char *const palpha[] = {"a", "b", "\xc3\xa9", "%", "%", "_", "\\", "\\%", "\\_"};
    srand(12345);
    for (int round = 0; round < 20000; round++) {
        char s[64] = "", p[64] = "";
        int ls = rand() % 8, lp = rand() % 7;
        for (int k = 0; k < ls; k++)
            strcat(s, salpha[rand() % 8]);
        for (int k = 0; k < lp; k++)
            strcat(p, palpha[rand() % 9]);
        size_t n = strlen(s), pn = strlen(p);
        bool got = qvalue_like((const uint8_t *)s, n, (const uint8_t *)p, pn);
        bool want = ref_like((const uint8_t *)s, n, (const uint8_t *)p, pn);
        ck_assert_msg(got == want, "'%s' LIKE '%s': %d, reference %d", s, p, got, want);
    }
}
END_TEST

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool like_c(const char *s, size_t n, const char *p)
{
    return qvalue_like((const uint8_t *)s, n, (const uint8_t *)p, strlen(p));
}

START_TEST(like_pathological_patterns_are_fast)
{
    size_t n = 1 << 20;
    char *s = malloc(n);
    memset(s, 'a', n);
    double t0 = now_s();
    /* a backtracking matcher without bounds takes exponential time here */
    ck_assert(!like_c(s, n, "%a%a%a%a%b"));
    ck_assert(!like_c(s, 40, "%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%b"));
    ck_assert(!like_c(s, n, "%_%_%_%_%_%_%_%_b"));
    ck_assert(like_c(s, n, "%a%a%a%a%a"));
    ck_assert(like_c(s, n, "a%a%a%a%a"));
    s[n - 1] = 'b';
    ck_assert(like_c(s, n, "%a%a%a%a%b"));
    ck_assert(like_c(s, n, "%_b"));
    /* the O(n * m) worst case stays moderate: 64 KiB x 300 characters */
    char pat[302];
    pat[0] = '%';
    memset(pat + 1, 'a', 299);
    pat[300] = 'c';
    pat[301] = 0;
    ck_assert(!like_c(s, 65536, pat));
    double t = now_s() - t0;
    ck_assert_msg(t < 5.0 * tu_timeout_scale(), "pathological LIKE took %.2f s", t);
    free(s);
}
END_TEST

/* ---- output ------------------------------------------------------------------------------ */

/* v packed, then decoded again. */
static qvalue repack(const qvalue *v, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    ck_assert_int_eq(qvalue_pack(v, &pk), 0);
    qvalue out;
    const uint8_t *p = keep(sb->data, sb->size);
    ck_assert_uint_eq(qvalue_decode(p, sb->size, 64, &out), sb->size);
    msgpack_sbuffer_destroy(sb);
    return out;
}

START_TEST(pack_round_trips)
{
    qvalue vs[] = {qv_null(), qv_bool(true), qv_bool(false), qv_int(0), qv_int(-1),
                   qv_int(INT64_MIN), qv_int(INT64_MAX), U(UINT64_MAX), qv_float(0.1),
                   qv_float(-0.0), qv_float(INFINITY), J("1.5"), S(""), S("h\xc3\xa9llo"),
                   B(""), B("\x01\x02"), J("[1, [2.5, \"x\"], {\"a\": null}]"), J("{}"),
                   J("{\"k\": [true]}")};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        msgpack_sbuffer sb;
        qvalue back = repack(&vs[i], &sb);
        ck_assert_msg(back.type == vs[i].type, "value %zu: %s", i, qtype_name(back.type));
        ck_assert_msg(qvalue_equal(&back, &vs[i]), "value %zu", i);
    }
    /* arrays and maps are copied byte for byte */
    qvalue a = J("[1, 2, 3]");
    msgpack_sbuffer sb;
    qvalue back = repack(&a, &sb);
    ck_assert_uint_eq(back.v.mp.n, a.v.mp.n);
    ck_assert_mem_eq(back.v.mp.p, a.v.mp.p, a.v.mp.n);
    /* UNDEFINED packs as nil; NaN stays NaN */
    qvalue u = qv_undefined();
    ck_assert_int_eq(repack(&u, &sb).type, QT_NULL);
    qvalue nan = qv_float(NAN);
    ck_assert(isnan(repack(&nan, &sb).v.f));
}
END_TEST

START_TEST(type_names)
{
    ck_assert_str_eq(qtype_name(QT_UNDEFINED), "undefined");
    ck_assert_str_eq(qtype_name(QT_NULL), "null");
    ck_assert_str_eq(qtype_name(QT_BOOL), "boolean");
    ck_assert_str_eq(qtype_name(QT_INT), "integer");
    ck_assert_str_eq(qtype_name(QT_UINT), "integer");
    ck_assert_str_eq(qtype_name(QT_FLOAT), "float");
    ck_assert_str_eq(qtype_name(QT_STR), "string");
    ck_assert_str_eq(qtype_name(QT_BIN), "binary");
    ck_assert_str_eq(qtype_name(QT_ARRAY), "array");
    ck_assert_str_eq(qtype_name(QT_MAP), "map");
    qvalue i = qv_int(1), f = qv_float(1), s = S("1"), n = qv_null();
    ck_assert(qvalue_is_number(&i) && qvalue_is_number(&f));
    ck_assert(!qvalue_is_number(&s) && !qvalue_is_number(&n));
}
END_TEST

static Suite *qvalue_suite(void)
{
    Suite *s = suite_create("qvalue");
    TCase *tc = tu_tcase(s, "decode", 30);
    tcase_add_checked_fixture(tc, NULL, free_blocks);
    tcase_add_loop_test(tc, decode_every_type, 0, (int)NDCASES);
    tcase_add_test(tc, decode_refuses_malformed_and_deep);
    tc = tu_tcase(s, "navigation", 30);
    tcase_add_checked_fixture(tc, NULL, free_blocks);
    tcase_add_test(tc, navigation_fields);
    tcase_add_test(tc, navigation_odd_keys);
    tcase_add_test(tc, navigation_elements);
    tc = tu_tcase(s, "compare", 30);
    tcase_add_checked_fixture(tc, NULL, free_blocks);
    tcase_add_loop_test(tc, numbers_compare_exactly, 0, (int)NNCASES);
    tcase_add_test(tc, decoded_numbers_hash_alike);
    tcase_add_test(tc, compare_types);
    tcase_add_test(tc, containers_equal_with_numbers_normalized);
    tcase_add_test(tc, total_order);
    tcase_add_test(tc, hashes_spread);
    tc = tu_tcase(s, "like", 60);
    tcase_add_checked_fixture(tc, NULL, free_blocks);
    tcase_add_loop_test(tc, like_cases, 0, (int)NLCASES);
    tcase_add_test(tc, like_matches_reference);
    tcase_add_test(tc, like_pathological_patterns_are_fast);
    tc = tu_tcase(s, "output", 30);
    tcase_add_checked_fixture(tc, NULL, free_blocks);
    tcase_add_test(tc, pack_round_trips);
    tcase_add_test(tc, type_names);
    return s;
}

int main(void)
{
    Suite *s = qvalue_suite();
    return tu_run(&s, 1);
}
