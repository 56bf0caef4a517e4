/* cli.h - the agate CLI's command table, parsed arguments and shared state.
 *
 * Every command (on the command line and in the shell) goes through the same
 * path: cli_parse() finds the command in the table and parses its options
 * into a cli_args, cli_run() validates and calls the handler. The shell uses
 * the same table for help and completion, so a command behaves identically
 * in both places. */
#ifndef AGATE_CLI_CLI_H
#define AGATE_CLI_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "agate/agate.h"

/* Exit codes of every command and of the program. */
enum {
    EXIT_OK = 0,
    EXIT_ERR = 1,   /* the command failed; message on stderr */
    EXIT_USAGE = 2, /* unknown command or option, missing or bad value */
};

#define CLI_DEFAULT_SERVER "127.0.0.1:40404"
/* The locator cluster commands use when nothing else is given (Geode's
 * default locator port). */
#define CLI_DEFAULT_LOCATOR "127.0.0.1[10334]"
#define CLI_MAX_OPTS 24
/* Values of repeatable options (OPT_LIST) one command line may hold: as
 * many as a query's bind parameters on the server. */
#define CLI_MAX_REPEAT 256

typedef enum cli_opt_type {
    OPT_STR,
    OPT_INT,  /* decimal integer within [min, max] */
    OPT_SIZE, /* like OPT_INT, with an optional K/M/G suffix (powers of 1024) */
    OPT_BOOL, /* --flag, or --flag=true|false; never takes the next word */
    OPT_LIST, /* like OPT_STR, but may be given more than once (cli_count, cli_nth) */
} cli_opt_type;

typedef struct cli_opt {
    const char *name;    /* without the leading "--" */
    cli_opt_type type;
    bool required;
    const char *metavar; /* shown in usage: --name=METAVAR */
    const char *help;
    const char *choices; /* "a|b|c": the only accepted values (case-insensitive) */
    long long min, max;  /* OPT_INT / OPT_SIZE range */
} cli_opt;

struct cli_ctx;
struct cli_args;
typedef int (*cli_handler)(struct cli_ctx *ctx, const struct cli_args *a);

enum {
    CMD_SHELL_ONLY = 1 << 0, /* exit, quit, disconnect */
    CMD_POSITIONAL = 1 << 1, /* takes free words (help <command>) */
};

typedef struct cli_command {
    const char *name;     /* the command words, space separated: "create region" */
    const char *group;    /* heading in the command list */
    const char *summary;  /* one line */
    const cli_opt *opts;  /* terminated by an entry with name NULL */
    cli_handler handler;
    unsigned flags;
    const char *details;  /* more help text (examples), or NULL */
} cli_command;

/* The table, terminated by an entry with name NULL. */
extern const cli_command cli_commands[];
/* Options every command accepts: --server, --locator, --json, --help. */
extern const cli_opt cli_global_opts[];

typedef struct cli_args {
    const cli_command *cmd;
    const char *val[CLI_MAX_OPTS]; /* by index in cmd->opts; NULL = absent */
    long long num[CLI_MAX_OPTS];   /* parsed OPT_INT / OPT_SIZE / OPT_BOOL; OPT_LIST: count */
    const char *rep[CLI_MAX_REPEAT]; /* every OPT_LIST value, in the order given */
    unsigned char rep_opt[CLI_MAX_REPEAT]; /* the index in cmd->opts of each */
    int nrep;
    int npos;
    char **pos;                    /* free words (CMD_POSITIONAL only) */
    const char *server;            /* --server, or NULL */
    const char *locator;           /* --locator, or NULL (never both) */
    bool json;                     /* --json */
    bool help;                     /* --help / -h */
    bool version;                  /* --version (before the command only) */
} cli_args;

/* State shared by the commands of one program run (or one shell session). */
typedef struct cli_ctx {
    bool in_shell;
    agate_client *conn;  /* the shell's connection (connect), or NULL */
    char *conn_addr;     /* the address it was opened with */
    bool conn_locator;   /* conn_addr lists locators (connect --locator) */
    bool quit;           /* set by exit / quit */
    int quit_code;
} cli_ctx;

/* ---- cmd.c: parsing, dispatch, help ------------------------------------ */

/* Parses argv (the words after the program name, or a shell line's words)
 * into a: leading global options, the command words, then the command's
 * options as --name=value, --name value or --flag. a->cmd is NULL when argv
 * holds only global options. Returns 0, or EXIT_USAGE after printing the
 * problem and the relevant usage to stderr. a->pos points into argv. */
int cli_parse(int argc, char **argv, cli_args *a);
/* Parses and runs one command; returns its exit code. With no command words
 * it prints the general help (shell) and returns EXIT_USAGE. */
int cli_execute(cli_ctx *ctx, int argc, char **argv);
/* Finds a command by its exact words ("list regions"), or NULL. */
const cli_command *cli_find(const char *name);
/* Prints the usage line, summary, options and details of cmd. */
void cli_print_usage(const cli_command *cmd, FILE *fp);
/* Prints the list of commands grouped, and the global options. */
void cli_print_help(FILE *fp, bool in_shell);
/* Prints "agate: <msg>" and the usage of cmd to stderr; returns EXIT_USAGE. */
int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Option accessors; name must be one of the command's options. */
const cli_opt *cli_opt_of(const cli_args *a, const char *name); /* its table entry */
const char *cli_str(const cli_args *a, const char *name); /* NULL if absent */
const char *cli_str_or(const cli_args *a, const char *name, const char *def);
long long cli_int(const cli_args *a, const char *name, long long def);
bool cli_flag(const cli_args *a, const char *name);
bool cli_has(const cli_args *a, const char *name);
/* An OPT_LIST option: how many times it was given, and its i-th value
 * (0-based, in command-line order; NULL past the last). */
int cli_count(const cli_args *a, const char *name);
const char *cli_nth(const cli_args *a, const char *name, int i);
/* Joins words[0..n) with single spaces into out (a command name such as
 * "create region"), truncated to cap. */
void cli_join_words(char **words, int n, char *out, size_t cap);

/* ---- conn.c: connections ---------------------------------------------- */

/* Where a command connects: one or more servers (agate_connect) or
 * locators (agate_connect_locator, routing over the cluster). */
typedef struct cli_target {
    const char *addr;
    bool locator;
    bool shell;         /* the shell's open connection */
    const char *source; /* where addr came from, for messages: "--locator", "$AGATE_LOCATOR", ... */
} cli_target;

/* The target of a command, first found of: --server, --locator, the
 * shell's connection, $AGATE_LOCATOR, $AGATE_SERVER, and then
 * 127.0.0.1:40404, or for a cluster command (cluster true: list members,
 * rebalance, ...) the locator 127.0.0.1[10334]. */
cli_target cli_target_of(const cli_ctx *ctx, const cli_args *a, bool cluster);
/* The address of a target for messages: "locator ADDR" or "ADDR". */
void cli_target_name(const cli_target *t, char *out, size_t cap);
/* A connected client for the command's target (cli_target_of): the
 * shell's connection when that is the target, else a new connection. NULL
 * after printing "agate: cannot connect to ADDR: reason". Release with
 * cli_release. */
agate_client *cli_connect(cli_ctx *ctx, const cli_args *a);
/* The same for the cluster commands (cluster target default). */
agate_client *cli_connect_cluster(cli_ctx *ctx, const cli_args *a);
/* Opens a new connection to t with the CLI's timeouts and the given
 * connect timeout; NULL after printing the reason. */
agate_client *cli_open(const cli_target *t, int connect_timeout_ms);
/* A new, not yet connected client named agate-cli with these timeouts;
 * NULL when out of memory (nothing printed). */
agate_client *cli_client_new(int connect_timeout_ms, int request_timeout_ms);
void cli_release(cli_ctx *ctx, agate_client *c);
/* Prints "agate: <what>: <the library's message>" (or without what when it
 * is NULL) and returns EXIT_ERR. */
int cli_fail(agate_client *c, int rc, const char *what);
/* Ends a command's use of c after its last request, whose result is rc:
 * when rc < 0 prints the failure as cli_fail does, then releases c.
 * Returns EXIT_ERR when rc < 0, else EXIT_OK. */
int cli_finish(cli_ctx *ctx, agate_client *c, int rc, const char *what);
/* Makes c (connected to addr, a malloc'd string the context takes over;
 * locators when locator) the shell's connection, closing the previous one;
 * NULL, NULL disconnects. */
void cli_set_connection(cli_ctx *ctx, agate_client *c, char *addr, bool locator);

/* ---- output.c --------------------------------------------------------- */

/* "agate: " + message + newline on stderr (stdout flushed first, so the
 * two stay in order on a terminal). */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_verr(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* ---- handlers (one file per group) ------------------------------------ */

int cmd_help(cli_ctx *ctx, const cli_args *a);
int cmd_version(cli_ctx *ctx, const cli_args *a);
int cmd_connect(cli_ctx *ctx, const cli_args *a);
int cmd_disconnect(cli_ctx *ctx, const cli_args *a);
int cmd_exit(cli_ctx *ctx, const cli_args *a);

/* lifecycle.c: reaps, without blocking, the children that have exited
 * (daemons started from this process or shell), so that a stopped one does
 * not linger as a zombie that still "exists". */
void cli_reap_children(void);

int cmd_start_server(cli_ctx *ctx, const cli_args *a);
int cmd_status_server(cli_ctx *ctx, const cli_args *a);
int cmd_stop_server(cli_ctx *ctx, const cli_args *a);
int cmd_start_locator(cli_ctx *ctx, const cli_args *a);
int cmd_status_locator(cli_ctx *ctx, const cli_args *a);
int cmd_stop_locator(cli_ctx *ctx, const cli_args *a);

/* cmd_cluster.c */
int cmd_list_members(cli_ctx *ctx, const cli_args *a);
int cmd_describe_member(cli_ctx *ctx, const cli_args *a);
int cmd_status_cluster(cli_ctx *ctx, const cli_args *a);
int cmd_status_redundancy(cli_ctx *ctx, const cli_args *a);
int cmd_rebalance(cli_ctx *ctx, const cli_args *a);
int cmd_shutdown(cli_ctx *ctx, const cli_args *a);

int cmd_create_region(cli_ctx *ctx, const cli_args *a);
int cmd_destroy_region(cli_ctx *ctx, const cli_args *a);
int cmd_list_regions(cli_ctx *ctx, const cli_args *a);
int cmd_describe_region(cli_ctx *ctx, const cli_args *a);
int cmd_clear_region(cli_ctx *ctx, const cli_args *a);
/* cmd_index.c */
int cmd_create_index(cli_ctx *ctx, const cli_args *a);
int cmd_destroy_index(cli_ctx *ctx, const cli_args *a);
int cmd_list_indexes(cli_ctx *ctx, const cli_args *a);

int cmd_put(cli_ctx *ctx, const cli_args *a);
int cmd_get(cli_ctx *ctx, const cli_args *a);
int cmd_remove(cli_ctx *ctx, const cli_args *a);
int cmd_size(cli_ctx *ctx, const cli_args *a);
int cmd_keys(cli_ctx *ctx, const cli_args *a);

int cmd_import_data(cli_ctx *ctx, const cli_args *a);
int cmd_export_data(cli_ctx *ctx, const cli_args *a);

/* cmd_query.c */
int cmd_query(cli_ctx *ctx, const cli_args *a);

/* cmd_cq.c: continuous queries */
int cmd_watch(cli_ctx *ctx, const cli_args *a);
int cmd_list_cqs(cli_ctx *ctx, const cli_args *a);

/* ---- shell.c ---------------------------------------------------------- */

/* Runs the interactive shell (libedit) when stdin is a terminal, else reads
 * commands line by line without prompts. The --server or --locator of a
 * (may be NULL) is connected first. Returns the exit code of the last
 * command run (0 if none), or the code given to exit. */
int cli_shell(cli_ctx *ctx, const cli_args *a);
/* Splits a shell line into words: whitespace separates; '...' is literal;
 * "..." allows \" \\ escapes; a backslash outside quotes escapes the next
 * character; # at the start of a word starts a comment. On success *argv is
 * a NULL-terminated array (free with cli_free_words). Returns the word
 * count, or -1 with *errmsg set (unterminated quote). */
int cli_split_words(const char *line, char ***argv, const char **errmsg);
void cli_free_words(char **argv);

#endif
