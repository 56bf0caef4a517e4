/* qvalue.h - the values the query engine computes with (docs/query.md,
 * "Types"), and the rules that compare and order them.
 *
 * A qvalue never owns memory: strings, binaries, arrays and maps point
 * into MessagePack bytes that outlive it (an entry's value while its
 * bucket is read, or the query's own text and parameters). Numbers are
 * held by value.
 *
 * Typing follows MessagePack: integers (QT_INT, and QT_UINT for the
 * positive ones above INT64_MAX) and floats compare numerically with each
 * other; strings compare bytewise (UTF-8 order); a missing field is
 * QT_UNDEFINED, distinct from QT_NULL (MessagePack nil). */
#ifndef AGATE_REGION_QVALUE_H
#define AGATE_REGION_QVALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* In the total order of qvalue_order: UNDEFINED first, then NULL,
 * booleans, numbers, strings, binaries, arrays, maps. */
typedef enum qtype {
    QT_UNDEFINED = 0, /* a missing field, an index out of range, ... */
    QT_NULL,          /* MessagePack nil, or the literal NULL */
    QT_BOOL,
    QT_INT,   /* int64 */
    QT_UINT,  /* uint64 above INT64_MAX only */
    QT_FLOAT, /* double (MessagePack float 32 is widened) */
    QT_STR,
    QT_BIN,
    QT_ARRAY, /* mp: the whole encoded array */
    QT_MAP,   /* mp: the whole encoded map */
} qtype;

typedef struct qvalue {
    qtype type;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double f;
        struct {
            const uint8_t *p;
            uint32_t n;
        } s;  /* QT_STR, QT_BIN: the bytes */
        struct {
            const uint8_t *p;
            size_t n;
        } mp; /* QT_ARRAY, QT_MAP: the encoded object */
    } v;
} qvalue;

static inline qvalue qv_undefined(void) { return (qvalue){.type = QT_UNDEFINED}; }
static inline qvalue qv_null(void) { return (qvalue){.type = QT_NULL}; }
static inline qvalue qv_bool(bool b) { return (qvalue){.type = QT_BOOL, .v.b = b}; }
static inline qvalue qv_int(int64_t i) { return (qvalue){.type = QT_INT, .v.i = i}; }
static inline qvalue qv_float(double f) { return (qvalue){.type = QT_FLOAT, .v.f = f}; }
static inline qvalue qv_str(const void *p, uint32_t n)
{
    return (qvalue){.type = QT_STR, .v.s = {(const uint8_t *)p, n}};
}

/* Decodes the one MessagePack object at p (n bytes available) into *out
 * (arrays and maps by reference). Returns the object's encoded length, or
 * 0 when the bytes are not one well-formed object (or nest deeper than
 * depth). Extension types decode as QT_BIN of their payload. */
size_t qvalue_decode(const uint8_t *p, size_t n, int depth, qvalue *out);

/* Navigation; each gives QT_UNDEFINED when the step does not apply (not a
 * map, no such key, not an array, index out of range). */
/* The value of map m under the string key name. */
qvalue qvalue_field(const qvalue *m, const char *name, size_t len);
/* The element i (0-based; negative counts from the end) of array a. */
qvalue qvalue_element(const qvalue *a, int64_t i);
/* m[k] for a map (k compared with qvalue_equal to the map's keys) or, for
 * an integer k, a[k] for an array. */
qvalue qvalue_subscript(const qvalue *base, const qvalue *k);

/* Numeric view: true for QT_INT, QT_UINT, QT_FLOAT. */
bool qvalue_is_number(const qvalue *v);

/* Comparison for the = < ... operators: sets *cmp to <0, 0, >0 and returns
 * true when a and b are comparable (both numbers, both strings, both
 * binaries, both booleans, or both arrays/maps for equality only); false
 * on a type mismatch. NULL and UNDEFINED operands are the caller's
 * business (three-valued logic, see qeval.h). */
bool qvalue_compare(const qvalue *a, const qvalue *b, int *cmp);
/* Equality as used by IN, DISTINCT and GROUP BY: numbers by value (1 ==
 * 1.0), everything else by type and bytes; NULL equals NULL and UNDEFINED
 * equals UNDEFINED here. */
bool qvalue_equal(const qvalue *a, const qvalue *b);
/* A total order over every value (ORDER BY, MIN, MAX): by the qtype rank
 * above (numbers together), then within the type. Returns <0, 0, >0. */
int qvalue_order(const qvalue *a, const qvalue *b);
/* A hash consistent with qvalue_equal (1 and 1.0 hash alike). */
uint64_t qvalue_hash(const qvalue *v);

/* LIKE: % matches any run of characters (also empty), _ exactly one UTF-8
 * character, a backslash makes the next pattern character literal. Both
 * anywhere in the pattern. */
bool qvalue_like(const uint8_t *s, size_t n, const uint8_t *pat, size_t patn);

/* Appends v as MessagePack to pk (a msgpack_packer *); arrays and maps are
 * copied as they are. 0 or the packer's error. UNDEFINED packs as nil. */
int qvalue_pack(const qvalue *v, void *pk);

/* The name of a type, for messages and docs ("undefined", "null", ...). */
const char *qtype_name(qtype t);

#endif
