/* region_info.c - reading a region info map (docs/protocol.md, "Region info
 * map") into an agate_region_info.
 *
 *   {"name": str, "type": str, "redundant_copies": uint,
 *    "total_num_buckets": uint, "partitioned": bool, "persistent": bool,
 *    "entries": uint, "bytes": uint,
 *    "members": [{"member": str, "member_id": uint, "buckets": uint,
 *                 "primary_buckets": uint, "entries": uint}]}
 *
 * Keys we do not know are skipped, so a newer server may add fields. A known
 * key with the wrong type is a protocol error. */
#include <stdlib.h>
#include <string.h>

#include "client/client.h"

static bool key_is(const uint8_t *k, uint32_t klen, const char *name)
{
    size_t n = strlen(name);
    return klen == n && memcmp(k, name, n) == 0;
}

static char *dup_str(const uint8_t *p, uint32_t n)
{
    char *s = malloc((size_t)n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static int read_u32(mp_cursor *cur, uint32_t *out)
{
    uint64_t v;
    if (mp_read_uint(cur, &v) || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int read_flag(mp_cursor *cur, int *out)
{
    bool b;
    if (mp_read_bool(cur, &b))
        return -1;
    *out = b;
    return 0;
}

/* Reads a str into a fresh C string. -1: wrong type, -2: out of memory. */
static int read_cstr(mp_cursor *cur, char **out)
{
    const uint8_t *p;
    uint32_t n;
    if (mp_read_str(cur, &p, &n))
        return -1;
    char *s = dup_str(p, n);
    if (!s)
        return -2;
    free(*out);
    *out = s;
    return 0;
}

/* Maps the internal -1 / -2 results to the error to return. */
static int field_error(agate_client *c, int rc, const char *what)
{
    if (rc == -2)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    return client_bad_reply(c, what);
}

static int parse_member(agate_client *c, mp_cursor *cur, agate_region_member *m)
{
    uint32_t n;
    if (mp_read_map(cur, &n))
        return client_bad_reply(c, "region member is not a map");
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k;
        uint32_t klen;
        int rc = 0;
        if (mp_read_str(cur, &k, &klen))
            return client_bad_reply(c, "region member has a non-string key");
        if (key_is(k, klen, "member"))
            rc = read_cstr(cur, &m->member);
        else if (key_is(k, klen, "member_id"))
            rc = read_u32(cur, &m->member_id);
        else if (key_is(k, klen, "buckets"))
            rc = read_u32(cur, &m->buckets);
        else if (key_is(k, klen, "primary_buckets"))
            rc = read_u32(cur, &m->primary_buckets);
        else if (key_is(k, klen, "entries"))
            rc = mp_read_uint(cur, &m->entries) ? -1 : 0;
        else
            rc = mp_skip(cur, MP_MAX_DEPTH_LIMIT) ? -1 : 0;
        if (rc)
            return field_error(c, rc, "bad field in a region member");
    }
    return 0;
}

static int parse_members(agate_client *c, mp_cursor *cur, agate_region_info *info)
{
    uint32_t n;
    if (mp_read_array(cur, &n))
        return client_bad_reply(c, "region members is not an array");
    if (info->members) /* a repeated key: the last one counts */
        for (size_t i = 0; i < info->nmembers; i++)
            free(info->members[i].member);
    free(info->members);
    info->nmembers = 0;
    /* n is bounded by the bytes left in the reply */
    info->members = calloc(n ? n : 1, sizeof(agate_region_member));
    if (!info->members)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        info->nmembers++;
        int rc = parse_member(c, cur, &info->members[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_type(agate_client *c, mp_cursor *cur, agate_region_info *info)
{
    const uint8_t *p;
    uint32_t n;
    char name[64];
    if (mp_read_str(cur, &p, &n))
        return client_bad_reply(c, "region type is not a string");
    if (n < sizeof(name)) {
        memcpy(name, p, n);
        name[n] = '\0';
        if (agate_region_type_parse(name, &info->type) == 0)
            return 0;
    }
    return client_err(c, AGATE_EPROTO, "unknown region type '%.*s'", (int)(n > 64 ? 64 : n),
                      (const char *)p);
}

static int parse_field(agate_client *c, mp_cursor *cur, const uint8_t *k, uint32_t klen,
                       agate_region_info *info)
{
    int rc;
    if (key_is(k, klen, "name"))
        rc = read_cstr(cur, &info->name);
    else if (key_is(k, klen, "type"))
        return parse_type(c, cur, info);
    else if (key_is(k, klen, "redundant_copies"))
        rc = read_u32(cur, &info->redundant_copies);
    else if (key_is(k, klen, "total_num_buckets"))
        rc = read_u32(cur, &info->total_num_buckets);
    else if (key_is(k, klen, "partitioned"))
        rc = read_flag(cur, &info->partitioned);
    else if (key_is(k, klen, "persistent"))
        rc = read_flag(cur, &info->persistent);
    else if (key_is(k, klen, "entries"))
        rc = mp_read_uint(cur, &info->entries) ? -1 : 0;
    else if (key_is(k, klen, "bytes"))
        rc = mp_read_uint(cur, &info->bytes) ? -1 : 0;
    else if (key_is(k, klen, "members"))
        return parse_members(c, cur, info);
    else
        rc = mp_skip(cur, MP_MAX_DEPTH_LIMIT) ? -1 : 0;
    return rc ? field_error(c, rc, "bad field in a region info map") : 0;
}

int client_region_info_parse(agate_client *c, mp_cursor *cur, agate_region_info *out)
{
    memset(out, 0, sizeof(*out));
    uint32_t n;
    if (mp_read_map(cur, &n))
        return client_bad_reply(c, "region info is not a map");
    bool have_type = false;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k;
        uint32_t klen;
        int rc = mp_read_str(cur, &k, &klen) ? client_bad_reply(c, "region info has a non-string key")
                                             : parse_field(c, cur, k, klen, out);
        if (rc) {
            client_region_info_clear(out);
            return rc;
        }
        have_type |= key_is(k, klen, "type");
    }
    if (!out->name || !have_type) {
        client_region_info_clear(out);
        return client_bad_reply(c, "region info without name or type");
    }
    return 0;
}

void client_region_info_clear(agate_region_info *info)
{
    free(info->name);
    for (size_t i = 0; i < info->nmembers; i++)
        free(info->members[i].member);
    free(info->members);
    memset(info, 0, sizeof(*info));
}
