/* qarena.h - the bump allocator that owns a query's syntax tree (private
 * to the query engine).
 *
 * Every node and string of one parsed query or expression lives in one
 * arena and is freed with it at once (qarena_free, declared in qast.h), so
 * the parser never has to unwind partial trees on an error. */
#ifndef AGATE_REGION_QARENA_H
#define AGATE_REGION_QARENA_H

#include <stddef.h>

struct qarena;

/* A new, empty arena, or NULL when out of memory. */
struct qarena *qarena_new(void);

/* n zeroed bytes aligned for any type, valid until the arena is freed;
 * NULL when out of memory. */
void *qarena_alloc(struct qarena *a, size_t n);

/* A NUL-terminated copy of s[0..n) in the arena, or NULL. */
char *qarena_strndup(struct qarena *a, const char *s, size_t n);

/* void qarena_free(struct qarena *a): in qast.h. */

#endif
