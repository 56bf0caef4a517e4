#include "tu.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- time ---- */

int64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tu_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

int tu_timeout_scale(void)
{
    const char *s = getenv("AGATE_TEST_TIMEOUT_SCALE");
    if (s && atoi(s) > 0)
        return atoi(s);
#if defined(__SANITIZE_ADDRESS__)
    return 3;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return 3;
#else
    return 1;
#endif
#else
    return 1;
#endif
}

/* ---- files ---- */

const char *tu_tmp_root(void)
{
    const char *s = getenv("AGATE_TEST_TMPDIR");
    if (s && *s)
        return s;
    s = getenv("TMPDIR");
    if (s && *s)
        return s;
    return "/tmp";
}

static void mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    mkdir(tmp, 0755);
}

char *tu_mkdtemp(const char *tag)
{
    const char *root = tu_tmp_root();
    mkdir_p(root);
    size_t cap = strlen(root) + strlen(tag) + 64;
    char *path = malloc(cap);
    if (!path)
        return NULL;
    snprintf(path, cap, "%s/%s-%ld-XXXXXX", root, tag, (long)getpid());
    if (!mkdtemp(path)) {
        fprintf(stderr, "tu_mkdtemp(%s): %s\n", path, strerror(errno));
        free(path);
        return NULL;
    }
    return path;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void tu_rm_rf(const char *path)
{
    if (path && *path)
        nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    size_t cap = 4096, n = 0;
    char *data = malloc(cap + 1);
    for (;;) {
        if (!data)
            break;
        size_t got = fread(data + n, 1, cap - n, fp);
        n += got;
        if (n < cap)
            break;
        cap *= 2;
        char *p = realloc(data, cap + 1);
        if (!p) {
            free(data);
            data = NULL;
            break;
        }
        data = p;
    }
    fclose(fp);
    if (!data)
        return NULL;
    data[n] = 0;
    if (len)
        *len = n;
    return data;
}

int tu_write_file(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    int ok = fwrite(p, 1, n, fp) == n;
    ok = fclose(fp) == 0 && ok;
    return ok ? 0 : -1;
}

char *tu_kv_get(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        if (ll > kl && memcmp(line, key, kl) == 0 && line[kl] == '=')
            return strndup(line + kl + 1, ll - kl - 1);
        line = nl ? nl + 1 : NULL;
    }
    return NULL;
}

/* ---- processes ---- */

#define MAX_TRACKED 512

/* Written only by the owning process; read by signal handlers. */
static struct tracked {
    volatile pid_t pid;   /* 0: free */
    volatile pid_t owner; /* the process that recorded it */
    volatile int child;   /* our child: reap after killing */
} tracked[MAX_TRACKED];

static void track(pid_t pid, int child)
{
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (tracked[i].pid == 0) {
            tracked[i].owner = getpid();
            tracked[i].child = child;
            tracked[i].pid = pid;
            return;
        }
    }
    fprintf(stderr, "tu: too many tracked processes; pid %ld is not tracked\n", (long)pid);
}

void tu_track_pid(pid_t pid)
{
    if (pid > 0)
        track(pid, 0);
}

void tu_untrack_pid(pid_t pid)
{
    pid_t me = getpid();
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked[i].pid == pid && tracked[i].owner == me)
            tracked[i].pid = 0;
}

/* Async-signal-safe: kill(2) and waitpid(2) only. */
static void kill_owned(int reap)
{
    pid_t me = getpid();
    for (int i = 0; i < MAX_TRACKED; i++) {
        pid_t p = tracked[i].pid;
        if (p <= 0 || tracked[i].owner != me)
            continue;
        kill(p, SIGCONT); /* a SIGSTOPped process still dies of SIGKILL, but be explicit */
        kill(p, SIGKILL);
        if (reap && tracked[i].child)
            waitpid(p, NULL, 0);
        tracked[i].pid = 0;
    }
}

void tu_kill_all(void) { kill_owned(1); }

static void on_fatal_signal(int sig)
{
    kill_owned(0);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_hygiene(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    atexit(tu_kill_all);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGABRT, SIGQUIT};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_fatal_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN);
}

pid_t tu_spawn(char *const argv[], const char *out_path, const char *err_path)
{
    install_hygiene();
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127); /* the parent died before prctl */
        setpgid(0, 0);
        int in = open("/dev/null", O_RDONLY);
        int out = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        int err = open(err_path ? err_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || out < 0 || err < 0)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    track(pid, 1);
    return pid;
}

int tu_wait_child(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            tu_untrack_pid(pid);
            if (status)
                *status = st;
            return 1;
        }
        if (r < 0 && errno != EINTR)
            return -1;
        if (tu_now_ms() >= deadline)
            return 0;
        tu_sleep_ms(10);
    }
}

bool tu_pid_alive(pid_t pid)
{
    if (pid <= 0 || kill(pid, 0) != 0)
        return false;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    char *s = tu_read_file(path, NULL);
    if (!s)
        return false;
    /* pid (comm) STATE ...: comm may hold spaces, so look after the last ')' */
    const char *rp = strrchr(s, ')');
    bool alive = !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
    free(s);
    return alive;
}

bool tu_wait_gone(pid_t pid, int timeout_ms)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    while (tu_pid_alive(pid)) {
        waitpid(pid, NULL, WNOHANG); /* reap if it happens to be our child */
        if (tu_now_ms() >= deadline)
            return false;
        tu_sleep_ms(10);
    }
    return true;
}

/* ---- running ---- */

TCase *tu_tcase(Suite *s, const char *name, int timeout_s)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, (double)(timeout_s * tu_timeout_scale()));
    suite_add_tcase(s, tc);
    return tc;
}

static int outside_errors;

void tu_fail_outside(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "ERROR (outside a test): ");
    vfprintf(stdout, fmt, ap);
    fprintf(stdout, "\n");
    fflush(stdout);
    va_end(ap);
    outside_errors++;
}

int tu_run(Suite **suites, int n)
{
    install_hygiene();
    SRunner *sr = srunner_create(suites[0]);
    for (int i = 1; i < n; i++)
        srunner_add_suite(sr, suites[i]);
    srunner_run_all(sr, CK_ENV);
    int run = srunner_ntests_run(sr);
    int bad = srunner_ntests_failed(sr);
    int failures = 0, errors = 0;
    TestResult **res = srunner_failures(sr);
    for (int i = 0; i < bad; i++) {
        if (tr_rtype(res[i]) == CK_ERROR)
            errors++;
        else
            failures++;
    }
    free(res);
    srunner_free(sr);
    tu_kill_all();
    errors += outside_errors;
    run += outside_errors;
    int pct = (failures == 0 && errors == 0) ? 100
              : run == 0                     ? 0
                                             : (int)((float)(run - failures - errors) / (float)run * 100);
    fflush(stderr);
    printf("%d%%: Checks: %d, Failures: %d, Errors: %d\n", pct, run, failures, errors);
    fflush(stdout);
    return failures == 0 && errors == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
