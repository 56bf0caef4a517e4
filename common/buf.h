/* buf.h - a growable byte buffer with a read offset.
 *
 * Used for connection input/output and for building frames. Data lives in
 * [data + rpos, data + len). The buffer owns its memory; buf_free releases it.
 * Growth is driven by bytes actually appended, never by a length a peer
 * claims, so a hostile length prefix cannot make us allocate. */
#ifndef AGATE_COMMON_BUF_H
#define AGATE_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    uint8_t *data;
    size_t len;  /* bytes written */
    size_t rpos; /* bytes consumed from the front */
    size_t cap;
} buf_t;

void buf_init(buf_t *b);
void buf_free(buf_t *b);
/* Ensures room for at least n more bytes after len. Returns 0 or -ENOMEM. */
int buf_reserve(buf_t *b, size_t n);
/* Appends n bytes. Returns 0 or -ENOMEM. */
int buf_append(buf_t *b, const void *p, size_t n);
/* Marks n bytes at the front as consumed; compacts when all are consumed. */
void buf_consume(buf_t *b, size_t n);
/* Moves unread bytes to the front so the tail has room to read into. */
void buf_compact(buf_t *b);
/* Drops everything; keeps capacity. */
void buf_reset(buf_t *b);
/* Releases capacity above keep bytes when the buffer is empty (after a
 * burst of large frames a connection should not pin megabytes). */
void buf_shrink_idle(buf_t *b, size_t keep);

static inline size_t buf_readable(const buf_t *b) { return b->len - b->rpos; }
/* rpos is 0 whenever data is NULL: never form NULL + 0, which is undefined. */
static inline uint8_t *buf_rptr(const buf_t *b) { return b->rpos ? b->data + b->rpos : b->data; }

/* msgpack_packer write callback appending to a buf_t (data = buf_t *). */
int buf_msgpack_write(void *data, const char *p, size_t n);

#endif
