/* SPDX-License-Identifier: ISC */
/*
 * activity: a fixed open-addressing table of sources, each with its keys.
 *
 * A slot (a source, or a key within a source's slot) is claimed once
 * under the table's mutex: its name is written while its state is
 * BUSY, then the state turns READY with a release store, after which the
 * name never changes and readers compare it without a lock.  A lookup
 * that meets a BUSY slot takes the mutex and looks again, so it never
 * reads a half-written name.  Each figure is two atomics: the newest
 * value (raised with a compare-and-swap maximum, since the webhook
 * threads and the alert thread both raise it) and the value last known
 * to be in the store; the two differ while there is something to write.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "nudgebridge/activity.h"

enum { SLOT_FREE = 0, SLOT_BUSY, SLOT_READY };

struct figure {
	atomic_int_fast64_t last;   /* newest, wall ms */
	atomic_int_fast64_t stored; /* what the store holds, as far as known */
};

struct key_slot {
	atomic_int state;
	char fp[NB_SIG_FP_LEN];
	struct figure f;
};

struct src_slot {
	atomic_int state;
	char name[NB_SOURCE_NAME_MAX + 1];
	struct figure f;
	struct key_slot keys[NB_ACTIVITY_KEYS];
};

struct nb_activity {
	pthread_mutex_t lock; /* claims slots */
	struct src_slot slots[NB_ACTIVITY_SOURCES];
};

struct nb_activity *
nb_activity_new(void)
{
	struct nb_activity *a;

	/* Zeroed memory is FREE slots and zero figures. */
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	if (pthread_mutex_init(&a->lock, NULL) != 0) {
		free(a);
		return NULL;
	}
	return a;
}

void
nb_activity_free(struct nb_activity *a)
{
	if (a == NULL)
		return;
	pthread_mutex_destroy(&a->lock);
	free(a);
}

static void
raise_to(atomic_int_fast64_t *v, int64_t ms)
{
	int_fast64_t old = atomic_load_explicit(v, memory_order_relaxed);

	while (old < ms &&
	    !atomic_compare_exchange_weak_explicit(
		v, &old, ms, memory_order_relaxed, memory_order_relaxed))
		;
}

/* FNV-1a: names are short and chosen by operators, not by strangers. */
static size_t
name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/*
 * The READY slot named name among n slots of size bytes each (the state
 * first, the name at name_off), probing from start.  With create (the
 * caller holds a->lock), a FREE slot met first is claimed for name.  NULL
 * when absent or the table is full; *busy is set when a slot being
 * claimed was met, whose name cannot be read yet.
 */
static void *
probe(void *slots, size_t n, size_t size, size_t name_off, size_t start,
    const char *name, int create, int *busy)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char *s = (char *)slots + ((start + i) % n) * size;
		atomic_int *st = (atomic_int *)(void *)s;
		int state = atomic_load_explicit(st, memory_order_acquire);

		if (state == SLOT_READY) {
			if (strcmp(s + name_off, name) == 0)
				return s;
			continue;
		}
		if (state == SLOT_BUSY) {
			*busy = 1;
			return NULL;
		}
		if (!create)
			return NULL;
		atomic_store_explicit(st, SLOT_BUSY, memory_order_relaxed);
		memcpy(s + name_off, name, strlen(name) + 1);
		atomic_store_explicit(st, SLOT_READY, memory_order_release);
		return s;
	}
	return NULL;
}

/*
 * A slot named name: found without the lock when it is there, else
 * looked up again (and with create claimed) under it.
 */
static void *
slot_get(struct nb_activity *a, void *slots, size_t n, size_t size,
    size_t name_off, size_t start, const char *name, int create)
{
	void *s;
	int busy = 0;

	if ((s = probe(slots, n, size, name_off, start, name, 0, &busy)) !=
		NULL ||
	    (!create && !busy))
		return s;
	pthread_mutex_lock(&a->lock);
	s = probe(slots, n, size, name_off, start, name, create, &busy);
	pthread_mutex_unlock(&a->lock);
	return s;
}

static struct src_slot *
source_slot(struct nb_activity *a, const char *name, int create)
{
	if (strlen(name) > NB_SOURCE_NAME_MAX)
		return NULL;
	return slot_get(a, a->slots, NB_ACTIVITY_SOURCES, sizeof(a->slots[0]),
	    offsetof(struct src_slot, name), name_hash(name), name, create);
}

static struct key_slot *
key_slot(struct nb_activity *a, struct src_slot *s, const char *fp)
{
	if (strlen(fp) >= NB_SIG_FP_LEN)
		return NULL;
	return slot_get(a, s->keys, NB_ACTIVITY_KEYS, sizeof(s->keys[0]),
	    offsetof(struct key_slot, fp), 0, fp, 1);
}

static struct figure *
figure_of(struct nb_activity *a, const char *source, const char *fp)
{
	struct src_slot *s;
	struct key_slot *k;

	if ((s = source_slot(a, source, 1)) == NULL)
		return NULL;
	if (fp == NULL || fp[0] == '\0')
		return &s->f;
	if ((k = key_slot(a, s, fp)) == NULL)
		return NULL;
	return &k->f;
}

void
nb_activity_note(
    struct nb_activity *a, const char *source, const char *fp, int64_t now_ms)
{
	struct src_slot *s;
	struct key_slot *k;

	if (a == NULL || source == NULL ||
	    (s = source_slot(a, source, 1)) == NULL)
		return;
	raise_to(&s->f.last, now_ms);
	if (fp != NULL && fp[0] != '\0' && (k = key_slot(a, s, fp)) != NULL)
		raise_to(&k->f.last, now_ms);
}

void
nb_activity_merge(
    struct nb_activity *a, const struct nb_activity_row *rows, size_t n)
{
	struct figure *f;
	size_t i;

	for (i = 0; i < n; i++) {
		if ((f = figure_of(a, rows[i].source, rows[i].fp)) == NULL)
			continue;
		raise_to(&f->stored, rows[i].ms);
		raise_to(&f->last, rows[i].ms);
	}
}

void
nb_activity_stored(
    struct nb_activity *a, const struct nb_activity_row *rows, size_t n)
{
	nb_activity_merge(a, rows, n);
}

/* Calls fn for f when it has a value (and moved, with dirty). */
static void
each_figure(struct figure *f, const char *source, const char *fp, int dirty,
    nb_activity_fn fn, void *arg)
{
	struct nb_activity_row r;
	int64_t last = atomic_load_explicit(&f->last, memory_order_relaxed);

	if (last <= 0 ||
	    (dirty &&
		last <= atomic_load_explicit(&f->stored, memory_order_relaxed)))
		return;
	(void)snprintf(r.source, sizeof(r.source), "%s", source);
	(void)snprintf(r.fp, sizeof(r.fp), "%s", fp);
	r.ms = last;
	fn(arg, &r);
}

void
nb_activity_each(struct nb_activity *a, int dirty, nb_activity_fn fn, void *arg)
{
	struct src_slot *s;
	struct key_slot *k;
	size_t i, j;

	for (i = 0; i < NB_ACTIVITY_SOURCES; i++) {
		s = &a->slots[i];
		if (atomic_load_explicit(&s->state, memory_order_acquire) !=
		    SLOT_READY)
			continue;
		each_figure(&s->f, s->name, "", dirty, fn, arg);
		for (j = 0; j < NB_ACTIVITY_KEYS; j++) {
			k = &s->keys[j];
			if (atomic_load_explicit(
				&k->state, memory_order_acquire) != SLOT_READY)
				continue;
			each_figure(&k->f, s->name, k->fp, dirty, fn, arg);
		}
	}
}

int64_t
nb_activity_last(struct nb_activity *a, const char *source)
{
	struct src_slot *s;

	if (a == NULL || (s = source_slot(a, source, 0)) == NULL)
		return 0;
	return atomic_load_explicit(&s->f.last, memory_order_relaxed);
}

struct render {
	struct evbuffer *out;
	int keys; /* 0: the sources' figures, 1: the keys' */
	int rc;
};

/* Names are [a-z0-9_-] and hex digits: nothing to escape. */
static void
render_cb(void *arg, const struct nb_activity_row *r)
{
	struct render *rd = arg;
	double v = (double)r->ms / 1000.0;

	if (rd->rc == -1 || (r->fp[0] != '\0') != rd->keys)
		return;
	if (rd->keys)
		rd->rc = evbuffer_add_printf(rd->out,
		    "nudgebridge_signing_key_last_used_timestamp_seconds"
		    "{source=\"%s\",key=\"%s\"} %.3f\n",
		    r->source, r->fp, v);
	else
		rd->rc = evbuffer_add_printf(rd->out,
		    "nudgebridge_source_last_received_timestamp_seconds"
		    "{source=\"%s\"} %.3f\n",
		    r->source, v);
	rd->rc = rd->rc < 0 ? -1 : 0;
}

int
nb_activity_render(struct nb_activity *a, struct evbuffer *out)
{
	/* The family heads, by rd.keys: the sources' figures, the keys'. */
	static const char *const heads[2] = {
	    "# HELP nudgebridge_source_last_received_timestamp_seconds "
	    "When a source last sent a request that verified (any "
	    "instance).\n"
	    "# TYPE nudgebridge_source_last_received_timestamp_seconds "
	    "gauge\n",
	    "# HELP nudgebridge_signing_key_last_used_timestamp_seconds "
	    "When a signing secret or public key (by fingerprint) last "
	    "verified a request (any instance).\n"
	    "# TYPE nudgebridge_signing_key_last_used_timestamp_seconds "
	    "gauge\n",
	};
	struct render rd = {out, 0, 0};

	if (a == NULL)
		return 0;
	for (rd.keys = 0; rd.keys < 2 && rd.rc == 0; rd.keys++) {
		const char *h = heads[rd.keys];

		if (evbuffer_add(out, h, strlen(h)) == -1)
			return -1;
		nb_activity_each(a, 0, render_cb, &rd);
	}
	return rd.rc;
}
