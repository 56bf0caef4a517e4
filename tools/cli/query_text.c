#include "tools/cli/query_text.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/mpw.h"
#include "tools/cli/json_mp.h"

int cli_query_params(const cli_args *a, buf_t *out)
{
    int n = cli_count(a, "param");
    msgpack_packer pk;
    mpw_init(&pk, out);
    if (msgpack_pack_array(&pk, (uint32_t)n)) {
        cli_err("out of memory");
        return EXIT_ERR;
    }
    for (int i = 0; i < n; i++) {
        const char *text = cli_nth(a, "param", i);
        json_mp_error err;
        if (json_mp_parse(text, strlen(text), out, &err) == 0)
            continue;
        cli_err("--param %d ($%d) is not valid JSON (column %d): %s", i + 1, i + 1, err.column,
                err.text);
        char c0 = text[0];
        if ((c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z'))
            fprintf(stderr, "agate: hint: a string needs JSON quotes, e.g. --param='\"%s\"'\n",
                    text);
        return EXIT_ERR;
    }
    return 0;
}

/* Finds the position of a query error: the number N of the first "at N:"
 * in msg (at its start or after a space). */
static bool error_position(const char *msg, size_t *pos)
{
    for (const char *p = msg; (p = strstr(p, "at ")) != NULL; p += 3) {
        if (p != msg && p[-1] != ' ')
            continue;
        const char *d = p + 3;
        size_t v = 0;
        int digits = 0;
        while (*d >= '0' && *d <= '9' && digits < 12) {
            v = v * 10 + (size_t)(*d - '0');
            d++;
            digits++;
        }
        if (digits > 0 && digits < 12 && *d == ':') {
            *pos = v;
            return true;
        }
    }
    return false;
}

/* Prints the line of the query holding byte offset pos, and a caret under
 * that place, on stderr. Tabs are repeated in the caret line so that it
 * lines up; UTF-8 characters count as one column. */
static void show_caret(const char *query, size_t pos)
{
    size_t len = strlen(query);
    if (pos > len)
        return;
    size_t start = pos, end = pos;
    while (start > 0 && query[start - 1] != '\n')
        start--;
    while (end < len && query[end] != '\n')
        end++;
    fprintf(stderr, "  %.*s\n  ", (int)(end - start), query + start);
    for (size_t i = start; i < pos; i++) {
        unsigned char ch = (unsigned char)query[i];
        if (ch == '\t')
            fputc('\t', stderr);
        else if ((ch & 0xc0) != 0x80)
            fputc(' ', stderr);
    }
    fputs("^\n", stderr);
}

int cli_query_failed(agate_client *c, int rc, const char *query)
{
    cli_fail(c, rc, NULL);
    size_t pos;
    if (rc == AGATE_EBAD_ARGUMENT && error_position(agate_errmsg(c), &pos))
        show_caret(query, pos);
    return EXIT_ERR;
}

