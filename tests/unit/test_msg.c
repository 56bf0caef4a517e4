/* Unit tests for common/msg.h: request and response envelopes. Bodies are
 * built with msgpack-c's packer and copied into exact-size heap blocks. */
#include <check.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "common/msg.h"
#include "common/proto.h"
#include "tu.h"

typedef struct body {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint8_t *exact;
} body;

static msgpack_packer *begin(body *b)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
    b->exact = NULL;
    return &b->pk;
}

static void raw(body *b, const void *p, size_t n) { msgpack_sbuffer_write(&b->sb, p, n); }

static const uint8_t *finish(body *b, uint32_t *len)
{
    b->exact = malloc(b->sb.size ? b->sb.size : 1);
    memcpy(b->exact, b->sb.data, b->sb.size);
    *len = (uint32_t)b->sb.size;
    return b->exact;
}

static void done(body *b)
{
    free(b->exact);
    msgpack_sbuffer_destroy(&b->sb);
}

static void pack_cstr(msgpack_packer *pk, const char *s) { msgpack_pack_str_with_body(pk, s, strlen(s)); }

/* ---- requests ---- */

START_TEST(request_head_and_args)
{
    body b;
    msgpack_packer *pk = begin(&b);
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint64(pk, 0x1234567890ull);
    msgpack_pack_uint8(pk, OP_PUT);
    pack_cstr(pk, "region");
    msgpack_pack_bin_with_body(pk, "k\0y", 3);
    msgpack_pack_map(pk, 1);
    pack_cstr(pk, "a");
    msgpack_pack_array(pk, 2);
    msgpack_pack_nil(pk);
    msgpack_pack_double(pk, 1.5);
    uint32_t len;
    const uint8_t *p = finish(&b, &len);
    msg_request req;
    ck_assert_int_eq(msg_request_head(p, len, &req), 0);
    ck_assert(req.id == 0x1234567890ull);
    ck_assert_uint_eq(req.op, OP_PUT);
    ck_assert_uint_eq(req.argc, 3);
    int err = 0;
    ck_assert_int_eq(msg_request_args(&req, 32, &err), 0);
    ck_assert_int_eq(req.bad_arg, -1);
    /* each slice is exactly one encoded argument, in order, back to back */
    ck_assert_uint_eq(req.arg[0].n, 7);
    ck_assert_mem_eq(req.arg[0].p, "\xa6region", 7);
    ck_assert_ptr_eq(req.arg[1].p, req.arg[0].p + req.arg[0].n);
    ck_assert_uint_eq(req.arg[1].n, 5);
    ck_assert_mem_eq(req.arg[1].p, "\xc4\x03k\0y", 5);
    ck_assert_ptr_eq(req.arg[2].p, req.arg[1].p + req.arg[1].n);
    ck_assert_ptr_eq(req.arg[2].p + req.arg[2].n, p + len);
    ck_assert_int_eq(mp_check_one(req.arg[2].p, req.arg[2].n, 2), 0);
    done(&b);
}
END_TEST

START_TEST(request_without_args)
{
    body b;
    msgpack_packer *pk = begin(&b);
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 9);
    msgpack_pack_uint8(pk, OP_PING);
    uint32_t len;
    const uint8_t *p = finish(&b, &len);
    msg_request req;
    int err;
    ck_assert_int_eq(msg_request_head(p, len, &req), 0);
    ck_assert_uint_eq(req.argc, 0);
    ck_assert_int_eq(msg_request_args(&req, 32, &err), 0);
    done(&b);
}
END_TEST

/* Bodies whose request id cannot be trusted: MSG_EMALFORMED (or MSG_EKIND). */
START_TEST(request_head_malformed)
{
    static const struct {
        const char *what;
        uint8_t b[16];
        size_t n;
        int want;
    } T[] = {
        {"empty body", {0}, 0, MSG_EMALFORMED},
        {"not an array (int)", {0x05}, 1, MSG_EMALFORMED},
        {"not an array (map)", {0x80}, 1, MSG_EMALFORMED},
        {"not an array (str)", {0xa1, 'x'}, 2, MSG_EMALFORMED},
        {"array of 2", {0x92, 0x00, 0x01}, 3, MSG_EMALFORMED},
        {"empty array", {0x90}, 1, MSG_EMALFORMED},
        {"kind is a str", {0x93, 0xa1, 'x', 0x01, 0x02}, 5, MSG_EMALFORMED},
        {"kind negative", {0x93, 0xff, 0x01, 0x02}, 4, MSG_EMALFORMED},
        {"kind 1 (response)", {0x93, 0x01, 0x01, 0x02}, 4, MSG_EKIND},
        {"kind 2 (push)", {0x93, 0x02, 0x01, 0x02}, 4, MSG_EKIND},
        {"kind 7", {0x93, 0x07, 0x01, 0x02}, 4, MSG_EKIND},
        {"id negative", {0x93, 0x00, 0xff, 0x02}, 4, MSG_EMALFORMED},
        {"id nil", {0x93, 0x00, 0xc0, 0x02}, 4, MSG_EMALFORMED},
        {"id float", {0x93, 0x00, 0xca, 0, 0, 0, 0, 0x02}, 8, MSG_EMALFORMED},
        {"op str", {0x93, 0x00, 0x01, 0xa1, 'p'}, 5, MSG_EMALFORMED},
        {"op negative", {0x93, 0x00, 0x01, 0xe0}, 4, MSG_EMALFORMED},
        {"op above uint32", {0x93, 0x00, 0x01, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0}, 12, MSG_EMALFORMED},
        {"truncated id", {0x93, 0x00, 0xcd, 0x01}, 4, MSG_EMALFORMED},
        {"0xc1 as kind", {0x93, 0xc1, 0x01, 0x02}, 4, MSG_EMALFORMED},
        {"array count beyond input", {0xdd, 0xff, 0xff, 0xff, 0xff, 0, 1, 2}, 8, MSG_EMALFORMED},
    };
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++) {
        uint8_t *p = malloc(T[i].n ? T[i].n : 1);
        memcpy(p, T[i].b, T[i].n);
        msg_request req;
        int rc = msg_request_head(p, (uint32_t)T[i].n, &req);
        ck_assert_msg(rc == T[i].want, "%s: got %d, want %d", T[i].what, rc, T[i].want);
        free(p);
    }
    /* the largest op that fits uint32 is fine for the envelope */
    static const uint8_t big_op[] = {0x93, 0x00, 0x01, 0xce, 0xff, 0xff, 0xff, 0xff};
    msg_request req;
    ck_assert_int_eq(msg_request_head(big_op, sizeof(big_op), &req), 0);
    ck_assert_uint_eq(req.op, 0xffffffffu);
}
END_TEST

/* Which argument is bad, and why. */
START_TEST(request_bad_arg_index)
{
    /* [0, 1, 20, "r", <bad>, 1]: bad is argument 1 */
    static const struct {
        uint8_t bad[8];
        size_t n;
        int want_err;
    } T[] = {
        {{0xc1}, 1, MP_EINVALID},
        {{0x91, 0xc1}, 2, MP_EINVALID},
    };
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++) {
        body b;
        msgpack_packer *pk = begin(&b);
        msgpack_pack_array(pk, 6);
        msgpack_pack_uint8(pk, 0);
        msgpack_pack_uint8(pk, 1);
        msgpack_pack_uint8(pk, OP_PUT);
        pack_cstr(pk, "r");
        raw(&b, T[i].bad, T[i].n);
        msgpack_pack_uint8(pk, 1);
        uint32_t len;
        const uint8_t *p = finish(&b, &len);
        msg_request req;
        int err = 0;
        ck_assert_int_eq(msg_request_head(p, len, &req), 0);
        ck_assert_uint_eq(req.id, 1);
        ck_assert_int_eq(msg_request_args(&req, 32, &err), MSG_EARGS);
        ck_assert_int_eq(req.bad_arg, 1);
        ck_assert_int_eq(err, T[i].want_err);
        done(&b);
    }
    /* a truncated last argument: bad_arg is that one, MP_ETRUNC */
    {
        body b;
        msgpack_packer *pk = begin(&b);
        msgpack_pack_array(pk, 6);
        msgpack_pack_uint8(pk, 0);
        msgpack_pack_uint8(pk, 2);
        msgpack_pack_uint8(pk, OP_PUT);
        pack_cstr(pk, "r");
        pack_cstr(pk, "k");
        raw(&b, "\xd9\x0a" "abc", 5); /* str8 of 10, 3 present */
        uint32_t len;
        const uint8_t *p = finish(&b, &len);
        msg_request req;
        int err = 0;
        ck_assert_int_eq(msg_request_head(p, len, &req), 0);
        ck_assert_int_eq(msg_request_args(&req, 32, &err), MSG_EARGS);
        ck_assert_int_eq(req.bad_arg, 2);
        ck_assert_int_eq(err, MP_ETRUNC);
        done(&b);
    }
    /* the array claims more arguments than the body holds */
    {
        static const uint8_t p[] = {0x96, 0x00, 0x03, 0x14, 0xa1, 'r', 0xa1, 'k'};
        msg_request req;
        int err = 0;
        ck_assert_int_eq(msg_request_head(p, sizeof(p), &req), 0);
        ck_assert_uint_eq(req.argc, 3);
        ck_assert_int_eq(msg_request_args(&req, 32, &err), MSG_EARGS);
        ck_assert_int_eq(req.bad_arg, 2);
        ck_assert_int_eq(err, MP_ETRUNC);
    }
}
END_TEST

START_TEST(request_depth)
{
    for (int depth = 30; depth <= 34; depth++) {
        body b;
        msgpack_packer *pk = begin(&b);
        msgpack_pack_array(pk, 6);
        msgpack_pack_uint8(pk, 0);
        msgpack_pack_uint8(pk, 3);
        msgpack_pack_uint8(pk, OP_PUT);
        pack_cstr(pk, "r");
        pack_cstr(pk, "k");
        for (int i = 0; i < depth; i++)
            msgpack_pack_array(pk, 1);
        msgpack_pack_nil(pk);
        uint32_t len;
        const uint8_t *p = finish(&b, &len);
        msg_request req;
        int err = 0;
        ck_assert_int_eq(msg_request_head(p, len, &req), 0);
        int rc = msg_request_args(&req, 32, &err);
        if (depth <= 32) {
            ck_assert_msg(rc == 0, "depth %d rejected", depth);
        } else {
            ck_assert_int_eq(rc, MSG_EARGS);
            ck_assert_int_eq(req.bad_arg, 2);
            ck_assert_int_eq(err, MP_EDEPTH);
        }
        done(&b);
    }
}
END_TEST

START_TEST(request_trailing_bytes)
{
    body b;
    msgpack_packer *pk = begin(&b);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 4);
    msgpack_pack_uint8(pk, OP_SIZE);
    pack_cstr(pk, "r");
    msgpack_pack_nil(pk); /* one object more than the array holds */
    uint32_t len;
    const uint8_t *p = finish(&b, &len);
    msg_request req;
    int err = 0;
    ck_assert_int_eq(msg_request_head(p, len, &req), 0);
    ck_assert_uint_eq(req.id, 4);
    ck_assert_int_eq(msg_request_args(&req, 32, &err), MSG_EARGS);
    ck_assert_int_eq(req.bad_arg, -1);
    ck_assert_int_eq(err, MP_EINVALID);
    done(&b);
}
END_TEST

START_TEST(request_arg_count)
{
    for (uint32_t argc = 0; argc <= MSG_MAX_ARGS + 3; argc++) {
        body b;
        msgpack_packer *pk = begin(&b);
        msgpack_pack_array(pk, 3 + argc);
        msgpack_pack_uint8(pk, 0);
        msgpack_pack_uint8(pk, 5);
        msgpack_pack_uint8(pk, OP_PUT);
        for (uint32_t i = 0; i < argc; i++)
            msgpack_pack_uint32(pk, i);
        uint32_t len;
        const uint8_t *p = finish(&b, &len);
        msg_request req;
        int err = 0;
        ck_assert_int_eq(msg_request_head(p, len, &req), 0);
        ck_assert_uint_eq(req.argc, argc);
        int rc = msg_request_args(&req, 32, &err);
        if (argc <= MSG_MAX_ARGS) {
            ck_assert_int_eq(rc, 0);
            for (uint32_t i = 0; i < argc; i++) {
                mp_cursor c;
                uint64_t v;
                mp_cursor_init(&c, req.arg[i].p, req.arg[i].n);
                ck_assert_int_eq(mp_read_uint(&c, &v), 0);
                ck_assert_uint_eq(v, i);
            }
        } else {
            ck_assert_int_eq(rc, MSG_EARGS);
            ck_assert_int_eq(err, MP_ERANGE);
            ck_assert_int_eq(req.bad_arg, -1);
        }
        done(&b);
    }
}
END_TEST

/* ---- responses ---- */

START_TEST(response_ok_with_results)
{
    body b;
    msgpack_packer *pk = begin(&b);
    msgpack_pack_array(pk, 5);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint64(pk, UINT64_MAX);
    msgpack_pack_uint8(pk, ST_OK);
    pack_cstr(pk, "value");
    msgpack_pack_uint32(pk, 77);
    uint32_t len;
    const uint8_t *p = finish(&b, &len);
    ck_assert_int_eq(msg_server_kind(p, len), MSG_RESPONSE);
    msg_response r;
    ck_assert_int_eq(msg_response_parse(p, len, 32, &r), 0);
    ck_assert(r.id == UINT64_MAX);
    ck_assert_int_eq(r.status, ST_OK);
    ck_assert_uint_eq(r.nresults, 2);
    ck_assert_ptr_null(r.errmsg);
    const uint8_t *s;
    uint32_t n;
    uint64_t u;
    ck_assert_int_eq(mp_read_str(&r.results, &s, &n), 0);
    ck_assert_uint_eq(n, 5);
    ck_assert_mem_eq(s, "value", 5);
    ck_assert_int_eq(mp_read_uint(&r.results, &u), 0);
    ck_assert_uint_eq(u, 77);
    ck_assert_uint_eq(mp_left(&r.results), 0);
    done(&b);
}
END_TEST

START_TEST(response_errors)
{
    /* an error with its message */
    body b;
    msgpack_packer *pk = begin(&b);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, 42);
    msgpack_pack_uint8(pk, ST_UNKNOWN_REGION);
    pack_cstr(pk, "region 'x' not found");
    uint32_t len;
    const uint8_t *p = finish(&b, &len);
    msg_response r;
    ck_assert_int_eq(msg_response_parse(p, len, 32, &r), 0);
    ck_assert_uint_eq(r.id, 42);
    ck_assert_int_eq(r.status, ST_UNKNOWN_REGION);
    ck_assert_ptr_nonnull(r.errmsg);
    ck_assert_uint_eq(r.errmsg_len, strlen("region 'x' not found"));
    ck_assert_mem_eq(r.errmsg, "region 'x' not found", r.errmsg_len);
    done(&b);

    /* an error whose message is not a str, or missing: errmsg NULL */
    pk = begin(&b);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, ST_BAD_REQUEST);
    msgpack_pack_uint8(pk, 5);
    p = finish(&b, &len);
    ck_assert_int_eq(msg_response_parse(p, len, 32, &r), 0);
    ck_assert_ptr_null(r.errmsg);
    done(&b);
    pk = begin(&b);
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, ST_INTERNAL);
    p = finish(&b, &len);
    ck_assert_int_eq(msg_response_parse(p, len, 32, &r), 0);
    ck_assert_ptr_null(r.errmsg);
    ck_assert_uint_eq(r.nresults, 0);
    done(&b);

    /* NOT_FOUND is an outcome: a str result is not an error message */
    pk = begin(&b);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, ST_NOT_FOUND);
    pack_cstr(pk, "x");
    p = finish(&b, &len);
    ck_assert_int_eq(msg_response_parse(p, len, 32, &r), 0);
    ck_assert_ptr_null(r.errmsg);
    done(&b);
}
END_TEST

START_TEST(response_malformed)
{
    static const struct {
        const char *what;
        uint8_t b[16];
        size_t n;
        int want;
    } T[] = {
        {"empty", {0}, 0, MSG_EMALFORMED},
        {"not an array", {0xc0}, 1, MSG_EMALFORMED},
        {"short array", {0x92, 0x01, 0x01}, 3, MSG_EMALFORMED},
        {"kind 0", {0x93, 0x00, 0x01, 0x00}, 4, MSG_EKIND},
        {"kind 2", {0x93, 0x02, 0x01, 0x00}, 4, MSG_EKIND},
        {"status > 0xffff", {0x93, 0x01, 0x01, 0xce, 0x00, 0x01, 0x00, 0x00}, 8, MSG_EMALFORMED},
        {"status negative", {0x93, 0x01, 0x01, 0xff}, 4, MSG_EMALFORMED},
        {"truncated result", {0x94, 0x01, 0x01, 0x00, 0xa5, 'a'}, 6, MSG_EMALFORMED},
        {"trailing bytes", {0x93, 0x01, 0x01, 0x00, 0xc0}, 5, MSG_EMALFORMED},
        {"0xc1 result", {0x94, 0x01, 0x01, 0x00, 0xc1}, 5, MSG_EMALFORMED},
    };
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++) {
        uint8_t *p = malloc(T[i].n ? T[i].n : 1);
        memcpy(p, T[i].b, T[i].n);
        msg_response r;
        int rc = msg_response_parse(p, (uint32_t)T[i].n, 32, &r);
        ck_assert_msg(rc == T[i].want, "%s: got %d, want %d", T[i].what, rc, T[i].want);
        free(p);
    }
    /* status 0xffff is still accepted */
    static const uint8_t maxst[] = {0x93, 0x01, 0x01, 0xcd, 0xff, 0xff};
    msg_response r;
    ck_assert_int_eq(msg_response_parse(maxst, sizeof(maxst), 32, &r), 0);
    ck_assert_int_eq(r.status, 0xffff);
}
END_TEST

START_TEST(response_depth)
{
    /* a result nested max_depth deep is fine; one more is malformed */
    for (int depth = 3; depth <= 5; depth++) {
        body b;
        msgpack_packer *pk = begin(&b);
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint8(pk, 1);
        msgpack_pack_uint8(pk, 1);
        msgpack_pack_uint8(pk, 0);
        for (int i = 0; i < depth; i++)
            msgpack_pack_array(pk, 1);
        msgpack_pack_nil(pk);
        uint32_t len;
        const uint8_t *p = finish(&b, &len);
        msg_response r;
        int rc = msg_response_parse(p, len, 4, &r);
        ck_assert_int_eq(rc, depth <= 4 ? 0 : MSG_EMALFORMED);
        done(&b);
    }
}
END_TEST

START_TEST(server_kind_and_push)
{
    static const uint8_t push[] = {0x94, 0x02, 0x07, 0x03, 0xa1, 'x'};
    static const uint8_t req[] = {0x93, 0x00, 0x07, 0x03};
    ck_assert_int_eq(msg_server_kind(push, sizeof(push)), MSG_PUSH);
    ck_assert_int_eq(msg_server_kind(req, sizeof(req)), MSG_EMALFORMED);
    ck_assert_int_eq(msg_server_kind(push, 0), MSG_EMALFORMED);
    msg_push m;
    ck_assert_int_eq(msg_push_parse(push, sizeof(push), 32, &m), 0);
    ck_assert_uint_eq(m.subscription, 7);
    ck_assert_uint_eq(m.event_kind, 3);
    ck_assert_uint_eq(m.nitems, 1);
    msg_response r;
    ck_assert_int_eq(msg_response_parse(push, sizeof(push), 32, &r), MSG_EKIND);
    static const uint8_t resp[] = {0x93, 0x01, 0x07, 0x00};
    ck_assert_int_eq(msg_push_parse(resp, sizeof(resp), 32, &m), MSG_EKIND);
}
END_TEST

START_TEST(proto_names)
{
    static const int ops[] = {OP_HELLO, OP_PING, OP_SERVER_INFO, OP_REGION_CREATE,
                              OP_REGION_DESTROY, OP_REGION_LIST, OP_REGION_DESCRIBE, OP_PUT,
                              OP_GET, OP_REMOVE, OP_CONTAINS_KEY, OP_PUT_ALL, OP_GET_ALL,
                              OP_SIZE, OP_GET_ENTRY, OP_KEYS, OP_ENTRIES, OP_CLEAR};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        ck_assert_ptr_nonnull(proto_op_name(ops[i]));
    ck_assert_str_eq(proto_op_name(OP_PUT_ALL), "PUT_ALL");
    ck_assert_ptr_null(proto_op_name(0));
    ck_assert_ptr_null(proto_op_name(99));
    for (int st = 0; st <= 21; st++) {
        const char *n = proto_status_name(st);
        ck_assert_ptr_nonnull(n);
        if ((st >= 3 && st <= 9))
            ck_assert_str_eq(n, "UNKNOWN_STATUS");
        else
            ck_assert_str_ne(n, "UNKNOWN_STATUS");
    }
    ck_assert_str_eq(proto_status_name(ST_TOO_DEEP), "TOO_DEEP");
}
END_TEST

static Suite *msg_suite(void)
{
    Suite *s = suite_create("msg");
    TCase *tc = tu_tcase(s, "request", 30);
    tcase_add_test(tc, request_head_and_args);
    tcase_add_test(tc, request_without_args);
    tcase_add_test(tc, request_head_malformed);
    tcase_add_test(tc, request_bad_arg_index);
    tcase_add_test(tc, request_depth);
    tcase_add_test(tc, request_trailing_bytes);
    tcase_add_test(tc, request_arg_count);
    tc = tu_tcase(s, "response", 30);
    tcase_add_test(tc, response_ok_with_results);
    tcase_add_test(tc, response_errors);
    tcase_add_test(tc, response_malformed);
    tcase_add_test(tc, response_depth);
    tcase_add_test(tc, server_kind_and_push);
    tcase_add_test(tc, proto_names);
    return s;
}

int main(void)
{
    Suite *s = msg_suite();
    return tu_run(&s, 1);
}
