/* SPDX-License-Identifier: ISC */
/*
 * gate: the request framing every listener applies before evhttp sees a byte.
 *
 * evhttp 2.1 reads a request's head and then its whole body before it calls
 * us, and answers what it cannot parse with its own HTML pages.  The gate
 * sits in front: it collects each request head (bounded), parses it more
 * strictly than evhttp does, asks the listener's policy, and only then
 * hands evhttp the head and, counted, the body.  Whatever it refuses
 * evhttp never sees; in its place evhttp gets a body-less stand-in request
 * (or, in the middle of a chunked body, the terminating chunk), so the
 * refusal is answered in order on the connection, through the ordinary
 * reply path, as JSON.  Pure byte logic: no sockets, no event loop, no
 * locks; one gate per connection, used by one thread.
 */
#ifndef NB_GATE_H
#define NB_GATE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Body bytes a refused request may still send so that it reads the answer
 * (lingering, as nginx does); past this the connection is closed.
 */
#define NB_GATE_DISCARD_MAX ((size_t)64 * 1024)

/* Longest chunk-size line (hex digits and line end) of a chunked body. */
#define NB_GATE_CHUNK_LINE_MAX 32

enum nb_gate_method {
	NB_GATE_GET = 0,
	NB_GATE_HEAD,
	NB_GATE_POST,
	NB_GATE_PUT,
	NB_GATE_DELETE,
	NB_GATE_OPTIONS,
	NB_GATE_PATCH,
	NB_GATE_TRACE,
	NB_GATE_CONNECT,
	NB_GATE_OTHER, /* a token evhttp does not know */
};

/*
 * One parsed request head, as the policy sees it.  Pointers are borrowed
 * from the gate and valid during the nb_gate_hooks.head() call only; spans
 * are not NUL-terminated.
 */
struct nb_gate_head {
	enum nb_gate_method method;
	int minor;	  /* HTTP/1.minor */
	const char *path; /* path as evhttp gives it (before ? or #) */
	size_t pathlen;
	int64_t content_length;	  /* -1: no Content-Length */
	int chunked;		  /* Transfer-Encoding: chunked */
	const char *content_type; /* first Content-Type value, or NULL */
	size_t content_type_len;
	int expect_continue; /* Expect: 100-continue with a body */
	int close; /* Connection: close, HTTP/1.0, or not in origin form */
	size_t head_bytes; /* bytes of the head, request line included */
};

/* An answer the gate sends instead of evhttp (see httpd.c). */
struct nb_gate_refusal {
	int status;
	const char *code;    /* the JSON "error" */
	const char *message; /* the JSON "message" */
	const char *allow;   /* an Allow header, or NULL */
	int retry_after_s;   /* a Retry-After header when > 0 */
};

/*
 * What the gate asks of the connection it guards.  Every hook is called
 * from inside nb_gate_feed().
 *
 * head:     a head parsed without fault; return 0 to let the request
 *           through, or fill *r and return -1 to refuse it.
 * reserve:  n more body bytes of request number seq will be handed on;
 *           0, or -1 when the in-flight budget is spent (answered 503).
 * refused:  the request numbered seq (see nb_gate_feed()) is refused with
 *           r; h is NULL when its head could not be parsed; close says
 *           the connection ends after the answer; body is the body bytes
 *           announced or seen so far.
 */
struct nb_gate_hooks {
	int (*head)(
	    void *arg, const struct nb_gate_head *h, struct nb_gate_refusal *r);
	int (*reserve)(void *arg, uint32_t seq, size_t n);
	void (*refused)(void *arg, uint32_t seq, const struct nb_gate_head *h,
	    const struct nb_gate_refusal *r, int close, size_t body);
	void *arg;
};

/* The gate's own limits. */
struct nb_gate_limits {
	size_t max_head_bytes; /* request line and headers: 431 past it */
	size_t max_body_bytes; /* one body: 413 past it */
	/* The 413 message ("the body is larger than ..."). */
	const char *too_large_message;
	int retry_after_s; /* sent with the gate's own 503 answers */
};

enum nb_gate_act {
	/*
	 * The first *n input bytes were used up by the gate; the server's
	 * input must then get nb_gate_output() before anything else.
	 */
	NB_GATE_CONSUMED = 0,
	NB_GATE_PASS,  /* hand the first *n input bytes on unchanged */
	NB_GATE_CLOSE, /* drop *n bytes; the connection should end now */
};

struct nb_gate;

/*
 * A gate with limits l and hooks (copied).  NULL when out of memory.
 */
struct nb_gate *nb_gate_new(
    const struct nb_gate_limits *l, const struct nb_gate_hooks *hooks);

/* Frees the gate.  NULL is ok. */
void nb_gate_free(struct nb_gate *);

/* New limits for the requests that start from now on. */
void nb_gate_set_limits(struct nb_gate *, const struct nb_gate_limits *l);

/*
 * Looks at len (> 0) bytes that follow what the gate has seen so far and
 * says what to do with a prefix of them (*n, 0..len bytes; 0 only after a
 * refusal whose output is waiting).  The caller hands on nb_gate_output()
 * after every call and loops until all its input is used.  Requests handed on,
 * stand-ins included, are numbered from 0 in the order the server will see
 * them; hooks.refused() names the one it refuses.  Never fails: running out of
 * memory becomes a 503 refusal.
 */
enum nb_gate_act nb_gate_feed(
    struct nb_gate *, const char *p, size_t len, size_t *n);

/*
 * Bytes the gate made for the server after the last nb_gate_feed() (an
 * accepted head, a chunk line, a stand-in request): *len bytes at the
 * returned pointer, borrowed until the next feed.  NULL when none.
 */
const char *nb_gate_output(struct nb_gate *, size_t *len);

/* Requests handed on so far (the number the next one will get). */
uint32_t nb_gate_handed(const struct nb_gate *);

/* Fills r with status, code and message, and nothing else. */
void nb_gate_refusal_init(struct nb_gate_refusal *r, int status,
    const char *code, const char *message);

#endif
