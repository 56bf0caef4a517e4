/* lifecycle.c - start server, status server, stop server.
 *
 * The daemon (agated) runs in the foreground; `start server` detaches it
 * (fork, setsid, stdio away from the terminal) and then watches two things
 * until the server is usable: the child process (did it exit?) and the
 * status file DIR/agated.status that agated writes atomically once it
 * listens. Only when the file names our child as running AND a ping over the
 * protocol succeeds do we report success, so "started" means "answers". */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tools/cli/cli.h"
#include "tools/cli/output.h"

#define STATUS_FILE "agated.status"
#define LOCK_FILE "agated.lock"

typedef struct server_status {
    bool present;
    long pid;
    int port;
    char name[128];
    char role[32];
    char bind[128];
    char state[32];
} server_status;

/* Reads DIR/agated.status ("key=value" lines). Unknown keys are ignored so
 * the daemon may add more. Returns 0 with st->present set, or -1 (no file
 * or unreadable; errno kept). */
static int read_status(const char *dir, server_status *st)
{
    memset(st, 0, sizeof(*st));
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, STATUS_FILE);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = 0;
        const char *k = line, *v = eq + 1;
        if (strcmp(k, "pid") == 0)
            st->pid = strtol(v, NULL, 10);
        else if (strcmp(k, "port") == 0)
            st->port = (int)strtol(v, NULL, 10);
        else if (strcmp(k, "name") == 0)
            snprintf(st->name, sizeof st->name, "%s", v);
        else if (strcmp(k, "role") == 0)
            snprintf(st->role, sizeof st->role, "%s", v);
        else if (strcmp(k, "bind") == 0)
            snprintf(st->bind, sizeof st->bind, "%s", v);
        else if (strcmp(k, "state") == 0)
            snprintf(st->state, sizeof st->state, "%s", v);
    }
    fclose(f);
    st->present = true;
    return 0;
}

/* True if a process with this pid exists (also when owned by someone
 * else) and is not a zombie: a daemon that died after its parent (agate)
 * exited may linger unreaped for a while, and it is not running. */
static bool pid_alive(long pid)
{
    if (pid <= 0)
        return false;
    if (kill((pid_t)pid, 0) != 0 && errno != EPERM)
        return false;
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true; /* no /proc: trust kill() */
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = 0;
    /* "pid (comm) S ...": the state follows the last ')' */
    const char *rp = strrchr(stat, ')');
    if (rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'))
        return false;
    return true;
}

/* True if some process holds the daemon's lock on dir: the one reliable
 * sign that a daemon runs there (a pid in a stale status file can have been
 * reused). The probe holds the lock for microseconds only. */
static bool dir_locked(const char *dir)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, LOCK_FILE);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool locked = false;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        locked = errno == EWOULDBLOCK;
    else
        flock(fd, LOCK_UN);
    close(fd);
    return locked;
}

/* Address to reach a server listening on bind: the wildcard address is not
 * a destination, so use loopback for it. */
static void connect_address(const server_status *st, char *out, size_t cap)
{
    const char *host = st->bind;
    if (!*host || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
        host = "127.0.0.1";
    snprintf(out, cap, "%s:%d", host, st->port);
}

/* Pings addr with a short timeout; 0 on success. Quiet: no message. */
static int quiet_ping(const char *addr, agate_client **keep)
{
    agate_options o;
    agate_options_init(&o);
    o.connect_timeout_ms = 1000;
    o.request_timeout_ms = 2000;
    o.client_name = "agate-cli";
    agate_client *c = agate_client_new(&o);
    if (!c)
        return -1;
    int rc = agate_connect(c, addr);
    if (rc == 0)
        rc = agate_ping(c);
    if (rc == 0 && keep)
        *keep = c;
    else
        agate_client_free(c);
    return rc;
}

/* mkdir -p. Returns 0 or -1 with errno. */
static int mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -1;
    struct stat sb;
    if (stat(tmp, &sb) != 0)
        return -1;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* The directory a status/stop/start command works on: --dir, else ./NAME
 * (NAME from --name, default server1). */
static void server_dir(const cli_args *a, char *out, size_t cap)
{
    const char *dir = cli_str(a, "dir");
    char given[PATH_MAX];
    if (dir)
        snprintf(given, sizeof given, "%s", dir);
    else
        snprintf(given, sizeof given, "./%s", cli_str_or(a, "name", "server1"));
    /* absolute when it exists, for messages and --json */
    char abs[PATH_MAX];
    if (realpath(given, abs) && strlen(abs) < cap)
        snprintf(out, cap, "%s", abs);
    else
        snprintf(out, cap, "%s", given);
}

/* Finds the daemon: $AGATE_DAEMON, else agated next to this program, else
 * "agated" to be looked up on PATH by execvp. */
static void find_daemon(char *out, size_t cap)
{
    const char *env = getenv("AGATE_DAEMON");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            char cand[PATH_MAX + 16];
            snprintf(cand, sizeof cand, "%s/agated", self);
            if (access(cand, X_OK) == 0 && strlen(cand) < cap) {
                snprintf(out, cap, "%s", cand);
                return;
            }
        }
    }
    snprintf(out, cap, "agated");
}

/* Size of a file, 0 if it does not exist. */
static off_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : 0;
}

/* Prints the last max_lines lines of path written after offset from (the
 * log is appended to across runs; older runs' lines would mislead) to
 * stderr under a heading. */
static void print_tail(const char *path, int max_lines, off_t from)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    /* Only the end of the file matters; 64 KiB hold far more than 20 lines
     * of any sane log. */
    if (fseeko(f, 0, SEEK_END) == 0) {
        off_t size = ftello(f);
        off_t start = size > 65536 ? size - 65536 : 0;
        if (from > start && from <= size)
            start = from;
        fseeko(f, start, SEEK_SET);
    }
    static char data[65537];
    size_t n = fread(data, 1, sizeof data - 1, f);
    fclose(f);
    data[n] = 0;
    if (n == 0)
        return;
    size_t end = n;
    while (end > 0 && data[end - 1] == '\n')
        end--;
    size_t start = end;
    int lines = 0;
    while (start > 0) {
        if (data[start - 1] == '\n' && ++lines >= max_lines)
            break;
        start--;
    }
    fprintf(stderr, "--- last lines of %s ---\n%.*s\n", path, (int)(end - start), data + start);
}

/* Sends sig to pid (to its whole process group when group: a daemon we
 * started leads its own session, and helpers it spawned must go too) and
 * waits up to secs for pid to exit (reaping it if it is our child). Returns
 * true if it is gone. */
static bool kill_and_wait(pid_t pid, int sig, double secs, bool group)
{
    if (kill(group ? -pid : pid, sig) != 0 && errno == ESRCH)
        return true;
    double deadline = now_seconds() + secs;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD && !pid_alive(pid)))
            return true;
        if (now_seconds() >= deadline)
            return false;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static void describe_exit(int wstatus, char *out, size_t cap)
{
    if (WIFEXITED(wstatus))
        snprintf(out, cap, "agated exited with status %d", WEXITSTATUS(wstatus));
    else if (WIFSIGNALED(wstatus))
        snprintf(out, cap, "agated was killed by signal %d (%s)", WTERMSIG(wstatus),
                 strsignal(WTERMSIG(wstatus)));
    else
        snprintf(out, cap, "agated stopped");
}

/* In the child: become a session leader detached from the terminal, point
 * stdio at /dev/null and the .out file, and exec the daemon. On failure the
 * errno goes through err_fd (close-on-exec, so a successful exec closes it
 * and the parent reads EOF). Never returns. */
static void child_exec(char **argv, const char *out_path, int err_fd)
{
    setsid();
    int in = open("/dev/null", O_RDONLY);
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        goto fail;
    if (in > 2)
        close(in);
    if (out > 2)
        close(out);
    /* Leave no descriptor of ours (a shell's server connection, say) open
     * in a long-lived daemon. */
    long maxfd = sysconf(_SC_OPEN_MAX);
    if (maxfd < 0 || maxfd > 65536)
        maxfd = 65536;
    for (int fd = 3; fd < maxfd; fd++)
        if (fd != err_fd)
            close(fd);
    signal(SIGPIPE, SIG_DFL);
    execvp(argv[0], argv);
fail:;
    int e = errno;
    if (write(err_fd, &e, sizeof e) < 0) {
        /* nothing left to report it with */
    }
    _exit(127);
}

int cmd_start_server(cli_ctx *ctx, const cli_args *a)
{
    const char *name = cli_str_or(a, "name", "server1");
    char dir_arg[PATH_MAX];
    server_dir(a, dir_arg, sizeof dir_arg);
    if (!*name || strchr(name, '/'))
        return cli_usage_error(a->cmd, "--name must be a non-empty name without '/'");
    if (mkdir_p(dir_arg) != 0) {
        cli_err("cannot create directory %s: %s", dir_arg, strerror(errno));
        return EXIT_ERR;
    }
    char dir[PATH_MAX];
    if (!realpath(dir_arg, dir)) {
        cli_err("cannot resolve directory %s: %s", dir_arg, strerror(errno));
        return EXIT_ERR;
    }
    if (dir_locked(dir)) {
        server_status st;
        read_status(dir, &st);
        if (st.present && st.pid > 0)
            cli_err("a server is already running in %s (pid %ld, name %s)", dir, st.pid, st.name);
        else
            cli_err("a server is already running in %s", dir);
        return EXIT_ERR;
    }

    char daemon[PATH_MAX];
    find_daemon(daemon, sizeof daemon);
    long long port = cli_int(a, "port", 40404);
    double timeout = (double)cli_int(a, "timeout", 60);

    /* argv for agated: the options we were given, passed through */
    char bufs[12][PATH_MAX + 32];
    char *argv[16];
    int n = 0;
    argv[n++] = daemon;
    snprintf(bufs[n], sizeof bufs[n], "--role=server");
    argv[n] = bufs[n];
    n++;
    snprintf(bufs[n], sizeof bufs[n], "--name=%s", name);
    argv[n] = bufs[n];
    n++;
    snprintf(bufs[n], sizeof bufs[n], "--dir=%s", dir);
    argv[n] = bufs[n];
    n++;
    snprintf(bufs[n], sizeof bufs[n], "--port=%lld", port);
    argv[n] = bufs[n];
    n++;
    static const char *pass[] = {"bind-address", "threads", "max-frame-size", "max-key-size",
                                 "max-value-size", "max-depth", "log-level"};
    for (size_t k = 0; k < sizeof pass / sizeof pass[0]; k++) {
        if (!cli_has(a, pass[k]))
            continue;
        const cli_opt *o = NULL;
        for (const cli_opt *x = a->cmd->opts; x->name; x++)
            if (strcmp(x->name, pass[k]) == 0)
                o = x;
        if (o && o->type != OPT_STR)
            snprintf(bufs[n], sizeof bufs[n], "--%s=%lld", pass[k], cli_int(a, pass[k], 0));
        else
            snprintf(bufs[n], sizeof bufs[n], "--%s=%s", pass[k], cli_str(a, pass[k]));
        argv[n] = bufs[n];
        n++;
    }
    argv[n] = NULL;

    char out_path[PATH_MAX + 64], log_path[PATH_MAX + 64];
    snprintf(out_path, sizeof out_path, "%s/%s.out", dir, name);
    snprintf(log_path, sizeof log_path, "%s/%s.log", dir, name);

    off_t log_start = file_size(log_path);
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0) {
        cli_err("pipe: %s", strerror(errno));
        return EXIT_ERR;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        cli_err("fork: %s", strerror(errno));
        close(errpipe[0]);
        close(errpipe[1]);
        return EXIT_ERR;
    }
    if (pid == 0) {
        close(errpipe[0]);
        /* the daemon runs from / so it does not pin the caller's cwd; every
         * path it gets is absolute */
        if (chdir("/") != 0) {
            /* harmless: it only matters for unmounting */
        }
        child_exec(argv, out_path, errpipe[1]);
    }
    close(errpipe[1]);
    int child_errno = 0;
    ssize_t r;
    do
        r = read(errpipe[0], &child_errno, sizeof child_errno);
    while (r < 0 && errno == EINTR);
    close(errpipe[0]);
    if (r == (ssize_t)sizeof child_errno) {
        waitpid(pid, NULL, 0);
        cli_err("cannot run %s: %s%s", daemon, strerror(child_errno),
                child_errno == ENOENT ? " (set AGATE_DAEMON to the agated binary)" : "");
        return EXIT_ERR;
    }

    /* Wait for: the child exiting (failure), or the status file naming it
     * as running and a ping succeeding (success), or the timeout. */
    double deadline = now_seconds() + timeout;
    char reason[256] = "";
    server_status st;
    char addr[192] = "";
    for (;;) {
        int ws;
        pid_t w = waitpid(pid, &ws, WNOHANG);
        if (w == pid) {
            describe_exit(ws, reason, sizeof reason);
            break;
        }
        if (read_status(dir, &st) == 0 && st.pid == pid && strcmp(st.state, "running") == 0) {
            connect_address(&st, addr, sizeof addr);
            if (quiet_ping(addr, NULL) == 0) {
                if (a->json) {
                    json_doc d;
                    json_doc_init(&d);
                    jw_begin_object(&d.w);
                    jw_ckey(&d.w, "name");
                    jw_cstr(&d.w, st.name[0] ? st.name : name);
                    jw_ckey(&d.w, "pid");
                    jw_int(&d.w, pid);
                    jw_ckey(&d.w, "host");
                    jw_cstr(&d.w, st.bind);
                    jw_ckey(&d.w, "port");
                    jw_int(&d.w, st.port);
                    jw_ckey(&d.w, "dir");
                    jw_cstr(&d.w, dir);
                    jw_ckey(&d.w, "log");
                    jw_cstr(&d.w, log_path);
                    jw_end_object(&d.w);
                    return json_doc_print(&d);
                }
                printf("Server %s started: pid %ld, listening on %s:%d\n", st.name[0] ? st.name : name,
                       (long)pid, st.bind, st.port);
                return EXIT_OK;
            }
        }
        if (now_seconds() >= deadline) {
            snprintf(reason, sizeof reason, "it did not %s within %.0f s",
                     addr[0] ? "answer a ping" : "report that it is listening", timeout);
            if (!kill_and_wait(pid, SIGTERM, 3, true))
                kill_and_wait(pid, SIGKILL, 3, true);
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    (void)ctx;
    cli_err("server %s did not start: %s", name, reason);
    print_tail(log_path, 20, log_start);
    print_tail(out_path, 20, 0);
    return EXIT_ERR;
}

/* Looks up key in a MessagePack map and returns a cursor at its value. */
static bool map_find(const agate_buf *b, const char *key, mp_cursor *val)
{
    mp_cursor c;
    uint32_t n;
    mp_cursor_init(&c, b->data, b->len);
    if (mp_read_map(&c, &n))
        return false;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k;
        uint32_t len;
        bool is_str;
        if (mp_read_bytes(&c, &k, &len, &is_str))
            return false;
        if (len == kl && memcmp(k, key, kl) == 0) {
            *val = c;
            return true;
        }
        if (mp_skip(&c, MP_MAX_DEPTH_LIMIT))
            return false;
    }
    return false;
}

static bool info_uint(const agate_buf *b, const char *key, uint64_t *out)
{
    mp_cursor c;
    return map_find(b, key, &c) && mp_read_uint(&c, out) == 0;
}

static bool info_str(const agate_buf *b, const char *key, char *out, size_t cap)
{
    mp_cursor c;
    const uint8_t *p;
    uint32_t n;
    if (!map_find(b, key, &c) || mp_read_str(&c, &p, &n))
        return false;
    snprintf(out, cap, "%.*s", (int)n, (const char *)p);
    return true;
}

/* Prints the interesting SERVER_INFO fields as "label: value" lines. */
static void print_info_lines(table_t *t, const agate_buf *info)
{
    char s[256], tmp[64];
    uint64_t u;
    if (info_str(info, "version", s, sizeof s)) {
        table_cell(t, "version:");
        table_cell(t, "%s", s);
    }
    if (info_uint(info, "member_id", &u)) {
        table_cell(t, "member id:");
        table_cell(t, "%llu", (unsigned long long)u);
    }
    if (info_uint(info, "uptime_s", &u)) {
        fmt_duration(u, tmp, sizeof tmp);
        table_cell(t, "uptime:");
        table_cell(t, "%s", tmp);
    }
    if (info_uint(info, "threads", &u)) {
        table_cell(t, "threads:");
        table_cell(t, "%llu", (unsigned long long)u);
    }
    if (info_uint(info, "connections", &u)) {
        table_cell(t, "connections:");
        table_cell(t, "%llu", (unsigned long long)u);
    }
    if (info_uint(info, "regions", &u)) {
        table_cell(t, "regions:");
        table_cell(t, "%llu", (unsigned long long)u);
    }
    if (info_uint(info, "entries", &u)) {
        fmt_count(u, tmp, sizeof tmp);
        table_cell(t, "entries:");
        table_cell(t, "%s", tmp);
    }
}

/* status server --server=HOST:PORT: only what the protocol can tell. */
static int status_remote(cli_ctx *ctx, const cli_args *a)
{
    agate_client *c = cli_connect(ctx, a);
    if (!c)
        return EXIT_ERR;
    double t0 = now_seconds();
    int rc = agate_ping(c);
    double ping_ms = (now_seconds() - t0) * 1000;
    agate_buf info = {0};
    if (rc == 0)
        rc = agate_server_info(c, &info);
    if (rc < 0) {
        int e = cli_fail(c, rc, cli_server(ctx, a));
        cli_release(ctx, c);
        return e;
    }
    const char *addr = agate_server_address(c);
    if (!addr)
        addr = cli_server(ctx, a);
    if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        jw_ckey(&d.w, "server");
        jw_cstr(&d.w, addr);
        jw_ckey(&d.w, "ping");
        jw_bool(&d.w, true);
        jw_ckey(&d.w, "ping_ms");
        jw_double(&d.w, ping_ms);
        jw_ckey(&d.w, "info");
        mp_cursor cur;
        mp_cursor_init(&cur, info.data, info.len);
        if (jw_mp(&d.w, &cur))
            jw_null(&d.w);
        jw_end_object(&d.w);
        rc = json_doc_print(&d);
    } else {
        char name[128] = "?";
        info_str(&info, "name", name, sizeof name);
        printf("Server %s at %s is running\n", name, addr);
        table_t t;
        table_init(&t, 2, NULL, NULL);
        table_cell(&t, "ping:");
        table_cell(&t, "ok (%.2f ms)", ping_ms);
        print_info_lines(&t, &info);
        table_print(&t, stdout);
        table_free(&t);
        rc = EXIT_OK;
    }
    agate_buf_free(&info);
    cli_release(ctx, c);
    return rc;
}

/* Reaps children that exited (daemons started from this shell), so that a
 * stopped one does not linger as a zombie that still "exists". */
static void reap_children(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int cmd_status_server(cli_ctx *ctx, const cli_args *a)
{
    if (a->server && !cli_has(a, "dir") && !cli_has(a, "name"))
        return status_remote(ctx, a);
    reap_children();
    char dir[PATH_MAX];
    server_dir(a, dir, sizeof dir);
    server_status st;
    if (read_status(dir, &st) != 0) {
        cli_err("no server status in %s: %s (never started there?)", dir, strerror(errno));
        return EXIT_ERR;
    }
    bool alive = strcmp(st.state, "running") == 0 && pid_alive(st.pid);
    char addr[192];
    connect_address(&st, addr, sizeof addr);
    agate_client *c = NULL;
    double ping_ms = 0;
    bool ping_ok = false;
    agate_buf info = {0};
    if (alive) {
        double t0 = now_seconds();
        ping_ok = quiet_ping(addr, &c) == 0;
        ping_ms = (now_seconds() - t0) * 1000;
        if (ping_ok && agate_server_info(c, &info) != 0)
            agate_buf_free(&info);
        agate_client_free(c);
    }
    const char *state = alive ? (ping_ok ? "running" : "not responding")
                              : (strcmp(st.state, "running") == 0 ? "not running (stale status file)"
                                                                  : "stopped");
    int rc = alive && ping_ok ? EXIT_OK : EXIT_ERR;
    if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        jw_ckey(&d.w, "name");
        jw_cstr(&d.w, st.name);
        jw_ckey(&d.w, "dir");
        jw_cstr(&d.w, dir);
        jw_ckey(&d.w, "pid");
        jw_int(&d.w, st.pid);
        jw_ckey(&d.w, "alive");
        jw_bool(&d.w, alive);
        jw_ckey(&d.w, "state");
        jw_cstr(&d.w, alive ? (ping_ok ? "running" : "not_responding") : "stopped");
        jw_ckey(&d.w, "host");
        jw_cstr(&d.w, st.bind);
        jw_ckey(&d.w, "port");
        jw_int(&d.w, st.port);
        jw_ckey(&d.w, "ping");
        jw_bool(&d.w, ping_ok);
        if (info.data) {
            jw_ckey(&d.w, "info");
            mp_cursor cur;
            mp_cursor_init(&cur, info.data, info.len);
            if (jw_mp(&d.w, &cur))
                jw_null(&d.w);
        }
        jw_end_object(&d.w);
        int prc = json_doc_print(&d);
        agate_buf_free(&info);
        return prc ? prc : rc;
    }
    printf("Server %s in %s is %s\n", st.name[0] ? st.name : "?", dir, state);
    table_t t;
    table_init(&t, 2, NULL, NULL);
    table_cell(&t, "pid:");
    table_cell(&t, "%ld%s", st.pid, alive ? "" : " (not alive)");
    table_cell(&t, "listening on:");
    table_cell(&t, "%s:%d", st.bind, st.port);
    if (alive) {
        table_cell(&t, "ping:");
        if (ping_ok)
            table_cell(&t, "ok (%.2f ms)", ping_ms);
        else
            table_cell(&t, "failed");
    }
    if (info.data)
        print_info_lines(&t, &info);
    table_print(&t, stdout);
    table_free(&t);
    agate_buf_free(&info);
    return rc;
}

int cmd_stop_server(cli_ctx *ctx, const cli_args *a)
{
    (void)ctx;
    reap_children();
    char dir[PATH_MAX];
    server_dir(a, dir, sizeof dir);
    server_status st;
    if (read_status(dir, &st) != 0) {
        cli_err("no server status in %s: %s (never started there?)", dir, strerror(errno));
        return EXIT_ERR;
    }
    if (strcmp(st.state, "running") != 0 || !pid_alive(st.pid)) {
        cli_err("server %s in %s is not running", st.name[0] ? st.name : "?", dir);
        return EXIT_ERR;
    }
    double timeout = (double)cli_int(a, "timeout", 30);
    double t0 = now_seconds();
    pid_t pid = (pid_t)st.pid;
    bool graceful = kill_and_wait(pid, SIGTERM, timeout, false);
    bool killed = false;
    if (!graceful)
        killed = kill_and_wait(pid, SIGKILL, 5, false);
    double took = now_seconds() - t0;
    if (!graceful && !killed) {
        cli_err("server %s (pid %ld) survived SIGTERM and SIGKILL", st.name, st.pid);
        return EXIT_ERR;
    }
    if (a->json) {
        json_doc d;
        json_doc_init(&d);
        jw_begin_object(&d.w);
        jw_ckey(&d.w, "name");
        jw_cstr(&d.w, st.name);
        jw_ckey(&d.w, "pid");
        jw_int(&d.w, st.pid);
        jw_ckey(&d.w, "stopped");
        jw_bool(&d.w, true);
        jw_ckey(&d.w, "signal");
        jw_cstr(&d.w, graceful ? "SIGTERM" : "SIGKILL");
        jw_ckey(&d.w, "seconds");
        jw_double(&d.w, (double)(long)(took * 100) / 100);
        jw_end_object(&d.w);
        return json_doc_print(&d);
    }
    if (graceful)
        printf("Server %s stopped (pid %ld, SIGTERM, %.2f s)\n", st.name, st.pid, took);
    else
        printf("Server %s did not stop within %.0f s after SIGTERM; killed it with SIGKILL (pid %ld)\n",
               st.name, timeout, st.pid);
    return EXIT_OK;
}
