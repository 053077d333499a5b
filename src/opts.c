/* SPDX-License-Identifier: ISC */
/*
 * opts: one walk over argv for every command (see opts.h).
 *
 * Each word is either "--help", an option of the table (its value the
 * rest after '=' or the next word, whatever that word looks like, as
 * getopt_long does), or a positional argument taking the next free
 * positional slot.  Values are stored where the table says, by offset
 * into the caller's struct, so a command's table is its whole parser.
 * Messages go to stderr, prefixed with the command's name; nothing is
 * allocated and nothing outlives argv.
 */
#include <stdio.h>
#include <string.h>

#include "nudgebridge/opts.h"

static void *
slot(void *args, const struct nb_opt *o)
{
	return (char *)args + o->off;
}

/* The option named by word (past "--", up to '=' or its end), or NULL. */
static const struct nb_opt *
opt_find(const struct nb_opts_spec *spec, const char *word, size_t len)
{
	size_t i;

	for (i = 0; i < spec->nopts; i++)
		if (spec->opts[i].name != NULL &&
		    strlen(spec->opts[i].name) == len &&
		    strncmp(spec->opts[i].name, word, len) == 0)
			return &spec->opts[i];
	return NULL;
}

/* Stores value for option o; 0 or -1 (message printed). */
static int
opt_store(const struct nb_opts_spec *spec, const struct nb_opt *o,
    const char *value, void *args)
{
	struct nb_opt_list *l;
	char err[512];

	switch (o->kind) {
	case NB_OPT_FLAG:
		*(int *)slot(args, o) = 1;
		return 0;
	case NB_OPT_VALUE:
		*(const char **)slot(args, o) = value;
		return 0;
	case NB_OPT_LIST:
		l = slot(args, o);
		if (l->n == NB_OPT_LIST_MAX) {
			fprintf(stderr, "%s: at most %d --%s\n", spec->prog,
			    NB_OPT_LIST_MAX, o->name);
			return -1;
		}
		l->v[l->n++] = value;
		return 0;
	case NB_OPT_PARAM:
		break;
	}
	err[0] = '\0';
	if (spec->param == NULL ||
	    spec->param(args, o->name, value, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s\n", spec->prog,
		    err[0] != '\0' ? err : "invalid option");
		return -1;
	}
	return 0;
}

/* A positional argument into the next free positional slot. */
static int
positional(const struct nb_opts_spec *spec, const char *word, void *args)
{
	const char **p;
	size_t i;

	for (i = 0; i < spec->nopts; i++) {
		if (spec->opts[i].name != NULL)
			continue;
		p = slot(args, &spec->opts[i]);
		if (*p == NULL) {
			*p = word;
			return 0;
		}
	}
	fprintf(stderr, "%s: unexpected argument '%s'\n", spec->prog, word);
	return -1;
}

/* One "--..." word at argv[*k]; consumes its value.  0 or -1. */
static int
option(
    const struct nb_opts_spec *spec, int argc, char **argv, int *k, void *args)
{
	const char *word = argv[*k] + 2, *eq = strchr(word, '=');
	size_t len = eq != NULL ? (size_t)(eq - word) : strlen(word);
	const struct nb_opt *o = opt_find(spec, word, len);

	if (o == NULL) {
		fprintf(stderr, "%s: unknown option '--%.*s'\n", spec->prog,
		    (int)len, word);
		return -1;
	}
	if (o->kind == NB_OPT_FLAG) {
		if (eq != NULL) {
			fprintf(stderr, "%s: --%s takes no value\n", spec->prog,
			    o->name);
			return -1;
		}
		return opt_store(spec, o, NULL, args);
	}
	if (eq != NULL)
		return opt_store(spec, o, eq + 1, args);
	if (*k + 1 >= argc) {
		fprintf(
		    stderr, "%s: --%s needs a value\n", spec->prog, o->name);
		return -1;
	}
	return opt_store(spec, o, argv[++*k], args);
}

/* The first required option that is missing, or NULL. */
static const struct nb_opt *
missing(const struct nb_opts_spec *spec, void *args)
{
	size_t i;

	for (i = 0; i < spec->nopts; i++)
		if (spec->opts[i].required &&
		    spec->opts[i].kind == NB_OPT_VALUE &&
		    *(const char **)slot(args, &spec->opts[i]) == NULL)
			return &spec->opts[i];
	return NULL;
}

int
nb_opts_parse(const struct nb_opts_spec *spec, int argc, char **argv, int first,
    void *args)
{
	const struct nb_opt *o;
	int k;

	for (k = first; k < argc; k++) {
		if (strcmp(argv[k], "--help") == 0) {
			if (spec->usage != NULL)
				spec->usage(stdout);
			return NB_OPTS_HELP;
		}
		if (strncmp(argv[k], "--", 2) == 0 && argv[k][2] != '\0') {
			if (option(spec, argc, argv, &k, args) == -1)
				return -1;
		} else if (positional(spec, argv[k], args) == -1)
			return -1;
	}
	if ((o = missing(spec, args)) != NULL) {
		if (o->name != NULL)
			fprintf(stderr, "%s: --%s%s%s is required\n",
			    spec->prog, o->name, o->meta != NULL ? " " : "",
			    o->meta != NULL ? o->meta : "");
		else
			fprintf(stderr, "%s: %s is required\n", spec->prog,
			    o->meta != NULL ? o->meta : "an argument");
		return -1;
	}
	return 0;
}
