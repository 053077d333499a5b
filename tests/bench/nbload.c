/* SPDX-License-Identifier: ISC */
/*
 * nbload: the load generator of the nudgebridge benchmarks.
 *
 * It holds N keep-alive HTTP/1.1 connections to 127.0.0.1:PORT and POSTs
 * Nudgespot events to /v1/webhooks/SOURCE, every request signed on the fly
 * (Standard Webhooks v1: a unique webhook-id, webhook-timestamp = now, and
 * HMAC-SHA256 over "id.timestamp.body" with the whsec_ secret), every event
 * with an id of its own, so neither the bridge nor the peer can take a
 * short cut through its duplicate checks.
 *
 * Closed loop (--rate 0): a connection sends its next request when the
 * answer to the previous one arrives.  Open loop (--rate R): request i is
 * due at start + i/R; it goes out on the first idle connection, and its
 * latency runs from the time it was due, not from the time it was sent, so
 * a stalled server cannot hide its stall (no coordinated omission).
 *
 * Requests due during the warm-up are sent but not measured; the run stops
 * sending after warm-up + duration, waits up to --grace seconds for the
 * answers it is owed and prints one JSON line.  Measured requests that got
 * no answer by then, and (open loop) those that fell due but never found a
 * free connection, enter the percentiles at the time they had waited so
 * far, a lower bound ("censored" counts them).  Latencies go to a log-linear
 * histogram (1024 sub-buckets per power of two, so 0.1% precision) and the
 * maximum is exact.  One thread, epoll, non-blocking sockets; the target is
 * always 127.0.0.1.
 *
 * --port takes a comma-separated list: connection i goes to port i modulo
 * the list, so one generator spreads its load over several instances (the
 * fleet scenario).  --wait-ready polls GET /readyz on the first port
 * instead and exits 0 on the first 200.
 */
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "benchutil.h"

#define MAX_CONNS	   4096
#define MAX_EVENTS_PER_REQ 1000
#define EVENT_MAX_BYTES	   1024
#define HEAD_MAX_BYTES	   1024
#define RBUF_MAX_BYTES	   (1024 * 1024)
#define RETRY_CONNECT_NS   50000000LL /* 50 ms between reconnects */
#define MAX_TIMEOUT_MS	   100
#define SECRET_MAX_BYTES   128
#define HIST_SUB_BITS	   10
#define HIST_SUB	   (1 << HIST_SUB_BITS)
#define HIST_BUCKETS	   (2 * HIST_SUB + 22 * HIST_SUB)
#define NSTATUS		   600
#define MAX_PORTS	   16

enum conn_state {
	CONN_DEAD = 0, /* waiting to reconnect */
	CONN_CONNECTING,
	CONN_IDLE,
	CONN_BUSY,
};

struct conn {
	int fd;
	int port;
	enum conn_state state;
	int64_t retry_at;
	char *wbuf;
	size_t wlen, woff;
	char *rbuf;
	size_t rlen, rcap;
	int64_t start_ns; /* when the request was due (open) or sent */
	int measured;
	int parked; /* on the idle stack */
};

struct opts {
	int port; /* the first of ports[] */
	int ports[MAX_PORTS];
	int nports;
	const char *source;
	const char *secret;
	int conns;
	double rate;
	double duration;
	double warmup;
	double grace;
	int k;
	uint64_t max_requests;
	const char *label;
	char run_id[32];
	int wait_ready;
	double ready_timeout;
};

struct hist {
	uint64_t n[HIST_BUCKETS];
	uint64_t count;
	uint64_t max;
	double sum;
};

struct load {
	struct opts o;
	int epfd, tfd;
	struct conn *c;
	crypto_auth_hmacsha256_state hmac0;
	char *body;
	size_t bodycap;
	int64_t t0, warm_end, end, hard_end;
	int64_t armed; /* when the timer fires next */
	double interval_ns;
	uint64_t issued; /* requests sent (index of the next one) */
	uint64_t events_next;
	int inflight;
	int ndead;
	int stopping;
	int *idle;
	int nidle;
	/* measured window */
	uint64_t m_sent, m_answered, m_2xx, m_errors, m_accepted;
	uint64_t m_unsent, m_censored;
	uint64_t status[NSTATUS];
	/* whole run */
	uint64_t t_sent, t_answered, t_2xx, t_errors, t_connect_errors;
	uint64_t t_accepted;
	struct hist h;
};

static const char *types[] = {"email.delivered", "email.opened",
    "email.clicked", "email.bounced", "email.unsubscribed",
    "email.spam_reported"};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: nbload --port P[,P2...] --secret whsec_... [--source "
	    "NAME]\n"
	    "         [--connections N] [--rate R] [--duration S]\n"
	    "         [--warmup S] [--grace S] [--events-per-request K]\n"
	    "         [--max-requests M] [--run-id ID] [--label L]\n"
	    "       nbload --port P --wait-ready [--timeout S]\n");
	exit(2);
}

static double
parse_num(const char *name, const char *s, double lo, double hi)
{
	char *end = NULL;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "nbload: %s: bad value \"%s\"\n", name, s);
		exit(2);
	}
	return v;
}

/* "P" or "P1,P2,...": fills o->ports, o->nports and o->port. */
static void
parse_ports(struct opts *o, const char *v)
{
	char buf[256], *p, *comma;

	if (strlen(v) >= sizeof(buf))
		usage();
	memcpy(buf, v, strlen(v) + 1);
	o->nports = 0;
	for (p = buf; p != NULL; p = comma) {
		if ((comma = strchr(p, ',')) != NULL)
			*comma++ = '\0';
		if (o->nports == MAX_PORTS)
			usage();
		o->ports[o->nports++] = (int)parse_num("--port", p, 1, 65535);
	}
	o->port = o->ports[0];
}

static void
parse_opts(struct opts *o, int argc, char **argv)
{
	unsigned char rnd[6];
	int i;

	memset(o, 0, sizeof(*o));
	o->source = "acme";
	o->conns = 64;
	o->duration = 10;
	o->warmup = 1;
	o->grace = 5;
	o->k = 1;
	o->ready_timeout = 30;
	o->secret = getenv("NB_SECRET");
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(o->run_id, sizeof(o->run_id), rnd, sizeof(rnd));
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--wait-ready") == 0) {
			o->wait_ready = 1;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--port") == 0)
			parse_ports(o, v);
		else if (strcmp(a, "--source") == 0)
			o->source = v;
		else if (strcmp(a, "--secret") == 0)
			o->secret = v;
		else if (strcmp(a, "--connections") == 0)
			o->conns = (int)parse_num(a, v, 1, MAX_CONNS);
		else if (strcmp(a, "--rate") == 0)
			o->rate = parse_num(a, v, 0, 1e7);
		else if (strcmp(a, "--duration") == 0)
			o->duration = parse_num(a, v, 0.1, 3600);
		else if (strcmp(a, "--warmup") == 0)
			o->warmup = parse_num(a, v, 0, 600);
		else if (strcmp(a, "--grace") == 0)
			o->grace = parse_num(a, v, 0, 600);
		else if (strcmp(a, "--events-per-request") == 0)
			o->k = (int)parse_num(a, v, 1, MAX_EVENTS_PER_REQ);
		else if (strcmp(a, "--max-requests") == 0)
			o->max_requests = (uint64_t)parse_num(a, v, 0, 1e12);
		else if (strcmp(a, "--run-id") == 0) {
			if (strlen(v) == 0 || strlen(v) >= sizeof(o->run_id))
				usage();
			memcpy(o->run_id, v, strlen(v) + 1);
		} else if (strcmp(a, "--label") == 0)
			o->label = v;
		else if (strcmp(a, "--timeout") == 0)
			o->ready_timeout = parse_num(a, v, 0.01, 3600);
		else
			usage();
	}
	if (o->port == 0)
		usage();
	if (!o->wait_ready && (o->secret == NULL || *o->secret == '\0'))
		usage();
}

/* ---- histogram ---------------------------------------------------------- */

static size_t
hist_index(uint64_t v)
{
	int msb, shift;

	if (v < 2 * HIST_SUB)
		return (size_t)v;
	if (v > UINT32_MAX)
		v = UINT32_MAX;
	msb = 63 - __builtin_clzll(v);
	shift = msb - HIST_SUB_BITS;
	return 2 * HIST_SUB + (size_t)(shift - 1) * HIST_SUB +
	    (size_t)((v >> shift) - HIST_SUB);
}

/* Middle of the bucket: the value reported for a percentile. */
static double
hist_value(size_t i)
{
	size_t shift;
	uint64_t lo;

	if (i < 2 * HIST_SUB)
		return (double)i;
	shift = (i - 2 * HIST_SUB) / HIST_SUB + 1;
	lo = ((uint64_t)((i - 2 * HIST_SUB) % HIST_SUB) + HIST_SUB) << shift;
	return (double)lo + (double)((1ULL << shift) - 1) / 2.0;
}

static void
hist_add(struct hist *h, uint64_t us)
{
	h->n[hist_index(us)]++;
	h->count++;
	h->sum += (double)us;
	if (us > h->max)
		h->max = us;
}

/* The p-th percentile in microseconds (p in 0..100). */
static double
hist_pct(const struct hist *h, double p)
{
	uint64_t want, seen = 0;
	size_t i;

	if (h->count == 0)
		return 0;
	want = (uint64_t)((p / 100.0) * (double)h->count + 0.999999);
	if (want < 1)
		want = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->n[i];
		if (seen >= want) {
			double v = hist_value(i);

			return v > (double)h->max ? (double)h->max : v;
		}
	}
	return (double)h->max;
}

/* ---- requests ----------------------------------------------------------- */

static int
secret_decode(unsigned char *key, size_t *keylen, const char *secret)
{
	const char *b64 = secret;

	if (strncmp(b64, "whsec_", 6) == 0)
		b64 += 6;
	if (sodium_base642bin(key, SECRET_MAX_BYTES, b64, strlen(b64), NULL,
		keylen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    *keylen == 0)
		return -1;
	return 0;
}

/* Appends one event to l->body at *off; returns -1 if it did not fit. */
static int
event_append(struct load *l, size_t *off, uint64_t n, const char *occurred)
{
	unsigned u = (unsigned)(n % 5000);
	int w;

	w = snprintf(l->body + *off, l->bodycap - *off,
	    "{\"id\":\"evt_%s_%" PRIu64 "\",\"type\":\"%s\","
	    "\"occurred_at\":\"%s.%03uZ\","
	    "\"subscriber\":{\"uid\":\"u_%u\",\"email\":\"user%u@example.com\"}"
	    ","
	    "\"message\":{\"id\":\"msg_%u\",\"subject\":\"Your weekly digest "
	    "#%u\",\"campaign_id\":\"cmp_%u\",\"campaign_name\":\"Weekly "
	    "digest\"},"
	    "\"link\":{\"id\":\"lnk_%u\",\"url\":\"https://example.com/"
	    "articles/"
	    "%u?utm_source=nudgespot&utm_medium=email\"},"
	    "\"client\":{\"ip\":\"203.0.113.%u\",\"user_agent\":\"Mozilla/5.0 "
	    "(Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, "
	    "like "
	    "Gecko) Version/17.5 Safari/605.1.15\"},"
	    "\"properties\":{\"plan\":\"pro\",\"locale\":\"en-GB\","
	    "\"experiment\":\"subject-line-b\"}}",
	    l->o.run_id, n, types[n % 6], occurred, (unsigned)(n % 1000), u, u,
	    (unsigned)(n % 300), (unsigned)(n % 52), (unsigned)(n % 20),
	    (unsigned)(n % 7), (unsigned)(n % 1000), (unsigned)(n % 250));
	if (w < 0 || (size_t)w >= l->bodycap - *off)
		return -1;
	*off += (size_t)w;
	return 0;
}

/* Builds, signs and queues request number l->issued on c. */
static int
request_build(struct load *l, struct conn *c)
{
	crypto_auth_hmacsha256_state st;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char sig[sodium_base64_ENCODED_LEN(
	    crypto_auth_hmacsha256_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	char id[64], ts[24], occurred[32];
	struct tm tm;
	time_t now = time(NULL);
	size_t off = 0;
	int i, w, idlen, tslen;

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(occurred, sizeof(occurred), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		return -1;
	if (l->o.k > 1)
		l->body[off++] = '[';
	for (i = 0; i < l->o.k; i++) {
		if (i > 0)
			l->body[off++] = ',';
		if (event_append(l, &off, l->events_next++, occurred) == -1)
			return -1;
	}
	if (l->o.k > 1)
		l->body[off++] = ']';

	idlen =
	    snprintf(id, sizeof(id), "msg_%s_%" PRIu64, l->o.run_id, l->issued);
	tslen = snprintf(ts, sizeof(ts), "%lld", (long long)now);
	if (idlen < 0 || (size_t)idlen >= sizeof(id) || tslen < 0 ||
	    (size_t)tslen >= sizeof(ts))
		return -1;
	st = l->hmac0;
	crypto_auth_hmacsha256_update(
	    &st, (const unsigned char *)id, (size_t)idlen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
	crypto_auth_hmacsha256_update(
	    &st, (const unsigned char *)ts, (size_t)tslen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)l->body, off);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2base64(
	    sig, sizeof(sig), mac, sizeof(mac), sodium_base64_VARIANT_ORIGINAL);

	w = snprintf(c->wbuf, HEAD_MAX_BYTES,
	    "POST /v1/webhooks/%s HTTP/1.1\r\n"
	    "Host: 127.0.0.1:%d\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %zu\r\n"
	    "webhook-id: %s\r\n"
	    "webhook-timestamp: %s\r\n"
	    "webhook-signature: v1,%s\r\n\r\n",
	    l->o.source, c->port, off, id, ts, sig);
	if (w < 0 || w >= HEAD_MAX_BYTES)
		return -1;
	memcpy(c->wbuf + w, l->body, off);
	c->wlen = (size_t)w + off;
	c->woff = 0;
	return 0;
}

/* ---- connections -------------------------------------------------------- */

/* Closes c; it reconnects after delay ns (0 when the server just said so). */
static void
conn_close(struct load *l, struct conn *c, int64_t now, int64_t delay)
{
	if (c->fd != -1) {
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	if (c->state == CONN_BUSY) {
		l->inflight--;
		l->t_errors++;
		if (c->measured)
			l->m_errors++;
	}
	c->state = CONN_DEAD;
	c->retry_at = now + delay;
	c->rlen = 0;
	l->ndead++;
}

static int
conn_open(struct load *l, struct conn *c)
{
	int one = 1;

	if ((c->fd = bench_connect(l->epfd, c->port, c)) == -1)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = CONN_CONNECTING;
	c->rlen = 0;
	return 0;
}

static void
want_write(struct load *l, struct conn *c, int on)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0);
	ev.data.ptr = c;
	epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int
conn_flush(struct load *l, struct conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = send(
		    c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			want_write(l, c, 1);
			return 0;
		}
		if (n <= 0)
			return -1;
		c->woff += (size_t)n;
	}
	return 0;
}

/* Sends the next request on an idle connection; start is when it was due. */
static void
conn_send(struct load *l, struct conn *c, int64_t start, int64_t now)
{
	if (request_build(l, c) == -1) {
		fprintf(stderr, "nbload: cannot build a request\n");
		exit(1);
	}
	c->state = CONN_BUSY;
	c->start_ns = start;
	c->measured = start >= l->warm_end && start < l->end;
	l->issued++;
	l->inflight++;
	l->t_sent++;
	if (c->measured)
		l->m_sent++;
	if (conn_flush(l, c) == -1)
		conn_close(l, c, now, RETRY_CONNECT_NS);
}

/*
 * Parses one complete answer at the head of c->rbuf.  Returns 1 with
 * *status, *used and *keep set; 0 if more bytes are needed; -1 on garbage.
 */
static int
response_parse(
    struct conn *c, int *status, size_t *used, int *keep, int64_t *accepted)
{
	char *buf = c->rbuf, *end, *p, *line, *acc;
	size_t hlen, clen = 0, blen;
	int chunked = 0, have_len = 0;

	if ((end = memmem(buf, c->rlen, "\r\n\r\n", 4)) == NULL)
		return c->rlen > 65536 ? -1 : 0;
	hlen = (size_t)(end - buf) + 4;
	if (hlen < 12 || strncmp(buf, "HTTP/1.", 7) != 0)
		return -1;
	*status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	if (*status < 100 || *status >= NSTATUS)
		return -1;
	*keep = buf[7] == '1';
	for (line = memchr(buf, '\n', hlen); line != NULL && line < end;
	     line = memchr(line, '\n', (size_t)(end - line))) {
		line++;
		if (strncasecmp(line, "content-length:", 15) == 0) {
			clen = (size_t)strtoull(line + 15, NULL, 10);
			have_len = 1;
		} else if (strncasecmp(line, "transfer-encoding:", 18) == 0) {
			for (p = line + 18; p < end && *p != '\r'; p++)
				if (strncasecmp(p, "chunked", 7) == 0)
					chunked = 1;
		} else if (strncasecmp(line, "connection:", 11) == 0) {
			for (p = line + 11; p < end && *p != '\r'; p++)
				if (strncasecmp(p, "close", 5) == 0)
					*keep = 0;
		}
	}
	if (chunked) {
		size_t off = hlen;

		for (;;) {
			char *crlf;
			size_t sz;

			crlf = memmem(buf + off, c->rlen - off, "\r\n", 2);
			if (crlf == NULL)
				return 0;
			sz = (size_t)strtoull(buf + off, NULL, 16);
			off = (size_t)(crlf - buf) + 2;
			if (sz == 0) {
				/* no trailers expected: just the final CRLF */
				if (c->rlen - off < 2)
					return 0;
				*used = off + 2;
				break;
			}
			if (c->rlen - off < sz + 2)
				return 0;
			off += sz + 2;
		}
	} else {
		if (!have_len && *status >= 200 && *status != 204 &&
		    *status != 304)
			return -1; /* close-delimited bodies are unsupported */
		if (c->rlen - hlen < clen)
			return 0;
		*used = hlen + clen;
	}
	/* small answers: the count is never split by chunk framing */
	blen = *used - hlen;
	*accepted = 0;
	acc = blen > 0 ? memmem(buf + hlen, blen, "\"accepted\":", 11) : NULL;
	if (acc != NULL)
		*accepted = strtoll(acc + 11, NULL, 10);
	return 1;
}

static void
on_answer(
    struct load *l, struct conn *c, int status, int64_t accepted, int64_t now)
{
	int ok = status >= 200 && status < 300;

	l->inflight--;
	l->t_answered++;
	if (ok) {
		l->t_2xx++;
		l->t_accepted += (uint64_t)accepted;
	}
	if (c->measured) {
		int64_t us = (now - c->start_ns) / 1000;

		l->m_answered++;
		l->status[status]++;
		if (ok) {
			l->m_2xx++;
			l->m_accepted += (uint64_t)accepted;
		}
		hist_add(&l->h, us < 0 ? 0 : (uint64_t)us);
	}
	c->state = CONN_IDLE;
}

/* Number of requests due by now (open loop) or allowed (closed loop). */
static uint64_t
due(struct load *l, int64_t now)
{
	uint64_t n;

	if (l->stopping)
		return l->issued;
	if (l->o.rate > 0)
		n = (uint64_t)((double)(now - l->t0) / l->interval_ns) + 1;
	else
		n = UINT64_MAX;
	if (l->o.max_requests > 0 && n > l->o.max_requests)
		n = l->o.max_requests;
	return n;
}

/* Gives an idle connection work, or parks it. */
static void
conn_next(struct load *l, struct conn *c, int64_t now)
{
	if (l->issued < due(l, now)) {
		int64_t start = l->o.rate > 0
		    ? l->t0 + (int64_t)((double)l->issued * l->interval_ns)
		    : now;

		conn_send(l, c, start, now);
	} else {
		c->state = CONN_IDLE;
		if (!c->parked) {
			c->parked = 1;
			l->idle[l->nidle++] = (int)(c - l->c);
		}
	}
}

static void
conn_readable(struct load *l, struct conn *c, int64_t now)
{
	for (;;) {
		ssize_t n;

		if (c->rcap - c->rlen < 4096) {
			size_t cap = c->rcap * 2;
			char *p;

			if (cap > RBUF_MAX_BYTES ||
			    (p = realloc(c->rbuf, cap)) == NULL) {
				conn_close(l, c, now, RETRY_CONNECT_NS);
				return;
			}
			c->rbuf = p;
			c->rcap = cap;
		}
		n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen - 1, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			break;
		if (n <= 0) {
			conn_close(l, c, now, RETRY_CONNECT_NS);
			return;
		}
		c->rlen += (size_t)n;
		c->rbuf[c->rlen] = '\0';
		/* level-triggered: a short read means drained for now */
		if ((size_t)n < c->rcap - (c->rlen - (size_t)n) - 1)
			break;
	}
	while (c->rlen > 0) {
		int status = 0, keep = 1, r;
		size_t used = 0;
		int64_t accepted = 0;

		if (c->state != CONN_BUSY) {
			/* an answer nobody asked for */
			conn_close(l, c, now, RETRY_CONNECT_NS);
			return;
		}
		r = response_parse(c, &status, &used, &keep, &accepted);
		if (r == 0)
			return;
		if (r == -1) {
			conn_close(l, c, now, RETRY_CONNECT_NS);
			return;
		}
		on_answer(l, c, status, accepted, now);
		memmove(c->rbuf, c->rbuf + used, c->rlen - used);
		c->rlen -= used;
		c->rbuf[c->rlen] = '\0';
		if (!keep) {
			/* not an error: the answer arrived */
			conn_close(l, c, now, 0);
			return;
		}
		conn_next(l, c, now);
	}
}

static void
conn_event(struct load *l, struct conn *c, uint32_t events, int64_t now)
{
	if (c->state == CONN_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if ((events & (EPOLLERR | EPOLLHUP)) ||
		    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 ||
		    err != 0) {
			l->t_connect_errors++;
			conn_close(l, c, now, RETRY_CONNECT_NS);
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		want_write(l, c, 0);
		conn_next(l, c, now);
		return;
	}
	if (events & EPOLLIN) {
		conn_readable(l, c, now);
		if (c->fd == -1)
			return;
	}
	if ((events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) && c->fd != -1) {
		conn_close(l, c, now, RETRY_CONNECT_NS);
		return;
	}
	if ((events & EPOLLOUT) && c->state == CONN_BUSY) {
		if (conn_flush(l, c) == -1) {
			conn_close(l, c, now, RETRY_CONNECT_NS);
			return;
		}
		if (c->woff == c->wlen)
			want_write(l, c, 0);
	}
}

/* ---- the run ------------------------------------------------------------ */

static void
timer_arm(struct load *l, int64_t at)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = at / 1000000000LL;
	its.it_value.tv_nsec = at % 1000000000LL;
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1;
	timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void
dispatch(struct load *l, int64_t now)
{
	int i;

	if (l->ndead > 0 && !l->stopping) {
		for (i = 0; i < l->o.conns; i++) {
			struct conn *c = &l->c[i];

			if (c->state != CONN_DEAD || c->retry_at > now)
				continue;
			l->ndead--;
			if (conn_open(l, c) == -1) {
				l->t_connect_errors++;
				c->state = CONN_DEAD;
				c->retry_at = now + RETRY_CONNECT_NS;
				l->ndead++;
			}
		}
	}
	while (l->nidle > 0 && l->issued < due(l, now)) {
		struct conn *c = &l->c[l->idle[--l->nidle]];

		c->parked = 0;
		if (c->state != CONN_IDLE)
			continue;
		conn_next(l, c, now);
	}
}

/*
 * The requests of the measured window that never got an answer: those still
 * in flight when the run gave up, and (open loop) those that fell due but
 * never found an idle connection.  Each waited at least until now, so each
 * goes into the histogram at that latency, a lower bound: a server that
 * stalls every connection cannot make the requests queued behind the stall
 * vanish from the percentiles.  They are counted as "censored".
 */
static void
censor(struct load *l, int64_t now)
{
	uint64_t j, sched;
	int i;

	for (i = 0; i < l->o.conns; i++) {
		struct conn *c = &l->c[i];

		if (c->state == CONN_BUSY && c->measured) {
			hist_add(&l->h, (uint64_t)((now - c->start_ns) / 1000));
			l->m_censored++;
		}
	}
	if (l->o.rate <= 0)
		return;
	sched = (uint64_t)((double)(l->end - l->t0) / l->interval_ns);
	if (l->o.max_requests > 0 && sched > l->o.max_requests)
		sched = l->o.max_requests;
	for (j = l->issued; j < sched; j++) {
		int64_t due_ns = l->t0 + (int64_t)((double)j * l->interval_ns);

		if (due_ns < l->warm_end || due_ns >= l->end)
			continue;
		hist_add(&l->h, (uint64_t)((now - due_ns) / 1000));
		l->m_unsent++;
		l->m_censored++;
	}
}

static void
report(struct load *l)
{
	double dur = l->o.duration;
	uint64_t sched = 0, unsent = 0;
	int i, first = 1;

	/* open loop: requests that fell due but never found a connection */
	if (l->o.rate > 0) {
		sched = (uint64_t)((double)(l->end - l->t0) / l->interval_ns);
		if (l->o.max_requests > 0 && sched > l->o.max_requests)
			sched = l->o.max_requests;
		unsent = sched > l->issued ? sched - l->issued : 0;
	}

	printf("{\"tool\":\"nbload\",\"label\":\"%s\",\"mode\":\"%s\","
	       "\"rate\":%.0f,\"connections\":%d,\"events_per_request\":%d,"
	       "\"duration_s\":%.3f,\"warmup_s\":%.3f,",
	    l->o.label ? l->o.label : "", l->o.rate > 0 ? "open" : "closed",
	    l->o.rate, l->o.conns, l->o.k, dur, l->o.warmup);
	printf("\"requests\":%" PRIu64 ",\"answered\":%" PRIu64
	       ",\"errors\":%" PRIu64 ",\"unanswered\":%" PRIu64
	       ",\"unsent\":%" PRIu64 ",\"censored\":%" PRIu64 ",\"status\":{",
	    l->m_sent, l->m_answered, l->m_errors,
	    l->m_sent - l->m_answered - l->m_errors, l->m_unsent,
	    l->m_censored);
	for (i = 0; i < NSTATUS; i++) {
		if (l->status[i] == 0)
			continue;
		printf("%s\"%d\":%" PRIu64, first ? "" : ",", i, l->status[i]);
		first = 0;
	}
	printf("},\"req_per_s\":%.1f,\"events_per_s\":%.1f,"
	       "\"accepted_per_s\":%.1f,",
	    (double)l->m_2xx / dur, (double)l->m_2xx * l->o.k / dur,
	    (double)l->m_accepted / dur);
	printf("\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
	       "\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f},",
	    hist_pct(&l->h, 50) / 1000.0, hist_pct(&l->h, 90) / 1000.0,
	    hist_pct(&l->h, 99) / 1000.0, hist_pct(&l->h, 99.9) / 1000.0,
	    (double)l->h.max / 1000.0,
	    l->h.count ? l->h.sum / (double)l->h.count / 1000.0 : 0.0);
	printf("\"total\":{\"requests\":%" PRIu64 ",\"answered\":%" PRIu64
	       ",\"ok\":%" PRIu64 ",\"events_ok\":%" PRIu64
	       ",\"accepted\":%" PRIu64 ",\"errors\":%" PRIu64
	       ",\"connect_errors\":%" PRIu64 ",\"unsent_due\":%" PRIu64
	       ",\"elapsed_s\":%.3f}}\n",
	    l->t_sent, l->t_answered, l->t_2xx, l->t_2xx * (uint64_t)l->o.k,
	    l->t_accepted, l->t_errors, l->t_connect_errors, unsent,
	    (double)(bench_mono_ns() - l->t0) / 1e9);
	fflush(stdout);
}

static int
run(struct load *l)
{
	struct epoll_event evs[256];
	struct epoll_event tev;
	unsigned char key[SECRET_MAX_BYTES];
	size_t keylen = 0;
	int i;

	if (secret_decode(key, &keylen, l->o.secret) == -1) {
		fprintf(stderr, "nbload: --secret is not whsec_<base64>\n");
		return -1;
	}
	crypto_auth_hmacsha256_init(&l->hmac0, key, keylen);
	sodium_memzero(key, sizeof(key));

	l->bodycap = (size_t)l->o.k * EVENT_MAX_BYTES + 16;
	l->body = malloc(l->bodycap);
	l->c = calloc((size_t)l->o.conns, sizeof(*l->c));
	l->idle = calloc((size_t)l->o.conns, sizeof(*l->idle));
	if (l->body == NULL || l->c == NULL || l->idle == NULL)
		return -1;
	if ((l->epfd = epoll_create1(0)) == -1 ||
	    (l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK)) == -1)
		return -1;
	memset(&tev, 0, sizeof(tev));
	tev.events = EPOLLIN;
	tev.data.ptr = NULL;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->tfd, &tev) == -1)
		return -1;

	l->interval_ns = l->o.rate > 0 ? 1e9 / l->o.rate : 0;
	l->t0 = bench_mono_ns();
	l->warm_end = l->t0 + (int64_t)(l->o.warmup * 1e9);
	l->end = l->warm_end + (int64_t)(l->o.duration * 1e9);
	l->hard_end = l->end + (int64_t)(l->o.grace * 1e9);

	for (i = 0; i < l->o.conns; i++) {
		struct conn *c = &l->c[i];

		c->fd = -1;
		c->port = l->o.ports[i % l->o.nports];
		c->rcap = 16384;
		if ((c->rbuf = malloc(c->rcap)) == NULL ||
		    (c->wbuf = malloc(HEAD_MAX_BYTES + l->bodycap)) == NULL)
			return -1;
		if (conn_open(l, c) == -1) {
			fprintf(
			    stderr, "nbload: socket: %s\n", strerror(errno));
			return -1;
		}
	}

	for (;;) {
		int64_t now = bench_mono_ns(), wake;
		int n;

		if (now >= l->end)
			l->stopping = 1;
		if (l->o.max_requests > 0 && l->issued >= l->o.max_requests &&
		    l->inflight == 0)
			break;
		if (l->stopping && l->inflight == 0)
			break;
		if (now >= l->hard_end)
			break;
		dispatch(l, now);

		wake = l->stopping ? l->hard_end : l->end;
		if (l->o.rate > 0 && !l->stopping) {
			int64_t next = l->t0 +
			    (int64_t)((double)l->issued * l->interval_ns);

			if (l->nidle > 0 && next < wake)
				wake = next;
		}
		if (l->ndead > 0 && wake > now + RETRY_CONNECT_NS)
			wake = now + RETRY_CONNECT_NS;
		if (wake != l->armed) {
			timer_arm(l, wake);
			l->armed = wake;
		}
		n = epoll_wait(l->epfd, evs, 256, MAX_TIMEOUT_MS);
		if (n == -1 && errno != EINTR)
			return -1;
		now = bench_mono_ns();
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				uint64_t x;

				if (read(l->tfd, &x, sizeof(x)) == -1 &&
				    errno != EAGAIN)
					return -1;
				continue;
			}
			conn_event(l, evs[i].data.ptr, evs[i].events, now);
		}
	}
	censor(l, bench_mono_ns());
	report(l);
	return 0;
}

/* Polls GET /readyz until it answers 200; prints the wait in ms. */
static int
wait_ready(const struct opts *o)
{
	static const char req[] = "GET /readyz HTTP/1.1\r\n"
				  "Host: 127.0.0.1\r\n"
				  "Connection: close\r\n\r\n";
	int64_t t0 = bench_mono_ns(), deadline;
	struct sockaddr_in sa;
	struct timespec pause = {0, 1000000}; /* 1 ms */

	deadline = t0 + (int64_t)(o->ready_timeout * 1e9);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)o->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	while (bench_mono_ns() < deadline) {
		char buf[256];
		ssize_t n;
		size_t got = 0;
		int fd;

		if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
			return -1;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		    send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) ==
			(ssize_t)(sizeof(req) - 1)) {
			while (got < 12 &&
			    (n = recv(
				 fd, buf + got, sizeof(buf) - got - 1, 0)) > 0)
				got += (size_t)n;
			if (got >= 12 && strncmp(buf + 9, "200", 3) == 0) {
				close(fd);
				printf("{\"tool\":\"nbload\",\"ready\":true,"
				       "\"waited_ms\":%.1f}\n",
				    (double)(bench_mono_ns() - t0) / 1e6);
				return 0;
			}
		}
		close(fd);
		nanosleep(&pause, NULL);
	}
	printf("{\"tool\":\"nbload\",\"ready\":false}\n");
	return -1;
}

int
main(int argc, char **argv)
{
	static struct load l;

	if (sodium_init() < 0) {
		fprintf(stderr, "nbload: sodium_init failed\n");
		return 1;
	}
	parse_opts(&l.o, argc, argv);
	if (l.o.wait_ready)
		return wait_ready(&l.o) == 0 ? 0 : 1;
	if (run(&l) == -1) {
		fprintf(stderr, "nbload: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}
