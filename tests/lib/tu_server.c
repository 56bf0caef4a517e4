#include "tu_server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tu.h"

#ifndef TU_AGATED_PATH
#define TU_AGATED_PATH "agated"
#endif

const char *tu_agated_path(void)
{
    const char *s = getenv("AGATE_AGATED");
    return s && *s ? s : TU_AGATED_PATH;
}

static void path_in(char *out, size_t cap, const tu_server *s, const char *file)
{
    snprintf(out, cap, "%s/%s", s->dir, file);
}

void tu_server_dump(const tu_server *s)
{
    char path[4096];
    const char *files[] = {"agated.stderr", NULL, "agated.status"};
    char logname[128];
    snprintf(logname, sizeof(logname), "%s.log", s->name);
    files[1] = logname;
    for (size_t i = 0; i < 3; i++) {
        path_in(path, sizeof(path), s, files[i]);
        char *text = tu_read_file(path, NULL);
        fprintf(stderr, "---- %s ----\n%s\n", path, text ? text : "(missing)");
        free(text);
    }
}

int tu_server_start_in(tu_server *s, const char *name, const char *dir,
                       const char *const *extra_args)
{
    char *argv[64];
    char a_name[128], a_dir[4200], errp[4200], statusp[4200];
    int n = 0;
    s->pid = -1;
    s->port = 0;
    s->exit_status = -1;
    snprintf(s->name, sizeof(s->name), "%s", name);
    if (s->dir != dir) {
        free(s->dir);
        s->dir = strdup(dir);
    }
    snprintf(a_name, sizeof(a_name), "--name=%s", name);
    snprintf(a_dir, sizeof(a_dir), "--dir=%s", dir);
    argv[n++] = (char *)tu_agated_path();
    argv[n++] = "--role=server";
    argv[n++] = a_name;
    argv[n++] = a_dir;
    argv[n++] = "--port=0";
    argv[n++] = "--threads=2";
    for (int i = 0; extra_args && extra_args[i] && n < 62; i++)
        argv[n++] = (char *)extra_args[i];
    argv[n] = NULL;
    path_in(errp, sizeof(errp), s, "agated.stderr");
    path_in(statusp, sizeof(statusp), s, "agated.status");
    unlink(statusp);
    s->pid = tu_spawn(argv, NULL, errp);
    if (s->pid < 0) {
        fprintf(stderr, "tu_server_start: cannot spawn %s\n", argv[0]);
        return -1;
    }
    int64_t deadline = tu_now_ms() + 20000 * tu_timeout_scale();
    while (tu_now_ms() < deadline) {
        int st;
        if (tu_wait_child(s->pid, 0, &st) == 1) {
            fprintf(stderr, "tu_server_start: agated exited during startup (status %d)\n", st);
            s->exit_status = st;
            s->pid = -1;
            tu_server_dump(s);
            return -1;
        }
        char *text = tu_read_file(statusp, NULL);
        if (text) {
            char *pid = tu_kv_get(text, "pid"), *port = tu_kv_get(text, "port"),
                 *state = tu_kv_get(text, "state");
            int ok = pid && port && state && atol(pid) == (long)s->pid &&
                     strcmp(state, "running") == 0 && atoi(port) > 0;
            if (ok) {
                s->port = atoi(port);
                snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", s->port);
            }
            free(pid);
            free(port);
            free(state);
            free(text);
            if (ok)
                return 0;
        }
        tu_sleep_ms(10);
    }
    fprintf(stderr, "tu_server_start: agated did not report running in time\n");
    tu_server_dump(s);
    tu_server_kill(s);
    return -1;
}

int tu_server_start(tu_server *s, const char *name, const char *const *extra_args)
{
    char *dir = tu_mkdtemp(name);
    if (!dir)
        return -1;
    s->dir = NULL;
    int rc = tu_server_start_in(s, name, dir, extra_args);
    free(dir);
    return rc;
}

/* State letter of a process from /proc (R, S, T, Z, ...), or 0. */
static char proc_state(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    char *st = tu_read_file(path, NULL);
    if (!st)
        return 0;
    const char *rp = strrchr(st, ')');
    char c = rp && rp[1] == ' ' ? rp[2] : 0;
    free(st);
    return c;
}

int tu_server_signal(tu_server *s, int sig)
{
    if (s->pid <= 0 || kill(s->pid, sig) != 0)
        return -1;
    if (sig == SIGSTOP) {
        /* delivery is asynchronous: wait until every thread is stopped */
        int64_t deadline = tu_now_ms() + 5000;
        while (proc_state(s->pid) != 'T' && tu_now_ms() < deadline)
            tu_sleep_ms(1);
    }
    return 0;
}

void tu_server_kill(tu_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    int st = 0;
    tu_wait_child(s->pid, 10000, &st);
    s->exit_status = st;
    s->pid = -1;
}

int tu_server_stop(tu_server *s, int timeout_ms)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGCONT);
    kill(s->pid, SIGTERM);
    int st = 0;
    int r = tu_wait_child(s->pid, timeout_ms, &st);
    if (r != 1) {
        fprintf(stderr, "tu_server_stop: %s (pid %ld) did not stop within %d ms; killing it\n",
                s->name, (long)s->pid, timeout_ms);
        tu_server_kill(s);
        return -1;
    }
    s->exit_status = st;
    s->pid = -1;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "tu_server_stop: %s exited with %s %d\n", s->name,
                WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        tu_server_dump(s);
        return -1;
    }
    char statusp[4200];
    path_in(statusp, sizeof(statusp), s, "agated.status");
    char *text = tu_read_file(statusp, NULL);
    char *state = text ? tu_kv_get(text, "state") : NULL;
    int ok = state && strcmp(state, "stopped") == 0;
    free(state);
    free(text);
    if (!ok) {
        fprintf(stderr, "tu_server_stop: %s: status file does not say state=stopped\n", s->name);
        return -1;
    }
    return 0;
}

bool tu_server_sanitizer_clean(const tu_server *s, char *why, size_t cap)
{
    char errp[4200];
    path_in(errp, sizeof(errp), s, "agated.stderr");
    char *text = tu_read_file(errp, NULL);
    if (!text)
        return true;
    const char *hit = strstr(text, "ERROR: AddressSanitizer");
    if (!hit)
        hit = strstr(text, "ERROR: LeakSanitizer");
    if (!hit)
        hit = strstr(text, "runtime error:");
    if (hit && why && cap)
        snprintf(why, cap, "%.*s", (int)(cap - 1), hit);
    free(text);
    return hit == NULL;
}

void tu_server_cleanup(tu_server *s, bool keep)
{
    if (s->pid > 0)
        tu_server_stop(s, 10000 * tu_timeout_scale());
    if (s->dir) {
        if (keep)
            fprintf(stderr, "keeping %s for inspection\n", s->dir);
        else
            tu_rm_rf(s->dir);
        free(s->dir);
        s->dir = NULL;
    }
}
