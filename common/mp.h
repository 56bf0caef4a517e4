/* mp.h - a bounded, zero-copy MessagePack reader.
 *
 * Why not msgpack-c's unpacker here: it allocates an object array for a
 * container as soon as it reads the container's header, before it knows the
 * input holds that many elements, and it allocates a zone per message. The
 * wire decoder must enforce limits before any allocation and must be cheap on
 * the hot path, so it walks the bytes in place. Writing uses msgpack-c's
 * packer (see mpw.h).
 *
 * A cursor reads [p, end). Every function either advances the cursor past
 * what it read and returns 0, or leaves it unspecified and returns a negative
 * MP_E* code. Strings and binaries are returned as pointers into the input;
 * they stay valid as long as the input does. */
#ifndef AGATE_COMMON_MP_H
#define AGATE_COMMON_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    MP_ETRUNC = -1,   /* input ends inside an object */
    MP_EINVALID = -2, /* reserved byte 0xc1 */
    MP_EDEPTH = -3,   /* containers nested deeper than allowed */
    MP_ETYPE = -4,    /* object is not of the requested type */
    MP_ERANGE = -5,   /* number does not fit the requested type */
};

/* Deepest nesting mp_skip can check; callers pass a smaller limit. */
#define MP_MAX_DEPTH_LIMIT 256

typedef enum mp_type {
    MP_NIL, MP_BOOL, MP_UINT, MP_INT, MP_FLOAT, MP_DOUBLE,
    MP_STR, MP_BIN, MP_ARRAY, MP_MAP, MP_EXT,
} mp_type;

typedef struct mp_cursor {
    const uint8_t *p;
    const uint8_t *end;
} mp_cursor;

/* One object header. For containers only the element count is read. */
typedef struct mp_item {
    mp_type type;
    union {
        bool b;
        uint64_t u;   /* MP_UINT: non-negative integers */
        int64_t i;    /* MP_INT: negative integers */
        double d;     /* MP_FLOAT, MP_DOUBLE */
        uint32_t n;   /* MP_ARRAY: elements, MP_MAP: pairs */
        struct {
            const uint8_t *ptr;
            uint32_t len;
            int8_t ext_type; /* MP_EXT only */
        } s;          /* MP_STR, MP_BIN, MP_EXT */
    } v;
} mp_item;

static inline void mp_cursor_init(mp_cursor *c, const void *p, size_t n)
{
    c->p = (const uint8_t *)p;
    c->end = c->p + n;
}
static inline size_t mp_left(const mp_cursor *c) { return (size_t)(c->end - c->p); }

/* Reads one header. Containers: rejects counts that the remaining input
 * cannot possibly hold (each element needs at least one byte). */
int mp_next(mp_cursor *c, mp_item *out);
/* Skips one whole object, checking it is well formed and nested no deeper
 * than max_depth (1 = scalars and flat containers of scalars). */
int mp_skip(mp_cursor *c, int max_depth);
/* 0 if [p, p+n) is exactly one well-formed object within max_depth. */
int mp_check_one(const void *p, size_t n, int max_depth);

/* Typed readers; MP_ETYPE if the next object has another type. */
int mp_read_nil(mp_cursor *c);
int mp_read_bool(mp_cursor *c, bool *out);
int mp_read_uint(mp_cursor *c, uint64_t *out);   /* any integer >= 0 */
int mp_read_int(mp_cursor *c, int64_t *out);     /* any integer in int64 */
int mp_read_double(mp_cursor *c, double *out);   /* float, double or integer */
int mp_read_str(mp_cursor *c, const uint8_t **p, uint32_t *len);
int mp_read_bytes(mp_cursor *c, const uint8_t **p, uint32_t *len, bool *is_str); /* str or bin */
int mp_read_array(mp_cursor *c, uint32_t *n);
int mp_read_map(mp_cursor *c, uint32_t *n);
/* Peeks at the next object's type without consuming it. */
int mp_peek_type(const mp_cursor *c, mp_type *out);

/* Short English description of an MP_E* code. */
const char *mp_strerror(int err);

#endif
