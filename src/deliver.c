/* SPDX-License-Identifier: ISC */
/*
 * deliver: the delivery thread, its loop, reloads and the drain.
 *
 * The thread runs its own event_base; the transfer engine (xfer.h) drives
 * libcurl from it and the lanes (lane.h) do the work on each tick.
 * Everything here runs on that thread, except the entry points that say
 * "any thread": they only touch the mutex-guarded fields and wake the loop
 * through the kick event.  A tick runs every flush_interval_ms, at once
 * after a kick (a commit, an answer, a reload), and every DRAIN_TICK_MS
 * while draining; housekeeping (pruning delivered rows and old dedupe
 * keys) runs about once a minute.  A reload builds the new lane table
 * first and retires the old one only when that worked, so a reload that
 * finds no memory keeps delivering with the old configuration.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>

#include "nudgebridge/deliver.h"
#include "nudgebridge/fleet.h"
#include "nudgebridge/lane.h"
#include "nudgebridge/log.h"
#include "nudgebridge/metrics.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"
#include "nudgebridge/xfer.h"

#define DRAIN_TICK_MS  10    /* tick period while draining */
#define PRUNE_EVERY_MS 60000 /* housekeeping period */

struct nb_deliver {
	/* deliverer thread only (or before start / after join) */
	struct nb_config *cfg;
	struct nb_store *store;
	struct event_base *base;
	struct event *kick_ev;
	struct event *tick_ev;
	struct nb_lane_env env;
	struct nb_fleet *fleet;
	struct nb_lane **lanes;
	size_t nlanes;
	int64_t last_prune_mono_ms;
	int draining;
	int64_t drain_deadline_mono_ms;
	int drain_rc;
	int finished;

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

static void
kick(void *arg)
{
	struct nb_deliver *d = arg;

	event_active(d->kick_ev, EV_TIMEOUT, 0);
}

static void
lanes_retire(struct nb_deliver *d)
{
	size_t i;

	for (i = 0; i < d->nlanes; i++)
		nb_lane_retire(d->lanes[i]);
	free(d->lanes);
	d->lanes = NULL;
	d->nlanes = 0;
}

/* What operators read about a pause (cut to outlen). */
static void
paused_text(const struct nb_lane_pause *p, char *out, size_t outlen)
{
	int n;

	if (!p->oauth)
		n = snprintf(out, outlen, "%s (%d)", p->detail, p->status);
	else
		n = snprintf(out, outlen,
		    "the OAuth token endpoint refused the credentials (%d): "
		    "%s%s%s",
		    p->status, p->error, p->detail[0] != '\0' ? ": " : "",
		    p->detail);
	if (n < 0)
		out[0] = '\0';
}

/* Publishes the paused sources for nb_deliver_paused(). */
static void
paused_publish(struct nb_deliver *d)
{
	const struct nb_lane_pause *lp;
	struct nb_paused *p = NULL, *old;
	const char *const *names;
	size_t i, j, k, n = 0, total = 0;

	if (!d->env.paused_dirty)
		return;
	for (i = 0; i < d->nlanes; i++)
		if (nb_lane_paused(d->lanes[i]) != NULL) {
			(void)nb_lane_sources(d->lanes[i], &k);
			total += k;
		}
	if (total > 0 && (p = calloc(total, sizeof(*p))) == NULL)
		return; /* try again next tick */
	for (i = 0; i < d->nlanes; i++) {
		if ((lp = nb_lane_paused(d->lanes[i])) == NULL)
			continue;
		names = nb_lane_sources(d->lanes[i], &k);
		for (j = 0; j < k; j++, n++) {
			(void)snprintf(
			    p[n].source, sizeof(p[n].source), "%s", names[j]);
			p[n].status = lp->status;
			p[n].until_ms = lp->until_ms;
			if (lp->oauth)
				(void)snprintf(p[n].oauth_error,
				    sizeof(p[n].oauth_error), "%s", lp->error);
			paused_text(lp, p[n].text, sizeof(p[n].text));
		}
	}
	pthread_mutex_lock(&d->mu);
	old = d->paused;
	d->paused = p;
	d->npaused = n;
	pthread_mutex_unlock(&d->mu);
	free(old);
	d->env.paused_dirty = 0;
}

/* Ends the drain: cancels and releases everything, stops the loop. */
static void
finish(struct nb_deliver *d)
{
	int64_t now;
	size_t i;
	int left = 0;

	nb_xfer_multi_cancel_all(d->env.mx);
	now = nb_time_now_ms();
	for (i = 0; i < d->nlanes; i++) {
		nb_lane_release_queue(d->lanes[i]);
		if (!left && nb_lane_has_due(d->lanes[i], now))
			left = 1;
	}
	d->drain_rc = left ? -1 : 0;
	if (left)
		log_warn("stopped with events still due", NULL);
	/* The others take its share at their next beat. */
	nb_fleet_leave(d->fleet, d->store);
	d->finished = 1;
	event_base_loopbreak(d->base);
}

static int
drained(struct nb_deliver *d, int64_t now)
{
	size_t i;

	if (nb_xfer_multi_count(d->env.mx) > 0)
		return 0;
	for (i = 0; i < d->nlanes; i++)
		if (nb_lane_busy(d->lanes[i], now))
			return 0;
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
	d->env.rate_share = nb_fleet_tick(d->fleet, d->store, mono, now);
	for (i = 0; i < d->nlanes; i++)
		nb_lane_tick(d->lanes[i], now, mono);
	paused_publish(d);
	if (d->draining && drained(d, now)) {
		finish(d);
		return;
	}
	ms = d->draining ? DRAIN_TICK_MS : d->cfg->segment.flush_interval_ms;
	/* The heartbeat keeps its period whatever the flush interval. */
	if (ms > nb_fleet_beat_ms(d->fleet))
		ms = nb_fleet_beat_ms(d->fleet);
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
	struct nb_lane **lanes;
	size_t n;

	if (nb_lane_build(cfg, &d->env, &lanes, &n) == -1) {
		log_error("configuration not applied to delivery", NULL);
		nb_config_unref(cfg);
		return;
	}
	lanes_retire(d);
	nb_config_unref(d->cfg);
	d->cfg = cfg;
	d->lanes = lanes;
	d->nlanes = n;
	d->env.paused_dirty = 1;
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
			nb_lane_wake(d->lanes[i]);
	}
	tick(d);
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
	d->env.m = m;
	d->env.map = nb_lane_map_segment;
	d->env.kick = kick;
	d->env.kick_arg = d;
	d->env.epoch = -1;
	if (nb_store_open(&d->store, &cfg->store, err, errlen) == -1)
		goto fail;
	d->env.store = d->store;
	/* nb_store_open() checked the id. */
	(void)nb_segment_install_init(
	    &d->env.install, nb_store_install_id(d->store));
	if ((d->fleet = nb_fleet_new(nb_store_shared(d->store),
		 (int64_t)cfg->store.lease_s * 1000)) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((d->base = event_base_new()) == NULL ||
	    (d->kick_ev = event_new(d->base, -1, 0, kick_cb, d)) == NULL ||
	    (d->tick_ev = evtimer_new(d->base, tick_cb, d)) == NULL) {
		(void)snprintf(err, errlen, "cannot create the event loop");
		goto fail;
	}
	if ((d->env.mx = nb_xfer_multi_new(d->base, err, errlen)) == NULL)
		goto fail;
	if (nb_lane_build(d->cfg, &d->env, &d->lanes, &d->nlanes) == -1) {
		(void)snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return d;
fail:
	nb_deliver_free(d);
	return NULL;
}

struct nb_fleet *
nb_deliver_fleet(struct nb_deliver *d)
{
	return d->fleet;
}

void
nb_deliver_set_map(struct nb_deliver *d, nb_lane_map_fn map)
{
	d->env.map = map;
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
	if (d == NULL)
		return;
	if (d->started)
		(void)nb_deliver_stop(d, 0);
	/* Requests in flight end first: they release rows through lanes. */
	if (d->env.mx != NULL)
		nb_xfer_multi_cancel_all(d->env.mx);
	lanes_retire(d);
	nb_xfer_multi_free(d->env.mx);
	if (d->tick_ev != NULL)
		event_free(d->tick_ev);
	if (d->kick_ev != NULL)
		event_free(d->kick_ev);
	if (d->base != NULL)
		event_base_free(d->base);
	nb_store_close(d->store);
	nb_fleet_free(d->fleet);
	nb_config_unref(d->pending_cfg);
	nb_config_unref(d->cfg);
	free(d->paused);
	pthread_mutex_destroy(&d->mu);
	free(d);
}
