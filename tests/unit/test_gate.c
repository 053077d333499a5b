/* SPDX-License-Identifier: ISC */
/*
 * test_gate: what evhttp gets to see, byte for byte, for well-formed,
 * hostile and refused requests, fed whole, byte by byte and in odd pieces;
 * which requests are refused, with what, and whether the connection ends.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/gate.h"

#define MAX_REFUSALS 8
#define OUT_MAX	     (256 * 1024)

struct refused {
	uint32_t seq;
	int status;
	char code[32];
	int close;
	size_t body;
	int parsed;
};

struct run {
	char out[OUT_MAX]; /* what the server was handed */
	size_t outlen;
	struct refused r[MAX_REFUSALS];
	size_t nr;
	int closed;
	size_t budget; /* body bytes the reserve hook grants */
	size_t reserved;
	char seen_path[64]; /* the last path the policy saw */
	int64_t seen_length;
};

/* The policy: /deny... is an unknown source, /post-only wants POST. */
static int
head_cb(void *arg, const struct nb_gate_head *h, struct nb_gate_refusal *r)
{
	struct run *run = arg;

	snprintf(run->seen_path, sizeof(run->seen_path), "%.*s",
	    (int)h->pathlen, h->path);
	run->seen_length = h->content_length;
	if (h->pathlen >= 5 && memcmp(h->path, "/deny", 5) == 0) {
		r->status = 404;
		r->code = "unknown_source";
		r->message = "no such source";
		return -1;
	}
	if (h->pathlen == 10 && memcmp(h->path, "/post-only", 10) == 0 &&
	    h->method != NB_GATE_POST) {
		r->status = 405;
		r->code = "method_not_allowed";
		r->message = "POST only";
		r->allow = "POST";
		return -1;
	}
	return 0;
}

static int
reserve_cb(void *arg, uint32_t seq, size_t n)
{
	struct run *run = arg;

	(void)seq;
	if (run->reserved + n > run->budget)
		return -1;
	run->reserved += n;
	return 0;
}

static void
refused_cb(void *arg, uint32_t seq, const struct nb_gate_head *h,
    const struct nb_gate_refusal *r, int close, size_t body)
{
	struct run *run = arg;
	struct refused *x;

	assert_true(run->nr < MAX_REFUSALS);
	x = &run->r[run->nr++];
	x->seq = seq;
	x->status = r->status;
	snprintf(x->code, sizeof(x->code), "%s", r->code);
	x->close = close;
	x->body = body;
	x->parsed = h != NULL;
	assert_non_null(r->message);
}

static void
out_add(struct run *run, const char *p, size_t n)
{
	assert_true(run->outlen + n <= sizeof(run->out));
	memcpy(run->out + run->outlen, p, n);
	run->outlen += n;
}

/*
 * Feeds in to a fresh gate in pieces of step bytes (0: whole) and records
 * what comes out in run.
 */
static void
feed(struct run *run, const char *in, size_t len, size_t step, size_t max_head,
    size_t max_body)
{
	struct nb_gate_limits l = {max_head, max_body, "too large", 7};
	struct nb_gate_hooks hooks = {head_cb, reserve_cb, refused_cb, run};
	struct nb_gate *g;
	const char *o;
	size_t off = 0, piece, n, olen, budget = run->budget;
	enum nb_gate_act act;

	memset(run, 0, sizeof(*run));
	run->budget = budget;
	assert_non_null(g = nb_gate_new(&l, &hooks));
	while (off < len) {
		piece = step == 0 || len - off < step ? len - off : step;
		while (piece > 0) {
			act = nb_gate_feed(g, in + off, piece, &n);
			assert_true(n <= piece);
			if (act == NB_GATE_PASS) {
				assert_true(n > 0);
				out_add(run, in + off, n);
			}
			if ((o = nb_gate_output(g, &olen)) != NULL)
				out_add(run, o, olen);
			else
				assert_true(n > 0 || act == NB_GATE_CLOSE);
			if (act == NB_GATE_CLOSE)
				run->closed = 1;
			off += n;
			piece -= n;
		}
	}
	nb_gate_free(g);
}

struct gcase {
	const char *name;
	const char *in;
	const char *out;  /* what evhttp must see */
	int status;	  /* of the first refusal, 0: none */
	const char *code; /* of the first refusal */
	int close;	  /* of the first refusal */
	size_t nrefusals;
};

#define GET_H	   "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
#define STAND_IN   "GET / HTTP/1.1\r\n\r\n"
#define POST_H(cl) "POST /v1/w HTTP/1.1\r\nContent-Length: " cl "\r\n\r\n"
#define CHUNKED_H  "POST /v1/w HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"

static const struct gcase cases[] = {
    {"get", GET_H, GET_H, 0, NULL, 0, 0},
    {"get lf only", "GET / HTTP/1.0\nA: b\n\n", "GET / HTTP/1.0\nA: b\n\n", 0,
	NULL, 0, 0},
    {"pipelined", GET_H GET_H POST_H("3") "abc" GET_H,
	GET_H GET_H POST_H("3") "abc" GET_H, 0, NULL, 0, 0},
    {"post body", POST_H("5") "hello", POST_H("5") "hello", 0, NULL, 0, 0},
    {"chunked", CHUNKED_H "5\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n" GET_H,
	CHUNKED_H "5\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n" GET_H, 0, NULL,
	0, 0},
    {"chunked lf", CHUNKED_H "2\nhi\n0\n\n", CHUNKED_H "2\nhi\n0\n\n", 0, NULL,
	0, 0},
    {"leading empty lines", "\r\n\r\n" GET_H, GET_H, 0, NULL, 0, 0},
    {"request line garbage", "GARBAGE\r\n\r\n" GET_H, STAND_IN, 400,
	"bad_request", 1, 1},
    {"two spaces", "GET  / HTTP/1.1\r\n\r\n", STAND_IN, 400, "bad_request", 1,
	1},
    {"version 2", "GET / HTTP/2.0\r\n\r\n", STAND_IN, 400, "bad_request", 1, 1},
    {"space in target", "GET /a b HTTP/1.1\r\n\r\n", STAND_IN, 400,
	"bad_request", 1, 1},
    {"duplicate length",
	"POST /v1/w HTTP/1.1\r\nContent-Length: 1\r\n"
	"content-length: 1\r\n\r\nx",
	STAND_IN, 400, "bad_request", 1, 1},
    {"length not a number", POST_H("+5") "hello", STAND_IN, 400, "bad_request",
	1, 1},
    {"length and chunked",
	"POST /v1/w HTTP/1.1\r\nContent-Length: 1\r\n"
	"Transfer-Encoding: chunked\r\n\r\n",
	STAND_IN, 400, "bad_request", 1, 1},
    {"gzip encoding",
	"POST /v1/w HTTP/1.1\r\nTransfer-Encoding: gzip, "
	"chunked\r\n\r\n",
	STAND_IN, 400, "bad_request", 1, 1},
    {"tab before chunked",
	"POST /v1/w HTTP/1.1\r\nTransfer-Encoding:\t"
	"chunked\r\n\r\n",
	STAND_IN, 400, "bad_request", 1, 1},
    {"space before colon", "GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\n",
	STAND_IN, 400, "bad_request", 1, 1},
    {"folded line", "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", STAND_IN, 400,
	"bad_request", 1, 1},
    {"bare cr", "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", STAND_IN, 400,
	"bad_request", 1, 1},
    {"nul in value", "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n", STAND_IN, 400,
	"bad_request", 1, 1},
    {"head with body", "HEAD / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
	STAND_IN, 400, "bad_request", 1, 1},
    {"expect other",
	"POST /v1/w HTTP/1.1\r\nExpect: 200-ok\r\n"
	"Content-Length: 2\r\n\r\nhi",
	STAND_IN, 417, "expectation_failed", 1, 1},
    {"expect without body", "GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n",
	"GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 0, NULL, 0, 0},
    {"unknown method", "BREW /pot HTTP/1.1\r\n\r\n" GET_H, STAND_IN GET_H, 501,
	"not_implemented", 0, 1},
    {"connect", "CONNECT x:443 HTTP/1.1\r\n\r\n", STAND_IN, 501,
	"not_implemented", 1, 1},
    {"policy, small body",
	"POST /deny HTTP/1.1\r\nContent-Length: 4\r\n\r\n"
	"abcd" GET_H,
	STAND_IN GET_H, 404, "unknown_source", 0, 1},
    {"policy, head", "HEAD /post-only HTTP/1.1\r\n\r\n",
	"HEAD / HTTP/1.1\r\n\r\n", 405, "method_not_allowed", 0, 1},
    {"policy, large body",
	"POST /deny HTTP/1.1\r\nContent-Length: 100000"
	"\r\n\r\nabc" GET_H,
	STAND_IN, 404, "unknown_source", 1, 1},
    {"policy, client closes",
	"POST /deny HTTP/1.1\r\nConnection: close\r\n"
	"Content-Length: 1\r\n\r\nx",
	STAND_IN, 404, "unknown_source", 1, 1},
    {"policy, http/1.0", "POST /deny HTTP/1.0\r\nContent-Length: 1\r\n\r\nx",
	STAND_IN, 404, "unknown_source", 1, 1},
    {"policy, chunked",
	"POST /deny HTTP/1.1\r\nTransfer-Encoding: chunked"
	"\r\n\r\n1\r\nx\r\n0\r\n\r\n",
	STAND_IN, 404, "unknown_source", 1, 1},
    {"policy, expect",
	"POST /deny HTTP/1.1\r\nExpect: 100-continue\r\n"
	"Content-Length: 10\r\n\r\n",
	STAND_IN, 404, "unknown_source", 1, 1},
    {"length over limit", POST_H("2000") "x", STAND_IN, 413, "body_too_large",
	0, 1},
    {"length over discard", POST_H("70000") "x", STAND_IN, 413,
	"body_too_large", 1, 1},
    {"length over limit, small", POST_H("1001") GET_H, STAND_IN, 413,
	"body_too_large", 0, 1},
    {"chunked over limit", CHUNKED_H "3e9\r\n", CHUNKED_H "0\r\n\r\n", 413,
	"body_too_large", 1, 1},
    {"chunked over limit later", CHUNKED_H "2\r\nab\r\n3e7\r\n",
	CHUNKED_H "2\r\nab\r\n0\r\n\r\n", 413, "body_too_large", 1, 1},
    {"chunk extension", CHUNKED_H "2;x=y\r\nab\r\n0\r\n\r\n",
	CHUNKED_H "0\r\n\r\n", 400, "bad_request", 1, 1},
    {"chunk without line end", CHUNKED_H "2\r\nabc\r\n",
	CHUNKED_H "2\r\nab0\r\n\r\n", 400, "bad_request", 1, 1},
    {"trailer", CHUNKED_H "2\r\nab\r\n0\r\nX-T: 1\r\n\r\n",
	CHUNKED_H "2\r\nab\r\n0\r\n\r\n", 400, "bad_request", 1, 1},
    {"long chunk size", CHUNKED_H "00000000000000001\r\nx\r\n0\r\n\r\n",
	CHUNKED_H "0\r\n\r\n", 400, "bad_request", 1, 1},
    {"head over limit",
	"GET / HTTP/1.1\r\nX: "
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"\r\n\r\n",
	STAND_IN, 431, "header_too_large", 1, 1},
};

static void
test_cases(void **state)
{
	static const size_t steps[] = {0, 1, 2, 3, 7, 64};
	struct run *run;
	size_t i, j;

	(void)state;
	assert_non_null(run = calloc(1, sizeof(*run)));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct gcase *c = &cases[i];
		/* Lengths by hand: some inputs hold a NUL. */
		size_t len = strcmp(c->name, "nul in value") == 0
		    ? sizeof("GET / HTTP/1.1\r\nA: b\0c\r\n\r\n") - 1
		    : strlen(c->in);

		for (j = 0; j < sizeof(steps) / sizeof(steps[0]); j++) {
			run->budget = 1000;
			feed(run, c->in, len, steps[j], 300, 1000);
			if (run->outlen != strlen(c->out) ||
			    memcmp(run->out, c->out, run->outlen) != 0)
				fail_msg("%s (step %zu): handed on \"%.*s\"",
				    c->name, steps[j], (int)run->outlen,
				    run->out);
			if (run->nr != c->nrefusals)
				fail_msg("%s (step %zu): %zu refusals", c->name,
				    steps[j], run->nr);
			if (c->status == 0)
				continue;
			if (run->r[0].status != c->status ||
			    strcmp(run->r[0].code, c->code) != 0 ||
			    run->r[0].close != c->close)
				fail_msg(
				    "%s (step %zu): refused %d %s close=%d",
				    c->name, steps[j], run->r[0].status,
				    run->r[0].code, run->r[0].close);
		}
	}
	free(run);
}

/*
 * Bodies are reserved against the budget before they go on; past it a
 * request is answered 503 and, being small, the connection goes on.
 */
static void
test_budget(void **state)
{
	static char in[4096];
	struct run *run;
	size_t n = 0;
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		n += (size_t)snprintf(
		    in + n, sizeof(in) - n, "%s", POST_H("600"));
		memset(in + n, 'a' + i, 600);
		n += 600;
	}
	assert_non_null(run = calloc(1, sizeof(*run)));
	run->budget = 1500;
	feed(run, in, n, 100, 1024, 1000);
	/* The first two fit, the third does not. */
	assert_int_equal(run->nr, 1);
	assert_int_equal(run->r[0].seq, 2);
	assert_int_equal(run->r[0].status, 503);
	assert_string_equal(run->r[0].code, "unavailable");
	assert_false(run->r[0].close);
	assert_int_equal(run->reserved, 1200);
	assert_int_equal(run->outlen,
	    2 * (sizeof(POST_H("600")) - 1 + 600) + sizeof(STAND_IN) - 1);
	free(run);
}

/* Refused requests keep their place: the stand-in has the refused number. */
static void
test_numbering(void **state)
{
	static const char in[] = GET_H "POST /deny HTTP/1.1\r\nContent-Length: "
				       "2\r\n\r\nxx" GET_H CHUNKED_H "7d0\r\n";
	struct run *run;

	(void)state;
	assert_non_null(run = calloc(1, sizeof(*run)));
	run->budget = 100000;
	feed(run, in, sizeof(in) - 1, 5, 1024, 1000);
	assert_int_equal(run->nr, 2);
	assert_int_equal(run->r[0].seq, 1);
	assert_int_equal(run->r[0].status, 404);
	assert_int_equal(run->r[0].body, 2);
	assert_true(run->r[0].parsed);
	assert_int_equal(run->r[1].seq, 3);
	assert_int_equal(run->r[1].status, 413);
	assert_true(run->r[1].close);
	free(run);
}

/* A refusal that closes drops what follows, then asks to close. */
static void
test_discard_then_close(void **state)
{
	static char in[NB_GATE_DISCARD_MAX + 4096];
	struct run *run;
	size_t head;

	(void)state;
	assert_non_null(run = calloc(1, sizeof(*run)));
	head = (size_t)snprintf(in, sizeof(in), "%s", "NOT HTTP\r\n\r\n");
	memset(in + head, 'x', sizeof(in) - head);
	run->budget = 1000;
	feed(run, in, sizeof(in), 4096, 1024, 1000);
	assert_int_equal(run->nr, 1);
	assert_true(run->closed);
	assert_int_equal(run->outlen, sizeof(STAND_IN) - 1);
	/* Within the allowance: no close yet. */
	feed(run, in, head + 100, 4096, 1024, 1000);
	assert_false(run->closed);
	free(run);
}

/*
 * The policy sees the path evhttp will see: origin form cut at '?', the
 * absolute form through evhttp's parser; and Content-Length as a number.
 */
static void
test_policy_view(void **state)
{
	static const char a[] = "POST /v1/webhooks/acme?x=1 HTTP/1.1\r\n"
				"Content-Length: 0007\r\n\r\n1234567";
	static const char b[] =
	    "GET http://example.org/deny/x HTTP/1.1\r\n\r\n";
	struct run *run;

	(void)state;
	assert_non_null(run = calloc(1, sizeof(*run)));
	run->budget = 1000;
	feed(run, a, sizeof(a) - 1, 0, 1024, 1000);
	assert_string_equal(run->seen_path, "/v1/webhooks/acme");
	assert_int_equal(run->seen_length, 7);
	assert_int_equal(run->nr, 0);
	feed(run, b, sizeof(b) - 1, 0, 1024, 1000);
	assert_string_equal(run->seen_path, "/deny/x");
	assert_int_equal(run->nr, 1);
	/* Not in origin form: the connection ends after the answer. */
	assert_true(run->r[0].close);
	free(run);
}

/*
 * An endless head, byte by byte, is refused as soon as it passes the
 * limit: the gate never holds more than the limit.
 */
static void
test_head_limit_bytewise(void **state)
{
	static char in[90000];
	struct run *run;

	(void)state;
	assert_non_null(run = calloc(1, sizeof(*run)));
	memcpy(in, "GET / HTTP/1.1\r\nX: ", 19);
	memset(in + 19, 'a', sizeof(in) - 19);
	run->budget = 0;
	feed(run, in, sizeof(in), 1, 16384, 1000);
	assert_int_equal(run->nr, 1);
	assert_int_equal(run->r[0].status, 431);
	assert_false(run->r[0].parsed);
	assert_true(run->closed);
	free(run);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_budget),
	    cmocka_unit_test(test_numbering),
	    cmocka_unit_test(test_discard_then_close),
	    cmocka_unit_test(test_policy_view),
	    cmocka_unit_test(test_head_limit_bytewise),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
