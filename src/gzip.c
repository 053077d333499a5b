/* SPDX-License-Identifier: ISC */
/*
 * gzip: deflate into a bounded buffer, one call per body.
 *
 * The output room is deflateBound() of the input, reserved once, so a
 * single deflate(Z_FINISH) always completes and the result never needs a
 * second pass or a copy.  The compressor is reset after each body whatever
 * happened, so a failure leaves it ready for the next one.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include <zlib.h>

#include "nudgebridge/buf.h"
#include "nudgebridge/gzip.h"

struct nb_gzip {
	z_stream z;
};

struct nb_gzip *
nb_gzip_new(int level)
{
	struct nb_gzip *g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	/* windowBits 15 + 16: a gzip header and trailer around deflate. */
	if (deflateInit2(&g->z, level, Z_DEFLATED, 15 + 16, 8,
		Z_DEFAULT_STRATEGY) != Z_OK) {
		free(g);
		return NULL;
	}
	return g;
}

void
nb_gzip_free(struct nb_gzip *g)
{
	if (g == NULL)
		return;
	deflateEnd(&g->z);
	free(g);
}

int
nb_gzip_compress(
    struct nb_gzip *g, const void *in, size_t len, struct nb_buf *out)
{
	uLong bound;
	int rc = -1;

	if (len > UINT_MAX / 2)
		return -1;
	bound = deflateBound(&g->z, (uLong)len);
	if (nb_buf_reserve(out, (size_t)bound) == -1)
		return -1;
	g->z.next_in = (Bytef *)(uintptr_t)in;
	g->z.avail_in = (uInt)len;
	g->z.next_out = (Bytef *)out->ptr + out->len;
	g->z.avail_out = (uInt)bound;
	if (deflate(&g->z, Z_FINISH) == Z_STREAM_END) {
		out->len += (size_t)bound - g->z.avail_out;
		out->ptr[out->len] = '\0';
		rc = 0;
	}
	(void)deflateReset(&g->z);
	return rc;
}
