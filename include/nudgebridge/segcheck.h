/* SPDX-License-Identifier: ISC */
/*
 * segcheck: the checks Segment's own libraries make before they send.
 *
 * Segment answers 200 to a batch and then silently drops a message without
 * userId/anonymousId or event.  Its libraries refuse such messages before
 * sending: analytics-next (packages/core/src/validation/assertions.ts) wants
 * an object with a string type and messageId, and for a track call a
 * string event, a plain-object properties and an identity (userId, else
 * anonymousId) that is a string; analytics-go (track.go) wants event and
 * one of userId/anonymousId non-empty.  Every message the deliverer sends
 * passes the union of those checks, plus type "track" and a messageId of
 * 1..100 characters; one that fails is dead-lettered as
 * invalid_for_segment instead of vanishing.  (Size is not checked here:
 * a message over the limit is too_large, policy.h.)  Pure; any thread.
 */
#ifndef NB_SEGCHECK_H
#define NB_SEGCHECK_H

#include <stddef.h>

/* Longest messageId, in characters. */
#define NB_SEGCHECK_MESSAGE_ID_MAX 100

enum nb_segcheck_result {
	NB_SEGCHECK_OK = 0,
	NB_SEGCHECK_NOT_OBJECT, /* not one well-formed JSON object */
	NB_SEGCHECK_TYPE,	/* type missing or not "track" */
	NB_SEGCHECK_MESSAGE_ID, /* not a string of 1..100 characters */
	NB_SEGCHECK_EVENT,	/* not a non-empty string */
	NB_SEGCHECK_PROPERTIES, /* not an object */
	NB_SEGCHECK_IDENTITY,	/* no non-empty userId/anonymousId string */
};

/*
 * Checks one Track message (msg, len bytes of JSON text, as the mapper
 * writes it).  Only the top-level members are looked at; nested values
 * are skipped by their brackets.  A member given twice counts with its
 * last value, as JSON.parse() takes it.  Never allocates.
 */
enum nb_segcheck_result nb_segcheck_message(const char *msg, size_t len);

/*
 * The rule a result broke, for a dead letter's error: "event: must be a
 * non-empty string".  "ok" for NB_SEGCHECK_OK.  Static.
 */
const char *nb_segcheck_result_str(enum nb_segcheck_result);

#endif
