/* SPDX-License-Identifier: ISC */
/*
 * test_metrics: a known sequence of recordings renders the exact expected
 * Prometheus lines, histograms are cumulative, and every series has its
 * HELP and TYPE lines.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "nudgebridge/board.h"
#include "nudgebridge/metrics.h"
#include "nudgebridge/metrics_page.h"

static char *
render(struct nb_metrics *m, const struct nb_queue_gauge *queues,
    size_t nqueues, const struct nb_paused *paused, size_t npaused,
    int64_t now_ms)
{
	struct nb_board_snapshot snap;
	struct evbuffer *out;
	size_t len;
	char *text;

	memset(&snap, 0, sizeof(snap));
	snap.queues_ok = 1;
	snap.queues = queues;
	snap.nqueues = nqueues;
	snap.paused = paused;
	snap.npaused = npaused;
	out = evbuffer_new();
	assert_non_null(out);
	assert_int_equal(nb_metrics_render(m, &snap, now_ms, out), 0);
	len = evbuffer_get_length(out);
	text = malloc(len + 1);
	assert_non_null(text);
	assert_int_equal(evbuffer_remove(out, text, len), (int)len);
	text[len] = '\0';
	evbuffer_free(out);
	return text;
}

/* line must appear in text as a whole line. */
static void
assert_line(const char *text, const char *line)
{
	const char *p = text;
	size_t n = strlen(line);

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
		p += n;
	}
	fail_msg("missing line: %s", line);
}

static void
assert_no_line_prefix(const char *text, const char *prefix)
{
	const char *p = text;
	size_t n = strlen(prefix);

	while ((p = strstr(p, prefix)) != NULL) {
		if (p == text || p[-1] == '\n')
			fail_msg("unexpected line: %s", prefix);
		p += n;
	}
}

static void
test_counters(void **state)
{
	static const char *const lines[] = {
	    "nudgebridge_http_requests_total{status=\"200\",error=\"ok\"} 2",
	    "nudgebridge_http_requests_total{status=\"401\",error="
	    "\"signature_mismatch\"} 1",
	    "nudgebridge_http_requests_total{status=\"503\",error="
	    "\"unavailable\"} 1",
	    "nudgebridge_http_requests_total{status=\"404\",error="
	    "\"not_found\"} 1",
	    "nudgebridge_events_total{outcome=\"accepted\"} 7",
	    "nudgebridge_events_total{outcome=\"duplicate\"} 2",
	    "nudgebridge_events_total{outcome=\"quarantined\"} 1",
	    "nudgebridge_segment_requests_total{status=\"200\"} 2",
	    "nudgebridge_segment_requests_total{status=\"500\"} 1",
	    "nudgebridge_segment_requests_total{status=\"error\"} 1",
	    "nudgebridge_events_delivered_total 5",
	    "nudgebridge_retries_total 3",
	    "nudgebridge_dead_letters_total{reason=\"too_large\"} 2",
	    "nudgebridge_dead_letters_total{reason=\"max_age\"} 0",
	    "nudgebridge_dead_letters_total{reason=\"rejected_by_segment\"} 1",
	    "nudgebridge_dead_letters_total{reason=\"invalid_for_segment\"} 4",
	    "nudgebridge_oauth_token_requests_total{status=\"200\"} 2",
	    "nudgebridge_oauth_token_requests_total{status=\"401\"} 1",
	    "nudgebridge_oauth_token_requests_total{status=\"error\"} 2",
	    "nudgebridge_segment_sent_bytes_total 250",
	    "nudgebridge_segment_json_bytes_total 1500",
	    "# TYPE nudgebridge_oauth_token_requests_total counter",
	    "# TYPE nudgebridge_segment_sent_bytes_total counter",
	    "# TYPE nudgebridge_segment_json_bytes_total counter",
	    "# TYPE nudgebridge_source_paused_oauth gauge",
	    "# TYPE nudgebridge_http_requests_total counter",
	    "# TYPE nudgebridge_events_total counter",
	    "# TYPE nudgebridge_segment_requests_total counter",
	    "# TYPE nudgebridge_events_delivered_total counter",
	    "# TYPE nudgebridge_retries_total counter",
	    "# TYPE nudgebridge_dead_letters_total counter",
	    "# TYPE nudgebridge_store_commit_seconds histogram",
	    "# TYPE nudgebridge_queue_pending gauge",
	    "# TYPE nudgebridge_source_paused gauge",
	};
	struct nb_metrics *m;
	char *text;
	size_t i;

	(void)state;
	assert_non_null(m = nb_metrics_new());
	nb_metrics_request(m, 200, NULL);
	nb_metrics_request(m, 200, NULL);
	nb_metrics_request(m, 401, "signature_mismatch");
	nb_metrics_request(m, 503, "unavailable");
	nb_metrics_request(m, 404, "not_found");
	nb_metrics_request(m, 1000, "ok"); /* out of range: ignored */
	nb_metrics_events(m, 3, 2, 0);
	nb_metrics_events(m, 4, 0, 1);
	nb_metrics_delivery(m, 200, 3, 0.1);
	nb_metrics_delivery(m, 200, 2, 0.1);
	nb_metrics_delivery(m, 500, 2, 0.1);
	nb_metrics_delivery(m, 0, 2, 10.0);
	nb_metrics_delivered(m, 3, 1.0);
	nb_metrics_delivered(m, 2, 1.0);
	nb_metrics_retry(m, 3);
	nb_metrics_dead(m, "too_large", 2);
	nb_metrics_dead(m, "rejected_by_segment", 1);
	nb_metrics_dead(m, "invalid_for_segment", 4);
	nb_metrics_oauth(m, 200);
	nb_metrics_oauth(m, 200);
	nb_metrics_oauth(m, 401);
	nb_metrics_oauth(m, 0);
	nb_metrics_oauth(m, 700); /* out of range: counted as no answer */
	nb_metrics_sent(m, 1000, 200);
	nb_metrics_sent(m, 500, 50);
	text = render(m, NULL, 0, NULL, 0, 0);
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		assert_line(text, lines[i]);
	assert_no_line_prefix(
	    text, "nudgebridge_http_requests_total{status=\"1000\"");
	assert_no_line_prefix(
	    text, "nudgebridge_segment_requests_total{status=\"0\"");
	free(text);
	nb_metrics_free(m);
}

static void
test_histograms(void **state)
{
	static const char *const lines[] = {
	    /* commits: 0.0004, 0.003, 0.75 seconds; 1, 10, 600 events */
	    "nudgebridge_store_commit_seconds_bucket{le=\"0.0005\"} 1",
	    "nudgebridge_store_commit_seconds_bucket{le=\"0.001\"} 1",
	    "nudgebridge_store_commit_seconds_bucket{le=\"0.005\"} 2",
	    "nudgebridge_store_commit_seconds_bucket{le=\"0.5\"} 2",
	    "nudgebridge_store_commit_seconds_bucket{le=\"1\"} 3",
	    "nudgebridge_store_commit_seconds_bucket{le=\"+Inf\"} 3",
	    "nudgebridge_store_commit_seconds_count 3",
	    "nudgebridge_store_commit_events_bucket{le=\"1\"} 1",
	    "nudgebridge_store_commit_events_bucket{le=\"10\"} 2",
	    "nudgebridge_store_commit_events_bucket{le=\"500\"} 2",
	    "nudgebridge_store_commit_events_bucket{le=\"1000\"} 3",
	    "nudgebridge_store_commit_events_bucket{le=\"+Inf\"} 3",
	    "nudgebridge_store_commit_events_sum 611",
	    "nudgebridge_store_commit_events_count 3",
	    /* deliveries: 0.25 s and 40 s; 1 and 2500 messages */
	    "nudgebridge_segment_request_seconds_bucket{le=\"0.25\"} 1",
	    "nudgebridge_segment_request_seconds_bucket{le=\"30\"} 1",
	    "nudgebridge_segment_request_seconds_bucket{le=\"+Inf\"} 2",
	    "nudgebridge_segment_request_seconds_sum 40.25",
	    "nudgebridge_segment_request_seconds_count 2",
	    "nudgebridge_segment_batch_messages_bucket{le=\"1\"} 1",
	    "nudgebridge_segment_batch_messages_bucket{le=\"1000\"} 1",
	    "nudgebridge_segment_batch_messages_bucket{le=\"2500\"} 2",
	    "nudgebridge_segment_batch_messages_sum 2501",
	    /* 4 events delivered 0.5 s after receipt, 1 after 2 hours */
	    "nudgebridge_delivery_latency_seconds_bucket{le=\"0.25\"} 0",
	    "nudgebridge_delivery_latency_seconds_bucket{le=\"0.5\"} 4",
	    "nudgebridge_delivery_latency_seconds_bucket{le=\"3600\"} 4",
	    "nudgebridge_delivery_latency_seconds_bucket{le=\"21600\"} 5",
	    "nudgebridge_delivery_latency_seconds_bucket{le=\"+Inf\"} 5",
	    "nudgebridge_delivery_latency_seconds_sum 7202",
	    "nudgebridge_delivery_latency_seconds_count 5",
	};
	struct nb_metrics *m;
	char *text;
	size_t i;

	(void)state;
	assert_non_null(m = nb_metrics_new());
	nb_metrics_commit(m, 0.0004, 1);
	nb_metrics_commit(m, 0.003, 10);
	nb_metrics_commit(m, 0.75, 600);
	nb_metrics_delivery(m, 200, 1, 0.25);
	nb_metrics_delivery(m, 200, 2500, 40.0);
	nb_metrics_delivered(m, 4, 0.5);
	nb_metrics_delivered(m, 1, 7200.0);
	text = render(m, NULL, 0, NULL, 0, 0);
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		assert_line(text, lines[i]);
	free(text);
	nb_metrics_free(m);
}

static void
test_gauges(void **state)
{
	static const char *const lines[] = {
	    "nudgebridge_queue_pending{source=\"acme\"} 12",
	    "nudgebridge_queue_pending{source=\"beta\"} 0",
	    "nudgebridge_queue_inflight{source=\"acme\"} 4",
	    "nudgebridge_queue_dead{source=\"acme\"} 3",
	    "nudgebridge_queue_dead{source=\"beta\"} 7",
	    "nudgebridge_queue_oldest_pending_age_seconds{source=\"acme\"} "
	    "90.5",
	    "nudgebridge_queue_oldest_pending_age_seconds{source=\"beta\"} 0",
	    "nudgebridge_source_paused{source=\"acme\"} 0",
	    "nudgebridge_source_paused{source=\"beta\"} 1",
	    "nudgebridge_source_paused{source=\"gamma\"} 1",
	    "nudgebridge_source_paused_oauth{source=\"gamma\",error="
	    "\"invalid_client\"} 1",
	};
	struct nb_queue_gauge stats[2];
	struct nb_paused paused[2];
	struct nb_metrics *m;
	char *text;
	size_t i;

	(void)state;
	memset(stats, 0, sizeof(stats));
	memset(paused, 0, sizeof(paused));
	memcpy(stats[0].source, "acme", 5);
	stats[0].pending = 12;
	stats[0].inflight = 4;
	stats[0].dead = 3;
	stats[0].oldest_pending_ms = 1000000;
	memcpy(stats[1].source, "beta", 5);
	stats[1].dead = 7;
	memcpy(paused[0].source, "beta", 5);
	paused[0].status = 401;
	memcpy(paused[1].source, "gamma", 6);
	paused[1].status = 400;
	memcpy(paused[1].oauth_error, "invalid_client", 15);
	assert_non_null(m = nb_metrics_new());
	text = render(m, stats, 2, paused, 2, 1090500);
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		assert_line(text, lines[i]);
	/* Only the token endpoint's refusals have an OAuth line. */
	assert_no_line_prefix(
	    text, "nudgebridge_source_paused_oauth{source=\"beta\"");
	free(text);
	nb_metrics_free(m);
}

/* Every sample line belongs to a family announced by HELP and TYPE. */
static void
test_format(void **state)
{
	struct nb_metrics *m;
	char *text, *line, *save = NULL, family[128];
	const char *types = NULL;
	size_t n;

	(void)state;
	assert_non_null(m = nb_metrics_new());
	nb_metrics_request(m, 200, NULL);
	nb_metrics_delivery(m, 0, 1, 0.01);
	nb_metrics_commit(m, 0.01, 1);
	text = render(m, NULL, 0, NULL, 0, 0);
	assert_int_equal(text[strlen(text) - 1], '\n');
	family[0] = '\0';
	for (line = text; *line != '\0'; line = save) {
		save = strchr(line, '\n');
		assert_non_null(save);
		*save++ = '\0';
		if (strncmp(line, "# HELP ", 7) == 0) {
			n = strcspn(line + 7, " ");
			assert_true(n < sizeof(family));
			memcpy(family, line + 7, n);
			family[n] = '\0';
			types = NULL;
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			assert_int_equal(
			    strncmp(line + 7, family, strlen(family)), 0);
			types = line;
			continue;
		}
		assert_non_null(types);
		assert_int_equal(strncmp(line, family, strlen(family)), 0);
		assert_non_null(strchr(line, ' '));
	}
	free(text);
	nb_metrics_free(m);
}

static int
collect_cb(void *arg, struct evbuffer *out)
{
	int *calls = arg;

	(*calls)++;
	return evbuffer_add_printf(out, "nudgebridge_extra 1\n") < 0 ? -1 : 0;
}

static int
collect_fail_cb(void *arg, struct evbuffer *out)
{
	(void)arg;
	(void)out;
	return -1;
}

/*
 * Section 7's series: the skew histogram (both signs, finer near 0), the
 * filtered outcome, and families other modules render (collectors).
 */
static void
test_alert_series(void **state)
{
	struct nb_metrics *m = nb_metrics_new();
	struct evbuffer *out;
	char *text;
	int calls = 0, i;

	(void)state;
	assert_non_null(m);
	nb_metrics_skew(m, -400);
	nb_metrics_skew(m, -61);
	nb_metrics_skew(m, 0.4);
	nb_metrics_skew(m, 0.4);
	nb_metrics_skew(m, 45);
	nb_metrics_filtered(m, 3);
	nb_metrics_filtered(m, 2);
	assert_int_equal(nb_metrics_collect(m, collect_cb, &calls), 0);
	text = render(m, NULL, 0, NULL, 0, 0);
	assert_int_equal(calls, 1);
	assert_line(text, "nudgebridge_events_total{outcome=\"filtered\"} 5");
	assert_line(text,
	    "# TYPE nudgebridge_webhook_timestamp_skew_seconds histogram");
	assert_line(text,
	    "nudgebridge_webhook_timestamp_skew_seconds_bucket{le=\"-300\"} 1");
	assert_line(text,
	    "nudgebridge_webhook_timestamp_skew_seconds_bucket{le=\"-60\"} 2");
	assert_line(text,
	    "nudgebridge_webhook_timestamp_skew_seconds_bucket{le=\"0\"} 2");
	assert_line(text,
	    "nudgebridge_webhook_timestamp_skew_seconds_bucket{le=\"1\"} 4");
	assert_line(text,
	    "nudgebridge_webhook_timestamp_skew_seconds_bucket{le=\"60\"} 5");
	assert_line(text,
	    "nudgebridge_webhook_timestamp_skew_seconds_bucket{le=\"+Inf\"} 5");
	assert_line(text, "nudgebridge_webhook_timestamp_skew_seconds_count 5");
	assert_line(text, "nudgebridge_extra 1");
	free(text);
	/* A bounded number of collectors; a failing one fails the render. */
	for (i = 1; i < NB_METRICS_COLLECTORS; i++)
		assert_int_equal(
		    nb_metrics_collect(m, collect_fail_cb, NULL), 0);
	assert_int_equal(nb_metrics_collect(m, collect_cb, &calls), -1);
	assert_non_null(out = evbuffer_new());
	assert_int_equal(nb_metrics_render(m, NULL, 0, out), -1);
	evbuffer_free(out);
	nb_metrics_free(m);
}

static void
test_null(void **state)
{
	(void)state;
	nb_metrics_request(NULL, 200, NULL);
	nb_metrics_events(NULL, 1, 1, 1);
	nb_metrics_commit(NULL, 1, 1);
	nb_metrics_delivery(NULL, 200, 1, 1);
	nb_metrics_retry(NULL, 1);
	nb_metrics_dead(NULL, "too_large", 1);
	nb_metrics_delivered(NULL, 1, 1);
	nb_metrics_sent(NULL, 1, 1);
	nb_metrics_oauth(NULL, 200);
	nb_metrics_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counters),
	    cmocka_unit_test(test_histograms),
	    cmocka_unit_test(test_gauges),
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_alert_series),
	    cmocka_unit_test(test_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
