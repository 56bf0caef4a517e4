/* results.c - helpers for reading a reply's results into caller memory. */
#include <stdlib.h>
#include <string.h>

#include "client/client.h"

int client_bad_reply(agate_client *c, const char *what)
{
    const char *addr = c->cur < c->nservers ? c->servers[c->cur].addr : "server";
    return client_err(c, AGATE_EPROTO, "%s: %s", addr, what);
}

int client_read_raw(agate_client *c, mp_cursor *cur, const uint8_t **p, size_t *n)
{
    const uint8_t *start = cur->p;
    if (mp_skip(cur, MP_MAX_DEPTH_LIMIT))
        return client_bad_reply(c, "malformed result");
    *p = start;
    *n = (size_t)(cur->p - start);
    return 0;
}

int client_buf_copy(agate_buf *b, const void *p, size_t n)
{
    /* never NULL for a present item: NULL means "absent" in get_all */
    b->data = malloc(n ? n : 1);
    if (!b->data) {
        b->len = 0;
        return AGATE_ENOMEM;
    }
    if (n)
        memcpy(b->data, p, n);
    b->len = n;
    return 0;
}

void agate_buf_free(agate_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

void agate_page_free(agate_page *page)
{
    if (!page)
        return;
    for (size_t i = 0; i < page->n; i++) {
        if (page->keys)
            agate_buf_free(&page->keys[i]);
        if (page->values)
            agate_buf_free(&page->values[i]);
    }
    free(page->keys);
    free(page->values);
    memset(page, 0, sizeof(*page));
}
