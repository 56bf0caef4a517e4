/* index_args.h - the arguments INDEX_CREATE and INDEX_DESTROY share, read
 * the same way by a stand-alone server (handlers_index.c) and a locator
 * (locator_index.c): [region, name, expression?, type?]. */
#ifndef AGATE_SERVER_INDEX_ARGS_H
#define AGATE_SERVER_INDEX_ARGS_H

#include <stdint.h>

#include "region/qindex.h"
#include "server/request.h"

typedef struct index_args {
    char name[QINDEX_NAME_MAX + 1];
    char expr[QINDEX_EXPR_MAX + 1]; /* NUL-terminated copy */
    uint32_t elen;
    qindex_kind kind;               /* QINDEX_RANGE when the type is absent or nil */
} index_args;

/* Argument i as an index name (qindex_name_check) into name. 0, or -1
 * after replying BAD_ARGUMENT / BAD_REQUEST. */
int index_arg_name(req_ctx *x, int i, char name[QINDEX_NAME_MAX + 1]);
/* INDEX_CREATE's name, expression and type (arguments 1..3; the region,
 * argument 0, is the caller's). The expression is only length-checked
 * here. 0, or -1 after replying. */
int index_args_read(req_ctx *x, index_args *a);

#endif
