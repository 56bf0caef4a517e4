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

/* Appends bytes that already are one encoded MessagePack object, through
 * the packer's own write callback (whatever it writes into). */
static inline int mpw_raw(msgpack_packer *pk, const void *p, size_t n)
{
    return n ? pk->callback(pk->data, (const char *)p, n) : 0;
}

#endif
