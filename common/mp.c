#include "common/mp.h"

#include <string.h>

static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t ld64(const uint8_t *p) { return (uint64_t)ld32(p) << 32 | ld32(p + 4); }

/* Reads a big-endian length of w bytes (1, 2 or 4). */
static int take_len(mp_cursor *c, int w, uint32_t *len)
{
    if (mp_left(c) < (size_t)w)
        return MP_ETRUNC;
    *len = w == 1 ? c->p[0] : w == 2 ? ld16(c->p) : ld32(c->p);
    c->p += w;
    return 0;
}

/* Payload of w length bytes then len bytes (str, bin). */
static int take_blob(mp_cursor *c, mp_type t, int w, mp_item *out)
{
    uint32_t len;
    if (take_len(c, w, &len))
        return MP_ETRUNC;
    if (mp_left(c) < len)
        return MP_ETRUNC;
    out->type = t;
    out->v.s.ptr = c->p;
    out->v.s.len = len;
    out->v.s.ext_type = 0;
    c->p += len;
    return 0;
}

static int take_container(mp_cursor *c, mp_type t, int w, mp_item *out)
{
    uint32_t n;
    if (take_len(c, w, &n))
        return MP_ETRUNC;
    /* every element takes at least one byte: a map pair at least two */
    uint64_t min_bytes = t == MP_MAP ? (uint64_t)n * 2 : n;
    if (min_bytes > mp_left(c))
        return MP_ETRUNC;
    out->type = t;
    out->v.n = n;
    return 0;
}

static int take_ext(mp_cursor *c, int w, uint32_t fixlen, mp_item *out)
{
    uint32_t len = fixlen;
    if (w && take_len(c, w, &len))
        return MP_ETRUNC;
    if (mp_left(c) < (size_t)len + 1)
        return MP_ETRUNC;
    out->type = MP_EXT;
    out->v.s.ext_type = (int8_t)c->p[0];
    out->v.s.ptr = c->p + 1;
    out->v.s.len = len;
    c->p += 1 + len;
    return 0;
}

static int take_fixed(mp_cursor *c, size_t n)
{
    return mp_left(c) < n ? MP_ETRUNC : 0;
}

int mp_next(mp_cursor *c, mp_item *out)
{
    if (c->p >= c->end)
        return MP_ETRUNC;
    uint8_t b = *c->p++;
    if (b <= 0x7f) { out->type = MP_UINT; out->v.u = b; return 0; }
    if (b >= 0xe0) { out->type = MP_INT; out->v.i = (int8_t)b; return 0; }
    if ((b & 0xf0) == 0x80) { out->type = MP_MAP; out->v.n = b & 0x0f;
        return (uint64_t)out->v.n * 2 > mp_left(c) ? MP_ETRUNC : 0; }
    if ((b & 0xf0) == 0x90) { out->type = MP_ARRAY; out->v.n = b & 0x0f;
        return out->v.n > mp_left(c) ? MP_ETRUNC : 0; }
    if ((b & 0xe0) == 0xa0) {
        uint32_t len = b & 0x1f;
        if (mp_left(c) < len) return MP_ETRUNC;
        out->type = MP_STR; out->v.s.ptr = c->p; out->v.s.len = len; out->v.s.ext_type = 0;
        c->p += len;
        return 0;
    }
    switch (b) {
    case 0xc0: out->type = MP_NIL; return 0;
    case 0xc2: case 0xc3: out->type = MP_BOOL; out->v.b = b == 0xc3; return 0;
    case 0xc4: return take_blob(c, MP_BIN, 1, out);
    case 0xc5: return take_blob(c, MP_BIN, 2, out);
    case 0xc6: return take_blob(c, MP_BIN, 4, out);
    case 0xc7: return take_ext(c, 1, 0, out);
    case 0xc8: return take_ext(c, 2, 0, out);
    case 0xc9: return take_ext(c, 4, 0, out);
    case 0xca: {
        if (take_fixed(c, 4)) return MP_ETRUNC;
        uint32_t u = ld32(c->p); float f; memcpy(&f, &u, 4);
        out->type = MP_FLOAT; out->v.d = f; c->p += 4; return 0;
    }
    case 0xcb: {
        if (take_fixed(c, 8)) return MP_ETRUNC;
        uint64_t u = ld64(c->p); double d; memcpy(&d, &u, 8);
        out->type = MP_DOUBLE; out->v.d = d; c->p += 8; return 0;
    }
    case 0xcc: if (take_fixed(c, 1)) return MP_ETRUNC;
        out->type = MP_UINT; out->v.u = c->p[0]; c->p += 1; return 0;
    case 0xcd: if (take_fixed(c, 2)) return MP_ETRUNC;
        out->type = MP_UINT; out->v.u = ld16(c->p); c->p += 2; return 0;
    case 0xce: if (take_fixed(c, 4)) return MP_ETRUNC;
        out->type = MP_UINT; out->v.u = ld32(c->p); c->p += 4; return 0;
    case 0xcf: if (take_fixed(c, 8)) return MP_ETRUNC;
        out->type = MP_UINT; out->v.u = ld64(c->p); c->p += 8; return 0;
    case 0xd0: if (take_fixed(c, 1)) return MP_ETRUNC;
        out->v.i = (int8_t)c->p[0]; c->p += 1; break;
    case 0xd1: if (take_fixed(c, 2)) return MP_ETRUNC;
        out->v.i = (int16_t)ld16(c->p); c->p += 2; break;
    case 0xd2: if (take_fixed(c, 4)) return MP_ETRUNC;
        out->v.i = (int32_t)ld32(c->p); c->p += 4; break;
    case 0xd3: if (take_fixed(c, 8)) return MP_ETRUNC;
        out->v.i = (int64_t)ld64(c->p); c->p += 8; break;
    case 0xd4: return take_ext(c, 0, 1, out);
    case 0xd5: return take_ext(c, 0, 2, out);
    case 0xd6: return take_ext(c, 0, 4, out);
    case 0xd7: return take_ext(c, 0, 8, out);
    case 0xd8: return take_ext(c, 0, 16, out);
    case 0xd9: return take_blob(c, MP_STR, 1, out);
    case 0xda: return take_blob(c, MP_STR, 2, out);
    case 0xdb: return take_blob(c, MP_STR, 4, out);
    case 0xdc: return take_container(c, MP_ARRAY, 2, out);
    case 0xdd: return take_container(c, MP_ARRAY, 4, out);
    case 0xde: return take_container(c, MP_MAP, 2, out);
    case 0xdf: return take_container(c, MP_MAP, 4, out);
    default: return MP_EINVALID; /* 0xc1 */
    }
    /* signed encodings: normalise non-negative values to MP_UINT */
    if (out->v.i >= 0) { out->type = MP_UINT; out->v.u = (uint64_t)out->v.i; }
    else out->type = MP_INT;
    return 0;
}

int mp_skip(mp_cursor *c, int max_depth)
{
    /* pending[d] = objects still to read at depth d (the top is depth 0) */
    uint64_t pending[MP_MAX_DEPTH_LIMIT + 1];
    if (max_depth < 0 || max_depth > MP_MAX_DEPTH_LIMIT)
        max_depth = MP_MAX_DEPTH_LIMIT;
    int d = 0;
    pending[0] = 1;
    for (;;) {
        while (pending[d] == 0) {
            if (d == 0)
                return 0;
            d--;
        }
        pending[d]--;
        mp_item it;
        int rc = mp_next(c, &it);
        if (rc)
            return rc;
        if ((it.type == MP_ARRAY || it.type == MP_MAP) && it.v.n > 0) {
            if (d + 1 > max_depth)
                return MP_EDEPTH;
            d++;
            pending[d] = it.type == MP_MAP ? (uint64_t)it.v.n * 2 : it.v.n;
        } else if ((it.type == MP_ARRAY || it.type == MP_MAP) && d + 1 > max_depth) {
            return MP_EDEPTH;
        }
    }
}

int mp_check_one(const void *p, size_t n, int max_depth)
{
    mp_cursor c;
    mp_cursor_init(&c, p, n);
    int rc = mp_skip(&c, max_depth);
    if (rc)
        return rc;
    return mp_left(&c) == 0 ? 0 : MP_EINVALID;
}

static int next_of(mp_cursor *c, mp_item *it, mp_type want)
{
    mp_cursor save = *c;
    int rc = mp_next(c, it);
    if (rc)
        return rc;
    if (it->type != want) {
        *c = save;
        return MP_ETYPE;
    }
    return 0;
}

int mp_read_nil(mp_cursor *c)
{
    mp_item it;
    return next_of(c, &it, MP_NIL);
}

int mp_read_bool(mp_cursor *c, bool *out)
{
    mp_item it;
    int rc = next_of(c, &it, MP_BOOL);
    if (!rc)
        *out = it.v.b;
    return rc;
}

int mp_read_uint(mp_cursor *c, uint64_t *out)
{
    mp_cursor save = *c;
    mp_item it;
    int rc = mp_next(c, &it);
    if (rc)
        return rc;
    if (it.type == MP_UINT) { *out = it.v.u; return 0; }
    *c = save;
    return it.type == MP_INT ? MP_ERANGE : MP_ETYPE;
}

int mp_read_int(mp_cursor *c, int64_t *out)
{
    mp_cursor save = *c;
    mp_item it;
    int rc = mp_next(c, &it);
    if (rc)
        return rc;
    if (it.type == MP_INT) { *out = it.v.i; return 0; }
    if (it.type == MP_UINT && it.v.u <= INT64_MAX) { *out = (int64_t)it.v.u; return 0; }
    *c = save;
    return it.type == MP_UINT ? MP_ERANGE : MP_ETYPE;
}

int mp_read_double(mp_cursor *c, double *out)
{
    mp_cursor save = *c;
    mp_item it;
    int rc = mp_next(c, &it);
    if (rc)
        return rc;
    switch (it.type) {
    case MP_FLOAT: case MP_DOUBLE: *out = it.v.d; return 0;
    case MP_UINT: *out = (double)it.v.u; return 0;
    case MP_INT: *out = (double)it.v.i; return 0;
    default: *c = save; return MP_ETYPE;
    }
}

int mp_read_str(mp_cursor *c, const uint8_t **p, uint32_t *len)
{
    mp_item it;
    int rc = next_of(c, &it, MP_STR);
    if (!rc) { *p = it.v.s.ptr; *len = it.v.s.len; }
    return rc;
}

int mp_read_bytes(mp_cursor *c, const uint8_t **p, uint32_t *len, bool *is_str)
{
    mp_cursor save = *c;
    mp_item it;
    int rc = mp_next(c, &it);
    if (rc)
        return rc;
    if (it.type != MP_STR && it.type != MP_BIN) {
        *c = save;
        return MP_ETYPE;
    }
    *p = it.v.s.ptr;
    *len = it.v.s.len;
    if (is_str)
        *is_str = it.type == MP_STR;
    return 0;
}

int mp_read_array(mp_cursor *c, uint32_t *n)
{
    mp_item it;
    int rc = next_of(c, &it, MP_ARRAY);
    if (!rc) *n = it.v.n;
    return rc;
}

int mp_read_map(mp_cursor *c, uint32_t *n)
{
    mp_item it;
    int rc = next_of(c, &it, MP_MAP);
    if (!rc) *n = it.v.n;
    return rc;
}

int mp_peek_type(const mp_cursor *c, mp_type *out)
{
    mp_cursor tmp = *c;
    mp_item it;
    int rc = mp_next(&tmp, &it);
    if (!rc)
        *out = it.type;
    return rc;
}

const char *mp_strerror(int err)
{
    switch (err) {
    case 0: return "ok";
    case MP_ETRUNC: return "truncated MessagePack";
    case MP_EINVALID: return "invalid MessagePack";
    case MP_EDEPTH: return "MessagePack nested too deeply";
    case MP_ETYPE: return "unexpected MessagePack type";
    case MP_ERANGE: return "number out of range";
    default: return "unknown MessagePack error";
    }
}
