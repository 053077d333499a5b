/* SPDX-License-Identifier: ISC */
/*
 * events_cmd: `nudgebridge events list|show` and `nudgebridge erase`.
 *
 * Both open the store themselves, like `dlq`, so they work with the daemon
 * running or stopped; an erase waits there for the events a running
 * deliverer holds (see nb_store_erase()), at most a little longer than
 * the longest lease one takes.  list follows the cursor for its operator
 * until it has the rows asked for (each store call stays bounded) and
 * prints a table, or the API's JSON with --json.  The address given to
 * erase is never printed or logged: the answer names the person by the
 * audit's digest.  The process's main thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nudgebridge/config.h"
#include "nudgebridge/events.h"
#include "nudgebridge/log.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"

/* Store pages list looks at for its operator, at most. */
#define EVENTS_CMD_PAGES 100

struct cmd_args {
	const char *name; /* "events" or "erase" */
	const char *cmd;  /* list, show; erase: "erase" */
	const char *config;
	int json;
	json_t *obj; /* the filter, or the erase body */
};

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

/* Options of each command that take a value (and become JSON members). */
static int
takes_value(const struct cmd_args *a, const char *name)
{
	static const char *const list[] = {"source", "type", "state", "id",
	    "email", "uid", "reason", "since", "until", "after", NULL};
	static const char *const erase[] = {"email", "uid", NULL};
	const char *const *v = strcmp(a->name, "erase") == 0 ? erase : list;

	for (; *v != NULL; v++)
		if (strcmp(*v, name) == 0)
			return 1;
	return 0;
}

/* One --name[=value] option at argv[*k]; 0 or -1 (message printed). */
static int
cmd_option(struct cmd_args *a, int argc, char **argv, int *k)
{
	const char *opt = argv[*k] + 2, *val, *eq;
	char name[32];
	size_t nlen;
	long long n;
	char *end;

	if (strcmp(opt, "json") == 0 || strcmp(opt, "dry-run") == 0) {
		if (opt[0] == 'j')
			a->json = 1;
		else if (strcmp(a->name, "erase") == 0)
			json_object_set_new(a->obj, "dry_run", json_true());
		else
			goto unknown;
		return 0;
	}
	eq = strchr(opt, '=');
	nlen = eq != NULL ? (size_t)(eq - opt) : strlen(opt);
	if (nlen >= sizeof(name))
		goto unknown;
	memcpy(name, opt, nlen);
	name[nlen] = '\0';
	if (eq != NULL)
		val = eq + 1;
	else if (*k + 1 < argc)
		val = argv[++*k];
	else {
		fprintf(stderr, "nudgebridge %s: --%s needs a value\n", a->name,
		    name);
		return -1;
	}
	if (strcmp(name, "config") == 0) {
		a->config = val;
		return 0;
	}
	if (strcmp(name, "limit") == 0 && strcmp(a->name, "events") == 0) {
		errno = 0;
		n = strtoll(val, &end, 10);
		if (*val == '\0' || *end != '\0' || errno != 0) {
			fprintf(stderr,
			    "nudgebridge events: --limit: not a "
			    "number\n");
			return -1;
		}
		json_object_set_new(a->obj, "limit", json_integer(n));
		return 0;
	}
	if (takes_value(a, name)) {
		if (json_object_set_new(a->obj, name, json_string(val)) == -1) {
			fprintf(stderr,
			    "nudgebridge %s: --%s: not valid UTF-8\n", a->name,
			    name);
			return -1;
		}
		return 0;
	}
unknown:
	fprintf(stderr, "nudgebridge %s: unknown option --%s\n", a->name, opt);
	return -1;
}

/* Parses argv after the command; 0 or -1 (message printed). */
static int
cmd_parse(struct cmd_args *a, int argc, char **argv, int first)
{
	int k;

	for (k = first; k < argc; k++) {
		if (strcmp(argv[k], "--help") == 0) {
			if (strcmp(a->name, "erase") == 0)
				erase_usage(stdout);
			else
				events_usage(stdout);
			exit(0);
		}
		if (strncmp(argv[k], "--", 2) == 0) {
			if (cmd_option(a, argc, argv, &k) == -1)
				return -1;
			continue;
		}
		if (strcmp(a->cmd, "show") == 0 &&
		    json_object_get(a->obj, "key") == NULL) {
			json_object_set_new(
			    a->obj, "key", json_string(argv[k]));
			continue;
		}
		fprintf(stderr, "nudgebridge %s: unexpected argument '%s'\n",
		    a->name, argv[k]);
		return -1;
	}
	if (a->config == NULL) {
		fprintf(stderr, "nudgebridge %s: --config FILE is required\n",
		    a->name);
		return -1;
	}
	return 0;
}

static int
print_json(json_t *j)
{
	char *text;

	if (j == NULL || (text = json_dumps(j, JSON_INDENT(2))) == NULL) {
		json_decref(j);
		return -1;
	}
	printf("%s\n", text);
	free(text);
	json_decref(j);
	return 0;
}

/* A table cell: "-" for null, control characters as spaces, cut at max. */
static const char *
cell(const json_t *v, char *buf, size_t len, size_t max)
{
	const char *s = json_is_string(v) ? json_string_value(v) : "-";
	size_t i;

	if (*s == '\0')
		s = "-";
	for (i = 0; s[i] != '\0' && i + 1 < len && i < max; i++)
		buf[i] =
		    (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
	buf[i] = '\0';
	return buf;
}

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
		    cell(json_object_get(e, "key"), b[0], 80, 10),
		    cell(json_object_get(e, "source"), b[1], 80, 63),
		    cell(json_object_get(e, "id"), b[2], 80, 64),
		    cell(json_object_get(e, "type"), b[3], 80, 64),
		    cell(json_object_get(e, "state"), b[4], 80, 9),
		    cell(json_object_get(e, "received_at"), b[5], 80, 24),
		    (long long)json_integer_value(
			json_object_get(e, "attempts")));
	}
	if (json_is_string(next))
		printf("more: --after %s\n", json_string_value(next));
}

static int
events_run(
    struct nb_store *st, const struct cmd_args *a, const struct nb_config *cfg)
{
	struct nb_events_query q;
	const char *key;
	json_t *out;
	char err[256];
	int found = 0, rc = 1;

	if (strcmp(a->cmd, "show") == 0) {
		if ((key = json_string_value(json_object_get(a->obj, "key"))) ==
		    NULL) {
			fprintf(stderr,
			    "nudgebridge events show: a KEY is "
			    "required\n");
			return 2;
		}
		if ((out = nb_events_show(st, cfg, key, &found)) == NULL) {
			fprintf(stderr,
			    "nudgebridge events: cannot read the "
			    "store\n");
			return 1;
		}
		if (!found) {
			json_decref(out);
			fprintf(stderr,
			    "nudgebridge events: no event with "
			    "key %s\n",
			    key);
			return 1;
		}
		return print_json(out) == 0 ? 0 : 1;
	}
	if (nb_events_query_from_json(
		&q, a->obj, nb_time_now_ms(), err, sizeof(err)) == -1) {
		fprintf(stderr, "nudgebridge events: %s\n", err);
		return 2;
	}
	if ((out = nb_events_list(st, &q, EVENTS_CMD_PAGES)) == NULL)
		fprintf(stderr, "nudgebridge events: cannot list the store\n");
	else if (a->json)
		rc = print_json(out) == 0 ? 0 : 1;
	else {
		print_page(out);
		json_decref(out);
		rc = 0;
	}
	nb_events_query_clear(&q);
	return rc;
}

static int
erase_run(
    struct nb_store *st, const struct cmd_args *a, const struct nb_config *cfg)
{
	struct nb_store_erase e;
	json_t *out;
	char err[256];

	if (nb_events_erase_args(&e, a->obj, err, sizeof(err)) == -1) {
		fprintf(stderr, "nudgebridge erase: %s\n", err);
		return 2;
	}
	e.actor = "cli";
	e.now_ms = nb_time_now_ms();
	e.wait_ms = nb_events_erase_wait_ms(cfg);
	if ((out = nb_events_erase(st, &e)) == NULL) {
		fprintf(stderr,
		    "nudgebridge erase: failed (see the log); what was erased "
		    "stays erased, run it again to finish\n");
		return 1;
	}
	if (a->json)
		return print_json(out) == 0 ? 0 : 1;
	printf("%s %lld events of %s sha256:%s (pending %lld, delivered "
	       "%lld, dead %lld); audit entry %lld\n",
	    e.dry_run ? "would erase" : "erased",
	    (long long)json_integer_value(json_object_get(out, "erased")),
	    e.who.email != NULL ? "address" : "uid",
	    json_string_value(json_object_get(out, "subject")),
	    (long long)json_integer_value(json_object_get(out, "pending")),
	    (long long)json_integer_value(json_object_get(out, "delivered")),
	    (long long)json_integer_value(json_object_get(out, "dead")),
	    (long long)json_integer_value(json_object_get(out, "audit_id")));
	json_decref(out);
	return 0;
}

/* Loads the configuration, opens the store and runs the command. */
static int
cmd_main(struct cmd_args *a)
{
	struct nb_config *cfg = NULL;
	struct nb_store *st = NULL;
	char err[512];
	int rc = 1;

	if (nb_config_load(&cfg, a->config, err, sizeof(err)) == -1) {
		fprintf(stderr, "nudgebridge %s: %s: %s\n", a->name, a->config,
		    err);
		return 2;
	}
	nb_log_init(strcmp(a->name, "erase") == 0 ? NB_LOG_INFO : NB_LOG_WARN,
	    cfg->log_format);
	if (nb_store_open(&st, &cfg->store, err, sizeof(err)) == -1) {
		fprintf(stderr, "nudgebridge %s: cannot open the store: %s\n",
		    a->name, err);
		goto out;
	}
	rc = strcmp(a->name, "erase") == 0 ? erase_run(st, a, cfg)
					   : events_run(st, a, cfg);
out:
	nb_store_close(st);
	nb_config_unref(cfg);
	return rc;
}

int
nb_events_main(int argc, char **argv)
{
	struct cmd_args a;
	int rc = 2;

	memset(&a, 0, sizeof(a));
	a.name = "events";
	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		events_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	a.cmd = argv[1];
	if (strcmp(a.cmd, "list") != 0 && strcmp(a.cmd, "show") != 0) {
		fprintf(stderr, "nudgebridge events: unknown command '%s'\n",
		    a.cmd);
		events_usage(stderr);
		return 2;
	}
	if ((a.obj = json_object()) == NULL)
		return 1;
	if (cmd_parse(&a, argc, argv, 2) == 0)
		rc = cmd_main(&a);
	else
		events_usage(stderr);
	json_decref(a.obj);
	return rc;
}

int
nb_erase_main(int argc, char **argv)
{
	struct cmd_args a;
	int rc = 2;

	memset(&a, 0, sizeof(a));
	a.name = "erase";
	a.cmd = "erase";
	if ((a.obj = json_object()) == NULL)
		return 1;
	if (cmd_parse(&a, argc, argv, 1) == 0)
		rc = cmd_main(&a);
	else
		erase_usage(stderr);
	json_decref(a.obj);
	return rc;
}
