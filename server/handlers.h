/* handlers.h - one function per opcode; see docs/protocol.md for each. */
#ifndef AGATE_SERVER_HANDLERS_H
#define AGATE_SERVER_HANDLERS_H

#include "server/request.h"

void handle_hello(req_ctx *x);
void handle_ping(req_ctx *x);
void handle_server_info(req_ctx *x);

void handle_region_create(req_ctx *x);
/* REGION_CREATE's arguments into cfg (checked); answers errors itself. */
int region_create_args(req_ctx *x, region_config *cfg, bool *if_not_exists);
void handle_region_destroy(req_ctx *x);
void handle_region_list(req_ctx *x);
void handle_region_describe(req_ctx *x);
/* indexes (handlers_index.c) */
void handle_index_create(req_ctx *x);
void handle_index_destroy(req_ctx *x);
void handle_index_list(req_ctx *x);

void handle_put(req_ctx *x);
void handle_get(req_ctx *x);
void handle_get_entry(req_ctx *x);
void handle_remove(req_ctx *x);
void handle_contains_key(req_ctx *x);
void handle_size(req_ctx *x);
void handle_clear(req_ctx *x);
/* handlers_query.c */
void handle_query(req_ctx *x);
void handle_query_next(req_ctx *x);
void handle_query_close(req_ctx *x);
void handle_query_cancel(req_ctx *x);
void handle_query_part(req_ctx *x);
/* continuous queries (handlers_cq.c) */
void handle_cq_open(req_ctx *x);
void handle_cq_close(req_ctx *x);
void handle_cq_list(req_ctx *x);
void handle_put_all(req_ctx *x);
void handle_get_all(req_ctx *x);
void handle_keys(req_ctx *x);
void handle_entries(req_ctx *x);

/* clusters, on members (handlers_cluster.c) */
void handle_cluster_map(req_ctx *x);
void handle_replicate(req_ctx *x);
void handle_image_page(req_ctx *x);
void handle_peer_heartbeat(req_ctx *x);

#endif
