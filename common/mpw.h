/* mpw.h - writing MessagePack into a buf_t with msgpack-c's packer.
 * Thin helpers for the shapes the protocol uses often. */
#ifndef AGATE_COMMON_MPW_H
#define AGATE_COMMON_MPW_H

#include <msgpack.h>
#include <stdbool.h>
#include <string.h>

#include "common/buf.h"

static inline void mpw_init(msgpack_packer *pk, buf_t *b)
{
    msgpack_packer_init(pk, b, buf_msgpack_write);
}

static inline int mpw_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static inline int mpw_str(msgpack_packer *pk, const void *p, size_t n)
{
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, p, n);
}

static inline int mpw_bin(msgpack_packer *pk, const void *p, size_t n)
{
    return msgpack_pack_bin(pk, n) || msgpack_pack_bin_body(pk, p, n);
}

/* A key keeps the MessagePack type it was written with (str or bin). */
static inline int mpw_key(msgpack_packer *pk, const void *p, size_t n, bool is_str)
{
    return is_str ? mpw_str(pk, p, n) : mpw_bin(pk, p, n);
}

/* One map pair with a string key: the shapes info maps are built from. */
static inline int mpw_kv_uint(msgpack_packer *pk, const char *k, uint64_t v)
{
    return mpw_cstr(pk, k) || msgpack_pack_uint64(pk, v);
}

static inline int mpw_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    return mpw_cstr(pk, k) || mpw_cstr(pk, v);
}

static inline int mpw_kv_bool(msgpack_packer *pk, const char *k, bool v)
{
    return mpw_cstr(pk, k) || (v ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
}

/* Appends bytes that already are one encoded MessagePack object, through
 * the packer's own write callback (whatever it writes into). */
static inline int mpw_raw(msgpack_packer *pk, const void *p, size_t n)
{
    return n ? pk->callback(pk->data, (const char *)p, n) : 0;
}

#endif
