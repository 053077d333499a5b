/* SPDX-License-Identifier: ISC */
/*
 * events: search, show, erase and audit as JSON (see events.h).
 *
 * The filter grammar is dlq.c's, reused whole: the keys of this module
 * (email, uid, the cursor) are taken out of the object and the rest goes
 * to nb_operate_query_parse(), so every door validates alike.  The cursor
 * is the seq below which the next page starts, written as a string so
 * that nobody does arithmetic on it.  The Track message is the mapper's
 * own output for the stored text under the running configuration, the
 * message a send would carry now.  Nothing here keeps state; the log
 * lines name a person only by the digest the audit keeps.
 */
#include <sys/queue.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "nudgebridge/config.h"
#include "nudgebridge/events.h"
#include "nudgebridge/log.h"
#include "nudgebridge/person.h"
#include "nudgebridge/segment.h"
#include "nudgebridge/timeutil.h"

#define EVENTS_ALL                                                             \
	(NB_STATE_MASK_PENDING | NB_STATE_MASK_DELIVERED | NB_STATE_MASK_DEAD)
/* A deliverer's lease margin beyond one request (lane.c's). */
#define EVENTS_LEASE_MARGIN_MS 5000

void
nb_events_query_clear(struct nb_events_query *q)
{
	if (q == NULL)
		return;
	nb_operate_query_clear(&q->dq);
	free(q->email);
	free(q->uid);
	memset(q, 0, sizeof(*q));
}

/* A cursor ("next" of a page): the decimal seq of the page's bound. */
static int
cursor_parse(const char *s, int64_t *seq)
{
	char *end;
	long long v;

	if (s == NULL || *s < '0' || *s > '9' || strlen(s) > 19)
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return -1;
	*seq = v;
	return 0;
}

#define PERSON_RULE "must be a non-empty string without control characters"

/* 1 when v is a string a person can be looked up by (person.h's rule). */
static int
person_string(const json_t *v)
{
	return json_is_string(v) &&
	    strlen(json_string_value(v)) == json_string_length(v) &&
	    nb_person_value_valid(json_string_value(v)) == 0;
}

/* Takes the person member key out of obj into *out (validated). */
static int
take_person(json_t *obj, const char *key, char **out, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!person_string(v)) {
		snprintf(err, errlen, "%s: " PERSON_RULE, key);
		return -1;
	}
	if ((*out = strdup(json_string_value(v))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	json_object_del(obj, key);
	return 0;
}

int
nb_events_query_from_json(struct nb_events_query *q, const json_t *obj,
    int64_t now_ms, char *err, size_t errlen)
{
	json_t *rest = NULL, *v;
	int64_t before = 0;
	int rc = -1, stated;

	memset(q, 0, sizeof(*q));
	if (obj != NULL && !json_is_object(obj)) {
		snprintf(err, errlen, "the filter must be a JSON object");
		return -1;
	}
	if ((rest = obj != NULL ? json_copy((json_t *)(uintptr_t)obj)
				: json_object()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (json_object_get(rest, "dry_run") != NULL) {
		snprintf(err, errlen, "unknown filter key: dry_run");
		goto out;
	}
	if (take_person(rest, "email", &q->email, err, errlen) == -1 ||
	    take_person(rest, "uid", &q->uid, err, errlen) == -1)
		goto out;
	if ((v = json_object_get(rest, "after")) != NULL && !json_is_null(v)) {
		if (!json_is_string(v) ||
		    cursor_parse(json_string_value(v), &before) == -1) {
			snprintf(err, errlen,
			    "after: not a cursor (give a page's \"next\")");
			goto out;
		}
	}
	json_object_del(rest, "after");
	stated = json_object_get(rest, "state") != NULL &&
	    !json_is_null(json_object_get(rest, "state"));
	if (nb_operate_query_parse(
		&q->dq, NB_OPERATE_LIST, rest, now_ms, err, errlen) == -1)
		goto out;
	if (!stated)
		q->dq.filter.states = EVENTS_ALL;
	if (q->dq.filter.limit == 0)
		q->dq.filter.limit = NB_EVENTS_LIMIT_DEFAULT;
	if (q->dq.filter.limit > NB_EVENTS_LIMIT_MAX) {
		snprintf(err, errlen, "limit: must be an integer from 1 to %d",
		    NB_EVENTS_LIMIT_MAX);
		goto out;
	}
	q->dq.filter.email = q->email;
	q->dq.filter.uid = q->uid;
	q->dq.filter.before_seq = before;
	q->dq.filter.newest_first = 1;
	rc = 0;
out:
	json_decref(rest);
	if (rc == -1)
		nb_events_query_clear(q);
	return rc;
}

int
nb_events_query_from_kv(struct nb_events_query *q, const struct evkeyvalq *kv,
    int64_t now_ms, char *err, size_t errlen)
{
	const struct evkeyval *e;
	json_t *obj, *v;
	long long n;
	char *end;
	int rc = -1;

	memset(q, 0, sizeof(*q));
	if ((obj = json_object()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	TAILQ_FOREACH(e, kv, next)
	{
		if (json_object_get(obj, e->key) != NULL) {
			snprintf(err, errlen, "%.64s: given twice", e->key);
			goto out;
		}
		if (strcmp(e->key, "limit") == 0) {
			errno = 0;
			n = strtoll(e->value, &end, 10);
			if (*e->value == '\0' || *end != '\0' || errno != 0) {
				snprintf(err, errlen,
				    "limit: must be an "
				    "integer");
				goto out;
			}
			v = json_integer(n);
		} else
			v = json_string(e->value);
		if (v == NULL || json_object_set_new(obj, e->key, v) == -1) {
			snprintf(err, errlen, "%.64s: not valid UTF-8", e->key);
			goto out;
		}
	}
	rc = nb_events_query_from_json(q, obj, now_ms, err, errlen);
out:
	json_decref(obj);
	return rc;
}

/* A seq as a cursor, or null. */
static json_t *
cursor_json(int64_t seq)
{
	char s[24];

	if (seq <= 0)
		return json_null();
	snprintf(s, sizeof(s), "%lld", (long long)seq);
	return json_string(s);
}

json_t *
nb_events_list(
    struct nb_store *s, const struct nb_events_query *q, size_t pages)
{
	struct nb_store_filter f = q->dq.filter;
	struct nb_stored_event *ev = NULL;
	json_t *arr, *o;
	size_t n = 0, i, got = 0, page;
	int64_t next = 0;

	if ((arr = json_array()) == NULL)
		return NULL;
	f.max_scan = NB_STORE_CHUNK_SCAN;
	for (page = 0; page < (pages > 0 ? pages : 1); page++) {
		f.limit = q->dq.filter.limit - got;
		if (nb_store_list_page(s, &f, &ev, &n, &next) == -1)
			goto fail;
		for (i = 0; i < n; i++)
			if ((o = nb_operate_event_json(&ev[i], 0)) == NULL ||
			    json_array_append_new(arr, o) == -1)
				goto fail;
		got += n;
		nb_stored_events_free(ev, n);
		ev = NULL;
		n = 0;
		if (next == 0 || got >= q->dq.filter.limit)
			break;
		f.before_seq = next;
	}
	return json_pack(
	    "{s:o, s:o}", "events", arr, "next", cursor_json(next));
fail:
	nb_stored_events_free(ev, n);
	json_decref(arr);
	return NULL;
}

static json_t *
attempt_json(const struct nb_store_attempt_row *a)
{
	char at[NB_TIME_ISO_LEN];

	nb_time_format_iso(a->at_ms, at);
	return json_pack("{s:s, s:o, s:o, s:I, s:I}", "at", at, "status",
	    a->status > 0 ? json_integer(a->status) : json_null(), "error",
	    a->error != NULL ? json_string(a->error) : json_null(),
	    "batch_size", (json_int_t)a->batch_size, "latency_ms",
	    (json_int_t)(a->end_ms - a->at_ms));
}

/* "event", "track" (or "track_error") and "attempts" added to o. */
static int
show_detail(struct nb_store *s, const struct nb_config *cfg,
    const struct nb_stored_event *ev, json_t *o)
{
	struct nb_store_attempt_row *at = NULL;
	const struct nb_source *src;
	const char *why = NULL;
	json_t *event = NULL, *track = NULL, *arr = NULL, *a;
	size_t n = 0, i;
	int rc = -1;

	if (ev->raw != NULL &&
	    (event = json_loadb(ev->raw, ev->rawlen, JSON_DECODE_ANY, NULL)) ==
		NULL)
		event = json_stringn(ev->raw, ev->rawlen);
	if ((src = nb_config_source(cfg, ev->source)) != NULL)
		track = nb_operate_track(src, nb_store_install_id(s), ev, &why);
	if (track == NULL &&
	    json_object_set_new(o, "track_error",
		json_string(src == NULL ? "source not configured"
			: why != NULL	? why
					: "not mappable")) == -1)
		goto out;
	if (nb_store_attempts(s, ev->seq, &at, &n) == -1 ||
	    (arr = json_array()) == NULL)
		goto out;
	for (i = 0; i < n; i++)
		if ((a = attempt_json(&at[i])) == NULL ||
		    json_array_append_new(arr, a) == -1)
			goto out;
	/* "attempts" is the history here; the row's counter is "tries". */
	if (json_object_set_new(o, "tries", json_integer(ev->attempts)) == -1 ||
	    json_object_set_new(
		o, "event", event != NULL ? event : json_null()) == -1 ||
	    json_object_set_new(
		o, "track", track != NULL ? track : json_null()) == -1 ||
	    json_object_set_new(o, "attempts", arr) == -1) {
		event = track = arr = NULL;
		goto out;
	}
	event = track = arr = NULL;
	rc = 0;
out:
	json_decref(event);
	json_decref(track);
	json_decref(arr);
	nb_store_attempts_free(at, n);
	return rc;
}

json_t *
nb_events_show(struct nb_store *s, const struct nb_config *cfg, const char *key,
    int *found)
{
	struct nb_store_filter f;
	struct nb_stored_event *ev = NULL;
	json_t *o = NULL;
	size_t n = 0;

	*found = 0;
	memset(&f, 0, sizeof(f));
	f.key = key;
	f.states = EVENTS_ALL;
	f.limit = 1;
	if (strlen(key) >= NB_STORE_KEY_MAX)
		return json_null();
	if (nb_store_list(s, &f, &ev, &n) == -1)
		return NULL;
	if (n == 0) {
		o = json_null();
		goto out;
	}
	*found = 1;
	if ((o = nb_operate_event_json(&ev[0], 0)) == NULL)
		goto out;
	if (show_detail(s, cfg, &ev[0], o) == -1) {
		json_decref(o);
		o = NULL;
	}
out:
	nb_stored_events_free(ev, n);
	return o;
}

int
nb_events_erase_args(
    struct nb_store_erase *e, const json_t *obj, char *err, size_t errlen)
{
	static const char *const keys[] = {"email", "uid", "dry_run"};
	const json_t *v;
	const char *k;
	size_t i;

	memset(e, 0, sizeof(*e));
	if (!json_is_object(obj)) {
		snprintf(err, errlen, "the body must be a JSON object");
		return -1;
	}
	json_object_foreach((json_t *)(uintptr_t)obj, k, v)
	{
		for (i = 0; i < 3 && strcmp(k, keys[i]) != 0; i++)
			;
		if (i == 3) {
			snprintf(err, errlen, "unknown key: %.64s", k);
			return -1;
		}
		if (i == 2 && !json_is_boolean(v)) {
			snprintf(err, errlen, "dry_run: must be true or false");
			return -1;
		}
		if (i == 2) {
			e->dry_run = json_is_true(v);
			continue;
		}
		if (!person_string(v)) {
			snprintf(err, errlen, "%s: " PERSON_RULE, k);
			return -1;
		}
		if (i == 0)
			e->who.email = json_string_value(v);
		else
			e->who.uid = json_string_value(v);
	}
	if ((e->who.email == NULL) == (e->who.uid == NULL)) {
		snprintf(err, errlen, "give one of email and uid");
		return -1;
	}
	return 0;
}

json_t *
nb_events_audit_json(const struct nb_store_audit *a)
{
	char at[NB_TIME_ISO_LEN];

	nb_time_format_iso(a->at_ms, at);
	return json_pack(
	    "{s:I, s:s, s:s, s:s, s:s, s:b, s:b, s:I, s:I, s:I, s:I}", "id",
	    (json_int_t)a->id, "at", at, "actor", a->actor, "kind", a->kind,
	    "subject", a->subject, "dry_run", a->dry_run, "complete",
	    a->complete, "erased", (json_int_t)a->events, "pending",
	    (json_int_t)a->pending, "delivered", (json_int_t)a->delivered,
	    "dead", (json_int_t)a->dead);
}

json_t *
nb_events_erase(struct nb_store *s, const struct nb_store_erase *e)
{
	struct nb_store_audit a;
	json_t *o;

	if (nb_store_erase(s, e, &a) == -1)
		return NULL;
	log_info(a.dry_run ? "erase counted" : "erased",
	    " actor=%s kind=%s subject=%s events=%lld pending=%lld"
	    " delivered=%lld dead=%lld audit_id=%lld",
	    a.actor, a.kind, a.subject, (long long)a.events,
	    (long long)a.pending, (long long)a.delivered, (long long)a.dead,
	    (long long)a.id);
	if ((o = nb_events_audit_json(&a)) == NULL)
		return NULL;
	if (json_object_set_new(o, "audit_id", json_integer(a.id)) == -1 ||
	    json_object_del(o, "id") == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *
nb_events_audit(struct nb_store *s, const char *after, size_t limit, int *bad)
{
	struct nb_store_audit *v = NULL;
	int64_t before = 0, next = 0;
	json_t *arr = NULL, *o;
	size_t n = 0, i;

	*bad = 0;
	if ((after != NULL && cursor_parse(after, &before) == -1) ||
	    limit < 1 || limit > NB_EVENTS_LIMIT_MAX) {
		*bad = 1;
		return NULL;
	}
	if (nb_store_audit_list(s, before, limit, &v, &n, &next) == -1)
		return NULL;
	if ((arr = json_array()) == NULL)
		goto fail;
	for (i = 0; i < n; i++)
		if ((o = nb_events_audit_json(&v[i])) == NULL ||
		    json_array_append_new(arr, o) == -1)
			goto fail;
	free(v);
	return json_pack("{s:o, s:o}", "audit", arr, "next", cursor_json(next));
fail:
	json_decref(arr);
	free(v);
	return NULL;
}

int64_t
nb_events_erase_wait_ms(const struct nb_config *cfg)
{
	int64_t lease = (int64_t)cfg->store.lease_s * 1000;
	int64_t request =
	    (int64_t)cfg->segment.timeout_ms + EVENTS_LEASE_MARGIN_MS;

	return (lease > request ? lease : request) + EVENTS_LEASE_MARGIN_MS;
}
