/* SPDX-License-Identifier: ISC */
/*
 * metrics_page: the whole /metrics exposition, from the counters
 * (metrics.h) and a board snapshot (board.h).  Thread-safe as both are.
 */
#ifndef NB_METRICS_PAGE_H
#define NB_METRICS_PAGE_H

#include <stdint.h>

struct evbuffer;
struct nb_board_snapshot;
struct nb_metrics;

/*
 * Appends the whole exposition to out: the counters (metrics.h), plus
 * per-source queue gauges and paused-source gauges from snap (NULL, or
 * without queue figures: those gauges are left out), then the collectors'
 * families.  0 or -1.
 */
int nb_metrics_render(struct nb_metrics *, const struct nb_board_snapshot *snap,
    int64_t now_ms, struct evbuffer *out);

#endif
