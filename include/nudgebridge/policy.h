/* SPDX-License-Identifier: ISC */
/*
 * policy: the deliverer's settings and the rules it applies to answers.
 *
 * The "segment" object of the configuration (config.c fills a struct
 * nb_segment_config) and what follows from an answer: which statuses
 * deliver, retry, bisect or pause; how long a retry waits (exponential
 * backoff with full jitter, Retry-After or X-RateLimit-Reset as a floor);
 * how large one message may be so that it fits a batch.  Everything here is
 * a pure function of its arguments (the backoff's jitter comes from
 * libsodium's generator), so the rules are unit-tested as tables and hold
 * for Segment's batch API and the OAuth token endpoint alike.  Safe from
 * any thread.
 */
#ifndef NB_POLICY_H
#define NB_POLICY_H

#include <stddef.h>
#include <stdint.h>

/* The longest wait an answer may ask for (Retry-After, X-RateLimit-Reset). */
#define NB_POLICY_WAIT_MAX_MS 86400000

/* An X-RateLimit-Reset above this is a Unix time, not a delay. */
#define NB_POLICY_RESET_EPOCH_MIN 1000000000LL

/* "segment.retry". */
struct nb_retry_config {
	int initial_ms;	   /* default 500 */
	int max_ms;	   /* default 60000 */
	int max_attempts;  /* default 0: unlimited */
	int64_t max_age_s; /* default 259200 */
};

/* "segment". */
struct nb_segment_config {
	char *endpoint;		  /* global endpoint, NULL = region us */
	int flush_interval_ms;	  /* default 200 */
	size_t max_batch_bytes;	  /* default 500000, at most 500000 */
	size_t max_batch_count;	  /* default 2500, at most 2500 */
	size_t max_message_bytes; /* default 32000, at most 32000 */
	int timeout_ms;		  /* one attempt, default 10000 */
	double rate_limit_rps; /* batch requests/s per write key, default 50 */
	int max_inflight;    /* concurrent requests per write key, default 4 */
	int pause_s;	     /* back-off after 401/403, default 300 */
	int64_t retention_s; /* delivered rows kept, default 86400 */
	int gzip;	     /* Content-Encoding: gzip, default 1 */
	struct nb_retry_config retry;
};

/* What an answer of the batch API does to the batch it answers. */
enum nb_policy_outcome {
	NB_POLICY_DELIVERED = 0, /* 2xx */
	NB_POLICY_RETRY,  /* no answer, 408, 429, 5xx, any status not below */
	NB_POLICY_BISECT, /* 400: split, dead-letter a single message */
	NB_POLICY_PAUSE,  /* 401, 403: the credentials are refused */
};

/*
 * The outcome of status (0 when no HTTP answer came: network error,
 * timeout).  Every status not named is retried like a 5xx, so a transient
 * misconfiguration (a proxy's 404 or 413) never loses events.
 */
enum nb_policy_outcome nb_policy_outcome(long status);

/*
 * The backoff before attempt number attempts+1 (attempts >= 1 failures so
 * far): initial_ms * 2^(attempts-1), capped at max_ms, with full jitter in
 * [delay/2, delay].  floor_ms > 0 (what the answer asked for) is a floor.
 */
int64_t nb_policy_backoff_ms(
    const struct nb_retry_config *r, int attempts, int64_t floor_ms);

/*
 * A Retry-After value (v, len bytes, surrounding blanks and CR LF allowed):
 * delay-seconds or an HTTP-date, as ms from now_ms.  0 when absent,
 * invalid or in the past; at most NB_POLICY_WAIT_MAX_MS.
 */
int64_t nb_policy_retry_after_ms(const char *v, size_t len, int64_t now_ms);

/*
 * An X-RateLimit-Reset value, read as Segment's own libraries read it:
 * seconds to wait (a fraction allowed), or, above
 * NB_POLICY_RESET_EPOCH_MIN, the Unix time to wait for.  As ms from now_ms;
 * 0 when absent, invalid or past; at most NB_POLICY_WAIT_MAX_MS.
 */
int64_t nb_policy_ratelimit_reset_ms(const char *v, size_t len, int64_t now_ms);

/*
 * How long an answer asks to wait before the next request: its Retry-After,
 * else, on a 429, its X-RateLimit-Reset; 0 for none.
 */
int64_t nb_policy_wait_ms(
    long status, int64_t retry_after_ms, int64_t reset_ms);

/*
 * The largest message that is sent: max_message_bytes, or less when a
 * batch of max_batch_bytes with overhead bytes of envelope could not hold
 * it.  A longer one is dead-lettered as too_large.
 */
size_t nb_policy_message_limit(
    const struct nb_segment_config *sc, size_t overhead);

#endif
