/* SPDX-License-Identifier: ISC */
/*
 * test_tls: building server contexts from PEM files.
 *
 * The fixtures in tests/data/tls are test-only: a certificate with its key,
 * a key that belongs to nothing and a file that is not PEM.  Every failure
 * must name the configuration key at fault and never quote key material.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "nudgebridge/tls.h"

#define DATA(f) NB_TEST_DATA "/tls/" f

struct bad_case {
	const char *cert;
	const char *key;
	const char *prefix; /* the error must start with this */
};

static const struct bad_case bad[] = {
    {DATA("server.crt"), DATA("other.key"), "tls.key_file: "},
    {DATA("missing.crt"), DATA("server.key"), "tls.cert_file: cannot read"},
    {DATA("server.crt"), DATA("missing.key"), "tls.key_file: cannot read"},
    {DATA("garbage.pem"), DATA("server.key"), "tls.cert_file: "},
    {DATA("server.crt"), DATA("garbage.pem"), "tls.key_file: "},
    {DATA("server.key"), DATA("server.key"), "tls.cert_file: "},
    {DATA("server.crt"), DATA("server.crt"), "tls.key_file: "},
    {NB_TEST_DATA "/tls", DATA("server.key"), "tls.cert_file: "},
    {"/dev/zero", DATA("server.key"), "tls.cert_file: "},
    {DATA("server.crt"), "/dev/null", "tls.key_file: "},
};

static void
test_good_pair(void **state)
{
	struct event_base *base;
	struct bufferevent *bev;
	struct nb_tls *t;
	char err[512] = "";

	(void)state;
	t = nb_tls_new(
	    DATA("server.crt"), DATA("server.key"), err, sizeof(err));
	assert_non_null(t);
	assert_non_null(strstr(nb_tls_describe(t), "CN=nudgebridge test"));
	assert_non_null(strstr(nb_tls_describe(t), "not_after=2"));
	assert_non_null(base = event_base_new());
	assert_non_null(bev = nb_tls_bev_new(t, base));
	/* The connection keeps the context alive after the last unref. */
	nb_tls_free(t);
	bufferevent_free(bev);
	event_base_free(base);
	nb_tls_free(NULL);
	assert_string_equal(nb_tls_describe(NULL), "-");
}

static void
test_bad_pairs(void **state)
{
	char err[512], key[4096];
	struct nb_tls *t;
	FILE *f;
	size_t i, n;

	(void)state;
	assert_non_null(f = fopen(DATA("other.key"), "r"));
	n = fread(key, 1, sizeof(key) - 1, f);
	fclose(f);
	key[n] = '\0';
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		t = nb_tls_new(bad[i].cert, bad[i].key, err, sizeof(err));
		if (t != NULL)
			fail_msg("case %zu: accepted", i);
		if (strncmp(err, bad[i].prefix, strlen(bad[i].prefix)) != 0)
			fail_msg("case %zu: \"%s\" does not start with \"%s\"",
			    i, err, bad[i].prefix);
		/* The second line of a PEM key is pure key material. */
		assert_null(strstr(err, "MIG"));
		assert_null(strstr(err, key + 28));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_pair),
	    cmocka_unit_test(test_bad_pairs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
