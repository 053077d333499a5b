/* SPDX-License-Identifier: ISC */
/*
 * jscan: the span tokenizer of the direct JSON readers.
 *
 * nudgespot.c (a webhook body) and segment.c (a stored event) read JSON
 * without jansson on their hot paths, and both read it with this.  A token
 * is a kind, a span of the input and flags; nothing is copied or decoded.
 * A scan accepts only text that jansson accepts (JSON_ALLOW_NUL), and of
 * that only what its options say the caller handles exactly; anything
 * else, invalid or merely uncertain, is -1 and the caller declines, so
 * jansson decides and stays the reference.  Nesting is bounded
 * (NB_JSCAN_DEPTH_MAX) and so, when keys must be unique, is the width of
 * an object.  UTF-8 is checked with utf8.c's rule (jansson's).  No
 * allocation, no state outside the structs: any thread.
 */
#ifndef NB_JSCAN_H
#define NB_JSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/buf.h"

#define NB_JSCAN_DEPTH_MAX	   32	/* deeper containers are declined */
#define NB_JSCAN_TRUSTED_DEPTH_MAX 2048 /* jansson's own limit */
#define NB_JSCAN_WIDTH_MAX	   64	/* NB_JSCAN_UNIQUE_KEYS: members */

/*
 * Options: what a scan declines besides what jansson refuses.  Without
 * options it declines a backslash in a key (a key could then spell a known
 * one, or hold "\u0000", which jansson refuses), integers of more than 18
 * digits and reals whose integer part is longer or whose exponent exceeds
 * 280 (jansson refuses int64 overflow and reals that overflow to infinity;
 * these bounds keep every accepted real below 1e299).
 *
 * NB_JSCAN_NO_ESCAPES: a backslash in any string.
 */
#define NB_JSCAN_NO_ESCAPES 0x01
/* A number that is not an NB_JSCAN_INTEGER one. */
#define NB_JSCAN_INTEGERS 0x02
/*
 * An object of more than NB_JSCAN_WIDTH_MAX members, and a key twice in
 * one (unless the caller reads its keys itself, see nb_jscan_open()).
 */
#define NB_JSCAN_UNIQUE_KEYS 0x04
/*
 * Text jansson has accepted: escapes in keys and numbers of any size pass,
 * and nesting up to NB_JSCAN_TRUSTED_DEPTH_MAX.
 */
#define NB_JSCAN_TRUSTED 0x08

enum nb_jscan_kind {
	NB_JSCAN_STRING = 1,
	NB_JSCAN_NUMBER,
	NB_JSCAN_TRUE,
	NB_JSCAN_FALSE,
	NB_JSCAN_NULL,
	NB_JSCAN_OBJECT,
	NB_JSCAN_ARRAY,
};

/*
 * Token flags.  NB_JSCAN_ESCAPED: a string holds an escape (checked as
 * jansson checks it), so its span is not its value.
 */
#define NB_JSCAN_ESCAPED 0x01
/*
 * A number without fraction or exponent, within int64 and not "-0":
 * jansson writes it back as it is written.
 */
#define NB_JSCAN_INTEGER 0x02
/* No white space inside: the span is the value's compact JSON text. */
#define NB_JSCAN_COMPACT 0x04

/*
 * A value.  For a string the span is its bytes between the quotes (valid
 * UTF-8; without NB_JSCAN_ESCAPED also its value and, quoted, its JSON
 * text); for anything else its JSON text.
 */
struct nb_jscan_tok {
	const char *p;
	size_t len;
	unsigned char kind;  /* enum nb_jscan_kind */
	unsigned char flags; /* NB_JSCAN_ESCAPED, _INTEGER, _COMPACT */
};

/* A scan of one text. */
struct nb_jscan {
	const char *p;	    /* the next byte */
	const char *end;    /* past the last byte */
	size_t nws;	    /* runs of white space skipped so far */
	unsigned opts;	    /* NB_JSCAN_* options */
	unsigned depth_max; /* of the containers it accepts */
};

/* The keys of one object so far, for NB_JSCAN_UNIQUE_KEYS. */
struct nb_jscan_keys {
	uint64_t bloom; /* a bit per (length, first, last byte) hash */
	size_t n;
	struct {
		const char *p;
		size_t len;
	} k[NB_JSCAN_WIDTH_MAX];
};

/* An open object or array, between nb_jscan_open() and its close. */
struct nb_jscan_iter {
	struct nb_jscan_keys *keys; /* NULL: duplicates are not looked for */
	const char *start;	    /* its '{' or '[' */
	size_t nws;		    /* s->nws when it opened */
	unsigned depth;		    /* its own depth */
	unsigned width;		    /* members so far */
	char close;		    /* '}' or ']' */
	unsigned char first;	    /* no member read yet */
};

/* Starts a scan of text (len bytes, not NUL-terminated) with options. */
void nb_jscan_init(
    struct nb_jscan *s, const char *text, size_t len, unsigned opts);

/* Skips white space (counting a run in s->nws). */
static inline void
nb_jscan_ws(struct nb_jscan *s)
{
	const char *p = s->p;

	if (p >= s->end || (unsigned char)*p > ' ')
		return;
	while (
	    p < s->end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	if (p != s->p) {
		s->nws++;
		s->p = p;
	}
}

/* 1 when the next byte is c. */
static inline int
nb_jscan_at(const struct nb_jscan *s, char c)
{
	return s->p < s->end && *s->p == c;
}

/*
 * Scans the value at s->p whole (a container with all it holds) into *t;
 * depth is the value's own (the top is 0 or 1, as the caller counts; a
 * container deeper than s->depth_max is declined).  s->p is then past the
 * value, before any white space.  0, or -1 when declined.
 */
int nb_jscan_value(struct nb_jscan *s, struct nb_jscan_tok *t, unsigned depth);

/*
 * Opens the object or array at s->p (at depth, as above) for
 * nb_jscan_next().  With NB_JSCAN_UNIQUE_KEYS, keys (the caller's storage)
 * makes it decline a key twice in this object; a caller that reads every
 * key may pass NULL and check the ones it cares about itself (the width
 * bound holds either way).  Nested values are always checked.  0, or -1
 * when s->p is not at '{' or '[' or too deep.
 */
int nb_jscan_open(struct nb_jscan *s, struct nb_jscan_iter *it,
    struct nb_jscan_keys *keys, unsigned depth);

/* The key half of nb_jscan_next(), out of line; call that. */
int nb_jscan_key(
    struct nb_jscan *s, struct nb_jscan_iter *it, struct nb_jscan_tok *key);

/*
 * Steps to the next member of it: 1 with s->p at the member's value (in an
 * object its key is in *key, the ':' passed; key may be NULL for an array),
 * which the caller then reads (nb_jscan_value(), or nb_jscan_open() at
 * it->depth + 1); 0 when the container closed (s->p past it); -1 when
 * declined.  The separators are inline: callers step once per member.
 */
static inline int
nb_jscan_next(
    struct nb_jscan *s, struct nb_jscan_iter *it, struct nb_jscan_tok *key)
{
	if (it->first) {
		it->first = 0;
		if (nb_jscan_at(s, it->close)) {
			s->p++;
			return 0;
		}
	} else {
		nb_jscan_ws(s);
		if (nb_jscan_at(s, ',')) {
			s->p++;
			nb_jscan_ws(s);
		} else if (nb_jscan_at(s, it->close)) {
			s->p++;
			return 0;
		} else {
			return -1;
		}
	}
	if (it->close == ']')
		return 1;
	return nb_jscan_key(s, it, key) == 0 ? 1 : -1;
}

/* After nb_jscan_next() returned 0: the container's token. */
void nb_jscan_span(const struct nb_jscan *s, const struct nb_jscan_iter *it,
    struct nb_jscan_tok *t);

/*
 * Appends len bytes of JSON that a scan accepted to out, without the white
 * space between tokens (strings are copied as they are).  0, or -1 when
 * out failed (see buf.h).
 */
int nb_jscan_compact(struct nb_buf *out, const char *json, size_t len);

/*
 * The first byte at or after p (p <= end) that a JSON string does not
 * hold as it is ('"', '\\', a control byte, a byte over 0x7F), or end.
 * Sixteen or eight bytes at a time.
 */
const unsigned char *nb_jscan_plain(
    const unsigned char *p, const unsigned char *end);

#endif
