/* cmd_data.c - import data and export data (JSON Lines).
 *
 * File format, one entry per line:
 *   {"key": "k", "value": <any JSON>}
 *   {"key": 42, "value": ...}            (a number key is stored as "42")
 *   {"key_base64": "AAEC", "value": ...} (binary keys)
 * Export writes "key" for keys that are UTF-8 and "key_base64" otherwise, so
 * an export imports back to the same keys. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/cli/cli.h"
#include "tools/cli/json_mp.h"
#include "tools/cli/output.h"
#include "tools/cli/progress.h"

/* ---- summaries (both directions) --------------------------------------- */

/* Entries per second of a transfer of n entries that took secs. */
static double per_second(uint64_t n, double secs) { return secs > 0 ? (double)n / secs : 0; }

/* Prints the --json summary of a transfer to fp. skipped is the number of
 * bad lines an import skipped, or -1 for an export (no such field). Returns
 * as json_print_object. */
static int print_transfer_json(FILE *fp, const char *region, const char *file, uint64_t entries,
                               int64_t skipped, double secs)
{
    return json_print_object(
        fp, JSON_FIELDS(JF_STR("region", region), JF_STR("file", file), JF_UINT("entries", entries),
                        JF_IF(skipped >= 0, JF_UINT("skipped", (uint64_t)skipped)),
                        JF_DOUBLE("seconds", (double)(int64_t)(secs * 1000) / 1000),
                        JF_UINT("entries_per_second", (uint64_t)per_second(entries, secs))));
}

/* ---- import ----------------------------------------------------------- */

typedef struct pending_entry {
    size_t koff, klen; /* in batch.data */
    size_t voff, vlen;
    uint64_t line;
} pending_entry;

typedef struct import_state {
    const char *region;
    const char *file;
    agate_client *c;
    bool skip_bad;
    buf_t data;            /* keys and values of the batch, back to back */
    pending_entry *items;
    size_t n, cap;         /* cap: the batch size */
    agate_kv *kvs;         /* built from items when sending */
    uint64_t imported;
    uint64_t skipped;
    uint64_t bytes_read;   /* of the file, for the progress bar */
    progress_t progress;
} import_state;

/* Reports a problem with one line. Returns -1. */
static int line_error(import_state *s, uint64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int line_error(import_state *s, uint64_t line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    progress_finish(&s->progress);
    cli_err("%s:%" PRIu64 ": %s%s", s->file, line, msg, s->skip_bad ? " (skipped)" : "");
    return -1;
}

/* Errors that belong to one entry (the server checked a key or value and
 * refused it) as opposed to the connection or the region. */
static bool entry_error(int rc)
{
    return rc == AGATE_ETOO_LARGE || rc == AGATE_ETOO_DEEP || rc == AGATE_EBAD_VALUE ||
           rc == AGATE_EBAD_REQUEST || rc == AGATE_EBAD_ARGUMENT;
}

/* Reports a failure of the connection or the region (not of one entry).
 * Returns EXIT_ERR. */
static int import_failed(import_state *s, int rc)
{
    progress_finish(&s->progress);
    return cli_fail(s->c, rc, NULL);
}

/* Puts the batch's entries one by one, after the server refused the batch
 * because of one of them: the bad line is named and, unless --skip-bad, the
 * import stops there with the entries before it imported. Returns 0, or
 * EXIT_ERR after the message. */
static int put_one_by_one(import_state *s)
{
    for (size_t i = 0; i < s->n; i++) {
        const agate_kv *kv = &s->kvs[i];
        int rc = agate_put(s->c, s->region, kv->key, kv->klen, kv->value, kv->vlen);
        if (rc >= 0) {
            s->imported++;
            continue;
        }
        if (!entry_error(rc))
            return import_failed(s, rc);
        line_error(s, s->items[i].line, "the server refused the entry: %s", agate_errmsg(s->c));
        if (!s->skip_bad)
            return EXIT_ERR;
        s->skipped++;
    }
    return 0;
}

/* Sends the batch with one put-all, or entry by entry when the server
 * refuses it because of one entry (put is idempotent, so resending is
 * harmless). Returns 0, or EXIT_ERR after the message. */
static int flush_batch(import_state *s)
{
    if (s->n == 0)
        return 0;
    for (size_t i = 0; i < s->n; i++) {
        s->kvs[i].key = s->data.data + s->items[i].koff;
        s->kvs[i].klen = s->items[i].klen;
        s->kvs[i].value = s->data.data + s->items[i].voff;
        s->kvs[i].vlen = s->items[i].vlen;
    }
    int rc = agate_put_all(s->c, s->region, s->kvs, s->n);
    if (rc >= 0)
        s->imported += s->n;
    else if (!entry_error(rc))
        return import_failed(s, rc);
    else if ((rc = put_one_by_one(s)) != 0)
        return rc;
    s->n = 0;
    buf_reset(&s->data);
    return 0;
}

/* The members of one line's object. */
typedef struct line_entry {
    const uint8_t *key;     /* "key": text, or numkey for a number */
    size_t klen;
    char numkey[32];
    const uint8_t *b64;     /* "key_base64" */
    uint32_t b64len;
    const uint8_t *value;   /* "value", as MessagePack */
    size_t vlen;
    bool have_key, have_b64, have_value;
} line_entry;

/* Reads the value of a "key" member at c: a string, or an integer, which
 * is stored as its decimal text. Returns 0 or -1 after the message. */
static int read_key_member(import_state *s, uint64_t line, mp_cursor *c, line_entry *e)
{
    mp_item it;
    if (mp_next(c, &it) != 0)
        return line_error(s, line, "malformed object");
    if (it.type == MP_STR) {
        e->key = it.v.s.ptr;
        e->klen = it.v.s.len;
    } else if (it.type == MP_UINT || it.type == MP_INT) {
        int l = it.type == MP_UINT ? snprintf(e->numkey, sizeof e->numkey, "%" PRIu64, it.v.u)
                                   : snprintf(e->numkey, sizeof e->numkey, "%" PRId64, it.v.i);
        e->key = (const uint8_t *)e->numkey;
        e->klen = (size_t)l;
    } else {
        return line_error(s, line, "\"key\" must be a string or an integer");
    }
    e->have_key = true;
    return 0;
}

/* Reads one member (name, then value) of a line's object at c into e.
 * Returns 0 or -1 after the message. */
static int read_member(import_state *s, uint64_t line, mp_cursor *c, line_entry *e)
{
    const uint8_t *name;
    uint32_t nlen;
    if (mp_read_str(c, &name, &nlen) != 0)
        return line_error(s, line, "malformed object");
    if (nlen == 3 && memcmp(name, "key", 3) == 0)
        return read_key_member(s, line, c, e);
    if (nlen == 10 && memcmp(name, "key_base64", 10) == 0) {
        if (mp_read_str(c, &e->b64, &e->b64len) != 0)
            return line_error(s, line, "\"key_base64\" must be a string");
        e->have_b64 = true;
        return 0;
    }
    if (nlen == 5 && memcmp(name, "value", 5) == 0) {
        e->value = c->p;
        if (mp_skip(c, MP_MAX_DEPTH_LIMIT) != 0)
            return line_error(s, line, "malformed value");
        e->vlen = (size_t)(c->p - e->value);
        e->have_value = true;
        return 0;
    }
    return line_error(s, line,
                      "unknown member \"%.*s\" (expected \"key\" or \"key_base64\", and \"value\")",
                      (int)(nlen > 40 ? 40 : nlen), (const char *)name);
}

/* Checks that a line gave exactly one of "key" and "key_base64", and a
 * "value". Returns 0 or -1 after the message. */
static int check_members(import_state *s, uint64_t line, const line_entry *e)
{
    if (e->have_key && e->have_b64)
        return line_error(s, line, "give \"key\" or \"key_base64\", not both");
    if (!e->have_key && !e->have_b64)
        return line_error(s, line, "missing \"key\" (or \"key_base64\")");
    if (!e->have_value)
        return line_error(s, line, "missing \"value\"");
    return 0;
}

/* Appends a line's key (decoding key_base64) and value to the batch.
 * Returns 0 or -1 after the message. */
static int add_to_batch(import_state *s, uint64_t line, const line_entry *e)
{
    if (s->n == s->cap) /* flush_batch keeps n below the batch size */
        return line_error(s, line, "internal error: batch full");
    pending_entry *p = &s->items[s->n];
    p->line = line;
    p->koff = s->data.len;
    if (e->have_b64) {
        if (b64_decode((const char *)e->b64, e->b64len, &s->data) != 0)
            return line_error(s, line, "\"key_base64\" is not valid base64");
        p->klen = s->data.len - p->koff;
    } else {
        if (buf_append(&s->data, e->key, e->klen) != 0)
            return line_error(s, line, "out of memory");
        p->klen = e->klen;
    }
    p->voff = s->data.len;
    p->vlen = e->vlen;
    if (buf_append(&s->data, e->value, e->vlen) != 0) {
        s->data.len = p->koff;
        return line_error(s, line, "out of memory");
    }
    s->n++;
    return 0;
}

/* Parses one line into the batch; scratch holds its MessagePack. Returns
 * 0, or -1 after reporting the problem. */
static int parse_line(import_state *s, const char *text, size_t len, uint64_t line, buf_t *scratch)
{
    json_mp_error err;
    buf_reset(scratch);
    if (json_mp_parse(text, len, scratch, &err) != 0)
        return line_error(s, line, "invalid JSON at column %d: %s", err.column, err.text);
    mp_cursor c;
    mp_cursor_init(&c, scratch->data, scratch->len);
    uint32_t n;
    if (mp_read_map(&c, &n) != 0)
        return line_error(s, line, "expected an object like {\"key\": \"k\", \"value\": ...}");
    line_entry e;
    memset(&e, 0, sizeof e);
    for (uint32_t i = 0; i < n; i++)
        if (read_member(s, line, &c, &e) != 0)
            return -1;
    if (check_members(s, line, &e) != 0)
        return -1;
    return add_to_batch(s, line, &e);
}

/* True if p[0, n) holds only whitespace. */
static bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    return true;
}

/* Takes line lineno of the file (len bytes): skips a blank line, else
 * parses it into the batch and sends the batch when it is full. Returns
 * 0 to go on, or EXIT_ERR to stop (after the message). */
static int import_line(import_state *s, const char *text, size_t len, uint64_t lineno,
                       buf_t *scratch)
{
    if (lineno == 1 && len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        text += 3; /* a UTF-8 byte order mark, as some editors write */
        len -= 3;
    }
    if (blank(text, len))
        return 0;
    if (parse_line(s, text, len, lineno, scratch) != 0) {
        if (s->skip_bad) {
            s->skipped++;
            return 0;
        }
        /* Everything before the bad line goes in, so the count reported
         * and the region agree with the file. */
        int rc = flush_batch(s);
        return rc ? rc : EXIT_ERR;
    }
    if (s->n == s->cap)
        return flush_batch(s);
    return 0;
}

/* Reads f line by line into batches sent to the server, with a progress
 * bar over total bytes (0: unknown). Returns EXIT_OK, or EXIT_ERR after the
 * message. */
static int import_lines(import_state *s, FILE *f, uint64_t total)
{
    progress_init(&s->progress, PROGRESS_BYTES, total);
    char *line = NULL;
    size_t linecap = 0;
    ssize_t len;
    uint64_t lineno = 0;
    buf_t scratch;
    buf_init(&scratch);
    int ret = EXIT_OK;
    while (ret == EXIT_OK && (len = getline(&line, &linecap, f)) >= 0) {
        s->bytes_read += (uint64_t)len;
        ret = import_line(s, line, (size_t)len, ++lineno, &scratch);
        if (ret == EXIT_OK)
            progress_update(&s->progress, s->bytes_read, s->imported, false);
    }
    if (ret == EXIT_OK && ferror(f)) {
        progress_finish(&s->progress);
        cli_err("error reading %s: %s", s->file, strerror(errno));
        ret = EXIT_ERR;
    }
    if (ret == EXIT_OK)
        ret = flush_batch(s);
    free(line);
    buf_free(&scratch);
    progress_update(&s->progress, s->bytes_read, s->imported, true);
    progress_finish(&s->progress);
    return ret;
}

/* Opens the file to import ("-": stdin) and gets its size for the progress
 * bar (0 when unknown). Returns the stream, or NULL after the message. */
static FILE *open_input(const char *file, uint64_t *size)
{
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    if (!f) {
        cli_err("cannot open %s: %s", file, strerror(errno));
        return NULL;
    }
    *size = 0;
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) {
            cli_err("cannot read %s: %s", file, strerror(EISDIR));
            if (f != stdin)
                fclose(f);
            return NULL;
        }
        if (S_ISREG(sb.st_mode))
            *size = (uint64_t)sb.st_size;
    }
    return f;
}

/* Checks that the region exists, failing fast before any of the file is
 * read, and allocates a batch of batch entries. Returns 0, or EXIT_ERR
 * after the message. */
static int prepare_import(import_state *s, size_t batch)
{
    uint64_t before;
    int rc = agate_size(s->c, s->region, &before);
    if (rc < 0)
        return cli_fail(s->c, rc, NULL);
    s->cap = batch;
    s->items = calloc(batch, sizeof(*s->items));
    s->kvs = calloc(batch, sizeof(*s->kvs));
    if (!s->items || !s->kvs) {
        cli_err("out of memory (batch of %zu entries)", batch);
        return EXIT_ERR;
    }
    return 0;
}

/* Prints the outcome of an import that ended with ret after secs: the
 * summary, or how far it got before the error. Returns the exit code. */
static int report_import(const import_state *s, bool json, int ret, double secs)
{
    if (ret != EXIT_OK) {
        cli_err("imported %" PRIu64 " entries into %s before the error", s->imported, s->region);
        if (s->skipped)
            cli_err("skipped %" PRIu64 " bad lines before that", s->skipped);
        return ret;
    }
    if (json)
        return print_transfer_json(stdout, s->region, s->file, s->imported, (int64_t)s->skipped,
                                   secs);
    printf("Imported %" PRIu64 " entries into %s in %.2f s (%.0f entries/s)", s->imported,
           s->region, secs, per_second(s->imported, secs));
    if (s->skipped)
        printf("; skipped %" PRIu64 " bad lines", s->skipped);
    printf("\n");
    return EXIT_OK;
}

/* import data: puts the entries of the JSON Lines --file into --region in
 * batches of --batch-size; a bad line stops it unless --skip-bad. */
int cmd_import_data(cli_ctx *ctx, const cli_args *a)
{
    import_state s;
    memset(&s, 0, sizeof s);
    s.region = cli_str(a, "region");
    s.file = cli_str(a, "file");
    s.skip_bad = cli_flag(a, "skip-bad");
    size_t batch = (size_t)cli_int(a, "batch-size", 1000);
    uint64_t total;
    FILE *f = open_input(s.file, &total);
    if (!f)
        return EXIT_ERR;
    s.c = cli_connect(ctx, a);
    int ret = s.c ? prepare_import(&s, batch) : EXIT_ERR;
    if (ret == EXIT_OK) {
        double t0 = now_seconds();
        ret = import_lines(&s, f, total);
        ret = report_import(&s, a->json, ret, now_seconds() - t0);
    }
    cli_release(ctx, s.c);
    if (f != stdin)
        fclose(f);
    buf_free(&s.data);
    free(s.items);
    free(s.kvs);
    return ret;
}

/* ---- export ----------------------------------------------------------- */

/* Appends one entry as a JSON line. Returns 0, or an MP_E* / JW_EFAIL code
 * when the value cannot be converted. */
static int entry_line(buf_t *out, const agate_buf *k, const agate_buf *v)
{
    jw_t w;
    jw_init(&w, out, 0);
    jw_begin_object(&w);
    jw_fields(&w, JSON_FIELDS(JF_KEY(k->data ? (const void *)k->data : "", k->len)));
    jw_ckey(&w, "value");
    mp_cursor c;
    mp_cursor_init(&c, v->data, v->len);
    int rc = jw_mp(&w, &c);
    if (rc == 0 && mp_left(&c) != 0)
        rc = MP_EINVALID;
    if (rc == 0 && (jw_end_object(&w) || buf_append(out, "\n", 1)))
        rc = JW_EFAIL;
    if (rc == 0 && w.err)
        rc = JW_EFAIL;
    jw_free(&w);
    return rc;
}

/* Where export data writes: stdout, or a temporary file next to FILE that
 * is renamed to FILE at the end, so that FILE is either the complete export
 * or untouched. */
typedef struct export_output {
    const char *file; /* FILE as given */
    char *tmp;        /* the temporary file; NULL when writing to stdout */
    FILE *f;
} export_output;

/* Opens the output for file ("-": stdout). Returns 0, or EXIT_ERR after
 * the message. */
static int export_open(export_output *out, const char *file)
{
    out->file = file;
    out->tmp = NULL;
    out->f = stdout;
    if (strcmp(file, "-") == 0)
        return 0;
    if (asprintf(&out->tmp, "%s.tmp-%ld", file, (long)getpid()) < 0) {
        out->tmp = NULL;
        cli_err("out of memory");
        return EXIT_ERR;
    }
    out->f = fopen(out->tmp, "w");
    if (!out->f) {
        cli_err("cannot create %s: %s", file, strerror(errno));
        free(out->tmp);
        return EXIT_ERR;
    }
    return 0;
}

/* The output's name in messages about writing it. */
static const char *export_name(const export_output *out) { return out->tmp ? out->tmp : "stdout"; }

/* Finishes the output of an export that ended with ret: flushes stdout, or
 * closes the temporary file and renames it to FILE (removes it after a
 * failure). Returns ret, or EXIT_ERR after the message when this fails. */
static int export_close(export_output *out, int ret)
{
    int closed = out->tmp ? fclose(out->f) : fflush(stdout);
    if (closed != 0 && ret == EXIT_OK) {
        cli_err("cannot write %s: %s", export_name(out), strerror(errno));
        ret = EXIT_ERR;
    }
    if (!out->tmp)
        return ret;
    if (ret == EXIT_OK && rename(out->tmp, out->file) != 0) {
        cli_err("cannot rename %s to %s: %s", out->tmp, out->file, strerror(errno));
        ret = EXIT_ERR;
    }
    if (ret != EXIT_OK)
        unlink(out->tmp);
    free(out->tmp);
    out->tmp = NULL;
    return ret;
}

/* Converts a page of entries to JSON lines in text. Returns EXIT_OK, or
 * EXIT_ERR after naming the entry whose value cannot be converted. */
static int page_lines(const agate_page *page, buf_t *text, progress_t *p)
{
    buf_reset(text);
    for (size_t i = 0; i < page->n; i++) {
        int jr = entry_line(text, &page->keys[i], &page->values[i]);
        if (jr != 0) {
            char k[160];
            fmt_key(page->keys[i].data, page->keys[i].len, k, sizeof k);
            progress_finish(p);
            cli_err("cannot convert the value of key %s to JSON: %s", k, json_conv_strerror(jr));
            return EXIT_ERR;
        }
    }
    return EXIT_OK;
}

/* Writes every entry of region to out, page_size entries per request,
 * with a progress bar over total entries; *exported counts them. Returns
 * EXIT_OK, or EXIT_ERR after the message. */
static int export_entries(agate_client *c, const char *region, uint32_t page_size, uint64_t total,
                          export_output *out, uint64_t *exported)
{
    progress_t p;
    progress_init(&p, PROGRESS_ENTRIES, total);
    uint64_t cursor = 0;
    int ret = EXIT_OK;
    buf_t text;
    buf_init(&text);
    do {
        agate_page page;
        memset(&page, 0, sizeof page);
        int rc = agate_entries(c, region, cursor, page_size, &page);
        if (rc < 0) {
            progress_finish(&p);
            ret = cli_fail(c, rc, NULL);
            break;
        }
        ret = page_lines(&page, &text, &p);
        cursor = page.next_cursor;
        size_t n = page.n;
        agate_page_free(&page);
        if (ret != EXIT_OK)
            break;
        if (text.len && fwrite(text.data, 1, text.len, out->f) != text.len) {
            progress_finish(&p);
            cli_err("cannot write %s: %s", export_name(out), strerror(errno));
            ret = EXIT_ERR;
            break;
        }
        *exported += n;
        progress_update(&p, *exported, *exported, false);
    } while (cursor != 0);
    buf_free(&text);
    progress_update(&p, *exported, *exported, true);
    progress_finish(&p);
    return ret;
}

/* export data: writes every entry of --region to --file as JSON Lines. */
int cmd_export_data(cli_ctx *ctx, const cli_args *a)
{
    const char *region = cli_str(a, "region");
    const char *file = cli_str(a, "file");
    uint32_t page_size = (uint32_t)cli_int(a, "batch-size", 1000);
    bool to_stdout = strcmp(file, "-") == 0;
    agate_client *c = cli_connect(ctx, a);
    if (!c)
        return EXIT_ERR;
    uint64_t total = 0;
    int rc = agate_size(c, region, &total);
    if (rc < 0)
        return cli_finish(ctx, c, rc, NULL);
    export_output out;
    if (export_open(&out, file) != 0) {
        cli_release(ctx, c);
        return EXIT_ERR;
    }
    double t0 = now_seconds();
    uint64_t exported = 0;
    int ret = export_entries(c, region, page_size, total, &out, &exported);
    cli_release(ctx, c);
    ret = export_close(&out, ret);
    if (ret != EXIT_OK) {
        cli_err("export of %s stopped after %" PRIu64 " entries%s", region, exported,
                to_stdout ? "" : "; the file was not written");
        return ret;
    }
    double secs = now_seconds() - t0;
    /* The summary must not end up inside the data when the data is stdout. */
    FILE *report = to_stdout ? stderr : stdout;
    if (a->json)
        return print_transfer_json(report, region, file, exported, -1, secs);
    fprintf(report, "Exported %" PRIu64 " entries from %s to %s in %.2f s (%.0f entries/s)\n",
            exported, region, to_stdout ? "stdout" : file, secs, per_second(exported, secs));
    return EXIT_OK;
}
