/* SPDX-License-Identifier: ISC */
/*
 * dlq: `nudgebridge dlq list|show|replay|purge`, the command-line face of
 * the operate core (operate.h).
 *
 * It turns options into the core's JSON parameters, runs one operation to
 * its end on a store connection of its own and prints the answer: a table
 * or JSON for list, JSON for show, a sentence or JSON for replay and
 * purge.  What is valid, what is found and what a replay does are the
 * core's, so the command and the admin API cannot drift apart.  The
 * command opens the store itself, so it works whether the daemon runs or
 * not.  It runs on the main thread of its own process.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nudgebridge/config.h"
#include "nudgebridge/dlq.h"
#include "nudgebridge/log.h"
#include "nudgebridge/operate.h"
#include "nudgebridge/opts.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"

/* The command line. */

struct dlq_args {
	const char *cmd;
	const char *config;
	const char *key; /* show KEY */
	int json, dry_run;
	json_t *filter; /* the core's parameters */
};

static void
dlq_usage(FILE *f)
{
	fprintf(f,
	    "usage: nudgebridge dlq list|show|replay|purge --config FILE\n"
	    "           [--source S] [--type T] [--reason R] [--since W]\n"
	    "           [--until W] [--id ID] [--key K]\n"
	    "           [--state dead|delivered|pending|all] [--limit N]\n"
	    "           [--json] [--dry-run]\n"
	    "       nudgebridge dlq show KEY --config FILE [--json]\n"
	    "  W is an RFC 3339 time or a duration ago (90m, 2h, 7d).\n"
	    "  reasons: quarantined too_large rejected_by_segment "
	    "max_attempts max_age\n"
	    "           invalid_for_segment\n");
}

/* A filter option: the core's parameter of the same name. */
static int
dlq_param(
    void *arg, const char *name, const char *value, char *err, size_t errlen)
{
	struct dlq_args *a = arg;

	return nb_operate_param_text(a->filter, name, value, err, errlen);
}

#define DA(m) offsetof(struct dlq_args, m)

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

/* Parses argv after "dlq <cmd>"; 0, NB_OPTS_HELP or -1 (printed). */
static int
dlq_parse(struct dlq_args *a, int argc, char **argv)
{
	struct nb_opts_spec spec = {"nudgebridge dlq", dlq_opts,
	    sizeof(dlq_opts) / sizeof(dlq_opts[0]), dlq_usage, dlq_param};
	int r;

	if (strcmp(a->cmd, "show") != 0)
		spec.nopts--;
	if ((r = nb_opts_parse(&spec, argc, argv, 2, a)) != 0)
		return r;
	if (a->key != NULL) {
		if (json_object_get(a->filter, "key") != NULL) {
			fprintf(stderr,
			    "nudgebridge dlq: unexpected argument '%s'\n",
			    a->key);
			return -1;
		}
		if (json_object_set_new(
			a->filter, "key", json_string(a->key)) == -1)
			return -1;
	}
	if (a->dry_run &&
	    json_object_set_new(a->filter, "dry_run", json_true()) == -1)
		return -1;
	return 0;
}

/* One table cell: at most max bytes, control characters replaced. */
static void
cell(char *out, size_t outlen, const char *s, size_t max)
{
	size_t i;

	if (s == NULL || *s == '\0')
		s = "-";
	for (i = 0; s[i] != '\0' && i < max && i + 1 < outlen; i++)
		out[i] =
		    ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? ' ' : s[i];
	out[i] = '\0';
	if (s[i] != '\0' && i >= 3 && i == max) {
		out[i - 3] = '.';
		out[i - 2] = '.';
		out[i - 1] = '.';
	}
}

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
			cell(buf, sizeof(buf), v[c], maxw[c]);
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
			cell(buf, sizeof(buf), v[c], maxw[c]);
			if (c + 1 < NCOLS)
				printf("%-*s  ", (int)w[c], buf);
			else
				printf("%s\n", buf);
		}
	}
}

static int
print_json(const json_t *j)
{
	char *text;

	if ((text = json_dumps(j, JSON_INDENT(2))) == NULL) {
		fprintf(stderr, "nudgebridge dlq: out of memory\n");
		return -1;
	}
	printf("%s\n", text);
	free(text);
	return 0;
}

/* Prints the answer of op as the command does; 0 or -1. */
static int
print_answer(enum nb_operate_op op, const json_t *ans, int json)
{
	json_int_t n, req;
	int dry = json_is_true(json_object_get(ans, "dry_run"));

	switch (op) {
	case NB_OPERATE_LIST:
		if (json)
			return print_json(json_object_get(ans, "events"));
		print_table(json_object_get(ans, "events"));
		return 0;
	case NB_OPERATE_SHOW:
		/* The detail is nested (payload, track): JSON is its table. */
		return print_json(ans);
	case NB_OPERATE_REPLAY:
		if (json)
			return print_json(ans);
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
			return print_json(ans);
		n = json_integer_value(json_object_get(ans, "purged"));
		printf("%s %lld events\n", dry ? "would purge" : "purged",
		    (long long)n);
		return 0;
	}
}

static const struct {
	const char *name;
	enum nb_operate_op op;
} commands[] = {
    {"list", NB_OPERATE_LIST},
    {"show", NB_OPERATE_SHOW},
    {"replay", NB_OPERATE_REPLAY},
    {"purge", NB_OPERATE_PURGE},
};

/* Runs op on the store of a.config; the exit status. */
static int
dlq_run(
    const struct dlq_args *a, enum nb_operate_op op, struct nb_operate_query *q)
{
	struct nb_operate_env env;
	struct nb_config *cfg = NULL;
	struct nb_store *st = NULL;
	enum nb_operate_status s;
	json_t *ans = NULL;
	char err[512];
	int rc = 1;

	if (nb_config_load(&cfg, a->config, err, sizeof(err)) == -1) {
		fprintf(stderr, "nudgebridge dlq: %s: %s\n", a->config, err);
		return 2;
	}
	nb_log_init(NB_LOG_WARN, cfg->log_format);
	if (nb_store_open(&st, &cfg->store, err, sizeof(err)) == -1) {
		fprintf(stderr, "nudgebridge dlq: cannot open the store: %s\n",
		    err);
		goto out;
	}
	env.store = st;
	env.cfg = cfg;
	env.face = "cli";
	s = nb_operate_run(&env, op, q, &ans, err, sizeof(err));
	if (s == NB_OPERATE_NOT_FOUND)
		fprintf(stderr, "nudgebridge dlq: no event with key %s\n",
		    json_string_value(json_object_get(a->filter, "key")));
	else if (s != NB_OPERATE_OK)
		fprintf(stderr, "nudgebridge dlq%s%s: %s\n",
		    s == NB_OPERATE_INVALID ? " " : "",
		    s == NB_OPERATE_INVALID ? a->cmd : "", err);
	else if (print_answer(op, ans, a->json) == 0)
		rc = 0;
	if (s == NB_OPERATE_INVALID)
		rc = 2;
out:
	json_decref(ans);
	nb_store_close(st);
	nb_config_unref(cfg);
	return rc;
}

int
nb_dlq_main(int argc, char **argv)
{
	struct dlq_args a;
	struct nb_operate_query q;
	char err[512];
	size_t i;
	int rc = 2, r;

	memset(&a, 0, sizeof(a));
	memset(&q, 0, sizeof(q));
	if (argc < 2 || strcmp(argv[1], "help") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		dlq_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	a.cmd = argv[1];
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(a.cmd, commands[i].name) == 0)
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		fprintf(
		    stderr, "nudgebridge dlq: unknown command '%s'\n", a.cmd);
		dlq_usage(stderr);
		return 2;
	}
	if ((a.filter = json_object()) == NULL) {
		fprintf(stderr, "nudgebridge dlq: out of memory\n");
		return 1;
	}
	if ((r = dlq_parse(&a, argc, argv)) != 0) {
		if (r == NB_OPTS_HELP)
			rc = 0;
		else
			dlq_usage(stderr);
		goto out;
	}
	if (nb_operate_query_parse(&q, commands[i].op, a.filter,
		nb_time_now_ms(), err, sizeof(err)) == -1) {
		fprintf(stderr, "nudgebridge dlq: %s\n", err);
		goto out;
	}
	rc = dlq_run(&a, commands[i].op, &q);
out:
	nb_operate_query_clear(&q);
	json_decref(a.filter);
	return rc;
}
