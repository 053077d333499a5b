/* SPDX-License-Identifier: ISC */
/*
 * http: the main listener.  Webhooks in, health and metrics out.
 *
 * A webhook runs the contract's checks in their fixed order (method, source,
 * size, content type, signature, payload), so an unsigned request learns
 * nothing about the payload rules.  A request that passes becomes one
 * struct nb_append owned by a per-request context and goes to the
 * committer; the answer is sent from the commit callback, never before the
 * events are durable.
 *
 * Lifetime of a waiting request: libevent 2.1 detaches (and does not free)
 * an incoming request the user has not answered yet when its connection
 * closes, and frees it on our later evhttp_send_reply().  evhttp_free() does
 * free unanswered requests, so nb_http_free() orphans the contexts still
 * waiting: their callback then frees the context without touching the
 * request.  Bodies above limits.max_body_bytes but below a hard cap are read
 * and answered with our JSON 413; evhttp answers bodies above the cap with
 * its own 413 page.
 *
 * Workers.  With http_threads = N the listener is N workers, each an evhttp
 * with its own listening socket on the same port (SO_REUSEPORT: the kernel
 * spreads connections over them), its own connection guard and TLS
 * context, and its own committer channel.  Worker 0 runs on the base it is
 * given (the main thread), exactly as a single listener does; workers 1..N-1
 * each run their own thread and base.  A worker's state (config, draining,
 * waiting list) is touched only on its thread: the main thread hands it a
 * new config or a drain or stop request under the listener's mutex and
 * wakes it with event_active().  The in-flight count is one atomic; the
 * connection limit one shared atomic total.  /metrics on worker 0 reads
 * stats through the main thread's store connection; other workers open a
 * connection of their own the first time they are asked.  Worker threads
 * start at the first turn of the main loop (after start-up, privileges
 * dropped) and stop in nb_http_stop(), before nb_committer_free() runs
 * their last completions.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "nudgebridge/conn.h"
#include "nudgebridge/http.h"
#include "nudgebridge/log.h"
#include "nudgebridge/nudgespot.h"
#include "nudgebridge/sig.h"
#include "nudgebridge/timeutil.h"
#include "nudgebridge/tls.h"

#define WEBHOOK_PREFIX	   "/v1/webhooks/"
#define BODY_CAP_MIN	   ((size_t)8 * 1024 * 1024)
#define BODY_CAP_FACTOR	   8
#define METRICS_MAX_PAUSED 256
#define LOG_ID_MAX	   80

/* One webhook waiting for its commit. */
struct wh_ctx {
	struct worker *w;	    /* NULL once orphaned by nb_http_free() */
	struct evhttp_request *req; /* valid while w != NULL */
	struct nb_config *cfg;	    /* the config the request ran under */
	struct nb_payload payload;
	struct nb_append app;
	char source[NB_SOURCE_NAME_MAX + 1];
	char *webhook_id;
	size_t bodylen;
	struct wh_ctx *prev, *next;
};

/* One evhttp and its listening socket; see the top of the file. */
struct worker {
	struct nb_http *h;
	size_t idx;
	struct event_base *base; /* deps.base for worker 0, else its own */
	struct evhttp *evh;
	struct evhttp_bound_socket *sock;
	struct nb_conn *conns;	     /* connection limit, deadlines, TLS */
	struct nb_commit_chan *chan; /* NULL for worker 0 */
	struct nb_store *store;	     /* /metrics of workers 1.., lazily */
	struct nb_config *cfg;
	int draining;
	struct wh_ctx *waiting; /* list of contexts in the committer */
	struct event *ctl;	/* runs ctl_cb: requests from the main thread */
	pthread_t thread;
	int started;
	/* Under h->lock. */
	struct nb_config *next_cfg;
	int drain_req, stop_req;
};

struct nb_http {
	struct nb_http_deps deps;
	struct worker *workers;
	size_t nworkers;
	int port;
	int draining;
	int lock_init;
	pthread_mutex_t lock;
	atomic_size_t inflight;
	atomic_size_t conns_total; /* shared by the workers' guards */
	struct event *start;	   /* starts the worker threads, on base */
};

static const char *
status_phrase(int status)
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
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return NULL;
	}
}

/*
 * evhttp writes a body even to HEAD, which breaks the framing of the next
 * answer on a kept-alive connection: drop it here.
 */
static void
send_reply(struct evhttp_request *req, int status, struct evbuffer *buf)
{
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
		buf = NULL;
	evhttp_send_reply(req, status, status_phrase(status), buf);
}

/*
 * Sends text (len bytes, without the final new line, which is added here)
 * as a JSON answer.  Without text (NULL: it could not be made), or without
 * memory for the buffer, the answer becomes a 503 so that the sender
 * retries.
 */
static void
reply_text(struct evhttp_request *req, int status, const char *text, size_t len)
{
	static const char fallback[] =
	    "{\"error\":\"unavailable\",\"message\":\"out of memory\"}";
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	struct evbuffer *buf;

	evhttp_remove_header(oh, "Content-Type");
	evhttp_add_header(oh, "Content-Type", "application/json");
	evhttp_add_header(oh, "Cache-Control", "no-store");
	if ((buf = evbuffer_new()) == NULL)
		goto fail;
	if (text == NULL) {
		status = 503;
		if (evhttp_find_header(oh, "Retry-After") == NULL)
			evhttp_add_header(oh, "Retry-After", "5");
		text = fallback;
		len = sizeof(fallback) - 1;
	}
	if (evbuffer_add(buf, text, len) == -1 ||
	    evbuffer_add(buf, "\n", 1) == -1)
		goto fail;
	send_reply(req, status, buf);
	evbuffer_free(buf);
	return;
fail:
	/* Answer anyway: evhttp_send_reply() with no body still frees req. */
	evbuffer_free(buf);
	send_reply(req, 503, NULL);
}

void
nb_http_reply_json(struct evhttp_request *req, int status, json_t *body)
{
	char *text = NULL;

	if (body != NULL)
		text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	reply_text(req, status, text, text != NULL ? strlen(text) : 0);
	free(text);
}

void
nb_http_reply_error(struct evhttp_request *req, int status, const char *code,
    const char *message)
{
	json_t *body;

	body = json_pack("{s:s, s:s}", "error", code, "message",
	    message != NULL ? message : "");
	nb_http_reply_json(req, status, body);
}

int
nb_http_split_addr(const char *addr, char *host, size_t hostlen, uint16_t *port)
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

/* Copies s for a log line: printable ASCII without quotes, bounded. */
static void
log_safe(char *out, size_t outlen, const char *s)
{
	size_t i;

	if (s == NULL || *s == '\0') {
		snprintf(out, outlen, "-");
		return;
	}
	for (i = 0; s[i] != '\0' && i + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] =
		    (c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=')
		    ? (char)c
		    : '?';
	}
	out[i] = '\0';
}

static void
log_webhook(const char *source, int status, const char *error,
    const char *webhook_id, size_t bodylen, size_t nevents,
    const struct nb_append *app)
{
	char id[LOG_ID_MAX];
	char src[NB_SOURCE_NAME_MAX + 1];

	log_safe(src, sizeof(src), source);
	log_safe(id, sizeof(id), webhook_id);
	if (app != NULL)
		log_info("webhook",
		    " source=%s status=%d webhook_id=%s bytes=%zu events=%zu"
		    " accepted=%d duplicates=%d quarantined=%d",
		    src, status, id, bodylen, nevents, app->accepted,
		    app->duplicates, app->quarantined);
	else
		log_info("webhook",
		    " source=%s status=%d error=%s webhook_id=%s bytes=%zu"
		    " events=%zu",
		    src, status, error != NULL ? error : "-", id, bodylen,
		    nevents);
}

/* Answers a webhook with an error, counting and logging it. */
static void
webhook_error(struct worker *w, struct evhttp_request *req, int status,
    const char *code, const char *message, const char *source,
    const char *webhook_id, size_t bodylen, size_t nevents)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	struct nb_http *h = w->h;

	if (status == 405)
		evhttp_add_header(oh, "Allow", "POST");
	if (status == 503)
		evhttp_add_header(oh, "Retry-After", "5");
	nb_metrics_request(h->deps.metrics, status, code);
	log_webhook(source, status, code, webhook_id, bodylen, nevents, NULL);
	nb_http_reply_error(req, status, code, message);
}

/*
 * 1 when the Content-Type's media type is application/json, whatever its
 * case, surrounding whitespace and parameters.
 */
static int
content_type_json(const char *ct)
{
	static const char want[] = "application/json";
	size_t n = sizeof(want) - 1;

	if (ct == NULL)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, want, n) != 0)
		return 0;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

static void
ctx_free(struct wh_ctx *c)
{
	if (c == NULL)
		return;
	nb_nudgespot_clear(&c->payload);
	free(c->webhook_id);
	nb_config_unref(c->cfg);
	free(c);
}

static void
ctx_unlink(struct worker *w, struct wh_ctx *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->waiting = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	atomic_fetch_sub(&w->h->inflight, 1);
}

static void
commit_cb(struct nb_append *app, int rc, void *arg)
{
	struct wh_ctx *c = arg;
	struct worker *w = c->w;
	struct nb_http *h;
	char text[96];
	int n;

	(void)app;
	if (w == NULL) {
		/* The listener is gone and so is the request. */
		ctx_free(c);
		return;
	}
	h = w->h;
	ctx_unlink(w, c);
	if (rc != 0) {
		webhook_error(w, c->req, 503, "unavailable",
		    "the event store cannot commit now; retry later", c->source,
		    c->webhook_id, c->bodylen, c->payload.nevents);
		ctx_free(c);
		return;
	}
	nb_metrics_request(h->deps.metrics, 200, NULL);
	nb_metrics_events(h->deps.metrics, c->app.accepted, c->app.duplicates,
	    c->app.quarantined);
	log_webhook(c->source, 200, NULL, c->webhook_id, c->bodylen,
	    c->payload.nevents, &c->app);
	/* The most frequent answer of all, written without jansson. */
	n = snprintf(text, sizeof(text),
	    "{\"accepted\":%d,\"duplicates\":%d,\"quarantined\":%d}",
	    c->app.accepted, c->app.duplicates, c->app.quarantined);
	reply_text(c->req, 200, n > 0 && (size_t)n < sizeof(text) ? text : NULL,
	    n > 0 ? (size_t)n : 0);
	ctx_free(c);
}

static void
handle_webhook(struct worker *w, struct evhttp_request *req, const char *name)
{
	struct nb_http *h = w->h;
	struct nb_config *cfg = w->cfg;
	const struct nb_source *src;
	struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct nb_sig_headers sh;
	static unsigned char empty[1];
	struct wh_ctx *c = NULL;
	enum nb_sig_result sr;
	enum nb_nudgespot_result pr;
	unsigned char *body;
	size_t len;
	int64_t now;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		webhook_error(w, req, 405, "method_not_allowed",
		    "webhooks must be POSTed", NULL, NULL, 0, 0);
		return;
	}
	if (!nb_config_source_name_valid(name) ||
	    (src = nb_config_source(cfg, name)) == NULL) {
		webhook_error(w, req, 404, "unknown_source",
		    "no source of that name is configured", NULL, NULL, 0, 0);
		return;
	}
	len = evbuffer_get_length(in);
	if (len > cfg->limits.max_body_bytes) {
		webhook_error(w, req, 413, "body_too_large",
		    "the body is larger than limits.max_body_bytes", name, NULL,
		    len, 0);
		return;
	}
	if (!content_type_json(evhttp_find_header(ih, "Content-Type"))) {
		webhook_error(w, req, 415, "unsupported_media_type",
		    "Content-Type must be application/json", name, NULL, len,
		    0);
		return;
	}
	sh.id = evhttp_find_header(ih, "webhook-id");
	sh.timestamp = evhttp_find_header(ih, "webhook-timestamp");
	sh.signature = evhttp_find_header(ih, "webhook-signature");
	if (sh.id == NULL && sh.timestamp == NULL && sh.signature == NULL) {
		sh.id = evhttp_find_header(ih, "svix-id");
		sh.timestamp = evhttp_find_header(ih, "svix-timestamp");
		sh.signature = evhttp_find_header(ih, "svix-signature");
	}
	body = len > 0 ? evbuffer_pullup(in, -1) : empty;
	if (body == NULL) {
		webhook_error(w, req, 503, "unavailable", "out of memory", name,
		    NULL, len, 0);
		return;
	}
	sr = nb_sig_verify(src->keys, &sh, body, len, time(NULL),
	    cfg->limits.timestamp_tolerance_s);
	if (sr == NB_SIG_NOMEM) {
		webhook_error(w, req, 503, "unavailable", "out of memory", name,
		    NULL, len, 0);
		return;
	}
	if (sr != NB_SIG_OK) {
		static const char *const msgs[] = {
		    [NB_SIG_MISSING] = "webhook-id, webhook-timestamp and "
				       "webhook-signature are required",
		    [NB_SIG_MALFORMED] = "the signature headers cannot be "
					 "parsed",
		    [NB_SIG_STALE] = "webhook-timestamp is outside the "
				     "tolerance window",
		    [NB_SIG_MISMATCH] = "no signature entry matched",
		};
		const char *msg =
		    (sr >= NB_SIG_MISSING && sr <= NB_SIG_MISMATCH)
		    ? msgs[sr]
		    : "bad signature";

		webhook_error(w, req, 401, nb_sig_result_str(sr), msg, name,
		    NULL, len, 0);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		webhook_error(w, req, 503, "unavailable", "out of memory", name,
		    sh.id, len, 0);
		return;
	}
	pr = nb_nudgespot_parse(&c->payload, (const char *)body, len);
	if (pr != NB_NUDGESPOT_OK) {
		if (pr == NB_NUDGESPOT_INVALID_JSON)
			webhook_error(w, req, 400, "invalid_json",
			    "the body is not valid JSON (UTF-8)", name, sh.id,
			    len, 0);
		else if (pr == NB_NUDGESPOT_INVALID_PAYLOAD)
			webhook_error(w, req, 400, "invalid_payload",
			    "the body must be an event object or an array of "
			    "1..1000 event objects",
			    name, sh.id, len, 0);
		else
			webhook_error(w, req, 503, "unavailable",
			    "out of memory", name, sh.id, len, 0);
		goto fail;
	}
	if (w->draining) {
		webhook_error(w, req, 503, "unavailable",
		    "shutting down; retry later", name, sh.id, len,
		    c->payload.nevents);
		goto fail;
	}
	if ((c->webhook_id = strdup(sh.id)) == NULL) {
		webhook_error(w, req, 503, "unavailable", "out of memory", name,
		    sh.id, len, c->payload.nevents);
		goto fail;
	}
	snprintf(c->source, sizeof(c->source), "%s", name);
	c->w = w;
	c->req = req;
	c->cfg = nb_config_ref(cfg);
	c->bodylen = len;
	now = nb_time_now_ms();
	c->app.source = c->source;
	c->app.webhook_id = c->webhook_id;
	c->app.events = c->payload.events;
	c->app.nevents = c->payload.nevents;
	c->app.received_ms = now;
	c->app.dedupe_after_ms = now - cfg->limits.dedupe_window_s * 1000;
	if ((w->chan != NULL
		    ? nb_committer_submit_on(w->chan, &c->app, commit_cb, c)
		    : nb_committer_submit(
			  h->deps.committer, &c->app, commit_cb, c)) == -1) {
		webhook_error(w, req, 503, "unavailable",
		    "the event store is busy or unavailable; retry later", name,
		    sh.id, len, c->payload.nevents);
		goto fail;
	}
	c->next = w->waiting;
	if (w->waiting != NULL)
		w->waiting->prev = c;
	w->waiting = c;
	atomic_fetch_add(&h->inflight, 1);
	return;
fail:
	ctx_free(c);
}

static int
method_get(struct evhttp_request *req)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);

	if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
		return 1;
	evhttp_add_header(
	    evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
	nb_http_reply_error(
	    req, 405, "method_not_allowed", "only GET is allowed here");
	return 0;
}

static void
handle_readyz(struct worker *w, struct evhttp_request *req)
{
	struct nb_http *h = w->h;
	const char *reason = NULL;

	if (w->draining)
		reason = "draining";
	else if (!nb_committer_healthy(h->deps.committer))
		reason = "store_unavailable";
	if (reason == NULL)
		nb_http_reply_json(
		    req, 200, json_pack("{s:s}", "status", "ready"));
	else
		nb_http_reply_json(req, 503,
		    json_pack(
			"{s:s, s:s}", "status", "not_ready", "reason", reason));
}

/*
 * The store connection /metrics may use on w's thread: the main thread's
 * for worker 0, else the worker's own, opened on first use.
 */
static struct nb_store *
metrics_store(struct worker *w)
{
	char err[512], qerr[600];

	if (w->idx == 0 || w->h->deps.store == NULL)
		return w->h->deps.store;
	if (w->store == NULL &&
	    nb_store_open(&w->store, &w->cfg->store, err, sizeof(err)) == -1) {
		log_warn("metrics: cannot open the store", " error=%s",
		    nb_log_quote(qerr, sizeof(qerr), err));
		w->store = NULL;
	}
	return w->store;
}

static void
handle_metrics(struct worker *w, struct evhttp_request *req)
{
	struct nb_http *h = w->h;
	struct nb_source_stats *stats = NULL;
	struct nb_paused paused[METRICS_MAX_PAUSED];
	struct evbuffer *buf = NULL;
	struct nb_store *store = metrics_store(w);
	size_t nstats = 0, npaused = 0;
	int64_t now = nb_time_now_ms();

	if (store != NULL &&
	    nb_store_stats(store, now, &stats, &nstats) == -1) {
		stats = NULL;
		nstats = 0;
	}
	if (h->deps.paused != NULL) {
		npaused = h->deps.paused(
		    h->deps.paused_arg, paused, METRICS_MAX_PAUSED);
		if (npaused > METRICS_MAX_PAUSED)
			npaused = METRICS_MAX_PAUSED;
	}
	if ((buf = evbuffer_new()) == NULL ||
	    nb_metrics_render(h->deps.metrics, stats, nstats, paused, npaused,
		now, buf) == -1) {
		nb_http_reply_error(
		    req, 503, "unavailable", "cannot render metrics");
		goto out;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	send_reply(req, 200, buf);
out:
	evbuffer_free(buf);
	free(stats);
}

static void
http_cb(struct evhttp_request *req, void *arg)
{
	struct worker *w = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;

	nb_conn_request(w->conns, req);
	if (path == NULL) {
		nb_http_reply_error(req, 404, "not_found", "no such path");
		return;
	}
	if (strncmp(path, WEBHOOK_PREFIX, sizeof(WEBHOOK_PREFIX) - 1) == 0) {
		handle_webhook(w, req, path + sizeof(WEBHOOK_PREFIX) - 1);
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		if (method_get(req))
			nb_http_reply_json(
			    req, 200, json_pack("{s:s}", "status", "ok"));
		return;
	}
	if (strcmp(path, "/readyz") == 0) {
		if (method_get(req))
			handle_readyz(w, req);
		return;
	}
	if (strcmp(path, "/metrics") == 0) {
		if (method_get(req))
			handle_metrics(w, req);
		return;
	}
	nb_http_reply_error(req, 404, "not_found", "no such path");
}

static void
apply_limits(struct worker *w, const struct nb_config *cfg)
{
	size_t cap = cfg->limits.max_body_bytes;

	cap = cap > BODY_CAP_MIN / BODY_CAP_FACTOR ? cap * BODY_CAP_FACTOR
						   : BODY_CAP_MIN;
	evhttp_set_max_body_size(w->evh, (ev_ssize_t)cap);
	if (cfg->limits.max_header_bytes > 0)
		evhttp_set_max_headers_size(
		    w->evh, (ev_ssize_t)cfg->limits.max_header_bytes);
	if (cfg->limits.read_timeout_s > 0)
		evhttp_set_timeout(w->evh, cfg->limits.read_timeout_s);
	nb_conn_set_limits(w->conns, cfg->limits.max_connections,
	    cfg->limits.request_timeout_s);
}

/*
 * Gives new connections the TLS context of cfg; old connections keep
 * theirs.  A context that does not build keeps the previous one.
 */
static int
apply_tls(
    struct worker *w, const struct nb_config *cfg, char *err, size_t errlen)
{
	struct nb_tls *tls;

	if (cfg->tls.cert_file == NULL)
		return 0;
	tls = nb_tls_new(cfg->tls.cert_file, cfg->tls.key_file, err, errlen);
	if (tls == NULL)
		return -1;
	if (w->idx == 0)
		log_info("tls certificate loaded", " %s", nb_tls_describe(tls));
	nb_conn_set_tls(w->conns, tls);
	return 0;
}

/* The port of a bound evhttp socket, or -1. */
static int
bound_port(struct evhttp_bound_socket *sock)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	evutil_socket_t fd = evhttp_bound_socket_get_fd(sock);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

/* An evhttp on base with the settings every listener of ours uses. */
static struct evhttp *
evhttp_make(struct event_base *base)
{
	struct evhttp *evh;

	if ((evh = evhttp_new(base)) == NULL)
		return NULL;
	evhttp_set_allowed_methods(evh,
	    EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
		EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
		EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(evh, "application/json");
	/* Read a too-long body to its end so the client sees the 413. */
	evhttp_set_flags(evh, EVHTTP_SERVER_LINGERING_CLOSE);
	return evh;
}

struct evhttp *
nb_http_listen(struct event_base *base, const char *addr,
    struct evhttp_bound_socket **sockp, int *portp, char *err, size_t errlen)
{
	struct evhttp *evh = NULL;
	char host[256];
	uint16_t port;

	if (nb_http_split_addr(addr, host, sizeof(host), &port) == -1) {
		snprintf(err, errlen, "%s: not a host:port address", addr);
		return NULL;
	}
	if ((evh = evhttp_make(base)) == NULL) {
		snprintf(err, errlen, "evhttp_new failed");
		return NULL;
	}
	if ((*sockp = evhttp_bind_socket_with_handle(evh, host, port)) ==
	    NULL) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr,
		    strerror(errno));
		evhttp_free(evh);
		return NULL;
	}
	*portp = bound_port(*sockp);
	return evh;
}

/*
 * A listening socket on host:port with SO_REUSEPORT, so that the sockets
 * of every worker share the port.  -1 with err set on failure.
 */
static evutil_socket_t
reuseport_socket(
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
	    listen(fd, 128) == -1) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr,
		    strerror(errno));
		if (fd != -1)
			evutil_closesocket(fd);
		fd = -1;
	}
	evutil_freeaddrinfo(ai);
	return fd;
}

/* Applies cfg on w's thread. */
static void
worker_reload(struct worker *w, struct nb_config *cfg)
{
	struct nb_config *old = w->cfg;
	char err[512], qerr[600];

	w->cfg = nb_config_ref(cfg);
	nb_config_unref(old);
	apply_limits(w, w->cfg);
	if ((cfg->tls.cert_file != NULL) != nb_conn_tls(w->conns)) {
		if (w->idx == 0)
			log_warn("turning tls on or off needs a restart", NULL);
	} else if (apply_tls(w, cfg, err, sizeof(err)) == -1)
		log_warn("tls reload failed; keeping the previous certificate",
		    " error=%s worker=%zu",
		    nb_log_quote(qerr, sizeof(qerr), err), w->idx);
}

/* Stops accepting on w's thread; open connections still get answers. */
static void
worker_drain(struct worker *w)
{
	if (w->draining)
		return;
	w->draining = 1;
	if (w->sock != NULL) {
		evhttp_del_accept_socket(w->evh, w->sock);
		w->sock = NULL;
	}
}

/* Requests from the main thread, run on w's thread. */
static void
ctl_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct nb_config *cfg;
	int drain, stop;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&w->h->lock);
	cfg = w->next_cfg;
	w->next_cfg = NULL;
	drain = w->drain_req;
	stop = w->stop_req;
	pthread_mutex_unlock(&w->h->lock);
	if (cfg != NULL) {
		worker_reload(w, cfg);
		nb_config_unref(cfg);
	}
	if (drain)
		worker_drain(w);
	if (stop)
		event_base_loopbreak(w->base);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* Wakes w's thread for what was just put under the lock. */
static void
worker_poke(struct worker *w)
{
	if (w->ctl != NULL)
		event_active(w->ctl, EV_READ, 0);
}

/* Frees what worker_init() built; the thread must not run. */
static void
worker_free(struct worker *w)
{
	struct wh_ctx *c, *next;

	for (c = w->waiting; c != NULL; c = next) {
		next = c->next;
		c->w = NULL;
		c->req = NULL;
		c->prev = c->next = NULL;
	}
	w->waiting = NULL;
	if (w->evh != NULL)
		evhttp_free(w->evh);
	nb_conn_free(w->conns); /* after evhttp_free(): see conn.h */
	nb_store_close(w->store);
	if (w->ctl != NULL)
		event_free(w->ctl);
	nb_config_unref(w->cfg);
	nb_config_unref(w->next_cfg);
	if (w->idx > 0 && w->base != NULL)
		event_base_free(w->base);
}

/*
 * Builds worker w listening on fd (an evhttp_bound_socket of its own when
 * fd is -1: the single-listener case).
 */
static int
worker_init(struct worker *w, struct nb_config *cfg, evutil_socket_t fd,
    char *err, size_t errlen)
{
	struct nb_http *h = w->h;

	if (w->idx == 0)
		w->base = h->deps.base;
	else if ((w->base = event_base_new()) == NULL) {
		snprintf(err, errlen, "cannot create an event base");
		if (fd != -1)
			evutil_closesocket(fd);
		return -1;
	}
	if (fd == -1) {
		w->evh = nb_http_listen(
		    w->base, cfg->listen, &w->sock, &h->port, err, errlen);
		if (w->evh == NULL)
			return -1;
	} else {
		if ((w->evh = evhttp_make(w->base)) == NULL) {
			snprintf(err, errlen, "evhttp_new failed");
			evutil_closesocket(fd);
			return -1;
		}
		if ((w->sock = evhttp_accept_socket_with_handle(w->evh, fd)) ==
		    NULL) {
			snprintf(
			    err, errlen, "cannot listen on %s", cfg->listen);
			evutil_closesocket(fd);
			return -1;
		}
	}
	if ((w->conns = nb_conn_new(w->base, w->evh)) == NULL ||
	    (w->ctl = event_new(w->base, -1, 0, ctl_cb, w)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (h->nworkers > 1)
		nb_conn_share_total(w->conns, &h->conns_total);
	if (apply_tls(w, cfg, err, errlen) == -1)
		return -1;
	w->cfg = nb_config_ref(cfg);
	apply_limits(w, cfg);
	evhttp_set_gencb(w->evh, http_cb, w);
	if (w->idx > 0 &&
	    (w->chan = nb_committer_attach(h->deps.committer, w->base)) ==
		NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * Starts the worker threads once the main loop runs, so that nothing is
 * served before the main thread has finished start-up (privileges are
 * dropped between nb_http_new() and the loop).  A worker whose thread does
 * not start stops listening; the others serve the port.
 */
static void
start_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_http *h = arg;
	size_t i;

	(void)fd;
	(void)what;
	for (i = 1; i < h->nworkers; i++) {
		struct worker *w = &h->workers[i];

		if (pthread_create(&w->thread, NULL, worker_main, w) == 0) {
			w->started = 1;
			continue;
		}
		log_error("cannot start an http thread", " worker=%zu", i);
		worker_drain(w);
	}
}

struct nb_http *
nb_http_new(const struct nb_http_deps *deps, struct nb_config *cfg, char *err,
    size_t errlen)
{
	struct nb_http *h, *ret = NULL;
	char host[256];
	uint16_t port;
	evutil_socket_t fd = -1;
	size_t i, n = cfg->http_threads > 0 ? cfg->http_threads : 1;

	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->workers = calloc(n, sizeof(*h->workers))) == NULL) {
		snprintf(err, errlen, "out of memory");
		free(h);
		return NULL;
	}
	h->deps = *deps;
	h->nworkers = n;
	atomic_init(&h->inflight, 0);
	atomic_init(&h->conns_total, 0);
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		snprintf(err, errlen, "cannot create a mutex");
		goto out;
	}
	h->lock_init = 1;
	if (n > 1 &&
	    nb_http_split_addr(cfg->listen, host, sizeof(host), &port) == -1) {
		snprintf(
		    err, errlen, "%s: not a host:port address", cfg->listen);
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct worker *w = &h->workers[i];

		w->h = h;
		w->idx = i;
		if (n > 1) {
			/* Port 0: the others join the port the first got. */
			fd = reuseport_socket(cfg->listen, host,
			    i == 0 ? port : h->port, err, errlen);
			if (fd == -1)
				goto out;
		}
		if (worker_init(w, cfg, fd, err, errlen) == -1)
			goto out;
		if (n > 1 && i == 0 && (h->port = bound_port(w->sock)) == -1) {
			snprintf(err, errlen, "cannot read the bound port");
			goto out;
		}
	}
	if (n > 1) {
		if ((h->start = event_new(deps->base, -1, 0, start_cb, h)) ==
		    NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		event_active(h->start, EV_TIMEOUT, 0);
	}
	ret = h;
	h = NULL;
out:
	if (h != NULL) {
		nb_http_stop(h);
		for (i = 0; i < h->nworkers; i++)
			nb_committer_detach(h->workers[i].chan);
		for (i = 0; i < h->nworkers; i++)
			worker_free(&h->workers[i]);
		if (h->lock_init)
			pthread_mutex_destroy(&h->lock);
		free(h->workers);
		free(h);
	}
	return ret;
}

int
nb_http_port(const struct nb_http *h)
{
	return h->port;
}

void
nb_http_reload(struct nb_http *h, struct nb_config *cfg)
{
	size_t i;

	if (cfg->http_threads != h->nworkers)
		log_warn("http_threads changes need a restart", NULL);
	worker_reload(&h->workers[0], cfg);
	for (i = 1; i < h->nworkers; i++) {
		struct worker *w = &h->workers[i];

		pthread_mutex_lock(&h->lock);
		nb_config_unref(w->next_cfg);
		w->next_cfg = nb_config_ref(cfg);
		pthread_mutex_unlock(&h->lock);
		worker_poke(w);
	}
}

void
nb_http_drain(struct nb_http *h)
{
	size_t i;

	if (h == NULL || h->draining)
		return;
	h->draining = 1;
	worker_drain(&h->workers[0]);
	for (i = 1; i < h->nworkers; i++) {
		pthread_mutex_lock(&h->lock);
		h->workers[i].drain_req = 1;
		pthread_mutex_unlock(&h->lock);
		worker_poke(&h->workers[i]);
	}
}

size_t
nb_http_inflight(const struct nb_http *h)
{
	return h != NULL ? atomic_load(&h->inflight) : 0;
}

void
nb_http_stop(struct nb_http *h)
{
	size_t i;

	if (h == NULL)
		return;
	if (h->start != NULL) {
		/* Never start them once stopping has begun. */
		event_free(h->start);
		h->start = NULL;
	}
	for (i = 1; i < h->nworkers; i++) {
		struct worker *w = &h->workers[i];

		if (!w->started)
			continue;
		pthread_mutex_lock(&h->lock);
		w->stop_req = 1;
		pthread_mutex_unlock(&h->lock);
		worker_poke(w);
		pthread_join(w->thread, NULL);
		w->started = 0;
	}
}

void
nb_http_free(struct nb_http *h)
{
	size_t i;

	if (h == NULL)
		return;
	nb_http_stop(h);
	for (i = 0; i < h->nworkers; i++)
		worker_free(&h->workers[i]);
	pthread_mutex_destroy(&h->lock);
	free(h->workers);
	free(h);
}
