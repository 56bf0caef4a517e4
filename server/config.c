#include "server/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/proto.h"

void server_config_usage(FILE *fp)
{
    fprintf(fp,
            "usage: agated --role=server|locator --name=NAME --dir=DIR [options]\n"
            "Runs an Agate member in the foreground (agate start server runs it detached).\n"
            "  --port=N              TCP port, 0 picks a free one (default %d; locators %d)\n"
            "  --locators=H[P],...   servers: join the cluster of these locators\n"
            "  --member-timeout=MS   silence after which a member is suspected (default %d)\n"
            "  --recovery-delay=MS   locators: wait before restoring redundancy after a\n"
            "                        member is lost; -1 never (default 0)\n"
            "  --bind-address=ADDR   IPv4 address to listen on (default 127.0.0.1)\n"
            "  --threads=N           worker threads (default: CPUs - 1, at least 1)\n"
            "  --query-threads=N     threads that run query scans (default: CPUs / 2,\n"
            "                        at least 1)\n"
            "  --journal-bytes-per-bucket=B  event journal per bucket, for continuous\n"
            "                        queries; 0 turns it off (default 262144)\n"
            "  --max-frame-size=B    largest request frame body (default %u)\n"
            "  --max-key-size=B      largest key (default %u)\n"
            "  --max-value-size=B    largest value (default %u)\n"
            "  --max-depth=N         deepest value nesting (default %u)\n"
            "  --log-level=L         debug, info, warn or error (default info)\n",
            AGATE_DEFAULT_PORT, AGATE_DEFAULT_LOCATOR_PORT, AGATE_DEFAULT_MEMBER_TIMEOUT_MS,
            AGATE_DEFAULT_MAX_FRAME, AGATE_DEFAULT_MAX_KEY,
            AGATE_DEFAULT_MAX_VALUE, AGATE_DEFAULT_MAX_DEPTH);
}

static int parse_num(const char *s, long long lo, long long hi, long long *out);

static void defaults(server_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->bind, sizeof(cfg->bind), "127.0.0.1");
    cfg->port = AGATE_DEFAULT_PORT;
    /* One CPU is left for the listener, the kernel's network stack and any
     * co-located client: measured on 2 CPUs, a second worker only added
     * preemption (p99 latency 3-4x worse) for no more throughput. */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->threads = ncpu <= 2 ? 1 : ncpu > 65 ? 64 : (int)ncpu - 1;
    /* scans run beside the workers, not on them (server/query_pool.h) */
    cfg->query_threads = ncpu <= 3 ? 1 : ncpu > 33 ? 16 : (int)ncpu / 2;
    cfg->max_frame = AGATE_DEFAULT_MAX_FRAME;
    cfg->max_key = AGATE_DEFAULT_MAX_KEY;
    cfg->max_value = AGATE_DEFAULT_MAX_VALUE;
    cfg->max_depth = AGATE_DEFAULT_MAX_DEPTH;
    cfg->log_level = LOG_INFO;
    cfg->member_timeout_ms = AGATE_DEFAULT_MEMBER_TIMEOUT_MS;
    cfg->recovery_delay_ms = 0;
    cfg->journal_bytes = 262144;
}

/* The IPv4 address of host (a literal, or a name resolved once here:
 * members reach locators over IPv4 links). 0 or -1. */
static int resolve_ipv4(const char *host, char ip[INET_ADDRSTRLEN])
{
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) == 1)
        return inet_ntop(AF_INET, &a, ip, INET_ADDRSTRLEN) ? 0 : -1;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) || !res)
        return -1;
    inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip, INET_ADDRSTRLEN);
    freeaddrinfo(res);
    return 0;
}

/* One "host[port]" or "host:port" into dst as "ipv4:port"; -1 when
 * malformed, -2 when the host has no IPv4 address. */
static int parse_locator(const char *s, size_t n, char *dst, size_t cap)
{
    char tmp[96];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    char *port = strchr(tmp, '[');
    if (port) {
        char *end = strchr(port, ']');
        if (!end || end[1])
            return -1;
        *end = 0;
    } else {
        port = strrchr(tmp, ':');
    }
    if (!port || port == tmp)
        return -1;
    *port++ = 0;
    long long p;
    if (parse_num(port, 1, 65535, &p))
        return -1;
    char ip[INET_ADDRSTRLEN];
    if (resolve_ipv4(tmp, ip))
        return -2;
    return snprintf(dst, cap, "%s:%lld", ip, p) < (int)cap ? 0 : -1;
}

int server_config_parse_locators(server_config *cfg, const char *list, char *err, size_t errlen)
{
    cfg->nlocators = 0;
    for (const char *s = list; *s;) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        int rc = cfg->nlocators == 8 ? -1
                                     : parse_locator(s, n, cfg->locators[cfg->nlocators],
                                                     sizeof cfg->locators[0]);
        if (rc == -2) {
            snprintf(err, errlen, "--locators: cannot resolve '%.*s' to an IPv4 address",
                     (int)(n > 96 ? 96 : n), s);
            return -1;
        }
        if (rc) {
            snprintf(err, errlen, "--locators: expected HOST[PORT] or HOST:PORT, comma-separated "
                                  "(at most 8), got '%s'", list);
            return -1;
        }
        cfg->nlocators++;
        s = comma ? comma + 1 : s + n;
    }
    if (cfg->nlocators == 0) {
        snprintf(err, errlen, "--locators: empty list");
        return -1;
    }
    return 0;
}

/* Parses a whole decimal number in [lo, hi]. */
static int parse_num(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *v)
{
    if (!*v || strlen(v) >= cap)
        return -1;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

/* Applies one --key=value. Returns 0 or -1 with err filled. */
static int apply(server_config *cfg, const char *key, const char *val, char *err, size_t errlen)
{
    long long n;
    struct { const char *name; long long lo, hi; } nums[] = {
        {"port", 0, 65535}, {"threads", 1, 64}, {"max-frame-size", 64, 1LL << 31},
        {"max-key-size", 1, 1 << 24}, {"max-value-size", 1, 1LL << 31}, {"max-depth", 1, 200},
    };
    if (strcmp(key, "role") == 0) {
        if (strcmp(val, "server") != 0 && strcmp(val, "locator") != 0) {
            snprintf(err, errlen, "--role: expected 'server' or 'locator', got '%s'", val);
            return -1;
        }
        cfg->locator = val[0] == 'l';
        return 0;
    }
    if (strcmp(key, "locators") == 0)
        return server_config_parse_locators(cfg, val, err, errlen);
    if (strcmp(key, "member-timeout") == 0 || strcmp(key, "recovery-delay") == 0) {
        bool mt = key[0] == 'm';
        if (parse_num(val, mt ? 200 : -1, 3600000, &n)) {
            snprintf(err, errlen, "--%s: expected milliseconds (%s..3600000), got '%s'", key,
                     mt ? "200" : "-1", val);
            return -1;
        }
        *(mt ? &cfg->member_timeout_ms : &cfg->recovery_delay_ms) = (int)n;
        return 0;
    }
    if (strcmp(key, "name") == 0 || strcmp(key, "dir") == 0 || strcmp(key, "bind-address") == 0) {
        char *dst = key[0] == 'n' ? cfg->name : key[0] == 'd' ? cfg->dir : cfg->bind;
        size_t cap = key[0] == 'n' ? sizeof(cfg->name) : key[0] == 'd' ? sizeof(cfg->dir) : sizeof(cfg->bind);
        if (copy_str(dst, cap, val)) {
            snprintf(err, errlen, "--%s: empty or too long", key);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "query-threads") == 0) {
        if (parse_num(val, 1, 64, &n)) {
            snprintf(err, errlen, "--query-threads: expected a number in 1..64, got '%s'", val);
            return -1;
        }
        cfg->query_threads = (int)n;
        return 0;
    }
    if (strcmp(key, "journal-bytes-per-bucket") == 0) {
        if (parse_num(val, 0, 1LL << 30, &n)) {
            snprintf(err, errlen, "--journal-bytes-per-bucket: expected bytes in 0..%lld, got '%s'",
                     1LL << 30, val);
            return -1;
        }
        cfg->journal_bytes = (size_t)n;
        return 0;
    }
    if (strcmp(key, "log-level") == 0) {
        int lvl = log_level_parse(val);
        if (lvl < 0) {
            snprintf(err, errlen, "--log-level: expected debug, info, warn or error, got '%s'", val);
            return -1;
        }
        cfg->log_level = lvl;
        return 0;
    }
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        if (strcmp(key, nums[i].name) != 0)
            continue;
        if (parse_num(val, nums[i].lo, nums[i].hi, &n)) {
            snprintf(err, errlen, "--%s: expected a number in %lld..%lld, got '%s'", key,
                     nums[i].lo, nums[i].hi, val);
            return -1;
        }
        switch (i) {
        case 0: cfg->port = (int)n; cfg->port_given = true; break;
        case 1: cfg->threads = (int)n; break;
        case 2: cfg->max_frame = (uint32_t)n; break;
        case 3: cfg->max_key = (uint32_t)n; break;
        case 4: cfg->max_value = (uint32_t)n; break;
        default: cfg->max_depth = (uint32_t)n; break;
        }
        return 0;
    }
    snprintf(err, errlen, "unknown option --%s", key);
    return -1;
}

int server_config_parse(int argc, char **argv, server_config *cfg, char *err, size_t errlen)
{
    defaults(cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            server_config_usage(stdout);
            return 1;
        }
        if (strcmp(a, "--version") == 0) {
            printf("agated %s (protocol %d)\n", AGATE_VERSION, AGATE_PROTO_VERSION);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s'", a);
            return -1;
        }
        char key[64];
        const char *eq = strchr(a + 2, '=');
        const char *val;
        size_t klen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (klen == 0 || klen >= sizeof(key)) {
            snprintf(err, errlen, "bad option '%s'", a);
            return -1;
        }
        memcpy(key, a + 2, klen);
        key[klen] = 0;
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            snprintf(err, errlen, "option --%s needs a value", key);
            return -1;
        }
        if (apply(cfg, key, val, err, errlen))
            return -1;
    }
    if (!cfg->name[0] || !cfg->dir[0]) {
        snprintf(err, errlen, "--name and --dir are required");
        return -1;
    }
    if (cfg->locator && cfg->nlocators) {
        snprintf(err, errlen, "--locators is for servers; a locator is the cluster's locator");
        return -1;
    }
    if (cfg->locator) {
        if (!cfg->port_given)
            cfg->port = AGATE_DEFAULT_LOCATOR_PORT;
        cfg->threads = 1; /* the locator's state lives on one thread */
    }
    if (cfg->max_key > cfg->max_frame || cfg->max_value > cfg->max_frame) {
        snprintf(err, errlen, "--max-key-size and --max-value-size must not exceed --max-frame-size");
        return -1;
    }
    return 0;
}
