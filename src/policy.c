/* SPDX-License-Identifier: ISC */
/*
 * policy: the rules the deliverer applies to answers, as pure functions.
 *
 * Header values arrive as libcurl hands them over (the bytes after the
 * colon, blanks and CR LF included) and are parsed strictly: a value that
 * is not exactly a number or a date counts as absent, never as zero or as
 * a huge wait.  Waits are capped at a day so a hostile or broken answer can
 * hold a lane at most that long.  No state, no allocation, no logging.
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <sodium.h>

#include "nudgebridge/policy.h"

enum nb_policy_outcome
nb_policy_outcome(long status)
{
	if (status >= 200 && status < 300)
		return NB_POLICY_DELIVERED;
	if (status == 400)
		return NB_POLICY_BISECT;
	if (status == 401 || status == 403)
		return NB_POLICY_PAUSE;
	return NB_POLICY_RETRY;
}

int64_t
nb_policy_backoff_ms(
    const struct nb_retry_config *r, int attempts, int64_t floor_ms)
{
	int64_t delay, cap, lo;
	int i;

	delay = r->initial_ms > 0 ? r->initial_ms : 0;
	cap = r->max_ms > 0 ? r->max_ms : 0;
	for (i = 1; i < attempts && delay < cap; i++)
		delay *= 2;
	if (delay > cap)
		delay = cap;
	if (delay > 0) {
		lo = delay / 2;
		delay = lo +
		    (int64_t)randombytes_uniform((uint32_t)(delay - lo + 1));
	}
	if (floor_ms > delay)
		delay = floor_ms;
	return delay;
}

/* Copies v without surrounding blanks and CR LF into buf; 0 or -1. */
static int
trimmed(const char *v, size_t len, char *buf, size_t buflen)
{
	while (len > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len > 0 &&
	    (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' ||
		v[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= buflen)
		return -1;
	memcpy(buf, v, len);
	buf[len] = '\0';
	return 0;
}

static int64_t
cap_wait(int64_t ms)
{
	if (ms <= 0)
		return 0;
	return ms > NB_POLICY_WAIT_MAX_MS ? NB_POLICY_WAIT_MAX_MS : ms;
}

int64_t
nb_policy_retry_after_ms(const char *v, size_t len, int64_t now_ms)
{
	char buf[128], *end;
	long long secs;
	time_t t;

	if (v == NULL || trimmed(v, len, buf, sizeof(buf)) == -1)
		return 0;
	if (buf[0] >= '0' && buf[0] <= '9') {
		secs = strtoll(buf, &end, 10);
		if (*end != '\0' || secs < 0)
			return 0;
		if (secs > NB_POLICY_WAIT_MAX_MS / 1000)
			return NB_POLICY_WAIT_MAX_MS;
		return (int64_t)secs * 1000;
	}
	if ((t = curl_getdate(buf, NULL)) <= 0)
		return 0;
	return cap_wait((int64_t)t * 1000 - now_ms);
}

int64_t
nb_policy_ratelimit_reset_ms(const char *v, size_t len, int64_t now_ms)
{
	char buf[64];
	int64_t whole = 0, frac = 0, scale = 1000, ms;
	const char *p;

	if (v == NULL || trimmed(v, len, buf, sizeof(buf)) == -1)
		return 0;
	for (p = buf; *p >= '0' && *p <= '9'; p++) {
		if (whole > INT64_MAX / 10000)
			return NB_POLICY_WAIT_MAX_MS;
		whole = whole * 10 + (*p - '0');
	}
	if (p == buf)
		return 0;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++) {
			scale /= 10;
			frac += (*p - '0') * scale;
		}
		if (p[-1] == '.')
			return 0;
	}
	if (*p != '\0')
		return 0;
	if (whole > NB_POLICY_RESET_EPOCH_MIN)
		ms = whole * 1000 + frac - now_ms;
	else
		ms = whole * 1000 + frac;
	return cap_wait(ms);
}

int64_t
nb_policy_wait_ms(long status, int64_t retry_after_ms, int64_t reset_ms)
{
	if (retry_after_ms > 0)
		return retry_after_ms;
	return status == 429 && reset_ms > 0 ? reset_ms : 0;
}

size_t
nb_policy_message_limit(const struct nb_segment_config *sc, size_t overhead)
{
	size_t limit = sc->max_message_bytes;

	if (sc->max_batch_bytes < overhead + limit)
		limit = sc->max_batch_bytes > overhead
		    ? sc->max_batch_bytes - overhead
		    : 0;
	return limit;
}
