/* SPDX-License-Identifier: ISC */
/*
 * alerter: one tick every alerts.interval_ms on a thread of its own.
 *
 * A tick: watch the committer (store_unavailable, in memory); beat (the
 * activity that moved, this instance's pauses, the evaluator lease); read
 * what every instance wrote; as the evaluator, step every condition of
 * every source and apply the changes and the notifications in one
 * transaction that holds only while the lease does; publish what fires;
 * claim due notifications up to ALERTER_INFLIGHT and send them.  A tick
 * whose store calls fail does the rest the next time, on a reopened
 * connection.  Another instance's pause report ages only while this one
 * evaluates on schedule: a stall of the fleet is no end of a pause.  The
 * state machine, bodies and requests are alert.h's and alert_send.h's;
 * this file moves data between them, the store and the other threads.
 * All but nb_alerter_reload/firing/render() and the lifecycle run on it.
 */
#include <sys/queue.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>

#include "nudgebridge/alert.h"
#include "nudgebridge/alert_send.h"
#include "nudgebridge/alerter.h"
#include "nudgebridge/log.h"
#include "nudgebridge/store.h"
#include "nudgebridge/store_alert.h"
#include "nudgebridge/timeutil.h"
#include "nudgebridge/xfer.h"

#define ALERTER_INFLIGHT     4		      /* notifications at once */
#define ALERTER_MEM_NOTES    8		      /* store_unavailable's */
#define ALERTER_KEEP_MS	     (7LL * 86400000) /* done notifications */
#define ALERTER_REPORTS_MS   (10LL * 60000)   /* reports read back */
#define ALERTER_LOG_EVERY_MS 60000	      /* store failures, at most */
#define ALERTER_REOPEN_MS    5000 /* between attempts to open the store */
#define ALERTER_KINDS	     4	  /* the per-source conditions */

static const enum nb_alert_kind source_kinds[ALERTER_KINDS] = {
    NB_ALERT_SOURCE_PAUSED, NB_ALERT_DEAD_LETTERS, NB_ALERT_BACKLOG_AGE,
    NB_ALERT_SOURCE_SILENT};

/* A notification being sent: from the store's outbox, or from memory. */
struct flight {
	struct nb_alerter *a;
	int in_store;
	struct nb_alert_note note; /* body owned */
	struct mem_note *mem;	   /* !in_store */
	LIST_ENTRY(flight) entry;
};

/* store_unavailable's notifications, which cannot go through the store. */
struct mem_note {
	int used, flying;
	struct nb_alert_note note; /* body owned */
	int64_t next_ms;
};

struct nb_alerter {
	struct nb_alerter_deps deps;
	pthread_mutex_t lock; /* next_cfg, stop, the published view */
	struct nb_config *next_cfg;
	int stop;
	/*
	 * What fires now, for other threads: the store's conditions as the
	 * last read found them (pub), and this instance's store_unavailable
	 * (pub_mem), kept apart so that the latter shows while the store is
	 * down.
	 */
	struct nb_alert_state *pub;
	size_t npub;
	struct nb_alert_state pub_mem;
	int64_t pub_ms;

	/* The thread's. */
	pthread_t thread;
	int started;
	struct nb_config *cfg;
	struct event_base *base;
	struct event *tick, *ctl;
	struct nb_xfer_multi *mx;
	struct nb_store *store;
	int64_t start_ms, last_log_ms, last_eval_ms;
	int64_t steady_ms; /* evaluating on schedule since (0: not yet) */
	int64_t reopen_ms; /* no new connection attempt before */
	int leader;
	char owner[NB_ALERT_OWNER_MAX];
	struct nb_alert_state mem; /* store_unavailable of this instance */
	int64_t bad_since_ms;
	struct mem_note mems[ALERTER_MEM_NOTES];
	LIST_HEAD(, flight) flights;
	size_t nflights;
	/* dead letters' main reason: recent error counts at the last look */
	struct nb_store_error *errs;
	size_t nerrs;
	struct nb_paused paused[NB_BOARD_MAX_PAUSED];	 /* a beat's */
	struct nb_alert_report rep[NB_BOARD_MAX_PAUSED]; /* a beat's */

	atomic_uint_fast64_t sent, failed, dropped;
	atomic_int evaluator;
};

/* Thresholds of cfg, in ms. */
static void
params_of(const struct nb_config *cfg, struct nb_alert_params *p)
{
	const struct nb_alerts_config *ac = &cfg->alerts;

	p->repeat_ms = ac->repeat_s * 1000;
	p->backlog_age_ms = ac->backlog_age_s * 1000;
	p->store_unavailable_ms = ac->store_unavailable_s * 1000;
	p->pause_grace_ms = 3 * (int64_t)ac->interval_ms + 2000;
}

static int64_t
lease_ms(const struct nb_config *cfg)
{
	int64_t l = 5 * (int64_t)cfg->alerts.interval_ms;

	return l < 2000 ? 2000 : l;
}

/* The store connection, opened (again) when needed.  0 or -1. */
static int
store_ready(struct nb_alerter *a, int64_t now)
{
	char err[512], qerr[600];

	if (a->store != NULL)
		return 0;
	/* A connection attempt may block (a database away): not every tick. */
	if (now < a->reopen_ms)
		return -1;
	if (nb_store_open(&a->store, &a->cfg->store, err, sizeof(err)) == 0)
		return 0;
	a->store = NULL;
	a->reopen_ms = now + ALERTER_REOPEN_MS;
	if (now - a->last_log_ms >= ALERTER_LOG_EVERY_MS) {
		log_warn("alerter: cannot open the store", " error=%s",
		    nb_log_quote(qerr, sizeof(qerr), err));
		a->last_log_ms = now;
	}
	return -1;
}

/* After a failed call: a broken connection is replaced next time. */
static void
store_failed(struct nb_alerter *a)
{
	nb_store_close(a->store);
	a->store = NULL;
}

/* Queues a notification of st (as told by what); body made here. */
static int
note_make(const struct nb_alert_state *st, enum nb_alert_notify what,
    int64_t now, struct nb_alert_note *n)
{
	memset(n, 0, sizeof(*n));
	nb_alert_send_msg_id(n->msg_id);
	n->kind = st->kind;
	(void)snprintf(n->source, sizeof(n->source), "%s", st->source);
	n->resolved = what == NB_ALERT_RESOLVED;
	n->created_ms = now;
	return nb_alert_body(st, what, &n->body);
}

/* Growing arrays of the states to write and the notes to queue. */
struct changes {
	struct nb_alert_state *st;
	size_t nst, capst;
	struct nb_alert_note *notes;
	size_t nnotes, capnotes;
	int failed;
};

static void
changes_clear(struct changes *c)
{
	size_t i;

	free(c->st);
	for (i = 0; i < c->nnotes; i++)
		free(c->notes[i].body);
	free(c->notes);
	memset(c, 0, sizeof(*c));
}

static void
changes_add(struct changes *c, const struct nb_alert_state *st,
    enum nb_alert_notify what, int64_t now, int notify)
{
	void *p;

	if (c->nst == c->capst) {
		c->capst = c->capst == 0 ? 16 : c->capst * 2;
		if ((p = reallocarray(c->st, c->capst, sizeof(*c->st))) ==
		    NULL) {
			c->failed = 1;
			return;
		}
		c->st = p;
	}
	c->st[c->nst++] = *st;
	if (what == NB_ALERT_QUIET || !notify)
		return;
	if (c->nnotes == c->capnotes) {
		c->capnotes = c->capnotes == 0 ? 8 : c->capnotes * 2;
		if ((p = reallocarray(
			 c->notes, c->capnotes, sizeof(*c->notes))) == NULL) {
			c->failed = 1;
			return;
		}
		c->notes = p;
	}
	if (note_make(st, what, now, &c->notes[c->nnotes]) == -1) {
		c->failed = 1;
		return;
	}
	c->nnotes++;
}

static const struct nb_source_stats *
stats_of(const struct nb_source_stats *v, size_t n, const char *source)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].source, source) == 0)
			return &v[i];
	return NULL;
}

static struct nb_alert_state *
state_of(struct nb_alert_view *v, enum nb_alert_kind k, const char *source)
{
	size_t i;

	for (i = 0; i < v->nst; i++)
		if (v->st[i].kind == k && strcmp(v->st[i].source, source) == 0)
			return &v->st[i];
	return NULL;
}

/*
 * The main reason of the dead letters source got since since_ms: of the
 * recent errors of dead letters that moved since then, the reason whose
 * errors grew most.  Counts are kept from one look to the next; an error
 * not seen before counts whole.  NULL when none moved.
 */
static const char *
dead_reason(const struct nb_alerter *a, const struct nb_store_error *now,
    size_t n, const char *source, int64_t since_ms)
{
	const char *best = NULL;
	int64_t bestn = 0, grew;
	size_t i, j;

	for (i = 0; i < n; i++) {
		if (strcmp(now[i].source, source) != 0 ||
		    now[i].state != NB_STATE_DEAD || now[i].reason == NULL ||
		    now[i].last_ms < since_ms)
			continue;
		grew = now[i].count;
		for (j = 0; j < a->nerrs; j++)
			if (strcmp(a->errs[j].source, source) == 0 &&
			    strcmp(a->errs[j].error, now[i].error) == 0)
				grew -= a->errs[j].count;
		if (grew > bestn) {
			bestn = grew;
			best = now[i].reason;
		}
	}
	return best;
}

/* The latest report of kind for source (0 when none). */
static const struct nb_alert_report *
report_of(
    const struct nb_alert_view *v, enum nb_alert_kind k, const char *source)
{
	const struct nb_alert_report *best = NULL;
	size_t i;

	for (i = 0; i < v->nrep; i++)
		if (v->rep[i].kind == k &&
		    strcmp(v->rep[i].source, source) == 0 &&
		    (best == NULL || v->rep[i].seen_ms > best->seen_ms))
			best = &v->rep[i];
	return best;
}

/* What one evaluation knows about src. */
struct evaluation {
	int64_t now;
	struct nb_alert_view *view;
	const struct nb_source_stats *stats;
	size_t nstats;
	int have_stats;
	struct nb_store_error *errs; /* read when new dead letters need one */
	size_t nerrs;
	int errs_read;
	struct nb_alert_params p;
	struct changes ch;
};

static void
observe(struct nb_alerter *a, struct evaluation *ev,
    const struct nb_source *src, struct nb_alert_obs *o)
{
	const struct nb_source_stats *st;
	const struct nb_alert_report *r;
	struct nb_alert_state *dead, *ps;

	memset(o, 0, sizeof(*o));
	o->now_ms = ev->now;
	o->start_ms = a->start_ms;
	if ((r = report_of(ev->view, NB_ALERT_SOURCE_PAUSED, src->name)) !=
	    NULL) {
		o->paused_seen_ms = r->seen_ms;
		/* A firing pause is not over for lack of a chance to renew. */
		if ((ps = state_of(ev->view, NB_ALERT_SOURCE_PAUSED,
			 src->name)) != NULL &&
		    ps->firing && a->steady_ms > r->seen_ms)
			o->paused_seen_ms = a->steady_ms;
		o->paused_status = r->status;
		o->paused_text = r->text;
	}
	o->have_queue = ev->have_stats;
	if ((st = stats_of(ev->stats, ev->nstats, src->name)) != NULL) {
		o->dead_total = st->dead_total;
		o->pending = st->pending;
		o->oldest_pending_ms = st->oldest_pending_ms;
	}
	/* New dead letters: since the last look, or all for a new state. */
	dead = state_of(ev->view, NB_ALERT_DEAD_LETTERS, src->name);
	if (ev->have_stats && o->dead_total > (dead != NULL ? dead->mark : 0)) {
		if (!ev->errs_read && a->store != NULL)
			ev->errs_read =
			    nb_store_errors(a->store, 0, NB_STORE_ERRORS_KEPT,
				&ev->errs, &ev->nerrs) == 0;
		o->dead_reason = dead_reason(a, ev->errs, ev->nerrs, src->name,
		    dead != NULL ? a->last_eval_ms - 1000 : 0);
	}
	o->silent_after_ms = src->silent_after_s * 1000;
	o->have_received = 1;
	o->last_received_ms = nb_activity_last(a->deps.activity, src->name);
}

/* Steps one state (found in the view, or new) and records the change. */
static void
step_one(struct nb_alerter *a, struct evaluation *ev, enum nb_alert_kind k,
    const char *source, const struct nb_alert_obs *o)
{
	struct nb_alert_state fresh, *st;
	enum nb_alert_notify what;
	int changed = 0;

	if ((st = state_of(ev->view, k, source)) == NULL) {
		memset(&fresh, 0, sizeof(fresh));
		fresh.kind = k;
		(void)snprintf(
		    fresh.source, sizeof(fresh.source), "%s", source);
		memcpy(fresh.details, "{}", 3);
		st = &fresh;
	}
	what = nb_alert_step(st, o, &ev->p, &changed);
	if (what != NB_ALERT_QUIET)
		log_info(
		    what == NB_ALERT_FIRING ? "alert firing" : "alert resolved",
		    " alert=%s source=%s", nb_alert_name(k), source);
	if (changed)
		changes_add(&ev->ch, st, what, ev->now,
		    a->cfg->alerts.webhook_url != NULL);
}

/* Firing states of sources no longer configured end. */
static void
step_gone(struct nb_alerter *a, struct evaluation *ev)
{
	struct nb_alert_state *st;
	size_t i;

	for (i = 0; i < ev->view->nst; i++) {
		st = &ev->view->st[i];
		if (!st->firing || st->kind == NB_ALERT_STORE_UNAVAILABLE ||
		    st->kind >= NB_ALERT_KINDS ||
		    nb_config_source(a->cfg, st->source) != NULL)
			continue;
		st->firing = 0;
		st->resolved_ms = ev->now;
		(void)snprintf(st->summary, sizeof(st->summary),
		    "Source %s is no longer configured", st->source);
		changes_add(&ev->ch, st, NB_ALERT_RESOLVED, ev->now,
		    a->cfg->alerts.webhook_url != NULL);
	}
}

/* Applies ev's changes to the view too, so it shows what was written. */
static void
view_update(struct nb_alert_view *v, const struct changes *ch)
{
	struct nb_alert_state *st;
	size_t i;
	void *p;

	for (i = 0; i < ch->nst; i++) {
		if ((st = state_of(v, ch->st[i].kind, ch->st[i].source)) !=
		    NULL) {
			*st = ch->st[i];
			continue;
		}
		if ((p = reallocarray(v->st, v->nst + 1, sizeof(*v->st))) ==
		    NULL)
			return;
		v->st = p;
		v->st[v->nst++] = ch->st[i];
	}
}

/* The evaluator's part of a tick.  0 or -1 (the store failed). */
static int
evaluate(struct nb_alerter *a, struct nb_alert_view *view, int64_t now)
{
	struct nb_alert_apply ap;
	struct nb_source_stats *stats = NULL;
	struct evaluation ev;
	struct nb_alert_obs o;
	size_t i, k, nstats = 0;
	int applied = 0, rc = -1;

	memset(&ev, 0, sizeof(ev));
	ev.now = now;
	ev.view = view;
	params_of(a->cfg, &ev.p);
	/*
	 * A report ages only while this instance evaluates on schedule.
	 * After a gap (this instance just took over, or the store or the
	 * machine held it up, and then likely the others too), a report
	 * still standing is counted from now: its instance gets a whole
	 * grace to renew it before its pause counts as over.
	 */
	if (a->steady_ms == 0 ||
	    now - a->last_eval_ms > ev.p.pause_grace_ms / 2)
		a->steady_ms = now;
	ev.have_stats = nb_store_stats_all(a->store, now, &stats, &nstats) == 0;
	ev.stats = stats;
	ev.nstats = nstats;
	for (i = 0; i < a->cfg->nsources; i++) {
		observe(a, &ev, &a->cfg->sources[i], &o);
		for (k = 0; k < ALERTER_KINDS; k++)
			step_one(a, &ev, source_kinds[k],
			    a->cfg->sources[i].name, &o);
	}
	step_gone(a, &ev);
	if (ev.ch.failed) {
		log_error("out of memory", " states=%zu", ev.ch.nst);
		goto out;
	}
	memset(&ap, 0, sizeof(ap));
	ap.owner = a->owner;
	ap.now_ms = now;
	ap.lease_until_ms = now + lease_ms(a->cfg);
	ap.st = ev.ch.st;
	ap.nst = ev.ch.nst;
	ap.notes = ev.ch.notes;
	ap.nnotes = ev.ch.nnotes;
	ap.prune_before_ms = now - ALERTER_KEEP_MS;
	if (nb_store_alert_apply(a->store, &ap, &applied) == -1)
		goto out;
	if (applied)
		view_update(view, &ev.ch);
	if (ev.errs_read) {
		nb_store_errors_free(a->errs, a->nerrs);
		a->errs = ev.errs;
		a->nerrs = ev.nerrs;
		ev.errs = NULL;
	}
	a->last_eval_ms = now;
	rc = 0;
out:
	nb_store_errors_free(ev.errs, ev.nerrs);
	changes_clear(&ev.ch);
	free(stats);
	return rc;
}

/* Publishes the states of v that fire or once did. */
static void
publish(struct nb_alerter *a, const struct nb_alert_view *v, int64_t now)
{
	struct nb_alert_state *pub = NULL;
	size_t i, n = 0;

	if ((pub = calloc(v->nst + 1, sizeof(*pub))) == NULL)
		return;
	for (i = 0; i < v->nst; i++)
		if (v->st[i].kind < NB_ALERT_STORE_UNAVAILABLE &&
		    (v->st[i].firing || v->st[i].started_ms > 0))
			pub[n++] = v->st[i];
	pthread_mutex_lock(&a->lock);
	free(a->pub);
	a->pub = pub;
	a->npub = n;
	a->pub_ms = now;
	pthread_mutex_unlock(&a->lock);
}

/* Collects figures that moved, for a beat. */
struct rows {
	struct nb_activity_row *v;
	size_t n, cap;
	int failed;
};

static void
rows_cb(void *arg, const struct nb_activity_row *r)
{
	struct rows *rs = arg;
	void *p;

	if (rs->failed)
		return;
	if (rs->n == rs->cap) {
		rs->cap = rs->cap == 0 ? 64 : rs->cap * 2;
		if ((p = reallocarray(rs->v, rs->cap, sizeof(*rs->v))) ==
		    NULL) {
			rs->failed = 1;
			return;
		}
		rs->v = p;
	}
	rs->v[rs->n++] = *r;
}

/* This instance's paused sources as reports. */
static size_t
reports_make(struct nb_alerter *a, int64_t now)
{
	struct nb_alert_report *rep = a->rep;
	const struct nb_paused *paused = a->paused;
	size_t n = 0, i;

	if (a->deps.paused != NULL)
		n = a->deps.paused(
		    a->deps.paused_arg, a->paused, NB_BOARD_MAX_PAUSED);
	if (n > NB_BOARD_MAX_PAUSED)
		n = NB_BOARD_MAX_PAUSED;
	for (i = 0; i < n; i++) {
		memset(&rep[i], 0, sizeof(rep[i]));
		rep[i].kind = NB_ALERT_SOURCE_PAUSED;
		memcpy(rep[i].source, paused[i].source, sizeof(rep[i].source));
		rep[i].source[sizeof(rep[i].source) - 1] = '\0';
		rep[i].status = paused[i].status;
		memcpy(rep[i].text, paused[i].text,
		    sizeof(paused[i].text) < sizeof(rep[i].text)
			? sizeof(paused[i].text)
			: sizeof(rep[i].text));
		rep[i].text[sizeof(rep[i].text) - 1] = '\0';
		rep[i].seen_ms = now;
	}
	return n;
}

/* Beat, read, evaluate, publish.  0 or -1 (the store failed). */
static int
tick_store(struct nb_alerter *a, int64_t now)
{
	struct nb_alert_view view;
	struct nb_alert_beat b;
	struct rows rs;
	int leader = 0, rc = -1;

	memset(&rs, 0, sizeof(rs));
	memset(&view, 0, sizeof(view));
	nb_activity_each(a->deps.activity, 1, rows_cb, &rs);
	if (rs.failed)
		goto out;
	memset(&b, 0, sizeof(b));
	b.owner = a->owner;
	b.now_ms = now;
	b.lease_until_ms = now + lease_ms(a->cfg);
	b.act = rs.v;
	b.nact = rs.n;
	b.rep = a->rep;
	b.nrep = reports_make(a, now);
	if (nb_store_alert_beat(a->store, &b, &leader) == -1)
		goto out;
	nb_activity_stored(a->deps.activity, rs.v, rs.n);
	if (leader != a->leader)
		log_info(leader ? "alerter: evaluating for the fleet"
				: "alerter: another instance evaluates",
		    " owner=%s", a->owner);
	a->leader = leader;
	atomic_store(&a->evaluator, leader);
	if (nb_store_alert_read(a->store, now - ALERTER_REPORTS_MS, &view) ==
	    -1)
		goto out;
	nb_activity_merge(a->deps.activity, view.act, view.nact);
	if (leader && evaluate(a, &view, now) == -1)
		goto out;
	publish(a, &view, now);
	rc = 0;
out:
	nb_alert_view_clear(&view);
	free(rs.v);
	return rc;
}

static void send_done_cb(const struct nb_xfer_answer *ans, void *arg);

/* Starts sending n (taken); 0, or -1 (n freed). */
static int
flight_start(struct nb_alerter *a, struct nb_alert_note *n, struct mem_note *m)
{
	struct flight *f;

	if ((f = calloc(1, sizeof(*f))) == NULL) {
		if (m == NULL)
			free(n->body);
		return -1;
	}
	f->a = a;
	f->in_store = m == NULL;
	f->note = *n;
	f->mem = m;
	if (m != NULL) {
		f->note.body = m->note.body; /* borrowed from m */
		m->flying = 1;
	}
	LIST_INSERT_HEAD(&a->flights, f, entry);
	a->nflights++;
	if (nb_alert_send(a->mx, &a->cfg->alerts, f->note.msg_id, f->note.body,
		nb_time_now_ms(), send_done_cb, f) == -1) {
		LIST_REMOVE(f, entry);
		a->nflights--;
		if (m != NULL)
			m->flying = 0;
		else
			free(f->note.body);
		free(f);
		return -1;
	}
	return 0;
}

/* Claims what is due from the outbox and sends it. */
static void
send_due(struct nb_alerter *a, int64_t now)
{
	struct nb_alert_note *notes = NULL;
	size_t n = 0, i;

	if (a->cfg->alerts.webhook_url == NULL ||
	    a->nflights >= ALERTER_INFLIGHT)
		return;
	if (nb_store_alert_claim(a->store, a->owner, now,
		now + a->cfg->alerts.timeout_ms + 5000,
		ALERTER_INFLIGHT - a->nflights, &notes, &n) == -1) {
		store_failed(a);
		return;
	}
	for (i = 0; i < n; i++) {
		if (flight_start(a, &notes[i], NULL) == -1)
			(void)nb_store_alert_finish(a->store, a->owner,
			    notes[i].id, NB_ALERT_RETRY, now,
			    now + nb_alert_send_backoff_ms(&a->cfg->alerts, 1),
			    "cannot start the request");
		notes[i].body = NULL; /* taken */
	}
	nb_alert_notes_free(notes, n);
}

static void
mem_clear(struct mem_note *m)
{
	free(m->note.body);
	memset(m, 0, sizeof(*m));
}

/* store_unavailable: watched and told from memory. */
static void
tick_memory(struct nb_alerter *a, int64_t now)
{
	struct nb_alert_params p;
	struct nb_alert_obs o;
	enum nb_alert_notify what;
	struct mem_note *m = NULL;
	size_t i;
	int changed = 0;

	if (a->deps.healthy == NULL || a->deps.healthy(a->deps.healthy_arg))
		a->bad_since_ms = 0;
	else if (a->bad_since_ms == 0)
		a->bad_since_ms = now;
	memset(&o, 0, sizeof(o));
	o.now_ms = now;
	o.store_bad_since_ms = a->bad_since_ms;
	o.instance = a->owner;
	params_of(a->cfg, &p);
	what = nb_alert_step(&a->mem, &o, &p, &changed);
	if (changed) {
		pthread_mutex_lock(&a->lock);
		a->pub_mem = a->mem;
		pthread_mutex_unlock(&a->lock);
	}
	if (what != NB_ALERT_QUIET) {
		log_warn(
		    what == NB_ALERT_FIRING ? "alert firing" : "alert resolved",
		    " alert=store_unavailable owner=%s", a->owner);
		if (a->cfg->alerts.webhook_url != NULL) {
			/* Full: the oldest that is not in flight goes. */
			for (i = 0; i < ALERTER_MEM_NOTES && m == NULL; i++)
				if (!a->mems[i].used)
					m = &a->mems[i];
			for (i = 0; i < ALERTER_MEM_NOTES && m == NULL; i++)
				if (!a->mems[i].flying)
					m = &a->mems[i];
			if (m != NULL) {
				mem_clear(m);
				if (note_make(&a->mem, what, now, &m->note) ==
				    0) {
					m->used = 1;
					m->next_ms = now;
				}
			}
		}
	}
	for (i = 0; i < ALERTER_MEM_NOTES; i++) {
		m = &a->mems[i];
		if (m->used && !m->flying && m->next_ms <= now &&
		    a->cfg->alerts.webhook_url != NULL)
			(void)flight_start(a, &m->note, m);
	}
}

/* What became of one notification: counted, logged, recorded. */
static void
send_end(struct flight *f, const struct nb_xfer_answer *ans)
{
	struct nb_alerter *a = f->a;
	const struct nb_alerts_config *ac = &a->cfg->alerts;
	enum nb_alert_outcome how = NB_ALERT_SENT;
	char err[96] = "";
	int64_t now = nb_time_now_ms(), next = 0;
	int attempts = f->note.attempts + 1;

	if (ans->status >= 200 && ans->status < 300) {
		atomic_fetch_add(&a->sent, 1);
		log_info("alert sent",
		    " alert=%s source=%s status=%s msg_id=%s attempts=%d",
		    nb_alert_name(f->note.kind),
		    f->note.source[0] != '\0' ? f->note.source : "-",
		    f->note.resolved ? "resolved" : "firing", f->note.msg_id,
		    attempts);
	} else {
		atomic_fetch_add(&a->failed, 1);
		if (ans->status != 0)
			(void)snprintf(
			    err, sizeof(err), "HTTP %ld", ans->status);
		else
			(void)snprintf(err, sizeof(err), "%s",
			    ans->timed_out ? "timed out" : "no answer");
		how = now - f->note.created_ms >= ac->max_age_s * 1000
		    ? NB_ALERT_DROPPED
		    : NB_ALERT_RETRY;
		next = now + nb_alert_send_backoff_ms(ac, attempts);
		if (how == NB_ALERT_DROPPED)
			atomic_fetch_add(&a->dropped, 1);
		log_warn(how == NB_ALERT_DROPPED
			? "alert notification failed; giving up"
			: "alert notification failed; will retry",
		    " alert=%s msg_id=%s error=\"%s\" attempts=%d "
		    "retry_ms=%" PRId64,
		    nb_alert_name(f->note.kind), f->note.msg_id, err, attempts,
		    how == NB_ALERT_RETRY ? next - now : 0);
	}
	if (!f->in_store) {
		f->mem->flying = 0;
		f->mem->note.attempts = attempts;
		f->mem->next_ms = next;
		if (how != NB_ALERT_RETRY)
			mem_clear(f->mem);
		return;
	}
	if (a->store != NULL &&
	    nb_store_alert_finish(a->store, a->owner, f->note.id, how, now,
		next, how == NB_ALERT_SENT ? NULL : err) == -1)
		store_failed(a); /* the claim runs out: sent again */
}

static void
send_done_cb(const struct nb_xfer_answer *ans, void *arg)
{
	struct flight *f = arg;

	LIST_REMOVE(f, entry);
	f->a->nflights--;
	if (ans->canceled) {
		if (f->mem != NULL)
			f->mem->flying = 0;
	} else
		send_end(f, ans);
	if (f->in_store)
		free(f->note.body);
	free(f);
}

/* Picks up a new configuration handed over by nb_alerter_reload(). */
static void
take_config(struct nb_alerter *a)
{
	struct nb_config *cfg;
	struct timeval tv;

	pthread_mutex_lock(&a->lock);
	cfg = a->next_cfg;
	a->next_cfg = NULL;
	pthread_mutex_unlock(&a->lock);
	if (cfg == NULL)
		return;
	nb_config_unref(a->cfg);
	a->cfg = cfg;
	tv.tv_sec = cfg->alerts.interval_ms / 1000;
	tv.tv_usec = (cfg->alerts.interval_ms % 1000) * 1000;
	(void)event_add(a->tick, &tv);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_alerter *a = arg;
	int64_t now = nb_time_now_ms();

	(void)fd;
	(void)what;
	take_config(a);
	tick_memory(a, now);
	if (store_ready(a, now) == -1)
		return;
	if (tick_store(a, now) == -1) {
		store_failed(a);
		return;
	}
	send_due(a, now);
}

static void
ctl_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_alerter *a = arg;
	int stop;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&a->lock);
	stop = a->stop;
	pthread_mutex_unlock(&a->lock);
	if (stop)
		event_base_loopbreak(a->base);
	else
		tick_cb(-1, 0, a);
}

static void *
alerter_main(void *arg)
{
	struct nb_alerter *a = arg;

	event_base_loop(a->base, EVLOOP_NO_EXIT_ON_EMPTY);
	/* Claims in flight run out and are sent again by someone. */
	nb_xfer_multi_free(a->mx);
	a->mx = NULL;
	nb_store_close(a->store);
	a->store = NULL;
	return NULL;
}

struct nb_alerter *
nb_alerter_new(const struct nb_alerter_deps *deps, struct nb_config *cfg,
    char *err, size_t errlen)
{
	struct nb_alerter *a;
	char host[64];
	unsigned char r[4];

	err[0] = '\0';
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (pthread_mutex_init(&a->lock, NULL) != 0) {
		free(a);
		snprintf(err, errlen, "cannot create a mutex");
		return NULL;
	}
	a->deps = *deps;
	a->cfg = nb_config_ref(cfg);
	LIST_INIT(&a->flights);
	a->mem.kind = NB_ALERT_STORE_UNAVAILABLE;
	memcpy(a->mem.details, "{}", 3);
	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	randombytes_buf(r, sizeof(r));
	snprintf(a->owner, sizeof(a->owner), "%s/%ld/%02x%02x%02x%02x", host,
	    (long)getpid(), r[0], r[1], r[2], r[3]);
	if ((a->base = event_base_new()) == NULL ||
	    (a->tick = event_new(a->base, -1, EV_PERSIST, tick_cb, a)) ==
		NULL ||
	    (a->ctl = event_new(a->base, -1, 0, ctl_cb, a)) == NULL ||
	    (a->mx = nb_xfer_multi_new(a->base, err, errlen)) == NULL) {
		if (err[0] == '\0')
			snprintf(err, errlen, "cannot create an event base");
		nb_alerter_free(a);
		return NULL;
	}
	return a;
}

int
nb_alerter_start(struct nb_alerter *a)
{
	struct timeval tv;

	a->start_ms = nb_time_now_ms();
	a->last_eval_ms = a->start_ms;
	tv.tv_sec = a->cfg->alerts.interval_ms / 1000;
	tv.tv_usec = (a->cfg->alerts.interval_ms % 1000) * 1000;
	if (event_add(a->tick, &tv) == -1)
		return -1;
	if (pthread_create(&a->thread, NULL, alerter_main, a) != 0)
		return -1;
	a->started = 1;
	/* The first evaluation now rather than an interval from now. */
	event_active(a->ctl, EV_READ, 0);
	return 0;
}

void
nb_alerter_reload(struct nb_alerter *a, struct nb_config *cfg)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->lock);
	nb_config_unref(a->next_cfg);
	a->next_cfg = nb_config_ref(cfg);
	pthread_mutex_unlock(&a->lock);
}

static json_t *
state_json(const struct nb_alert_state *st)
{
	char started[NB_TIME_ISO_LEN];
	json_t *d;

	nb_time_format_iso(st->started_ms, started);
	if ((d = json_loads(st->details, 0, NULL)) == NULL)
		d = json_object();
	return json_pack("{s:s, s:s, s:o, s:s, s:s, s:o}", "alert",
	    nb_alert_name(st->kind), "status", "firing", "source",
	    st->source[0] != '\0' ? json_string(st->source) : json_null(),
	    "summary", st->summary, "started_at", started, "details", d);
}

/*
 * The i-th published state: the store's, then this instance's own once it
 * fired; NULL past the end.  Under a->lock.
 */
static const struct nb_alert_state *
pub_at(const struct nb_alerter *a, size_t i)
{
	if (i < a->npub)
		return &a->pub[i];
	if (i == a->npub && a->pub_mem.started_ms > 0)
		return &a->pub_mem;
	return NULL;
}

json_t *
nb_alerter_firing(struct nb_alerter *a)
{
	const struct nb_alert_state *st;
	char at[NB_TIME_ISO_LEN];
	json_t *arr, *o;
	size_t i;

	if ((arr = json_array()) == NULL)
		return NULL;
	pthread_mutex_lock(&a->lock);
	for (i = 0; (st = pub_at(a, i)) != NULL; i++) {
		if (!st->firing)
			continue;
		if ((o = state_json(st)) == NULL ||
		    json_array_append_new(arr, o) == -1) {
			pthread_mutex_unlock(&a->lock);
			json_decref(arr);
			return NULL;
		}
	}
	nb_time_format_iso(a->pub_ms, at);
	o = json_pack("{s:o, s:o}", "alerts", arr, "evaluated_at",
	    a->pub_ms > 0 ? json_string(at) : json_null());
	pthread_mutex_unlock(&a->lock);
	return o;
}

int
nb_alerter_render(void *arg, struct evbuffer *out)
{
	struct nb_alerter *a = arg;
	const char *name = "nudgebridge_alert_firing";
	const struct nb_alert_state *st;
	size_t i;
	int rc = 0;

	if (evbuffer_add_printf(out,
		"# HELP %s 1 while an alert condition fires, 0 once it "
		"resolved (absent until it first fired).\n"
		"# TYPE %s gauge\n",
		name, name) < 0)
		return -1;
	pthread_mutex_lock(&a->lock);
	for (i = 0; rc == 0 && (st = pub_at(a, i)) != NULL; i++)
		rc = evbuffer_add_printf(out,
			 "%s{alert=\"%s\",source=\"%s\"} %d\n", name,
			 nb_alert_name(st->kind), st->source, st->firing) < 0
		    ? -1
		    : 0;
	pthread_mutex_unlock(&a->lock);
	if (rc == -1 ||
	    evbuffer_add_printf(out,
		"# HELP nudgebridge_alert_notifications_total Alert "
		"notification attempts by this instance, by outcome.\n"
		"# TYPE nudgebridge_alert_notifications_total counter\n"
		"nudgebridge_alert_notifications_total{outcome=\"sent\"} %llu\n"
		"nudgebridge_alert_notifications_total{outcome=\"failed\"} "
		"%llu\n"
		"nudgebridge_alert_notifications_total{outcome=\"dropped\"} "
		"%llu\n"
		"# HELP nudgebridge_alert_evaluator 1 while this instance "
		"evaluates the alert conditions for the fleet.\n"
		"# TYPE nudgebridge_alert_evaluator gauge\n"
		"nudgebridge_alert_evaluator %d\n",
		(unsigned long long)atomic_load(&a->sent),
		(unsigned long long)atomic_load(&a->failed),
		(unsigned long long)atomic_load(&a->dropped),
		atomic_load(&a->evaluator)) < 0)
		return -1;
	return 0;
}

void
nb_alerter_stop(struct nb_alerter *a)
{
	if (a == NULL || !a->started)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = 1;
	pthread_mutex_unlock(&a->lock);
	event_active(a->ctl, EV_READ, 0);
	pthread_join(a->thread, NULL);
	a->started = 0;
}

void
nb_alerter_free(struct nb_alerter *a)
{
	size_t i;

	if (a == NULL)
		return;
	nb_alerter_stop(a);
	nb_xfer_multi_free(a->mx);
	nb_store_close(a->store);
	for (i = 0; i < ALERTER_MEM_NOTES; i++)
		mem_clear(&a->mems[i]);
	nb_store_errors_free(a->errs, a->nerrs);
	if (a->tick != NULL)
		event_free(a->tick);
	if (a->ctl != NULL)
		event_free(a->ctl);
	if (a->base != NULL)
		event_base_free(a->base);
	free(a->pub);
	nb_config_unref(a->cfg);
	nb_config_unref(a->next_cfg);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
