/* SPDX-License-Identifier: ISC */
/*
 * metrics: counters and histograms, rendered in Prometheus text format 0.0.4.
 *
 * Every series lives in a fixed slot of struct nb_metrics: label sets are
 * bounded by tables (the contract's error codes, dead-letter reasons, HTTP
 * status codes 0..599), so recording is one relaxed atomic add with no
 * lookup structure, no lock and no allocation.  Histograms keep one counter
 * per bucket (not cumulative; the renderer sums them) and a sum updated with
 * a compare-and-swap loop.  Rendering reads each counter once; the result is
 * consistent enough for scraping, not a snapshot.  Queue gauges are not kept
 * here: metrics_page.c adds them from a board snapshot (the store's
 * figures and the paused sources, read off the request threads).  Every
 * function accepts a NULL struct nb_metrics and then does nothing, so
 * modules can run without metrics in tests.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "nudgebridge/metrics.h"
#include "nudgebridge/store_types.h"

#define STATUS_MAX 600 /* status codes 0..599 */
#define HIST_MAX   20  /* finite buckets of one histogram */

/* The contract's error codes; index 0 is a request without error. */
static const char *const error_codes[] = {
    "ok",
    "method_not_allowed",
    "unknown_source",
    "body_too_large",
    "unsupported_media_type",
    "signature_missing",
    "signature_malformed",
    "timestamp_out_of_tolerance",
    "signature_mismatch",
    "invalid_json",
    "invalid_payload",
    "unavailable",
    "not_found",
    "unauthorized",
    "bad_request",
    "header_too_large",
    "not_implemented",
    "expectation_failed",
    "other",
};
#define NERRORS (sizeof(error_codes) / sizeof(error_codes[0]))

/* The store's reasons (store.h), and one for a reason it does not list. */
static const char *const dead_reasons[] = {NB_STORE_REASONS, "other"};
#define NREASONS (sizeof(dead_reasons) / sizeof(dead_reasons[0]))

static const char *const accept_reasons[] = {
    "emfile",
    "enfile",
    "nomem",
    "other",
};
#define NACCEPT (sizeof(accept_reasons) / sizeof(accept_reasons[0]))

static const double commit_seconds_bounds[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
static const double commit_events_bounds[] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000};
static const double request_seconds_bounds[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
static const double batch_messages_bounds[] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500};
static const double latency_bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
    10, 30, 60, 300, 900, 3600, 21600, 86400};
/*
 * Receipt minus webhook-timestamp.  Both signs, finer near zero (normal
 * network delay and sub-second clock error), then the steps a drifting
 * clock passes on its way to the refusal at +-300 s (the default
 * tolerance): a sender past +-60 s is worth a look before it is refused.
 */
static const double skew_bounds[] = {
    -300, -120, -60, -30, -10, -5, -2, -1, 0, 1, 2, 5, 10, 30, 60, 120, 300};

struct hist {
	const double *bounds;
	size_t nbounds;
	atomic_uint_fast64_t buckets[HIST_MAX + 1]; /* last one: +Inf */
	atomic_uint_fast64_t count;
	_Atomic double sum;
};

struct nb_metrics {
	atomic_uint_fast64_t requests[NERRORS][STATUS_MAX];
	atomic_uint_fast64_t accepted;
	atomic_uint_fast64_t duplicates;
	atomic_uint_fast64_t filtered;
	atomic_uint_fast64_t quarantined;
	struct hist commit_seconds;
	struct hist commit_events;
	atomic_uint_fast64_t segment_requests[STATUS_MAX];
	struct hist request_seconds;
	struct hist batch_messages;
	atomic_uint_fast64_t delivered;
	struct hist latency;
	atomic_uint_fast64_t retries;
	atomic_uint_fast64_t dead[NREASONS];
	atomic_uint_fast64_t sent_json;
	atomic_uint_fast64_t sent_wire;
	atomic_uint_fast64_t oauth_requests[STATUS_MAX];
	atomic_uint_fast64_t accept_errors[NACCEPT];
	struct hist skew;
	struct {
		nb_metrics_collect_fn fn;
		void *arg;
	} collectors[NB_METRICS_COLLECTORS];
	size_t ncollectors;
};

static void
hist_init(struct hist *h, const double *bounds, size_t n)
{
	size_t i;

	h->bounds = bounds;
	h->nbounds = n;
	for (i = 0; i <= HIST_MAX; i++)
		atomic_init(&h->buckets[i], 0);
	atomic_init(&h->count, 0);
	atomic_init(&h->sum, 0.0);
}

/* Records n observations of value v. */
static void
hist_observe(struct hist *h, double v, uint64_t n)
{
	double old, sum;
	size_t i;

	if (n == 0 || isnan(v))
		return;
	for (i = 0; i < h->nbounds; i++)
		if (v <= h->bounds[i])
			break;
	atomic_fetch_add_explicit(&h->buckets[i], n, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, n, memory_order_relaxed);
	old = atomic_load_explicit(&h->sum, memory_order_relaxed);
	do {
		sum = old + v * (double)n;
	} while (!atomic_compare_exchange_weak_explicit(
	    &h->sum, &old, sum, memory_order_relaxed, memory_order_relaxed));
}

static uint64_t
get(atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static void
add(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

struct nb_metrics *
nb_metrics_new(void)
{
	struct nb_metrics *m;
	size_t i, j;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	for (i = 0; i < NERRORS; i++)
		for (j = 0; j < STATUS_MAX; j++)
			atomic_init(&m->requests[i][j], 0);
	for (j = 0; j < STATUS_MAX; j++) {
		atomic_init(&m->segment_requests[j], 0);
		atomic_init(&m->oauth_requests[j], 0);
	}
	atomic_init(&m->sent_json, 0);
	atomic_init(&m->sent_wire, 0);
	for (i = 0; i < NREASONS; i++)
		atomic_init(&m->dead[i], 0);
	for (i = 0; i < NACCEPT; i++)
		atomic_init(&m->accept_errors[i], 0);
	atomic_init(&m->accepted, 0);
	atomic_init(&m->duplicates, 0);
	atomic_init(&m->filtered, 0);
	atomic_init(&m->quarantined, 0);
	atomic_init(&m->delivered, 0);
	atomic_init(&m->retries, 0);
	hist_init(&m->skew, skew_bounds, sizeof(skew_bounds) / sizeof(double));
	hist_init(&m->commit_seconds, commit_seconds_bounds,
	    sizeof(commit_seconds_bounds) / sizeof(double));
	hist_init(&m->commit_events, commit_events_bounds,
	    sizeof(commit_events_bounds) / sizeof(double));
	hist_init(&m->request_seconds, request_seconds_bounds,
	    sizeof(request_seconds_bounds) / sizeof(double));
	hist_init(&m->batch_messages, batch_messages_bounds,
	    sizeof(batch_messages_bounds) / sizeof(double));
	hist_init(&m->latency, latency_bounds,
	    sizeof(latency_bounds) / sizeof(double));
	return m;
}

void
nb_metrics_free(struct nb_metrics *m)
{
	free(m);
}

/* Index of s in table (n entries); the last entry catches the rest. */
static size_t
label_index(const char *const *table, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n - 1; i++)
		if (strcmp(table[i], s) == 0)
			return i;
	return n - 1;
}

void
nb_metrics_request(struct nb_metrics *m, int status, const char *error)
{
	size_t e;

	if (m == NULL || status < 0 || status >= STATUS_MAX)
		return;
	e = error == NULL ? 0 : label_index(error_codes, NERRORS, error);
	add(&m->requests[e][status], 1);
}

void
nb_metrics_events(
    struct nb_metrics *m, int accepted, int duplicates, int quarantined)
{
	if (m == NULL)
		return;
	if (accepted > 0)
		add(&m->accepted, (uint64_t)accepted);
	if (duplicates > 0)
		add(&m->duplicates, (uint64_t)duplicates);
	if (quarantined > 0)
		add(&m->quarantined, (uint64_t)quarantined);
}

void
nb_metrics_filtered(struct nb_metrics *m, size_t n)
{
	if (m == NULL)
		return;
	add(&m->filtered, n);
}

void
nb_metrics_skew(struct nb_metrics *m, double seconds)
{
	if (m == NULL)
		return;
	hist_observe(&m->skew, seconds, 1);
}

int
nb_metrics_collect(struct nb_metrics *m, nb_metrics_collect_fn fn, void *arg)
{
	if (m == NULL || m->ncollectors == NB_METRICS_COLLECTORS)
		return -1;
	m->collectors[m->ncollectors].fn = fn;
	m->collectors[m->ncollectors].arg = arg;
	m->ncollectors++;
	return 0;
}

void
nb_metrics_commit(struct nb_metrics *m, double seconds, size_t events)
{
	if (m == NULL)
		return;
	hist_observe(&m->commit_seconds, seconds, 1);
	hist_observe(&m->commit_events, (double)events, 1);
}

void
nb_metrics_delivery(
    struct nb_metrics *m, int status, size_t messages, double seconds)
{
	if (m == NULL)
		return;
	if (status < 0 || status >= STATUS_MAX)
		status = 0;
	add(&m->segment_requests[status], 1);
	hist_observe(&m->request_seconds, seconds, 1);
	hist_observe(&m->batch_messages, (double)messages, 1);
}

void
nb_metrics_retry(struct nb_metrics *m, size_t n)
{
	if (m == NULL)
		return;
	add(&m->retries, n);
}

void
nb_metrics_dead(struct nb_metrics *m, const char *reason, size_t n)
{
	if (m == NULL || reason == NULL)
		return;
	add(&m->dead[label_index(dead_reasons, NREASONS, reason)], n);
}

void
nb_metrics_sent(struct nb_metrics *m, size_t json_bytes, size_t wire_bytes)
{
	if (m == NULL)
		return;
	add(&m->sent_json, json_bytes);
	add(&m->sent_wire, wire_bytes);
}

void
nb_metrics_oauth(struct nb_metrics *m, int status)
{
	if (m == NULL)
		return;
	if (status < 0 || status >= STATUS_MAX)
		status = 0;
	add(&m->oauth_requests[status], 1);
}

void
nb_metrics_delivered(struct nb_metrics *m, size_t n, double latency_s)
{
	if (m == NULL)
		return;
	add(&m->delivered, n);
	if (latency_s < 0)
		latency_s = 0;
	hist_observe(&m->latency, latency_s, n);
}

void
nb_metrics_accept_error(struct nb_metrics *m, const char *reason)
{
	if (m == NULL || reason == NULL)
		return;
	add(&m->accept_errors[label_index(accept_reasons, NACCEPT, reason)], 1);
}

/* Rendering: each helper returns 0 or -1 (evbuffer out of memory). */

int
nb_metrics_head(
    struct evbuffer *out, const char *name, const char *type, const char *help)
{
	if (evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
		name, type) == -1)
		return -1;
	return 0;
}

/* Appends v as a label value, escaped as the text format requires. */
int
nb_metrics_label_value(struct evbuffer *out, const char *v)
{
	const char *p;
	int rc = 0;

	for (p = v; *p != '\0' && rc == 0; p++) {
		if (*p == '\\')
			rc = evbuffer_add(out, "\\\\", 2);
		else if (*p == '"')
			rc = evbuffer_add(out, "\\\"", 2);
		else if (*p == '\n')
			rc = evbuffer_add(out, "\\n", 2);
		else
			rc = evbuffer_add(out, p, 1);
	}
	return rc;
}

/* name{label="value"} number, with an integer or a float sample. */
int
nb_metrics_sample_u(struct evbuffer *out, const char *name, const char *label,
    const char *value, uint64_t v)
{
	if (label == NULL)
		return evbuffer_add_printf(
			   out, "%s %llu\n", name, (unsigned long long)v) == -1
		    ? -1
		    : 0;
	if (evbuffer_add_printf(out, "%s{%s=\"", name, label) == -1 ||
	    nb_metrics_label_value(out, value) == -1 ||
	    evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)v) == -1)
		return -1;
	return 0;
}

int
nb_metrics_sample_f(struct evbuffer *out, const char *name, const char *label,
    const char *value, double v)
{
	if (evbuffer_add_printf(out, "%s{%s=\"", name, label) == -1 ||
	    nb_metrics_label_value(out, value) == -1 ||
	    evbuffer_add_printf(out, "\"} %.9g\n", v) == -1)
		return -1;
	return 0;
}

static int
render_hist(
    struct evbuffer *out, const char *name, const char *help, struct hist *h)
{
	uint64_t cum = 0;
	size_t i;

	if (nb_metrics_head(out, name, "histogram", help) == -1)
		return -1;
	for (i = 0; i < h->nbounds; i++) {
		cum += get(&h->buckets[i]);
		if (evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n",
			name, h->bounds[i], (unsigned long long)cum) == -1)
			return -1;
	}
	cum += get(&h->buckets[h->nbounds]);
	if (evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name,
		(unsigned long long)cum) == -1)
		return -1;
	if (evbuffer_add_printf(out, "%s_sum %.9g\n%s_count %llu\n", name,
		atomic_load_explicit(&h->sum, memory_order_relaxed), name,
		(unsigned long long)get(&h->count)) == -1)
		return -1;
	return 0;
}

static int
render_requests(struct nb_metrics *m, struct evbuffer *out)
{
	const char *name = "nudgebridge_http_requests_total";
	uint64_t v;
	size_t e;
	int s;

	if (nb_metrics_head(out, name, "counter",
		"Webhook requests answered, by status and error code.") == -1)
		return -1;
	for (s = 0; s < STATUS_MAX; s++) {
		for (e = 0; e < NERRORS; e++) {
			if ((v = get(&m->requests[e][s])) == 0)
				continue;
			if (evbuffer_add_printf(out,
				"%s{status=\"%d\",error=\"%s\"} %llu\n", name,
				s, error_codes[e], (unsigned long long)v) == -1)
				return -1;
		}
	}
	return 0;
}

static int
render_events(struct nb_metrics *m, struct evbuffer *out)
{
	const char *name = "nudgebridge_events_total";

	if (nb_metrics_head(out, name, "counter",
		"Events of answered webhook requests, by outcome.") == -1 ||
	    nb_metrics_sample_u(
		out, name, "outcome", "accepted", get(&m->accepted)) == -1 ||
	    nb_metrics_sample_u(
		out, name, "outcome", "duplicate", get(&m->duplicates)) == -1 ||
	    nb_metrics_sample_u(out, name, "outcome", "quarantined",
		get(&m->quarantined)) == -1 ||
	    nb_metrics_sample_u(
		out, name, "outcome", "filtered", get(&m->filtered)) == -1)
		return -1;
	return 0;
}

/* Counters by status (0 rendered as "error"), the ones seen only. */
static int
render_statuses(struct evbuffer *out, const char *name, const char *help,
    atomic_uint_fast64_t *counts)
{
	char status[16];
	uint64_t v;
	int s;

	if (nb_metrics_head(out, name, "counter", help) == -1)
		return -1;
	for (s = 0; s < STATUS_MAX; s++) {
		if ((v = get(&counts[s])) == 0)
			continue;
		if (s == 0)
			memcpy(status, "error", sizeof("error"));
		else
			(void)snprintf(status, sizeof(status), "%d", s);
		if (nb_metrics_sample_u(out, name, "status", status, v) == -1)
			return -1;
	}
	return 0;
}

/* A counter family of one sample. */
static int
counter(struct evbuffer *out, const char *name, const char *help,
    atomic_uint_fast64_t *c)
{
	if (nb_metrics_head(out, name, "counter", help) == -1 ||
	    nb_metrics_sample_u(out, name, NULL, NULL, get(c)) == -1)
		return -1;
	return 0;
}

/* A counter family with a sample for each of n label values. */
static int
counter_by(struct evbuffer *out, const char *name, const char *help,
    const char *label, const char *const *values, atomic_uint_fast64_t *c,
    size_t n)
{
	size_t i;

	if (nb_metrics_head(out, name, "counter", help) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (nb_metrics_sample_u(
			out, name, label, values[i], get(&c[i])) == -1)
			return -1;
	return 0;
}

static int
render_segment(struct nb_metrics *m, struct evbuffer *out)
{
	if (render_statuses(out, "nudgebridge_segment_requests_total",
		"Batch requests to Segment, by status (error: no HTTP "
		"answer).",
		m->segment_requests) == -1 ||
	    render_statuses(out, "nudgebridge_oauth_token_requests_total",
		"OAuth token requests, by status (error: no HTTP answer).",
		m->oauth_requests) == -1 ||
	    counter(out, "nudgebridge_segment_sent_bytes_total",
		"Bytes of batch request bodies on the wire (after gzip).",
		&m->sent_wire) == -1 ||
	    counter(out, "nudgebridge_segment_json_bytes_total",
		"Bytes of batch request bodies before compression.",
		&m->sent_json) == -1)
		return -1;
	return 0;
}

static int
render_delivery(struct nb_metrics *m, struct evbuffer *out)
{
	if (counter(out, "nudgebridge_events_delivered_total",
		"Events Segment accepted (2xx).", &m->delivered) == -1 ||
	    counter(out, "nudgebridge_retries_total",
		"Events rescheduled after a failed attempt.",
		&m->retries) == -1 ||
	    counter_by(out, "nudgebridge_dead_letters_total",
		"Events dead-lettered, by reason.", "reason", dead_reasons,
		m->dead, NREASONS) == -1 ||
	    counter_by(out, "nudgebridge_accept_errors_total",
		"accept() failures on the listeners, by reason (the listener "
		"pauses).",
		"reason", accept_reasons, m->accept_errors, NACCEPT) == -1)
		return -1;
	return 0;
}

int
nb_metrics_render_counters(struct nb_metrics *m, struct evbuffer *out)
{
	if (m == NULL || out == NULL)
		return -1;
	if (nb_metrics_head(out, "nudgebridge_build_info", "gauge",
		"Version of the running nudgebridge.") == -1 ||
	    nb_metrics_sample_u(
		out, "nudgebridge_build_info", "version", NB_VERSION, 1) == -1)
		return -1;
	if (render_requests(m, out) == -1 || render_events(m, out) == -1 ||
	    render_hist(out, "nudgebridge_webhook_timestamp_skew_seconds",
		"Receipt time minus webhook-timestamp of verified requests "
		"(negative: the sender's clock is ahead).",
		&m->skew) == -1)
		return -1;
	if (render_hist(out, "nudgebridge_store_commit_seconds",
		"Duration of one store transaction.",
		&m->commit_seconds) == -1 ||
	    render_hist(out, "nudgebridge_store_commit_events",
		"Events stored by one store transaction.",
		&m->commit_events) == -1)
		return -1;
	if (render_segment(m, out) == -1 ||
	    render_hist(out, "nudgebridge_segment_request_seconds",
		"Duration of one batch request to Segment.",
		&m->request_seconds) == -1 ||
	    render_hist(out, "nudgebridge_segment_batch_messages",
		"Messages in one batch request to Segment.",
		&m->batch_messages) == -1)
		return -1;
	if (render_delivery(m, out) == -1 ||
	    render_hist(out, "nudgebridge_delivery_latency_seconds",
		"Time from receipt to delivery of each event.",
		&m->latency) == -1)
		return -1;
	return 0;
}

int
nb_metrics_render_collected(struct nb_metrics *m, struct evbuffer *out)
{
	size_t i;

	if (m == NULL || out == NULL)
		return -1;
	for (i = 0; i < m->ncollectors; i++)
		if (m->collectors[i].fn(m->collectors[i].arg, out) == -1)
			return -1;
	return 0;
}
