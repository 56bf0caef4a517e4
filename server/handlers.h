/* handlers.h - one function per opcode; see docs/protocol.md for each. */
#ifndef AGATE_SERVER_HANDLERS_H
#define AGATE_SERVER_HANDLERS_H

#include "server/request.h"

void handle_hello(req_ctx *x);
void handle_ping(req_ctx *x);
void handle_server_info(req_ctx *x);

void handle_region_create(req_ctx *x);
void handle_region_destroy(req_ctx *x);
void handle_region_list(req_ctx *x);
void handle_region_describe(req_ctx *x);

void handle_put(req_ctx *x);
void handle_get(req_ctx *x);
void handle_get_entry(req_ctx *x);
void handle_remove(req_ctx *x);
void handle_contains_key(req_ctx *x);
void handle_size(req_ctx *x);
void handle_clear(req_ctx *x);
void handle_put_all(req_ctx *x);
void handle_get_all(req_ctx *x);
void handle_keys(req_ctx *x);
void handle_entries(req_ctx *x);

#endif
