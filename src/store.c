/* SPDX-License-Identifier: ISC */
/*
 * store: the dispatcher and the transaction frame every backend shares.
 *
 * A struct nb_store is a function table plus the backend's own state.  This
 * file holds no SQL.  It picks the table by store.driver at open time and
 * runs every write as one frame: ready the connection, begin, the
 * operation's primitives, commit, and on failure roll back and, when the
 * backend calls the failure a conflict (PostgreSQL's deadlocks between
 * instances, or a connection the server closed), run the whole frame
 * again from the start.  A failed frame
 * changed nothing.  Each frame carries a tally of what its primitives
 * changed, which the backend's commit writes into the per-source counters
 * in the same transaction.  The policy that is the same everywhere lives
 * here too: a key that is no decimal seq matches nothing, and which rows a
 * replay touches and what becomes of each.  "sqlite" is store_sqlite*.c,
 * "postgres" store_pg*.c.  Like the backends, a struct nb_store is used by
 * one thread at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/activity.h"
#include "nudgebridge/alert.h"
#include "nudgebridge/log.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"
#include "store_backend.h"
#include "store_frame.h"

/* Runs of a frame after the first, when the backend calls it a conflict. */
#define STORE_TX_RETRIES 3

static const struct nb_store_ops *const backends[] = {
    &nb_store_sqlite_ops,
    &nb_store_pg_ops,
};

typedef nb_store_tx_fn tx_fn;

static int
ready(struct nb_store *s)
{
	return s->ops->ready != NULL ? s->ops->ready(s->state) : 0;
}

/*
 * Runs fn in one write transaction committed with sync.  fn is called again
 * from the start (after a rollback) when the backend says the failure was a
 * conflict, at most STORE_TX_RETRIES times.
 */
static int
tx_run(struct nb_store *s, enum nb_store_sync sync, tx_fn fn, void *arg,
    const char *op)
{
	const struct nb_store_ops *o = s->ops;
	int attempt;

	for (attempt = 0;; attempt++) {
		if (ready(s) == -1)
			return -1;
		nb_store_tally_reset(&s->tally);
		if (o->begin(s->state, sync) == 0) {
			if (fn(s, arg) == 0 &&
			    o->commit(s->state, &s->tally) == 0)
				return 0;
			o->rollback(s->state);
		}
		if (attempt == STORE_TX_RETRIES || o->retryable == NULL ||
		    !o->retryable(s->state))
			return -1;
		nb_log(NB_LOG_WARN, op, "transaction retried", " attempt=%d",
		    attempt + 1);
	}
}

struct frame_call {
	nb_store_frame_fn fn;
	void *arg;
};

static int
frame_fn(struct nb_store *s, void *arg)
{
	struct frame_call *c = arg;

	return c->fn(s->ops, s->state, c->arg);
}

int
nb_store_frame(struct nb_store *s, enum nb_store_sync sync,
    nb_store_frame_fn fn, void *arg, const char *op)
{
	struct frame_call c = {fn, arg};

	return tx_run(s, sync, frame_fn, &c, op);
}

int
nb_store_call(struct nb_store *s, nb_store_frame_fn fn, void *arg)
{
	if (ready(s) == -1)
		return -1;
	return fn(s->ops, s->state, arg);
}

/* The reader of each query's rows, their size, and their name in logs. */
static const struct collect_kind {
	nb_store_read_fn read;
	size_t size;
	const char *what;
} collect_kinds[] = {
    [NB_STORE_Q_STATS] = {nb_store_stats_read, sizeof(struct nb_source_stats),
	"sources"},
    [NB_STORE_Q_ERRORS] = {nb_store_error_read, sizeof(struct nb_store_error),
	"errors"},
    [NB_STORE_Q_ACTIVITY] = {nb_store_activity_read,
	sizeof(struct nb_activity_row), "rows"},
    [NB_STORE_Q_REPORTS] = {nb_store_report_read,
	sizeof(struct nb_alert_report), "rows"},
    [NB_STORE_Q_STATES] = {nb_store_state_read, sizeof(struct nb_alert_state),
	"rows"},
    [NB_STORE_Q_AL_CLAIM] = {nb_store_note_read, sizeof(struct nb_alert_note),
	"rows"},
    [NB_STORE_Q_ATTEMPTS] = {nb_store_attempt_read,
	sizeof(struct nb_store_attempt_row), "attempts"},
    [NB_STORE_Q_AUDIT] = {nb_store_audit_read, sizeof(struct nb_store_audit),
	"audit"},
};

struct collect {
	const struct collect_kind *k;
	struct nb_store_array *a;
};

static int
collect_cb(void *ctx, const struct nb_store_row *r)
{
	const struct collect *c = ctx;
	void *e;

	if ((e = nb_store_array_push(c->a, c->k->size)) == NULL ||
	    c->k->read(r, e) == -1) {
		log_error("out of memory", " %s=%zu", c->k->what, c->a->n);
		return -1;
	}
	return 0;
}

int
nb_store_collect(const struct nb_store_ops *o, void *state,
    enum nb_store_query which, nb_store_bind_fn bind, const void *barg,
    struct nb_store_array *a)
{
	struct collect c = {&collect_kinds[which], a};

	return o->query(state, which, bind, barg, collect_cb, &c);
}

int
nb_store_tx(struct nb_store *s, enum nb_store_sync sync, nb_store_tx_fn fn,
    void *arg, const char *op)
{
	return tx_run(s, sync, fn, arg, op);
}

int
nb_store_ready(struct nb_store *s)
{
	return ready(s);
}

int
nb_store_key_none(const struct nb_store_filter *f)
{
	int64_t seq;

	return f != NULL && f->key != NULL &&
	    nb_store_key_parse(f->key, &seq) == -1;
}

int
nb_store_open(struct nb_store **out, const struct nb_store_config *cfg,
    char *err, size_t errlen)
{
	const struct nb_store_ops *ops = NULL;
	struct nb_segment_install install;
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
	if (cfg->install_id != NULL &&
	    nb_segment_install_init(&install, cfg->install_id) == -1) {
		snprintf(err, errlen,
		    "install id: not %d lower-case hex digits",
		    NB_SEGMENT_INSTALL_ID_LEN);
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "store: out of memory");
		goto out;
	}
	s->ops = ops;
	if (ops->open(&s->state, cfg, err, errlen) == -1)
		goto out;
	/* A store made by hand or damaged: no messageId can be made. */
	if (nb_segment_install_init(&install, ops->install_id(s->state)) ==
	    -1) {
		snprintf(err, errlen,
		    "store: the install id is not %d hex digits",
		    NB_SEGMENT_INSTALL_ID_LEN);
		ops->close(s->state);
		goto out;
	}
	/* Asked to take over an install: only a store without one can. */
	if (cfg->install_id != NULL &&
	    strcmp(cfg->install_id, install.id) != 0) {
		snprintf(err, errlen, "store: it has install id %s already",
		    install.id);
		ops->close(s->state);
		goto out;
	}
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
	nb_store_tally_free(&s->tally);
	free(s);
}

int
nb_store_schema_version(struct nb_store *s, int *version)
{
	if (ready(s) == -1)
		return -1;
	return s->ops->schema_version(s->state, version);
}

const char *
nb_store_install_id(const struct nb_store *s)
{
	return s->ops->install_id(s->state);
}

int
nb_store_shared(const struct nb_store *s)
{
	return s->ops->beat != NULL;
}

int
nb_store_beat(struct nb_store *s, struct nb_store_instance *self,
    int64_t lease_ms, struct nb_store_instance *out, size_t max, size_t *n,
    size_t *live)
{
	*n = *live = 0;
	if (s->ops->beat == NULL) {
		log_error("the store is not shared", NULL);
		return -1;
	}
	if (ready(s) == -1)
		return -1;
	return s->ops->beat(s->state, self, lease_ms, out, max, n, live);
}

int
nb_store_leave(struct nb_store *s, const char *id)
{
	if (s->ops->leave == NULL)
		return 0;
	if (ready(s) == -1)
		return -1;
	return s->ops->leave(s->state, id);
}

static int
recover_fn(struct nb_store *s, void *arg)
{
	(void)arg;
	return s->ops->recover(s->state);
}

int
nb_store_recover(struct nb_store *s)
{
	if (s->ops->recover == NULL)
		return 0;
	return tx_run(s, NB_STORE_SYNC_FULL, recover_fn, NULL, __func__);
}

struct append_arg {
	struct nb_append *const *reqs;
	size_t n;
};

static int
append_fn(struct nb_store *s, void *arg)
{
	struct append_arg *a = arg;

	return s->ops->append(s->state, a->reqs, a->n, &s->tally);
}

int
nb_store_append(struct nb_store *s, struct nb_append *const *reqs, size_t n)
{
	struct append_arg a = {reqs, n};

	if (n == 0)
		return 0;
	return tx_run(s, NB_STORE_SYNC_FULL, append_fn, &a, __func__);
}

struct claim_arg {
	const struct nb_store_claim *c;
	struct nb_store_rows v;
};

static int
claim_fn(struct nb_store *s, void *arg)
{
	struct claim_arg *a = arg;

	nb_store_rows_clear(&a->v);
	return s->ops->claim(s->state, a->c, &a->v);
}

int
nb_store_claim(struct nb_store *s, const char *const *sources, size_t nsources,
    int64_t now_ms, int64_t lease_until_ms, size_t limit,
    struct nb_stored_event **out, size_t *n)
{
	struct nb_store_claim c = {
	    sources, nsources, now_ms, lease_until_ms, limit};
	struct claim_arg a = {&c, {0}};
	size_t found = 1;

	*out = NULL;
	*n = 0;
	if (nsources == 0 || limit == 0)
		return 0;
	if (s->ops->claim_prepare != NULL) {
		if (ready(s) == -1 ||
		    s->ops->claim_prepare(s->state, &c, &found) == -1)
			return -1;
		if (found == 0)
			return 0;
	}
	if (tx_run(s, NB_STORE_SYNC_LEASE, claim_fn, &a, __func__) == -1) {
		nb_store_rows_clear(&a.v);
		return -1;
	}
	nb_store_rows_take(&a.v, out, n);
	return 0;
}

struct mark_arg {
	const struct nb_store_mark *m;
	const int64_t *seqs;
	size_t n;
	struct nb_store_attempt att; /* m->att as this run records it */
};

static int
mark_fn(struct nb_store *s, void *arg)
{
	struct mark_arg *a = arg;
	struct nb_store_mark m = *a->m;
	size_t changed;

	/* A run that rolled back recorded nothing: start from the caller's. */
	if (m.att != NULL) {
		a->att = *a->m->att;
		m.att = &a->att;
		/*
		 * A delivering attempt ends no earlier than the delivery of
		 * its rows: the retention prune deletes it only after them.
		 */
		if (m.kind == NB_STORE_MARK_DELIVERED && a->att.end_ms < m.ms)
			a->att.end_ms = m.ms;
	}
	return s->ops->mark(s->state, &m, a->seqs, a->n, &changed, &s->tally);
}

/*
 * One mark over seqs in a transaction of its own; the attempt's id is the
 * caller's once the transaction committed.
 */
static int
mark_run(struct nb_store *s, const struct nb_store_mark *m, const int64_t *seqs,
    size_t n, enum nb_store_sync sync, const char *op)
{
	struct mark_arg a = {m, seqs, n, {0}};

	if (n == 0)
		return 0;
	if (tx_run(s, sync, mark_fn, &a, op) == -1)
		return -1;
	if (m->att != NULL)
		m->att->id = a.att.id;
	return 0;
}

int
nb_store_extend(
    struct nb_store *s, const int64_t *seqs, size_t n, int64_t lease_until_ms)
{
	struct nb_store_mark m = {
	    .kind = NB_STORE_MARK_EXTEND, .ms = lease_until_ms};

	return mark_run(s, &m, seqs, n, NB_STORE_SYNC_LEASE, __func__);
}

int
nb_store_delivered(struct nb_store *s, const int64_t *seqs, size_t n,
    int64_t now_ms, struct nb_store_attempt *att)
{
	struct nb_store_mark m = {
	    .kind = NB_STORE_MARK_DELIVERED, .ms = now_ms, .att = att};

	/* A lost mark only means one more send with the same messageId. */
	return mark_run(s, &m, seqs, n, NB_STORE_SYNC_LEASE, __func__);
}

int
nb_store_release(struct nb_store *s, const int64_t *seqs, size_t n,
    struct nb_store_attempt *att)
{
	struct nb_store_mark m = {.kind = NB_STORE_MARK_RELEASE, .att = att};

	return mark_run(s, &m, seqs, n, NB_STORE_SYNC_LEASE, __func__);
}

int
nb_store_link(struct nb_store *s, const int64_t *seqs, size_t n,
    struct nb_store_attempt *att)
{
	struct nb_store_mark m = {.kind = NB_STORE_MARK_LINK, .att = att};

	if (att == NULL)
		return 0;
	return mark_run(s, &m, seqs, n, NB_STORE_SYNC_LEASE, __func__);
}

int
nb_store_dead(struct nb_store *s, const int64_t *seqs, size_t n,
    const char *reason, const char *error, int64_t now_ms,
    struct nb_store_attempt *att)
{
	struct nb_store_mark m = {.kind = NB_STORE_MARK_DEAD,
	    .ms = now_ms,
	    .reason = reason,
	    .error = error,
	    .att = att};

	return mark_run(s, &m, seqs, n, NB_STORE_SYNC_FULL, __func__);
}

struct retry_arg {
	const struct nb_store_retry *rows;
	size_t n;
	const char *error;
	int64_t at_ms;
	struct nb_store_attempt *att; /* the caller's, or NULL */
	struct nb_store_attempt run;  /* as this run records it */
};

static int
retry_fn(struct nb_store *s, void *arg)
{
	struct retry_arg *a = arg;

	if (a->att != NULL)
		a->run = *a->att;
	return s->ops->retry(s->state, a->rows, a->n, a->error, a->at_ms,
	    a->att != NULL ? &a->run : NULL, &s->tally);
}

int
nb_store_retry(struct nb_store *s, const struct nb_store_retry *rows, size_t n,
    const char *error, struct nb_store_attempt *att)
{
	/* The error's time: the call has none of its own. */
	struct retry_arg a = {rows, n, error, nb_time_now_ms(), att, {0}};

	if (n == 0)
		return 0;
	if (tx_run(s, NB_STORE_SYNC_FULL, retry_fn, &a, __func__) == -1)
		return -1;
	if (att != NULL)
		att->id = a.run.id;
	return 0;
}

int
nb_store_stats_all(
    struct nb_store *s, int64_t now_ms, struct nb_source_stats **out, size_t *n)
{
	struct nb_store_array a = {0};

	*out = NULL;
	*n = 0;
	if (ready(s) == -1)
		return -1;
	if (nb_store_collect(s->ops, s->state, NB_STORE_Q_STATS,
		nb_store_bind_int, &now_ms, &a) == -1) {
		free(a.v);
		return -1;
	}
	*out = a.v;
	*n = a.n;
	return 0;
}

int
nb_store_stats(
    struct nb_store *s, int64_t now_ms, struct nb_source_stats **out, size_t *n)
{
	struct nb_source_stats *v;
	size_t i, k = 0;

	if (nb_store_stats_all(s, now_ms, out, n) == -1)
		return -1;
	/* Only sources with rows, as when the figures were counted. */
	v = *out;
	for (i = 0; i < *n; i++)
		if (v[i].pending != 0 || v[i].delivered != 0 || v[i].dead != 0)
			v[k++] = v[i];
	*n = k;
	if (k == 0) {
		free(v);
		*out = NULL;
	}
	return 0;
}

int
nb_store_errors(struct nb_store *s, int64_t since_ms, size_t per_source,
    struct nb_store_error **out, size_t *n)
{
	const int64_t args[2] = {
	    since_ms, per_source > INT64_MAX ? INT64_MAX : (int64_t)per_source};
	struct nb_store_array a = {0};

	*out = NULL;
	*n = 0;
	if (per_source == 0)
		return 0;
	if (ready(s) == -1)
		return -1;
	if (nb_store_collect(s->ops, s->state, NB_STORE_Q_ERRORS,
		nb_store_bind_int2, args, &a) == -1) {
		nb_store_errors_free(a.v, a.n);
		return -1;
	}
	*out = a.v;
	*n = a.n;
	return 0;
}

struct prune_arg {
	int64_t dedupe_after_ms;
	int64_t delivered_before_ms;
	int more;
};

static int
prune_fn(struct nb_store *s, void *arg)
{
	struct prune_arg *a = arg;

	return s->ops->prune(s->state, a->dedupe_after_ms,
	    a->delivered_before_ms, NB_STORE_CHUNK, &a->more, &s->tally);
}

int
nb_store_prune(
    struct nb_store *s, int64_t dedupe_after_ms, int64_t delivered_before_ms)
{
	struct prune_arg a = {dedupe_after_ms, delivered_before_ms, 0};

	do {
		if (tx_run(s, NB_STORE_SYNC_FULL, prune_fn, &a, __func__) == -1)
			return -1;
	} while (a.more);
	return 0;
}

static int
probe_fn(struct nb_store *s, void *arg)
{
	(void)arg;
	return s->ops->probe(s->state);
}

int
nb_store_probe(struct nb_store *s)
{
	return tx_run(s, NB_STORE_SYNC_FULL, probe_fn, NULL, __func__);
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
