/* SPDX-License-Identifier: ISC */
/*
 * nbsink: a fast Segment stand-in for the nudgebridge benchmarks.
 *
 * POST /v1/batch answers 200 {"success":true} and counts the batch, its
 * messages and the distinct messageIds among them; GET /stats returns the
 * counts as JSON, POST /reset zeroes them.  The Python sink of the
 * integration tests checks everything and is far too slow to time a
 * backlog drain; this one only scans each body for its "messageId" values
 * (nudgebridge and analytics-node both put one at the top of every
 * message) and keeps 64-bit hashes of them in an open-addressing set, so a
 * million distinct ids cost 16 MB and no parse.  With --write-key it also
 * checks HTTP Basic auth and answers 401 otherwise.  A batch sent with
 * Content-Encoding: gzip is inflated (zlib) before the scan; "bytes" counts
 * what came over the wire, "raw_bytes" the JSON after inflating, "gzip"
 * the batches that were compressed, so a harness can report both.
 *
 * One thread, libevent evhttp, listening on 127.0.0.1 only.
 */
#include <sys/types.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <sodium.h>
#include <zlib.h>

#define SET_MIN_CAP    (1u << 16)
#define MAX_BODY_BYTES (8 * 1024 * 1024)
#define MAX_RAW_BYTES  (64 * 1024 * 1024) /* one inflated batch */

struct idset {
	uint64_t *slot; /* 0 = empty */
	size_t cap;	/* power of two */
	size_t len;
};

struct sink {
	struct idset ids;
	uint64_t batches, messages, dupes, bad_auth, bytes, raw_bytes, gzip;
	char *auth;	    /* expected Authorization header, or NULL */
	unsigned char *raw; /* inflate buffer, MAX_RAW_BYTES */
};

static uint64_t
hash64(const char *p, size_t len)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a, then a mix */
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h == 0 ? 1 : h;
}

static int
idset_grow(struct idset *s)
{
	size_t cap = s->cap ? s->cap * 2 : SET_MIN_CAP, i;
	uint64_t *slot;

	if ((slot = calloc(cap, sizeof(*slot))) == NULL)
		return -1;
	for (i = 0; i < s->cap; i++) {
		size_t j;

		if (s->slot[i] == 0)
			continue;
		for (j = s->slot[i] & (cap - 1); slot[j] != 0;
		     j = (j + 1) & (cap - 1))
			;
		slot[j] = s->slot[i];
	}
	free(s->slot);
	s->slot = slot;
	s->cap = cap;
	return 0;
}

/* Returns 1 if h was new, 0 if already present, -1 on allocation failure. */
static int
idset_add(struct idset *s, uint64_t h)
{
	size_t j;

	if ((s->len + 1) * 2 > s->cap && idset_grow(s) == -1)
		return -1;
	for (j = h & (s->cap - 1); s->slot[j] != 0; j = (j + 1) & (s->cap - 1))
		if (s->slot[j] == h)
			return 0;
	s->slot[j] = h;
	s->len++;
	return 1;
}

/* Counts every "messageId": "..." value in body. */
static void
scan_batch(struct sink *k, const char *body, size_t len)
{
	static const char key[] = "\"messageId\"";
	const char *p = body, *end = body + len;

	while (
	    (p = memmem(p, (size_t)(end - p), key, sizeof(key) - 1)) != NULL) {
		const char *v;

		p += sizeof(key) - 1;
		while (p < end &&
		    (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
			p++;
		if (p >= end || *p != ':')
			continue;
		p++;
		while (p < end &&
		    (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
			p++;
		if (p >= end || *p != '"')
			continue;
		v = ++p;
		while (p < end && *p != '"')
			p++;
		if (p >= end)
			break;
		k->messages++;
		switch (idset_add(&k->ids, hash64(v, (size_t)(p - v)))) {
		case 0:
			k->dupes++;
			break;
		case -1:
			fprintf(stderr, "nbsink: out of memory\n");
			exit(1);
		default:
			break;
		}
	}
}

/*
 * Inflates a gzip body into k->raw; returns its length, or -1 when it is
 * not gzip or inflates to more than MAX_RAW_BYTES.
 */
static ssize_t
gunzip(struct sink *k, const unsigned char *in, size_t len)
{
	z_stream z;
	ssize_t n = -1;

	if (k->raw == NULL && (k->raw = malloc(MAX_RAW_BYTES)) == NULL)
		return -1;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return -1;
	z.next_in = (unsigned char *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = k->raw;
	z.avail_out = MAX_RAW_BYTES;
	if (inflate(&z, Z_FINISH) == Z_STREAM_END)
		n = (ssize_t)z.total_out;
	inflateEnd(&z);
	return n;
}

static void
reply(struct evhttp_request *req, int status, const char *body)
{
	struct evbuffer *b = evhttp_request_get_output_buffer(req);

	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evbuffer_add(b, body, strlen(body));
	evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", NULL);
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	struct sink *k = arg;
	const char *uri = evhttp_request_get_uri(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	const char *auth, *enc, *p;
	size_t len;
	char out[512];
	int w;

	if (cmd == EVHTTP_REQ_GET && strcmp(uri, "/stats") == 0) {
		w = snprintf(out, sizeof(out),
		    "{\"batches\":%" PRIu64 ",\"messages\":%" PRIu64
		    ",\"unique\":%zu,\"dupes\":%" PRIu64
		    ",\"bad_auth\":%" PRIu64 ",\"bytes\":%" PRIu64
		    ",\"raw_bytes\":%" PRIu64 ",\"gzip\":%" PRIu64 "}",
		    k->batches, k->messages, k->ids.len, k->dupes, k->bad_auth,
		    k->bytes, k->raw_bytes, k->gzip);
		if (w < 0 || (size_t)w >= sizeof(out)) {
			reply(req, 500, "{\"error\":\"internal\"}");
			return;
		}
		reply(req, 200, out);
		return;
	}
	if (cmd == EVHTTP_REQ_POST && strcmp(uri, "/reset") == 0) {
		free(k->ids.slot);
		memset(&k->ids, 0, sizeof(k->ids));
		k->batches = k->messages = k->dupes = k->bad_auth = k->bytes =
		    k->raw_bytes = k->gzip = 0;
		reply(req, 200, "{\"success\":true}");
		return;
	}
	if (cmd != EVHTTP_REQ_POST || strcmp(uri, "/v1/batch") != 0) {
		reply(req, 404, "{\"error\":\"not_found\"}");
		return;
	}
	auth = evhttp_find_header(in, "Authorization");
	if (k->auth != NULL && (auth == NULL || strcmp(auth, k->auth) != 0)) {
		k->bad_auth++;
		reply(req, 401, "{\"error\":\"bad_write_key\"}");
		return;
	}
	enc = evhttp_find_header(in, "Content-Encoding");
	len = evbuffer_get_length(body);
	p = len > 0 ? (const char *)evbuffer_pullup(body, -1) : "";
	if (enc != NULL && strcmp(enc, "gzip") == 0) {
		ssize_t n = gunzip(k, (const unsigned char *)p, len);

		if (n == -1) {
			reply(req, 400, "{\"error\":\"bad_gzip\"}");
			return;
		}
		k->gzip++;
		k->bytes += len;
		p = (const char *)k->raw;
		len = (size_t)n;
	} else if (enc != NULL && strcmp(enc, "identity") != 0) {
		reply(req, 415, "{\"error\":\"encoding\"}");
		return;
	} else
		k->bytes += len;
	k->batches++;
	k->raw_bytes += len;
	if (len > 0)
		scan_batch(k, p, len);
	reply(req, 200, "{\"success\":true}");
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

int
main(int argc, char **argv)
{
	struct event_base *base = NULL;
	struct evhttp *http = NULL;
	struct event *sigterm = NULL, *sigint = NULL;
	static struct sink k;
	long port = 0;
	char *end = NULL;
	int i, rc = 1;

	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--port") == 0) {
			errno = 0;
			port = strtol(argv[i + 1], &end, 10);
			if (errno != 0 || *end != '\0' || port < 1 ||
			    port > 65535)
				port = 0;
		} else if (strcmp(argv[i], "--write-key") == 0) {
			const char *wk = argv[i + 1];
			char raw[256], b64[400];
			size_t n = strlen(wk);
			int w;

			if (n + 1 >= sizeof(raw))
				goto usage;
			memcpy(raw, wk, n);
			raw[n++] = ':';
			sodium_bin2base64(b64, sizeof(b64),
			    (const unsigned char *)raw, n,
			    sodium_base64_VARIANT_ORIGINAL);
			w = snprintf(raw, sizeof(raw), "Basic %s", b64);
			if (w < 0 || (size_t)w >= sizeof(raw) ||
			    (k.auth = strdup(raw)) == NULL)
				goto usage;
		} else
			goto usage;
	}
	if (i != argc || port == 0)
		goto usage;
	if (sodium_init() < 0)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	if ((base = event_base_new()) == NULL ||
	    (http = evhttp_new(base)) == NULL)
		goto out;
	evhttp_set_max_body_size(http, MAX_BODY_BYTES);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(http, request_cb, &k);
	if (evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)port) != 0) {
		fprintf(stderr, "nbsink: cannot bind 127.0.0.1:%ld\n", port);
		goto out;
	}
	sigterm = evsignal_new(base, SIGTERM, stop_cb, base);
	sigint = evsignal_new(base, SIGINT, stop_cb, base);
	if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) ||
	    evsignal_add(sigint, NULL))
		goto out;
	event_base_dispatch(base);
	rc = 0;
out:
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	if (http)
		evhttp_free(http);
	if (base)
		event_base_free(base);
	free(k.ids.slot);
	free(k.auth);
	free(k.raw);
	return rc;
usage:
	fprintf(stderr, "usage: nbsink --port P [--write-key KEY]\n");
	return 2;
}
