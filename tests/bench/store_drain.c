/* SPDX-License-Identifier: ISC */
/*
 * store_drain: the store calls of a backlog drain, for callgrind.
 *
 * Appends 20,000 events (or the count given after the file name, a multiple
 * of 100; each with an event id and a ~600-byte payload) in groups of 100
 * as the committer does, one event per request with a webhook id each (or
 * the count given third, a divisor of 100: 100 is issue 6's 100-event
 * arrays, one request per group), then claims 500 at a time and marks each
 * claim delivered as the deliverer does, and prints the bytes the database
 * file takes per event, the wall-clock rates of the appends and of the
 * drain, and how long nb_store_stats() (what /metrics and /v1/stats read)
 * takes with every drained event still retained.
 * Per-event instruction counts come from callgrind's inclusive costs of
 * nb_store_append, nb_store_claim and nb_store_delivered divided by the
 * event count.  The database file is measured after the appends and at
 * the end (each time closed, so the WAL is checkpointed).  It links the library
 * of a normal build (RelWithDebInfo):
 *
 *   cc -O2 -g -Iinclude tests/bench/store_drain.c build-X/libnbcore.a \
 *     $(pkg-config --libs sqlite3 libpq) -lpthread -o /tmp/store_drain &&
 *   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
 *     /tmp/store_drain /tmp/drain.db &&
 *   callgrind_annotate --inclusive=yes /tmp/cg.out | grep nb_store_
 *
 * (/tmp/store_drain /tmp/drain.db 20000 100 for the 100-event arrays.)
 * The tools build makes it too when given a main build's folder:
 * cmake -S tests/bench -B build-bench-tools -DNB_CORE_BUILD=$PWD/build-X.
 *
 * The database file named by the argument is deleted first.  An argument
 * that starts with "postgresql://" is a DSN instead: the PostgreSQL store
 * runs the same calls in the schema that PGOPTIONS's search_path names,
 * which must be empty (no file sizes are printed then).
 */
#include <sys/stat.h>

#include <inttypes.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nudgebridge/person.h"
#include "nudgebridge/nudgespot.h"
#include "nudgebridge/store.h"

#define NB_DRAIN_EVENTS 20000 /* the default */
#define NB_DRAIN_GROUP	100
#define NB_DRAIN_CLAIM	500
#define NB_DRAIN_RAW	600

static int64_t
file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

static void
unlink3(const char *path)
{
	char p[4096];
	int len;

	unlink(path);
	len = snprintf(p, sizeof(p), "%s-wal", path);
	if (len > 0 && (size_t)len < sizeof(p))
		unlink(p);
	len = snprintf(p, sizeof(p), "%s-shm", path);
	if (len > 0 && (size_t)len < sizeof(p))
		unlink(p);
}

/* Fills raw (NB_DRAIN_RAW bytes, NUL included) with an event like JSON. */
static void
make_raw(char *raw, int i)
{
	int len;

	len = snprintf(raw, NB_DRAIN_RAW,
	    "{\"id\":\"evt_%08d\",\"type\":\"email.opened\","
	    "\"created_at\":\"2024-05-01T12:00:00Z\",\"data\":{\"email\":"
	    "\"user%d@example.com\",\"campaign\":\"spring\",\"pad\":\"",
	    i, i);
	if (len < 0 || len >= NB_DRAIN_RAW - 3)
		abort();
	memset(raw + len, 'x', (size_t)(NB_DRAIN_RAW - 4 - len));
	memcpy(raw + NB_DRAIN_RAW - 4, "\"}}", 4);
}

/* Milliseconds on the monotonic clock. */
static double
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Milliseconds one nb_store_stats() takes, the mean of a few calls. */
static double
stats_ms(struct nb_store *s, int64_t now)
{
	struct nb_source_stats *st;
	struct timespec a, b;
	size_t n;
	int i, calls = 5;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < calls; i++) {
		if (nb_store_stats(s, now, &st, &n) == -1)
			return -1;
		free(st);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	return ((double)(b.tv_sec - a.tv_sec) * 1e3 +
		   (double)(b.tv_nsec - a.tv_nsec) / 1e6) /
	    calls;
}

int
main(int argc, char **argv)
{
	static char raws[NB_DRAIN_GROUP][NB_DRAIN_RAW];
	static char ids[NB_DRAIN_GROUP][32], whs[NB_DRAIN_GROUP][32];
	char mail[64];
	struct nb_store_attempt att;
	struct nb_event evs[NB_DRAIN_GROUP];
	struct nb_append reqs[NB_DRAIN_GROUP], *ptrs[NB_DRAIN_GROUP];
	struct nb_store_config cfg;
	struct nb_store *s = NULL;
	struct nb_stored_event *rows;
	const char *sources[] = {"acme"};
	int64_t seqs[NB_DRAIN_CLAIM], bytes, t = 1000000;
	size_t n, j, drained = 0;
	char err[256], *end;
	long long events = NB_DRAIN_EVENTS, per = 1;
	double t0;
	int i, k, nreqs;

	if (argc >= 3) {
		events = strtoll(argv[2], &end, 10);
		if (*end != '\0' || events <= 0 || events > 100000000 ||
		    events % NB_DRAIN_GROUP != 0)
			argc = 0;
	}
	if (argc == 4) {
		per = strtoll(argv[3], &end, 10);
		if (*end != '\0' || per <= 0 || per > NB_DRAIN_GROUP ||
		    NB_DRAIN_GROUP % per != 0)
			argc = 0;
	}
	if (argc < 2 || argc > 4) {
		fprintf(stderr,
		    "usage: store_drain file.db [events [per_request]]\n");
		return 2;
	}
	nreqs = NB_DRAIN_GROUP / (int)per;
	memset(&cfg, 0, sizeof(cfg));
	if (strncmp(argv[1], "postgresql://", 13) == 0) {
		cfg.driver = (char *)(uintptr_t) "postgres";
		cfg.dsn = argv[1];
	} else {
		unlink3(argv[1]);
		cfg.driver = (char *)(uintptr_t) "sqlite";
		cfg.path = argv[1];
	}
	cfg.lease_s = 30;
	if (nb_store_open(&s, &cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "store_drain: %s\n", err);
		return 1;
	}
	t0 = mono_ms();
	for (i = 0; i < events; i += NB_DRAIN_GROUP) {
		for (k = 0; k < NB_DRAIN_GROUP; k++) {
			snprintf(ids[k], sizeof(ids[k]), "evt_%08d", i + k);
			snprintf(whs[k], sizeof(whs[k]), "msg_%08d", i + k);
			make_raw(raws[k], i + k);
			memset(&evs[k], 0, sizeof(evs[k]));
			evs[k].id = ids[k];
			evs[k].type = (char *)(uintptr_t) "email.opened";
			evs[k].raw = raws[k];
			evs[k].rawlen = strlen(raws[k]);
			/* Both person keys, as the parser gives a subscriber
			 * with a uid and an address. */
			snprintf(
			    mail, sizeof(mail), "user%d@example.com", i + k);
			evs[k].email_key =
			    nb_person_key_email(mail, strlen(mail));
			evs[k].uid_key =
			    nb_person_key_uid(ids[k], strlen(ids[k]));
		}
		for (k = 0; k < nreqs; k++) {
			memset(&reqs[k], 0, sizeof(reqs[k]));
			reqs[k].source = "acme";
			reqs[k].webhook_id = whs[k * per];
			reqs[k].events = &evs[k * per];
			reqs[k].nevents = (size_t)per;
			reqs[k].received_ms = t;
			reqs[k].dedupe_after_ms = t - 7 * 86400 * 1000LL;
			ptrs[k] = &reqs[k];
		}
		if (nb_store_append(s, ptrs, (size_t)nreqs) == -1) {
			fprintf(stderr, "store_drain: append failed\n");
			return 1;
		}
		t++;
	}
	printf(
	    "append: %.0f events/s\n", (double)events * 1e3 / (mono_ms() - t0));
	/* Closing checkpoints the WAL into the file: measure, reopen. */
	nb_store_close(s);
	bytes = cfg.path != NULL ? file_size(argv[1]) : 0;
	printf("after append: %" PRId64 " bytes, %.1f per event\n", bytes,
	    (double)bytes / (double)events);
	if (nb_store_open(&s, &cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "store_drain: %s\n", err);
		return 1;
	}
	t0 = mono_ms();
	for (;;) {
		t++;
		if (nb_store_claim(s, sources, 1, t, t + 30000, NB_DRAIN_CLAIM,
			&rows, &n) == -1) {
			fprintf(stderr, "store_drain: claim failed\n");
			return 1;
		}
		if (n == 0)
			break;
		for (j = 0; j < n; j++) {
			if (rows[j].rawlen < 100)
				abort();
			seqs[j] = rows[j].seq;
		}
		nb_stored_events_free(rows, n);
		/* The attempt that delivered them, as the deliverer records. */
		memset(&att, 0, sizeof(att));
		att.at_ms = t - 5;
		att.end_ms = t;
		att.status = 200;
		att.batch_size = n;
		if (nb_store_delivered(s, seqs, n, t, &att) == -1) {
			fprintf(stderr, "store_drain: delivered failed\n");
			return 1;
		}
		drained += n;
	}
	printf("drain (claim 500, mark delivered): %.0f events/s\n",
	    (double)drained * 1e3 / (mono_ms() - t0));
	printf("stats with %zu delivered rows retained: %.3f ms per call\n",
	    drained, stats_ms(s, t));
	nb_store_close(s);
	bytes = cfg.path != NULL ? file_size(argv[1]) : 0;
	printf("drained %zu events; after close: %" PRId64
	       " bytes, %.1f per event\n",
	    drained, bytes, (double)bytes / (double)events);
	return drained == (size_t)events ? 0 : 1;
}
