/* SPDX-License-Identifier: ISC */
/*
 * fsprobe: the disk's own fdatasync latency, for the nudgebridge benchmarks.
 *
 * A 200 from the bridge waits for a group commit's fsync, so the tail of its
 * answers can never beat the tail of one fdatasync on the disk that holds
 * the database.  fsprobe measures that floor where it matters: it creates a
 * file in the folder it is given (the database's folder), appends --count
 * small blocks (--bytes each) and calls fdatasync() after each one, timing
 * the call alone, and prints one JSON line with the percentiles in ms.  The
 * file is removed at the end.  Nothing else runs meanwhile unless the
 * caller arranges it, so this is the disk's figure, not the bridge's.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#define DEFAULT_COUNT 2000
#define DEFAULT_BYTES 4096 /* one SQLite page */
#define MAX_COUNT     1000000
#define MAX_BYTES     (1024 * 1024)

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The p-th percentile (0..100) of n sorted values, nearest rank, in ms. */
static double
pct_ms(const int64_t *v, size_t n, double p)
{
	size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)v[rank - 1] / 1e6;
}

static const char usage[] = "usage: fsprobe DIR [--count N] [--bytes B]\n";

int
main(int argc, char **argv)
{
	const char *dir = NULL;
	char path[4096], *block = NULL;
	int64_t *lat = NULL, t0, sum = 0;
	long count = DEFAULT_COUNT, bytes = DEFAULT_BYTES, i;
	int fd = -1, rc = 1, w;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
			count = bench_num(argv[++i], 1, MAX_COUNT, usage);
		else if (strcmp(argv[i], "--bytes") == 0 && i + 1 < argc)
			bytes = bench_num(argv[++i], 1, MAX_BYTES, usage);
		else if (argv[i][0] != '-' && dir == NULL)
			dir = argv[i];
		else
			bench_usage(usage);
	}
	if (dir == NULL)
		bench_usage(usage);
	w = snprintf(path, sizeof(path), "%s/fsprobe.%ld", dir, (long)getpid());
	if (w < 0 || (size_t)w >= sizeof(path))
		return 2;
	lat = calloc((size_t)count, sizeof(*lat));
	block = malloc((size_t)bytes);
	if (lat == NULL || block == NULL)
		goto out;
	memset(block, 'x', (size_t)bytes);
	fd = open(
	    path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd == -1) {
		fprintf(stderr, "fsprobe: %s: %s\n", path, strerror(errno));
		goto out;
	}
	for (i = 0; i < count; i++) {
		if (write(fd, block, (size_t)bytes) != (ssize_t)bytes) {
			fprintf(
			    stderr, "fsprobe: write: %s\n", strerror(errno));
			goto out;
		}
		t0 = bench_mono_ns();
		if (fdatasync(fd) == -1) {
			fprintf(stderr, "fsprobe: fdatasync: %s\n",
			    strerror(errno));
			goto out;
		}
		lat[i] = bench_mono_ns() - t0;
		sum += lat[i];
	}
	qsort(lat, (size_t)count, sizeof(*lat), cmp_i64);
	printf("{\"tool\":\"fsprobe\",\"count\":%ld,\"bytes\":%ld,"
	       "\"fdatasync_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
	       "\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f}}\n",
	    count, bytes, pct_ms(lat, (size_t)count, 50),
	    pct_ms(lat, (size_t)count, 90), pct_ms(lat, (size_t)count, 99),
	    pct_ms(lat, (size_t)count, 99.9), (double)lat[count - 1] / 1e6,
	    (double)sum / (double)count / 1e6);
	rc = 0;
out:
	if (fd != -1) {
		close(fd);
		unlink(path);
	}
	free(lat);
	free(block);
	return rc;
}
