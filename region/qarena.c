/* qarena.c - the syntax tree's bump allocator; see qarena.h. */
#include "region/qarena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "region/qast.h"

/* Chunks grow from 4 KiB to 64 KiB: small expressions cost one small
 * allocation, big queries (up to QAST_MAX_TEXT) few. */
#define CHUNK_MIN 4096u
#define CHUNK_MAX 65536u
#define ALIGN _Alignof(max_align_t)

typedef struct qchunk {
    struct qchunk *next;
    size_t cap, used;
    max_align_t data[]; /* aligned for anything */
} qchunk;

struct qarena {
    qchunk *head; /* the chunk being filled; older ones follow */
    size_t next_cap;
};

struct qarena *qarena_new(void)
{
    struct qarena *a = calloc(1, sizeof(*a));
    if (a)
        a->next_cap = CHUNK_MIN;
    return a;
}

/* Adds a chunk with room for at least n bytes. An oversized request gets
 * a chunk of its own, linked behind the current one so that the space
 * left in the current one is still used. */
static qchunk *add_chunk(struct qarena *a, size_t n)
{
    size_t cap = n > a->next_cap ? n : a->next_cap;
    qchunk *c = malloc(sizeof(*c) + cap);
    if (!c)
        return NULL;
    c->cap = cap;
    c->used = 0;
    if (n > a->next_cap && a->head) {
        c->next = a->head->next;
        a->head->next = c;
        return c;
    }
    c->next = a->head;
    a->head = c;
    if (a->next_cap < CHUNK_MAX)
        a->next_cap *= 2;
    return c;
}

void *qarena_alloc(struct qarena *a, size_t n)
{
    if (n > SIZE_MAX / 2)
        return NULL;
    n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    qchunk *c = a->head;
    if (!c || c->cap - c->used < n)
        if (!(c = add_chunk(a, n)))
            return NULL;
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *qarena_strndup(struct qarena *a, const char *s, size_t n)
{
    char *p = qarena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

void qarena_free(struct qarena *a)
{
    if (!a)
        return;
    for (qchunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}
