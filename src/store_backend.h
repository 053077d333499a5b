/* SPDX-License-Identifier: ISC */
/*
 * store_backend: the function table behind struct nb_store.
 *
 * A backend implements primitives; store.c composes them, as smtpd's
 * queue_backend.c does for queue_fs.c and queue_ram.c.  store.c owns the
 * transaction frame (ready, begin, the operation's primitives, commit or
 * rollback, and a retry when the backend says the failure was a conflict
 * worth running again) and every policy that is the same everywhere: which
 * rows a replay or a purge touches and in what chunks.  A backend keeps all
 * of its state behind one opaque pointer, logs each failure once where it
 * happens and returns 0 or -1.  Primitives marked "inside" run between
 * begin and commit; the others run on their own.  Every primitive that
 * changes rows reports in the transaction's tally what it changed (see
 * store_rows.h), and commit writes the tally's counters and errors in the
 * same transaction before it commits, so the counters never disagree with
 * the rows.  Private to the store modules; nothing else includes this
 * header.
 */
#ifndef NB_STORE_BACKEND_H
#define NB_STORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/alert.h"
#include "nudgebridge/store_types.h"
#include "store_rows.h"

struct nb_store;

/*
 * How durable a transaction's COMMIT must be.  FULL: on disk when commit
 * returns (appends, operator changes).  LEASE: the deliverer's lease and
 * delivery bookkeeping, which a crash may lose as a suffix without breaking
 * a guarantee (a lost lease runs out or is dropped at start, a lost
 * delivered mark means one more send with the same messageId).
 */
enum nb_store_sync {
	NB_STORE_SYNC_FULL,
	NB_STORE_SYNC_LEASE,
};

/* What a claim asks for (see nb_store_claim()). */
struct nb_store_claim {
	const char *const *sources;
	size_t nsources;
	int64_t now_ms;
	int64_t lease_until_ms;
	size_t limit;
};

/* The set-based changes of rows named by seq. */
enum nb_store_mark_kind {
	NB_STORE_MARK_EXTEND,	    /* lease until ms */
	NB_STORE_MARK_DELIVERED,    /* at ms, lease dropped */
	NB_STORE_MARK_RELEASE,	    /* lease dropped */
	NB_STORE_MARK_DEAD,	    /* reason, error, at ms */
	NB_STORE_MARK_PENDING,	    /* replayed at ms; id, type unless NULL */
	NB_STORE_MARK_REQUARANTINE, /* still quarantined: error, at ms */
	NB_STORE_MARK_PURGE,	    /* deleted, payloads too */
	NB_STORE_MARK_LINK,	    /* linked to att, nothing else */
};

/*
 * One mark.  EXTEND, DELIVERED, RELEASE and DEAD change pending rows only
 * (and PostgreSQL's lease changes only rows this connection leased or
 * nobody did).  PENDING and REQUARANTINE change one row, and only while it
 * still is in the state (and source) the caller read it in: another
 * instance may have changed it since.  PURGE deletes whatever it finds.
 * Every kind tallies what it changed and says how many rows that was.
 */
struct nb_store_mark {
	enum nb_store_mark_kind kind;
	int64_t ms;
	const char *reason;
	const char *error;
	const char *id;
	const char *type;
	const char *source;	   /* PENDING, REQUARANTINE: the row's */
	enum nb_event_state state; /* PENDING: the state it was read in */
	const char *was_reason;	   /* PENDING: the reason it was read with */
	/*
	 * DELIVERED, DEAD, RELEASE, LINK: the attempt to record (NULL:
	 * none).  An id of 0 is recorded first and its id set; DELIVERED
	 * points the rows at it, the others link the rows they changed (LINK:
	 * the rows still stored) to it.
	 */
	struct nb_store_attempt *att;
};

/*
 * The statements whose parameters and rows the common layer binds and
 * takes apart itself (store_rows.h's binders and readers): the reads,
 * with the reader of their rows and their parameters...
 */
enum nb_store_query {
	NB_STORE_Q_STATS,    /* nb_store_stats_read(); now_ms */
	NB_STORE_Q_ERRORS,   /* nb_store_error_read(); since_ms, per_source */
	NB_STORE_Q_ACTIVITY, /* nb_store_activity_read() */
	NB_STORE_Q_REPORTS,  /* nb_store_report_read(); since_ms */
	NB_STORE_Q_STATES,   /* nb_store_state_read() */
	/* nb_store_note_read(); owner, now_ms, lease_until_ms, limit */
	NB_STORE_Q_AL_CLAIM,
	NB_STORE_Q_ATTEMPTS, /* nb_store_attempt_read(); seq */
	NB_STORE_Q_AUDIT,    /* nb_store_audit_read(); before_id, limit */
};

/* ... and the writes (their parameters: store_alert.c's binders). */
enum nb_store_write {
	NB_STORE_W_AL_REPORTS_CLEAR,
	NB_STORE_W_AL_REPORT_PUT,
	NB_STORE_W_AL_LEAD,
	NB_STORE_W_AL_RENEW,
	NB_STORE_W_AL_STATE_PUT,
	NB_STORE_W_AL_NOTE_ADD,
	NB_STORE_W_AL_PRUNE_OUTBOX,
	NB_STORE_W_AL_PRUNE_REPORTS,
	NB_STORE_W_AL_RETRY,
	NB_STORE_W_AL_DONE,
};

/* Called for each row of a query; -1 stops it (the query fails). */
typedef int (*nb_store_row_fn)(void *ctx, const struct nb_store_row *r);

/*
 * What the alert tables (store_alert.h) need beyond the statements above:
 * the figures of a beat, written as the backend writes them best.
 * "Inside" as below.
 */
struct nb_store_alert_ops {
	int (*activity_put)(
	    void *state, const struct nb_activity_row *r, size_t n);
};

struct nb_store_ops {
	const char *name; /* the store.driver value */

	int (*open)(void **state, const struct nb_store_config *cfg, char *err,
	    size_t errlen);
	void (*close)(void *state);
	/*
	 * Makes the connection usable before a call (reconnects after a
	 * failure, ends a transaction a failed call left open).  NULL when
	 * there is nothing to do.
	 */
	int (*ready)(void *state);
	int (*schema_version)(void *state, int *version);
	/* The install id, read (or made) by open; never NULL after it. */
	const char *(*install_id)(void *state);

	/* The frame: one write transaction at a time per connection. */
	int (*begin)(void *state, enum nb_store_sync sync);
	/* Writes t's counters and errors, then commits. */
	int (*commit)(void *state, const struct nb_store_tally *t);
	void (*rollback)(void *state);
	/* 1 when the last failure was a conflict to run again; NULL: never. */
	int (*retryable)(void *state);

	/*
	 * Inside: the operations of store.h with the same names; t is the
	 * transaction's tally.  retry records its error at at_ms.
	 */
	int (*recover)(void *state);
	int (*append)(void *state, struct nb_append *const *reqs, size_t n,
	    struct nb_store_tally *t);
	int (*claim)(void *state, const struct nb_store_claim *c,
	    struct nb_store_rows *v);
	int (*mark)(void *state, const struct nb_store_mark *m,
	    const int64_t *seqs, size_t n, size_t *changed,
	    struct nb_store_tally *t);
	int (*retry)(void *state, const struct nb_store_retry *rows, size_t n,
	    const char *error, int64_t at_ms, struct nb_store_attempt *att,
	    struct nb_store_tally *t);
	/* At most limit rows of each kind, oldest first; *more when cut. */
	int (*prune)(void *state, int64_t dedupe_after_ms,
	    int64_t delivered_before_ms, size_t limit, int *more,
	    struct nb_store_tally *t);
	int (*probe)(void *state);

	/*
	 * On their own.  claim_prepare (NULL when not needed) runs before a
	 * claim's transaction and says how many rows it may find; 0 skips the
	 * transaction.  list is one page of nb_store_list_page() appended to v
	 * (also inside a transaction), payloads only when with_payload (else
	 * raw stays NULL); f's key is a decimal seq or NULL.
	 */
	int (*claim_prepare)(
	    void *state, const struct nb_store_claim *c, size_t *found);
	int (*list)(void *state, const struct nb_store_filter *f,
	    int with_payload, struct nb_store_rows *v, int64_t *next);
	/*
	 * Runs the read which, its parameters bound by bind(b, barg) (NULL:
	 * none), and passes each row to fn.  0 or -1.
	 */
	int (*query)(void *state, enum nb_store_query which,
	    nb_store_bind_fn bind, const void *barg, nb_store_row_fn fn,
	    void *ctx);
	/*
	 * Runs the write which, its parameters bound by bind(b, barg);
	 * *changed (NULL: not wanted) receives the rows it changed.  0 or -1.
	 */
	int (*exec)(void *state, enum nb_store_write which,
	    nb_store_bind_fn bind, const void *barg, size_t *changed);
	/* NULL when the backend needs no help to keep its log short. */
	int (*checkpoint)(void *state);
	/*
	 * The late person index (nb_store_fold()): fold is inside, unfolded
	 * on its own and cheap.  NULL when the append indexes by itself.
	 */
	int (*fold)(void *state, size_t max);
	size_t (*unfolded)(void *state);
	/*
	 * The table of live instances (nb_store_beat(), nb_store_leave());
	 * NULL for a store one process owns.
	 */
	int (*beat)(void *state, struct nb_store_instance *self,
	    int64_t lease_ms, struct nb_store_instance *out, size_t max,
	    size_t *n, size_t *live);
	int (*leave)(void *state, const char *id);
	const struct nb_store_alert_ops *alert;

	/*
	 * Erasure and attempt history (see nb_store_erase()).  erase is
	 * inside: of the rows seqs, flags those pending with a lease live at
	 * now_ms (their seqs appended to held) and deletes the rest with
	 * their payloads and attempt links, adding what it deleted to
	 * deleted[bucket] (pending, delivered, dead) and the tally; when it
	 * changed anything it raises the erase epoch.  audit_add is inside
	 * too and sets a->id.  The others run on their own; scrub(1) before
	 * an erase's first transaction and scrub(0) after its last make the
	 * deleted bytes unreadable in the backend's files (secure_delete and
	 * a truncated log, or VACUUM).
	 */
	int (*erase)(void *state, const int64_t *seqs, size_t n, int64_t now_ms,
	    struct nb_store_seqs *held, int64_t deleted[3],
	    struct nb_store_tally *t);
	int (*audit_add)(void *state, struct nb_store_audit *a);
	int (*scrub)(void *state, int on);
	int (*epoch)(void *state, int64_t *epoch);
	int (*sendable)(
	    void *state, const int64_t *seqs, size_t n, unsigned char *keep);
};

/*
 * For the store's own modules beyond store.c (store_alert.c): runs
 * fn(state, arg) in store.c's transaction frame, with its retries on
 * conflicts (fn is then called again from the start and resets its own
 * outputs).  0 or -1.
 */
typedef int (*nb_store_frame_fn)(
    const struct nb_store_ops *o, void *state, void *arg);
int nb_store_frame(struct nb_store *, enum nb_store_sync sync,
    nb_store_frame_fn fn, void *arg, const char *op);

/* Readies the connection and runs fn(ops, state, arg) outside a frame. */
int nb_store_call(struct nb_store *, nb_store_frame_fn fn, void *arg);

/*
 * Runs the query which (its parameters bound by bind(b, barg)) and reads
 * each row, with the reader the query names, into a new element of a.  A
 * row that cannot be kept is logged ("out of memory").  0 or -1; either
 * way a holds what was read, for the caller to free.
 */
int nb_store_collect(const struct nb_store_ops *o, void *state,
    enum nb_store_query which, nb_store_bind_fn bind, const void *barg,
    struct nb_store_array *a);

/* The SQLite backend (store_sqlite*.c). */
extern const struct nb_store_ops nb_store_sqlite_ops;
/* The PostgreSQL backend (store_pg*.c). */
extern const struct nb_store_ops nb_store_pg_ops;

#endif
