/* SPDX-License-Identifier: ISC */
/*
 * filter: drop_types, parsed once, applied to each parsed request.
 *
 * The types are kept sorted so a request's events are looked up with
 * bsearch(): a filtered request costs a comparison or two per event.  The
 * filter works on the parser's own array, in place, before the request is
 * handed to the committer, so nothing downstream ever knows a filtered
 * event existed (the HTTP thread counts them for the answer).  Pure
 * functions over the caller's data; any thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/filter.h"
#include "nudgebridge/schema.h"

static int
type_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 1 when s (len bytes) follows the contract's rule for type. */
static int
type_valid(const char *s, size_t len)
{
	int row = nb_schema_row(NB_SCHEMA_EVENT);

	return row >= 0 && memchr(s, '\0', len) == NULL &&
	    nb_schema_check(&nb_schema_fields[row], s, len);
}

int
nb_filter_parse(
    struct nb_filter *out, const json_t *v, char *err, size_t errlen)
{
	struct nb_filter f = {NULL, 0, 1};
	const json_t *t;
	size_t i, k;

	memset(out, 0, sizeof(*out));
	if (!json_is_array(v)) {
		snprintf(err, errlen, ": must be an array of types");
		return -1;
	}
	if (json_array_size(v) > NB_FILTER_TYPES_MAX) {
		snprintf(
		    err, errlen, ": at most %d types", NB_FILTER_TYPES_MAX);
		return -1;
	}
	if (json_array_size(v) > 0 &&
	    (f.types = calloc(json_array_size(v), sizeof(*f.types))) == NULL)
		goto nomem;
	json_array_foreach(v, i, t)
	{
		if (!json_is_string(t) ||
		    !type_valid(json_string_value(t), json_string_length(t))) {
			snprintf(err, errlen,
			    "[%zu]: must be a Nudgespot type (1..64 "
			    "characters without control characters)",
			    i);
			nb_filter_clear(&f);
			return -1;
		}
		if ((f.types[f.ntypes] = strdup(json_string_value(t))) == NULL)
			goto nomem;
		f.ntypes++;
	}
	if (f.ntypes > 1)
		qsort(f.types, f.ntypes, sizeof(*f.types), type_cmp);
	/* A type listed twice is dropped once. */
	for (i = k = 0; i < f.ntypes; i++) {
		if (k > 0 && strcmp(f.types[k - 1], f.types[i]) == 0) {
			free(f.types[i]);
			continue;
		}
		f.types[k++] = f.types[i];
	}
	f.ntypes = k;
	*out = f;
	return 0;
nomem:
	nb_filter_clear(&f);
	snprintf(err, errlen, ": out of memory");
	return -1;
}

void
nb_filter_clear(struct nb_filter *f)
{
	size_t i;

	if (f == NULL)
		return;
	for (i = 0; i < f->ntypes; i++)
		free(f->types[i]);
	free(f->types);
	memset(f, 0, sizeof(*f));
}

int
nb_filter_drops(const struct nb_filter *f, const char *type)
{
	if (f == NULL || f->ntypes == 0 || type == NULL)
		return 0;
	return bsearch(&type, f->types, f->ntypes, sizeof(*f->types),
		   type_cmp) != NULL;
}

size_t
nb_filter_apply(const struct nb_filter *f, struct nb_payload *p)
{
	struct nb_event *e;
	size_t i, k = 0;

	if (f == NULL || f->ntypes == 0)
		return 0;
	for (i = 0; i < p->nevents; i++) {
		e = &p->events[i];
		if (e->error == NULL && nb_filter_drops(f, e->type)) {
			free(e->id);
			free(e->type);
			free(e->raw);
			continue;
		}
		p->events[k++] = *e;
	}
	i = p->nevents - k;
	p->nevents = k;
	return i;
}
