/* proto.h - the wire protocol's numbers: message kinds, opcodes, status
 * codes, default limits. docs/protocol.md is the prose version of this file;
 * change both together. */
#ifndef AGATE_COMMON_PROTO_H
#define AGATE_COMMON_PROTO_H

#include <stdint.h>

#define AGATE_PROTO_MAGIC "agate"
#define AGATE_PROTO_VERSION 1
#define AGATE_VERSION "0.1.0" /* keep in step with project() in CMakeLists.txt */

/* First element of every frame body. */
enum agate_msg_kind {
    MSG_REQUEST = 0,  /* [0, request_id, opcode, args...] */
    MSG_RESPONSE = 1, /* [1, request_id, status, results...] */
    MSG_PUSH = 2,     /* [2, subscription_id, event_kind, payload...] */
};

enum agate_opcode {
    OP_HELLO = 1,
    OP_PING = 2,
    OP_SERVER_INFO = 3,
    /* clusters (docs/cluster.md) */
    OP_CLUSTER_MAP = 4,
    OP_MEMBER_LIST = 5,
    OP_MEMBER_DESCRIBE = 6,
    OP_CLUSTER_STATUS = 7,
    OP_REBALANCE = 8,
    OP_REBALANCE_STATUS = 9,
    OP_SHUTDOWN = 14,
    OP_WATCH_MAP = 15,

    OP_REGION_CREATE = 10,
    OP_REGION_DESTROY = 11,
    OP_REGION_LIST = 12,
    OP_REGION_DESCRIBE = 13,
    /* indexes (docs/query.md "Indexes") */
    OP_INDEX_CREATE = 16,
    OP_INDEX_DESTROY = 17,
    OP_INDEX_LIST = 18,

    OP_PUT = 20,
    OP_GET = 21,
    OP_REMOVE = 22,
    OP_CONTAINS_KEY = 23,
    OP_PUT_ALL = 24,
    OP_GET_ALL = 25,
    OP_SIZE = 26,
    OP_GET_ENTRY = 27,
    OP_KEYS = 28,
    OP_ENTRIES = 29,
    OP_CLEAR = 30,
    OP_QUERY = 31, /* docs/query.md */
    OP_QUERY_NEXT = 32,   /* the next page of a query's cursor */
    OP_QUERY_CLOSE = 33,  /* drops a cursor */
    OP_QUERY_CANCEL = 34, /* stops a running QUERY of this connection */
    /* continuous queries (docs/query.md "Continuous queries") */
    OP_CQ_OPEN = 35,
    OP_CQ_CLOSE = 36,
    OP_CQ_LIST = 37,

    /* between members and locators only */
    OP_JOIN = 40,
    OP_HEARTBEAT = 41,
    OP_BUCKET_READY = 42,
    OP_LEAVE = 43,
    OP_PEER_HEARTBEAT = 44,
    OP_HANDOFF_DONE = 45,
    OP_QUERY_PART = 46, /* coordinator -> member: its part of a cluster query */
    OP_REPLICATE = 50,
    OP_IMAGE_PAGE = 51,
    OP_PRIMARY_HANDOFF = 52,
    OP_STOP = 53,
};

/* Event kinds of push messages. */
enum agate_push_kind {
    PUSH_MAP = 1,     /* [2, 0, 1, cluster_map]: after WATCH_MAP, on every change */
    PUSH_HANDOFF = 2, /* locator -> member: [region, bucket]: stop writes, drain, HANDOFF_DONE */
    PUSH_STOP = 3,    /* locator -> member: shut down */
    PUSH_CQ_EVENT = 4,    /* [2, cq_id, 4, bucket, seq, op, key, value] */
    PUSH_CQ_REPLAY = 5,   /* [2, cq_id, 5, bucket, complete_since] */
    PUSH_CQ_PROGRESS = 6, /* [2, cq_id, 6, [[bucket, seq], ...]] */
    PUSH_CQ_CLOSED = 7,   /* [2, cq_id, 7, status, message] */
};

/* Status of a response. 0..9 are outcomes, 10 and up are errors; an error
 * response carries one more element, a readable message. */
enum agate_status {
    ST_OK = 0,
    ST_NOT_FOUND = 1,        /* key absent: an outcome, not a failure */
    ST_REDIRECT = 2,         /* not primary: [metadata_version, primary_member_id or 0] */
    ST_BAD_REQUEST = 10,     /* malformed body, unknown opcode, wrong argument types */
    ST_UNKNOWN_REGION = 11,
    ST_REGION_EXISTS = 12,
    ST_TOO_LARGE = 13,       /* frame, key, value or batch above a limit */
    ST_TOO_DEEP = 14,        /* value nested deeper than the limit */
    ST_BAD_VALUE = 15,       /* value is not exactly one well-formed MessagePack object */
    ST_BAD_VERSION = 16,     /* handshake: wrong magic or unsupported protocol version */
    ST_NO_HANDSHAKE = 17,    /* a request before HELLO */
    ST_SHUTTING_DOWN = 18,
    ST_INTERNAL = 19,
    ST_BAD_ARGUMENT = 20,    /* well-typed but invalid argument (region type, name, ...) */
    ST_NO_MEMORY = 21,
    ST_UNAVAILABLE = 22,     /* cannot serve the bucket now: retry after a short backoff */
    ST_CANCELLED = 23,       /* the request was cancelled (QUERY_CANCEL) */
    ST_INDEX_EXISTS = 24,    /* INDEX_CREATE: the region has an index of that name */
};

/* Default limits; every one can be changed on the server command line. */
#define AGATE_DEFAULT_MAX_FRAME (64u << 20)   /* 64 MiB: one put-all batch */
#define AGATE_DEFAULT_MAX_KEY (16u << 10)     /* 16 KiB */
#define AGATE_DEFAULT_MAX_VALUE (16u << 20)   /* 16 MiB */
#define AGATE_DEFAULT_MAX_DEPTH 32            /* container nesting in a value */
#define AGATE_DEFAULT_BUCKETS 113
#define AGATE_MAX_BUCKETS 65536
#define AGATE_MAX_REDUNDANT_COPIES 3
#define AGATE_MAX_REGION_NAME 128
#define AGATE_DEFAULT_PORT 40404
#define AGATE_DEFAULT_LOCATOR_PORT 10334
#define AGATE_DEFAULT_MEMBER_TIMEOUT_MS 5000

/* Name of a status code ("OK", "UNKNOWN_REGION", ...). */
const char *proto_status_name(int status);
/* Name of an opcode ("PUT", ...), or NULL if unknown. */
const char *proto_op_name(int op);

#endif
