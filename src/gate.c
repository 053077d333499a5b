/* SPDX-License-Identifier: ISC */
/*
 * gate: request framing in front of evhttp, byte by byte.
 *
 * A head is copied into a buffer bounded by max_head_bytes as it arrives
 * (each byte is looked at once, so a trickled or endless head costs O(n));
 * once complete it is parsed strictly: anything evhttp would refuse with an
 * HTML page, or read differently from us (a repeated or conflicting
 * Content-Length, a Transfer-Encoding other than chunked, folded lines,
 * control bytes, a body on HEAD), is refused here.  A body is then handed
 * on by its framing only: Content-Length bytes, or chunk by chunk with each
 * chunk-size line checked and reserved against the in-flight budget before
 * it goes on, so evhttp is never left with half a line when the gate
 * refuses.  A refused request is replaced by a stand-in ("GET / HTTP/1.1",
 * HEAD for a HEAD) or cut short with the last chunk; its own body is
 * dropped: to its end when it is small and the connection may go on, else
 * up to NB_GATE_DISCARD_MAX bytes before the connection is closed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>

#include "nudgebridge/buf.h"
#include "nudgebridge/gate.h"

#define HEAD_KEEP_MAX 4096 /* head buffer kept between requests */

enum state {
	ST_HEAD = 0,   /* collecting a head */
	ST_BODY,       /* a Content-Length body: remaining bytes */
	ST_CHUNK_SIZE, /* collecting a chunk-size line */
	ST_CHUNK_DATA, /* remaining bytes of a chunk */
	ST_CHUNK_END,  /* the line end after a chunk's data */
	ST_TRAILER,    /* the empty line after the last chunk */
	ST_SKIP,       /* dropping a refused body, then the next head */
	ST_DISCARD,    /* dropping everything: the connection ends */
};

struct nb_gate {
	struct nb_gate_limits lim;
	struct nb_gate_hooks hooks;
	enum state st;
	struct nb_buf head; /* the current head, kept while its body runs */
	int eol;	    /* scan: 0 in a line, 1 after \n, 2 after \n\r */
	int reset;	    /* empty head before the next byte */
	size_t skipped;	    /* empty lines before a request line */
	char *pathcopy;	    /* path of a target not in origin form */
	/* The current request; its pointers are into head (or, for a head
	 * read in one piece and not chunked, into that piece during the
	 * nb_gate_feed() that read it: nothing needs them later). */
	struct nb_gate_head cur;
	char line[NB_GATE_CHUNK_LINE_MAX];
	size_t linelen;
	const char *out;
	size_t outlen;
	uint64_t remaining; /* ST_BODY, ST_CHUNK_DATA, ST_SKIP */
	uint64_t body;	    /* body bytes of the current request so far */
	uint32_t seq;	    /* number of the next request handed on */
	uint32_t curseq;    /* number of the current request */
	size_t dropped;	    /* since the last refusal that closes */
};

static const char *const methods[] = {
    [NB_GATE_GET] = "GET",
    [NB_GATE_HEAD] = "HEAD",
    [NB_GATE_POST] = "POST",
    [NB_GATE_PUT] = "PUT",
    [NB_GATE_DELETE] = "DELETE",
    [NB_GATE_OPTIONS] = "OPTIONS",
    [NB_GATE_PATCH] = "PATCH",
    [NB_GATE_TRACE] = "TRACE",
    [NB_GATE_CONNECT] = "CONNECT",
    [NB_GATE_OTHER] = "OTHER",
};

static const char stand_in_get[] = "GET / HTTP/1.1\r\n\r\n";
static const char stand_in_head[] = "HEAD / HTTP/1.1\r\n\r\n";
static const char last_chunk[] = "0\r\n\r\n";

struct nb_gate *
nb_gate_new(const struct nb_gate_limits *l, const struct nb_gate_hooks *hooks)
{
	struct nb_gate *g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->lim = *l;
	g->hooks = *hooks;
	nb_buf_init(&g->head, l->max_head_bytes);
	return g;
}

void
nb_gate_free(struct nb_gate *g)
{
	if (g == NULL)
		return;
	nb_buf_free(&g->head);
	free(g->pathcopy);
	free(g);
}

void
nb_gate_set_limits(struct nb_gate *g, const struct nb_gate_limits *l)
{
	g->lim = *l;
	if (g->st == ST_HEAD && g->head.len == 0)
		g->head.max = l->max_head_bytes;
}

const char *
nb_gate_output(struct nb_gate *g, size_t *len)
{
	*len = g->outlen;
	return g->outlen > 0 ? g->out : NULL;
}

uint32_t
nb_gate_handed(const struct nb_gate *g)
{
	return g->seq;
}

static void
emit(struct nb_gate *g, const char *p, size_t len)
{
	g->out = p;
	g->outlen = len;
}

/*
 * Refuses the request whose head is h (NULL: unparsed) before anything of
 * it went on: a stand-in takes its place.  Small bodies of a connection
 * that may go on are dropped to their end; otherwise the connection ends.
 */
static void
refuse_head(struct nb_gate *g, const struct nb_gate_head *h,
    const struct nb_gate_refusal *r, int close)
{
	uint64_t len = 0;

	if (h != NULL && h->content_length > 0)
		len = (uint64_t)h->content_length;
	if (h == NULL || h->close || h->chunked || h->expect_continue ||
	    len > NB_GATE_DISCARD_MAX)
		close = 1;
	if (h != NULL && h->method == NB_GATE_HEAD)
		emit(g, stand_in_head, sizeof(stand_in_head) - 1);
	else
		emit(g, stand_in_get, sizeof(stand_in_get) - 1);
	g->curseq = g->seq++;
	g->hooks.refused(g->hooks.arg, g->curseq, h, r, close, (size_t)len);
	g->reset = 1;
	if (close) {
		g->st = ST_DISCARD;
		g->dropped = 0;
	} else {
		g->st = len > 0 ? ST_SKIP : ST_HEAD;
		g->remaining = len;
	}
}

/* Refuses the chunked request in progress: evhttp gets its last chunk. */
static void
refuse_body(struct nb_gate *g, const struct nb_gate_refusal *r)
{
	if (g->st == ST_TRAILER)
		emit(g, last_chunk + 3, 2); /* "0\r\n" already went on */
	else
		emit(g, last_chunk, sizeof(last_chunk) - 1);
	g->hooks.refused(
	    g->hooks.arg, g->curseq, &g->cur, r, 1, (size_t)g->body);
	g->st = ST_DISCARD;
	g->dropped = 0;
}

void
nb_gate_refusal_init(struct nb_gate_refusal *r, int status, const char *code,
    const char *message)
{
	memset(r, 0, sizeof(*r));
	r->status = status;
	r->code = code;
	r->message = message;
}

static void
bad_request(struct nb_gate *g, const struct nb_gate_head *h, const char *why)
{
	struct nb_gate_refusal r;

	nb_gate_refusal_init(&r, 400, "bad_request", why);
	refuse_head(g, h, &r, 1);
}

static void
out_of_memory(struct nb_gate *g, const struct nb_gate_head *h)
{
	struct nb_gate_refusal r;

	nb_gate_refusal_init(
	    &r, 503, "unavailable", "out of memory; retry later");
	r.retry_after_s = g->lim.retry_after_s;
	refuse_head(g, h, &r, 1);
}

/* RFC 9110 tchar: ALPHA, DIGIT and "!#$%&'*+-.^_`|~". */
static const unsigned char tchars[256] = {
    ['!'] = 1,
    ['#'] = 1,
    ['$'] = 1,
    ['%'] = 1,
    ['&'] = 1,
    ['\''] = 1,
    ['*'] = 1,
    ['+'] = 1,
    ['-'] = 1,
    ['.'] = 1,
    ['^'] = 1,
    ['_'] = 1,
    ['`'] = 1,
    ['|'] = 1,
    ['~'] = 1,
    ['0'] = 1,
    ['1'] = 1,
    ['2'] = 1,
    ['3'] = 1,
    ['4'] = 1,
    ['5'] = 1,
    ['6'] = 1,
    ['7'] = 1,
    ['8'] = 1,
    ['9'] = 1,
    ['A'] = 1,
    ['B'] = 1,
    ['C'] = 1,
    ['D'] = 1,
    ['E'] = 1,
    ['F'] = 1,
    ['G'] = 1,
    ['H'] = 1,
    ['I'] = 1,
    ['J'] = 1,
    ['K'] = 1,
    ['L'] = 1,
    ['M'] = 1,
    ['N'] = 1,
    ['O'] = 1,
    ['P'] = 1,
    ['Q'] = 1,
    ['R'] = 1,
    ['S'] = 1,
    ['T'] = 1,
    ['U'] = 1,
    ['V'] = 1,
    ['W'] = 1,
    ['X'] = 1,
    ['Y'] = 1,
    ['Z'] = 1,
    ['a'] = 1,
    ['b'] = 1,
    ['c'] = 1,
    ['d'] = 1,
    ['e'] = 1,
    ['f'] = 1,
    ['g'] = 1,
    ['h'] = 1,
    ['i'] = 1,
    ['j'] = 1,
    ['k'] = 1,
    ['l'] = 1,
    ['m'] = 1,
    ['n'] = 1,
    ['o'] = 1,
    ['p'] = 1,
    ['q'] = 1,
    ['r'] = 1,
    ['s'] = 1,
    ['t'] = 1,
    ['u'] = 1,
    ['v'] = 1,
    ['w'] = 1,
    ['x'] = 1,
    ['y'] = 1,
    ['z'] = 1,
};

static int
tchar(unsigned char c)
{
	return tchars[c];
}

/* A byte a field value may hold: HTAB, SP, VCHAR, obs-text. */
static int
vchar(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/*
 * 1 when p[0..n) holds no control byte but HTAB (no NUL, no bare CR, no
 * DEL): eight bytes at a time, looking closer only at words that may hold
 * one (bytes below 0x20 or equal to 0x7F; the test may flag a few more).
 */
static int
ctl_free(const char *p, size_t n)
{
	const uint64_t ones = 0x0101010101010101ULL, high = ones << 7;
	uint64_t x, d;
	size_t i = 0, k;

	for (; i + 8 <= n; i += 8) {
		memcpy(&x, p + i, 8);
		d = x ^ (0x7f * ones);
		if ((((x - 0x20 * ones) & ~x) | ((d - ones) & ~d)) & high)
			for (k = i; k < i + 8; k++)
				if (!vchar((unsigned char)p[k]))
					return 0;
	}
	for (; i < n; i++)
		if (!vchar((unsigned char)p[i]))
			return 0;
	return 1;
}

static int
span_is(const char *p, size_t n, const char *s)
{
	return n == strlen(s) && strncasecmp(p, s, n) == 0;
}

/* span_is() for a literal: the length is known at compile time. */
#define SPAN_IS(p, n, lit)                                                     \
	((n) == sizeof(lit) - 1 && strncasecmp((p), (lit), (n)) == 0)

/* 1 when the comma-separated list p[0..n) holds the token tok. */
static int
has_token(const char *p, size_t n, const char *tok)
{
	size_t i = 0, s, e;

	while (i < n) {
		while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
			i++;
		s = i;
		while (i < n && p[i] != ',')
			i++;
		e = i;
		while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t'))
			e--;
		if (e > s && span_is(p + s, e - s, tok))
			return 1;
	}
	return 0;
}

static enum nb_gate_method
method_of(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < NB_GATE_OTHER; i++)
		if (n == strlen(methods[i]) && memcmp(p, methods[i], n) == 0)
			return (enum nb_gate_method)i;
	return NB_GATE_OTHER;
}

/*
 * The path evhttp will see for a target: origin form ("/..." but not
 * "//...") is cut at '?' or '#'; any other form goes through evhttp's own
 * parser, as evhttp does.  -1 when evhttp would refuse it.
 */
static int
target_path(struct nb_gate *g, struct nb_gate_head *h, const char *t, size_t n)
{
	struct evhttp_uri *uri;
	const char *path;
	char *copy;
	size_t i;

	if (t[0] == '/' && (n == 1 || t[1] != '/')) {
		for (i = 0; i < n && t[i] != '?' && t[i] != '#'; i++)
			;
		h->path = t;
		h->pathlen = i;
		return 0;
	}
	if ((copy = malloc(n + 1)) == NULL)
		return -1;
	memcpy(copy, t, n);
	copy[n] = '\0';
	uri = evhttp_uri_parse_with_flags(copy, EVHTTP_URI_NONCONFORMANT);
	free(copy);
	if (uri == NULL)
		return -1;
	path = evhttp_uri_get_path(uri);
	free(g->pathcopy);
	g->pathcopy = strdup(path != NULL ? path : "");
	evhttp_uri_free(uri);
	if (g->pathcopy == NULL)
		return -1;
	h->path = g->pathcopy;
	h->pathlen = strlen(g->pathcopy);
	h->close = 1; /* evhttp may treat it as a proxy request */
	return 0;
}

/* "METHOD SP target SP HTTP/1.x": 0, or -1 with *why. */
static int
parse_request_line(struct nb_gate *g, struct nb_gate_head *h, const char *p,
    size_t n, const char **why)
{
	size_t i = 0, t;

	*why = "the request line cannot be parsed";
	while (i < n && tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ' ')
		return -1;
	h->method = method_of(p, i);
	t = ++i;
	while (i < n && (unsigned char)p[i] > 0x20 && p[i] != 0x7f)
		i++;
	if (i == t || i >= n || p[i] != ' ')
		return -1;
	if (n - i - 1 != 8 || memcmp(p + i + 1, "HTTP/1.", 7) != 0 ||
	    (p[n - 1] != '0' && p[n - 1] != '1'))
		return -1;
	h->minor = p[n - 1] - '0';
	h->close = h->minor == 0;
	if (target_path(g, h, p + t, i - t) == -1) {
		*why = "the request target cannot be parsed";
		return -1;
	}
	return 0;
}

/* A Content-Length value: digits only; huge values saturate. */
static int
parse_length(const char *p, size_t n, int64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		if (v < (uint64_t)INT64_MAX / 10)
			v = v * 10 + (uint64_t)(p[i] - '0');
		else
			v = INT64_MAX;
	}
	*out = v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
	return 0;
}

struct fields {
	int ncl, nte, expect_other;
};

/* One header line (without its line end).  0, or -1 with *why. */
static int
parse_field(struct nb_gate_head *h, struct fields *f, const char *p, size_t n,
    const char **why)
{
	const char *q;
	size_t k, vs, ve;

	if (p[0] == ' ' || p[0] == '\t') {
		*why = "folded header lines are not accepted";
		return -1;
	}
	/*
	 * evhttp takes the name up to the first colon as it is: white space
	 * there would make it a different header for evhttp than for us.
	 */
	if ((q = memchr(p, ':', n)) == NULL || (k = (size_t)(q - p)) == 0 ||
	    memchr(p, ' ', k) != NULL || memchr(p, '\t', k) != NULL) {
		*why = "a header line cannot be parsed";
		return -1;
	}
	if (!ctl_free(p, n)) {
		*why = "a header line holds a control character";
		return -1;
	}
	/* Trimmed as evhttp trims: leading spaces, trailing white space. */
	for (vs = k + 1; vs < n && p[vs] == ' '; vs++)
		;
	for (ve = n; ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'); ve--)
		;
	if (SPAN_IS(p, k, "Content-Length")) {
		if (++f->ncl > 1) {
			*why = "more than one Content-Length";
			return -1;
		}
		if (parse_length(p + vs, ve - vs, &h->content_length) == -1) {
			*why = "Content-Length is not a number";
			return -1;
		}
	} else if (SPAN_IS(p, k, "Transfer-Encoding")) {
		if (++f->nte > 1 || !SPAN_IS(p + vs, ve - vs, "chunked")) {
			*why = "only one Transfer-Encoding: chunked is "
			       "accepted";
			return -1;
		}
		h->chunked = 1;
	} else if (SPAN_IS(p, k, "Content-Type")) {
		if (h->content_type == NULL) {
			h->content_type = p + vs;
			h->content_type_len = ve - vs;
		}
	} else if (SPAN_IS(p, k, "Expect")) {
		if (!h->expect_continue && !f->expect_other) {
			if (SPAN_IS(p + vs, ve - vs, "100-continue"))
				h->expect_continue = 1;
			else
				f->expect_other = 1;
		}
	} else if (SPAN_IS(p, k, "Connection")) {
		if (has_token(p + vs, ve - vs, "close"))
			h->close = 1;
	}
	return 0;
}

/*
 * Parses the collected head into h.  0, or -1 with *why and *status (400
 * or 417).
 */
static int
parse_head(struct nb_gate *g, const char *p, size_t len, struct nb_gate_head *h,
    const char **why, int *status)
{
	const char *end = p + len, *nl, *le;
	struct fields f;
	int first = 1, may_body;

	memset(h, 0, sizeof(*h));
	memset(&f, 0, sizeof(f));
	h->content_length = -1;
	h->head_bytes = len + g->skipped;
	*status = 400;
	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		le = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
		/* A bare CR fails the checks of the line it is in. */
		if (first) {
			if (parse_request_line(
				g, h, p, (size_t)(le - p), why) == -1)
				return -1;
			first = 0;
		} else if (le == p) {
			break;
		} else if (parse_field(h, &f, p, (size_t)(le - p), why) == -1)
			return -1;
	}
	if (h->content_length >= 0 && h->chunked) {
		*why = "Content-Length and Transfer-Encoding together";
		return -1;
	}
	may_body = h->method != NB_GATE_HEAD && h->method != NB_GATE_TRACE;
	if (!may_body && (h->chunked || h->content_length > 0)) {
		*why = "a HEAD or TRACE request cannot have a body";
		return -1;
	}
	if (!h->chunked && h->content_length <= 0)
		h->expect_continue = f.expect_other = 0;
	if (h->minor == 0)
		h->expect_continue = f.expect_other = 0;
	if (f.expect_other) {
		*status = 417;
		*why = "only Expect: 100-continue is supported";
		return -1;
	}
	return 0;
}

/*
 * Passes the current head on and sets up its body.  A head read in one
 * piece (inplace) goes on where it is; one collected in g->head goes on
 * from there.
 */
static enum nb_gate_act
accept_head(struct nb_gate *g, int inplace)
{
	g->curseq = g->seq++;
	g->reset = 1;
	g->body = 0;
	if (g->cur.chunked) {
		g->st = ST_CHUNK_SIZE;
		g->linelen = 0;
	} else if (g->cur.content_length > 0) {
		g->st = ST_BODY;
		g->remaining = (uint64_t)g->cur.content_length;
	} else
		g->st = ST_HEAD;
	if (inplace)
		return NB_GATE_PASS;
	emit(g, g->head.ptr, g->head.len);
	return NB_GATE_CONSUMED;
}

/* Moves a pointer of h from the head at from to its copy at to. */
static const char *
rebase(const char *ptr, const char *from, size_t len, const char *to)
{
	uintptr_t a = (uintptr_t)ptr, f = (uintptr_t)from;

	return ptr != NULL && a >= f && a < f + len ? to + (a - f) : ptr;
}

/*
 * A head is complete at p (len bytes; inplace: in the caller's piece, else
 * in g->head): parse it, ask the policy, pass or refuse it.
 */
static enum nb_gate_act
decide(struct nb_gate *g, const char *p, size_t len, int inplace)
{
	struct nb_gate_head *h = &g->cur;
	struct nb_gate_refusal r;
	const char *why;
	int status;

	if (parse_head(g, p, len, h, &why, &status) == -1) {
		if (status == 417) {
			nb_gate_refusal_init(
			    &r, 417, "expectation_failed", why);
			refuse_head(g, h, &r, 1);
		} else
			bad_request(g, NULL, why);
		return NB_GATE_CONSUMED;
	}
	/* A chunked body may be refused later, with h: keep the head. */
	if (inplace && h->chunked) {
		if (nb_buf_add(&g->head, p, len) == -1) {
			out_of_memory(g, h);
			return NB_GATE_CONSUMED;
		}
		h->path = rebase(h->path, p, len, g->head.ptr);
		h->content_type = rebase(h->content_type, p, len, g->head.ptr);
		inplace = 0;
	}
	memset(&r, 0, sizeof(r));
	if (h->method != NB_GATE_CONNECT &&
	    g->hooks.head(g->hooks.arg, h, &r) == -1) {
		refuse_head(g, h, &r, 0);
		return NB_GATE_CONSUMED;
	}
	if (h->method == NB_GATE_OTHER || h->method == NB_GATE_CONNECT) {
		nb_gate_refusal_init(
		    &r, 501, "not_implemented", "the method is not supported");
		refuse_head(g, h, &r, 0);
		return NB_GATE_CONSUMED;
	}
	if (h->content_length > 0 &&
	    (uint64_t)h->content_length > g->lim.max_body_bytes) {
		nb_gate_refusal_init(
		    &r, 413, "body_too_large", g->lim.too_large_message);
		refuse_head(g, h, &r, 0);
		return NB_GATE_CONSUMED;
	}
	if (h->content_length > 0 &&
	    g->hooks.reserve(g->hooks.arg, g->seq, (size_t)h->content_length) ==
		-1) {
		nb_gate_refusal_init(&r, 503, "unavailable",
		    "too many request bodies in flight; retry later");
		r.retry_after_s = g->lim.retry_after_s;
		refuse_head(g, h, &r, 0);
		return NB_GATE_CONSUMED;
	}
	return accept_head(g, inplace);
}

/*
 * Looks for the empty line that ends the head.  A head that arrives in one
 * piece (the usual case) is decided where it is, without a copy; one that
 * arrives in pieces is collected in g->head.
 */
static enum nb_gate_act
feed_head(struct nb_gate *g, const char *p, size_t len, size_t *n)
{
	struct nb_gate_refusal r;
	const char *q;
	size_t i = 0, j;
	int end = 0;

	if (g->reset) {
		nb_buf_reset(&g->head);
		if (g->head.cap > HEAD_KEEP_MAX)
			nb_buf_free(&g->head);
		g->head.max = g->lim.max_head_bytes;
		g->reset = 0;
		g->eol = 0;
		g->skipped = 0;
	}
	/* Empty lines before a request line are allowed (RFC 9112 2.2). */
	if (g->head.len == 0)
		while (i < len && (p[i] == '\r' || p[i] == '\n'))
			i++;
	if (i > 0) {
		g->skipped += i;
		*n = i;
		if (g->skipped <= g->lim.max_head_bytes)
			return NB_GATE_CONSUMED;
		nb_gate_refusal_init(&r, 431, "header_too_large",
		    "the request line and headers are too large");
		refuse_head(g, NULL, &r, 1);
		return NB_GATE_CONSUMED;
	}
	for (j = 0; j < len && !end; j++) {
		if (g->eol == 0) {
			if ((q = memchr(p + j, '\n', len - j)) == NULL) {
				j = len;
				break;
			}
			j = (size_t)(q - p);
			g->eol = 1;
		} else if (p[j] == '\n')
			end = 1;
		else
			g->eol = g->eol == 1 && p[j] == '\r' ? 2 : 0;
	}
	*n = j;
	if (g->skipped + g->head.len + j > g->lim.max_head_bytes) {
		nb_gate_refusal_init(&r, 431, "header_too_large",
		    "the request line and headers are too large");
		refuse_head(g, NULL, &r, 1);
		return NB_GATE_CONSUMED;
	}
	if (end && g->head.len == 0)
		return decide(g, p, j, 1);
	if (nb_buf_add(&g->head, p, j) == -1) {
		out_of_memory(g, NULL);
		return NB_GATE_CONSUMED;
	}
	if (end)
		return decide(g, g->head.ptr, g->head.len, 0);
	return NB_GATE_CONSUMED;
}

/*
 * Collects a short line (chunk size, chunk end, trailer) into g->line.
 * Returns 1 when it is complete, 0 when more is needed, -1 when too long.
 */
static int
collect_line(struct nb_gate *g, const char *p, size_t len, size_t *n)
{
	const char *q = memchr(p, '\n', len);
	size_t take = q != NULL ? (size_t)(q - p) + 1 : len;

	if (g->linelen + take > sizeof(g->line))
		return -1;
	memcpy(g->line + g->linelen, p, take);
	g->linelen += take;
	*n = take;
	return q != NULL;
}

/* Content of the collected line, without its line end. */
static size_t
line_content(const struct nb_gate *g)
{
	size_t k = g->linelen - 1;

	return k > 0 && g->line[k - 1] == '\r' ? k - 1 : k;
}

static void
body_error(struct nb_gate *g, const char *why)
{
	struct nb_gate_refusal r;

	nb_gate_refusal_init(&r, 400, "bad_request", why);
	refuse_body(g, &r);
}

/* A complete chunk-size line: 1..16 hex digits. */
static void
chunk_size(struct nb_gate *g)
{
	struct nb_gate_refusal r;
	size_t k = line_content(g), i;
	uint64_t v = 0;

	if (k == 0 || k > 16) {
		body_error(g, "the chunked body cannot be parsed");
		return;
	}
	for (i = 0; i < k; i++) {
		char c = g->line[i];
		int d = c >= '0' && c <= '9' ? c - '0'
		    : c >= 'a' && c <= 'f'   ? c - 'a' + 10
		    : c >= 'A' && c <= 'F'   ? c - 'A' + 10
					     : -1;

		if (d < 0) {
			body_error(g, "the chunked body cannot be parsed");
			return;
		}
		v = v * 16 + (uint64_t)d;
	}
	if (v > g->lim.max_body_bytes - g->body ||
	    g->body > g->lim.max_body_bytes) {
		nb_gate_refusal_init(
		    &r, 413, "body_too_large", g->lim.too_large_message);
		refuse_body(g, &r);
		return;
	}
	if (v > 0 &&
	    g->hooks.reserve(g->hooks.arg, g->curseq, (size_t)v) == -1) {
		nb_gate_refusal_init(&r, 503, "unavailable",
		    "too many request bodies in flight; retry later");
		r.retry_after_s = g->lim.retry_after_s;
		refuse_body(g, &r);
		return;
	}
	g->body += v;
	emit(g, g->line, g->linelen);
	g->linelen = 0;
	g->st = v > 0 ? ST_CHUNK_DATA : ST_TRAILER;
	g->remaining = v;
}

static enum nb_gate_act
feed_chunked(struct nb_gate *g, const char *p, size_t len, size_t *n)
{
	int r;

	if (g->st == ST_CHUNK_DATA) {
		*n = g->remaining < len ? (size_t)g->remaining : len;
		g->remaining -= *n;
		if (g->remaining == 0) {
			g->st = ST_CHUNK_END;
			g->linelen = 0;
		}
		return NB_GATE_PASS;
	}
	if ((r = collect_line(g, p, len, n)) == -1) {
		*n = 0; /* dropped by the discard that follows */
		body_error(g, "the chunked body cannot be parsed");
		return NB_GATE_CONSUMED;
	}
	if (r == 0)
		return NB_GATE_CONSUMED;
	if (g->st == ST_CHUNK_SIZE) {
		chunk_size(g);
		return NB_GATE_CONSUMED;
	}
	if (line_content(g) != 0) {
		body_error(g,
		    g->st == ST_TRAILER ? "trailer fields are not accepted"
					: "the chunked body cannot be parsed");
		return NB_GATE_CONSUMED;
	}
	emit(g, g->line, g->linelen);
	g->linelen = 0;
	g->st = g->st == ST_TRAILER ? ST_HEAD : ST_CHUNK_SIZE;
	return NB_GATE_CONSUMED;
}

enum nb_gate_act
nb_gate_feed(struct nb_gate *g, const char *p, size_t len, size_t *n)
{
	g->outlen = 0;
	*n = len;
	switch (g->st) {
	case ST_HEAD:
		return feed_head(g, p, len, n);
	case ST_BODY:
		*n = g->remaining < len ? (size_t)g->remaining : len;
		if ((g->remaining -= *n) == 0)
			g->st = ST_HEAD;
		return NB_GATE_PASS;
	case ST_CHUNK_SIZE:
	case ST_CHUNK_DATA:
	case ST_CHUNK_END:
	case ST_TRAILER:
		return feed_chunked(g, p, len, n);
	case ST_SKIP:
		*n = g->remaining < len ? (size_t)g->remaining : len;
		if ((g->remaining -= *n) == 0)
			g->st = ST_HEAD;
		return NB_GATE_CONSUMED;
	case ST_DISCARD:
		break;
	}
	g->dropped += len;
	return g->dropped > NB_GATE_DISCARD_MAX ? NB_GATE_CLOSE
						: NB_GATE_CONSUMED;
}
