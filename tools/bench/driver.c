/* driver.c - runs one test: every connection keeps a batch of P requests
 * in flight, as redis-benchmark does (it writes P commands, reads P replies,
 * then writes the next P). Each thread drives its share of the connections
 * from its own epoll loop with the library's non-blocking API
 * (agate_*_async, agate_fd, agate_wants_write, agate_process).
 *
 * With --locator every connection is a cluster client (agate_connect_locator):
 * its requests go straight to the members holding the keys' primaries, and
 * agate_fd is the client's epoll set over those member connections.
 *
 * Latency of a request: from the moment its batch was queued to the first
 * reply handled in the agate_process call that completed it (one clock read
 * per process call, like redis-benchmark's "first read event"; a second one
 * when a batch queued during the call is answered in it, which only a
 * cluster client's call over several members can do). Nothing is
 * allocated per request: keys are formatted into a stack buffer that the
 * library copies into its output buffer. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: fast, good enough to spread keys uniformly. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* A uniform index in 0..n-1 from 64 random bits: the high half of r * n
 * (one multiplication instead of a division). */
static inline uint64_t rng_below(uint64_t *s, uint64_t n)
{
    uint64_t r = rng_next(s);
#ifdef __SIZEOF_INT128__
    return (uint64_t)(((unsigned __int128)r * n) >> 64);
#else
    return r % n;
#endif
}

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* "key:" and i as 12 decimal digits, zero-padded (redis-benchmark's
 * key:__rand_int__ with -r). i < 10^12: two independent 6-digit halves in
 * 32-bit arithmetic, two digits at a time. */
static inline void put6(char *p, uint32_t v)
{
    memcpy(p + 4, digit_pairs + 2 * (v % 100), 2);
    v /= 100;
    memcpy(p + 2, digit_pairs + 2 * (v % 100), 2);
    v /= 100;
    memcpy(p, digit_pairs + 2 * v, 2);
}

static inline void format_key(char *k, uint64_t i)
{
    memcpy(k, "key:", 4);
    put6(k + 4, (uint32_t)(i / 1000000u % 1000000u));
    put6(k + 10, (uint32_t)(i % 1000000u));
}

static void fail(bench_thread *th, const char *fmt, const char *detail)
{
    if (!th->errmsg[0])
        snprintf(th->errmsg, sizeof(th->errmsg), fmt, detail ? detail : "");
    th->errors++;
    atomic_store(&th->sh->failed, 1);
}

/* Hands out up to want requests. Returns how many (0: the test is fully
 * issued) and the index of the first in *base. */
static uint32_t claim(bench_shared *sh, uint32_t want, uint64_t *base)
{
    if (atomic_load_explicit(&sh->claimed, memory_order_relaxed) >= sh->n)
        return 0;
    uint64_t old = atomic_fetch_add_explicit(&sh->claimed, want, memory_order_relaxed);
    if (old >= sh->n)
        return 0;
    uint64_t left = sh->n - old;
    *base = old;
    return left < want ? (uint32_t)left : want;
}

static void on_reply(agate_client *c, const agate_reply *r, void *arg);

/* Queues the next batch on bc. Returns false when there is nothing left to
 * issue (bc is then done) or on failure. */
static bool issue_batch(bench_conn *bc)
{
    bench_thread *th = bc->th;
    bench_shared *sh = th->sh;
    const bench_config *cfg = sh->cfg;
    if (atomic_load_explicit(&sh->failed, memory_order_relaxed))
        return false;
    uint64_t base = 0;
    uint32_t k = claim(sh, (uint32_t)cfg->pipeline, &base);
    if (k == 0) {
        bc->done = true;
        th->active--;
        return false;
    }
    bc->t_start = bench_now_ns();
    bc->inflight = k;
    char key[BENCH_KEY_LEN];
    const char *kp = key;
    size_t klen = BENCH_KEY_LEN;
    if (cfg->keyspace == 0) {
        kp = BENCH_FIXED_KEY;
        klen = sizeof(BENCH_FIXED_KEY) - 1;
    }
    for (uint32_t i = 0; i < k; i++) {
        if (cfg->keyspace) {
            uint64_t idx = sh->sequential ? (base + i) % cfg->keyspace
                                          : rng_below(&th->rng, cfg->keyspace);
            format_key(key, idx);
        }
        int rc = sh->op == BENCH_PUT
                     ? agate_put_async(bc->cl, cfg->region, kp, klen, sh->value, sh->vlen,
                                       on_reply, bc)
                     : agate_get_async(bc->cl, cfg->region, kp, klen, on_reply, bc);
        if (rc < 0) {
            /* the requests already queued complete normally (or with the
             * connection's failure); only this one never existed */
            bc->inflight -= k - i;
            fail(th, "queueing a request: %s", agate_errmsg(bc->cl));
            return false;
        }
    }
    return true;
}

static void on_reply(agate_client *c, const agate_reply *r, void *arg)
{
    bench_conn *bc = arg;
    bench_thread *th = bc->th;
    if (!th)
        return; /* after a failed test: agate_client_free completing leftovers */
    /* A cluster client's agate_process goes over several member
     * connections: a batch queued by a callback on one of them may be sent,
     * and answered, on another within the same call, after th->now was
     * read. Such a reply gets its own clock reading. */
    if (!th->now_valid || th->now < bc->t_start) {
        th->now = bench_now_ns();
        th->now_valid = true;
    }
    if (r->status == 0 || r->status == AGATE_ENOTFOUND) {
        if (r->status == AGATE_ENOTFOUND) {
            th->misses++;
        } else if (th->sh->op == BENCH_GET && r->vlen != th->sh->vlen) {
            char tmp[96];
            snprintf(tmp, sizeof(tmp), "%zu bytes where %zu were expected", r->vlen,
                     th->sh->vlen);
            fail(th, "GET returned a value of %s (was the key space filled with another -d?)",
                 tmp);
        }
        hist_record(&th->h, th->now - bc->t_start);
        th->completed++;
    } else {
        char tmp[200];
        snprintf(tmp, sizeof(tmp), "%s (%s)", agate_strerror(r->status),
                 r->errmsg ? r->errmsg : "");
        fail(th, "request failed: %s", tmp);
    }
    th->t_last = th->now;
    if (--bc->inflight == 0)
        issue_batch(bc);
}

/* Keeps EPOLLOUT registered exactly while the library has output queued.
 * A cluster client's fd is its own epoll set (member sockets, retry timer),
 * which turns readable whenever agate_process has work, output included:
 * it is polled for reading only. */
static int sync_interest(int ep, bench_conn *bc)
{
    if (bc->th->sh->cfg->cluster)
        return 0;
    bool want = agate_wants_write(bc->cl) != 0;
    if (want == bc->out_armed)
        return 0;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = bc};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, bc->fd, &ev) < 0)
        return -1;
    bc->out_armed = want;
    return 0;
}

/* One agate_process step on bc; false on a fatal error. */
static bool step(bench_thread *th, int ep, bench_conn *bc)
{
    th->now_valid = false;
    int rc = agate_process(bc->cl);
    if (rc < 0) {
        fail(th, "connection: %s", agate_errmsg(bc->cl));
        return false;
    }
    /* A batch that completed inside the callbacks was re-issued there; one
     * that could not be (test over) leaves the connection idle. */
    if (sync_interest(ep, bc) < 0) {
        fail(th, "epoll_ctl: %s", strerror(errno));
        return false;
    }
    return true;
}

static void *thread_main(void *arg)
{
    bench_thread *th = arg;
    bench_shared *sh = th->sh;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        fail(th, "epoll_create1: %s", strerror(errno));
        return NULL;
    }
    for (size_t i = 0; i < th->nconns; i++) {
        bench_conn *bc = th->conns[i];
        bc->th = th;
        bc->inflight = 0;
        bc->done = false;
        bc->out_armed = false;
        bc->fd = agate_fd(bc->cl);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = bc};
        if (bc->fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, bc->fd, &ev) < 0) {
            fail(th, "connection %s is not open", "");
            close(ep);
            return NULL;
        }
    }
    th->active = th->nconns;
    for (size_t i = 0; i < th->nconns; i++) {
        bench_conn *bc = th->conns[i];
        if (issue_batch(bc) && !step(th, ep, bc))
            break;
    }

    uint64_t last_progress = bench_now_ns();
    uint64_t last_completed = th->completed;
    struct epoll_event evs[64];
    while (!atomic_load_explicit(&sh->failed, memory_order_relaxed)) {
        if (th->active == 0)
            break;
        int n = epoll_wait(ep, evs, 64, 200);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail(th, "epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++)
            if (!step(th, ep, evs[i].data.ptr))
                break;
        if (th->completed != last_completed) {
            last_completed = th->completed;
            last_progress = bench_now_ns();
        } else if (bench_now_ns() - last_progress >
                   (uint64_t)sh->cfg->timeout_ms * 1000000u) {
            char tmp[32];
            snprintf(tmp, sizeof(tmp), "%d", sh->cfg->timeout_ms);
            fail(th, "no reply for %s ms", tmp);
            break;
        }
    }
    for (size_t i = 0; i < th->nconns; i++)
        epoll_ctl(ep, EPOLL_CTL_DEL, th->conns[i]->fd, NULL);
    close(ep);
    return NULL;
}

int bench_run(const bench_config *cfg, bench_conn *conns, size_t nconns, bench_op op,
              uint64_t n, bool sequential, const uint8_t *value, size_t vlen,
              bench_result *res)
{
    size_t nth = (size_t)cfg->threads;
    if (nth > nconns)
        nth = nconns;
    bench_shared sh = {.cfg = cfg, .op = op, .sequential = sequential, .n = n,
                       .value = value, .vlen = vlen};
    atomic_init(&sh.claimed, 0);
    atomic_init(&sh.failed, 0);

    bench_thread *ths = calloc(nth, sizeof(*ths));
    bench_conn **lists = calloc(nconns, sizeof(*lists));
    pthread_t *tids = calloc(nth, sizeof(*tids));
    if (!ths || !lists || !tids) {
        fprintf(stderr, "agate-bench: out of memory\n");
        free(ths);
        free(lists);
        free(tids);
        return -1;
    }
    /* connections are dealt out round-robin; each thread gets a contiguous
     * slice of lists */
    size_t pos = 0;
    for (size_t t = 0; t < nth; t++) {
        ths[t].sh = &sh;
        ths[t].conns = lists + pos;
        for (size_t i = t; i < nconns; i += nth)
            lists[pos++] = &conns[i];
        ths[t].nconns = (size_t)(lists + pos - ths[t].conns);
        ths[t].rng = 0x9E3779B97F4A7C15ULL * (t + 1) ^ bench_now_ns();
        if (ths[t].rng == 0)
            ths[t].rng = 1;
        hist_init(&ths[t].h);
    }

    uint64_t t0 = bench_now_ns();
    size_t started = 0;
    int rc = 0;
    if (nth == 1) {
        thread_main(&ths[0]);
    } else {
        for (; started < nth; started++)
            if (pthread_create(&tids[started], NULL, thread_main, &ths[started]) != 0) {
                fprintf(stderr, "agate-bench: cannot start a thread\n");
                atomic_store(&sh.failed, 1);
                rc = -1;
                break;
            }
        for (size_t t = 0; t < started; t++)
            pthread_join(tids[t], NULL);
    }

    /* requests left in flight by a failure complete later (in
     * agate_client_free) without a thread to account them to */
    for (size_t i = 0; i < nconns; i++)
        conns[i].th = NULL;

    hist_init(&res->h);
    res->op = op;
    res->requests = 0;
    res->misses = 0;
    res->errors = 0;
    uint64_t t_end = t0;
    for (size_t t = 0; t < nth; t++) {
        hist_merge(&res->h, &ths[t].h);
        res->requests += ths[t].completed;
        res->misses += ths[t].misses;
        res->errors += ths[t].errors;
        if (ths[t].t_last > t_end)
            t_end = ths[t].t_last;
        if (ths[t].errmsg[0] && rc == 0) {
            fprintf(stderr, "agate-bench: %s\n", ths[t].errmsg);
            rc = -1;
        }
    }
    if (rc == 0 && atomic_load(&sh.failed))
        rc = -1;
    res->seconds = (double)(t_end - t0) / 1e9;
    free(ths);
    free(lists);
    free(tids);
    return rc;
}
