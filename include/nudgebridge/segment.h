/* SPDX-License-Identifier: ISC */
/*
 * segment: a stored Nudgespot event becomes one Segment Track message.
 *
 * The mapping is the contract's section 3: event name, identity, mapped
 * properties (never overwritten by free-form ones), context, the UTC
 * millisecond timestamp and a messageId made of (install, source, event
 * id) by the rule the event's row was stored under, so retries, replays,
 * restarts and other instances send the same one and another install
 * never does.  The fields it maps and where they go are schema.h's table;
 * the settings it reads are a struct nb_mapping, not the whole source, so
 * this module knows nothing of the configuration.  Pure functions over the
 * stored text; safe from any thread.
 */
#ifndef NB_SEGMENT_H
#define NB_SEGMENT_H

#include <stddef.h>

#include <jansson.h>
#include <sodium.h>

/*
 * The rules a messageId is made by.  Every stored row records the rule it
 * was stored under (store.h), so an event keeps its messageId for life,
 * across upgrades too.  A rule never changes once released; a new one gets
 * a new number and prefix.
 */
enum nb_segment_rule {
	/*
	 * Rows stored before install ids existed: "nb-" and the hex SHA-256
	 * of source, a NUL byte and the event id (67 characters).
	 */
	NB_SEGMENT_RULE_LEGACY = 0,
	/*
	 * "nb1-" and the hex SHA-256 of the install block (the install id's
	 * 32 hex digits and 32 NUL bytes: one SHA-256 block), source, a NUL
	 * byte and the event id (68 characters).
	 */
	NB_SEGMENT_RULE_INSTALL = 1,
};

/* The rule rows stored now get. */
#define NB_SEGMENT_RULE_CURRENT NB_SEGMENT_RULE_INSTALL

/* Hex digits of an install id: 128 random bits (store.h keeps it). */
#define NB_SEGMENT_INSTALL_ID_LEN 32

/* The longest messageId + NUL: well under Segment's 100 characters. */
#define NB_SEGMENT_MSGID_LEN 69

/*
 * An install identity as the mapper uses it: the id and the SHA-256 state
 * after the install block, so a messageId of the install rule costs what
 * a legacy one does.  Filled by nb_segment_install_init(); read-only after,
 * so any thread may share one.
 */
struct nb_segment_install {
	char id[NB_SEGMENT_INSTALL_ID_LEN + 1];
	crypto_hash_sha256_state head;
};

/*
 * Fills in from id, which must be NB_SEGMENT_INSTALL_ID_LEN lower-case hex
 * digits.  0, or -1 (in untouched) for anything else.
 */
int nb_segment_install_init(struct nb_segment_install *in, const char *id);

/*
 * Whose message it is: what its messageId is made of besides the event
 * id.  install is needed by NB_SEGMENT_RULE_INSTALL and ignored by the
 * legacy rule.  Everything borrowed.
 */
struct nb_segment_origin {
	const char *source;
	enum nb_segment_rule rule;
	const struct nb_segment_install *install;
};

#define NB_SEGMENT_INTEGRATION_NAME    "nudgespot"
#define NB_SEGMENT_INTEGRATION_VERSION "1.0.0"
#define NB_SEGMENT_LIBRARY_NAME	       "nudgebridge"

/* What anonymousId is for an event without subscriber.uid. */
enum nb_segment_anon {
	NB_SEGMENT_ANON_EMAIL = 0, /* the address */
	NB_SEGMENT_ANON_SHA256,	   /* hex SHA-256 of the lower-cased address */
};

/*
 * A source's mapping settings ("anonymous_id" and "event_names" in the
 * configuration, which config.c parses into the one embedded in each
 * struct nb_source).  A zeroed struct is the contract's defaults.
 */
struct nb_mapping {
	enum nb_segment_anon anon;
	json_t *event_names; /* owned: type -> Segment event name; or NULL */
};

/* Releases what m owns; m is then the defaults.  NULL is ok. */
void nb_segment_mapping_clear(struct nb_mapping *m);

/*
 * The Segment event name for a Nudgespot type under m: m's override, else
 * the contract's table (schema.h), else type itself.  Borrowed from m, the
 * table or type; NULL when type is.  m may be NULL (no overrides).
 */
const char *nb_segment_event_name(const struct nb_mapping *m, const char *type);

/*
 * Writes the messageId of event_id from origin o under o's rule (see enum
 * nb_segment_rule).  0, or -1 with out empty when o's rule is unknown or
 * needs an install that o lacks.
 */
int nb_segment_message_id(const struct nb_segment_origin *o,
    const char *event_id, char out[NB_SEGMENT_MSGID_LEN]);

/*
 * Builds the Track message for the stored event text raw (rawlen bytes) of
 * origin o (its source's name, its row's messageId rule), under the mapping
 * m.  Returns a new reference, or NULL when the text cannot be mapped (then
 * *err, if err is non-NULL, names why).
 */
json_t *nb_segment_track(const struct nb_mapping *m,
    const struct nb_segment_origin *o, const char *raw, size_t rawlen,
    const char **err);

/*
 * nb_segment_track() serialised compactly: *out is malloc'd, *outlen its
 * length.  0, or -1 as above.
 */
int nb_segment_track_text(const struct nb_mapping *m,
    const struct nb_segment_origin *o, const char *raw, size_t rawlen,
    char **out, size_t *outlen, const char **err);

/*
 * The direct single-pass encoder nb_segment_track_text() tries first: 0
 * with the message in *out (malloc'd, NUL-terminated, *outlen bytes), or -1
 * with *out untouched when it declines (input it does not handle exactly,
 * invalid input, out of memory) and the jansson path must decide.  Whatever
 * it accepts is byte for byte json_dumps(JSON_COMPACT) of what
 * nb_segment_track() builds; exported so the unit tests can hold it to
 * that.  Logs nothing.
 */
int nb_segment_track_text_direct(const struct nb_mapping *m,
    const struct nb_segment_origin *o, const char *raw, size_t rawlen,
    char **out, size_t *outlen);

#endif
