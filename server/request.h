/* request.h - what a handler gets: the parsed request and where to answer,
 * plus the helpers every handler uses to read arguments and write replies.
 *
 * The arg_* readers validate one argument and, when it is bad, send the
 * error reply themselves and return -1: a handler just returns then. */
#ifndef AGATE_SERVER_REQUEST_H
#define AGATE_SERVER_REQUEST_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/msg.h"
#include "region/region.h"
#include "server/conn.h"

struct command;

typedef struct req_ctx {
    conn_t *conn;
    worker_t *w;
    server_t *srv;
    const msg_request *req;
    const struct command *cmd;
    msgpack_packer pk; /* writes into conn->out */
    size_t frame_off;  /* of the reply being built */
} req_ctx;

typedef struct key_arg {
    const uint8_t *p;
    uint32_t n;
    bool is_str;
    uint64_t hash;
} key_arg;

/* ---- replies ---- */
/* Starts [1, id, status, ...] expecting nresults more elements. */
void reply_head(req_ctx *x, int status, uint32_t nresults);
/* Closes the frame started by reply_head. */
void reply_done(req_ctx *x);
/* Bytes of the reply being built so far (header included). */
size_t reply_size(const req_ctx *x);
/* Drops the reply being built, e.g. to answer an error instead. */
void reply_discard(req_ctx *x);
/* Largest reply a request may build out of many items (GET_ALL, scans): the
 * frame limit, so one small request cannot make the server buffer without
 * bound. */
size_t reply_budget(const req_ctx *x);
/* A reply with no results. */
void reply_status(req_ctx *x, int status);
/* An error reply with a printf-style message. */
void reply_error(req_ctx *x, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- arguments ---- */
/* Argument i as a region name of an existing region. */
int arg_region(req_ctx *x, int i, region_t **out);
/* Argument i as a key (str or bin within the key limit). */
int arg_key(req_ctx *x, int i, key_arg *k);
/* The next object at c as a key; what names it in errors. */
int read_key(req_ctx *x, mp_cursor *c, const char *what, key_arg *k);
/* Checks a value (already known well formed and within the depth limit)
 * against the size limit. */
int check_value(req_ctx *x, const char *what, uint32_t vlen);
int arg_uint(req_ctx *x, int i, uint64_t *out);
/* Argument i as a str; *p is not NUL-terminated. */
int arg_str(req_ctx *x, int i, const uint8_t **p, uint32_t *n);
/* A cursor over argument i. */
void arg_cursor(const req_ctx *x, int i, mp_cursor *c);
/* Name of argument i for messages ("key", "value", ...). */
const char *arg_name(const req_ctx *x, int i);

#endif
