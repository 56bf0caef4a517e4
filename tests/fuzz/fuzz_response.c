/* fuzz_response - libFuzzer target for the client's input path: the
 * server-to-client envelope (msg_server_kind, msg_response_parse,
 * msg_push_parse) and the typed readers a client uses on results.
 *
 * Input layout: byte 0 picks the depth limit; the rest is one frame body. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mp.h"
#include "common/msg.h"
#include "common/proto.h"

#define FUZZ_NAME "fuzz_response"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads one result with whichever typed reader fits, like a client would. */
static void read_result(mp_cursor *c, const uint8_t *lo, const uint8_t *hi)
{
    mp_type t;
    if (mp_peek_type(c, &t))
        return;
    mp_cursor probe = *c;
    bool b;
    uint64_t u;
    int64_t i;
    double d;
    const uint8_t *p;
    uint32_t n;
    switch (t) {
    case MP_NIL: CHECK(mp_read_nil(&probe) == 0); break;
    case MP_BOOL: CHECK(mp_read_bool(&probe, &b) == 0); break;
    case MP_UINT:
        CHECK(mp_read_uint(&probe, &u) == 0);
        probe = *c;
        CHECK(mp_read_double(&probe, &d) == 0);
        probe = *c;
        CHECK(mp_read_int(&probe, &i) == (u <= INT64_MAX ? 0 : MP_ERANGE));
        break;
    case MP_INT:
        CHECK(mp_read_int(&probe, &i) == 0 && i < 0);
        probe = *c;
        CHECK(mp_read_uint(&probe, &u) == MP_ERANGE);
        break;
    case MP_FLOAT:
    case MP_DOUBLE: CHECK(mp_read_double(&probe, &d) == 0); break;
    case MP_STR:
        CHECK(mp_read_str(&probe, &p, &n) == 0 && p >= lo && p + n <= hi);
        break;
    case MP_BIN:
        CHECK(mp_read_bytes(&probe, &p, &n, &b) == 0 && !b && p >= lo && p + n <= hi);
        probe = *c;
        CHECK(mp_read_str(&probe, &p, &n) == MP_ETYPE);
        break;
    case MP_ARRAY: CHECK(mp_read_array(&probe, &n) == 0); break;
    case MP_MAP: CHECK(mp_read_map(&probe, &n) == 0); break;
    case MP_EXT: break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size - 1 > UINT32_MAX)
        return 0;
    int depth = 1 + data[0] % 40;
    const uint8_t *body = data + 1;
    uint32_t len = (uint32_t)(size - 1);

    int kind = msg_server_kind(body, len);
    CHECK(kind == MSG_RESPONSE || kind == MSG_PUSH || kind == MSG_EMALFORMED);
    bool well_formed = mp_check_one(body, len, depth + 1) == 0;

    msg_response r;
    int rc = msg_response_parse(body, len, depth, &r);
    if (rc == 0) {
        CHECK(well_formed);
        CHECK(kind == MSG_RESPONSE);
        CHECK(r.status >= 0 && r.status <= 0xffff);
        CHECK(r.results.p >= body && r.results.end == body + len);
        if (r.errmsg) {
            CHECK(r.status >= ST_BAD_REQUEST && r.nresults >= 1);
            CHECK(r.errmsg >= body && r.errmsg + r.errmsg_len <= body + len);
        }
        /* the results are nresults well-formed objects filling the rest */
        mp_cursor c = r.results;
        for (uint32_t i = 0; i < r.nresults; i++) {
            read_result(&c, body, body + len);
            CHECK(mp_skip(&c, depth) == 0);
        }
        CHECK(mp_left(&c) == 0);
    } else {
        CHECK(rc == MSG_EMALFORMED || rc == MSG_EKIND);
        if (rc == MSG_EKIND)
            CHECK(well_formed);
    }

    msg_push m;
    int pc = msg_push_parse(body, len, depth, &m);
    if (pc == 0) {
        CHECK(well_formed);
        CHECK(kind == MSG_PUSH);
        mp_cursor c = m.items;
        for (uint32_t i = 0; i < m.nitems; i++)
            CHECK(mp_skip(&c, depth) == 0);
        CHECK(mp_left(&c) == 0);
    }
    CHECK(!(rc == 0 && pc == 0));
    return 0;
}
