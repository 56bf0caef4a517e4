/* log.h - leveled, timestamped, thread-safe logging to a file or stderr. */
#ifndef AGATE_COMMON_LOG_H
#define AGATE_COMMON_LOG_H

#include <stdatomic.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Opens path for appending (NULL: stderr). Returns 0 or -errno. */
int log_open(const char *path);
void log_close(void);
void log_set_level(enum log_level lvl);
/* Parses "debug", "info", "warn", "error"; returns -1 if unknown. */
int log_level_parse(const char *s);
void log_write(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A rate limit for one kind of message: at most one every `every_s` seconds;
 * the next one that passes says how many were suppressed. Define one static
 * instance per call site: static log_limit lim = LOG_LIMIT(10); */
typedef struct log_limit {
    int every_s;
    _Atomic long last;     /* CLOCK_MONOTONIC seconds of the last message, 0: none */
    _Atomic unsigned suppressed;
} log_limit;
#define LOG_LIMIT(seconds) {.every_s = (seconds)}

/* As log_write, through the limit. Thread-safe. */
void log_limited(log_limit *lim, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
