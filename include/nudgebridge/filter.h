/* SPDX-License-Identifier: ISC */
/*
 * filter: a source's drop_types, the Nudgespot types it acknowledges but
 * neither stores nor sends.
 *
 * A filtered event is answered for (counted as "filtered" in the 200 and in
 * nudgebridge_events_total) and then forgotten before the store sees it:
 * no row, no dedupe key, no delivery.  Only events that follow every rule
 * are filtered; a quarantined event is kept for operators whatever its
 * type, since its type may be the very thing that is wrong.  The list is
 * parsed with the configuration and immutable afterwards; any thread.
 */
#ifndef NB_FILTER_H
#define NB_FILTER_H

#include <stddef.h>

#include <jansson.h>

#include "nudgebridge/nudgespot.h"

/* The most types one source may drop. */
#define NB_FILTER_TYPES_MAX 256

/* A source's drop_types: sorted, without repeats.  Zeroed: drops nothing. */
struct nb_filter {
	char **types;
	size_t ntypes;
	int set; /* the source has a drop_types key (even an empty list) */
};

/*
 * Parses the value of a drop_types key: an array of at most
 * NB_FILTER_TYPES_MAX types, each 1..64 characters without control
 * characters (the contract's rule for type).  0, or -1 with a message
 * after the key's path ("[2]: must be a Nudgespot type") in err.
 */
int nb_filter_parse(
    struct nb_filter *out, const json_t *v, char *err, size_t errlen);

/* Frees what out holds; it then drops nothing.  NULL is ok. */
void nb_filter_clear(struct nb_filter *);

/* 1 when type (NUL-terminated) is one f drops. */
int nb_filter_drops(const struct nb_filter *f, const char *type);

/*
 * Takes the events f drops out of p (freeing them; the rest keep their
 * order) and returns how many.  Events with an error are never taken.
 */
size_t nb_filter_apply(const struct nb_filter *f, struct nb_payload *p);

#endif
