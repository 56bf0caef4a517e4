#include "server/daemon_files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static int path_in(char *out, size_t cap, const char *dir, const char *file)
{
    int n = snprintf(out, cap, "%s/%s", dir, file);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int dir_ensure(const char *dir)
{
    char tmp[PATH_MAX];
    if (strlen(dir) >= sizeof(tmp))
        return -ENAMETOOLONG;
    strcpy(tmp, dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST)
        return -errno;
    return 0;
}

int dir_lock(const char *dir, long *holder)
{
    char path[PATH_MAX];
    *holder = 0;
    if (path_in(path, sizeof(path), dir, "agated.lock"))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int err = errno;
        char buf[32] = {0};
        if (pread(fd, buf, sizeof(buf) - 1, 0) > 0)
            *holder = strtol(buf, NULL, 10);
        close(fd);
        return -err;
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) || pwrite(fd, pid, (size_t)n, 0) != n) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* Writes content to dir/file through a temporary file and rename, so a
 * reader never sees half of it. */
static int write_atomically(const char *dir, const char *file, const char *content)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (path_in(path, sizeof(path), dir, file) || path_in(tmp, sizeof(tmp), dir, ".tmp-status"))
        return -ENAMETOOLONG;
    FILE *fp = fopen(tmp, "w");
    if (!fp)
        return -errno;
    int ok = fputs(content, fp) >= 0;
    ok = (fclose(fp) == 0) && ok;
    if (!ok || rename(tmp, path)) {
        int err = errno ? errno : EIO;
        unlink(tmp);
        return -err;
    }
    return 0;
}

int member_id_load(const char *dir, uint32_t *id)
{
    char path[PATH_MAX];
    if (path_in(path, sizeof(path), dir, "member.id"))
        return -ENAMETOOLONG;
    FILE *fp = fopen(path, "r");
    if (fp) {
        unsigned long v = 0;
        int ok = fscanf(fp, "%lu", &v) == 1 && v > 0 && v <= UINT32_MAX;
        fclose(fp);
        if (ok) {
            *id = (uint32_t)v;
            return 0;
        }
    }
    uint32_t v = 0;
    while (v == 0)
        if (getrandom(&v, sizeof(v), 0) != sizeof(v))
            return -errno;
    char text[32];
    snprintf(text, sizeof(text), "%u\n", v);
    int rc = write_atomically(dir, "member.id", text);
    if (rc == 0)
        *id = v;
    return rc;
}

int status_write(const server_config *cfg, int port, const char *state)
{
    char text[512];
    snprintf(text, sizeof(text), "pid=%ld\nname=%s\nrole=%s\nbind=%s\nport=%d\nstate=%s\n",
             (long)getpid(), cfg->name, cfg->locator ? "locator" : "server", cfg->bind, port,
             state);
    return write_atomically(cfg->dir, "agated.status", text);
}
