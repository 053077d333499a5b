/* SPDX-License-Identifier: ISC */
/*
 * lane: claim, map, check, pack, send, and apply the answer.
 *
 * A lane claims only when it can send at once (a token of the bucket, room
 * under max_inflight, a usable OAuth token), so rows are never leased just
 * to wait in memory.  Every claimed row ends in exactly one of: delivered,
 * retried (an attempt counted), dead-lettered, or released (no attempt:
 * pause, shutdown, bisection of a lane that stopped).  A lease that runs
 * out is the backstop after a crash.  Rows of a source no longer
 * configured are released, never sent under another source's key.
 * Outcomes by status are policy.h's; the comment above lane_sent_cb() says
 * what each does here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "nudgebridge/batch.h"
#include "nudgebridge/config.h"
#include "nudgebridge/lane.h"
#include "nudgebridge/log.h"
#include "nudgebridge/metrics.h"
#include "nudgebridge/policy.h"
#include "nudgebridge/redact.h"
#include "nudgebridge/segcheck.h"
#include "nudgebridge/segment.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"
#include "nudgebridge/xfer.h"

#define LEASE_MARGIN_MS 5000 /* lease beyond one request timeout */
#define EXCERPT_MAX	200  /* bytes of a 400 body kept as error */
#define EXCERPT_KEEP	4096 /* bytes of an answer read to redact it */

struct nb_lane {
	int refs; /* the lane table and each request in flight */
	int retired;
	struct nb_lane_env *env;
	struct nb_config *cfg; /* keeps write_key and srcs alive */
	const struct nb_segment_config *sc;
	const char *write_key; /* borrowed from cfg */
	char *url;
	const struct nb_source **srcs;
	const char **names;
	size_t nsources;
	char *label; /* source names joined by ',', for logs */
	const struct nb_oauth_config *oauth; /* borrowed, or NULL */
	struct nb_oauth_client *oc;
	char *tail;	     /* OAuth: ,"writeKey":"..." (a secret, wiped) */
	size_t overhead;     /* envelope bytes of one batch */
	int reauth;	     /* a 401 dropped a token; a fresh one's pauses */
	unsigned reauth_gen; /* the token it dropped */
	int inflight;
	double tokens;
	int64_t tokens_mono_ms;
	int64_t hold_until_ms; /* wall clock: 429 */
	struct nb_lane_pause pause;
	int idle; /* the last claim found nothing due */
	struct nb_batch_queue q;
};

/* One batch in flight. */
struct send {
	struct nb_lane *l;
	struct nb_batch *b;
	unsigned gen;		/* the OAuth token it carries */
	const char *secrets[2]; /* for redaction: write key, token copy */
	char *token;
};

int
nb_lane_map_segment(const struct nb_source *src,
    const struct nb_segment_origin *o, const char *raw, size_t rawlen,
    char **out, size_t *outlen, const char **why)
{
	return nb_segment_track_text(
	    &src->mapping, o, raw, rawlen, out, outlen, why);
}

static int64_t
lease_ms(const struct nb_lane *l)
{
	int64_t ms = (int64_t)l->cfg->store.lease_s * 1000;

	if (ms < (int64_t)l->sc->timeout_ms + LEASE_MARGIN_MS)
		ms = (int64_t)l->sc->timeout_ms + LEASE_MARGIN_MS;
	return ms;
}

/* Rows. */

/* Releases b's rows (att: the attempt that led to it, or NULL); frees b. */
static void
release_batch(
    struct nb_lane *l, struct nb_batch *b, struct nb_store_attempt *att)
{
	int64_t *seqs;

	if (b == NULL)
		return;
	if ((seqs = nb_batch_seqs(b)) != NULL) {
		(void)nb_store_release(l->env->store, seqs, b->n, att);
		free(seqs);
	}
	nb_batch_free(b);
}

static void
dead_rows(struct nb_lane *l, const int64_t *seqs, size_t n, const char *reason,
    const char *error, int64_t now, struct nb_store_attempt *att)
{
	if (n > 0 &&
	    nb_store_dead(l->env->store, seqs, n, reason, error, now, att) == 0)
		nb_metrics_dead(l->env->m, reason, n);
}

void
nb_lane_release_queue(struct nb_lane *l)
{
	struct nb_batch *b;

	while ((b = nb_batch_pop(&l->q)) != NULL)
		release_batch(l, b, NULL);
}

/* The table. */

static void
lane_unref(struct nb_lane *l)
{
	if (l == NULL || --l->refs > 0)
		return;
	nb_oauth_client_free(l->oc);
	if (l->tail != NULL) {
		sodium_memzero(l->tail, strlen(l->tail));
		free(l->tail);
	}
	free(l->url);
	free(l->srcs);
	free(l->names);
	free(l->label);
	nb_config_unref(l->cfg);
	free(l);
}

static void oauth_cb(
    enum nb_oauth_event ev, const struct nb_oauth_refusal *r, void *arg);

/* ,"writeKey":"<the key as a JSON string>" */
static char *
write_key_tail(const char *key)
{
	json_t *s;
	char *text, *tail = NULL;
	size_t n;

	if ((s = json_string(key)) == NULL)
		return NULL;
	if ((text = json_dumps(s, JSON_ENCODE_ANY)) != NULL) {
		n = strlen(text) + sizeof(",\"writeKey\":");
		if ((tail = malloc(n)) != NULL)
			(void)snprintf(tail, n, ",\"writeKey\":%s", text);
		sodium_memzero(text, strlen(text));
		free(text);
	}
	sodium_memzero((char *)(uintptr_t)json_string_value(s), strlen(key));
	json_decref(s);
	return tail;
}

static struct nb_lane *
lane_new(
    struct nb_config *cfg, struct nb_lane_env *env, const struct nb_source *src)
{
	struct nb_lane *l;
	size_t n;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->refs = 1;
	l->env = env;
	l->cfg = nb_config_ref(cfg);
	l->sc = &cfg->segment;
	l->write_key = src->write_key;
	l->oauth = src->oauth.key != NULL ? &src->oauth : NULL;
	n = strlen(src->endpoint);
	while (n > 0 && src->endpoint[n - 1] == '/')
		n--;
	if ((l->url = malloc(n + sizeof("/v1/batch"))) == NULL)
		goto fail;
	memcpy(l->url, src->endpoint, n);
	memcpy(l->url + n, "/v1/batch", sizeof("/v1/batch"));
	if (l->oauth != NULL &&
	    (l->tail = write_key_tail(l->write_key)) == NULL)
		goto fail;
	l->overhead = nb_batch_overhead(l->tail != NULL ? strlen(l->tail) : 0);
	l->tokens = l->sc->rate_limit_rps > 1 ? l->sc->rate_limit_rps : 1;
	l->tokens_mono_ms = nb_time_mono_ms();
	return l;
fail:
	lane_unref(l);
	return NULL;
}

static int
lane_add_source(struct nb_lane *l, const struct nb_source *src)
{
	const struct nb_source **srcs;
	const char **names;
	size_t len;
	char *label;

	if ((srcs = realloc(l->srcs, (l->nsources + 1) * sizeof(*srcs))) ==
	    NULL)
		return -1;
	l->srcs = srcs;
	if ((names = realloc(l->names, (l->nsources + 1) * sizeof(*names))) ==
	    NULL)
		return -1;
	l->names = names;
	len = l->label == NULL ? 0 : strlen(l->label);
	if ((label = realloc(l->label, len + strlen(src->name) + 2)) == NULL)
		return -1;
	if (len > 0)
		label[len++] = ',';
	memcpy(label + len, src->name, strlen(src->name) + 1);
	l->label = label;
	l->srcs[l->nsources] = src;
	l->names[l->nsources] = src->name;
	l->nsources++;
	return 0;
}

/* 1 when src is sent the way lane l sends. */
static int
lane_fits(const struct nb_lane *l, const struct nb_source *src)
{
	const struct nb_source *first = l->srcs[0];

	if (strcmp(first->write_key, src->write_key) != 0 ||
	    strcmp(first->endpoint, src->endpoint) != 0)
		return 0;
	return nb_oauth_config_same(&first->oauth, &src->oauth);
}

int
nb_lane_build(struct nb_config *cfg, struct nb_lane_env *env,
    struct nb_lane ***out, size_t *nout)
{
	struct nb_lane **lanes = NULL, *l;
	const struct nb_source *src;
	size_t i, j, n = 0;
	int rc = -1;

	if (cfg->nsources > 0 &&
	    (lanes = calloc(cfg->nsources, sizeof(*lanes))) == NULL)
		goto out;
	for (i = 0; i < cfg->nsources; i++) {
		src = &cfg->sources[i];
		if (src->write_key == NULL || src->endpoint == NULL)
			continue;
		for (j = 0, l = NULL; j < n && l == NULL; j++)
			if (lane_fits(lanes[j], src))
				l = lanes[j];
		if (l == NULL) {
			if ((l = lane_new(cfg, env, src)) == NULL)
				goto out;
			lanes[n++] = l;
		}
		if (lane_add_source(l, src) == -1)
			goto out;
	}
	/* Clients last: they borrow the finished label. */
	for (j = 0; j < n; j++)
		if (lanes[j]->oauth != NULL &&
		    (lanes[j]->oc = nb_oauth_client_new(lanes[j]->oauth,
			 &cfg->segment.retry, cfg->segment.timeout_ms, env->mx,
			 env->m, lanes[j]->label, oauth_cb, lanes[j])) == NULL)
			goto out;
	rc = 0;
out:
	if (rc == -1) {
		log_error("out of memory", " sources=%zu", cfg->nsources);
		for (j = 0; j < n; j++)
			lane_unref(lanes[j]);
		free(lanes);
		lanes = NULL;
		n = 0;
	}
	*out = lanes;
	*nout = n;
	return rc;
}

void
nb_lane_retire(struct nb_lane *l)
{
	nb_lane_release_queue(l);
	l->retired = 1;
	lane_unref(l);
}

const struct nb_lane_pause *
nb_lane_paused(const struct nb_lane *l)
{
	return l->pause.status != 0 ? &l->pause : NULL;
}

const char *const *
nb_lane_sources(const struct nb_lane *l, size_t *n)
{
	*n = l->nsources;
	return l->names;
}

/* Pauses. */

static void
lane_pause(struct nb_lane *l, int status, int64_t now, int oauth,
    const char *error, const char *detail)
{
	if (l->retired)
		return;
	if (l->pause.status == 0) {
		memset(&l->pause, 0, sizeof(l->pause));
		l->pause.status = status;
		l->pause.until_ms = now + (int64_t)l->sc->pause_s * 1000;
		l->pause.oauth = oauth;
		(void)snprintf(
		    l->pause.error, sizeof(l->pause.error), "%s", error);
		(void)snprintf(
		    l->pause.detail, sizeof(l->pause.detail), "%s", detail);
		l->env->paused_dirty = 1;
		if (oauth)
			log_warn("the oauth token endpoint refused the "
				 "credentials, delivery paused",
			    " sources=%s status=%d error=%s pause_s=%d",
			    l->label, status, error, l->sc->pause_s);
		else
			log_warn(
			    "segment refused the write key, delivery paused",
			    " sources=%s status=%d pause_s=%d", l->label,
			    status, l->sc->pause_s);
	}
	nb_lane_release_queue(l);
}

static void
lane_resume(struct nb_lane *l)
{
	log_info("delivery resumed after pause", " sources=%s", l->label);
	memset(&l->pause, 0, sizeof(l->pause));
	l->reauth = 0;
	if (l->oc != NULL)
		nb_oauth_client_reset(l->oc);
	l->env->paused_dirty = 1;
}

static void
oauth_cb(enum nb_oauth_event ev, const struct nb_oauth_refusal *r, void *arg)
{
	struct nb_lane *l = arg;

	if (ev == NB_OAUTH_REFUSED)
		lane_pause(l, (int)r->status, nb_time_now_ms(), 1, r->error,
		    r->detail);
	l->env->kick(l->env->kick_arg);
}

/* Claims, maps and queues. */

/*
 * The message of row r in *msg, or NULL (and the row dead-lettered) when
 * it must not be sent.  -1 when the claim should stop (out of memory).
 */
static int
lane_map(struct nb_lane *l, const struct nb_stored_event *r,
    const struct nb_source *src, size_t limit, int64_t now, char **msg,
    size_t *len)
{
	struct nb_segment_origin o = {src->name, r->rule, &l->env->install};
	enum nb_segcheck_result chk;
	const char *why = NULL;
	char error[128];

	*msg = NULL;
	if (l->env->map(src, &o, r->raw, r->rawlen, msg, len, &why) == -1) {
		if (why == NULL || strcmp(why, "out of memory") == 0) {
			log_error("cannot map event", " key=%s", r->key);
			return -1;
		}
		(void)snprintf(error, sizeof(error), "mapping: %s", why);
		dead_rows(
		    l, &r->seq, 1, NB_REASON_QUARANTINED, error, now, NULL);
		return 0;
	}
	if (*len > limit) {
		(void)snprintf(error, sizeof(error),
		    "message of %zu bytes over the limit of %zu", *len, limit);
		dead_rows(l, &r->seq, 1, NB_REASON_TOO_LARGE, error, now, NULL);
	} else if ((chk = nb_segcheck_message(*msg, *len)) != NB_SEGCHECK_OK) {
		(void)snprintf(error, sizeof(error),
		    "segment would drop it: %s", nb_segcheck_result_str(chk));
		dead_rows(l, &r->seq, 1, NB_REASON_INVALID, error, now, NULL);
	} else
		return 0;
	free(*msg);
	*msg = NULL;
	return 0;
}

static const struct nb_source *
lane_source(const struct nb_lane *l, const char *name)
{
	size_t i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < l->nsources; i++)
		if (strcmp(l->names[i], name) == 0)
			return l->srcs[i];
	return NULL;
}

/*
 * Claims due rows and queues them as batches.  Returns how many rows were
 * claimed (all may have been dead-lettered), or -1 when the lane should
 * stop for this tick.
 */
static int
lane_claim(struct nb_lane *l, int64_t now)
{
	const struct nb_segment_config *sc = l->sc;
	struct nb_stored_event *rows = NULL, *r;
	struct nb_batch *last, *b;
	struct nb_item *items = NULL;
	int64_t lease_until = now + lease_ms(l);
	size_t i = 0, k, n = 0, ni = 0, len;
	size_t limit = nb_policy_message_limit(sc, l->overhead);
	const struct nb_source *src;
	char *msg;
	int rc = -1;

	if (nb_store_claim(l->env->store, l->names, l->nsources, now,
		lease_until, sc->max_batch_count, &rows, &n) == -1)
		return -1;
	l->idle = n == 0;
	if (n > 0 && (items = calloc(n, sizeof(*items))) == NULL) {
		log_error("out of memory", " rows=%zu", n);
		goto release;
	}
	for (; i < n; i++) {
		r = &rows[i];
		if (sc->retry.max_age_s > 0 &&
		    r->age_base_ms + sc->retry.max_age_s * 1000 < now) {
			dead_rows(l, &r->seq, 1, NB_REASON_MAX_AGE,
			    r->error != NULL ? r->error
					     : "not delivered within max_age_s",
			    now, NULL);
			continue;
		}
		if ((src = lane_source(l, r->source)) == NULL) {
			(void)nb_store_release(l->env->store, &r->seq, 1, NULL);
			continue;
		}
		if (lane_map(l, r, src, limit, now, &msg, &len) == -1)
			goto release;
		if (msg == NULL)
			continue;
		items[ni].seq = r->seq;
		items[ni].attempts = r->attempts;
		items[ni].received_ms = r->received_ms;
		items[ni].msg = msg;
		items[ni].len = len;
		ni++;
	}
	last = l->q.tail;
	if (nb_batch_pack(&l->q, items, ni, sc->max_batch_bytes, l->overhead,
		lease_until) == -1) {
		log_error("out of memory", " rows=%zu", ni);
		goto release;
	}
	/* The epoch read before this claim: the rows were not erased then. */
	for (b = last != NULL ? last->next : l->q.head; b != NULL; b = b->next)
		b->epoch = l->env->epoch;
	rc = (int)n;
	goto out;
release:
	/* Rows not settled go back: those mapped, and rows[i..n). */
	for (k = 0; k < ni; k++)
		(void)nb_store_release(l->env->store, &items[k].seq, 1, NULL);
	for (; i < n; i++)
		(void)nb_store_release(l->env->store, &rows[i].seq, 1, NULL);
out:
	nb_batch_items_free(items, ni);
	nb_stored_events_free(rows, n);
	return rc;
}

/* Answers. */

static void
on_success(struct nb_lane *l, struct nb_batch *b, int64_t now,
    struct nb_store_attempt *att)
{
	int64_t *seqs;
	size_t i;

	if ((seqs = nb_batch_seqs(b)) == NULL)
		return;
	if (nb_store_delivered(l->env->store, seqs, b->n, now, att) == 0)
		for (i = 0; i < b->n; i++)
			nb_metrics_delivered(l->env->m, 1,
			    (double)(now - b->items[i].received_ms) / 1000.0);
	free(seqs);
}

static void
on_retry(struct nb_lane *l, struct nb_batch *b, struct nb_store_attempt *att,
    int64_t floor_ms, int64_t now)
{
	const char *error = att->error;
	const struct nb_retry_config *r = &l->sc->retry;
	struct nb_store_retry *rows = NULL;
	int64_t *dead = NULL;
	size_t i, nr = 0, nd = 0;

	if ((rows = calloc(b->n, sizeof(*rows))) == NULL ||
	    (dead = calloc(b->n, sizeof(*dead))) == NULL) {
		log_error("out of memory", " n=%zu", b->n);
		goto out; /* the leases run out and the rows come back */
	}
	for (i = 0; i < b->n; i++) {
		if (r->max_attempts > 0 &&
		    b->items[i].attempts + 1 >= r->max_attempts) {
			dead[nd++] = b->items[i].seq;
			continue;
		}
		rows[nr].seq = b->items[i].seq;
		rows[nr].next_ms = now +
		    nb_policy_backoff_ms(r, b->items[i].attempts + 1, floor_ms);
		nr++;
	}
	if (nr > 0 && nb_store_retry(l->env->store, rows, nr, error, att) == 0)
		nb_metrics_retry(l->env->m, nr);
	dead_rows(l, dead, nd, NB_REASON_MAX_ATTEMPTS, error, now, att);
out:
	free(rows);
	free(dead);
}

/*
 * 400: a single message is dead; a larger batch is split in halves, its
 * rows linked to the attempt first (they stay leased).
 */
static void
on_rejected(struct nb_lane *l, struct send *s, const struct nb_xfer_answer *a,
    struct nb_store_attempt *att)
{
	struct nb_batch *h0, *h1;
	int64_t *seqs;

	if ((seqs = nb_batch_seqs(s->b)) == NULL) {
		release_batch(l, s->b, att);
		s->b = NULL;
		return;
	}
	if (s->b->n == 1) {
		dead_rows(
		    l, seqs, 1, NB_REASON_REJECTED, att->error, a->now_ms, att);
		free(seqs);
		return;
	}
	if (l->retired || l->pause.status != 0 ||
	    nb_batch_split(s->b, &h0, &h1) == -1) {
		free(seqs);
		release_batch(l, s->b, att);
		s->b = NULL;
		return;
	}
	(void)nb_store_link(l->env->store, seqs, h0->n + h1->n, att);
	free(seqs);
	s->b = NULL;
	nb_batch_push_head(&l->q, h1);
	nb_batch_push_head(&l->q, h0);
}

/*
 * 401/403 pause.  An OAuth lane's 401 first drops the token and tries a
 * fresh one, once; a 401 for a token already replaced or dropped only
 * releases the rows.
 */
static void
on_refused(struct nb_lane *l, struct send *s, const struct nb_xfer_answer *a,
    struct nb_store_attempt *att)
{
	unsigned cur;

	if (l->oc == NULL || a->status != 401) {
		lane_pause(l, (int)a->status, a->now_ms, 0, "",
		    l->oc != NULL ? "segment refused the OAuth token"
				  : "segment refused the write key");
	} else if (s->gen < (cur = nb_oauth_client_gen(l->oc)) ||
	    (l->reauth && s->gen <= l->reauth_gen)) {
		/* It carried a token that is already gone. */
	} else if (!l->reauth) {
		l->reauth = 1;
		l->reauth_gen = cur;
		log_info("segment refused the oauth token, fetching another",
		    " sources=%s", l->label);
		nb_oauth_client_drop(l->oc, cur);
	} else
		lane_pause(l, 401, a->now_ms, 0, "",
		    "segment refused a fresh OAuth token");
	release_batch(l, s->b, att);
	s->b = NULL;
}

static void
on_failed(struct nb_lane *l, struct send *s, const struct nb_xfer_answer *a,
    struct nb_store_attempt *att)
{
	int64_t wait =
	    nb_policy_wait_ms(a->status, a->retry_after_ms, a->reset_ms);

	if (a->status == 429 && wait > 0 && a->now_ms + wait > l->hold_until_ms)
		l->hold_until_ms = a->now_ms + wait;
	log_info("batch attempt failed",
	    " sources=%s status=%ld messages=%zu retry_after_ms=%lld", l->label,
	    a->status, s->b->n, (long long)wait);
	on_retry(l, s->b, att, wait, a->now_ms);
}

/*
 * The attempt a request was, for the store's history: when it started and
 * ended, Segment's status, and for a failure the error the rows record
 * (a 400 with the first bytes of the answer, credentials redacted).
 */
static void
attempt_of(const struct send *s, const struct nb_xfer_answer *a,
    struct nb_store_attempt *att, char *error, size_t errlen)
{
	char clean[EXCERPT_MAX + 1];

	memset(att, 0, sizeof(*att));
	att->end_ms = a->now_ms;
	att->at_ms = a->now_ms - (int64_t)(a->seconds * 1000.0);
	att->status = a->canceled ? 0 : (int)a->status;
	att->batch_size = s->b->n;
	if (a->canceled)
		(void)snprintf(error, errlen, "canceled");
	else if (a->timed_out)
		(void)snprintf(error, errlen, "segment: timeout");
	else if (a->status == 0)
		(void)snprintf(error, errlen, "segment: %s", a->error);
	else if (a->status == 400) {
		(void)nb_redact(a->body, a->bodylen, a->truncated, s->secrets,
		    2, clean, sizeof(clean));
		(void)snprintf(error, errlen, "segment: 400%s%s",
		    clean[0] != '\0' ? " " : "", clean);
	} else if (a->status < 200 || a->status > 299)
		(void)snprintf(error, errlen, "segment: %ld", a->status);
	else
		return;
	att->error = error;
}

static void
send_free(struct send *s)
{
	if (s->token != NULL) {
		sodium_memzero(s->token, strlen(s->token));
		free(s->token);
	}
	nb_batch_free(s->b);
	free(s);
}

/*
 * Outcomes (policy.h): 2xx delivered; no answer, 408, 429, 5xx and every
 * status not named retried with backoff (Retry-After, or on a 429
 * X-RateLimit-Reset, as a floor; a 429 also holds the lane); 400 bisected
 * down to single messages, which are dead-lettered; 401/403 pause the lane
 * and release its rows without counting an attempt, except an OAuth lane's
 * first 401, which only drops the token.  A canceled request (shutdown)
 * releases its rows.
 */
static void
lane_sent_cb(const struct nb_xfer_answer *a, void *arg)
{
	struct send *s = arg;
	struct nb_lane *l = s->l;
	struct nb_store_attempt att;
	char error[EXCERPT_MAX + 256];

	l->inflight--;
	attempt_of(s, a, &att, error, sizeof(error));
	if (a->canceled) {
		release_batch(l, s->b, &att);
		s->b = NULL;
	} else {
		nb_metrics_delivery(
		    l->env->m, (int)a->status, s->b->n, a->seconds);
		nb_metrics_sent(l->env->m, a->body_bytes, a->sent_bytes);
		switch (nb_policy_outcome(a->status)) {
		case NB_POLICY_DELIVERED:
			l->reauth = 0;
			on_success(l, s->b, a->now_ms, &att);
			break;
		case NB_POLICY_BISECT:
			on_rejected(l, s, a, &att);
			break;
		case NB_POLICY_PAUSE:
			on_refused(l, s, a, &att);
			break;
		case NB_POLICY_RETRY:
			on_failed(l, s, a, &att);
			break;
		}
	}
	send_free(s);
	l->env->kick(l->env->kick_arg);
	lane_unref(l);
}

/*
 * The erase protocol's half on this side (see nb_store_erase()): when the
 * store's erase epoch moved since b's rows were claimed, an erase may have
 * flagged or deleted some of them, so b keeps only the rows the store
 * still calls sendable and the others are let go.  Called after the lease
 * covers the send, just before it: an erase that flags a row after this
 * look waits for the send's answer.  0, or -1 when the store cannot tell
 * (b is then not to be sent).
 */
static int
lane_recheck(struct nb_lane *l, struct nb_batch *b)
{
	unsigned char *keep = NULL;
	int64_t epoch, *seqs = NULL;
	size_t i, k = 0;
	int rc = -1;

	if (nb_store_erase_epoch(l->env->store, &epoch) == -1)
		return -1;
	l->env->epoch = epoch;
	if (epoch == b->epoch)
		return 0;
	if ((seqs = nb_batch_seqs(b)) == NULL ||
	    (keep = calloc(b->n, 1)) == NULL ||
	    nb_store_sendable(l->env->store, seqs, b->n, keep) == -1)
		goto out;
	for (i = 0; i < b->n; i++)
		if (!keep[i])
			seqs[k++] = seqs[i];
	if (k > 0) {
		log_info("events dropped before a send: erased",
		    " sources=%s events=%zu", l->label, k);
		(void)nb_store_release(l->env->store, seqs, k, NULL);
	}
	(void)nb_batch_keep(b, keep);
	b->epoch = epoch;
	rc = 0;
out:
	free(keep);
	free(seqs);
	return rc;
}

/*
 * Sends b (taken; released on failure): 0 sent, 1 nothing left to send
 * (every row erased), -1 failed.
 */
static int
lane_send(struct nb_lane *l, struct nb_batch *b, const char *token,
    unsigned gen, int64_t now)
{
	struct nb_xfer_request req;
	struct send *s = NULL;
	int64_t *seqs, until;
	char *body = NULL;
	size_t len = 0;

	if (b->lease_until_ms < now + l->sc->timeout_ms + LEASE_MARGIN_MS) {
		until = now + lease_ms(l);
		if ((seqs = nb_batch_seqs(b)) != NULL) {
			if (nb_store_extend(l->env->store, seqs, b->n, until) ==
			    0)
				b->lease_until_ms = until;
			free(seqs);
		}
	}
	/* Past its lease a row may be another's, or erased: not sent. */
	if (b->lease_until_ms < now + l->sc->timeout_ms + LEASE_MARGIN_MS ||
	    lane_recheck(l, b) == -1) {
		log_error("cannot check a batch before its send", " sources=%s",
		    l->label);
		release_batch(l, b, NULL);
		return -1;
	}
	if (b->n == 0) {
		nb_batch_free(b);
		return 1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (token != NULL && (s->token = strdup(token)) == NULL) ||
	    nb_batch_body(b, now, l->tail, &body, &len) == -1) {
		log_error(
		    "cannot start a batch request", " sources=%s", l->label);
		if (s != NULL)
			send_free(s);
		release_batch(l, b, NULL);
		return -1;
	}
	s->l = l;
	s->b = b;
	s->gen = gen;
	s->secrets[0] = l->write_key;
	s->secrets[1] = s->token;
	memset(&req, 0, sizeof(req));
	req.url = l->url;
	req.content_type = "application/json";
	req.basic_user = token == NULL ? l->write_key : NULL;
	req.bearer = token;
	req.gzip = l->sc->gzip;
	req.timeout_ms = l->sc->timeout_ms;
	req.keep = EXCERPT_KEEP;
	if (nb_xfer_start(l->env->mx, &req, body, len, lane_sent_cb, s) == -1) {
		s->b = NULL;
		send_free(s);
		release_batch(l, b, NULL);
		return -1;
	}
	l->refs++;
	l->inflight++;
	l->idle = 0;
	return 0;
}

/* The loop's view. */

void
nb_lane_tick(struct nb_lane *l, int64_t now, int64_t mono)
{
	double budget = l->sc->rate_limit_rps;
	double rps = budget * l->env->rate_share, burst = rps > 1 ? rps : 1;
	const char *token = NULL;
	unsigned gen = 0;
	int sent;

	if (l->pause.status != 0) {
		if (now < l->pause.until_ms)
			return;
		lane_resume(l);
	}
	if (now < l->hold_until_ms)
		return;
	/* No share: the other instances do not count this one (yet). */
	if (budget > 0 && rps <= 0) {
		l->tokens_mono_ms = mono;
		return;
	}
	if (l->oc != NULL &&
	    (token = nb_oauth_client_token(l->oc, now, &gen)) == NULL)
		return;
	if (rps > 0) {
		l->tokens += (double)(mono - l->tokens_mono_ms) * rps / 1000.0;
		if (l->tokens > burst)
			l->tokens = burst;
	}
	l->tokens_mono_ms = mono;
	while (
	    l->inflight < l->sc->max_inflight && (rps <= 0 || l->tokens >= 1)) {
		if (l->q.head == NULL) {
			if (lane_claim(l, now) <= 0)
				break;
			continue;
		}
		if ((sent = lane_send(
			 l, nb_batch_pop(&l->q), token, gen, now)) == -1)
			break;
		if (sent == 0 && rps > 0)
			l->tokens -= 1;
	}
}

void
nb_lane_wake(struct nb_lane *l)
{
	l->idle = 0;
}

int
nb_lane_busy(struct nb_lane *l, int64_t now)
{
	if (l->q.head != NULL)
		return 1;
	if (l->pause.status != 0 && now < l->pause.until_ms)
		return 0;
	if (now < l->hold_until_ms)
		return 1;
	/* Without a token nothing is claimed: ask the store instead. */
	if (!l->idle && l->oc != NULL && l->inflight == 0 &&
	    !nb_oauth_client_ready(l->oc, now))
		return nb_lane_has_due(l, now);
	return !l->idle;
}

int
nb_lane_has_due(struct nb_lane *l, int64_t now)
{
	struct nb_stored_event *rows = NULL;
	size_t n = 0;

	if (nb_store_claim(l->env->store, l->names, l->nsources, now,
		now + 1000, 1, &rows, &n) == -1)
		return 1;
	if (n > 0)
		(void)nb_store_release(l->env->store, &rows[0].seq, 1, NULL);
	nb_stored_events_free(rows, n);
	return n > 0;
}
