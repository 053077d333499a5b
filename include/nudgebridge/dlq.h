/* SPDX-License-Identifier: ISC */
/*
 * dlq: dead letters and quarantined events, for operators.
 *
 * One set of filters for the command line (--source --type --reason --since
 * --until --id --key), the admin API's query parameters and its JSON bodies,
 * one JSON shape for an event, and the `nudgebridge dlq` command itself.
 * The command opens the store directly, so it works with the daemon running
 * (SQLite WAL readers and one writer at a time) or stopped.
 */
#ifndef NB_DLQ_H
#define NB_DLQ_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "nudgebridge/store.h"

struct evkeyvalq;

/* A filter plus the strings it points to. */
struct nb_dlq_query {
	struct nb_store_filter filter;
	int dry_run;
	/* private: owned copies the filter points into */
	char *strings[6];
};

/* Frees the owned strings.  Safe on a zeroed struct. */
void nb_dlq_query_clear(struct nb_dlq_query *);

/*
 * Fills q from a JSON object ({"source":..,"type":..,"reason":..,"id":..,
 * "key":..,"since":..,"until":..,"state":"dead|delivered|pending|all",
 * "limit":..,"dry_run":bool}).  Unknown keys are an error.  0, or -1 with a
 * message in err.
 */
int nb_dlq_query_from_json(struct nb_dlq_query *q, const json_t *obj,
    int64_t now_ms, char *err, size_t errlen);

/* The same from URL query parameters. */
int nb_dlq_query_from_kv(struct nb_dlq_query *q, const struct evkeyvalq *kv,
    int64_t now_ms, char *err, size_t errlen);

/*
 * One event as the API and `dlq list --json` show it: key, id, source, type,
 * reason, error, state, attempts, received_at (RFC 3339), updated_at; with
 * detail also payload (the stored event object).  New reference or NULL.
 */
json_t *nb_dlq_event_json(const struct nb_stored_event *, int detail);

/*
 * The Track message stored event ev of source src becomes, messageId by
 * the row's rule and the store's install id install_id (see segment.h):
 * what `dlq show` and the admin API show.  New reference, or NULL (then
 * *why names the broken rule, or is NULL when ev has no payload).
 */
json_t *nb_dlq_track(const struct nb_source *src, const char *install_id,
    const struct nb_stored_event *ev, const char **why);

/* `nudgebridge dlq ...`: argv[0] is "dlq".  Returns the exit status. */
int nb_dlq_main(int argc, char **argv);

#endif
