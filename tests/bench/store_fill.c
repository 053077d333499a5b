/* SPDX-License-Identifier: ISC */
/*
 * store_fill: a store holding N delivered events, fast, for the
 * production-scale scenario of the nudgebridge benchmarks.
 *
 * A bridge that keeps delivered events for retention (a day by default)
 * holds a million rows at a modest rate; /metrics, /v1/stats and every
 * webhook must cost the same then as on an empty store.  Sending that many
 * events through the API takes minutes, so this tool writes them through
 * the store API the daemon itself uses (nb_store_open, nb_store_append in
 * groups of --group events, then nb_store_claim and nb_store_delivered of
 * the same rows), which keeps it right whatever the schema of the day is.
 * Every event is a valid Nudgespot event of about 600 bytes with an id and
 * a webhook id of its own, received and delivered "now" (wall clock), so
 * the bridge started on the store afterwards retains all of them.
 *
 *   store_fill --sqlite /abs/path/nb.db --events 1000000
 *   store_fill --dsn postgresql://... --events 1000000
 *
 * Prints one JSON line (events, seconds, events/s); progress on stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nudgebridge/nudgespot.h"
#include "nudgebridge/store.h"

#include "benchutil.h"

#define DEFAULT_GROUP	10000
#define DEFAULT_PER_REQ 100
#define MAX_GROUP	100000
#define RAW_MAX		1024
#define ID_MAX		48

struct fill {
	struct nb_store *s;
	const char *source;
	long long events, group, per;
	char (*raw)[RAW_MAX];
	char (*ids)[ID_MAX];
	char (*whs)[ID_MAX];
	struct nb_event *evs;
	struct nb_append *reqs;
	struct nb_append **ptrs;
	int64_t *seqs;
	char run[16];
};

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char usage[] =
    "usage: store_fill (--sqlite ABS_PATH | --dsn DSN) --events N\n"
    "         [--source NAME] [--group G] [--per-request K]\n";

/* Eight random hex digits into out (at least 9 bytes). */
static int
run_tag(char *out, size_t len)
{
	unsigned char rnd[4];
	FILE *u;
	int ok;

	if ((u = fopen("/dev/urandom", "rb")) == NULL)
		return -1;
	ok = fread(rnd, 1, sizeof(rnd), u) == sizeof(rnd);
	fclose(u);
	if (!ok || len < 9)
		return -1;
	snprintf(out, len, "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	return 0;
}

/* Event i as Nudgespot sends it, compact, into f->raw[k]. */
static int
event_make(struct fill *f, long long k, long long i, const char *occurred)
{
	unsigned u = (unsigned)(i % 5000);
	int w;

	w = snprintf(f->ids[k], ID_MAX, "evt_fill_%s_%lld", f->run, i);
	if (w < 0 || w >= ID_MAX)
		return -1;
	w = snprintf(f->whs[k], ID_MAX, "msg_fill_%s_%lld", f->run, i);
	if (w < 0 || w >= ID_MAX)
		return -1;
	w = snprintf(f->raw[k], RAW_MAX,
	    "{\"id\":\"%s\",\"type\":\"email.opened\",\"occurred_at\":\"%s\","
	    "\"subscriber\":{\"uid\":\"u_%u\",\"email\":\"user%u@example.com\"}"
	    ","
	    "\"message\":{\"id\":\"msg_%u\",\"subject\":\"Your weekly digest "
	    "#%u\",\"campaign_id\":\"cmp_%u\",\"campaign_name\":\"Weekly "
	    "digest\"},\"client\":{\"ip\":\"203.0.113.%u\",\"user_agent\":"
	    "\"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) "
	    "AppleWebKit/605.1.15"
	    " (KHTML, like Gecko) Version/17.5 Safari/605.1.15\"},"
	    "\"properties\":{\"plan\":\"pro\",\"locale\":\"en-GB\","
	    "\"experiment\":\"subject-line-b\"}}",
	    f->ids[k], occurred, u, u, (unsigned)(i % 300), (unsigned)(i % 52),
	    (unsigned)(i % 20), (unsigned)(i % 250));
	if (w < 0 || w >= RAW_MAX)
		return -1;
	memset(&f->evs[k], 0, sizeof(f->evs[k]));
	f->evs[k].id = f->ids[k];
	f->evs[k].type = (char *)(uintptr_t) "email.opened";
	f->evs[k].raw = f->raw[k];
	f->evs[k].rawlen = (size_t)w;
	return 0;
}

/* Appends events [first, first + n) and marks them delivered. */
static int
fill_group(struct fill *f, long long first, long long n)
{
	const char *sources[1] = {f->source};
	struct nb_stored_event *rows = NULL;
	char occurred[32];
	time_t now = time(NULL);
	struct tm tm;
	int64_t t = wall_ms();
	long long k, nreq = (n + f->per - 1) / f->per, done = 0;
	size_t got, j;

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(occurred, sizeof(occurred), "%Y-%m-%dT%H:%M:%SZ", &tm) ==
		0)
		return -1;
	for (k = 0; k < n; k++)
		if (event_make(f, k, first + k, occurred) == -1)
			return -1;
	for (k = 0; k < nreq; k++) {
		struct nb_append *a = &f->reqs[k];

		memset(a, 0, sizeof(*a));
		a->source = f->source;
		a->webhook_id = f->whs[k * f->per];
		a->events = &f->evs[k * f->per];
		a->nevents = (size_t)(k == nreq - 1 ? n - k * f->per : f->per);
		a->received_ms = t;
		a->dedupe_after_ms = t - 7LL * 86400 * 1000;
		f->ptrs[k] = a;
	}
	if (nb_store_append(f->s, f->ptrs, (size_t)nreq) == -1)
		return -1;
	while (done < n) {
		t = wall_ms();
		if (nb_store_claim(f->s, sources, 1, t, t + 600000,
			(size_t)(n - done), &rows, &got) == -1)
			return -1;
		if (got == 0) {
			fprintf(stderr, "store_fill: claimed %lld of %lld\n",
			    done, n);
			return -1;
		}
		for (j = 0; j < got; j++)
			f->seqs[j] = rows[j].seq;
		nb_stored_events_free(rows, got);
		if (nb_store_delivered(f->s, f->seqs, got, wall_ms(), NULL) ==
		    -1)
			return -1;
		done += (long long)got;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static struct fill f;
	struct nb_store_config cfg;
	char err[512];
	double t0, t1;
	long long i, n;
	int a, rc = 1;

	memset(&cfg, 0, sizeof(cfg));
	cfg.lease_s = 30;
	f.source = "acme";
	f.group = DEFAULT_GROUP;
	f.per = DEFAULT_PER_REQ;
	for (a = 1; a + 1 < argc; a += 2) {
		const char *o = argv[a], *v = argv[a + 1];

		if (strcmp(o, "--sqlite") == 0) {
			cfg.driver = (char *)(uintptr_t) "sqlite";
			cfg.path = (char *)(uintptr_t)v;
		} else if (strcmp(o, "--dsn") == 0) {
			cfg.driver = (char *)(uintptr_t) "postgres";
			cfg.dsn = (char *)(uintptr_t)v;
		} else if (strcmp(o, "--events") == 0)
			f.events = bench_num(v, 1, 1000000000LL, usage);
		else if (strcmp(o, "--source") == 0)
			f.source = v;
		else if (strcmp(o, "--group") == 0)
			f.group = bench_num(v, 1, MAX_GROUP, usage);
		else if (strcmp(o, "--per-request") == 0)
			f.per = bench_num(v, 1, 1000, usage);
		else
			bench_usage(usage);
	}
	if (a != argc || cfg.driver == NULL || f.events == 0 ||
	    (cfg.path != NULL && cfg.path[0] != '/'))
		bench_usage(usage);
	if ((f.raw = calloc((size_t)f.group, sizeof(*f.raw))) == NULL ||
	    (f.ids = calloc((size_t)f.group, sizeof(*f.ids))) == NULL ||
	    (f.whs = calloc((size_t)f.group, sizeof(*f.whs))) == NULL ||
	    (f.evs = calloc((size_t)f.group, sizeof(*f.evs))) == NULL ||
	    (f.reqs = calloc((size_t)f.group, sizeof(*f.reqs))) == NULL ||
	    (f.ptrs = calloc((size_t)f.group, sizeof(*f.ptrs))) == NULL ||
	    (f.seqs = calloc((size_t)f.group, sizeof(*f.seqs))) == NULL)
		goto out;
	/* A run tag keeps ids unique when a store is filled twice. */
	if (run_tag(f.run, sizeof(f.run)) == -1)
		goto out;
	if (nb_store_open(&f.s, &cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "store_fill: %s\n", err);
		goto out;
	}
	t0 = (double)bench_mono_ns() / 1e9;
	for (i = 0; i < f.events; i += n) {
		n = f.events - i < f.group ? f.events - i : f.group;
		if (fill_group(&f, i, n) == -1) {
			fprintf(
			    stderr, "store_fill: failed at event %lld\n", i);
			goto out;
		}
		if ((i + n) % 100000 < n)
			fprintf(stderr, "store_fill: %lld events\n", i + n);
	}
	t1 = (double)bench_mono_ns() / 1e9;
	printf("{\"tool\":\"store_fill\",\"driver\":\"%s\",\"events\":%lld,"
	       "\"seconds\":%.3f,\"events_per_s\":%.0f}\n",
	    cfg.driver, f.events, t1 - t0, (double)f.events / (t1 - t0));
	rc = 0;
out:
	nb_store_close(f.s);
	free(f.raw);
	free(f.ids);
	free(f.whs);
	free(f.evs);
	free(f.reqs);
	free(f.ptrs);
	free(f.seqs);
	return rc;
}
