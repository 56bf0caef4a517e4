/* cmd_region.c - create, destroy, list, describe and clear regions. */
#include <string.h>

#include "tools/cli/cli.h"
#include "tools/cli/output.h"

static const char *type_name(agate_region_type t)
{
    const char *n = agate_region_type_name(t);
    return n ? n : "?";
}

/* Writes one region info as a JSON object (the protocol's field names). */
static void region_json(jw_t *w, const agate_region_info *r)
{
    jw_begin_object(w);
    jw_ckey(w, "name");
    jw_cstr(w, r->name);
    jw_ckey(w, "type");
    jw_cstr(w, type_name(r->type));
    jw_ckey(w, "redundant_copies");
    jw_uint(w, r->redundant_copies);
    jw_ckey(w, "total_num_buckets");
    jw_uint(w, r->total_num_buckets);
    jw_ckey(w, "partitioned");
    jw_bool(w, r->partitioned);
    jw_ckey(w, "persistent");
    jw_bool(w, r->persistent);
    jw_ckey(w, "entries");
    jw_uint(w, r->entries);
    jw_ckey(w, "bytes");
    jw_uint(w, r->bytes);
    jw_ckey(w, "members");
    jw_begin_array(w);
    for (size_t i = 0; i < r->nmembers; i++) {
        const agate_region_member *m = &r->members[i];
        jw_begin_object(w);
        jw_ckey(w, "member");
        jw_cstr(w, m->member);
        jw_ckey(w, "member_id");
        jw_uint(w, m->member_id);
        jw_ckey(w, "buckets");
        jw_uint(w, m->buckets);
        jw_ckey(w, "primary_buckets");
        jw_uint(w, m->primary_buckets);
        jw_ckey(w, "entries");
        jw_uint(w, m->entries);
        jw_end_object(w);
    }
    jw_end_array(w);
    jw_end_object(w);
}

/* Prints {"region": name, key: true} for --json, or the text line. */
static int simple_result(const cli_args *a, const char *region, const char *key, const char *text)
{
    if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        jw_ckey(&d.w, "region");
        jw_cstr(&d.w, region);
        jw_ckey(&d.w, key);
        jw_bool(&d.w, true);
        jw_end_object(&d.w);
        return json_doc_print(&d);
    }
    printf("%s\n", text);
    return EXIT_OK;
}

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
    bool existed = false;
    if (cfg.if_not_exists) {
        agate_region_info *info = NULL;
        if (agate_region_describe(c, name, &info) == 0) {
            existed = true;
            agate_region_info_free(info);
        }
    }
    int rc = agate_region_create(c, &cfg);
    if (rc < 0) {
        int e = cli_fail(c, rc, NULL);
        cli_release(ctx, c);
        return e;
    }
    /* Report the settings the server chose (defaults resolved). */
    agate_region_info *info = NULL;
    int drc = agate_region_describe(c, name, &info);
    cli_release(ctx, c);
    if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        jw_ckey(&d.w, "created");
        jw_bool(&d.w, !existed);
        jw_ckey(&d.w, "region");
        if (drc == 0)
            region_json(&d.w, info);
        else
            jw_cstr(&d.w, name);
        jw_end_object(&d.w);
        agate_region_info_free(info);
        return json_doc_print(&d);
    }
    if (drc == 0)
        printf("Region %s %s: %s, %u buckets, %u redundant copies\n", info->name,
               existed ? "already exists" : "created", type_name(info->type),
               info->total_num_buckets, info->redundant_copies);
    else
        printf("Region %s %s\n", name, existed ? "already exists" : "created");
    agate_region_info_free(info);
    return EXIT_OK;
}

int cmd_destroy_region(cli_ctx *ctx, const cli_args *a)
{
    const char *name = cli_str(a, "name");
    agate_client *c = cli_connect(ctx, a);
    if (!c)
        return EXIT_ERR;
    int rc = agate_region_destroy(c, name);
    if (rc == AGATE_EUNKNOWN_REGION && cli_flag(a, "if-exists")) {
        cli_release(ctx, c);
        if (a->json) {
            json_doc d;
            json_doc_init(&d);
            jw_begin_object(&d.w);
            jw_ckey(&d.w, "region");
            jw_cstr(&d.w, name);
            jw_ckey(&d.w, "destroyed");
            jw_bool(&d.w, false);
            jw_end_object(&d.w);
            return json_doc_print(&d);
        }
        printf("Region %s does not exist\n", name);
        return EXIT_OK;
    }
    if (rc < 0) {
        int e = cli_fail(c, rc, NULL);
        cli_release(ctx, c);
        return e;
    }
    cli_release(ctx, c);
    char text[256];
    snprintf(text, sizeof text, "Region %s destroyed", name);
    return simple_result(a, name, "destroyed", text);
}

int cmd_list_regions(cli_ctx *ctx, const cli_args *a)
{
    agate_client *c = cli_connect(ctx, a);
    if (!c)
        return EXIT_ERR;
    agate_region_info *list = NULL;
    size_t n = 0;
    int rc = agate_region_list(c, &list, &n);
    if (rc < 0) {
        int e = cli_fail(c, rc, NULL);
        cli_release(ctx, c);
        return e;
    }
    cli_release(ctx, c);
    if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_array(&d.w);
        for (size_t i = 0; i < n; i++)
            region_json(&d.w, &list[i]);
        jw_end_array(&d.w);
        agate_region_list_free(list, n);
        return json_doc_print(&d);
    }
    if (n == 0) {
        printf("No regions\n");
        agate_region_list_free(list, n);
        return EXIT_OK;
    }
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
    agate_region_list_free(list, n);
    return EXIT_OK;
}

int cmd_describe_region(cli_ctx *ctx, const cli_args *a)
{
    const char *name = cli_str(a, "name");
    agate_client *c = cli_connect(ctx, a);
    if (!c)
        return EXIT_ERR;
    agate_region_info *r = NULL;
    int rc = agate_region_describe(c, name, &r);
    if (rc < 0) {
        int e = cli_fail(c, rc, NULL);
        cli_release(ctx, c);
        return e;
    }
    cli_release(ctx, c);
    if (a->json) {
        json_doc d;
        json_doc_init(&d);
        region_json(&d.w, r);
        agate_region_info_free(r);
        return json_doc_print(&d);
    }
    char e[32], b[32];
    fmt_count(r->entries, e, sizeof e);
    fmt_bytes(r->bytes, b, sizeof b);
    table_t kv;
    table_init(&kv, 2, NULL, NULL);
    table_cell(&kv, "Name:");
    table_cell(&kv, "%s", r->name);
    table_cell(&kv, "Type:");
    table_cell(&kv, "%s", type_name(r->type));
    table_cell(&kv, "Partitioned:");
    table_cell(&kv, "%s", r->partitioned ? "yes" : "no");
    table_cell(&kv, "Persistent:");
    table_cell(&kv, "%s", r->persistent ? "yes" : "no");
    table_cell(&kv, "Redundant copies:");
    table_cell(&kv, "%u", r->redundant_copies);
    table_cell(&kv, "Total buckets:");
    table_cell(&kv, "%u", r->total_num_buckets);
    table_cell(&kv, "Entries:");
    table_cell(&kv, "%s", e);
    table_cell(&kv, "Bytes:");
    table_cell(&kv, "%s (%llu)", b, (unsigned long long)r->bytes);
    table_print(&kv, stdout);
    table_free(&kv);

    if (r->nmembers > 0) {
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
    agate_region_info_free(r);
    return EXIT_OK;
}

int cmd_clear_region(cli_ctx *ctx, const cli_args *a)
{
    const char *name = cli_str(a, "name");
    agate_client *c = cli_connect(ctx, a);
    if (!c)
        return EXIT_ERR;
    uint64_t removed = 0;
    int rc = agate_clear(c, name, &removed);
    if (rc < 0) {
        int e = cli_fail(c, rc, NULL);
        cli_release(ctx, c);
        return e;
    }
    cli_release(ctx, c);
    if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        jw_ckey(&d.w, "region");
        jw_cstr(&d.w, name);
        jw_ckey(&d.w, "removed");
        jw_uint(&d.w, removed);
        jw_end_object(&d.w);
        return json_doc_print(&d);
    }
    char n[32];
    fmt_count(removed, n, sizeof n);
    printf("Region %s cleared: %s entries removed\n", name, n);
    return EXIT_OK;
}
