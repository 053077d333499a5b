/* SPDX-License-Identifier: ISC */
/*
 * xfer: HTTP POSTs through libcurl's multi-socket API on a libevent base.
 *
 * The deliverer's one way out: batches to Segment and token requests to
 * the OAuth server both go through a struct nb_xfer_multi, which drives
 * libcurl from the event base it is given, as curl's
 * docs/examples/hiperfifo.c does, so nothing ever blocks the thread.  A
 * transfer takes its body, may gzip it (Content-Encoding: gzip), and ends
 * with exactly one call of its callback: the status, curl's error, the
 * waits the answer asked for (Retry-After, X-RateLimit-Reset), its Date
 * and the first bytes of its body; or a cancellation.  Callbacks run on
 * the base's thread and must not start transfers of their own (they wake
 * their owner instead).  Everything here belongs to that one thread;
 * libcurl is initialised by the caller (curl_global_init()).
 */
#ifndef NB_XFER_H
#define NB_XFER_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct nb_xfer;
struct nb_xfer_multi;

/* Connections kept per host and in the cache. */
#define NB_XFER_MAX_CONNECTIONS 32

/* What to send: POST url with body. */
struct nb_xfer_request {
	const char *url;
	const char *content_type; /* "application/json", ... */
	const char *basic_user;	  /* HTTP Basic, empty password; or NULL */
	const char *bearer;	  /* Authorization: Bearer; or NULL */
	int gzip;		  /* send the body gzipped */
	int wipe;		  /* the body is a secret: wiped when freed */
	int timeout_ms;		  /* the whole request */
	size_t keep;		  /* answer body bytes kept, at most */
	/* More header lines ("Name: value"), or NULL; copied. */
	const char *const *headers;
	size_t nheaders;
};

/* How it ended; everything borrowed for the callback's duration. */
struct nb_xfer_answer {
	int canceled;		/* by nb_xfer_multi_cancel_all(); no answer */
	long status;		/* HTTP status, 0 when none came */
	int timed_out;		/* status 0 because of timeout_ms */
	const char *error;	/* curl's message when status is 0 */
	int64_t retry_after_ms; /* Retry-After, 0 when none */
	int64_t reset_ms;	/* X-RateLimit-Reset, 0 when none */
	int64_t date_ms;	/* the answer's Date (wall clock), 0: none */
	int64_t now_ms;		/* wall clock when it ended */
	double seconds;		/* how long it took */
	size_t sent_bytes;	/* request body bytes on the wire */
	size_t body_bytes;	/* request body bytes before compression */
	const char *body;	/* the answer body's first bytes, NUL-ended */
	size_t bodylen;
	int truncated; /* the answer body was longer than keep */
};

typedef void (*nb_xfer_done_cb)(const struct nb_xfer_answer *a, void *arg);

/*
 * A transfer engine on base (borrowed; it must outlive the engine).  NULL
 * with a message in err on failure.
 */
struct nb_xfer_multi *nb_xfer_multi_new(
    struct event_base *base, char *err, size_t errlen);

/*
 * Starts POSTing body (len bytes, malloc'd: always taken, freed here) as
 * req says.  done(answer, arg) runs once when it ends.  Returns 0, or -1
 * when the request could not start (then done is never called).  Logs its
 * own failures without the URL's credentials or the body.
 */
int nb_xfer_start(struct nb_xfer_multi *, const struct nb_xfer_request *req,
    char *body, size_t len, nb_xfer_done_cb done, void *arg);

/* Transfers in flight. */
size_t nb_xfer_multi_count(const struct nb_xfer_multi *);

/*
 * Ends every transfer in flight: each callback runs with canceled set.
 * Transfers started by those callbacks are not canceled.
 */
void nb_xfer_multi_cancel_all(struct nb_xfer_multi *);

/* Cancels what is in flight (callbacks run) and frees.  NULL is ok. */
void nb_xfer_multi_free(struct nb_xfer_multi *);

#endif
