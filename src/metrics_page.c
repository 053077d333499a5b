/* SPDX-License-Identifier: ISC */
/*
 * metrics_page: the /metrics page, Prometheus text format 0.0.4.
 *
 * The counters and histograms every thread records (metrics.c), then the
 * per-source queue gauges and paused sources of a board snapshot (board.h:
 * the store's figures, read off the request threads), then the families
 * other modules render (the collectors).  The counters are a leaf every
 * module writes; this page is a view over them and the board, so it
 * stands above both and neither knows it.
 */
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "nudgebridge/board.h"
#include "nudgebridge/metrics.h"
#include "nudgebridge/metrics_page.h"

static int
is_paused(const struct nb_board_snapshot *snap, const char *source)
{
	size_t i;

	for (i = 0; i < snap->npaused; i++)
		if (strcmp(snap->paused[i].source, source) == 0)
			return 1;
	return 0;
}

static int
has_queue(const struct nb_board_snapshot *snap, const char *source)
{
	size_t i;

	for (i = 0; i < snap->nqueues; i++)
		if (strcmp(snap->queues[i].source, source) == 0)
			return 1;
	return 0;
}

enum queue_field { Q_PENDING, Q_INFLIGHT, Q_DEAD };

/* One gauge family with a sample per source queue. */
static int
render_gauge(struct evbuffer *out, const char *name, const char *help,
    const struct nb_board_snapshot *snap, enum queue_field f)
{
	const struct nb_queue_gauge *q;
	int64_t v;
	size_t i;

	if (nb_metrics_head(out, name, "gauge", help) == -1)
		return -1;
	for (i = 0; i < snap->nqueues; i++) {
		q = &snap->queues[i];
		v = f == Q_PENDING    ? q->pending
		    : f == Q_INFLIGHT ? q->inflight
				      : q->dead;
		if (nb_metrics_sample_u(
			out, name, "source", q->source, (uint64_t)v) == -1)
			return -1;
	}
	return 0;
}

static int
render_queue(
    const struct nb_board_snapshot *snap, int64_t now_ms, struct evbuffer *out)
{
	const struct nb_queue_gauge *q;
	const char *name;
	double age;
	size_t i;

	if (render_gauge(out, "nudgebridge_queue_pending",
		"Events waiting for delivery (in flight included).", snap,
		Q_PENDING) == -1 ||
	    render_gauge(out, "nudgebridge_queue_inflight",
		"Pending events leased by a deliverer right now.", snap,
		Q_INFLIGHT) == -1 ||
	    render_gauge(out, "nudgebridge_queue_dead",
		"Dead letters kept, quarantined events included.", snap,
		Q_DEAD) == -1)
		return -1;
	name = "nudgebridge_queue_oldest_pending_age_seconds";
	if (nb_metrics_head(out, name, "gauge",
		"Age of the oldest pending event since receipt.") == -1)
		return -1;
	for (i = 0; i < snap->nqueues; i++) {
		q = &snap->queues[i];
		age = 0;
		if (q->oldest_pending_ms > 0 && now_ms > q->oldest_pending_ms)
			age = (double)(now_ms - q->oldest_pending_ms) / 1000.0;
		if (nb_metrics_sample_f(out, name, "source", q->source, age) ==
		    -1)
			return -1;
	}
	return 0;
}

static int
render_paused(const struct nb_board_snapshot *snap, struct evbuffer *out)
{
	const char *name = "nudgebridge_source_paused";
	size_t i;

	if (nb_metrics_head(out, name, "gauge",
		"1 while delivery of a source is paused after 401/403.") == -1)
		return -1;
	for (i = 0; i < snap->nqueues; i++)
		if (nb_metrics_sample_u(out, name, "source",
			snap->queues[i].source,
			(uint64_t)is_paused(snap, snap->queues[i].source)) ==
		    -1)
			return -1;
	for (i = 0; i < snap->npaused; i++)
		if (!has_queue(snap, snap->paused[i].source) &&
		    nb_metrics_sample_u(
			out, name, "source", snap->paused[i].source, 1) == -1)
			return -1;
	return 0;
}

/* The sources the OAuth token endpoint refused, with its error code. */
static int
render_paused_oauth(
    const struct nb_paused *paused, size_t npaused, struct evbuffer *out)
{
	const char *name = "nudgebridge_source_paused_oauth";
	size_t i;

	if (nb_metrics_head(out, name, "gauge",
		"1 while a source is paused because the OAuth token endpoint "
		"refused its credentials, by the endpoint's error code.") == -1)
		return -1;
	for (i = 0; i < npaused; i++) {
		if (paused[i].oauth_error[0] == '\0')
			continue;
		if (evbuffer_add_printf(out, "%s{source=\"", name) == -1 ||
		    nb_metrics_label_value(out, paused[i].source) == -1 ||
		    evbuffer_add_printf(out, "\",error=\"") == -1 ||
		    nb_metrics_label_value(out, paused[i].oauth_error) == -1 ||
		    evbuffer_add_printf(out, "\"} 1\n") == -1)
			return -1;
	}
	return 0;
}

int
nb_metrics_render(struct nb_metrics *m, const struct nb_board_snapshot *snap,
    int64_t now_ms, struct evbuffer *out)
{
	static const struct nb_board_snapshot none;

	if (nb_metrics_render_counters(m, out) == -1)
		return -1;
	if (snap == NULL)
		snap = &none;
	/* Without figures the families stay, empty, as before. */
	if (render_queue(snap, now_ms, out) == -1 ||
	    render_paused(snap, out) == -1 ||
	    render_paused_oauth(snap->paused, snap->npaused, out) == -1)
		return -1;
	return nb_metrics_render_collected(m, out);
}
