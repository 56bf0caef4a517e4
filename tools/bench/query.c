/* query.c - agate-bench's query tests (-t point,range,scan,pointget and
 * --query): loads N orders, then runs queries with agate_query and reports
 * queries per second, latency and, from each reply's stats, how many
 * entries the server read per second.
 *
 * agate_query has no asynchronous variant, so each connection gets its own
 * thread calling it in a loop (one query in flight per connection). The
 * latency of a query is the time agate_query took, on CLOCK_MONOTONIC: the
 * request, the server's work, the reply, and libagate's check of its
 * shape. A test runs for a number of queries (-n, handed out from a shared
 * counter), for a duration (--duration: no query starts after it), or
 * until the first of both. */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "common/mp.h"
#include "tools/cli/json_mp.h"

/* ---- the orders ------------------------------------------------------------ */

static const char *const statuses[BENCH_NSTATUS] = {"new", "paid", "shipped", "delivered",
                                                    "cancelled"};
static const char *const cities[] = {"Amsterdam", "Berlin",    "Lisbon", "Madrid",
                                     "Oslo",      "Paris",     "Prague", "Rome",
                                     "Vienna",    "Warsaw",    "Dublin", "Athens",
                                     "Helsinki",  "Stockholm", "Zurich", "Brussels"};
#define NCITIES (sizeof(cities) / sizeof(cities[0]))

/* splitmix64: the same order i always has the same fields. */
static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static uint8_t *put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

/* MessagePack writers into a buffer the caller sized. */
static uint8_t *mp_uint(uint8_t *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (uint8_t)v;
    } else if (v <= 0xff) {
        *p++ = 0xcc;
        *p++ = (uint8_t)v;
    } else if (v <= 0xffff) {
        *p++ = 0xcd;
        p = put_be(p, v, 2);
    } else if (v <= 0xffffffffu) {
        *p++ = 0xce;
        p = put_be(p, v, 4);
    } else {
        *p++ = 0xcf;
        p = put_be(p, v, 8);
    }
    return p;
}

static uint8_t *mp_double(uint8_t *p, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    *p++ = 0xcb;
    return put_be(p, bits, 8);
}

static uint8_t *mp_fixstr(uint8_t *p, const char *s) /* s shorter than 32 bytes */
{
    size_t n = strlen(s);
    *p++ = (uint8_t)(0xa0 | n);
    memcpy(p, s, n);
    return p + n;
}

static double order_total(uint64_t i)
{
    return (double)((mix(i) >> 8) % BENCH_TOTAL_CENTS) / 100.0;
}

/* {"id": i, "status": s, "total": t, "customer": {"city": c}}: at most
 * BENCH_ORDER_MAX bytes (70 with the longest names). */
#define BENCH_ORDER_MAX 96
static size_t encode_order(uint8_t *out, uint64_t i)
{
    uint64_t h = mix(i);
    uint8_t *p = out;
    *p++ = 0x84;
    p = mp_fixstr(p, "id");
    p = mp_uint(p, i);
    p = mp_fixstr(p, "status");
    p = mp_fixstr(p, statuses[(h >> 40) % BENCH_NSTATUS]);
    p = mp_fixstr(p, "total");
    p = mp_double(p, order_total(i));
    p = mp_fixstr(p, "customer");
    *p++ = 0x81;
    p = mp_fixstr(p, "city");
    p = mp_fixstr(p, cities[(h >> 48) % NCITIES]);
    return (size_t)(p - out);
}

#define LOAD_BATCH 10000   /* orders per agate_put_all call */
#define LOAD_CONNS 4       /* connections loading in parallel */

static void format_key(char *k, uint64_t i)
{
    char tmp[BENCH_KEY_LEN + 1];
    snprintf(tmp, sizeof(tmp), "key:%012" PRIu64, (uint64_t)(i % 1000000000000ULL));
    memcpy(k, tmp, BENCH_KEY_LEN);
}

typedef struct load_thread {
    const bench_config *cfg;
    const char *servers;
    uint64_t from, to; /* orders [from, to) */
    int rc;
    char errmsg[300];
} load_thread;

static void *load_main(void *arg)
{
    load_thread *lt = arg;
    agate_client *cl = NULL;
    agate_kv *kvs = malloc(LOAD_BATCH * sizeof(*kvs));
    uint8_t *vals = malloc((size_t)LOAD_BATCH * BENCH_ORDER_MAX);
    char *keys = malloc((size_t)LOAD_BATCH * BENCH_KEY_LEN);
    lt->rc = -1;
    if (!kvs || !vals || !keys) {
        snprintf(lt->errmsg, sizeof(lt->errmsg), "out of memory");
        goto out;
    }
    if (bench_open(lt->cfg, lt->servers, &cl) < 0) {
        snprintf(lt->errmsg, sizeof(lt->errmsg), "cannot connect: %s",
                 cl ? agate_errmsg(cl) : "out of memory");
        goto out;
    }
    for (uint64_t base = lt->from; base < lt->to; base += LOAD_BATCH) {
        size_t n = lt->to - base < LOAD_BATCH ? (size_t)(lt->to - base) : LOAD_BATCH;
        for (size_t j = 0; j < n; j++) {
            format_key(keys + j * BENCH_KEY_LEN, base + j);
            kvs[j].key = keys + j * BENCH_KEY_LEN;
            kvs[j].klen = BENCH_KEY_LEN;
            kvs[j].value = vals + j * BENCH_ORDER_MAX;
            kvs[j].vlen = encode_order(vals + j * BENCH_ORDER_MAX, base + j);
        }
        if (agate_put_all(cl, lt->cfg->region, kvs, n) < 0) {
            snprintf(lt->errmsg, sizeof(lt->errmsg), "agate_put_all: %s", agate_errmsg(cl));
            goto out;
        }
    }
    lt->rc = 0;
out:
    agate_client_free(cl);
    free(kvs);
    free(vals);
    free(keys);
    return NULL;
}

int bench_load_orders(const bench_config *cfg, const char *servers, double *seconds)
{
    uint64_t n = cfg->keyspace;
    int nth = n < LOAD_CONNS * (uint64_t)LOAD_BATCH ? 1 : LOAD_CONNS;
    load_thread lts[LOAD_CONNS];
    pthread_t tids[LOAD_CONNS];
    int started = 0, rc = 0;
    uint64_t t0 = bench_now_ns();
    for (int t = 0; t < nth; t++) {
        lts[t] = (load_thread){.cfg = cfg, .servers = servers, .from = n * (uint64_t)t / nth,
                               .to = n * (uint64_t)(t + 1) / nth};
        if (nth == 1) {
            load_main(&lts[0]);
            started = 1;
        } else if (pthread_create(&tids[t], NULL, load_main, &lts[t]) == 0) {
            started++;
        } else {
            fprintf(stderr, "agate-bench: cannot start a thread\n");
            rc = -1;
            break;
        }
    }
    for (int t = 0; nth > 1 && t < started; t++)
        pthread_join(tids[t], NULL);
    for (int t = 0; t < started; t++)
        if (lts[t].rc && rc == 0) {
            fprintf(stderr, "agate-bench: loading the orders: %s\n", lts[t].errmsg);
            rc = -1;
        }
    *seconds = (double)(bench_now_ns() - t0) / 1e9;
    return rc;
}

/* ---- one test ---------------------------------------------------------------- */

typedef struct qshared {
    const bench_config *cfg;
    bench_qtest test;
    const char *text;          /* the query (NULL for pointget) */
    const uint8_t *params;     /* --param values of a custom query */
    size_t params_len;
    uint64_t n;                /* queries to run; 0: no count limit */
    uint64_t t_end;            /* no query starts after this (ns); 0: no limit */
    _Atomic uint64_t claimed;
    _Atomic int failed;
} qshared;

typedef struct qthread {
    qshared *sh;
    agate_client *cl;
    uint64_t rng;
    hist h;
    uint64_t done, rows, matched, scanned, elapsed_us;
    uint64_t t_last;
    char errmsg[512];
} qthread;

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    uint64_t r = x * 0x2545F4914F6CDD1DULL;
#ifdef __SIZEOF_INT128__
    return (uint64_t)(((unsigned __int128)r * n) >> 64);
#else
    return r % n;
#endif
}

__attribute__((format(printf, 2, 3))) static void qfail(qthread *th, const char *fmt, ...)
{
    if (!th->errmsg[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(th->errmsg, sizeof(th->errmsg), fmt, ap);
        va_end(ap);
    }
    atomic_store(&th->sh->failed, 1);
}

/* Reads stats {"matched", "rows", "scanned", "elapsed_us"} of a reply
 * [columns, rows, stats] (a shape libagate has checked). */
static int read_stats(const agate_buf *b, uint64_t *rows, uint64_t *matched, uint64_t *scanned,
                      uint64_t *elapsed_us)
{
    mp_cursor c;
    mp_cursor_init(&c, b->data, b->len);
    uint32_t n, m;
    if (mp_read_array(&c, &n) || n != 3 || mp_skip(&c, MP_MAX_DEPTH_LIMIT) ||
        mp_skip(&c, MP_MAX_DEPTH_LIMIT) || mp_read_map(&c, &m))
        return -1;
    *rows = *matched = *scanned = *elapsed_us = 0;
    for (uint32_t i = 0; i < m; i++) {
        const uint8_t *k;
        uint32_t klen;
        uint64_t v;
        if (mp_read_str(&c, &k, &klen) || mp_read_uint(&c, &v))
            return -1;
        if (klen == 4 && !memcmp(k, "rows", 4))
            *rows = v;
        else if (klen == 7 && !memcmp(k, "matched", 7))
            *matched = v;
        else if (klen == 7 && !memcmp(k, "scanned", 7))
            *scanned = v;
        else if (klen == 10 && !memcmp(k, "elapsed_us", 10))
            *elapsed_us = v;
    }
    return 0;
}

/* Runs one query or get; false after a failure. */
static bool one(qthread *th)
{
    qshared *sh = th->sh;
    const bench_config *cfg = sh->cfg;
    uint8_t pbuf[32];
    const uint8_t *params = pbuf;
    size_t plen = 0;
    uint64_t id = 0;
    uint8_t *p = pbuf;
    switch (sh->test) {
    case QT_POINTGET:
    case QT_POINT:
        id = rng_below(&th->rng, cfg->keyspace);
        *p++ = 0x91;
        p = mp_uint(p, id);
        break;
    case QT_RANGE: {
        /* totals are cents in 0 .. BENCH_TOTAL_CENTS-1: a window of
         * BENCH_RANGE_CENTS of them holds ~0.1% of the orders */
        uint64_t lo = rng_below(&th->rng, BENCH_TOTAL_CENTS - BENCH_RANGE_CENTS + 1);
        *p++ = 0x92;
        p = mp_double(p, (double)lo / 100.0);
        p = mp_double(p, (double)(lo + BENCH_RANGE_CENTS) / 100.0);
        break;
    }
    case QT_SCAN:
        params = NULL;
        break;
    case QT_CUSTOM:
        params = sh->params;
        plen = sh->params_len;
        break;
    }
    if (params == pbuf)
        plen = (size_t)(p - pbuf);

    agate_buf out;
    uint64_t t0 = bench_now_ns();
    int rc;
    if (sh->test == QT_POINTGET) {
        char key[BENCH_KEY_LEN];
        format_key(key, id);
        rc = agate_get(th->cl, cfg->region, key, BENCH_KEY_LEN, &out);
    } else {
        rc = agate_query(th->cl, sh->text, params, plen, cfg->timeout_ms, &out);
    }
    uint64_t t1 = bench_now_ns();
    if (rc < 0) {
        if (sh->test == QT_POINTGET && rc == AGATE_ENOTFOUND)
            qfail(th, "key:%012" PRIu64 " is absent: the region does not hold the orders (load "
                      "them: leave out --no-prefill, with the same -r)", id);
        else
            qfail(th, "%s failed: %s", sh->test == QT_POINTGET ? "agate_get" : "agate_query",
                  agate_errmsg(th->cl));
        return false;
    }
    uint64_t rows = 1, matched = 1, scanned = 0, elapsed = 0;
    if (sh->test != QT_POINTGET && read_stats(&out, &rows, &matched, &scanned, &elapsed)) {
        agate_buf_free(&out);
        qfail(th, "%s", "cannot read the stats of a query's reply");
        return false;
    }
    agate_buf_free(&out);
    if (sh->test == QT_POINT && rows != 1) {
        qfail(th, "the point query for id %" PRIu64 " returned %" PRIu64 " rows, not 1: the "
                  "region does not hold the orders (load them: leave out --no-prefill, with "
                  "the same -r)", id, rows);
        return false;
    }
    hist_record(&th->h, t1 - t0);
    th->done++;
    th->rows += rows;
    th->matched += matched;
    th->scanned += scanned;
    th->elapsed_us += elapsed;
    th->t_last = t1;
    return true;
}

static void *qthread_main(void *arg)
{
    qthread *th = arg;
    qshared *sh = th->sh;
    while (!atomic_load_explicit(&sh->failed, memory_order_relaxed)) {
        if (sh->n && atomic_fetch_add_explicit(&sh->claimed, 1, memory_order_relaxed) >= sh->n)
            break;
        if (sh->t_end && bench_now_ns() >= sh->t_end)
            break;
        if (!one(th))
            break;
    }
    return NULL;
}

static int run_test(const bench_config *cfg, bench_conn *conns, size_t nconns, bench_qtest test,
                    const char *text, const uint8_t *params, size_t params_len,
                    bench_qresult *res)
{
    qshared sh = {.cfg = cfg, .test = test, .text = text, .params = params,
                  .params_len = params_len, .n = cfg->requests_given ? cfg->requests : 0};
    atomic_init(&sh.claimed, 0);
    atomic_init(&sh.failed, 0);
    qthread *ths = calloc(nconns, sizeof(*ths));
    pthread_t *tids = calloc(nconns, sizeof(*tids));
    if (!ths || !tids) {
        fprintf(stderr, "agate-bench: out of memory\n");
        free(ths);
        free(tids);
        return -1;
    }
    uint64_t t0 = bench_now_ns();
    if (cfg->duration > 0)
        sh.t_end = t0 + (uint64_t)(cfg->duration * 1e9);
    for (size_t i = 0; i < nconns; i++) {
        ths[i].sh = &sh;
        ths[i].cl = conns[i].cl;
        ths[i].rng = 0x9E3779B97F4A7C15ULL * (i + 1) ^ t0;
        if (ths[i].rng == 0)
            ths[i].rng = 1;
        hist_init(&ths[i].h);
    }
    size_t started = 0;
    int rc = 0;
    if (nconns == 1) {
        qthread_main(&ths[0]);
    } else {
        for (; started < nconns; started++)
            if (pthread_create(&tids[started], NULL, qthread_main, &ths[started]) != 0) {
                fprintf(stderr, "agate-bench: cannot start a thread\n");
                atomic_store(&sh.failed, 1);
                rc = -1;
                break;
            }
        for (size_t i = 0; i < started; i++)
            pthread_join(tids[i], NULL);
    }
    memset(res, 0, offsetof(bench_qresult, h));
    hist_init(&res->h);
    res->test = test;
    uint64_t t_end = t0;
    for (size_t i = 0; i < nconns; i++) {
        hist_merge(&res->h, &ths[i].h);
        res->queries += ths[i].done;
        res->rows += ths[i].rows;
        res->matched += ths[i].matched;
        res->scanned += ths[i].scanned;
        res->elapsed_us += ths[i].elapsed_us;
        if (ths[i].t_last > t_end)
            t_end = ths[i].t_last;
        if (ths[i].errmsg[0] && rc == 0) {
            fprintf(stderr, "agate-bench: %s\n", ths[i].errmsg);
            rc = -1;
        }
    }
    if (rc == 0 && atomic_load(&sh.failed))
        rc = -1;
    res->seconds = (double)(t_end - t0) / 1e9;
    free(ths);
    free(tids);
    return rc;
}

/* ---- the report ------------------------------------------------------------ */

static const char *test_name(bench_qtest t)
{
    switch (t) {
    case QT_POINTGET: return "POINTGET";
    case QT_POINT: return "POINT";
    case QT_RANGE: return "RANGE";
    case QT_SCAN: return "SCAN";
    case QT_CUSTOM: return "QUERY";
    }
    return "?";
}

static double ms(uint64_t ns) { return (double)ns / 1e6; }

static double per(uint64_t a, uint64_t b) { return b ? (double)a / (double)b : 0.0; }

static double qps(const bench_qresult *r) { return r->seconds > 0 ? r->queries / r->seconds : 0; }

/* entries read per second of server time (the stats' scanned / elapsed_us),
 * and per second of the test's wall time */
static double scan_rate_server(const bench_qresult *r) { return per(r->scanned, r->elapsed_us) * 1e6; }
static double scan_rate_wall(const bench_qresult *r)
{
    return r->seconds > 0 ? (double)r->scanned / r->seconds : 0;
}

void bench_query_csv_header(void)
{
    printf("\"test\",\"qps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\","
           "\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\",\"queries\",\"seconds\","
           "\"avg_rows\",\"avg_matched\",\"avg_scanned\",\"avg_server_ms\","
           "\"scanned_per_s_server\",\"scanned_per_s_wall\"\n");
}

static void print_csv(const bench_qresult *r)
{
    const hist *h = &r->h;
    printf("\"%s\",\"%.2f\",\"%.3f\",\"%.3f\",\"%.3f\",\"%.3f\",\"%.3f\",\"%.3f\",\"%" PRIu64
           "\",\"%.3f\",\"%.2f\",\"%.2f\",\"%.0f\",\"%.3f\",\"%.0f\",\"%.0f\"\n",
           test_name(r->test), qps(r), hist_mean(h) / 1e6, ms(h->count ? h->min : 0),
           ms(hist_percentile(h, 50)), ms(hist_percentile(h, 95)), ms(hist_percentile(h, 99)),
           ms(h->max), r->queries, r->seconds, per(r->rows, r->queries),
           per(r->matched, r->queries), per(r->scanned, r->queries),
           per(r->elapsed_us, r->queries) / 1e3, scan_rate_server(r), scan_rate_wall(r));
}

static void print_quiet(const bench_qresult *r)
{
    printf("%s: %.2f queries per second, p50=%.3f msec, p99=%.3f msec", test_name(r->test),
           qps(r), ms(hist_percentile(&r->h, 50)), ms(hist_percentile(&r->h, 99)));
    if (r->scanned)
        printf(", %.0f entries scanned per query, %.2f M entries/s", per(r->scanned, r->queries),
               scan_rate_server(r) / 1e6);
    printf("\n");
}

static void print_full(const bench_config *cfg, const bench_qresult *r, const char *text,
                       const char *region_desc, const char *target_desc)
{
    const hist *h = &r->h;
    printf("====== %s ======\n", test_name(r->test));
    if (r->test == QT_POINTGET)
        printf("  agate_get of key:%%012d for a random id (the row the point query finds)\n");
    else
        printf("  %s\n", text);
    switch (r->test) {
    case QT_POINTGET:
    case QT_POINT:
        printf("  $1: a random id in 0..%" PRIu64 "\n", cfg->keyspace - 1);
        break;
    case QT_RANGE:
        printf("  $1, $2: a random window of %.2f (~%.1f%% of the orders; totals 0.00 .. %.2f)\n",
               BENCH_RANGE_CENTS / 100.0, 100.0 * BENCH_RANGE_CENTS / BENCH_TOTAL_CENTS,
               (BENCH_TOTAL_CENTS - 1) / 100.0);
        break;
    case QT_CUSTOM:
        for (int i = 0; i < cfg->nparams; i++)
            printf("  $%d: %s\n", i + 1, cfg->params[i]);
        break;
    case QT_SCAN:
        break;
    }
    printf("  %" PRIu64 " queries completed in %.2f seconds\n", r->queries, r->seconds);
    printf("  %d parallel clients, one query in flight each (a thread per client)\n",
           cfg->clients);
    printf("  region: %s\n", region_desc);
    if (cfg->cluster)
        printf("  cluster: through %s (each query goes to one member, which gathers the "
               "others' parts)\n", target_desc);
    if (r->test != QT_POINTGET) {
        printf("  per query: %.2f rows, %.2f matched, %.0f entries scanned, %.3f ms server "
               "time (elapsed_us)\n", per(r->rows, r->queries), per(r->matched, r->queries),
               per(r->scanned, r->queries), per(r->elapsed_us, r->queries) / 1e3);
        printf("  entries scanned per second: %.0f per query (scanned / elapsed_us), %.0f "
               "overall (scanned / wall time)\n", scan_rate_server(r), scan_rate_wall(r));
    }
    printf("\n");
    if (h->count == 0) {
        printf("No queries completed.\n\n");
        return;
    }
    bench_print_percentiles(h);
    bench_print_summary(h, "throughput", qps(r), "queries");
}

/* ---- the tests ------------------------------------------------------------- */

int bench_query_run(const bench_config *cfg, bench_conn *conns, size_t nconns,
                    const char *servers, const char *region_desc, const char *target_desc)
{
    /* a custom query's parameters: one MessagePack array of the --param
     * values, each JSON (as agate query --param) */
    buf_t params;
    buf_init(&params);
    if (cfg->query) {
        uint8_t hdr[3];
        size_t hl;
        if (cfg->nparams < 16) {
            hdr[0] = (uint8_t)(0x90 | cfg->nparams);
            hl = 1;
        } else {
            hdr[0] = 0xdc;
            put_be(hdr + 1, (uint64_t)cfg->nparams, 2);
            hl = 3;
        }
        if (buf_append(&params, hdr, hl)) {
            fprintf(stderr, "agate-bench: out of memory\n");
            return 1;
        }
        for (int i = 0; i < cfg->nparams; i++) {
            json_mp_error err;
            const char *t = cfg->params[i];
            if (json_mp_parse(t, strlen(t), &params, &err) < 0) {
                fprintf(stderr, "agate-bench: --param %d ($%d) is not valid JSON (column %d): "
                                "%s%s\n", i + 1, i + 1, err.column, err.text,
                        (t[0] >= 'a' && t[0] <= 'z') || (t[0] >= 'A' && t[0] <= 'Z')
                            ? " (a string needs JSON quotes: --param '\"text\"')"
                            : "");
                buf_free(&params);
                return 2;
            }
        }
    }

    if (!cfg->no_prefill) {
        double secs;
        if (bench_load_orders(cfg, servers, &secs) < 0) {
            buf_free(&params);
            return 1;
        }
        uint64_t size = 0;
        if (agate_size(conns[0].cl, cfg->region, &size) < 0) {
            fprintf(stderr, "agate-bench: agate_size: %s\n", agate_errmsg(conns[0].cl));
            buf_free(&params);
            return 1;
        }
        FILE *f = cfg->csv || cfg->quiet ? stderr : stdout;
        int lc = cfg->keyspace < LOAD_CONNS * (uint64_t)LOAD_BATCH ? 1 : LOAD_CONNS;
        fprintf(f, "LOAD: %" PRIu64 " orders in %.2f seconds (%.0f entries per second, "
                   "agate_put_all batches of %d over %d connection%s); region size %" PRIu64
                   "\n", cfg->keyspace, secs, secs > 0 ? cfg->keyspace / secs : 0.0,
                LOAD_BATCH, lc, lc == 1 ? "" : "s", size);
        if (!cfg->csv && !cfg->quiet)
            printf("\n");
        fflush(f);
    }

    char qpoint[200], qrange[240], qscan[200];
    snprintf(qpoint, sizeof(qpoint), "SELECT * FROM /%s WHERE id = $1", cfg->region);
    snprintf(qrange, sizeof(qrange),
             "SELECT id, total FROM /%s WHERE total >= $1 AND total < $2", cfg->region);
    snprintf(qscan, sizeof(qscan),
             "SELECT status, COUNT(*), SUM(total) FROM /%s GROUP BY status", cfg->region);
    struct {
        bool on;
        bench_qtest t;
        const char *text;
    } tests[] = {
        {cfg->test_pointget, QT_POINTGET, NULL},
        {cfg->test_point, QT_POINT, qpoint},
        {cfg->test_range, QT_RANGE, qrange},
        {cfg->test_scan, QT_SCAN, qscan},
        {cfg->query != NULL, QT_CUSTOM, cfg->query},
    };

    bench_qresult *res = malloc(sizeof(*res));
    if (!res) {
        fprintf(stderr, "agate-bench: out of memory\n");
        buf_free(&params);
        return 1;
    }
    if (cfg->csv)
        bench_query_csv_header();
    int status = 0;
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]) && status == 0; i++) {
        if (!tests[i].on)
            continue;
        if (run_test(cfg, conns, nconns, tests[i].t, tests[i].text, buf_rptr(&params),
                     buf_readable(&params), res)) {
            status = 1;
            break;
        }
        if (cfg->csv)
            print_csv(res);
        else if (cfg->quiet)
            print_quiet(res);
        else
            print_full(cfg, res, tests[i].text, region_desc, target_desc);
        fflush(stdout);
    }
    free(res);
    buf_free(&params);
    return status;
}
