/* main.c - agate-bench: options, setup and the report.
 *
 * The options and the three output formats (readable, -q, --csv) follow
 * redis-benchmark 7 so that the two can be run side by side with the same
 * flags and their output read by the same script. The query tests
 * (-t point,range,scan,pointget, --query) are in query.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bench.h"
#include "common/locators.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: agate-bench [-h <host>] [-p <port>] | [--locator <host[port]>]\n"
            "                   [-c <clients>] [-n <requests>] [-P <numreq>] [-d <size>]\n"
            "                   [-r <keyspacelen>] [-t <tests>] [-q] [--csv]\n"
            "                   [--threads <num>] [--region <name>] [--no-prefill]\n"
            "                   [--timeout <ms>]\n"
            "       agate-bench ... -t point,range,scan,pointget | -t query\n"
            "                   [--query <text> [--param <json>]...] [--duration <s>]\n"
            "\n"
            " -h <hostname>      Server hostname (default 127.0.0.1)\n"
            " -p <port>          Server port (default %d)\n"
            " --locator <locs>   Benchmark a cluster instead of one server: locators\n"
            "                    HOST[PORT] or HOST:PORT, comma-separated. Every\n"
            "                    connection is a cluster client (agate_connect_locator)\n"
            "                    that sends each request straight to the member holding\n"
            "                    the key's primary bucket; not with -h or -p\n"
            " -c <clients>       Number of parallel connections (default 50)\n"
            " -n <requests>      Total number of requests per test (default 100000)\n"
            " -d <size>          Value size in bytes (default 3): the value is a MessagePack\n"
            "                    bin whose payload is that many bytes\n"
            " -r <keyspacelen>   Use random keys key:%%012d in 0..keyspacelen-1 (as\n"
            "                    redis-benchmark's key:__rand_int__); without -r every\n"
            "                    request uses the one key \"" BENCH_FIXED_KEY "\"\n"
            " -P <numreq>        Pipeline <numreq> requests per connection (default 1):\n"
            "                    each connection sends numreq requests, waits for their\n"
            "                    replies, then sends the next numreq\n"
            " -t <tests>         Comma-separated tests: put (alias set), get. They run in\n"
            "                    that order; get alone first fills the key space (untimed).\n"
            "                    Or query tests, over orders {id, status, total,\n"
            "                    customer:{city}} loaded first (untimed) under key:%%012d:\n"
            "                      pointget  agate_get of the key of a random id (the floor\n"
            "                                of a point query)\n"
            "                      point     SELECT * ... WHERE id = $1, a random id\n"
            "                      range     SELECT id, total ... WHERE total >= $1 AND\n"
            "                                total < $2, a random ~0.1%% window\n"
            "                      scan      SELECT status, COUNT(*), SUM(total) ... GROUP BY\n"
            "                                status\n"
            "                      query     point,range,scan\n"
            "                    They run in the order pointget, point, range, scan, each\n"
            "                    connection in its own thread with one query in flight\n"
            "                    (agate_query is synchronous); not with put or get.\n"
            "                    With query tests -r is the number of orders (default\n"
            "                    %d), -c defaults to 1, -n to no limit (see\n"
            "                    --duration); -P, -d and --threads do not apply\n"
            " -t cq              Continuous-query delivery: a CQ SELECT * ... WHERE o.t > 0\n"
            "                    on the region, -c writer connections (default 4)\n"
            "                    putting {t: send time, pad: -d bytes} under random keys\n"
            "                    of -r (default 10000) at --rate puts per second in all\n"
            "                    for --duration seconds (default 10); prints the latency\n"
            "                    from each put's send to its event's callback and the\n"
            "                    events per second. Runs alone\n"
            " --rate <n>         -t cq: puts per second, all writers together (default\n"
            "                    10000)\n"
            " --query <text>     Also run this query (test QUERY; alone without -t), with\n"
            "                    the same parameters every time\n"
            " --param <json>     Value of the next $n of --query, as JSON (repeatable):\n"
            "                    42, 1.5, '\"paid\"'\n"
            " --duration <s>     Query tests: run each for this many seconds (default %.0f\n"
            "                    without -n; with -n, whichever ends first)\n"
            " -q                 Quiet: one line per test\n"
            " --csv              Output in CSV format (the columns of redis-benchmark --csv;\n"
            "                    query tests add theirs after them)\n"
            " --threads <num>    Client threads (default 1)\n"
            " --region <name>    Region to use (default bench): an existing region of any\n"
            "                    type is used as it is; an absent one is created as\n"
            "                    PARTITION\n"
            " --no-prefill       With -t get alone, do not fill the key space first; with\n"
            "                    query tests, do not load the orders (use what the region\n"
            "                    holds)\n"
            " --timeout <ms>     Fail when no reply arrives for this long (default 10000);\n"
            "                    also each query's time limit on the server\n"
            " --help             This help\n",
            BENCH_DEFAULT_PORT, BENCH_QUERY_ENTRIES, BENCH_QUERY_DURATION);
}

static int parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') {
        fprintf(stderr, "agate-bench: %s needs a number\n", opt);
        return -1;
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max) {
        fprintf(stderr, "agate-bench: bad value for %s: '%s' (%" PRIu64 "..%" PRIu64 ")\n", opt,
                s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static bool word_is(const char *p, size_t n, const char *w)
{
    return n == strlen(w) && !strncasecmp(p, w, n);
}

static int parse_tests(bench_config *cfg, const char *list)
{
    cfg->test_put = cfg->test_get = false;
    cfg->test_point = cfg->test_range = cfg->test_scan = cfg->test_pointget = false;
    cfg->test_cq = false;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (word_is(p, n, "put") || word_is(p, n, "set"))
            cfg->test_put = true;
        else if (word_is(p, n, "get"))
            cfg->test_get = true;
        else if (word_is(p, n, "point"))
            cfg->test_point = true;
        else if (word_is(p, n, "range"))
            cfg->test_range = true;
        else if (word_is(p, n, "scan"))
            cfg->test_scan = true;
        else if (word_is(p, n, "pointget"))
            cfg->test_pointget = true;
        else if (word_is(p, n, "query"))
            cfg->test_point = cfg->test_range = cfg->test_scan = true;
        else if (word_is(p, n, "cq"))
            cfg->test_cq = true;
        else if (n > 0) {
            fprintf(stderr, "agate-bench: unknown test '%.*s' (known: put, set, get, point, "
                            "range, scan, pointget, query, cq)\n", (int)n, p);
            return -1;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    bool q = cfg->test_point || cfg->test_range || cfg->test_scan || cfg->test_pointget;
    if (cfg->test_cq && (q || cfg->test_put || cfg->test_get)) {
        fprintf(stderr, "agate-bench: -t cq runs alone\n");
        return -1;
    }
    if (cfg->test_cq)
        return 0;
    if (!cfg->test_put && !cfg->test_get && !q) {
        fprintf(stderr, "agate-bench: -t names no test\n");
        return -1;
    }
    if (q && (cfg->test_put || cfg->test_get)) {
        fprintf(stderr, "agate-bench: query tests (point, range, scan, pointget) and put/get "
                        "cannot run in the same command\n");
        return -1;
    }
    return 0;
}

static bool query_mode(const bench_config *cfg)
{
    return cfg->test_point || cfg->test_range || cfg->test_scan || cfg->test_pointget ||
           cfg->query;
}

/* Checks the --locator list (as the agate CLI does). Prints why not and
 * returns -1. */
static int check_locators(const char *list)
{
    char err[256];
    if (*list == '-' || locators_check(list, err, sizeof err)) {
        fprintf(stderr, "agate-bench: bad --locator: %s\n",
                *list == '-' ? "it needs HOST[PORT] or HOST:PORT" : err);
        return -1;
    }
    return 0;
}

/* Returns 0, 1 when the program should exit successfully (--help), or -1. */
static int parse_args(int argc, char **argv, bench_config *cfg)
{
    bool server_given = false; /* -h or -p */
    bool tests_given = false, clients_given = false, keyspace_given = false;
    bool pipeline_given = false, data_given = false, threads_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n;
#define NEED_ARG()                                                      \
    do {                                                                \
        if (!v) {                                                       \
            fprintf(stderr, "agate-bench: %s needs an argument\n", a);  \
            return -1;                                                  \
        }                                                               \
        i++;                                                            \
    } while (0)
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(a, "-h")) {
            NEED_ARG();
            cfg->host = v;
            server_given = true;
        } else if (!strcmp(a, "-p")) {
            NEED_ARG();
            if (parse_u64(a, v, 1, 65535, &n))
                return -1;
            cfg->port = (int)n;
            server_given = true;
        } else if (!strcmp(a, "--locator")) {
            NEED_ARG();
            if (check_locators(v))
                return -1;
            cfg->locator = v;
        } else if (!strcmp(a, "-c")) {
            NEED_ARG();
            if (parse_u64(a, v, 1, 100000, &n))
                return -1;
            cfg->clients = (int)n;
            clients_given = true;
        } else if (!strcmp(a, "-n")) {
            NEED_ARG();
            if (parse_u64(a, v, 1, UINT64_MAX / 2, &n))
                return -1;
            cfg->requests = n;
            cfg->requests_given = true;
        } else if (!strcmp(a, "-P")) {
            NEED_ARG();
            if (parse_u64(a, v, 1, 1000000, &n))
                return -1;
            cfg->pipeline = (int)n;
            pipeline_given = true;
        } else if (!strcmp(a, "-d")) {
            NEED_ARG();
            if (parse_u64(a, v, 0, 1u << 30, &n))
                return -1;
            cfg->data_size = (size_t)n;
            data_given = true;
        } else if (!strcmp(a, "-r")) {
            NEED_ARG();
            if (parse_u64(a, v, 1, 1000000000000ULL, &n))
                return -1;
            cfg->keyspace = n;
            keyspace_given = true;
        } else if (!strcmp(a, "-t")) {
            NEED_ARG();
            if (parse_tests(cfg, v))
                return -1;
            tests_given = true;
        } else if (!strcmp(a, "--query")) {
            NEED_ARG();
            if (!*v) {
                fprintf(stderr, "agate-bench: --query needs the text of a query\n");
                return -1;
            }
            cfg->query = v;
        } else if (!strcmp(a, "--param")) {
            NEED_ARG();
            if (cfg->nparams == BENCH_MAX_PARAMS) {
                fprintf(stderr, "agate-bench: at most %d --param\n", BENCH_MAX_PARAMS);
                return -1;
            }
            cfg->params[cfg->nparams++] = v;
        } else if (!strcmp(a, "--duration")) {
            NEED_ARG();
            char *end;
            errno = 0;
            double d = strtod(v, &end);
            if (errno || end == v || *end || !(d > 0) || d > 86400) {
                fprintf(stderr, "agate-bench: bad value for --duration: '%s' (seconds, more "
                                "than 0, at most 86400)\n", v);
                return -1;
            }
            cfg->duration = d;
        } else if (!strcmp(a, "--rate")) {
            NEED_ARG();
            if (parse_u64(a, v, 1, 10000000, &n))
                return -1;
            cfg->rate = (double)n;
        } else if (!strcmp(a, "--no-prefill")) {
            cfg->no_prefill = true;
        } else if (!strcmp(a, "-q")) {
            cfg->quiet = true;
        } else if (!strcmp(a, "--csv")) {
            cfg->csv = true;
        } else if (!strcmp(a, "--threads")) {
            NEED_ARG();
            if (parse_u64(a, v, 1, 256, &n))
                return -1;
            cfg->threads = (int)n;
            threads_given = true;
        } else if (!strcmp(a, "--region")) {
            NEED_ARG();
            cfg->region = v;
        } else if (!strcmp(a, "--timeout")) {
            NEED_ARG();
            if (parse_u64(a, v, 1, 3600000, &n))
                return -1;
            cfg->timeout_ms = (int)n;
        } else if (!strncmp(a, "--", 2) && strchr(a, '=')) {
            fprintf(stderr, "agate-bench: unknown option '%s' (options take their value as "
                            "the next argument: '%.*s VALUE')\n", a, (int)(strchr(a, '=') - a), a);
            return -1;
        } else {
            fprintf(stderr, "agate-bench: unknown option '%s' (see --help)\n", a);
            return -1;
        }
#undef NEED_ARG
    }
    if (cfg->locator && server_given) {
        fprintf(stderr, "agate-bench: give a server (-h, -p) or a cluster (--locator), not both\n");
        return -1;
    }
    if (cfg->query && !tests_given)
        cfg->test_put = cfg->test_get = false; /* --query alone */
    if (cfg->query && (cfg->test_put || cfg->test_get)) {
        fprintf(stderr, "agate-bench: --query and put/get tests cannot run in the same "
                        "command\n");
        return -1;
    }
    if (cfg->nparams && !cfg->query) {
        fprintf(stderr, "agate-bench: --param gives the values of --query's $1, $2, ...; "
                        "there is no --query\n");
        return -1;
    }
    if (cfg->test_cq) {
        if (cfg->query) {
            fprintf(stderr, "agate-bench: -t cq runs alone (no --query)\n");
            return -1;
        }
        if (!clients_given)
            cfg->clients = 4; /* writer connections */
        return 0;
    }
    if (cfg->rate > 0) {
        fprintf(stderr, "agate-bench: --rate applies to -t cq only\n");
        return -1;
    }
    if (!query_mode(cfg)) {
        if (cfg->duration > 0) {
            fprintf(stderr, "agate-bench: --duration applies to query tests only\n");
            return -1;
        }
        return 0;
    }
    if (pipeline_given || data_given || threads_given) {
        fprintf(stderr, "agate-bench: %s does not apply to query tests (each connection has "
                        "its own thread and one query in flight; the values are the orders)\n",
                pipeline_given ? "-P" : data_given ? "-d" : "--threads");
        return -1;
    }
    if (!clients_given)
        cfg->clients = 1;
    if (!keyspace_given)
        cfg->keyspace = BENCH_QUERY_ENTRIES;
    if (!cfg->requests_given && cfg->duration <= 0)
        cfg->duration = BENCH_QUERY_DURATION;
    return 0;
}

/* The value: a MessagePack bin whose payload is size bytes of 'x' (what
 * redis-benchmark's -d sends). */
static uint8_t *make_value(size_t size, size_t *len)
{
    size_t hdr = size <= 0xff ? 2 : size <= 0xffff ? 3 : 5;
    uint8_t *v = malloc(hdr + size + 1);
    if (!v)
        return NULL;
    if (hdr == 2) {
        v[0] = 0xc4;
        v[1] = (uint8_t)size;
    } else if (hdr == 3) {
        v[0] = 0xc5;
        v[1] = (uint8_t)(size >> 8);
        v[2] = (uint8_t)size;
    } else {
        v[0] = 0xc6;
        v[1] = (uint8_t)(size >> 24);
        v[2] = (uint8_t)(size >> 16);
        v[3] = (uint8_t)(size >> 8);
        v[4] = (uint8_t)size;
    }
    memset(v + hdr, 'x', size);
    *len = hdr + size;
    return v;
}

/* For the readable output: "NAME (TYPE, N redundant copies)", and what the
 * clients connected to ("locator HOST[PORT]" or "HOST:PORT") */
static char region_desc[300];
static char target_desc[320];

static double ms(uint64_t ns) { return (double)ns / 1e6; }

static const char *op_name(bench_op op) { return op == BENCH_PUT ? "PUT" : "GET"; }

static double rps_of(const bench_result *r)
{
    return r->seconds > 0 ? (double)r->requests / r->seconds : 0.0;
}

static void print_csv(const bench_result *r)
{
    const hist *h = &r->h;
    printf("\"%s\",\"%.2f\",\"%.3f\",\"%.3f\",\"%.3f\",\"%.3f\",\"%.3f\",\"%.3f\"\n",
           op_name(r->op), rps_of(r), hist_mean(h) / 1e6, ms(h->count ? h->min : 0),
           ms(hist_percentile(h, 50)), ms(hist_percentile(h, 95)), ms(hist_percentile(h, 99)),
           ms(h->max));
}

static void print_quiet(const bench_result *r)
{
    printf("%s: %.2f requests per second, p50=%.3f msec\n", op_name(r->op), rps_of(r),
           ms(hist_percentile(&r->h, 50)));
}

void bench_print_percentiles(const hist *h)
{
    printf("Latency by percentile distribution:\n");
    printf("%.3f%% <= %.3f milliseconds (cumulative count %" PRIu64 ")\n", 0.0, ms(h->min),
           hist_count_le(h, h->min));
    double gap = 50.0;
    for (int k = 1; k < 30; k++) {
        double p = 100.0 - gap;
        gap /= 2;
        uint64_t v = hist_percentile(h, p);
        uint64_t c = hist_count_le(h, v);
        if (c > h->count)
            c = h->count;
        printf("%.3f%% <= %.3f milliseconds (cumulative count %" PRIu64 ")\n", p, ms(v), c);
        if (c >= h->count)
            break;
    }
    printf("%.3f%% <= %.3f milliseconds (cumulative count %" PRIu64 ")\n", 100.0, ms(h->max),
           h->count);
}

void bench_print_summary(const hist *h, const char *what, double rate, const char *unit)
{
    printf("\nSummary:\n");
    printf("  %s summary: %.2f %s per second\n", what, rate, unit);
    printf("  latency summary (msec):\n");
    printf("          avg       min       p50       p95       p99       max\n");
    printf("    %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f\n", hist_mean(h) / 1e6, ms(h->min),
           ms(hist_percentile(h, 50)), ms(hist_percentile(h, 95)), ms(hist_percentile(h, 99)),
           ms(h->max));
    printf("\n");
}

static void print_full(const bench_config *cfg, const bench_result *r)
{
    const hist *h = &r->h;
    printf("====== %s ======\n", op_name(r->op));
    printf("  %" PRIu64 " requests completed in %.2f seconds\n", r->requests, r->seconds);
    printf("  %d parallel clients\n", cfg->clients);
    printf("  %zu bytes payload\n", cfg->data_size);
    printf("  pipeline: %d\n", cfg->pipeline);
    if (cfg->keyspace)
        printf("  key space: %" PRIu64 " random keys\n", cfg->keyspace);
    else
        printf("  key space: one key (\"" BENCH_FIXED_KEY "\")\n");
    printf("  region: %s\n", region_desc);
    if (cfg->cluster)
        printf("  cluster: through %s, single hop to each key's primary\n", target_desc);
    if (cfg->threads > 1)
        printf("  multi-thread: yes\n  threads: %d\n", cfg->threads);
    else
        printf("  multi-thread: no\n");
    if (r->op == BENCH_GET)
        printf("  misses (key absent): %" PRIu64 "\n", r->misses);
    printf("\n");
    if (h->count == 0) {
        printf("No requests completed.\n\n");
        return;
    }

    bench_print_percentiles(h);

    printf("\nCumulative distribution of latencies:\n");
    uint64_t prev = 0;
    for (uint64_t t = 100000; ; t += t < 2000000 ? 100000 : 1000000) {
        uint64_t c = t >= h->max ? h->count : hist_count_le(h, t);
        if (c != prev) {
            printf("%.3f%% <= %.3f milliseconds (cumulative count %" PRIu64 ")\n",
                   100.0 * (double)c / (double)h->count, ms(t), c);
            prev = c;
        }
        if (c >= h->count)
            break;
    }

    bench_print_summary(h, "throughput", rps_of(r), "requests");
}

int bench_open(const bench_config *cfg, const char *servers, agate_client **out)
{
    agate_options opts;
    agate_options_init(&opts);
    opts.client_name = "agate-bench";
    opts.request_timeout_ms = cfg->timeout_ms;
    *out = agate_client_new(&opts);
    if (!*out)
        return AGATE_ENOMEM;
    return cfg->locator ? agate_connect_locator(*out, cfg->locator) : agate_connect(*out, servers);
}

static void close_all(bench_conn *conns, size_t n)
{
    for (size_t i = 0; i < n; i++)
        agate_client_free(conns[i].cl);
    free(conns);
}

int main(int argc, char **argv)
{
    bench_config cfg = {
        .host = "127.0.0.1",
        .port = BENCH_DEFAULT_PORT,
        .clients = 50,
        .requests = 100000,
        .pipeline = 1,
        .data_size = 3,
        .keyspace = 0,
        .test_put = true,
        .test_get = true,
        .threads = 1,
        .region = "bench",
        .timeout_ms = 10000,
    };
    int prc = parse_args(argc, argv, &cfg);
    if (prc)
        return prc > 0 ? 0 : 2;

    char servers[300];
    if (strchr(cfg.host, ':'))
        snprintf(servers, sizeof(servers), "[%s]:%d", cfg.host, cfg.port);
    else
        snprintf(servers, sizeof(servers), "%s:%d", cfg.host, cfg.port);

    size_t vlen;
    uint8_t *value = make_value(cfg.data_size, &vlen);
    bench_conn *conns = calloc((size_t)cfg.clients, sizeof(*conns));
    if (!value || !conns) {
        fprintf(stderr, "agate-bench: out of memory\n");
        return 1;
    }
    for (int i = 0; i < cfg.clients; i++) {
        int rc = bench_open(&cfg, servers, &conns[i].cl);
        if (!conns[i].cl) {
            fprintf(stderr, "agate-bench: out of memory\n");
            close_all(conns, (size_t)cfg.clients);
            free(value);
            return 1;
        }
        if (rc < 0) {
            fprintf(stderr, "agate-bench: cannot connect to %s%s: %s\n",
                    cfg.locator ? "locator " : "", cfg.locator ? cfg.locator : servers,
                    agate_errmsg(conns[i].cl));
            close_all(conns, (size_t)cfg.clients);
            free(value);
            return 1;
        }
    }

    cfg.cluster = agate_is_cluster(conns[0].cl) != 0;
    snprintf(target_desc, sizeof(target_desc), "%s%s", cfg.locator ? "locator " : "",
             cfg.locator ? cfg.locator : servers);

    /* an existing region is used as it is (a cluster's may be
     * PARTITION_REDUNDANT, ...); an absent one is created as PARTITION */
    agate_region_info *info = NULL;
    int rc = agate_region_describe(conns[0].cl, cfg.region, &info);
    if (rc == AGATE_EUNKNOWN_REGION) {
        agate_region_config rcfg;
        agate_region_config_init(&rcfg, cfg.region, AGATE_PARTITION);
        rcfg.if_not_exists = 1;
        rc = agate_region_create(conns[0].cl, &rcfg);
        if (rc == 0)
            rc = agate_region_describe(conns[0].cl, cfg.region, &info);
    }
    if (rc < 0) {
        fprintf(stderr, "agate-bench: cannot use region %s: %s\n", cfg.region,
                agate_errmsg(conns[0].cl));
        close_all(conns, (size_t)cfg.clients);
        free(value);
        return 1;
    }
    snprintf(region_desc, sizeof(region_desc), "%s (%s, %u redundant copies)", cfg.region,
             agate_region_type_name(info->type) ? agate_region_type_name(info->type) : "?",
             info->redundant_copies);
    agate_region_info_free(info);

    /* A cluster client connects to a member on the first request for it.
     * agate_size asks every member, so each connection has all its member
     * connections open before the first timed request (untimed). */
    for (int i = 0; cfg.cluster && i < cfg.clients; i++) {
        uint64_t count;
        if (agate_size(conns[i].cl, cfg.region, &count) < 0) {
            fprintf(stderr, "agate-bench: cannot reach the members of the cluster: %s\n",
                    agate_errmsg(conns[i].cl));
            close_all(conns, (size_t)cfg.clients);
            free(value);
            return 1;
        }
    }

    if (cfg.test_cq) {
        int cs = bench_cq_run(&cfg, conns, (size_t)cfg.clients, servers, region_desc, target_desc);
        close_all(conns, (size_t)cfg.clients);
        free(value);
        return cs;
    }
    if (query_mode(&cfg)) {
        int qs = bench_query_run(&cfg, conns, (size_t)cfg.clients, servers, region_desc,
                                 target_desc);
        close_all(conns, (size_t)cfg.clients);
        free(value);
        return qs;
    }

    bench_result *res = malloc(sizeof(*res)); /* the histogram is ~36 KiB */
    if (!res) {
        fprintf(stderr, "agate-bench: out of memory\n");
        close_all(conns, (size_t)cfg.clients);
        free(value);
        return 1;
    }
    int status = 0;
    if (cfg.test_get && !cfg.test_put && !cfg.no_prefill) {
        /* fill the key space first, in order and pipelined, untimed */
        bench_config fill = cfg;
        if (fill.pipeline < 64)
            fill.pipeline = 64;
        uint64_t n = cfg.keyspace ? cfg.keyspace : 1;
        if (bench_run(&fill, conns, (size_t)cfg.clients, BENCH_PUT, n, true, value, vlen, res))
            status = 1;
    }
    if (cfg.csv && status == 0)
        printf("\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\","
               "\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n");
    bench_op ops[2];
    int nops = 0;
    if (cfg.test_put)
        ops[nops++] = BENCH_PUT;
    if (cfg.test_get)
        ops[nops++] = BENCH_GET;
    for (int i = 0; i < nops && status == 0; i++) {
        if (bench_run(&cfg, conns, (size_t)cfg.clients, ops[i], cfg.requests, false, value,
                      vlen, res)) {
            status = 1;
            break;
        }
        if (cfg.csv)
            print_csv(res);
        else if (cfg.quiet)
            print_quiet(res);
        else
            print_full(&cfg, res);
        fflush(stdout);
    }
    free(res);
    close_all(conns, (size_t)cfg.clients);
    free(value);
    return status;
}
