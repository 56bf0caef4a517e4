/* progress.c - the progress bar. */
#include "tools/cli/progress.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tools/cli/output.h"

void progress_init(progress_t *p, progress_unit unit, uint64_t total)
{
    memset(p, 0, sizeof(*p));
    p->enabled = isatty(STDERR_FILENO) == 1;
    p->unit = unit;
    p->total = total;
    p->start = now_seconds();
}

static int term_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

void progress_update(progress_t *p, uint64_t done, uint64_t entries, bool force)
{
    if (!p->enabled)
        return;
    double now = now_seconds();
    if (!force && now - p->last_draw < 0.1)
        return;
    p->last_draw = now;
    double elapsed = now - p->start;
    double rate = elapsed > 0 ? (double)entries / elapsed : 0;

    char amount[96], text[200];
    if (p->unit == PROGRESS_BYTES) {
        char d[24], t[24];
        fmt_bytes(done, d, sizeof d);
        if (p->total) {
            fmt_bytes(p->total, t, sizeof t);
            snprintf(amount, sizeof amount, "%s/%s", d, t);
        } else {
            snprintf(amount, sizeof amount, "%s", d);
        }
    } else {
        char d[32], t[32];
        fmt_count(done, d, sizeof d);
        if (p->total) {
            fmt_count(p->total, t, sizeof t);
            snprintf(amount, sizeof amount, "%s/%s entries", d, t);
        } else {
            snprintf(amount, sizeof amount, "%s entries", d);
        }
    }
    char eta[32] = "";
    if (p->total && done > 0 && done < p->total && elapsed > 0.5) {
        double left = elapsed * (double)(p->total - done) / (double)done;
        char dur[24];
        fmt_duration((uint64_t)(left + 0.5), dur, sizeof dur);
        snprintf(eta, sizeof eta, "  ETA %s", dur);
    }
    char r[32];
    fmt_count((uint64_t)rate, r, sizeof r);
    int pct = -1;
    if (p->total) {
        uint64_t capped = done > p->total ? p->total : done;
        pct = (int)((double)capped * 100.0 / (double)p->total);
    }
    if (pct >= 0)
        snprintf(text, sizeof text, "%3d%%  %s  %s entries/s%s", pct, amount, r, eta);
    else
        snprintf(text, sizeof text, "%s  %s entries/s", amount, r);

    int width = term_width() - 1; /* never touch the last column: no wrap */
    int textlen = (int)strlen(text);
    /* A fixed bar width (shrunk only on narrow terminals) keeps the bar
     * from jumping as the numbers after it grow. */
    int barw = 30;
    if (width - textlen - 3 < barw)
        barw = width - textlen - 3;
    char line[512];
    int n = 0;
    if (pct >= 0 && barw >= 10) {
        int fill = pct * barw / 100;
        line[n++] = '[';
        for (int i = 0; i < barw; i++)
            line[n++] = i < fill ? '#' : (i == fill ? '>' : '.');
        line[n++] = ']';
        line[n++] = ' ';
    }
    n += snprintf(line + n, sizeof line - (size_t)n, "%s", text);
    if (n > width)
        n = width;
    int blank = p->last_width > n ? p->last_width - n : 0;
    fprintf(stderr, "\r%.*s%*s", n, line, blank, "");
    fflush(stderr);
    p->last_width = n;
}

void progress_finish(progress_t *p)
{
    if (!p->enabled || p->last_width == 0)
        return;
    fprintf(stderr, "\r%*s\r", p->last_width, "");
    fflush(stderr);
    p->last_width = 0;
}
