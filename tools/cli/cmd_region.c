/* cmd_region.c - create, destroy, list, describe and clear regions. */
#include <string.h>

#include "tools/cli/cli.h"
#include "tools/cli/output.h"

/* The region type's name, "?" for a type this CLI does not know. */
static const char *type_name(agate_region_type t)
{
    const char *n = agate_region_type_name(t);
    return n ? n : "?";
}

/* Writes one member's share of a region as a JSON object. */
static void member_json(jw_t *w, const agate_region_member *m)
{
    jw_object(w, JSON_FIELDS(JF_STR("member", m->member), JF_UINT("member_id", m->member_id),
                             JF_UINT("buckets", m->buckets),
                             JF_UINT("primary_buckets", m->primary_buckets),
                             JF_UINT("entries", m->entries)));
}

/* Writes one region info as a JSON object (the protocol's field names). */
static void region_json(jw_t *w, const agate_region_info *r)
{
    jw_begin_object(w);
    jw_fields(w, JSON_FIELDS(JF_STR("name", r->name), JF_STR("type", type_name(r->type)),
                             JF_UINT("redundant_copies", r->redundant_copies),
                             JF_UINT("total_num_buckets", r->total_num_buckets),
                             JF_BOOL("partitioned", r->partitioned),
                             JF_BOOL("persistent", r->persistent), JF_UINT("entries", r->entries),
                             JF_UINT("bytes", r->bytes)));
    jw_ckey(w, "members");
    jw_begin_array(w);
    for (size_t i = 0; i < r->nmembers; i++)
        member_json(w, &r->members[i]);
    jw_end_array(w);
    jw_end_object(w);
}

/* True if a region called name exists (asked only for --if-not-exists). */
static bool region_exists(agate_client *c, const char *name)
{
    agate_region_info *info = NULL;
    if (agate_region_describe(c, name, &info) != 0)
        return false;
    agate_region_info_free(info);
    return true;
}

/* Prints the outcome of create region: the settings the server chose when
 * info is known (else just the name), and whether the region existed. */
static int print_created(const cli_args *a, const char *name, const agate_region_info *info,
                         bool existed)
{
    const char *what = existed ? "already exists" : "created";
    if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        jw_fields(&d.w, JSON_FIELDS(JF_BOOL("created", !existed)));
        jw_ckey(&d.w, "region");
        if (info)
            region_json(&d.w, info);
        else
            jw_cstr(&d.w, name);
        jw_end_object(&d.w);
        return json_doc_print(&d);
    }
    if (info)
        printf("Region %s %s: %s, %u buckets, %u redundant copies\n", info->name, what,
               type_name(info->type), info->total_num_buckets, info->redundant_copies);
    else
        printf("Region %s %s\n", name, what);
    return EXIT_OK;
}

/* create region: creates --name of --type and reports the settings the
 * server chose; with --if-not-exists an existing region is success. */
int cmd_create_region(cli_ctx *ctx, const cli_args *a)
{
    const char *name = cli_str(a, "name");
    agate_region_type type;
    if (agate_region_type_parse(cli_str(a, "type"), &type) != 0)
        return cli_usage_error(a->cmd, "unknown region type '%s'", cli_str(a, "type"));
    agate_region_config cfg;
    agate_region_config_init(&cfg, name, type);
    if (cli_has(a, "redundant-copies"))
        cfg.redundant_copies = (int)cli_int(a, "redundant-copies", -1);
    if (cli_has(a, "total-num-buckets"))
        cfg.total_num_buckets = (int)cli_int(a, "total-num-buckets", 0);
    cfg.if_not_exists = cli_flag(a, "if-not-exists");

    agate_client *c = cli_connect(ctx, a);
    if (!c)
        return EXIT_ERR;
    /* With --if-not-exists, say whether it was created or already there. */
    bool existed = cfg.if_not_exists && region_exists(c, name);
    int rc = agate_region_create(c, &cfg);
    if (rc < 0)
        return cli_finish(ctx, c, rc, NULL);
    /* Report the settings the server chose (defaults resolved). */
    agate_region_info *info = NULL;
    if (agate_region_describe(c, name, &info) != 0) {
        agate_region_info_free(info);
        info = NULL;
    }
    cli_release(ctx, c);
    int ret = print_created(a, name, info, existed);
    agate_region_info_free(info);
    return ret;
}

/* destroy region: destroys --name; with --if-exists a missing region is
 * success. */
int cmd_destroy_region(cli_ctx *ctx, const cli_args *a)
{
    const char *name = cli_str(a, "name");
    agate_client *c = cli_connect(ctx, a);
    if (!c)
        return EXIT_ERR;
    int rc = agate_region_destroy(c, name);
    bool missing_ok = rc == AGATE_EUNKNOWN_REGION && cli_flag(a, "if-exists");
    if (cli_finish(ctx, c, missing_ok ? 0 : rc, NULL) != EXIT_OK)
        return EXIT_ERR;
    if (a->json)
        return json_print_object(stdout, JSON_FIELDS(JF_STR("region", name),
                                                      JF_BOOL("destroyed", !missing_ok)));
    printf(missing_ok ? "Region %s does not exist\n" : "Region %s destroyed\n", name);
    return EXIT_OK;
}

/* Prints the region list as a table. */
static void print_region_table(const agate_region_info *list, size_t n)
{
    static const char *headers[] = {"NAME", "TYPE", "ENTRIES", "BYTES", "BUCKETS", "COPIES"};
    static const bool right[] = {false, false, true, true, true, true};
    table_t t;
    table_init(&t, 6, headers, right);
    for (size_t i = 0; i < n; i++) {
        char e[32], b[32];
        fmt_count(list[i].entries, e, sizeof e);
        fmt_bytes(list[i].bytes, b, sizeof b);
        table_cell(&t, "%s", list[i].name);
        table_cell(&t, "%s", type_name(list[i].type));
        table_cell(&t, "%s", e);
        table_cell(&t, "%s", b);
        table_cell(&t, "%u", list[i].total_num_buckets);
        table_cell(&t, "%u", list[i].redundant_copies);
    }
    table_print(&t, stdout);
    table_free(&t);
}

/* Prints the region list as a JSON array. */
static int print_region_array(const agate_region_info *list, size_t n)
{
    json_doc d;
    json_doc_init(&d);
    jw_begin_array(&d.w);
    for (size_t i = 0; i < n; i++)
        region_json(&d.w, &list[i]);
    jw_end_array(&d.w);
    return json_doc_print(&d);
}

/* list regions: a table of the regions, or a JSON array. */
int cmd_list_regions(cli_ctx *ctx, const cli_args *a)
{
    agate_client *c = cli_connect(ctx, a);
    agate_region_info *list = NULL;
    size_t n = 0;
    if (!c || cli_finish(ctx, c, agate_region_list(c, &list, &n), NULL) != EXIT_OK)
        return EXIT_ERR;
    int ret = EXIT_OK;
    if (a->json)
        ret = print_region_array(list, n);
    else if (n == 0)
        printf("No regions\n");
    else
        print_region_table(list, n);
    agate_region_list_free(list, n);
    return ret;
}

/* Prints a region's settings and size as "Label: value" lines. */
static void print_region_settings(const agate_region_info *r)
{
    char e[32], b[32];
    fmt_count(r->entries, e, sizeof e);
    fmt_bytes(r->bytes, b, sizeof b);
    table_t kv;
    table_init(&kv, 2, NULL, NULL);
    table_pair(&kv, "Name:", "%s", r->name);
    table_pair(&kv, "Type:", "%s", type_name(r->type));
    table_pair(&kv, "Partitioned:", "%s", r->partitioned ? "yes" : "no");
    table_pair(&kv, "Persistent:", "%s", r->persistent ? "yes" : "no");
    table_pair(&kv, "Redundant copies:", "%u", r->redundant_copies);
    table_pair(&kv, "Total buckets:", "%u", r->total_num_buckets);
    table_pair(&kv, "Entries:", "%s", e);
    table_pair(&kv, "Bytes:", "%s (%llu)", b, (unsigned long long)r->bytes);
    table_print(&kv, stdout);
    table_free(&kv);
}

/* Prints the table of members hosting a region's buckets, after a blank
 * line; nothing when there are none. */
static void print_region_members(const agate_region_info *r)
{
    if (r->nmembers == 0)
        return;
    static const char *headers[] = {"MEMBER", "MEMBER ID", "BUCKETS", "PRIMARIES", "ENTRIES"};
    static const bool right[] = {false, true, true, true, true};
    table_t t;
    table_init(&t, 5, headers, right);
    for (size_t i = 0; i < r->nmembers; i++) {
        const agate_region_member *m = &r->members[i];
        char me[32];
        fmt_count(m->entries, me, sizeof me);
        table_cell(&t, "%s", m->member ? m->member : "?");
        table_cell(&t, "%u", m->member_id);
        table_cell(&t, "%u", m->buckets);
        table_cell(&t, "%u", m->primary_buckets);
        table_cell(&t, "%s", me);
    }
    printf("\n");
    table_print(&t, stdout);
    table_free(&t);
}

/* describe region: the settings, size and members of --name. */
int cmd_describe_region(cli_ctx *ctx, const cli_args *a)
{
    const char *name = cli_str(a, "name");
    agate_client *c = cli_connect(ctx, a);
    agate_region_info *r = NULL;
    if (!c || cli_finish(ctx, c, agate_region_describe(c, name, &r), NULL) != EXIT_OK)
        return EXIT_ERR;
    int ret = EXIT_OK;
    if (a->json) {
        json_doc d;
        json_doc_init(&d);
        region_json(&d.w, r);
        ret = json_doc_print(&d);
    } else {
        print_region_settings(r);
        print_region_members(r);
    }
    agate_region_info_free(r);
    return ret;
}

/* clear region: removes every entry of --name; reports how many. */
int cmd_clear_region(cli_ctx *ctx, const cli_args *a)
{
    const char *name = cli_str(a, "name");
    agate_client *c = cli_connect(ctx, a);
    uint64_t removed = 0;
    if (!c || cli_finish(ctx, c, agate_clear(c, name, &removed), NULL) != EXIT_OK)
        return EXIT_ERR;
    if (a->json)
        return json_print_object(stdout, JSON_FIELDS(JF_STR("region", name),
                                                      JF_UINT("removed", removed)));
    char n[32];
    fmt_count(removed, n, sizeof n);
    printf("Region %s cleared: %s entries removed\n", name, n);
    return EXIT_OK;
}
