/* SPDX-License-Identifier: ISC */
/*
 * alert: one step function per condition, and the notification bodies.
 *
 * Every condition is "active or not" at an instant, and a state fires on
 * the first active step and resolves on the first inactive one, with
 * refinements the contract asks for: source_paused lasts until no
 * instance has seen the pause for a grace, and remembers when one last
 * did; dead_letters is about *new* dead letters (the store's monotonic
 * total against the total already counted), repeats at most once per
 * repeat_s while more come and resolves once a repeat_s passes with none;
 * source_silent resolves only on a request that came after it fired, so a
 * restart neither resolves nor repeats it.  A figure that could not be
 * read changes nothing.  The summary and details are rebuilt at every
 * notification, so a stored state always holds what was told last.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nudgebridge/alert.h"
#include "nudgebridge/buf.h"
#include "nudgebridge/timeutil.h"

static const char *const names[NB_ALERT_KINDS] = {
    [NB_ALERT_SOURCE_PAUSED] = "source_paused",
    [NB_ALERT_DEAD_LETTERS] = "dead_letters",
    [NB_ALERT_BACKLOG_AGE] = "backlog_age",
    [NB_ALERT_SOURCE_SILENT] = "source_silent",
    [NB_ALERT_STORE_UNAVAILABLE] = "store_unavailable",
};

const char *
nb_alert_name(enum nb_alert_kind k)
{
	if ((int)k < 0 || k >= NB_ALERT_KINDS)
		return "unknown";
	return names[k];
}

int
nb_alert_parse(const char *name, enum nb_alert_kind *out)
{
	int k;

	for (k = 0; k < NB_ALERT_KINDS; k++)
		if (strcmp(names[k], name) == 0) {
			*out = (enum nb_alert_kind)k;
			return 0;
		}
	return -1;
}

static void summary(struct nb_alert_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
summary(struct nb_alert_state *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(st->summary, sizeof(st->summary), fmt, ap) < 0)
		st->summary[0] = '\0';
	va_end(ap);
}

/* Stores d (taken) as the details; "{}" when it does not fit. */
static void
details(struct nb_alert_state *st, json_t *d)
{
	char *text = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;

	if (text != NULL && strlen(text) < sizeof(st->details))
		memcpy(st->details, text, strlen(text) + 1);
	else
		memcpy(st->details, "{}", 3);
	free(text);
	json_decref(d);
}

static double
seconds(int64_t ms)
{
	return (double)ms / 1000.0;
}

static enum nb_alert_notify
fire(struct nb_alert_state *st, int64_t now, int *changed)
{
	st->firing = 1;
	st->started_ms = now;
	st->resolved_ms = 0;
	st->notified_ms = now;
	*changed = 1;
	return NB_ALERT_FIRING;
}

static enum nb_alert_notify
resolve(struct nb_alert_state *st, int64_t now, int *changed)
{
	st->firing = 0;
	st->resolved_ms = now;
	*changed = 1;
	return NB_ALERT_RESOLVED;
}

/*
 * A firing state remembers when a pause was last seen (changed_ms), so
 * that a lane between two pauses, which no instance reports while it
 * tries again, is still counted as paused for the grace.
 */
static enum nb_alert_notify
step_paused(struct nb_alert_state *st, const struct nb_alert_obs *o,
    const struct nb_alert_params *p, int *changed)
{
	int64_t seen = o->paused_seen_ms;
	int active;

	if (st->firing && st->changed_ms > seen)
		seen = st->changed_ms;
	active = seen > 0 && o->now_ms - seen <= p->pause_grace_ms;
	if (active && st->firing && o->paused_seen_ms > st->changed_ms) {
		st->changed_ms = o->paused_seen_ms;
		*changed = 1;
	}
	if (active && !st->firing) {
		(void)snprintf(st->text, sizeof(st->text), "%s",
		    o->paused_text != NULL ? o->paused_text : "");
		summary(st, "Delivery of source %s is paused: %s", st->source,
		    st->text[0] != '\0' ? st->text
					: "Segment refused its credentials");
		details(st,
		    json_pack("{s:i, s:s}", "status", o->paused_status, "error",
			st->text));
		st->changed_ms = o->paused_seen_ms;
		return fire(st, o->now_ms, changed);
	}
	if (!active && st->firing) {
		summary(st, "Delivery of source %s resumed", st->source);
		return resolve(st, o->now_ms, changed);
	}
	return NB_ALERT_QUIET;
}

/* One dead_letters notification about the n new ones. */
static void
dead_tell(struct nb_alert_state *st, int64_t n, const struct nb_alert_obs *o,
    const struct nb_alert_params *p)
{
	summary(st, "%lld new dead letter%s in source %s (main reason: %s)",
	    (long long)n, n == 1 ? "" : "s", st->source,
	    st->text[0] != '\0' ? st->text : "unknown");
	details(st,
	    json_pack("{s:I, s:s, s:I, s:I}", "count", (json_int_t)n, "reason",
		st->text[0] != '\0' ? st->text : "unknown", "dead_total",
		(json_int_t)o->dead_total, "repeat_s",
		(json_int_t)(p->repeat_ms / 1000)));
}

static enum nb_alert_notify
step_dead(struct nb_alert_state *st, const struct nb_alert_obs *o,
    const struct nb_alert_params *p, int *changed)
{
	int64_t fresh, now = o->now_ms;

	if (!o->have_queue)
		return NB_ALERT_QUIET;
	/*
	 * A state is made for every source when the store gets the alert
	 * tables, holding its dead letters then; a source without one came
	 * later, and all its dead letters are new.  A total that went down
	 * (another store behind the same name) starts over from there.
	 */
	if (o->dead_total < st->mark) {
		st->mark = o->dead_total;
		*changed = 1;
	}
	fresh = o->dead_total - st->mark;
	if (fresh > 0) {
		st->mark = o->dead_total;
		st->changed_ms = now;
		if (o->dead_reason != NULL)
			(void)snprintf(
			    st->text, sizeof(st->text), "%s", o->dead_reason);
		*changed = 1;
	}
	if (!st->firing) {
		if (fresh == 0)
			return NB_ALERT_QUIET;
		st->pending = 0;
		dead_tell(st, fresh, o, p);
		return fire(st, now, changed);
	}
	st->pending += fresh;
	if (now - st->notified_ms < p->repeat_ms)
		return NB_ALERT_QUIET;
	if (st->pending > 0) {
		dead_tell(st, st->pending, o, p);
		st->pending = 0;
		st->notified_ms = now;
		*changed = 1;
		return NB_ALERT_FIRING;
	}
	if (now - st->changed_ms < p->repeat_ms)
		return NB_ALERT_QUIET;
	summary(st, "No new dead letters in source %s for %lld s", st->source,
	    (long long)(p->repeat_ms / 1000));
	return resolve(st, now, changed);
}

static enum nb_alert_notify
step_backlog(struct nb_alert_state *st, const struct nb_alert_obs *o,
    const struct nb_alert_params *p, int *changed)
{
	int64_t age;

	if (!o->have_queue)
		return NB_ALERT_QUIET;
	age = o->oldest_pending_ms > 0 ? o->now_ms - o->oldest_pending_ms : 0;
	if (age > p->backlog_age_ms && !st->firing) {
		summary(st,
		    "The oldest pending event of source %s is %lld s old "
		    "(threshold %lld s)",
		    st->source, (long long)(age / 1000),
		    (long long)(p->backlog_age_ms / 1000));
		details(st,
		    json_pack("{s:f, s:I, s:I}", "age_s", seconds(age),
			"pending", (json_int_t)o->pending, "threshold_s",
			(json_int_t)(p->backlog_age_ms / 1000)));
		return fire(st, o->now_ms, changed);
	}
	if (age <= p->backlog_age_ms && st->firing) {
		summary(st, "The backlog of source %s is back under %lld s",
		    st->source, (long long)(p->backlog_age_ms / 1000));
		return resolve(st, o->now_ms, changed);
	}
	return NB_ALERT_QUIET;
}

static enum nb_alert_notify
step_silent(
    struct nb_alert_state *st, const struct nb_alert_obs *o, int *changed)
{
	char last[NB_TIME_ISO_LEN];
	int64_t base;

	if (!o->have_received)
		return NB_ALERT_QUIET;
	if (st->firing &&
	    (o->silent_after_ms == 0 || o->last_received_ms > st->mark)) {
		summary(st,
		    o->silent_after_ms == 0
			? "Source %s is no longer watched for silence"
			: "Source %s sent a verified request again",
		    st->source);
		return resolve(st, o->now_ms, changed);
	}
	if (st->firing || o->silent_after_ms == 0)
		return NB_ALERT_QUIET;
	base = o->last_received_ms > o->start_ms ? o->last_received_ms
						 : o->start_ms;
	if (o->now_ms - base <= o->silent_after_ms)
		return NB_ALERT_QUIET;
	st->mark = o->last_received_ms;
	if (o->last_received_ms > 0)
		nb_time_format_iso(o->last_received_ms, last);
	summary(st, "No verified request from source %s for %lld s", st->source,
	    (long long)((o->now_ms - base) / 1000));
	details(st,
	    json_pack("{s:I, s:o}", "silent_after_s",
		(json_int_t)(o->silent_after_ms / 1000), "last_received_at",
		o->last_received_ms > 0 ? json_string(last) : json_null()));
	return fire(st, o->now_ms, changed);
}

static enum nb_alert_notify
step_store(struct nb_alert_state *st, const struct nb_alert_obs *o,
    const struct nb_alert_params *p, int *changed)
{
	char since[NB_TIME_ISO_LEN];
	int64_t bad = o->store_bad_since_ms;

	if (bad > 0 && o->now_ms - bad > p->store_unavailable_ms &&
	    !st->firing) {
		nb_time_format_iso(bad, since);
		summary(st,
		    "The store has not committed for %lld s; webhooks are "
		    "answered 503",
		    (long long)((o->now_ms - bad) / 1000));
		details(st,
		    json_pack("{s:s, s:s}", "failing_since", since, "instance",
			o->instance != NULL ? o->instance : ""));
		return fire(st, o->now_ms, changed);
	}
	if (bad == 0 && st->firing) {
		summary(st, "The store commits again");
		return resolve(st, o->now_ms, changed);
	}
	return NB_ALERT_QUIET;
}

enum nb_alert_notify
nb_alert_step(struct nb_alert_state *st, const struct nb_alert_obs *obs,
    const struct nb_alert_params *p, int *changed)
{
	enum nb_alert_notify r = NB_ALERT_QUIET;

	switch (st->kind) {
	case NB_ALERT_SOURCE_PAUSED:
		r = step_paused(st, obs, p, changed);
		break;
	case NB_ALERT_DEAD_LETTERS:
		r = step_dead(st, obs, p, changed);
		break;
	case NB_ALERT_BACKLOG_AGE:
		r = step_backlog(st, obs, p, changed);
		break;
	case NB_ALERT_SOURCE_SILENT:
		r = step_silent(st, obs, changed);
		break;
	case NB_ALERT_STORE_UNAVAILABLE:
		r = step_store(st, obs, p, changed);
		break;
	case NB_ALERT_KINDS:
		break;
	}
	if (*changed)
		st->known = 1;
	return r;
}

int
nb_alert_body(
    const struct nb_alert_state *st, enum nb_alert_notify what, char **out)
{
	char started[NB_TIME_ISO_LEN], resolved[NB_TIME_ISO_LEN];
	json_t *o = NULL, *d;
	int rc = -1;

	*out = NULL;
	nb_time_format_iso(st->started_ms, started);
	if ((d = json_loads(st->details, 0, NULL)) != NULL &&
	    !json_is_object(d)) {
		json_decref(d);
		d = NULL;
	}
	if (d == NULL && (d = json_object()) == NULL)
		return -1;
	o = json_pack("{s:s, s:s, s:o, s:s, s:s, s:o}", "alert",
	    nb_alert_name(st->kind), "status",
	    what == NB_ALERT_RESOLVED ? "resolved" : "firing", "source",
	    st->source[0] != '\0' ? json_string(st->source) : json_null(),
	    "summary", st->summary, "started_at", started, "details", d);
	if (o == NULL)
		goto out;
	if (what == NB_ALERT_RESOLVED) {
		nb_time_format_iso(st->resolved_ms, resolved);
		if (json_object_set_new(
			o, "resolved_at", json_string(resolved)) == -1)
			goto out;
	}
	if ((*out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)) != NULL)
		rc = 0;
out:
	json_decref(o);
	return rc;
}

/* s with Slack's three markup characters escaped, into b. */
static void
slack_escape(struct nb_buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '&')
			nb_buf_adds(b, "&amp;");
		else if (*s == '<')
			nb_buf_adds(b, "&lt;");
		else if (*s == '>')
			nb_buf_adds(b, "&gt;");
		else
			nb_buf_addc(b, *s);
	}
}

int
nb_alert_slack(const char *body, char **out)
{
	const char *status, *alert, *sum;
	json_t *b, *o = NULL;
	struct nb_buf text;
	int rc = -1;

	*out = NULL;
	nb_buf_init(&text, 4 * NB_ALERT_SUMMARY_MAX + 128);
	if ((b = json_loads(body, 0, NULL)) == NULL)
		goto out;
	status = json_string_value(json_object_get(b, "status"));
	alert = json_string_value(json_object_get(b, "alert"));
	sum = json_string_value(json_object_get(b, "summary"));
	if (status == NULL || alert == NULL || sum == NULL)
		goto out;
	nb_buf_adds(&text,
	    strcmp(status, "resolved") == 0 ? ":white_check_mark: [RESOLVED] "
					    : ":rotating_light: [FIRING] ");
	nb_buf_adds(&text, alert);
	nb_buf_adds(&text, ": ");
	slack_escape(&text, sum);
	if (nb_buf_failed(&text) ||
	    (o = json_pack("{s:s}", "text", nb_buf_str(&text))) == NULL ||
	    (*out = json_dumps(o, JSON_COMPACT)) == NULL)
		goto out;
	rc = 0;
out:
	nb_buf_free(&text);
	json_decref(o);
	json_decref(b);
	return rc;
}
