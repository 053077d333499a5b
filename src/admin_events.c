/* SPDX-License-Identifier: ISC */
/*
 * admin_events: /v1/events, /v1/events/{key}, /v1/erase and /v1/audit.
 *
 * Every handler answers exactly once, as a flat list of early returns.
 * The erase is the one operation that may take long (events held by a
 * deliverer are waited for, see nb_store_erase()), so it runs on a thread
 * of its own: the thread opens its own store connection, erases, closes
 * it and wakes the admin base through an event, whose callback joins the
 * thread and answers the request.  The request stays valid meanwhile:
 * evhttp keeps a request that is not answered yet even when its client
 * went away.  One erase at a time; a second is answered 503 with
 * Retry-After.  Nothing here logs an address (events.c logs the digest).
 */
#include <sys/queue.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "nudgebridge/admin_events.h"
#include "nudgebridge/config.h"
#include "nudgebridge/events.h"
#include "nudgebridge/httpd.h"
#include "nudgebridge/log.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"

#define AUDIT_LIMIT_DEFAULT 100
#define EVENTS_PREFIX	    "/v1/events/"

/* An erase running on its own thread. */
struct erase_job {
	struct nb_admin_events *ae;
	struct evhttp_request *req;
	struct nb_config *cfg; /* a reference */
	json_t *body;	       /* holds the strings e points to */
	struct nb_store_erase e;
	json_t *answer; /* NULL: the erase failed */
	int open_failed;
	pthread_t thread;
};

struct nb_admin_events {
	struct event_base *base;
	struct event *done;
	struct erase_job *job; /* the erase under way, or NULL */
};

static void
reply_unavailable(struct evhttp_request *req, const char *msg)
{
	char ra[16];

	snprintf(ra, sizeof(ra), "%d", NB_HTTPD_RETRY_AFTER_S);
	evhttp_add_header(
	    evhttp_request_get_output_headers(req), "Retry-After", ra);
	nb_httpd_reply_error(req, 503, "unavailable", msg);
}

static void
reply_405(struct evhttp_request *req, const char *allow)
{
	evhttp_add_header(
	    evhttp_request_get_output_headers(req), "Allow", allow);
	nb_httpd_reply_error(
	    req, 405, "method_not_allowed", "method not allowed on this path");
}

/* The query string's parameters into kv; 0, or -1 (answered 400). */
static int
query_of(struct evhttp_request *req, struct evkeyvalq *kv)
{
	const char *q =
	    evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));

	TAILQ_INIT(kv);
	if (q != NULL && evhttp_parse_query_str(q, kv) == -1) {
		nb_httpd_reply_error(req, 400, "invalid_request",
		    "the query string cannot be parsed");
		return -1;
	}
	return 0;
}

static void
handle_list(struct nb_store *store, struct evhttp_request *req)
{
	struct nb_events_query q;
	struct evkeyvalq kv;
	json_t *page;
	char err[256];
	if (store == NULL) {
		reply_unavailable(
		    req, "the store cannot answer now; retry later");
		return;
	}

	if (query_of(req, &kv) == -1)
		return;
	if (nb_events_query_from_kv(
		&q, &kv, nb_time_now_ms(), err, sizeof(err)) == -1) {
		nb_httpd_reply_error(req, 400, "invalid_request", err);
		evhttp_clear_headers(&kv);
		return;
	}
	evhttp_clear_headers(&kv);
	/* One bounded page; the cursor is the client's to follow. */
	if ((page = nb_events_list(store, &q, 1)) == NULL)
		reply_unavailable(
		    req, "the store cannot answer now; retry later");
	else
		nb_httpd_reply_json(req, 200, page);
	nb_events_query_clear(&q);
}

static void
handle_show(struct nb_store *store, struct nb_config *cfg,
    struct evhttp_request *req, const char *path)
{
	json_t *o;
	char *key;
	int found;
	if (store == NULL) {
		reply_unavailable(
		    req, "the store cannot answer now; retry later");
		return;
	}

	if ((key = evhttp_uridecode(path + strlen(EVENTS_PREFIX), 0, NULL)) ==
	    NULL) {
		reply_unavailable(req, "out of memory; retry later");
		return;
	}
	o = nb_events_show(store, cfg, key, &found);
	free(key);
	if (o == NULL) {
		reply_unavailable(
		    req, "the store cannot answer now; retry later");
		return;
	}
	if (!found) {
		json_decref(o);
		nb_httpd_reply_error(
		    req, 404, "not_found", "no event with that key");
		return;
	}
	nb_httpd_reply_json(req, 200, o);
}

static void
handle_audit(struct nb_store *store, struct evhttp_request *req)
{
	struct evkeyvalq kv;
	const struct evkeyval *e;
	const char *after = NULL;
	long long limit = AUDIT_LIMIT_DEFAULT;
	char *end;
	json_t *page;
	int bad = 0;
	if (store == NULL) {
		reply_unavailable(
		    req, "the store cannot answer now; retry later");
		return;
	}

	if (query_of(req, &kv) == -1)
		return;
	TAILQ_FOREACH(e, &kv, next)
	{
		if (strcmp(e->key, "after") == 0)
			after = e->value;
		else if (strcmp(e->key, "limit") == 0) {
			limit = strtoll(e->value, &end, 10);
			bad |= *e->value == '\0' || *end != '\0';
		} else
			bad = 1;
	}
	page = bad
	    ? NULL
	    : nb_events_audit(store, after,
		  limit > 0 && limit <= NB_EVENTS_LIMIT_MAX ? (size_t)limit : 0,
		  &bad);
	evhttp_clear_headers(&kv);
	if (bad)
		nb_httpd_reply_error(req, 400, "invalid_request",
		    "the audit takes limit (1 to 1000) and after (a page's "
		    "\"next\")");
	else if (page == NULL)
		reply_unavailable(
		    req, "the store cannot answer now; retry later");
	else
		nb_httpd_reply_json(req, 200, page);
}

static void
job_free(struct erase_job *j)
{
	if (j == NULL)
		return;
	json_decref(j->body);
	json_decref(j->answer);
	nb_config_unref(j->cfg);
	free(j);
}

static void *
job_main(void *arg)
{
	struct erase_job *j = arg;
	struct nb_store *st = NULL;
	char err[256];

	if (nb_store_open(&st, &j->cfg->store, err, sizeof(err)) == -1) {
		log_error("erase: cannot open the store", NULL);
		j->open_failed = 1;
	} else
		j->answer = nb_events_erase(st, &j->e);
	nb_store_close(st);
	event_active(j->ae->done, EV_READ, 0);
	return NULL;
}

/* The erase ended (on the admin thread): answer and forget it. */
static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_admin_events *ae = arg;
	struct erase_job *j = ae->job;

	(void)fd;
	(void)what;
	if (j == NULL)
		return;
	pthread_join(j->thread, NULL);
	ae->job = NULL;
	if (j->answer != NULL) {
		nb_httpd_reply_json(j->req, 200, j->answer);
		j->answer = NULL;
	} else
		reply_unavailable(j->req,
		    j->open_failed
			? "the store cannot be opened now; retry later"
			: "the erase did not finish (events still held by a "
			  "deliverer, or the store failed); what was erased "
			  "stays erased, retry to finish");
	job_free(j);
}

static void
handle_erase(struct nb_admin_events *ae, struct nb_config *cfg,
    struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	struct erase_job *j;
	json_error_t jerr;
	char err[256];

	if (ae->job != NULL) {
		reply_unavailable(req, "another erase is running; retry later");
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		reply_unavailable(req, "out of memory; retry later");
		return;
	}
	j->body =
	    json_loadb(len > 0 ? (const char *)evbuffer_pullup(in, -1) : "",
		len, JSON_REJECT_DUPLICATES, &jerr);
	if (j->body == NULL ||
	    nb_events_erase_args(&j->e, j->body, err, sizeof(err)) == -1) {
		nb_httpd_reply_error(req, 400, "invalid_request",
		    j->body == NULL ? "the body is not a JSON object" : err);
		job_free(j);
		return;
	}
	j->ae = ae;
	j->req = req;
	j->cfg = nb_config_ref(cfg);
	j->e.actor = "admin";
	j->e.now_ms = nb_time_now_ms();
	j->e.wait_ms = nb_events_erase_wait_ms(cfg);
	if (pthread_create(&j->thread, NULL, job_main, j) != 0) {
		reply_unavailable(req, "cannot start the erase; retry later");
		job_free(j);
		return;
	}
	ae->job = j;
}

struct nb_admin_events *
nb_admin_events_new(struct event_base *base)
{
	struct nb_admin_events *ae;

	if ((ae = calloc(1, sizeof(*ae))) == NULL)
		return NULL;
	ae->base = base;
	if ((ae->done = event_new(base, -1, 0, done_cb, ae)) == NULL) {
		free(ae);
		return NULL;
	}
	return ae;
}

void
nb_admin_events_free(struct nb_admin_events *ae)
{
	if (ae == NULL)
		return;
	/* The erase ends within its wait; its answer goes out now. */
	if (ae->job != NULL)
		done_cb(-1, 0, ae);
	event_free(ae->done);
	free(ae);
}

int
nb_admin_events_route(struct nb_admin_events *ae, struct nb_config *cfg,
    struct nb_store *store, struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	int get = m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD;

	if (strcmp(path, "/v1/events") == 0) {
		if (!get)
			reply_405(req, "GET, HEAD");
		else
			handle_list(store, req);
		return 1;
	}
	if (strncmp(path, EVENTS_PREFIX, strlen(EVENTS_PREFIX)) == 0 &&
	    path[strlen(EVENTS_PREFIX)] != '\0' &&
	    strchr(path + strlen(EVENTS_PREFIX), '/') == NULL) {
		if (!get)
			reply_405(req, "GET, HEAD");
		else
			handle_show(store, cfg, req, path);
		return 1;
	}
	if (strcmp(path, "/v1/erase") == 0) {
		if (m != EVHTTP_REQ_POST)
			reply_405(req, "POST");
		else
			handle_erase(ae, cfg, req);
		return 1;
	}
	if (strcmp(path, "/v1/audit") == 0) {
		if (!get)
			reply_405(req, "GET, HEAD");
		else
			handle_audit(store, req);
		return 1;
	}
	return 0;
}
