/* SPDX-License-Identifier: ISC */
/*
 * cmd: what the command-line faces of the operate core share.
 *
 * `nudgebridge dlq` (dlq.c), `nudgebridge events` and `nudgebridge erase`
 * (events.c) each turn argv into the core's parameters with opts.h; this
 * module does the rest, the same for all of them: it loads the
 * configuration, opens its store (so a command works with the daemon
 * running or stopped: SQLite WAL readers and one writer at a time, or
 * PostgreSQL), runs one operation to its end, says on stderr what went
 * wrong and turns it into the exit status; and it prints answers.  The
 * process's main thread only.
 */
#ifndef NB_CMD_H
#define NB_CMD_H

#include <stddef.h>

#include <jansson.h>

#include "nudgebridge/log.h"
#include "nudgebridge/operate.h"
#include "nudgebridge/opts.h"

/* A command: how its messages start and where its configuration is. */
struct nb_cmd {
	const char *prog;	 /* "nudgebridge dlq": starts every message */
	const char *name;	 /* "list", ...: names an invalid request */
	const char *config;	 /* the configuration file (set from args) */
	enum nb_log_level level; /* the log lines the store's work shows */
};

/* What a command's options fill: its opts.h table points into it. */
struct nb_cmd_args {
	const char *config; /* --config FILE */
	const char *key;    /* a positional KEY: the parameter "key" */
	int json;	    /* --json */
	int dry_run;	    /* --dry-run: the parameter "dry_run" */
	json_t *params;	    /* the core's parameters */
};

/*
 * The param callback (opts.h) of a table over struct nb_cmd_args: the
 * core's parameter of the option's name, converted by the grammar.
 */
int nb_cmd_param(
    void *args, const char *name, const char *value, char *err, size_t errlen);

/* Prints a command's answer; 0, or -1 after saying why on stderr. */
typedef int (*nb_cmd_print_fn)(const struct nb_cmd *c, enum nb_operate_op op,
    const struct nb_cmd_args *a, const json_t *answer);

/*
 * A whole command: parses argv[first..argc) with spec (whose param
 * callback is nb_cmd_param) into a struct nb_cmd_args, checks its
 * parameters for op, loads the configuration, opens its store, runs op to
 * its end as the face "cli" and prints the answer with print.  Returns
 * the exit status: 0 (also after --help); 1 for a store failure or no
 * event with the key ("<prog>: no event with key K"); 2 for a usage
 * error (then spec's usage on stderr), a configuration error or a
 * request the grammar refuses ("<prog>: <why>", "<prog> <name>: <why>"
 * when the operation refuses it).  Messages go to stderr.
 */
int nb_cmd_main(struct nb_cmd *c, const struct nb_opts_spec *spec,
    enum nb_operate_op op, int argc, char **argv, int first,
    nb_cmd_print_fn print);

/* One subcommand: its name, operation and option table. */
struct nb_cmd_sub {
	const char *name; /* "list": argv[1] */
	enum nb_operate_op op;
	const struct nb_opt *opts;
	size_t nopts;
};

/* A command of subcommands, each run as nb_cmd_main() runs one. */
struct nb_cmd_table {
	const char *prog; /* "nudgebridge dlq" */
	enum nb_log_level level;
	void (*usage)(FILE *f);
	nb_cmd_print_fn print;
	const struct nb_cmd_sub *subs;
	size_t nsubs;
};

/*
 * Runs the subcommand of t that argv[1] names, as nb_cmd_main() with its
 * options from argv[2] (param: nb_cmd_param).  Nothing, "help" or
 * "--help" prints t's usage (on stderr and 2 for nothing, else on stdout
 * and 0); an unknown name is "<prog>: unknown command 'X'", the usage on
 * stderr and 2.
 */
int nb_cmd_dispatch(const struct nb_cmd_table *t, int argc, char **argv);

/* Prints j indented on stdout; 0, or -1 after saying why on stderr. */
int nb_cmd_print_json(const struct nb_cmd *c, const json_t *j);

/*
 * One table cell of s into out (outlen bytes): "-" for NULL or empty,
 * control characters as spaces, at most max bytes, the last three "..."
 * when cut and ellipsis is set.
 */
void nb_cmd_cell(
    char *out, size_t outlen, const char *s, size_t max, int ellipsis);

#endif
