/* query_text.h - what the commands that take a query share (query,
 * watch): --param values as bind parameters, and a failed query's message
 * with a caret under the place the server named. */
#ifndef AGATE_TOOLS_CLI_QUERY_TEXT_H
#define AGATE_TOOLS_CLI_QUERY_TEXT_H

#include "common/buf.h"
#include "tools/cli/cli.h"

/* Converts the --param values (JSON) into one MessagePack array in out
 * (the values of $1, $2, ...). Returns 0, or EXIT_ERR after the message. */
int cli_query_params(const cli_args *a, buf_t *out);

/* Reports a failed query: the library's message (the server's), and for a
 * query error with a position ("at N:") the query's line with a caret
 * under that place. Returns EXIT_ERR. */
int cli_query_failed(agate_client *c, int rc, const char *query);

#endif
