/* SPDX-License-Identifier: ISC */
/*
 * jscan: the span tokenizer of the direct JSON readers (see jscan.h).
 *
 * Its grammar is jansson's: white space is space, tab, LF and CR; a string
 * holds no control byte and only valid UTF-8 (nb_utf8_len()), and its
 * escapes are \" \\ \/ \b \f \n \r \t and \u with four hex digits, a
 * surrogate only as a high-low pair; numbers are RFC 8259's.  On top of
 * that the options decline what a caller cannot reproduce exactly (see
 * jscan.h), so whatever a scan accepts, jansson accepts too, which the
 * differential unit tests and fuzz targets of both callers check.  Strings
 * are scanned sixteen bytes at a time with SSE2, else eight.  Containers
 * recurse, at most depth_max deep; an object whose keys must be unique
 * keeps them in an nb_jscan_keys on the stack of its frame, unless its
 * caller reads every key and checks the ones it cares about itself.
 */
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "nudgebridge/jscan.h"
#include "nudgebridge/utf8.h"

#define INT_DIGITS_MAX 18  /* longer integer parts are declined */
#define EXP_MAX	       280 /* larger exponents are declined */
#define INT64_DIGITS   19  /* decimal digits of INT64_MAX */

void
nb_jscan_init(struct nb_jscan *s, const char *text, size_t len, unsigned opts)
{
	s->p = text;
	s->end = text + len;
	s->nws = 0;
	s->opts = opts;
	s->depth_max = opts & NB_JSCAN_TRUSTED ? NB_JSCAN_TRUSTED_DEPTH_MAX
					       : NB_JSCAN_DEPTH_MAX;
}

#ifndef __SSE2__
#define BYTES8(c) (0x0101010101010101ULL * (uint64_t)(c))

/*
 * Nonzero when one of the eight bytes in w is '"', '\\', a control or not
 * ASCII.  Each term is the "has a byte less than n" test (x - n) & ~x &
 * 0x80..80: a borrow only runs upwards from a byte that matches, so the
 * lowest flagged byte is the first one that matches.
 */
static inline uint64_t
stop8(uint64_t w)
{
	uint64_t q = w ^ BYTES8('"'), b = w ^ BYTES8('\\');

	return (((w - BYTES8(0x20)) & ~w) | ((q - BYTES8(1)) & ~q) |
		   ((b - BYTES8(1)) & ~b) | w) &
	    BYTES8(0x80);
}

/* The eight bytes at p, the first one lowest. */
static inline uint64_t
load8(const unsigned char *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	w = __builtin_bswap64(w);
#endif
	return w;
}
#endif

static inline const unsigned char *
plain(const unsigned char *p, const unsigned char *end)
{
#ifdef __SSE2__
	/*
	 * Sixteen at a time where SSE2 is there (every x86-64): a signed
	 * compare below 0x20 flags the controls and every byte over 0x7F.
	 */
	const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
	const __m128i space = _mm_set1_epi8(0x20);
	unsigned mask;

	while (end - p >= 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);

		mask = (unsigned)_mm_movemask_epi8(
		    _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote),
				     _mm_cmpeq_epi8(x, bslash)),
			_mm_cmplt_epi8(x, space)));
		if (mask != 0)
			return p + __builtin_ctz(mask);
		p += 16;
	}
#else
	uint64_t m;

	while (end - p >= 8) {
		if ((m = stop8(load8(p))) != 0)
			return p + __builtin_ctzll(m) / 8;
		p += 8;
	}
#endif
	while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
		p++;
	return p;
}

const unsigned char *
nb_jscan_plain(const unsigned char *p, const unsigned char *end)
{
	return plain(p, end);
}

/* The value of four hex digits at p, -1 if they are not. */
static long
hex4(const unsigned char *p, const unsigned char *end)
{
	long v = 0;
	int i, d;

	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		if (p[i] >= '0' && p[i] <= '9')
			d = p[i] - '0';
		else if (p[i] >= 'a' && p[i] <= 'f')
			d = p[i] - 'a' + 10;
		else if (p[i] >= 'A' && p[i] <= 'F')
			d = p[i] - 'A' + 10;
		else
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* Length of the escape at p (a backslash), 0 when jansson refuses it. */
static size_t
escape_len(const unsigned char *p, const unsigned char *end)
{
	long u, lo;

	if (end - p < 2)
		return 0;
	switch (p[1]) {
	case '"':
	case '\\':
	case '/':
	case 'b':
	case 'f':
	case 'n':
	case 'r':
	case 't':
		return 2;
	case 'u':
		break;
	default:
		return 0;
	}
	if ((u = hex4(p + 2, end)) == -1 || (u >= 0xdc00 && u <= 0xdfff))
		return 0;
	if (u < 0xd800 || u > 0xdbff)
		return 6;
	/* A high surrogate counts only with a low one right after it. */
	if (end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
	    (lo = hex4(p + 8, end)) < 0xdc00 || lo > 0xdfff)
		return 0;
	return 12;
}

/*
 * What stopped a string's plain run at *pp (before end, not its closing
 * quote): an escape, checked and taken when esc allows, a UTF-8 sequence,
 * or anything else, which is -1.  Apart from scan_string(): rare.
 */
static __attribute__((noinline)) int
string_stop(const unsigned char **pp, const unsigned char *end, int esc,
    unsigned char *flags)
{
	const unsigned char *p = *pp;
	size_t n;

	if (*p < 0x20)
		return -1;
	if (*p == '\\') {
		if (!esc)
			return -1;
		*flags |= NB_JSCAN_ESCAPED;
		n = escape_len(p, end);
	} else {
		n = nb_utf8_len(p, end);
	}
	if (n == 0)
		return -1;
	*pp = p + n;
	return 0;
}

/*
 * The string at s->p (a quote); a key when key is set.  Inlined into its
 * two callers: a string is the most frequent token, and the call cost
 * more than most short strings.
 */
static inline __attribute__((always_inline)) int
scan_string(struct nb_jscan *s, struct nb_jscan_tok *t, int key)
{
	const unsigned char *p = (const unsigned char *)s->p + 1;
	const unsigned char *end = (const unsigned char *)s->end;
	unsigned char flags = NB_JSCAN_COMPACT;

	t->p = (const char *)p;
	while ((p = plain(p, end)) < end && *p != '"')
		if (string_stop(&p, end,
			!(s->opts & NB_JSCAN_NO_ESCAPES) &&
			    (!key || (s->opts & NB_JSCAN_TRUSTED)),
			&flags) == -1)
			return -1;
	if (p >= end)
		return -1;
	t->kind = NB_JSCAN_STRING;
	t->flags = flags;
	t->len = (size_t)((const char *)p - t->p);
	s->p = (const char *)p + 1;
	return 0;
}

static inline int
is_digit(const unsigned char *p, const unsigned char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

/* Whether the n decimal digits at d (no leading zero) fit in int64. */
static int
fits_int64(const unsigned char *d, size_t n, int neg)
{
	if (n != INT64_DIGITS)
		return n < INT64_DIGITS;
	return memcmp(d, neg ? "9223372036854775808" : "9223372036854775807",
		   INT64_DIGITS) <= 0;
}

/* A number, then the options' bounds (see jscan.h). */
static int
scan_number(struct nb_jscan *s, struct nb_jscan_tok *t)
{
	const unsigned char *p = (const unsigned char *)s->p, *digits;
	const unsigned char *end = (const unsigned char *)s->end;
	unsigned exp = 0;
	size_t ndigits;
	int neg = 0, real = 0, integer;

	if (*p == '-') {
		neg = 1;
		p++;
	}
	digits = p;
	if (!is_digit(p, end))
		return -1;
	if (*p == '0') {
		if (is_digit(++p, end))
			return -1;
	} else {
		while (is_digit(p, end))
			p++;
	}
	ndigits = (size_t)(p - digits);
	if (p < end && *p == '.') {
		real = 1;
		if (!is_digit(++p, end))
			return -1;
		while (is_digit(p, end))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		real = 1;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(p, end))
			return -1;
		for (; is_digit(p, end); p++)
			if (exp <= EXP_MAX)
				exp = exp * 10 + (unsigned)(*p - '0');
	}
	integer = !real && !(neg && *digits == '0') &&
	    fits_int64(digits, ndigits, neg);
	if (!(s->opts & NB_JSCAN_TRUSTED)) {
		if (s->opts & NB_JSCAN_INTEGERS) {
			if (!integer)
				return -1;
		} else if (ndigits > INT_DIGITS_MAX || exp > EXP_MAX) {
			return -1;
		}
	}
	t->kind = NB_JSCAN_NUMBER;
	t->flags = NB_JSCAN_COMPACT | (integer ? NB_JSCAN_INTEGER : 0);
	t->p = s->p;
	t->len = (size_t)((const char *)p - s->p);
	s->p = (const char *)p;
	return 0;
}

static int
scan_word(struct nb_jscan *s, struct nb_jscan_tok *t, const char *w, size_t n,
    enum nb_jscan_kind kind)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
		return -1;
	t->kind = (unsigned char)kind;
	t->flags = NB_JSCAN_COMPACT;
	t->p = s->p;
	t->len = n;
	s->p += n;
	return 0;
}

/* Adds key k; -1 if it is already there or the object is too wide. */
static int
keys_add(struct nb_jscan_keys *ks, const struct nb_jscan_tok *k)
{
	uint64_t bit = 1;
	size_t i;

	if (ks->n == NB_JSCAN_WIDTH_MAX)
		return -1;
	if (k->len > 0)
		bit <<= (k->len + (unsigned char)k->p[0] * 3U +
			    (unsigned char)k->p[k->len - 1] * 5U) &
		    63;
	if (ks->bloom & bit) {
		for (i = 0; i < ks->n; i++)
			if (ks->k[i].len == k->len &&
			    memcmp(ks->k[i].p, k->p, k->len) == 0)
				return -1;
	}
	ks->bloom |= bit;
	ks->k[ks->n].p = k->p;
	ks->k[ks->n].len = k->len;
	ks->n++;
	return 0;
}

int
nb_jscan_open(struct nb_jscan *s, struct nb_jscan_iter *it,
    struct nb_jscan_keys *keys, unsigned depth)
{
	if (s->p >= s->end || depth > s->depth_max)
		return -1;
	it->keys = NULL;
	if (*s->p == '{') {
		it->close = '}';
		if ((s->opts & NB_JSCAN_UNIQUE_KEYS) && keys != NULL) {
			keys->bloom = 0;
			keys->n = 0;
			it->keys = keys;
		}
	} else if (*s->p == '[') {
		it->close = ']';
	} else {
		return -1;
	}
	it->start = s->p;
	it->nws = s->nws;
	it->depth = depth;
	it->width = 0;
	it->first = 1;
	s->p++;
	nb_jscan_ws(s);
	return 0;
}

int
nb_jscan_key(
    struct nb_jscan *s, struct nb_jscan_iter *it, struct nb_jscan_tok *key)
{
	if (!nb_jscan_at(s, '"') || scan_string(s, key, 1) == -1)
		return -1;
	if ((s->opts & NB_JSCAN_UNIQUE_KEYS) &&
	    (++it->width > NB_JSCAN_WIDTH_MAX ||
		(it->keys != NULL && keys_add(it->keys, key) == -1)))
		return -1;
	nb_jscan_ws(s);
	if (!nb_jscan_at(s, ':'))
		return -1;
	s->p++;
	nb_jscan_ws(s);
	return 0;
}

void
nb_jscan_span(const struct nb_jscan *s, const struct nb_jscan_iter *it,
    struct nb_jscan_tok *t)
{
	t->kind = it->close == '}' ? NB_JSCAN_OBJECT : NB_JSCAN_ARRAY;
	t->flags = s->nws == it->nws ? NB_JSCAN_COMPACT : 0;
	t->p = it->start;
	t->len = (size_t)(s->p - it->start);
}

/* The members of an open container, each value scanned whole. */
static int
scan_members(
    struct nb_jscan *s, struct nb_jscan_iter *it, struct nb_jscan_tok *t)
{
	struct nb_jscan_tok v;
	int r;

	while ((r = nb_jscan_next(s, it, &v)) == 1)
		if (nb_jscan_value(s, &v, it->depth + 1) == -1)
			return -1;
	if (r == 0)
		nb_jscan_span(s, it, t);
	return r;
}

static int
scan_container(struct nb_jscan *s, struct nb_jscan_tok *t, unsigned depth)
{
	struct nb_jscan_iter it;

	if (nb_jscan_open(s, &it, NULL, depth) == -1)
		return -1;
	return scan_members(s, &it, t);
}

/* Only unique-key objects pay for the keys on their frame. */
static int
scan_unique(struct nb_jscan *s, struct nb_jscan_tok *t, unsigned depth)
{
	struct nb_jscan_keys keys;
	struct nb_jscan_iter it;

	if (nb_jscan_open(s, &it, &keys, depth) == -1)
		return -1;
	return scan_members(s, &it, t);
}

int
nb_jscan_value(struct nb_jscan *s, struct nb_jscan_tok *t, unsigned depth)
{
	if (s->p >= s->end)
		return -1;
	switch (*s->p) {
	case '"':
		return scan_string(s, t, 0);
	case '{':
		if (s->opts & NB_JSCAN_UNIQUE_KEYS)
			return scan_unique(s, t, depth);
		return scan_container(s, t, depth);
	case '[':
		return scan_container(s, t, depth);
	case 't':
		return scan_word(s, t, "true", 4, NB_JSCAN_TRUE);
	case 'f':
		return scan_word(s, t, "false", 5, NB_JSCAN_FALSE);
	case 'n':
		return scan_word(s, t, "null", 4, NB_JSCAN_NULL);
	default:
		return scan_number(s, t);
	}
}

static inline int
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int
nb_jscan_compact(struct nb_buf *out, const char *json, size_t len)
{
	const unsigned char *p = (const unsigned char *)json, *run = p;
	const unsigned char *end = p + len;

	while (p < end) {
		if (*p == '"') {
			/* To the closing quote, over escapes. */
			for (p++; (p = plain(p, end)) < end; p++) {
				if (*p == '"')
					break;
				if (*p == '\\' && end - p > 1)
					p++;
			}
			if (p < end)
				p++;
		} else if (is_ws((char)*p)) {
			nb_buf_add(out, run, (size_t)(p - run));
			while (p < end && is_ws((char)*p))
				p++;
			run = p;
		} else {
			p++;
		}
	}
	nb_buf_add(out, run, (size_t)(p - run));
	return nb_buf_failed(out) ? -1 : 0;
}
