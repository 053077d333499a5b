/* SPDX-License-Identifier: ISC */
/*
 * store: the durable hand-off between the HTTP front end and the deliverer.
 *
 * An event enters only after its signature verified and leaves only after
 * Segment answered 2xx or an operator purged it.  nb_store_append() returns
 * only after the transaction is committed and on disk, so a 200 to
 * Nudgespot means the event survives kill -9 and power loss.  Delivery is
 * at least once; Segment de-duplicates on messageId.  Rows move pending ->
 * delivered, or pending -> dead (a dead letter, with a reason), and back to
 * pending on replay.  A claim leases pending rows so two deliverers
 * (threads or instances) never send one row at once; a lease that runs out
 * makes the row claimable again.  Backends sit behind one function table
 * (store_sqlite.c, store_pg.c).  A struct nb_store is one connection: one
 * thread at a time.  Every function returns 0 or -1 (logged once, where it
 * happens); a failed call changes nothing.
 */
#ifndef NB_STORE_H
#define NB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/store_types.h"

struct nb_store;

/*
 * Opens (creating and migrating when needed) the store that cfg names.  On
 * failure returns -1 with a message in err.
 */
int nb_store_open(struct nb_store **out, const struct nb_store_config *cfg,
    char *err, size_t errlen);

/* Closes the connection.  NULL is ok. */
void nb_store_close(struct nb_store *);

/* The schema version the store is at; nb_store_open() migrates to latest. */
int nb_store_schema_version(struct nb_store *, int *version);

/*
 * The store's install id: NB_SEGMENT_INSTALL_ID_LEN lower-case hex digits
 * of 128 random bits, created with the store (or by the migration to
 * version 4 of an older one) and never changed, so every connection and
 * every instance on one database reads the same, and it travels with the
 * store's backups.  Read once by nb_store_open(); borrowed for the life of
 * the connection.
 */
const char *nb_store_install_id(const struct nb_store *);

/*
 * 1 when several processes may share the store (PostgreSQL): they then
 * register in it (nb_store_beat()) and share the fleet-wide budgets; 0 for
 * a store one process owns (SQLite).
 */
int nb_store_shared(const struct nb_store *);

/*
 * A shared store's table of live instances.  Registers self (id, host and
 * pid set by the caller) or refreshes its heartbeat, at the database's
 * clock, and fills self's started_ms and beat_ms; forgets instances silent
 * for NB_STORE_FORGET_LEASES leases; lists in out (at most max, oldest
 * start first) the live ones, whose heartbeat is at most lease_ms old,
 * self included, with *live their number (which max does not cut).  One
 * round trip; the table holds instances, never events.  -1 (logged) on a
 * store that is not shared or a failure.
 */
int nb_store_beat(struct nb_store *, struct nb_store_instance *self,
    int64_t lease_ms, struct nb_store_instance *out, size_t max, size_t *n,
    size_t *live);

/* Takes instance id out of the table of a shared store (a clean stop). */
int nb_store_leave(struct nb_store *, const char *id);

/*
 * Start-up recovery for a store used by this process alone (SQLite): drops
 * every lease, so events claimed before a crash are claimable at once.  A
 * backend shared by several instances (PostgreSQL) makes this a no-op:
 * there leases run out on their own.
 */
int nb_store_recover(struct nb_store *);

/*
 * Stores n requests in one transaction (group commit) and fills their
 * counts.  Returns 0 only after the commit is durable; on -1 nothing of the
 * n requests is stored and their counts are meaningless.  Under a size cap
 * (store.max_size_bytes) it fails when it would leave less than 64 KiB (or
 * an eighth of the cap, when smaller) free under it: the deliverer's
 * bookkeeping needs that room to drain a full store.
 */
int nb_store_append(struct nb_store *, struct nb_append *const *reqs, size_t n);

/*
 * Claims up to limit pending rows of the named sources whose next attempt is
 * due at now_ms and whose lease (if any) has run out, oldest first, and
 * leases them until lease_until_ms.  Oldest first means by next attempt
 * time, then seq.  *out is a new array of *n rows (free with
 * nb_stored_events_free()); *n may be 0 (always when nsources or limit is
 * 0).
 */
int nb_store_claim(struct nb_store *, const char *const *sources,
    size_t nsources, int64_t now_ms, int64_t lease_until_ms, size_t limit,
    struct nb_stored_event **out, size_t *n);

/* Extends the lease of claimed rows (long bisections, slow sends). */
int nb_store_extend(
    struct nb_store *, const int64_t *seqs, size_t n, int64_t lease_until_ms);

/*
 * Marks rows delivered at now_ms and drops their lease; att (may be NULL)
 * is the attempt that delivered them.
 */
int nb_store_delivered(struct nb_store *, const int64_t *seqs, size_t n,
    int64_t now_ms, struct nb_store_attempt *att);

/*
 * Counts one failed attempt per row, records error, reschedules, unleases.
 * att (may be NULL) is the attempt that failed (see struct
 * nb_store_attempt).
 */
int nb_store_retry(struct nb_store *, const struct nb_store_retry *rows,
    size_t n, const char *error, struct nb_store_attempt *att);

/*
 * Drops the lease of rows without counting an attempt (paused, shutdown,
 * a bisected batch); att (may be NULL) is the attempt that led to it.
 */
int nb_store_release(struct nb_store *, const int64_t *seqs, size_t n,
    struct nb_store_attempt *att);

/*
 * Links rows to the attempt att without changing them: a batch Segment
 * refused with 400 goes out again in halves under the same leases.
 */
int nb_store_link(struct nb_store *, const int64_t *seqs, size_t n,
    struct nb_store_attempt *att);

/*
 * Dead-letters rows with reason and error (error may be NULL); att (may be
 * NULL) is the attempt that failed them.
 */
int nb_store_dead(struct nb_store *, const int64_t *seqs, size_t n,
    const char *reason, const char *error, int64_t now_ms,
    struct nb_store_attempt *att);

/*
 * Lists rows matching f in seq order (newest first with f->newest_first),
 * at most f->limit of them (0: all).  *out as for nb_store_claim().  With
 * f->max_scan 0 the store reads in bounded pages until it has them all,
 * so no one statement looks at more than NB_STORE_CHUNK_SCAN rows; with
 * f->max_scan set it is one page of nb_store_list_page().
 */
int nb_store_list(struct nb_store *, const struct nb_store_filter *f,
    struct nb_stored_event **out, size_t *n);

/*
 * One page of the rows matching f: at most f->limit rows, found among at
 * most f->max_scan rows looked at (0: no bound).  *next is the cursor to
 * continue from (the after_seq of the next call, its before_seq when
 * newest first), or 0 when no row is left: a page that ends at the scan
 * bound has a cursor even with fewer rows than asked for, even none.  The
 * cost of a call is bounded by max_scan whatever the filter and the rows
 * stored.
 */
int nb_store_list_page(struct nb_store *, const struct nb_store_filter *f,
    struct nb_stored_event **out, size_t *n, int64_t *next);

/*
 * Makes rows matching f pending again, due at now_ms, with attempts 0 and
 * the max_age clock restarted.  Quarantined rows are first re-validated with
 * fn: still invalid, they stay quarantined with the new error (counted in
 * *requarantined); valid, they become pending with the id and type fn gave.
 * With dry_run nothing changes and the counts say what would.  Rows keep
 * their key, so their messageId is unchanged.  Pending rows are never
 * replayed (nor counted).  With fn NULL quarantined rows are left alone.
 * The rows are worked through in chunks of NB_STORE_CHUNK, each in a
 * transaction of its own, so no call holds the write lock for long; a row
 * counts only when it was changed.  On -1 the chunks before the failure
 * stay done (each chunk is all or nothing) and a second call goes on
 * where it stopped.
 */
int nb_store_replay(struct nb_store *, const struct nb_store_filter *f,
    int dry_run, int64_t now_ms, nb_store_revalidate_fn fn, size_t *replayed,
    size_t *requarantined);

/*
 * Deletes rows matching f (dry_run: only counts), in chunks as
 * nb_store_replay() does.
 */
int nb_store_purge(struct nb_store *, const struct nb_store_filter *f,
    int dry_run, size_t *purged);

/*
 * Queue figures per source that has rows, sorted by source name (bytewise).
 * The cost does not grow with the rows stored: one counters row per source
 * (per writer on PostgreSQL) and two index probes per source.  now_ms tells
 * live leases from ones that ran out.
 */
int nb_store_stats(
    struct nb_store *, int64_t now_ms, struct nb_source_stats **out, size_t *n);

/*
 * The same for every source the store ever counted, rows or not: what a
 * caller that samples the totals needs (a source whose rows are all gone
 * still has its totals).  A source absent here never had a row.
 */
int nb_store_stats_all(
    struct nb_store *, int64_t now_ms, struct nb_source_stats **out, size_t *n);

/*
 * The errors recorded since since_ms, at most per_source of each source
 * (newest first), sorted by source name.  Bounded by the errors kept, never
 * by the rows stored.  *out as for nb_store_stats(); free it with
 * nb_store_errors_free().
 */
int nb_store_errors(struct nb_store *, int64_t since_ms, size_t per_source,
    struct nb_store_error **out, size_t *n);

/*
 * Housekeeping: forgets dedupe keys older than dedupe_after_ms and deletes
 * delivered rows whose delivery is older than delivered_before_ms, oldest
 * first, NB_STORE_CHUNK of each at a time in transactions of their own.
 */
int nb_store_prune(
    struct nb_store *, int64_t dedupe_after_ms, int64_t delivered_before_ms);

/*
 * A minimal durable write, to tell whether the store can commit now.  Under
 * a size cap it also fails unless twice the room nb_store_append() leaves
 * is still free, so a store that is just full does not flap.  On SQLite it
 * also fails while less than 64 KiB is free on the filesystem that holds
 * the database (statvfs): a failed commit leaves WAL space behind that the
 * probe's tiny row would fit into, so a full disk would look healthy.
 */
int nb_store_probe(struct nb_store *);

/*
 * Whether the backend wants nb_store_checkpoint() called in the background
 * (SQLite yes, PostgreSQL no: it checkpoints by itself).
 */
int nb_store_wants_checkpoints(const struct nb_store *);

/*
 * Copies what other connections committed from the write-ahead log into
 * the database, without blocking writers or readers (SQLite's PASSIVE
 * checkpoint), so the connections that commit find little left to copy
 * when their own automatic checkpoint comes due.  0 also when there was
 * nothing to do or another checkpoint was running; -1 on failure (logged).
 * No-op on backends that do not want it.
 */
int nb_store_checkpoint(struct nb_store *);

/*
 * The person index of a SQLite store is written late, in batches, so that
 * an append never inserts into it (see docs/storage.md, "Finding a
 * person"); a search reads the rows not yet indexed straight from the
 * table.  nb_store_unfolded() says how many rows at most wait to be
 * indexed (cheap: counted in memory once read; 0 on backends that index
 * as they append); nb_store_fold() indexes those of the next max seqs in
 * one short transaction of its own, without fsync: a crash loses only
 * the work, never a row or an entry the search needs.  The daemon folds
 * on the committer's connection (commit.c).  0 or -1 (logged).
 */
size_t nb_store_unfolded(struct nb_store *);
int nb_store_fold(struct nb_store *, size_t max);

/*
 * The attempt history of the row seq: its kept attempts (see
 * NB_STORE_ATTEMPTS_KEPT) oldest first, at most NB_STORE_ATTEMPTS_KEPT + 2
 * (a replayed row keeps the attempt that had delivered it).  *out as for
 * nb_store_claim(); free with nb_store_attempts_free().  A row without
 * attempts, or none at all, gives *n 0.
 */
int nb_store_attempts(struct nb_store *, int64_t seq,
    struct nb_store_attempt_row **out, size_t *n);

/*
 * Erasure.  A pending row of the person that a deliverer holds (claimed,
 * its lease live) cannot simply be deleted: the deliverer may be about to
 * send it.  So an erase runs in two steps.  Each transaction of the first
 * raises the store's erase epoch, flags the person's held rows (erase_ms)
 * and deletes every other row of the person with its payload and attempt
 * links.  A flagged row is never claimed again, and a deliverer that finds
 * the epoch moved since it claimed a batch asks which of its rows are
 * still sendable (nb_store_sendable()) and drops the rest before it sends.
 * Then the erase waits until each flagged row's holder has let it go (its
 * send answered, or dropped) or its lease ran out, and deletes it.  When
 * nb_store_erase() returns, every send of the person's events has started
 * before, and none can start after.
 */

/*
 * Erases every row of e->who in every source and state (the rows, their
 * payloads, dead letters and quarantined events alike, their attempt
 * links and the attempts no other row keeps), checking each row against
 * its stored event first, then records the audit entry that *out receives
 * (also for a dry run, which changes nothing else).  The dedupe keys stay:
 * they are the sender's opaque ids, and they keep a retried webhook of an
 * erased event from being stored again within the dedupe window.  On
 * SQLite the rows are deleted with secure_delete on and the write-ahead
 * log is truncated afterwards, so the files keep no byte of them; on
 * PostgreSQL the touched tables are vacuumed afterwards (see
 * docs/storage.md for what stays until their space is reused).  Works in
 * chunks of NB_STORE_CHUNK rows, each in a transaction of its own.  -1
 * when the store failed or held rows were not let go within wait_ms; the
 * chunks done stay done, flagged rows stay flagged (never sent) and a
 * second call finishes the work; what such an erase did is audited all
 * the same (complete 0), when the store still takes the entry.
 */
int nb_store_erase(struct nb_store *, const struct nb_store_erase *e,
    struct nb_store_audit *out);

/*
 * The audit entries, newest first: at most limit (1..1000) with id below
 * before_id (0: from the newest).  *next is the before_id of the next page,
 * 0 at the end.  *out as for nb_store_claim() (plain array; free()).
 */
int nb_store_audit_list(struct nb_store *, int64_t before_id, size_t limit,
    struct nb_store_audit **out, size_t *n, int64_t *next);

/* The erase epoch: a number every erase that changes rows raises. */
int nb_store_erase_epoch(struct nb_store *, int64_t *epoch);

/*
 * For each of the claimed rows seqs[0..n): keep[i] = 1 when it is still
 * pending and not flagged by an erase, else 0 (gone, or flagged).  What a
 * deliverer asks before a send when the erase epoch moved.
 */
int nb_store_sendable(
    struct nb_store *, const int64_t *seqs, size_t n, unsigned char *keep);

#endif
