/* SPDX-License-Identifier: ISC */
/*
 * store: dispatch to the backend that store.driver names.
 *
 * A struct nb_store is a function table plus the backend's own state; this
 * file holds no SQL, only the choice of table at open time, the helpers
 * every backend shares (dead-letter keys, filter defaults, the release of
 * read-back rows) and the one piece of policy that is the same everywhere:
 * which rows a replay touches and what becomes of each, built on the
 * backends' replay primitives.  "sqlite" is store_sqlite.c, "postgres"
 * store_pg.c.  Like the backends, a struct nb_store is used by one thread
 * at a time.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/log.h"
#include "nudgebridge/store.h"
#include "store_backend.h"

/* Rows a replay lists per round, so it never holds every payload at once. */
#define STORE_REPLAY_CHUNK 1000

struct nb_store {
	const struct nb_store_ops *ops;
	void *state;
};

static const struct nb_store_ops *const backends[] = {
    &nb_store_sqlite_ops,
    &nb_store_pg_ops,
};

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

void
nb_store_rows_clear(struct nb_store_rows *r)
{
	nb_stored_events_free(r->v, r->n);
	memset(r, 0, sizeof(*r));
}

struct nb_stored_event *
nb_store_rows_next(struct nb_store_rows *r)
{
	struct nb_stored_event *nv;
	size_t ncap;

	if (r->n == r->cap) {
		ncap = r->cap == 0 ? 16 : r->cap * 2;
		if ((nv = reallocarray(r->v, ncap, sizeof(*nv))) == NULL) {
			log_error("out of memory", " rows=%zu", r->n);
			return NULL;
		}
		r->v = nv;
		r->cap = ncap;
	}
	nv = &r->v[r->n++];
	memset(nv, 0, sizeof(*nv));
	return nv;
}

unsigned
nb_store_filter_states(const struct nb_store_filter *f)
{
	if (f == NULL || f->states == 0)
		return NB_STATE_MASK_DEAD;
	return f->states;
}

void
nb_stored_events_free(struct nb_stored_event *ev, size_t n)
{
	size_t i;

	if (ev == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(ev[i].source);
		free(ev[i].id);
		free(ev[i].type);
		free(ev[i].raw);
		free(ev[i].reason);
		free(ev[i].error);
	}
	free(ev);
}

int
nb_store_open(struct nb_store **out, const struct nb_store_config *cfg,
    char *err, size_t errlen)
{
	const struct nb_store_ops *ops = NULL;
	const char *driver;
	struct nb_store *s = NULL;
	size_t i;
	int rc = -1;

	*out = NULL;
	driver = cfg->driver != NULL ? cfg->driver : "sqlite";
	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i]->name, driver) == 0)
			ops = backends[i];
	if (ops == NULL) {
		snprintf(err, errlen, "store.driver: unknown driver \"%.32s\"",
		    driver);
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "store: out of memory");
		goto out;
	}
	s->ops = ops;
	if (ops->open(&s->state, cfg, err, errlen) == -1)
		goto out;
	*out = s;
	s = NULL;
	rc = 0;
out:
	free(s);
	return rc;
}

void
nb_store_close(struct nb_store *s)
{
	if (s == NULL)
		return;
	s->ops->close(s->state);
	free(s);
}

int
nb_store_schema_version(struct nb_store *s, int *version)
{
	return s->ops->schema_version(s->state, version);
}

int
nb_store_recover(struct nb_store *s)
{
	return s->ops->recover(s->state);
}

int
nb_store_append(struct nb_store *s, struct nb_append *const *reqs, size_t n)
{
	return s->ops->append(s->state, reqs, n);
}

int
nb_store_claim(struct nb_store *s, const char *const *sources, size_t nsources,
    int64_t now_ms, int64_t lease_until_ms, size_t limit,
    struct nb_stored_event **out, size_t *n)
{
	return s->ops->claim(
	    s->state, sources, nsources, now_ms, lease_until_ms, limit, out, n);
}

int
nb_store_extend(
    struct nb_store *s, const int64_t *seqs, size_t n, int64_t lease_until_ms)
{
	return s->ops->extend(s->state, seqs, n, lease_until_ms);
}

int
nb_store_delivered(
    struct nb_store *s, const int64_t *seqs, size_t n, int64_t now_ms)
{
	return s->ops->delivered(s->state, seqs, n, now_ms);
}

int
nb_store_retry(struct nb_store *s, const struct nb_store_retry *rows, size_t n,
    const char *error)
{
	return s->ops->retry(s->state, rows, n, error);
}

int
nb_store_release(struct nb_store *s, const int64_t *seqs, size_t n)
{
	return s->ops->release(s->state, seqs, n);
}

int
nb_store_dead(struct nb_store *s, const int64_t *seqs, size_t n,
    const char *reason, const char *error, int64_t now_ms)
{
	return s->ops->dead(s->state, seqs, n, reason, error, now_ms);
}

int
nb_store_list(struct nb_store *s, const struct nb_store_filter *f,
    struct nb_stored_event **out, size_t *n)
{
	return s->ops->list(s->state, f, out, n);
}

/* Replays one listed row; counts what happened (or would). */
static int
replay_row(struct nb_store *s, const struct nb_stored_event *ev, int dry_run,
    int64_t now_ms, nb_store_revalidate_fn fn, size_t *replayed,
    size_t *requarantined)
{
	const char *rule;
	char *id = NULL, *type = NULL;
	int rc = -1;

	if (ev->state == NB_STATE_PENDING)
		return 0;
	if (ev->state == NB_STATE_DEAD && ev->reason != NULL &&
	    strcmp(ev->reason, NB_REASON_QUARANTINED) == 0) {
		/* Without a validator a quarantined row cannot be judged. */
		if (fn == NULL)
			return 0;
		rule = fn(ev->raw, ev->rawlen, &id, &type);
		if (rule != NULL) {
			(*requarantined)++;
			if (!dry_run &&
			    s->ops->requarantine(
				s->state, ev->seq, rule, now_ms) == -1)
				goto out;
			rc = 0;
			goto out;
		}
	}
	(*replayed)++;
	if (!dry_run &&
	    s->ops->make_pending(s->state, ev->seq, now_ms, id, type) == -1)
		goto out;
	rc = 0;
out:
	free(id);
	free(type);
	return rc;
}

int
nb_store_replay(struct nb_store *s, const struct nb_store_filter *f,
    int dry_run, int64_t now_ms, nb_store_revalidate_fn fn, size_t *replayed,
    size_t *requarantined)
{
	static const struct nb_store_filter all;
	struct nb_store_filter chunk;
	struct nb_stored_event *rows = NULL;
	size_t i, n = 0, got, left, nrep = 0, nreq = 0;
	int rc = -1, in_tx = 0;

	*replayed = *requarantined = 0;
	chunk = f != NULL ? *f : all;
	/* Pending rows are never replayed; keep them out of the limit too. */
	chunk.states = nb_store_filter_states(f) & ~NB_STATE_MASK_PENDING;
	if (chunk.states == 0)
		return 0;
	if (s->ops->replay_begin(s->state, dry_run) == -1)
		return -1;
	in_tx = !dry_run;
	left = chunk.limit;
	for (;;) {
		chunk.limit = left != 0 && left < STORE_REPLAY_CHUNK
		    ? left
		    : STORE_REPLAY_CHUNK;
		if (s->ops->replay_list(s->state, &chunk, &rows, &n) == -1)
			goto out;
		for (i = 0; i < n; i++)
			if (replay_row(s, &rows[i], dry_run, now_ms, fn, &nrep,
				&nreq) == -1)
				goto out;
		got = n;
		if (got > 0)
			chunk.after_seq = rows[got - 1].seq;
		nb_stored_events_free(rows, n);
		rows = NULL;
		n = 0;
		if (got < chunk.limit)
			break;
		if (left != 0 && (left -= got) == 0)
			break;
	}
	if (in_tx && s->ops->replay_commit(s->state) == -1)
		goto out;
	in_tx = 0;
	*replayed = nrep;
	*requarantined = nreq;
	rc = 0;
out:
	if (in_tx)
		s->ops->replay_rollback(s->state);
	nb_stored_events_free(rows, n);
	return rc;
}

int
nb_store_purge(struct nb_store *s, const struct nb_store_filter *f, int dry_run,
    size_t *purged)
{
	return s->ops->purge(s->state, f, dry_run, purged);
}

int
nb_store_stats(
    struct nb_store *s, int64_t now_ms, struct nb_source_stats **out, size_t *n)
{
	return s->ops->stats(s->state, now_ms, out, n);
}

int
nb_store_prune(
    struct nb_store *s, int64_t dedupe_after_ms, int64_t delivered_before_ms)
{
	return s->ops->prune(s->state, dedupe_after_ms, delivered_before_ms);
}

int
nb_store_probe(struct nb_store *s)
{
	return s->ops->probe(s->state);
}

int
nb_store_wants_checkpoints(const struct nb_store *s)
{
	return s->ops->checkpoint != NULL;
}

int
nb_store_checkpoint(struct nb_store *s)
{
	return s->ops->checkpoint != NULL ? s->ops->checkpoint(s->state) : 0;
}
