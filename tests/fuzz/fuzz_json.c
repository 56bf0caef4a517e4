/* fuzz_json - libFuzzer target for the CLI's JSON <-> MessagePack converter
 * (tools/cli/json_mp.h): json_mp_parse, jw_mp / json_mp_to_json, utf8_valid.
 *
 * The input is used twice:
 *   - as JSON text. When json_mp_parse accepts it, the MessagePack it made
 *     is printed back as JSON (compact and indented), and that JSON must
 *     parse again to the same bytes. JSON text only ever becomes str-keyed
 *     maps, arrays, UTF-8 str, bool, nil, int/uint and finite float64, none
 *     of which is among the mappings that do not round-trip (json_mp.h,
 *     docs/cli.md: bin, ext, float32, non-string map keys, invalid UTF-8,
 *     NaN and Infinity), so the round trip must be exact. When it refuses
 *     the text, the output buffer must be as it was and the error filled in.
 *   - as MessagePack, the way the CLI meets a stored value: checked with the
 *     bounded checker mp_check_one, then printed. Accepted input must print
 *     without error (but for MP_EDEPTH, see MAX_GROWTH) as valid UTF-8; the
 *     JSON it gives must parse again unless the map had keys that print the
 *     same (MessagePack allows duplicates, JSON input here does not), and
 *     then round-trip exactly.
 *
 * Besides crashes and sanitizer reports, the target aborts when one of these
 * invariants breaks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mp.h"
#include "tools/cli/json_mp.h"

#define FUZZ_NAME "fuzz_json"
#include "fuzz_check.h"

/* A byte put in front of every output buffer: the functions append, and on
 * failure must leave what was there. */
#define SENTINEL 0xee

/* Compact JSON is at most this many times as long as the MessagePack it
 * comes from (plus a little). Escaping is what makes it longer: a control
 * character in a str becomes \u00XX, and a map key that is not a string
 * becomes its JSON text, escaped once more for every such key it sits in,
 * which the printer allows only a few levels deep (beyond that the output
 * would double with every level, so it fails with MP_EDEPTH). */
#define MAX_GROWTH 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks the form of JSON that json_mp_to_json appended to out after the
 * sentinel: NUL-terminated outside its length, no other NUL, valid UTF-8. */
static void check_printed(const buf_t *out)
{
    CHECK(out->data[0] == SENTINEL);
    CHECK(out->data[out->len] == 0);
    CHECK(strlen((const char *)out->data + 1) == out->len - 1);
    CHECK(utf8_valid(out->data + 1, out->len - 1));
}

/* Prints the MessagePack in mp (after the sentinel; one well-formed object)
 * as JSON with indent into out (after the sentinel). */
static void print_json(const buf_t *mp, int indent, buf_t *out)
{
    buf_reset(out);
    CHECK(buf_append(out, (const uint8_t[]){SENTINEL}, 1) == 0);
    CHECK(json_mp_to_json(mp->data + 1, mp->len - 1, out, indent) == 0);
    check_printed(out);
}

/* Parses text[0, n) into out after the sentinel. Returns 0 or -1, checking
 * what json_mp_parse promises either way. err may be NULL. */
static int parse_json(const void *text, size_t n, buf_t *out, json_mp_error *err)
{
    buf_reset(out);
    CHECK(buf_append(out, (const uint8_t[]){SENTINEL}, 1) == 0);
    int rc = json_mp_parse(text, n, out, err);
    CHECK(rc == 0 || rc == -1);
    CHECK(out->data[0] == SENTINEL);
    if (rc != 0) {
        CHECK(out->len == 1);
        if (err) {
            CHECK(err->offset <= n && err->line >= 1 && err->column >= 1);
            CHECK(memchr(err->text, 0, sizeof err->text) && err->text[0] != 0);
        }
        return -1;
    }
    CHECK(mp_check_one(out->data + 1, out->len - 1, JSON_MP_MAX_DEPTH) == 0);
    return 0;
}

/* mp1 (after the sentinel) came from json_mp_parse: printed as JSON and
 * parsed again, compact and indented, it must give the same bytes. */
static void check_round_trip(const buf_t *mp1)
{
    buf_t json, mp2;
    buf_init(&json);
    buf_init(&mp2);
    for (int indent = 0; indent <= 2; indent += 2) {
        print_json(mp1, indent, &json);
        json_mp_error err;
        if (parse_json(json.data + 1, json.len - 1, &mp2, &err) != 0) {
            fprintf(stderr, "fuzz_json: printed JSON does not parse: %s: %.*s\n", err.text,
                    (int)(json.len - 1), (const char *)json.data + 1);
            abort();
        }
        CHECK(mp2.len == mp1->len && memcmp(mp2.data, mp1->data, mp1->len) == 0);
    }
    buf_free(&json);
    buf_free(&mp2);
}

/* The input as JSON text. */
static void fuzz_json_text(const uint8_t *data, size_t size)
{
    buf_t mp;
    buf_init(&mp);
    json_mp_error err;
    if (parse_json(data, size, &mp, &err) == 0)
        check_round_trip(&mp);
    /* err is optional */
    buf_t again;
    buf_init(&again);
    CHECK(parse_json(data, size, &again, NULL) == (mp.len > 1 ? 0 : -1));
    CHECK(again.len == mp.len && memcmp(again.data, mp.data, mp.len) == 0);
    buf_free(&again);
    buf_free(&mp);
}

/* The input as a MessagePack value. The guard's depth leaves room for the
 * object an ext becomes, so the JSON stays within the parser's depth. */
static void fuzz_messagepack(const uint8_t *data, size_t size)
{
    if (mp_check_one(data, size, JSON_MP_MAX_DEPTH - 1) != 0)
        return;
    buf_t json, back;
    buf_init(&json);
    buf_init(&back);
    CHECK(buf_append(&json, (const uint8_t[]){SENTINEL}, 1) == 0);
    int rc = json_mp_to_json(data, size, &json, 0);
    CHECK(rc == 0 || rc == MP_EDEPTH); /* MP_EDEPTH: keys within keys, see MAX_GROWTH */
    if (rc != 0) {
        CHECK(json.len == 1 && json.data[0] == SENTINEL);
    } else {
        check_printed(&json);
        CHECK(json.len - 1 <= MAX_GROWTH * size + 64);
        json_mp_error err;
        if (parse_json(json.data + 1, json.len - 1, &back, &err) == 0)
            check_round_trip(&back);
        else
            CHECK(strncmp(err.text, "duplicate key", 13) == 0);
    }
    buf_free(&json);
    buf_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_json_text(data, size);
    fuzz_messagepack(data, size);
    return 0;
}
