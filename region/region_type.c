#include <string.h>
#include <strings.h>

#include "common/proto.h"
#include "region/region.h"

static const char *const type_names[REGION_TYPE_COUNT] = {
    [REGION_PARTITION] = "PARTITION",
    [REGION_PARTITION_REDUNDANT] = "PARTITION_REDUNDANT",
    [REGION_PARTITION_PERSISTENT] = "PARTITION_PERSISTENT",
    [REGION_PARTITION_REDUNDANT_PERSISTENT] = "PARTITION_REDUNDANT_PERSISTENT",
    [REGION_REPLICATE] = "REPLICATE",
    [REGION_REPLICATE_PERSISTENT] = "REPLICATE_PERSISTENT",
};

const char *region_type_name(region_type t)
{
    return (unsigned)t < REGION_TYPE_COUNT ? type_names[t] : "UNKNOWN";
}

int region_type_parse(const char *s, size_t n, region_type *out)
{
    for (int t = 0; t < REGION_TYPE_COUNT; t++) {
        if (strlen(type_names[t]) == n && strncasecmp(type_names[t], s, n) == 0) {
            *out = (region_type)t;
            return 0;
        }
    }
    return -1;
}

bool region_type_partitioned(region_type t) { return t < REGION_REPLICATE; }

bool region_type_persistent(region_type t)
{
    return t == REGION_PARTITION_PERSISTENT || t == REGION_PARTITION_REDUNDANT_PERSISTENT ||
           t == REGION_REPLICATE_PERSISTENT;
}

uint32_t region_type_default_copies(region_type t)
{
    return t == REGION_PARTITION_REDUNDANT || t == REGION_PARTITION_REDUNDANT_PERSISTENT;
}

static bool name_char_ok(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

int region_name_check(const uint8_t **name, size_t *n)
{
    const uint8_t *p = *name;
    size_t len = *n;
    if (len > 0 && p[0] == '/') {
        p++;
        len--;
    }
    if (len == 0 || len > REGION_NAME_MAX)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (!name_char_ok(p[i]))
            return -1;
    *name = p;
    *n = len;
    return 0;
}

int region_config_check(const region_config *cfg, const char **why)
{
    const uint8_t *p = (const uint8_t *)cfg->name;
    size_t n = strlen(cfg->name);
    if (region_name_check(&p, &n) || p != (const uint8_t *)cfg->name) {
        *why = "region name must be 1-128 characters of A-Z a-z 0-9 _ . -";
        return -1;
    }
    if ((unsigned)cfg->type >= REGION_TYPE_COUNT) {
        *why = "unknown region type";
        return -1;
    }
    if (cfg->total_num_buckets < 1 || cfg->total_num_buckets > AGATE_MAX_BUCKETS) {
        *why = "total-num-buckets must be 1..65536";
        return -1;
    }
    if (cfg->redundant_copies > AGATE_MAX_REDUNDANT_COPIES) {
        *why = "redundant-copies must be 0..3";
        return -1;
    }
    if (!region_type_partitioned(cfg->type) && cfg->redundant_copies != 0) {
        *why = "redundant-copies applies to PARTITION types only (REPLICATE regions are on every member)";
        return -1;
    }
    return 0;
}
