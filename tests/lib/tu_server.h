/* tu_server.h - runs a real agated for a test: a fresh directory, port 0,
 * waits for agated.status to say it is running, stops it by pid.
 *
 * The agated binary is $AGATE_AGATED, else the path compiled in by CMake
 * (TU_AGATED_PATH). The server's stderr goes to DIR/agated.stderr so that
 * sanitizer reports from the server are kept and can be checked. */
#ifndef AGATE_TESTS_TU_SERVER_H
#define AGATE_TESTS_TU_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct tu_server {
    pid_t pid;
    int port;
    char name[64];
    char *dir;        /* malloc'd */
    char addr[64];    /* "127.0.0.1:PORT" */
    int exit_status;  /* waitpid status once stopped, else -1 */
} tu_server;

const char *tu_agated_path(void);

/* Starts agated --role=server --name=NAME --dir=<fresh> --port=0
 * --threads=2 plus extra_args (NULL-terminated, may be NULL). Returns 0,
 * or -1 with a message printed (the server's stderr included). */
int tu_server_start(tu_server *s, const char *name, const char *const *extra_args);
/* As tu_server_start but in an existing directory (restart). */
int tu_server_start_in(tu_server *s, const char *name, const char *dir,
                       const char *const *extra_args);
/* SIGTERM, then waits up to timeout_ms (SIGKILL after it). Returns 0 when
 * the server exited with status 0 and its status file says stopped. */
int tu_server_stop(tu_server *s, int timeout_ms);
/* SIGKILL and reap. */
void tu_server_kill(tu_server *s);
/* Sends sig (SIGSTOP, SIGCONT, ...); after SIGSTOP, returns once the
 * process is stopped. */
int tu_server_signal(tu_server *s, int sig);
/* True when the server's stderr holds no sanitizer report. When it does,
 * copies the first lines into why. */
bool tu_server_sanitizer_clean(const tu_server *s, char *why, size_t cap);
/* Prints the server's log and stderr (for failing tests). */
void tu_server_dump(const tu_server *s);
/* Stops it if running, then removes the directory (unless keep). */
void tu_server_cleanup(tu_server *s, bool keep);

#endif
