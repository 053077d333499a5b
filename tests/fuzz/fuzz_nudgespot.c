/* SPDX-License-Identifier: ISC */
/*
 * Fuzz target for nudgespot: arbitrary bytes as a callback body.
 *
 * Besides not crashing or leaking, every accepted body must keep the
 * parser's promises: 1..NB_NUDGESPOT_MAX_EVENTS events, each with a
 * NUL-free compact raw text, and re-validating that raw text (what a replay
 * does) must give the same verdict and the same id and type as the first
 * pass did.  Any other result must leave the payload empty.  The two paths
 * of the parser must agree: nb_nudgespot_parse() gives exactly what the
 * jansson path gives, and whenever the direct path decides, the jansson
 * path accepts the body with identical events.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/nudgespot.h"
#include "nudgebridge/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
check_event(const struct nb_event *e)
{
	const char *err;
	char *id = NULL, *type = NULL;

	if (e->raw == NULL || strlen(e->raw) != e->rawlen || e->rawlen < 2)
		abort();
	if (e->id != NULL &&
	    (strlen(e->id) < 1 || strlen(e->id) > NB_SCHEMA_ID_MAX))
		abort();
	err = nb_nudgespot_revalidate(e->raw, e->rawlen, &id, &type);
	if (!same(err, e->error))
		abort();
	if (err == NULL && (!same(id, e->id) || !same(type, e->type)))
		abort();
	free(id);
	free(type);
}

/* Aborts unless a and b hold identical events. */
static void
same_payload(const struct nb_payload *a, const struct nb_payload *b)
{
	size_t i;

	if (a->nevents != b->nevents)
		abort();
	for (i = 0; i < a->nevents; i++) {
		const struct nb_event *x = &a->events[i], *y = &b->events[i];

		if (x->rawlen != y->rawlen ||
		    memcmp(x->raw, y->raw, x->rawlen + 1) != 0 ||
		    !same(x->id, y->id) || !same(x->type, y->type) ||
		    !same(x->error, y->error))
			abort();
	}
}

static void
check_paths(const char *body, size_t size, enum nb_nudgespot_result r,
    const struct nb_payload *p)
{
	struct nb_payload d, t;
	enum nb_nudgespot_result rt;

	rt = nb_nudgespot_parse_tree(&t, body, size);
	if (rt != r)
		abort();
	same_payload(p, &t);
	if (nb_nudgespot_parse_direct(&d, body, size) == 0) {
		if (rt != NB_NUDGESPOT_OK)
			abort();
		same_payload(&d, &t);
	} else if (d.events != NULL || d.nevents != 0) {
		abort();
	}
	nb_nudgespot_clear(&d);
	nb_nudgespot_clear(&t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nb_payload p;
	enum nb_nudgespot_result r;
	size_t i;

	r = nb_nudgespot_parse(&p, (const char *)data, size);
	if (nb_nudgespot_result_str(r) == NULL)
		abort();
	check_paths((const char *)data, size, r, &p);
	if (r != NB_NUDGESPOT_OK) {
		if (p.events != NULL || p.nevents != 0)
			abort();
		return 0;
	}
	if (p.nevents < 1 || p.nevents > NB_NUDGESPOT_MAX_EVENTS)
		abort();
	for (i = 0; i < p.nevents; i++)
		check_event(&p.events[i]);
	nb_nudgespot_clear(&p);
	return 0;
}
