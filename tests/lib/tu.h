/* tu.h - shared helpers for Agate's tests: temporary directories, child
 * processes that never outlive the test, time, files, and running a Check
 * suite so that its output ends with Check's summary line.
 *
 * Process hygiene
 *   Every process a test starts is recorded here (tu_spawn records its own
 *   children, tu_track_pid records processes a tool started detached, such as
 *   `agate start server`). They are killed by pid with SIGKILL
 *     - by tu_kill_all(), called from an atexit handler and from the fixture
 *       teardowns,
 *     - from a signal handler when the test process is interrupted (SIGINT,
 *       SIGTERM, SIGHUP, SIGABRT, SIGSEGV),
 *     - by the kernel (PR_SET_PDEATHSIG) when the process that spawned a
 *       direct child dies without running either.
 *   Only the process that recorded a pid kills it: Check forks every test,
 *   and a forked test exiting must not kill the suite's shared server. */
#ifndef AGATE_TESTS_TU_H
#define AGATE_TESTS_TU_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- time ---- */
int64_t tu_now_ms(void);
void tu_sleep_ms(int ms);
/* Multiplier for timeouts: 1, or more when built with sanitizers or when
 * AGATE_TEST_TIMEOUT_SCALE is set. */
int tu_timeout_scale(void);

/* ---- files and directories ---- */
/* Root for temporary directories: $AGATE_TEST_TMPDIR, else $TMPDIR, else /tmp. */
const char *tu_tmp_root(void);
/* Creates a fresh directory ROOT/TAG-PID-XXXXXX; returns it (malloc'd). */
char *tu_mkdtemp(const char *tag);
/* Removes a directory tree. Quiet about errors. */
void tu_rm_rf(const char *path);
/* Whole file, NUL-terminated (malloc'd), or NULL; *len may be NULL. */
char *tu_read_file(const char *path, size_t *len);
int tu_write_file(const char *path, const void *p, size_t n);
/* Value of "key=" in a key=value-per-line file (malloc'd), or NULL. */
char *tu_kv_get(const char *text, const char *key);

/* ---- processes ---- */
/* Starts argv[0] with stdout and stderr redirected to the given files
 * (NULL: /dev/null), stdin from /dev/null, in its own process group, with
 * PR_SET_PDEATHSIG=SIGKILL. Records the pid. Returns the pid or -1. */
pid_t tu_spawn(char *const argv[], const char *out_path, const char *err_path);
/* Records a pid that is not our child (a detached daemon). */
void tu_track_pid(pid_t pid);
/* Forgets a pid (it was reaped or stopped by the test). */
void tu_untrack_pid(pid_t pid);
/* Waits up to timeout_ms for our child pid to exit. Returns 1 and the
 * waitpid status, 0 on timeout, -1 on error. Untracks it when reaped. */
int tu_wait_child(pid_t pid, int timeout_ms, int *status);
/* Waits up to timeout_ms for any process pid (not necessarily our child)
 * to disappear. Returns true if it is gone. */
bool tu_wait_gone(pid_t pid, int timeout_ms);
/* True if pid exists and is not a zombie. */
bool tu_pid_alive(pid_t pid);
/* SIGKILLs every recorded process owned by this process and reaps children. */
void tu_kill_all(void);

/* ---- running ---- */
/* Creates a test case with a timeout of timeout_s seconds (times
 * tu_timeout_scale()) and adds it to s. */
TCase *tu_tcase(Suite *s, const char *name, int timeout_s);
/* Runs the suites (CK_RUN_SUITE / CK_RUN_CASE / CK_FORK work as in Check),
 * prints failures, then Check's summary line last. Returns the exit code. */
int tu_run(Suite **suites, int n);
/* Marks the run failed for a reason found outside a test (e.g. a shared
 * server that crashed, found in an unchecked teardown); printed before the
 * summary and counted as an error in it. */
void tu_fail_outside(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
