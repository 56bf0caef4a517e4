/* qlex.h - the query lexer (internal to the parser, qparse.c).
 *
 * Turns query text into tokens one at a time, each with its byte offset
 * and length in the text, so that every parse error can point at the
 * offending token. Lexing is on demand (no token array): a lexer is a
 * position, and copying one is how the parser looks one token ahead.
 *
 * Keywords are recognised case-insensitively; identifiers keep their case.
 * A '/' right after FROM starts a region path (/orders, /a_b-1); anywhere
 * else it is the division operator. */
#ifndef AGATE_REGION_QLEX_H
#define AGATE_REGION_QLEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "region/qvalue.h"

/* The highest $n accepted: parameters index arrays the caller sizes. */
#define QLEX_MAX_PARAM 65535u

typedef enum qtok {
    QTK_EOF,
    QTK_ERROR,   /* a bad character, an unterminated string...: see qlex.msg */
    QTK_IDENT,   /* a name that is not a keyword */
    QTK_KEYWORD, /* kw says which */
    QTK_NUMBER,  /* num: QT_INT, QT_UINT (above INT64_MAX) or QT_FLOAT */
    QTK_STRING,  /* 'text' with its quotes; qlex_unquote gives the bytes */
    QTK_PARAM,   /* $n: param (0 is lexed; the parser refuses it) */
    QTK_REGION,  /* /name right after FROM: the name is text[pos+1, pos+len) */
    QTK_EQ, QTK_NE, QTK_LT, QTK_LE, QTK_GT, QTK_GE,
    QTK_PLUS, QTK_MINUS, QTK_STAR, QTK_SLASH, QTK_PERCENT,
    QTK_LPAREN, QTK_RPAREN, QTK_LBRACKET, QTK_RBRACKET, QTK_COMMA, QTK_DOT,
} qtok;

typedef enum qkw {
    QKW_NONE = 0,
    QKW_SELECT, QKW_DISTINCT, QKW_FROM, QKW_AS, QKW_WHERE, QKW_GROUP, QKW_BY,
    QKW_ORDER, QKW_ASC, QKW_DESC, QKW_LIMIT, QKW_AND, QKW_OR, QKW_NOT, QKW_IN,
    QKW_LIKE, QKW_IS, QKW_NULL, QKW_TRUE, QKW_FALSE, QKW_UNDEFINED,
} qkw;

typedef struct qtoken {
    qtok kind;
    uint32_t pos; /* byte offset of the token's first byte */
    uint32_t len; /* its length in bytes (0 for QTK_EOF) */
    qkw kw;       /* QTK_KEYWORD */
    qvalue num;   /* QTK_NUMBER */
    uint32_t param; /* QTK_PARAM */
} qtoken;

typedef struct qlex {
    const char *text;
    uint32_t len;
    uint32_t pos;     /* where the next token is looked for */
    bool after_from;  /* the last token was FROM: '/' starts a region path */
    bool after_dot;   /* the last token was '.': a FROM now is a field name */
    char msg[160];    /* what was wrong, after a QTK_ERROR token */
} qlex;

/* Starts lexing text[0..len). The caller has checked len against
 * QAST_MAX_TEXT, so every offset fits 32 bits. */
void qlex_init(qlex *lx, const char *text, size_t len);

/* Reads the next token into *t. At the end of the text it gives QTK_EOF
 * (at offset len) on every call. On a lexical error it gives QTK_ERROR at
 * the offending byte with lx->msg set, and skips that byte so that
 * lexing can go on (the parser stops at the first error anyway). */
void qlex_next(qlex *lx, qtoken *t);

/* The bytes of the string token t (quotes removed, '' turned into '),
 * written to out, which has room for t->len bytes. Returns their count. */
size_t qlex_unquote(const char *text, const qtoken *t, char *out);

/* The upper-case spelling of a keyword ("SELECT"), for messages. */
const char *qlex_keyword_name(qkw kw);

/* ASCII-only, locale-independent case-insensitive comparison of s[0..n)
 * with the NUL-terminated upper-case word w: true when they are equal. */
bool qlex_word_is(const char *s, size_t n, const char *w);

#endif
