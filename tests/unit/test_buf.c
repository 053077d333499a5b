/* SPDX-License-Identifier: ISC */
/*
 * test_buf: the bounded buffer keeps its maximum, its NUL and its failures.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/buf.h"

static void
test_empty(void **state)
{
	struct nb_buf b;
	char *p;
	size_t len = 99;

	(void)state;
	nb_buf_init(&b, 10);
	assert_string_equal(nb_buf_str(&b), "");
	assert_int_equal(b.len, 0);
	assert_false(nb_buf_failed(&b));
	p = nb_buf_steal(&b, &len);
	assert_non_null(p);
	assert_string_equal(p, "");
	assert_int_equal(len, 0);
	free(p);
	nb_buf_free(&b);
	nb_buf_free(NULL);
}

static void
test_add_until_max(void **state)
{
	struct nb_buf b;
	size_t i;

	(void)state;
	nb_buf_init(&b, 100);
	for (i = 0; i < 100; i++)
		assert_int_equal(nb_buf_addc(&b, (char)('a' + i % 26)), 0);
	assert_int_equal(b.len, 100);
	assert_int_equal(strlen(nb_buf_str(&b)), 100);
	assert_true(b.cap <= 101);
	/* One more byte passes the maximum: refused, sticky, nothing added. */
	assert_int_equal(nb_buf_addc(&b, 'x'), -1);
	assert_true(nb_buf_failed(&b));
	assert_int_equal(b.len, 100);
	assert_int_equal(nb_buf_add(&b, "", 0), -1);
	assert_null(nb_buf_steal(&b, NULL));
	assert_null(b.ptr);
	nb_buf_free(&b);
}

static void
test_large_add_refused_before_alloc(void **state)
{
	struct nb_buf b;

	(void)state;
	nb_buf_init(&b, 16);
	assert_int_equal(nb_buf_adds(&b, "0123456789"), 0);
	assert_int_equal(nb_buf_adds(&b, "0123456789"), -1);
	assert_string_equal(nb_buf_str(&b), "0123456789");
	assert_true(b.cap <= 17);
	nb_buf_reset(&b);
	assert_false(nb_buf_failed(&b));
	assert_int_equal(nb_buf_adds(&b, "abc"), 0);
	assert_string_equal(nb_buf_str(&b), "abc");
	nb_buf_free(&b);

	nb_buf_init(&b, SIZE_MAX);
	assert_int_equal(nb_buf_reserve(&b, SIZE_MAX), -1);
	assert_true(nb_buf_failed(&b));
	nb_buf_free(&b);
}

static void
test_addf_and_trim(void **state)
{
	struct nb_buf b;
	char *p;
	size_t len;

	(void)state;
	nb_buf_init(&b, 64);
	assert_int_equal(nb_buf_addf(&b, "%s=%d", "attempts", 42), 0);
	assert_int_equal(nb_buf_addc(&b, ','), 0);
	nb_buf_trim(&b, 1);
	assert_string_equal(nb_buf_str(&b), "attempts=42");
	nb_buf_trim(&b, 1000);
	assert_string_equal(nb_buf_str(&b), "");
	assert_int_equal(nb_buf_addf(&b, "%0100d", 7), -1);
	assert_true(nb_buf_failed(&b));
	nb_buf_reset(&b);
	assert_int_equal(nb_buf_addf(&b, "%d", 123), 0);
	p = nb_buf_steal(&b, &len);
	assert_string_equal(p, "123");
	assert_int_equal(len, 3);
	assert_null(b.ptr);
	assert_int_equal(b.max, 64);
	free(p);
}

/*
 * A buffer reserved at its worst case hands over only what it holds, from
 * the heap and from a mapping of its own alike.
 */
static void
test_steal_fit(void **state)
{
	static const size_t reserve[] = {16 << 10, 1 << 20};
	struct nb_buf b;
	char *p;
	size_t i, len = 0;

	(void)state;
	for (i = 0; i < sizeof(reserve) / sizeof(reserve[0]); i++) {
		nb_buf_init(&b, 4 << 20);
		assert_int_equal(nb_buf_reserve(&b, reserve[i]), 0);
		assert_int_equal(nb_buf_addf(&b, "%s", "{\"a\":1}"), 0);
		p = nb_buf_steal_fit(&b, &len);
		assert_non_null(p);
		assert_string_equal(p, "{\"a\":1}");
		assert_int_equal(len, 7);
		/* A mapping shrinks to whole pages. */
		assert_true(malloc_usable_size(p) < 8192);
		assert_null(b.ptr);
		free(p);
	}
	b.failed = 1;
	assert_null(nb_buf_steal_fit(&b, &len));
}

static void
test_binary_bytes(void **state)
{
	static const char bin[] = {'a', '\0', 'b', '\xff'};
	struct nb_buf b;

	(void)state;
	nb_buf_init(&b, 1024);
	assert_int_equal(nb_buf_add(&b, bin, sizeof(bin)), 0);
	assert_int_equal(nb_buf_add(&b, bin, sizeof(bin)), 0);
	assert_int_equal(b.len, 8);
	assert_memory_equal(b.ptr + 4, bin, sizeof(bin));
	assert_int_equal(b.ptr[8], '\0');
	assert_int_equal(nb_buf_reserve(&b, 900), 0);
	assert_true(b.cap >= 909);
	nb_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_add_until_max),
	    cmocka_unit_test(test_large_add_refused_before_alloc),
	    cmocka_unit_test(test_addf_and_trim),
	    cmocka_unit_test(test_steal_fit),
	    cmocka_unit_test(test_binary_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
