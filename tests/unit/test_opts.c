/* SPDX-License-Identifier: ISC */
/*
 * test_opts: the one option parser of every command.
 *
 * A table of command lines against one spec with every kind of option:
 * "--name value" and "--name=value", flags, a repeated list, a callback
 * parameter, positional arguments, --help, and each refusal with the
 * message it prints on stderr (captured in a temporary file).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nudgebridge/opts.h"
#include "testlib.h"

struct args {
	const char *config, *name, *extra;
	int flag;
	struct nb_opt_list list;
	char params[128];
};

static int
param_cb(
    void *arg, const char *name, const char *value, char *err, size_t errlen)
{
	struct args *a = arg;
	size_t n = strlen(a->params);

	if (strcmp(value, "bad") == 0) {
		snprintf(err, errlen, "%s: bad value", name);
		return -1;
	}
	snprintf(a->params + n, sizeof(a->params) - n, "%s=%s;", name, value);
	return 0;
}

static int usage_calls;

static void
usage_cb(FILE *f)
{
	(void)f;
	usage_calls++;
}

static const struct nb_opt opts[] = {
    {"config", NB_OPT_VALUE, offsetof(struct args, config), 1, "FILE"},
    {"flag", NB_OPT_FLAG, offsetof(struct args, flag), 0, NULL},
    {"item", NB_OPT_LIST, offsetof(struct args, list), 0, NULL},
    {"source", NB_OPT_PARAM, 0, 0, NULL},
    {NULL, NB_OPT_VALUE, offsetof(struct args, name), 0, NULL},
    {NULL, NB_OPT_VALUE, offsetof(struct args, extra), 0, NULL},
};

static const struct nb_opts_spec spec = {
    "nudgebridge t", opts, sizeof(opts) / sizeof(opts[0]), usage_cb, param_cb};

struct parse_case {
	const char *argv[24];
	int rc;
	const char *stderr_has; /* rc -1: in the message */
	const char *config, *name, *extra;
	int flag;
	size_t nitems;
	const char *params;
};

static const struct parse_case cases[] = {
    {{"--config", "c.json"}, 0, NULL, "c.json", NULL, NULL, 0, 0, ""},
    {{"--config=c.json"}, 0, NULL, "c.json", NULL, NULL, 0, 0, ""},
    {{"--config="}, 0, NULL, "", NULL, NULL, 0, 0, ""},
    /* A value is the next word, whatever it looks like. */
    {{"--config", "--flag"}, 0, NULL, "--flag", NULL, NULL, 0, 0, ""},
    {{"n", "--config", "a", "--config", "b", "--flag", "x"}, 0, NULL, "b", "n",
	"x", 1, 0, ""},
    {{"--item", "1", "--config=c", "--item=2", "--source", "acme",
	 "--source=beta"},
	0, NULL, "c", NULL, NULL, 0, 2, "source=acme;source=beta;"},
    {{"--config", "c", "-"}, 0, NULL, "c", "-", NULL, 0, 0, ""},
    {{"--config", "c", "--"}, 0, NULL, "c", "--", NULL, 0, 0, ""},
    {{"--help"}, NB_OPTS_HELP, NULL, NULL, NULL, NULL, 0, 0, ""},
    {{"--bogus", "--help"}, -1, "unknown option '--bogus'", NULL, NULL, NULL, 0,
	0, ""},
    {{"--config"}, -1, "--config needs a value", NULL, NULL, NULL, 0, 0, ""},
    {{"--confi=x"}, -1, "unknown option '--confi'", NULL, NULL, NULL, 0, 0, ""},
    {{"--flag=1", "--config", "c"}, -1, "--flag takes no value", NULL, NULL,
	NULL, 0, 0, ""},
    {{"a", "b", "c", "--config", "c"}, -1, "unexpected argument 'c'", NULL,
	NULL, NULL, 0, 0, ""},
    {{"--flag"}, -1, "--config FILE is required", NULL, NULL, NULL, 0, 0, ""},
    {{"--config", "c", "--source", "bad"}, -1, "t: source: bad value", NULL,
	NULL, NULL, 0, 0, ""},
    {{"--config", "c", "--item", "1", "--item", "2", "--item", "3", "--item",
	 "4", "--item", "5", "--item", "6", "--item", "7", "--item", "8",
	 "--item", "9", "--item", "10"},
	0, NULL, "c", NULL, NULL, 0, 10, ""},
};

/* Runs the parser with stderr going to a file; returns rc, fills msg. */
static int
parse(const struct parse_case *c, struct args *a, char *msg, size_t msglen)
{
	char *argv[26];
	char tmpl[] = "/tmp/nb-opts-XXXXXX";
	int argc = 0, fd, saved, rc;
	ssize_t n;

	argv[argc++] = (char *)(uintptr_t) "nudgebridge";
	argv[argc++] = (char *)(uintptr_t) "t";
	for (; c->argv[argc - 2] != NULL; argc++)
		argv[argc] = (char *)(uintptr_t)c->argv[argc - 2];
	argv[argc] = NULL;
	assert_true((fd = mkstemp(tmpl)) != -1);
	unlink(tmpl);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	rc = nb_opts_parse(&spec, argc, argv, 2, a);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, msg, msglen - 1, 0);
	msg[n > 0 ? n : 0] = '\0';
	close(fd);
	return rc;
}

static void
test_table(void **state)
{
	struct args a;
	char msg[512];
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&a, 0, sizeof(a));
		usage_calls = 0;
		rc = parse(&cases[i], &a, msg, sizeof(msg));
		if (rc != cases[i].rc)
			fail_msg("case %zu: rc %d, want %d (%s)", i, rc,
			    cases[i].rc, msg);
		if (rc == -1) {
			if (strstr(msg, cases[i].stderr_has) == NULL ||
			    strncmp(msg, "nudgebridge t: ", 15) != 0)
				fail_msg("case %zu: message '%s' lacks '%s'", i,
				    msg, cases[i].stderr_has);
			continue;
		}
		assert_string_equal("", msg);
		assert_int_equal(rc == NB_OPTS_HELP, usage_calls);
		if (rc == NB_OPTS_HELP)
			continue;
		testlib_assert_str(cases[i].config, a.config);
		testlib_assert_str(cases[i].name, a.name);
		testlib_assert_str(cases[i].extra, a.extra);
		assert_int_equal(cases[i].flag, a.flag);
		assert_int_equal(cases[i].nitems, a.list.n);
		assert_string_equal(cases[i].params, a.params);
	}
}

/* A list keeps its order and refuses one value past its room. */
static void
test_list_full(void **state)
{
	struct parse_case c;
	struct args a;
	char msg[512], vals[NB_OPT_LIST_MAX + 1][16];
	size_t i, k = 0;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.argv[k++] = "--config=c";
	for (i = 0; i < NB_OPT_LIST_MAX; i++) {
		snprintf(vals[i], sizeof(vals[i]), "--item=%zu", i);
		c.argv[k++] = vals[i];
	}
	memset(&a, 0, sizeof(a));
	assert_int_equal(0, parse(&c, &a, msg, sizeof(msg)));
	assert_int_equal(NB_OPT_LIST_MAX, a.list.n);
	assert_string_equal("0", a.list.v[0]);
	assert_string_equal("15", a.list.v[15]);
	c.argv[k++] = "--item=16";
	memset(&a, 0, sizeof(a));
	assert_int_equal(-1, parse(&c, &a, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "at most 16 --item"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_list_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
