/* SPDX-License-Identifier: ISC */
/*
 * events: the command-line face of search, event and erase (see events.h).
 *
 * Each command is an option table for opts.h whose filter options are
 * the core's parameters of the same name, an operation and a printer;
 * loading, the store, the operation and the exit status are cmd.h's.
 * The table of a page shows one line per event, newest first, cut to
 * fixed columns, and where to go on when the page is not the last.  The
 * main thread of the command's own process only.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "nudgebridge/cmd.h"
#include "nudgebridge/events.h"
#include "nudgebridge/log.h"
#include "nudgebridge/operate.h"
#include "nudgebridge/opts.h"
#include "nudgebridge/timeutil.h"

static void
events_usage(FILE *f)
{
	fprintf(f,
	    "usage: nudgebridge events list --config FILE [--source S]\n"
	    "           [--type T] [--state pending|delivered|dead|all]\n"
	    "           [--id ID] [--email ADDR] [--uid UID] [--reason R]\n"
	    "           [--since W] [--until W] [--limit N] [--after CURSOR]\n"
	    "           [--json]\n"
	    "       nudgebridge events show KEY --config FILE\n"
	    "  W is an RFC 3339 time or a duration ago (90m, 2h, 7d).\n");
}

static void
erase_usage(FILE *f)
{
	fprintf(f,
	    "usage: nudgebridge erase --config FILE (--email ADDR | --uid "
	    "UID)\n"
	    "           [--dry-run] [--json]\n");
}

#define EA(m) offsetof(struct nb_cmd_args, m)

static const struct nb_opt list_opts[] = {
    {"config", NB_OPT_VALUE, EA(config), 1, "FILE"},
    {"json", NB_OPT_FLAG, EA(json), 0, NULL},
    {"source", NB_OPT_PARAM, 0, 0, NULL},
    {"type", NB_OPT_PARAM, 0, 0, NULL},
    {"state", NB_OPT_PARAM, 0, 0, NULL},
    {"id", NB_OPT_PARAM, 0, 0, NULL},
    {"email", NB_OPT_PARAM, 0, 0, NULL},
    {"uid", NB_OPT_PARAM, 0, 0, NULL},
    {"reason", NB_OPT_PARAM, 0, 0, NULL},
    {"since", NB_OPT_PARAM, 0, 0, NULL},
    {"until", NB_OPT_PARAM, 0, 0, NULL},
    {"limit", NB_OPT_PARAM, 0, 0, NULL},
    {"after", NB_OPT_PARAM, 0, 0, NULL},
};

static const struct nb_opt show_opts[] = {
    {"config", NB_OPT_VALUE, EA(config), 1, "FILE"},
    {"json", NB_OPT_FLAG, EA(json), 0, NULL},
    {NULL, NB_OPT_VALUE, EA(key), 0, NULL},
};

static const struct nb_opt erase_opts[] = {
    {"config", NB_OPT_VALUE, EA(config), 1, "FILE"},
    {"json", NB_OPT_FLAG, EA(json), 0, NULL},
    {"dry-run", NB_OPT_FLAG, EA(dry_run), 0, NULL},
    {"email", NB_OPT_PARAM, 0, 0, NULL},
    {"uid", NB_OPT_PARAM, 0, 0, NULL},
};

/* The string k of e as a table cell of at most max bytes, in buf. */
static const char *
cell(const json_t *e, const char *k, char *buf, size_t len, size_t max)
{
	nb_cmd_cell(buf, len, json_string_value(json_object_get(e, k)), max, 0);
	return buf;
}

/* A search page as a table, and where the next one starts. */
static void
print_page(const json_t *page)
{
	const json_t *arr = json_object_get(page, "events"), *e;
	const json_t *next = json_object_get(page, "next");
	char b[6][80];
	size_t i;

	printf("%-10s  %-16s  %-32s  %-22s  %-9s  %-24s  %s\n", "KEY", "SOURCE",
	    "ID", "TYPE", "STATE", "RECEIVED", "ATTEMPTS");
	json_array_foreach(arr, i, e)
	{
		printf("%-10s  %-16s  %-32s  %-22s  %-9s  %-24s  %lld\n",
		    cell(e, "key", b[0], 80, 10),
		    cell(e, "source", b[1], 80, 63),
		    cell(e, "id", b[2], 80, 64), cell(e, "type", b[3], 80, 64),
		    cell(e, "state", b[4], 80, 9),
		    cell(e, "received_at", b[5], 80, 24),
		    (long long)json_integer_value(
			json_object_get(e, "attempts")));
	}
	if (json_is_string(next))
		printf("more: --after %s\n", json_string_value(next));
}

/* An erase's answer as a sentence: counts and the digest, no address. */
static void
print_erase(const json_t *out, int by_email)
{
	printf("%s %lld events of %s sha256:%s (pending %lld, delivered "
	       "%lld, dead %lld); audit entry %lld\n",
	    json_is_true(json_object_get(out, "dry_run")) ? "would erase"
							  : "erased",
	    (long long)json_integer_value(json_object_get(out, "erased")),
	    by_email ? "address" : "uid",
	    json_string_value(json_object_get(out, "subject")),
	    (long long)json_integer_value(json_object_get(out, "pending")),
	    (long long)json_integer_value(json_object_get(out, "delivered")),
	    (long long)json_integer_value(json_object_get(out, "dead")),
	    (long long)json_integer_value(json_object_get(out, "audit_id")));
}

/* A page as a table, an erase as a sentence, JSON otherwise. */
static int
print_answer(const struct nb_cmd *c, enum nb_operate_op op,
    const struct nb_cmd_args *a, const json_t *ans)
{
	if (op == NB_OPERATE_SEARCH && !a->json)
		print_page(ans);
	else if (op == NB_OPERATE_ERASE && !a->json)
		print_erase(ans, json_object_get(a->params, "email") != NULL);
	else
		return nb_cmd_print_json(c, ans);
	return 0;
}

static const struct nb_cmd_sub commands[] = {
    {"list", NB_OPERATE_SEARCH, list_opts,
	sizeof(list_opts) / sizeof(list_opts[0])},
    {"show", NB_OPERATE_EVENT, show_opts,
	sizeof(show_opts) / sizeof(show_opts[0])},
};

int
nb_events_main(int argc, char **argv)
{
	static const struct nb_cmd_table t = {"nudgebridge events", NB_LOG_WARN,
	    events_usage, print_answer, commands,
	    sizeof(commands) / sizeof(commands[0])};

	return nb_cmd_dispatch(&t, argc, argv);
}

int
nb_events_erase_main(int argc, char **argv)
{
	/* INFO: the erase's log line (the digest, never the value). */
	struct nb_cmd c = {"nudgebridge erase", NULL, NULL, NB_LOG_INFO};
	struct nb_opts_spec spec = {"nudgebridge erase", erase_opts,
	    sizeof(erase_opts) / sizeof(erase_opts[0]), erase_usage,
	    nb_cmd_param};

	return nb_cmd_main(
	    &c, &spec, NB_OPERATE_ERASE, argc, argv, 1, print_answer);
}
