/* SPDX-License-Identifier: ISC */
/*
 * store_backend: the function table behind struct nb_store.
 *
 * store.c only dispatches: nb_store_open() picks a table by store.driver and
 * every other nb_store_*() call goes through it, like smtpd's queue
 * backends.  A backend keeps all of its state behind one opaque pointer and
 * implements each operation with exactly the contract of the matching
 * function in include/nudgebridge/store.h (0 / -1, a failed call changes
 * nothing, errors logged once where they happen).  Private to the store
 * modules; nothing else includes this header.
 */
#ifndef NB_STORE_BACKEND_H
#define NB_STORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/store.h"

struct nb_store_ops {
	const char *name; /* the store.driver value */

	int (*open)(void **state, const struct nb_store_config *cfg, char *err,
	    size_t errlen);
	void (*close)(void *state);
	int (*schema_version)(void *state, int *version);
	int (*recover)(void *state);
	int (*append)(void *state, struct nb_append *const *reqs, size_t n);
	int (*claim)(void *state, const char *const *sources, size_t nsources,
	    int64_t now_ms, int64_t lease_until_ms, size_t limit,
	    struct nb_stored_event **out, size_t *n);
	int (*extend)(
	    void *state, const int64_t *seqs, size_t n, int64_t lease_until_ms);
	int (*delivered)(
	    void *state, const int64_t *seqs, size_t n, int64_t now_ms);
	int (*retry)(void *state, const struct nb_store_retry *rows, size_t n,
	    const char *error);
	int (*release)(void *state, const int64_t *seqs, size_t n);
	int (*dead)(void *state, const int64_t *seqs, size_t n,
	    const char *reason, const char *error, int64_t now_ms);
	int (*list)(void *state, const struct nb_store_filter *f,
	    struct nb_stored_event **out, size_t *n);
	/*
	 * The primitives of nb_store_replay(), which store.c drives once for
	 * every backend (which rows, revalidation, counting, chunking).
	 * replay_begin readies the connection and, unless dry_run, opens the
	 * write transaction that replay_commit or replay_rollback (called only
	 * when not dry_run) ends.  replay_list lists like list, but inside
	 * that transaction.  make_pending makes one row pending as
	 * nb_store_replay() describes (id and type replace the stored ones
	 * unless NULL); requarantine records a new error on a quarantined
	 * row.
	 */
	int (*replay_begin)(void *state, int dry_run);
	int (*replay_list)(void *state, const struct nb_store_filter *f,
	    struct nb_stored_event **out, size_t *n);
	int (*make_pending)(void *state, int64_t seq, int64_t now_ms,
	    const char *id, const char *type);
	int (*requarantine)(
	    void *state, int64_t seq, const char *error, int64_t now_ms);
	int (*replay_commit)(void *state);
	void (*replay_rollback)(void *state);
	int (*purge)(void *state, const struct nb_store_filter *f, int dry_run,
	    size_t *purged);
	int (*stats)(void *state, int64_t now_ms, struct nb_source_stats **out,
	    size_t *n);
	int (*prune)(
	    void *state, int64_t dedupe_after_ms, int64_t delivered_before_ms);
	int (*probe)(void *state);
	/* NULL when the backend needs no help to keep its log short. */
	int (*checkpoint)(void *state);
};

/* The SQLite backend (store_sqlite.c). */
extern const struct nb_store_ops nb_store_sqlite_ops;
/* The PostgreSQL backend (store_pg.c). */
extern const struct nb_store_ops nb_store_pg_ops;

/*
 * Dead-letter keys, shared by every backend: the decimal seq.  format
 * writes it into key (NB_STORE_KEY_MAX bytes).  parse returns 0 and the seq
 * for a key of 1..19 ASCII digits naming a positive seq, else -1 (such a
 * key matches no row).
 */
void nb_store_key_format(int64_t seq, char key[NB_STORE_KEY_MAX]);
int nb_store_key_parse(const char *key, int64_t *seq);

/* The states a filter selects: its mask, or dead letters when 0. */
unsigned nb_store_filter_states(const struct nb_store_filter *f);

/* A growing array of rows read back, shared by every backend. */
struct nb_store_rows {
	struct nb_stored_event *v;
	size_t n;
	size_t cap;
};

/* Frees the rows and their strings and empties the array. */
void nb_store_rows_clear(struct nb_store_rows *);

/*
 * Appends one zeroed row and returns it, or NULL when out of memory
 * (logged).  The row is counted at once, so a row read only in part is
 * still freed by nb_store_rows_clear().
 */
struct nb_stored_event *nb_store_rows_next(struct nb_store_rows *);

#endif
