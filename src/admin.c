/* SPDX-License-Identifier: ISC */
/*
 * admin: the operator API on its own listener, thread and store connection.
 *
 * Every request must carry "Authorization: Bearer <admin.token>"; both
 * tokens are hashed with BLAKE2b before a sodium_memcmp(), so neither bytes
 * nor lengths leak through timing.  Authentication runs before routing, so
 * an anonymous client learns nothing about paths.  Failed attempts are
 * logged (never the offered value) and counted per client address
 * (lockout.h): past the limit that address gets 429 for a while, which
 * caps guessing without locking anyone else out.  Routes are a table over
 * the operate core; its jobs are stepped on the admin's base between other
 * requests, except one whose step may wait (an erase): that one runs on a
 * thread of its own with a store connection of its own, one at a time,
 * and is answered from the admin's base when it ends (evhttp keeps an
 * unanswered request even when its client went away).  The listener is
 * an httpd (httpd.h) with the main listener's edge, all of it before
 * authentication.
 */
#include <sys/queue.h>

#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <sodium.h>

#include "nudgebridge/admin.h"
#include "nudgebridge/alerter.h"
#include "nudgebridge/board.h"
#include "nudgebridge/config.h"
#include "nudgebridge/console.h"
#include "nudgebridge/fleet.h"
#include "nudgebridge/httpd.h"
#include "nudgebridge/lockout.h"
#include "nudgebridge/log.h"
#include "nudgebridge/operate.h"
#include "nudgebridge/rates.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"

#define ADMIN_MAX_BODY	   65536
#define ADMIN_MAX_INFLIGHT (16 * ADMIN_MAX_BODY) /* bodies in flight */
#define ADMIN_LOG_EVERY_MS 60000		 /* store failures, at most */

/*
 * The console's per-minute figures come from the store's totals (see
 * rates.h), its last errors from the store's recent errors of the last
 * hour: neither reads rows.
 */
#define ADMIN_ERR_WINDOW_MS (60 * 60000)
#define ADMIN_LAST_ERRORS   5

/*
 * Everything but the fields under lock belongs to the admin thread once it
 * runs (to the creating thread before).
 */
struct nb_admin {
	struct nb_admin_deps deps;
	struct nb_config *cfg;
	struct event_base *base; /* the admin thread's */
	struct nb_httpd *lst;
	struct nb_store *store;	    /* opened on first use */
	int64_t store_logged;	    /* the last "cannot open" warning */
	struct nb_lockout *lockout; /* failed authentications per address */
	int draining;
	struct nb_rates *rates;		  /* received_1m and delivered_1m */
	LIST_HEAD(, admin_job) jobs;	  /* operations in progress */
	struct admin_thread *blocking;	  /* a blocking operation, or NULL */
	struct event *blocking_done;	  /* runs blocking_done_cb */
	LIST_HEAD(, admin_stats) waiting; /* stats waiting for the board */
	struct event *ctl; /* runs ctl_cb: requests from other threads */
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	/* Under lock. */
	struct nb_config *next_cfg;
	int drain_req, stop_req;
};

/* The admin thread's store connection, opened when first needed. */
static struct nb_store *
admin_store(struct nb_admin *a)
{
	char err[512], qerr[600];
	int64_t now;

	if (a->store != NULL)
		return a->store;
	if (nb_store_open(&a->store, &a->cfg->store, err, sizeof(err)) == 0)
		return a->store;
	a->store = NULL;
	now = nb_time_mono_ms();
	if (a->store_logged == 0 ||
	    now - a->store_logged >= ADMIN_LOG_EVERY_MS) {
		log_warn("admin: cannot open the store", " error=%s",
		    nb_log_quote(qerr, sizeof(qerr), err));
		a->store_logged = now;
	}
	return NULL;
}

static void
token_digest(
    const char *s, size_t len, unsigned char out[crypto_generichash_BYTES])
{
	crypto_generichash(out, crypto_generichash_BYTES,
	    (const unsigned char *)s, len, NULL, 0);
}

/* 1 when the request carries the configured bearer token. */
static int
authorized(const struct nb_admin *a, struct evhttp_request *req)
{
	unsigned char want[crypto_generichash_BYTES];
	unsigned char got[crypto_generichash_BYTES];
	const char *h, *tok;
	const char *token = a->cfg->admin_token;
	int ok;

	if (token == NULL)
		return 0;
	h = evhttp_find_header(
	    evhttp_request_get_input_headers(req), "Authorization");
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	tok = h + 7;
	while (*tok == ' ')
		tok++;
	token_digest(token, strlen(token), want);
	token_digest(tok, strlen(tok), got);
	ok = sodium_memcmp(want, got, sizeof(want)) == 0;
	sodium_memzero(want, sizeof(want));
	return ok;
}

static void
reply_retry_after(struct evhttp_request *req, int status, const char *code,
    const char *msg, int64_t seconds)
{
	char ra[24];

	snprintf(ra, sizeof(ra), "%" PRId64, seconds < 1 ? 1 : seconds);
	evhttp_add_header(
	    evhttp_request_get_output_headers(req), "Retry-After", ra);
	nb_httpd_reply_error(req, status, code, msg);
}

static void
reply_405(struct evhttp_request *req, const char *allow)
{
	evhttp_add_header(
	    evhttp_request_get_output_headers(req), "Allow", allow);
	nb_httpd_reply_error(
	    req, 405, "method_not_allowed", "method not allowed on this path");
}

static void
reply_store_error(struct evhttp_request *req)
{
	reply_retry_after(req, 503, "unavailable",
	    "the store cannot answer now; retry later", NB_HTTPD_RETRY_AFTER_S);
}

/*
 * The ADMIN_LAST_ERRORS newest errors of source from errs (sorted by
 * source, newest first), as [{error, state, reason, count, last_at}].
 */
static json_t *
last_errors_json(
    const struct nb_store_error *errs, size_t nerrs, const char *source)
{
	char at[NB_TIME_ISO_LEN];
	json_t *arr, *o;
	size_t i;

	if ((arr = json_array()) == NULL)
		return NULL;
	for (i = 0; i < nerrs && json_array_size(arr) < ADMIN_LAST_ERRORS;
	     i++) {
		if (strcmp(errs[i].source, source) != 0)
			continue;
		nb_time_format_iso(errs[i].last_ms, at);
		o = json_pack("{s:s, s:s, s:o, s:I, s:s}", "error",
		    errs[i].error, "state",
		    errs[i].state == NB_STATE_DEAD ? "dead" : "pending",
		    "reason",
		    errs[i].reason != NULL ? json_string(errs[i].reason)
					   : json_null(),
		    "count", (json_int_t)errs[i].count, "last_at", at);
		if (o == NULL || json_array_append_new(arr, o) == -1) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* Adds received_1m, delivered_1m and last_errors to one source's object. */
static int
add_extra(struct nb_admin *a, json_t *o, const struct nb_store_error *errs,
    size_t nerrs, const char *name)
{
	int64_t received, delivered;
	json_t *arr;

	nb_rates_get(a->rates, name, &received, &delivered);
	if (json_object_set_new(o, "received_1m", json_integer(received)) ==
		-1 ||
	    json_object_set_new(o, "delivered_1m", json_integer(delivered)) ==
		-1)
		return -1;
	if ((arr = last_errors_json(errs, nerrs, name)) == NULL)
		return -1;
	return json_object_set_new(o, "last_errors", arr);
}

static json_t *
source_stats_json(const char *name, const struct nb_queue_gauge *st,
    const struct nb_paused *p, int64_t now)
{
	char until[NB_TIME_ISO_LEN];
	int64_t age = 0;
	json_t *o;

	if (st != NULL && st->oldest_pending_ms > 0 &&
	    now > st->oldest_pending_ms)
		age = (now - st->oldest_pending_ms) / 1000;
	if (p != NULL)
		nb_time_format_iso(p->until_ms, until);
	o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:o, s:o, s:o}",
	    "source", name, "pending", (json_int_t)(st ? st->pending : 0),
	    "inflight", (json_int_t)(st ? st->inflight : 0), "delivered",
	    (json_int_t)(st ? st->delivered : 0), "dead",
	    (json_int_t)(st ? st->dead : 0), "quarantined",
	    (json_int_t)(st ? st->quarantined : 0), "oldest_pending_age_s",
	    (json_int_t)age, "paused", p != NULL, "paused_status",
	    p != NULL ? json_integer(p->status) : json_null(), "paused_until",
	    p != NULL ? json_string(until) : json_null(), "paused_error",
	    p != NULL ? json_string(p->text) : json_null());
	return o;
}

/* The figures of one source: queues, pause, rates and last errors. */
static int
add_source(struct nb_admin *a, json_t *arr, const char *name,
    const struct nb_board_snapshot *snap, const struct nb_store_error *errs,
    size_t nerrs)
{
	const struct nb_queue_gauge *st = NULL;
	const struct nb_paused *p = NULL;
	json_t *o;
	size_t j;

	for (j = 0; j < snap->nqueues; j++)
		if (strcmp(snap->queues[j].source, name) == 0)
			st = &snap->queues[j];
	for (j = 0; j < snap->npaused; j++)
		if (strcmp(snap->paused[j].source, name) == 0)
			p = &snap->paused[j];
	if ((o = source_stats_json(name, st, p, snap->taken_ms)) == NULL ||
	    json_array_append_new(arr, o) == -1)
		return -1;
	return add_extra(a, o, errs, nerrs, name);
}

/*
 * The install id, the live instances (this one marked "self") and the
 * rate budget with this instance's share of it, into root.
 */
static int
add_fleet(struct nb_admin *a, struct nb_store *st, json_t *root)
{
	struct nb_store_instance in[NB_FLEET_LIST_MAX];
	char started[NB_TIME_ISO_LEN], beat[NB_TIME_ISO_LEN];
	double budget = a->cfg->segment.rate_limit_rps;
	struct nb_fleet_status fs;
	json_t *arr, *o;
	size_t i, n;

	if (json_object_set_new(
		root, "install_id", json_string(nb_store_install_id(st))) == -1)
		return -1;
	if (a->deps.fleet == NULL)
		return 0;
	n = nb_fleet_snapshot(a->deps.fleet, in, NB_FLEET_LIST_MAX, &fs);
	if ((arr = json_array()) == NULL ||
	    json_object_set_new(root, "instances", arr) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		nb_time_format_iso(in[i].started_ms, started);
		nb_time_format_iso(in[i].beat_ms, beat);
		o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:b}", "id", in[i].id,
		    "host", in[i].host, "pid", (json_int_t)in[i].pid,
		    "started_at", started, "heartbeat_at", beat, "self",
		    strcmp(in[i].id, fs.self) == 0);
		if (o == NULL || json_array_append_new(arr, o) == -1)
			return -1;
	}
	return json_object_set_new(root, "rate_limit",
	    json_pack("{s:f, s:f, s:I, s:b}", "budget_rps", budget, "share_rps",
		budget * fs.share, "live_instances", (json_int_t)fs.live,
		"shared", fs.shared));
}

/*
 * Answers /v1/stats: the queue figures and paused sources of the board's
 * snapshot, the rates and last errors from the admin thread's store (both
 * O(sources): counters rows and the small table of recent errors).
 */
static void
stats_reply(struct nb_admin *a, struct evhttp_request *req,
    const struct nb_board_snapshot *snap)
{
	struct nb_store_error *errs = NULL;
	struct nb_store *st = admin_store(a);
	const struct nb_config *cfg = a->cfg;
	json_t *arr = NULL, *root = NULL;
	size_t nerrs = 0, i;
	int64_t now = nb_time_now_ms();

	if (snap == NULL || !snap->queues_ok || st == NULL ||
	    nb_rates_update(a->rates, st, now) == -1 ||
	    nb_store_errors(st, now - ADMIN_ERR_WINDOW_MS, ADMIN_LAST_ERRORS,
		&errs, &nerrs) == -1) {
		reply_store_error(req);
		return;
	}
	if ((arr = json_array()) == NULL)
		goto fail;
	/* Every configured source, then sources that only the store knows. */
	for (i = 0; i < cfg->nsources; i++)
		if (add_source(
			a, arr, cfg->sources[i].name, snap, errs, nerrs) == -1)
			goto fail;
	for (i = 0; i < snap->nqueues; i++)
		if (nb_config_source(cfg, snap->queues[i].source) == NULL &&
		    add_source(a, arr, snap->queues[i].source, snap, errs,
			nerrs) == -1)
			goto fail;
	nb_store_errors_free(errs, nerrs);
	errs = NULL;
	nerrs = 0;
	/* The rates are exact now; the key stays for the console. */
	root = json_pack("{s:o, s:b, s:b}", "sources", arr, "draining",
	    a->draining, "rates_truncated", 0);
	arr = NULL;
	if (root == NULL || add_fleet(a, st, root) == -1)
		goto fail;
	nb_httpd_reply_json(req, 200, root);
	return;
fail:
	json_decref(root);
	json_decref(arr);
	nb_store_errors_free(errs, nerrs);
	reply_store_error(req);
}

/* One /v1/stats request waiting for the board's snapshot. */
struct admin_stats {
	struct nb_admin *a;
	struct evhttp_request *req;
	struct nb_board_wait *wait;
	LIST_ENTRY(admin_stats) entry;
};

static void
stats_cb(const struct nb_board_snapshot *snap, void *arg)
{
	struct admin_stats *w = arg;

	LIST_REMOVE(w, entry);
	stats_reply(w->a, w->req, snap);
	free(w);
}

/* Asks the board; the answer goes out when its snapshot comes. */
static void
handle_stats(struct nb_admin *a, struct evhttp_request *req)
{
	struct admin_stats *w;

	if (a->deps.board == NULL || (w = calloc(1, sizeof(*w))) == NULL) {
		reply_store_error(req);
		return;
	}
	w->a = a;
	w->req = req;
	if ((w->wait = nb_board_ask(a->deps.board, a->base, stats_cb, w)) ==
	    NULL) {
		free(w);
		reply_store_error(req);
		return;
	}
	LIST_INSERT_HEAD(&a->waiting, w, entry);
}

/* Operations: the admin face of the operate core. */

/* One operation in progress; its steps run on the admin's base. */
struct admin_job {
	struct nb_admin *a;
	struct evhttp_request *req;
	struct nb_operate_job *job;
	struct event *ev; /* runs the next step */
	LIST_ENTRY(admin_job) entry;
};

static void
job_free(struct admin_job *j)
{
	LIST_REMOVE(j, entry);
	if (j->ev != NULL)
		event_free(j->ev);
	nb_operate_free(j->job);
	free(j);
}

/*
 * Answers a failed operation as the API does; a 503 says err when
 * own_message, else that the store cannot answer.
 */
static void
reply_status(struct evhttp_request *req, enum nb_operate_status st,
    const char *err, int own_message)
{
	switch (st) {
	case NB_OPERATE_INVALID:
		nb_httpd_reply_error(req, 400, "invalid_request", err);
		break;
	case NB_OPERATE_NOT_FOUND:
		nb_httpd_reply_error(
		    req, 404, "not_found", "no event with that key");
		break;
	default:
		if (own_message)
			reply_retry_after(req, 503, "unavailable", err,
			    NB_HTTPD_RETRY_AFTER_S);
		else
			reply_store_error(req);
		break;
	}
}

/*
 * Works one step of j; answers and frees it after the last, else asks the
 * base for the next, so other requests are served in between.
 */
static void
job_step_cb(evutil_socket_t fd, short what, void *arg)
{
	struct admin_job *j = arg;
	static const struct timeval next_step = {0, 0};
	enum nb_operate_status st;
	char err[256];
	int done = 0;

	(void)fd;
	(void)what;
	st = nb_operate_step(j->job, &done, err, sizeof(err));
	if (st != NB_OPERATE_OK)
		reply_status(j->req, st, err, 0);
	else if (done)
		nb_httpd_reply_json(j->req, 200, nb_operate_answer(j->job));
	else {
		/*
		 * A timer, not event_active(): libevent runs events activated
		 * from a callback in the same pass, before it polls again, so
		 * other requests would wait for the whole job.
		 */
		if (event_add(j->ev, &next_step) == 0)
			return;
		reply_store_error(j->req);
	}
	job_free(j);
}

/* An operation whose step may wait, on a thread of its own. */
struct admin_thread {
	struct nb_admin *a;
	struct evhttp_request *req;
	struct nb_config *cfg; /* a reference */
	enum nb_operate_op op;
	struct nb_operate_query q;
	enum nb_operate_status st;
	json_t *answer;
	char err[256];
	pthread_t thread;
};

static void
thread_free(struct admin_thread *t)
{
	nb_operate_query_clear(&t->q);
	json_decref(t->answer);
	nb_config_unref(t->cfg);
	free(t);
}

/* The thread: a store connection of its own, the whole job, a wake-up. */
static void *
thread_main(void *arg)
{
	struct admin_thread *t = arg;
	struct nb_operate_env env;
	char err[512], qerr[600];

	env.cfg = t->cfg;
	env.face = "admin";
	if (nb_store_open(&env.store, &t->cfg->store, err, sizeof(err)) == -1) {
		log_error("admin: cannot open the store", " op=%s error=%s",
		    nb_operate_op_str(t->op),
		    nb_log_quote(qerr, sizeof(qerr), err));
		t->st = NB_OPERATE_UNAVAILABLE;
		snprintf(t->err, sizeof(t->err),
		    "the store cannot be opened now; retry later");
		env.store = NULL;
	} else
		t->st = nb_operate_run(
		    &env, t->op, &t->q, &t->answer, t->err, sizeof(t->err));
	nb_store_close(env.store);
	event_active(t->a->blocking_done, EV_READ, 0);
	return NULL;
}

/* The thread ended (on the admin thread): answer and forget it. */
static void
blocking_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_admin *a = arg;
	struct admin_thread *t = a->blocking;

	(void)fd;
	(void)what;
	if (t == NULL)
		return;
	pthread_join(t->thread, NULL);
	a->blocking = NULL;
	if (t->st == NB_OPERATE_OK) {
		nb_httpd_reply_json(t->req, 200, t->answer);
		t->answer = NULL;
	} else
		reply_status(t->req, t->st, t->err, 1);
	thread_free(t);
}

/* Starts op over q (taken) on a thread of its own: one at a time. */
static void
run_blocking(struct nb_admin *a, struct evhttp_request *req,
    enum nb_operate_op op, struct nb_operate_query *q)
{
	struct admin_thread *t;
	char msg[64];

	if (a->blocking != NULL || (t = calloc(1, sizeof(*t))) == NULL) {
		nb_operate_query_clear(q);
		snprintf(msg, sizeof(msg), "another %s is running; retry later",
		    nb_operate_op_str(op));
		reply_retry_after(req, 503, "unavailable",
		    a->blocking != NULL ? msg : "out of memory; retry later",
		    NB_HTTPD_RETRY_AFTER_S);
		return;
	}
	t->a = a;
	t->req = req;
	t->op = op;
	t->q = *q;
	memset(q, 0, sizeof(*q));
	t->cfg = nb_config_ref(a->cfg);
	if (pthread_create(&t->thread, NULL, thread_main, t) != 0) {
		snprintf(msg, sizeof(msg), "cannot start the %s; retry later",
		    nb_operate_op_str(op));
		reply_retry_after(
		    req, 503, "unavailable", msg, NB_HTTPD_RETRY_AFTER_S);
		thread_free(t);
		return;
	}
	a->blocking = t;
}

/* Runs op over params (a new reference, taken; NULL: none). */
static void
run_op(struct nb_admin *a, struct evhttp_request *req, enum nb_operate_op op,
    json_t *params)
{
	struct nb_operate_query q;
	struct nb_operate_env env;
	struct admin_job *j;
	enum nb_operate_status st;
	char err[256];

	if (nb_operate_query_parse(
		&q, op, params, nb_time_now_ms(), err, sizeof(err)) == -1) {
		json_decref(params);
		nb_httpd_reply_error(req, 400, "invalid_request", err);
		return;
	}
	json_decref(params);
	/* A page looks at a bounded number of rows, whatever the filter. */
	q.one_page = op == NB_OPERATE_LIST || op == NB_OPERATE_SEARCH;
	if (nb_operate_blocks(op)) {
		run_blocking(a, req, op, &q);
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		nb_operate_query_clear(&q);
		reply_store_error(req);
		return;
	}
	if ((env.store = admin_store(a)) == NULL) {
		nb_operate_query_clear(&q);
		free(j);
		reply_store_error(req);
		return;
	}
	env.cfg = a->cfg;
	env.face = "admin";
	j->a = a;
	j->req = req;
	LIST_INSERT_HEAD(&a->jobs, j, entry);
	st = nb_operate_begin(&j->job, &env, op, &q, err, sizeof(err));
	if (st != NB_OPERATE_OK) {
		reply_status(req, st, err, 0);
		job_free(j);
		return;
	}
	if ((j->ev = event_new(a->base, -1, 0, job_step_cb, j)) == NULL) {
		reply_store_error(req);
		job_free(j);
		return;
	}
	job_step_cb(-1, 0, j);
}

/*
 * The JSON body as parameters: *params NULL for an empty body.  0, or -1
 * with err.
 */
static int
body_params(
    struct evhttp_request *req, json_t **params, char *err, size_t errlen)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in), i;
	json_error_t jerr;
	const char *p;

	*params = NULL;
	if (len > ADMIN_MAX_BODY) {
		snprintf(err, errlen, "the body is too large");
		return -1;
	}
	p = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
	for (i = 0; i < len &&
	     (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n');
	     i++)
		;
	if (i == len)
		return 0;
	*params = json_loadb(p, len, JSON_REJECT_DUPLICATES, &jerr);
	if (*params == NULL) {
		snprintf(
		    err, errlen, "the body is not valid JSON: %s", jerr.text);
		return -1;
	}
	return 0;
}

/* Where a route takes its parameters from. */
enum input {
	IN_NONE,
	IN_QUERY,    /* the query string */
	IN_BODY,     /* a JSON body */
	IN_PATH_KEY, /* the key after the path's prefix */
};

/* GET /v1/alerts: the conditions firing now. */
static void
handle_alerts(struct nb_admin *a, struct evhttp_request *req)
{
	nb_httpd_reply_json(req, 200,
	    a->deps.alerter != NULL
		? nb_alerter_firing(a->deps.alerter)
		: json_pack("{s:[], s:n}", "alerts", "evaluated_at"));
}

static const struct route {
	const char *path; /* IN_PATH_KEY: a prefix */
	int post;	  /* POST, else GET and HEAD */
	enum input in;
	int op; /* an operation, or -1 for handle */
	void (*handle)(struct nb_admin *, struct evhttp_request *);
} routes[] = {
    {"/v1/stats", 0, IN_NONE, -1, handle_stats},
    {"/v1/alerts", 0, IN_NONE, -1, handle_alerts},
    {"/v1/dlq", 0, IN_QUERY, NB_OPERATE_LIST, NULL},
    {"/v1/dlq/replay", 1, IN_BODY, NB_OPERATE_REPLAY, NULL},
    {"/v1/dlq/purge", 1, IN_BODY, NB_OPERATE_PURGE, NULL},
    {"/v1/dlq/", 0, IN_PATH_KEY, NB_OPERATE_SHOW, NULL},
    {"/v1/events", 0, IN_QUERY, NB_OPERATE_SEARCH, NULL},
    {"/v1/events/", 0, IN_PATH_KEY, NB_OPERATE_EVENT, NULL},
    {"/v1/erase", 1, IN_BODY, NB_OPERATE_ERASE, NULL},
    {"/v1/audit", 0, IN_QUERY, NB_OPERATE_AUDIT, NULL},
};

static const struct route *
route_find(const char *path)
{
	const struct route *r;
	size_t i, n;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		r = &routes[i];
		n = strlen(r->path);
		if (r->in != IN_PATH_KEY && strcmp(path, r->path) == 0)
			return r;
		if (r->in == IN_PATH_KEY && strncmp(path, r->path, n) == 0 &&
		    strchr(path + n, '/') == NULL)
			return r;
	}
	return NULL;
}

/* Serves an authorized request on route r. */
static void
serve_route(struct nb_admin *a, struct evhttp_request *req,
    const struct route *r, const char *path)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	json_t *params = NULL;
	char err[256], *key;

	if (r->post ? m != EVHTTP_REQ_POST
		    : m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
		reply_405(req, r->post ? "POST" : "GET, HEAD");
		return;
	}
	if (r->handle != NULL) {
		r->handle(a, req);
		return;
	}
	if (r->in == IN_QUERY &&
	    (params = nb_operate_params_query(
		 evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req)), err,
		 sizeof(err))) == NULL) {
		nb_httpd_reply_error(req, 400, "invalid_request", err);
		return;
	}
	if (r->in == IN_BODY &&
	    body_params(req, &params, err, sizeof(err)) == -1) {
		nb_httpd_reply_error(req, 400, "invalid_request", err);
		return;
	}
	if (r->in == IN_PATH_KEY) {
		if ((key = evhttp_uridecode(path + strlen(r->path), 0, NULL)) ==
		    NULL) {
			reply_store_error(req);
			return;
		}
		/* A prefix alone ("/v1/dlq/") names no event. */
		if (*key != '\0')
			params = json_pack("{s:s}", "key", key);
		free(key);
		if (params == NULL) {
			nb_httpd_reply_error(
			    req, 404, "not_found", "no event with that key");
			return;
		}
	}
	run_op(a, req, (enum nb_operate_op)r->op, params);
}

static void
admin_cb(struct evhttp_request *req, void *arg)
{
	struct nb_admin *a = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	const struct sockaddr *peer =
	    evhttp_connection_get_addr(evhttp_request_get_connection(req));
	const struct route *r;
	int64_t now = nb_time_mono_ms(), wait;

	/* The console page is static and public; its API calls are not. */
	if ((m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD) &&
	    nb_console_match(path)) {
		nb_console_serve(req, path);
		return;
	}
	/*
	 * The token is checked first: its holder is never turned away for
	 * what other clients of the same address did (the token is long and
	 * random, see config.h, so the lockout only has to keep guessers and
	 * their log lines down, not to hide a right answer).
	 */
	if (!authorized(a, req)) {
		/* Locked: a wrong guess is not even counted or logged. */
		if ((wait = nb_lockout_wait(a->lockout, peer, now)) > 0) {
			reply_retry_after(req, 429, "too_many_attempts",
			    "too many failed authentications; retry later",
			    (wait + 999) / 1000);
			return;
		}
		log_warn("admin authentication failed", " path_len=%zu",
		    path != NULL ? strlen(path) : (size_t)0);
		/* A request without credentials (an <img>) guesses nothing. */
		if (evhttp_find_header(evhttp_request_get_input_headers(req),
			"Authorization") != NULL &&
		    (wait = nb_lockout_fail(a->lockout, peer, now)) > 0) {
			reply_retry_after(req, 429, "too_many_attempts",
			    "too many failed authentications; retry later",
			    (wait + 999) / 1000);
			return;
		}
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", "Bearer");
		nb_httpd_reply_error(req, 401, "unauthorized",
		    "a valid Authorization: Bearer token is required");
		return;
	}
	if (path != NULL && (r = route_find(path)) != NULL) {
		serve_route(a, req, r, path);
		return;
	}
	nb_httpd_reply_error(req, 404, "not_found", "no such path");
}

/* The listener's limits: the main listener's, with its own caps. */
static void
admin_limits(const struct nb_config *cfg, struct nb_httpd_limits *l)
{
	memset(l, 0, sizeof(*l));
	l->max_header_bytes = cfg->limits.max_header_bytes;
	l->max_body_bytes = ADMIN_MAX_BODY;
	l->too_large_message = "the body is larger than 64 KiB";
	l->max_connections = cfg->admin_max_connections;
	l->read_timeout_s = cfg->limits.read_timeout_s;
	l->request_timeout_s = cfg->limits.request_timeout_s;
	l->max_inflight_body_bytes = ADMIN_MAX_INFLIGHT;
}

static int
admin_bind(struct nb_admin *a, const char *addr, char *err, size_t errlen)
{
	struct nb_httpd_ops ops;
	struct nb_httpd_limits l;

	memset(&ops, 0, sizeof(ops));
	ops.request = admin_cb;
	ops.arg = a;
	ops.name = "admin";
	ops.metrics = a->deps.metrics;
	admin_limits(a->cfg, &l);
	a->lst = nb_httpd_new(a->base, addr, -1, &ops, &l, err, errlen);
	return a->lst != NULL ? 0 : -1;
}

/* Applies cfg on the admin thread. */
static void
admin_apply(struct nb_admin *a, struct nb_config *cfg)
{
	struct nb_config *old = a->cfg;
	struct nb_httpd_limits l;
	char err[256], qerr[300];

	a->cfg = nb_config_ref(cfg);
	nb_config_unref(old);
	nb_lockout_clear(a->lockout);
	if (a->lst != NULL) {
		admin_limits(cfg, &l);
		nb_httpd_set_limits(a->lst, &l);
	}
	/* A token added by the reload turns the API on (at the new address). */
	if (a->lst == NULL && cfg->admin_token != NULL &&
	    cfg->admin_listen != NULL) {
		if (admin_bind(a, cfg->admin_listen, err, sizeof(err)) == -1)
			log_warn("admin API not started", " error=%s",
			    nb_log_quote(qerr, sizeof(qerr), err));
		else
			log_info("admin listening", " addr=%s port=%d",
			    cfg->admin_listen, nb_httpd_port(a->lst));
	}
}

/*
 * Frees what waits on the admin thread: stats waiting for the board (so
 * the board never activates an event of ours again) and operations in
 * progress.  Their requests go with the listener.
 */
static void
admin_forget(struct nb_admin *a)
{
	struct admin_stats *w;

	while ((w = LIST_FIRST(&a->waiting)) != NULL) {
		LIST_REMOVE(w, entry);
		nb_board_cancel(w->wait);
		free(w);
	}
	while (!LIST_EMPTY(&a->jobs))
		job_free(LIST_FIRST(&a->jobs));
}

/* Requests from other threads (reload, drain, stop), on the admin thread. */
static void
ctl_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_admin *a = arg;
	struct nb_config *cfg;
	int drain, stop;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&a->lock);
	cfg = a->next_cfg;
	a->next_cfg = NULL;
	drain = a->drain_req;
	stop = a->stop_req;
	pthread_mutex_unlock(&a->lock);
	if (cfg != NULL) {
		admin_apply(a, cfg);
		nb_config_unref(cfg);
	}
	if (drain)
		a->draining = 1;
	if (stop) {
		admin_forget(a);
		event_base_loopbreak(a->base);
	}
}

static void *
admin_main(void *arg)
{
	struct nb_admin *a = arg;

	event_base_loop(a->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* Wakes the admin thread for what was just put under the lock. */
static void
admin_poke(struct nb_admin *a)
{
	event_active(a->ctl, EV_READ, 0);
}

struct nb_admin *
nb_admin_new(const struct nb_admin_deps *deps, struct nb_config *cfg, char *err,
    size_t errlen)
{
	struct nb_admin *a;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->deps = *deps;
	a->cfg = nb_config_ref(cfg);
	LIST_INIT(&a->jobs);
	LIST_INIT(&a->waiting);
	if (pthread_mutex_init(&a->lock, NULL) != 0) {
		nb_config_unref(a->cfg);
		free(a);
		snprintf(err, errlen, "cannot create a mutex");
		return NULL;
	}
	if ((a->rates = nb_rates_new()) == NULL ||
	    (a->lockout = nb_lockout_new()) == NULL ||
	    (a->base = event_base_new()) == NULL ||
	    (a->ctl = event_new(a->base, -1, 0, ctl_cb, a)) == NULL ||
	    (a->blocking_done =
		    event_new(a->base, -1, 0, blocking_done_cb, a)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (cfg->admin_token != NULL && cfg->admin_listen != NULL &&
	    admin_bind(a, cfg->admin_listen, err, errlen) == -1)
		goto fail;
	return a;
fail:
	nb_admin_free(a);
	return NULL;
}

int
nb_admin_start(struct nb_admin *a)
{
	/*
	 * The first rates' baseline, taken here, before the thread exists and
	 * the bridge says it listens, so the events of its first moments count
	 * in the first minute however late the thread is scheduled.  A failure
	 * leaves it to the first call.
	 */
	if (a->lst != NULL && admin_store(a) != NULL)
		(void)nb_rates_update(a->rates, a->store, nb_time_now_ms());
	if (pthread_create(&a->thread, NULL, admin_main, a) != 0)
		return -1;
	a->started = 1;
	return 0;
}

int
nb_admin_port(const struct nb_admin *a)
{
	return a != NULL && a->lst != NULL ? nb_httpd_port(a->lst) : 0;
}

void
nb_admin_reload(struct nb_admin *a, struct nb_config *cfg)
{
	pthread_mutex_lock(&a->lock);
	nb_config_unref(a->next_cfg);
	a->next_cfg = nb_config_ref(cfg);
	pthread_mutex_unlock(&a->lock);
	admin_poke(a);
}

void
nb_admin_drain(struct nb_admin *a)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->lock);
	a->drain_req = 1;
	pthread_mutex_unlock(&a->lock);
	admin_poke(a);
}

void
nb_admin_free(struct nb_admin *a)
{
	if (a == NULL)
		return;
	if (a->started) {
		pthread_mutex_lock(&a->lock);
		a->stop_req = 1;
		pthread_mutex_unlock(&a->lock);
		admin_poke(a);
		pthread_join(a->thread, NULL);
	}
	admin_forget(a); /* what a thread that never ran still holds */
	/* A blocking operation ends within its wait; answered before the
	 * listener goes. */
	blocking_done_cb(-1, 0, a);
	if (a->blocking_done != NULL)
		event_free(a->blocking_done);
	nb_httpd_free(a->lst);
	if (a->ctl != NULL)
		event_free(a->ctl);
	if (a->base != NULL)
		event_base_free(a->base);
	nb_store_close(a->store);
	nb_config_unref(a->next_cfg);
	nb_config_unref(a->cfg);
	nb_rates_free(a->rates);
	nb_lockout_free(a->lockout);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
