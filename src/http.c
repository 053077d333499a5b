/* SPDX-License-Identifier: ISC */
/*
 * http: the main listener.  Webhooks in, health and metrics out.
 *
 * A webhook runs the contract's checks in their fixed order (method, source,
 * size, content type, signature, payload), so an unsigned request learns
 * nothing about the payload rules.  The first four need only the head: the
 * listener's gate policy (webhook_check(), see httpd.h) runs them as soon
 * as the head is in, so a refused request's body is never buffered; the
 * handler runs them again under its own configuration (a reload may have
 * come in between).  A request that passes becomes one struct nb_append
 * owned by a per-request context and goes to the committer; the answer is
 * sent from the commit callback, never before the events are durable.
 *
 * Lifetime of a waiting request: libevent 2.1 detaches (and does not free)
 * an incoming request the user has not answered yet when its connection
 * closes, and frees it on our later evhttp_send_reply().  evhttp_free() does
 * free unanswered requests, so nb_http_free() orphans the contexts still
 * waiting (webhooks in the committer, scrapes waiting for the board): their
 * callback then frees the context without touching the request, or never
 * runs.
 *
 * Workers.  With http_threads = N the listener is N workers, each an httpd
 * listener with its own listening socket on the same port (SO_REUSEPORT:
 * the kernel spreads connections over them), its own connection guard and
 * TLS context, and its own committer channel.  Worker 0 runs on the base it
 * is given (the main thread), exactly as a single listener does; workers
 * 1..N-1 each run their own thread and base.  A worker's state (config,
 * draining, waiting lists) is touched only on its thread: the main thread
 * hands it a new config or a drain or stop request under the listener's
 * mutex and wakes it with event_active().  The in-flight count is one
 * atomic; the connection limit and the body budget are shared atomic
 * totals.  /metrics asks the board (board.h) for queue figures and
 * answers when they come, so no store read ever runs here.  Worker
 * threads start at the first turn of the main loop (after start-up,
 * privileges dropped) and stop in nb_http_stop(), before
 * nb_commit_free() runs their last completions.
 */
#include <sys/queue.h>

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
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "nudgebridge/activity.h"
#include "nudgebridge/board.h"
#include "nudgebridge/commit.h"
#include "nudgebridge/config.h"
#include "nudgebridge/http.h"
#include "nudgebridge/httpd.h"
#include "nudgebridge/log.h"
#include "nudgebridge/metrics.h"
#include "nudgebridge/metrics_page.h"
#include "nudgebridge/nudgespot.h"
#include "nudgebridge/sig.h"
#include "nudgebridge/timeutil.h"
#include "nudgebridge/tls.h"

#define WEBHOOK_PREFIX	   "/v1/webhooks/"
#define WEBHOOK_PREFIX_LEN (sizeof(WEBHOOK_PREFIX) - 1)
#define LOG_ID_MAX	   80
#define TOO_LARGE_MESSAGE  "the body is larger than limits.max_body_bytes"

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
	size_t nevents; /* in the body, filtered ones included */
	int filtered;	/* events drop_types took; -1: the source has none */
	struct wh_ctx *prev, *next;
};

/* One /metrics request waiting for the board. */
struct scrape {
	struct worker *w;
	struct evhttp_request *req;
	struct nb_board_wait *wait;
	LIST_ENTRY(scrape) entry;
};

/* One listener; see the top of the file. */
struct worker {
	struct nb_http *h;
	size_t idx;
	struct event_base *base; /* deps.base for worker 0, else its own */
	struct nb_httpd *lst;
	struct nb_commit_chan *chan; /* NULL for worker 0 */
	struct nb_config *cfg;
	int draining;
	struct wh_ctx *waiting;	     /* contexts in the committer */
	LIST_HEAD(, scrape) scrapes; /* waiting for the board */
	struct event *ctl; /* runs ctl_cb: requests from the main thread */
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
	atomic_size_t body_bytes;  /* the body budget, likewise */
	struct event *start;	   /* starts the worker threads, on base */
};

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

/* filtered: the events drop_types took, or -1 when it is not set. */
static void
log_webhook(const char *source, int status, const char *error,
    const char *webhook_id, size_t bodylen, size_t nevents,
    const struct nb_append *app, int filtered)
{
	char id[LOG_ID_MAX];
	char src[NB_SOURCE_NAME_MAX + 1];

	log_safe(src, sizeof(src), source);
	log_safe(id, sizeof(id), webhook_id);
	if (app != NULL && filtered >= 0)
		log_info("webhook",
		    " source=%s status=%d webhook_id=%s bytes=%zu events=%zu"
		    " accepted=%d duplicates=%d quarantined=%d filtered=%d",
		    src, status, id, bodylen, nevents, app->accepted,
		    app->duplicates, app->quarantined, filtered);
	else if (app != NULL)
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
	char ra[16];

	if (status == 405)
		evhttp_add_header(oh, "Allow", "POST");
	if (status == 503) {
		snprintf(ra, sizeof(ra), "%d", NB_HTTPD_RETRY_AFTER_S);
		evhttp_add_header(oh, "Retry-After", ra);
	}
	nb_metrics_request(w->h->deps.metrics, status, code);
	log_webhook(
	    source, status, code, webhook_id, bodylen, nevents, NULL, -1);
	nb_httpd_reply_error(req, status, code, message);
}

/*
 * 1 when the Content-Type's media type is application/json, whatever its
 * case, surrounding whitespace and parameters.
 */
static int
content_type_json(const char *ct, size_t n)
{
	static const char want[] = "application/json";
	size_t k = sizeof(want) - 1, i = 0;

	if (ct == NULL)
		return 0;
	while (i < n && (ct[i] == ' ' || ct[i] == '\t'))
		i++;
	if (n - i < k || strncasecmp(ct + i, want, k) != 0)
		return 0;
	for (i += k; i < n && (ct[i] == ' ' || ct[i] == '\t'); i++)
		;
	return i == n || ct[i] == ';';
}

static void
refuse(struct nb_gate_refusal *r, int status, const char *code,
    const char *message)
{
	nb_gate_refusal_init(r, status, code, message);
	if (status == 405)
		r->allow = "POST";
}

/*
 * The contract's checks that need only the head, in its order: method,
 * source, size (len < 0: not known yet), content type.  0 with *srcp set,
 * or -1 with *r filled.
 */
static int
webhook_check(const struct nb_config *cfg, int post, const char *name,
    size_t namelen, int64_t len, const char *ct, size_t ctlen,
    const struct nb_source **srcp, struct nb_gate_refusal *r)
{
	char buf[NB_SOURCE_NAME_MAX + 1];
	const struct nb_source *src = NULL;

	if (!post) {
		refuse(r, 405, "method_not_allowed", "webhooks must be POSTed");
		return -1;
	}
	if (namelen < sizeof(buf)) {
		memcpy(buf, name, namelen);
		buf[namelen] = '\0';
		if (nb_config_source_name_valid(buf))
			src = nb_config_source(cfg, buf);
	}
	if (src == NULL) {
		refuse(r, 404, "unknown_source",
		    "no source of that name is configured");
		return -1;
	}
	if (len > 0 && (uint64_t)len > cfg->limits.max_body_bytes) {
		refuse(r, 413, "body_too_large", TOO_LARGE_MESSAGE);
		return -1;
	}
	if (!content_type_json(ct, ctlen)) {
		refuse(r, 415, "unsupported_media_type",
		    "Content-Type must be application/json");
		return -1;
	}
	*srcp = src;
	return 0;
}

/* 1 when h is a request for a webhook path; *name its source part. */
static int
webhook_path(const struct nb_gate_head *h, const char **name, size_t *n)
{
	if (h == NULL || h->path == NULL || h->pathlen < WEBHOOK_PREFIX_LEN ||
	    memcmp(h->path, WEBHOOK_PREFIX, WEBHOOK_PREFIX_LEN) != 0)
		return 0;
	*name = h->path + WEBHOOK_PREFIX_LEN;
	*n = h->pathlen - WEBHOOK_PREFIX_LEN;
	return 1;
}

/* The gate asks before any body byte is read: see httpd.h. */
static int
gate_head(void *arg, const struct nb_gate_head *h, struct nb_gate_refusal *r)
{
	struct worker *w = arg;
	const struct nb_source *src;
	const char *name;
	size_t n;

	if (!webhook_path(h, &name, &n))
		return 0;
	return webhook_check(w->cfg, h->method == NB_GATE_POST, name, n,
	    h->content_length, h->content_type, h->content_type_len, &src, r);
}

/*
 * The gate answered a request itself.  Webhooks are logged and counted as
 * the handler would (the source is named from the size check on, as
 * there); so are heads that could not be parsed, which may have been.
 */
static void
gate_refused(void *arg, const struct nb_gate_head *h,
    const struct nb_gate_refusal *r, size_t body)
{
	struct worker *w = arg;
	char src[NB_SOURCE_NAME_MAX + 1];
	const char *name = NULL;
	size_t n = 0;

	if (h != NULL && !webhook_path(h, &name, &n))
		return;
	nb_metrics_request(w->h->deps.metrics, r->status, r->code);
	if (r->status == 405 || r->status == 404 || name == NULL)
		log_webhook(NULL, r->status, r->code, NULL, 0, 0, NULL, -1);
	else {
		snprintf(src, sizeof(src), "%.*s", (int)n, name);
		log_webhook(src, r->status, r->code, NULL, body, 0, NULL, -1);
	}
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

/*
 * The 200 of a request whose events are stored (or all filtered): section
 * 2's counts, and "filtered" after them when the source has drop_types
 * (then always, also 0, so the answer's shape is the source's).
 */
static void
webhook_ok(struct worker *w, struct wh_ctx *c)
{
	struct nb_http *h = w->h;
	char text[128];
	int n;

	nb_metrics_request(h->deps.metrics, 200, NULL);
	nb_metrics_events(h->deps.metrics, c->app.accepted, c->app.duplicates,
	    c->app.quarantined);
	if (c->filtered > 0)
		nb_metrics_filtered(h->deps.metrics, (size_t)c->filtered);
	log_webhook(c->source, 200, NULL, c->webhook_id, c->bodylen, c->nevents,
	    &c->app, c->filtered);
	/* The most frequent answer of all, written without jansson. */
	if (c->filtered >= 0)
		n = snprintf(text, sizeof(text),
		    "{\"accepted\":%d,\"duplicates\":%d,\"quarantined\":%d,"
		    "\"filtered\":%d}",
		    c->app.accepted, c->app.duplicates, c->app.quarantined,
		    c->filtered);
	else
		n = snprintf(text, sizeof(text),
		    "{\"accepted\":%d,\"duplicates\":%d,\"quarantined\":%d}",
		    c->app.accepted, c->app.duplicates, c->app.quarantined);
	nb_httpd_reply_text(c->req, 200,
	    n > 0 && (size_t)n < sizeof(text) ? text : NULL,
	    n > 0 ? (size_t)n : 0);
}

static void
commit_cb(struct nb_append *app, int rc, void *arg)
{
	struct wh_ctx *c = arg;
	struct worker *w = c->w;

	(void)app;
	if (w == NULL) {
		/* The listener is gone and so is the request. */
		ctx_free(c);
		return;
	}
	ctx_unlink(w, c);
	if (rc != 0) {
		webhook_error(w, c->req, 503, "unavailable",
		    "the event store cannot commit now; retry later", c->source,
		    c->webhook_id, c->bodylen, c->nevents);
		ctx_free(c);
		return;
	}
	webhook_ok(w, c);
	ctx_free(c);
}

/* The Standard Webhooks headers, or their svix- twins. */
static void
sig_headers(struct evkeyvalq *ih, struct nb_sig_headers *sh)
{
	sh->id = evhttp_find_header(ih, "webhook-id");
	sh->timestamp = evhttp_find_header(ih, "webhook-timestamp");
	sh->signature = evhttp_find_header(ih, "webhook-signature");
	if (sh->id == NULL && sh->timestamp == NULL && sh->signature == NULL) {
		sh->id = evhttp_find_header(ih, "svix-id");
		sh->timestamp = evhttp_find_header(ih, "svix-timestamp");
		sh->signature = evhttp_find_header(ih, "svix-signature");
	}
}

/* 1 when the request is signed by src; else answers it and returns 0. */
static int
webhook_signed(struct worker *w, struct evhttp_request *req,
    const struct nb_source *src, const struct nb_sig_headers *sh,
    const unsigned char *body, size_t len, const char *name)
{
	static const char *const msgs[] = {
	    [NB_SIG_MISSING] = "webhook-id, webhook-timestamp and "
			       "webhook-signature are required",
	    [NB_SIG_MALFORMED] = "the signature headers cannot be parsed",
	    [NB_SIG_STALE] = "webhook-timestamp is outside the tolerance "
			     "window",
	    [NB_SIG_MISMATCH] = "no signature entry matched",
	};
	enum nb_sig_result sr;
	int64_t now = nb_time_now_ms(), ts = 0;
	size_t key = 0;

	sr = nb_sig_verify_key(src->keys, sh, body, len, (time_t)(now / 1000),
	    w->cfg->limits.timestamp_tolerance_s, &key, &ts);
	if (sr == NB_SIG_OK) {
		nb_activity_note(w->h->deps.activity, name,
		    nb_sig_keyring_fingerprint(src->keys, key), now);
		nb_metrics_skew(
		    w->h->deps.metrics, (double)now / 1000.0 - (double)ts);
		return 1;
	}
	if (sr == NB_SIG_NOMEM)
		webhook_error(w, req, 503, "unavailable", "out of memory", name,
		    NULL, len, 0);
	else
		webhook_error(w, req, 401, nb_sig_result_str(sr),
		    sr >= NB_SIG_MISSING && sr <= NB_SIG_MISMATCH
			? msgs[sr]
			: "bad signature",
		    name, NULL, len, 0);
	return 0;
}

/*
 * Parses the verified body and hands it to the committer; the answer comes
 * from commit_cb().
 */
static void
webhook_store(struct worker *w, struct evhttp_request *req,
    const struct nb_source *src, const char *webhook_id,
    const unsigned char *body, size_t len)
{
	const char *name = src->name;
	struct nb_http *h = w->h;
	enum nb_nudgespot_result pr;
	struct wh_ctx *c;
	int64_t now;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		webhook_error(w, req, 503, "unavailable", "out of memory", name,
		    webhook_id, len, 0);
		return;
	}
	pr = nb_nudgespot_parse(&c->payload, (const char *)body, len);
	if (pr == NB_NUDGESPOT_INVALID_JSON)
		webhook_error(w, req, 400, "invalid_json",
		    "the body is not valid JSON (UTF-8)", name, webhook_id, len,
		    0);
	else if (pr == NB_NUDGESPOT_INVALID_PAYLOAD)
		webhook_error(w, req, 400, "invalid_payload",
		    "the body must be an event object or an array of "
		    "1..1000 event objects",
		    name, webhook_id, len, 0);
	else if (pr != NB_NUDGESPOT_OK)
		webhook_error(w, req, 503, "unavailable", "out of memory", name,
		    webhook_id, len, 0);
	else if (w->draining)
		webhook_error(w, req, 503, "unavailable",
		    "shutting down; retry later", name, webhook_id, len,
		    c->payload.nevents);
	else if ((c->webhook_id = strdup(webhook_id)) == NULL)
		webhook_error(w, req, 503, "unavailable", "out of memory", name,
		    webhook_id, len, c->payload.nevents);
	if (pr != NB_NUDGESPOT_OK || w->draining || c->webhook_id == NULL) {
		ctx_free(c);
		return;
	}
	snprintf(c->source, sizeof(c->source), "%s", name);
	c->w = w;
	c->req = req;
	c->cfg = nb_config_ref(w->cfg);
	c->bodylen = len;
	c->nevents = c->payload.nevents;
	/* Filtered events are answered for and then forgotten. */
	c->filtered =
	    src->drop.set ? (int)nb_filter_apply(&src->drop, &c->payload) : -1;
	if (c->payload.nevents == 0) {
		webhook_ok(w, c);
		ctx_free(c);
		return;
	}
	now = nb_time_now_ms();
	c->app.source = c->source;
	c->app.webhook_id = c->webhook_id;
	c->app.events = c->payload.events;
	c->app.nevents = c->payload.nevents;
	c->app.received_ms = now;
	c->app.dedupe_after_ms = now - c->cfg->limits.dedupe_window_s * 1000;
	if ((w->chan != NULL
		    ? nb_commit_submit_on(w->chan, &c->app, commit_cb, c)
		    : nb_commit_submit(
			  h->deps.committer, &c->app, commit_cb, c)) == -1) {
		webhook_error(w, req, 503, "unavailable",
		    "the event store is busy or unavailable; retry later", name,
		    webhook_id, len, c->payload.nevents);
		ctx_free(c);
		return;
	}
	c->next = w->waiting;
	if (w->waiting != NULL)
		w->waiting->prev = c;
	w->waiting = c;
	atomic_fetch_add(&h->inflight, 1);
}

static void
handle_webhook(struct worker *w, struct evhttp_request *req, const char *name)
{
	struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *ct = evhttp_find_header(ih, "Content-Type");
	size_t len = evbuffer_get_length(in);
	const struct nb_source *src = NULL;
	static unsigned char empty[1];
	struct nb_gate_refusal r;
	struct nb_sig_headers sh;
	unsigned char *body;

	if (webhook_check(w->cfg,
		evhttp_request_get_command(req) == EVHTTP_REQ_POST, name,
		strlen(name), (int64_t)len, ct, ct != NULL ? strlen(ct) : 0,
		&src, &r) == -1) {
		if (r.status == 405 || r.status == 404)
			webhook_error(w, req, r.status, r.code, r.message, NULL,
			    NULL, 0, 0);
		else
			webhook_error(w, req, r.status, r.code, r.message, name,
			    NULL, len, 0);
		return;
	}
	sig_headers(ih, &sh);
	body = len > 0 ? evbuffer_pullup(in, -1) : empty;
	if (body == NULL) {
		webhook_error(w, req, 503, "unavailable", "out of memory", name,
		    NULL, len, 0);
		return;
	}
	if (!webhook_signed(w, req, src, &sh, body, len, name))
		return;
	webhook_store(w, req, src, sh.id, body, len);
}

static int
method_get(struct evhttp_request *req)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);

	if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
		return 1;
	evhttp_add_header(
	    evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
	nb_httpd_reply_error(
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
	else if (!nb_commit_healthy(h->deps.committer))
		reason = "store_unavailable";
	if (reason == NULL)
		nb_httpd_reply_json(
		    req, 200, json_pack("{s:s}", "status", "ready"));
	else
		nb_httpd_reply_json(req, 503,
		    json_pack(
			"{s:s, s:s}", "status", "not_ready", "reason", reason));
}

/* Answers /metrics from snap (NULL: without queue figures). */
static void
metrics_reply(struct worker *w, struct evhttp_request *req,
    const struct nb_board_snapshot *snap)
{
	struct evbuffer *buf;

	if ((buf = evbuffer_new()) == NULL ||
	    nb_metrics_render(
		w->h->deps.metrics, snap, nb_time_now_ms(), buf) == -1) {
		nb_httpd_reply_error(
		    req, 503, "unavailable", "cannot render metrics");
		goto out;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	nb_httpd_send(req, 200, buf);
out:
	if (buf != NULL)
		evbuffer_free(buf);
}

static void
scrape_cb(const struct nb_board_snapshot *snap, void *arg)
{
	struct scrape *s = arg;

	LIST_REMOVE(s, entry);
	metrics_reply(s->w, s->req, snap);
	free(s);
}

static void
handle_metrics(struct worker *w, struct evhttp_request *req)
{
	struct scrape *s;

	if (w->h->deps.board == NULL) {
		metrics_reply(w, req, NULL);
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		nb_httpd_reply_error(
		    req, 503, "unavailable", "cannot render metrics");
		return;
	}
	s->w = w;
	s->req = req;
	if ((s->wait = nb_board_ask(w->h->deps.board, w->base, scrape_cb, s)) ==
	    NULL) {
		free(s);
		nb_httpd_reply_error(
		    req, 503, "unavailable", "cannot render metrics");
		return;
	}
	LIST_INSERT_HEAD(&w->scrapes, s, entry);
}

static void
http_cb(struct evhttp_request *req, void *arg)
{
	struct worker *w = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;

	if (path == NULL) {
		nb_httpd_reply_error(req, 404, "not_found", "no such path");
		return;
	}
	if (strncmp(path, WEBHOOK_PREFIX, WEBHOOK_PREFIX_LEN) == 0) {
		handle_webhook(w, req, path + WEBHOOK_PREFIX_LEN);
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		if (method_get(req))
			nb_httpd_reply_json(
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
	nb_httpd_reply_error(req, 404, "not_found", "no such path");
}

static void
limits_of(const struct nb_http *h, const struct nb_config *cfg,
    struct nb_httpd_limits *l)
{
	(void)h;
	memset(l, 0, sizeof(*l));
	l->max_header_bytes = cfg->limits.max_header_bytes;
	l->max_body_bytes = cfg->limits.max_body_bytes;
	l->too_large_message = TOO_LARGE_MESSAGE;
	l->max_connections = cfg->limits.max_connections;
	l->read_timeout_s = cfg->limits.read_timeout_s;
	l->request_timeout_s = cfg->limits.request_timeout_s;
	l->max_inflight_body_bytes = cfg->limits.max_inflight_body_bytes;
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
	nb_httpd_set_tls(w->lst, tls);
	return 0;
}

/* Applies cfg on w's thread. */
static void
worker_reload(struct worker *w, struct nb_config *cfg)
{
	struct nb_config *old = w->cfg;
	struct nb_httpd_limits l;
	char err[512], qerr[600];

	w->cfg = nb_config_ref(cfg);
	nb_config_unref(old);
	limits_of(w->h, w->cfg, &l);
	nb_httpd_set_limits(w->lst, &l);
	if ((cfg->tls.cert_file != NULL) != nb_httpd_tls(w->lst)) {
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
	nb_httpd_stop_accepting(w->lst);
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
	struct scrape *s;

	for (c = w->waiting; c != NULL; c = next) {
		next = c->next;
		c->w = NULL;
		c->req = NULL;
		c->prev = c->next = NULL;
	}
	w->waiting = NULL;
	while ((s = LIST_FIRST(&w->scrapes)) != NULL) {
		LIST_REMOVE(s, entry);
		nb_board_cancel(s->wait);
		free(s);
	}
	nb_httpd_free(w->lst);
	if (w->ctl != NULL)
		event_free(w->ctl);
	nb_config_unref(w->cfg);
	nb_config_unref(w->next_cfg);
	if (w->idx > 0 && w->base != NULL)
		event_base_free(w->base);
}

/*
 * Builds worker w listening on fd (a socket of its own when fd is -1: the
 * single-listener case).
 */
static int
worker_init(struct worker *w, struct nb_config *cfg, evutil_socket_t fd,
    char *err, size_t errlen)
{
	struct nb_http *h = w->h;
	struct nb_httpd_ops ops;
	struct nb_httpd_limits l;

	if (w->idx == 0)
		w->base = h->deps.base;
	else if ((w->base = event_base_new()) == NULL) {
		snprintf(err, errlen, "cannot create an event base");
		if (fd != -1)
			evutil_closesocket(fd);
		return -1;
	}
	w->cfg = nb_config_ref(cfg);
	memset(&ops, 0, sizeof(ops));
	ops.request = http_cb;
	ops.head = gate_head;
	ops.refused = gate_refused;
	ops.arg = w;
	ops.name = "http";
	ops.metrics = h->deps.metrics;
	if (h->nworkers > 1) {
		ops.conns_total = &h->conns_total;
		ops.inflight = &h->body_bytes;
	}
	limits_of(h, cfg, &l);
	w->lst = nb_httpd_new(w->base, cfg->listen, fd, &ops, &l, err, errlen);
	if (w->lst == NULL)
		return -1;
	if ((w->ctl = event_new(w->base, -1, 0, ctl_cb, w)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (apply_tls(w, cfg, err, errlen) == -1)
		return -1;
	if (w->idx > 0 &&
	    (w->chan = nb_commit_attach(h->deps.committer, w->base)) == NULL) {
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
	atomic_init(&h->body_bytes, 0);
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		snprintf(err, errlen, "cannot create a mutex");
		goto out;
	}
	h->lock_init = 1;
	if (n > 1 &&
	    nb_httpd_split_addr(cfg->listen, host, sizeof(host), &port) == -1) {
		snprintf(
		    err, errlen, "%s: not a host:port address", cfg->listen);
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct worker *w = &h->workers[i];

		w->h = h;
		w->idx = i;
		LIST_INIT(&w->scrapes);
		if (n > 1) {
			/* Port 0: the others join the port the first got. */
			fd = nb_httpd_reuseport_socket(cfg->listen, host,
			    i == 0 ? port : h->port, err, errlen);
			if (fd == -1)
				goto out;
		}
		if (worker_init(w, cfg, fd, err, errlen) == -1)
			goto out;
		if (i == 0)
			h->port = nb_httpd_port(w->lst);
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
			nb_commit_detach(h->workers[i].chan);
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
