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
	e->type = unconst("email.sent");
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

#endif
