/* SPDX-License-Identifier: ISC */
/*
 * conn: connection accounting and per-request deadlines for evhttp 2.1.
 *
 * evhttp calls our bufferevent callback for every accepted socket, before
 * it builds its connection around the bufferevent; that is where a
 * connection is counted (and, with TLS, given its OpenSSL bufferevent).
 * The evhttp connection itself only exists once that call returned, so a
 * record is "adopted" from an event activated in the callback, which libevent
 * runs in the same loop turn, before any I/O of the new socket can be
 * processed: adoption learns the evhttp connection (the bufferevent's
 * callback argument) and installs a close callback that ends the record.
 *
 * Records are found again by socket number (a table indexed by fd, as in
 * Redis' ae), checked against the evhttp connection they belong to.  A
 * deadline never closes a socket by itself: it shuts the socket down after
 * checking (fstat: same device and inode) that the fd is still the one it
 * recorded, and evhttp then sees end-of-file and frees the connection the
 * ordinary way.  An fd found still in the table when a new connection gets
 * it is a record whose close callback never came; it is dropped, so the
 * count cannot drift upwards.  One guard per event base, used on that
 * base's thread only; guards of several bases (HTTP worker threads on one
 * port) can share one atomic total so that max_connections holds for the
 * listener as a whole (nb_conn_share_total()).
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "nudgebridge/conn.h"
#include "nudgebridge/log.h"
#include "nudgebridge/timeutil.h"
#include "nudgebridge/tls.h"

#define CONN_LOG_EVERY_MS 10000 /* rejected/expired summaries at most */
#define CONN_TABLE_MIN	  1024

struct conn {
	struct nb_conn *owner;
	struct bufferevent *bev;
	struct evhttp_connection *evcon; /* set by adopt() */
	struct event *deadline;
	evutil_socket_t fd;
	dev_t dev;
	ino_t ino;
	int reject; /* over the limit, or no TLS bufferevent: close at once */
	int busy;   /* a request is being answered: no deadline */
	struct conn *next; /* pending adoption */
};

struct nb_conn {
	struct event_base *base;
	struct evhttp *evh;
	struct nb_tls *tls;
	struct event *adopt;
	struct conn *pending;
	struct conn **byfd;
	size_t nbyfd;
	size_t count;
	atomic_size_t *total; /* shared with other guards, or NULL */
	size_t max;
	int timeout_s;
	const struct timeval *timeout_tv; /* common timeout for timeout_s */
	size_t rejected, expired;	  /* since the last summary line */
	int64_t last_log_ms;
};

static void
summary(struct nb_conn *nc)
{
	int64_t now = nb_time_mono_ms();

	if (nc->rejected + nc->expired == 0 ||
	    now - nc->last_log_ms < CONN_LOG_EVERY_MS)
		return;
	log_warn("connections closed by the guard",
	    " over_limit=%zu deadline=%zu open=%zu max_connections=%zu",
	    nc->rejected, nc->expired, nc->count, nc->max);
	nc->rejected = nc->expired = 0;
	nc->last_log_ms = now;
}

static void
conn_release(struct nb_conn *nc, struct conn *c)
{
	if (c->fd >= 0 && (size_t)c->fd < nc->nbyfd && nc->byfd[c->fd] == c)
		nc->byfd[c->fd] = NULL;
	if (c->deadline != NULL)
		event_free(c->deadline);
	nc->count--;
	if (nc->total != NULL)
		atomic_fetch_sub(nc->total, 1);
	free(c);
}

/* The record of a live evhttp connection, or NULL. */
static struct conn *
lookup(struct nb_conn *nc, struct evhttp_connection *evcon)
{
	struct bufferevent *bev;
	evutil_socket_t fd;
	struct conn *c;

	if (evcon == NULL ||
	    (bev = evhttp_connection_get_bufferevent(evcon)) == NULL)
		return NULL;
	fd = bufferevent_getfd(bev);
	if (fd < 0 || (size_t)fd >= nc->nbyfd)
		return NULL;
	c = nc->byfd[fd];
	return c != NULL && c->evcon == evcon ? c : NULL;
}

/* 1 when c's fd is still the socket it was at adoption. */
static int
same_socket(const struct conn *c)
{
	struct stat st;

	if (c->fd < 0 || fstat(c->fd, &st) == -1)
		return 0;
	return st.st_dev == c->dev && st.st_ino == c->ino;
}

static void
arm(struct nb_conn *nc, struct conn *c)
{
	if (c->deadline == NULL)
		return;
	if (nc->timeout_s <= 0 || nc->timeout_tv == NULL)
		event_del(c->deadline);
	else
		event_add(c->deadline, nc->timeout_tv);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct nb_conn *nc = c->owner;

	(void)fd;
	(void)what;
	if (c->busy || nc->byfd[c->fd] != c || !same_socket(c))
		return;
	/* evhttp reads end-of-file next and frees the connection. */
	shutdown(c->fd, SHUT_RDWR);
	nc->expired++;
	summary(nc);
}

static void
close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct conn *c = arg;

	evhttp_connection_set_closecb(evcon, NULL, NULL);
	conn_release(c->owner, c);
}

/* Makes room for fd in the table.  0 or -1. */
static int
table_fit(struct nb_conn *nc, evutil_socket_t fd)
{
	struct conn **t;
	size_t n = nc->nbyfd > 0 ? nc->nbyfd : CONN_TABLE_MIN;

	if ((size_t)fd < nc->nbyfd)
		return 0;
	while (n <= (size_t)fd)
		n *= 2;
	if ((t = realloc(nc->byfd, n * sizeof(*t))) == NULL)
		return -1;
	memset(t + nc->nbyfd, 0, (n - nc->nbyfd) * sizeof(*t));
	nc->byfd = t;
	nc->nbyfd = n;
	return 0;
}

static void
adopt(struct nb_conn *nc, struct conn *c)
{
	struct stat st;
	void *arg = NULL;

	bufferevent_getcb(c->bev, NULL, NULL, NULL, &arg);
	c->evcon = arg;
	c->fd = bufferevent_getfd(c->bev);
	if (c->evcon == NULL || c->fd < 0 || fstat(c->fd, &st) == -1 ||
	    table_fit(nc, c->fd) == -1) {
		/* Cannot follow it: leave it to evhttp's own timeouts. */
		log_warn("cannot track a connection", " fd=%d", (int)c->fd);
		c->fd = -1;
		conn_release(nc, c);
		return;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	if (nc->byfd[c->fd] != NULL) {
		log_warn("dropping the record of a connection closed unseen",
		    " fd=%d", (int)c->fd);
		conn_release(nc, nc->byfd[c->fd]);
	}
	nc->byfd[c->fd] = c;
	evhttp_connection_set_closecb(c->evcon, close_cb, c);
	if (c->reject) {
		shutdown(c->fd, SHUT_RDWR);
		nc->rejected++;
		summary(nc);
		return;
	}
	c->deadline = event_new(nc->base, -1, 0, deadline_cb, c);
	arm(nc, c);
}

static void
adopt_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_conn *nc = arg;
	struct conn *c, *next;

	(void)fd;
	(void)what;
	c = nc->pending;
	nc->pending = NULL;
	for (; c != NULL; c = next) {
		next = c->next;
		c->next = NULL;
		adopt(nc, c);
	}
}

static struct bufferevent *
bev_cb(struct event_base *base, void *arg)
{
	struct nb_conn *nc = arg;
	struct bufferevent *bev = NULL;
	struct conn *c;
	size_t open_now;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		/* Untracked; with TLS still never plain text if we can. */
		return nc->tls != NULL ? nb_tls_bev_new(nc->tls, base) : NULL;
	if (nc->tls != NULL && (bev = nb_tls_bev_new(nc->tls, base)) == NULL)
		c->reject = 1; /* no plain text on a TLS port */
	if (bev == NULL)
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		free(c);
		return NULL;
	}
	c->owner = nc;
	c->bev = bev;
	c->fd = -1;
	nc->count++;
	open_now =
	    nc->total != NULL ? atomic_fetch_add(nc->total, 1) + 1 : nc->count;
	if (nc->max > 0 && open_now > nc->max)
		c->reject = 1;
	c->next = nc->pending;
	nc->pending = c;
	event_active(nc->adopt, EV_TIMEOUT, 0);
	return bev;
}

struct nb_conn *
nb_conn_new(struct event_base *base, struct evhttp *evh)
{
	struct nb_conn *nc;

	if ((nc = calloc(1, sizeof(*nc))) == NULL)
		return NULL;
	nc->base = base;
	nc->evh = evh;
	if ((nc->adopt = event_new(base, -1, 0, adopt_cb, nc)) == NULL) {
		free(nc);
		return NULL;
	}
	evhttp_set_bevcb(evh, bev_cb, nc);
	return nc;
}

void
nb_conn_set_limits(struct nb_conn *nc, size_t max_conns, int request_timeout_s)
{
	struct timeval tv;

	nc->max = max_conns;
	if (request_timeout_s != nc->timeout_s || nc->timeout_tv == NULL) {
		nc->timeout_s = request_timeout_s;
		tv.tv_sec = request_timeout_s;
		tv.tv_usec = 0;
		/* One queue for thousands of equal timeouts (O(1) each). */
		nc->timeout_tv = request_timeout_s > 0
		    ? event_base_init_common_timeout(nc->base, &tv)
		    : NULL;
	}
}

void
nb_conn_share_total(struct nb_conn *nc, atomic_size_t *total)
{
	nc->total = total;
}

void
nb_conn_set_tls(struct nb_conn *nc, struct nb_tls *tls)
{
	nb_tls_free(nc->tls);
	nc->tls = tls;
}

int
nb_conn_tls(const struct nb_conn *nc)
{
	return nc != NULL && nc->tls != NULL;
}

static void
complete_cb(struct evhttp_request *req, void *arg)
{
	struct nb_conn *nc = arg;
	struct conn *c;

	if ((c = lookup(nc, evhttp_request_get_connection(req))) == NULL)
		return;
	c->busy = 0;
	arm(nc, c);
}

void
nb_conn_request(struct nb_conn *nc, struct evhttp_request *req)
{
	struct conn *c;

	if (nc == NULL ||
	    (c = lookup(nc, evhttp_request_get_connection(req))) == NULL)
		return;
	c->busy = 1;
	if (c->deadline != NULL)
		event_del(c->deadline);
	evhttp_request_set_on_complete_cb(req, complete_cb, nc);
}

size_t
nb_conn_count(const struct nb_conn *nc)
{
	return nc != NULL ? nc->count : 0;
}

void
nb_conn_free(struct nb_conn *nc)
{
	struct conn *c, *next;
	size_t i;

	if (nc == NULL)
		return;
	for (c = nc->pending; c != NULL; c = next) {
		next = c->next;
		conn_release(nc, c);
	}
	for (i = 0; i < nc->nbyfd; i++) {
		if (nc->byfd[i] != NULL)
			conn_release(nc, nc->byfd[i]);
	}
	free(nc->byfd);
	event_free(nc->adopt);
	nb_tls_free(nc->tls);
	free(nc);
}
