/* Unit tests for common/frame.h (the resumable frame splitter and frame
 * building) and common/buf.h (the buffer frames are built in). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/frame.h"
#include "tu.h"

static void put_be32(uint8_t *p, uint32_t n)
{
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
}

/* A frame with a body of n bytes: body[i] = seed + i. Heap block of
 * exactly the frame's size (ASan catches reads past it). */
static uint8_t *make_frame(uint32_t n, uint8_t seed, size_t *total)
{
    uint8_t *f = malloc(4 + (size_t)n);
    put_be32(f, n);
    for (uint32_t i = 0; i < n; i++)
        f[4 + i] = (uint8_t)(seed + i);
    *total = 4 + (size_t)n;
    return f;
}

static long next_exact(const uint8_t *p, size_t n, uint32_t max, const uint8_t **body,
                       uint32_t *len)
{
    uint8_t *c = malloc(n ? n : 1);
    if (n)
        memcpy(c, p, n);
    long rc = frame_next(c, n, max, body, len);
    if (rc > 0)
        *body = p + (*body - c); /* translate back into p */
    free(c);
    return rc;
}

START_TEST(whole_frame)
{
    size_t total;
    uint8_t *f = make_frame(10, 'a', &total);
    const uint8_t *body = NULL;
    uint32_t len = 0;
    ck_assert_int_eq(frame_next(f, total, 100, &body, &len), 14);
    ck_assert_ptr_eq(body, f + 4);
    ck_assert_uint_eq(len, 10);
    /* bytes after the frame are not part of it */
    uint8_t *g = malloc(total + 3);
    memcpy(g, f, total);
    memset(g + total, 0xee, 3);
    ck_assert_int_eq(frame_next(g, total + 3, 100, &body, &len), 14);
    ck_assert_uint_eq(len, 10);
    free(g);
    free(f);
}
END_TEST

START_TEST(need_more_until_complete)
{
    size_t total;
    uint8_t *f = make_frame(300, 0, &total);
    const uint8_t *body;
    uint32_t len;
    for (size_t k = 0; k < total; k++)
        ck_assert_int_eq(next_exact(f, k, 1000, &body, &len), FRAME_NEED_MORE);
    ck_assert_int_eq(next_exact(f, total, 1000, &body, &len), (long)total);
    free(f);
}
END_TEST

START_TEST(zero_length)
{
    static const uint8_t z[] = {0, 0, 0, 0};
    const uint8_t *body;
    uint32_t len;
    ck_assert_int_eq(next_exact(z, 4, 100, &body, &len), FRAME_EEMPTY);
    for (size_t k = 0; k < 4; k++)
        ck_assert_int_eq(next_exact(z, k, 100, &body, &len), FRAME_NEED_MORE);
}
END_TEST

START_TEST(above_limit_from_header_alone)
{
    static const uint32_t limits[] = {1, 64, 4096, 64u << 20, 0xfffffffeu};
    const uint8_t *body;
    uint32_t len;
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        uint8_t h[4];
        uint32_t lim = limits[i];
        put_be32(h, lim + 1);
        /* decided from the 4 header bytes alone: no body present */
        ck_assert_int_eq(next_exact(h, 4, lim, &body, &len), FRAME_ETOOBIG);
        put_be32(h, 0xffffffffu);
        ck_assert_int_eq(next_exact(h, 4, lim, &body, &len), FRAME_ETOOBIG);
        /* exactly at the limit is fine: waits for the body */
        put_be32(h, lim);
        ck_assert_int_eq(next_exact(h, 4, lim, &body, &len), FRAME_NEED_MORE);
        for (size_t k = 0; k < 4; k++)
            ck_assert_int_eq(next_exact(h, k, lim, &body, &len), FRAME_NEED_MORE);
    }
    /* the largest representable limit accepts the largest length */
    uint8_t h[4];
    put_be32(h, 0xffffffffu);
    ck_assert_int_eq(next_exact(h, 4, 0xffffffffu, &body, &len), FRAME_NEED_MORE);
}
END_TEST

/* A stream of frames of varied sizes, cut out of one buffer. */
static uint8_t *make_stream(int nframes, size_t *total, uint32_t **sizes)
{
    uint8_t *s = NULL;
    size_t n = 0;
    *sizes = malloc(sizeof(uint32_t) * (size_t)nframes);
    for (int i = 0; i < nframes; i++) {
        uint32_t len = (uint32_t)(1 + (i * 37) % 200);
        if (i == 3)
            len = 5000;
        (*sizes)[i] = len;
        size_t ft;
        uint8_t *f = make_frame(len, (uint8_t)i, &ft);
        s = realloc(s, n + ft);
        memcpy(s + n, f, ft);
        n += ft;
        free(f);
    }
    *total = n;
    return s;
}

static void assert_body(const uint8_t *body, uint32_t len, uint32_t want_len, uint8_t seed)
{
    ck_assert_uint_eq(len, want_len);
    for (uint32_t j = 0; j < len; j++)
        ck_assert_uint_eq(body[j], (uint8_t)(seed + j));
}

START_TEST(several_frames_in_one_buffer)
{
    size_t total;
    uint32_t *sizes;
    uint8_t *s = make_stream(20, &total, &sizes);
    size_t off = 0;
    for (int i = 0; i < 20; i++) {
        const uint8_t *body;
        uint32_t len;
        long rc = frame_next(s + off, total - off, 10000, &body, &len);
        ck_assert_int_eq(rc, 4 + (long)sizes[i]);
        assert_body(body, len, sizes[i], (uint8_t)i);
        off += (size_t)rc;
    }
    ck_assert_uint_eq(off, total);
    const uint8_t *body;
    uint32_t len;
    ck_assert_int_eq(frame_next(s + off, 0, 10000, &body, &len), FRAME_NEED_MORE);
    free(sizes);
    free(s);
}
END_TEST

/* Resumable: bytes arrive in pieces of every size from 1 up, appended to a
 * buf_t the way a connection does; the splitter keeps no state. */
START_TEST(fed_in_pieces)
{
    size_t total;
    uint32_t *sizes;
    uint8_t *s = make_stream(20, &total, &sizes);
    int piece = _i; /* one of pieces[] */
    buf_t in;
    buf_init(&in);
    size_t fed = 0;
    int got = 0;
    ck_assert_int_eq(buf_reserve(&in, 1), 0); /* see buf_rptr_of_empty_buffer */
    while (got < 20) {
        long rc;
        const uint8_t *body;
        uint32_t len;
        while ((rc = frame_next(buf_rptr(&in), buf_readable(&in), 10000, &body, &len)) > 0) {
            assert_body(body, len, sizes[got], (uint8_t)got);
            got++;
            buf_consume(&in, (size_t)rc);
        }
        ck_assert_int_eq(rc, FRAME_NEED_MORE);
        if (got == 20)
            break;
        ck_assert_uint_lt(fed, total);
        size_t n = total - fed < (size_t)piece ? total - fed : (size_t)piece;
        ck_assert_int_eq(buf_append(&in, s + fed, n), 0);
        fed += n;
    }
    ck_assert_uint_eq(fed, total);
    ck_assert_uint_eq(buf_readable(&in), 0);
    buf_free(&in);
    free(sizes);
    free(s);
}
END_TEST
/* piece sizes fed_in_pieces runs with (its loop index) */
static const int pieces[] = {1, 2, 3, 4, 5, 7, 4096};

/* ---- building frames ---- */

START_TEST(begin_end_roundtrip)
{
    buf_t b;
    buf_init(&b);
    for (int i = 0; i < 50; i++) {
        size_t off = frame_begin(&b);
        ck_assert(off != (size_t)-1);
        uint32_t len = (uint32_t)(i * 91 % 3000 + 1);
        for (uint32_t j = 0; j < len; j++) {
            uint8_t byte = (uint8_t)(i + j);
            ck_assert_int_eq(buf_append(&b, &byte, 1), 0);
        }
        frame_end(&b, off);
    }
    for (int i = 0; i < 50; i++) {
        const uint8_t *body;
        uint32_t len;
        long rc = frame_next(buf_rptr(&b), buf_readable(&b), 1u << 20, &body, &len);
        ck_assert_int_gt(rc, 0);
        assert_body(body, len, (uint32_t)(i * 91 % 3000 + 1), (uint8_t)i);
        buf_consume(&b, (size_t)rc);
    }
    ck_assert_uint_eq(buf_readable(&b), 0);
    buf_free(&b);
}
END_TEST

/* Regression test: a frame is built into a buffer whose front was partly
 * consumed (rpos > 0: a connection's output after a partial send).
 * Appending the body makes buf_reserve compact the buffer (memmove to the
 * front), which moves the header frame_begin reserved. frame_end must still
 * find it. (Found while writing these tests; fixed by making frame_begin's
 * offset relative to the read position.) See also integration_wire:
 * slow_reader_pipelined_large_replies. */
START_TEST(frame_built_after_partial_consume)
{
    buf_t b;
    buf_init(&b);
    uint8_t junk[200];
    memset(junk, 0xaa, sizeof(junk));
    ck_assert_int_eq(buf_append(&b, junk, sizeof(junk)), 0); /* cap 256, len 200 */
    buf_consume(&b, 150);                                     /* rpos 150: 50 unread */
    size_t off = frame_begin(&b);
    ck_assert(off != (size_t)-1);
    uint8_t body[100];
    for (int i = 0; i < 100; i++)
        body[i] = (uint8_t)i;
    ck_assert_int_eq(buf_append(&b, body, sizeof(body)), 0); /* may compact */
    frame_end(&b, off);
    /* the 50 unread junk bytes, then our frame */
    ck_assert_uint_eq(buf_readable(&b), 50 + 4 + 100);
    ck_assert_mem_eq(buf_rptr(&b), junk, 50);
    const uint8_t *got;
    uint32_t len;
    long rc = frame_next(buf_rptr(&b) + 50, buf_readable(&b) - 50, 1000, &got, &len);
    ck_assert_msg(rc == 104, "frame built after a partial consume is corrupt: frame_next=%ld", rc);
    ck_assert_uint_eq(len, 100);
    ck_assert_mem_eq(got, body, 100);
    buf_free(&b);
}
END_TEST

/* ---- buf ---- */

/* BUG REPRODUCER (common/buf.h): buf_rptr of a buffer that never held data
 * computes NULL + 0, which is undefined behaviour in C (UBSan:
 * "applying zero offset to null pointer", fatal with
 * -fno-sanitize-recover). Callers that ask an empty fresh buffer for its
 * read pointer, as a frame-splitting loop naturally does before the first
 * read, trip over it. */
START_TEST(buf_rptr_of_empty_buffer)
{
    buf_t b;
    buf_init(&b);
    const uint8_t *body;
    uint32_t len;
    ck_assert_int_eq(frame_next(buf_rptr(&b), buf_readable(&b), 100, &body, &len),
                     FRAME_NEED_MORE);
    buf_free(&b);
}
END_TEST

START_TEST(buf_basics)
{
    buf_t b;
    buf_init(&b);
    ck_assert_uint_eq(buf_readable(&b), 0);
    ck_assert_int_eq(buf_append(&b, "hello", 5), 0);
    ck_assert_int_eq(buf_append(&b, NULL, 0), 0);
    ck_assert_uint_eq(buf_readable(&b), 5);
    ck_assert_mem_eq(buf_rptr(&b), "hello", 5);
    buf_consume(&b, 2);
    ck_assert_mem_eq(buf_rptr(&b), "llo", 3);
    buf_compact(&b);
    ck_assert_uint_eq(b.rpos, 0);
    ck_assert_mem_eq(b.data, "llo", 3);
    buf_consume(&b, 3); /* everything consumed: resets */
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.rpos, 0);
    /* growth keeps content */
    for (int i = 0; i < 100000; i++) {
        uint8_t c = (uint8_t)i;
        ck_assert_int_eq(buf_append(&b, &c, 1), 0);
    }
    for (int i = 0; i < 100000; i++)
        ck_assert_uint_eq(b.data[i], (uint8_t)i);
    size_t cap = b.cap;
    buf_reset(&b);
    ck_assert_uint_eq(b.cap, cap);
    ck_assert_uint_eq(buf_readable(&b), 0);
    buf_shrink_idle(&b, 4096);
    ck_assert_uint_eq(b.cap, 4096);
    ck_assert_int_eq(buf_append(&b, "x", 1), 0);
    buf_shrink_idle(&b, 1024); /* not idle: unchanged */
    ck_assert_uint_eq(b.cap, 4096);
    ck_assert_int_eq(buf_reserve(&b, 1u << 20), 0);
    ck_assert_uint_ge(b.cap - b.len, 1u << 20);
    ck_assert_int_ne(buf_reserve(&b, SIZE_MAX), 0); /* refuses, does not wrap */
    ck_assert_mem_eq(b.data, "x", 1);
    buf_free(&b);
    ck_assert_ptr_null(b.data);
}
END_TEST

START_TEST(buf_reserve_compacts_and_keeps_data)
{
    buf_t b;
    buf_init(&b);
    uint8_t data[256];
    for (int i = 0; i < 256; i++)
        data[i] = (uint8_t)i;
    ck_assert_int_eq(buf_append(&b, data, 256), 0);
    buf_consume(&b, 200);
    ck_assert_int_eq(buf_reserve(&b, 100), 0);
    ck_assert_uint_ge(b.cap - b.len, 100);
    ck_assert_uint_eq(buf_readable(&b), 56);
    ck_assert_mem_eq(buf_rptr(&b), data + 200, 56);
    buf_free(&b);
}
END_TEST

static Suite *frame_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tu_tcase(s, "split", 30);
    tcase_add_test(tc, whole_frame);
    tcase_add_test(tc, need_more_until_complete);
    tcase_add_test(tc, zero_length);
    tcase_add_test(tc, above_limit_from_header_alone);
    tcase_add_test(tc, several_frames_in_one_buffer);
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++)
        tcase_add_loop_test(tc, fed_in_pieces, pieces[i], pieces[i] + 1);
    tc = tu_tcase(s, "build", 30);
    tcase_add_test(tc, begin_end_roundtrip);
    tcase_add_test(tc, frame_built_after_partial_consume);
    tc = tu_tcase(s, "buf", 30);
    tcase_add_test(tc, buf_basics);
    tcase_add_test(tc, buf_rptr_of_empty_buffer);
    tcase_add_test(tc, buf_reserve_compacts_and_keeps_data);
    return s;
}

int main(void)
{
    Suite *s = frame_suite();
    return tu_run(&s, 1);
}
