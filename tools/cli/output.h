/* output.h - how the CLI prints: aligned text tables for people, one JSON
 * document for --json, and human-readable numbers. */
#ifndef AGATE_CLI_OUTPUT_H
#define AGATE_CLI_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/buf.h"
#include "tools/cli/json_mp.h"

/* A text table: cells are added row by row, left to right; widths are
 * computed when printing. Columns flagged right-aligned suit numbers. */
typedef struct table {
    int ncols;
    const char **headers; /* ncols names, or NULL for no header row */
    const bool *right;    /* ncols flags, or NULL for all left-aligned */
    char **cells;
    size_t ncells, cap;
    bool oom;
} table_t;

void table_init(table_t *t, int ncols, const char **headers, const bool *right);
/* Appends one cell (printf-style). Out of memory is remembered and turns the
 * cell into "?" rather than failing the whole command. */
void table_cell(table_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the header row, a rule under it, and the rows, with two spaces
 * between columns and no trailing spaces. */
void table_print(const table_t *t, FILE *fp);
void table_free(table_t *t);

/* A JSON document for --json: a pretty-printed writer into a buffer. */
typedef struct json_doc {
    buf_t buf;
    jw_t w;
} json_doc;

void json_doc_init(json_doc *d);
/* Prints the document and a newline to stdout and frees it. Returns 0, or
 * EXIT_ERR (1) after a message if the writer failed (out of memory). */
int json_doc_print(json_doc *d);
void json_doc_free(json_doc *d);

/* "1.5 KiB", "12.0 MiB", "812 B". */
void fmt_bytes(uint64_t n, char *out, size_t cap);
/* "3d 04h 05m", "1h 02m 03s", "5m 07s", "42s". */
void fmt_duration(uint64_t seconds, char *out, size_t cap);
/* "1,234,567". */
void fmt_count(uint64_t n, char *out, size_t cap);
/* Writes key bytes for a person: as is when valid UTF-8 without control
 * characters, else as base64:<...>. */
void print_key(FILE *fp, const void *key, size_t klen);
/* Writes a key for a message into out: quoted text like 'abc' (truncated
 * with ... after 60 bytes) or base64:<...>. */
void fmt_key(const void *key, size_t klen, char *out, size_t cap);

/* Monotonic seconds. */
double now_seconds(void);

#endif
