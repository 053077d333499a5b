/* SPDX-License-Identifier: ISC */
/*
 * deliver: pending events go to Segment's /v1/batch, on a thread of its own.
 *
 * The thread runs its own event_base, which drives libcurl's multi-socket
 * API as curl's docs/examples/hiperfifo.c does.  Everything here runs on
 * that thread, except the entry points that say "any thread": they only
 * touch the mutex-guarded fields and wake the loop through the kick event.
 *
 * Sources that share a write key and endpoint share one lane, so rate
 * limit, in-flight cap and 401/403 pause apply per write key.  A lane claims
 * rows only when it can send at once and packs them into a short queue of
 * batches (bisected halves go to its front).  A claimed row leaves that
 * state on every path (delivered, retried, dead or released); a lease that
 * runs out is the backstop after a crash.  Rows of a source no longer
 * configured are never claimed.  Status handling: above xfer_done().
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <sodium.h>

#include "nudgebridge/deliver.h"
#include "nudgebridge/log.h"
#include "nudgebridge/metrics.h"
#include "nudgebridge/segment.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"

#define BATCH_HEAD "{\"batch\":["
#define BATCH_TAIL "],\"sentAt\":\""
#define BATCH_END  "\"}"
/* Bytes of a batch besides its messages and their commas. */
#define BATCH_OVERHEAD                                                         \
	(sizeof(BATCH_HEAD) - 1 + sizeof(BATCH_TAIL) - 1 +                     \
	    (NB_TIME_ISO_LEN - 1) + sizeof(BATCH_END) - 1)
#define DRAIN_TICK_MS	   10	    /* tick period while draining */
#define PRUNE_EVERY_MS	   60000    /* housekeeping period */
#define LEASE_MARGIN_MS	   5000	    /* lease beyond one request timeout */
#define EXCERPT_MAX	   200	    /* bytes of a 400 body kept as error */
#define RETRY_AFTER_MAX_MS 86400000 /* longest Retry-After honoured */
#define MAX_CONNECTIONS	   32	    /* per host and in the cache */

struct item {
	int64_t seq;
	int attempts;
	int64_t received_ms;
	char *msg; /* the Track message, compact JSON */
	size_t len;
};

/* Mapped messages ready to send as one request. */
struct batch {
	struct item *items;
	size_t n;
	int64_t lease_until_ms;
	struct batch *next;
};

struct lane {
	int refs; /* the lane table and each transfer */
	int retired;
	struct nb_config *cfg; /* keeps write_key and srcs alive */
	const char *write_key; /* borrowed from cfg */
	char *url;
	const struct nb_source **srcs;
	const char **names;
	size_t nsources;
	char *label; /* source names joined by ',', for logs */
	int inflight;
	double tokens;
	int64_t tokens_mono_ms;
	int64_t hold_until_ms; /* wall clock: 429 Retry-After */
	int paused_status;     /* 401/403, 0 when running */
	int64_t paused_until_ms;
	int idle; /* the last claim found nothing due */
	struct batch *qhead;
	struct batch *qtail;
};

struct xfer {
	struct nb_deliver *d;
	struct lane *lane;
	struct batch *b;
	CURL *easy;
	char *body;
	size_t bodylen;
	char excerpt[EXCERPT_MAX + 1];
	size_t excerptlen;
	int64_t retry_after_ms;
	int64_t start_mono_ms;
	char errbuf[CURL_ERROR_SIZE];
	struct xfer *prev;
	struct xfer *next;
};

struct sock {
	curl_socket_t fd;
	struct event *ev;
};

struct nb_deliver {
	/* deliverer thread only (or before start / after join) */
	struct nb_config *cfg;
	struct nb_metrics *m;
	struct nb_store *store;
	struct event_base *base;
	struct event *kick_ev;
	struct event *tick_ev;
	struct event *curl_ev;
	CURLM *multi;
	struct curl_slist *headers;
	int curl_running;
	struct lane **lanes;
	size_t nlanes;
	struct xfer *xfers;
	size_t nxfers;
	int64_t last_prune_mono_ms;
	int draining;
	int64_t drain_deadline_mono_ms;
	int drain_rc;
	int finished;
	int paused_dirty;

	pthread_t thread;
	int started;

	/* guarded by mu */
	pthread_mutex_t mu;
	struct nb_config *pending_cfg;
	int stop_requested;
	int drain_ms;
	struct nb_paused *paused;
	size_t npaused;
};

static void kick(struct nb_deliver *);

static int64_t
lease_ms(const struct nb_config *cfg)
{
	int64_t ms = (int64_t)cfg->store.lease_s * 1000;

	if (ms < (int64_t)cfg->segment.timeout_ms + LEASE_MARGIN_MS)
		ms = (int64_t)cfg->segment.timeout_ms + LEASE_MARGIN_MS;
	return ms;
}

int64_t
nb_deliver_backoff_ms(
    const struct nb_retry_config *r, int attempts, int64_t retry_after_ms)
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
	if (retry_after_ms > delay)
		delay = retry_after_ms;
	return delay;
}

/* Batches and items. */

static void
items_free(struct item *items, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(items[i].msg);
	free(items);
}

static void
batch_free(struct batch *b)
{
	if (b == NULL)
		return;
	items_free(b->items, b->n);
	free(b);
}

static int64_t *
batch_seqs(const struct batch *b)
{
	int64_t *seqs;
	size_t i;

	if ((seqs = calloc(b->n, sizeof(*seqs))) == NULL) {
		log_error("out of memory", " n=%zu", b->n);
		return NULL;
	}
	for (i = 0; i < b->n; i++)
		seqs[i] = b->items[i].seq;
	return seqs;
}

/* Gives the rows of b back without counting an attempt; frees b. */
static void
batch_release(struct nb_deliver *d, struct batch *b)
{
	int64_t *seqs;

	if ((seqs = batch_seqs(b)) != NULL) {
		(void)nb_store_release(d->store, seqs, b->n);
		free(seqs);
	}
	batch_free(b);
}

static void
batch_dead(struct nb_deliver *d, struct batch *b, const char *reason,
    const char *error, int64_t now)
{
	int64_t *seqs;

	if ((seqs = batch_seqs(b)) == NULL)
		return;
	if (nb_store_dead(d->store, seqs, b->n, reason, error, now) == 0)
		nb_metrics_dead(d->m, reason, b->n);
	free(seqs);
}

/* Lanes. */

static void
lane_push_tail(struct lane *l, struct batch *b)
{
	b->next = NULL;
	if (l->qtail == NULL)
		l->qhead = b;
	else
		l->qtail->next = b;
	l->qtail = b;
}

static void
lane_push_head(struct lane *l, struct batch *b)
{
	b->next = l->qhead;
	l->qhead = b;
	if (l->qtail == NULL)
		l->qtail = b;
}

static struct batch *
lane_pop(struct lane *l)
{
	struct batch *b = l->qhead;

	if (b != NULL) {
		l->qhead = b->next;
		if (l->qhead == NULL)
			l->qtail = NULL;
		b->next = NULL;
	}
	return b;
}

static void
lane_release_queue(struct nb_deliver *d, struct lane *l)
{
	struct batch *b;

	while ((b = lane_pop(l)) != NULL)
		batch_release(d, b);
}

static void
lane_unref(struct lane *l)
{
	if (l == NULL || --l->refs > 0)
		return;
	free(l->url);
	free(l->srcs);
	free(l->names);
	free(l->label);
	nb_config_unref(l->cfg);
	free(l);
}

static const struct nb_source *
lane_source(const struct lane *l, const char *name)
{
	size_t i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < l->nsources; i++)
		if (strcmp(l->names[i], name) == 0)
			return l->srcs[i];
	return NULL;
}

static struct lane *
lane_new(struct nb_config *cfg, const struct nb_source *src)
{
	struct lane *l;
	size_t n;
	int len;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->refs = 1;
	l->cfg = nb_config_ref(cfg);
	l->write_key = src->write_key;
	n = strlen(src->endpoint);
	while (n > 0 && src->endpoint[n - 1] == '/')
		n--;
	if ((l->url = malloc(n + sizeof("/v1/batch"))) == NULL)
		goto fail;
	len = snprintf(l->url, n + sizeof("/v1/batch"), "%.*s/v1/batch", (int)n,
	    src->endpoint);
	if (len < 0 || (size_t)len != n + sizeof("/v1/batch") - 1)
		goto fail;
	l->tokens =
	    cfg->segment.rate_limit_rps > 1 ? cfg->segment.rate_limit_rps : 1;
	l->tokens_mono_ms = nb_time_mono_ms();
	return l;
fail:
	lane_unref(l);
	return NULL;
}

static int
lane_add_source(struct lane *l, const struct nb_source *src)
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

/* Builds the lane table of cfg into *out.  0 or -1. */
static int
lanes_build(struct nb_config *cfg, struct lane ***out, size_t *nout)
{
	struct lane **lanes = NULL, *l;
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
		l = NULL;
		for (j = 0; j < n; j++) {
			if (strcmp(lanes[j]->write_key, src->write_key) == 0 &&
			    strcmp(lanes[j]->srcs[0]->endpoint,
				src->endpoint) == 0) {
				l = lanes[j];
				break;
			}
		}
		if (l == NULL) {
			if ((l = lane_new(cfg, src)) == NULL)
				goto out;
			lanes[n++] = l;
		}
		if (lane_add_source(l, src) == -1)
			goto out;
	}
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

static void
lanes_retire(struct nb_deliver *d)
{
	size_t i;

	for (i = 0; i < d->nlanes; i++) {
		lane_release_queue(d, d->lanes[i]);
		d->lanes[i]->retired = 1;
		lane_unref(d->lanes[i]);
	}
	free(d->lanes);
	d->lanes = NULL;
	d->nlanes = 0;
}

/* Publishes the paused sources for nb_deliver_paused(). */
static void
paused_publish(struct nb_deliver *d)
{
	struct nb_paused *p = NULL, *old;
	size_t i, j, n = 0, total = 0;
	struct lane *l;

	if (!d->paused_dirty)
		return;
	for (i = 0; i < d->nlanes; i++)
		if (d->lanes[i]->paused_status != 0)
			total += d->lanes[i]->nsources;
	if (total > 0 && (p = calloc(total, sizeof(*p))) == NULL)
		return; /* try again next tick */
	for (i = 0; i < d->nlanes; i++) {
		l = d->lanes[i];
		if (l->paused_status == 0)
			continue;
		for (j = 0; j < l->nsources; j++, n++) {
			(void)snprintf(p[n].source, sizeof(p[n].source), "%s",
			    l->names[j]);
			p[n].status = l->paused_status;
			p[n].until_ms = l->paused_until_ms;
		}
	}
	pthread_mutex_lock(&d->mu);
	old = d->paused;
	d->paused = p;
	d->npaused = n;
	pthread_mutex_unlock(&d->mu);
	free(old);
	d->paused_dirty = 0;
}

static void
lane_pause(struct nb_deliver *d, struct lane *l, int status, int64_t now)
{
	if (l->retired)
		return;
	if (l->paused_status == 0) {
		l->paused_status = status;
		l->paused_until_ms =
		    now + (int64_t)l->cfg->segment.pause_s * 1000;
		d->paused_dirty = 1;
		log_warn("segment refused the write key, delivery paused",
		    " sources=%s status=%d pause_s=%d", l->label, status,
		    l->cfg->segment.pause_s);
	}
	lane_release_queue(d, l);
}

/* Claims, maps and queues. */

/* Dead-letters one row; errors of max_age rows differ from row to row. */
static void
dead_one(struct nb_deliver *d, int64_t seq, const char *reason,
    const char *error, int64_t now)
{
	if (nb_store_dead(d->store, &seq, 1, reason, error, now) == 0)
		nb_metrics_dead(d->m, reason, 1);
}

/*
 * Packs items[0..n) into batches appended to l's queue, all or nothing: on
 * success the batches own the messages (zeroed in items), on -1 nothing
 * changed.
 */
static int
lane_pack(struct lane *l, struct item *items, size_t n, int64_t lease_until)
{
	size_t max = l->cfg->segment.max_batch_bytes;
	struct batch *head = NULL, *tail = NULL, *b;
	size_t i, start, size;

	for (start = 0; start < n; start = i) {
		size = BATCH_OVERHEAD + items[start].len;
		for (i = start + 1; i < n; i++) {
			if (size + 1 + items[i].len > max)
				break;
			size += 1 + items[i].len;
		}
		if ((b = calloc(1, sizeof(*b))) == NULL)
			goto fail;
		if ((b->items = calloc(i - start, sizeof(*b->items))) == NULL) {
			free(b);
			goto fail;
		}
		memcpy(b->items, items + start, (i - start) * sizeof(*items));
		b->n = i - start;
		b->lease_until_ms = lease_until;
		if (tail == NULL)
			head = b;
		else
			tail->next = b;
		tail = b;
	}
	while ((b = head) != NULL) {
		head = b->next;
		lane_push_tail(l, b);
	}
	memset(items, 0, n * sizeof(*items));
	return 0;
fail:
	while ((b = head) != NULL) {
		head = b->next;
		free(b->items); /* the messages stay with items */
		free(b);
	}
	return -1;
}

/*
 * Claims due rows of l and queues them as batches.  Returns how many rows
 * were claimed (rows may all have been dead-lettered), or -1 when the lane
 * should stop for this tick.
 */
static int
lane_claim(struct nb_deliver *d, struct lane *l, int64_t now)
{
	const struct nb_segment_config *sc = &l->cfg->segment;
	struct nb_stored_event *rows = NULL, *r;
	struct item *items = NULL;
	int64_t lease_until = now + lease_ms(l->cfg);
	size_t i = 0, k, n = 0, ni = 0, limit;
	const struct nb_source *src;
	const char *why;
	char error[128], *msg;
	size_t len;
	int rc = -1;

	limit = sc->max_message_bytes;
	if (sc->max_batch_bytes < BATCH_OVERHEAD + limit)
		limit = sc->max_batch_bytes > BATCH_OVERHEAD
		    ? sc->max_batch_bytes - BATCH_OVERHEAD
		    : 0;
	if (nb_store_claim(d->store, l->names, l->nsources, now, lease_until,
		sc->max_batch_count, &rows, &n) == -1)
		return -1;
	if (n == 0) {
		l->idle = 1;
		rc = 0;
		goto out;
	}
	l->idle = 0;
	if ((items = calloc(n, sizeof(*items))) == NULL) {
		log_error("out of memory", " rows=%zu", n);
		goto release;
	}
	for (; i < n; i++) {
		r = &rows[i];
		if (sc->retry.max_age_s > 0 &&
		    r->age_base_ms + sc->retry.max_age_s * 1000 < now) {
			dead_one(d, r->seq, NB_REASON_MAX_AGE,
			    r->error != NULL ? r->error
					     : "not delivered within max_age_s",
			    now);
			continue;
		}
		if ((src = lane_source(l, r->source)) == NULL) {
			(void)nb_store_release(d->store, &r->seq, 1);
			continue;
		}
		why = NULL;
		if (nb_segment_track_text(&src->mapping, src->name, r->raw,
			r->rawlen, &msg, &len, &why) == -1) {
			if (why == NULL || strcmp(why, "out of memory") == 0) {
				log_error(
				    "cannot map event", " key=%s", r->key);
				goto release;
			}
			(void)snprintf(
			    error, sizeof(error), "mapping: %s", why);
			dead_one(d, r->seq, NB_REASON_QUARANTINED, error, now);
			continue;
		}
		if (len > limit) {
			(void)snprintf(error, sizeof(error),
			    "message of %zu bytes over the limit of %zu", len,
			    limit);
			free(msg);
			dead_one(d, r->seq, NB_REASON_TOO_LARGE, error, now);
			continue;
		}
		items[ni].seq = r->seq;
		items[ni].attempts = r->attempts;
		items[ni].received_ms = r->received_ms;
		items[ni].msg = msg;
		items[ni].len = len;
		ni++;
	}
	if (lane_pack(l, items, ni, lease_until) == -1) {
		log_error("out of memory", " rows=%zu", ni);
		goto release;
	}
	rc = (int)n;
	goto out;
release:
	/* Rows not settled go back: those mapped, and rows[i..n). */
	for (k = 0; k < ni; k++)
		(void)nb_store_release(d->store, &items[k].seq, 1);
	for (; i < n; i++)
		(void)nb_store_release(d->store, &rows[i].seq, 1);
	rc = -1;
out:
	if (items != NULL)
		items_free(items, ni);
	nb_stored_events_free(rows, n);
	return rc;
}

/* Transfers. */

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * nmemb, room;

	room = EXCERPT_MAX - x->excerptlen;
	if (room > len)
		room = len;
	memcpy(x->excerpt + x->excerptlen, ptr, room);
	x->excerptlen += room;
	x->excerpt[x->excerptlen] = '\0';
	return len;
}

/* Retry-After: delay-seconds or an HTTP-date, as ms from now. */
static int64_t
parse_retry_after(const char *v, size_t len)
{
	char buf[128], *end;
	long long secs;
	time_t t;
	int64_t ms;

	while (len > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len > 0 &&
	    (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' ||
		v[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, v, len);
	buf[len] = '\0';
	if (buf[0] >= '0' && buf[0] <= '9') {
		secs = strtoll(buf, &end, 10);
		if (*end != '\0' || secs < 0)
			return 0;
		if (secs > RETRY_AFTER_MAX_MS / 1000)
			return RETRY_AFTER_MAX_MS;
		return (int64_t)secs * 1000;
	}
	if ((t = curl_getdate(buf, NULL)) <= 0)
		return 0;
	ms = (int64_t)t * 1000 - nb_time_now_ms();
	if (ms < 0)
		return 0;
	return ms > RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : ms;
}

static size_t
header_cb(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * nmemb;

	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0)
		x->retry_after_ms = 0; /* a new response begins */
	else if (len > 12 && strncasecmp(buf, "retry-after:", 12) == 0)
		x->retry_after_ms = parse_retry_after(buf + 12, len - 12);
	return len;
}

static void
xfer_free(struct xfer *x)
{
	if (x == NULL)
		return;
	if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
	free(x->body);
	batch_free(x->b);
	lane_unref(x->lane);
	free(x);
}

static void
xfer_unlink(struct nb_deliver *d, struct xfer *x)
{
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		d->xfers = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
	d->nxfers--;
	x->lane->inflight--;
}

static int
xfer_body(struct xfer *x, int64_t now)
{
	char iso[NB_TIME_ISO_LEN];
	struct batch *b = x->b;
	size_t i, size = BATCH_OVERHEAD;
	char *p;

	for (i = 0; i < b->n; i++)
		size += b->items[i].len + (i > 0);
	if ((x->body = malloc(size + 1)) == NULL)
		return -1;
	p = x->body;
	memcpy(p, BATCH_HEAD, sizeof(BATCH_HEAD) - 1);
	p += sizeof(BATCH_HEAD) - 1;
	for (i = 0; i < b->n; i++) {
		if (i > 0)
			*p++ = ',';
		memcpy(p, b->items[i].msg, b->items[i].len);
		p += b->items[i].len;
	}
	nb_time_format_iso(now, iso);
	memcpy(p, BATCH_TAIL, sizeof(BATCH_TAIL) - 1);
	p += sizeof(BATCH_TAIL) - 1;
	memcpy(p, iso, NB_TIME_ISO_LEN - 1);
	p += NB_TIME_ISO_LEN - 1;
	memcpy(p, BATCH_END, sizeof(BATCH_END));
	x->bodylen = size;
	return 0;
}

/* Starts sending b on l; takes b (released on failure). */
static int
xfer_start(struct nb_deliver *d, struct lane *l, struct batch *b, int64_t now)
{
	const struct nb_segment_config *sc = &l->cfg->segment;
	struct xfer *x = NULL;
	int64_t *seqs, until;
	CURL *e;

	if (b->lease_until_ms < now + sc->timeout_ms + LEASE_MARGIN_MS) {
		until = now + lease_ms(l->cfg);
		if ((seqs = batch_seqs(b)) != NULL) {
			if (nb_store_extend(d->store, seqs, b->n, until) == 0)
				b->lease_until_ms = until;
			free(seqs);
		}
	}
	if ((x = calloc(1, sizeof(*x))) == NULL)
		goto fail;
	x->d = d;
	x->b = b;
	b = NULL;
	if (xfer_body(x, now) == -1 || (x->easy = e = curl_easy_init()) == NULL)
		goto fail;
	if (curl_easy_setopt(e, CURLOPT_URL, l->url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, x) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") !=
		CURLE_OK ||
#else
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS,
		(long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK ||
#endif
	    curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) !=
		CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_USERNAME, l->write_key) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PASSWORD, "") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->headers) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT, "nudgebridge/" NB_VERSION) !=
		CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		(curl_off_t)x->bodylen) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)sc->timeout_ms) !=
		CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, x) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb) !=
		CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, x) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf) != CURLE_OK)
		goto fail;
	x->start_mono_ms = nb_time_mono_ms();
	if (curl_multi_add_handle(d->multi, e) != CURLM_OK)
		goto fail;
	x->lane = l;
	l->refs++;
	l->inflight++;
	l->idle = 0;
	x->next = d->xfers;
	if (d->xfers != NULL)
		d->xfers->prev = x;
	d->xfers = x;
	d->nxfers++;
	return 0;
fail:
	log_error("cannot start a batch request", " sources=%s", l->label);
	if (x != NULL) {
		b = x->b;
		x->b = NULL;
		xfer_free(x);
	}
	if (b != NULL)
		batch_release(d, b);
	return -1;
}

/* Copies the 400 body into out as printable ASCII, write key redacted. */
static void
excerpt_clean(const struct xfer *x, char *out, size_t outlen)
{
	const char *key = x->lane->write_key, *p = x->excerpt;
	size_t klen = key != NULL ? strlen(key) : 0, n = 0;

	while (*p != '\0' && n + 1 < outlen) {
		if (klen > 0 && strncmp(p, key, klen) == 0) {
			if (n + 4 >= outlen)
				break;
			memcpy(out + n, "***", 3);
			n += 3;
			p += klen;
			continue;
		}
		out[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
		p++;
	}
	out[n] = '\0';
}

static void
on_success(struct nb_deliver *d, struct xfer *x, int64_t now)
{
	struct batch *b = x->b;
	int64_t *seqs;
	size_t i;

	if ((seqs = batch_seqs(b)) == NULL)
		return;
	if (nb_store_delivered(d->store, seqs, b->n, now) == 0) {
		for (i = 0; i < b->n; i++)
			nb_metrics_delivered(d->m, 1,
			    (double)(now - b->items[i].received_ms) / 1000.0);
	}
	free(seqs);
}

static void
on_retry(struct nb_deliver *d, struct xfer *x, const char *error, int64_t now)
{
	const struct nb_retry_config *r = &x->lane->cfg->segment.retry;
	struct nb_store_retry *rows = NULL;
	struct batch *b = x->b;
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
		    nb_deliver_backoff_ms(
			r, b->items[i].attempts + 1, x->retry_after_ms);
		nr++;
	}
	if (nr > 0 && nb_store_retry(d->store, rows, nr, error) == 0)
		nb_metrics_retry(d->m, nr);
	if (nd > 0 &&
	    nb_store_dead(
		d->store, dead, nd, NB_REASON_MAX_ATTEMPTS, error, now) == 0)
		nb_metrics_dead(d->m, NB_REASON_MAX_ATTEMPTS, nd);
out:
	free(rows);
	free(dead);
}

/* 400: a single message is dead; a larger batch is split in halves. */
static void
on_rejected(struct nb_deliver *d, struct xfer *x, int64_t now)
{
	char clean[EXCERPT_MAX + 1], error[EXCERPT_MAX + 32];
	struct batch *b = x->b, *h[2] = {NULL, NULL};
	size_t half, k;

	if (b->n == 1) {
		excerpt_clean(x, clean, sizeof(clean));
		(void)snprintf(error, sizeof(error), "segment: 400%s%s",
		    clean[0] != '\0' ? " " : "", clean);
		batch_dead(d, b, NB_REASON_REJECTED, error, now);
		return;
	}
	if (x->lane->retired || x->lane->paused_status != 0) {
		x->b = NULL;
		batch_release(d, b);
		return;
	}
	half = b->n / 2;
	for (k = 0; k < 2; k++) {
		if ((h[k] = calloc(1, sizeof(*h[k]))) == NULL)
			goto fail;
		h[k]->n = k == 0 ? half : b->n - half;
		if ((h[k]->items = calloc(h[k]->n, sizeof(struct item))) ==
		    NULL)
			goto fail;
		memcpy(h[k]->items, b->items + (k == 0 ? 0 : half),
		    h[k]->n * sizeof(struct item));
		h[k]->lease_until_ms = b->lease_until_ms;
	}
	/* The halves own the messages now. */
	free(b->items);
	free(b);
	x->b = NULL;
	lane_push_head(x->lane, h[1]);
	lane_push_head(x->lane, h[0]);
	return;
fail:
	log_error("out of memory", " n=%zu", b->n);
	for (k = 0; k < 2; k++) {
		if (h[k] != NULL)
			free(h[k]->items);
		free(h[k]);
	}
	x->b = NULL;
	batch_release(d, b);
}

/*
 * Outcomes by status: 2xx delivered; 0 (network error, timeout), 408, 429,
 * 5xx and every status not named here (3xx, 404, 413, ...) retried with
 * backoff, since a transient misconfiguration must never lose events; 400
 * bisected down to single messages, which are dead-lettered; 401/403 pause
 * the lane and release its rows without counting an attempt.
 */
static void
xfer_done(struct nb_deliver *d, struct xfer *x, CURLcode res)
{
	struct lane *l = x->lane;
	char error[CURL_ERROR_SIZE + 32];
	long status = 0;
	int64_t now;
	double secs;

	xfer_unlink(d, x);
	if (res == CURLE_OK)
		(void)curl_easy_getinfo(
		    x->easy, CURLINFO_RESPONSE_CODE, &status);
	secs = (double)(nb_time_mono_ms() - x->start_mono_ms) / 1000.0;
	nb_metrics_delivery(d->m, (int)status, x->b->n, secs);
	now = nb_time_now_ms();
	if (status >= 200 && status < 300) {
		on_success(d, x, now);
	} else if (status == 400) {
		on_rejected(d, x, now);
	} else if (status == 401 || status == 403) {
		lane_pause(d, l, (int)status, now);
		batch_release(d, x->b);
		x->b = NULL;
	} else {
		if (res == CURLE_OPERATION_TIMEDOUT)
			(void)snprintf(
			    error, sizeof(error), "segment: timeout");
		else if (res != CURLE_OK)
			(void)snprintf(error, sizeof(error), "segment: %s",
			    curl_easy_strerror(res));
		else
			(void)snprintf(
			    error, sizeof(error), "segment: %ld", status);
		if (status == 429 && x->retry_after_ms > 0 &&
		    now + x->retry_after_ms > l->hold_until_ms)
			l->hold_until_ms = now + x->retry_after_ms;
		log_info("batch attempt failed",
		    " sources=%s status=%ld messages=%zu retry_after_ms=%lld",
		    l->label, status, x->b->n, (long long)x->retry_after_ms);
		on_retry(d, x, error, now);
	}
	xfer_free(x);
	kick(d);
}

/*
 * libcurl multi-socket glue, after hiperfifo.c: sock_cb() maps curl's
 * interest onto libevent events, timer_cb() arms one libevent timer, both
 * event callbacks call curl_multi_socket_action() and then
 * check_multi_info().
 */

static void
check_multi_info(struct nb_deliver *d)
{
	struct xfer *x;
	CURLcode res;
	CURLMsg *msg;
	CURL *easy;
	char *priv;
	int left;

	while ((msg = curl_multi_info_read(d->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		easy = msg->easy_handle;
		res = msg->data.result;
		priv = NULL;
		(void)curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		x = (struct xfer *)priv;
		(void)curl_multi_remove_handle(d->multi, easy);
		if (x != NULL)
			xfer_done(d, x, res);
	}
}

static void
sock_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_deliver *d = arg;
	int action;

	action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
	    ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	(void)curl_multi_socket_action(d->multi, fd, action, &d->curl_running);
	check_multi_info(d);
	if (d->curl_running <= 0 && d->curl_ev != NULL)
		evtimer_del(d->curl_ev);
}

static int
sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *sockp)
{
	struct nb_deliver *d = userp;
	struct sock *sk = sockp;
	short kind;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (sk != NULL) {
			event_free(sk->ev);
			free(sk);
		}
		return 0;
	}
	if (sk == NULL) {
		if ((sk = calloc(1, sizeof(*sk))) == NULL)
			return -1;
		sk->fd = s;
		(void)curl_multi_assign(d->multi, s, sk);
	}
	if (sk->ev != NULL) {
		event_free(sk->ev);
		sk->ev = NULL;
	}
	kind = ((what & CURL_POLL_IN) ? EV_READ : 0) |
	    ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST;
	if ((sk->ev = event_new(d->base, s, kind, sock_event_cb, d)) == NULL ||
	    event_add(sk->ev, NULL) == -1)
		return -1;
	return 0;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct nb_deliver *d = userp;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0)
		return evtimer_del(d->curl_ev);
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(d->curl_ev, &tv);
}

static void
curl_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_deliver *d = arg;

	(void)fd;
	(void)what;
	(void)curl_multi_socket_action(
	    d->multi, CURL_SOCKET_TIMEOUT, 0, &d->curl_running);
	check_multi_info(d);
}

/* The loop. */

static void
lane_tick(struct nb_deliver *d, struct lane *l, int64_t now, int64_t mono)
{
	const struct nb_segment_config *sc = &l->cfg->segment;
	double rps = sc->rate_limit_rps, burst = rps > 1 ? rps : 1;
	struct batch *b;

	if (l->paused_status != 0) {
		if (now < l->paused_until_ms)
			return;
		log_info(
		    "delivery resumed after pause", " sources=%s", l->label);
		l->paused_status = 0;
		d->paused_dirty = 1;
	}
	if (now < l->hold_until_ms)
		return;
	if (rps > 0) {
		l->tokens += (double)(mono - l->tokens_mono_ms) * rps / 1000.0;
		if (l->tokens > burst)
			l->tokens = burst;
	}
	l->tokens_mono_ms = mono;
	for (;;) {
		if (l->inflight >= sc->max_inflight)
			break;
		if (rps > 0 && l->tokens < 1)
			break;
		if (l->qhead == NULL) {
			if (lane_claim(d, l, now) <= 0)
				break;
			continue;
		}
		b = lane_pop(l);
		if (xfer_start(d, l, b, now) == -1)
			break;
		if (rps > 0)
			l->tokens -= 1;
	}
}

/* 1 when any row of l's sources is due now (rows stay as they were). */
static int
lane_has_due(struct nb_deliver *d, struct lane *l, int64_t now)
{
	struct nb_stored_event *rows = NULL;
	size_t n = 0;

	if (nb_store_claim(d->store, l->names, l->nsources, now, now + 1000, 1,
		&rows, &n) == -1)
		return 1;
	if (n > 0)
		(void)nb_store_release(d->store, &rows[0].seq, 1);
	nb_stored_events_free(rows, n);
	return n > 0;
}

/* Ends the drain: cancels and releases everything, stops the loop. */
static void
finish(struct nb_deliver *d)
{
	struct xfer *x;
	int64_t now;
	size_t i;
	int left = 0;

	while ((x = d->xfers) != NULL) {
		(void)curl_multi_remove_handle(d->multi, x->easy);
		xfer_unlink(d, x);
		batch_release(d, x->b);
		x->b = NULL;
		xfer_free(x);
	}
	now = nb_time_now_ms();
	for (i = 0; i < d->nlanes; i++) {
		lane_release_queue(d, d->lanes[i]);
		if (!left && lane_has_due(d, d->lanes[i], now))
			left = 1;
	}
	d->drain_rc = left ? -1 : 0;
	if (left)
		log_warn("stopped with events still due", NULL);
	d->finished = 1;
	event_base_loopbreak(d->base);
}

static int
drained(struct nb_deliver *d, int64_t now)
{
	struct lane *l;
	size_t i;

	if (d->nxfers > 0)
		return 0;
	for (i = 0; i < d->nlanes; i++) {
		l = d->lanes[i];
		if (l->qhead != NULL)
			return 0;
		if (l->paused_status != 0 && now < l->paused_until_ms)
			continue;
		if (now < l->hold_until_ms || !l->idle)
			return 0;
	}
	return 1;
}

static void
tick(struct nb_deliver *d)
{
	struct timeval tv;
	int64_t now, mono, ms;
	size_t i;

	if (d->finished)
		return;
	now = nb_time_now_ms();
	mono = nb_time_mono_ms();
	if (d->draining && mono >= d->drain_deadline_mono_ms) {
		finish(d);
		return;
	}
	if (mono - d->last_prune_mono_ms >= PRUNE_EVERY_MS) {
		d->last_prune_mono_ms = mono;
		(void)nb_store_prune(d->store,
		    now - d->cfg->limits.dedupe_window_s * 1000,
		    now - d->cfg->segment.retention_s * 1000);
	}
	for (i = 0; i < d->nlanes; i++)
		lane_tick(d, d->lanes[i], now, mono);
	paused_publish(d);
	if (d->draining && drained(d, now)) {
		finish(d);
		return;
	}
	ms = d->draining ? DRAIN_TICK_MS : d->cfg->segment.flush_interval_ms;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	(void)evtimer_add(d->tick_ev, &tv);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tick(arg);
}

static void
apply_config(struct nb_deliver *d, struct nb_config *cfg)
{
	struct lane **lanes;
	size_t n;

	if (lanes_build(cfg, &lanes, &n) == -1) {
		log_error("configuration not applied to delivery", NULL);
		nb_config_unref(cfg);
		return;
	}
	lanes_retire(d);
	nb_config_unref(d->cfg);
	d->cfg = cfg;
	d->lanes = lanes;
	d->nlanes = n;
	d->paused_dirty = 1;
	log_info("delivery configuration applied", " lanes=%zu", n);
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_deliver *d = arg;
	struct nb_config *cfg;
	int stop, drain_ms;
	size_t i;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&d->mu);
	cfg = d->pending_cfg;
	d->pending_cfg = NULL;
	stop = d->stop_requested;
	drain_ms = d->drain_ms;
	pthread_mutex_unlock(&d->mu);
	if (cfg != NULL)
		apply_config(d, cfg);
	if (stop && !d->draining) {
		d->draining = 1;
		d->drain_deadline_mono_ms = nb_time_mono_ms() + drain_ms;
		for (i = 0; i < d->nlanes; i++)
			d->lanes[i]->idle = 0;
	}
	tick(d);
}

static void
kick(struct nb_deliver *d)
{
	event_active(d->kick_ev, EV_TIMEOUT, 0);
}

static void *
deliver_main(void *arg)
{
	struct nb_deliver *d = arg;
	struct timeval tv = {0, 0};

	/* Housekeeping runs on the first tick, then once a minute. */
	d->last_prune_mono_ms = nb_time_mono_ms() - PRUNE_EVERY_MS;
	(void)evtimer_add(d->tick_ev, &tv);
	(void)event_base_dispatch(d->base);
	return NULL;
}

/* The API. */

struct nb_deliver *
nb_deliver_new(
    struct nb_config *cfg, struct nb_metrics *m, char *err, size_t errlen)
{
	struct nb_deliver *d;
	struct curl_slist *h;

	if ((d = calloc(1, sizeof(*d))) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (pthread_mutex_init(&d->mu, NULL) != 0) {
		free(d);
		(void)snprintf(err, errlen, "cannot create a mutex");
		return NULL;
	}
	d->cfg = nb_config_ref(cfg);
	d->m = m;
	d->drain_rc = 0;
	if (nb_store_open(&d->store, &cfg->store, err, errlen) == -1)
		goto fail;
	if ((d->base = event_base_new()) == NULL ||
	    (d->kick_ev = event_new(d->base, -1, 0, kick_cb, d)) == NULL ||
	    (d->tick_ev = evtimer_new(d->base, tick_cb, d)) == NULL ||
	    (d->curl_ev = evtimer_new(d->base, curl_timeout_cb, d)) == NULL) {
		(void)snprintf(err, errlen, "cannot create the event loop");
		goto fail;
	}
	if ((d->multi = curl_multi_init()) == NULL ||
	    curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, sock_cb) !=
		CURLM_OK ||
	    curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d) != CURLM_OK ||
	    curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, timer_cb) !=
		CURLM_OK ||
	    curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d) != CURLM_OK ||
	    curl_multi_setopt(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
		(long)MAX_CONNECTIONS) != CURLM_OK ||
	    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS,
		(long)MAX_CONNECTIONS) != CURLM_OK) {
		(void)snprintf(err, errlen, "cannot set up libcurl");
		goto fail;
	}
	if ((h = curl_slist_append(NULL, "Content-Type: application/json")) ==
	    NULL) {
		(void)snprintf(err, errlen, "out of memory");
		goto fail;
	}
	d->headers = h;
	if ((h = curl_slist_append(d->headers, "Expect:")) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		goto fail;
	}
	d->headers = h;
	if (lanes_build(d->cfg, &d->lanes, &d->nlanes) == -1) {
		(void)snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return d;
fail:
	nb_deliver_free(d);
	return NULL;
}

int
nb_deliver_start(struct nb_deliver *d)
{
	if (d->started)
		return -1;
	if (pthread_create(&d->thread, NULL, deliver_main, d) != 0) {
		log_error("cannot start the delivery thread", NULL);
		return -1;
	}
	d->started = 1;
	return 0;
}

void
nb_deliver_wake(struct nb_deliver *d)
{
	if (d != NULL)
		kick(d);
}

void
nb_deliver_reload(struct nb_deliver *d, struct nb_config *cfg)
{
	struct nb_config *old;

	nb_config_ref(cfg);
	pthread_mutex_lock(&d->mu);
	old = d->pending_cfg;
	d->pending_cfg = cfg;
	pthread_mutex_unlock(&d->mu);
	nb_config_unref(old);
	kick(d);
}

size_t
nb_deliver_paused(struct nb_deliver *d, struct nb_paused *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&d->mu);
	n = d->npaused;
	if (out != NULL && max > 0 && n > 0)
		memcpy(out, d->paused, (n < max ? n : max) * sizeof(*out));
	pthread_mutex_unlock(&d->mu);
	return n;
}

int
nb_deliver_stop(struct nb_deliver *d, int drain_ms)
{
	if (d == NULL || !d->started)
		return 0;
	pthread_mutex_lock(&d->mu);
	d->stop_requested = 1;
	d->drain_ms = drain_ms > 0 ? drain_ms : 0;
	pthread_mutex_unlock(&d->mu);
	kick(d);
	if (pthread_join(d->thread, NULL) != 0) {
		log_error("cannot join the delivery thread", NULL);
		return -1;
	}
	d->started = 0;
	return d->drain_rc;
}

void
nb_deliver_free(struct nb_deliver *d)
{
	struct xfer *x;

	if (d == NULL)
		return;
	if (d->started)
		(void)nb_deliver_stop(d, 0);
	while ((x = d->xfers) != NULL) {
		(void)curl_multi_remove_handle(d->multi, x->easy);
		xfer_unlink(d, x);
		xfer_free(x);
	}
	lanes_retire(d);
	if (d->multi != NULL)
		curl_multi_cleanup(d->multi);
	curl_slist_free_all(d->headers);
	if (d->curl_ev != NULL)
		event_free(d->curl_ev);
	if (d->tick_ev != NULL)
		event_free(d->tick_ev);
	if (d->kick_ev != NULL)
		event_free(d->kick_ev);
	if (d->base != NULL)
		event_base_free(d->base);
	nb_store_close(d->store);
	nb_config_unref(d->pending_cfg);
	nb_config_unref(d->cfg);
	free(d->paused);
	pthread_mutex_destroy(&d->mu);
	free(d);
}
