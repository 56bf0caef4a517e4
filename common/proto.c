#include "common/proto.h"

#include <stddef.h>

const char *proto_status_name(int status)
{
    switch (status) {
    case ST_OK: return "OK";
    case ST_NOT_FOUND: return "NOT_FOUND";
    case ST_REDIRECT: return "REDIRECT";
    case ST_BAD_REQUEST: return "BAD_REQUEST";
    case ST_UNKNOWN_REGION: return "UNKNOWN_REGION";
    case ST_REGION_EXISTS: return "REGION_EXISTS";
    case ST_TOO_LARGE: return "TOO_LARGE";
    case ST_TOO_DEEP: return "TOO_DEEP";
    case ST_BAD_VALUE: return "BAD_VALUE";
    case ST_BAD_VERSION: return "BAD_VERSION";
    case ST_NO_HANDSHAKE: return "NO_HANDSHAKE";
    case ST_SHUTTING_DOWN: return "SHUTTING_DOWN";
    case ST_INTERNAL: return "INTERNAL";
    case ST_BAD_ARGUMENT: return "BAD_ARGUMENT";
    case ST_NO_MEMORY: return "NO_MEMORY";
    case ST_UNAVAILABLE: return "UNAVAILABLE";
    case ST_CANCELLED: return "CANCELLED";
    case ST_INDEX_EXISTS: return "INDEX_EXISTS";
    default: return "UNKNOWN_STATUS";
    }
}

const char *proto_op_name(int op)
{
    switch (op) {
    case OP_HELLO: return "HELLO";
    case OP_PING: return "PING";
    case OP_SERVER_INFO: return "SERVER_INFO";
    case OP_CLUSTER_MAP: return "CLUSTER_MAP";
    case OP_MEMBER_LIST: return "MEMBER_LIST";
    case OP_MEMBER_DESCRIBE: return "MEMBER_DESCRIBE";
    case OP_CLUSTER_STATUS: return "CLUSTER_STATUS";
    case OP_REBALANCE: return "REBALANCE";
    case OP_REBALANCE_STATUS: return "REBALANCE_STATUS";
    case OP_SHUTDOWN: return "SHUTDOWN";
    case OP_WATCH_MAP: return "WATCH_MAP";
    case OP_REGION_CREATE: return "REGION_CREATE";
    case OP_REGION_DESTROY: return "REGION_DESTROY";
    case OP_REGION_LIST: return "REGION_LIST";
    case OP_REGION_DESCRIBE: return "REGION_DESCRIBE";
    case OP_INDEX_CREATE: return "INDEX_CREATE";
    case OP_INDEX_DESTROY: return "INDEX_DESTROY";
    case OP_INDEX_LIST: return "INDEX_LIST";
    case OP_PUT: return "PUT";
    case OP_GET: return "GET";
    case OP_REMOVE: return "REMOVE";
    case OP_CONTAINS_KEY: return "CONTAINS_KEY";
    case OP_PUT_ALL: return "PUT_ALL";
    case OP_GET_ALL: return "GET_ALL";
    case OP_SIZE: return "SIZE";
    case OP_GET_ENTRY: return "GET_ENTRY";
    case OP_KEYS: return "KEYS";
    case OP_ENTRIES: return "ENTRIES";
    case OP_CLEAR: return "CLEAR";
    case OP_JOIN: return "JOIN";
    case OP_HEARTBEAT: return "HEARTBEAT";
    case OP_BUCKET_READY: return "BUCKET_READY";
    case OP_LEAVE: return "LEAVE";
    case OP_PEER_HEARTBEAT: return "PEER_HEARTBEAT";
    case OP_HANDOFF_DONE: return "HANDOFF_DONE";
    case OP_REPLICATE: return "REPLICATE";
    case OP_IMAGE_PAGE: return "IMAGE_PAGE";
    case OP_PRIMARY_HANDOFF: return "PRIMARY_HANDOFF";
    case OP_STOP: return "STOP";
    default: return NULL;
    }
}
