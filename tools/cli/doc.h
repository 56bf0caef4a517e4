/* doc.h - reading the MessagePack documents of the admin API (SERVER_INFO,
 * the cluster status, member info and rebalance status maps of
 * docs/cluster.md) for the CLI's text output.
 *
 * A document is read in place with common/mp.h's bounded reader. A value is
 * an mp_cursor positioned at the start of one object; looking something up
 * never moves the caller's cursor. Every lookup is defensive: a missing key,
 * a value of another type or malformed bytes give false, and the caller
 * shows "-" (the server of a newer or older version may lack a field). */
#ifndef AGATE_CLI_DOC_H
#define AGATE_CLI_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agate/agate.h"
#include "common/mp.h"

/* The document's top-level object. */
mp_cursor doc_root(const agate_buf *doc);
/* True if v is a map (doc_is_map) or an array (doc_is_array). */
bool doc_is_map(mp_cursor v);
bool doc_is_array(mp_cursor v);

/* Points *val at the value under key in the map obj. False when obj is not
 * a map, lacks the key or is malformed. */
bool doc_get(mp_cursor obj, const char *key, mp_cursor *val);

/* The scalar at v: a str copied into out (truncated to cap, NUL-terminated),
 * an unsigned integer, a signed integer, a bool. False for another type. */
bool doc_str(mp_cursor v, char *out, size_t cap);
bool doc_uint(mp_cursor v, uint64_t *out);
bool doc_int(mp_cursor v, int64_t *out);
bool doc_bool(mp_cursor v, bool *out);
/* A str, or an integer written in decimal (for values such as a member
 * named by name or by id). */
bool doc_text(mp_cursor v, char *out, size_t cap);

/* The same, for the value under key in the map obj. */
bool doc_get_str(mp_cursor obj, const char *key, char *out, size_t cap);
bool doc_get_uint(mp_cursor obj, const char *key, uint64_t *out);
bool doc_get_int(mp_cursor obj, const char *key, int64_t *out);
bool doc_get_bool(mp_cursor obj, const char *key, bool *out);
/* The uint under key formatted for a table cell: with thousands separators
 * when count, else plain digits; "-" when absent. */
void doc_get_cell(mp_cursor obj, const char *key, bool count, char *out, size_t cap);

/* Iterating over an array's elements:
 *
 *     doc_iter it;
 *     mp_cursor m;
 *     if (doc_get_array(root, "members", &it))
 *         while (doc_next(&it, &m))
 *             ... m is one element ...
 *
 * doc_next stops (false) at the end or at a malformed element. */
typedef struct doc_iter {
    mp_cursor c;
    uint32_t left;
} doc_iter;

bool doc_array(mp_cursor v, doc_iter *it);
bool doc_get_array(mp_cursor obj, const char *key, doc_iter *it);
bool doc_next(doc_iter *it, mp_cursor *elem);
/* The element at index i of the array v (a tuple such as [member, buckets,
 * primaries]). */
bool doc_index(mp_cursor v, uint32_t i, mp_cursor *elem);

/* Prints the whole document as indented JSON on stdout (the --json output
 * of the commands that show an admin document). Returns EXIT_OK, or
 * EXIT_ERR after a message when it is not well-formed MessagePack. */
int doc_print_json(const agate_buf *doc);

#endif
