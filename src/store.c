/* SPDX-License-Identifier: ISC */
/*
 * store: dispatch to the backend that store.driver names.
 *
 * A struct nb_store is a function table plus the backend's own state; this
 * file holds no SQL and no policy, only the choice of table at open time and
 * the helpers every backend shares (dead-letter keys, filter defaults, the
 * release of read-back rows).  "sqlite" is store_sqlite.c, "postgres"
 * store_pg.c.  Like the backends, a struct nb_store is used by one thread
 * at a time.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/store.h"
#include "store_backend.h"

struct nb_store {
	const struct nb_store_ops *ops;
	void *state;
};

static const struct nb_store_ops *const backends[] = {
    &nb_store_sqlite_ops,
    &nb_store_pg_ops,
};

void
nb_store_key_format(int64_t seq, char key[NB_STORE_KEY_MAX])
{
	int len;

	len = snprintf(key, NB_STORE_KEY_MAX, "%" PRId64, seq);
	if (len < 0 || len >= NB_STORE_KEY_MAX)
		key[0] = '\0';
}

int
nb_store_key_parse(const char *key, int64_t *seq)
{
	const char *p;
	char *end;
	long long v;

	if (key == NULL || key[0] == '\0' || strlen(key) > 19)
		return -1;
	for (p = key; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return -1;
	errno = 0;
	v = strtoll(key, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return -1;
	*seq = v;
	return 0;
}

unsigned
nb_store_filter_states(const struct nb_store_filter *f)
{
	if (f == NULL || f->states == 0)
		return NB_STATE_MASK_DEAD;
	return f->states;
}

void
nb_stored_events_free(struct nb_stored_event *ev, size_t n)
{
	size_t i;

	if (ev == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(ev[i].source);
		free(ev[i].id);
		free(ev[i].type);
		free(ev[i].raw);
		free(ev[i].reason);
		free(ev[i].error);
	}
	free(ev);
}

int
nb_store_open(struct nb_store **out, const struct nb_store_config *cfg,
    char *err, size_t errlen)
{
	const struct nb_store_ops *ops = NULL;
	const char *driver;
	struct nb_store *s = NULL;
	size_t i;
	int rc = -1;

	*out = NULL;
	driver = cfg->driver != NULL ? cfg->driver : "sqlite";
	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i]->name, driver) == 0)
			ops = backends[i];
	if (ops == NULL) {
		snprintf(err, errlen, "store.driver: unknown driver \"%.32s\"",
		    driver);
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "store: out of memory");
		goto out;
	}
	s->ops = ops;
	if (ops->open(&s->state, cfg, err, errlen) == -1)
		goto out;
	*out = s;
	s = NULL;
	rc = 0;
out:
	free(s);
	return rc;
}

void
nb_store_close(struct nb_store *s)
{
	if (s == NULL)
		return;
	s->ops->close(s->state);
	free(s);
}

int
nb_store_schema_version(struct nb_store *s, int *version)
{
	return s->ops->schema_version(s->state, version);
}

int
nb_store_recover(struct nb_store *s)
{
	return s->ops->recover(s->state);
}

int
nb_store_append(struct nb_store *s, struct nb_append *const *reqs, size_t n)
{
	return s->ops->append(s->state, reqs, n);
}

int
nb_store_claim(struct nb_store *s, const char *const *sources, size_t nsources,
    int64_t now_ms, int64_t lease_until_ms, size_t limit,
    struct nb_stored_event **out, size_t *n)
{
	return s->ops->claim(
	    s->state, sources, nsources, now_ms, lease_until_ms, limit, out, n);
}

int
nb_store_extend(
    struct nb_store *s, const int64_t *seqs, size_t n, int64_t lease_until_ms)
{
	return s->ops->extend(s->state, seqs, n, lease_until_ms);
}

int
nb_store_delivered(
    struct nb_store *s, const int64_t *seqs, size_t n, int64_t now_ms)
{
	return s->ops->delivered(s->state, seqs, n, now_ms);
}

int
nb_store_retry(struct nb_store *s, const struct nb_store_retry *rows, size_t n,
    const char *error)
{
	return s->ops->retry(s->state, rows, n, error);
}

int
nb_store_release(struct nb_store *s, const int64_t *seqs, size_t n)
{
	return s->ops->release(s->state, seqs, n);
}

int
nb_store_dead(struct nb_store *s, const int64_t *seqs, size_t n,
    const char *reason, const char *error, int64_t now_ms)
{
	return s->ops->dead(s->state, seqs, n, reason, error, now_ms);
}

int
nb_store_list(struct nb_store *s, const struct nb_store_filter *f,
    struct nb_stored_event **out, size_t *n)
{
	return s->ops->list(s->state, f, out, n);
}

int
nb_store_replay(struct nb_store *s, const struct nb_store_filter *f,
    int dry_run, int64_t now_ms, nb_store_revalidate_fn fn, size_t *replayed,
    size_t *requarantined)
{
	return s->ops->replay(
	    s->state, f, dry_run, now_ms, fn, replayed, requarantined);
}

int
nb_store_purge(struct nb_store *s, const struct nb_store_filter *f, int dry_run,
    size_t *purged)
{
	return s->ops->purge(s->state, f, dry_run, purged);
}

int
nb_store_stats(
    struct nb_store *s, int64_t now_ms, struct nb_source_stats **out, size_t *n)
{
	return s->ops->stats(s->state, now_ms, out, n);
}

int
nb_store_prune(
    struct nb_store *s, int64_t dedupe_after_ms, int64_t delivered_before_ms)
{
	return s->ops->prune(s->state, dedupe_after_ms, delivered_before_ms);
}

int
nb_store_probe(struct nb_store *s)
{
	return s->ops->probe(s->state);
}
