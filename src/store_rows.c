/* SPDX-License-Identifier: ISC */
/*
 * store_rows: keys, filter defaults, read-back rows and the tally of
 * counter changes, for every backend.
 *
 * The small pieces that the dispatcher and both backends share, kept below
 * them all so that no backend reaches up into store.c.  The tally is where
 * the counting rules live (which move grows which total); the backends
 * only report moves and write the sums.  Each function works on the
 * caller's data only; nothing here is global.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "nudgebridge/activity.h"
#include "nudgebridge/alert.h"
#include "nudgebridge/log.h"
#include "store_rows.h"

void
nb_store_key_format(int64_t seq, char key[NB_STORE_KEY_MAX])
{
	int len;

	len = snprintf(key, NB_STORE_KEY_MAX, "%" PRId64, seq);
	if (len < 0 || len >= NB_STORE_KEY_MAX)
		key[0] = '\0';
}

int
nb_store_key_parse(const char *key, int64_t *seq)
{
	const char *p;
	char *end;
	long long v;

	if (key == NULL || key[0] == '\0' || strlen(key) > 19)
		return -1;
	for (p = key; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return -1;
	errno = 0;
	v = strtoll(key, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return -1;
	*seq = v;
	return 0;
}

int
nb_store_window_len(const struct nb_append *r, int64_t *len)
{
	if ((r->dedupe_after_ms < 0 &&
		r->received_ms > INT64_MAX + r->dedupe_after_ms) ||
	    (r->dedupe_after_ms > 0 &&
		r->received_ms < INT64_MIN + r->dedupe_after_ms))
		return -1;
	*len = r->received_ms - r->dedupe_after_ms;
	return 0;
}

void
nb_store_install_new(char out[NB_SEGMENT_INSTALL_ID_LEN + 1])
{
	unsigned char id[NB_SEGMENT_INSTALL_ID_LEN / 2];

	randombytes_buf(id, sizeof(id));
	sodium_bin2hex(out, NB_SEGMENT_INSTALL_ID_LEN + 1, id, sizeof(id));
}

unsigned
nb_store_filter_states(const struct nb_store_filter *f)
{
	if (f == NULL || f->states == 0)
		return NB_STATE_MASK_DEAD;
	return f->states;
}

void
nb_store_row_free(struct nb_stored_event *ev)
{
	free(ev->source);
	free(ev->id);
	free(ev->type);
	free(ev->raw);
	free(ev->reason);
	free(ev->error);
}

void
nb_stored_events_free(struct nb_stored_event *ev, size_t n)
{
	size_t i;

	if (ev == NULL)
		return;
	for (i = 0; i < n; i++)
		nb_store_row_free(&ev[i]);
	free(ev);
}

void
nb_store_rows_clear(struct nb_store_rows *r)
{
	nb_stored_events_free(r->v, r->n);
	memset(r, 0, sizeof(*r));
}

/*
 * v, an array of n elements of size with room for *cap, with room for one
 * more: doubled when full, first elements at first.  The array to use from
 * now on, or NULL when out of memory (v is as it was).
 */
static void *
grow(void *v, size_t n, size_t *cap, size_t size, size_t first)
{
	size_t nc;

	if (n < *cap)
		return v;
	nc = *cap == 0 ? first : *cap * 2;
	if ((v = reallocarray(v, nc, size)) != NULL)
		*cap = nc;
	return v;
}

struct nb_stored_event *
nb_store_rows_next(struct nb_store_rows *r)
{
	struct nb_stored_event *nv;

	if ((nv = grow(r->v, r->n, &r->cap, sizeof(*nv), 16)) == NULL) {
		log_error("out of memory", " rows=%zu", r->n);
		return NULL;
	}
	r->v = nv;
	nv = &r->v[r->n++];
	memset(nv, 0, sizeof(*nv));
	return nv;
}

void
nb_store_bind_int(struct nb_store_binder *b, const void *arg)
{
	b->i64(b, *(const int64_t *)arg);
}

void
nb_store_bind_int2(struct nb_store_binder *b, const void *arg)
{
	const int64_t *v = arg;

	b->i64(b, v[0]);
	b->i64(b, v[1]);
}

void *
nb_store_array_push(struct nb_store_array *a, size_t size)
{
	char *p;

	if ((p = grow(a->v, a->n, &a->cap, size, 8)) == NULL)
		return NULL;
	a->v = p;
	p += a->n++ * size;
	memset(p, 0, size);
	return p;
}

void
nb_store_rows_take(
    struct nb_store_rows *v, struct nb_stored_event **out, size_t *n)
{
	*out = v->n > 0 ? v->v : NULL;
	*n = v->n;
	if (v->n == 0)
		free(v->v);
	memset(v, 0, sizeof(*v));
}

int
nb_store_seqs_push(struct nb_store_seqs *s, int64_t seq)
{
	int64_t *nv;

	if ((nv = grow(s->v, s->n, &s->cap, sizeof(*nv), 64)) == NULL) {
		log_error("out of memory", " seqs=%zu", s->n);
		return -1;
	}
	s->v = nv;
	s->v[s->n++] = seq;
	return 0;
}

void
nb_store_seqs_clear(struct nb_store_seqs *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

void
nb_store_attempts_free(struct nb_store_attempt_row *a, size_t n)
{
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < n; i++)
		free(a[i].error);
	free(a);
}

void
nb_store_errors_free(struct nb_store_error *e, size_t n)
{
	size_t i;

	if (e == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(e[i].error);
		free(e[i].reason);
	}
	free(e);
}

enum nb_store_bucket
nb_store_bucket_of(enum nb_event_state state, const char *reason)
{
	if (state == NB_STATE_PENDING)
		return NB_BUCKET_PENDING;
	if (state == NB_STATE_DELIVERED)
		return NB_BUCKET_DELIVERED;
	if (reason != NULL && strcmp(reason, NB_REASON_QUARANTINED) == 0)
		return NB_BUCKET_QUARANTINED;
	return NB_BUCKET_DEAD;
}

/* The tally's entry of source, made when missing; NULL (logged) on ENOMEM. */
static struct nb_store_count *
count_of(struct nb_store_tally *t, const char *source)
{
	struct nb_store_count *c;
	size_t i;

	/* Rows come in runs of one source: look at the last entry first. */
	for (i = t->nc; i > 0; i--)
		if (strcmp(t->c[i - 1].source, source) == 0)
			return &t->c[i - 1];
	if ((c = grow(t->c, t->nc, &t->capc, sizeof(*c), 4)) == NULL) {
		log_error("out of memory", " sources=%zu", t->nc);
		return NULL;
	}
	t->c = c;
	c = &t->c[t->nc++];
	memset(c, 0, sizeof(*c));
	snprintf(c->source, sizeof(c->source), "%s", source);
	return c;
}

/* The gauge of bucket b in c. */
static int64_t *
gauge(struct nb_store_count *c, enum nb_store_bucket b)
{
	switch (b) {
	case NB_BUCKET_PENDING:
		return &c->pending;
	case NB_BUCKET_DELIVERED:
		return &c->delivered;
	default:
		return &c->dead;
	}
}

int
nb_store_tally_move(struct nb_store_tally *t, const char *source,
    enum nb_store_bucket from, enum nb_store_bucket to, int64_t n)
{
	struct nb_store_count *c;
	int was_dead, is_dead;

	if (n == 0 || from == to)
		return 0;
	if ((c = count_of(t, source)) == NULL)
		return -1;
	if (from != NB_BUCKET_NONE)
		*gauge(c, from) -= n;
	if (to != NB_BUCKET_NONE)
		*gauge(c, to) += n;
	if (from == NB_BUCKET_QUARANTINED)
		c->quarantined -= n;
	if (to == NB_BUCKET_QUARANTINED)
		c->quarantined += n;
	if (from == NB_BUCKET_NONE && to != NB_BUCKET_NONE)
		c->received += n;
	if (to == NB_BUCKET_DELIVERED)
		c->delivered_total += n;
	was_dead = from == NB_BUCKET_DEAD || from == NB_BUCKET_QUARANTINED;
	is_dead = to == NB_BUCKET_DEAD || to == NB_BUCKET_QUARANTINED;
	if (is_dead && !was_dead)
		c->dead_total += n;
	return 0;
}

int
nb_store_tally_append(struct nb_store_tally *t, const struct nb_append *r)
{
	if (nb_store_tally_move(t, r->source, NB_BUCKET_NONE, NB_BUCKET_PENDING,
		r->accepted) == -1)
		return -1;
	return nb_store_tally_move(t, r->source, NB_BUCKET_NONE,
	    NB_BUCKET_QUARANTINED, r->quarantined);
}

/* 1 when a and b are both NULL or the same string. */
static int
same(const char *a, const char *b)
{
	return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

int
nb_store_tally_error(struct nb_store_tally *t, const char *source,
    const char *error, enum nb_event_state state, const char *reason,
    int64_t at_ms, int64_t n)
{
	struct nb_store_errnote *e;
	size_t i;

	if (error == NULL || error[0] == '\0' || n <= 0)
		return 0;
	for (i = 0; i < t->ne; i++) {
		e = &t->e[i];
		if (strcmp(e->source, source) != 0 || strcmp(e->error, error))
			continue;
		e->count += n;
		if (at_ms >= e->at_ms &&
		    (e->state != state || !same(e->reason, reason))) {
			/* The latest row's state and reason win. */
			free(e->reason);
			if ((e->reason = reason != NULL ? strdup(reason)
							: NULL) == NULL &&
			    reason != NULL)
				goto nomem;
			e->state = state;
		}
		if (at_ms > e->at_ms)
			e->at_ms = at_ms;
		return 0;
	}
	if ((e = grow(t->e, t->ne, &t->cape, sizeof(*e), 4)) == NULL)
		goto nomem;
	t->e = e;
	e = &t->e[t->ne];
	memset(e, 0, sizeof(*e));
	snprintf(e->source, sizeof(e->source), "%s", source);
	e->state = state;
	e->count = n;
	e->at_ms = at_ms;
	if ((e->error = strdup(error)) == NULL ||
	    (reason != NULL && (e->reason = strdup(reason)) == NULL)) {
		free(e->error);
		goto nomem;
	}
	t->ne++;
	return 0;
nomem:
	log_error("out of memory", " errors=%zu", t->ne);
	return -1;
}

int
nb_store_tally_replay(struct nb_store_tally *t, const char *source,
    enum nb_event_state state, const char *reason, const char *rule,
    int64_t at_ms)
{
	if (rule != NULL)
		return nb_store_tally_error(t, source, rule, NB_STATE_DEAD,
		    NB_REASON_QUARANTINED, at_ms, 1);
	return nb_store_tally_move(
	    t, source, nb_store_bucket_of(state, reason), NB_BUCKET_PENDING, 1);
}

void
nb_store_tally_reset(struct nb_store_tally *t)
{
	size_t i;

	for (i = 0; i < t->ne; i++) {
		free(t->e[i].error);
		free(t->e[i].reason);
	}
	t->nc = t->ne = 0;
}

void
nb_store_tally_free(struct nb_store_tally *t)
{
	nb_store_tally_reset(t);
	free(t->c);
	free(t->e);
	memset(t, 0, sizeof(*t));
}

/*
 * The row readers are tables: column i of a row lands in the member the
 * i-th entry names, as a 64-bit or a plain integer (enums included), a
 * string copied into a fixed array (NULL as "", cut to fit), a malloc'd
 * string (NULL stays NULL) or an alert kind.  A reader is its table and
 * what its struct needs beyond it.
 */
enum col_kind { COL_I64, COL_INT, COL_TEXT, COL_DUP, COL_KIND };

struct col {
	unsigned char kind;
	unsigned short off;
	unsigned short size; /* COL_TEXT: the array's */
};

/*
 * An entry for member m of struct type t; a member of another type than
 * the entry says does not compile (the _Generic has no case for it).
 */
#define COL(t, m, ...)                                                         \
	{                                                                      \
		_Generic(((t *)0)->m, __VA_ARGS__), offsetof(t, m), 0          \
	}
/* clang-format off */
#define C_I64(t, m)  COL(t, m, int64_t: COL_I64)
#define C_INT(t, m)  COL(t, m, int: COL_INT, unsigned: COL_INT)
#define C_DUP(t, m)  COL(t, m, char *: COL_DUP)
#define C_KIND(t, m) COL(t, m, int: COL_KIND, unsigned: COL_KIND)
#define C_TEXT(t, m)                                                           \
	{_Generic(((t *)0)->m, char *: COL_TEXT), offsetof(t, m),              \
	    sizeof(((t *)0)->m)}
/* clang-format on */
#define NCOLS(c) (sizeof(c) / sizeof((c)[0]))

/* COL_INT writes enums as int: they must be int-sized. */
_Static_assert(sizeof(enum nb_event_state) == sizeof(int) &&
	sizeof(enum nb_alert_kind) == sizeof(int),
    "enums read as int");

static enum nb_alert_kind
row_kind(const struct nb_store_row *r, int col)
{
	const char *v = r->text(r, col);
	enum nb_alert_kind k;

	if (v == NULL || nb_alert_parse(v, &k) == -1)
		return NB_ALERT_KINDS;
	return k;
}

/* Fills out from r by the table c; -1 when a string could not be kept. */
static int
row_fill(const struct nb_store_row *r, const struct col *c, size_t n, void *out)
{
	char *base = out;
	const char *v;
	int64_t i64;
	char *d;
	size_t i;
	int iv, rc = 0;

	for (i = 0; i < n; i++) {
		switch (c[i].kind) {
		case COL_I64:
			i64 = r->i64(r, (int)i);
			memcpy(base + c[i].off, &i64, sizeof(i64));
			break;
		case COL_INT:
		case COL_KIND:
			iv = c[i].kind == COL_KIND ? (int)row_kind(r, (int)i)
						   : (int)r->i64(r, (int)i);
			memcpy(base + c[i].off, &iv, sizeof(iv));
			break;
		case COL_TEXT:
			v = r->text(r, (int)i);
			(void)snprintf(base + c[i].off, c[i].size, "%s",
			    v != NULL ? v : "");
			break;
		case COL_DUP:
			d = NULL;
			if ((v = r->text(r, (int)i)) != NULL &&
			    (d = strdup(v)) == NULL)
				rc = -1;
			memcpy(base + c[i].off, &d, sizeof(d));
			break;
		}
	}
	return rc;
}

#define S struct nb_source_stats
static const struct col stats_cols[] = {C_TEXT(S, source), C_I64(S, pending),
    C_I64(S, delivered), C_I64(S, dead), C_I64(S, quarantined),
    C_I64(S, received_total), C_I64(S, delivered_total), C_I64(S, dead_total),
    C_I64(S, oldest_pending_ms), C_I64(S, inflight)};
#undef S

int
nb_store_stats_read(const struct nb_store_row *r, void *out)
{
	return row_fill(r, stats_cols, NCOLS(stats_cols), out);
}

#define E struct nb_store_error
static const struct col error_cols[] = {C_TEXT(E, source), C_DUP(E, error),
    C_DUP(E, reason), C_INT(E, state), C_I64(E, count), C_I64(E, last_ms)};
#undef E

int
nb_store_error_read(const struct nb_store_row *r, void *out)
{
	struct nb_store_error *e = out;

	if (row_fill(r, error_cols, NCOLS(error_cols), out) == -1)
		return -1;
	return e->error == NULL ? -1 : 0;
}

#define A struct nb_store_attempt_row
static const struct col attempt_cols[] = {C_I64(A, id), C_I64(A, at_ms),
    C_I64(A, end_ms), C_INT(A, status), C_DUP(A, error), C_I64(A, batch_size)};
#undef A

int
nb_store_attempt_read(const struct nb_store_row *r, void *out)
{
	return row_fill(r, attempt_cols, NCOLS(attempt_cols), out);
}

#define A struct nb_store_audit
static const struct col audit_cols[] = {C_I64(A, id), C_I64(A, at_ms),
    C_TEXT(A, actor), C_TEXT(A, kind), C_TEXT(A, subject), C_INT(A, dry_run),
    C_I64(A, events), C_I64(A, pending), C_I64(A, delivered), C_I64(A, dead),
    C_INT(A, complete)};
#undef A

int
nb_store_audit_read(const struct nb_store_row *r, void *out)
{
	return row_fill(r, audit_cols, NCOLS(audit_cols), out);
}

#define A struct nb_activity_row
static const struct col activity_cols[] = {
    C_TEXT(A, source), C_TEXT(A, fp), C_I64(A, ms)};
#undef A

int
nb_store_activity_read(const struct nb_store_row *r, void *out)
{
	return row_fill(r, activity_cols, NCOLS(activity_cols), out);
}

#define P struct nb_alert_report
static const struct col report_cols[] = {C_KIND(P, kind), C_TEXT(P, source),
    C_INT(P, status), C_TEXT(P, text), C_I64(P, seen_ms)};
#undef P

int
nb_store_report_read(const struct nb_store_row *r, void *out)
{
	return row_fill(r, report_cols, NCOLS(report_cols), out);
}

#define N struct nb_alert_note
static const struct col note_cols[] = {C_I64(N, id), C_TEXT(N, msg_id),
    C_KIND(N, kind), C_TEXT(N, source), C_INT(N, resolved), C_DUP(N, body),
    C_INT(N, attempts), C_I64(N, created_ms)};
#undef N

int
nb_store_note_read(const struct nb_store_row *r, void *out)
{
	struct nb_alert_note *n = out;

	if (row_fill(r, note_cols, NCOLS(note_cols), out) == -1)
		return -1;
	if (n->body == NULL)
		n->body = strdup("{}");
	return n->body != NULL ? 0 : -1;
}

#define T struct nb_alert_state
static const struct col state_cols[] = {C_KIND(T, kind), C_TEXT(T, source),
    C_INT(T, firing), C_I64(T, started_ms), C_I64(T, resolved_ms),
    C_I64(T, mark), C_I64(T, pending), C_I64(T, notified_ms),
    C_I64(T, changed_ms), C_TEXT(T, text), C_TEXT(T, summary),
    C_TEXT(T, details)};
#undef T

int
nb_store_state_read(const struct nb_store_row *r, void *out)
{
	struct nb_alert_state *s = out;

	s->known = 1;
	return row_fill(r, state_cols, NCOLS(state_cols), out);
}
