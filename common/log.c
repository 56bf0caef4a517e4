#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static FILE *log_fp;
static enum log_level log_min = LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

int log_open(const char *path)
{
    FILE *fp = stderr;
    if (path) {
        fp = fopen(path, "a");
        if (!fp)
            return -errno;
        setvbuf(fp, NULL, _IOLBF, 0);
    }
    pthread_mutex_lock(&log_lock);
    if (log_fp && log_fp != stderr)
        fclose(log_fp);
    log_fp = fp;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

void log_close(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_fp && log_fp != stderr)
        fclose(log_fp);
    log_fp = NULL;
    pthread_mutex_unlock(&log_lock);
}

void log_set_level(enum log_level lvl) { log_min = lvl; }

int log_level_parse(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static void log_vwrite(enum log_level lvl, const char *suffix, const char *fmt, va_list ap);

void log_write(enum log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(lvl, NULL, fmt, ap);
    va_end(ap);
}

void log_limited(log_limit *lim, enum log_level lvl, const char *fmt, ...)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long t = (long)now.tv_sec + 1; /* + 1: 0 means "never logged" */
    long last = atomic_load(&lim->last);
    if (last != 0 && t - last < lim->every_s) {
        atomic_fetch_add(&lim->suppressed, 1);
        return;
    }
    if (!atomic_compare_exchange_strong(&lim->last, &last, t)) {
        atomic_fetch_add(&lim->suppressed, 1); /* another thread logged it just now */
        return;
    }
    char suffix[96] = "";
    unsigned n = atomic_exchange(&lim->suppressed, 0);
    if (n)
        snprintf(suffix, sizeof(suffix), " (%u like this suppressed in the last %d s)", n,
                 lim->every_s);
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(lvl, suffix, fmt, ap);
    va_end(ap);
}

static void log_vwrite(enum log_level lvl, const char *suffix, const char *fmt, va_list ap)
{
    static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if (lvl < log_min)
        return;
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    pthread_mutex_lock(&log_lock);
    FILE *fp = log_fp ? log_fp : stderr;
    fprintf(fp, "%s.%03ldZ %-5s ", when, ts.tv_nsec / 1000000, tags[lvl]);
    vfprintf(fp, fmt, ap);
    if (suffix)
        fputs(suffix, fp);
    fputc('\n', fp);
    pthread_mutex_unlock(&log_lock);
}
