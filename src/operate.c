/* SPDX-License-Identifier: ISC */
/*
 * operate: the operator's use cases, once, for every face.
 *
 * The operations' table gives each operation its checks, its step
 * function and whether a step may block; the grammar that fills a query
 * is operate_query.c's.  A job never holds more than one step's rows: a
 * list or search step is one bounded page, a replay or purge step one
 * window of keys (or a few dozen given keys), so its cost is bounded
 * whatever the store holds, and the store itself commits each chunk
 * apart.  An erase is the one step that may wait (for the events a
 * deliverer holds, up to a lease); its face gives it a thread.  Events
 * are shown one way (nb_operate_event_json()) and mapped one way
 * (nb_operate_track()).  Nothing here knows a socket or a terminal, and
 * nothing keeps state between jobs; the log lines name a person only by
 * the digest the audit keeps.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nudgebridge/config.h"
#include "nudgebridge/log.h"
#include "nudgebridge/nudgespot.h"
#include "nudgebridge/operate.h"
#include "nudgebridge/segment.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"

#define ALL_STATES                                                             \
	(NB_STATE_MASK_DEAD | NB_STATE_MASK_DELIVERED | NB_STATE_MASK_PENDING)

#define KEYS_PER_STEP 50		  /* a selection's keys done per step */
#define WINDOW	      NB_STORE_CHUNK_SCAN /* keys a filter's step spans */

/* A deliverer's lease margin beyond one request (lane.c's). */
#define LEASE_MARGIN_MS 5000

/* Events as JSON. */

static const char *
state_str(enum nb_event_state s)
{
	switch (s) {
	case NB_STATE_PENDING:
		return "pending";
	case NB_STATE_DELIVERED:
		return "delivered";
	case NB_STATE_DEAD:
		return "dead";
	}
	return "unknown";
}

static json_t *
string_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* A page's cursor ("next"): a seq as a decimal string, or null. */
static json_t *
cursor_json(int64_t seq)
{
	char s[24];

	if (seq <= 0)
		return json_null();
	snprintf(s, sizeof(s), "%lld", (long long)seq);
	return json_string(s);
}

/* The stored event itself, or its text when it is not JSON; NULL: none. */
static json_t *
payload_json(const struct nb_stored_event *ev)
{
	json_t *p;

	if (ev->raw == NULL)
		return NULL;
	if ((p = json_loadb(ev->raw, ev->rawlen, JSON_DECODE_ANY, NULL)) ==
	    NULL)
		p = json_stringn(ev->raw, ev->rawlen);
	return p;
}

json_t *
nb_operate_event_json(const struct nb_stored_event *ev, int detail)
{
	char received[NB_TIME_ISO_LEN], updated[NB_TIME_ISO_LEN];
	json_t *o = NULL, *payload;

	nb_time_format_iso(ev->received_ms, received);
	nb_time_format_iso(ev->updated_ms, updated);
	o = json_pack("{s:s, s:o, s:s, s:o, s:o, s:s, s:s, s:i, s:s, s:s}",
	    "key", ev->key, "id", string_or_null(ev->id), "source",
	    ev->source != NULL ? ev->source : "", "type",
	    string_or_null(ev->type), "reason", string_or_null(ev->reason),
	    "error", ev->error != NULL ? ev->error : "", "state",
	    state_str(ev->state), "attempts", ev->attempts, "received_at",
	    received, "updated_at", updated);
	if (o == NULL || !detail)
		return o;
	payload = payload_json(ev);
	if (json_object_set_new(
		o, "payload", payload != NULL ? payload : json_null()) == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *
nb_operate_track(const struct nb_source *src, const char *install_id,
    const struct nb_stored_event *ev, const char **why)
{
	struct nb_segment_install install;
	struct nb_segment_origin o = {src->name, ev->rule, NULL};

	*why = NULL;
	if (ev->raw == NULL)
		return NULL;
	if (nb_segment_install_init(&install, install_id) == 0)
		o.install = &install;
	return nb_segment_track(&src->mapping, &o, ev->raw, ev->rawlen, why);
}

/*
 * The event's Track message under cfg's mapping of its source, or NULL
 * with *why saying why not: what show and event answer.
 */
static json_t *
track_or_why(const struct nb_config *cfg, struct nb_store *store,
    const struct nb_stored_event *ev, const char **why)
{
	const struct nb_source *src = nb_config_source(cfg, ev->source);
	json_t *track = NULL;

	*why = NULL;
	if (src != NULL)
		track =
		    nb_operate_track(src, nb_store_install_id(store), ev, why);
	if (track == NULL)
		*why = src == NULL ? "source not configured"
		    : *why != NULL ? *why
				   : "not mappable";
	return track;
}

static json_t *
attempt_json(const struct nb_store_attempt_row *a)
{
	char at[NB_TIME_ISO_LEN];

	nb_time_format_iso(a->at_ms, at);
	return json_pack("{s:s, s:o, s:o, s:I, s:I}", "at", at, "status",
	    a->status > 0 ? json_integer(a->status) : json_null(), "error",
	    string_or_null(a->error), "batch_size", (json_int_t)a->batch_size,
	    "latency_ms", (json_int_t)(a->end_ms - a->at_ms));
}

/* An audit entry: what the audit lists and, renumbered, what erase says. */
static json_t *
audit_json(const struct nb_store_audit *a)
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

/* Jobs. */

enum walk {
	WALK_ONE,     /* one key: one call */
	WALK_KEYS,    /* a selection: KEYS_PER_STEP keys a step */
	WALK_WINDOWS, /* a filter: WINDOW keys a step, up to top */
};

struct nb_operate_job {
	enum nb_operate_op op;
	struct nb_store *store;
	struct nb_config *cfg;
	const char *face;
	struct nb_operate_query q;
	int done;
	json_t *answer;
	/* list and search */
	json_t *events;
	int64_t cursor; /* where the next page starts */
	size_t pages;	/* pages looked at */
	/* replay and purge */
	enum walk walk;
	int started;
	size_t nextkey; /* WALK_KEYS: the next key to do */
	int64_t lo;	/* WALK_WINDOWS: keys up to lo are done */
	int64_t top;	/* the newest key when the walk began */
	size_t left;	/* rows the limit still allows */
	size_t touched, requarantined;
	json_t *keys_out;
	int keys_truncated;
	/* erase */
	struct nb_store_erase erase;
};

/* What each operation checks at the start, and its step. */
struct op_def {
	enum nb_operate_status (*begin)(
	    struct nb_operate_job *, char *err, size_t errlen);
	enum nb_operate_status (*step)(
	    struct nb_operate_job *, char *err, size_t errlen);
	int blocks; /* a step may wait for long */
};

/* The rows left under the limit after n more (limit 0: no limit). */
static int
limit_used_up(struct nb_operate_job *j, size_t n)
{
	if (j->q.filter.limit == 0)
		return 0;
	j->left = n >= j->left ? 0 : j->left - n;
	return j->left == 0;
}

/* List and search: pages of the store's rows. */

static enum nb_operate_status
page_begin(struct nb_operate_job *j, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	if (j->q.filter.limit == 0 && j->op == NB_OPERATE_SEARCH)
		j->q.filter.limit = NB_OPERATE_SEARCH_DEFAULT;
	if (j->q.filter.limit == 0 && j->q.one_page)
		j->q.filter.limit = NB_OPERATE_PAGE_DEFAULT;
	j->left = j->q.filter.limit;
	/* A search goes newest first: its pages start below the cursor. */
	j->cursor = j->q.filter.after_seq;
	j->q.filter.after_seq = 0;
	j->q.filter.newest_first = j->op == NB_OPERATE_SEARCH;
	if ((j->events = json_array()) == NULL)
		return NB_OPERATE_UNAVAILABLE;
	return NB_OPERATE_OK;
}

static int
append_events(json_t *arr, const struct nb_stored_event *ev, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (json_array_append_new(
			arr, nb_operate_event_json(&ev[i], 0)) == -1)
			return -1;
	return 0;
}

/* The answer of a list or a search whose last page ended at next. */
static json_t *
page_answer(struct nb_operate_job *j, int64_t next)
{
	if (j->op == NB_OPERATE_SEARCH)
		return json_pack("{s:O, s:o}", "events", j->events, "next",
		    cursor_json(next));
	return json_pack("{s:O, s:o}", "events", j->events, "next_after",
	    j->q.one_page && next > 0 ? json_integer(next) : json_null());
}

/* One page of at most NB_STORE_CHUNK_SCAN rows looked at. */
static enum nb_operate_status
page_step(struct nb_operate_job *j, char *err, size_t errlen)
{
	struct nb_store_filter f = j->q.filter;
	struct nb_stored_event *ev = NULL;
	int64_t next = 0;
	size_t n = 0;
	int rc;

	if (f.newest_first)
		f.before_seq = j->cursor;
	else
		f.after_seq = j->cursor;
	f.limit = j->left;
	f.max_scan = NB_STORE_CHUNK_SCAN;
	if (nb_store_list_page(j->store, &f, &ev, &n, &next) == -1) {
		snprintf(err, errlen, "cannot list the store");
		return NB_OPERATE_UNAVAILABLE;
	}
	rc = append_events(j->events, ev, n);
	nb_stored_events_free(ev, n);
	if (rc == -1)
		return NB_OPERATE_UNAVAILABLE;
	j->cursor = next;
	j->pages++;
	if (j->q.one_page || next == 0 || limit_used_up(j, n) ||
	    (j->op == NB_OPERATE_SEARCH &&
		j->pages == NB_OPERATE_SEARCH_PAGES)) {
		if ((j->answer = page_answer(j, next)) == NULL)
			return NB_OPERATE_UNAVAILABLE;
		j->done = 1;
	}
	return NB_OPERATE_OK;
}

/* Show and event: one row by key. */

static enum nb_operate_status
show_begin(struct nb_operate_job *j, char *err, size_t errlen)
{
	if (j->q.filter.key == NULL) {
		snprintf(err, errlen, "a KEY is required");
		return NB_OPERATE_INVALID;
	}
	j->q.filter.limit = 1;
	return NB_OPERATE_OK;
}

/* The row the job's key names into *ev (one row, or a status). */
static enum nb_operate_status
find_one(struct nb_operate_job *j, struct nb_stored_event **ev, size_t *n,
    char *err, size_t errlen)
{
	*ev = NULL;
	*n = 0;
	if (strlen(j->q.filter.key) < NB_STORE_KEY_MAX) {
		if (nb_store_list(j->store, &j->q.filter, ev, n) == -1) {
			snprintf(err, errlen, "cannot read the store");
			return NB_OPERATE_UNAVAILABLE;
		}
		if (*n > 0)
			return NB_OPERATE_OK;
	}
	snprintf(err, errlen, "no event with that key");
	return NB_OPERATE_NOT_FOUND;
}

/* The event with its payload, its Track message or why not. */
static enum nb_operate_status
show_step(struct nb_operate_job *j, char *err, size_t errlen)
{
	struct nb_stored_event *ev = NULL;
	enum nb_operate_status st;
	const char *why;
	json_t *o, *track;
	size_t n = 0;

	if ((st = find_one(j, &ev, &n, err, errlen)) != NB_OPERATE_OK)
		return st;
	st = NB_OPERATE_UNAVAILABLE;
	if ((o = nb_operate_event_json(&ev[0], 1)) == NULL)
		goto out;
	track = track_or_why(j->cfg, j->store, &ev[0], &why);
	if (json_object_set_new(
		o, "track", track != NULL ? track : json_null()) == -1 ||
	    (track == NULL &&
		json_object_set_new(o, "track_error", json_string(why)) ==
		    -1)) {
		json_decref(o);
		goto out;
	}
	j->answer = o;
	j->done = 1;
	st = NB_OPERATE_OK;
out:
	nb_stored_events_free(ev, n);
	return st;
}

/* The attempt history of ev, oldest first. */
static json_t *
attempts_json(struct nb_store *store, const struct nb_stored_event *ev)
{
	struct nb_store_attempt_row *at = NULL;
	json_t *arr = NULL;
	size_t n = 0, i;

	if (nb_store_attempts(store, ev->seq, &at, &n) == -1 ||
	    (arr = json_array()) == NULL)
		goto out;
	for (i = 0; i < n; i++)
		if (json_array_append_new(arr, attempt_json(&at[i])) == -1) {
			json_decref(arr);
			arr = NULL;
			break;
		}
out:
	nb_store_attempts_free(at, n);
	return arr;
}

/* The stored event for the answer: itself, its text, or null. */
static json_t *
payload_or_null(const struct nb_stored_event *ev)
{
	json_t *p = payload_json(ev);

	return p != NULL ? p : json_null();
}

/*
 * The event, its stored object, its Track message (or why not) and its
 * attempt history.  "attempts" is the history here; the row's counter
 * becomes "tries".
 */
static enum nb_operate_status
event_step(struct nb_operate_job *j, char *err, size_t errlen)
{
	struct nb_stored_event *ev = NULL;
	enum nb_operate_status st;
	json_t *o = NULL, *track = NULL, *arr = NULL;
	const char *why;
	size_t n = 0;
	int rc;

	if ((st = find_one(j, &ev, &n, err, errlen)) != NB_OPERATE_OK)
		return st;
	st = NB_OPERATE_UNAVAILABLE;
	if ((o = nb_operate_event_json(&ev[0], 0)) == NULL)
		goto out;
	track = track_or_why(j->cfg, j->store, &ev[0], &why);
	if (track == NULL &&
	    json_object_set_new(o, "track_error", json_string(why)) == -1)
		goto out;
	if ((arr = attempts_json(j->store, &ev[0])) == NULL) {
		snprintf(err, errlen, "cannot read the store");
		goto out;
	}
	if (json_object_set_new(o, "tries", json_integer(ev[0].attempts)) ==
		-1 ||
	    json_object_set_new(o, "event", payload_or_null(&ev[0])) == -1)
		goto out;
	/* The _new setters take their value even when they fail. */
	rc = json_object_set_new(
	    o, "track", track != NULL ? track : json_null());
	track = NULL;
	if (rc == -1)
		goto out;
	rc = json_object_set_new(o, "attempts", arr);
	arr = NULL;
	if (rc == -1)
		goto out;
	j->answer = o;
	o = NULL;
	j->done = 1;
	st = NB_OPERATE_OK;
out:
	json_decref(o);
	json_decref(track);
	json_decref(arr);
	nb_stored_events_free(ev, n);
	return st;
}

/* Replay and purge: a selection in bounded steps. */

static enum nb_operate_status
bulk_begin(struct nb_operate_job *j, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	j->walk = j->q.keys != NULL   ? WALK_KEYS
	    : j->q.filter.key != NULL ? WALK_ONE
				      : WALK_WINDOWS;
	j->left = j->q.filter.limit;
	j->lo = j->q.filter.after_seq;
	j->q.filter.newest_first = 0;
	j->q.filter.before_seq = 0;
	if (j->q.return_keys && (j->keys_out = json_array()) == NULL)
		return NB_OPERATE_UNAVAILABLE;
	return NB_OPERATE_OK;
}

/* The key of the newest row stored (0 when none) into j->top. */
static int
find_top(struct nb_operate_job *j)
{
	struct nb_store_filter f;
	struct nb_stored_event *ev = NULL;
	int64_t next = 0;
	size_t n = 0;

	memset(&f, 0, sizeof(f));
	f.states = ALL_STATES;
	f.newest_first = 1;
	f.limit = 1;
	f.max_scan = 1;
	if (nb_store_list_page(j->store, &f, &ev, &n, &next) == -1)
		return -1;
	j->top = n > 0 ? ev[0].seq : 0;
	nb_stored_events_free(ev, n);
	return 0;
}

/* The keys f selects, for a dry run's answer, up to NB_OPERATE_MAX_KEYS. */
static int
collect_keys(struct nb_operate_job *j, const struct nb_store_filter *f)
{
	struct nb_store_filter lf = *f;
	struct nb_stored_event *ev = NULL;
	size_t n = 0, i, have = json_array_size(j->keys_out);
	int rc = -1;

	if (j->keys_out == NULL || j->keys_truncated)
		return 0;
	/* One more than fits tells that the list is cut. */
	lf.limit = NB_OPERATE_MAX_KEYS + 1 - have;
	if (f->limit != 0 && f->limit < lf.limit)
		lf.limit = f->limit;
	if (j->op == NB_OPERATE_REPLAY)
		lf.states &= ~NB_STATE_MASK_PENDING;
	if (lf.states == 0)
		return 0;
	if (nb_store_list(j->store, &lf, &ev, &n) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (have + i == NB_OPERATE_MAX_KEYS) {
			j->keys_truncated = 1;
			break;
		}
		if (json_array_append_new(
			j->keys_out, json_string(ev[i].key)) == -1)
			goto out;
	}
	rc = 0;
out:
	nb_stored_events_free(ev, n);
	return rc;
}

/* Replays or purges what f selects; adds what was touched. */
static int
bulk_call(
    struct nb_operate_job *j, const struct nb_store_filter *f, size_t *touched)
{
	size_t r = 0, q = 0;
	int rc;

	if (collect_keys(j, f) == -1)
		return -1;
	if (j->op == NB_OPERATE_REPLAY)
		rc = nb_store_replay(j->store, f, j->q.dry_run,
		    nb_time_now_ms(), nb_nudgespot_revalidate, &r, &q);
	else
		rc = nb_store_purge(j->store, f, j->q.dry_run, &r);
	if (rc == -1)
		return -1;
	/* Re-validated events were replayed too, even if still invalid. */
	*touched = r + q;
	j->touched += r + q;
	j->requarantined += q;
	return 0;
}

/* One step of a walk: a key, some keys of a selection, or one window. */
static int
bulk_walk(struct nb_operate_job *j)
{
	struct nb_store_filter f = j->q.filter;
	size_t i, touched = 0;

	switch (j->walk) {
	case WALK_ONE:
		j->done = 1;
		return bulk_call(j, &f, &touched);
	case WALK_KEYS:
		for (i = 0; i < KEYS_PER_STEP && j->nextkey < j->q.nkeys; i++) {
			f.key = j->q.keys[j->nextkey++];
			if (bulk_call(j, &f, &touched) == -1)
				return -1;
		}
		j->done = j->nextkey == j->q.nkeys;
		return 0;
	case WALK_WINDOWS:
		break;
	}
	if (!j->started) {
		if (find_top(j) == -1)
			return -1;
		j->started = 1;
	}
	/* The window (lo, lo + WINDOW], never past the newest at the start. */
	f.after_seq = j->lo;
	f.before_seq = (j->top - j->lo > WINDOW ? j->lo + WINDOW : j->top) + 1;
	f.limit = j->left;
	if (j->lo < j->top && bulk_call(j, &f, &touched) == -1)
		return -1;
	j->lo = f.before_seq - 1;
	j->done = j->lo >= j->top || limit_used_up(j, touched);
	return 0;
}

static json_t *
bulk_answer(struct nb_operate_job *j)
{
	json_t *o;

	if (j->op == NB_OPERATE_REPLAY)
		o = json_pack("{s:I, s:I, s:b}", "replayed",
		    (json_int_t)j->touched, "requarantined",
		    (json_int_t)j->requarantined, "dry_run", j->q.dry_run);
	else
		o = json_pack("{s:I, s:b}", "purged", (json_int_t)j->touched,
		    "dry_run", j->q.dry_run);
	if (o == NULL || j->keys_out == NULL)
		return o;
	if (json_object_set(o, "keys", j->keys_out) == -1 ||
	    json_object_set_new(
		o, "keys_truncated", json_boolean(j->keys_truncated)) == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static enum nb_operate_status
bulk_step(struct nb_operate_job *j, char *err, size_t errlen)
{
	if (bulk_walk(j) == -1) {
		snprintf(err, errlen, "%s failed", nb_operate_op_str(j->op));
		return NB_OPERATE_UNAVAILABLE;
	}
	if (!j->done)
		return NB_OPERATE_OK;
	if (j->op == NB_OPERATE_REPLAY)
		log_info("dlq replay",
		    " replayed=%zu requarantined=%zu dry_run=%d", j->touched,
		    j->requarantined, j->q.dry_run);
	else
		log_info("dlq purge", " purged=%zu dry_run=%d", j->touched,
		    j->q.dry_run);
	if ((j->answer = bulk_answer(j)) == NULL)
		return NB_OPERATE_UNAVAILABLE;
	return NB_OPERATE_OK;
}

/* Erase and audit. */

/*
 * The longest an erase waits for events a deliverer holds under cfg: past
 * the longest lease a deliverer takes (store.lease_s, or one request's
 * timeout and its margin).  0 (the store's default) without cfg.
 */
static int64_t
erase_wait_ms(const struct nb_config *cfg)
{
	int64_t lease, request;

	if (cfg == NULL)
		return 0;
	lease = (int64_t)cfg->store.lease_s * 1000;
	request = (int64_t)cfg->segment.timeout_ms + LEASE_MARGIN_MS;
	return (lease > request ? lease : request) + LEASE_MARGIN_MS;
}

static enum nb_operate_status
erase_begin(struct nb_operate_job *j, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	j->erase.who.email = j->q.filter.email;
	j->erase.who.uid = j->q.filter.uid;
	j->erase.dry_run = j->q.dry_run;
	j->erase.actor = j->face;
	j->erase.now_ms = nb_time_now_ms();
	j->erase.wait_ms = erase_wait_ms(j->cfg);
	return NB_OPERATE_OK;
}

/* Erases (or counts), logs the digest and answers with the audit entry. */
static enum nb_operate_status
erase_step(struct nb_operate_job *j, char *err, size_t errlen)
{
	struct nb_store_audit a;
	json_t *o;

	if (nb_store_erase(j->store, &j->erase, &a) == -1) {
		snprintf(err, errlen,
		    "the erase did not finish (events still held by a "
		    "deliverer, or the store failed); what was erased stays "
		    "erased, retry to finish");
		return NB_OPERATE_UNAVAILABLE;
	}
	log_info(a.dry_run ? "erase counted" : "erased",
	    " actor=%s kind=%s subject=%s events=%lld pending=%lld"
	    " delivered=%lld dead=%lld audit_id=%lld",
	    a.actor, a.kind, a.subject, (long long)a.events,
	    (long long)a.pending, (long long)a.delivered, (long long)a.dead,
	    (long long)a.id);
	if ((o = audit_json(&a)) == NULL)
		return NB_OPERATE_UNAVAILABLE;
	if (json_object_set_new(o, "audit_id", json_integer(a.id)) == -1 ||
	    json_object_del(o, "id") == -1) {
		json_decref(o);
		return NB_OPERATE_UNAVAILABLE;
	}
	j->answer = o;
	j->done = 1;
	return NB_OPERATE_OK;
}

static enum nb_operate_status
audit_begin(struct nb_operate_job *j, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	if (j->q.filter.limit == 0)
		j->q.filter.limit = NB_OPERATE_AUDIT_DEFAULT;
	return NB_OPERATE_OK;
}

/* One page of the audit, newest first, below the cursor. */
static enum nb_operate_status
audit_step(struct nb_operate_job *j, char *err, size_t errlen)
{
	struct nb_store_audit *v = NULL;
	json_t *arr;
	int64_t next = 0;
	size_t n = 0, i;

	if (nb_store_audit_list(j->store, j->q.filter.after_seq,
		j->q.filter.limit, &v, &n, &next) == -1) {
		snprintf(err, errlen, "cannot read the audit");
		return NB_OPERATE_UNAVAILABLE;
	}
	if ((arr = json_array()) == NULL)
		goto fail;
	for (i = 0; i < n; i++)
		if (json_array_append_new(arr, audit_json(&v[i])) == -1)
			goto fail;
	free(v);
	j->answer =
	    json_pack("{s:o, s:o}", "audit", arr, "next", cursor_json(next));
	if (j->answer == NULL)
		return NB_OPERATE_UNAVAILABLE;
	j->done = 1;
	return NB_OPERATE_OK;
fail:
	json_decref(arr);
	free(v);
	return NB_OPERATE_UNAVAILABLE;
}

static const struct op_def ops[NB_OPERATE_NOPS] = {
    [NB_OPERATE_LIST] = {page_begin, page_step, 0},
    [NB_OPERATE_SHOW] = {show_begin, show_step, 0},
    [NB_OPERATE_REPLAY] = {bulk_begin, bulk_step, 0},
    [NB_OPERATE_PURGE] = {bulk_begin, bulk_step, 0},
    [NB_OPERATE_SEARCH] = {page_begin, page_step, 0},
    [NB_OPERATE_EVENT] = {show_begin, event_step, 0},
    [NB_OPERATE_ERASE] = {erase_begin, erase_step, 1},
    [NB_OPERATE_AUDIT] = {audit_begin, audit_step, 0},
};

int
nb_operate_blocks(enum nb_operate_op op)
{
	return (unsigned)op < NB_OPERATE_NOPS && ops[op].blocks;
}
enum nb_operate_status
nb_operate_begin(struct nb_operate_job **out, const struct nb_operate_env *env,
    enum nb_operate_op op, struct nb_operate_query *q, char *err, size_t errlen)
{
	struct nb_operate_job *j;
	enum nb_operate_status st;

	*out = NULL;
	if ((unsigned)op >= NB_OPERATE_NOPS) {
		nb_operate_query_clear(q);
		snprintf(err, errlen, "no such operation");
		return NB_OPERATE_INVALID;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		nb_operate_query_clear(q);
		snprintf(err, errlen, "out of memory");
		return NB_OPERATE_UNAVAILABLE;
	}
	j->op = op;
	j->store = env->store;
	j->cfg = env->cfg != NULL ? nb_config_ref(env->cfg) : NULL;
	j->face = env->face;
	j->q = *q;
	memset(q, 0, sizeof(*q));
	if ((st = ops[op].begin(j, err, errlen)) != NB_OPERATE_OK) {
		if (st == NB_OPERATE_UNAVAILABLE)
			snprintf(err, errlen, "out of memory");
		nb_operate_free(j);
		return st;
	}
	*out = j;
	return NB_OPERATE_OK;
}

enum nb_operate_status
nb_operate_step(struct nb_operate_job *j, int *done, char *err, size_t errlen)
{
	enum nb_operate_status st = NB_OPERATE_OK;

	if (!j->done) {
		err[0] = '\0';
		st = ops[j->op].step(j, err, errlen);
		if (st == NB_OPERATE_UNAVAILABLE && err[0] == '\0')
			snprintf(err, errlen, "out of memory");
		if (st != NB_OPERATE_OK)
			j->done = 1;
	}
	*done = j->done;
	return st;
}

json_t *
nb_operate_answer(const struct nb_operate_job *j)
{
	return j->answer != NULL ? json_incref(j->answer) : NULL;
}

void
nb_operate_free(struct nb_operate_job *j)
{
	if (j == NULL)
		return;
	json_decref(j->answer);
	json_decref(j->events);
	json_decref(j->keys_out);
	nb_operate_query_clear(&j->q);
	nb_config_unref(j->cfg);
	free(j);
}

enum nb_operate_status
nb_operate_run(const struct nb_operate_env *env, enum nb_operate_op op,
    struct nb_operate_query *q, json_t **answer, char *err, size_t errlen)
{
	struct nb_operate_job *j = NULL;
	enum nb_operate_status st;
	int done = 0;

	*answer = NULL;
	st = nb_operate_begin(&j, env, op, q, err, errlen);
	while (st == NB_OPERATE_OK && !done)
		st = nb_operate_step(j, &done, err, errlen);
	if (st == NB_OPERATE_OK)
		*answer = nb_operate_answer(j);
	nb_operate_free(j);
	return st;
}
