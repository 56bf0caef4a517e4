/* Continuous queries on the wire, against a real stand-alone agated
 * (docs/protocol.md "Continuous queries"): CQ_OPEN's errors, the
 * CREATE/UPDATE/DESTROY/CLEAR transitions, initial results against heads,
 * replay, per-key order under two writers, CQ_CLOSE and CQ_LIST, a
 * subscriber that never reads, and a destroyed region. */
#include <check.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/proto.h"
#include "tu.h"
#include "tu_server.h"
#include "tu_wire.h"

static tu_server srv;

static void start_with(const char *const *args)
{
    memset(&srv, 0, sizeof(srv));
    ck_assert_msg(tu_server_start(&srv, "cq", args) == 0, "cannot start agated");
}

static void setup_default(void) { start_with(NULL); }

static const char *const small_journal[] = {"--journal-bytes-per-bucket=65536", NULL};
static void setup_small(void) { start_with(small_journal); }

static const char *const big_journal[] = {"--journal-bytes-per-bucket=16777216", NULL};
static void setup_big(void) { start_with(big_journal); }

static void stop_shared(void)
{
    char why[512];
    bool clean = tu_server_sanitizer_clean(&srv, why, sizeof(why));
    int rc = tu_server_stop(&srv, 15000 * tu_timeout_scale());
    if (rc != 0)
        tu_fail_outside("agated (%s) did not stop cleanly after its test case", srv.name);
    if (!clean)
        tu_fail_outside("agated (%s) reported: %s", srv.name, why);
    tu_server_cleanup(&srv, rc != 0 || !clean);
}

/* ---- a small subscriber ---- */

typedef struct ev {
    uint64_t cq;
    uint32_t kind; /* PUSH_CQ_* */
    uint64_t bucket, seq, op, status;
    char key[64];
    bool value_nil;
    int64_t v, w;  /* the value's "v" and "w" fields */
    uint64_t nprogress;
} ev;

typedef struct evlog {
    ev *v;
    size_t n, cap;
} evlog;

static void evlog_free(evlog *l)
{
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int64_t field(const msgpack_object *map, const char *k)
{
    const msgpack_object *o = map->type == MSGPACK_OBJECT_MAP ? tw_map_get(map, k) : NULL;
    if (!o)
        return -1;
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)o->via.u64 : o->via.i64;
}

static void note_push(evlog *l, const msgpack_object *a, uint32_t n)
{
    ck_assert_uint_ge(n, 3);
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->v = realloc(l->v, l->cap * sizeof(ev));
        ck_assert_ptr_nonnull(l->v);
    }
    ev *e = &l->v[l->n++];
    memset(e, 0, sizeof(*e));
    e->cq = a[1].via.u64;
    e->kind = (uint32_t)a[2].via.u64;
    switch (e->kind) {
    case PUSH_CQ_EVENT:
        ck_assert_uint_eq(n, 8);
        e->bucket = a[3].via.u64;
        e->seq = a[4].via.u64;
        e->op = a[5].via.u64;
        if (a[6].type == MSGPACK_OBJECT_STR || a[6].type == MSGPACK_OBJECT_BIN)
            snprintf(e->key, sizeof e->key, "%.*s", (int)a[6].via.str.size, a[6].via.str.ptr);
        e->value_nil = a[7].type == MSGPACK_OBJECT_NIL;
        e->v = field(&a[7], "v");
        e->w = field(&a[7], "w");
        break;
    case PUSH_CQ_REPLAY:
        ck_assert_uint_eq(n, 5);
        e->bucket = a[3].via.u64;
        e->seq = a[4].via.u64;
        break;
    case PUSH_CQ_PROGRESS:
        ck_assert_uint_eq(n, 4);
        ck_assert_int_eq(a[3].type, MSGPACK_OBJECT_ARRAY);
        e->nprogress = a[3].via.array.size;
        break;
    case PUSH_CQ_CLOSED:
        ck_assert_uint_eq(n, 5);
        e->status = a[3].via.u64;
        snprintf(e->key, sizeof e->key, "%.*s", (int)a[4].via.str.size, a[4].via.str.ptr);
        break;
    default:
        ck_abort_msg("unexpected push kind %u", e->kind);
    }
}

/* Reads one message: a push goes to l (returns 2), a response into r
 * (returns 1). 0 at EOF, -1 on timeout. */
static int read_one(int fd, int timeout_ms, evlog *l, tw_resp *r)
{
    uint8_t *body;
    uint32_t len;
    int rc = tw_read_frame(fd, timeout_ms, &body, &len);
    if (rc <= 0)
        return rc;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(msgpack_unpack_next(&u, (const char *)body, len, NULL), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
    const msgpack_object *a = u.data.via.array.ptr;
    uint32_t n = u.data.via.array.size;
    if (a[0].via.u64 == MSG_PUSH) {
        note_push(l, a, n);
        msgpack_unpacked_destroy(&u);
        free(body);
        return 2;
    }
    msgpack_unpacked_destroy(&u);
    memset(r, 0, sizeof(*r));
    msgpack_unpacked_init(&r->u);
    msgpack_unpack_next(&r->u, (const char *)body, len, NULL);
    r->raw = body;
    r->rawlen = len;
    const msgpack_object *ra = r->u.data.via.array.ptr;
    r->id = ra[1].via.u64;
    r->status = (int)ra[2].via.u64;
    r->nresults = r->u.data.via.array.size - 3;
    r->results = (msgpack_object *)ra + 3;
    if (r->status >= 10 && r->nresults == 1 && ra[3].type == MSGPACK_OBJECT_STR)
        snprintf(r->errmsg, sizeof r->errmsg, "%.*s", (int)ra[3].via.str.size, ra[3].via.str.ptr);
    return 1;
}

/* Sends m and returns its response, keeping the pushes that come first. */
static void call(int fd, tw_msg *m, evlog *l, tw_resp *r)
{
    ck_assert_int_eq(tw_msg_send(fd, m), 0);
    tw_msg_free(m);
    for (;;) {
        int rc = read_one(fd, tw_timeout(), l, r);
        ck_assert_msg(rc > 0, "no response (rc %d)", rc);
        if (rc == 1)
            return;
    }
}

static size_t count_kind(const evlog *l, uint32_t kind)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += l->v[i].kind == kind;
    return n;
}

/* Reads pushes until l holds want of kind, or timeout. */
static void wait_kind(int fd, evlog *l, uint32_t kind, size_t want, int timeout_ms)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    while (count_kind(l, kind) < want) {
        int64_t left = deadline - tu_now_ms();
        ck_assert_msg(left > 0, "waited for %zu pushes of kind %u, have %zu", want, kind,
                      count_kind(l, kind));
        tw_resp r;
        int rc = read_one(fd, (int)left, l, &r);
        ck_assert_msg(rc != 0, "connection closed");
        if (rc == 1)
            ck_abort_msg("unexpected response %d", r.status);
    }
}

/* Reads whatever arrives within ms. */
static void drain(int fd, evlog *l, int ms)
{
    tw_resp r;
    int rc;
    while ((rc = read_one(fd, ms, l, &r)) == 2)
        ;
    ck_assert_msg(rc != 1, "unexpected response");
}

static void cq_open_req(tw_msg *m, uint64_t id, const char *name, const char *query,
                        bool initial, bool replay)
{
    tw_req(m, id, OP_CQ_OPEN, 4);
    tw_pack_cstr(&m->pk, name);
    tw_pack_cstr(&m->pk, query);
    msgpack_pack_nil(&m->pk);
    msgpack_pack_map(&m->pk, 2);
    tw_pack_cstr(&m->pk, "initial");
    initial ? msgpack_pack_true(&m->pk) : msgpack_pack_false(&m->pk);
    tw_pack_cstr(&m->pk, "replay");
    replay ? msgpack_pack_true(&m->pk) : msgpack_pack_false(&m->pk);
}

/* Opens a CQ; asserts OK; returns its id (r kept for the caller: free it). */
static uint64_t cq_open(int fd, const char *name, const char *query, bool initial, bool replay,
                        evlog *l, tw_resp *r)
{
    tw_msg m;
    cq_open_req(&m, 7, name, query, initial, replay);
    call(fd, &m, l, r);
    ck_assert_msg(r->status == ST_OK, "CQ_OPEN: %d %s", r->status, r->errmsg);
    ck_assert_uint_eq(r->nresults, 3);
    return r->results[0].via.u64;
}

static int cq_open_status(int fd, const char *name, const char *query, char *msg, size_t cap)
{
    tw_msg m;
    tw_resp r;
    evlog l = {0};
    cq_open_req(&m, 8, name, query, false, false);
    call(fd, &m, &l, &r);
    int st = r.status;
    snprintf(msg, cap, "%s", r.errmsg);
    tw_resp_free(&r);
    evlog_free(&l);
    return st;
}

/* {"v": v, "w": w} */
static size_t pack_vw(uint8_t *out, size_t cap, int64_t v, int64_t w)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    tw_pack_cstr(&pk, "v");
    msgpack_pack_int64(&pk, v);
    tw_pack_cstr(&pk, "w");
    msgpack_pack_int64(&pk, w);
    ck_assert_uint_le(sb.size, cap);
    memcpy(out, sb.data, sb.size);
    size_t n = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return n;
}

static void put_v(int fd, const char *region, const char *key, int64_t v)
{
    uint8_t b[64];
    size_t n = pack_vw(b, sizeof b, v, 0);
    ck_assert_int_eq(tw_put_raw(fd, region, key, b, n), ST_OK);
}

static int simple(int fd, uint32_t op, const char *region, const char *key)
{
    tw_msg m;
    tw_resp r;
    tw_req(&m, 9, op, key ? 2 : 1);
    tw_pack_cstr(&m.pk, region);
    if (key)
        tw_pack_cstr(&m.pk, key);
    tw_call(fd, &m, &r);
    tw_msg_free(&m);
    int st = r.status;
    tw_resp_free(&r);
    return st;
}

/* ---- tests ---- */

START_TEST(open_errors)
{
    int fd = tw_open(srv.port);
    tw_create_region(fd, "e");
    char msg[512];
    ck_assert_int_eq(cq_open_status(fd, "a", "SELECT * FROM /e WHERE v >", msg, sizeof msg),
                     ST_BAD_ARGUMENT);
    ck_assert_msg(strstr(msg, "query: at "), "%s", msg);
    ck_assert_int_eq(cq_open_status(fd, "a", "SELECT COUNT(*) FROM /e", msg, sizeof msg),
                     ST_BAD_ARGUMENT);
    ck_assert_int_eq(cq_open_status(fd, "a", "SELECT v FROM /e WHERE v > 1", msg, sizeof msg),
                     ST_BAD_ARGUMENT);
    ck_assert_int_eq(cq_open_status(fd, "a", "SELECT * FROM /e ORDER BY v", msg, sizeof msg),
                     ST_BAD_ARGUMENT);
    ck_assert_int_eq(cq_open_status(fd, "a", "SELECT * FROM /e LIMIT 3", msg, sizeof msg),
                     ST_BAD_ARGUMENT);
    ck_assert_int_eq(cq_open_status(fd, "a", "SELECT * FROM /nope WHERE v > 1", msg, sizeof msg),
                     ST_UNKNOWN_REGION);
    ck_assert_int_eq(cq_open_status(fd, "a", "SELECT * FROM /e WHERE v > $1", msg, sizeof msg),
                     ST_BAD_ARGUMENT);
    ck_assert_msg(strstr(msg, "$1"), "%s", msg);
    ck_assert_int_eq(cq_open_status(fd, "", "SELECT * FROM /e", msg, sizeof msg), ST_BAD_ARGUMENT);
    /* bad options */
    tw_msg m;
    tw_resp r;
    evlog l = {0};
    tw_req(&m, 3, OP_CQ_OPEN, 4);
    tw_pack_cstr(&m.pk, "x");
    tw_pack_cstr(&m.pk, "SELECT * FROM /e");
    msgpack_pack_nil(&m.pk);
    msgpack_pack_map(&m.pk, 1);
    tw_pack_cstr(&m.pk, "initail");
    msgpack_pack_true(&m.pk);
    call(fd, &m, &l, &r);
    ck_assert_int_eq(r.status, ST_BAD_ARGUMENT);
    tw_resp_free(&r);
    /* a duplicate name on one connection; the same name on another is fine */
    cq_open(fd, "dup", "SELECT * FROM /e WHERE v > 1", false, false, &l, &r);
    tw_resp_free(&r);
    ck_assert_int_eq(cq_open_status(fd, "dup", "SELECT * FROM /e", msg, sizeof msg),
                     ST_BAD_ARGUMENT);
    int fd2 = tw_open(srv.port);
    cq_open(fd2, "dup", "SELECT * FROM /e", false, false, &l, &r);
    tw_resp_free(&r);
    evlog_free(&l);
    close(fd2);
    close(fd);
    tw_assert_serves(srv.port);
}
END_TEST

START_TEST(transitions)
{
    int w = tw_open(srv.port);
    tw_create_region(w, "t");
    int s = tw_open(srv.port);
    evlog l = {0};
    tw_resp r;
    uint64_t id = cq_open(s, "big", "SELECT * FROM /t WHERE v > 10", false, false, &l, &r);
    ck_assert_uint_eq(r.results[1].via.array.size, 113); /* every bucket is served here */
    tw_resp_free(&r);
    put_v(w, "t", "k1", 5);   /* no match -> no match: nothing */
    put_v(w, "t", "k1", 20);  /* CREATE */
    put_v(w, "t", "k1", 30);  /* UPDATE */
    put_v(w, "t", "k1", 1);   /* DESTROY */
    put_v(w, "t", "k1", 40);  /* CREATE */
    ck_assert_int_eq(simple(w, OP_REMOVE, "t", "k1"), ST_OK); /* DESTROY */
    ck_assert_int_eq(simple(w, OP_REMOVE, "t", "k1"), ST_NOT_FOUND);
    put_v(w, "t", "k2", 3);   /* nothing */
    ck_assert_int_eq(simple(w, OP_REMOVE, "t", "k2"), ST_OK); /* nothing: it never matched */
    put_v(w, "t", "k3", 50);  /* CREATE */
    ck_assert_int_eq(simple(w, OP_CLEAR, "t", NULL), ST_OK); /* CLEAR, one bucket held k3 */
    wait_kind(s, &l, PUSH_CQ_EVENT, 7, tw_timeout());
    static const uint64_t want[] = {1, 2, 3, 1, 3, 1, 4};
    static const int64_t vals[] = {20, 30, -1, 40, -1, 50, -1};
    size_t k = 0;
    uint64_t last_seq = 0, k1_bucket = 0;
    for (size_t i = 0; i < l.n; i++) {
        const ev *e = &l.v[i];
        if (e->kind != PUSH_CQ_EVENT)
            continue;
        ck_assert_uint_eq(e->cq, id);
        ck_assert_msg(e->op == want[k], "event %zu: op %llu, want %llu", k,
                      (unsigned long long)e->op, (unsigned long long)want[k]);
        if (vals[k] >= 0)
            ck_assert_int_eq(e->v, vals[k]);
        else
            ck_assert(e->value_nil);
        if (k < 4) {
            ck_assert_str_eq(e->key, "k1");
            if (k)
                ck_assert_uint_gt(e->seq, last_seq); /* one key: its writes' order */
            last_seq = e->seq;
            k1_bucket = e->bucket;
        }
        k++;
    }
    ck_assert_uint_eq(k1_bucket, l.v[0].bucket);
    /* writes that match nothing still move the cursor: PROGRESS within ~200 ms */
    put_v(w, "t", "k4", 1);
    wait_kind(s, &l, PUSH_CQ_PROGRESS, 1, tw_timeout());
    evlog_free(&l);
    close(s);
    close(w);
}
END_TEST

START_TEST(initial_and_heads)
{
    int w = tw_open(srv.port);
    tw_create_region(w, "i");
    char key[32];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "k%03d", i);
        put_v(w, "i", key, i);
    }
    int s = tw_open(srv.port);
    evlog l = {0};
    tw_resp r;
    cq_open(s, "half", "SELECT * FROM /i WHERE v >= 100", true, false, &l, &r);
    const msgpack_object *heads = &r.results[1], *init = &r.results[2];
    ck_assert_uint_eq(heads->via.array.size, 113);
    ck_assert_uint_eq(init->via.array.size, 100);
    uint64_t head[113] = {0};
    for (uint32_t i = 0; i < heads->via.array.size; i++) {
        const msgpack_object *p = heads->via.array.ptr[i].via.array.ptr;
        head[p[0].via.u64] = p[1].via.u64;
    }
    for (uint32_t i = 0; i < init->via.array.size; i++) {
        const msgpack_object *kv = init->via.array.ptr[i].via.array.ptr;
        ck_assert_int_ge(field(&kv[1], "v"), 100);
    }
    tw_resp_free(&r);
    /* events after the heads only: rewriting k150 is an UPDATE, k050 a CREATE */
    put_v(w, "i", "k150", 151);
    put_v(w, "i", "k050", 500);
    wait_kind(s, &l, PUSH_CQ_EVENT, 2, tw_timeout());
    drain(s, &l, 300);
    ck_assert_uint_eq(count_kind(&l, PUSH_CQ_EVENT), 2);
    for (size_t i = 0; i < l.n; i++)
        if (l.v[i].kind == PUSH_CQ_EVENT) {
            ck_assert_uint_gt(l.v[i].seq, head[l.v[i].bucket]);
            ck_assert_uint_eq(l.v[i].op, strcmp(l.v[i].key, "k150") == 0 ? 2 : 1);
        }
    /* with replay: every bucket's REPLAY, then the whole journal again */
    evlog l2 = {0};
    cq_open(s, "again", "SELECT * FROM /i WHERE v >= 100", false, true, &l2, &r);
    uint64_t id2 = r.results[0].via.u64;
    tw_resp_free(&r);
    evlog l3 = {0};
    wait_kind(s, &l3, PUSH_CQ_REPLAY, 113, tw_timeout());
    drain(s, &l3, 300);
    size_t creates = 0;
    for (size_t i = 0; i < l3.n; i++)
        if (l3.v[i].kind == PUSH_CQ_EVENT && l3.v[i].cq == id2)
            creates++;
    /* the journal records from the first CQ_OPEN on the region ("half"):
     * the replay holds the two rewrites, not the puts made before */
    ck_assert_uint_eq(creates, 2);
    evlog_free(&l);
    evlog_free(&l2);
    evlog_free(&l3);
    close(s);
    close(w);
}
END_TEST

#define ORDER_WRITES 5000
#define ORDER_KEYS 50

/* Pipelines ORDER_WRITES puts from writer wid over ORDER_KEYS keys. */
static void write_many(int fd, int wid)
{
    for (int i = 0; i < ORDER_WRITES; i++) {
        tw_msg m;
        char key[16];
        uint8_t v[64];
        snprintf(key, sizeof key, "o%02d", i % ORDER_KEYS);
        size_t n = pack_vw(v, sizeof v, i, wid);
        /* the value is raw MessagePack: build the frame by hand */
        tw_msg_init(&m);
        msgpack_pack_array(&m.pk, 6);
        msgpack_pack_uint32(&m.pk, 0);
        msgpack_pack_uint64(&m.pk, (uint64_t)i + 1);
        msgpack_pack_uint32(&m.pk, OP_PUT);
        tw_pack_cstr(&m.pk, "o");
        tw_pack_cstr(&m.pk, key);
        msgpack_sbuffer_write(&m.sb, (const char *)v, n);
        ck_assert_int_eq(tw_msg_send(fd, &m), 0);
        tw_msg_free(&m);
    }
}

START_TEST(order_two_writers)
{
    int a = tw_open(srv.port), b = tw_open(srv.port);
    tw_create_region(a, "o");
    int s = tw_open(srv.port);
    evlog l = {0};
    tw_resp r;
    cq_open(s, "all", "SELECT * FROM /o", false, false, &l, &r);
    tw_resp_free(&r);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        write_many(b, 2);
        _exit(0);
    }
    write_many(a, 1);
    wait_kind(s, &l, PUSH_CQ_EVENT, 2 * ORDER_WRITES, 60000 * tu_timeout_scale());
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* each writer's writes to a key arrive in its order; seqs grow per bucket */
    int64_t lastv[3][ORDER_KEYS];
    memset(lastv, 0xff, sizeof lastv);
    uint64_t lastseq[113] = {0};
    size_t creates = 0;
    for (size_t i = 0; i < l.n; i++) {
        const ev *e = &l.v[i];
        if (e->kind != PUSH_CQ_EVENT)
            continue;
        int k = atoi(e->key + 1);
        ck_assert(e->w == 1 || e->w == 2);
        ck_assert_msg(e->v > lastv[e->w][k], "key %s writer %lld: %lld after %lld", e->key,
                      (long long)e->w, (long long)e->v, (long long)lastv[e->w][k]);
        lastv[e->w][k] = e->v;
        ck_assert_uint_gt(e->seq, lastseq[e->bucket]);
        lastseq[e->bucket] = e->seq;
        creates += e->op == 1;
    }
    ck_assert_uint_eq(creates, ORDER_KEYS); /* first write of each key; the rest UPDATEs */
    drain(s, &l, 300);
    ck_assert_uint_eq(count_kind(&l, PUSH_CQ_EVENT), 2 * ORDER_WRITES);
    /* drain the writers' replies */
    tw_resp rr;
    for (int i = 0; i < ORDER_WRITES; i++) {
        ck_assert_int_eq(tw_recv(a, &rr, tw_timeout()), 1);
        tw_resp_free(&rr);
    }
    evlog_free(&l);
    close(s);
    close(a);
    close(b);
}
END_TEST

static const msgpack_object *list_find(const tw_resp *r, const char *name)
{
    const msgpack_object *arr = &r->results[0];
    for (uint32_t i = 0; i < arr->via.array.size; i++)
        if (tw_obj_is_str(tw_map_get(&arr->via.array.ptr[i], "name"), name))
            return &arr->via.array.ptr[i];
    return NULL;
}

static void cq_list(int fd, tw_resp *r)
{
    tw_msg m;
    tw_req(&m, 5, OP_CQ_LIST, 0);
    tw_call(fd, &m, r);
    tw_msg_free(&m);
    ck_assert_int_eq(r->status, ST_OK);
}

START_TEST(close_and_list)
{
    int s = tw_open(srv.port), o = tw_open(srv.port);
    tw_create_region(o, "c");
    evlog l = {0};
    tw_resp r;
    uint64_t id1 = cq_open(s, "one", "SELECT * FROM /c WHERE v > 1", false, false, &l, &r);
    tw_resp_free(&r);
    uint64_t id2 = cq_open(s, "two", "SELECT * FROM /c c WHERE c.v < 0", false, false, &l, &r);
    tw_resp_free(&r);
    ck_assert_uint_ne(id1, id2);
    put_v(o, "c", "x", 5);
    wait_kind(s, &l, PUSH_CQ_EVENT, 1, tw_timeout());
    cq_list(o, &r);
    const msgpack_object *one = list_find(&r, "one"), *two = list_find(&r, "two");
    ck_assert_ptr_nonnull(one);
    ck_assert_ptr_nonnull(two);
    ck_assert_int_eq(field(one, "id"), (int64_t)id1);
    ck_assert(tw_obj_is_str(tw_map_get(one, "region"), "c"));
    ck_assert(tw_obj_is_str(tw_map_get(one, "query"), "SELECT * FROM /c WHERE v > 1"));
    ck_assert(tw_obj_is_str(tw_map_get(one, "client"), "tests"));
    ck_assert_int_eq(field(one, "events"), 1);
    ck_assert_int_eq(field(two, "events"), 0);
    ck_assert_int_eq(field(one, "buckets"), 113);
    ck_assert_ptr_nonnull(tw_map_get(one, "peer"));
    ck_assert_ptr_nonnull(tw_map_get(one, "queued"));
    tw_resp_free(&r);
    /* CQ_CLOSE: only on the connection that opened it */
    tw_msg m;
    tw_req(&m, 11, OP_CQ_CLOSE, 1);
    msgpack_pack_uint64(&m.pk, id1);
    tw_call(o, &m, &r);
    tw_msg_free(&m);
    ck_assert_int_eq(r.status, ST_NOT_FOUND);
    tw_resp_free(&r);
    tw_req(&m, 12, OP_CQ_CLOSE, 1);
    msgpack_pack_uint64(&m.pk, id1);
    call(s, &m, &l, &r);
    ck_assert_int_eq(r.status, ST_OK);
    tw_resp_free(&r);
    tw_req(&m, 13, OP_CQ_CLOSE, 1);
    msgpack_pack_uint64(&m.pk, id1);
    call(s, &m, &l, &r);
    ck_assert_int_eq(r.status, ST_NOT_FOUND);
    tw_resp_free(&r);
    cq_list(o, &r);
    ck_assert_ptr_null(list_find(&r, "one"));
    ck_assert_ptr_nonnull(list_find(&r, "two"));
    tw_resp_free(&r);
    /* closing the connection closes its CQs */
    close(s);
    int64_t deadline = tu_now_ms() + tw_timeout();
    for (;;) {
        cq_list(o, &r);
        bool gone = list_find(&r, "two") == NULL;
        tw_resp_free(&r);
        if (gone)
            break;
        ck_assert_msg(tu_now_ms() < deadline, "CQ two outlived its connection");
        usleep(20000);
    }
    evlog_free(&l);
    close(o);
}
END_TEST

START_TEST(region_destroyed)
{
    int s = tw_open(srv.port), o = tw_open(srv.port);
    tw_create_region(o, "d");
    evlog l = {0};
    tw_resp r;
    uint64_t id = cq_open(s, "d", "SELECT * FROM /d", false, false, &l, &r);
    tw_resp_free(&r);
    ck_assert_int_eq(simple(o, OP_REGION_DESTROY, "d", NULL), ST_OK);
    wait_kind(s, &l, PUSH_CQ_CLOSED, 1, tw_timeout());
    const ev *e = &l.v[l.n - 1];
    ck_assert_uint_eq(e->cq, id);
    ck_assert_uint_eq(e->status, ST_UNKNOWN_REGION);
    evlog_free(&l);
    close(s);
    close(o);
    tw_assert_serves(srv.port);
}
END_TEST

/* A subscriber that never reads: the member stops producing for it at a
 * bound, then closes the CQ once the journal evicted what it had not sent,
 * instead of buffering without end. */
START_TEST(slow_subscriber_closed)
{
    int s = tw_connect_rcvbuf(srv.port, 4096);
    ck_assert_int_ge(s, 0);
    tw_hello(s);
    int o = tw_open(srv.port);
    tw_create_region(o, "slow");
    evlog l = {0};
    tw_resp r;
    uint64_t id = cq_open(s, "slow", "SELECT * FROM /slow", false, false, &l, &r);
    tw_resp_free(&r);
    /* 24 MiB of events on one key (one bucket), none read */
    static uint8_t big[8192 + 16];
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char *blob = calloc(1, 8192);
    memset(blob, 'x', 8191);
    msgpack_pack_map(&pk, 1);
    tw_pack_cstr(&pk, "b");
    tw_pack_cstr(&pk, blob);
    free(blob);
    memcpy(big, sb.data, sb.size);
    size_t blen = sb.size;
    msgpack_sbuffer_destroy(&sb);
    for (int i = 0; i < 3000; i++)
        ck_assert_int_eq(tw_put_raw(o, "slow", "hot", big, blen), ST_OK);
    /* the member is fine meanwhile, and its CQ list shows the CQ gone */
    int64_t deadline = tu_now_ms() + tw_timeout();
    for (;;) {
        cq_list(o, &r);
        bool gone = list_find(&r, "slow") == NULL;
        tw_resp_free(&r);
        if (gone)
            break;
        ck_assert_msg(tu_now_ms() < deadline, "the slow subscriber's CQ was not closed");
        usleep(20000);
    }
    /* now read: events, then PUSH_CQ_CLOSED, far fewer than were written */
    wait_kind(s, &l, PUSH_CQ_CLOSED, 1, 60000 * tu_timeout_scale());
    const ev *e = &l.v[l.n - 1];
    ck_assert_uint_eq(e->cq, id);
    ck_assert_uint_eq(e->status, ST_UNAVAILABLE);
    size_t events = count_kind(&l, PUSH_CQ_EVENT);
    ck_assert_uint_lt(events, 2000);
    evlog_free(&l);
    close(s);
    close(o);
    tw_assert_serves(srv.port);
}
END_TEST

START_TEST(params_given_or_not)
{
    int w = tw_open(srv.port), s = tw_open(srv.port);
    tw_create_region(w, "p");
    evlog l = {0};
    tw_resp r;
    tw_msg m;
    tw_req(&m, 21, OP_CQ_OPEN, 4);
    tw_pack_cstr(&m.pk, "param");
    tw_pack_cstr(&m.pk, "SELECT * FROM /p WHERE v > $1 AND w = $2");
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_int(&m.pk, 10);
    msgpack_pack_int(&m.pk, 0);
    msgpack_pack_nil(&m.pk);
    call(s, &m, &l, &r);
    ck_assert_msg(r.status == ST_OK, "%d %s", r.status, r.errmsg);
    uint64_t id = r.results[0].via.u64;
    tw_resp_free(&r);
    /* params must be an array (or nil) */
    tw_req(&m, 22, OP_CQ_OPEN, 3);
    tw_pack_cstr(&m.pk, "bad");
    tw_pack_cstr(&m.pk, "SELECT * FROM /p WHERE v > $1");
    msgpack_pack_int(&m.pk, 10);
    call(s, &m, &l, &r);
    ck_assert_int_eq(r.status, ST_BAD_REQUEST);
    tw_resp_free(&r);
    put_v(w, "p", "a", 5);
    put_v(w, "p", "b", 11);
    wait_kind(s, &l, PUSH_CQ_EVENT, 1, tw_timeout());
    drain(s, &l, 300);
    ck_assert_uint_eq(count_kind(&l, PUSH_CQ_EVENT), 1);
    for (size_t i = 0; i < l.n; i++)
        if (l.v[i].kind == PUSH_CQ_EVENT) {
            ck_assert_uint_eq(l.v[i].cq, id);
            ck_assert_str_eq(l.v[i].key, "b");
        }
    evlog_free(&l);
    close(s);
    close(w);
}
END_TEST

/* A member that stops tells its subscribers before it closes. */
START_TEST(shutdown_closes_cqs)
{
    tu_server own;
    memset(&own, 0, sizeof(own));
    ck_assert_int_eq(tu_server_start(&own, "cqstop", NULL), 0);
    int s = tw_open(own.port);
    tw_create_region(s, "x");
    evlog l = {0};
    tw_resp r;
    uint64_t id = cq_open(s, "x", "SELECT * FROM /x", false, false, &l, &r);
    tw_resp_free(&r);
    ck_assert_int_eq(tu_server_signal(&own, SIGTERM), 0);
    wait_kind(s, &l, PUSH_CQ_CLOSED, 1, tw_timeout());
    ck_assert_uint_eq(l.v[l.n - 1].cq, id);
    ck_assert_uint_eq(l.v[l.n - 1].status, ST_SHUTTING_DOWN);
    ck_assert(tw_wait_closed(s, tw_timeout()));
    close(s);
    /* it exits by itself, with status 0 (no second signal: it may have
     * given up its handler already) */
    int st = 0;
    ck_assert_int_eq(tu_wait_child(own.pid, 15000 * tu_timeout_scale(), &st), 1);
    own.pid = -1;
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "agated exit status %d", st);
    char why[512];
    ck_assert_msg(tu_server_sanitizer_clean(&own, why, sizeof why), "%s", why);
    tu_server_cleanup(&own, false);
    evlog_free(&l);
}
END_TEST

/* Events larger than a read batch's byte bound (256 KiB): written before
 * the CQ opens with replay, so the journal is read in many small batches;
 * every event comes, in order (the journal is large enough that nothing
 * is evicted). */
START_TEST(large_values_all_delivered)
{
    int w = tw_open(srv.port), s = tw_open(srv.port);
    tw_create_region(w, "big");
    /* a first CQ arms the region's journal (it records from then on); its
     * connection closes at once, the journal stays armed */
    int s0 = tw_open(srv.port);
    evlog l0 = {0};
    tw_resp r0;
    cq_open(s0, "arm", "SELECT * FROM /big", false, false, &l0, &r0);
    tw_resp_free(&r0);
    evlog_free(&l0);
    close(s0);
    size_t vlen = 100 * 1024;
    uint8_t *v = malloc(vlen + 8);
    v[0] = 0xc6; /* bin32: a 100 KiB value */
    v[1] = 0;
    v[2] = (uint8_t)(vlen >> 16);
    v[3] = (uint8_t)(vlen >> 8);
    v[4] = (uint8_t)vlen;
    memset(v + 5, 'z', vlen);
    for (int i = 0; i < 40; i++) {
        v[5] = (uint8_t)i;
        ck_assert_int_eq(tw_put_raw(w, "big", "k", v, vlen + 5), ST_OK);
    }
    free(v);
    evlog l = {0};
    tw_resp r;
    cq_open(s, "big", "SELECT * FROM /big", false, true, &l, &r);
    tw_resp_free(&r);
    wait_kind(s, &l, PUSH_CQ_EVENT, 40, tw_timeout());
    ck_assert_uint_eq(count_kind(&l, PUSH_CQ_REPLAY), 113);
    uint64_t seq = 0;
    for (size_t i = 0; i < l.n; i++)
        if (l.v[i].kind == PUSH_CQ_EVENT) {
            ck_assert_uint_eq(l.v[i].seq, seq + 1); /* one key's bucket: consecutive */
            ck_assert_uint_eq(l.v[i].op, seq == 0 ? 1 : 2);
            seq = l.v[i].seq;
        }
    ck_assert_uint_eq(seq, 40);
    evlog_free(&l);
    close(s);
    close(w);
}
END_TEST

static Suite *cq_suite(void)
{
    Suite *s = suite_create("cq_wire");
    TCase *tc = tu_tcase(s, "cq", 120);
    tcase_add_unchecked_fixture(tc, setup_default, stop_shared);
    tcase_add_test(tc, open_errors);
    tcase_add_test(tc, transitions);
    tcase_add_test(tc, initial_and_heads);
    tcase_add_test(tc, order_two_writers);
    tcase_add_test(tc, close_and_list);
    tcase_add_test(tc, region_destroyed);
    tcase_add_test(tc, params_given_or_not);
    tcase_add_test(tc, shutdown_closes_cqs);
    tc = tu_tcase(s, "flow", 120);
    tcase_add_unchecked_fixture(tc, setup_small, stop_shared);
    tcase_add_test(tc, slow_subscriber_closed);
    tc = tu_tcase(s, "big", 120);
    tcase_add_unchecked_fixture(tc, setup_big, stop_shared);
    tcase_add_test(tc, large_values_all_delivered);
    return s;
}

int main(void)
{
    Suite *s = cq_suite();
    return tu_run(&s, 1);
}
