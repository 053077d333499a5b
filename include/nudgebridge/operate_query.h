/* SPDX-License-Identifier: ISC */
/*
 * operate_query: the operations an operator asks for, and the one grammar
 * of their parameters.
 *
 * Every face (admin routes, the command line) names an operation and
 * hands its parameters over as one JSON object; nb_operate_query_parse()
 * checks them against the grammar and turns them into a struct
 * nb_operate_query, the store filter and what the operations read.
 * Nothing here touches a store; operate.h runs the operations.
 */
#ifndef NB_OPERATE_QUERY_H
#define NB_OPERATE_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "nudgebridge/store_types.h"

/* The operations; each face maps its commands or routes onto them. */
enum nb_operate_op {
	NB_OPERATE_LIST = 0, /* events matching a filter: a page, or all */
	NB_OPERATE_SHOW,     /* one event by key, with its Track message */
	NB_OPERATE_REPLAY,   /* a selection back to pending */
	NB_OPERATE_PURGE,    /* a selection deleted */
	NB_OPERATE_SEARCH,   /* events of any state, newest first */
	NB_OPERATE_EVENT,    /* one event with its attempt history */
	NB_OPERATE_ERASE,    /* every event of one person, audited */
	NB_OPERATE_AUDIT,    /* the erasures, newest first */
	NB_OPERATE_NOPS
};

/*
 * "list", "show", "replay", "purge", "search", "event", "erase", "audit":
 * for messages and logs.
 */
const char *nb_operate_op_str(enum nb_operate_op);

/* Most keys a selection ("keys") holds or a dry run lists. */
#define NB_OPERATE_MAX_KEYS 1000

/* The largest "limit"; a page of NB_OPERATE_LIST defaults to 100. */
#define NB_OPERATE_LIMIT_MAX	10000
#define NB_OPERATE_PAGE_DEFAULT 100

/* The largest "limit" of search and audit, and their defaults. */
#define NB_OPERATE_SEARCH_MAX	  1000
#define NB_OPERATE_SEARCH_DEFAULT 50
#define NB_OPERATE_AUDIT_DEFAULT  100

/* Most store pages a search that is not one page looks at. */
#define NB_OPERATE_SEARCH_PAGES 100

/* Room for the strings a query owns (one per string parameter). */
#define NB_OPERATE_QUERY_STRINGS 8

/*
 * A checked request: the store filter plus what the operations read.
 * Everything it points to is owned; clear it with nb_operate_query_clear()
 * (a job takes it over instead).
 */
struct nb_operate_query {
	struct nb_store_filter filter; /* states: the operation's default */
	int states_given;	       /* "state" was given */
	int dry_run;		       /* replay/purge: count, change nothing */
	int return_keys;	       /* a dry run also lists the keys */
	int one_page; /* list one bounded page (set by a face) */
	char **keys;  /* "keys": a selection of nkeys keys */
	size_t nkeys;
	char *strings[NB_OPERATE_QUERY_STRINGS]; /* private */
};

/* Frees what q owns and zeroes it.  Safe on a zeroed struct. */
void nb_operate_query_clear(struct nb_operate_query *q);

/*
 * Fills q (zeroed first) from a JSON object of parameters for op:
 * "source", "type", "reason", "id", "key" (strings), "since", "until" (RFC
 * 3339 or a duration ago such as 90m, 2h, 7d; relative to now_ms),
 * "state" (dead, delivered, pending or all), "limit" (1..10000; search and
 * audit 1..1000), "after" (a cursor: where the next page starts, in the
 * operation's order, into filter.after_seq), "dry_run" (bool), for replay
 * and purge "keys" (an array of 1..NB_OPERATE_MAX_KEYS keys, not with
 * "key") and "return_keys" (bool, with dry_run only), for search and
 * erase "email" and "uid" (non-empty, without control characters; erase
 * takes exactly one of them).  Show takes the filters, event only "key",
 * erase only email, uid and dry_run, audit only limit and after.  The
 * state defaults to dead for list, replay and purge, to all otherwise.
 * null means absent; obj NULL means none.  An unknown key, or one op does
 * not take, is an error: a typo must never widen a purge.  0, or -1 with
 * a message naming the key in err (never a value: q is then clear).
 */
int nb_operate_query_parse(struct nb_operate_query *q, enum nb_operate_op op,
    const json_t *obj, int64_t now_ms, char *err, size_t errlen);

/*
 * Sets parameter name of params to text converted by the grammar (integers
 * for limit and after, true/false/1/0 for booleans, a string otherwise),
 * for faces whose input is text (query strings, argv).  0, or -1 with a
 * message in err (text that is not UTF-8 included).
 */
int nb_operate_param_text(json_t *params, const char *name, const char *text,
    char *err, size_t errlen);

/*
 * The parameters of a URL query string ("source=acme&limit=5", percent
 * escapes decoded; NULL is none), each converted as
 * nb_operate_param_text() does.  A key given twice is an error.  A new
 * object, or NULL with a message in err.
 */
json_t *nb_operate_params_query(const char *query, char *err, size_t errlen);

#endif
