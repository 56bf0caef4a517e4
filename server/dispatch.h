/* dispatch.h - from a frame body to a handler: parse the request into a
 * struct, find its command in the table, check arguments, call it. */
#ifndef AGATE_SERVER_DISPATCH_H
#define AGATE_SERVER_DISPATCH_H

#include <stdint.h>

#include "server/conn.h"

/* Handles one whole frame body; the reply (if any) is appended to c->out. */
void dispatch_frame(conn_t *c, const uint8_t *body, uint32_t len);
/* Answers a frame that could not even be cut out (id 0) and marks the
 * connection to close once the answer is sent. */
void dispatch_frame_error(conn_t *c, int status, const char *msg);

#endif
