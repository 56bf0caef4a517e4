/* cq.c - agate-bench -t cq: continuous-query delivery latency under load.
 *
 * One CQ "SELECT * FROM /region o WHERE o.t > 0" (every put matches) is
 * registered through its own client; -c writer threads (one connection
 * each) put values {"t": <send time, ns>, "pad": <-d bytes>} under random
 * keys of the key space at a fixed total rate (--rate) for --duration
 * seconds. The CQ's callback, on the main thread, records now - t: the
 * latency from the put leaving the writer to the event reaching the
 * application, through the primary, its journal, the member's pump and the
 * subscription connection. Writers and callback share CLOCK_MONOTONIC, so
 * the figure is exact on one machine. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define CQ_DEFAULT_RATE 10000
#define CQ_DEFAULT_KEYS 10000
#define CQ_DRAIN_QUIET_NS 3000000000ull /* after the writers: stop after 3 s without events */
#define CQ_VALUE_HDR 12                 /* 0x82, "t", uint64 */

typedef struct cq_writer {
    const bench_config *cfg;
    agate_client *cl;
    pthread_t th;
    uint64_t start_ns, end_ns, interval_ns, offset_ns;
    uint64_t rng;
    uint8_t *value;
    size_t vlen;
    uint64_t sent, failed;
    _Atomic uint64_t acked; /* read by the main thread while the writer runs */
    char errmsg[256];
} cq_writer;

typedef struct cq_sink {
    hist h;
    uint64_t events, foreign;
    uint64_t last_ns;
} cq_sink;

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* {"t": <8 bytes>, "pad": bin of size bytes}; t is patched per put. */
static uint8_t *make_cq_value(size_t size, size_t *len)
{
    size_t hdr = size <= 0xff ? 2 : size <= 0xffff ? 3 : 5;
    uint8_t *v = malloc(CQ_VALUE_HDR + 4 + hdr + size);
    if (!v)
        return NULL;
    size_t o = 0;
    v[o++] = 0x82;
    v[o++] = 0xa1;
    v[o++] = 't';
    v[o++] = 0xcf;
    memset(v + o, 0, 8);
    o += 8;
    v[o++] = 0xa3;
    memcpy(v + o, "pad", 3);
    o += 3;
    if (hdr == 2) {
        v[o++] = 0xc4;
        v[o++] = (uint8_t)size;
    } else if (hdr == 3) {
        v[o++] = 0xc5;
        v[o++] = (uint8_t)(size >> 8);
        v[o++] = (uint8_t)size;
    } else {
        v[o++] = 0xc6;
        for (int i = 3; i >= 0; i--)
            v[o++] = (uint8_t)(size >> (8 * i));
    }
    memset(v + o, 'x', size);
    *len = o + size;
    return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void sleep_until_ns(uint64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull),
                          .tv_nsec = (long)(t % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* Puts at the writer's share of the rate: the i-th put is due at start +
 * offset + i * interval; a writer that fell behind sends at once. */
static void *writer_main(void *arg)
{
    cq_writer *w = arg;
    uint64_t keys = w->cfg->keyspace ? w->cfg->keyspace : CQ_DEFAULT_KEYS;
    for (uint64_t i = 0;; i++) {
        uint64_t due = w->start_ns + w->offset_ns + i * w->interval_ns;
        if (due >= w->end_ns)
            break;
        sleep_until_ns(due);
        char key[32];
        snprintf(key, sizeof(key), "key:%012" PRIu64, rnd(&w->rng) % keys);
        put_be64(w->value + 4, bench_now_ns());
        int rc = agate_put(w->cl, w->cfg->region, key, strlen(key), w->value, w->vlen);
        w->sent++;
        if (rc == 0) {
            atomic_fetch_add(&w->acked, 1);
        } else {
            if (!w->failed)
                snprintf(w->errmsg, sizeof(w->errmsg), "%s", agate_errmsg(w->cl));
            w->failed++;
        }
    }
    return NULL;
}

static void on_event(agate_cq *cq, const agate_cq_event *ev, void *arg)
{
    (void)cq;
    cq_sink *s = arg;
    uint64_t now = bench_now_ns();
    if (ev->op != AGATE_CQ_CREATE && ev->op != AGATE_CQ_UPDATE)
        return;
    const uint8_t *v = ev->value;
    if (ev->vlen < CQ_VALUE_HDR || v[0] != 0x82 || v[1] != 0xa1 || v[2] != 't' || v[3] != 0xcf) {
        s->foreign++;
        return;
    }
    uint64_t t = get_be64(v + 4);
    hist_record(&s->h, now > t ? now - t : 0);
    s->events++;
    s->last_ns = now;
}

static double ms(uint64_t ns) { return (double)ns / 1e6; }

static void report(const bench_config *cfg, const cq_writer *ws, int nw, const cq_sink *s,
                   const agate_cq_stats *st, double put_secs, double rate, const char *query,
                   const char *region_desc, const char *target_desc)
{
    uint64_t sent = 0, acked = 0, failed = 0;
    const char *err = NULL;
    for (int i = 0; i < nw; i++) {
        sent += ws[i].sent;
        acked += atomic_load(&ws[i].acked);
        failed += ws[i].failed;
        if (!err && ws[i].failed)
            err = ws[i].errmsg;
    }
    const hist *h = &s->h;
    double eps = put_secs > 0 ? (double)s->events / put_secs : 0;
    if (cfg->csv) {
        printf("\"test\",\"puts_per_s\",\"events_per_s\",\"avg_latency_ms\",\"min_latency_ms\","
               "\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\","
               "\"events\",\"acknowledged_puts\"\n");
        printf("\"CQ\",\"%.2f\",\"%.2f\",\"%.3f\",\"%.3f\",\"%.3f\",\"%.3f\",\"%.3f\",\"%.3f\","
               "\"%" PRIu64 "\",\"%" PRIu64 "\"\n",
               put_secs > 0 ? (double)acked / put_secs : 0, eps, hist_mean(h) / 1e6, ms(h->min),
               ms(hist_percentile(h, 50)), ms(hist_percentile(h, 95)),
               ms(hist_percentile(h, 99)), ms(h->max), s->events, acked);
        return;
    }
    if (cfg->quiet) {
        printf("CQ: %.2f events per second, p50=%.3f p99=%.3f max=%.3f msec\n", eps,
               ms(hist_percentile(h, 50)), ms(hist_percentile(h, 99)), ms(h->max));
        return;
    }
    printf("====== CQ ======\n");
    printf("  %" PRIu64 " puts in %.2f seconds (%.0f per second; target %.0f), %" PRIu64
           " acknowledged, %" PRIu64 " failed%s%s\n",
           sent, put_secs, put_secs > 0 ? (double)sent / put_secs : 0, rate, acked, failed,
           err ? ": " : "", err ? err : "");
    printf("  %d writer connections, synchronous puts\n", nw);
    printf("  %zu bytes payload (+ the 12-byte timestamp field)\n", cfg->data_size);
    printf("  key space: %" PRIu64 " random keys\n",
           cfg->keyspace ? cfg->keyspace : (uint64_t)CQ_DEFAULT_KEYS);
    printf("  region: %s\n", region_desc);
    if (cfg->cluster)
        printf("  cluster: through %s\n", target_desc);
    printf("  continuous query: %s\n", query);
    printf("  events delivered: %" PRIu64 " (%.2f per second); missing %" PRId64 "; gaps %" PRIu64
           "\n",
           s->events, eps, (int64_t)acked - (int64_t)s->events, st->gaps);
    printf("  subscriptions: %u live, %" PRIu64 " registrations, %" PRIu64
           " closed by a member (too slow, stopping), %" PRIu64 " broken; %" PRIu64
           " replays, %" PRIu64 " replayed duplicates dropped\n",
           st->members, st->registrations, st->closed_by_member, st->reconnects, st->replays,
           st->duplicates);
    printf("\n");
    if (h->count == 0) {
        printf("No events.\n\n");
        return;
    }
    printf("Latency from the put's send to the CQ callback:\n");
    bench_print_percentiles(h);
    bench_print_summary(h, "events", eps, "events");
}

int bench_cq_run(const bench_config *cfg, bench_conn *conns, size_t nconns, const char *servers,
                 const char *region_desc, const char *target_desc)
{
    double rate = cfg->rate > 0 ? cfg->rate : CQ_DEFAULT_RATE;
    double duration = cfg->duration > 0 ? cfg->duration : BENCH_QUERY_DURATION;
    char query[300];
    snprintf(query, sizeof(query), "SELECT * FROM /%s o WHERE o.t > 0", cfg->region);

    agate_client *cl = NULL;
    int rc = bench_open(cfg, servers, &cl);
    cq_sink *sink = calloc(1, sizeof(*sink));
    cq_writer *ws = calloc(nconns, sizeof(*ws));
    if (rc < 0 || !sink || !ws) {
        fprintf(stderr, "agate-bench: %s\n", cl ? agate_errmsg(cl) : "out of memory");
        agate_client_free(cl);
        free(sink);
        free(ws);
        return 1;
    }
    hist_init(&sink->h);
    agate_cq *cq = NULL;
    rc = agate_cq_open(cl, "agate-bench", query, NULL, 0, 0, on_event, sink, &cq);
    if (rc < 0) {
        fprintf(stderr, "agate-bench: cannot open the continuous query: %s\n", agate_errmsg(cl));
        agate_client_free(cl);
        free(sink);
        free(ws);
        return 1;
    }

    int nw = (int)nconns, started = 0, status = 0;
    uint64_t start = bench_now_ns() + 100000000ull; /* 100 ms to start the threads */
    uint64_t end = start + (uint64_t)(duration * 1e9);
    uint64_t interval = (uint64_t)((double)nw * 1e9 / rate);
    for (int i = 0; i < nw; i++) {
        cq_writer *w = &ws[i];
        w->cfg = cfg;
        w->cl = conns[i].cl;
        w->start_ns = start;
        w->end_ns = end;
        w->interval_ns = interval ? interval : 1;
        w->offset_ns = w->interval_ns * (uint64_t)i / (uint64_t)nw; /* spread the writers */
        w->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)i * 0xbf58476d1ce4e5b9ull) ^ bench_now_ns();
        w->value = make_cq_value(cfg->data_size, &w->vlen);
        if (!w->value || pthread_create(&w->th, NULL, writer_main, w)) {
            fprintf(stderr, "agate-bench: cannot start writer %d\n", i);
            status = 1;
            break;
        }
        started++;
    }
    /* the callback runs here while the writers put; then drain */
    uint64_t quiet_since = 0;
    for (;;) {
        rc = agate_cq_wait(cq, 100);
        if (rc < 0) {
            fprintf(stderr, "agate-bench: the continuous query ended: %s\n", agate_cq_errmsg(cq));
            status = 1;
            break;
        }
        uint64_t now = bench_now_ns();
        if (now < end + 200000000ull || status)
            continue;
        uint64_t acked = 0;
        for (int i = 0; i < started; i++)
            acked += atomic_load(&ws[i].acked);
        if (rc > 0)
            quiet_since = now;
        else if (!quiet_since)
            quiet_since = now;
        if (sink->events >= acked && now > end + 1000000000ull)
            break;
        if (now - quiet_since > CQ_DRAIN_QUIET_NS)
            break;
    }
    for (int i = 0; i < started; i++)
        pthread_join(ws[i].th, NULL);
    /* what arrived while joining */
    if (!status)
        agate_cq_wait(cq, 500);
    agate_cq_stats st;
    agate_cq_stats_get(cq, &st);
    if (!status)
        report(cfg, ws, started, sink, &st, (double)(end - start) / 1e9, rate, query, region_desc,
               target_desc);
    fflush(stdout);
    agate_cq_close(cq);
    agate_client_free(cl);
    for (int i = 0; i < nw; i++)
        free(ws[i].value);
    free(ws);
    free(sink);
    return status;
}
