/* conn.c - the server list and opening a TCP connection with a timeout. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client.h"
#include "common/proto.h"

void client_servers_free(agate_client *c)
{
    for (size_t i = 0; i < c->nservers; i++) {
        free(c->servers[i].host);
        free(c->servers[i].port);
        free(c->servers[i].addr);
    }
    free(c->servers);
    c->servers = NULL;
    c->nservers = 0;
}

static char *dup_range(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static bool valid_port(const char *p, size_t n)
{
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v >= 1 && v <= 65535;
}

/* Splits one "host:port", "[v6addr]:port" or "host" (default port) entry. */
static int parse_one(agate_client *c, const char *p, size_t n, client_server *out)
{
    const char *host = p, *port = NULL;
    size_t hlen = n, plen = 0;
    if (n > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (!close)
            return client_err(c, AGATE_EINVAL, "bad server address '%.*s'", (int)n, p);
        host = p + 1;
        hlen = (size_t)(close - host);
        size_t rest = n - (size_t)(close + 1 - p);
        if (rest > 0) {
            if (close[1] != ':')
                return client_err(c, AGATE_EINVAL, "bad server address '%.*s'", (int)n, p);
            port = close + 2;
            plen = rest - 1;
        }
    } else {
        const char *colon = memchr(p, ':', n);
        if (colon) {
            if (memchr(colon + 1, ':', n - (size_t)(colon + 1 - p)))
                return client_err(c, AGATE_EINVAL,
                                  "bad server address '%.*s' (write IPv6 as [addr]:port)",
                                  (int)n, p);
            hlen = (size_t)(colon - p);
            port = colon + 1;
            plen = n - hlen - 1;
        }
    }
    if (hlen == 0)
        return client_err(c, AGATE_EINVAL, "server address '%.*s' has no host", (int)n, p);
    char defport[8];
    if (!port) {
        snprintf(defport, sizeof(defport), "%d", AGATE_DEFAULT_PORT);
        port = defport;
        plen = strlen(defport);
    }
    if (!valid_port(port, plen))
        return client_err(c, AGATE_EINVAL, "bad port in server address '%.*s'", (int)n, p);
    out->host = dup_range(host, hlen);
    out->port = dup_range(port, plen);
    size_t alen = n + (port == defport ? plen + 1 : 0);
    out->addr = malloc(alen + 1);
    if (!out->host || !out->port || !out->addr) {
        free(out->host);
        free(out->port);
        free(out->addr);
        return client_err(c, AGATE_ENOMEM, "out of memory");
    }
    if (port == defport) {
        snprintf(out->addr, alen + 1, "%.*s:%s", (int)n, p, defport);
    } else {
        memcpy(out->addr, p, n);
        out->addr[n] = '\0';
    }
    return 0;
}

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

int client_servers_parse(agate_client *c, const char *list)
{
    size_t max = 1;
    for (const char *s = list; *s; s++)
        max += *s == ',';
    client_server *servers = calloc(max, sizeof(*servers));
    if (!servers)
        return client_err(c, AGATE_ENOMEM, "out of memory");
    size_t n = 0;
    const char *s = list;
    for (;;) {
        const char *end = strchr(s, ',');
        if (!end)
            end = s + strlen(s);
        const char *a = s, *b = end;
        while (a < b && is_space(*a))
            a++;
        while (b > a && is_space(b[-1]))
            b--;
        if (a < b) {
            int rc = parse_one(c, a, (size_t)(b - a), &servers[n]);
            if (rc) {
                client_server *keep = c->servers;
                size_t keepn = c->nservers;
                c->servers = servers;
                c->nservers = n;
                client_servers_free(c);
                c->servers = keep;
                c->nservers = keepn;
                return rc;
            }
            n++;
        }
        if (!*end)
            break;
        s = end + 1;
    }
    if (n == 0) {
        free(servers);
        return client_err(c, AGATE_EINVAL, "empty server list");
    }
    client_servers_free(c);
    c->servers = servers;
    c->nservers = n;
    return 0;
}

/* Waits for a non-blocking connect to finish. Returns 0 or an errno. */
static int connect_wait(int fd, int timeout_ms)
{
    int64_t deadline = timeout_ms > 0 ? client_now_ms() + timeout_ms : -1;
    for (;;) {
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - client_now_ms();
            if (left <= 0)
                return ETIMEDOUT;
            wait = left > 1000000 ? 1000000 : (int)left;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int n = poll(&pfd, 1, wait);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            continue;
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            return errno;
        return soerr;
    }
}

static int connect_addr(const struct addrinfo *ai, int timeout_ms, int *err)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    int rc = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        rc = errno;
        if (rc == EINPROGRESS || rc == EINTR)
            rc = connect_wait(fd, timeout_ms);
    }
    if (rc) {
        close(fd);
        *err = rc;
        return -1;
    }
    /* requests are small and latency matters more than segment count;
     * batching happens in our output buffer instead */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int client_sock_connect(const char *host, const char *port, int timeout_ms, char *err,
                        size_t errcap)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int grc = getaddrinfo(host, port, &hints, &res);
    if (grc != 0) {
        snprintf(err, errcap, "cannot resolve %s: %s", host, gai_strerror(grc));
        return -1;
    }
    int last = 0;
    int fd = -1;
    for (const struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = connect_addr(ai, timeout_ms, &last);
    freeaddrinfo(res);
    if (fd < 0) {
        char tmp[128];
        /* GNU strerror_r: thread-safe, may return a static string */
        snprintf(err, errcap, "%s", last ? strerror_r(last, tmp, sizeof(tmp)) : "no address");
    }
    return fd;
}
