/* SPDX-License-Identifier: ISC */
/*
 * test_activity: the table of last verified requests per source and key.
 *
 * Figures only move forward, whoever raises them (the webhook threads, or
 * the store's figures merged in); "dirty" lists exactly what moved since
 * it was last stored; the table is bounded (sources and keys past its
 * size are not recorded, the rest keep working); four threads recording
 * at once lose nothing and never see a half-written name; the metric
 * families render each figure once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "nudgebridge/activity.h"

struct seen {
	struct nb_activity_row rows[64];
	size_t n;
};

static void
seen_cb(void *arg, const struct nb_activity_row *r)
{
	struct seen *s = arg;

	if (s->n < 64)
		s->rows[s->n] = *r;
	s->n++;
}

static int64_t
seen_ms(const struct seen *s, const char *source, const char *fp)
{
	size_t i;

	for (i = 0; i < s->n && i < 64; i++)
		if (strcmp(s->rows[i].source, source) == 0 &&
		    strcmp(s->rows[i].fp, fp) == 0)
			return s->rows[i].ms;
	return -1;
}

static void
test_note_and_flush(void **state)
{
	struct nb_activity *a = nb_activity_new();
	struct nb_activity_row store[2] = {
	    {"acme", "", 5000}, {"beta", "abcd0123", 7000}};
	struct seen s;

	(void)state;
	assert_non_null(a);
	assert_int_equal(nb_activity_last(a, "acme"), 0);
	nb_activity_note(a, "acme", "0a1b2c3d", 1000);
	nb_activity_note(a, "acme", NULL, 900); /* never backwards */
	assert_int_equal(nb_activity_last(a, "acme"), 1000);

	memset(&s, 0, sizeof(s));
	nb_activity_each(a, 1, seen_cb, &s);
	assert_int_equal(s.n, 2);
	assert_int_equal(seen_ms(&s, "acme", ""), 1000);
	assert_int_equal(seen_ms(&s, "acme", "0a1b2c3d"), 1000);
	nb_activity_stored(a, s.rows, s.n);
	memset(&s, 0, sizeof(s));
	nb_activity_each(a, 1, seen_cb, &s);
	assert_int_equal(s.n, 0);

	/* The store's (another instance's) figures: raised, not dirty. */
	nb_activity_merge(a, store, 2);
	assert_int_equal(nb_activity_last(a, "acme"), 5000);
	/* A key's figure is its own: the source's comes in its own row. */
	assert_int_equal(nb_activity_last(a, "beta"), 0);
	memset(&s, 0, sizeof(s));
	nb_activity_each(a, 1, seen_cb, &s);
	assert_int_equal(s.n, 0);
	nb_activity_note(a, "acme", "0a1b2c3d", 6000);
	memset(&s, 0, sizeof(s));
	nb_activity_each(a, 1, seen_cb, &s);
	assert_int_equal(s.n, 2);
	assert_int_equal(seen_ms(&s, "acme", ""), 6000);
	memset(&s, 0, sizeof(s));
	nb_activity_each(a, 0, seen_cb, &s);
	assert_int_equal(s.n, 3);
	assert_int_equal(seen_ms(&s, "beta", "abcd0123"), 7000);
	nb_activity_note(NULL, "acme", NULL, 1); /* no table: nothing */
	nb_activity_free(a);
}

static void
test_bounds(void **state)
{
	struct nb_activity *a = nb_activity_new();
	char name[NB_SOURCE_NAME_MAX + 8], fp[NB_SIG_FP_LEN];
	size_t i;

	(void)state;
	assert_non_null(a);
	for (i = 0; i < NB_ACTIVITY_SOURCES; i++) {
		snprintf(name, sizeof(name), "s%zu", i);
		nb_activity_note(a, name, NULL, 10);
	}
	nb_activity_note(a, "one-too-many", NULL, 10);
	assert_int_equal(nb_activity_last(a, "one-too-many"), 0);
	assert_int_equal(nb_activity_last(a, "s0"), 10);
	snprintf(name, sizeof(name), "s%d", NB_ACTIVITY_SOURCES - 1);
	nb_activity_note(a, name, NULL, 20);
	assert_int_equal(nb_activity_last(a, name), 20);
	nb_activity_free(a);

	assert_non_null(a = nb_activity_new());
	for (i = 0; i <= NB_ACTIVITY_KEYS; i++) {
		snprintf(fp, sizeof(fp), "%08zx", i);
		nb_activity_note(a, "acme", fp, 100 + (int64_t)i);
	}
	/* The source still moves when its keys are full. */
	assert_int_equal(nb_activity_last(a, "acme"), 100 + NB_ACTIVITY_KEYS);
	/* Names too long are refused. */
	memset(name, 'a', NB_SOURCE_NAME_MAX + 1);
	name[NB_SOURCE_NAME_MAX + 1] = '\0';
	nb_activity_note(a, name, NULL, 5);
	assert_int_equal(nb_activity_last(a, name), 0);
	nb_activity_free(a);
}

#define THREADS 4
#define NAMES	200
#define ROUNDS	20

static void *
writer(void *arg)
{
	struct nb_activity *a = arg;
	char name[32], fp[NB_SIG_FP_LEN];
	int r, i;

	for (r = 1; r <= ROUNDS; r++)
		for (i = 0; i < NAMES; i++) {
			snprintf(name, sizeof(name), "src-%d", i);
			snprintf(fp, sizeof(fp), "%08x", i % 7);
			nb_activity_note(a, name, fp, r * 1000 + i);
		}
	return NULL;
}

static void
count_cb(void *arg, const struct nb_activity_row *r)
{
	size_t *n = arg;

	assert_int_equal(strncmp(r->source, "src-", 4), 0);
	(*n)++;
}

static void
test_threads(void **state)
{
	struct nb_activity *a = nb_activity_new();
	pthread_t t[THREADS];
	char name[32];
	size_t i, n = 0;

	(void)state;
	assert_non_null(a);
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, writer, a), 0);
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (i = 0; i < NAMES; i++) {
		snprintf(name, sizeof(name), "src-%zu", i);
		assert_int_equal(
		    nb_activity_last(a, name), ROUNDS * 1000 + (int64_t)i);
	}
	/* Each name once, each with its one key. */
	nb_activity_each(a, 0, count_cb, &n);
	assert_int_equal(n, 2 * NAMES);
	nb_activity_free(a);
}

static void
test_render(void **state)
{
	struct nb_activity *a = nb_activity_new();
	struct evbuffer *out = evbuffer_new();
	char *text;
	size_t len;

	(void)state;
	assert_non_null(a);
	assert_non_null(out);
	nb_activity_note(a, "acme", "0a1b2c3d", 1764324000123LL);
	assert_int_equal(nb_activity_render(a, out), 0);
	len = evbuffer_get_length(out);
	assert_non_null(text = calloc(1, len + 1));
	evbuffer_remove(out, text, len);
	assert_non_null(strstr(text,
	    "# TYPE nudgebridge_source_last_received_timestamp_seconds gauge\n"
	    "nudgebridge_source_last_received_timestamp_seconds"
	    "{source=\"acme\"} 1764324000.123\n"));
	assert_non_null(strstr(text,
	    "nudgebridge_signing_key_last_used_timestamp_seconds"
	    "{source=\"acme\",key=\"0a1b2c3d\"} 1764324000.123\n"));
	assert_null(strstr(text,
	    "nudgebridge_source_last_received_timestamp_seconds"
	    "{source=\"acme\",key"));
	free(text);
	evbuffer_free(out);
	nb_activity_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_note_and_flush),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_render),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
