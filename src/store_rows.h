/* SPDX-License-Identifier: ISC */
/*
 * store_rows: what every store backend reads and writes the same way.
 *
 * Dead-letter keys, the states a filter selects and the growing array of
 * rows read back.  It sits below both the dispatcher (store.c) and the
 * backends (store_sqlite*.c, store_pg*.c), so a backend never calls up into
 * the dispatcher: the arrows run store.c -> backend -> store_rows.c.  No
 * SQL, no I/O; any thread, on its own data.  Private to the store modules.
 */
#ifndef NB_STORE_ROWS_H
#define NB_STORE_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/store.h"

/*
 * Dead-letter keys: the decimal seq.  format writes it into key
 * (NB_STORE_KEY_MAX bytes).  parse returns 0 and the seq for a key of 1..19
 * ASCII digits naming a positive seq, else -1 (such a key matches no row).
 */
void nb_store_key_format(int64_t seq, char key[NB_STORE_KEY_MAX]);
int nb_store_key_parse(const char *key, int64_t *seq);

/* The states a filter selects: its mask, or dead letters when 0. */
unsigned nb_store_filter_states(const struct nb_store_filter *f);

/* A growing array of rows read back. */
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

/*
 * Hands the rows over as a plain array (*out, *n; NULL and 0 when empty)
 * and empties v.
 */
void nb_store_rows_take(
    struct nb_store_rows *v, struct nb_stored_event **out, size_t *n);

#endif
