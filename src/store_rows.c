/* SPDX-License-Identifier: ISC */
/*
 * store_rows: keys, filter defaults and read-back rows for every backend.
 *
 * The small pieces that the dispatcher and both backends share, kept below
 * them all so that no backend reaches up into store.c.  Each function works
 * on the caller's data only; nothing here is global.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/log.h"
#include "store_rows.h"

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

void
nb_store_rows_take(
    struct nb_store_rows *v, struct nb_stored_event **out, size_t *n)
{
	*out = v->n > 0 ? v->v : NULL;
	*n = v->n;
	if (v->n == 0)
		free(v->v);
	memset(v, 0, sizeof(*v));
}
