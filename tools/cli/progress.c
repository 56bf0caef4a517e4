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

/* Columns of the terminal on stderr (80 when unknown or tiny). */
static int term_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

/* Formats n in the bar's unit: "1.5 MiB" (bytes) or "1,234" (entries,
 * moves). */
static void format_amount(const progress_t *p, uint64_t n, char *out, size_t cap)
{
    if (p->unit == PROGRESS_BYTES)
        fmt_bytes(n, out, cap);
    else
        fmt_count(n, out, cap);
}

/* Writes the text after the bar into out: the percentage (when the total
 * is known), the amount done (of the total), the rate and the time left.
 * *pct gets the percentage, or -1 without a total. */
static void describe_progress(const progress_t *p, uint64_t done, uint64_t entries, double elapsed,
                              char *out, size_t cap, int *pct)
{
    const char *unit = p->unit == PROGRESS_ENTRIES ? " entries"
                       : p->unit == PROGRESS_MOVES ? " moves"
                                                   : "";
    char d[32], t[32], amount[96];
    format_amount(p, done, d, sizeof d);
    if (p->total) {
        format_amount(p, p->total, t, sizeof t);
        snprintf(amount, sizeof amount, "%s/%s%s", d, t, unit);
    } else {
        snprintf(amount, sizeof amount, "%s%s", d, unit);
    }
    char eta[32] = "";
    if (p->total && done > 0 && done < p->total && elapsed > 0.5) {
        double left = elapsed * (double)(p->total - done) / (double)done;
        char dur[24];
        fmt_duration((uint64_t)(left + 0.5), dur, sizeof dur);
        snprintf(eta, sizeof eta, "  ETA %s", dur);
    }
    char r[48] = "";
    if (p->unit != PROGRESS_MOVES) {
        char n[32];
        fmt_count((uint64_t)(elapsed > 0 ? (double)entries / elapsed : 0), n, sizeof n);
        snprintf(r, sizeof r, "  %s entries/s", n);
    }
    *pct = -1;
    if (p->total) {
        uint64_t capped = done > p->total ? p->total : done;
        *pct = (int)((double)capped * 100.0 / (double)p->total);
    }
    if (*pct >= 0)
        snprintf(out, cap, "%3d%%  %s%s%s", *pct, amount, r, eta);
    else
        snprintf(out, cap, "%s%s", amount, r);
}

/* Draws "[###>....] text" (the bar only with a percentage and room for it)
 * over the previous line, never into the terminal's last column. */
static void draw(progress_t *p, int pct, const char *text)
{
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

void progress_update(progress_t *p, uint64_t done, uint64_t entries, bool force)
{
    if (!p->enabled)
        return;
    double now = now_seconds();
    if (!force && now - p->last_draw < 0.1)
        return;
    p->last_draw = now;
    char text[200];
    int pct;
    describe_progress(p, done, entries, now - p->start, text, sizeof text, &pct);
    draw(p, pct, text);
}

void progress_finish(progress_t *p)
{
    if (!p->enabled || p->last_width == 0)
        return;
    fprintf(stderr, "\r%*s\r", p->last_width, "");
    fflush(stderr);
    p->last_width = 0;
}
