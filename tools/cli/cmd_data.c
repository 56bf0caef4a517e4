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
    size_t n, cap;
    agate_kv *kvs;         /* built from items when sending */
    uint64_t imported;
    uint64_t skipped;
    progress_t progress;
} import_state;

/* Reports a problem with one line. */
static void line_error(import_state *s, uint64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void line_error(import_state *s, uint64_t line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    progress_finish(&s->progress);
    cli_err("%s:%" PRIu64 ": %s%s", s->file, line, msg, s->skip_bad ? " (skipped)" : "");
}

/* Errors that belong to one entry (the server checked a key or value and
 * refused it) as opposed to the connection or the region. */
static bool entry_error(int rc)
{
    return rc == AGATE_ETOO_LARGE || rc == AGATE_ETOO_DEEP || rc == AGATE_EBAD_VALUE ||
           rc == AGATE_EBAD_REQUEST || rc == AGATE_EBAD_ARGUMENT;
}

/* Sends the batch. A batch the server refuses because of one entry is
 * resent entry by entry, so the bad line can be named and the entries before
 * it are imported (put is idempotent, so resending is harmless). Returns 0,
 * or EXIT_ERR after the message. */
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
    if (rc >= 0) {
        s->imported += s->n;
    } else if (!entry_error(rc)) {
        progress_finish(&s->progress);
        return cli_fail(s->c, rc, NULL);
    } else {
        for (size_t i = 0; i < s->n; i++) {
            const agate_kv *kv = &s->kvs[i];
            rc = agate_put(s->c, s->region, kv->key, kv->klen, kv->value, kv->vlen);
            if (rc >= 0) {
                s->imported++;
                continue;
            }
            if (!entry_error(rc)) {
                progress_finish(&s->progress);
                return cli_fail(s->c, rc, NULL);
            }
            line_error(s, s->items[i].line, "the server refused the entry: %s", agate_errmsg(s->c));
            if (!s->skip_bad)
                return EXIT_ERR;
            s->skipped++;
        }
    }
    s->n = 0;
    buf_reset(&s->data);
    return 0;
}

/* Parses one line into the batch. Returns 0, or -1 after reporting the
 * problem. */
static int parse_line(import_state *s, const char *text, size_t len, uint64_t line, buf_t *scratch)
{
    json_mp_error err;
    buf_reset(scratch);
    if (json_mp_parse(text, len, scratch, &err) != 0) {
        line_error(s, line, "invalid JSON at column %d: %s", err.column, err.text);
        return -1;
    }
    mp_cursor c;
    mp_cursor_init(&c, scratch->data, scratch->len);
    uint32_t n;
    if (mp_read_map(&c, &n) != 0) {
        line_error(s, line, "expected an object like {\"key\": \"k\", \"value\": ...}");
        return -1;
    }
    const uint8_t *key = NULL, *value = NULL;
    size_t klen = 0, vlen = 0;
    char numkey[32];
    bool have_key = false, have_b64 = false, have_value = false;
    const uint8_t *b64 = NULL;
    uint32_t b64len = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *name;
        uint32_t nlen;
        if (mp_read_str(&c, &name, &nlen) != 0) {
            line_error(s, line, "malformed object");
            return -1;
        }
        if (nlen == 3 && memcmp(name, "key", 3) == 0) {
            mp_item it;
            if (mp_next(&c, &it) != 0) {
                line_error(s, line, "malformed object");
                return -1;
            }
            if (it.type == MP_STR) {
                key = it.v.s.ptr;
                klen = it.v.s.len;
            } else if (it.type == MP_UINT || it.type == MP_INT) {
                /* A number key is stored as its decimal text. */
                int l = it.type == MP_UINT
                            ? snprintf(numkey, sizeof numkey, "%" PRIu64, it.v.u)
                            : snprintf(numkey, sizeof numkey, "%" PRId64, it.v.i);
                key = (const uint8_t *)numkey;
                klen = (size_t)l;
            } else {
                line_error(s, line, "\"key\" must be a string or an integer");
                return -1;
            }
            have_key = true;
        } else if (nlen == 10 && memcmp(name, "key_base64", 10) == 0) {
            if (mp_read_str(&c, &b64, &b64len) != 0) {
                line_error(s, line, "\"key_base64\" must be a string");
                return -1;
            }
            have_b64 = true;
        } else if (nlen == 5 && memcmp(name, "value", 5) == 0) {
            value = c.p;
            if (mp_skip(&c, MP_MAX_DEPTH_LIMIT) != 0) {
                line_error(s, line, "malformed value");
                return -1;
            }
            vlen = (size_t)(c.p - value);
            have_value = true;
        } else {
            line_error(s, line, "unknown member \"%.*s\" (expected \"key\" or \"key_base64\", and \"value\")",
                       (int)(nlen > 40 ? 40 : nlen), (const char *)name);
            return -1;
        }
    }
    if (have_key && have_b64) {
        line_error(s, line, "give \"key\" or \"key_base64\", not both");
        return -1;
    }
    if (!have_key && !have_b64) {
        line_error(s, line, "missing \"key\" (or \"key_base64\")");
        return -1;
    }
    if (!have_value) {
        line_error(s, line, "missing \"value\"");
        return -1;
    }
    if (s->n == s->cap) {
        /* flush_batch keeps n below the batch size, so cap is set upfront */
        line_error(s, line, "internal error: batch full");
        return -1;
    }
    pending_entry *e = &s->items[s->n];
    e->line = line;
    e->koff = s->data.len;
    if (have_b64) {
        if (b64_decode((const char *)b64, b64len, &s->data) != 0) {
            line_error(s, line, "\"key_base64\" is not valid base64");
            return -1;
        }
        e->klen = s->data.len - e->koff;
    } else {
        if (buf_append(&s->data, key, klen) != 0) {
            line_error(s, line, "out of memory");
            return -1;
        }
        e->klen = klen;
    }
    e->voff = s->data.len;
    e->vlen = vlen;
    if (buf_append(&s->data, value, vlen) != 0) {
        s->data.len = e->koff;
        line_error(s, line, "out of memory");
        return -1;
    }
    s->n++;
    return 0;
}

static bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    return true;
}

int cmd_import_data(cli_ctx *ctx, const cli_args *a)
{
    import_state s;
    memset(&s, 0, sizeof s);
    s.region = cli_str(a, "region");
    s.file = cli_str(a, "file");
    s.skip_bad = cli_flag(a, "skip-bad");
    size_t batch = (size_t)cli_int(a, "batch-size", 1000);

    bool use_stdin = strcmp(s.file, "-") == 0;
    FILE *f = use_stdin ? stdin : fopen(s.file, "r");
    if (!f) {
        cli_err("cannot open %s: %s", s.file, strerror(errno));
        return EXIT_ERR;
    }
    uint64_t total = 0;
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) {
            cli_err("cannot read %s: %s", s.file, strerror(EISDIR));
            if (!use_stdin)
                fclose(f);
            return EXIT_ERR;
        }
        if (S_ISREG(sb.st_mode))
            total = (uint64_t)sb.st_size;
    }

    s.c = cli_connect(ctx, a);
    if (!s.c) {
        if (!use_stdin)
            fclose(f);
        return EXIT_ERR;
    }
    int ret = EXIT_OK;
    /* Fail fast on a missing region, before reading any of the file. */
    uint64_t before;
    int rc = agate_size(s.c, s.region, &before);
    if (rc < 0) {
        ret = cli_fail(s.c, rc, NULL);
        goto out;
    }
    s.cap = batch;
    s.items = calloc(batch, sizeof(*s.items));
    s.kvs = calloc(batch, sizeof(*s.kvs));
    if (!s.items || !s.kvs) {
        cli_err("out of memory (batch of %zu entries)", batch);
        ret = EXIT_ERR;
        goto out;
    }
    progress_init(&s.progress, PROGRESS_BYTES, total);
    double t0 = now_seconds();
    char *line = NULL;
    size_t linecap = 0;
    ssize_t len;
    uint64_t lineno = 0, bytes = 0;
    buf_t scratch;
    buf_init(&scratch);
    while ((len = getline(&line, &linecap, f)) >= 0) {
        lineno++;
        bytes += (uint64_t)len;
        const char *text = line;
        size_t tlen = (size_t)len;
        if (lineno == 1 && tlen >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
            text += 3; /* a UTF-8 byte order mark, as some editors write */
            tlen -= 3;
        }
        if (blank(text, tlen))
            continue;
        if (parse_line(&s, text, tlen, lineno, &scratch) != 0) {
            if (!s.skip_bad) {
                /* Everything before the bad line goes in, so the count
                 * reported and the region agree with the file. */
                ret = flush_batch(&s);
                if (ret == EXIT_OK)
                    ret = EXIT_ERR;
                break;
            }
            s.skipped++;
            continue;
        }
        if (s.n == batch && (ret = flush_batch(&s)) != 0)
            break;
        progress_update(&s.progress, bytes, s.imported, false);
    }
    if (ret == EXIT_OK && ferror(f)) {
        progress_finish(&s.progress);
        cli_err("error reading %s: %s", s.file, strerror(errno));
        ret = EXIT_ERR;
    }
    if (ret == EXIT_OK)
        ret = flush_batch(&s);
    free(line);
    buf_free(&scratch);
    progress_update(&s.progress, bytes, s.imported, true);
    progress_finish(&s.progress);
    double secs = now_seconds() - t0;
    double rate = secs > 0 ? (double)s.imported / secs : 0;
    if (ret != EXIT_OK) {
        cli_err("imported %" PRIu64 " entries into %s before the error", s.imported, s.region);
        if (s.skipped)
            cli_err("skipped %" PRIu64 " bad lines before that", s.skipped);
        goto out;
    }
    if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        jw_ckey(&d.w, "region");
        jw_cstr(&d.w, s.region);
        jw_ckey(&d.w, "file");
        jw_cstr(&d.w, s.file);
        jw_ckey(&d.w, "entries");
        jw_uint(&d.w, s.imported);
        jw_ckey(&d.w, "skipped");
        jw_uint(&d.w, s.skipped);
        jw_ckey(&d.w, "seconds");
        jw_double(&d.w, (double)(int64_t)(secs * 1000) / 1000);
        jw_ckey(&d.w, "entries_per_second");
        jw_uint(&d.w, (uint64_t)rate);
        jw_end_object(&d.w);
        ret = json_doc_print(&d);
    } else {
        printf("Imported %" PRIu64 " entries into %s in %.2f s (%.0f entries/s)", s.imported, s.region,
               secs, rate);
        if (s.skipped)
            printf("; skipped %" PRIu64 " bad lines", s.skipped);
        printf("\n");
    }
out:
    cli_release(ctx, s.c);
    if (!use_stdin)
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
    int rc = 0;
    jw_begin_object(&w);
    const void *kp = k->data ? (const void *)k->data : "";
    if (utf8_valid(kp, k->len)) {
        jw_ckey(&w, "key");
        jw_str(&w, kp, k->len);
    } else {
        jw_ckey(&w, "key_base64");
        jw_base64(&w, kp, k->len);
    }
    jw_ckey(&w, "value");
    mp_cursor c;
    mp_cursor_init(&c, v->data, v->len);
    rc = jw_mp(&w, &c);
    if (rc == 0 && mp_left(&c) != 0)
        rc = MP_EINVALID;
    if (rc == 0 && (jw_end_object(&w) || buf_append(out, "\n", 1)))
        rc = JW_EFAIL;
    if (rc == 0 && w.err)
        rc = JW_EFAIL;
    jw_free(&w);
    return rc;
}

int cmd_export_data(cli_ctx *ctx, const cli_args *a)
{
    const char *region = cli_str(a, "region");
    const char *file = cli_str(a, "file");
    uint32_t page_size = (uint32_t)cli_int(a, "batch-size", 1000);
    bool use_stdout = strcmp(file, "-") == 0;
    /* The summary must not end up inside the data when the data is stdout. */
    FILE *report = use_stdout ? stderr : stdout;

    agate_client *c = cli_connect(ctx, a);
    if (!c)
        return EXIT_ERR;
    uint64_t total = 0;
    int rc = agate_size(c, region, &total);
    if (rc < 0) {
        int e = cli_fail(c, rc, NULL);
        cli_release(ctx, c);
        return e;
    }
    /* Write to a temporary file and rename it at the end, so FILE is either
     * the complete export or untouched. */
    char *tmp = NULL;
    FILE *f = stdout;
    if (!use_stdout) {
        if (asprintf(&tmp, "%s.tmp-%ld", file, (long)getpid()) < 0) {
            cli_release(ctx, c);
            cli_err("out of memory");
            return EXIT_ERR;
        }
        f = fopen(tmp, "w");
        if (!f) {
            cli_err("cannot create %s: %s", file, strerror(errno));
            free(tmp);
            cli_release(ctx, c);
            return EXIT_ERR;
        }
    }
    progress_t p;
    progress_init(&p, PROGRESS_ENTRIES, total);
    double t0 = now_seconds();
    uint64_t cursor = 0, exported = 0;
    int ret = EXIT_OK;
    buf_t out;
    buf_init(&out);
    do {
        agate_page page;
        memset(&page, 0, sizeof page);
        rc = agate_entries(c, region, cursor, page_size, &page);
        if (rc < 0) {
            progress_finish(&p);
            ret = cli_fail(c, rc, NULL);
            break;
        }
        buf_reset(&out);
        for (size_t i = 0; i < page.n; i++) {
            int jr = entry_line(&out, &page.keys[i], &page.values[i]);
            if (jr != 0) {
                char k[160];
                fmt_key(page.keys[i].data, page.keys[i].len, k, sizeof k);
                progress_finish(&p);
                cli_err("cannot convert the value of key %s to JSON: %s", k,
                        jr == JW_EFAIL ? "out of memory" : mp_strerror(jr));
                ret = EXIT_ERR;
                break;
            }
        }
        cursor = page.next_cursor;
        size_t n = page.n;
        agate_page_free(&page);
        if (ret != EXIT_OK)
            break;
        if (out.len && fwrite(out.data, 1, out.len, f) != out.len) {
            progress_finish(&p);
            cli_err("cannot write %s: %s", use_stdout ? "stdout" : tmp, strerror(errno));
            ret = EXIT_ERR;
            break;
        }
        exported += n;
        progress_update(&p, exported, exported, false);
    } while (cursor != 0);
    buf_free(&out);
    cli_release(ctx, c);
    progress_update(&p, exported, exported, true);
    progress_finish(&p);
    if (use_stdout) {
        if (fflush(stdout) != 0 && ret == EXIT_OK) {
            cli_err("cannot write stdout: %s", strerror(errno));
            ret = EXIT_ERR;
        }
    } else {
        if (fclose(f) != 0 && ret == EXIT_OK) {
            cli_err("cannot write %s: %s", tmp, strerror(errno));
            ret = EXIT_ERR;
        }
        if (ret == EXIT_OK && rename(tmp, file) != 0) {
            cli_err("cannot rename %s to %s: %s", tmp, file, strerror(errno));
            ret = EXIT_ERR;
        }
        if (ret != EXIT_OK)
            unlink(tmp);
        free(tmp);
    }
    if (ret != EXIT_OK) {
        cli_err("export of %s stopped after %" PRIu64 " entries%s", region, exported,
                use_stdout ? "" : "; the file was not written");
        return ret;
    }
    double secs = now_seconds() - t0;
    double rate = secs > 0 ? (double)exported / secs : 0;
    if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        jw_ckey(&d.w, "region");
        jw_cstr(&d.w, region);
        jw_ckey(&d.w, "file");
        jw_cstr(&d.w, file);
        jw_ckey(&d.w, "entries");
        jw_uint(&d.w, exported);
        jw_ckey(&d.w, "seconds");
        jw_double(&d.w, (double)(int64_t)(secs * 1000) / 1000);
        jw_ckey(&d.w, "entries_per_second");
        jw_uint(&d.w, (uint64_t)rate);
        jw_end_object(&d.w);
        if (use_stdout) {
            fwrite(d.buf.data, 1, d.buf.len, stderr);
            fputc('\n', stderr);
            json_doc_free(&d);
            return EXIT_OK;
        }
        return json_doc_print(&d);
    }
    fprintf(report, "Exported %" PRIu64 " entries from %s to %s in %.2f s (%.0f entries/s)\n", exported,
            region, use_stdout ? "stdout" : file, secs, rate);
    return EXIT_OK;
}
