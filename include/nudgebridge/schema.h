/* SPDX-License-Identifier: ISC */
/*
 * schema: the Nudgespot event, written once.
 *
 * nb_schema_fields[] is the contract's event table (sections 1 and 3) as
 * data: every field the bridge reads, the rule it must follow with the
 * message that names a broken one, and what it becomes in the Segment
 * Track call.  The parser (nudgespot.c) validates an event by walking the
 * table in order, so the first broken rule it meets is the one reported;
 * the mapper (segment.c) writes mapped properties and context members in
 * the same order.  Neither keeps a list of its own.  The default Segment
 * event names live here too.  Constant data and pure functions (an index
 * of the table is built once, on first use): any thread.
 */
#ifndef NB_SCHEMA_H
#define NB_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/jscan.h"

#define NB_SCHEMA_ID_MAX   128 /* id: 1..128 bytes, each 0x21..0x7E */
#define NB_SCHEMA_TYPE_MAX 64  /* type: 1..64 characters */
/* The most rows the table may hold; at most 64, a row is a bit of a mask. */
#define NB_SCHEMA_FIELDS_MAX 48

/* What a field's value must be, when present. */
enum nb_schema_rule {
	NB_SCHEMA_STRING,     /* a string, any */
	NB_SCHEMA_TEXT,	      /* a non-empty string without control chars */
	NB_SCHEMA_EVENT_ID,   /* 1..NB_SCHEMA_ID_MAX bytes 0x21..0x7E */
	NB_SCHEMA_EVENT_TYPE, /* 1..NB_SCHEMA_TYPE_MAX chars, no control */
	NB_SCHEMA_TIME,	      /* an RFC 3339 date-time */
	NB_SCHEMA_OBJECT,     /* an object: the leaf rows after this one */
	NB_SCHEMA_FREE,	      /* an object, any members */
};

/* What the mapper makes of a field besides its destination. */
enum nb_schema_role {
	NB_SCHEMA_NO_ROLE,
	NB_SCHEMA_MESSAGE_ID,	/* with the source, hashed into messageId */
	NB_SCHEMA_EVENT,	/* the Segment event, through the names */
	NB_SCHEMA_TIMESTAMP,	/* timestamp, in UTC with milliseconds */
	NB_SCHEMA_USER_ID,	/* userId */
	NB_SCHEMA_ANONYMOUS_ID, /* anonymousId when there is no userId */
	NB_SCHEMA_PROPERTIES,	/* members added to properties after the
				   mapped ones, never over one */
	NB_SCHEMA_ROLES
};

/* Where the mapper writes a field when it is a non-empty string. */
enum nb_schema_dest {
	NB_SCHEMA_NOWHERE,
	NB_SCHEMA_PROPERTY, /* properties.<name> */
	NB_SCHEMA_CONTEXT,  /* context.<name>; "a.b" is member b of object a */
};

/*
 * One row.  A row whose parent is NULL is a member of the event; a leaf
 * (parent set) is a member of the object row above it, and the leaves of
 * an object follow it directly.  Messages are static strings, the ones
 * nudgespot.h lists.
 */
struct nb_schema_field {
	const char *key;	 /* the member's key */
	const char *parent;	 /* a leaf's object's key; NULL at the top */
	const char *name;	 /* PROPERTY, CONTEXT: the name written; "" */
	const char *member;	 /* ",\"<name>\":\"", the JSON text before a
				    string value under a name without '.' */
	const char *missing;	 /* message when absent; NULL: optional */
	const char *not_type;	 /* message when not a string (an object) */
	const char *broken;	 /* message when the rule fails; OBJECT: when
				    none of its leaves is there (NULL: none
				    is needed) */
	unsigned char keylen;	 /* strlen(key) */
	unsigned char namelen;	 /* strlen(name) */
	unsigned char memberlen; /* strlen(member) */
	unsigned char rule;	 /* enum nb_schema_rule */
	unsigned char role;	 /* enum nb_schema_role */
	unsigned char dest;	 /* enum nb_schema_dest */
};

/* The table and its number of rows (at most NB_SCHEMA_FIELDS_MAX). */
extern const struct nb_schema_field nb_schema_fields[];
extern const size_t nb_schema_nfields;

/* Whether row f holds a string (else an object). */
static inline int
nb_schema_is_string(const struct nb_schema_field *f)
{
	return f->rule != NB_SCHEMA_OBJECT && f->rule != NB_SCHEMA_FREE;
}

/*
 * Whether f's rule reads the characters of its string (then a reader must
 * decode its escapes before checking it).
 */
static inline int
nb_schema_reads_text(const struct nb_schema_field *f)
{
	return nb_schema_is_string(f) && f->rule != NB_SCHEMA_STRING;
}

/*
 * The row of member key (len bytes, as written: no escapes) of the object
 * at row parent, or of the event itself when parent is -1; -1 when the
 * bridge does not read it.
 */
int nb_schema_find(int parent, const char *key, size_t len);

/* The row that plays role (one row plays each), or -1. */
int nb_schema_row(enum nb_schema_role role);

/* The rows with destination dest, as a mask (bit i: row i). */
uint64_t nb_schema_rows(enum nb_schema_dest dest);

/*
 * Whether the string s (len bytes, valid UTF-8, NUL counts as a control
 * character) follows the rule of row f; 1 for the rules that are not
 * about strings.
 */
int nb_schema_check(const struct nb_schema_field *f, const char *s, size_t len);

/*
 * A member nb_schema_scan() met that is row of the table: cb reads its
 * value from s (a value at depth), recursing with nb_schema_scan() for an
 * object row if it wants its leaves.  0, or -1 to decline.
 */
typedef int (*nb_schema_member_cb)(
    struct nb_jscan *s, int row, unsigned depth, void *arg);

/*
 * Reads the object at s->p (at depth) as the members of parent (-1: the
 * event itself): the value of each member that is a row under parent goes
 * to cb, the others are only scanned.  A row met twice (*seen keeps a bit
 * per row, zeroed by the caller before the event) is declined: jansson
 * keeps the last value, and the direct readers leave that to it.  0, or -1
 * when the scan or cb declines.
 */
int nb_schema_scan(struct nb_jscan *s, int parent, unsigned depth,
    uint64_t *seen, nb_schema_member_cb cb, void *arg);

/*
 * The contract's Segment event name for a Nudgespot type ("email.clicked":
 * "Email Link Clicked"), or NULL for a type it does not name.  Static.
 */
const char *nb_schema_event_name(const char *type);

#endif
