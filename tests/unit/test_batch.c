/* SPDX-License-Identifier: ISC */
/*
 * test_batch: packing keeps every batch within the byte limit the body is
 * then written at (envelope and an OAuth tail included), in claim order;
 * a split moves items without losing or copying a message; the body is
 * the contract's envelope, byte for byte.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/batch.h"
#include "nudgebridge/timeutil.h"

#define TAIL ",\"writeKey\":\"wk\""

static struct nb_item *
items_of(size_t n, size_t len)
{
	struct nb_item *items = calloc(n, sizeof(*items));
	size_t i;

	assert_non_null(items);
	for (i = 0; i < n; i++) {
		items[i].seq = (int64_t)i + 1;
		assert_non_null(items[i].msg = malloc(len + 1));
		memset(items[i].msg, 'a' + (int)(i % 26), len);
		items[i].msg[len] = '\0';
		items[i].len = len;
	}
	return items;
}

static void
test_pack_limits(void **state)
{
	static const struct {
		size_t n, len, max;
		const char *tail;
	} cases[] = {
	    {10, 100, 500000, NULL},
	    {10, 100, 400, NULL},
	    {10, 100, 400, TAIL},
	    {7, 333, 1000, TAIL},
	    {1, 300, 348, NULL}, /* exactly one message's room */
	    {2500, 10, 500000, NULL},
	};
	struct nb_batch_queue q;
	struct nb_item *items;
	struct nb_batch *b;
	size_t i, overhead, seen, len;
	int64_t next;
	char *body;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&q, 0, sizeof(q));
		overhead = nb_batch_overhead(
		    cases[i].tail != NULL ? strlen(cases[i].tail) : 0);
		items = items_of(cases[i].n, cases[i].len);
		assert_int_equal(nb_batch_pack(&q, items, cases[i].n,
				     cases[i].max, overhead, 42),
		    0);
		/* The items were handed over. */
		assert_null(items[0].msg);
		nb_batch_items_free(items, cases[i].n);
		seen = 0;
		next = 1;
		while ((b = nb_batch_pop(&q)) != NULL) {
			assert_true(b->n > 0);
			assert_int_equal(b->lease_until_ms, 42);
			assert_int_equal(b->items[0].seq, next);
			next += (int64_t)b->n;
			seen += b->n;
			assert_int_equal(
			    nb_batch_body(b, 0, cases[i].tail, &body, &len), 0);
			assert_int_equal(strlen(body), len);
			if (len > cases[i].max)
				fail_msg("case %zu: body of %zu bytes", i, len);
			free(body);
			nb_batch_free(b);
		}
		assert_int_equal(seen, cases[i].n);
	}
}

static void
test_pack_nothing(void **state)
{
	struct nb_batch_queue q;

	(void)state;
	memset(&q, 0, sizeof(q));
	/* A claim that found nothing packs nothing (and touches no items). */
	assert_int_equal(nb_batch_pack(&q, NULL, 0, 1000, 48, 0), 0);
	assert_null(nb_batch_pop(&q));
}

static void
test_body(void **state)
{
	struct nb_batch_queue q;
	struct nb_item *items;
	struct nb_batch *b;
	char *body, iso[NB_TIME_ISO_LEN], want[256];
	size_t len;

	(void)state;
	memset(&q, 0, sizeof(q));
	items = items_of(2, 3);
	assert_int_equal(
	    nb_batch_pack(&q, items, 2, 1000, nb_batch_overhead(0), 0), 0);
	free(items);
	b = nb_batch_pop(&q);
	assert_non_null(b);
	assert_null(nb_batch_pop(&q));
	nb_time_format_iso(1795860000123LL, iso);
	assert_int_equal(
	    nb_batch_body(b, 1795860000123LL, NULL, &body, &len), 0);
	(void)snprintf(
	    want, sizeof(want), "{\"batch\":[aaa,bbb],\"sentAt\":\"%s\"}", iso);
	assert_string_equal(body, want);
	assert_int_equal(len, strlen(want));
	assert_int_equal(len, nb_batch_overhead(0) + 7);
	free(body);
	assert_int_equal(
	    nb_batch_body(b, 1795860000123LL, TAIL, &body, &len), 0);
	(void)snprintf(want, sizeof(want),
	    "{\"batch\":[aaa,bbb],\"sentAt\":\"%s\"" TAIL "}", iso);
	assert_string_equal(body, want);
	assert_int_equal(len, nb_batch_overhead(strlen(TAIL)) + 7);
	free(body);
	nb_batch_free(b);
}

static void
test_split_and_queue(void **state)
{
	struct nb_batch_queue q;
	struct nb_batch *b, *h0, *h1;
	struct nb_item *items;

	(void)state;
	memset(&q, 0, sizeof(q));
	items = items_of(5, 4);
	assert_int_equal(
	    nb_batch_pack(&q, items, 5, 100000, nb_batch_overhead(0), 9), 0);
	free(items);
	b = nb_batch_pop(&q);
	assert_int_equal(b->n, 5);
	b->epoch = 7;
	assert_int_equal(nb_batch_split(b, &h0, &h1), 0);
	/* The halves were claimed when their whole was. */
	assert_int_equal(h0->epoch, 7);
	assert_int_equal(h1->epoch, 7);
	assert_int_equal(h0->n, 2);
	assert_int_equal(h1->n, 3);
	assert_int_equal(h0->items[0].seq, 1);
	assert_int_equal(h1->items[0].seq, 3);
	assert_int_equal(h1->lease_until_ms, 9);
	/* Halves go to the front, in order. */
	items = items_of(1, 4);
	items[0].seq = 99;
	assert_int_equal(
	    nb_batch_pack(&q, items, 1, 100000, nb_batch_overhead(0), 9), 0);
	free(items);
	nb_batch_push_head(&q, h1);
	nb_batch_push_head(&q, h0);
	assert_ptr_equal(nb_batch_pop(&q), h0);
	assert_ptr_equal(nb_batch_pop(&q), h1);
	b = nb_batch_pop(&q);
	assert_int_equal(b->items[0].seq, 99);
	assert_null(nb_batch_pop(&q));
	nb_batch_free(h0);
	nb_batch_free(h1);
	nb_batch_free(b);
	nb_batch_free(NULL);
}

/* Keeping some items: in order, the others' messages freed (ASan). */
static void
test_keep(void **state)
{
	static const unsigned char keep[5] = {0, 1, 0, 1, 1};
	static const unsigned char none[3] = {0, 0, 0};
	struct nb_batch_queue q;
	struct nb_item *items;
	struct nb_batch *b;

	(void)state;
	memset(&q, 0, sizeof(q));
	items = items_of(5, 4);
	assert_int_equal(
	    nb_batch_pack(&q, items, 5, 100000, nb_batch_overhead(0), 9), 0);
	free(items);
	b = nb_batch_pop(&q);
	assert_int_equal(nb_batch_keep(b, keep), 3);
	assert_int_equal(b->n, 3);
	assert_int_equal(b->items[0].seq, 2);
	assert_int_equal(b->items[1].seq, 4);
	assert_int_equal(b->items[2].seq, 5);
	assert_int_equal(nb_batch_keep(b, none), 0);
	nb_batch_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pack_limits),
	    cmocka_unit_test(test_pack_nothing),
	    cmocka_unit_test(test_body),
	    cmocka_unit_test(test_split_and_queue),
	    cmocka_unit_test(test_keep),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
