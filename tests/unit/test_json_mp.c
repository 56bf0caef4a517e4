/* Unit tests for tools/cli/json_mp.h: the CLI's JSON <-> MessagePack
 * conversion (docs/cli.md, "Values, keys and JSON"), its JSON writer,
 * base64 and the UTF-8 check. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli/json_mp.h"
#include "tu.h"

/* Parses text (copied to an exact-size block) and returns the MessagePack
 * bytes as a hex string in hex (or "ERR"). */
static void parse_hex(const char *text, char *hex, size_t cap)
{
    size_t n = strlen(text);
    char *t = malloc(n ? n : 1);
    memcpy(t, text, n);
    buf_t out;
    buf_init(&out);
    ck_assert_int_eq(buf_append(&out, "\xee", 1), 0); /* pre-existing content is kept */
    json_mp_error err;
    int rc = json_mp_parse(t, n, &out, &err);
    free(t);
    if (rc != 0) {
        ck_assert_uint_eq(out.len, 1); /* restored on error */
        ck_assert_int_ge(err.line, 1);
        ck_assert_int_ge(err.column, 1);
        ck_assert_uint_gt(strlen(err.text), 0);
        snprintf(hex, cap, "ERR");
        buf_free(&out);
        return;
    }
    ck_assert_uint_eq(out.data[0], 0xee);
    size_t k = 0;
    for (size_t i = 1; i < out.len && k + 3 < cap; i++)
        k += (size_t)snprintf(hex + k, cap - k, "%02x", out.data[i]);
    hex[k] = 0;
    buf_free(&out);
}

static const struct {
    const char *json;
    const char *mp_hex; /* "ERR": must be rejected */
} parse_cases[] = {
    {"0", "00"},
    {"127", "7f"},
    {"128", "cc80"},
    {"255", "ccff"},
    {"256", "cd0100"},
    {"65536", "ce00010000"},
    {"4294967296", "cf0000000100000000"},
    {"18446744073709551615", "cfffffffffffffffff"},
    {"18446744073709551616", "cb43f0000000000000"}, /* above uint64: float64 */
    {"-1", "ff"},
    {"-32", "e0"},
    {"-33", "d0df"},
    {"-128", "d080"},
    {"-129", "d1ff7f"},
    {"-2147483649", "d3ffffffff7fffffff"},
    {"-9223372036854775808", "d38000000000000000"},
    {"-9223372036854775809", "cbc3e0000000000000"},
    {"1.5", "cb3ff8000000000000"},
    {"-0.0", "cb8000000000000000"},
    {"1e2", "cb4059000000000000"},
    {"1E+2", "cb4059000000000000"},
    {"2.5e-1", "cb3fd0000000000000"},
    {"true", "c3"},
    {"false", "c2"},
    {"null", "c0"},
    {"\"\"", "a0"},
    {"\"a\"", "a161"},
    {"\"\\u00e9\"", "a2c3a9"},
    {"\"\\ud83d\\ude00\"", "a4f09f9880"},
    {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "a8225c2f080c0a0d09"},
    {"\"h\xc3\xa9\"", "a368c3a9"},
    {"[]", "90"},
    /* BUG REPRODUCER (tools/cli/json_mp.c find_duplicate): an empty object
     * computes j->keys + first with j->keys NULL: undefined behaviour,
     * fatal under UBSan. Also hit by round_trip_generated. */
    {"{}", "80"},
    {"[{}]", "9180"},
    {"{\"a\":{}}", "81a16180"},
    {"[1,[2,[3]]]", "920192029103"},
    {"{\"b\":1,\"a\":2}", "82a16201a16102"}, /* input order kept */
    {"[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]", "dc0010000102030405060708090a0b0c0d0e0f"},
    {"  \n\t[ 1 , 2 ]\r\n ", "920102"},
    /* rejected */
    {"", "ERR"},
    {"   ", "ERR"},
    {"1 2", "ERR"},
    {"[1,]", "ERR"},
    {"[1", "ERR"},
    {"{\"a\"}", "ERR"},
    {"{\"a\":1,}", "ERR"},
    {"{1:2}", "ERR"},
    {"{\"a\":1,\"a\":2}", "ERR"}, /* duplicate key */
    {"01", "ERR"},
    {"-", "ERR"},
    {"1.", "ERR"},
    {".5", "ERR"},
    {"1e", "ERR"},
    {"+1", "ERR"},
    {"1e999", "ERR"},
    {"NaN", "ERR"},
    {"Infinity", "ERR"},
    {"tru", "ERR"},
    {"nul", "ERR"},
    {"'a'", "ERR"},
    {"\"unterminated", "ERR"},
    {"\"a\nb\"", "ERR"},          /* raw control character */
    {"\"\\x41\"", "ERR"},         /* unknown escape */
    {"\"\\u12\"", "ERR"},         /* short \u */
    {"\"\\ud800\"", "ERR"},       /* lone high surrogate */
    {"\"\\udc00\"", "ERR"},       /* lone low surrogate */
    {"\"\xc3\"", "ERR"},          /* truncated UTF-8 */
    {"\"\xc0\x80\"", "ERR"},      /* overlong */
    {"\"\xed\xa0\x80\"", "ERR"},  /* encoded surrogate */
    {"\"\xff\"", "ERR"},
};

START_TEST(parse_exact_encodings)
{
    const char *json = parse_cases[_i].json;
    char hex[512];
    parse_hex(json, hex, sizeof(hex));
    ck_assert_msg(strcmp(hex, parse_cases[_i].mp_hex) == 0, "json_mp_parse('%s') = %s, want %s",
                  json, hex, parse_cases[_i].mp_hex);
}
END_TEST

START_TEST(parse_depth_limit)
{
    for (int depth = JSON_MP_MAX_DEPTH - 1; depth <= JSON_MP_MAX_DEPTH + 1; depth++) {
        size_t n = (size_t)depth * 2 + 1;
        char *t = malloc(n);
        memset(t, '[', (size_t)depth);
        t[depth] = '1';
        memset(t + depth + 1, ']', (size_t)depth);
        buf_t out;
        buf_init(&out);
        int rc = json_mp_parse(t, n, &out, NULL); /* err may be NULL */
        ck_assert_msg((rc == 0) == (depth <= JSON_MP_MAX_DEPTH), "depth %d: rc %d", depth, rc);
        if (rc == 0)
            ck_assert_int_eq(mp_check_one(out.data, out.len, JSON_MP_MAX_DEPTH), 0);
        buf_free(&out);
        free(t);
    }
    /* far deeper: refused, no stack overflow */
    size_t n = 1000000;
    char *t = malloc(n);
    memset(t, '[', n);
    buf_t out;
    buf_init(&out);
    ck_assert_int_eq(json_mp_parse(t, n, &out, NULL), -1);
    buf_free(&out);
    free(t);
}
END_TEST

START_TEST(parse_error_position)
{
    const char *t = "{\n  \"a\": [1, 2,\n   x]\n}";
    buf_t out;
    buf_init(&out);
    json_mp_error err;
    ck_assert_int_eq(json_mp_parse(t, strlen(t), &out, &err), -1);
    ck_assert_int_eq(err.line, 3);
    ck_assert_int_eq(err.column, 4);
    ck_assert_uint_eq(err.offset, (size_t)(strchr(t, 'x') - t));
    buf_free(&out);
}
END_TEST

/* ---- MessagePack -> JSON ---- */

static char *to_json(const void *mp, size_t n, int *rc)
{
    buf_t out;
    buf_init(&out);
    *rc = json_mp_to_json(mp, n, &out, 0);
    if (*rc) {
        buf_free(&out);
        return NULL;
    }
    char *s = strndup((const char *)out.data, out.len);
    ck_assert_uint_eq(strlen((const char *)out.data), out.len); /* NUL-terminated */
    buf_free(&out);
    return s;
}

static const struct {
    const char *what;
    const char *mp;
    size_t n;
    const char *json;
} to_json_cases[] = {
    {"uint64 max", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9, "18446744073709551615"},
    {"int64 min", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9, "-9223372036854775808"},
    {"1.0", "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", 9, "1.0"},
    {"0.1", "\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a", 9, "0.1"},
    {"1e300", "\xcb\x7e\x37\xe4\x3c\x88\x00\x75\x9c", 9, "1e+300"},
    {"float32 1.5", "\xca\x3f\xc0\x00\x00", 5, "1.5"},
    {"NaN", "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 9, "null"},
    {"+Inf", "\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", 9, "null"},
    {"bin", "\xc4\x03" "foo", 5, "\"Zm9v\""},
    {"ext", "\xd4\x05\xff", 3, "{\"$ext\":5,\"base64\":\"/w==\"}"},
    {"int map key", "\x81\x01\xa1x", 4, "{\"1\":\"x\"}"},
    {"array map key", "\x81\x92\x01\x02\xc0", 5, "{\"[1,2]\":null}"},
    {"bin map key", "\x81\xc4\x01\x00\x01", 5, "{\"AA==\":1}"},
    {"invalid UTF-8 str", "\xa2\xff" "a", 3, "\"\xef\xbf\xbd" "a\""},
    {"escapes", "\xa4\"\\\n\x01", 5, "\"\\\"\\\\\\n\\u0001\""},
    {"empty containers", "\x92\x90\x80", 3, "[[],{}]"},
    {"nil/bools", "\x93\xc0\xc2\xc3", 4, "[null,false,true]"},
};

START_TEST(to_json_mapping)
{
    for (size_t i = 0; i < sizeof(to_json_cases) / sizeof(to_json_cases[0]); i++) {
        int rc;
        char *s = to_json(to_json_cases[i].mp, to_json_cases[i].n, &rc);
        ck_assert_msg(rc == 0, "%s: rc %d", to_json_cases[i].what, rc);
        ck_assert_msg(strcmp(s, to_json_cases[i].json) == 0, "%s: got %s, want %s",
                      to_json_cases[i].what, s, to_json_cases[i].json);
        free(s);
    }
    int rc;
    ck_assert_ptr_null(to_json("\xc0\xc0", 2, &rc)); /* trailing bytes */
    ck_assert_int_eq(rc, MP_EINVALID);
    ck_assert_ptr_null(to_json("\x92\x01", 2, &rc)); /* truncated */
    ck_assert_int_eq(rc, MP_ETRUNC);
    ck_assert_ptr_null(to_json("\xc1", 1, &rc));
    ck_assert_int_eq(rc, MP_EINVALID);
}
END_TEST

/* BUG REPRODUCER (tools/cli/json_mp.c mp_key_to_jw, found by fuzz_json):
 * a map key that is not a string is written as its JSON text, escaped once
 * more for every such key around it, so maps nested as keys of maps doubled
 * the output with every level: 2k+1 bytes of MessagePack made about 2^k
 * bytes of JSON (30 levels, 61 bytes: gigabytes; `agate get` of such a value
 * ran out of memory). Keys within keys are now refused beyond 4 levels. */
static void nested_key_maps(int levels, buf_t *mp)
{
    buf_reset(mp);
    for (int i = 0; i < levels; i++)
        ck_assert_int_eq(buf_append(mp, "\x81", 1), 0); /* each map the key of the one before */
    for (int i = 0; i <= levels; i++)
        ck_assert_int_eq(buf_append(mp, "\xc0", 1), 0); /* the innermost key, then the values */
}

START_TEST(to_json_nested_keys)
{
    buf_t mp;
    buf_init(&mp);
    nested_key_maps(4, &mp); /* the deepest accepted */
    int rc;
    char *s = to_json(mp.data, mp.len, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(s, "{\"{\\\"{\\\\\\\"{\\\\\\\\\\\\\\\"null\\\\\\\\\\\\\\\":null}"
                        "\\\\\\\":null}\\\":null}\":null}");
    free(s);
    for (int levels = 5; levels <= 30; levels += 25) {
        nested_key_maps(levels, &mp);
        buf_t out;
        buf_init(&out);
        ck_assert_int_eq(buf_append(&out, "x", 1), 0);
        ck_assert_int_eq(json_mp_to_json(mp.data, mp.len, &out, 0), MP_EDEPTH);
        ck_assert_uint_eq(out.len, 1); /* restored */
        buf_free(&out);
    }
    /* other keys inside such keys count as well: an array key holding a map
     * whose key is an integer is two levels */
    ck_assert_ptr_null(to_json("\x81\x91\x81\x81\x81\x81\x01\xc0\xc0\xc0\xc0\xc0", 12, &rc));
    ck_assert_int_eq(rc, MP_EDEPTH);
    s = to_json("\x81\x91\x81\x01\xc0\xc0", 6, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(s, "{\"[{\\\"1\\\":null}]\":null}");
    free(s);
    buf_free(&mp);
}
END_TEST

/* JSON -> MessagePack -> JSON -> MessagePack gives the same bytes, for
 * generated documents (the float text must read back to the same bits). */
static uint64_t rs = 88172645463325252ull;
static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static void gen(buf_t *b, int depth)
{
    char tmp[64];
    int pick = (int)(rnd() % (depth > 4 ? 7 : 9));
    switch (pick) {
    case 0: buf_append(b, "null", 4); break;
    case 1: {
        const char *t = rnd() & 1 ? "true" : "false";
        buf_append(b, t, strlen(t));
        break;
    }
    case 2: buf_append(b, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)(rnd() >> (rnd() % 64)))); break;
    case 3: buf_append(b, tmp, (size_t)snprintf(tmp, sizeof(tmp), "-%llu", (unsigned long long)(rnd() >> (1 + rnd() % 63)))); break;
    case 4: {
        double d;
        uint64_t u = rnd();
        memcpy(&d, &u, 8);
        if (!isfinite(d))
            d = 0.5;
        buf_append(b, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%.17g", d));
        if (!strpbrk(tmp, ".eE"))
            buf_append(b, ".0", 2);
        break;
    }
    case 5: {
        const char *t = "\"s\\u00e9\\ud83d\\ude00 \\\"q\\\"\"";
        buf_append(b, t, strlen(t));
        break;
    }
    case 6: buf_append(b, "\"\"", 2); break;
    case 7: {
        int n = (int)(rnd() % 5);
        buf_append(b, "[", 1);
        for (int i = 0; i < n; i++) {
            if (i)
                buf_append(b, ",", 1);
            gen(b, depth + 1);
        }
        buf_append(b, "]", 1);
        break;
    }
    default: {
        int n = (int)(rnd() % 5);
        buf_append(b, "{", 1);
        for (int i = 0; i < n; i++) {
            if (i)
                buf_append(b, ",", 1);
            buf_append(b, tmp, (size_t)snprintf(tmp, sizeof(tmp), "\"k%d\":", i));
            gen(b, depth + 1);
        }
        buf_append(b, "}", 1);
        break;
    }
    }
}

START_TEST(round_trip_generated)
{
    for (int round = 0; round < 2000; round++) {
        buf_t json, mp1, back, mp2;
        buf_init(&json);
        buf_init(&mp1);
        buf_init(&back);
        buf_init(&mp2);
        gen(&json, 0);
        json_mp_error err;
        ck_assert_msg(json_mp_parse((const char *)json.data, json.len, &mp1, &err) == 0,
                      "%.*s: %s", (int)json.len, json.data, err.text);
        ck_assert_int_eq(mp_check_one(mp1.data, mp1.len, 64), 0);
        for (int indent = 0; indent <= 2; indent += 2) {
            buf_reset(&back);
            buf_reset(&mp2);
            ck_assert_int_eq(json_mp_to_json(mp1.data, mp1.len, &back, indent), 0);
            ck_assert_msg(json_mp_parse((const char *)back.data, back.len, &mp2, &err) == 0,
                          "re-parse of %s: %s", back.data, err.text);
            ck_assert_uint_eq(mp2.len, mp1.len);
            ck_assert_mem_eq(mp2.data, mp1.data, mp1.len);
        }
        buf_free(&json);
        buf_free(&mp1);
        buf_free(&back);
        buf_free(&mp2);
    }
}
END_TEST

/* ---- writer, base64, UTF-8 ---- */

START_TEST(writer)
{
    buf_t out;
    buf_init(&out);
    jw_t w;
    jw_init(&w, &out, 0);
    ck_assert_int_eq(jw_begin_object(&w), 0);
    ck_assert_int_eq(jw_ckey(&w, "a"), 0);
    ck_assert_int_eq(jw_int(&w, -5), 0);
    ck_assert_int_eq(jw_ckey(&w, "b"), 0);
    ck_assert_int_eq(jw_begin_array(&w), 0);
    ck_assert_int_eq(jw_uint(&w, UINT64_MAX), 0);
    ck_assert_int_eq(jw_double(&w, 2.0), 0);
    ck_assert_int_eq(jw_bool(&w, true), 0);
    ck_assert_int_eq(jw_null(&w), 0);
    ck_assert_int_eq(jw_cstr(&w, NULL), 0);
    ck_assert_int_eq(jw_str(&w, "q\"", 2), 0);
    ck_assert_int_eq(jw_base64(&w, "foo", 3), 0);
    ck_assert_int_eq(jw_end_array(&w), 0);
    ck_assert_int_eq(jw_end_object(&w), 0);
    ck_assert_int_eq(buf_append(&out, "", 1), 0);
    ck_assert_str_eq((const char *)out.data,
                     "{\"a\":-5,\"b\":[18446744073709551615,2.0,true,null,null,\"q\\\"\",\"Zm9v\"]}");
    jw_free(&w);
    buf_reset(&out);
    /* misuse: a value where a key is expected */
    jw_init(&w, &out, 2);
    ck_assert_int_eq(jw_begin_object(&w), 0);
    ck_assert_int_eq(jw_int(&w, 1), -1);
    jw_free(&w);
    buf_free(&out);
}
END_TEST

START_TEST(base64)
{
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        buf_t b;
        buf_init(&b);
        ck_assert_int_eq(b64_encode(plain[i], strlen(plain[i]), &b), 0);
        ck_assert_uint_eq(b.len, strlen(enc[i]));
        ck_assert(b.len == 0 || memcmp(b.data, enc[i], b.len) == 0);
        buf_reset(&b);
        ck_assert_int_eq(b64_decode(enc[i], strlen(enc[i]), &b), 0);
        ck_assert_uint_eq(b.len, strlen(plain[i]));
        ck_assert(b.len == 0 || memcmp(b.data, plain[i], b.len) == 0);
        /* padding is optional */
        buf_reset(&b);
        size_t n = strlen(enc[i]);
        while (n && enc[i][n - 1] == '=')
            n--;
        ck_assert_int_eq(b64_decode(enc[i], n, &b), 0);
        ck_assert_uint_eq(b.len, strlen(plain[i]));
        buf_free(&b);
    }
    buf_t b;
    buf_init(&b);
    ck_assert_int_eq(buf_append(&b, "x", 1), 0);
    ck_assert_int_eq(b64_decode("Zm9v!", 5, &b), -1);
    ck_assert_uint_eq(b.len, 1); /* restored */
    ck_assert_int_eq(b64_decode("Z m9v", 5, &b), -1);
    ck_assert_uint_eq(b.len, 1);
    /* all 256 byte values */
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    buf_t e;
    buf_init(&e);
    ck_assert_int_eq(b64_encode(all, 256, &e), 0);
    buf_reset(&b);
    ck_assert_int_eq(b64_decode((const char *)e.data, e.len, &b), 0);
    ck_assert_uint_eq(b.len, 256);
    ck_assert_mem_eq(b.data, all, 256);
    buf_free(&e);
    buf_free(&b);
}
END_TEST

START_TEST(utf8)
{
    ck_assert(utf8_valid("", 0));
    ck_assert(utf8_valid("plain ascii", 11));
    ck_assert(utf8_valid("\xc3\xa9", 2));
    ck_assert(utf8_valid("\xe2\x98\x83", 3));
    ck_assert(utf8_valid("\xf0\x9f\x98\x80", 4));
    ck_assert(utf8_valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
    ck_assert(utf8_valid("a\0b", 3));            /* NUL is a character */
    ck_assert(!utf8_valid("\xc3", 1));
    ck_assert(!utf8_valid("\xe2\x98", 2));
    ck_assert(!utf8_valid("\xc0\x80", 2));         /* overlong NUL */
    ck_assert(!utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
    ck_assert(!utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    ck_assert(!utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    ck_assert(!utf8_valid("\x80", 1));
    ck_assert(!utf8_valid("\xff", 1));
}
END_TEST

static Suite *json_suite(void)
{
    Suite *s = suite_create("json_mp");
    TCase *tc = tu_tcase(s, "parse", 30);
    tcase_add_loop_test(tc, parse_exact_encodings, 0,
                        (int)(sizeof(parse_cases) / sizeof(parse_cases[0])));
    tcase_add_test(tc, parse_depth_limit);
    tcase_add_test(tc, parse_error_position);
    tc = tu_tcase(s, "to_json", 30);
    tcase_add_test(tc, to_json_mapping);
    tcase_add_test(tc, to_json_nested_keys);
    tcase_add_test(tc, round_trip_generated);
    tc = tu_tcase(s, "helpers", 30);
    tcase_add_test(tc, writer);
    tcase_add_test(tc, base64);
    tcase_add_test(tc, utf8);
    return s;
}

int main(void)
{
    Suite *s = json_suite();
    return tu_run(&s, 1);
}
