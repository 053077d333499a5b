/* SPDX-License-Identifier: ISC */
/*
 * nudgespot: the inbound payload, parsed and validated.
 *
 * A body is one event object or an array of 1..NB_NUDGESPOT_MAX_EVENTS
 * objects.  A body that is not JSON, or not of that shape, is refused as a
 * whole (400).  Each object is then validated on its own against the
 * contract's event table: an event that breaks a rule is not refused but
 * carries the rule it broke, so the store can quarantine it.  Unknown keys
 * are ignored and null means absent.  Each event's text is cut from the
 * body as the sender wrote it, without the white space between tokens (that
 * text is what the store keeps and what the mapper reads).  Pure functions,
 * safe from any thread.
 */
#ifndef NB_NUDGESPOT_H
#define NB_NUDGESPOT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define NB_NUDGESPOT_MAX_EVENTS 1000

enum nb_nudgespot_result {
	NB_NUDGESPOT_OK = 0,
	NB_NUDGESPOT_INVALID_JSON,    /* not JSON, or invalid UTF-8 */
	NB_NUDGESPOT_INVALID_PAYLOAD, /* not an object / array of 1..1000
				       objects */
	NB_NUDGESPOT_NOMEM,
};

/* One event of a request. */
struct nb_event {
	char *id;   /* NULL when missing or invalid (quarantined) */
	char *type; /* NULL when missing or invalid */
	char *raw;  /* the event object's JSON as sent, white space between
		       tokens removed, NUL-terminated */
	size_t rawlen;
	const char *error; /* NULL if valid, else the broken rule (static) */
	/*
	 * person.h's index keys of subscriber.email and subscriber.uid, each
	 * 0 unless that member follows its rule (also in a quarantined event).
	 */
	int64_t email_key;
	int64_t uid_key;
};

/* A parsed body: owned array of events. */
struct nb_payload {
	struct nb_event *events;
	size_t nevents;
};

/*
 * Parses body (len bytes, not NUL-terminated).  On NB_NUDGESPOT_OK fills
 * *out, which the caller releases with nb_nudgespot_clear().  On any other
 * result *out is left empty.
 */
enum nb_nudgespot_result nb_nudgespot_parse(
    struct nb_payload *out, const char *body, size_t len);

/*
 * The two paths of nb_nudgespot_parse(), exported so the tests can hold one
 * to the other.  nb_nudgespot_parse_direct() is the single pass tried
 * first: 0 with *out filled (the body's result is then NB_NUDGESPOT_OK), or
 * -1 with *out left empty when it declines (any body jansson refuses or
 * that has the wrong shape, and anything where agreeing with jansson is not
 * certain: see nudgespot.c; also out of memory).  nb_nudgespot_parse_tree()
 * is the reference: jansson parses the whole body, which is then sliced and
 * validated; same contract as nb_nudgespot_parse().  Whenever the direct
 * path decides, both fill *out identically (every event's raw, rawlen, id,
 * type and error).
 */
int nb_nudgespot_parse_direct(
    struct nb_payload *out, const char *body, size_t len);
enum nb_nudgespot_result nb_nudgespot_parse_tree(
    struct nb_payload *out, const char *body, size_t len);

/* Releases what nb_nudgespot_parse() filled in.  Safe on a zeroed struct. */
void nb_nudgespot_clear(struct nb_payload *);

/* "ok", "invalid_json", "invalid_payload", "nomem". */
const char *nb_nudgespot_result_str(enum nb_nudgespot_result);

/*
 * Validates one event object.  Returns NULL when it follows every rule, else
 * a static string naming the first broken rule, checked in this order
 * (absent and null are the same; unknown keys are never looked at; the
 * rules and messages are the rows of schema.h's table, in its order):
 *
 *   "event: must be an object"
 *   "id: missing"                "id: must be a string"
 *   "id: must be 1..128 printable ASCII characters"
 *   "type: missing"              "type: must be a string"
 *   "type: must be 1..64 characters without control characters"
 *   "occurred_at: missing"       "occurred_at: must be a string"
 *   "occurred_at: not an RFC 3339 date-time"
 *   "subscriber: missing"        "subscriber: must be an object"
 *   "subscriber.uid: must be a string"
 *   "subscriber.uid: must be non-empty without control characters"
 *   "subscriber.email: must be a string"
 *   "subscriber.email: must be non-empty without control characters"
 *   "subscriber: needs uid or email"
 *   "<section>: must be an object"   for message, link, bounce, list, client
 *   "<section>.<leaf>: must be a string"   for message.id, message.subject,
 *       message.campaign_id, message.campaign_name, link.id, link.url,
 *       bounce.type, bounce.reason, list.id, list.name, client.ip,
 *       client.user_agent
 *   "properties: must be an object"
 *
 * nb_nudgespot_parse() sets an event's id (and type) whenever that field
 * follows its own rule, even if a later rule fails.
 */
const char *nb_nudgespot_validate(const json_t *event);

/*
 * Re-validates stored event text (as kept by the store) for a replay of a
 * quarantined event.  Returns NULL if valid, else the broken rule (the list
 * above, plus "event: not valid JSON" and "event: out of memory"); when
 * valid and id/type are non-NULL, *id and *type receive malloc'd copies
 * (else they are set to NULL).
 */
const char *nb_nudgespot_revalidate(
    const char *raw, size_t len, char **id, char **type);

#endif
