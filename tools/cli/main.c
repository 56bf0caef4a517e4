/* main.c - entry point of the agate admin CLI.
 *
 *   agate                       interactive shell (or script mode on a pipe)
 *   agate [--server=H:P | --locator=H[P]] VERB NOUN [--opt=value ...]
 *   agate --help | help | --version
 *
 * Exit status: 0 success, 1 error, 2 usage error (see docs/cli.md). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "tools/cli/cli.h"

int main(int argc, char **argv)
{
    /* A closed pipe (agate export data --file=- | head) must become a write
     * error we report, and a dead server socket an error from libagate;
     * neither should kill the process silently. */
    signal(SIGPIPE, SIG_IGN);

    cli_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    cli_args a;
    int rc = cli_parse(argc - 1, argv + 1, &a);
    if (rc)
        return rc;
    if (!a.cmd) {
        if (a.version) {
            printf("agate %s\n", AGATE_VERSION_STRING);
            return EXIT_OK;
        }
        if (a.help) {
            cli_print_help(stdout, false);
            return EXIT_OK;
        }
        return cli_shell(&ctx, &a);
    }
    rc = cli_execute(&ctx, argc - 1, argv + 1);
    if (fflush(stdout) != 0 && rc == EXIT_OK) {
        perror("agate: stdout");
        rc = EXIT_ERR;
    }
    return rc;
}
