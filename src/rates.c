/* SPDX-License-Identifier: ISC */
/*
 * rates: per-minute rates from sampled totals.
 *
 * A ring of RATES_SAMPLES samples, each the totals of every source at one
 * moment, at least RATES_STEP_MS apart, so the ring spans more than a
 * window however often the owner asks.  The store's counters rows are
 * never removed (PostgreSQL folds them, keeping the sums), so a source
 * absent from a sample had no events yet when it was taken.  Memory is
 * bounded by the ring times the sources; nothing here reads rows.
 */
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/log.h"
#include "nudgebridge/rates.h"

#define RATES_SAMPLES 16
#define RATES_STEP_MS 5000

struct sample {
	int64_t at_ms;
	struct nb_source_stats *v; /* sorted by source, as the store gives */
	size_t n;
};

struct nb_rates {
	struct sample ring[RATES_SAMPLES];
	size_t head;  /* the oldest sample */
	size_t count; /* samples in the ring */
	struct sample now;
};

struct nb_rates *
nb_rates_new(void)
{
	return calloc(1, sizeof(struct nb_rates));
}

void
nb_rates_free(struct nb_rates *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < RATES_SAMPLES; i++)
		free(r->ring[i].v);
	free(r->now.v);
	free(r);
}

/* The i-th sample from the oldest. */
static const struct sample *
sample_at(const struct nb_rates *r, size_t i)
{
	return &r->ring[(r->head + i) % RATES_SAMPLES];
}

int
nb_rates_update(struct nb_rates *r, struct nb_store *store, int64_t now_ms)
{
	struct nb_source_stats *v = NULL;
	struct sample *s;
	size_t n = 0;

	if (nb_store_stats_all(store, now_ms, &v, &n) == -1)
		return -1;
	free(r->now.v);
	r->now = (struct sample){now_ms, v, n};
	if (r->count > 0 &&
	    now_ms - sample_at(r, r->count - 1)->at_ms < RATES_STEP_MS)
		return 0;
	if (r->count == RATES_SAMPLES) {
		free(r->ring[r->head].v);
		r->ring[r->head].v = NULL;
		r->head = (r->head + 1) % RATES_SAMPLES;
		r->count--;
	}
	s = &r->ring[(r->head + r->count) % RATES_SAMPLES];
	s->at_ms = now_ms;
	s->n = n;
	if (n > 0 && (s->v = calloc(n, sizeof(*v))) == NULL) {
		/* No sample this time: the rates come from the older ones. */
		log_warn("out of memory", " sources=%zu", n);
		s->n = 0;
		return 0;
	}
	if (n > 0)
		memcpy(s->v, v, n * sizeof(*v));
	r->count++;
	return 0;
}

/* The totals of source in s; 0 when s does not have it (not yet known). */
static const struct nb_source_stats *
find(const struct sample *s, const char *source)
{
	size_t lo = 0, hi = s->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(s->v[mid].source, source)) == 0)
			return &s->v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void
nb_rates_get(const struct nb_rates *r, const char *source, int64_t *received,
    int64_t *delivered)
{
	const struct nb_source_stats *cur, *old;
	const struct sample *base = NULL;
	int64_t span;
	size_t i;

	*received = *delivered = 0;
	if (r->count == 0 || (cur = find(&r->now, source)) == NULL)
		return;
	for (i = r->count; i > 0 && base == NULL; i--)
		if (sample_at(r, i - 1)->at_ms <=
		    r->now.at_ms - NB_RATES_WINDOW_MS)
			base = sample_at(r, i - 1);
	if (base == NULL)
		base = sample_at(r, 0);
	old = find(base, source);
	*received = cur->received_total - (old ? old->received_total : 0);
	*delivered = cur->delivered_total - (old ? old->delivered_total : 0);
	span = r->now.at_ms - base->at_ms;
	if (span > NB_RATES_WINDOW_MS) {
		*received = *received * NB_RATES_WINDOW_MS / span;
		*delivered = *delivered * NB_RATES_WINDOW_MS / span;
	}
	if (*received < 0)
		*received = 0;
	if (*delivered < 0)
		*delivered = 0;
}
