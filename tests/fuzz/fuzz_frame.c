/* fuzz_frame - libFuzzer target for the server's input path: the frame
 * splitter (frame_next, whole and fed in pieces), the request envelope
 * (msg_request_head / msg_request_args) and the MessagePack checker
 * (mp_check_one, mp_next).
 *
 * Input layout: byte 0 picks the frame limit and the argument depth limit,
 * byte 1 seeds the piece sizes for the resumable feed; the rest is the byte
 * stream a client would send. Besides crashes and sanitizer reports, the
 * target aborts when an invariant between the functions breaks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/frame.h"
#include "common/mp.h"
#include "common/msg.h"

#define FUZZ_NAME "fuzz_frame"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_items(const uint8_t *p, uint32_t n)
{
    /* mp_next over a flat sequence: every item stays inside the input */
    mp_cursor c;
    mp_cursor_init(&c, p, n);
    for (int i = 0; i < 64 && mp_left(&c) > 0; i++) {
        const uint8_t *before = c.p;
        mp_item it;
        if (mp_next(&c, &it))
            break;
        CHECK(c.p > before && c.p <= p + n);
        if (it.type == MP_STR || it.type == MP_BIN || it.type == MP_EXT)
            CHECK(it.v.s.ptr >= p && it.v.s.ptr + it.v.s.len <= p + n);
        if (it.type == MP_ARRAY)
            CHECK(it.v.n <= mp_left(&c));
        if (it.type == MP_MAP)
            CHECK((uint64_t)it.v.n * 2 <= mp_left(&c));
    }
}

static void check_request(const uint8_t *body, uint32_t len, int depth)
{
    msg_request req;
    int rc = msg_request_head(body, len, &req);
    int whole = mp_check_one(body, len, MP_MAX_DEPTH_LIMIT);
    if (rc != 0) {
        CHECK(rc == MSG_EMALFORMED || rc == MSG_EKIND);
        return;
    }
    CHECK(req.rest.p >= body && req.rest.end == body + len);
    int err = 0;
    int arc = msg_request_args(&req, depth, &err);
    if (arc == 0) {
        CHECK(req.argc <= MSG_MAX_ARGS);
        const uint8_t *at = req.rest.p;
        for (uint32_t i = 0; i < req.argc; i++) {
            CHECK(req.arg[i].p == at); /* contiguous, in order */
            CHECK(req.arg[i].n > 0 && req.arg[i].p + req.arg[i].n <= body + len);
            CHECK(mp_check_one(req.arg[i].p, req.arg[i].n, depth) == 0);
            at += req.arg[i].n;
        }
        CHECK(at == body + len); /* nothing trails */
        CHECK(whole == 0);       /* so the body is one well-formed object */
    } else {
        CHECK(arc == MSG_EARGS);
        CHECK(req.bad_arg >= -1 && req.bad_arg < (int)req.argc);
        CHECK(err == MP_ETRUNC || err == MP_EINVALID || err == MP_EDEPTH || err == MP_ERANGE);
        if (req.bad_arg == -1)
            CHECK(err == MP_ERANGE || err == MP_EINVALID);
        /* a well-formed body no deeper than depth + 1 has good arguments */
        if (req.argc <= MSG_MAX_ARGS && mp_check_one(body, len, depth + 1) == 0)
            CHECK(!"well-formed body rejected");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t max_body = 8u + (uint32_t)(data[0] & 0x7f) * 97u; /* 8 .. 12327 */
    int depth = 1 + (data[0] >> 7) * 31;                       /* 1 or 32 */
    uint8_t seed = data[1];
    const uint8_t *p = data + 2;
    size_t n = size - 2;

    /* 1. split the whole stream */
    enum { MAXF = 256 };
    size_t foff[MAXF];
    uint32_t flen[MAXF];
    int nf = 0;
    long last = 0;
    size_t off = 0;
    while (nf < MAXF) {
        const uint8_t *body = NULL;
        uint32_t len = 0;
        last = frame_next(p + off, n - off, max_body, &body, &len);
        if (last <= 0)
            break;
        CHECK((size_t)last == FRAME_HEADER + (size_t)len && off + (size_t)last <= n);
        CHECK(body == p + off + FRAME_HEADER && len > 0 && len <= max_body);
        foff[nf] = off;
        flen[nf] = len;
        nf++;
        check_request(body, len, depth);
        walk_items(body, len);
        off += (size_t)last;
    }
    CHECK(last == FRAME_NEED_MORE || last == FRAME_ETOOBIG || last == FRAME_EEMPTY || nf == MAXF);
    if (last == FRAME_NEED_MORE && nf < MAXF) /* too few bytes for the next frame */
        CHECK(n - off < FRAME_HEADER || n - off < FRAME_HEADER + (size_t)((uint32_t)p[off] << 24 |
                                                                           (uint32_t)p[off + 1] << 16 |
                                                                           (uint32_t)p[off + 2] << 8 |
                                                                           p[off + 3]));

    /* 2. the same stream fed in pieces through a buf_t gives the same frames */
    buf_t in;
    buf_init(&in);
    if (buf_reserve(&in, 1))
        abort();
    size_t fed = 0;
    int got = 0;
    long rc = FRAME_NEED_MORE;
    uint32_t x = seed * 2654435761u + 1;
    for (;;) {
        const uint8_t *body;
        uint32_t len;
        while (got < nf &&
               (rc = frame_next(buf_rptr(&in), buf_readable(&in), max_body, &body, &len)) > 0) {
            CHECK(len == flen[got]);
            CHECK(memcmp(body, p + foff[got] + FRAME_HEADER, len) == 0);
            got++;
            buf_consume(&in, (size_t)rc);
        }
        if (got == nf || fed == n)
            break;
        CHECK(rc == FRAME_NEED_MORE); /* errors only where the whole split stopped */
        x = x * 1103515245u + 12345u;
        size_t piece = 1 + (x >> 16) % 13;
        if (piece > n - fed)
            piece = n - fed;
        if (buf_append(&in, p + fed, piece))
            abort();
        fed += piece;
    }
    CHECK(got == nf);
    buf_free(&in);

    /* 3. the frames built again the way the server builds replies: into an
     * output buffer whose front is "sent" (consumed) in pieces between
     * frames, bodies appended in pieces; what is sent must be the frames */
    buf_t out;
    buf_init(&out);
    size_t sent = 0, total = nf ? foff[nf - 1] + FRAME_HEADER + flen[nf - 1] : 0;
    for (int i = 0; i < nf; i++) {
        x = x * 1103515245u + 12345u;
        size_t send_now = buf_readable(&out) ? (x >> 8) % (buf_readable(&out) + 1) : 0;
        CHECK(sent + send_now <= total);
        if (send_now) {
            CHECK(memcmp(buf_rptr(&out), p + sent, send_now) == 0);
            buf_consume(&out, send_now);
            sent += send_now;
        }
        size_t fo = frame_begin(&out);
        CHECK(fo != (size_t)-1);
        const uint8_t *b = p + foff[i] + FRAME_HEADER;
        for (uint32_t done = 0; done < flen[i];) {
            x = x * 1103515245u + 12345u;
            uint32_t piece = 1 + (x >> 12) % 300;
            if (piece > flen[i] - done)
                piece = flen[i] - done;
            if (buf_append(&out, b + done, piece))
                abort();
            done += piece;
        }
        frame_end(&out, fo);
    }
    CHECK(sent + buf_readable(&out) == total);
    if (buf_readable(&out))
        CHECK(memcmp(buf_rptr(&out), p + sent, buf_readable(&out)) == 0);
    buf_free(&out);

    /* 4. the raw stream itself as one MessagePack object */
    if (n <= UINT32_MAX) {
        int r1 = mp_check_one(p, n, depth);
        CHECK(r1 == 0 || r1 == MP_ETRUNC || r1 == MP_EINVALID || r1 == MP_EDEPTH);
        if (r1 == 0)
            CHECK(mp_check_one(p, n, MP_MAX_DEPTH_LIMIT) == 0);
        walk_items(p, (uint32_t)n);
    }
    return 0;
}
