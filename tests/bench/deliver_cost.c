/* SPDX-License-Identifier: ISC */
/*
 * deliver_cost: what the deliverer costs per event, for callgrind.
 *
 * "drain": appends N events (default 20,000; realistic ~600-byte Nudgespot
 * events, 100 per append) to a fresh SQLite store, then runs the real
 * deliverer (nb_deliver_*) against an in-process Segment stand-in (evhttp
 * on its own thread, 127.0.0.1, answers 200, inflates gzip bodies) until
 * the store has nothing pending, and prints the requests, the messages,
 * and the body bytes on the wire and as JSON.  Extra members of the
 * "segment" object come from the optional argument ('"gzip":false').
 * The deliverer's own thread is measured with
 *
 *   valgrind --tool=callgrind --toggle-collect=deliver_main \
 *     --callgrind-out-file=/tmp/cg.out build-bench-tools/deliver_cost \
 *     drain /tmp/dc.db 20000 '"gzip":true'
 *
 * and callgrind's total divided by N is instructions per delivered event
 * (callgrind_annotate --inclusive=yes splits it by function).
 *
 * "levels": maps N events (default 2,500) to Track messages, packs them
 * into batch bodies of 500 messages and deflates each with zlib's gzip
 * wrapper at level L (1..9, the optional argument), printing the JSON and
 * compressed bytes per event; under callgrind with
 * --toggle-collect=compress_all the total divided by N is the compression
 * cost per event at that level.
 *
 * Everything stays on 127.0.0.1.  The store file is deleted first.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <sodium.h>
#include <zlib.h>

#include "nudgebridge/config.h"
#include "nudgebridge/deliver.h"
#include "nudgebridge/person.h"
#include "nudgebridge/segment.h"
#include "nudgebridge/nudgespot.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"

#define DC_GROUP 100
#define DC_RAW	 1024
#define DC_BATCH 500

struct sink {
	struct event_base *base;
	struct evhttp *http;
	struct event *quit;
	pthread_t thread;
	int port;
	pthread_mutex_t mu;
	uint64_t requests, messages, wire, json, gzipped;
};

static struct sink sink;

/* Counts "messageId" keys: one per message of a batch. */
static uint64_t
count_messages(const char *p, size_t len)
{
	static const char key[] = "\"messageId\":";
	uint64_t n = 0;
	const char *q, *end = p + len;

	while (
	    (q = memmem(p, (size_t)(end - p), key, sizeof(key) - 1)) != NULL) {
		n++;
		p = q + sizeof(key) - 1;
	}
	return n;
}

/* Inflates a gzip body into a malloc'd buffer; NULL on error. */
static char *
gunzip(const unsigned char *in, size_t inlen, size_t *outlen)
{
	z_stream z;
	size_t cap = inlen * 8 + 1024;
	char *out = malloc(cap);
	int r;

	if (out == NULL)
		return NULL;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 15 + 16) != Z_OK) {
		free(out);
		return NULL;
	}
	z.next_in = (unsigned char *)(uintptr_t)in;
	z.avail_in = (uInt)inlen;
	for (;;) {
		z.next_out = (unsigned char *)out + z.total_out;
		z.avail_out = (uInt)(cap - z.total_out);
		r = inflate(&z, Z_FINISH);
		if (r == Z_STREAM_END)
			break;
		if (r != Z_BUF_ERROR && r != Z_OK) {
			inflateEnd(&z);
			free(out);
			return NULL;
		}
		cap *= 2;
		if ((out = realloc(out, cap)) == NULL) {
			inflateEnd(&z);
			return NULL;
		}
	}
	*outlen = z.total_out;
	inflateEnd(&z);
	return out;
}

static void
sink_cb(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	const char *enc = evhttp_find_header(in, "Content-Encoding");
	size_t len = evbuffer_get_length(body), jlen = len;
	unsigned char *raw = evbuffer_pullup(body, -1);
	char *json = NULL;
	uint64_t n;

	(void)arg;
	if (enc != NULL && strcmp(enc, "gzip") == 0)
		json = gunzip(raw, len, &jlen);
	n = count_messages(json != NULL ? json : (const char *)raw, jlen);
	pthread_mutex_lock(&sink.mu);
	sink.requests++;
	sink.messages += n;
	sink.wire += len;
	sink.json += jlen;
	sink.gzipped += json != NULL;
	pthread_mutex_unlock(&sink.mu);
	free(json);
	evhttp_send_reply(req, 200, "OK", NULL);
}

static void
quit_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

static void *
sink_main(void *arg)
{
	(void)arg;
	event_base_dispatch(sink.base);
	return NULL;
}

static int
sink_start(void)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);

	pthread_mutex_init(&sink.mu, NULL);
	if ((sink.base = event_base_new()) == NULL ||
	    (sink.http = evhttp_new(sink.base)) == NULL ||
	    (sink.quit = event_new(sink.base, -1, 0, quit_cb, sink.base)) ==
		NULL)
		return -1;
	evhttp_set_max_body_size(sink.http, 4 * 1024 * 1024);
	evhttp_set_gencb(sink.http, sink_cb, NULL);
	if ((bs = evhttp_bind_socket_with_handle(sink.http, "127.0.0.1", 0)) ==
	    NULL)
		return -1;
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin,
		&slen) == -1)
		return -1;
	sink.port = ntohs(sin.sin_port);
	return pthread_create(&sink.thread, NULL, sink_main, NULL) == 0 ? 0
									: -1;
}

static void
sink_stop(void)
{
	event_active(sink.quit, EV_TIMEOUT, 0);
	pthread_join(sink.thread, NULL);
	event_free(sink.quit);
	evhttp_free(sink.http);
	event_base_free(sink.base);
}

/* A realistic stored event: the contract's example with its own ids. */
static size_t
make_raw(char *raw, int i)
{
	int len;

	len = snprintf(raw, DC_RAW,
	    "{\"id\":\"evt_01JD8Z3Q4W5E6R7T%08d\",\"type\":\"email.%s\","
	    "\"occurred_at\":\"2026-11-28T09:59:%02d.123Z\","
	    "\"subscriber\":{\"uid\":\"u_%d\",\"email\":\"user%d@example."
	    "com\"},\"message\":{\"id\":\"msg_%d\",\"subject\":\"Welcome "
	    "aboard, week %d\",\"campaign_id\":\"cmp_%d\","
	    "\"campaign_name\":\"Onboarding\"},\"link\":{\"id\":\"lnk_3\","
	    "\"url\":\"https://example.com/"
	    "pricing?utm_source=nudgespot&n=%d\"},"
	    "\"list\":{\"id\":\"lst_1\",\"name\":\"Newsletter\"},"
	    "\"client\":{\"ip\":\"203.0.113.%d\",\"user_agent\":\"Mozilla/5.0 "
	    "(X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
	    "Chrome/120.0 Safari/537.36\"},\"properties\":{\"plan\":\"pro\","
	    "\"seats\":%d}}",
	    i,
	    i % 3 == 0	     ? "opened"
		: i % 3 == 1 ? "clicked"
			     : "delivered",
	    i % 60, i % 5000, i, i % 977, i % 52, i % 40, i, i % 250, i % 17);
	if (len < 0 || len >= DC_RAW)
		abort();
	return (size_t)len;
}

static int
fill(struct nb_store *s, int events)
{
	static char raws[DC_GROUP][DC_RAW];
	static char ids[DC_GROUP][40];
	struct nb_event evs[DC_GROUP];
	struct nb_append a, *ap = &a;
	int64_t now = nb_time_now_ms();
	int i, k;

	for (i = 0; i < events; i += DC_GROUP) {
		for (k = 0; k < DC_GROUP; k++) {
			memset(&evs[k], 0, sizeof(evs[k]));
			evs[k].rawlen = make_raw(raws[k], i + k);
			snprintf(ids[k], sizeof(ids[k]),
			    "evt_01JD8Z3Q4W5E6R7T%08d", i + k);
			evs[k].id = ids[k];
			evs[k].type = (char *)(uintptr_t) "email.opened";
			evs[k].raw = raws[k];
			/* The person keys the parser would have computed. */
			nb_person_keys_of(raws[k], evs[k].rawlen,
			    &evs[k].email_key, &evs[k].uid_key);
		}
		memset(&a, 0, sizeof(a));
		a.source = "acme";
		a.events = evs;
		a.nevents = DC_GROUP;
		a.received_ms = now;
		a.dedupe_after_ms = now - 1000;
		if (nb_store_append(s, &ap, 1) == -1)
			return -1;
	}
	return 0;
}

static int64_t
pending(struct nb_store *s)
{
	struct nb_source_stats *st = NULL;
	size_t n = 0, i;
	int64_t p = 0;

	if (nb_store_stats(s, nb_time_now_ms(), &st, &n) == -1)
		return -1;
	for (i = 0; i < n; i++)
		p += st[i].pending;
	free(st);
	return p;
}

static int
drain(const char *db, int events, const char *extra)
{
	struct nb_config *cfg = NULL;
	struct nb_store *s = NULL;
	struct nb_deliver *d = NULL;
	char text[2048], err[256], path[4096];
	int64_t t0, left;
	int n;

	unlink(db);
	snprintf(path, sizeof(path), "%s-wal", db);
	unlink(path);
	snprintf(path, sizeof(path), "%s-shm", db);
	unlink(path);
	if (sink_start() == -1) {
		fprintf(stderr, "deliver_cost: cannot start the sink\n");
		return 1;
	}
	n = snprintf(text, sizeof(text),
	    "{\"store\":{\"driver\":\"sqlite\",\"path\":\"%s\"},"
	    "\"segment\":{\"flush_interval_ms\":20,\"rate_limit_rps\":1000%s%s}"
	    ","
	    "\"sources\":[{\"name\":\"acme\",\"signing_secrets\":"
	    "[\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"],"
	    "\"write_key\":\"wk_bench\","
	    "\"endpoint\":\"http://127.0.0.1:%d\"}]}",
	    db, extra[0] != '\0' ? "," : "", extra, sink.port);
	if (n < 0 || (size_t)n >= sizeof(text) ||
	    nb_config_load_json(&cfg, text, "/", err, sizeof(err)) == -1) {
		fprintf(stderr, "deliver_cost: config: %s\n", err);
		return 1;
	}
	if (nb_store_open(&s, &cfg->store, err, sizeof(err)) == -1 ||
	    fill(s, events) == -1) {
		fprintf(stderr, "deliver_cost: store: %s\n", err);
		return 1;
	}
	if ((d = nb_deliver_new(cfg, NULL, err, sizeof(err))) == NULL ||
	    nb_deliver_start(d) == -1) {
		fprintf(stderr, "deliver_cost: deliver: %s\n", err);
		return 1;
	}
	t0 = nb_time_mono_ms();
	while ((left = pending(s)) > 0 && nb_time_mono_ms() - t0 < 600000)
		usleep(20000);
	(void)nb_deliver_stop(d, 0);
	nb_deliver_free(d);
	nb_store_close(s);
	nb_config_unref(cfg);
	sink_stop();
	printf("%d events, %" PRIu64 " requests, %" PRIu64 " messages, %" PRIu64
	       " gzip bodies; body bytes per event: "
	       "%.1f JSON, %.1f on the wire; %lld ms\n",
	    events, sink.requests, sink.messages, sink.gzipped,
	    (double)sink.json / events, (double)sink.wire / events,
	    (long long)(nb_time_mono_ms() - t0));
	return left == 0 && sink.messages >= (uint64_t)events ? 0 : 1;
}

/* Deflates every body at level; returns the compressed bytes. */
__attribute__((noinline)) static uint64_t
compress_all(char **bodies, size_t *lens, int n, int level)
{
	unsigned char *out;
	uint64_t total = 0;
	z_stream z;
	int i;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(
		&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	for (i = 0; i < n; i++) {
		uLong bound = deflateBound(&z, (uLong)lens[i]);

		if ((out = malloc(bound)) == NULL)
			abort();
		z.next_in = (unsigned char *)bodies[i];
		z.avail_in = (uInt)lens[i];
		z.next_out = out;
		z.avail_out = (uInt)bound;
		if (deflate(&z, Z_FINISH) != Z_STREAM_END)
			abort();
		total += z.total_out;
		free(out);
		deflateReset(&z);
	}
	deflateEnd(&z);
	return total;
}

static int
levels(int events, int level)
{
	struct nb_config *cfg = NULL;
	char raw[DC_RAW], err[256], *msg, **bodies;
	size_t len, *lens, jtotal = 0, rawlen;
	int i, nb = (events + DC_BATCH - 1) / DC_BATCH, b;
	struct nb_segment_install install;
	struct nb_segment_origin o = {
	    "acme", NB_SEGMENT_RULE_CURRENT, &install};
	const char *why;
	uint64_t z;

	if (nb_config_load_json(&cfg,
		"{\"sources\":[{\"name\":\"acme\",\"signing_secrets\":"
		"[\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"],"
		"\"write_key\":\"wk_bench\"}]}",
		"/", err, sizeof(err)) == -1) {
		fprintf(stderr, "deliver_cost: config: %s\n", err);
		return 1;
	}
	if (nb_segment_install_init(
		&install, "0123456789abcdef0123456789abcdef") == -1)
		return 1;
	bodies = calloc((size_t)nb, sizeof(*bodies));
	lens = calloc((size_t)nb, sizeof(*lens));
	if (bodies == NULL || lens == NULL)
		abort();
	for (b = 0; b < nb; b++) {
		size_t cap = DC_BATCH * 2048 + 128, off;

		if ((bodies[b] = malloc(cap)) == NULL)
			abort();
		off = (size_t)snprintf(bodies[b], cap, "{\"batch\":[");
		for (i = b * DC_BATCH; i < events && i < (b + 1) * DC_BATCH;
		     i++) {
			rawlen = make_raw(raw, i);
			if (nb_segment_track_text(&cfg->sources[0].mapping, &o,
				raw, rawlen, &msg, &len, &why) == -1 ||
			    off + len + 64 > cap)
				abort();
			if (i > b * DC_BATCH)
				bodies[b][off++] = ',';
			memcpy(bodies[b] + off, msg, len);
			off += len;
			free(msg);
		}
		off += (size_t)snprintf(bodies[b] + off, cap - off,
		    "],\"sentAt\":\"2026-11-28T10:00:00.000Z\"}");
		lens[b] = off;
		jtotal += off;
	}
	z = compress_all(bodies, lens, nb, level);
	printf("level %d: %d events in %d bodies, JSON %.1f bytes per event, "
	       "gzip %.1f (%.1f%%)\n",
	    level, events, nb, (double)jtotal / events, (double)z / events,
	    100.0 * (double)z / (double)jtotal);
	for (b = 0; b < nb; b++)
		free(bodies[b]);
	free(bodies);
	free(lens);
	nb_config_unref(cfg);
	return 0;
}

int
main(int argc, char **argv)
{
	long long events = 0, level = 6;
	char *end;

	if (sodium_init() < 0 || evthread_use_pthreads() != 0 ||
	    curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	if (argc >= 3 && strcmp(argv[1], "drain") == 0) {
		events = argc >= 4 ? strtoll(argv[3], &end, 10) : 20000;
		if (argc >= 4 &&
		    (*end != '\0' || events <= 0 || events % DC_GROUP != 0 ||
			events > 10000000))
			events = 0;
		if (events > 0 && argc <= 5)
			return drain(
			    argv[2], (int)events, argc == 5 ? argv[4] : "");
	}
	if (argc >= 2 && strcmp(argv[1], "levels") == 0) {
		events = argc >= 3 ? strtoll(argv[2], &end, 10) : 2500;
		if (argc >= 3 &&
		    (*end != '\0' || events <= 0 || events > 1000000))
			events = 0;
		if (argc >= 4) {
			level = strtoll(argv[3], &end, 10);
			if (*end != '\0' || level < 0 || level > 9)
				events = 0;
		}
		if (events > 0 && argc <= 4)
			return levels((int)events, (int)level);
	}
	fprintf(stderr,
	    "usage: deliver_cost drain file.db [events [json]]\n"
	    "       deliver_cost levels [events [level]]\n");
	return 2;
}
