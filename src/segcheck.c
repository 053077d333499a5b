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
 * Segment.  It costs about two instructions per byte of the message, so
 * every message is checked on the delivery path.
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

static const char *const names[S_N] = {
    "type", "messageId", "event", "properties", "userId", "anonymousId"};

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
 * non-ASCII names get keylen KEY_MAX + 1).  0, or -1 when malformed.
 */
static int
string(struct scan *s, size_t *chars, char *key, size_t *keylen)
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
		if (c < 0x20)
			return -1;
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

/* A value of any kind at s->p; containers skipped by their brackets. */
static int
value(struct scan *s, struct val *v)
{
	const char *start = s->p;
	size_t depth = 0, chars;
	char c;

	memset(v, 0, sizeof(*v));
	if (s->p >= s->end)
		return -1;
	c = *s->p;
	if (c == '"') {
		v->kind = K_STRING;
		return string(s, &v->chars, NULL, NULL);
	}
	if (c == '{' || c == '[') {
		v->kind = c == '{' ? K_OBJECT : K_ARRAY;
		for (; s->p < s->end; s->p++) {
			c = *s->p;
			if (c == '"') {
				if (string(s, &chars, NULL, NULL) == -1)
					return -1;
				s->p--;
			} else if (c == '{' || c == '[') {
				depth++;
			} else if ((c == '}' || c == ']') && --depth == 0) {
				s->p++;
				return 0;
			}
		}
		return -1;
	}
	v->kind = c == 'n' ? K_NULL : K_OTHER;
	while (s->p < s->end && strchr(",}] \t\r\n", *s->p) == NULL)
		s->p++;
	return s->p > start ? 0 : -1;
}

static enum slot
slot_of(const char *key, size_t len)
{
	int i;

	for (i = 0; i < S_N; i++)
		if (strlen(names[i]) == len && memcmp(names[i], key, len) == 0)
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
