/* SPDX-License-Identifier: ISC */
/*
 * test_jscan: the span tokenizer, token by token and against jansson.
 *
 * Tables of texts with the kind, span and flags each scan gives, or its
 * refusal, under each set of options (escapes, number bounds, unique keys
 * and width, depth, trusted text); the member iteration; the compaction;
 * the plain-byte scanner at every offset around its sixteen- and
 * eight-byte steps.  Then the property both direct readers rely on, over
 * the fuzz corpora and seeded mutations of them: whatever a scan accepts,
 * jansson accepts, and a text jansson accepts (without a NUL byte) a
 * trusted scan accepts too.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nudgebridge/buf.h"
#include "nudgebridge/jscan.h"
#include "testlib.h"

#define SEGMENT_OPTS                                                           \
	(NB_JSCAN_NO_ESCAPES | NB_JSCAN_INTEGERS | NB_JSCAN_UNIQUE_KEYS)

/* One value, then only white space: 0 with *t, or -1. */
static int
scan_whole(const char *text, size_t len, unsigned opts, struct nb_jscan_tok *t)
{
	struct nb_jscan s;

	nb_jscan_init(&s, text, len, opts);
	nb_jscan_ws(&s);
	if (nb_jscan_value(&s, t, 0) == -1)
		return -1;
	nb_jscan_ws(&s);
	return s.p == s.end ? 0 : -1;
}

#define X 0xff /* "declined" in the table below */

static const struct {
	const char *text;
	unsigned opts;
	unsigned char kind; /* X: declined */
	unsigned char flags;
	const char *span; /* NULL: the whole text */
} tokens[] = {
    {"\"abc\"", 0, NB_JSCAN_STRING, NB_JSCAN_COMPACT, "abc"},
    {"\"\"", 0, NB_JSCAN_STRING, NB_JSCAN_COMPACT, ""},
    {" \"a b\" ", 0, NB_JSCAN_STRING, NB_JSCAN_COMPACT, "a b"},
    {"\"a\\nb\"", 0, NB_JSCAN_STRING, NB_JSCAN_COMPACT | NB_JSCAN_ESCAPED,
	"a\\nb"},
    {"\"a\\nb\"", NB_JSCAN_NO_ESCAPES, X, 0, NULL},
    {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", 0, NB_JSCAN_STRING,
	NB_JSCAN_COMPACT | NB_JSCAN_ESCAPED, NULL},
    {"\"\\u00e9\\u0000\\uFFFF\"", 0, NB_JSCAN_STRING,
	NB_JSCAN_COMPACT | NB_JSCAN_ESCAPED, NULL},
    {"\"\\ud83d\\ude00\"", 0, NB_JSCAN_STRING,
	NB_JSCAN_COMPACT | NB_JSCAN_ESCAPED, NULL},
    {"\"\\ud800\"", 0, X, 0, NULL},
    {"\"\\udc00\"", 0, X, 0, NULL},
    {"\"\\ud800\\u0041\"", 0, X, 0, NULL},
    {"\"\\x\"", 0, X, 0, NULL},
    {"\"\\u00g0\"", 0, X, 0, NULL},
    {"\"\\u00e\"", 0, X, 0, NULL},
    {"\"a\tb\"", 0, X, 0, NULL},
    {"\"a\x01\"", 0, X, 0, NULL},
    {"\"\x7f\"", 0, NB_JSCAN_STRING, NB_JSCAN_COMPACT, "\x7f"},
    {"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", 0, NB_JSCAN_STRING,
	NB_JSCAN_COMPACT, NULL},
    {"\"\xc3\"", 0, X, 0, NULL},
    {"\"\xed\xa0\x80\"", 0, X, 0, NULL},
    {"\"\xff\"", 0, X, 0, NULL},
    {"\"abc", 0, X, 0, NULL},
    {"0", 0, NB_JSCAN_NUMBER, NB_JSCAN_COMPACT | NB_JSCAN_INTEGER, NULL},
    {"-12", 0, NB_JSCAN_NUMBER, NB_JSCAN_COMPACT | NB_JSCAN_INTEGER, NULL},
    {"-0", 0, NB_JSCAN_NUMBER, NB_JSCAN_COMPACT, NULL},
    {"-0", NB_JSCAN_INTEGERS, X, 0, NULL},
    {"1.5", 0, NB_JSCAN_NUMBER, NB_JSCAN_COMPACT, NULL},
    {"1.5", NB_JSCAN_INTEGERS, X, 0, NULL},
    {"-2.5E-3", 0, NB_JSCAN_NUMBER, NB_JSCAN_COMPACT, NULL},
    {"1e280", 0, NB_JSCAN_NUMBER, NB_JSCAN_COMPACT, NULL},
    {"1e281", 0, X, 0, NULL},
    {"1e-281", 0, X, 0, NULL},
    {"1e00000000000000000000280", 0, NB_JSCAN_NUMBER, NB_JSCAN_COMPACT, NULL},
    {"1e999", NB_JSCAN_TRUSTED, NB_JSCAN_NUMBER, NB_JSCAN_COMPACT, NULL},
    {"123456789012345678", 0, NB_JSCAN_NUMBER,
	NB_JSCAN_COMPACT | NB_JSCAN_INTEGER, NULL},
    {"1234567890123456789", 0, X, 0, NULL},
    {"1234567890123456789", NB_JSCAN_INTEGERS, NB_JSCAN_NUMBER,
	NB_JSCAN_COMPACT | NB_JSCAN_INTEGER, NULL},
    {"9223372036854775807", NB_JSCAN_INTEGERS, NB_JSCAN_NUMBER,
	NB_JSCAN_COMPACT | NB_JSCAN_INTEGER, NULL},
    {"9223372036854775808", NB_JSCAN_INTEGERS, X, 0, NULL},
    {"-9223372036854775808", NB_JSCAN_INTEGERS, NB_JSCAN_NUMBER,
	NB_JSCAN_COMPACT | NB_JSCAN_INTEGER, NULL},
    {"-9223372036854775809", NB_JSCAN_INTEGERS, X, 0, NULL},
    {"99999999999999999999", NB_JSCAN_TRUSTED, NB_JSCAN_NUMBER,
	NB_JSCAN_COMPACT, NULL},
    {"01", 0, X, 0, NULL},
    {"1.", 0, X, 0, NULL},
    {".5", 0, X, 0, NULL},
    {"1e", 0, X, 0, NULL},
    {"1e+", 0, X, 0, NULL},
    {"-", 0, X, 0, NULL},
    {"+1", 0, X, 0, NULL},
    {"true", 0, NB_JSCAN_TRUE, NB_JSCAN_COMPACT, NULL},
    {"false", 0, NB_JSCAN_FALSE, NB_JSCAN_COMPACT, NULL},
    {"null", 0, NB_JSCAN_NULL, NB_JSCAN_COMPACT, NULL},
    {"tru", 0, X, 0, NULL},
    {"nullx", 0, X, 0, NULL},
    {"{}", 0, NB_JSCAN_OBJECT, NB_JSCAN_COMPACT, NULL},
    {"[]", 0, NB_JSCAN_ARRAY, NB_JSCAN_COMPACT, NULL},
    {"{\"a\":[1,{\"b\":null}],\"c\":\"d\"}", SEGMENT_OPTS, NB_JSCAN_OBJECT,
	NB_JSCAN_COMPACT, NULL},
    {" { \"a\" : [ 1 ] } ", 0, NB_JSCAN_OBJECT, 0, "{ \"a\" : [ 1 ] }"},
    {"[1,]", 0, X, 0, NULL},
    {"[,1]", 0, X, 0, NULL},
    {"{\"a\":1,}", 0, X, 0, NULL},
    {"{\"a\"}", 0, X, 0, NULL},
    {"{\"a\" 1}", 0, X, 0, NULL},
    {"{1:2}", 0, X, 0, NULL},
    {"[1 2]", 0, X, 0, NULL},
    {"{\"a\\u0062\":1}", 0, X, 0, NULL},
    {"{\"a\\u0062\":1}", NB_JSCAN_TRUSTED, NB_JSCAN_OBJECT, NB_JSCAN_COMPACT,
	NULL},
    {"{\"a\":1,\"a\":2}", 0, NB_JSCAN_OBJECT, NB_JSCAN_COMPACT, NULL},
    {"{\"a\":1,\"a\":2}", SEGMENT_OPTS, X, 0, NULL},
    {"{\"a\":1,\"b\":{\"a\":2}}", SEGMENT_OPTS, NB_JSCAN_OBJECT,
	NB_JSCAN_COMPACT, NULL},
    {"[{\"a\":1,\"a\":2}]", SEGMENT_OPTS, X, 0, NULL},
    {"{\"ab\":1,\"ba\":2,\"a\":3,\"\":4}", SEGMENT_OPTS, NB_JSCAN_OBJECT,
	NB_JSCAN_COMPACT, NULL},
    {"{\"\":1,\"\":2}", SEGMENT_OPTS, X, 0, NULL},
    {"", 0, X, 0, NULL},
    {" ", 0, X, 0, NULL},
    {"{} x", 0, X, 0, NULL},
    {"\x00", 0, X, 0, NULL},
};

static void
test_tokens(void **state)
{
	struct nb_jscan_tok t;
	const char *span;
	size_t i, len;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
		len = strlen(tokens[i].text);
		if (i == sizeof(tokens) / sizeof(tokens[0]) - 1)
			len = 1; /* the NUL byte */
		memset(&t, 0, sizeof(t));
		rc = scan_whole(tokens[i].text, len, tokens[i].opts, &t);
		if (tokens[i].kind == X) {
			if (rc != -1)
				fail_msg("case %zu (%s): accepted", i,
				    tokens[i].text);
			continue;
		}
		if (rc == -1)
			fail_msg("case %zu (%s): declined", i, tokens[i].text);
		if (t.kind != tokens[i].kind || t.flags != tokens[i].flags)
			fail_msg("case %zu (%s): kind %d flags %d", i,
			    tokens[i].text, t.kind, t.flags);
		span = tokens[i].span != NULL ? tokens[i].span : tokens[i].text;
		if (t.kind == NB_JSCAN_STRING && tokens[i].span == NULL) {
			/* The whole text less its quotes. */
			assert_int_equal(t.len, len - 2);
			assert_memory_equal(t.p, tokens[i].text + 1, t.len);
			continue;
		}
		if (t.len != strlen(span) || memcmp(t.p, span, t.len) != 0)
			fail_msg("case %zu (%s): span \"%.*s\"", i,
			    tokens[i].text, (int)t.len, t.p);
	}
}

/* n nested arrays, or objects when obj is set, around a 1. */
static char *
nested(size_t n, int obj)
{
	char *s = malloc(6 * n + 2), *q = s;
	size_t i;

	assert_non_null(s);
	for (i = 0; i < n; i++) {
		if (obj) {
			memcpy(q, "{\"a\":", 5);
			q += 5;
		} else {
			*q++ = '[';
		}
	}
	*q++ = '1';
	for (i = 0; i < n; i++)
		*q++ = obj ? '}' : ']';
	*q = '\0';
	return s;
}

static void
check_depth(size_t n, int obj, unsigned opts, int want)
{
	struct nb_jscan_tok t;
	char *s = nested(n, obj);

	if (scan_whole(s, strlen(s), opts, &t) != want)
		fail_msg("%zu nested %s, options %u: want %d", n,
		    obj ? "objects" : "arrays", opts, want);
	free(s);
}

/* From depth 0, containers at depths 0..depth_max pass. */
static void
test_depth(void **state)
{
	(void)state;
	check_depth(NB_JSCAN_DEPTH_MAX + 1, 0, 0, 0);
	check_depth(NB_JSCAN_DEPTH_MAX + 2, 0, 0, -1);
	check_depth(NB_JSCAN_DEPTH_MAX + 1, 1, SEGMENT_OPTS, 0);
	check_depth(NB_JSCAN_DEPTH_MAX + 2, 1, SEGMENT_OPTS, -1);
	check_depth(NB_JSCAN_TRUSTED_DEPTH_MAX + 1, 0, NB_JSCAN_TRUSTED, 0);
	check_depth(NB_JSCAN_TRUSTED_DEPTH_MAX + 2, 0, NB_JSCAN_TRUSTED, -1);
}

/* An object of n members "k0":0,...; arrays of n elements. */
static void
check_width(size_t n, unsigned opts, int want)
{
	struct nb_jscan_tok t;
	size_t i, cap = 32 * n + 8, off = 1;
	char *s = malloc(cap);
	int w;

	assert_non_null(s);
	s[0] = '{';
	for (i = 0; i < n; i++) {
		w = snprintf(s + off, cap - off, "%s\"k%zu\":[%zu]",
		    i > 0 ? "," : "", i, i);
		assert_true(w > 0 && (size_t)w < cap - off);
		off += (size_t)w;
	}
	memcpy(s + off, "}", 2);
	if (scan_whole(s, strlen(s), opts, &t) != want)
		fail_msg("%zu members, options %u: want %d", n, opts, want);
	free(s);
}

static void
test_width(void **state)
{
	(void)state;
	check_width(NB_JSCAN_WIDTH_MAX, SEGMENT_OPTS, 0);
	check_width(NB_JSCAN_WIDTH_MAX + 1, SEGMENT_OPTS, -1);
	check_width(10 * NB_JSCAN_WIDTH_MAX, 0, 0);
}

/* The member iteration, and a caller that checks keys itself. */
static void
test_members(void **state)
{
	static const char text[] = "{ \"a\" : 1 , \"b\":[2,\"x\"],\"a\":{}}";
	static const char *const keys[] = {"a", "b", "a"};
	struct nb_jscan_iter it, in;
	struct nb_jscan_keys ks;
	struct nb_jscan_tok k, v, obj;
	struct nb_jscan s;
	size_t n = 0, m = 0;
	int r;

	(void)state;
	nb_jscan_init(&s, text, sizeof(text) - 1, SEGMENT_OPTS);
	assert_int_equal(nb_jscan_open(&s, &it, NULL, 0), 0);
	while ((r = nb_jscan_next(&s, &it, &k)) == 1) {
		assert_true(n < 3);
		assert_int_equal(k.len, 1);
		assert_memory_equal(k.p, keys[n], 1);
		if (n++ != 1) {
			assert_int_equal(nb_jscan_value(&s, &v, 1), 0);
			continue;
		}
		assert_int_equal(nb_jscan_open(&s, &in, NULL, 1), 0);
		while ((r = nb_jscan_next(&s, &in, NULL)) == 1) {
			assert_int_equal(nb_jscan_value(&s, &v, 2), 0);
			m++;
		}
		assert_int_equal(r, 0);
		nb_jscan_span(&s, &in, &v);
		assert_int_equal(v.kind, NB_JSCAN_ARRAY);
		assert_true(v.flags & NB_JSCAN_COMPACT);
		assert_int_equal(v.len, strlen("[2,\"x\"]"));
	}
	assert_int_equal(r, 0);
	assert_int_equal(n, 3);
	assert_int_equal(m, 2);
	nb_jscan_span(&s, &it, &obj);
	assert_int_equal(obj.kind, NB_JSCAN_OBJECT);
	assert_int_equal(obj.flags & NB_JSCAN_COMPACT, 0);
	assert_int_equal(obj.len, sizeof(text) - 1);
	assert_true(s.p == s.end);

	/* The same object with its keys kept: the second "a" is refused. */
	nb_jscan_init(&s, text, sizeof(text) - 1, SEGMENT_OPTS);
	assert_int_equal(nb_jscan_open(&s, &it, &ks, 0), 0);
	for (n = 0; (r = nb_jscan_next(&s, &it, &k)) == 1; n++)
		assert_int_equal(nb_jscan_value(&s, &v, 1), 0);
	assert_int_equal(r, -1);
	assert_int_equal(n, 2);

	/* Not a container; too deep. */
	nb_jscan_init(&s, "1", 1, 0);
	assert_int_equal(nb_jscan_open(&s, &it, NULL, 0), -1);
	nb_jscan_init(&s, "[]", 2, 0);
	assert_int_equal(
	    nb_jscan_open(&s, &it, NULL, NB_JSCAN_DEPTH_MAX + 1), -1);
}

static void
check_compact(const char *in, const char *want, size_t max, int rc)
{
	struct nb_buf b;

	nb_buf_init(&b, max);
	if (nb_jscan_compact(&b, in, strlen(in)) != rc)
		fail_msg("compact %s: want %d", in, rc);
	if (rc == 0)
		assert_string_equal(nb_buf_str(&b), want);
	nb_buf_free(&b);
}

static void
test_compact(void **state)
{
	(void)state;
	check_compact(
	    " { \"a\" :\t[ 1 ,\r\n\"b c\" ] } ", "{\"a\":[1,\"b c\"]}", 64, 0);
	check_compact("[\"a \\\" b\" , \"\\\\\" ,\"\\\\ \"]",
	    "[\"a \\\" b\",\"\\\\\",\"\\\\ \"]", 64, 0);
	check_compact("{\"k\":\"0123456789abcdef0123456789 \"} ",
	    "{\"k\":\"0123456789abcdef0123456789 \"}", 64, 0);
	check_compact("[]", "[]", 64, 0);
	check_compact("", "", 64, 0);
	check_compact("[ 1 , 2 ]", "", 4, -1);
}

/* The first byte a string does not hold as it is, at every offset. */
static void
test_plain(void **state)
{
	static const unsigned char stops[] = {
	    '"', '\\', 0x00, 0x1f, 0x80, 0xc3, 0xff};
	unsigned char buf[80];
	const unsigned char *r;
	size_t at, i, len;

	(void)state;
	for (len = 0; len <= 48; len++) {
		memset(buf, 'a', sizeof(buf));
		buf[len] = 0x7f; /* plain, and past the end anyway */
		r = nb_jscan_plain(buf, buf + len);
		assert_ptr_equal(r, buf + len);
		for (at = 0; at < len; at++) {
			for (i = 0; i < sizeof(stops); i++) {
				buf[at] = stops[i];
				r = nb_jscan_plain(buf, buf + len);
				if (r != buf + at)
					fail_msg("stop 0x%02x at %zu of %zu: "
						 "%td",
					    stops[i], at, len, r - buf);
				buf[at] = ' ';
				assert_ptr_equal(
				    nb_jscan_plain(buf, buf + len), buf + len);
				buf[at] = 'a';
			}
		}
	}
}

/* Against jansson: see the top of the file. */
static void
agree(const char *text, size_t len, const char *what)
{
	static const unsigned opts[] = {0, SEGMENT_OPTS, NB_JSCAN_INTEGERS,
	    NB_JSCAN_NO_ESCAPES | NB_JSCAN_UNIQUE_KEYS};
	struct nb_jscan_tok t;
	json_t *j;
	size_t i;

	j = json_loadb(text, len, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL);
	for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (scan_whole(text, len, opts[i], &t) == 0 && j == NULL)
			fail_msg("%s: options %u accept what jansson refuses",
			    what, opts[i]);
	if (j != NULL && memchr(text, '\0', len) == NULL &&
	    scan_whole(text, len, NB_JSCAN_TRUSTED, &t) == -1)
		fail_msg(
		    "%s: a trusted scan declines what jansson accepts", what);
	json_decref(j);
}

static const char *const splices[] = {"{", "}", "[", "]", ":", ",", "\"", "\\",
    " ", "\n", "0", "9", "-", ".", "e", "E", "+", "u", "\\u0000", "\\ud83d",
    "\\ude00", "\\u00e9", "\\n", "null", "true", "1e999",
    "12345678901234567890", "9223372036854775808", "\xc3\xa9", "\xed\xa0\x80",
    "\xf0\x9f\x98\x80", "\xff", "\x7f", "\x01", "\"a\":1,"};

static size_t
mutate(uint64_t *rng, const char *in, size_t len, char *out, size_t cap)
{
	size_t n = len, e, edits = 1 + testlib_xorshift(rng) % 3, at, sl;
	const char *sp;

	memcpy(out, in, len);
	for (e = 0; e < edits; e++) {
		at = testlib_xorshift(rng) % (n + 1);
		switch (testlib_xorshift(rng) % 4) {
		case 0:
			if (at < n)
				out[at] = (char)(testlib_xorshift(rng) & 0xff);
			break;
		case 1:
			sp = splices[testlib_xorshift(rng) %
			    (sizeof(splices) / sizeof(splices[0]))];
			sl = strlen(sp);
			if (n + sl > cap)
				break;
			memmove(out + at + sl, out + at, n - at);
			memcpy(out + at, sp, sl);
			n += sl;
			break;
		case 2:
			if (at < n) {
				memmove(out + at, out + at + 1, n - at - 1);
				n--;
			}
			break;
		default:
			n = at;
		}
	}
	return n;
}

#define SEED_MAX  4096
#define MUTATIONS 300

static size_t
agree_corpus(const char *name, uint64_t *rng)
{
	char path[1024], *buf, *mut, what[1100];
	struct dirent *de;
	size_t len, n = 0, k, mlen;
	DIR *d;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", NB_TEST_FUZZ_CORPUS, name);
	assert_non_null(d = opendir(path));
	assert_non_null(buf = malloc(1 << 20));
	assert_non_null(mut = malloc(2 * SEED_MAX + 1024));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", NB_TEST_FUZZ_CORPUS,
		    name, de->d_name);
		assert_non_null(f = fopen(path, "rb"));
		len = fread(buf, 1, 1 << 20, f);
		fclose(f);
		agree(buf, len, path);
		n++;
		if (len > SEED_MAX)
			continue;
		for (k = 0; k < MUTATIONS; k++) {
			mlen = mutate(rng, buf, len, mut, 2 * SEED_MAX + 1024);
			snprintf(
			    what, sizeof(what), "%s mutation %zu", path, k);
			agree(mut, mlen, what);
			n++;
		}
	}
	closedir(d);
	free(mut);
	free(buf);
	return n;
}

static void
test_agrees_with_jansson(void **state)
{
	uint64_t rng = 0x2545f4914f6cdd1dULL;
	size_t i, n = 0;

	(void)state;
	for (i = 0; i < sizeof(tokens) / sizeof(tokens[0]) - 1; i++)
		agree(tokens[i].text, strlen(tokens[i].text), tokens[i].text);
	n += agree_corpus("nudgespot", &rng);
	n += agree_corpus("segment", &rng);
	print_message("%zu texts agree with jansson\n", n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tokens),
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_width),
	    cmocka_unit_test(test_members),
	    cmocka_unit_test(test_compact),
	    cmocka_unit_test(test_plain),
	    cmocka_unit_test(test_agrees_with_jansson),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
