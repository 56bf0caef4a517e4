#include "common/frame.h"

long frame_next(const uint8_t *p, size_t n, uint32_t max_body, const uint8_t **body,
                uint32_t *body_len)
{
    if (n < FRAME_HEADER)
        return FRAME_NEED_MORE;
    uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (len == 0)
        return FRAME_EEMPTY;
    if (len > max_body)
        return FRAME_ETOOBIG;
    if (n - FRAME_HEADER < len)
        return FRAME_NEED_MORE;
    *body = p + FRAME_HEADER;
    *body_len = len;
    return (long)len + FRAME_HEADER;
}

size_t frame_begin(buf_t *b)
{
    if (buf_reserve(b, FRAME_HEADER))
        return (size_t)-1;
    size_t off = b->len - b->rpos;
    b->len += FRAME_HEADER;
    return off;
}

int frame_end(buf_t *b, size_t off)
{
    size_t start = b->rpos + off;
    size_t body = b->len - start - FRAME_HEADER;
    if (body > UINT32_MAX)
        return -1;
    uint32_t len = (uint32_t)body;
    uint8_t *h = b->data + start;
    h[0] = (uint8_t)(len >> 24);
    h[1] = (uint8_t)(len >> 16);
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    return 0;
}
