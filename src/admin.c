/* SPDX-License-Identifier: ISC */
/*
 * admin: the operator API on its own listener (loopback by default).
 *
 * Every request must carry "Authorization: Bearer <admin.token>".  Both the
 * offered and the configured token are hashed with BLAKE2b before a
 * sodium_memcmp(), so neither their bytes nor their lengths leak through
 * timing.  Authentication runs before routing, so an anonymous client
 * learns nothing about paths or methods.  Failed attempts are logged
 * (never the offered value) and counted in a sliding window; past the limit
 * every request gets 429 until the window has passed, which caps guessing
 * at a few attempts a second.  Without a configured token the listener is
 * not started at all.  Store calls (an erase aside: admin_events.c) are
 * short indexed queries on the main-thread connection, on the base's
 * thread.  The listener is an httpd (httpd.h) with the main listener's
 * edge (a cap on connections, a whole-request deadline, the header limit
 * and the gate with a 64 KiB body limit), all before authentication.
 */
#include <sys/queue.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <sodium.h>

#include "nudgebridge/admin.h"
#include "nudgebridge/admin_events.h"
#include "nudgebridge/board.h"
#include "nudgebridge/config.h"
#include "nudgebridge/console.h"
#include "nudgebridge/dlq.h"
#include "nudgebridge/httpd.h"
#include "nudgebridge/log.h"
#include "nudgebridge/nudgespot.h"
#include "nudgebridge/rates.h"
#include "nudgebridge/segment.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"

#define ADMIN_FAIL_MAX	     20	   /* failures allowed per window */
#define ADMIN_FAIL_WINDOW_MS 10000 /* the window */
#define ADMIN_LIST_DEFAULT   100
#define ADMIN_MAX_PAUSED     256
#define ADMIN_MAX_BODY	     65536
#define ADMIN_MAX_INFLIGHT   (16 * ADMIN_MAX_BODY) /* bodies in flight */
#define ADMIN_MAX_KEYS	     1000 /* "keys" of one replay/purge body */

/*
 * The console's per-minute figures come from the store's totals (see
 * rates.h), its last errors from the store's recent errors of the last
 * hour: neither reads rows.
 */
#define ADMIN_ERR_WINDOW_MS (60 * 60000)
#define ADMIN_LAST_ERRORS   5

struct nb_admin {
	struct nb_admin_deps deps;
	struct nb_config *cfg;
	struct nb_httpd *lst;
	int64_t fails[ADMIN_FAIL_MAX]; /* ring of failure times (mono ms) */
	size_t nfails, fhead;
	int64_t locked_until; /* mono ms */
	int draining;
	struct nb_rates *rates;		/* received_1m and delivered_1m */
	struct nb_admin_events *events; /* section 8's routes */
};

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

/* Records a failure; 1 when the client must now be turned away. */
static int
record_failure(struct nb_admin *a, int64_t now)
{
	size_t oldest;

	if (a->nfails < ADMIN_FAIL_MAX) {
		a->fails[(a->fhead + a->nfails) % ADMIN_FAIL_MAX] = now;
		a->nfails++;
		return 0;
	}
	oldest = a->fhead;
	a->fails[oldest] = now;
	a->fhead = (a->fhead + 1) % ADMIN_FAIL_MAX;
	if (now - a->fails[a->fhead] < ADMIN_FAIL_WINDOW_MS) {
		a->locked_until = now + ADMIN_FAIL_WINDOW_MS;
		return 1;
	}
	return 0;
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
source_stats_json(const char *name, const struct nb_source_stats *st,
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

static void
handle_stats(struct nb_admin *a, struct evhttp_request *req)
{
	struct nb_source_stats *stats = NULL;
	struct nb_store_error *errs = NULL;
	struct nb_paused paused[ADMIN_MAX_PAUSED];
	const struct nb_source_stats *st;
	const struct nb_paused *p;
	const struct nb_config *cfg = a->cfg;
	json_t *arr = NULL, *o;
	size_t nstats = 0, nerrs = 0, npaused = 0, i, j;
	int64_t now = nb_time_now_ms();

	if (nb_store_stats(a->deps.store, now, &stats, &nstats) == -1 ||
	    nb_rates_update(a->rates, a->deps.store, now) == -1 ||
	    nb_store_errors(a->deps.store, now - ADMIN_ERR_WINDOW_MS,
		ADMIN_LAST_ERRORS, &errs, &nerrs) == -1) {
		free(stats);
		reply_store_error(req);
		return;
	}
	if (a->deps.paused != NULL) {
		npaused = a->deps.paused(
		    a->deps.paused_arg, paused, ADMIN_MAX_PAUSED);
		if (npaused > ADMIN_MAX_PAUSED)
			npaused = ADMIN_MAX_PAUSED;
	}
	if ((arr = json_array()) == NULL)
		goto nomem;
	/* Every configured source, then sources that only the store knows. */
	for (i = 0; i < cfg->nsources; i++) {
		const char *name = cfg->sources[i].name;

		st = NULL;
		p = NULL;
		for (j = 0; j < nstats; j++)
			if (strcmp(stats[j].source, name) == 0)
				st = &stats[j];
		for (j = 0; j < npaused; j++)
			if (strcmp(paused[j].source, name) == 0)
				p = &paused[j];
		if ((o = source_stats_json(name, st, p, now)) == NULL ||
		    json_array_append_new(arr, o) == -1 ||
		    add_extra(a, o, errs, nerrs, name) == -1)
			goto nomem;
	}
	for (j = 0; j < nstats; j++) {
		if (nb_config_source(cfg, stats[j].source) != NULL)
			continue;
		if ((o = source_stats_json(
			 stats[j].source, &stats[j], NULL, now)) == NULL ||
		    json_array_append_new(arr, o) == -1 ||
		    add_extra(a, o, errs, nerrs, stats[j].source) == -1)
			goto nomem;
	}
	free(stats);
	nb_store_errors_free(errs, nerrs);
	/* The rates are exact now; the key stays for the console. */
	nb_httpd_reply_json(req, 200,
	    json_pack("{s:o, s:b, s:b}", "sources", arr, "draining",
		a->draining, "rates_truncated", 0));
	return;
nomem:
	json_decref(arr);
	nb_store_errors_free(errs, nerrs);
	free(stats);
	reply_store_error(req);
}

static void
handle_list(struct nb_admin *a, struct evhttp_request *req)
{
	struct evkeyvalq kv;
	struct nb_dlq_query q;
	struct nb_stored_event *ev = NULL;
	const char *query;
	json_t *arr = NULL, *o;
	char err[256];
	size_t n = 0, i;
	int64_t next = 0;

	TAILQ_INIT(&kv);
	memset(&q, 0, sizeof(q));
	query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	if (query != NULL && evhttp_parse_query_str(query, &kv) == -1) {
		nb_httpd_reply_error(req, 400, "invalid_request",
		    "the query string cannot be parsed");
		goto out;
	}
	if (nb_dlq_query_from_kv(&q, &kv, nb_time_now_ms(), err, sizeof(err)) ==
	    -1) {
		nb_httpd_reply_error(req, 400, "invalid_request", err);
		goto out;
	}
	if (q.filter.limit == 0)
		q.filter.limit = ADMIN_LIST_DEFAULT;
	/* A page looks at a bounded number of rows, whatever the filter. */
	q.filter.max_scan = NB_STORE_CHUNK_SCAN;
	if (nb_store_list_page(a->deps.store, &q.filter, &ev, &n, &next) ==
	    -1) {
		reply_store_error(req);
		goto out;
	}
	if ((arr = json_array()) == NULL)
		goto nomem;
	for (i = 0; i < n; i++)
		if ((o = nb_dlq_event_json(&ev[i], 0)) == NULL ||
		    json_array_append_new(arr, o) == -1)
			goto nomem;
	nb_httpd_reply_json(req, 200,
	    json_pack("{s:o, s:o}", "events", arr, "next_after",
		next > 0 ? json_integer(next) : json_null()));
	arr = NULL;
	goto out;
nomem:
	json_decref(arr);
	reply_store_error(req);
out:
	nb_stored_events_free(ev, n);
	nb_dlq_query_clear(&q);
	evhttp_clear_headers(&kv);
}

static void
handle_show(struct nb_admin *a, struct evhttp_request *req, const char *key)
{
	struct nb_store_filter f;
	struct nb_stored_event *ev = NULL;
	const struct nb_source *src;
	const char *why = NULL;
	json_t *o, *track = NULL;
	size_t n = 0;

	memset(&f, 0, sizeof(f));
	f.key = key;
	f.states = NB_STATE_MASK_DEAD | NB_STATE_MASK_DELIVERED |
	    NB_STATE_MASK_PENDING;
	f.limit = 1;
	if (*key == '\0' || strlen(key) >= NB_STORE_KEY_MAX) {
		nb_httpd_reply_error(
		    req, 404, "not_found", "no event with that key");
		return;
	}
	if (nb_store_list(a->deps.store, &f, &ev, &n) == -1) {
		reply_store_error(req);
		return;
	}
	if (n == 0) {
		nb_httpd_reply_error(
		    req, 404, "not_found", "no event with that key");
		goto out;
	}
	if ((o = nb_dlq_event_json(&ev[0], 1)) == NULL) {
		reply_store_error(req);
		goto out;
	}
	if ((src = nb_config_source(a->cfg, ev[0].source)) != NULL &&
	    ev[0].raw != NULL)
		track = nb_segment_track(
		    &src->mapping, src->name, ev[0].raw, ev[0].rawlen, &why);
	json_object_set_new(o, "track", track != NULL ? track : json_null());
	if (track == NULL)
		json_object_set_new(o, "track_error",
		    json_string(src == NULL ? "source not configured"
			    : why != NULL   ? why
					    : "not mappable"));
	nb_httpd_reply_json(req, 200, o);
out:
	nb_stored_events_free(ev, n);
}

/*
 * Parses the optional JSON body of replay and purge.  A "keys" member (an
 * array of 1..ADMIN_MAX_KEYS dead-letter keys, for a selection) is taken
 * out into *keys (new reference, NULL when absent); the other members are
 * the dlq filters, applied to each key.
 */
static int
body_query(struct evhttp_request *req, struct nb_dlq_query *q, json_t **keys,
    char *err, size_t errlen)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;
	json_t *obj = NULL, *k, *v;
	const char *p;
	size_t i;
	int rc = -1;

	*keys = NULL;
	if (len > ADMIN_MAX_BODY) {
		snprintf(err, errlen, "the body is too large");
		return -1;
	}
	p = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
	for (i = 0; i < len &&
	     (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n');
	     i++)
		;
	if (i < len) {
		obj = json_loadb(p, len, JSON_REJECT_DUPLICATES, &jerr);
		if (obj == NULL) {
			snprintf(err, errlen, "the body is not valid JSON: %s",
			    jerr.text);
			return -1;
		}
	}
	if (json_is_object(obj) && (k = json_object_get(obj, "keys")) != NULL &&
	    !json_is_null(k)) {
		if (!json_is_array(k) || json_array_size(k) == 0 ||
		    json_array_size(k) > ADMIN_MAX_KEYS) {
			snprintf(err, errlen,
			    "keys: must be an array of 1 to %d keys",
			    ADMIN_MAX_KEYS);
			goto out;
		}
		json_array_foreach(k, i, v)
		{
			if (!json_is_string(v) || json_string_length(v) == 0 ||
			    json_string_length(v) >= NB_STORE_KEY_MAX) {
				snprintf(err, errlen,
				    "keys[%zu]: not a dead-letter key", i);
				goto out;
			}
		}
		if (json_object_get(obj, "key") != NULL) {
			snprintf(err, errlen, "give key or keys, not both");
			goto out;
		}
		*keys = json_incref(k);
		json_object_del(obj, "keys");
	}
	rc = nb_dlq_query_from_json(q, obj, nb_time_now_ms(), err, errlen);
out:
	if (rc == -1) {
		json_decref(*keys);
		*keys = NULL;
	}
	json_decref(obj);
	return rc;
}

static void
handle_replay(struct nb_admin *a, struct evhttp_request *req)
{
	struct nb_dlq_query q;
	size_t replayed = 0, requarantined = 0, r1, q1, i, nkeys;
	json_t *keys = NULL;
	char err[256];

	memset(&q, 0, sizeof(q));
	if (body_query(req, &q, &keys, err, sizeof(err)) == -1) {
		nb_httpd_reply_error(req, 400, "invalid_request", err);
		return;
	}
	nkeys = keys != NULL ? json_array_size(keys) : 1;
	for (i = 0; i < nkeys; i++) {
		if (keys != NULL)
			q.filter.key =
			    json_string_value(json_array_get(keys, i));
		r1 = q1 = 0;
		if (nb_store_replay(a->deps.store, &q.filter, q.dry_run,
			nb_time_now_ms(), nb_nudgespot_revalidate, &r1,
			&q1) == -1) {
			reply_store_error(req);
			goto out;
		}
		replayed += r1;
		requarantined += q1;
	}
	/* Re-validated events were replayed too, even if still invalid. */
	replayed += requarantined;
	log_info("dlq replay", " replayed=%zu requarantined=%zu dry_run=%d",
	    replayed, requarantined, q.dry_run);
	nb_httpd_reply_json(req, 200,
	    json_pack("{s:I, s:I, s:b}", "replayed", (json_int_t)replayed,
		"requarantined", (json_int_t)requarantined, "dry_run",
		q.dry_run));
out:
	q.filter.key = NULL;
	json_decref(keys);
	nb_dlq_query_clear(&q);
}

static void
handle_purge(struct nb_admin *a, struct evhttp_request *req)
{
	struct nb_dlq_query q;
	size_t purged = 0, p1, i, nkeys;
	json_t *keys = NULL;
	char err[256];

	memset(&q, 0, sizeof(q));
	if (body_query(req, &q, &keys, err, sizeof(err)) == -1) {
		nb_httpd_reply_error(req, 400, "invalid_request", err);
		return;
	}
	nkeys = keys != NULL ? json_array_size(keys) : 1;
	for (i = 0; i < nkeys; i++) {
		if (keys != NULL)
			q.filter.key =
			    json_string_value(json_array_get(keys, i));
		p1 = 0;
		if (nb_store_purge(a->deps.store, &q.filter, q.dry_run, &p1) ==
		    -1) {
			reply_store_error(req);
			goto out;
		}
		purged += p1;
	}
	log_info("dlq purge", " purged=%zu dry_run=%d", purged, q.dry_run);
	nb_httpd_reply_json(req, 200,
	    json_pack("{s:I, s:b}", "purged", (json_int_t)purged, "dry_run",
		q.dry_run));
out:
	q.filter.key = NULL;
	json_decref(keys);
	nb_dlq_query_clear(&q);
}

static void
admin_cb(struct evhttp_request *req, void *arg)
{
	struct nb_admin *a = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	int get = m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD;
	int64_t now = nb_time_mono_ms();
	char *key = NULL;

	/* The console page is static and public; its API calls are not. */
	if (get && nb_console_match(path)) {
		nb_console_serve(req, path);
		return;
	}
	if (now < a->locked_until) {
		reply_retry_after(req, 429, "too_many_attempts",
		    "too many failed authentications; retry later",
		    (a->locked_until - now + 999) / 1000);
		return;
	}
	if (!authorized(a, req)) {
		log_warn("admin authentication failed", " path_len=%zu",
		    path != NULL ? strlen(path) : (size_t)0);
		if (record_failure(a, now)) {
			reply_retry_after(req, 429, "too_many_attempts",
			    "too many failed authentications; retry later",
			    ADMIN_FAIL_WINDOW_MS / 1000);
			return;
		}
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", "Bearer");
		nb_httpd_reply_error(req, 401, "unauthorized",
		    "a valid Authorization: Bearer token is required");
		return;
	}
	if (path == NULL) {
		nb_httpd_reply_error(req, 404, "not_found", "no such path");
		return;
	}
	if (strcmp(path, "/v1/stats") == 0) {
		if (!get)
			reply_405(req, "GET, HEAD");
		else
			handle_stats(a, req);
		return;
	}
	if (strcmp(path, "/v1/dlq") == 0) {
		if (!get)
			reply_405(req, "GET, HEAD");
		else
			handle_list(a, req);
		return;
	}
	if (strcmp(path, "/v1/dlq/replay") == 0) {
		if (m != EVHTTP_REQ_POST)
			reply_405(req, "POST");
		else
			handle_replay(a, req);
		return;
	}
	if (strcmp(path, "/v1/dlq/purge") == 0) {
		if (m != EVHTTP_REQ_POST)
			reply_405(req, "POST");
		else
			handle_purge(a, req);
		return;
	}
	if (strncmp(path, "/v1/dlq/", 8) == 0 &&
	    strchr(path + 8, '/') == NULL) {
		if (!get) {
			reply_405(req, "GET, HEAD");
			return;
		}
		if ((key = evhttp_uridecode(path + 8, 0, NULL)) == NULL) {
			reply_store_error(req);
			return;
		}
		handle_show(a, req, key);
		free(key);
		return;
	}
	if (nb_admin_events_route(a->events, a->cfg, req, path))
		return;
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
	a->lst = nb_httpd_new(a->deps.base, addr, -1, &ops, &l, err, errlen);
	if (a->lst == NULL)
		return -1;
	/* The first rates' baseline; a failure leaves it to the first call. */
	(void)nb_rates_update(a->rates, a->deps.store, nb_time_now_ms());
	return 0;
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
	if ((a->rates = nb_rates_new()) == NULL ||
	    (a->events = nb_admin_events_new(deps->base, deps->store)) ==
		NULL) {
		snprintf(err, errlen, "out of memory");
		nb_admin_free(a);
		return NULL;
	}
	if (cfg->admin_token == NULL || cfg->admin_listen == NULL)
		return a;
	if (admin_bind(a, cfg->admin_listen, err, errlen) == -1) {
		nb_admin_free(a);
		return NULL;
	}
	return a;
}

int
nb_admin_port(const struct nb_admin *a)
{
	return a != NULL && a->lst != NULL ? nb_httpd_port(a->lst) : 0;
}

void
nb_admin_reload(struct nb_admin *a, struct nb_config *cfg)
{
	struct nb_config *old = a->cfg;
	struct nb_httpd_limits l;
	char err[256], qerr[300];

	a->cfg = nb_config_ref(cfg);
	nb_config_unref(old);
	a->nfails = a->fhead = 0;
	a->locked_until = 0;
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

void
nb_admin_drain(struct nb_admin *a)
{
	if (a != NULL)
		a->draining = 1;
}

void
nb_admin_free(struct nb_admin *a)
{
	if (a == NULL)
		return;
	/* An erase under way is answered before its listener goes. */
	nb_admin_events_free(a->events);
	nb_httpd_free(a->lst);
	nb_config_unref(a->cfg);
	nb_rates_free(a->rates);
	free(a);
}
