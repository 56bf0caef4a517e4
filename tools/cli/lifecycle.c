/* lifecycle.c - start, status and stop of servers and locators.
 *
 * Both are the daemon agated, in the role server or locator; one code path
 * serves both, parameterised by a daemon_kind (the role, its defaults and
 * the options passed through). The daemon runs in the foreground; `start
 * server` / `start locator` detach it (fork, setsid, stdio away from the
 * terminal) and then watch two things until it is usable: the child
 * process (did it exit?) and the status file DIR/agated.status that agated
 * writes atomically once it listens. Only when the file names our child as
 * running AND a ping over the protocol succeeds do we report success, so
 * "started" means "answers". */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/locators.h"
#include "common/proto.h"
#include "tools/cli/cli.h"
#include "tools/cli/doc.h"
#include "tools/cli/output.h"

#define STATUS_FILE "agated.status"
#define LOCK_FILE "agated.lock"

/* What differs between starting, watching and stopping a server and a
 * locator. */
typedef struct daemon_kind {
    const char *role;         /* agated --role=, and role= in the status file */
    const char *title;        /* the role starting a sentence */
    const char *default_name; /* --name's default; --dir's is ./NAME */
    int default_port;
    const char *const *pass;  /* options passed to agated as given, NULL-ended */
} daemon_kind;

static const char *const server_pass[] = {
    "bind-address", "threads", "max-frame-size", "max-key-size", "max-value-size",
    "max-depth", "log-level", "locators", "member-timeout", "query-threads",
    "journal-bytes-per-bucket", NULL,
};
static const char *const locator_pass[] = {
    "bind-address", "member-timeout", "recovery-delay", "log-level", NULL,
};
static const daemon_kind KIND_SERVER = {"server", "Server", "server1", AGATE_DEFAULT_PORT,
                                        server_pass};
static const daemon_kind KIND_LOCATOR = {"locator", "Locator", "locator1",
                                         AGATE_DEFAULT_LOCATOR_PORT, locator_pass};

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
    agate_client *c = cli_client_new(1000, 2000);
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
 * (NAME from --name, default the kind's: server1, locator1). */
static void daemon_dir(const cli_args *a, const daemon_kind *k, char *out, size_t cap)
{
    const char *dir = cli_str(a, "dir");
    char given[PATH_MAX];
    if (dir)
        snprintf(given, sizeof given, "%s", dir);
    else
        snprintf(given, sizeof given, "./%s", cli_str_or(a, "name", k->default_name));
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

/* Says in out how the daemon ended, from its wait status. */
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

/* ---- start server / start locator ------------------------------------- */

/* Checks --name, creates the daemon's directory (--dir, else ./NAME) and
 * resolves it into dir (PATH_MAX bytes), refusing one where a daemon runs.
 * Returns 0, or EXIT_USAGE / EXIT_ERR after the message. */
static int prepare_daemon_dir(const cli_args *a, const daemon_kind *k, const char *name,
                              char *dir)
{
    char dir_arg[PATH_MAX];
    daemon_dir(a, k, dir_arg, sizeof dir_arg);
    if (!*name || strchr(name, '/'))
        return cli_usage_error(a->cmd, "--name must be a non-empty name without '/'");
    if (mkdir_p(dir_arg) != 0) {
        cli_err("cannot create directory %s: %s", dir_arg, strerror(errno));
        return EXIT_ERR;
    }
    if (!realpath(dir_arg, dir)) {
        cli_err("cannot resolve directory %s: %s", dir_arg, strerror(errno));
        return EXIT_ERR;
    }
    if (dir_locked(dir)) {
        server_status st;
        read_status(dir, &st);
        const char *role = st.role[0] ? st.role : "server";
        if (st.present && st.pid > 0)
            cli_err("a %s is already running in %s (pid %ld, name %s)", role, dir, st.pid,
                    st.name);
        else
            cli_err("a %s is already running in %s", role, dir);
        return EXIT_ERR;
    }
    return 0;
}

#define DAEMON_MAX_ARGS 16

/* The command line of agated, NULL-terminated. */
typedef struct daemon_argv {
    char *argv[DAEMON_MAX_ARGS + 1];
    char bufs[DAEMON_MAX_ARGS][PATH_MAX + 32];
    int n;
} daemon_argv;

/* Appends one argument, formatted as by printf. */
static void add_arg(daemon_argv *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add_arg(daemon_argv *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->bufs[d->n], sizeof d->bufs[d->n], fmt, ap);
    va_end(ap);
    d->argv[d->n] = d->bufs[d->n];
    d->argv[++d->n] = NULL;
}

/* Builds agated's command line: the daemon, its role, name, directory and
 * port, and the options of the kind passed through as they were given. */
static void build_daemon_argv(const cli_args *a, const daemon_kind *k, const char *name,
                              const char *dir, daemon_argv *d)
{
    char daemon[PATH_MAX];
    find_daemon(daemon, sizeof daemon);
    d->n = 0;
    add_arg(d, "%s", daemon);
    add_arg(d, "--role=%s", k->role);
    add_arg(d, "--name=%s", name);
    add_arg(d, "--dir=%s", dir);
    add_arg(d, "--port=%lld", cli_int(a, "port", k->default_port));
    for (const char *const *o = k->pass; *o; o++) {
        if (!cli_has(a, *o))
            continue;
        if (cli_opt_of(a, *o)->type != OPT_STR)
            add_arg(d, "--%s=%lld", *o, cli_int(a, *o, 0));
        else
            add_arg(d, "--%s=%s", *o, cli_str(a, *o));
    }
}

/* Starts argv (the daemon) in the background with its output going to
 * out_path. Returns its pid, or -1 after the message when it could not be
 * forked or run: the child reports a failed exec through a close-on-exec
 * pipe, which a successful exec closes unwritten. */
static pid_t spawn_daemon(char **argv, const char *out_path)
{
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0) {
        cli_err("pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        cli_err("fork: %s", strerror(errno));
        close(errpipe[0]);
        close(errpipe[1]);
        return -1;
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
    if (r != (ssize_t)sizeof child_errno)
        return pid;
    waitpid(pid, NULL, 0);
    cli_err("cannot run %s: %s%s", argv[0], strerror(child_errno),
            child_errno == ENOENT ? " (set AGATE_DAEMON to the agated binary)" : "");
    return -1;
}

/* Waits until the daemon pid is usable: the status file in dir names it as
 * running and a ping succeeds. Returns true with st read; false with reason
 * set when it exited, or did not come up within timeout seconds (it is
 * killed then). */
static bool wait_until_up(pid_t pid, const char *dir, double timeout, server_status *st,
                          char *reason, size_t cap)
{
    double deadline = now_seconds() + timeout;
    char addr[192] = "";
    for (;;) {
        int ws;
        if (waitpid(pid, &ws, WNOHANG) == pid) {
            describe_exit(ws, reason, cap);
            return false;
        }
        if (read_status(dir, st) == 0 && st->pid == pid && strcmp(st->state, "running") == 0) {
            connect_address(st, addr, sizeof addr);
            if (quiet_ping(addr, NULL) == 0)
                return true;
        }
        if (now_seconds() >= deadline) {
            snprintf(reason, cap, "it did not %s within %.0f s",
                     addr[0] ? "answer a ping" : "report that it is listening", timeout);
            if (!kill_and_wait(pid, SIGTERM, 3, true))
                kill_and_wait(pid, SIGKILL, 3, true);
            return false;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Prints that the daemon (pid, status st) started: its name (as it reports
 * it, else as asked), where it listens, its directory and log; for a
 * locator also how to use it. */
static int print_started(const cli_args *a, const daemon_kind *k, const char *name, pid_t pid,
                         const server_status *st, const char *dir, const char *log_path)
{
    const char *shown = st->name[0] ? st->name : name;
    if (a->json)
        return json_print_object(
            stdout, JSON_FIELDS(JF_STR("name", shown), JF_STR("role", k->role), JF_INT("pid", pid),
                                JF_STR("host", st->bind), JF_INT("port", st->port),
                                JF_STR("dir", dir), JF_STR("log", log_path)));
    printf("%s %s started: pid %ld, listening on %s:%d\n", k->title, shown, (long)pid, st->bind,
           st->port);
    if (k == &KIND_LOCATOR) {
        char addr[192];
        connect_address(st, addr, sizeof addr);
        char *colon = strrchr(addr, ':');
        if (colon)
            *colon = 0;
        printf("Servers join it with --locators=%s[%d]; commands use --locator=%s[%d]\n", addr,
               st->port, addr, st->port);
    }
    return EXIT_OK;
}

/* start server / start locator: starts agated detached in its directory
 * and waits until it answers a ping (or exits, or --timeout passes: then
 * its log is shown). */
static int start_daemon(const cli_args *a, const daemon_kind *k)
{
    const char *name = cli_str_or(a, "name", k->default_name);
    if (k == &KIND_SERVER && cli_has(a, "locators")) {
        char err[300];
        if (locators_check(cli_str(a, "locators"), err, sizeof err) != 0)
            return cli_usage_error(a->cmd, "option --locators: %s", err);
    }
    char dir[PATH_MAX];
    int rc = prepare_daemon_dir(a, k, name, dir);
    if (rc)
        return rc;
    daemon_argv d;
    build_daemon_argv(a, k, name, dir, &d);
    char out_path[PATH_MAX + 64], log_path[PATH_MAX + 64];
    snprintf(out_path, sizeof out_path, "%s/%s.out", dir, name);
    snprintf(log_path, sizeof log_path, "%s/%s.log", dir, name);
    off_t log_start = file_size(log_path);
    pid_t pid = spawn_daemon(d.argv, out_path);
    if (pid < 0)
        return EXIT_ERR;
    server_status st;
    char reason[256] = "";
    if (wait_until_up(pid, dir, (double)cli_int(a, "timeout", 60), &st, reason, sizeof reason))
        return print_started(a, k, name, pid, &st, dir, log_path);
    cli_err("%s %s did not start: %s", k->role, name, reason);
    print_tail(log_path, 20, log_start);
    print_tail(out_path, 20, 0);
    return EXIT_ERR;
}

int cmd_start_server(cli_ctx *ctx, const cli_args *a)
{
    return start_daemon(a, &KIND_SERVER);
}

int cmd_start_locator(cli_ctx *ctx, const cli_args *a)
{
    return start_daemon(a, &KIND_LOCATOR);
}

/* ---- status server / status locator ---------------------------------- */

/* How a SERVER_INFO field is shown in the status commands' text output. */
typedef enum info_format {
    INFO_TEXT,     /* a string, as is */
    INFO_NUMBER,   /* an unsigned integer, in digits */
    INFO_DURATION, /* seconds, as "1h 02m 03s" */
    INFO_COUNT,    /* an unsigned integer, as "1,234" */
} info_format;

static const struct info_row {
    const char *key; /* in SERVER_INFO */
    const char *label;
    info_format format;
} info_rows[] = {
    {"version", "version:", INFO_TEXT},
    {"member_id", "member id:", INFO_NUMBER},
    {"uptime_s", "uptime:", INFO_DURATION},
    {"threads", "threads:", INFO_NUMBER},
    {"connections", "connections:", INFO_NUMBER},
    {"regions", "regions:", INFO_NUMBER},
    {"entries", "entries:", INFO_COUNT},
};

/* Formats the field of info that row names into out. False when info
 * lacks it (or holds another type). */
static bool format_info(const agate_buf *info, const struct info_row *row, char *out, size_t cap)
{
    mp_cursor root = doc_root(info);
    if (row->format == INFO_TEXT)
        return doc_get_str(root, row->key, out, cap);
    uint64_t u;
    if (!doc_get_uint(root, row->key, &u))
        return false;
    if (row->format == INFO_DURATION)
        fmt_duration(u, out, cap);
    else if (row->format == INFO_COUNT)
        fmt_count(u, out, cap);
    else
        snprintf(out, cap, "%llu", (unsigned long long)u);
    return true;
}

/* Adds the interesting SERVER_INFO fields to t as "label: value" rows. */
static void add_info_rows(table_t *t, const agate_buf *info)
{
    for (size_t i = 0; i < sizeof info_rows / sizeof info_rows[0]; i++) {
        char value[256];
        if (format_info(info, &info_rows[i], value, sizeof value))
            table_pair(t, info_rows[i].label, "%s", value);
    }
}

/* Adds a locator's view of its cluster (a CLUSTER_STATUS map) to t:
 * "cluster: view 3, metadata version 17, 2 members, 1 region". */
static void add_cluster_row(table_t *t, const agate_buf *cluster)
{
    mp_cursor root = doc_root(cluster);
    uint64_t view = 0, version = 0;
    doc_iter members, regions;
    bool have_m = doc_get_array(root, "members", &members);
    bool have_r = doc_get_array(root, "regions", &regions);
    if (!doc_get_uint(root, "view_id", &view) || !have_m || !have_r)
        return;
    doc_get_uint(root, "metadata_version", &version);
    table_pair(t, "cluster:", "view %llu, metadata version %llu, %u member%s, %u region%s",
               (unsigned long long)view, (unsigned long long)version, members.left,
               members.left == 1 ? "" : "s", regions.left, regions.left == 1 ? "" : "s");
}

/* The cluster status a locator at addr reports, into *out (left empty when
 * it does not answer: the status commands show what they can). */
static void locator_cluster_status(const char *addr, agate_buf *out)
{
    agate_client *c = cli_client_new(1000, 2000);
    if (c && (agate_connect_locator(c, addr) != 0 || agate_cluster_status(c, out) != 0))
        agate_buf_free(out);
    agate_client_free(c);
}

/* Prints the text of a status command asking over the network: the
 * daemon's name and address, the ping time, the SERVER_INFO rows and a
 * locator's cluster. */
static void print_remote_status(const daemon_kind *k, const char *addr, double ping_ms,
                                const agate_buf *info, const agate_buf *cluster)
{
    char name[128] = "?";
    doc_get_str(doc_root(info), "name", name, sizeof name);
    printf("%s %s at %s is running\n", k->title, name, addr);
    table_t t;
    table_init(&t, 2, NULL, NULL);
    table_pair(&t, "ping:", "ok (%.2f ms)", ping_ms);
    add_info_rows(&t, info);
    if (cluster->data)
        add_cluster_row(&t, cluster);
    table_print(&t, stdout);
    table_free(&t);
}

/* status server --server=HOST:PORT, status locator --locator=HOST[PORT]:
 * only what the protocol can tell. */
static int status_remote(cli_ctx *ctx, const cli_args *a, const daemon_kind *k)
{
    cli_target target = cli_target_of(ctx, a, false);
    char what[300];
    cli_target_name(&target, what, sizeof what);
    agate_client *c = cli_connect(ctx, a);
    if (!c)
        return EXIT_ERR;
    double t0 = now_seconds();
    int rc = agate_ping(c);
    double ping_ms = (now_seconds() - t0) * 1000;
    agate_buf info = {0}, cluster = {0};
    if (rc == 0)
        rc = agate_server_info(c, &info);
    if (rc < 0)
        return cli_finish(ctx, c, rc, what);
    if (k == &KIND_LOCATOR && agate_cluster_status(c, &cluster) != 0)
        agate_buf_free(&cluster);
    const char *addr = target.locator ? NULL : agate_server_address(c);
    if (!addr)
        addr = target.addr;
    rc = EXIT_OK;
    if (a->json)
        rc = json_print_object(
            stdout, JSON_FIELDS(JF_STR(target.locator ? "locator" : "server", addr),
                                JF_BOOL("ping", true), JF_DOUBLE("ping_ms", ping_ms),
                                JF_MP("info", info.data, info.len),
                                JF_IF(cluster.data != NULL,
                                      JF_MP("cluster", cluster.data, cluster.len))));
    else
        print_remote_status(k, addr, ping_ms, &info, &cluster);
    agate_buf_free(&info);
    agate_buf_free(&cluster);
    cli_release(ctx, c);
    return rc;
}

void cli_reap_children(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

/* Reads the status file of the daemon a status/stop command names (--dir,
 * else ./NAME) after reaping exited children; dir (PATH_MAX bytes) gets the
 * directory. A daemon of the other role there is an error: stop server
 * must not stop a locator by mistake. Returns 0, or EXIT_ERR after the
 * message. */
static int load_daemon_status(const cli_args *a, const daemon_kind *k, char *dir,
                              server_status *st)
{
    cli_reap_children();
    daemon_dir(a, k, dir, PATH_MAX);
    if (read_status(dir, st) != 0) {
        cli_err("no %s status in %s: %s (never started there?)", k->role, dir, strerror(errno));
        return EXIT_ERR;
    }
    if (st->role[0] && strcmp(st->role, k->role) != 0) {
        /* suggest the same verb for the right role: "stop locator" */
        int verb = (int)strcspn(a->cmd->name, " ");
        cli_err("%s holds a %s (%s), not a %s: use 'agate %.*s %s'", dir, st->role,
                st->name[0] ? st->name : "?", k->role, verb, a->cmd->name, st->role);
        return EXIT_ERR;
    }
    return 0;
}

/* What status server finds out about a local daemon beyond its file. */
typedef struct server_probe {
    bool alive;       /* the status file says running and the process exists */
    bool ping_ok;
    double ping_ms;
    agate_buf info;   /* SERVER_INFO; data NULL when unknown */
    agate_buf cluster; /* a locator's CLUSTER_STATUS; data NULL when unknown */
} server_probe;

/* Checks that the daemon of st runs and pings it (asking SERVER_INFO, and
 * a locator its cluster status, when it answers). Free with probe_free. */
static void probe_daemon(const daemon_kind *k, const server_status *st, server_probe *pr)
{
    memset(pr, 0, sizeof(*pr));
    pr->alive = strcmp(st->state, "running") == 0 && pid_alive(st->pid);
    if (!pr->alive)
        return;
    char addr[192];
    connect_address(st, addr, sizeof addr);
    agate_client *c = NULL;
    double t0 = now_seconds();
    pr->ping_ok = quiet_ping(addr, &c) == 0;
    pr->ping_ms = (now_seconds() - t0) * 1000;
    if (pr->ping_ok && agate_server_info(c, &pr->info) != 0)
        agate_buf_free(&pr->info);
    agate_client_free(c);
    if (pr->ping_ok && k == &KIND_LOCATOR)
        locator_cluster_status(addr, &pr->cluster);
}

static void probe_free(server_probe *pr)
{
    agate_buf_free(&pr->info);
    agate_buf_free(&pr->cluster);
}

/* Prints a status command's --json for a local daemon. */
static int print_status_json(const daemon_kind *k, const server_status *st, const char *dir,
                             const server_probe *pr)
{
    const char *state = pr->alive ? (pr->ping_ok ? "running" : "not_responding") : "stopped";
    const agate_buf *info = &pr->info, *cl = &pr->cluster;
    return json_print_object(
        stdout, JSON_FIELDS(JF_STR("name", st->name), JF_STR("role", st->role[0] ? st->role : k->role),
                            JF_STR("dir", dir), JF_INT("pid", st->pid),
                            JF_BOOL("alive", pr->alive), JF_STR("state", state),
                            JF_STR("host", st->bind), JF_INT("port", st->port),
                            JF_BOOL("ping", pr->ping_ok),
                            JF_IF(info->data != NULL, JF_MP("info", info->data, info->len)),
                            JF_IF(cl->data != NULL, JF_MP("cluster", cl->data, cl->len))));
}

/* Prints a status command's text for a local daemon. */
static void print_status_text(const daemon_kind *k, const server_status *st, const char *dir,
                              const server_probe *pr)
{
    const char *state = pr->ping_ok ? "running" : "not responding";
    if (!pr->alive)
        state = strcmp(st->state, "running") == 0 ? "not running (stale status file)" : "stopped";
    printf("%s %s in %s is %s\n", k->title, st->name[0] ? st->name : "?", dir, state);
    table_t t;
    table_init(&t, 2, NULL, NULL);
    table_pair(&t, "pid:", "%ld%s", st->pid, pr->alive ? "" : " (not alive)");
    table_pair(&t, "listening on:", "%s:%d", st->bind, st->port);
    if (pr->alive && pr->ping_ok)
        table_pair(&t, "ping:", "ok (%.2f ms)", pr->ping_ms);
    else if (pr->alive)
        table_pair(&t, "ping:", "failed");
    if (pr->info.data)
        add_info_rows(&t, &pr->info);
    if (pr->cluster.data)
        add_cluster_row(&t, &pr->cluster);
    table_print(&t, stdout);
    table_free(&t);
}

/* status server / status locator: the state of the daemon in --dir (or
 * ./--name), or with only --server / --locator what that one says; exit 0
 * only if it answers. */
static int status_daemon(cli_ctx *ctx, const cli_args *a, const daemon_kind *k)
{
    if ((a->server || a->locator) && !cli_has(a, "dir") && !cli_has(a, "name"))
        return status_remote(ctx, a, k);
    char dir[PATH_MAX];
    server_status st;
    if (load_daemon_status(a, k, dir, &st) != 0)
        return EXIT_ERR;
    server_probe pr;
    probe_daemon(k, &st, &pr);
    int rc = pr.alive && pr.ping_ok ? EXIT_OK : EXIT_ERR;
    int prc = EXIT_OK;
    if (a->json)
        prc = print_status_json(k, &st, dir, &pr);
    else
        print_status_text(k, &st, dir, &pr);
    probe_free(&pr);
    return prc ? prc : rc;
}

int cmd_status_server(cli_ctx *ctx, const cli_args *a) { return status_daemon(ctx, a, &KIND_SERVER); }

int cmd_status_locator(cli_ctx *ctx, const cli_args *a)
{
    return status_daemon(ctx, a, &KIND_LOCATOR);
}

/* ---- stop server / stop locator --------------------------------------- */

/* stop server / stop locator: SIGTERM to the daemon in --dir (or
 * ./--name), SIGKILL if it is still there after --timeout seconds. */
static int stop_daemon(const cli_args *a, const daemon_kind *k)
{
    char dir[PATH_MAX];
    server_status st;
    if (load_daemon_status(a, k, dir, &st) != 0)
        return EXIT_ERR;
    if (strcmp(st.state, "running") != 0 || !pid_alive(st.pid)) {
        cli_err("%s %s in %s is not running", k->role, st.name[0] ? st.name : "?", dir);
        return EXIT_ERR;
    }
    double timeout = (double)cli_int(a, "timeout", 30);
    double t0 = now_seconds();
    pid_t pid = (pid_t)st.pid;
    bool graceful = kill_and_wait(pid, SIGTERM, timeout, false);
    bool killed = !graceful && kill_and_wait(pid, SIGKILL, 5, false);
    double took = now_seconds() - t0;
    if (!graceful && !killed) {
        cli_err("%s %s (pid %ld) survived SIGTERM and SIGKILL", k->role, st.name, st.pid);
        return EXIT_ERR;
    }
    if (a->json)
        return json_print_object(
            stdout, JSON_FIELDS(JF_STR("name", st.name), JF_STR("role", k->role),
                                JF_INT("pid", st.pid), JF_BOOL("stopped", true),
                                JF_STR("signal", graceful ? "SIGTERM" : "SIGKILL"),
                                JF_DOUBLE("seconds", (double)(long)(took * 100) / 100)));
    if (graceful)
        printf("%s %s stopped (pid %ld, SIGTERM, %.2f s)\n", k->title, st.name, st.pid, took);
    else
        printf("%s %s did not stop within %.0f s after SIGTERM; killed it with SIGKILL (pid %ld)\n",
               k->title, st.name, timeout, st.pid);
    return EXIT_OK;
}

int cmd_stop_server(cli_ctx *ctx, const cli_args *a) { return stop_daemon(a, &KIND_SERVER); }

int cmd_stop_locator(cli_ctx *ctx, const cli_args *a) { return stop_daemon(a, &KIND_LOCATOR); }
