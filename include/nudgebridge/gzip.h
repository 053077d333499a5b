/* SPDX-License-Identifier: ISC */
/*
 * gzip: batch bodies compressed with zlib's gzip wrapper (RFC 1952).
 *
 * One compressor per deliverer thread keeps zlib's state (about 270 KiB at
 * memLevel 8) across bodies: deflateReset() between them costs nothing
 * like deflateInit2().  The level is NB_GZIP_LEVEL, chosen by measurement
 * (instructions per event against bytes on the wire; docs/benchmarks.md).
 * A compressor is used by one thread at a time.
 */
#ifndef NB_GZIP_H
#define NB_GZIP_H

#include <stddef.h>

struct nb_buf;
struct nb_gzip;

/*
 * zlib level 2: on Track batches it costs about half of level 6 for 15 %
 * more bytes, and compresses better than level 1 at the same cost.
 */
#define NB_GZIP_LEVEL 2

/* A compressor at level (0..9); NULL when out of memory. */
struct nb_gzip *nb_gzip_new(int level);

/* NULL is ok. */
void nb_gzip_free(struct nb_gzip *);

/*
 * Appends the gzip member of in (len bytes) to out, in one pass; out's
 * maximum must leave room for zlib's bound.  0, or -1 (out of memory,
 * out's maximum, a zlib error) with out failed or unchanged.
 */
int nb_gzip_compress(
    struct nb_gzip *, const void *in, size_t len, struct nb_buf *out);

#endif
