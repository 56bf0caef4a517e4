/* shell.c - the interactive shell (libedit) and its script mode.
 *
 * A shell line is split into words like a POSIX shell would (quotes,
 * backslashes) and run through cli_execute, the same path as the command
 * line, so `put --region=r --key=k --value='{"a": 1}'` means the same typed
 * here or given to a Unix shell. When stdin is not a terminal there is no
 * line editing and no prompt: lines are read and run one by one, which makes
 * the shell scriptable and testable through a pipe. */
#include <errno.h>
#include <histedit.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/cli/cli.h"
#include "tools/cli/output.h"

/* ---- word splitting --------------------------------------------------- */

typedef struct words {
    char **v;
    int n, cap;
} words_t;

static int words_push(words_t *w, const char *s, size_t n)
{
    if (w->n + 2 > w->cap) {
        int cap = w->cap ? w->cap * 2 : 8;
        char **v = realloc(w->v, (size_t)cap * sizeof(*v));
        if (!v)
            return -1;
        w->v = v;
        w->cap = cap;
    }
    char *copy = malloc(n + 1);
    if (!copy)
        return -1;
    memcpy(copy, s, n);
    copy[n] = 0;
    w->v[w->n++] = copy;
    w->v[w->n] = NULL;
    return 0;
}

void cli_free_words(char **argv)
{
    if (!argv)
        return;
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int cli_split_words(const char *line, char ***argv, const char **errmsg)
{
    words_t w = {NULL, 0, 0};
    buf_t cur;
    buf_init(&cur);
    bool in_word = false;
    const char *p = line;
    *errmsg = NULL;
    while (*p) {
        char c = *p;
        if (is_space(c)) {
            if (in_word && words_push(&w, cur.data ? (const char *)cur.data : "", cur.len))
                goto oom;
            in_word = false;
            buf_reset(&cur);
            p++;
            continue;
        }
        if (!in_word && c == '#')
            break; /* comment to the end of the line */
        in_word = true;
        if (c == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (!end) {
                *errmsg = "unterminated ' quote";
                goto fail;
            }
            if (buf_append(&cur, p + 1, (size_t)(end - p - 1)))
                goto oom;
            p = end + 1;
        } else if (c == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                    p++;
                if (buf_append(&cur, p, 1))
                    goto oom;
                p++;
            }
            if (!*p) {
                *errmsg = "unterminated \" quote";
                goto fail;
            }
            p++;
        } else if (c == '\\' && p[1]) {
            if (buf_append(&cur, p + 1, 1))
                goto oom;
            p += 2;
        } else {
            if (buf_append(&cur, p, 1))
                goto oom;
            p++;
        }
    }
    if (in_word && words_push(&w, cur.data ? (const char *)cur.data : "", cur.len))
        goto oom;
    buf_free(&cur);
    if (!w.v) {
        w.v = calloc(1, sizeof(*w.v));
        if (!w.v)
            goto oom;
    }
    *argv = w.v;
    return w.n;
oom:
    *errmsg = "out of memory";
fail:
    buf_free(&cur);
    cli_free_words(w.v);
    *argv = NULL;
    return -1;
}

/* ---- running lines ---------------------------------------------------- */

/* Runs one line; returns its exit code, or -1 for an empty line. */
static int run_line(cli_ctx *ctx, const char *line, long lineno, bool interactive)
{
    char **argv;
    const char *err;
    int argc = cli_split_words(line, &argv, &err);
    if (argc < 0) {
        if (interactive)
            cli_err("%s", err);
        else
            cli_err("line %ld: %s", lineno, err);
        return EXIT_USAGE;
    }
    if (argc == 0) {
        cli_free_words(argv);
        return -1;
    }
    cli_reap_children();
    int rc;
    if (argv[0][0] == '-' && argc == 1 && strcmp(argv[0], "--help") == 0) {
        cli_print_help(stdout, true);
        rc = EXIT_OK;
    } else {
        rc = cli_execute(ctx, argc, argv);
    }
    cli_free_words(argv);
    fflush(stdout);
    return rc;
}

static int script_loop(cli_ctx *ctx, int last)
{
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    while (!ctx->quit && getline(&line, &cap, stdin) >= 0) {
        lineno++;
        int rc = run_line(ctx, line, lineno, false);
        if (rc >= 0)
            last = rc;
    }
    free(line);
    return last;
}

/* ---- completion ------------------------------------------------------- */

typedef struct cands {
    char *v[256];
    int n;
} cands_t;

static void cand_add(cands_t *c, const char *prefix, const char *s, size_t n, const char *suffix)
{
    if (c->n >= (int)(sizeof c->v / sizeof c->v[0]))
        return;
    size_t pl = strlen(prefix);
    if (n < pl || strncmp(s, prefix, pl) != 0)
        return;
    char *x;
    if (asprintf(&x, "%.*s%s", (int)n, s, suffix) < 0)
        return;
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->v[i], x) == 0) {
            free(x);
            return;
        }
    c->v[c->n++] = x;
}

/* The command whose words are exactly words[0..n), or NULL. */
static const cli_command *command_of(char **words, int n)
{
    char name[256];
    cli_join_words(words, n, name, sizeof name);
    return n ? cli_find(name) : NULL;
}

/* Candidates for the next command word after words[0..n). */
static void complete_command_word(cands_t *c, char **words, int n, const char *cur)
{
    for (const cli_command *cmd = cli_commands; cmd->name; cmd++) {
        const char *p = cmd->name;
        int k = 0;
        bool match = true;
        while (k < n) {
            const char *sp = strchr(p, ' ');
            size_t len = sp ? (size_t)(sp - p) : strlen(p);
            if (strlen(words[k]) != len || strncmp(words[k], p, len) != 0 || !sp) {
                match = false;
                break;
            }
            p = sp + 1;
            k++;
        }
        if (!match)
            continue;
        const char *sp = strchr(p, ' ');
        cand_add(c, cur, p, sp ? (size_t)(sp - p) : strlen(p), " ");
    }
}

/* True if --name already appears among words (as --name or --name=...). */
static bool option_given(char **words, int n, const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; i < n; i++)
        if (strncmp(words[i], "--", 2) == 0 && strncmp(words[i] + 2, name, len) == 0 &&
            (words[i][2 + len] == 0 || words[i][2 + len] == '='))
            return true;
    return false;
}

static void complete_options(cands_t *c, const cli_command *cmd, const char *cur, char **words,
                             int n)
{
    const cli_opt *lists[2] = {cmd ? cmd->opts : NULL, cli_global_opts};
    for (int l = 0; l < 2; l++) {
        if (!lists[l])
            continue;
        for (const cli_opt *o = lists[l]; o->name; o++) {
            char full[96];
            if (o->type != OPT_LIST && option_given(words, n, o->name))
                continue;
            snprintf(full, sizeof full, "--%s", o->name);
            cand_add(c, cur, full, strlen(full), o->type == OPT_BOOL ? " " : "=");
        }
    }
}

static void complete_choices(cands_t *c, const cli_command *cmd, const char *cur)
{
    const char *eq = strchr(cur, '=');
    if (!cmd)
        return;
    size_t nl = (size_t)(eq - cur - 2);
    for (const cli_opt *o = cmd->opts; o->name; o++) {
        if (strlen(o->name) != nl || strncmp(o->name, cur + 2, nl) != 0 || !o->choices)
            continue;
        const char *p = o->choices;
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            char full[160];
            snprintf(full, sizeof full, "%.*s%.*s", (int)(eq - cur + 1), cur, (int)len, p);
            cand_add(c, cur, full, strlen(full), " ");
            if (!bar)
                break;
            p = bar + 1;
        }
    }
}

/* Computes the candidates for the text before the cursor. *cur_len gets the
 * length of the word being completed. */
static void compute_candidates(const char *text, cands_t *c, size_t *cur_len)
{
    size_t len = strlen(text);
    size_t start = len;
    while (start > 0 && !is_space(text[start - 1]))
        start--;
    const char *cur = text + start;
    *cur_len = len - start;

    char *head = strndup(text, start);
    char **words = NULL;
    const char *err;
    int n = head ? cli_split_words(head, &words, &err) : -1;
    free(head);
    if (n < 0)
        return;
    /* command words are the leading words that are not options */
    int nw = 0;
    while (nw < n && words[nw][0] != '-')
        nw++;
    bool help = nw > 0 && strcmp(words[0], "help") == 0;
    if (cur[0] == '-') {
        const cli_command *cmd = command_of(words, nw);
        if (strchr(cur, '=') && cur[1] == '-')
            complete_choices(c, cmd, cur);
        else
            complete_options(c, cmd, cur, words, n);
    } else if (nw == n) {
        if (help)
            complete_command_word(c, words + 1, nw - 1, cur);
        else
            complete_command_word(c, words, nw, cur);
        /* a complete command: offer its options as well */
        const cli_command *cmd = help ? NULL : command_of(words, nw);
        if (cmd && !(cmd->flags & CMD_POSITIONAL))
            complete_options(c, cmd, cur, words, n);
    }
    cli_free_words(words);
}

static unsigned char complete(EditLine *el, int ch)
{
    (void)ch;
    const LineInfo *li = el_line(el);
    char *text = strndup(li->buffer, (size_t)(li->cursor - li->buffer));
    if (!text)
        return CC_ERROR;
    cands_t c = {{0}, 0};
    size_t cur_len = 0;
    compute_candidates(text, &c, &cur_len);
    unsigned char ret = CC_REFRESH;
    if (c.n == 0) {
        ret = CC_ERROR;
    } else if (c.n == 1) {
        if (el_insertstr(el, c.v[0] + cur_len) == -1)
            ret = CC_ERROR;
    } else {
        /* longest common prefix of the candidates, without the suffixes
         * that were added for a single match */
        size_t lcp = strlen(c.v[0]);
        for (int i = 1; i < c.n; i++) {
            size_t k = 0;
            while (k < lcp && c.v[i][k] == c.v[0][k])
                k++;
            lcp = k;
        }
        while (lcp > cur_len && (c.v[0][lcp - 1] == ' '))
            lcp--;
        if (lcp > cur_len) {
            char *ins = strndup(c.v[0] + cur_len, lcp - cur_len);
            if (ins && el_insertstr(el, ins) == -1)
                ret = CC_ERROR;
            free(ins);
        } else {
            fputc('\n', stdout);
            int col = 0;
            for (int i = 0; i < c.n; i++) {
                size_t l = strlen(c.v[i]);
                while (l > 0 && c.v[i][l - 1] == ' ')
                    l--;
                if (col > 0 && col + (int)l + 2 > 78) {
                    fputc('\n', stdout);
                    col = 0;
                }
                col += printf("%s%.*s", col ? "  " : "", (int)l, c.v[i]);
            }
            fputc('\n', stdout);
            fflush(stdout);
            ret = CC_REDISPLAY;
        }
    }
    for (int i = 0; i < c.n; i++)
        free(c.v[i]);
    free(text);
    return ret;
}

/* ---- interactive loop ------------------------------------------------- */

static cli_ctx *prompt_ctx;

static char *prompt(EditLine *el)
{
    (void)el;
    static char buf[300];
    if (prompt_ctx && prompt_ctx->conn_addr)
        snprintf(buf, sizeof buf, "agate[%s%s]> ", prompt_ctx->conn_locator ? "locator " : "",
                 prompt_ctx->conn_addr);
    else
        snprintf(buf, sizeof buf, "agate> ");
    return buf;
}

static int interactive_loop(cli_ctx *ctx, int last)
{
    setlocale(LC_CTYPE, ""); /* multibyte input in libedit */
    prompt_ctx = ctx;
    char *hist_path = NULL;
    const char *home = getenv("HOME");
    if (home && *home && asprintf(&hist_path, "%s/.agate_history", home) < 0)
        hist_path = NULL;

    HistEvent ev;
    History *hist = history_init();
    EditLine *el = el_init("agate", stdin, stdout, stderr);
    if (!hist || !el) {
        if (el)
            el_end(el);
        if (hist)
            history_end(hist);
        free(hist_path);
        return script_loop(ctx, last);
    }
    history(hist, &ev, H_SETSIZE, 1000);
    history(hist, &ev, H_SETUNIQUE, 1);
    if (hist_path)
        history(hist, &ev, H_LOAD, hist_path);
    el_set(el, EL_EDITOR, "emacs");
    el_set(el, EL_PROMPT, prompt);
    el_set(el, EL_HIST, history, hist);
    el_set(el, EL_SIGNAL, 1);
    /* el_wset with static wide strings: the narrow el_set(EL_ADDFN) copies
     * the names into memory libedit never frees. */
    el_wset(el, EL_ADDFN, L"agate-complete", L"Complete a command or option name", complete);
    el_set(el, EL_BIND, "^I", "agate-complete", NULL);
    el_source(el, NULL); /* ~/.editrc, for people who customise libedit */

    printf("Agate %s shell. Type 'help' for commands, 'exit' to leave.\n", AGATE_VERSION_STRING);
    while (!ctx->quit) {
        int count = 0;
        const char *line = el_gets(el, &count);
        if (!line || count <= 0) {
            fputc('\n', stdout);
            break; /* EOF (Ctrl-D) */
        }
        char *copy = strdup(line);
        if (!copy)
            break;
        copy[strcspn(copy, "\n")] = 0;
        bool blank = copy[strspn(copy, " \t")] == 0;
        if (!blank) {
            history(hist, &ev, H_ENTER, copy);
            if (hist_path)
                history(hist, &ev, H_SAVE, hist_path);
        }
        int rc = run_line(ctx, copy, 0, true);
        if (rc >= 0)
            last = rc;
        free(copy);
    }
    el_end(el);
    history_end(hist);
    free(hist_path);
    prompt_ctx = NULL;
    return last;
}

int cli_shell(cli_ctx *ctx, const cli_args *a)
{
    ctx->in_shell = true;
    bool interactive = isatty(STDIN_FILENO) == 1;
    int last = EXIT_OK;
    if (a && (a->server || a->locator)) {
        /* as if the user had typed: connect --server=ADDR (or --locator) */
        char *argv[] = {"connect", a->server ? "--server" : "--locator",
                        (char *)(a->server ? a->server : a->locator), NULL};
        last = cli_execute(ctx, 3, argv);
    }
    last = interactive ? interactive_loop(ctx, last) : script_loop(ctx, last);
    cli_set_connection(ctx, NULL, NULL, false);
    if (ctx->quit && ctx->quit_code >= 0)
        return ctx->quit_code;
    return last;
}
