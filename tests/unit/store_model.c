/* SPDX-License-Identifier: ISC */
/*
 * store_model: model tests of the store, shared by every backend.
 *
 * Included by store_cases.c (see there for what a backend's test file
 * provides), plus STORE_CHECK_ROWS(fx, n): the backend's own look at its
 * tables after the model ran, that they hold n rows and their payloads
 * and nothing else.  Random sequences come from a fixed xorshift seed, so
 * a failure is reproducible.
 */
#ifndef NB_STORE_MODEL_C
#define NB_STORE_MODEL_C

/*
 * Groups against a model.  The store takes a group in a few multi-row
 * statements per table, and key by key only once a key of the group was
 * seen before, yet every count and row must come out as if the requests
 * were stored one after the other.  The model is the rule of the upsert,
 * key by key: new when absent or seen before min(dedupe_after_ms,
 * received_ms).  The groups mix two sources, requests without a webhook
 * id, events without an id, quarantined events, keys repeated within a
 * group and across groups, windows of several lengths in one group (an
 * empty one, one ending after received_ms), keys that expire and come
 * back, groups of new keys only, and arrays long enough for the largest
 * statement and its remainders.
 */
#define MODEL_KEYS	65536 /* a power of two, twice the keys used */
#define MODEL_ROWS	40000
#define MODEL_GROUPS	90
#define MODEL_GROUP_MAX 150
#define MODEL_ARENA	(2 * 1024 * 1024)

struct model_key {
	const char *source;
	char key[16]; /* "w:" webhook id or "e:" event id */
	int64_t seen_ms;
};

struct model_row {
	const char *source, *id, *type, *error, *raw;
	int64_t received_ms;
};

struct model {
	struct model_key keys[MODEL_KEYS]; /* open addressing */
	size_t nkeys;
	struct model_row rows[MODEL_ROWS];
	size_t nrows;
	char arena[MODEL_ARENA];
	size_t used;
	uint32_t rnd;
};

static uint32_t
model_rand(struct model *m, uint32_t below)
{
	m->rnd ^= m->rnd << 13;
	m->rnd ^= m->rnd >> 17;
	m->rnd ^= m->rnd << 5;
	return m->rnd % below;
}

/* A formatted copy in the arena, alive until the test ends. */
static char *
model_str(struct model *m, const char *prefix, unsigned v)
{
	char *s = m->arena + m->used;
	int len;

	len = snprintf(s, MODEL_ARENA - m->used, "%s%u", prefix, v);
	assert_true(len > 0 && (size_t)len < MODEL_ARENA - m->used);
	m->used += (size_t)len + 1;
	return s;
}

/* 1 when the key is new or older than the window (now recorded), else 0. */
static int
model_mark(struct model *m, const char *source, char kind, const char *key,
    const struct nb_append *r)
{
	int64_t bound = r->dedupe_after_ms < r->received_ms ? r->dedupe_after_ms
							    : r->received_ms;
	struct model_key *k;
	char want[sizeof(k->key)];
	uint32_t h = 2166136261u;
	const char *p;
	size_t i;

	snprintf(want, sizeof(want), "%c:%s", kind, key);
	for (p = want; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	for (p = source; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	for (i = h & (MODEL_KEYS - 1);; i = (i + 1) & (MODEL_KEYS - 1)) {
		k = &m->keys[i];
		if (k->source == NULL)
			break;
		if (strcmp(k->key, want) != 0 || strcmp(k->source, source) != 0)
			continue;
		if (k->seen_ms >= bound)
			return 0;
		k->seen_ms = r->received_ms;
		return 1;
	}
	assert_true(++m->nkeys < MODEL_KEYS / 2);
	k->source = source;
	memcpy(k->key, want, sizeof(want));
	k->seen_ms = r->received_ms;
	return 1;
}

/* What nb_store_append() must make of r, recorded in the model. */
static void
model_append(
    struct model *m, const struct nb_append *r, int *acc, int *dup, int *quar)
{
	const struct nb_event *e;
	struct model_row *row;
	size_t i;

	*acc = *dup = *quar = 0;
	if (r->webhook_id != NULL &&
	    !model_mark(m, r->source, 'w', r->webhook_id, r)) {
		*dup = (int)r->nevents;
		return;
	}
	for (i = 0; i < r->nevents; i++) {
		e = &r->events[i];
		if (e->id != NULL && !model_mark(m, r->source, 'e', e->id, r)) {
			(*dup)++;
			continue;
		}
		assert_true(m->nrows < MODEL_ROWS);
		row = &m->rows[m->nrows++];
		row->source = r->source;
		row->id = e->id;
		row->type = e->type;
		row->error = e->error;
		row->raw = e->raw;
		row->received_ms = r->received_ms;
		if (e->error != NULL)
			(*quar)++;
		else
			(*acc)++;
	}
}

/*
 * The kinds of group: new keys only (taken in multi-row statements), keys
 * from small pools (seen in this group or lately: key by key), and keys
 * seen some groups ago, distinct within the group, under windows of mixed
 * lengths (either way, depending on which have expired).
 */
enum model_kind { MODEL_FRESH, MODEL_POOL, MODEL_REVISIT };

/* One random event of a group of kind; *serial numbers payloads and keys. */
static void
model_event(struct model *m, struct nb_event *e, enum model_kind kind,
    unsigned *serial, unsigned base)
{
	uint32_t pick = model_rand(m, 12);

	memset(e, 0, sizeof(*e));
	e->raw = model_str(m, "{\"n\":", (*serial)++);
	e->rawlen = strlen(e->raw);
	e->type = testlib_unconst("email.sent");
	if (pick == 0 && kind == MODEL_POOL) {
		e->error = "id: missing";
		return;
	}
	if (kind == MODEL_FRESH)
		e->id = model_str(m, "u", *serial);
	else if (kind == MODEL_POOL)
		e->id = model_str(m, "e", model_rand(m, 1500));
	else
		e->id = model_str(m, "q", (base + *serial) % 1500);
	if (pick == 1) {
		e->type = NULL;
		e->error = "type: missing";
	}
}

static void
assert_str_or_null(const char *got, const char *want)
{
	if (want == NULL)
		assert_null(got);
	else
		assert_string_equal(got, want);
}

static void
test_group_model(void **state)
{
	static const int64_t windows[] = {WINDOW, 400, 0, -5, 2500};
	struct fixture *fx = *state;
	struct model *m;
	struct nb_append *reqs, **ptrs;
	struct nb_event *evs;
	struct nb_store_filter f;
	struct nb_stored_event *rows = NULL;
	enum model_kind kind;
	size_t nev, n = 0, i, k, nreq, per;
	unsigned serial = 0, base;
	int g, acc, dup, quar, mixed;
	int64_t t = 10000, w;

	STORE_NEED(fx);
	m = calloc(1, sizeof(*m));
	reqs = calloc(MODEL_GROUP_MAX, sizeof(*reqs));
	ptrs = calloc(MODEL_GROUP_MAX, sizeof(*ptrs));
	evs = calloc(MODEL_ROWS, sizeof(*evs));
	assert_true(m != NULL && reqs != NULL && ptrs != NULL && evs != NULL);
	m->rnd = 2463534242u;
	nev = 0;
	for (g = 0; g < MODEL_GROUPS; g++) {
		kind = (enum model_kind)(g % 3);
		mixed = kind == MODEL_REVISIT || g % 2 == 1;
		base = model_rand(m, 1500);
		nreq = 1 +
		    model_rand(m, kind == MODEL_REVISIT ? 24 : MODEL_GROUP_MAX);
		for (i = 0; i < nreq; i++) {
			switch (kind == MODEL_REVISIT ? 3 : model_rand(m, 16)) {
			case 0:
				per = 0;
				break;
			case 1:
				per = 70;
				break;
			case 2:
				per = 130;
				break;
			default:
				per = 1 + model_rand(m, 3);
			}
			if (nev + per > MODEL_ROWS)
				per = 0;
			for (k = 0; k < per; k++)
				model_event(
				    m, &evs[nev + k], kind, &serial, base);
			memset(&reqs[i], 0, sizeof(reqs[i]));
			reqs[i].source =
			    model_rand(m, 4) == 0 ? "beta" : "acme";
			if (kind == MODEL_FRESH)
				reqs[i].webhook_id =
				    model_str(m, "v", serial++);
			else if (model_rand(m, 8) == 0)
				reqs[i].webhook_id = NULL;
			else if (kind == MODEL_POOL)
				reqs[i].webhook_id =
				    model_str(m, "w", model_rand(m, 200));
			else
				reqs[i].webhook_id = model_str(
				    m, "r", (base + (unsigned)i) % 400);
			reqs[i].events = &evs[nev];
			reqs[i].nevents = per;
			reqs[i].received_ms = t + (int64_t)(i % 4);
			w = mixed ? windows[model_rand(m, 5)] : WINDOW;
			reqs[i].dedupe_after_ms = reqs[i].received_ms - w;
			ptrs[i] = &reqs[i];
			nev += per;
		}
		assert_int_equal(nb_store_append(fx->s, ptrs, nreq), 0);
		for (i = 0; i < nreq; i++) {
			model_append(m, &reqs[i], &acc, &dup, &quar);
			if (reqs[i].accepted != acc ||
			    reqs[i].duplicates != dup ||
			    reqs[i].quarantined != quar)
				fail_msg("group %d request %zu: got %d/%d/%d, "
					 "want %d/%d/%d",
				    g, i, reqs[i].accepted, reqs[i].duplicates,
				    reqs[i].quarantined, acc, dup, quar);
		}
		t += 150 + model_rand(m, 300);
	}

	/* The rows, in seq order: the model's, seqs consecutive. */
	memset(&f, 0, sizeof(f));
	f.states = ALL;
	assert_int_equal(nb_store_list(fx->s, &f, &rows, &n), 0);
	assert_int_equal(n, m->nrows);
	assert_true(n > 1000);
	for (i = 0; i < n; i++) {
		const struct model_row *want = &m->rows[i];

		assert_int_equal(rows[i].seq, rows[0].seq + (int64_t)i);
		assert_string_equal(rows[i].source, want->source);
		assert_str_or_null(rows[i].id, want->id);
		assert_str_or_null(rows[i].type, want->type);
		assert_str_or_null(rows[i].error, want->error);
		assert_str_or_null(rows[i].reason,
		    want->error != NULL ? NB_REASON_QUARANTINED : NULL);
		assert_int_equal(rows[i].state,
		    want->error != NULL ? NB_STATE_DEAD : NB_STATE_PENDING);
		assert_int_equal(rows[i].received_ms, want->received_ms);
		assert_int_equal(rows[i].age_base_ms, want->received_ms);
		assert_int_equal(rows[i].rawlen, strlen(want->raw));
		assert_string_equal(rows[i].raw, want->raw);
	}
	nb_stored_events_free(rows, n);
	STORE_CHECK_ROWS(fx, m->nrows);
	free(evs);
	free(ptrs);
	free(reqs);
	free(m);
}

/*
 * Counters against a recount.  Random sequences of every operation that
 * changes rows (appends with duplicates and quarantined events, claims,
 * extends, releases, deliveries, retries, dead letters of every reason,
 * replays with re-validation, purges and prunes by filter), and after each
 * step nb_store_stats() must equal what a full listing of the rows counts:
 * pending, delivered, dead, quarantined, the oldest pending received_ms and
 * the live leases (tracked here: the listing does not show leases).  The
 * totals must equal the sums of the changes seen between listings (a new
 * row is received, a row that became delivered or dead counts once).
 */
#define CM_STEPS   500
#define CM_SOURCES 3
#define CM_SEQ_MAX 4096

static const char *const cm_sources[CM_SOURCES] = {"acme", "beta", "Zeta"};

struct cm_count {
	int64_t pending, delivered, dead, quarantined, oldest, inflight;
	int64_t received, delivered_total, dead_total;
};

struct cm {
	uint32_t rnd;
	int64_t now;
	int64_t lease[CM_SEQ_MAX];	  /* lease_until by seq, 0: none */
	signed char state[CM_SEQ_MAX];	  /* before the step, -1: no row */
	struct cm_count want[CM_SOURCES]; /* as of the last check */
	char arena[64 * 1024];
	size_t used;
};

static uint32_t
cm_rand(struct cm *m, uint32_t below)
{
	m->rnd ^= m->rnd << 13;
	m->rnd ^= m->rnd >> 17;
	m->rnd ^= m->rnd << 5;
	return m->rnd % below;
}

/* A formatted string that lives until the arena wraps (many steps). */
static const char *
cm_str(struct cm *m, const char *prefix, unsigned v)
{
	char *s;
	int len;

	if (m->used > sizeof(m->arena) - 64)
		m->used = 0;
	s = m->arena + m->used;
	len = snprintf(s, 64, "%s%u", prefix, v);
	assert_true(len > 0 && len < 64);
	m->used += (size_t)len + 1;
	return s;
}

static int
cm_source(const char *name)
{
	int i;

	for (i = 0; i < CM_SOURCES; i++)
		if (strcmp(cm_sources[i], name) == 0)
			return i;
	fail_msg("unknown source %s", name);
	return -1;
}

/* Every row, in seq order. */
static struct nb_stored_event *
cm_rows(struct nb_store *s, size_t *n)
{
	struct nb_store_filter f;
	struct nb_stored_event *rows = NULL;

	memset(&f, 0, sizeof(f));
	f.states = ALL;
	assert_int_equal(nb_store_list(s, &f, &rows, n), 0);
	return rows;
}

/* A random subset of the stored seqs (any state), at most max. */
static size_t
cm_pick(struct cm *m, const struct nb_stored_event *rows, size_t n,
    int64_t *out, size_t max)
{
	size_t i, k = 0;

	for (i = 0; i < n && k < max; i++)
		if (cm_rand(m, 3) == 0)
			out[k++] = rows[i].seq;
	return k;
}

static void
cm_append(struct cm *m, struct nb_store *s)
{
	struct nb_event e[4][5];
	struct nb_append r[4], *p[4];
	size_t i, k, nreq = 1 + cm_rand(m, 4), nev;
	uint32_t pick;

	for (i = 0; i < nreq; i++) {
		nev = 1 + cm_rand(m, 5);
		for (k = 0; k < nev; k++) {
			pick = cm_rand(m, 6);
			e[i][k] = ev(cm_str(m, "id", cm_rand(m, 300)),
			    "email.sent", pick == 0 ? "{\"fixed\":1}" : "{}",
			    pick == 0	    ? "id: stale"
				: pick == 1 ? "id: bad"
					    : NULL);
			if (pick == 2)
				e[i][k].id = NULL;
		}
		r[i] = req(cm_sources[cm_rand(m, CM_SOURCES)],
		    cm_rand(m, 3) == 0 ? NULL
				       : cm_str(m, "wh", cm_rand(m, 200)),
		    e[i], nev, m->now);
		p[i] = &r[i];
	}
	assert_int_equal(nb_store_append(s, p, nreq), 0);
}

static void
cm_claim(struct cm *m, struct nb_store *s)
{
	struct nb_stored_event *rows = NULL;
	const char *src[CM_SOURCES];
	size_t i, n = 0, ns = 0;
	int64_t until = m->now + 1 + cm_rand(m, 300);

	for (i = 0; i < CM_SOURCES; i++)
		if (cm_rand(m, 2) == 0)
			src[ns++] = cm_sources[i];
	assert_int_equal(nb_store_claim(s, src, ns, m->now, until,
			     1 + cm_rand(m, 8), &rows, &n),
	    0);
	for (i = 0; i < n; i++) {
		assert_true(rows[i].seq < CM_SEQ_MAX);
		m->lease[rows[i].seq] = until;
	}
	nb_stored_events_free(rows, n);
}

static void
cm_filter(struct cm *m, struct nb_store_filter *f)
{
	static const unsigned masks[] = {0, NB_STATE_MASK_DELIVERED, ALL,
	    NB_STATE_MASK_DEAD | NB_STATE_MASK_DELIVERED};

	memset(f, 0, sizeof(*f));
	f->states = masks[cm_rand(m, 4)];
	if (cm_rand(m, 2) == 0)
		f->source = cm_sources[cm_rand(m, CM_SOURCES)];
	if (cm_rand(m, 3) == 0)
		f->limit = 1 + cm_rand(m, 5);
	if (cm_rand(m, 4) == 0)
		f->reason = NB_REASON_QUARANTINED;
}

/* Lease changes that keep rows pending, which the listing cannot show. */
static void
cm_lease_ops(struct cm *m, struct nb_store *s,
    const struct nb_stored_event *rows, size_t n, int op)
{
	struct nb_store_retry rt[16];
	int64_t seqs[16], until = m->now + cm_rand(m, 400);
	size_t i, k = cm_pick(m, rows, n, seqs, 16);

	if (op == 0)
		assert_int_equal(nb_store_extend(s, seqs, k, until), 0);
	else if (op == 1)
		assert_int_equal(nb_store_release(s, seqs, k, NULL), 0);
	else {
		for (i = 0; i < k; i++) {
			rt[i].seq = seqs[i];
			rt[i].next_ms = m->now + cm_rand(m, 100);
		}
		assert_int_equal(nb_store_retry(s, rt, k, "HTTP 503", NULL), 0);
	}
	/* An extend leases every pending row it names; the others drop. */
	for (i = 0; i < k; i++)
		if (m->state[seqs[i]] == NB_STATE_PENDING)
			m->lease[seqs[i]] = op == 0 ? until : 0;
}

/* One random operation; rows are the rows before it. */
static void
cm_step(struct cm *m, struct nb_store *s, const struct nb_stored_event *rows,
    size_t n)
{
	static const char *const reasons[] = {NB_REASON_TOO_LARGE,
	    NB_REASON_REJECTED, NB_REASON_MAX_ATTEMPTS, NB_REASON_MAX_AGE,
	    NB_REASON_QUARANTINED};
	struct nb_store_filter f;
	int64_t seqs[16];
	size_t k, a, b;
	uint32_t op = cm_rand(m, 10);

	if (op <= 1)
		cm_append(m, s);
	else if (op == 2)
		cm_claim(m, s);
	else if (op <= 5)
		cm_lease_ops(m, s, rows, n, (int)op - 3);
	else if (op == 6) {
		k = cm_pick(m, rows, n, seqs, 16);
		assert_int_equal(
		    nb_store_delivered(s, seqs, k, m->now, NULL), 0);
	} else if (op == 7) {
		k = cm_pick(m, rows, n, seqs, 16);
		assert_int_equal(
		    nb_store_dead(s, seqs, k, reasons[cm_rand(m, 5)],
			"segment: 400", m->now, NULL),
		    0);
	} else if (op == 8) {
		cm_filter(m, &f);
		assert_int_equal(nb_store_replay(s, &f, cm_rand(m, 4) == 0,
				     m->now, revalidate_stub, &a, &b),
		    0);
	} else if (cm_rand(m, 2) == 0) {
		cm_filter(m, &f);
		assert_int_equal(
		    nb_store_purge(s, &f, cm_rand(m, 4) == 0, &a), 0);
	} else
		assert_int_equal(
		    nb_store_prune(s, 0, m->now - cm_rand(m, 200)), 0);
}

/*
 * Leases the step dropped with a change of state: every row not pending
 * now, and every row a replay made pending.
 */
static void
cm_leases_after(struct cm *m, const struct nb_stored_event *rows, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (rows[i].state != NB_STATE_PENDING ||
		    m->state[rows[i].seq] != NB_STATE_PENDING)
			m->lease[rows[i].seq] = 0;
}

/* The recount of rows, with the totals grown by what changed since. */
static void
cm_recount(struct cm *m, const struct nb_stored_event *rows, size_t n,
    struct cm_count *got)
{
	const struct nb_stored_event *r;
	struct cm_count *c;
	size_t i;
	int was;

	memset(got, 0, CM_SOURCES * sizeof(*got));
	for (i = 0; i < CM_SOURCES; i++) {
		got[i].received = m->want[i].received;
		got[i].delivered_total = m->want[i].delivered_total;
		got[i].dead_total = m->want[i].dead_total;
	}
	for (i = 0; i < n; i++) {
		r = &rows[i];
		c = &got[cm_source(r->source)];
		was = m->state[r->seq];
		c->received += was < 0;
		c->delivered_total +=
		    r->state == NB_STATE_DELIVERED && was != NB_STATE_DELIVERED;
		c->dead_total +=
		    r->state == NB_STATE_DEAD && was != NB_STATE_DEAD;
		if (r->state == NB_STATE_PENDING) {
			c->pending++;
			if (c->oldest == 0 || r->received_ms < c->oldest)
				c->oldest = r->received_ms;
			c->inflight += m->lease[r->seq] > m->now;
		} else if (r->state == NB_STATE_DELIVERED)
			c->delivered++;
		else {
			c->dead++;
			c->quarantined += r->reason != NULL &&
			    strcmp(r->reason, NB_REASON_QUARANTINED) == 0;
		}
	}
}

static void
cm_compare(
    const struct nb_source_stats *st, const struct cm_count *w, int64_t now)
{
	if (st->pending == w->pending && st->delivered == w->delivered &&
	    st->dead == w->dead && st->quarantined == w->quarantined &&
	    st->oldest_pending_ms == w->oldest && st->inflight == w->inflight &&
	    st->received_total == w->received &&
	    st->delivered_total == w->delivered_total &&
	    st->dead_total == w->dead_total)
		return;
	fail_msg("%s at %lld: got %lld/%lld/%lld/%lld oldest %lld inflight "
		 "%lld totals %lld/%lld/%lld, want %lld/%lld/%lld/%lld oldest "
		 "%lld inflight %lld totals %lld/%lld/%lld",
	    st->source, (long long)now, (long long)st->pending,
	    (long long)st->delivered, (long long)st->dead,
	    (long long)st->quarantined, (long long)st->oldest_pending_ms,
	    (long long)st->inflight, (long long)st->received_total,
	    (long long)st->delivered_total, (long long)st->dead_total,
	    (long long)w->pending, (long long)w->delivered, (long long)w->dead,
	    (long long)w->quarantined, (long long)w->oldest,
	    (long long)w->inflight, (long long)w->received,
	    (long long)w->delivered_total, (long long)w->dead_total);
}

/* The store's figures against the recount; then the rows are the past. */
static void
cm_check(struct cm *m, struct nb_store *s, const struct nb_stored_event *rows,
    size_t n)
{
	struct cm_count got[CM_SOURCES];
	struct nb_source_stats *st = NULL;
	size_t i, ns = 0;
	int k, listed;

	cm_recount(m, rows, n, got);
	assert_int_equal(nb_store_stats(s, m->now, &st, &ns), 0);
	for (i = 0; i < ns; i++) {
		if (i > 0)
			assert_true(strcmp(st[i - 1].source, st[i].source) < 0);
		cm_compare(&st[i], &got[cm_source(st[i].source)], m->now);
	}
	/* A source is listed exactly when it has rows. */
	for (k = 0; k < CM_SOURCES; k++) {
		listed = 0;
		for (i = 0; i < ns; i++)
			listed |= strcmp(st[i].source, cm_sources[k]) == 0;
		assert_int_equal(listed,
		    got[k].pending + got[k].delivered + got[k].dead > 0);
	}
	free(st);
	memcpy(m->want, got, sizeof(got));
	memset(m->state, -1, sizeof(m->state));
	for (i = 0; i < n; i++)
		m->state[rows[i].seq] = (signed char)rows[i].state;
}

/* Errors are bounded per source and read newest first. */
static void
cm_errors(struct nb_store *s)
{
	struct nb_store_error *e = NULL;
	size_t i, n = 0, per[CM_SOURCES] = {0};

	assert_int_equal(
	    nb_store_errors(s, 0, NB_STORE_ERRORS_KEPT, &e, &n), 0);
	assert_true(n > 0);
	for (i = 0; i < n; i++) {
		assert_true(
		    ++per[cm_source(e[i].source)] <= NB_STORE_ERRORS_KEPT);
		assert_true(e[i].count > 0);
		if (i > 0 && strcmp(e[i - 1].source, e[i].source) == 0)
			assert_true(e[i - 1].last_ms >= e[i].last_ms);
	}
	nb_store_errors_free(e, n);
}

static void
test_counter_model(void **state)
{
	struct fixture *fx = *state;
	struct nb_stored_event *rows;
	struct cm *m;
	size_t n;
	int step;

	STORE_NEED(fx);
	m = calloc(1, sizeof(*m));
	assert_non_null(m);
	m->rnd = 88172645u;
	m->now = 1000;
	memset(m->state, -1, sizeof(m->state));
	for (step = 0; step < CM_STEPS; step++) {
		rows = cm_rows(fx->s, &n);
		cm_step(m, fx->s, rows, n);
		nb_stored_events_free(rows, n);
		rows = cm_rows(fx->s, &n);
		cm_leases_after(m, rows, n);
		cm_check(m, fx->s, rows, n);
		nb_stored_events_free(rows, n);
		m->now += 1 + cm_rand(m, 40);
	}
	cm_errors(fx->s);
	free(m);
}

#endif
