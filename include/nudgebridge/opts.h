/* SPDX-License-Identifier: ISC */
/*
 * opts: the command line's options, one parser for every command.
 *
 * A command describes its options in a table (name, kind, where the value
 * goes in the command's own struct of arguments) and hands argv to
 * nb_opts_parse().  Every command thus accepts the same syntax: "--name
 * value" and "--name=value", flags as "--name", positional arguments
 * where the table has room for them, "--help" anywhere, and it refuses
 * what it does not know with a message that names the option.  Nothing
 * is allocated: values point into argv.  Runs on the command's thread.
 */
#ifndef NB_OPTS_H
#define NB_OPTS_H

#include <stddef.h>
#include <stdio.h>

/* Most values one NB_OPT_LIST option collects. */
#define NB_OPT_LIST_MAX 16

enum nb_opt_kind {
	NB_OPT_FLAG,  /* --name: sets the int at off to 1 */
	NB_OPT_VALUE, /* --name V: sets the const char * at off (last wins) */
	NB_OPT_LIST,  /* --name V, repeatable: appends to the list at off */
	NB_OPT_PARAM, /* --name V: handed to the spec's param callback */
};

/* The values of an NB_OPT_LIST option, in the order given. */
struct nb_opt_list {
	const char *v[NB_OPT_LIST_MAX];
	size_t n;
};

/*
 * One option.  name is without the leading "--"; a NULL name is a
 * positional argument (NB_OPT_VALUE only), filled in the table's order.
 * off is offsetof() the field in the command's struct of arguments.
 * required: nb_opts_parse() fails when it is missing, naming it with
 * meta ("--config FILE is required").
 */
struct nb_opt {
	const char *name;
	enum nb_opt_kind kind;
	size_t off;
	int required;
	const char *meta;
};

/* A command's options. */
struct nb_opts_spec {
	const char *prog; /* "nudgebridge dlq": starts every message */
	const struct nb_opt *opts;
	size_t nopts;
	/* Prints the usage to f; may be NULL. */
	void (*usage)(FILE *f);
	/*
	 * NB_OPT_PARAM options: name without dashes, the value.  Returns 0,
	 * or -1 after writing a message (without the prog prefix) to err.
	 */
	int (*param)(void *args, const char *name, const char *value, char *err,
	    size_t errlen);
};

/* nb_opts_parse() printed the usage for --help: exit 0. */
#define NB_OPTS_HELP 1

/*
 * Parses argv[first..argc) into args as spec says.  Returns 0; or
 * NB_OPTS_HELP after printing the usage on stdout; or -1 after printing
 * "<prog>: <what is wrong>" on stderr: an unknown option ("unknown option
 * '--x'"), one positional argument too many ("unexpected argument 'x'"),
 * a value missing ("--x needs a value"), a value given to a flag ("--x
 * takes no value"), a list full ("at most 16 --x"), a required option
 * missing ("--config FILE is required") or the param callback's message.
 */
int nb_opts_parse(const struct nb_opts_spec *spec, int argc, char **argv,
    int first, void *args);

#endif
