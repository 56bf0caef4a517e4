/* config.h - the server's command line. */
#ifndef AGATE_SERVER_CONFIG_H
#define AGATE_SERVER_CONFIG_H

#include <limits.h>
#include <stdio.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct server_config {
    char name[64];
    char dir[PATH_MAX];
    char bind[64];
    int port;
    int threads;
    int query_threads;     /* server/query_pool.h */
    uint32_t max_frame;
    uint32_t max_key;
    uint32_t max_value;
    uint32_t max_depth;
    int log_level;
    bool locator;          /* --role=locator */
    bool port_given;
    /* --locators: "host:port" each */
    int nlocators;
    char locators[8][80];
    int member_timeout_ms; /* locator: when a silent member is suspected; members: lease */
    int recovery_delay_ms; /* locator: -1 = no automatic redundancy recovery */
    size_t journal_bytes;  /* --journal-bytes-per-bucket (region/journal.h); 0: off */
} server_config;

/* Parses "host[port]" or "host:port" lists into cfg->locators. 0 or -1. */
int server_config_parse_locators(server_config *cfg, const char *list, char *err, size_t errlen);

/* Parses argv. Returns 0 (run), 1 (help or version was printed: exit 0), or
 * -1 with a message in err (a usage error: exit 2). */
int server_config_parse(int argc, char **argv, server_config *cfg, char *err, size_t errlen);
void server_config_usage(FILE *fp);

#endif
