#include "server/command.h"

#include "common/proto.h"
#include "server/handlers.h"

/* Indexed by opcode; rows with no fn are unknown opcodes. */
#define MAX_OP 64
static const command commands[MAX_OP] = {
    [OP_HELLO] = {OP_HELLO, "HELLO", handle_hello, 4, 4, 0, -1, {"magic", "version", "client_name", "credentials"}},
    [OP_PING] = {OP_PING, "PING", handle_ping, 0, 0, 0, -1, {0}},
    [OP_SERVER_INFO] = {OP_SERVER_INFO, "SERVER_INFO", handle_server_info, 0, 0, 0, -1, {0}},
    [OP_CLUSTER_MAP] = {OP_CLUSTER_MAP, "CLUSTER_MAP", handle_cluster_map, 0, 0, 0, -1, {0}},
    [OP_REPLICATE] = {OP_REPLICATE, "REPLICATE", handle_replicate, 2, 2, 2, -1, {"region", "ops"}},
    [OP_IMAGE_PAGE] = {OP_IMAGE_PAGE, "IMAGE_PAGE", handle_image_page, 5, 5, 0, -1, {"region", "bucket", "member_id", "cursor", "metadata_version"}},
    [OP_PEER_HEARTBEAT] = {OP_PEER_HEARTBEAT, "PEER_HEARTBEAT", handle_peer_heartbeat, 2, 2, 0, -1, {"member_id", "metadata_version"}},
    [OP_REGION_CREATE] = {OP_REGION_CREATE, "REGION_CREATE", handle_region_create, 2, 3, 0, -1, {"name", "type", "options"}},
    [OP_REGION_DESTROY] = {OP_REGION_DESTROY, "REGION_DESTROY", handle_region_destroy, 1, 1, 0, -1, {"name"}},
    [OP_REGION_LIST] = {OP_REGION_LIST, "REGION_LIST", handle_region_list, 0, 0, 0, -1, {0}},
    [OP_REGION_DESCRIBE] = {OP_REGION_DESCRIBE, "REGION_DESCRIBE", handle_region_describe, 1, 1, 0, -1, {"name"}},
    [OP_INDEX_CREATE] = {OP_INDEX_CREATE, "INDEX_CREATE", handle_index_create, 3, 4, 0, -1, {"region", "name", "expression", "type"}},
    [OP_INDEX_DESTROY] = {OP_INDEX_DESTROY, "INDEX_DESTROY", handle_index_destroy, 2, 2, 0, -1, {"region", "name"}},
    [OP_INDEX_LIST] = {OP_INDEX_LIST, "INDEX_LIST", handle_index_list, 0, 1, 0, -1, {"region"}},
    [OP_PUT] = {OP_PUT, "PUT", handle_put, 3, 4, 0, 2, {"region", "key", "value", "event_id"}},
    [OP_GET] = {OP_GET, "GET", handle_get, 2, 2, 0, -1, {"region", "key"}},
    [OP_REMOVE] = {OP_REMOVE, "REMOVE", handle_remove, 2, 3, 0, -1, {"region", "key", "event_id"}},
    [OP_CONTAINS_KEY] = {OP_CONTAINS_KEY, "CONTAINS_KEY", handle_contains_key, 2, 2, 0, -1, {"region", "key"}},
    [OP_PUT_ALL] = {OP_PUT_ALL, "PUT_ALL", handle_put_all, 2, 3, 1, 1, {"region", "entries", "event_id"}},
    [OP_GET_ALL] = {OP_GET_ALL, "GET_ALL", handle_get_all, 2, 2, 0, -1, {"region", "keys"}},
    [OP_SIZE] = {OP_SIZE, "SIZE", handle_size, 1, 1, 0, -1, {"region"}},
    [OP_GET_ENTRY] = {OP_GET_ENTRY, "GET_ENTRY", handle_get_entry, 2, 2, 0, -1, {"region", "key"}},
    [OP_KEYS] = {OP_KEYS, "KEYS", handle_keys, 3, 3, 0, -1, {"region", "cursor", "limit"}},
    [OP_ENTRIES] = {OP_ENTRIES, "ENTRIES", handle_entries, 3, 3, 0, -1, {"region", "cursor", "limit"}},
    [OP_CLEAR] = {OP_CLEAR, "CLEAR", handle_clear, 1, 1, 0, -1, {"region"}},
    [OP_QUERY] = {OP_QUERY, "QUERY", handle_query, 1, 3, 1, 1, {"query", "params", "options"}},
    [OP_QUERY_NEXT] = {OP_QUERY_NEXT, "QUERY_NEXT", handle_query_next, 1, 2, 0, -1, {"cursor", "options"}},
    [OP_QUERY_CLOSE] = {OP_QUERY_CLOSE, "QUERY_CLOSE", handle_query_close, 1, 1, 0, -1, {"cursor"}},
    [OP_QUERY_CANCEL] = {OP_QUERY_CANCEL, "QUERY_CANCEL", handle_query_cancel, 1, 1, 0, -1, {"request_id"}},
    [OP_QUERY_PART] = {OP_QUERY_PART, "QUERY_PART", handle_query_part, 3, 3, 1, 1, {"query", "params", "options"}},
    [OP_CQ_OPEN] = {OP_CQ_OPEN, "CQ_OPEN", handle_cq_open, 2, 4, 1, 2, {"name", "query", "params", "options"}},
    [OP_CQ_CLOSE] = {OP_CQ_CLOSE, "CQ_CLOSE", handle_cq_close, 1, 1, 0, -1, {"cq_id"}},
    [OP_CQ_LIST] = {OP_CQ_LIST, "CQ_LIST", handle_cq_list, 0, 0, 0, -1, {0}},
};

const command *command_lookup(uint32_t op)
{
    return op < MAX_OP && commands[op].fn ? &commands[op] : NULL;
}
