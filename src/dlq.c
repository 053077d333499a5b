/* SPDX-License-Identifier: ISC */
/*
 * dlq: dead letters and quarantined events, for operators.
 *
 * One filter grammar serves three doors: the command line, the admin API's
 * query parameters and its JSON bodies.  All of them end up in
 * nb_dlq_query_from_json(), which validates every key (an unknown one is an
 * error, never silently ignored: a typo in a purge filter must not purge
 * everything).  The `nudgebridge dlq` command opens the store itself, so it
 * works whether the daemon runs or not.  Nothing here keeps state between
 * calls; the command runs on the main thread of its own process.
 */
#include <sys/queue.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <sodium.h>

#include "nudgebridge/config.h"
#include "nudgebridge/dlq.h"
#include "nudgebridge/log.h"
#include "nudgebridge/nudgespot.h"
#include "nudgebridge/segment.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"

#define DLQ_LIMIT_MAX 10000

enum { S_SOURCE, S_TYPE, S_REASON, S_ID, S_KEY, S_NSTRINGS };

static const char *const reasons[] = {
    NB_REASON_QUARANTINED,
    NB_REASON_TOO_LARGE,
    NB_REASON_REJECTED,
    NB_REASON_MAX_ATTEMPTS,
    NB_REASON_MAX_AGE,
    NB_REASON_INVALID,
};

void
nb_dlq_query_clear(struct nb_dlq_query *q)
{
	size_t i;

	if (q == NULL)
		return;
	for (i = 0; i < sizeof(q->strings) / sizeof(q->strings[0]); i++)
		free(q->strings[i]);
	memset(q, 0, sizeof(*q));
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
set_string(struct nb_dlq_query *q, int slot, const char *key, const char *v,
    char *err, size_t errlen)
{
	char *copy;

	if (*v == '\0') {
		snprintf(err, errlen, "%s: must not be empty", key);
		return -1;
	}
	if ((copy = strdup(v)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	free(q->strings[slot]);
	q->strings[slot] = copy;
	switch (slot) {
	case S_SOURCE:
		q->filter.source = copy;
		break;
	case S_TYPE:
		q->filter.type = copy;
		break;
	case S_REASON:
		q->filter.reason = copy;
		break;
	case S_ID:
		q->filter.id = copy;
		break;
	default:
		q->filter.key = copy;
		break;
	}
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
		*mask = NB_STATE_MASK_DEAD | NB_STATE_MASK_DELIVERED |
		    NB_STATE_MASK_PENDING;
	else
		return -1;
	return 0;
}

/* Applies one key; v is a JSON value (null already skipped). */
static int
apply_key(struct nb_dlq_query *q, const char *key, const json_t *v,
    int64_t now_ms, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		int slot;
	} strs[] = {
	    {"source", S_SOURCE},
	    {"type", S_TYPE},
	    {"reason", S_REASON},
	    {"id", S_ID},
	    {"key", S_KEY},
	};
	const char *s;
	json_int_t n;
	int64_t t;
	size_t i;

	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		if (strcmp(key, strs[i].name) != 0)
			continue;
		if (!json_is_string(v)) {
			snprintf(err, errlen, "%s: must be a string", key);
			return -1;
		}
		s = json_string_value(v);
		if (strs[i].slot == S_REASON && !reason_valid(s)) {
			snprintf(err, errlen,
			    "reason: must be one of quarantined, too_large, "
			    "rejected_by_segment, max_attempts, max_age, "
			    "invalid_for_segment");
			return -1;
		}
		return set_string(q, strs[i].slot, key, s, err, errlen);
	}
	if (strcmp(key, "since") == 0 || strcmp(key, "until") == 0) {
		if (!json_is_string(v) ||
		    nb_time_parse_when(json_string_value(v), now_ms, &t) ==
			-1) {
			snprintf(err, errlen,
			    "%s: not an RFC 3339 time or a duration such as "
			    "90m, 2h, 7d",
			    key);
			return -1;
		}
		if (key[0] == 's')
			q->filter.since_ms = t;
		else
			q->filter.until_ms = t;
		return 0;
	}
	if (strcmp(key, "state") == 0) {
		if (!json_is_string(v) ||
		    parse_state(json_string_value(v), &q->filter.states) ==
			-1) {
			snprintf(err, errlen,
			    "state: must be dead, delivered, pending or all");
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "limit") == 0) {
		if (!json_is_integer(v) || (n = json_integer_value(v)) < 1 ||
		    n > DLQ_LIMIT_MAX) {
			snprintf(err, errlen,
			    "limit: must be an integer from 1 to %d",
			    DLQ_LIMIT_MAX);
			return -1;
		}
		q->filter.limit = (size_t)n;
		return 0;
	}
	if (strcmp(key, "after") == 0) {
		if (!json_is_integer(v) || (n = json_integer_value(v)) < 0) {
			snprintf(err, errlen,
			    "after: must be a non-negative integer");
			return -1;
		}
		q->filter.after_seq = (int64_t)n;
		return 0;
	}
	if (strcmp(key, "dry_run") == 0) {
		if (!json_is_boolean(v)) {
			snprintf(err, errlen, "dry_run: must be true or false");
			return -1;
		}
		q->dry_run = json_is_true(v);
		return 0;
	}
	snprintf(err, errlen, "unknown filter key: %.64s", key);
	return -1;
}

int
nb_dlq_query_from_json(struct nb_dlq_query *q, const json_t *obj,
    int64_t now_ms, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	memset(q, 0, sizeof(*q));
	if (obj == NULL)
		goto done;
	if (!json_is_object(obj)) {
		snprintf(err, errlen, "the filter must be a JSON object");
		return -1;
	}
	/* json_object_foreach takes a non-const object; it only reads. */
	json_object_foreach((json_t *)(uintptr_t)obj, key, v)
	{
		if (json_is_null(v))
			continue;
		if (apply_key(q, key, v, now_ms, err, errlen) == -1) {
			nb_dlq_query_clear(q);
			return -1;
		}
	}
done:
	if (q->filter.states == 0)
		q->filter.states = NB_STATE_MASK_DEAD;
	return 0;
}

/* Query parameters are text: integers and booleans are converted here. */
static json_t *
kv_value(const char *key, const char *v, char *err, size_t errlen)
{
	long long n;
	char *end;

	if (strcmp(key, "limit") == 0 || strcmp(key, "after") == 0) {
		errno = 0;
		n = strtoll(v, &end, 10);
		if (*v == '\0' || *end != '\0' || errno != 0) {
			snprintf(err, errlen, "%s: must be an integer", key);
			return NULL;
		}
		return json_integer(n);
	}
	if (strcmp(key, "dry_run") == 0) {
		if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
			return json_true();
		if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
			return json_false();
		snprintf(err, errlen, "dry_run: must be true or false");
		return NULL;
	}
	return json_string(v);
}

int
nb_dlq_query_from_kv(struct nb_dlq_query *q, const struct evkeyvalq *kv,
    int64_t now_ms, char *err, size_t errlen)
{
	const struct evkeyval *e;
	json_t *obj = NULL, *v;
	int rc = -1;

	memset(q, 0, sizeof(*q));
	if ((obj = json_object()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (kv != NULL) {
		TAILQ_FOREACH(e, kv, next)
		{
			if (json_object_get(obj, e->key) != NULL) {
				snprintf(
				    err, errlen, "%.64s: given twice", e->key);
				goto out;
			}
			err[0] = '\0';
			if ((v = kv_value(e->key, e->value, err, errlen)) ==
			    NULL) {
				if (err[0] == '\0')
					snprintf(err, errlen,
					    "%.64s: invalid value", e->key);
				goto out;
			}
			if (json_object_set_new(obj, e->key, v) == -1) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
		}
	}
	rc = nb_dlq_query_from_json(q, obj, now_ms, err, errlen);
out:
	json_decref(obj);
	return rc;
}

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
nb_dlq_event_json(const struct nb_stored_event *ev, int detail)
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

/* The command line. */

struct dlq_args {
	const char *cmd;
	const char *config;
	int json;
	json_t *filter;
};

static void
dlq_usage(FILE *f)
{
	fprintf(f,
	    "usage: nudgebridge dlq list|show|replay|purge --config FILE\n"
	    "           [--source S] [--type T] [--reason R] [--since W]\n"
	    "           [--until W] [--id ID] [--key K]\n"
	    "           [--state dead|delivered|pending|all] [--limit N]\n"
	    "           [--json] [--dry-run]\n"
	    "       nudgebridge dlq show KEY --config FILE [--json]\n"
	    "  W is an RFC 3339 time or a duration ago (90m, 2h, 7d).\n"
	    "  reasons: quarantined too_large rejected_by_segment "
	    "max_attempts max_age\n"
	    "           invalid_for_segment\n");
}

/* Parses argv after "dlq <cmd>"; 0 or -1 (message printed). */
static int
dlq_parse(struct dlq_args *a, int argc, char **argv)
{
	static const char *const strkeys[] = {
	    "source", "type", "reason", "since", "until", "id", "key", "state"};
	const char *opt, *val, *eq;
	char name[32];
	long long n;
	char *end;
	size_t i, nlen;
	int k, found;

	for (k = 2; k < argc; k++) {
		opt = argv[k];
		if (strncmp(opt, "--", 2) != 0) {
			if (strcmp(a->cmd, "show") == 0 &&
			    json_object_get(a->filter, "key") == NULL) {
				json_object_set_new(
				    a->filter, "key", json_string(opt));
				continue;
			}
			fprintf(stderr,
			    "nudgebridge dlq: unexpected argument "
			    "'%s'\n",
			    opt);
			return -1;
		}
		opt += 2;
		if (strcmp(opt, "json") == 0) {
			a->json = 1;
			continue;
		}
		if (strcmp(opt, "dry-run") == 0) {
			json_object_set_new(a->filter, "dry_run", json_true());
			continue;
		}
		if (strcmp(opt, "help") == 0) {
			dlq_usage(stdout);
			exit(0);
		}
		if ((eq = strchr(opt, '=')) != NULL) {
			nlen = (size_t)(eq - opt);
			val = eq + 1;
		} else {
			nlen = strlen(opt);
			if (k + 1 >= argc) {
				fprintf(stderr,
				    "nudgebridge dlq: --%s needs a value\n",
				    opt);
				return -1;
			}
			val = argv[++k];
		}
		if (nlen >= sizeof(name)) {
			fprintf(stderr,
			    "nudgebridge dlq: unknown option --%s\n", opt);
			return -1;
		}
		memcpy(name, opt, nlen);
		name[nlen] = '\0';
		if (strcmp(name, "config") == 0) {
			a->config = val;
			continue;
		}
		if (strcmp(name, "limit") == 0) {
			errno = 0;
			n = strtoll(val, &end, 10);
			if (*val == '\0' || *end != '\0' || errno != 0) {
				fprintf(stderr,
				    "nudgebridge dlq: --limit: not a number\n");
				return -1;
			}
			json_object_set_new(
			    a->filter, "limit", json_integer(n));
			continue;
		}
		found = 0;
		for (i = 0; i < sizeof(strkeys) / sizeof(strkeys[0]); i++) {
			if (strcmp(name, strkeys[i]) == 0) {
				json_object_set_new(
				    a->filter, name, json_string(val));
				found = 1;
				break;
			}
		}
		if (!found) {
			fprintf(stderr,
			    "nudgebridge dlq: unknown option --%s\n", name);
			return -1;
		}
	}
	if (a->config == NULL) {
		fprintf(stderr, "nudgebridge dlq: --config FILE is required\n");
		return -1;
	}
	return 0;
}

/* One table cell: at most max bytes, control characters replaced. */
static void
cell(char *out, size_t outlen, const char *s, size_t max)
{
	size_t i;

	if (s == NULL || *s == '\0')
		s = "-";
	for (i = 0; s[i] != '\0' && i < max && i + 1 < outlen; i++)
		out[i] =
		    ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? ' ' : s[i];
	out[i] = '\0';
	if (s[i] != '\0' && i >= 3 && i == max) {
		out[i - 3] = '.';
		out[i - 2] = '.';
		out[i - 1] = '.';
	}
}

#define NCOLS 7

static void
print_table(const struct nb_stored_event *ev, size_t n)
{
	static const char *const heads[NCOLS] = {
	    "KEY", "SOURCE", "ID", "TYPE", "REASON", "RECEIVED", "ERROR"};
	static const size_t maxw[NCOLS] = {32, 63, 48, 40, 20, 24, 200};
	size_t w[NCOLS];
	char buf[256], when[NB_TIME_ISO_LEN];
	const char *v[NCOLS];
	size_t i, c, l;

	for (c = 0; c < NCOLS; c++)
		w[c] = strlen(heads[c]);
	for (i = 0; i < n; i++) {
		nb_time_format_iso(ev[i].received_ms, when);
		v[0] = ev[i].key;
		v[1] = ev[i].source;
		v[2] = ev[i].id;
		v[3] = ev[i].type;
		v[4] = ev[i].reason;
		v[5] = when;
		v[6] = ev[i].error;
		for (c = 0; c < NCOLS - 1; c++) {
			cell(buf, sizeof(buf), v[c], maxw[c]);
			if ((l = strlen(buf)) > w[c])
				w[c] = l;
		}
	}
	for (c = 0; c + 1 < NCOLS; c++)
		printf("%-*s  ", (int)w[c], heads[c]);
	printf("%s\n", heads[NCOLS - 1]);
	for (i = 0; i < n; i++) {
		nb_time_format_iso(ev[i].received_ms, when);
		v[0] = ev[i].key;
		v[1] = ev[i].source;
		v[2] = ev[i].id;
		v[3] = ev[i].type;
		v[4] = ev[i].reason != NULL ? ev[i].reason
					    : state_str(ev[i].state);
		v[5] = when;
		v[6] = ev[i].error;
		for (c = 0; c < NCOLS; c++) {
			cell(buf, sizeof(buf), v[c], maxw[c]);
			if (c + 1 < NCOLS)
				printf("%-*s  ", (int)w[c], buf);
			else
				printf("%s\n", buf);
		}
	}
}

static int
print_json(json_t *j)
{
	char *text;

	if (j == NULL || (text = json_dumps(j, JSON_INDENT(2))) == NULL) {
		json_decref(j);
		fprintf(stderr, "nudgebridge dlq: out of memory\n");
		return -1;
	}
	printf("%s\n", text);
	free(text);
	json_decref(j);
	return 0;
}

static int
dlq_list(
    struct nb_store *st, const struct dlq_args *a, const struct nb_dlq_query *q)
{
	struct nb_stored_event *ev = NULL;
	json_t *arr;
	size_t n = 0, i;
	int rc = 1;

	if (nb_store_list(st, &q->filter, &ev, &n) == -1) {
		fprintf(stderr, "nudgebridge dlq: cannot list the store\n");
		return 1;
	}
	if (a->json) {
		if ((arr = json_array()) == NULL)
			goto out;
		for (i = 0; i < n; i++)
			if (json_array_append_new(
				arr, nb_dlq_event_json(&ev[i], 0)) == -1) {
				json_decref(arr);
				goto out;
			}
		if (print_json(arr) == -1)
			goto out;
	} else
		print_table(ev, n);
	rc = 0;
out:
	nb_stored_events_free(ev, n);
	return rc;
}

json_t *
nb_dlq_track(const struct nb_source *src, const char *install_id,
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

static int
dlq_show(struct nb_store *st, const struct dlq_args *a, struct nb_dlq_query *q,
    const struct nb_config *cfg)
{
	const struct nb_source *src;
	struct nb_stored_event *ev = NULL;
	const char *why = NULL;
	json_t *j, *track;
	size_t n = 0;
	int rc = 1;

	if (q->filter.key == NULL) {
		fprintf(stderr, "nudgebridge dlq show: a KEY is required\n");
		return 2;
	}
	/* Show finds a row in any state: a replayed one is still useful. */
	if (json_object_get(a->filter, "state") == NULL)
		q->filter.states = NB_STATE_MASK_DEAD |
		    NB_STATE_MASK_DELIVERED | NB_STATE_MASK_PENDING;
	q->filter.limit = 1;
	if (nb_store_list(st, &q->filter, &ev, &n) == -1) {
		fprintf(stderr, "nudgebridge dlq: cannot read the store\n");
		return 1;
	}
	if (n == 0) {
		fprintf(stderr, "nudgebridge dlq: no event with key %s\n",
		    q->filter.key);
		goto out;
	}
	if ((j = nb_dlq_event_json(&ev[0], 1)) == NULL)
		goto out;
	track = NULL;
	if ((src = nb_config_source(cfg, ev[0].source)) != NULL)
		track =
		    nb_dlq_track(src, nb_store_install_id(st), &ev[0], &why);
	json_object_set_new(j, "track", track != NULL ? track : json_null());
	if (track == NULL && why != NULL)
		json_object_set_new(j, "track_error", json_string(why));
	/* The detail is nested (payload, track): JSON is its table. */
	if (print_json(j) == -1)
		goto out;
	rc = 0;
out:
	nb_stored_events_free(ev, n);
	return rc;
}

static int
dlq_replay(
    struct nb_store *st, const struct dlq_args *a, const struct nb_dlq_query *q)
{
	size_t replayed = 0, requarantined = 0;

	if (nb_store_replay(st, &q->filter, q->dry_run, nb_time_now_ms(),
		nb_nudgespot_revalidate, &replayed, &requarantined) == -1) {
		fprintf(stderr, "nudgebridge dlq: replay failed\n");
		return 1;
	}
	/* Re-validated events were replayed too, even if still invalid. */
	replayed += requarantined;
	if (a->json)
		return print_json(json_pack("{s:I, s:I, s:b}", "replayed",
			   (json_int_t)replayed, "requarantined",
			   (json_int_t)requarantined, "dry_run", q->dry_run)) ==
			0
		    ? 0
		    : 1;
	if (q->dry_run)
		printf("would replay %zu events (%zu would stay "
		       "quarantined)\n",
		    replayed, requarantined);
	else
		printf("replayed %zu events (%zu still quarantined)\n",
		    replayed, requarantined);
	return 0;
}

static int
dlq_purge(
    struct nb_store *st, const struct dlq_args *a, const struct nb_dlq_query *q)
{
	size_t purged = 0;

	if (nb_store_purge(st, &q->filter, q->dry_run, &purged) == -1) {
		fprintf(stderr, "nudgebridge dlq: purge failed\n");
		return 1;
	}
	if (a->json)
		return print_json(json_pack("{s:I, s:b}", "purged",
			   (json_int_t)purged, "dry_run", q->dry_run)) == 0
		    ? 0
		    : 1;
	printf(
	    "%s %zu events\n", q->dry_run ? "would purge" : "purged", purged);
	return 0;
}

int
nb_dlq_main(int argc, char **argv)
{
	struct dlq_args a;
	struct nb_dlq_query q;
	struct nb_config *cfg = NULL;
	struct nb_store *st = NULL;
	char err[512];
	int rc = 2;

	memset(&a, 0, sizeof(a));
	memset(&q, 0, sizeof(q));
	if (argc < 2 || strcmp(argv[1], "help") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		dlq_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	a.cmd = argv[1];
	if (strcmp(a.cmd, "list") != 0 && strcmp(a.cmd, "show") != 0 &&
	    strcmp(a.cmd, "replay") != 0 && strcmp(a.cmd, "purge") != 0) {
		fprintf(
		    stderr, "nudgebridge dlq: unknown command '%s'\n", a.cmd);
		dlq_usage(stderr);
		return 2;
	}
	if ((a.filter = json_object()) == NULL) {
		fprintf(stderr, "nudgebridge dlq: out of memory\n");
		return 1;
	}
	if (dlq_parse(&a, argc, argv) == -1) {
		dlq_usage(stderr);
		goto out;
	}
	if (nb_dlq_query_from_json(
		&q, a.filter, nb_time_now_ms(), err, sizeof(err)) == -1) {
		fprintf(stderr, "nudgebridge dlq: %s\n", err);
		goto out;
	}
	if (nb_config_load(&cfg, a.config, err, sizeof(err)) == -1) {
		fprintf(stderr, "nudgebridge dlq: %s: %s\n", a.config, err);
		goto out;
	}
	nb_log_init(NB_LOG_WARN, cfg->log_format);
	if (nb_store_open(&st, &cfg->store, err, sizeof(err)) == -1) {
		fprintf(stderr, "nudgebridge dlq: cannot open the store: %s\n",
		    err);
		rc = 1;
		goto out;
	}
	if (strcmp(a.cmd, "list") == 0)
		rc = dlq_list(st, &a, &q);
	else if (strcmp(a.cmd, "show") == 0)
		rc = dlq_show(st, &a, &q, cfg);
	else if (strcmp(a.cmd, "replay") == 0)
		rc = dlq_replay(st, &a, &q);
	else
		rc = dlq_purge(st, &a, &q);
out:
	nb_store_close(st);
	nb_config_unref(cfg);
	nb_dlq_query_clear(&q);
	json_decref(a.filter);
	return rc;
}
