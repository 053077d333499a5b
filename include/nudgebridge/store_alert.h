/* SPDX-License-Identifier: ISC */
/*
 * store_alert: the alerts' bookkeeping in the store, shared by every
 * instance on one database.
 *
 * Five small tables (schema version 5 on both backends): activity (when
 * each source and key last verified a request), alert_lease (the one
 * instance that evaluates the conditions), alert_reports (what an
 * instance alone can see: its paused sources), alert_state (one row per
 * condition and source) and alert_outbox (notifications to send, claimed
 * under a lease as events are, so several instances send each once).
 * Their size follows the sources and the notifications of the last days,
 * never the events stored.  The alert thread calls these on its own
 * connection; the command line reads the activity.  Every function
 * returns 0 or -1 (logged once, where it happens); a failed call changed
 * nothing.  nb_alert_view_clear() and nb_alert_notes_free() are named
 * after the structs they free (alert.h's family), not this module.
 */
#ifndef NB_STORE_ALERT_H
#define NB_STORE_ALERT_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/alert.h"
#include "nudgebridge/store.h"

/*
 * In one transaction: raises the activity figures to act's (never
 * lowers them), replaces the owner's reports by rep, and takes or renews
 * the evaluator lease until lease_until_ms when it is free, run out or
 * the owner's.  *leader says whether the owner holds it now.
 */
int nb_store_alert_beat(
    struct nb_store *, const struct nb_alert_beat *b, int *leader);

/* Reads the three tables into v (emptied first). */
int nb_store_alert_read(
    struct nb_store *, int64_t reports_since_ms, struct nb_alert_view *v);

/* Frees what v holds and empties it.  NULL is ok. */
void nb_alert_view_clear(struct nb_alert_view *v);

/* The activity figures alone (for the command line); *out: free(). */
int nb_store_activity(
    struct nb_store *, struct nb_activity_row **out, size_t *n);

/* Frees the bodies of n claimed notes and the array.  NULL is ok. */
void nb_alert_notes_free(struct nb_alert_note *, size_t n);

/*
 * In one transaction, only while the owner still holds the evaluator
 * lease (renewed to lease_until_ms): writes the states, queues the notes
 * and forgets the sent notifications and reports older than
 * prune_before_ms.  *applied is 0 when the lease was lost (nothing
 * written).
 */
int nb_store_alert_apply(
    struct nb_store *, const struct nb_alert_apply *a, int *applied);

/*
 * Claims up to limit notifications due at now_ms whose lease ran out,
 * oldest first, leaving out any whose condition and source have an older
 * one not yet done (so "resolved" never overtakes its "firing"), and
 * leases them to owner until lease_until_ms.  *out: free with
 * nb_alert_notes_free().
 */
int nb_store_alert_claim(struct nb_store *, const char *owner, int64_t now_ms,
    int64_t lease_until_ms, size_t limit, struct nb_alert_note **out,
    size_t *n);

/*
 * Ends owner's claim on notification id: done (sent, dropped) or back in
 * the queue for next_ms with one more attempt and error (may be NULL).  A
 * claim another owner has taken over meanwhile is left alone.
 */
int nb_store_alert_finish(struct nb_store *, const char *owner, int64_t id,
    enum nb_alert_outcome how, int64_t now_ms, int64_t next_ms,
    const char *error);

#endif
