/* SPDX-License-Identifier: ISC */
/*
 * activity: when each source last sent a verified request, and when each
 * of its signing keys last verified one.
 *
 * The webhook threads record here after a signature verified; the alert
 * thread (alerter.h) writes what changed to the store every few seconds,
 * so the command line (another process) and the other instances on one
 * database see it, and raises the figures here to what the store holds,
 * so every instance shows the fleet's figures.  Recording is a hash of the
 * source name and a few relaxed atomic stores: no lock and no allocation
 * once a source and key were seen (the first request of a new source or
 * key takes a mutex once).  The table is bounded: NB_ACTIVITY_SOURCES
 * names, NB_ACTIVITY_KEYS keys each; past that new names are not
 * recorded.  Thread-safe throughout.
 */
#ifndef NB_ACTIVITY_H
#define NB_ACTIVITY_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/bounds.h"
#include "nudgebridge/sig.h"

/* Sources remembered: every configured one, and as many again renamed. */
#define NB_ACTIVITY_SOURCES (2 * NB_CONFIG_MAX_SOURCES)
/* Keys remembered per source (rotations included). */
#define NB_ACTIVITY_KEYS NB_CONFIG_MAX_KEYS

struct evbuffer;
struct nb_activity;

/*
 * One figure: fp "" is the source's last verified request, else the last
 * request the key with that fingerprint verified.  ms is wall clock.
 */
struct nb_activity_row {
	char source[NB_SOURCE_NAME_MAX + 1];
	char fp[NB_SIG_FP_LEN];
	int64_t ms;
};

/* Called once per figure by nb_activity_each(). */
typedef void (*nb_activity_fn)(void *arg, const struct nb_activity_row *row);

/* An empty table, or NULL when out of memory. */
struct nb_activity *nb_activity_new(void);

/* NULL is ok. */
void nb_activity_free(struct nb_activity *);

/*
 * A request of source verified at now_ms by the key whose fingerprint is
 * fp (NULL or "": only the source's figure moves).  Figures only move
 * forward.  NULL a is ok (does nothing).
 */
void nb_activity_note(
    struct nb_activity *a, const char *source, const char *fp, int64_t now_ms);

/*
 * Raises figures to at least those of rows (read from the store); a
 * figure raised this way counts as stored, so it is not written back.
 */
void nb_activity_merge(
    struct nb_activity *, const struct nb_activity_row *rows, size_t n);

/*
 * Calls fn for every figure (dirty 0), or only for those that moved since
 * they were last marked stored (dirty 1).  Figures recorded meanwhile may
 * or may not be seen.
 */
void nb_activity_each(
    struct nb_activity *, int dirty, nb_activity_fn fn, void *arg);

/* Marks figures as stored up to the values of rows. */
void nb_activity_stored(
    struct nb_activity *, const struct nb_activity_row *rows, size_t n);

/* The source's last verified request (wall ms), 0 when none is known. */
int64_t nb_activity_last(struct nb_activity *, const char *source);

/*
 * Appends nudgebridge_source_last_received_timestamp_seconds{source} and
 * nudgebridge_signing_key_last_used_timestamp_seconds{source,key} (key:
 * the fingerprint) to out.  0 or -1.
 */
int nb_activity_render(struct nb_activity *, struct evbuffer *out);

#endif
