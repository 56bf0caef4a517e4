/* json_mp.h - JSON <-> MessagePack conversion for the agate CLI.
 *
 * Values are JSON on the command line and in data files, MessagePack on the
 * wire. This module converts directly between JSON text and MessagePack bytes
 * without an intermediate tree, for two reasons:
 *   - exactness: every integer in -2^63 .. 2^64-1 survives a round trip as an
 *     integer (a tree library with a signed 64-bit integer type cannot hold
 *     uint64 values above INT64_MAX), and doubles print in their shortest form
 *     that reads back to the same bits (0.1, not 0.10000000000000001);
 *   - speed and memory: `import data` converts millions of lines, and the
 *     value part of each line is sent as the MessagePack slice produced here.
 *
 * JSON -> MessagePack (json_mp_parse)
 *   object -> map (str keys, in input order; a duplicate key is an error),
 *   array -> array, string -> str (input must be UTF-8), true/false -> bool,
 *   null -> nil, integer literal -> int/uint (an integer literal outside
 *   -2^63 .. 2^64-1 becomes a float64), any number with a fraction or an
 *   exponent -> float64. Containers use the smallest MessagePack header.
 *
 * MessagePack -> JSON (jw_mp)
 *   bin -> base64 string; ext -> {"$ext": type, "base64": "..."}; map keys
 *   that are not strings -> their compact JSON text (a bin key -> its base64;
 *   such keys within such keys more than 4 levels deep are refused with
 *   MP_EDEPTH, as every level escapes the text again and doubles its size);
 *   float NaN/Infinity -> null (JSON has no spelling for them); bytes of a str
 *   that are not valid UTF-8 -> U+FFFD.
 *
 * Also here: a small streaming JSON writer (jw_*) used for all of the CLI's
 * --json output, base64, and a UTF-8 validity check.
 */
#ifndef AGATE_CLI_JSON_MP_H
#define AGATE_CLI_JSON_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/mp.h"

/* Deepest JSON nesting json_mp_parse accepts (the server's own limit,
 * default 32, is usually lower and reported by the server). */
#define JSON_MP_MAX_DEPTH 255

/* Where and why a parse failed. line and column are 1-based; column counts
 * bytes. */
typedef struct json_mp_error {
    size_t offset;
    int line;
    int column;
    char text[160];
} json_mp_error;

/* Parses exactly one JSON value from text[0, len) (whitespace around it is
 * allowed, anything else after it is an error) and appends it to out as one
 * MessagePack object. Returns 0, or -1 with err filled (err may be NULL) and
 * out restored to its length on entry. Never reads outside text. */
int json_mp_parse(const char *text, size_t len, buf_t *out, json_mp_error *err);

/* ---- JSON writer -----------------------------------------------------
 * Appends JSON text to a buf_t. Commas, colons and (when indent > 0) line
 * breaks and indentation are inserted automatically; the caller only says
 * what comes next. Every call returns 0 or -1 (out of memory, or a misuse
 * such as a value where a key is expected). After -1 the output is
 * unspecified. */
typedef struct jw {
    buf_t *out;
    int indent;       /* spaces per level; 0 = compact, one line */
    int depth;
    int cap;
    uint32_t *count;  /* per open container: elements written so far */
    bool *is_obj;     /* per open container: object (keys expected) or array */
    bool after_key;   /* a key was written, its value comes next */
    int err;
} jw_t;

void jw_init(jw_t *w, buf_t *out, int indent);
void jw_free(jw_t *w);
int jw_begin_object(jw_t *w);
int jw_end_object(jw_t *w);
int jw_begin_array(jw_t *w);
int jw_end_array(jw_t *w);
/* An object member's name; the next call writes its value. */
int jw_key(jw_t *w, const void *s, size_t n);
int jw_ckey(jw_t *w, const char *s);
int jw_str(jw_t *w, const void *s, size_t n);
int jw_cstr(jw_t *w, const char *s); /* NULL writes null */
int jw_int(jw_t *w, int64_t v);
int jw_uint(jw_t *w, uint64_t v);
int jw_double(jw_t *w, double v);
int jw_bool(jw_t *w, bool v);
int jw_null(jw_t *w);
/* A string holding the base64 of [p, p+n). */
int jw_base64(jw_t *w, const void *p, size_t n);
/* Writer failure code of jw_mp and json_mp_to_json, distinct from MP_E*. */
#define JW_EFAIL (-100)

/* Writes one MessagePack object read from c as JSON (mapping above) and
 * advances c past it. Returns 0, JW_EFAIL (out of memory or writer misuse)
 * or an MP_E* code when the input is not well-formed MessagePack or is
 * nested deeper than 1024 levels (or its non-string keys deeper than 4). */
int jw_mp(jw_t *w, mp_cursor *c);

/* Converts the single MessagePack object [mp, mp+n) to JSON text appended to
 * out (NUL-terminated, the NUL not counted in out->len). indent as for jw.
 * Returns 0, JW_EFAIL (out of memory) or an MP_E* code (malformed, or
 * trailing bytes: MP_EINVALID). */
int json_mp_to_json(const void *mp, size_t n, buf_t *out, int indent);

/* ---- base64 (RFC 4648, standard alphabet, padded) ----------------------*/

/* Appends the base64 of [p, p+n) to out. Returns 0 or -1. */
int b64_encode(const void *p, size_t n, buf_t *out);
/* Appends the bytes encoded by s[0, n) to out. Padding is optional;
 * anything outside the alphabet is an error. Returns 0 or -1 (bad input or
 * out of memory; out restored). */
int b64_decode(const char *s, size_t n, buf_t *out);

/* True if [p, p+n) is well-formed UTF-8 (no overlongs, no surrogates, no
 * code points above U+10FFFF). */
bool utf8_valid(const void *p, size_t n);

#endif
