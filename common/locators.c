#include "common/locators.h"

#include <stdio.h>
#include <string.h>

/* Checks one "HOST[PORT]" or "HOST:PORT" of n bytes at s. */
static int check_locator(const char *s, size_t n, char *err, size_t cap)
{
    const char *open = memchr(s, '[', n);
    const char *colon = memchr(s, ':', n);
    const char *port;
    size_t hostlen, portlen;
    if (open) {
        if (s[n - 1] != ']') {
            snprintf(err, cap, "'%.*s': expected HOST[PORT]", (int)n, s);
            return -1;
        }
        hostlen = (size_t)(open - s);
        port = open + 1;
        portlen = n - hostlen - 2;
    } else if (colon) {
        hostlen = (size_t)(colon - s);
        port = colon + 1;
        portlen = n - hostlen - 1;
    } else {
        snprintf(err, cap, "'%.*s' has no port: write HOST[PORT] or HOST:PORT", (int)n, s);
        return -1;
    }
    for (size_t i = 0; i < hostlen; i++) {
        char ch = s[i];
        if (ch == '[' || ch == ']' || ch == ':' || ch == ' ' || ch == '\t') {
            snprintf(err, cap, "'%.*s': bad host name", (int)n, s);
            return -1;
        }
    }
    if (hostlen == 0) {
        snprintf(err, cap, "'%.*s' has no host", (int)n, s);
        return -1;
    }
    long v = 0;
    for (size_t i = 0; i < portlen; i++) {
        if (port[i] < '0' || port[i] > '9' || v > 65535) {
            v = -1;
            break;
        }
        v = v * 10 + (port[i] - '0');
    }
    if (portlen == 0 || v < 1 || v > 65535) {
        snprintf(err, cap, "'%.*s': the port must be a number from 1 to 65535", (int)n, s);
        return -1;
    }
    return 0;
}

int locators_check(const char *list, char *err, size_t cap)
{
    if (!*list) {
        snprintf(err, cap, "empty list of locators");
        return -1;
    }
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == 0) {
            snprintf(err, cap, "'%s': empty entry in the list of locators", list);
            return -1;
        }
        if (check_locator(p, n, err, cap))
            return -1;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}
