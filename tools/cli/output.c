/* output.c - tables, JSON documents, human-readable numbers. */
#include "tools/cli/output.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/cli/cli.h"

void cli_err(const char *fmt, ...)
{
    va_list ap;
    /* stdout may hold a partial line of progress text; keep order sane */
    fflush(stdout);
    fputs("agate: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void table_init(table_t *t, int ncols, const char **headers, const bool *right)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    t->headers = headers;
    t->right = right;
}

void table_cell(table_t *t, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
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

int json_doc_print(json_doc *d)
{
    int rc = 0;
    if (d->w.err || d->w.depth != 0) {
        cli_err("out of memory while formatting JSON output");
        rc = EXIT_ERR;
    } else {
        fwrite(d->buf.data, 1, d->buf.len, stdout);
        fputc('\n', stdout);
    }
    json_doc_free(d);
    return rc;
}

void json_doc_free(json_doc *d)
{
    jw_free(&d->w);
    buf_free(&d->buf);
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
