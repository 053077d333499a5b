/* SPDX-License-Identifier: ISC */
/*
 * json_cost: the three JSON paths of an event, for callgrind.
 *
 * Runs one of them a given number of times (default 10,000) on the event
 * nbload sends (604 bytes, every object of the contract, three free-form
 * properties): "parse1" parses it as a single-event body, "parse100" a body
 * of 100 such events (ids differ), "track" maps the stored text to a Track
 * message.  Per-event instruction counts are callgrind's inclusive cost of
 * nb_nudgespot_parse (divided by the runs, or by 100 times the runs) or
 * nb_segment_track_text (divided by the runs).  It links the library of a
 * normal build (RelWithDebInfo):
 *
 *   cc -O2 -g -Iinclude tests/bench/json_cost.c build-X/libnbcore.a \
 *     $(pkg-config --libs libevent_core libevent_extra libevent_pthreads \
 *     libevent_openssl openssl jansson libsodium libcurl sqlite3 libpq) \
 *     -lpthread -lm -o /tmp/json_cost &&
 *   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
 *     /tmp/json_cost parse1 10000 &&
 *   callgrind_annotate --inclusive=yes /tmp/cg.out | grep nb_
 *
 * It checks what it measures (every event valid, every message produced)
 * and exits 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "nudgebridge/nudgespot.h"
#include "nudgebridge/segment.h"

#define JC_RUNS	  10000 /* the default */
#define JC_ARRAY  100	/* events of the parse100 body */
#define JC_EVENT  1024	/* room for one event's text */
#define JC_FIRST  1234	/* the first event's number */
#define JC_LENGTH 604	/* what event_text() writes for it */

/* nbload's event number n (tests/bench/nbload.c, event_append()). */
static int
event_text(char *out, size_t cap, unsigned n)
{
	unsigned u = n % 5000;

	return snprintf(out, cap,
	    "{\"id\":\"evt_bench_%u\",\"type\":\"email.clicked\","
	    "\"occurred_at\":\"2026-11-28T09:59:58.%03uZ\","
	    "\"subscriber\":{\"uid\":\"u_%u\",\"email\":\"user%u@example.com\"}"
	    ",\"message\":{\"id\":\"msg_%u\",\"subject\":\"Your weekly digest "
	    "#%u\",\"campaign_id\":\"cmp_%u\",\"campaign_name\":\"Weekly "
	    "digest\"},\"link\":{\"id\":\"lnk_%u\",\"url\":\"https://"
	    "example.com/articles/%u?utm_source=nudgespot&utm_medium=email\"},"
	    "\"client\":{\"ip\":\"203.0.113.%u\",\"user_agent\":\"Mozilla/5.0 "
	    "(Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, "
	    "like Gecko) Version/17.5 Safari/605.1.15\"},\"properties\":{"
	    "\"plan\":\"pro\",\"locale\":\"en-GB\",\"experiment\":"
	    "\"subject-line-b\"}}",
	    100000 + n, n % 1000, u, u, n % 300, n % 52, n % 20, n % 7,
	    n % 1000, n % 250);
}

static int
parse(const char *body, size_t len, size_t want)
{
	struct nb_payload p;
	size_t i;
	int rc = -1;

	if (nb_nudgespot_parse(&p, body, len) != NB_NUDGESPOT_OK)
		return -1;
	if (p.nevents != want)
		goto out;
	for (i = 0; i < p.nevents; i++)
		if (p.events[i].error != NULL)
			goto out;
	rc = 0;
out:
	nb_nudgespot_clear(&p);
	return rc;
}

int
main(int argc, char **argv)
{
	static char body[JC_ARRAY * JC_EVENT + 2];
	struct nb_mapping map = {.anon = NB_SEGMENT_ANON_EMAIL};
	char *text, *end;
	size_t len = 0, tlen;
	long long runs = JC_RUNS, r;
	struct nb_segment_install install;
	struct nb_segment_origin o = {
	    "acme", NB_SEGMENT_RULE_CURRENT, &install};
	unsigned i;
	int w;

	if (argc == 3) {
		runs = strtoll(argv[2], &end, 10);
		if (*end != '\0' || runs <= 0 || runs > 100000000)
			argc = 0;
	}
	if ((argc != 2 && argc != 3) || sodium_init() < 0) {
		fprintf(
		    stderr, "usage: json_cost parse1|parse100|track [runs]\n");
		return 2;
	}
	if (strcmp(argv[1], "parse100") == 0) {
		body[len++] = '[';
		for (i = 0; i < JC_ARRAY; i++) {
			if (i > 0)
				body[len++] = ',';
			w = event_text(body + len, JC_EVENT, JC_FIRST + i);
			if (w < 0 || w >= JC_EVENT)
				return 1;
			len += (size_t)w;
		}
		body[len++] = ']';
		for (r = 0; r < runs; r++)
			if (parse(body, len, JC_ARRAY) == -1)
				return 1;
		return 0;
	}
	w = event_text(body, JC_EVENT, JC_FIRST);
	if (w != JC_LENGTH)
		return 1;
	len = (size_t)w;
	if (strcmp(argv[1], "parse1") == 0) {
		for (r = 0; r < runs; r++)
			if (parse(body, len, 1) == -1)
				return 1;
		return 0;
	}
	if (strcmp(argv[1], "track") != 0)
		return 2;
	/* The rule rows stored now get, as the deliverer maps them. */
	if (nb_segment_install_init(
		&install, "0123456789abcdef0123456789abcdef") == -1)
		return 1;
	for (r = 0; r < runs; r++) {
		if (nb_segment_track_text(
			&map, &o, body, len, &text, &tlen, NULL) == -1)
			return 1;
		free(text);
	}
	return 0;
}
