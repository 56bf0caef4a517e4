/* msg.h - the envelope of a frame body: requests and responses as structs.
 *
 * Parsing never allocates: argument and result slices point into the body. */
#ifndef AGATE_COMMON_MSG_H
#define AGATE_COMMON_MSG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/mp.h"

#define MSG_MAX_ARGS 8

typedef struct msg_slice {
    const uint8_t *p;
    uint32_t n;
} msg_slice;

typedef struct msg_request {
    uint64_t id;
    uint32_t op;
    uint32_t argc;
    mp_cursor rest;              /* positioned at the first argument */
    msg_slice arg[MSG_MAX_ARGS]; /* filled by msg_request_args */
    int bad_arg;                 /* on MSG_EARGS: the failing argument, or -1 */
} msg_request;

enum {
    MSG_EMALFORMED = -1, /* not [kind, id, ...]: no request id can be trusted */
    MSG_EKIND = -2,      /* a well-formed envelope of another kind */
    MSG_EARGS = -3,      /* id and op are known; arguments are bad (see *mp_err) */
};

/* Reads [0, id, op, ...]'s head. On 0, req->id, op, argc and rest are set.
 * MSG_EMALFORMED means the peer does not speak the protocol: close. */
int msg_request_head(const uint8_t *body, uint32_t len, msg_request *req);
/* Splits the arguments into req->arg[], checking each is well formed and
 * nested at most max_depth, and that nothing follows the last one.
 * Returns 0, or MSG_EARGS with *mp_err set (MP_E*, or MP_ERANGE when there
 * are more than MSG_MAX_ARGS arguments, MP_EINVALID for trailing bytes). */
int msg_request_args(msg_request *req, int max_depth, int *mp_err);

typedef struct msg_response {
    uint64_t id;
    int status;
    uint32_t nresults;
    mp_cursor results;          /* positioned at the first result */
    const uint8_t *errmsg;      /* status >= 10: the message (not NUL-terminated) */
    uint32_t errmsg_len;
} msg_response;

typedef struct msg_push {
    uint64_t subscription;
    uint32_t event_kind;
    uint32_t nitems;
    mp_cursor items;
} msg_push;

/* Returns the kind (MSG_RESPONSE or MSG_PUSH) of a server-to-client body, or
 * MSG_EMALFORMED. */
int msg_server_kind(const uint8_t *body, uint32_t len);
/* Parses [1, id, status, results...]; for error statuses also the message.
 * The whole body is checked well formed up to max_depth. */
int msg_response_parse(const uint8_t *body, uint32_t len, int max_depth, msg_response *out);
int msg_push_parse(const uint8_t *body, uint32_t len, int max_depth, msg_push *out);

#endif
