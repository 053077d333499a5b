/* SPDX-License-Identifier: ISC */
/*
 * operate: the operator's use cases, once, for every face.
 *
 * Two tables carry the module.  The grammar lists every parameter with
 * its kind, where it lands in the query and the operations that take it;
 * one parser checks a JSON object against it and refuses whatever it does
 * not list.  The operations table gives each operation its checks and its
 * step function.  A job never holds more than one step's rows: a list
 * step is one bounded page, a replay or purge step one window of keys (or
 * a few dozen given keys), so its cost is bounded whatever the store
 * holds, and the store itself commits each chunk apart.  Nothing here
 * knows a socket or a terminal (a query string is only text to it), and
 * nothing keeps state between jobs.
 */
#include <sys/queue.h>

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
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
#define OP_BIT(op) (1u << (op))
#define OPS_ALL	   (OP_BIT(NB_OPERATE_NOPS) - 1)
#define OPS_BULK   (OP_BIT(NB_OPERATE_REPLAY) | OP_BIT(NB_OPERATE_PURGE))

#define KEYS_PER_STEP 50		  /* a selection's keys done per step */
#define WINDOW	      NB_STORE_CHUNK_SCAN /* keys a filter's step spans */

/* The grammar. */

enum kind {
	K_STRING, /* const char * */
	K_REASON, /* const char *, one of the dead-letter reasons */
	K_TIME,	  /* int64_t ms: RFC 3339 or a duration ago */
	K_STATE,  /* unsigned mask */
	K_COUNT,  /* size_t 1..NB_OPERATE_LIMIT_MAX */
	K_CURSOR, /* int64_t >= 0 */
	K_BOOL,	  /* int */
	K_KEYS,	  /* char ** and its count */
};

struct param {
	const char *name;
	enum kind kind;
	size_t off; /* where in struct nb_operate_query */
	unsigned ops;
};

#define Q(m) offsetof(struct nb_operate_query, m)

static const struct param grammar[] = {
    {"source", K_STRING, Q(filter.source), OPS_ALL},
    {"type", K_STRING, Q(filter.type), OPS_ALL},
    {"reason", K_REASON, Q(filter.reason), OPS_ALL},
    {"id", K_STRING, Q(filter.id), OPS_ALL},
    {"key", K_STRING, Q(filter.key), OPS_ALL},
    {"since", K_TIME, Q(filter.since_ms), OPS_ALL},
    {"until", K_TIME, Q(filter.until_ms), OPS_ALL},
    {"state", K_STATE, Q(filter.states), OPS_ALL},
    {"limit", K_COUNT, Q(filter.limit), OPS_ALL},
    {"after", K_CURSOR, Q(filter.after_seq), OPS_ALL},
    {"dry_run", K_BOOL, Q(dry_run), OPS_ALL},
    {"keys", K_KEYS, Q(keys), OPS_BULK},
    {"return_keys", K_BOOL, Q(return_keys), OPS_BULK},
};

static const char *const reasons[] = {
    NB_REASON_QUARANTINED,
    NB_REASON_TOO_LARGE,
    NB_REASON_REJECTED,
    NB_REASON_MAX_ATTEMPTS,
    NB_REASON_MAX_AGE,
    NB_REASON_INVALID,
};

static const char *const op_names[NB_OPERATE_NOPS] = {
    "list", "show", "replay", "purge"};

const char *
nb_operate_status_str(enum nb_operate_status s)
{
	switch (s) {
	case NB_OPERATE_OK:
		return "ok";
	case NB_OPERATE_INVALID:
		return "invalid";
	case NB_OPERATE_NOT_FOUND:
		return "not_found";
	case NB_OPERATE_UNAVAILABLE:
		return "unavailable";
	}
	return "unknown";
}

void
nb_operate_query_clear(struct nb_operate_query *q)
{
	size_t i;

	if (q == NULL)
		return;
	for (i = 0; i < NB_OPERATE_QUERY_STRINGS; i++)
		free(q->strings[i]);
	for (i = 0; i < q->nkeys; i++)
		free(q->keys[i]);
	free(q->keys);
	memset(q, 0, sizeof(*q));
}

static const struct param *
param_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(grammar) / sizeof(grammar[0]); i++)
		if (strcmp(grammar[i].name, name) == 0)
			return &grammar[i];
	return NULL;
}

static void *
field(struct nb_operate_query *q, const struct param *p)
{
	return (char *)q + p->off;
}

static int
reason_valid(const char *r)
{
	size_t i;

	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (strcmp(r, reasons[i]) == 0)
			return 1;
	return 0;
}

static int
parse_state(const char *s, unsigned *mask)
{
	if (strcmp(s, "dead") == 0)
		*mask = NB_STATE_MASK_DEAD;
	else if (strcmp(s, "delivered") == 0)
		*mask = NB_STATE_MASK_DELIVERED;
	else if (strcmp(s, "pending") == 0)
		*mask = NB_STATE_MASK_PENDING;
	else if (strcmp(s, "all") == 0)
		*mask = ALL_STATES;
	else
		return -1;
	return 0;
}

/* An owned copy of v in q's strings, set at p's field. */
static int
set_string(struct nb_operate_query *q, const struct param *p, const char *v,
    char *err, size_t errlen)
{
	size_t i;

	if (*v == '\0') {
		snprintf(err, errlen, "%s: must not be empty", p->name);
		return -1;
	}
	for (i = 0; i < NB_OPERATE_QUERY_STRINGS && q->strings[i] != NULL; i++)
		;
	if (i == NB_OPERATE_QUERY_STRINGS ||
	    (q->strings[i] = strdup(v)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*(const char **)field(q, p) = q->strings[i];
	return 0;
}

static int
set_keys(struct nb_operate_query *q, const json_t *v, char *err, size_t errlen)
{
	const json_t *k;
	size_t i, n = json_array_size(v);

	if (!json_is_array(v) || n == 0 || n > NB_OPERATE_MAX_KEYS) {
		snprintf(err, errlen, "keys: must be an array of 1 to %d keys",
		    NB_OPERATE_MAX_KEYS);
		return -1;
	}
	for (i = 0; i < n; i++) {
		k = json_array_get(v, i);
		if (!json_is_string(k) || json_string_length(k) == 0 ||
		    json_string_length(k) >= NB_STORE_KEY_MAX) {
			snprintf(
			    err, errlen, "keys[%zu]: not a dead-letter key", i);
			return -1;
		}
	}
	if ((q->keys = calloc(n, sizeof(*q->keys))) == NULL)
		goto nomem;
	for (i = 0; i < n; i++, q->nkeys++)
		if ((q->keys[i] = strdup(
			 json_string_value(json_array_get(v, i)))) == NULL)
			goto nomem;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* The text kinds: strings, a reason, a time, a state. */
static int
apply_text(struct nb_operate_query *q, const struct param *p, const json_t *v,
    int64_t now_ms, char *err, size_t errlen)
{
	const char *s = json_string_value(v);

	switch (p->kind) {
	case K_STRING:
		if (s == NULL)
			break;
		return set_string(q, p, s, err, errlen);
	case K_REASON:
		if (s == NULL || !reason_valid(s)) {
			snprintf(err, errlen,
			    "reason: must be one of quarantined, too_large, "
			    "rejected_by_segment, max_attempts, max_age, "
			    "invalid_for_segment");
			return -1;
		}
		return set_string(q, p, s, err, errlen);
	case K_TIME:
		if (s == NULL ||
		    nb_time_parse_when(s, now_ms, (int64_t *)field(q, p)) ==
			-1) {
			snprintf(err, errlen,
			    "%s: not an RFC 3339 time or a duration such as "
			    "90m, 2h, 7d",
			    p->name);
			return -1;
		}
		return 0;
	default:
		if (s == NULL ||
		    parse_state(s, (unsigned *)field(q, p)) == -1) {
			snprintf(err, errlen,
			    "state: must be dead, delivered, pending or all");
			return -1;
		}
		q->states_given = 1;
		return 0;
	}
	snprintf(err, errlen, "%s: must be a string", p->name);
	return -1;
}

/* Applies one parameter; v is not null. */
static int
apply(struct nb_operate_query *q, const struct param *p, const json_t *v,
    int64_t now_ms, char *err, size_t errlen)
{
	json_int_t n;

	switch (p->kind) {
	case K_COUNT:
		if (!json_is_integer(v) || (n = json_integer_value(v)) < 1 ||
		    n > NB_OPERATE_LIMIT_MAX) {
			snprintf(err, errlen,
			    "%s: must be an integer from 1 to %d", p->name,
			    NB_OPERATE_LIMIT_MAX);
			return -1;
		}
		*(size_t *)field(q, p) = (size_t)n;
		return 0;
	case K_CURSOR:
		if (!json_is_integer(v) || (n = json_integer_value(v)) < 0) {
			snprintf(err, errlen,
			    "%s: must be a non-negative integer", p->name);
			return -1;
		}
		*(int64_t *)field(q, p) = (int64_t)n;
		return 0;
	case K_BOOL:
		if (!json_is_boolean(v)) {
			snprintf(
			    err, errlen, "%s: must be true or false", p->name);
			return -1;
		}
		*(int *)field(q, p) = json_is_true(v);
		return 0;
	case K_KEYS:
		return set_keys(q, v, err, errlen);
	default:
		return apply_text(q, p, v, now_ms, err, errlen);
	}
}

/* What no single parameter can check. */
static int
check_query(const struct nb_operate_query *q, char *err, size_t errlen)
{
	if (q->keys != NULL && q->filter.key != NULL) {
		snprintf(err, errlen, "give key or keys, not both");
		return -1;
	}
	if (q->return_keys && !q->dry_run) {
		snprintf(err, errlen, "return_keys: only with dry_run");
		return -1;
	}
	if (q->return_keys && q->keys != NULL) {
		snprintf(err, errlen, "return_keys: not with keys");
		return -1;
	}
	return 0;
}

int
nb_operate_query_parse(struct nb_operate_query *q, enum nb_operate_op op,
    const json_t *obj, int64_t now_ms, char *err, size_t errlen)
{
	const struct param *p;
	const char *key;
	json_t *v;

	memset(q, 0, sizeof(*q));
	if (obj != NULL && !json_is_object(obj)) {
		snprintf(err, errlen, "the filter must be a JSON object");
		return -1;
	}
	/* json_object_foreach takes a non-const object; it only reads. */
	json_object_foreach((json_t *)(uintptr_t)obj, key, v)
	{
		if (json_is_null(v))
			continue;
		if ((p = param_find(key)) == NULL) {
			snprintf(err, errlen, "unknown filter key: %.64s", key);
			goto fail;
		}
		if ((p->ops & OP_BIT(op)) == 0) {
			snprintf(err, errlen, "%s: not a parameter of %s",
			    p->name, op_names[op]);
			goto fail;
		}
		if (apply(q, p, v, now_ms, err, errlen) == -1)
			goto fail;
	}
	if (check_query(q, err, errlen) == -1)
		goto fail;
	if (q->filter.states == 0)
		q->filter.states = NB_STATE_MASK_DEAD;
	return 0;
fail:
	nb_operate_query_clear(q);
	return -1;
}

int
nb_operate_param_text(json_t *params, const char *name, const char *text,
    char *err, size_t errlen)
{
	const struct param *p = param_find(name);
	json_t *v = NULL;
	long long n;
	char *end;

	if (p != NULL && (p->kind == K_COUNT || p->kind == K_CURSOR)) {
		errno = 0;
		n = strtoll(text, &end, 10);
		if (*text == '\0' || *end != '\0' || errno != 0) {
			snprintf(err, errlen, "%s: must be an integer", name);
			return -1;
		}
		v = json_integer(n);
	} else if (p != NULL && p->kind == K_BOOL) {
		if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0)
			v = json_true();
		else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0)
			v = json_false();
		else {
			snprintf(
			    err, errlen, "%s: must be true or false", name);
			return -1;
		}
	} else if (p != NULL && p->kind == K_KEYS) {
		snprintf(err, errlen, "%s: only in a JSON body", name);
		return -1;
	} else
		v = json_string(text);
	if (json_object_set_new(params, name, v) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

json_t *
nb_operate_params_query(const char *query, char *err, size_t errlen)
{
	const struct evkeyval *e;
	struct evkeyvalq kv;
	json_t *params;

	TAILQ_INIT(&kv);
	if ((params = json_object()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (query != NULL && evhttp_parse_query_str(query, &kv) == -1) {
		snprintf(err, errlen, "the query string cannot be parsed");
		goto fail;
	}
	TAILQ_FOREACH(e, &kv, next)
	{
		if (json_object_get(params, e->key) != NULL) {
			snprintf(err, errlen, "%.64s: given twice", e->key);
			goto fail;
		}
		if (nb_operate_param_text(
			params, e->key, e->value, err, errlen) == -1)
			goto fail;
	}
	evhttp_clear_headers(&kv);
	return params;
fail:
	evhttp_clear_headers(&kv);
	json_decref(params);
	return NULL;
}

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
	payload = NULL;
	if (ev->raw != NULL) {
		payload =
		    json_loadb(ev->raw, ev->rawlen, JSON_DECODE_ANY, NULL);
		if (payload == NULL)
			payload = json_stringn(ev->raw, ev->rawlen);
	}
	if (json_object_set_new(
		o, "payload", payload != NULL ? payload : json_null()) == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
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
	/* list */
	json_t *events;
	int64_t cursor; /* where the next page starts */
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
};

/* What each operation checks at the start, and its step. */
struct op_def {
	enum nb_operate_status (*begin)(
	    struct nb_operate_job *, char *err, size_t errlen);
	enum nb_operate_status (*step)(
	    struct nb_operate_job *, char *err, size_t errlen);
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

static enum nb_operate_status
list_begin(struct nb_operate_job *j, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	if (j->q.one_page && j->q.filter.limit == 0)
		j->q.filter.limit = NB_OPERATE_PAGE_DEFAULT;
	j->left = j->q.filter.limit;
	j->cursor = j->q.filter.after_seq;
	j->q.filter.newest_first = 0;
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

/* One page of at most NB_STORE_CHUNK_SCAN rows looked at. */
static enum nb_operate_status
list_step(struct nb_operate_job *j, char *err, size_t errlen)
{
	struct nb_store_filter f = j->q.filter;
	struct nb_stored_event *ev = NULL;
	int64_t next = 0;
	size_t n = 0;
	int rc;

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
	if (j->q.one_page || next == 0 || limit_used_up(j, n)) {
		j->answer =
		    json_pack("{s:O, s:o}", "events", j->events, "next_after",
			j->q.one_page && next > 0 ? json_integer(next)
						  : json_null());
		if (j->answer == NULL)
			return NB_OPERATE_UNAVAILABLE;
		j->done = 1;
	}
	return NB_OPERATE_OK;
}

static enum nb_operate_status
show_begin(struct nb_operate_job *j, char *err, size_t errlen)
{
	if (j->q.filter.key == NULL) {
		snprintf(err, errlen, "a KEY is required");
		return NB_OPERATE_INVALID;
	}
	/* Show finds a row in any state: a replayed one is still useful. */
	if (!j->q.states_given)
		j->q.filter.states = ALL_STATES;
	j->q.filter.limit = 1;
	return NB_OPERATE_OK;
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

/* The event's Track message under the current mapping, or why not. */
static int
add_track(json_t *o, const struct nb_config *cfg, struct nb_store *store,
    const struct nb_stored_event *ev)
{
	const struct nb_source *src =
	    cfg != NULL ? nb_config_source(cfg, ev->source) : NULL;
	const char *why = NULL;
	json_t *track = NULL;

	if (src != NULL)
		track =
		    nb_operate_track(src, nb_store_install_id(store), ev, &why);
	if (json_object_set_new(
		o, "track", track != NULL ? track : json_null()) == -1)
		return -1;
	if (track != NULL)
		return 0;
	return json_object_set_new(o, "track_error",
	    json_string(src == NULL ? "source not configured"
		    : why != NULL   ? why
				    : "not mappable"));
}

static enum nb_operate_status
show_step(struct nb_operate_job *j, char *err, size_t errlen)
{
	struct nb_stored_event *ev = NULL;
	enum nb_operate_status st = NB_OPERATE_UNAVAILABLE;
	size_t n = 0;

	if (strlen(j->q.filter.key) >= NB_STORE_KEY_MAX)
		goto notfound;
	if (nb_store_list(j->store, &j->q.filter, &ev, &n) == -1) {
		snprintf(err, errlen, "cannot read the store");
		return NB_OPERATE_UNAVAILABLE;
	}
	if (n == 0)
		goto notfound;
	if ((j->answer = nb_operate_event_json(&ev[0], 1)) == NULL ||
	    add_track(j->answer, j->cfg, j->store, &ev[0]) == -1)
		goto out;
	j->done = 1;
	st = NB_OPERATE_OK;
	goto out;
notfound:
	snprintf(err, errlen, "no event with that key");
	st = NB_OPERATE_NOT_FOUND;
out:
	nb_stored_events_free(ev, n);
	return st;
}

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
		snprintf(err, errlen, "%s failed", op_names[j->op]);
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

static const struct op_def ops[NB_OPERATE_NOPS] = {
    [NB_OPERATE_LIST] = {list_begin, list_step},
    [NB_OPERATE_SHOW] = {show_begin, show_step},
    [NB_OPERATE_REPLAY] = {bulk_begin, bulk_step},
    [NB_OPERATE_PURGE] = {bulk_begin, bulk_step},
};

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
