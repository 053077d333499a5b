/* SPDX-License-Identifier: ISC */
/*
 * segcheck: one pass over the top level of a Track message.
 *
 * The scanner knows just enough JSON to find the members of the outer
 * object: strings (with their escapes, counted in characters), containers
 * (skipped by counting brackets outside strings) and bare words (numbers,
 * true, false, null).  Whatever it cannot read as one object with nothing
 * after it is NB_SEGCHECK_NOT_OBJECT.  A member name with escapes is
 * decoded before it is compared, so "\u0074ype" is "type" as it is for
 * Segment.  Strings, most of a message's bytes, are crossed with memchr()
 * from quote to quote, so the check costs a small fraction of mapping the
 * message and every message is checked on the delivery path.
 */
#include <stdint.h>
#include <string.h>

#include "nudgebridge/segcheck.h"

#define KEY_MAX 16 /* longest member name compared ("anonymousId": 11) */

enum kind { K_NONE = 0, K_STRING, K_OBJECT, K_ARRAY, K_NULL, K_OTHER };

struct val {
	enum kind kind;
	size_t chars; /* strings: characters after decoding */
};

enum slot { S_TYPE, S_MSGID, S_EVENT, S_PROPS, S_USER, S_ANON, S_N, S_SKIP };

static const struct {
	const char *name;
	size_t len;
} names[S_N] = {
    {"type", 4},
    {"messageId", 9},
    {"event", 5},
    {"properties", 10},
    {"userId", 6},
    {"anonymousId", 11},
};

struct scan {
	const char *p;
	const char *end;
};

static void
ws(struct scan *s)
{
	while (s->p < s->end &&
	    (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int
hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		v <<= 4;
		if (p[i] >= '0' && p[i] <= '9')
			v |= (unsigned)(p[i] - '0');
		else if ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'f')
			v |= (unsigned)((p[i] | 0x20) - 'a' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/*
 * A string at s->p ('"'); counts its characters into *chars and, when key
 * is not NULL, decodes up to KEY_MAX bytes of it there (*keylen; longer or
 * non-ASCII names get keylen KEY_MAX + 1).  0, or -1 when it does not end
 * or holds an escape that is not JSON's.  (Raw control bytes are left to
 * Segment's parser: a batch it cannot parse is answered 400 and bisected.)
 */
static int
string_slow(struct scan *s, size_t *chars, char *key, size_t *keylen)
{
	const char *p = s->p + 1;
	unsigned u;
	size_t n = 0, k = 0;
	int c, nomatch = 0;

	for (;; n++) {
		if (p >= s->end)
			return -1;
		c = (unsigned char)*p;
		if (c == '"')
			break;
		if (c == '\\') {
			if (p + 1 >= s->end)
				return -1;
			c = (unsigned char)p[1];
			if (c == 'u') {
				if (s->end - p < 6 || hex4(p + 2, &u) == -1)
					return -1;
				c = u < 0x80 ? (int)u : 0x100;
				p += 6;
			} else if (c != 0 && strchr("\"\\/", c) != NULL) {
				p += 2;
			} else if (c != 0 && strchr("bfnrt", c) != NULL) {
				c = 0x100; /* never part of a compared name */
				p += 2;
			} else
				return -1;
		} else {
			p++;
			/* UTF-8 continuation bytes are not characters. */
			while (c >= 0x80 && p < s->end &&
			    ((unsigned char)*p & 0xc0) == 0x80)
				p++;
		}
		if (key == NULL)
			continue;
		if (c >= 0x80 || k >= KEY_MAX)
			nomatch = 1;
		else
			key[k++] = (char)c;
	}
	s->p = p + 1;
	*chars = n;
	if (keylen != NULL)
		*keylen = nomatch ? KEY_MAX + 1 : k;
	return 0;
}

/*
 * string_slow() for the common string without escapes: one memchr() to
 * its end, one to see that no backslash comes before it.  Characters are
 * counted only where the count matters (a string longer than any limit
 * checked here); below that the byte count stands in, which is at least
 * the character count and zero for the same strings.
 */
static int
string(struct scan *s, size_t *chars, char *key, size_t *keylen)
{
	const char *p = s->p + 1, *q;
	size_t n, i;

	if (p >= s->end || (q = memchr(p, '"', (size_t)(s->end - p))) == NULL)
		return -1;
	if (memchr(p, '\\', (size_t)(q - p)) != NULL)
		return string_slow(s, chars, key, keylen);
	n = (size_t)(q - p);
	*chars = n;
	if (n > NB_SEGCHECK_MESSAGE_ID_MAX)
		/* UTF-8 continuation bytes are not characters. */
		for (*chars = 0, i = 0; i < n; i++)
			*chars += ((unsigned char)p[i] & 0xc0) != 0x80;
	if (key != NULL) {
		*keylen = n <= KEY_MAX ? n : KEY_MAX + 1;
		memcpy(key, p, n <= KEY_MAX ? n : 0);
	}
	s->p = q + 1;
	return 0;
}

/* Bytes that matter while a container is skipped. */
enum { B_PLAIN = 0, B_QUOTE, B_OPEN, B_CLOSE };
static const unsigned char structural[256] = {
    ['"'] = B_QUOTE,
    ['{'] = B_OPEN,
    ['['] = B_OPEN,
    ['}'] = B_CLOSE,
    [']'] = B_CLOSE,
};

/*
 * Past the string that starts at p (its '"'), or NULL when it does not
 * end.  Escapes are stepped over, not checked: memchr() finds each quote
 * and the backslashes before it say whether it is escaped.
 */
static const char *
skip_string(const char *p, const char *end)
{
	const char *q, *b;

	for (p++; p < end && (q = memchr(p, '"', (size_t)(end - p))) != NULL;
	     p = q + 1) {
		for (b = q; b > p && b[-1] == '\\'; b--)
			;
		if ((q - b) % 2 == 0)
			return q + 1;
	}
	return NULL;
}

/* A value of any kind at s->p; containers skipped by their brackets. */
static int
value(struct scan *s, struct val *v)
{
	const char *p = s->p, *start = s->p;
	size_t depth = 0;

	memset(v, 0, sizeof(*v));
	if (p >= s->end)
		return -1;
	if (*p == '"') {
		v->kind = K_STRING;
		return string(s, &v->chars, NULL, NULL);
	}
	if (*p == '{' || *p == '[') {
		v->kind = *p == '{' ? K_OBJECT : K_ARRAY;
		while (p < s->end) {
			switch (structural[(unsigned char)*p]) {
			case B_QUOTE:
				if ((p = skip_string(p, s->end)) == NULL)
					return -1;
				continue;
			case B_OPEN:
				depth++;
				break;
			case B_CLOSE:
				if (--depth == 0) {
					s->p = p + 1;
					return 0;
				}
				break;
			}
			p++;
		}
		return -1;
	}
	v->kind = *p == 'n' ? K_NULL : K_OTHER;
	while (p < s->end && strchr(",}] \t\r\n", *p) == NULL)
		p++;
	s->p = p;
	return p > start ? 0 : -1;
}

static enum slot
slot_of(const char *key, size_t len)
{
	int i;

	for (i = 0; i < S_N; i++)
		if (names[i].len == len && memcmp(names[i].name, key, len) == 0)
			return (enum slot)i;
	return S_SKIP;
}

/* Reads the members into v[]; 0, or -1 when not one object. */
static int
members(struct scan *s, struct val *v, int *type_track)
{
	char key[KEY_MAX + 1];
	size_t keylen, chars;
	const char *start;
	struct val val;
	enum slot slot;

	ws(s);
	if (s->p >= s->end || *s->p++ != '{')
		return -1;
	ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return 0;
	}
	for (;;) {
		if (s->p >= s->end || *s->p != '"' ||
		    string(s, &chars, key, &keylen) == -1)
			return -1;
		slot = keylen <= KEY_MAX ? slot_of(key, keylen) : S_SKIP;
		ws(s);
		if (s->p >= s->end || *s->p++ != ':')
			return -1;
		ws(s);
		start = s->p;
		if (value(s, &val) == -1)
			return -1;
		if (slot != S_SKIP)
			v[slot] = val;
		if (slot == S_TYPE)
			*type_track = val.kind == K_STRING &&
			    s->p - start == 7 &&
			    memcmp(start, "\"track\"", 7) == 0;
		ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			ws(s);
			continue;
		}
		if (s->p < s->end && *s->p == '}') {
			s->p++;
			return 0;
		}
		return -1;
	}
}

static int
nonempty_string(const struct val *v)
{
	return v->kind == K_STRING && v->chars > 0;
}

enum nb_segcheck_result
nb_segcheck_message(const char *msg, size_t len)
{
	struct scan s = {msg, msg + len};
	struct val v[S_N], *first;
	int track = 0;

	memset(v, 0, sizeof(v));
	if (msg == NULL || members(&s, v, &track) == -1)
		return NB_SEGCHECK_NOT_OBJECT;
	ws(&s);
	if (s.p != s.end)
		return NB_SEGCHECK_NOT_OBJECT;
	if (!track)
		return NB_SEGCHECK_TYPE;
	if (!nonempty_string(&v[S_MSGID]) ||
	    v[S_MSGID].chars > NB_SEGCHECK_MESSAGE_ID_MAX)
		return NB_SEGCHECK_MESSAGE_ID;
	if (!nonempty_string(&v[S_EVENT]))
		return NB_SEGCHECK_EVENT;
	if (v[S_PROPS].kind != K_OBJECT)
		return NB_SEGCHECK_PROPERTIES;
	/* analytics-next: userId ?? anonymousId must be a string. */
	first = v[S_USER].kind != K_NONE && v[S_USER].kind != K_NULL
	    ? &v[S_USER]
	    : &v[S_ANON];
	if (first->kind != K_STRING)
		return NB_SEGCHECK_IDENTITY;
	/* analytics-go: one of them non-empty. */
	if (!nonempty_string(&v[S_USER]) && !nonempty_string(&v[S_ANON]))
		return NB_SEGCHECK_IDENTITY;
	return NB_SEGCHECK_OK;
}

const char *
nb_segcheck_result_str(enum nb_segcheck_result r)
{
	switch (r) {
	case NB_SEGCHECK_OK:
		return "ok";
	case NB_SEGCHECK_NOT_OBJECT:
		return "message: not one JSON object";
	case NB_SEGCHECK_TYPE:
		return "type: must be \"track\"";
	case NB_SEGCHECK_MESSAGE_ID:
		return "messageId: must be a string of 1..100 characters";
	case NB_SEGCHECK_EVENT:
		return "event: must be a non-empty string";
	case NB_SEGCHECK_PROPERTIES:
		return "properties: must be an object";
	case NB_SEGCHECK_IDENTITY:
		return "userId/anonymousId: needs a non-empty string";
	}
	return "unknown";
}
