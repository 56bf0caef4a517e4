/* command.h - the command table: one row per opcode. */
#ifndef AGATE_SERVER_COMMAND_H
#define AGATE_SERVER_COMMAND_H

#include <stdint.h>

#include "common/msg.h"
#include "server/request.h"

typedef void (*command_fn)(req_ctx *x);

typedef struct command {
    uint32_t op;
    const char *name;
    command_fn fn;
    uint8_t min_args, max_args;
    /* Values inside this command's arguments sit this many containers below
     * the argument itself (PUT_ALL's map: 1), so arguments may nest
     * max_depth + extra_depth deep. */
    uint8_t extra_depth;
    int8_t value_arg; /* the argument holding values (-1: none), for BAD_VALUE */
    const char *args[MSG_MAX_ARGS];
} command;

/* The row for op, or NULL. */
const command *command_lookup(uint32_t op);

#endif
