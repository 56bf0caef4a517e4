#include "common/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf_t *b) { memset(b, 0, sizeof(*b)); }

void buf_free(buf_t *b)
{
    free(b->data);
    buf_init(b);
}

int buf_reserve(buf_t *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    if (b->rpos > 0 && b->cap - buf_readable(b) >= n) {
        buf_compact(b);
        return 0;
    }
    size_t need = b->len + n;
    if (need < b->len)
        return -ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void buf_consume(buf_t *b, size_t n)
{
    b->rpos += n;
    if (b->rpos >= b->len)
        b->rpos = b->len = 0;
}

void buf_compact(buf_t *b)
{
    if (b->rpos == 0)
        return;
    size_t n = buf_readable(b);
    if (n)
        memmove(b->data, b->data + b->rpos, n);
    b->len = n;
    b->rpos = 0;
}

void buf_reset(buf_t *b) { b->len = b->rpos = 0; }

void buf_shrink_idle(buf_t *b, size_t keep)
{
    if (buf_readable(b) != 0 || b->cap <= keep)
        return;
    uint8_t *p = realloc(b->data, keep);
    if (!p)
        return;
    b->data = p;
    b->cap = keep;
    b->len = b->rpos = 0;
}

int buf_msgpack_write(void *data, const char *p, size_t n)
{
    return buf_append((buf_t *)data, p, n) ? -1 : 0;
}
