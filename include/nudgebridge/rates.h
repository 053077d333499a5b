/* SPDX-License-Identifier: ISC */
/*
 * rates: per-minute rates from the store's monotonic totals, by sampling.
 *
 * The store keeps, per source, how many events it ever received and
 * delivered (struct nb_source_stats, nb_store_stats_all()); a rate is the
 * growth of a total between two samples.  A struct nb_rates holds a short
 * ring of samples, one taken whenever its owner asks for fresh figures
 * (at most one every few seconds), so a rate costs one O(sources) read and
 * never reads rows.  One thread at a time.
 */
#ifndef NB_RATES_H
#define NB_RATES_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/store.h"

/* The window a rate is over. */
#define NB_RATES_WINDOW_MS 60000

struct nb_rates;

/* NULL on allocation failure. */
struct nb_rates *nb_rates_new(void);

/* NULL is ok. */
void nb_rates_free(struct nb_rates *);

/*
 * Reads every source's totals from store at now_ms (the rates' "now") and
 * keeps them as a sample when the newest sample is a few seconds old.
 * Call it once before the nb_rates_get() calls of one answer, and once at
 * start so the first answer has a baseline.  0, or -1 when the store
 * cannot answer (the rates then stay those of the previous read).
 */
int nb_rates_update(struct nb_rates *, struct nb_store *store, int64_t now_ms);

/*
 * The events of source received and delivered within the last
 * NB_RATES_WINDOW_MS before the last update: its totals then, less those
 * of the newest sample at least a window older (scaled to one window when
 * that sample is older still).  Until a window has passed since the first
 * sample, the growth since the first sample (a bridge that just started
 * counts its events so far).  A source the store did not know when a
 * sample was taken had totals of 0 then.  Both 0 for an unknown source.
 */
void nb_rates_get(const struct nb_rates *, const char *source,
    int64_t *received, int64_t *delivered);

#endif
