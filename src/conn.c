/* SPDX-License-Identifier: ISC */
/*
 * conn: connection accounting, the gate and per-request deadlines for
 * evhttp 2.1.
 *
 * evhttp calls our bufferevent callback for every accepted socket, before
 * it builds its connection around the bufferevent; that is where a
 * connection is counted (and, with TLS, given its OpenSSL bufferevent),
 * and where the gate is attached: a callback on the bufferevent's input
 * buffer runs as soon as bytes land there (decrypted, with TLS), before
 * evhttp's read callback.  It moves them out, feeds them to the gate, and
 * puts back only what the gate hands on.  A filtering bufferevent would
 * be the obvious tool, but evhttp then takes "moved to the filter" for
 * "written": its write callback fires before the socket is written, so an
 * answer that closes the connection would be freed unsent.
 *
 * The evhttp connection itself only exists once the bufferevent callback
 * returned, so a record is "adopted" from an event activated there, which
 * libevent runs in the same loop turn, before any I/O of the new socket:
 * adoption learns the evhttp connection (the bufferevent's callback
 * argument) and installs a close callback that ends the record.  Records
 * are found again by socket number (a table indexed by fd, as in Redis'
 * ae), checked against the evhttp connection they belong to.  Each record
 * keeps a short queue of the requests the gate handed on and evhttp has
 * not answered yet: their reserved body bytes (released when the answer
 * is sent or the connection ends) and, for stand-ins, the refusal to send.
 * A refusal that ends the connection is answered, then the write side is
 * shut and the client's bytes are read and dropped (lingering) until it
 * stops, NB_GATE_DISCARD_MAX is passed or CONN_LINGER_S ran out; then
 * the connection is reset.  Nothing here closes a socket itself: it is
 * shut down (after checking, with fstat, that the fd is still the socket
 * it was) and evhttp frees the connection on the end-of-file.  One guard
 * per event base, on that base's thread; guards of several bases can
 * share their totals.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "nudgebridge/conn.h"
#include "nudgebridge/log.h"
#include "nudgebridge/timeutil.h"
#include "nudgebridge/tls.h"

#define CONN_LOG_EVERY_MS 10000 /* rejected/expired summaries at most */
#define CONN_TABLE_MIN	  1024
#define CONN_QUEUE	  16 /* requests handed on, not yet answered */
#define CONN_LINGER_S	  5  /* after an answer that closes */
#define CONN_PEEK_MAX	  4096

/* One request the gate handed on (or stood in for). */
struct slot {
	uint32_t seq;
	size_t reserved; /* body bytes counted in the budget */
	int refused;
	int close;
	struct nb_gate_refusal r;
};

struct conn {
	struct nb_conn *owner;
	struct bufferevent *bev;
	struct evhttp_connection *evcon; /* set by adopt() */
	struct event *deadline;
	struct nb_gate *gate;
	struct evbuffer_cb_entry *incb;
	evutil_socket_t fd;
	dev_t dev;
	ino_t ino;
	int reject;	 /* over the limit, or no TLS bufferevent: close */
	int busy;	 /* a request is being answered: no deadline */
	int lingering;	 /* a closing answer went out: dropping input */
	int gate_closed; /* close as soon as nothing is left to answer */
	int overflow;	 /* more requests queued than CONN_QUEUE */
	int in_gate;
	uint32_t next_seq; /* slots exist for seq < next_seq */
	uint32_t disp_seq; /* requests evhttp gave us so far */
	uint32_t cur_seq;  /* the one being answered */
	struct slot q[CONN_QUEUE];
	size_t qhead, qlen;
	struct conn *next; /* pending adoption */
};

struct nb_conn {
	struct event_base *base;
	struct evhttp *evh;
	struct nb_tls *tls;
	struct nb_conn_policy policy;
	struct nb_conn_limits lim;
	struct event *adopt;
	struct conn *pending;
	struct conn **byfd;
	size_t nbyfd;
	size_t count;
	atomic_size_t *total;	 /* shared with other guards, or NULL */
	atomic_size_t *inflight; /* shared, or &own_inflight */
	atomic_size_t own_inflight;
	struct evbuffer *hold, *tmp;
	const struct timeval *timeout_tv; /* common timeout for the deadline */
	const struct timeval *linger_tv;
	size_t rejected, expired, overflowed; /* since the last summary */
	int64_t last_log_ms;
};

static void
summary(struct nb_conn *nc)
{
	int64_t now = nb_time_mono_ms();

	if (nc->rejected + nc->expired + nc->overflowed == 0 ||
	    now - nc->last_log_ms < CONN_LOG_EVERY_MS)
		return;
	log_warn("connections closed by the guard",
	    " over_limit=%zu deadline=%zu pipelined=%zu open=%zu "
	    "max_connections=%zu",
	    nc->rejected, nc->expired, nc->overflowed, nc->count,
	    nc->lim.max_conns);
	nc->rejected = nc->expired = nc->overflowed = 0;
	nc->last_log_ms = now;
}

static void
budget_release(struct nb_conn *nc, size_t n)
{
	if (n == 0)
		return;
	atomic_fetch_sub(nc->inflight, n);
}

/*
 * Ends a record.  bev_alive: the bufferevent is still in use (then the
 * gate's callback must leave its input buffer).
 */
static void
conn_release(struct nb_conn *nc, struct conn *c, int bev_alive)
{
	size_t i;

	if (c->fd >= 0 && (size_t)c->fd < nc->nbyfd && nc->byfd[c->fd] == c)
		nc->byfd[c->fd] = NULL;
	if (bev_alive && c->incb != NULL)
		evbuffer_remove_cb_entry(
		    bufferevent_get_input(c->bev), c->incb);
	for (i = 0; i < c->qlen; i++)
		budget_release(nc, c->q[(c->qhead + i) % CONN_QUEUE].reserved);
	if (c->deadline != NULL)
		event_free(c->deadline);
	nb_gate_free(c->gate);
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

/*
 * Ends a connection the gate gave up on: evhttp reads end-of-file next and
 * frees it.  Its client has had the answer and its lingering time, and may
 * still be sending: the close resets it (SO_LINGER 0), else a socket whose
 * input happens to be empty would close quietly, and a client blocked on a
 * full window would wait for the kernel's FIN-WAIT-2 timeout.
 */
static void
hang_up(struct conn *c)
{
	struct linger lg = {1, 0};
	evutil_socket_t fd = c->fd >= 0 ? c->fd : bufferevent_getfd(c->bev);

	if (fd < 0 || (c->fd >= 0 && !same_socket(c)))
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	shutdown(fd, SHUT_RDWR);
}

static void
arm(struct nb_conn *nc, struct conn *c)
{
	if (c->deadline == NULL || c->lingering)
		return;
	if (nc->lim.request_timeout_s <= 0 || nc->timeout_tv == NULL)
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
	if (c->lingering) {
		hang_up(c);
		return;
	}
	/* evhttp reads end-of-file next and frees the connection. */
	shutdown(c->fd, SHUT_RDWR);
	nc->expired++;
	summary(nc);
}

/*
 * The slot of request seq, created when seq is the next one; NULL when it
 * is gone or the queue is full.
 */
static struct slot *
slot_for(struct conn *c, uint32_t seq)
{
	struct slot *s;
	size_t i;

	for (i = 0; i < c->qlen; i++) {
		s = &c->q[(c->qhead + i) % CONN_QUEUE];
		if (s->seq == seq)
			return s;
	}
	if ((int32_t)(seq - c->next_seq) < 0)
		return NULL; /* answered already */
	s = NULL;
	while ((int32_t)(seq - c->next_seq) >= 0) {
		if (c->qlen == CONN_QUEUE) {
			c->overflow = 1;
			return NULL;
		}
		s = &c->q[(c->qhead + c->qlen++) % CONN_QUEUE];
		memset(s, 0, sizeof(*s));
		s->seq = c->next_seq++;
	}
	return s;
}

/*
 * The answer to request seq went out: frees its slot (and any older one)
 * and releases their budget.  1 when one of them ends the connection.
 */
static int
slots_done(struct conn *c, uint32_t seq)
{
	struct slot *s;
	int close = 0;

	while (c->qlen > 0) {
		s = &c->q[c->qhead];
		if ((int32_t)(s->seq - seq) > 0)
			break;
		close |= s->close;
		budget_release(c->owner, s->reserved);
		c->qhead = (c->qhead + 1) % CONN_QUEUE;
		c->qlen--;
	}
	return close;
}

static int
gate_head_cb(void *arg, const struct nb_gate_head *h, struct nb_gate_refusal *r)
{
	struct conn *c = arg;
	struct nb_conn *nc = c->owner;

	if (nc->policy.head == NULL)
		return 0;
	return nc->policy.head(nc->policy.arg, h, r);
}

static int
gate_reserve_cb(void *arg, uint32_t seq, size_t n)
{
	struct conn *c = arg;
	struct nb_conn *nc = c->owner;
	size_t max = nc->lim.max_inflight, used;
	struct slot *s;

	if ((s = slot_for(c, seq)) == NULL)
		return -1;
	used = atomic_load(nc->inflight);
	do {
		if (max > 0 && (n > max || used > max - n))
			return -1;
	} while (!atomic_compare_exchange_weak(nc->inflight, &used, used + n));
	s->reserved += n;
	return 0;
}

static void
gate_refused_cb(void *arg, uint32_t seq, const struct nb_gate_head *h,
    const struct nb_gate_refusal *r, int close, size_t body)
{
	struct conn *c = arg;
	struct nb_conn *nc = c->owner;
	struct slot *s;

	if ((s = slot_for(c, seq)) != NULL) {
		s->refused = 1;
		s->close = close;
		s->r = *r;
	}
	if (nc->policy.refused != NULL)
		nc->policy.refused(nc->policy.arg, h, r, body);
}

/*
 * The usual case: in holds only new bytes, and the gate hands them all on
 * as they are (a head read in one piece, then its body), so nothing moves.
 * At the gate's first other answer the bytes handed on so far stay in in,
 * those it used are dropped, its output follows, and the rest goes to
 * nc->hold for gate_run().
 */
static void
gate_in_place(struct conn *c, struct evbuffer *in)
{
	struct nb_conn *nc = c->owner;
	struct evbuffer_ptr pos;
	struct evbuffer_iovec v;
	enum nb_gate_act act;
	const char *out;
	size_t off = 0, len = evbuffer_get_length(in), n, olen;

	if (evbuffer_ptr_set(in, &pos, 0, EVBUFFER_PTR_SET) == -1)
		len = 0;
	while (off < len) {
		if (evbuffer_peek(in, -1, &pos, &v, 1) < 1 || v.iov_len == 0)
			break;
		act = nb_gate_feed(c->gate, v.iov_base, v.iov_len, &n);
		if (act == NB_GATE_PASS && !c->overflow) {
			off += n;
			if (off < len &&
			    evbuffer_ptr_set(in, &pos, n, EVBUFFER_PTR_ADD) ==
				-1)
				break;
			continue;
		}
		evbuffer_remove_buffer(in, nc->tmp, off);
		evbuffer_drain(in, n);
		evbuffer_add_buffer(nc->hold, in);
		evbuffer_add_buffer(in, nc->tmp);
		if ((out = nb_gate_output(c->gate, &olen)) != NULL &&
		    evbuffer_add(in, out, olen) == -1)
			c->overflow = 1;
		if (act == NB_GATE_CLOSE)
			c->gate_closed = 1;
		return;
	}
	if (off < len) {
		/* Cannot look at the rest where it is: move it. */
		evbuffer_remove_buffer(in, nc->tmp, off);
		evbuffer_add_buffer(nc->hold, in);
		evbuffer_add_buffer(in, nc->tmp);
	}
}

/* Feeds what is in nc->hold to c's gate; what it hands on goes to in. */
static void
gate_run(struct conn *c, struct evbuffer *in)
{
	struct nb_conn *nc = c->owner;
	struct evbuffer_iovec v;
	enum nb_gate_act act;
	const char *out;
	size_t len, n, olen;

	while (!c->gate_closed && !c->overflow &&
	    (len = evbuffer_get_length(nc->hold)) > 0) {
		if (evbuffer_peek(nc->hold, -1, NULL, &v, 1) < 1 ||
		    v.iov_len == 0) {
			v.iov_len = len < CONN_PEEK_MAX ? len : CONN_PEEK_MAX;
			v.iov_base =
			    evbuffer_pullup(nc->hold, (ev_ssize_t)v.iov_len);
			if (v.iov_base == NULL) {
				c->overflow = 1;
				break;
			}
		}
		act = nb_gate_feed(c->gate, v.iov_base, v.iov_len, &n);
		if (c->overflow)
			break; /* a stand-in without its slot: close instead */
		if (act == NB_GATE_PASS)
			evbuffer_remove_buffer(nc->hold, in, n);
		else
			evbuffer_drain(nc->hold, n);
		if ((out = nb_gate_output(c->gate, &olen)) != NULL &&
		    evbuffer_add(in, out, olen) == -1)
			c->overflow = 1;
		if (act == NB_GATE_CLOSE)
			c->gate_closed = 1;
	}
	while (!c->overflow && c->next_seq < nb_gate_handed(c->gate))
		slot_for(c, c->next_seq);
	if (c->overflow) {
		if (!c->gate_closed) {
			nc->overflowed++;
			summary(nc);
		}
		c->gate_closed = 1;
	}
	if (c->gate_closed) {
		evbuffer_drain(nc->hold, evbuffer_get_length(nc->hold));
		/* Nothing waits for an answer: end it now. */
		if (c->qlen == 0 && !c->busy)
			hang_up(c);
	}
}

/*
 * The input buffer's callback: runs right after bytes were added (by a
 * socket read or by OpenSSL), before evhttp's read callback.  The bytes
 * before the new ones were handed on earlier and stay where they are.
 */
static void
input_cb(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;
	struct nb_conn *nc = c->owner;
	size_t len, before;

	if (info->n_added == 0 || c->in_gate)
		return;
	c->in_gate = 1;
	len = evbuffer_get_length(in);
	before = info->n_added < len ? len - info->n_added : 0;
	if (before == 0 && !c->reject && c->gate != NULL && !c->gate_closed)
		gate_in_place(c, in);
	else {
		if (before > 0)
			evbuffer_remove_buffer(in, nc->tmp, before);
		evbuffer_add_buffer(nc->hold, in);
		if (before > 0)
			evbuffer_add_buffer(in, nc->tmp);
	}
	if (c->reject || c->gate == NULL)
		evbuffer_drain(nc->hold, evbuffer_get_length(nc->hold));
	else
		gate_run(c, in);
	c->in_gate = 0;
}

static void
close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct conn *c = arg;

	evhttp_connection_set_closecb(evcon, NULL, NULL);
	conn_release(c->owner, c, 1);
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
		conn_release(nc, c, 1);
		return;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	if (nc->byfd[c->fd] != NULL) {
		log_warn("dropping the record of a connection closed unseen",
		    " fd=%d", (int)c->fd);
		conn_release(nc, nc->byfd[c->fd], 0);
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

/* Input of a connection we could not record: evhttp never sees a byte. */
static void
drop_input_cb(
    struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	(void)arg;
	if (info->n_added > 0)
		evbuffer_drain(in, evbuffer_get_length(in));
}

static struct bufferevent *
new_bev(struct nb_conn *nc, struct event_base *base, int *failed_tls)
{
	struct bufferevent *bev = NULL;

	*failed_tls = 0;
	if (nc->tls != NULL && (bev = nb_tls_bev_new(nc->tls, base)) == NULL)
		*failed_tls = 1; /* no plain text on a TLS port */
	if (bev == NULL)
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	return bev;
}

static struct bufferevent *
bev_cb(struct event_base *base, void *arg)
{
	struct nb_conn *nc = arg;
	struct nb_gate_hooks hooks;
	struct bufferevent *bev;
	struct conn *c;
	size_t open_now;
	int failed_tls;

	if ((bev = new_bev(nc, base, &failed_tls)) == NULL)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		/* Untracked: it gets nothing through and times out. */
		evbuffer_add_cb(
		    bufferevent_get_input(bev), drop_input_cb, NULL);
		return bev;
	}
	c->owner = nc;
	c->bev = bev;
	c->fd = -1;
	c->reject = failed_tls;
	hooks.head = gate_head_cb;
	hooks.reserve = gate_reserve_cb;
	hooks.refused = gate_refused_cb;
	hooks.arg = c;
	c->incb = evbuffer_add_cb(bufferevent_get_input(bev), input_cb, c);
	if (c->incb == NULL ||
	    (c->gate = nb_gate_new(&nc->lim.gate, &hooks)) == NULL)
		c->reject = 1;
	nc->count++;
	open_now =
	    nc->total != NULL ? atomic_fetch_add(nc->total, 1) + 1 : nc->count;
	if (nc->lim.max_conns > 0 && open_now > nc->lim.max_conns)
		c->reject = 1;
	c->next = nc->pending;
	nc->pending = c;
	event_active(nc->adopt, EV_TIMEOUT, 0);
	return bev;
}

struct nb_conn *
nb_conn_new(struct event_base *base, struct evhttp *evh,
    const struct nb_conn_policy *policy)
{
	struct nb_conn *nc;
	struct timeval tv = {CONN_LINGER_S, 0};

	if ((nc = calloc(1, sizeof(*nc))) == NULL)
		return NULL;
	nc->base = base;
	nc->evh = evh;
	nc->policy = *policy;
	atomic_init(&nc->own_inflight, 0);
	nc->inflight = &nc->own_inflight;
	nc->linger_tv = event_base_init_common_timeout(base, &tv);
	nc->adopt = event_new(base, -1, 0, adopt_cb, nc);
	nc->hold = evbuffer_new();
	nc->tmp = evbuffer_new();
	if (nc->adopt == NULL || nc->hold == NULL || nc->tmp == NULL) {
		nb_conn_free(nc);
		return NULL;
	}
	evhttp_set_bevcb(evh, bev_cb, nc);
	return nc;
}

void
nb_conn_set_limits(struct nb_conn *nc, const struct nb_conn_limits *l)
{
	struct timeval tv;
	size_t i;

	if (l->request_timeout_s != nc->lim.request_timeout_s ||
	    nc->timeout_tv == NULL) {
		tv.tv_sec = l->request_timeout_s;
		tv.tv_usec = 0;
		/* One queue for thousands of equal timeouts (O(1) each). */
		nc->timeout_tv = l->request_timeout_s > 0
		    ? event_base_init_common_timeout(nc->base, &tv)
		    : NULL;
	}
	nc->lim = *l;
	for (i = 0; i < nc->nbyfd; i++)
		if (nc->byfd[i] != NULL && nc->byfd[i]->gate != NULL)
			nb_gate_set_limits(nc->byfd[i]->gate, &l->gate);
}

void
nb_conn_share(struct nb_conn *nc, atomic_size_t *total, atomic_size_t *inflight)
{
	nc->total = total;
	if (inflight != NULL)
		nc->inflight = inflight;
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
	int close;

	if ((c = lookup(nc, evhttp_request_get_connection(req))) == NULL)
		return;
	c->busy = 0;
	close = slots_done(c, c->cur_seq);
	if (c->gate_closed && c->qlen == 0) {
		hang_up(c);
		return;
	}
	if (close && !c->lingering && same_socket(c)) {
		/* The answer is written: let the client read it, then stop. */
		c->lingering = 1;
		shutdown(c->fd, SHUT_WR);
		if (c->deadline != NULL)
			event_add(c->deadline, nc->linger_tv);
		return;
	}
	arm(nc, c);
}

int
nb_conn_request(struct nb_conn *nc, struct evhttp_request *req,
    struct nb_gate_refusal *r, int *close)
{
	struct conn *c;
	struct slot *s;
	size_t i;

	if (nc == NULL ||
	    (c = lookup(nc, evhttp_request_get_connection(req))) == NULL)
		return 0;
	c->busy = 1;
	if (c->deadline != NULL)
		event_del(c->deadline);
	c->cur_seq = c->disp_seq++;
	evhttp_request_set_on_complete_cb(req, complete_cb, nc);
	for (i = 0; i < c->qlen; i++) {
		s = &c->q[(c->qhead + i) % CONN_QUEUE];
		if (s->seq == c->cur_seq && s->refused) {
			*r = s->r;
			*close = s->close;
			return 1;
		}
	}
	return 0;
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
	/* evhttp_free() came first: the bufferevents are gone. */
	for (c = nc->pending; c != NULL; c = next) {
		next = c->next;
		conn_release(nc, c, 0);
	}
	for (i = 0; i < nc->nbyfd; i++) {
		if (nc->byfd[i] != NULL)
			conn_release(nc, nc->byfd[i], 0);
	}
	free(nc->byfd);
	if (nc->adopt != NULL)
		event_free(nc->adopt);
	if (nc->hold != NULL)
		evbuffer_free(nc->hold);
	if (nc->tmp != NULL)
		evbuffer_free(nc->tmp);
	nb_tls_free(nc->tls);
	free(nc);
}
