/* SPDX-License-Identifier: ISC */
/*
 * segment: a stored Nudgespot event becomes one Segment Track message.
 *
 * The mapping is the contract's section 3: event name, identity, mapped
 * properties (never overwritten by free-form ones), context, the UTC
 * millisecond timestamp and a messageId that depends on (source, event id)
 * alone, so retries, replays, restarts and other instances send the same
 * one.  Pure functions over the stored text; safe from any thread.
 */
#ifndef NB_SEGMENT_H
#define NB_SEGMENT_H

#include <stddef.h>

#include <jansson.h>

#include "nudgebridge/config.h"

/* "nb-" + 64 hex digits + NUL: well under Segment's 100 characters. */
#define NB_SEGMENT_MSGID_LEN 68

#define NB_SEGMENT_INTEGRATION_NAME    "nudgespot"
#define NB_SEGMENT_INTEGRATION_VERSION "1.0.0"
#define NB_SEGMENT_LIBRARY_NAME	       "nudgebridge"

/*
 * Writes the messageId of (source, event_id): "nb-" and the hex SHA-256 of
 * source, a NUL byte, and event_id.
 */
void nb_segment_message_id(
    const char *source, const char *event_id, char out[NB_SEGMENT_MSGID_LEN]);

/*
 * Builds the Track message for the stored event text raw (rawlen bytes)
 * under src's settings.  Returns a new reference, or NULL when the text
 * cannot be mapped (then *err, if err is non-NULL, names why).
 */
json_t *nb_segment_track(const struct nb_source *src, const char *raw,
    size_t rawlen, const char **err);

/*
 * nb_segment_track() serialised compactly: *out is malloc'd, *outlen its
 * length.  0, or -1 as above.
 */
int nb_segment_track_text(const struct nb_source *src, const char *raw,
    size_t rawlen, char **out, size_t *outlen, const char **err);

/*
 * The direct single-pass encoder nb_segment_track_text() tries first: 0
 * with the message in *out (malloc'd, NUL-terminated, *outlen bytes), or -1
 * with *out untouched when it declines (input it does not handle exactly,
 * invalid input, out of memory) and the jansson path must decide.  Whatever
 * it accepts is byte for byte json_dumps(JSON_COMPACT) of what
 * nb_segment_track() builds; exported so the unit tests can hold it to
 * that.  Logs nothing.
 */
int nb_segment_track_text_direct(const struct nb_source *src, const char *raw,
    size_t rawlen, char **out, size_t *outlen);

#endif
