/* SPDX-License-Identifier: ISC */
/*
 * httpd: an evhttp listener with the guard, the gate and accept back-off.
 *
 * evhttp calls one generic callback of ours for every request it parsed;
 * it first asks the guard whether the request is the gate's stand-in for a
 * refused one, and answers that itself (JSON, Allow and Retry-After as the
 * refusal says), else hands the request to the listener.  evhttp's own
 * limits are set beyond the gate's, so they never answer first.
 *
 * A refusal that ends the connection says "Connection: close " (one
 * trailing space: valid HTTP, and every client trims it) because evhttp
 * compares the header with "close" exactly and would otherwise close the
 * socket as soon as the answer is queued, resetting a client that is still
 * sending; the guard closes it itself after lingering (conn.c).
 *
 * When accept() fails with EMFILE or ENFILE, evconnlistener (2.1) logs and
 * returns with the listening socket still readable, so the loop spins.
 * The error callback here pauses the listener for a growing interval,
 * spends a reserve descriptor to accept and close the connection that
 * waits (its client learns at once instead of timing out), counts the
 * error in nudgebridge_accept_errors_total and logs at most once per
 * ACCEPT_LOG_MS.  libevent gives that callback the evhttp, not us, so
 * listeners are found in a small table under a lock.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "nudgebridge/conn.h"
#include "nudgebridge/httpd.h"
#include "nudgebridge/log.h"
#include "nudgebridge/metrics.h"
#include "nudgebridge/timeutil.h"

#define ACCEPT_LOG_MS  10000
#define LISTENERS_MAX  128 /* listeners that get the back-off */
#define EVHTTP_SLACK   65536
#define LISTEN_BACKLOG 511

struct nb_httpd {
	struct event_base *base;
	struct evhttp *evh;
	struct evhttp_bound_socket *sock;
	struct evconnlistener *lev;
	struct nb_conn *conns;
	struct nb_httpd_ops ops;
	int port;
	evutil_socket_t reserve_fd;
	struct event *resume;
	int pause_ms;
	int64_t last_error_ms, last_log_ms;
	size_t errors, shed; /* since the last log line */
	const char *reason;
};

static pthread_mutex_t listeners_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	struct evconnlistener *lev;
	struct nb_httpd *h;
} listeners[LISTENERS_MAX];

const char *
nb_httpd_status_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 417:
		return "Expectation Failed";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	default:
		return NULL;
	}
}

void
nb_httpd_send(struct evhttp_request *req, int status, struct evbuffer *body)
{
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
		body = NULL;
	evhttp_send_reply(req, status, nb_httpd_status_phrase(status), body);
}

void
nb_httpd_reply_text(
    struct evhttp_request *req, int status, const char *text, size_t len)
{
	static const char fallback[] =
	    "{\"error\":\"unavailable\",\"message\":\"out of memory\"}";
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	struct evbuffer *buf;
	char ra[16];

	evhttp_remove_header(oh, "Content-Type");
	evhttp_add_header(oh, "Content-Type", "application/json");
	evhttp_add_header(oh, "Cache-Control", "no-store");
	if ((buf = evbuffer_new()) == NULL)
		goto fail;
	if (text == NULL) {
		status = 503;
		if (evhttp_find_header(oh, "Retry-After") == NULL) {
			snprintf(ra, sizeof(ra), "%d", NB_HTTPD_RETRY_AFTER_S);
			evhttp_add_header(oh, "Retry-After", ra);
		}
		text = fallback;
		len = sizeof(fallback) - 1;
	}
	if (evbuffer_add(buf, text, len) == -1 ||
	    evbuffer_add(buf, "\n", 1) == -1)
		goto fail;
	nb_httpd_send(req, status, buf);
	evbuffer_free(buf);
	return;
fail:
	/* Answer anyway: evhttp_send_reply() with no body still frees req. */
	if (buf != NULL)
		evbuffer_free(buf);
	nb_httpd_send(req, 503, NULL);
}

void
nb_httpd_reply_json(struct evhttp_request *req, int status, json_t *body)
{
	char *text = NULL;

	if (body != NULL)
		text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	nb_httpd_reply_text(req, status, text, text != NULL ? strlen(text) : 0);
	free(text);
}

void
nb_httpd_reply_error(struct evhttp_request *req, int status, const char *code,
    const char *message)
{
	json_t *body;

	body = json_pack("{s:s, s:s}", "error", code, "message",
	    message != NULL ? message : "");
	nb_httpd_reply_json(req, status, body);
}

int
nb_httpd_split_addr(
    const char *addr, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon, *hs, *he;
	char *end;
	long long p;
	size_t n;

	if (addr == NULL || *addr == '\0')
		return -1;
	if (addr[0] == '[') {
		if ((he = strchr(addr, ']')) == NULL || he[1] != ':')
			return -1;
		hs = addr + 1;
		colon = he + 1;
	} else {
		if ((colon = strrchr(addr, ':')) == NULL)
			return -1;
		hs = addr;
		he = colon;
		/* An unbracketed IPv6 address is ambiguous. */
		if (memchr(hs, ':', (size_t)(he - hs)) != NULL)
			return -1;
	}
	n = (size_t)(he - hs);
	if (n == 0 || n >= hostlen)
		return -1;
	if (colon[1] < '0' || colon[1] > '9')
		return -1;
	errno = 0;
	p = strtoll(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || p < 0 || p > 65535)
		return -1;
	memcpy(host, hs, n);
	host[n] = '\0';
	*port = (uint16_t)p;
	return 0;
}

evutil_socket_t
nb_httpd_reuseport_socket(
    const char *addr, const char *host, int port, char *err, size_t errlen)
{
	struct evutil_addrinfo hints, *ai = NULL;
	char portstr[16];
	evutil_socket_t fd = -1;
	int one = 1, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((e = evutil_getaddrinfo(host, portstr, &hints, &ai)) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr,
		    evutil_gai_strerror(e));
		return -1;
	}
	fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
	if (fd == -1 || evutil_make_socket_nonblocking(fd) == -1 ||
	    evutil_make_socket_closeonexec(fd) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
	    bind(fd, ai->ai_addr, (socklen_t)ai->ai_addrlen) == -1 ||
	    listen(fd, LISTEN_BACKLOG) == -1) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr,
		    strerror(errno));
		if (fd != -1)
			evutil_closesocket(fd);
		fd = -1;
	}
	evutil_freeaddrinfo(ai);
	return fd;
}

/* The port of a bound socket, or -1. */
static int
bound_port(evutil_socket_t fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

/* Answers the gate's stand-in for a refused request. */
static void
reply_refusal(
    struct evhttp_request *req, const struct nb_gate_refusal *r, int close)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	char ra[16];

	if (r->allow != NULL)
		evhttp_add_header(oh, "Allow", r->allow);
	if (r->retry_after_s > 0) {
		snprintf(ra, sizeof(ra), "%d", r->retry_after_s);
		evhttp_add_header(oh, "Retry-After", ra);
	}
	/* The space keeps evhttp from closing before we linger: see top. */
	if (close)
		evhttp_add_header(oh, "Connection", "close ");
	nb_httpd_reply_error(req, r->status, r->code, r->message);
}

static void
httpd_cb(struct evhttp_request *req, void *arg)
{
	struct nb_httpd *h = arg;
	struct nb_gate_refusal r;
	int close = 0;

	if (nb_conn_request(h->conns, req, &r, &close) == 1) {
		reply_refusal(req, &r, close);
		return;
	}
	h->ops.request(req, h->ops.arg);
}

static struct nb_httpd *
listener_find(struct evconnlistener *lev)
{
	struct nb_httpd *h = NULL;
	size_t i;

	pthread_mutex_lock(&listeners_lock);
	for (i = 0; i < LISTENERS_MAX && h == NULL; i++)
		if (listeners[i].lev == lev)
			h = listeners[i].h;
	pthread_mutex_unlock(&listeners_lock);
	return h;
}

/* Registers (h non-NULL) or forgets lev.  0, or -1 when the table is full. */
static int
listener_set(struct evconnlistener *lev, struct nb_httpd *h)
{
	size_t i;
	int rc = -1;

	pthread_mutex_lock(&listeners_lock);
	for (i = 0; i < LISTENERS_MAX; i++) {
		if (h != NULL && listeners[i].lev == NULL) {
			listeners[i].lev = lev;
			listeners[i].h = h;
			rc = 0;
			break;
		}
		if (h == NULL && listeners[i].lev == lev) {
			listeners[i].lev = NULL;
			listeners[i].h = NULL;
			rc = 0;
		}
	}
	pthread_mutex_unlock(&listeners_lock);
	return rc;
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_httpd *h = arg;

	(void)fd;
	(void)what;
	/* Another thread may have taken the slot the last time round. */
	if (h->reserve_fd < 0)
		h->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (h->lev != NULL)
		evconnlistener_enable(h->lev);
}

/* Closes one waiting connection with the reserve descriptor's slot. */
static void
shed_one(struct nb_httpd *h)
{
	evutil_socket_t fd;

	if (h->reserve_fd < 0)
		return;
	close(h->reserve_fd);
	fd = accept(evconnlistener_get_fd(h->lev), NULL, NULL);
	if (fd >= 0) {
		close(fd);
		h->shed++;
	}
	h->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void
accept_error_cb(struct evconnlistener *lev, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	struct nb_httpd *h = listener_find(lev);
	struct timeval tv;
	int64_t now = nb_time_mono_ms();

	(void)arg;
	if (h == NULL)
		return;
	h->reason = err == EMFILE	      ? "emfile"
	    : err == ENFILE		      ? "enfile"
	    : err == ENOBUFS || err == ENOMEM ? "nomem"
					      : "other";
	nb_metrics_accept_error(h->ops.metrics, h->reason);
	h->errors++;
	evconnlistener_disable(lev);
	if (err == EMFILE || err == ENFILE)
		shed_one(h);
	if (h->pause_ms == 0 || now - h->last_error_ms > 2 * h->pause_ms)
		h->pause_ms = NB_HTTPD_ACCEPT_PAUSE_MIN_MS;
	else if ((h->pause_ms *= 2) > NB_HTTPD_ACCEPT_PAUSE_MAX_MS)
		h->pause_ms = NB_HTTPD_ACCEPT_PAUSE_MAX_MS;
	h->last_error_ms = now;
	tv.tv_sec = h->pause_ms / 1000;
	tv.tv_usec = (h->pause_ms % 1000) * 1000;
	event_add(h->resume, &tv);
	if (h->last_log_ms != 0 && now - h->last_log_ms < ACCEPT_LOG_MS)
		return;
	log_warn("cannot accept connections; pausing the listener",
	    " listener=%s reason=%s errno=%d errors=%zu closed_waiting=%zu "
	    "pause_ms=%d",
	    h->ops.name, h->reason, err, h->errors, h->shed, h->pause_ms);
	h->errors = h->shed = 0;
	h->last_log_ms = now;
}

static struct evhttp *
evhttp_make(struct event_base *base)
{
	struct evhttp *evh;

	if ((evh = evhttp_new(base)) == NULL)
		return NULL;
	/* Every method reaches us: the listeners answer 405 themselves. */
	evhttp_set_allowed_methods(evh,
	    EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
		EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
		EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(evh, "application/json");
	return evh;
}

static int
bind_or_adopt(struct nb_httpd *h, const char *addr, evutil_socket_t fd,
    char *err, size_t errlen)
{
	char host[256];
	uint16_t port;

	if (fd != -1) {
		h->sock = evhttp_accept_socket_with_handle(h->evh, fd);
		if (h->sock == NULL) {
			snprintf(err, errlen, "cannot listen on %s", addr);
			evutil_closesocket(fd);
			return -1;
		}
	} else {
		if (nb_httpd_split_addr(addr, host, sizeof(host), &port) ==
		    -1) {
			snprintf(
			    err, errlen, "%s: not a host:port address", addr);
			return -1;
		}
		h->sock = evhttp_bind_socket_with_handle(h->evh, host, port);
		if (h->sock == NULL) {
			snprintf(err, errlen, "cannot listen on %s: %s", addr,
			    strerror(errno));
			return -1;
		}
	}
	h->port = bound_port(evhttp_bound_socket_get_fd(h->sock));
	h->lev = evhttp_bound_socket_get_listener(h->sock);
	if (listener_set(h->lev, h) == 0)
		evconnlistener_set_error_cb(h->lev, accept_error_cb);
	return 0;
}

struct nb_httpd *
nb_httpd_new(struct event_base *base, const char *addr, evutil_socket_t fd,
    const struct nb_httpd_ops *ops, const struct nb_httpd_limits *l, char *err,
    size_t errlen)
{
	struct nb_conn_policy policy;
	struct nb_httpd *h;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, errlen, "out of memory");
		if (fd != -1)
			evutil_closesocket(fd);
		return NULL;
	}
	h->base = base;
	h->ops = *ops;
	h->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	policy.head = ops->head;
	policy.refused = ops->refused;
	policy.arg = ops->arg;
	if ((h->evh = evhttp_make(base)) == NULL ||
	    (h->conns = nb_conn_new(base, h->evh, &policy)) == NULL ||
	    (h->resume = event_new(base, -1, 0, resume_cb, h)) == NULL) {
		snprintf(err, errlen, "out of memory");
		if (fd != -1)
			evutil_closesocket(fd);
		nb_httpd_free(h);
		return NULL;
	}
	nb_conn_share(h->conns, ops->conns_total, ops->inflight);
	nb_httpd_set_limits(h, l);
	evhttp_set_gencb(h->evh, httpd_cb, h);
	if (bind_or_adopt(h, addr, fd, err, errlen) == -1) {
		nb_httpd_free(h);
		return NULL;
	}
	return h;
}

int
nb_httpd_port(const struct nb_httpd *h)
{
	return h->port;
}

void
nb_httpd_set_limits(struct nb_httpd *h, const struct nb_httpd_limits *l)
{
	struct nb_conn_limits cl;

	/* Beyond the gate's, so evhttp never answers first. */
	evhttp_set_max_headers_size(
	    h->evh, (ev_ssize_t)(l->max_header_bytes + EVHTTP_SLACK));
	evhttp_set_max_body_size(h->evh,
	    (ev_ssize_t)(l->max_body_bytes + l->max_body_bytes / 2 +
		EVHTTP_SLACK));
	if (l->read_timeout_s > 0)
		evhttp_set_timeout(h->evh, l->read_timeout_s);
	memset(&cl, 0, sizeof(cl));
	cl.max_conns = l->max_connections;
	cl.request_timeout_s = l->request_timeout_s;
	cl.max_inflight = l->max_inflight_body_bytes;
	cl.gate.max_head_bytes = l->max_header_bytes;
	cl.gate.max_body_bytes = l->max_body_bytes;
	cl.gate.too_large_message = l->too_large_message;
	cl.gate.retry_after_s = NB_HTTPD_RETRY_AFTER_S;
	nb_conn_set_limits(h->conns, &cl);
}

void
nb_httpd_set_tls(struct nb_httpd *h, struct nb_tls *tls)
{
	nb_conn_set_tls(h->conns, tls);
}

int
nb_httpd_tls(const struct nb_httpd *h)
{
	return nb_conn_tls(h->conns);
}

void
nb_httpd_stop_accepting(struct nb_httpd *h)
{
	if (h == NULL || h->sock == NULL)
		return;
	if (h->lev != NULL)
		listener_set(h->lev, NULL);
	if (h->resume != NULL)
		event_del(h->resume);
	evhttp_del_accept_socket(h->evh, h->sock);
	h->sock = NULL;
	h->lev = NULL;
}

void
nb_httpd_free(struct nb_httpd *h)
{
	if (h == NULL)
		return;
	nb_httpd_stop_accepting(h);
	if (h->evh != NULL)
		evhttp_free(h->evh);
	nb_conn_free(h->conns); /* after evhttp_free(): see conn.h */
	if (h->resume != NULL)
		event_free(h->resume);
	if (h->reserve_fd >= 0)
		close(h->reserve_fd);
	free(h);
}
