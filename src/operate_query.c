/* SPDX-License-Identifier: ISC */
/*
 * operate_query: the one grammar of the operator's parameters.
 *
 * Two tables: the grammar lists every parameter with its kind, where it
 * lands in the query and the operations that take it; the operations'
 * table gives each its name, its largest limit and the states it looks
 * at by default.  One parser checks a JSON object against them and
 * refuses whatever they do not list, so a typo never widens a purge and
 * every face (query strings, JSON bodies, argv) refuses alike.  Messages
 * name the key, never the value: a value may be an address.  Nothing
 * here touches a store or keeps state; any thread.
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

#include "nudgebridge/operate_query.h"
#include "nudgebridge/person.h"
#include "nudgebridge/timeutil.h"

#define ALL_STATES                                                             \
	(NB_STATE_MASK_DEAD | NB_STATE_MASK_DELIVERED | NB_STATE_MASK_PENDING)
#define OP_BIT(op) (1u << (op))
#define OPS_DLQ	   (OP_BIT(NB_OPERATE_LIST) | OP_BIT(NB_OPERATE_SHOW) | OPS_BULK)
#define OPS_BULK   (OP_BIT(NB_OPERATE_REPLAY) | OP_BIT(NB_OPERATE_PURGE))
#define OPS_FILTER (OPS_DLQ | OP_BIT(NB_OPERATE_SEARCH))
#define OPS_PAGED  (OPS_FILTER | OP_BIT(NB_OPERATE_AUDIT))
#define OPS_PERSON (OP_BIT(NB_OPERATE_SEARCH) | OP_BIT(NB_OPERATE_ERASE))

/* What each operation's parameters default to and may be. */
static const struct op_query {
	const char *name;
	int limit_max;	 /* "limit" from 1 to this */
	unsigned states; /* when "state" is not given */
} op_query[NB_OPERATE_NOPS] = {
    [NB_OPERATE_LIST] = {"list", NB_OPERATE_LIMIT_MAX, NB_STATE_MASK_DEAD},
    [NB_OPERATE_SHOW] = {"show", NB_OPERATE_LIMIT_MAX, ALL_STATES},
    [NB_OPERATE_REPLAY] = {"replay", NB_OPERATE_LIMIT_MAX, NB_STATE_MASK_DEAD},
    [NB_OPERATE_PURGE] = {"purge", NB_OPERATE_LIMIT_MAX, NB_STATE_MASK_DEAD},
    [NB_OPERATE_SEARCH] = {"search", NB_OPERATE_SEARCH_MAX, ALL_STATES},
    [NB_OPERATE_EVENT] = {"event", 1, ALL_STATES},
    [NB_OPERATE_ERASE] = {"erase", 1, ALL_STATES},
    [NB_OPERATE_AUDIT] = {"audit", NB_OPERATE_SEARCH_MAX, ALL_STATES},
};

/* The grammar. */

enum kind {
	K_STRING, /* const char * */
	K_REASON, /* const char *, one of the dead-letter reasons */
	K_PERSON, /* const char *, an address or a uid (person.h's rule) */
	K_TIME,	  /* int64_t ms: RFC 3339 or a duration ago */
	K_STATE,  /* unsigned mask */
	K_COUNT,  /* size_t 1..the operation's limit_max */
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
    {"source", K_STRING, Q(filter.source), OPS_FILTER},
    {"type", K_STRING, Q(filter.type), OPS_FILTER},
    {"reason", K_REASON, Q(filter.reason), OPS_FILTER},
    {"id", K_STRING, Q(filter.id), OPS_FILTER},
    {"key", K_STRING, Q(filter.key), OPS_FILTER | OP_BIT(NB_OPERATE_EVENT)},
    {"since", K_TIME, Q(filter.since_ms), OPS_FILTER},
    {"until", K_TIME, Q(filter.until_ms), OPS_FILTER},
    {"state", K_STATE, Q(filter.states), OPS_FILTER},
    {"email", K_PERSON, Q(filter.email), OPS_PERSON},
    {"uid", K_PERSON, Q(filter.uid), OPS_PERSON},
    {"limit", K_COUNT, Q(filter.limit), OPS_PAGED},
    {"after", K_CURSOR, Q(filter.after_seq), OPS_PAGED},
    {"dry_run", K_BOOL, Q(dry_run), OPS_DLQ | OP_BIT(NB_OPERATE_ERASE)},
    {"keys", K_KEYS, Q(keys), OPS_BULK},
    {"return_keys", K_BOOL, Q(return_keys), OPS_BULK},
};

static const char *const reasons[] = {NB_STORE_REASONS};

const char *
nb_operate_op_str(enum nb_operate_op op)
{
	return (unsigned)op < NB_OPERATE_NOPS ? op_query[op].name : "unknown";
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

/* "reason: must be one of quarantined, too_large, ..." into err. */
static void
reason_error(char *err, size_t errlen)
{
	size_t i, off;
	int r;

	r = snprintf(err, errlen, "reason: must be one of");
	for (i = 0; r >= 0 && i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		off = strlen(err);
		r = snprintf(err + off, errlen - off, "%s %s", i > 0 ? "," : "",
		    reasons[i]);
	}
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

/* The text kinds: strings, a reason, a person, a time, a state. */
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
			reason_error(err, errlen);
			return -1;
		}
		return set_string(q, p, s, err, errlen);
	case K_PERSON:
		if (s == NULL || strlen(s) != json_string_length(v) ||
		    nb_person_value_valid(s) != 0) {
			snprintf(err, errlen,
			    "%s: must be a non-empty string without control "
			    "characters",
			    p->name);
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

/* Applies one parameter of op; v is not null. */
static int
apply(struct nb_operate_query *q, enum nb_operate_op op, const struct param *p,
    const json_t *v, int64_t now_ms, char *err, size_t errlen)
{
	json_int_t n;

	switch (p->kind) {
	case K_COUNT:
		if (!json_is_integer(v) || (n = json_integer_value(v)) < 1 ||
		    n > op_query[op].limit_max) {
			snprintf(err, errlen,
			    "%s: must be an integer from 1 to %d", p->name,
			    op_query[op].limit_max);
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
check_query(const struct nb_operate_query *q, enum nb_operate_op op, char *err,
    size_t errlen)
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
	if (op == NB_OPERATE_ERASE &&
	    (q->filter.email == NULL) == (q->filter.uid == NULL)) {
		snprintf(err, errlen, "give one of email and uid");
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
	if ((unsigned)op >= NB_OPERATE_NOPS) {
		snprintf(err, errlen, "no such operation");
		return -1;
	}
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
			    p->name, op_query[op].name);
			goto fail;
		}
		if (apply(q, op, p, v, now_ms, err, errlen) == -1)
			goto fail;
	}
	if (check_query(q, op, err, errlen) == -1)
		goto fail;
	if (q->filter.states == 0)
		q->filter.states = op_query[op].states;
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
	} else if ((v = json_string(text)) == NULL) {
		snprintf(err, errlen, "%.64s: not valid UTF-8", name);
		return -1;
	}
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
