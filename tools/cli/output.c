/* output.c - tables, JSON documents, human-readable numbers. */
#include "tools/cli/output.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/cli/cli.h"

void cli_verr(const char *fmt, va_list ap)
{
    /* stdout may hold a partial line of progress text; keep order sane */
    fflush(stdout);
    fputs("agate: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_verr(fmt, ap);
    va_end(ap);
}

void table_init(table_t *t, int ncols, const char **headers, const bool *right)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    t->headers = headers;
    t->right = right;
}

/* table_cell with a va_list. */
static void table_vcell(table_t *t, const char *fmt, va_list ap)
{
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    if (n < 0) {
        s = NULL;
        t->oom = true;
    }
    if (t->ncells == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        char **c = realloc(t->cells, cap * sizeof(*c));
        if (!c) {
            free(s);
            t->oom = true;
            return;
        }
        t->cells = c;
        t->cap = cap;
    }
    t->cells[t->ncells++] = s;
}

void table_cell(table_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    table_vcell(t, fmt, ap);
    va_end(ap);
}

void table_pair(table_t *t, const char *label, const char *fmt, ...)
{
    table_cell(t, "%s", label);
    va_list ap;
    va_start(ap, fmt);
    table_vcell(t, fmt, ap);
    va_end(ap);
}

/* Display width of a UTF-8 string: counts code points, not bytes, so
 * non-ASCII names still line up (East Asian wide characters excepted). */
static size_t width_of(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

static void pad(FILE *fp, size_t n)
{
    while (n--)
        fputc(' ', fp);
}

static void print_row(const table_t *t, FILE *fp, const size_t *widths, const char *const *cells,
                      int n)
{
    for (int c = 0; c < n; c++) {
        const char *s = cells[c] ? cells[c] : "?";
        size_t w = width_of(s);
        bool last = c == n - 1;
        bool right = t->right && t->right[c];
        if (right)
            pad(fp, widths[c] - w);
        fputs(s, fp);
        if (!last) {
            if (!right)
                pad(fp, widths[c] - w);
            fputs("  ", fp);
        }
    }
    fputc('\n', fp);
}

void table_print(const table_t *t, FILE *fp)
{
    size_t *widths = calloc((size_t)t->ncols, sizeof(*widths));
    if (!widths)
        return;
    for (int c = 0; c < t->ncols; c++)
        if (t->headers)
            widths[c] = width_of(t->headers[c]);
    for (size_t i = 0; i < t->ncells; i++) {
        size_t w = width_of(t->cells[i] ? t->cells[i] : "?");
        size_t c = i % (size_t)t->ncols;
        if (w > widths[c])
            widths[c] = w;
    }
    if (t->headers) {
        print_row(t, fp, widths, t->headers, t->ncols);
        for (int c = 0; c < t->ncols; c++) {
            for (size_t k = 0; k < widths[c]; k++)
                fputc('-', fp);
            if (c < t->ncols - 1)
                fputs("  ", fp);
        }
        fputc('\n', fp);
    }
    for (size_t i = 0; i + (size_t)t->ncols <= t->ncells; i += (size_t)t->ncols)
        print_row(t, fp, widths, (const char *const *)t->cells + i, t->ncols);
    free(widths);
}

void table_free(table_t *t)
{
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

void json_doc_init(json_doc *d)
{
    buf_init(&d->buf);
    jw_init(&d->w, &d->buf, 2);
}

int json_doc_print_to(json_doc *d, FILE *fp)
{
    int rc = 0;
    if (d->w.err || d->w.depth != 0) {
        cli_err("out of memory while formatting JSON output");
        rc = EXIT_ERR;
    } else {
        fwrite(d->buf.data, 1, d->buf.len, fp);
        fputc('\n', fp);
    }
    json_doc_free(d);
    return rc;
}

int json_doc_print(json_doc *d) { return json_doc_print_to(d, stdout); }

void json_doc_free(json_doc *d)
{
    jw_free(&d->w);
    buf_free(&d->buf);
}

/* Writes the member for an entry's key (see JF_KEY). */
static int jw_key_member(jw_t *w, const void *key, size_t klen)
{
    if (utf8_valid(key, klen))
        return jw_ckey(w, "key") || jw_str(w, key, klen) ? -1 : 0;
    return jw_ckey(w, "key_base64") || jw_base64(w, key, klen) ? -1 : 0;
}

/* Writes MessagePack [p, p+n) as a JSON value, or null when it cannot be
 * read at all (one that fails partway leaves a container open, which
 * json_doc_print reports). */
static int jw_mp_or_null(jw_t *w, const void *p, size_t n)
{
    mp_cursor c;
    mp_cursor_init(&c, p, n);
    if (jw_mp(w, &c))
        return jw_null(w);
    return 0;
}

/* Writes the value of one field (its name is already written). */
static int jw_field_value(jw_t *w, const json_field *f)
{
    switch (f->type) {
    case JSON_FIELD_STR: return jw_cstr(w, f->s);
    case JSON_FIELD_INT: return jw_int(w, f->i);
    case JSON_FIELD_UINT: return jw_uint(w, f->u);
    case JSON_FIELD_DOUBLE: return jw_double(w, f->d);
    case JSON_FIELD_BOOL: return jw_bool(w, f->b);
    case JSON_FIELD_MP: return jw_mp_or_null(w, f->p, f->n);
    case JSON_FIELD_OBJECT: return jw_object(w, f->fields);
    default: return -1; /* END and KEY have no value of their own */
    }
}

int jw_fields(jw_t *w, const json_field *fields)
{
    for (const json_field *f = fields; f->type != JSON_FIELD_END; f++) {
        if (f->omit)
            continue;
        int rc = f->type == JSON_FIELD_KEY ? jw_key_member(w, f->p, f->n)
                                           : jw_ckey(w, f->name) || jw_field_value(w, f);
        if (rc)
            return -1;
    }
    return 0;
}

int jw_object(jw_t *w, const json_field *fields)
{
    return jw_begin_object(w) || jw_fields(w, fields) || jw_end_object(w) ? -1 : 0;
}

int json_print_object(FILE *fp, const json_field *fields)
{
    json_doc d;
    json_doc_init(&d);
    jw_object(&d.w, fields);
    return json_doc_print_to(&d, fp);
}

const char *json_conv_strerror(int rc)
{
    return rc == JW_EFAIL ? "out of memory" : mp_strerror(rc);
}

void fmt_bytes(uint64_t n, char *out, size_t cap)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (n < 1024) {
        snprintf(out, cap, "%llu B", (unsigned long long)n);
        return;
    }
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(out, cap, "%.1f %s", v, units[u]);
}

void fmt_duration(uint64_t s, char *out, size_t cap)
{
    unsigned long long d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
    if (d)
        snprintf(out, cap, "%llud %02lluh %02llum", d, h, m);
    else if (h)
        snprintf(out, cap, "%lluh %02llum %02llus", h, m, sec);
    else if (m)
        snprintf(out, cap, "%llum %02llus", m, sec);
    else
        snprintf(out, cap, "%llus", sec);
}

void fmt_count(uint64_t n, char *out, size_t cap)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o < cap ? o : cap - 1] = 0;
}

static bool printable_text(const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return utf8_valid(p, n);
}

void print_key(FILE *fp, const void *key, size_t klen)
{
    if (printable_text(key, klen)) {
        fwrite(key, 1, klen, fp);
        return;
    }
    buf_t b;
    buf_init(&b);
    if (b64_encode(key, klen, &b) == 0) {
        fputs("base64:", fp);
        fwrite(b.data, 1, b.len, fp);
    } else {
        fputs("?", fp);
    }
    buf_free(&b);
}

void fmt_key(const void *key, size_t klen, char *out, size_t cap)
{
    if (printable_text(key, klen)) {
        if (klen > 60)
            snprintf(out, cap, "'%.60s...'", (const char *)key);
        else
            snprintf(out, cap, "'%.*s'", (int)klen, (const char *)key);
        return;
    }
    buf_t b;
    buf_init(&b);
    if (b64_encode(key, klen > 45 ? 45 : klen, &b) == 0)
        snprintf(out, cap, "base64:%.*s%s", (int)b.len, (const char *)b.data,
                 klen > 45 ? "..." : "");
    else
        snprintf(out, cap, "(binary key)");
    buf_free(&b);
}

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
