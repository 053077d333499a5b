/* SPDX-License-Identifier: ISC */
/*
 * cmd: the command-line faces' common frame (see cmd.h).
 *
 * The exit status follows the core's status, so every command fails
 * alike: 2 for what the operator must fix (the configuration, a request
 * the grammar refuses), 1 for what may pass (the store, a key that names
 * nothing now).  The key of a request is copied before the core takes the
 * query, to name it in the message.  No value of a person ever reaches a
 * message: the grammar's messages name keys only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nudgebridge/cmd.h"
#include "nudgebridge/config.h"
#include "nudgebridge/log.h"
#include "nudgebridge/operate.h"
#include "nudgebridge/opts.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"

/* Says what the failed status st means for c; the exit status. */
static int
cmd_fail(const struct nb_cmd *c, enum nb_operate_status st, const char *key,
    const char *err)
{
	switch (st) {
	case NB_OPERATE_INVALID:
		fprintf(stderr, "%s%s%s: %s\n", c->prog,
		    c->name != NULL ? " " : "", c->name != NULL ? c->name : "",
		    err);
		return 2;
	case NB_OPERATE_NOT_FOUND:
		fprintf(stderr, "%s: no event with key %s\n", c->prog,
		    key != NULL ? key : "-");
		return 1;
	default:
		fprintf(stderr, "%s: %s\n", c->prog, err);
		return 1;
	}
}

/*
 * Loads c->config, opens its store and runs op over q (taken) to its end;
 * the exit status, *answer a new reference on 0.
 */
static int
cmd_run(const struct nb_cmd *c, enum nb_operate_op op,
    struct nb_operate_query *q, json_t **answer)
{
	struct nb_operate_env env;
	struct nb_config *cfg = NULL;
	struct nb_store *st = NULL;
	enum nb_operate_status s;
	char err[512], *key = NULL;
	int rc = 1;

	*answer = NULL;
	if (nb_config_load(&cfg, c->config, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s: %s\n", c->prog, c->config, err);
		rc = 2;
		goto out;
	}
	nb_log_init(c->level, cfg->log_format);
	if (nb_store_open(&st, &cfg->store, err, sizeof(err)) == -1) {
		fprintf(
		    stderr, "%s: cannot open the store: %s\n", c->prog, err);
		goto out;
	}
	if (q->filter.key != NULL && (key = strdup(q->filter.key)) == NULL) {
		fprintf(stderr, "%s: out of memory\n", c->prog);
		goto out;
	}
	env.store = st;
	env.cfg = cfg;
	env.face = "cli";
	s = nb_operate_run(&env, op, q, answer, err, sizeof(err));
	rc = s == NB_OPERATE_OK ? 0 : cmd_fail(c, s, key, err);
out:
	nb_operate_query_clear(q);
	free(key);
	nb_store_close(st);
	nb_config_unref(cfg);
	return rc;
}

int
nb_cmd_param(
    void *args, const char *name, const char *value, char *err, size_t errlen)
{
	struct nb_cmd_args *a = args;

	return nb_operate_param_text(a->params, name, value, err, errlen);
}

/*
 * The options of argv into a and the query q for op; 0, NB_OPTS_HELP, or
 * -1 after saying why on stderr.
 */
static int
cmd_parse(const struct nb_cmd *c, const struct nb_opts_spec *spec,
    enum nb_operate_op op, int argc, char **argv, int first,
    struct nb_cmd_args *a, struct nb_operate_query *q)
{
	char err[512];
	int r;

	if ((r = nb_opts_parse(spec, argc, argv, first, a)) != 0) {
		if (r != NB_OPTS_HELP && spec->usage != NULL)
			spec->usage(stderr);
		return r;
	}
	if (a->key != NULL && json_object_get(a->params, "key") != NULL) {
		fprintf(
		    stderr, "%s: unexpected argument '%s'\n", c->prog, a->key);
		return -1;
	}
	if ((a->key != NULL &&
		nb_operate_param_text(
		    a->params, "key", a->key, err, sizeof(err)) == -1) ||
	    (a->dry_run &&
		nb_operate_param_text(
		    a->params, "dry_run", "true", err, sizeof(err)) == -1) ||
	    nb_operate_query_parse(
		q, op, a->params, nb_time_now_ms(), err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s\n", c->prog, err);
		return -1;
	}
	return 0;
}

int
nb_cmd_main(struct nb_cmd *c, const struct nb_opts_spec *spec,
    enum nb_operate_op op, int argc, char **argv, int first,
    nb_cmd_print_fn print)
{
	struct nb_cmd_args a;
	struct nb_operate_query q;
	json_t *ans = NULL;
	int rc;

	memset(&a, 0, sizeof(a));
	memset(&q, 0, sizeof(q));
	if ((a.params = json_object()) == NULL) {
		fprintf(stderr, "%s: out of memory\n", c->prog);
		return 1;
	}
	if ((rc = cmd_parse(c, spec, op, argc, argv, first, &a, &q)) != 0) {
		rc = rc == NB_OPTS_HELP ? 0 : 2;
		goto out;
	}
	c->config = a.config;
	if ((rc = cmd_run(c, op, &q, &ans)) == 0 && print(c, op, &a, ans) == -1)
		rc = 1;
out:
	nb_operate_query_clear(&q);
	json_decref(ans);
	json_decref(a.params);
	return rc;
}

int
nb_cmd_dispatch(const struct nb_cmd_table *t, int argc, char **argv)
{
	struct nb_cmd c = {t->prog, NULL, NULL, t->level};
	struct nb_opts_spec spec = {t->prog, NULL, 0, t->usage, nb_cmd_param};
	size_t i;

	if (argc < 2 || strcmp(argv[1], "help") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		t->usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (i = 0; i < t->nsubs; i++)
		if (strcmp(argv[1], t->subs[i].name) == 0)
			break;
	if (i == t->nsubs) {
		fprintf(stderr, "%s: unknown command '%s'\n", t->prog, argv[1]);
		t->usage(stderr);
		return 2;
	}
	spec.opts = t->subs[i].opts;
	spec.nopts = t->subs[i].nopts;
	c.name = t->subs[i].name;
	return nb_cmd_main(&c, &spec, t->subs[i].op, argc, argv, 2, t->print);
}

int
nb_cmd_print_json(const struct nb_cmd *c, const json_t *j)
{
	char *text;

	if ((text = json_dumps(j, JSON_INDENT(2))) == NULL) {
		fprintf(stderr, "%s: out of memory\n", c->prog);
		return -1;
	}
	printf("%s\n", text);
	free(text);
	return 0;
}

void
nb_cmd_cell(char *out, size_t outlen, const char *s, size_t max, int ellipsis)
{
	size_t i;

	if (s == NULL || *s == '\0')
		s = "-";
	for (i = 0; s[i] != '\0' && i < max && i + 1 < outlen; i++)
		out[i] =
		    ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? ' ' : s[i];
	out[i] = '\0';
	if (ellipsis && s[i] != '\0' && i >= 3 && i == max) {
		out[i - 3] = '.';
		out[i - 2] = '.';
		out[i - 1] = '.';
	}
}
