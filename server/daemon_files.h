/* daemon_files.h - what a member keeps in its directory:
 *   agated.lock    flock'ed while a member runs, so two cannot share a dir
 *   agated.status  key=value lines the CLI reads: pid, name, role, bind,
 *                  port, state (running|stopped); replaced atomically
 *   member.id      the member id, chosen at random on the first start
 *   NAME.log       the log (opened by main) */
#ifndef AGATE_SERVER_DAEMON_FILES_H
#define AGATE_SERVER_DAEMON_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "server/config.h"

/* Creates dir (and parents). 0 or -errno. */
int dir_ensure(const char *dir);
/* Takes the directory lock; returns the fd to keep open, or -errno
 * (-EWOULDBLOCK: another member holds it; *holder gets its pid if known). */
int dir_lock(const char *dir, long *holder);
/* Reads or creates member.id. 0 or -errno. */
int member_id_load(const char *dir, uint32_t *id);
/* Writes agated.status for the given state. 0 or -errno. */
int status_write(const server_config *cfg, int port, const char *state);

#endif
