/* SPDX-License-Identifier: ISC */
/*
 * nbslow: idle connections and slow, unauthenticated senders against one
 * listener, for the nudgebridge benchmarks.
 *
 * Three kinds of connection to 127.0.0.1:PORT, each kept open for the whole
 * run (when the server closes one, it is opened again a second later, so
 * the pressure stays and the closes are counted; a huge sender likewise
 * starts again a second after its answer):
 *
 *   idle   connect and send nothing;
 *   slow   send one byte every --every-ms (staggered over the interval):
 *          the even ones trickle a header line that never ends, the odd
 *          ones send whole headers with a large Content-Length and then
 *          trickle the body;
 *   huge   send headers with Content-Length --huge-bytes to --huge-path
 *          (an unknown source, say; 8 MiB by default) and then the body
 *          as fast as the socket takes it.
 *
 * It never authenticates and never signs.  One thread, epoll, non-blocking
 * sockets; connections are opened at most OPEN_PER_TICK per 10 ms so the
 * listen queue is not the thing measured.  Runs --duration seconds (or
 * until SIGTERM/SIGINT) and prints one JSON line with, per kind, the
 * connections open now and at most, connects, connect errors, closes by
 * the server, answers by status and bytes sent.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#define MAX_CONNS     20000
#define OPEN_PER_TICK 50
#define TICK_MS	      10
#define REOPEN_NS     1000000000LL /* after a close or an answer */
#define HUGE_CHUNK    65536
#define SLOW_BODY_LEN 1000000 /* Content-Length of a body trickler */
#define NSTATUS	      600

enum kind { K_IDLE, K_SLOW, K_HUGE, NKINDS };

static const char *kind_name[NKINDS] = {"idle", "slow", "huge"};

struct conn {
	int fd;
	enum kind kind;
	int idx;	  /* within its kind: parity picks the slow mode */
	int connecting;	  /* waiting for the connect to finish */
	int64_t next_ns;  /* next trickled byte, or when to reopen */
	char *head;	  /* the request head to send */
	size_t headlen;	  /* its length */
	size_t off;	  /* bytes of head (then body) sent */
	uint64_t bodylen; /* huge: body bytes to send after the head */
	int answered;	  /* a status line came back */
};

struct stats {
	uint64_t connects, connect_errors, closed, bytes;
	int open, open_max;
	uint64_t status[NSTATUS];
};

struct run {
	int epfd, port, every_ms;
	uint64_t huge_bytes;
	const char *path, *huge_path;
	struct conn *c;
	int n;
	int count[NKINDS];
	struct stats st[NKINDS];
	char filler[HUGE_CHUNK];
};

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static const char usage[] =
    "usage: nbslow --port P [--idle N] [--slow N] [--huge N]\n"
    "         [--huge-bytes B] [--path PATH] [--huge-path PATH]\n"
    "         [--every-ms MS] [--duration S]\n";

/* Builds the request head a connection of kind k (number idx) sends. */
static int
head_build(struct run *r, struct conn *c)
{
	char buf[1024];
	int w;

	switch (c->kind) {
	case K_SLOW:
		if (c->idx % 2 == 0)
			w = snprintf(buf, sizeof(buf),
			    "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
			    "Content-Type: application/json\r\nX-Slow: ",
			    r->path, r->port);
		else
			w = snprintf(buf, sizeof(buf),
			    "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
			    "Content-Type: application/json\r\n"
			    "Content-Length: %d\r\n\r\n",
			    r->path, r->port, SLOW_BODY_LEN);
		break;
	case K_HUGE:
		w = snprintf(buf, sizeof(buf),
		    "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		    "Content-Type: application/json\r\n"
		    "Content-Length: %llu\r\n\r\n",
		    r->huge_path, r->port, (unsigned long long)r->huge_bytes);
		c->bodylen = r->huge_bytes;
		break;
	default:
		return 0;
	}
	if (w < 0 || (size_t)w >= sizeof(buf) ||
	    (c->head = strdup(buf)) == NULL)
		return -1;
	c->headlen = (size_t)w;
	return 0;
}

static void
conn_close(struct run *r, struct conn *c, int64_t now, int by_server)
{
	struct stats *st = &r->st[c->kind];

	if (c->fd == -1)
		return;
	epoll_ctl(r->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	st->open--;
	if (by_server)
		st->closed++;
	c->next_ns = now + REOPEN_NS;
}

static void
want(struct run *r, struct conn *c, uint32_t events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = c;
	epoll_ctl(r->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
conn_open(struct run *r, struct conn *c, int64_t now)
{
	struct stats *st = &r->st[c->kind];

	c->off = 0;
	c->answered = 0;
	if ((c->fd = bench_connect(r->epfd, r->port, c)) == -1)
		goto fail;
	c->connecting = 1;
	st->connects++;
	if (++st->open > st->open_max)
		st->open_max = st->open;
	/* Stagger the trickles over one interval. */
	c->next_ns =
	    now + (int64_t)r->every_ms * 1000000LL * c->idx / r->count[c->kind];
	return;
fail:
	st->connect_errors++;
	c->next_ns = now + REOPEN_NS;
}

/* Sends what c may send now; returns -1 when the connection broke. */
static int
conn_send(struct run *r, struct conn *c, int64_t now)
{
	struct stats *st = &r->st[c->kind];
	ssize_t n;

	if (c->kind == K_IDLE || c->connecting)
		return 0;
	if (c->kind == K_SLOW) {
		char byte;

		if (now < c->next_ns)
			return 0;
		byte = c->off < c->headlen ? c->head[c->off] : 'a';
		n = send(c->fd, &byte, 1, MSG_NOSIGNAL);
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n != 1)
			return -1;
		c->off++;
		st->bytes++;
		c->next_ns = now + (int64_t)r->every_ms * 1000000LL;
		return 0;
	}
	/* huge: the head, then the body as fast as the socket takes it */
	while (c->off < c->headlen + c->bodylen) {
		const char *p;
		size_t len;

		if (c->off < c->headlen) {
			p = c->head + c->off;
			len = c->headlen - c->off;
		} else {
			uint64_t left = c->headlen + c->bodylen - c->off;

			p = r->filler;
			len = left < HUGE_CHUNK ? (size_t)left : HUGE_CHUNK;
		}
		n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EAGAIN) {
			want(r, c, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
			return 0;
		}
		if (n <= 0)
			return -1;
		c->off += (size_t)n;
		st->bytes += (uint64_t)n;
	}
	want(r, c, EPOLLIN | EPOLLRDHUP);
	return 0;
}

/* Reads and drops what the server sent; counts a status line once. */
static int
conn_read(struct run *r, struct conn *c)
{
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		if (!c->answered && n >= 12 && memcmp(buf, "HTTP/1.", 7) == 0) {
			int status = (buf[9] - '0') * 100 +
			    (buf[10] - '0') * 10 + (buf[11] - '0');

			if (status >= 100 && status < NSTATUS)
				r->st[c->kind].status[status]++;
			c->answered = 1;
		}
	}
}

static void
conn_event(struct run *r, struct conn *c, uint32_t events, int64_t now)
{
	if (c->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);

		if ((events & (EPOLLERR | EPOLLHUP)) ||
		    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 ||
		    err != 0) {
			r->st[c->kind].connect_errors++;
			conn_close(r, c, now, 0);
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		c->connecting = 0;
		want(r, c, EPOLLIN | EPOLLRDHUP);
		if (conn_send(r, c, now) == -1)
			conn_close(r, c, now, 1);
		return;
	}
	if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) &&
	    conn_read(r, c) == -1) {
		conn_close(r, c, now, 1);
		return;
	}
	if (c->kind == K_HUGE && c->answered &&
	    c->off >= c->headlen + c->bodylen) {
		conn_close(r, c, now, 0); /* done: the next one starts now */
		return;
	}
	if ((events & EPOLLOUT) && conn_send(r, c, now) == -1)
		conn_close(r, c, now, 1);
}

/* Opens due connections (a few per tick) and sends due trickles. */
static void
tick(struct run *r, int64_t now)
{
	int i, opened = 0;

	for (i = 0; i < r->n; i++) {
		struct conn *c = &r->c[i];

		if (c->fd == -1) {
			if (c->next_ns <= now && opened < OPEN_PER_TICK) {
				conn_open(r, c, now);
				opened++;
			}
			continue;
		}
		if (c->kind == K_SLOW && conn_send(r, c, now) == -1)
			conn_close(r, c, now, 1);
	}
}

static void
report(const struct run *r)
{
	int k, i, first;

	printf("{\"tool\":\"nbslow\",\"port\":%d", r->port);
	for (k = 0; k < NKINDS; k++) {
		const struct stats *st = &r->st[k];

		printf(",\"%s\":{\"open\":%d,\"open_max\":%d,\"connects\":%llu,"
		       "\"connect_errors\":%llu,\"closed_by_server\":%llu,"
		       "\"bytes_sent\":%llu,\"answers\":{",
		    kind_name[k], st->open, st->open_max,
		    (unsigned long long)st->connects,
		    (unsigned long long)st->connect_errors,
		    (unsigned long long)st->closed,
		    (unsigned long long)st->bytes);
		for (i = 0, first = 1; i < NSTATUS; i++) {
			if (st->status[i] == 0)
				continue;
			printf("%s\"%d\":%llu", first ? "" : ",", i,
			    (unsigned long long)st->status[i]);
			first = 0;
		}
		printf("}}");
	}
	printf("}\n");
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	static struct run r;
	struct epoll_event evs[256];
	struct rlimit rl;
	struct sigaction sa;
	int *counts = r.count, i, k, n;
	double duration = 3600;
	int64_t end;

	r.port = 0;
	r.every_ms = 1000;
	r.huge_bytes = 8ULL * 1024 * 1024;
	r.path = "/v1/webhooks/nosuchsource";
	r.huge_path = "/v1/webhooks/nosuchsource";
	for (i = 1; i + 1 < argc; i += 2) {
		const char *a = argv[i], *v = argv[i + 1];

		if (strcmp(a, "--port") == 0)
			r.port = (int)bench_num(v, 1, 65535, usage);
		else if (strcmp(a, "--idle") == 0)
			counts[K_IDLE] = (int)bench_num(v, 0, MAX_CONNS, usage);
		else if (strcmp(a, "--slow") == 0)
			counts[K_SLOW] = (int)bench_num(v, 0, MAX_CONNS, usage);
		else if (strcmp(a, "--huge") == 0)
			counts[K_HUGE] = (int)bench_num(v, 0, MAX_CONNS, usage);
		else if (strcmp(a, "--huge-bytes") == 0)
			r.huge_bytes =
			    (uint64_t)bench_num(v, 1, 1LL << 40, usage);
		else if (strcmp(a, "--path") == 0)
			r.path = v;
		else if (strcmp(a, "--huge-path") == 0)
			r.huge_path = v;
		else if (strcmp(a, "--every-ms") == 0)
			r.every_ms = (int)bench_num(v, 1, 3600000, usage);
		else if (strcmp(a, "--duration") == 0)
			duration = (double)bench_num(v, 1, 86400, usage);
		else
			bench_usage(usage);
	}
	r.n = counts[K_IDLE] + counts[K_SLOW] + counts[K_HUGE];
	if (i != argc || r.port == 0 || r.n == 0 || r.n > MAX_CONNS)
		bench_usage(usage);
	/* Room for every connection: raise the soft limit to the hard one. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	memset(r.filler, 'x', sizeof(r.filler));
	if ((r.c = calloc((size_t)r.n, sizeof(*r.c))) == NULL ||
	    (r.epfd = epoll_create1(0)) == -1)
		return 1;
	for (i = 0, k = 0; k < NKINDS; k++) {
		int j;

		for (j = 0; j < counts[k]; j++, i++) {
			r.c[i].fd = -1;
			r.c[i].kind = (enum kind)k;
			r.c[i].idx = j;
			if (head_build(&r, &r.c[i]) == -1)
				return 1;
		}
	}
	end = bench_mono_ns() + (int64_t)(duration * 1e9);
	while (!stop && bench_mono_ns() < end) {
		int64_t now;

		tick(&r, bench_mono_ns());
		n = epoll_wait(r.epfd, evs, 256, TICK_MS);
		if (n == -1 && errno != EINTR)
			return 1;
		now = bench_mono_ns();
		for (i = 0; i < n; i++)
			conn_event(&r, evs[i].data.ptr, evs[i].events, now);
	}
	report(&r);
	return 0;
}
