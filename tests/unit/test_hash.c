/* Unit tests for common/hash.h: key -> bucket, which every client and
 * server must compute identically.
 *
 * The pinned vectors were computed with an independent implementation of
 * XXH64 written from the xxHash specification (ref_xxh64 below, also used to
 * cross-check many lengths), and agree with libxxhash. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "common/proto.h"
#include "tu.h"

/* ---- a reference XXH64 (seed 0 and others), from the specification ---- */

static const uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full,
                      P3 = 0x165667B19E3779F9ull, P4 = 0x85EBCA77C2B2AE63ull,
                      P5 = 0x27D4EB2F165667C5ull;

static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t round64(uint64_t acc, uint64_t in)
{
    acc += in * P2;
    acc = rotl(acc, 31);
    return acc * P1;
}
static uint64_t merge64(uint64_t acc, uint64_t v)
{
    acc ^= round64(0, v);
    return acc * P1 + P4;
}

static uint64_t ref_xxh64(const uint8_t *p, size_t n, uint64_t seed)
{
    size_t i = 0;
    uint64_t h;
    if (n >= 32) {
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        for (; i + 32 <= n; i += 32) {
            v1 = round64(v1, le64(p + i));
            v2 = round64(v2, le64(p + i + 8));
            v3 = round64(v3, le64(p + i + 16));
            v4 = round64(v4, le64(p + i + 24));
        }
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = merge64(h, v1);
        h = merge64(h, v2);
        h = merge64(h, v3);
        h = merge64(h, v4);
    } else {
        h = seed + P5;
    }
    h += n;
    for (; i + 8 <= n; i += 8) {
        h ^= round64(0, le64(p + i));
        h = rotl(h, 27) * P1 + P4;
    }
    if (i + 4 <= n) {
        h ^= (uint64_t)le32(p + i) * P1;
        h = rotl(h, 23) * P2 + P3;
        i += 4;
    }
    for (; i < n; i++) {
        h ^= p[i] * P5;
        h = rotl(h, 11) * P1;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/* ---- pinned vectors ---- */

static const struct {
    const char *key;
    uint64_t hash;
    uint32_t bucket113;
} vectors[] = {
    {"", 0xEF46DB3751D8E999ull, 8},
    {"a", 0xD24EC4F1A98C6E5Bull, 108},
    {"abc", 0x44BC2CF5AD770999ull, 60},
    {"key-1", 0xDAB069F200681A9Eull, 17},
    {"user:42", 0xDC1FEA7DA8D2D1C2ull, 49},
    {"hello world", 0x45AB6734B21E6968ull, 40},
    {"0123456789abcdef0123456789abcdef", 0x642A94958E71E6C5ull, 99},
    {"The quick brown fox jumps over the lazy dog", 0x0B242D361FDA71BCull, 60},
    {"Gr\xc3\xbc\xc3\x9f" "e", 0x29964875BFE3CB55ull, 67},
    {"order-0000001", 0x82E45535EDE50959ull, 110},
};

START_TEST(pinned_vectors)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const char *k = vectors[i].key;
        uint64_t h = hash_key(k, strlen(k));
        ck_assert_msg(h == vectors[i].hash, "XXH64(\"%s\") = %016llx, want %016llx", k,
                      (unsigned long long)h, (unsigned long long)vectors[i].hash);
        ck_assert_uint_eq(hash_bucket(h, AGATE_DEFAULT_BUCKETS), vectors[i].bucket113);
        ck_assert_uint_eq(hash_bucket(h, 1), 0);
        ck_assert_uint_eq(hash_bucket(h, 65536), (uint32_t)(h & 0xffff));
    }
}
END_TEST

/* docs/protocol.md, "Key to bucket", has a table of vectors:
 *     | `"a"` | `0xD24EC4F1A98C6E5B` | 108 |
 * Every row must hold for the code. (The first version of the document said
 * the empty key is in bucket 48 of 113; it is 8.) */
START_TEST(protocol_doc_vectors)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/docs/protocol.md", TU_SOURCE_DIR);
    char *doc = tu_read_file(path, NULL);
    ck_assert_msg(doc != NULL, "cannot read %s", path);
    int rows = 0;
    for (char *line = doc; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        char key[256];
        unsigned long long h;
        unsigned b;
        /* | `"KEY"` ... | `0xHASH` | BUCKET | */
        if (strncmp(line, "| `\"", 4) == 0) {
            const char *k = line + 4, *q = strchr(k, '"');
            const char *hx = strstr(line, "`0x");
            ck_assert_msg(q && hx && (size_t)(q - k) < sizeof(key), "bad row: %s", line);
            memcpy(key, k, (size_t)(q - k));
            key[q - k] = 0;
            ck_assert_msg(sscanf(hx, "`0x%llx` | %u |", &h, &b) == 2, "bad row: %s", line);
            uint64_t got = hash_key(key, strlen(key));
            ck_assert_msg(got == h, "protocol.md: XXH64(\"%s\") is %016llx, the doc says %016llx", key,
                          (unsigned long long)got, h);
            ck_assert_msg(hash_bucket(got, 113) == b, "protocol.md: \"%s\" is in bucket %u, the doc says %u",
                          key, hash_bucket(got, 113), b);
            rows++;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(doc);
    ck_assert_int_ge(rows, 1);
    ck_assert_uint_eq(0xEF46DB3751D8E999ull % 113, 8);
}
END_TEST

/* Binary keys (NULs inside) hash their raw bytes, and every length path of
 * XXH64 (<4, <8, <32, >=32 and the tails) agrees with the reference. */
START_TEST(reference_all_lengths)
{
    uint8_t buf[300];
    uint64_t x = 0x0123456789abcdefull;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    for (size_t n = 0; n <= sizeof(buf); n++) {
        for (size_t off = 0; off < 3 && off + n <= sizeof(buf); off++) { /* unaligned too */
            uint64_t want = ref_xxh64(buf + off, n, 0);
            ck_assert_msg(hash_key(buf + off, n) == want, "length %zu offset %zu", n, off);
        }
    }
    ck_assert(ref_xxh64((const uint8_t *)"", 0, 0) == 0xEF46DB3751D8E999ull);
    static const uint8_t nul_key[] = {'a', 0, 'b'};
    ck_assert(hash_key(nul_key, 3) != hash_key("a", 1));
    ck_assert(hash_key(nul_key, 3) == ref_xxh64(nul_key, 3, 0));
}
END_TEST

START_TEST(buckets_spread)
{
    /* 113000 keys over 113 buckets: every bucket used, none wildly off */
    uint32_t counts[113] = {0};
    char k[32];
    for (int i = 0; i < 113000; i++) {
        int n = snprintf(k, sizeof(k), "key-%d", i);
        counts[hash_bucket(hash_key(k, (size_t)n), 113)]++;
    }
    for (int b = 0; b < 113; b++)
        ck_assert_msg(counts[b] > 800 && counts[b] < 1200, "bucket %d has %u", b, counts[b]);
}
END_TEST

static Suite *hash_suite(void)
{
    Suite *s = suite_create("hash");
    TCase *tc = tu_tcase(s, "xxh64", 30);
    tcase_add_test(tc, pinned_vectors);
    tcase_add_test(tc, protocol_doc_vectors);
    tcase_add_test(tc, reference_all_lengths);
    tcase_add_test(tc, buckets_spread);
    return s;
}

int main(void)
{
    Suite *s = hash_suite();
    return tu_run(&s, 1);
}
