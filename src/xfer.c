/* SPDX-License-Identifier: ISC */
/*
 * xfer: libcurl multi-socket glue (after hiperfifo.c) and the transfers.
 *
 * sock_cb() maps curl's interest in a socket onto a libevent event,
 * timer_cb() arms one libevent timer; both event callbacks hand the
 * activity to curl_multi_socket_action() and then collect finished
 * transfers in check_done().  A transfer is on the engine's list from
 * nb_xfer_start() until its callback has returned; it is freed right
 * after, never inside the callback.  Header values are captured as they
 * arrive (a new status line forgets those of an interim answer) and parsed
 * once at the end by policy.h.  Secrets (a bearer token, a body marked
 * wipe) are overwritten before their memory is freed, including the
 * copies in the header list.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <sodium.h>

#include "nudgebridge/buf.h"
#include "nudgebridge/gzip.h"
#include "nudgebridge/log.h"
#include "nudgebridge/policy.h"
#include "nudgebridge/timeutil.h"
#include "nudgebridge/xfer.h"

#define HEADER_VALUE_MAX 64 /* Retry-After, X-RateLimit-Reset, Date */
#define BEARER_MAX	 8192

struct nb_xfer_multi {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	int running;
	struct nb_gzip *gzip;
	struct nb_xfer *head;
	size_t n;
};

struct nb_xfer {
	struct nb_xfer_multi *mx;
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	size_t bodylen;
	size_t rawlen; /* before compression */
	int wipe;
	struct nb_buf answer;
	int truncated;
	char retry_after[HEADER_VALUE_MAX];
	char reset[HEADER_VALUE_MAX];
	char date[HEADER_VALUE_MAX];
	int64_t start_mono_ms;
	nb_xfer_done_cb done;
	void *arg;
	char errbuf[CURL_ERROR_SIZE];
	struct nb_xfer *prev;
	struct nb_xfer *next;
};

struct sock {
	curl_socket_t fd;
	struct event *ev;
};

static void
drop_body(char *body, size_t len, int wipe)
{
	if (body != NULL && wipe)
		sodium_memzero(body, len);
	free(body);
}

static void
wipe_slist(struct curl_slist *h)
{
	struct curl_slist *p;

	for (p = h; p != NULL; p = p->next)
		sodium_memzero(p->data, strlen(p->data));
	curl_slist_free_all(h);
}

static void
xfer_free(struct nb_xfer *x)
{
	if (x == NULL)
		return;
	if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
	wipe_slist(x->headers);
	drop_body(x->body, x->bodylen, x->wipe);
	nb_buf_free(&x->answer);
	free(x);
}

static void
xfer_unlink(struct nb_xfer *x)
{
	struct nb_xfer_multi *mx = x->mx;

	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		mx->head = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
	mx->n--;
}

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct nb_xfer *x = arg;
	size_t len = size * nmemb, room;

	room = x->answer.max - x->answer.len;
	if (len > room)
		x->truncated = 1;
	if (room > 0)
		(void)nb_buf_add(&x->answer, ptr, len < room ? len : room);
	return len;
}

/* Copies the value of "name: value" when line is that header. */
static void
capture(const char *line, size_t len, const char *name, char *out)
{
	size_t n = strlen(name);

	if (len <= n || strncasecmp(line, name, n) != 0)
		return;
	line += n;
	len -= n;
	if (len >= HEADER_VALUE_MAX)
		len = HEADER_VALUE_MAX - 1;
	memcpy(out, line, len);
	out[len] = '\0';
}

static size_t
header_cb(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct nb_xfer *x = arg;
	size_t len = size * nmemb;

	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		/* A new answer begins (after a 100 or a redirect). */
		x->retry_after[0] = x->reset[0] = x->date[0] = '\0';
		return len;
	}
	capture(buf, len, "retry-after:", x->retry_after);
	capture(buf, len, "x-ratelimit-reset:", x->reset);
	capture(buf, len, "date:", x->date);
	return len;
}

/* Appends "name: value" (name ends with its colon) to the header list. */
static int
add_header(struct nb_xfer *x, const char *name, const char *value)
{
	struct curl_slist *h;
	char line[BEARER_MAX + 64];
	size_t n = strlen(name), v = strlen(value);

	if (n + 1 + v >= sizeof(line))
		return -1;
	memcpy(line, name, n);
	line[n] = v > 0 ? ' ' : '\0';
	memcpy(line + n + (v > 0), value, v);
	line[n + (v > 0) + v] = '\0';
	h = curl_slist_append(x->headers, line);
	sodium_memzero(line, n + 1 + v);
	if (h == NULL)
		return -1;
	x->headers = h;
	return 0;
}

/* The body, gzipped when asked; the raw body is freed (wiped) here. */
static int
xfer_body(struct nb_xfer *x, const struct nb_xfer_request *req, char *body,
    size_t len)
{
	struct nb_buf z;
	int rc = -1;

	x->rawlen = len;
	if (!req->gzip) {
		x->body = body;
		x->bodylen = len;
		return 0;
	}
	nb_buf_init(&z, len + len / 8 + 1024);
	if ((x->mx->gzip != NULL ||
		(x->mx->gzip = nb_gzip_new(NB_GZIP_LEVEL)) != NULL) &&
	    nb_gzip_compress(x->mx->gzip, body, len, &z) == 0) {
		x->bodylen = z.len;
		/* It waits for its answer: its size, not deflate's bound. */
		x->body = req->wipe ? nb_buf_steal(&z, NULL)
				    : nb_buf_steal_fit(&z, NULL);
		if (x->body != NULL)
			rc = 0;
	}
	nb_buf_free(&z);
	drop_body(body, len, req->wipe);
	return rc;
}

static int
xfer_setopts(struct nb_xfer *x, const struct nb_xfer_request *req)
{
	CURL *e = x->easy;

	if (req->basic_user != NULL &&
	    (curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) !=
		    CURLE_OK ||
		curl_easy_setopt(e, CURLOPT_USERNAME, req->basic_user) !=
		    CURLE_OK ||
		curl_easy_setopt(e, CURLOPT_PASSWORD, "") != CURLE_OK))
		return -1;
	if (curl_easy_setopt(e, CURLOPT_URL, req->url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, x) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") !=
		CURLE_OK ||
#else
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS,
		(long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK ||
#endif
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT, "nudgebridge/" NB_VERSION) !=
		CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		(curl_off_t)x->bodylen) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms) !=
		CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, x) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb) !=
		CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, x) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf) != CURLE_OK)
		return -1;
	return 0;
}

int
nb_xfer_start(struct nb_xfer_multi *mx, const struct nb_xfer_request *req,
    char *body, size_t len, nb_xfer_done_cb done, void *arg)
{
	struct curl_slist *h;
	struct nb_xfer *x;
	size_t i;

	if ((x = calloc(1, sizeof(*x))) == NULL) {
		drop_body(body, len, req->wipe);
		goto fail;
	}
	x->mx = mx;
	x->wipe = req->wipe;
	x->done = done;
	x->arg = arg;
	nb_buf_init(&x->answer, req->keep);
	if (xfer_body(x, req, body, len) == -1 ||
	    (x->easy = curl_easy_init()) == NULL ||
	    add_header(x, "Content-Type:", req->content_type) == -1 ||
	    add_header(x, "Expect:", "") == -1 ||
	    (req->gzip && add_header(x, "Content-Encoding:", "gzip") == -1) ||
	    (req->bearer != NULL &&
		add_header(x, "Authorization: Bearer", req->bearer) == -1))
		goto fail;
	for (i = 0; i < req->nheaders; i++) {
		if ((h = curl_slist_append(x->headers, req->headers[i])) ==
		    NULL)
			goto fail;
		x->headers = h;
	}
	if (xfer_setopts(x, req) == -1)
		goto fail;
	x->start_mono_ms = nb_time_mono_ms();
	if (curl_multi_add_handle(mx->multi, x->easy) != CURLM_OK)
		goto fail;
	x->next = mx->head;
	if (mx->head != NULL)
		mx->head->prev = x;
	mx->head = x;
	mx->n++;
	return 0;
fail:
	log_error("cannot start a request", " body_bytes=%zu", len);
	xfer_free(x);
	return -1;
}

static int64_t
date_ms(const char *v)
{
	char buf[HEADER_VALUE_MAX];
	size_t len = strlen(v);
	time_t t;

	while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n'))
		len--;
	while (len > 0 && *v == ' ') {
		v++;
		len--;
	}
	memcpy(buf, v, len);
	buf[len] = '\0';
	if (len == 0 || (t = curl_getdate(buf, NULL)) <= 0)
		return 0;
	return (int64_t)t * 1000;
}

/* Runs x's callback with how it ended, then frees it. */
static void
xfer_end(struct nb_xfer *x, CURLcode res, int canceled)
{
	struct nb_xfer_answer a;

	memset(&a, 0, sizeof(a));
	a.canceled = canceled;
	a.now_ms = nb_time_now_ms();
	if (!canceled && res == CURLE_OK)
		(void)curl_easy_getinfo(
		    x->easy, CURLINFO_RESPONSE_CODE, &a.status);
	a.timed_out = res == CURLE_OPERATION_TIMEDOUT;
	a.error = canceled ? "canceled" : curl_easy_strerror(res);
	a.retry_after_ms = nb_policy_retry_after_ms(
	    x->retry_after, strlen(x->retry_after), a.now_ms);
	a.reset_ms =
	    nb_policy_ratelimit_reset_ms(x->reset, strlen(x->reset), a.now_ms);
	a.date_ms = date_ms(x->date);
	a.seconds = (double)(nb_time_mono_ms() - x->start_mono_ms) / 1000.0;
	a.sent_bytes = x->bodylen;
	a.body_bytes = x->rawlen;
	a.body = nb_buf_str(&x->answer);
	a.bodylen = x->answer.len;
	a.truncated = x->truncated;
	x->done(&a, x->arg);
	xfer_free(x);
}

static void
check_done(struct nb_xfer_multi *mx)
{
	struct nb_xfer *x;
	CURLMsg *msg;
	char *priv;
	int left;

	while ((msg = curl_multi_info_read(mx->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		priv = NULL;
		(void)curl_easy_getinfo(
		    msg->easy_handle, CURLINFO_PRIVATE, &priv);
		x = (struct nb_xfer *)priv;
		(void)curl_multi_remove_handle(mx->multi, msg->easy_handle);
		if (x == NULL)
			continue;
		xfer_unlink(x);
		xfer_end(x, msg->data.result, 0);
	}
}

static void
sock_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_xfer_multi *mx = arg;
	int action;

	action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
	    ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	(void)curl_multi_socket_action(mx->multi, fd, action, &mx->running);
	check_done(mx);
	if (mx->running <= 0)
		evtimer_del(mx->timer);
}

static int
sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *sockp)
{
	struct nb_xfer_multi *mx = userp;
	struct sock *sk = sockp;
	short kind;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (sk != NULL) {
			event_free(sk->ev);
			free(sk);
		}
		return 0;
	}
	if (sk == NULL) {
		if ((sk = calloc(1, sizeof(*sk))) == NULL)
			return -1;
		sk->fd = s;
		(void)curl_multi_assign(mx->multi, s, sk);
	}
	if (sk->ev != NULL) {
		event_free(sk->ev);
		sk->ev = NULL;
	}
	kind = ((what & CURL_POLL_IN) ? EV_READ : 0) |
	    ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST;
	if ((sk->ev = event_new(mx->base, s, kind, sock_event_cb, mx)) ==
		NULL ||
	    event_add(sk->ev, NULL) == -1)
		return -1;
	return 0;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct nb_xfer_multi *mx = userp;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0)
		return evtimer_del(mx->timer);
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(mx->timer, &tv);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_xfer_multi *mx = arg;

	(void)fd;
	(void)what;
	(void)curl_multi_socket_action(
	    mx->multi, CURL_SOCKET_TIMEOUT, 0, &mx->running);
	check_done(mx);
}

struct nb_xfer_multi *
nb_xfer_multi_new(struct event_base *base, char *err, size_t errlen)
{
	struct nb_xfer_multi *mx;

	if ((mx = calloc(1, sizeof(*mx))) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		return NULL;
	}
	mx->base = base;
	if ((mx->timer = evtimer_new(base, timeout_cb, mx)) == NULL ||
	    (mx->multi = curl_multi_init()) == NULL ||
	    curl_multi_setopt(mx->multi, CURLMOPT_SOCKETFUNCTION, sock_cb) !=
		CURLM_OK ||
	    curl_multi_setopt(mx->multi, CURLMOPT_SOCKETDATA, mx) != CURLM_OK ||
	    curl_multi_setopt(mx->multi, CURLMOPT_TIMERFUNCTION, timer_cb) !=
		CURLM_OK ||
	    curl_multi_setopt(mx->multi, CURLMOPT_TIMERDATA, mx) != CURLM_OK ||
	    curl_multi_setopt(mx->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
		(long)NB_XFER_MAX_CONNECTIONS) != CURLM_OK ||
	    curl_multi_setopt(mx->multi, CURLMOPT_MAXCONNECTS,
		(long)NB_XFER_MAX_CONNECTIONS) != CURLM_OK) {
		(void)snprintf(err, errlen, "cannot set up libcurl");
		nb_xfer_multi_free(mx);
		return NULL;
	}
	return mx;
}

size_t
nb_xfer_multi_count(const struct nb_xfer_multi *mx)
{
	return mx->n;
}

void
nb_xfer_multi_cancel_all(struct nb_xfer_multi *mx)
{
	struct nb_xfer *list = mx->head, *x;

	mx->head = NULL;
	mx->n = 0;
	while ((x = list) != NULL) {
		list = x->next;
		x->prev = x->next = NULL;
		(void)curl_multi_remove_handle(mx->multi, x->easy);
		xfer_end(x, CURLE_OK, 1);
	}
}

void
nb_xfer_multi_free(struct nb_xfer_multi *mx)
{
	if (mx == NULL)
		return;
	nb_xfer_multi_cancel_all(mx);
	if (mx->multi != NULL)
		curl_multi_cleanup(mx->multi);
	if (mx->timer != NULL)
		event_free(mx->timer);
	nb_gzip_free(mx->gzip);
	free(mx);
}
