/* qlex.c - the query lexer; see qlex.h. */
#include "region/qlex.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Indexed by qkw. */
static const char *const kw_names[] = {
    [QKW_NONE] = "",          [QKW_SELECT] = "SELECT", [QKW_DISTINCT] = "DISTINCT",
    [QKW_FROM] = "FROM",      [QKW_AS] = "AS",         [QKW_WHERE] = "WHERE",
    [QKW_GROUP] = "GROUP",    [QKW_BY] = "BY",         [QKW_ORDER] = "ORDER",
    [QKW_ASC] = "ASC",        [QKW_DESC] = "DESC",     [QKW_LIMIT] = "LIMIT",
    [QKW_AND] = "AND",        [QKW_OR] = "OR",         [QKW_NOT] = "NOT",
    [QKW_IN] = "IN",          [QKW_LIKE] = "LIKE",     [QKW_IS] = "IS",
    [QKW_NULL] = "NULL",      [QKW_TRUE] = "TRUE",     [QKW_FALSE] = "FALSE",
    [QKW_UNDEFINED] = "UNDEFINED",
};
#define NKW (sizeof(kw_names) / sizeof(kw_names[0]))

/* Character classes by hand: <ctype.h> depends on the locale, and the
 * language is defined over ASCII bytes. */
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_ident_start(int c) { return is_alpha(c) || c == '_'; }
static bool is_ident_char(int c) { return is_ident_start(c) || is_digit(c); }
static bool is_region_char(int c) { return is_ident_char(c) || c == '-'; }
static bool is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static int upper(int c) { return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c; }

bool qlex_word_is(const char *s, size_t n, const char *w)
{
    size_t i = 0;
    for (; i < n && w[i]; i++)
        if (upper((unsigned char)s[i]) != w[i])
            return false;
    return i == n && !w[i];
}

const char *qlex_keyword_name(qkw kw)
{
    return (unsigned)kw < NKW ? kw_names[kw] : "";
}

void qlex_init(qlex *lx, const char *text, size_t len)
{
    memset(lx, 0, sizeof(*lx));
    lx->text = text;
    lx->len = (uint32_t)len;
}

/* The byte at offset i, or -1 past the end (the text need not be
 * NUL-terminated). */
static int at(const qlex *lx, uint32_t i)
{
    return i < lx->len ? (unsigned char)lx->text[i] : -1;
}

/* Ends token t at the lexer's position. */
static void finish(qlex *lx, qtoken *t, qtok kind)
{
    t->kind = kind;
    t->len = lx->pos - t->pos;
}

/* Makes t a QTK_ERROR at offset pos; the lexer resumes after skip bytes
 * from there so that it always makes progress. */
static void error_at(qlex *lx, qtoken *t, uint32_t pos, uint32_t skip, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void error_at(qlex *lx, qtoken *t, uint32_t pos, uint32_t skip, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lx->msg, sizeof(lx->msg), fmt, ap);
    va_end(ap);
    t->kind = QTK_ERROR;
    t->pos = pos;
    t->len = skip;
    lx->pos = pos + skip;
}

/* A word: a keyword when it spells one, else an identifier. */
static void lex_word(qlex *lx, qtoken *t)
{
    while (is_ident_char(at(lx, lx->pos)))
        lx->pos++;
    finish(lx, t, QTK_IDENT);
    for (unsigned k = 1; k < NKW; k++)
        if (qlex_word_is(lx->text + t->pos, t->len, kw_names[k])) {
            t->kind = QTK_KEYWORD;
            t->kw = (qkw)k;
            return;
        }
}

/* Digits, at most 64 bits unsigned: QT_INT up to INT64_MAX, QT_UINT above. */
static void int_value(qlex *lx, qtoken *t)
{
    uint64_t u = 0;
    for (uint32_t i = t->pos; i < lx->pos; i++) {
        unsigned d = (unsigned)(lx->text[i] - '0');
        if (u > (UINT64_MAX - d) / 10) {
            error_at(lx, t, t->pos, t->len,
                     "integer %.*s is out of range (at most 18446744073709551615)",
                     t->len > 40 ? 40 : (int)t->len, lx->text + t->pos);
            return;
        }
        u = u * 10 + d;
    }
    if (u <= INT64_MAX)
        t->num = qv_int((int64_t)u);
    else
        t->num = (qvalue){.type = QT_UINT, .v.u = u};
}

/* A float literal, converted by strtod (the text is not NUL-terminated,
 * so it is copied). Overflow to infinity is refused; underflow is not. */
static void float_value(qlex *lx, qtoken *t)
{
    char buf[400];
    if (t->len >= sizeof(buf)) {
        error_at(lx, t, t->pos, t->len, "number too long (%u bytes)", t->len);
        return;
    }
    memcpy(buf, lx->text + t->pos, t->len);
    buf[t->len] = 0;
    double d = strtod(buf, NULL);
    if (isinf(d)) {
        error_at(lx, t, t->pos, t->len, "number %.40s is out of range", buf);
        return;
    }
    t->num = qv_float(d);
}

/* digits [. digits] [e [+-] digits]. A '.' not followed by a digit ends
 * the number (so 7.x is a field of 7). A letter, digit or _ right after a
 * number is an error rather than a second token: 12abc is a typo. */
static void lex_number(qlex *lx, qtoken *t)
{
    bool is_float = false;
    while (is_digit(at(lx, lx->pos)))
        lx->pos++;
    if (at(lx, lx->pos) == '.' && is_digit(at(lx, lx->pos + 1))) {
        is_float = true;
        lx->pos++;
        while (is_digit(at(lx, lx->pos)))
            lx->pos++;
    }
    if (at(lx, lx->pos) == 'e' || at(lx, lx->pos) == 'E') {
        uint32_t j = lx->pos + 1;
        if (at(lx, j) == '+' || at(lx, j) == '-')
            j++;
        if (is_digit(at(lx, j))) {
            is_float = true;
            lx->pos = j;
            while (is_digit(at(lx, lx->pos)))
                lx->pos++;
        }
    }
    if (is_ident_char(at(lx, lx->pos))) {
        uint32_t end = lx->pos;
        while (is_ident_char(at(lx, end)))
            end++;
        error_at(lx, t, t->pos, end - t->pos, "malformed number '%.*s'",
                 end - t->pos > 40 ? 40 : (int)(end - t->pos), lx->text + t->pos);
        return;
    }
    finish(lx, t, QTK_NUMBER);
    if (is_float)
        float_value(lx, t);
    else
        int_value(lx, t);
}

/* 'text' where '' stands for one quote. */
static void lex_string(qlex *lx, qtoken *t)
{
    lx->pos++;
    for (;;) {
        int c = at(lx, lx->pos);
        if (c < 0) {
            error_at(lx, t, t->pos, lx->len - t->pos, "unterminated string starting here");
            return;
        }
        lx->pos++;
        if (c == '\'') {
            if (at(lx, lx->pos) != '\'')
                break;
            lx->pos++;
        }
    }
    finish(lx, t, QTK_STRING);
}

/* $n with 1 <= n <= QLEX_MAX_PARAM ($0 is left for the parser to refuse
 * with a better message). */
static void lex_param(qlex *lx, qtoken *t)
{
    lx->pos++;
    if (!is_digit(at(lx, lx->pos))) {
        error_at(lx, t, t->pos, 1, "expected a parameter number after '$'");
        return;
    }
    uint64_t n = 0;
    while (is_digit(at(lx, lx->pos))) {
        if (n <= QLEX_MAX_PARAM)
            n = n * 10 + (unsigned)(at(lx, lx->pos) - '0');
        lx->pos++;
    }
    if (is_ident_char(at(lx, lx->pos)) || n > QLEX_MAX_PARAM) {
        while (is_ident_char(at(lx, lx->pos)))
            lx->pos++;
        error_at(lx, t, t->pos, lx->pos - t->pos, "bad parameter '%.*s' (expected $1 to $%u)",
                 lx->pos - t->pos > 40 ? 40 : (int)(lx->pos - t->pos), lx->text + t->pos,
                 QLEX_MAX_PARAM);
        return;
    }
    finish(lx, t, QTK_PARAM);
    t->param = (uint32_t)n;
}

/* One- and two-character operators; false when c is none of them. */
static bool lex_operator(qlex *lx, qtoken *t, int c)
{
    int c2 = at(lx, lx->pos + 1);
    qtok k;
    uint32_t n = 1;
    switch (c) {
    case '=': k = QTK_EQ; break;
    case '<':
        k = c2 == '=' ? QTK_LE : c2 == '>' ? QTK_NE : QTK_LT;
        n = k == QTK_LT ? 1 : 2;
        break;
    case '>':
        k = c2 == '=' ? QTK_GE : QTK_GT;
        n = k == QTK_GT ? 1 : 2;
        break;
    case '!':
        if (c2 != '=')
            return false;
        k = QTK_NE;
        n = 2;
        break;
    case '+': k = QTK_PLUS; break;
    case '-': k = QTK_MINUS; break;
    case '*': k = QTK_STAR; break;
    case '/': k = QTK_SLASH; break;
    case '%': k = QTK_PERCENT; break;
    case '(': k = QTK_LPAREN; break;
    case ')': k = QTK_RPAREN; break;
    case '[': k = QTK_LBRACKET; break;
    case ']': k = QTK_RBRACKET; break;
    case ',': k = QTK_COMMA; break;
    case '.': k = QTK_DOT; break;
    default: return false;
    }
    lx->pos += n;
    finish(lx, t, k);
    return true;
}

/* Decides what the token starting at lx->pos is, and lexes it. */
static void lex_token(qlex *lx, qtoken *t)
{
    int c = at(lx, lx->pos);
    if (c < 0)
        finish(lx, t, QTK_EOF);
    else if (is_ident_start(c))
        lex_word(lx, t);
    else if (is_digit(c))
        lex_number(lx, t);
    else if (c == '\'')
        lex_string(lx, t);
    else if (c == '$')
        lex_param(lx, t);
    else if (c == '/' && lx->after_from && is_region_char(at(lx, lx->pos + 1))) {
        lx->pos++;
        while (is_region_char(at(lx, lx->pos)))
            lx->pos++;
        finish(lx, t, QTK_REGION);
    } else if (!lex_operator(lx, t, c)) {
        if (c > ' ' && c < 0x7f)
            error_at(lx, t, lx->pos, 1, "unexpected character '%c'", c);
        else
            error_at(lx, t, lx->pos, 1, "unexpected byte 0x%02x", (unsigned)c);
    }
}

void qlex_next(qlex *lx, qtoken *t)
{
    while (is_space(at(lx, lx->pos)))
        lx->pos++;
    memset(t, 0, sizeof(*t));
    t->pos = lx->pos;
    lex_token(lx, t);
    /* x.from / 2 divides: FROM after a dot is a field, not the clause */
    lx->after_from = t->kind == QTK_KEYWORD && t->kw == QKW_FROM && !lx->after_dot;
    lx->after_dot = t->kind == QTK_DOT;
}

size_t qlex_unquote(const char *text, const qtoken *t, char *out)
{
    size_t n = 0;
    const char *p = text + t->pos + 1, *end = text + t->pos + t->len - 1;
    while (p < end) {
        if (*p == '\'')
            p++; /* the first of a doubled quote */
        out[n++] = *p++;
    }
    return n;
}
