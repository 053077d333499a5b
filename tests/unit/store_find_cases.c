/* SPDX-License-Identifier: ISC */
/*
 * store_find_cases: search by person, attempt history and erasure, for
 * every backend.
 *
 * Included by store_cases.c (so by test_store.c and test_store_pg.c), with
 * its helpers.  Events carry a subscriber in their stored text and the
 * index keys the parser would compute (person.h), except where a case
 * forges a key to play a collision: a row found through a key must still
 * be about the person, or nobody sees (or erases) it.  A second
 * connection plays the deliverer that holds rows while an erase waits.
 */
#include <pthread.h>
#include <time.h>

#include "nudgebridge/person.h"

/* An event of subscriber (email, uid; either may be NULL) with its keys. */
static struct nb_event
pev(const char *id, const char *email, const char *uid, char *raw,
    size_t rawcap)
{
	struct nb_event e;
	int n;

	if (email != NULL && uid != NULL)
		n = snprintf(raw, rawcap,
		    "{\"id\":\"%s\",\"subscriber\":{\"uid\":\"%s\","
		    "\"email\":\"%s\"}}",
		    id, uid, email);
	else if (email != NULL)
		n = snprintf(raw, rawcap,
		    "{\"id\":\"%s\",\"subscriber\":{\"email\":\"%s\"}}", id,
		    email);
	else
		n = snprintf(raw, rawcap,
		    "{\"id\":\"%s\",\"subscriber\":{\"uid\":\"%s\"}}", id, uid);
	assert_true(n > 0 && (size_t)n < rawcap);
	e = ev(id, "email.opened", raw, NULL);
	nb_person_keys_of(raw, strlen(raw), &e.email_key, &e.uid_key);
	return e;
}

/* Appends one event of a person; its seq. */
static int64_t
padd(struct nb_store *s, const char *source, const char *id, const char *email,
    const char *uid, int64_t t)
{
	char raw[256];
	struct nb_event e = pev(id, email, uid, raw, sizeof(raw));
	struct nb_append r = req(source, NULL, &e, 1, t);

	assert_int_equal(append1(s, &r), 0);
	assert_int_equal(r.accepted, 1);
	return seq_of(s, id);
}

/* The ids of a person's rows, newest first, joined by ','. */
static void
ids_of(struct nb_store *s, const struct nb_store_filter *f, char *out,
    size_t outlen)
{
	struct nb_stored_event *rows = NULL;
	size_t n = 0, i, len = 0;

	assert_int_equal(nb_store_list(s, f, &rows, &n), 0);
	out[0] = '\0';
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, outlen - len, "%s%s",
		    i > 0 ? "," : "", rows[i].id);
	nb_stored_events_free(rows, n);
}

static void
test_person_search(void **state)
{
	struct fixture *fx = *state;
	struct nb_store_filter f;
	struct nb_stored_event *rows = NULL;
	struct nb_event e;
	struct nb_append r;
	char raw[256], got[256];
	int64_t next = 0, s2;
	size_t n = 0;

	STORE_NEED(fx);
	padd(fx->s, "acme", "a1", "ada@example.com", "u_1", 100);
	s2 = padd(fx->s, "beta", "a2", "ADA@Example.COM", NULL, 200);
	padd(fx->s, "acme", "b1", "bob@example.com", "u_2", 300);
	padd(fx->s, "acme", "a3", NULL, "u_1", 400);
	padd(fx->s, "acme", "c1", NULL, "U_1", 500);
	/* Eve's row carries Ada's key: a collision the check must catch. */
	e = pev("e1", "eve@example.com", NULL, raw, sizeof(raw));
	e.email_key = nb_person_key_email("ada@example.com", 15);
	r = req("acme", NULL, &e, 1, 600);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_int_equal(
	    nb_store_dead(fx->s, &s2, 1, NB_REASON_MAX_AGE, NULL, 700, NULL),
	    0);

	memset(&f, 0, sizeof(f));
	f.states = ALL;
	f.newest_first = 1;
	f.email = "Ada@example.com";
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "a2,a1");
	f.email = NULL;
	f.uid = "u_1"; /* exact: not U_1 */
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "a3,a1");
	/* With the other filters, both keys together. */
	f.email = "ada@example.com";
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "a1");
	f.uid = NULL;
	f.states = NB_STATE_MASK_DEAD;
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "a2");
	f.states = ALL;
	f.source = "acme";
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "a1");
	f.source = NULL;
	f.email = "nobody@example.com";
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "");

	/*
	 * Pages of one: the cursor walks the person's key.  Eve's row is
	 * found first and dropped, so that page is empty but goes on.
	 */
	f.email = "ada@example.com";
	f.limit = 1;
	f.max_scan = 10;
	assert_int_equal(nb_store_list_page(fx->s, &f, &rows, &n, &next), 0);
	assert_int_equal(n, 0);
	assert_true(next > s2);
	f.before_seq = next;
	assert_int_equal(nb_store_list_page(fx->s, &f, &rows, &n, &next), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].id, "a2");
	nb_stored_events_free(rows, n);
	f.before_seq = next;
	assert_int_equal(nb_store_list_page(fx->s, &f, &rows, &n, &next), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].id, "a1");
	nb_stored_events_free(rows, n);
	f.before_seq = next;
	assert_int_equal(nb_store_list_page(fx->s, &f, &rows, &n, &next), 0);
	assert_int_equal(n, 0);
	assert_int_equal(next, 0);
}

/* The attempts of seq as "status/batch_size" joined by ','. */
static void
attempts_of(struct nb_store *s, int64_t seq, char *out, size_t outlen)
{
	struct nb_store_attempt_row *a = NULL;
	size_t n = 0, i, len = 0;

	assert_int_equal(nb_store_attempts(s, seq, &a, &n), 0);
	out[0] = '\0';
	for (i = 0; i < n; i++) {
		len += (size_t)snprintf(out + len, outlen - len, "%s%d/%lld",
		    i > 0 ? "," : "", a[i].status, (long long)a[i].batch_size);
		if (i > 0)
			assert_true(a[i].id > a[i - 1].id);
		if (a[i].status == 0)
			assert_non_null(a[i].error);
	}
	nb_store_attempts_free(a, n);
}

static struct nb_store_attempt
attempt(int status, const char *error, size_t size, int64_t at)
{
	struct nb_store_attempt a;

	memset(&a, 0, sizeof(a));
	a.at_ms = at;
	a.end_ms = at + 10;
	a.status = status;
	a.error = error;
	a.batch_size = size;
	return a;
}

static void
test_attempt_history(void **state)
{
	struct fixture *fx = *state;
	const char *acme[] = {"acme"};
	struct nb_stored_event *rows = NULL;
	struct nb_store_retry rt[2];
	struct nb_store_attempt a;
	struct nb_store_filter f;
	int64_t s1, s2, s3, id;
	char got[1024], want[1024];
	size_t n = 0, i, replayed, req_, purged;
	int len;

	STORE_NEED(fx);
	s1 = padd(fx->s, "acme", "h1", "ada@example.com", NULL, 100);
	s2 = padd(fx->s, "acme", "h2", "bob@example.com", NULL, 100);
	s3 = padd(fx->s, "acme", "h3", "cy@example.com", NULL, 100);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 100, 1000, 10, &rows, &n), 0);
	assert_int_equal(n, 3);
	nb_stored_events_free(rows, n);

	/* One request, two outcomes: one record. */
	a = attempt(0, "segment: timeout", 3, 150);
	rt[0] = (struct nb_store_retry){s1, 200};
	rt[1] = (struct nb_store_retry){s2, 200};
	assert_int_equal(nb_store_retry(fx->s, rt, 2, a.error, &a), 0);
	assert_true(a.id > 0);
	id = a.id;
	assert_int_equal(nb_store_dead(fx->s, &s3, 1, NB_REASON_MAX_ATTEMPTS,
			     a.error, 160, &a),
	    0);
	assert_int_equal(a.id, id);
	attempts_of(fx->s, s1, got, sizeof(got));
	assert_string_equal(got, "0/3");
	attempts_of(fx->s, s3, got, sizeof(got));
	assert_string_equal(got, "0/3");

	/* A bisected 400 links without changing the rows. */
	a = attempt(400, "segment: 400", 2, 210);
	assert_int_equal(nb_store_link(fx->s, &s1, 1, &a), 0);
	attempts_of(fx->s, s1, got, sizeof(got));
	assert_string_equal(got, "0/3,400/2");
	rows = by_id(fx->s, "h1");
	assert_int_equal(rows->state, NB_STATE_PENDING);
	assert_int_equal(rows->attempts, 1);
	nb_stored_events_free(rows, 1);

	/* 30 more failures of h2: its first 20 and its latest are kept. */
	for (i = 0; i < 30; i++) {
		a = attempt(500, "segment: 500", 1, 1000 + (int64_t)i);
		rt[0] = (struct nb_store_retry){s2, 0};
		assert_int_equal(
		    nb_store_retry(fx->s, rt, 1, "segment: 500", &a), 0);
	}
	attempts_of(fx->s, s2, got, sizeof(got));
	len = snprintf(want, sizeof(want), "0/3");
	for (i = 0; i < NB_STORE_ATTEMPTS_KEPT - 1; i++)
		len +=
		    snprintf(want + len, sizeof(want) - (size_t)len, ",500/1");
	snprintf(want + len, sizeof(want) - (size_t)len, ",500/1");
	assert_string_equal(got, want);

	/* Delivered: the success joins the history. */
	a = attempt(200, NULL, 2, 5000);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 5000, 9000, 10, &rows, &n), 0);
	assert_int_equal(n, 2);
	nb_stored_events_free(rows, n);
	rt[0].seq = s1;
	rt[1].seq = s2;
	assert_int_equal(nb_store_delivered(fx->s, &s1, 1, 5010, &a), 0);
	attempts_of(fx->s, s1, got, sizeof(got));
	assert_string_equal(got, "0/3,400/2,200/2");

	/* A replay keeps what delivered it; a purge takes it all. */
	memset(&f, 0, sizeof(f));
	f.states = NB_STATE_MASK_DELIVERED;
	f.id = "h1";
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 0, 6000, NULL, &replayed, &req_), 0);
	assert_int_equal(replayed, 1);
	attempts_of(fx->s, s1, got, sizeof(got));
	assert_string_equal(got, "0/3,400/2,200/2");
	f.states = ALL;
	assert_int_equal(nb_store_purge(fx->s, &f, 0, &purged), 0);
	assert_int_equal(purged, 1);
	attempts_of(fx->s, s1, got, sizeof(got));
	assert_string_equal(got, "");
	/* The others keep the attempts they share with it. */
	attempts_of(fx->s, s3, got, sizeof(got));
	assert_string_equal(got, "0/3");
	attempts_of(fx->s, 999999, got, sizeof(got));
	assert_string_equal(got, "");
}

/*
 * Attempt records nobody needs go without a look at the events: a failed
 * one with the last link to it (a purge), a delivering one with the
 * retention prune of the rows it delivered, not before.
 */
static void
test_attempt_housekeeping(void **state)
{
	struct fixture *fx = *state;
	const char *acme[] = {"acme"};
	struct nb_stored_event *rows = NULL;
	struct nb_store_retry rt;
	struct nb_store_attempt a;
	struct nb_store_filter f;
	int64_t s1, s2;
	size_t n = 0, purged;
	char got[256];

	STORE_NEED(fx);
	s1 = padd(fx->s, "acme", "k1", "a@example.com", NULL, 100);
	s2 = padd(fx->s, "acme", "k2", "b@example.com", NULL, 100);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 100, 1000, 10, &rows, &n), 0);
	nb_stored_events_free(rows, n);
	a = attempt(500, "segment: 500", 1, 110);
	rt = (struct nb_store_retry){s1, 0};
	assert_int_equal(nb_store_retry(fx->s, &rt, 1, a.error, &a), 0);
	a = attempt(200, NULL, 1, 120);
	assert_int_equal(nb_store_delivered(fx->s, &s2, 1, 130, &a), 0);
	assert_int_equal(STORE_ATTEMPT_ROWS(fx), 2);

	/* The failed one goes with the row that held it. */
	memset(&f, 0, sizeof(f));
	f.states = ALL;
	f.id = "k1";
	assert_int_equal(nb_store_purge(fx->s, &f, 0, &purged), 0);
	assert_int_equal(purged, 1);
	assert_int_equal(STORE_ATTEMPT_ROWS(fx), 1);

	/* Retention: not while its row is kept, with it afterwards. */
	assert_int_equal(nb_store_prune(fx->s, 0, 130), 0);
	attempts_of(fx->s, s2, got, sizeof(got));
	assert_string_equal(got, "200/1");
	assert_int_equal(STORE_ATTEMPT_ROWS(fx), 1);
	assert_int_equal(nb_store_prune(fx->s, 0, 131), 0);
	assert_int_equal(count(fx->s, ALL, NULL), 0);
	assert_int_equal(STORE_ATTEMPT_ROWS(fx), 0);
}

/* A row held by a deliverer for a while, then let go (delivered). */
struct holder {
	struct nb_store *s;
	int64_t seq;
	int ms;
};

static void *
holder_main(void *arg)
{
	struct holder *h = arg;
	struct timespec ts = {0, (long)h->ms * 1000000L};
	struct nb_store_attempt a = attempt(200, NULL, 1, 0);

	nanosleep(&ts, NULL);
	assert_int_equal(nb_store_delivered(h->s, &h->seq, 1, 4000, &a), 0);
	return NULL;
}

static void
test_erase(void **state)
{
	struct fixture *fx = *state;
	const char *acme[] = {"acme"};
	struct nb_store_erase e;
	struct nb_store_audit au, *list = NULL;
	struct nb_stored_event *rows = NULL;
	struct nb_store_filter f;
	struct holder h;
	pthread_t th;
	unsigned char keep[2];
	int64_t s_held, s_bob, epoch0, epoch1, next, seqs[2];
	char got[256];
	size_t n = 0;

	STORE_NEED(fx);
	padd(fx->s, "beta", "q1", "ADA@example.com", NULL, 50);
	s_held = padd(fx->s, "acme", "p1", "ada@example.com", "u_a", 100);
	s_bob = padd(fx->s, "acme", "b1", "bob@example.com", NULL, 110);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 120, 100000, 10, &rows, &n), 0);
	assert_int_equal(n, 2);
	nb_stored_events_free(rows, n);
	padd(fx->s, "acme", "p2", "ada@example.com", NULL, 130);
	padd(fx->s, "acme", "v1", "ada@example.com", NULL, 140);
	seqs[0] = seq_of(fx->s, "v1");
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 200, 300, 10, &rows, &n), 0);
	nb_stored_events_free(rows, n);
	assert_int_equal(nb_store_delivered(fx->s, seqs, 1, 250, NULL), 0);
	assert_int_equal(nb_store_erase_epoch(fx->s, &epoch0), 0);

	/* A dry run counts, changes nothing and is audited. */
	memset(&e, 0, sizeof(e));
	e.who.email = "Ada@Example.com";
	e.dry_run = 1;
	e.actor = "admin";
	e.now_ms = 1000;
	assert_int_equal(nb_store_erase(fx->s, &e, &au), 0);
	assert_int_equal(au.events, 4);
	assert_int_equal(au.pending, 3);
	assert_int_equal(au.delivered, 1);
	assert_int_equal(au.dead, 0);
	assert_int_equal(count(fx->s, ALL, NULL), 5);

	/* The held row is flagged and waited for; in vain for 100 ms. */
	e.dry_run = 0;
	e.actor = "cli";
	e.wait_ms = 100;
	e.now_ms = 2000;
	assert_int_equal(nb_store_erase(fx->s, &e, &au), -1);
	assert_int_equal(nb_store_erase_epoch(fx->s, &epoch1), 0);
	assert_true(epoch1 > epoch0);
	memset(&f, 0, sizeof(f));
	f.states = ALL;
	f.newest_first = 1;
	f.email = "ada@example.com";
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "p1");
	/* Flagged: never claimed again, not sendable; Bob's row is. */
	seqs[0] = s_held;
	seqs[1] = s_bob;
	assert_int_equal(nb_store_sendable(fx->s, seqs, 2, keep), 0);
	assert_int_equal(keep[0], 0);
	assert_int_equal(keep[1], 1);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 200000, 300000, 10, &rows, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].seq, s_bob);
	nb_stored_events_free(rows, n);

	/* A holder that answers after 150 ms: the erase waits for it. */
	h.s = open_store(fx);
	h.seq = s_held;
	h.ms = 150;
	assert_int_equal(pthread_create(&th, NULL, holder_main, &h), 0);
	e.wait_ms = 10000;
	e.now_ms = 3000;
	assert_int_equal(nb_store_erase(fx->s, &e, &au), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	nb_store_close(h.s);
	assert_int_equal(au.events, 1);
	assert_int_equal(au.delivered, 1);
	assert_string_equal(au.actor, "cli");
	assert_string_equal(au.kind, "email");
	assert_int_equal(strlen(au.subject), 64);
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "");
	assert_int_equal(count(fx->s, ALL, NULL), 1);
	STORE_CHECK_ROWS(fx, 1);
	attempts_of(fx->s, s_held, got, sizeof(got));
	assert_string_equal(got, "");

	/* By uid, nothing left: audited all the same. */
	memset(&e, 0, sizeof(e));
	e.who.uid = "u_a";
	e.now_ms = 4000;
	assert_int_equal(nb_store_erase(fx->s, &e, &au), 0);
	assert_int_equal(au.events, 0);
	assert_string_equal(au.kind, "uid");

	/* The audit, newest first, in pages. */
	assert_int_equal(nb_store_audit_list(fx->s, 0, 2, &list, &n, &next), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].kind, "uid");
	assert_int_equal(list[1].events, 1);
	assert_true(next > 0);
	assert_int_equal(list[1].complete, 1);
	free(list);
	assert_int_equal(
	    nb_store_audit_list(fx->s, next, 10, &list, &n, &next), 0);
	/* The failed erase, audited with what it erased, and the dry run. */
	assert_int_equal(n, 2);
	assert_int_equal(list[0].complete, 0);
	assert_int_equal(list[0].events, 3);
	assert_int_equal(list[1].dry_run, 1);
	assert_int_equal(list[1].events, 4);
	assert_int_equal(next, 0);
	free(list);
}
