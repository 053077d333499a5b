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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

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

/* Column col of r into out (outlen bytes): NULL as "", cut to fit. */
static void
row_copy(const struct nb_store_row *r, int col, char *out, size_t outlen)
{
	const char *v = r->text(r, col);

	(void)snprintf(out, outlen, "%s", v != NULL ? v : "");
}

static enum nb_alert_kind
row_kind(const struct nb_store_row *r, int col)
{
	const char *v = r->text(r, col);
	enum nb_alert_kind k;

	if (v == NULL || nb_alert_parse(v, &k) == -1)
		return NB_ALERT_KINDS;
	return k;
}

int
nb_store_stats_read(const struct nb_store_row *r, void *out)
{
	struct nb_source_stats *s = out;

	row_copy(r, 0, s->source, sizeof(s->source));
	s->pending = r->i64(r, 1);
	s->delivered = r->i64(r, 2);
	s->dead = r->i64(r, 3);
	s->quarantined = r->i64(r, 4);
	s->received_total = r->i64(r, 5);
	s->delivered_total = r->i64(r, 6);
	s->dead_total = r->i64(r, 7);
	s->oldest_pending_ms = r->i64(r, 8);
	s->inflight = r->i64(r, 9);
	return 0;
}

/* Column col of r as a malloc'd string (NULL stays NULL); *failed. */
static char *
row_strdup(const struct nb_store_row *r, int col, int *failed)
{
	const char *v = r->text(r, col);
	char *d;

	if (v == NULL)
		return NULL;
	if ((d = strdup(v)) == NULL)
		*failed = 1;
	return d;
}

int
nb_store_error_read(const struct nb_store_row *r, void *out)
{
	struct nb_store_error *e = out;
	int failed = 0;

	row_copy(r, 0, e->source, sizeof(e->source));
	e->error = row_strdup(r, 1, &failed);
	e->reason = row_strdup(r, 2, &failed);
	e->state = (enum nb_event_state)r->i64(r, 3);
	e->count = r->i64(r, 4);
	e->last_ms = r->i64(r, 5);
	return failed || e->error == NULL ? -1 : 0;
}

int
nb_store_attempt_read(const struct nb_store_row *r, void *out)
{
	struct nb_store_attempt_row *a = out;
	int failed = 0;

	a->id = r->i64(r, 0);
	a->at_ms = r->i64(r, 1);
	a->end_ms = r->i64(r, 2);
	a->status = (int)r->i64(r, 3);
	a->error = row_strdup(r, 4, &failed);
	a->batch_size = r->i64(r, 5);
	return failed ? -1 : 0;
}

int
nb_store_audit_read(const struct nb_store_row *r, void *out)
{
	struct nb_store_audit *a = out;

	a->id = r->i64(r, 0);
	a->at_ms = r->i64(r, 1);
	row_copy(r, 2, a->actor, sizeof(a->actor));
	row_copy(r, 3, a->kind, sizeof(a->kind));
	row_copy(r, 4, a->subject, sizeof(a->subject));
	a->dry_run = (int)r->i64(r, 5);
	a->events = r->i64(r, 6);
	a->pending = r->i64(r, 7);
	a->delivered = r->i64(r, 8);
	a->dead = r->i64(r, 9);
	a->complete = (int)r->i64(r, 10);
	return 0;
}

int
nb_store_activity_read(const struct nb_store_row *r, void *out)
{
	struct nb_activity_row *a = out;

	row_copy(r, 0, a->source, sizeof(a->source));
	row_copy(r, 1, a->fp, sizeof(a->fp));
	a->ms = r->i64(r, 2);
	return 0;
}

int
nb_store_report_read(const struct nb_store_row *r, void *out)
{
	struct nb_alert_report *p = out;

	p->kind = row_kind(r, 0);
	row_copy(r, 1, p->source, sizeof(p->source));
	p->status = (int)r->i64(r, 2);
	row_copy(r, 3, p->text, sizeof(p->text));
	p->seen_ms = r->i64(r, 4);
	return 0;
}

int
nb_store_note_read(const struct nb_store_row *r, void *out)
{
	struct nb_alert_note *n = out;
	const char *body = r->text(r, 5);

	n->id = r->i64(r, 0);
	row_copy(r, 1, n->msg_id, sizeof(n->msg_id));
	n->kind = row_kind(r, 2);
	row_copy(r, 3, n->source, sizeof(n->source));
	n->resolved = (int)r->i64(r, 4);
	n->attempts = (int)r->i64(r, 6);
	n->created_ms = r->i64(r, 7);
	n->body = strdup(body != NULL ? body : "{}");
	return n->body != NULL ? 0 : -1;
}

int
nb_store_state_read(const struct nb_store_row *r, void *out)
{
	struct nb_alert_state *s = out;

	s->kind = row_kind(r, 0);
	row_copy(r, 1, s->source, sizeof(s->source));
	s->known = 1;
	s->firing = (int)r->i64(r, 2);
	s->started_ms = r->i64(r, 3);
	s->resolved_ms = r->i64(r, 4);
	s->mark = r->i64(r, 5);
	s->pending = r->i64(r, 6);
	s->notified_ms = r->i64(r, 7);
	s->changed_ms = r->i64(r, 8);
	row_copy(r, 9, s->text, sizeof(s->text));
	row_copy(r, 10, s->summary, sizeof(s->summary));
	row_copy(r, 11, s->details, sizeof(s->details));
	return 0;
}
