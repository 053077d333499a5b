/* SPDX-License-Identifier: ISC */
/*
 * lane: the sources that share one write key, endpoint and OAuth client.
 *
 * Segment limits and authenticates per write key, so the deliverer sends
 * per lane: a lane claims due rows of its sources only when it can send at
 * once, maps each to a Track message (messageId by its row's rule;
 * dead-lettering too_large, invalid_for_segment, unmappable), packs
 * batches, and sends them under its instance's share of the rate budget
 * (token bucket, see fleet.h) and in-flight cap, with HTTP Basic auth or a
 * bearer token and the write key in the body.  Answers are applied by
 * policy.h: delivered, retried with backoff (a 429 holds the whole lane),
 * bisected, or a pause (401/403; for OAuth a 401 first drops the token and
 * tries a fresh one once; a refused token pauses too).  A claimed row
 * leaves that state on every path.  Lanes are reference counted (the
 * table's and each request's), so a retired lane finishes its requests.
 * Everything runs on the deliverer's thread.
 */
#ifndef NB_LANE_H
#define NB_LANE_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/oauth.h"
#include "nudgebridge/segment.h"

struct nb_config;
struct nb_lane;
struct nb_metrics;
struct nb_source;
struct nb_store;
struct nb_xfer_multi;

/*
 * Maps a stored event of src to its Track message (see segment.h), its
 * messageId made for origin o (src's name, the row's rule, the install): 0
 * with *out malloc'd, or -1 with *why naming the broken rule ("out of
 * memory" or NULL when it is no fault of the event).
 */
typedef int (*nb_lane_map_fn)(const struct nb_source *src,
    const struct nb_segment_origin *o, const char *raw, size_t rawlen,
    char **out, size_t *outlen, const char **why);

/* What all lanes share; owned by the deliverer, outlives every lane. */
struct nb_lane_env {
	struct nb_store *store;
	struct nb_metrics *m; /* may be NULL */
	struct nb_xfer_multi *mx;
	nb_lane_map_fn map;
	struct nb_segment_install install; /* the store's, for messageIds */
	double rate_share; /* of segment.rate_limit_rps this instance takes */
	void (*kick)(void *arg); /* wake the loop: something changed */
	void *kick_arg;
	int paused_dirty; /* set when a lane pauses or resumes */
	int64_t epoch;	  /* the store's erase epoch last read; -1: none */
};

/* Why a lane is paused. */
struct nb_lane_pause {
	int status;	  /* 401/403 from Segment, 400/401 from OAuth */
	int64_t until_ms; /* wall clock */
	int oauth;	  /* 1: the token endpoint refused */
	char error[NB_OAUTH_ERROR_MAX];	  /* its "error", or "" */
	char detail[NB_OAUTH_DETAIL_MAX]; /* what operators read */
};

/* The default mapper: nb_segment_track_text(). */
int nb_lane_map_segment(const struct nb_source *src,
    const struct nb_segment_origin *o, const char *raw, size_t rawlen,
    char **out, size_t *outlen, const char **why);

/*
 * Builds the lanes of cfg (one reference each, taken on cfg too) into
 * *out.  0 or -1 (out of memory; nothing built).
 */
int nb_lane_build(struct nb_config *cfg, struct nb_lane_env *env,
    struct nb_lane ***out, size_t *nout);

/*
 * Gives a lane up (a reload or shutdown): its queued rows are released,
 * the table's reference dropped; requests in flight still complete.
 */
void nb_lane_retire(struct nb_lane *);

/*
 * One turn: resumes a pause that ran out, then claims and sends while the
 * rate limit, the in-flight cap and, for OAuth, a usable token allow.
 */
void nb_lane_tick(struct nb_lane *, int64_t now_ms, int64_t mono_ms);

/* Marks the lane as not known to be idle (the drain starts). */
void nb_lane_wake(struct nb_lane *);

/*
 * 1 while the lane may still send something now: queued batches, a claim
 * not yet found empty, a 429 hold, or due rows while it waits for an
 * OAuth token (looked up in the store); 0 when idle or paused.  For the
 * drain at shutdown.
 */
int nb_lane_busy(struct nb_lane *, int64_t now_ms);

/* 1 when any row of the lane's sources is due now (rows stay as they were). */
int nb_lane_has_due(struct nb_lane *, int64_t now_ms);

/* Releases the queued rows (no attempt counted). */
void nb_lane_release_queue(struct nb_lane *);

/* The pause, or NULL when the lane runs. */
const struct nb_lane_pause *nb_lane_paused(const struct nb_lane *);

/* The lane's source names (borrowed) and how many. */
const char *const *nb_lane_sources(const struct nb_lane *, size_t *n);

#endif
