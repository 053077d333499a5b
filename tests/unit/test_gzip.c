/* SPDX-License-Identifier: ISC */
/*
 * test_gzip: what goes out inflates (zlib, gzip wrapper) to exactly what
 * went in, body after body on one compressor; the output buffer's maximum
 * holds; empty input makes a valid member.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zlib.h>

#include "nudgebridge/buf.h"
#include "nudgebridge/gzip.h"

static unsigned char *
inflate_all(const char *in, size_t len, size_t *outlen)
{
	size_t cap = 4 * 1024 * 1024;
	unsigned char *out = malloc(cap);
	z_stream z;

	assert_non_null(out);
	memset(&z, 0, sizeof(z));
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (unsigned char *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	assert_int_equal(z.avail_in, 0); /* one member, nothing after */
	*outlen = z.total_out;
	inflateEnd(&z);
	return out;
}

static void
test_roundtrip(void **state)
{
	static const size_t sizes[] = {0, 1, 100, 65536, 500000, 1000000};
	struct nb_gzip *g;
	struct nb_buf out;
	unsigned char *back;
	char *in;
	size_t i, j, n;

	(void)state;
	assert_non_null(g = nb_gzip_new(NB_GZIP_LEVEL));
	assert_non_null(in = malloc(1000000));
	/* Batch-like text with some noise: compressible, not trivially. */
	for (j = 0; j < 1000000; j++)
		in[j] = j % 97 < 80 ? "{\"type\":\"track\",\"x\":"[j % 20]
				    : (char)('a' + randombytes_uniform(26));
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		nb_buf_init(&out, sizes[i] + sizes[i] / 8 + 1024);
		assert_int_equal(nb_gzip_compress(g, in, sizes[i], &out), 0);
		back = inflate_all(out.ptr, out.len, &n);
		assert_int_equal(n, sizes[i]);
		assert_memory_equal(back, in, n);
		if (sizes[i] >= 65536)
			assert_true(out.len < sizes[i] / 2);
		free(back);
		nb_buf_free(&out);
	}
	free(in);
	nb_gzip_free(g);
	nb_gzip_free(NULL);
}

static void
test_appends_and_limit(void **state)
{
	struct nb_gzip *g;
	struct nb_buf out;
	unsigned char *back;
	size_t n;

	(void)state;
	assert_non_null(g = nb_gzip_new(NB_GZIP_LEVEL));
	/* Appends after what the buffer holds. */
	nb_buf_init(&out, 4096);
	assert_int_equal(nb_buf_adds(&out, "HEAD"), 0);
	assert_int_equal(nb_gzip_compress(g, "hello hello hello", 17, &out), 0);
	assert_memory_equal(out.ptr, "HEAD", 4);
	back = inflate_all(out.ptr + 4, out.len - 4, &n);
	assert_int_equal(n, 17);
	assert_memory_equal(back, "hello hello hello", 17);
	free(back);
	nb_buf_free(&out);
	/* A maximum below zlib's bound fails, and the compressor recovers. */
	nb_buf_init(&out, 8);
	assert_int_equal(nb_gzip_compress(g, "hello", 5, &out), -1);
	nb_buf_free(&out);
	nb_buf_init(&out, 1024);
	assert_int_equal(nb_gzip_compress(g, "hello", 5, &out), 0);
	back = inflate_all(out.ptr, out.len, &n);
	assert_int_equal(n, 5);
	free(back);
	nb_buf_free(&out);
	nb_gzip_free(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_appends_and_limit),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
