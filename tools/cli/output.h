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
/* Appends a row of a two-column "label: value" table: the label cell as is,
 * then the value cell formatted as by table_cell. */
void table_pair(table_t *t, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
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
/* Prints the document and a newline to fp and frees it. Returns 0, or
 * EXIT_ERR (1) after a message if the writer failed (out of memory). */
int json_doc_print_to(json_doc *d, FILE *fp);
/* json_doc_print_to(d, stdout). */
int json_doc_print(json_doc *d);
void json_doc_free(json_doc *d);

/* ---- JSON objects described by a list of fields -------------------------
 * Most --json documents are objects of a few named values. A handler lists
 * them and one call writes the object, e.g.
 *
 *     return json_print_object(stdout, JSON_FIELDS(JF_STR("region", name),
 *                                                   JF_UINT("removed", n)));
 *
 * JSON_FIELDS makes a list ending in a JSON_FIELD_END entry; it lives until
 * the end of the enclosing block. */
typedef enum json_field_type {
    JSON_FIELD_END,    /* ends a list */
    JSON_FIELD_STR,    /* s: text (NULL writes null) */
    JSON_FIELD_INT,    /* i */
    JSON_FIELD_UINT,   /* u */
    JSON_FIELD_DOUBLE, /* d */
    JSON_FIELD_BOOL,   /* b */
    JSON_FIELD_MP,     /* p, n: one MessagePack object as JSON, null if malformed */
    JSON_FIELD_KEY,    /* p, n: an entry's key (the name is implied, see JF_KEY) */
    JSON_FIELD_OBJECT, /* fields: a nested object */
} json_field_type;

typedef struct json_field {
    json_field_type type;
    const char *name;
    bool omit; /* leave the field out (JF_IF) */
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        double d;
        bool b;
        struct {
            const void *p;
            size_t n;
        };
        const struct json_field *fields;
    };
} json_field;

#define JF_STR(name_, v) ((json_field){.type = JSON_FIELD_STR, .name = (name_), .s = (v)})
#define JF_INT(name_, v) ((json_field){.type = JSON_FIELD_INT, .name = (name_), .i = (v)})
#define JF_UINT(name_, v) ((json_field){.type = JSON_FIELD_UINT, .name = (name_), .u = (v)})
#define JF_DOUBLE(name_, v) ((json_field){.type = JSON_FIELD_DOUBLE, .name = (name_), .d = (v)})
#define JF_BOOL(name_, v) ((json_field){.type = JSON_FIELD_BOOL, .name = (name_), .b = (v)})
#define JF_MP(name_, mp, len) \
    ((json_field){.type = JSON_FIELD_MP, .name = (name_), .p = (mp), .n = (len)})
/* "key": the key as text when it is UTF-8, else "key_base64": its base64
 * (the import/export format). */
#define JF_KEY(key, klen) ((json_field){.type = JSON_FIELD_KEY, .p = (key), .n = (klen)})
#define JF_OBJECT(name_, list) \
    ((json_field){.type = JSON_FIELD_OBJECT, .name = (name_), .fields = (list)})
/* The field f, or nothing when present is false. */
#define JF_IF(present, f) json_field_if((present), (f))
#define JSON_FIELDS(...) ((const json_field[]){__VA_ARGS__, {.type = JSON_FIELD_END}})

static inline json_field json_field_if(bool present, json_field f)
{
    f.omit = !present;
    return f;
}

/* Writes the fields as members of the object open in w. Returns 0 or -1
 * (the writer failed). */
int jw_fields(jw_t *w, const json_field *fields);
/* Writes one object holding the fields. Returns 0 or -1. */
int jw_object(jw_t *w, const json_field *fields);
/* Prints a --json document that is one object holding the fields to fp
 * (stdout, or stderr when stdout carries data). Returns as json_doc_print_to. */
int json_print_object(FILE *fp, const json_field *fields);

/* Describes a failure code of jw_mp or json_mp_to_json: "out of memory"
 * for JW_EFAIL, else the MP_E* code's text. */
const char *json_conv_strerror(int rc);

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
