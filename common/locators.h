/* locators.h - checking a list of locator addresses as users write them
 * (Geode's "HOST[PORT]", or "HOST:PORT", comma-separated), for the tools
 * that take --locator: the agate CLI and agate-bench. */
#ifndef AGATE_COMMON_LOCATORS_H
#define AGATE_COMMON_LOCATORS_H

#include <stddef.h>

/* Checks list. Returns 0, or -1 with a readable reason in err (cap bytes;
 * it quotes the entry at fault). */
int locators_check(const char *list, char *err, size_t cap);

#endif
