/* SPDX-License-Identifier: ISC */
/*
 * store_frame: what store.c shares with store_list.c and store_find.c.
 *
 * struct nb_store itself and its transaction frame, so that lists,
 * replays and purges (store_list.c) and the search, attempt history and
 * erasure (store_find.c) compose backend primitives the way store.c
 * composes the rest, without a second frame.  Private to
 * those three files.
 */
#ifndef NB_STORE_FRAME_H
#define NB_STORE_FRAME_H

#include "store_backend.h"

struct nb_store {
	const struct nb_store_ops *ops;
	void *state;
	struct nb_store_tally tally; /* of the transaction running */
};

/* One operation inside the frame; it resets its own outputs first. */
typedef int (*nb_store_tx_fn)(struct nb_store *s, void *arg);

/*
 * Runs fn in one write transaction committed with sync, again from the
 * start after a rollback when the backend calls the failure a conflict
 * (see store.c).  0 or -1; op names the caller in logs.
 */
int nb_store_tx(struct nb_store *s, enum nb_store_sync sync, nb_store_tx_fn fn,
    void *arg, const char *op);

/* Makes the connection usable before a call on its own.  0 or -1. */
int nb_store_ready(struct nb_store *s);

/* 1 when f names a key that can match no row (not a decimal seq). */
int nb_store_key_none(const struct nb_store_filter *f);

/*
 * One page of the backend's list appended to v, as ops->list, with the
 * person of f (email or uid) checked on each row against its stored event:
 * the rows that are not about that person are dropped (their payloads are
 * read for the check, and kept only when with_payload).  store_list.c.
 */
int nb_store_list_call(struct nb_store *s, const struct nb_store_filter *f,
    int with_payload, struct nb_store_rows *v, int64_t *next);

#endif
