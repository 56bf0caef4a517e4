/* bench.h - agate-bench: a load generator for agated in the manner of
 * redis-benchmark. main.c parses options and prints results; driver.c runs
 * one test over the connections with the library's asynchronous API. */
#ifndef AGATE_BENCH_BENCH_H
#define AGATE_BENCH_BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agate/agate.h"
#include "hist.h"

#define BENCH_DEFAULT_PORT 40404 /* AGATE_DEFAULT_PORT in common/proto.h */
#define BENCH_KEY_LEN 16 /* "key:" and 12 digits, as redis-benchmark's key:__rand_int__ */
#define BENCH_FIXED_KEY "key:__rand_int__" /* the key used without -r, as redis-benchmark */

typedef enum bench_op { BENCH_PUT, BENCH_GET } bench_op;

/* The query tests (query.c). */
typedef enum bench_qtest {
    QT_POINTGET, /* agate_get of the key a point query finds: the floor */
    QT_POINT,    /* SELECT * ... WHERE id = $1 */
    QT_RANGE,    /* SELECT id, total ... WHERE total >= $1 AND total < $2 */
    QT_SCAN,     /* SELECT status, COUNT(*), SUM(total) ... GROUP BY status */
    QT_CUSTOM,   /* --query */
} bench_qtest;

#define BENCH_QUERY_ENTRIES 1000000 /* orders loaded for query tests without -r */
#define BENCH_QUERY_DURATION 10.0   /* seconds per query test without -n or --duration */
#define BENCH_NSTATUS 5
#define BENCH_TOTAL_CENTS 100000    /* an order's total: 0.00 .. 999.99 */
#define BENCH_RANGE_CENTS 100       /* the range query's window: 1.00, ~0.1% of the orders */
#define BENCH_MAX_PARAMS 64

typedef struct bench_config {
    const char *host;
    int port;
    const char *locator; /* --locator: route over a cluster through these locators */
    bool cluster;        /* the clients route over a cluster (--locator, or -p naming a
                            locator or a member of a cluster: libagate routes then too) */
    int clients;       /* -c */
    uint64_t requests; /* -n */
    int pipeline;      /* -P */
    size_t data_size;  /* -d */
    uint64_t keyspace; /* -r; 0: one fixed key */
    bool test_put;
    bool test_get;
    bool quiet;        /* -q */
    bool csv;          /* --csv */
    bool no_prefill;   /* --no-prefill: get alone does not fill the key space, query
                          tests do not load the orders */
    /* query tests: -t point,range,scan,pointget (query = the first three), --query */
    bool test_point;
    bool test_range;
    bool test_scan;
    bool test_pointget;
    bool test_cq;                          /* -t cq (cq.c) */
    double rate;                           /* --rate: puts per second of -t cq; 0: default */
    const char *query;                     /* --query */
    const char *params[BENCH_MAX_PARAMS];  /* --param, JSON */
    int nparams;
    double duration;                       /* --duration (s); 0: none */
    bool requests_given;                   /* -n was given */
    int threads;       /* --threads */
    const char *region;
    int timeout_ms;    /* a test fails when no reply arrives for this long */
} bench_config;

/* One connection. Only the thread that owns it touches it during a test. */
typedef struct bench_conn {
    agate_client *cl;
    int fd;
    struct bench_thread *th;
    uint32_t inflight;  /* requests of the current batch not yet answered */
    uint64_t t_start;   /* when the current batch was queued (ns) */
    bool out_armed;     /* EPOLLOUT is registered */
    bool done;          /* no more requests to issue in this test */
} bench_conn;

/* What a test shares between its threads. */
typedef struct bench_shared {
    const bench_config *cfg;
    bench_op op;
    bool sequential;          /* keys 0..n-1 in order (prefill) instead of random */
    uint64_t n;               /* requests in this test */
    _Atomic uint64_t claimed; /* requests handed out so far (may overshoot n) */
    _Atomic int failed;       /* set on the first fatal error: everyone stops */
    const uint8_t *value;     /* the encoded value of a put */
    size_t vlen;
} bench_shared;

typedef struct bench_thread {
    bench_shared *sh;
    bench_conn **conns;
    size_t nconns;
    size_t active;     /* connections not yet done */
    uint64_t rng;
    hist h;
    uint64_t completed;
    uint64_t misses;   /* GET of an absent key */
    uint64_t errors;
    uint64_t t_last;   /* time of the last reply (ns) */
    /* time of the first reply handled in the current agate_process call */
    uint64_t now;
    bool now_valid;
    char errmsg[256];  /* first error seen */
} bench_thread;

/* Result of one test. */
typedef struct bench_result {
    bench_op op;
    uint64_t requests;
    double seconds;
    uint64_t misses;
    uint64_t errors;
    hist h;
} bench_result;

/* Result of one query test. */
typedef struct bench_qresult {
    bench_qtest test;
    uint64_t queries;
    double seconds;
    uint64_t rows, matched, scanned, elapsed_us; /* sums of the replies' stats */
    hist h;                                      /* last: see run_test */
} bench_qresult;

uint64_t bench_now_ns(void);

/* main.c: opens a client on cfg's server or cluster into *out (which may
 * be set even on failure, for agate_errmsg; free it with
 * agate_client_free). Returns 0 or a negative AGATE_E* code. */
int bench_open(const bench_config *cfg, const char *servers, agate_client **out);
/* main.c: the "Latency by percentile distribution" block. */
void bench_print_percentiles(const hist *h);
/* main.c: the "Summary" block: "<what> summary: <rate> <unit> per second"
 * and the latency line (avg, min, p50, p95, p99, max in ms), as
 * redis-benchmark prints it. */
void bench_print_summary(const hist *h, const char *what, double rate, const char *unit);

/* query.c: loads orders 0..cfg->keyspace-1 (keys key:%012d) over its own
 * connections; *seconds gets the time taken. Returns 0 or -1 after saying
 * why on stderr. */
int bench_load_orders(const bench_config *cfg, const char *servers, double *seconds);
/* query.c: loads the orders (unless --no-prefill), runs the query tests
 * over conns (a thread each) and prints the report. Returns the exit
 * status. */
int bench_query_run(const bench_config *cfg, bench_conn *conns, size_t nconns,
                    const char *servers, const char *region_desc, const char *target_desc);

/* cq.c: -t cq: a continuous query on the region, -c writers putting at
 * --rate for --duration, latency from put to callback. Returns the exit
 * status. */
int bench_cq_run(const bench_config *cfg, bench_conn *conns, size_t nconns, const char *servers,
                 const char *region_desc, const char *target_desc);

/* Runs one test (op, n requests) over conns with cfg->threads threads.
 * Fills *res (res->h is overwritten). Returns 0, or -1 after printing why
 * to stderr. */
int bench_run(const bench_config *cfg, bench_conn *conns, size_t nconns, bench_op op,
              uint64_t n, bool sequential, const uint8_t *value, size_t vlen,
              bench_result *res);

#endif
