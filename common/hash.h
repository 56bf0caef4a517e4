/* hash.h - key -> bucket, the function client and server must agree on.
 *
 * bucket = XXH64(key bytes, seed 0) mod total_num_buckets, where the key bytes
 * are the raw bytes of the key (the payload of its MessagePack str or bin,
 * without the header). Specified in docs/protocol.md. */
#ifndef AGATE_COMMON_HASH_H
#define AGATE_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t hash_key(const void *key, size_t len);

static inline uint32_t hash_bucket(uint64_t key_hash, uint32_t total_buckets)
{
    return (uint32_t)(key_hash % total_buckets);
}

#endif
