/* SPDX-License-Identifier: ISC */
/*
 * dlq: `nudgebridge dlq list|show|replay|purge`, the command-line face of
 * the operate core (operate.h).
 *
 * It turns options into the core's JSON parameters, runs one operation to
 * its end on a store connection of its own and prints the answer: a table
 * or JSON for list, JSON for show, a sentence or JSON for replay and
 * purge.  What is valid, what is found and what a replay does are the
 * core's, so the command and the admin API cannot drift apart; loading,
 * opening the store and the exit status are cmd.h's, as for `events`.  It
 * runs on the main thread of its own process.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nudgebridge/cmd.h"
#include "nudgebridge/dlq.h"
#include "nudgebridge/log.h"
#include "nudgebridge/operate.h"
#include "nudgebridge/opts.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"

static void
dlq_usage(FILE *f)
{
	static const char *const reasons[] = {NB_STORE_REASONS};
	size_t col, i;

	fprintf(f,
	    "usage: nudgebridge dlq list|show|replay|purge --config FILE\n"
	    "           [--source S] [--type T] [--reason R] [--since W]\n"
	    "           [--until W] [--id ID] [--key K]\n"
	    "           [--state dead|delivered|pending|all] [--limit N]\n"
	    "           [--json] [--dry-run]\n"
	    "       nudgebridge dlq show KEY --config FILE [--json]\n"
	    "  W is an RFC 3339 time or a duration ago (90m, 2h, 7d).\n");
	/* The reasons, wrapped to 79 columns. */
	fprintf(f, "  reasons:");
	for (col = 10, i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		if (col + 1 + strlen(reasons[i]) > 79) {
			fprintf(f, "\n          ");
			col = 10;
		}
		fprintf(f, " %s", reasons[i]);
		col += 1 + strlen(reasons[i]);
	}
	fprintf(f, "\n");
}

#define DA(m) offsetof(struct nb_cmd_args, m)

/* The positional KEY comes last: only show takes it. */
static const struct nb_opt dlq_opts[] = {
    {"config", NB_OPT_VALUE, DA(config), 1, "FILE"},
    {"json", NB_OPT_FLAG, DA(json), 0, NULL},
    {"dry-run", NB_OPT_FLAG, DA(dry_run), 0, NULL},
    {"source", NB_OPT_PARAM, 0, 0, NULL},
    {"type", NB_OPT_PARAM, 0, 0, NULL},
    {"reason", NB_OPT_PARAM, 0, 0, NULL},
    {"since", NB_OPT_PARAM, 0, 0, NULL},
    {"until", NB_OPT_PARAM, 0, 0, NULL},
    {"id", NB_OPT_PARAM, 0, 0, NULL},
    {"key", NB_OPT_PARAM, 0, 0, NULL},
    {"state", NB_OPT_PARAM, 0, 0, NULL},
    {"limit", NB_OPT_PARAM, 0, 0, NULL},
    {NULL, NB_OPT_VALUE, DA(key), 0, NULL},
};

#define NCOLS 7

/* The column values of one event (JSON as the core gives it). */
static void
row_values(const json_t *ev, const char *v[NCOLS])
{
	static const char *const keys[NCOLS] = {
	    "key", "source", "id", "type", "reason", "received_at", "error"};
	size_t c;

	for (c = 0; c < NCOLS; c++)
		v[c] = json_string_value(json_object_get(ev, keys[c]));
	if (v[4] == NULL)
		v[4] = json_string_value(json_object_get(ev, "state"));
}

static void
print_table(const json_t *events)
{
	static const char *const heads[NCOLS] = {
	    "KEY", "SOURCE", "ID", "TYPE", "REASON", "RECEIVED", "ERROR"};
	static const size_t maxw[NCOLS] = {32, 63, 48, 40, 20, 24, 200};
	size_t w[NCOLS];
	char buf[256];
	const char *v[NCOLS];
	const json_t *ev;
	size_t i, c, l;

	for (c = 0; c < NCOLS; c++)
		w[c] = strlen(heads[c]);
	json_array_foreach(events, i, ev)
	{
		row_values(ev, v);
		for (c = 0; c < NCOLS - 1; c++) {
			nb_cmd_cell(buf, sizeof(buf), v[c], maxw[c], 1);
			if ((l = strlen(buf)) > w[c])
				w[c] = l;
		}
	}
	for (c = 0; c + 1 < NCOLS; c++)
		printf("%-*s  ", (int)w[c], heads[c]);
	printf("%s\n", heads[NCOLS - 1]);
	json_array_foreach(events, i, ev)
	{
		row_values(ev, v);
		for (c = 0; c < NCOLS; c++) {
			nb_cmd_cell(buf, sizeof(buf), v[c], maxw[c], 1);
			if (c + 1 < NCOLS)
				printf("%-*s  ", (int)w[c], buf);
			else
				printf("%s\n", buf);
		}
	}
}

/* Prints the answer of op as the command does; 0 or -1. */
static int
print_answer(const struct nb_cmd *c, enum nb_operate_op op,
    const struct nb_cmd_args *a, const json_t *ans)
{
	json_int_t n, req;
	int dry = json_is_true(json_object_get(ans, "dry_run"));
	int json = a->json;

	switch (op) {
	case NB_OPERATE_LIST:
		if (json)
			return nb_cmd_print_json(
			    c, json_object_get(ans, "events"));
		print_table(json_object_get(ans, "events"));
		return 0;
	case NB_OPERATE_SHOW:
		/* The detail is nested (payload, track): JSON is its table. */
		return nb_cmd_print_json(c, ans);
	case NB_OPERATE_REPLAY:
		if (json)
			return nb_cmd_print_json(c, ans);
		n = json_integer_value(json_object_get(ans, "replayed"));
		req = json_integer_value(json_object_get(ans, "requarantined"));
		if (dry)
			printf("would replay %lld events (%lld would stay "
			       "quarantined)\n",
			    (long long)n, (long long)req);
		else
			printf("replayed %lld events (%lld still "
			       "quarantined)\n",
			    (long long)n, (long long)req);
		return 0;
	default:
		if (json)
			return nb_cmd_print_json(c, ans);
		n = json_integer_value(json_object_get(ans, "purged"));
		printf("%s %lld events\n", dry ? "would purge" : "purged",
		    (long long)n);
		return 0;
	}
}

#define NDLQ_OPTS (sizeof(dlq_opts) / sizeof(dlq_opts[0]))

/* The positional KEY is the table's last row: only show takes it. */
static const struct nb_cmd_sub commands[] = {
    {"list", NB_OPERATE_LIST, dlq_opts, NDLQ_OPTS - 1},
    {"show", NB_OPERATE_SHOW, dlq_opts, NDLQ_OPTS},
    {"replay", NB_OPERATE_REPLAY, dlq_opts, NDLQ_OPTS - 1},
    {"purge", NB_OPERATE_PURGE, dlq_opts, NDLQ_OPTS - 1},
};

int
nb_dlq_main(int argc, char **argv)
{
	static const struct nb_cmd_table t = {"nudgebridge dlq", NB_LOG_WARN,
	    dlq_usage, print_answer, commands,
	    sizeof(commands) / sizeof(commands[0])};

	return nb_cmd_dispatch(&t, argc, argv);
}
