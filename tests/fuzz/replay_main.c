/* SPDX-License-Identifier: ISC */
/*
 * replay_main: runs a fuzz target over a saved corpus, as a plain test.
 *
 * Each argument is a corpus directory (every regular file in it, in name
 * order, dot files skipped) or a single input file; each input is read
 * whole into a buffer of exactly its size, so the sanitizers see reads past
 * the end, and handed to LLVMFuzzerTestOneInput().  A target signals a bug
 * by crashing or aborting, so reaching the end means every input passed;
 * the last line says how many.  Built without libFuzzer, so every build
 * replays the corpus under ctest.
 */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads path whole; *buf is malloc'd (at least 1 byte).  0 or -1. */
static int
read_file(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = NULL;
	struct stat st;
	uint8_t *b = NULL;
	int rc = -1;

	if ((f = fopen(path, "rb")) == NULL)
		goto out;
	if (fstat(fileno(f), &st) == -1 || st.st_size < 0)
		goto out;
	if ((b = malloc(st.st_size > 0 ? (size_t)st.st_size : 1)) == NULL)
		goto out;
	if (st.st_size > 0 &&
	    fread(b, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
		goto out;
	*buf = b;
	*len = (size_t)st.st_size;
	b = NULL;
	rc = 0;
out:
	free(b);
	if (f != NULL)
		fclose(f);
	return rc;
}

static int
run_one(const char *path)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	if (read_file(path, &buf, &len) == -1) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

static int
skip_dot(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

int
main(int argc, char **argv)
{
	struct dirent **names;
	struct stat st;
	char path[4096];
	size_t passed = 0, failed = 0;
	int i, j, n, w;

	if (argc < 2) {
		fprintf(stderr, "usage: %s corpus-dir|file ...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) == -1) {
			fprintf(stderr, "replay: %s: %s\n", argv[i],
			    strerror(errno));
			failed++;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_one(argv[i]) == 0)
				passed++;
			else
				failed++;
			continue;
		}
		if ((n = scandir(argv[i], &names, skip_dot, alphasort)) == -1) {
			fprintf(stderr, "replay: %s: %s\n", argv[i],
			    strerror(errno));
			failed++;
			continue;
		}
		for (j = 0; j < n; j++) {
			w = snprintf(path, sizeof(path), "%s/%s", argv[i],
			    names[j]->d_name);
			if (w < 0 || (size_t)w >= sizeof(path)) {
				failed++;
			} else if (stat(path, &st) == 0 &&
			    S_ISREG(st.st_mode)) {
				if (run_one(path) == 0)
					passed++;
				else
					failed++;
			}
			free(names[j]);
		}
		free(names);
	}
	printf("%zu passed, %zu failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
