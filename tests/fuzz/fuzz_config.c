/* SPDX-License-Identifier: ISC */
/*
 * Fuzz target for config: arbitrary bytes as a configuration document.
 *
 * Every input must either load (and then be released without leaks) or
 * fail with a NUL-terminated message; nothing may crash or read out of
 * bounds.  Relative *_file paths resolve under a folder that does not
 * exist, so inputs cannot make the target read files by accident; absolute
 * ones are read like any operator's file would be.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "nudgebridge/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nb_config *cfg = NULL;
	char err[256];
	char *text;

	if (sodium_init() < 0)
		abort();
	/* The API takes a C string; a NUL in the input ends the document. */
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (nb_config_load_json(
		&cfg, text, "/nonexistent-nb-fuzz", err, sizeof(err)) == 0) {
		if (cfg == NULL || cfg->nsources == 0)
			abort();
		nb_config_unref(cfg);
	} else if (cfg != NULL || memchr(err, '\0', sizeof(err)) == NULL) {
		abort();
	}
	free(text);
	return 0;
}
