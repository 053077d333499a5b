/* SPDX-License-Identifier: ISC */
/*
 * store_types: the values the store takes and gives.
 *
 * An event's states and dead-letter reasons, the rows as appended and as
 * read back, filters, per-source figures, recent errors, attempts,
 * instances, erasures and the alerts' bookkeeping rows, apart from the
 * functions of store.h and store_alert.h that move them.  The backends,
 * their shared row readers (store_rows.c) and the configuration build on
 * these without reaching up to the store's dispatcher.  The *_free()
 * functions here are defined with the row readers.
 */
#ifndef NB_STORE_TYPES_H
#define NB_STORE_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/bounds.h"
#include "nudgebridge/person.h"
#include "nudgebridge/segment.h"

struct nb_event;

enum nb_event_state {
	NB_STATE_PENDING = 0,
	NB_STATE_DELIVERED = 1,
	NB_STATE_DEAD = 2,
};

/* Bits for struct nb_store_filter.states. */
#define NB_STATE_MASK_PENDING	(1u << NB_STATE_PENDING)
#define NB_STATE_MASK_DELIVERED (1u << NB_STATE_DELIVERED)
#define NB_STATE_MASK_DEAD	(1u << NB_STATE_DEAD)

/* Dead-letter reasons of the contract. */
#define NB_REASON_QUARANTINED  "quarantined"
#define NB_REASON_TOO_LARGE    "too_large"
#define NB_REASON_REJECTED     "rejected_by_segment"
#define NB_REASON_MAX_ATTEMPTS "max_attempts"
#define NB_REASON_MAX_AGE      "max_age"
#define NB_REASON_INVALID      "invalid_for_segment"

/*
 * Every dead-letter reason in the contract's order, as an initializer
 * list: the one list the operator grammar, the metrics, the console and
 * the tests of the docs read ({NB_STORE_REASONS}).
 */
#define NB_STORE_REASONS                                                       \
	NB_REASON_QUARANTINED, NB_REASON_TOO_LARGE, NB_REASON_REJECTED,        \
	    NB_REASON_MAX_ATTEMPTS, NB_REASON_MAX_AGE, NB_REASON_INVALID

/* Longest dead-letter key, NUL included. */
#define NB_STORE_KEY_MAX 32

/*
 * Attempt history: the failed attempts kept per event (its first ones),
 * besides the last attempt, which is always kept.
 */
#define NB_STORE_ATTEMPTS_KEPT 20

/* "store": where the events are kept (config.c fills it). */
struct nb_store_config {
	char *driver;		/* "sqlite" or "postgres" */
	char *path;		/* sqlite: absolute path of the database */
	char *dsn;		/* postgres: connection string (secret) */
	int lease_s;		/* claim lease, default 30 */
	int64_t max_size_bytes; /* sqlite: size cap, 0 = none */
	/*
	 * Not from the file: the install id a store that has none yet takes
	 * instead of a random one (`migrate --install-id`), or NULL.
	 */
	const char *install_id;
};

/*
 * One webhook request to store.  The caller fills the inputs; the store
 * fills the three counts.  A request whose (source, webhook_id) was seen
 * after dedupe_after_ms counts every event as a duplicate and stores
 * nothing.  Otherwise each event whose (source, id) was seen after
 * dedupe_after_ms (or earlier in this same request) is a duplicate; each
 * event with error != NULL is stored dead with reason "quarantined" and
 * that error; the rest are stored pending.  An event without an id
 * (id == NULL) is never a duplicate.  The counts are disjoint: accepted
 * (stored pending) + duplicates + quarantined = nevents.
 */
struct nb_append {
	const char *source;
	const char *webhook_id;
	const struct nb_event *events;
	size_t nevents;
	int64_t received_ms;
	int64_t dedupe_after_ms;
	/* out */
	int accepted;
	int duplicates;
	int quarantined;
};

/*
 * A stored event as read back.  Every string is owned by the struct.  key is
 * the dead-letter key: the decimal seq ("42"), stable for the row's life and
 * never reused after a purge.
 */
struct nb_stored_event {
	int64_t seq; /* internal order; the key is derived from it */
	char key[NB_STORE_KEY_MAX];
	char *source;
	char *id;   /* NULL for a quarantined event without valid id */
	char *type; /* may be NULL when quarantined */
	char *raw;  /* event JSON as received (compact) */
	size_t rawlen;
	enum nb_event_state state;
	char *reason; /* dead letters only, else NULL */
	char *error;  /* last error, may be NULL */
	int attempts;
	int64_t received_ms;
	int64_t age_base_ms; /* max_age counts from here (reset by replay) */
	int64_t updated_ms;  /* last state change */
	/*
	 * The messageId rule of the row, for life: NB_SEGMENT_RULE_LEGACY
	 * for rows stored before the store had an install id (schema
	 * version 4), NB_SEGMENT_RULE_CURRENT for every row stored since.
	 */
	enum nb_segment_rule rule;
};

/*
 * Frees the strings of n events and the array itself.  NULL is ok.  (Named
 * after its struct, not nb_store_: the benchmarks in tests/bench call it
 * too, and are reworked apart.)
 */
void nb_stored_events_free(struct nb_stored_event *, size_t n);

/*
 * One batch attempt (a request to Segment), recorded by the marks that
 * settle its rows, in their transactions: nb_store_delivered() points each
 * row at it, the failure marks (retry, dead, release) link each row to it
 * (the first NB_STORE_ATTEMPTS_KEPT failures of a row and its latest).
 * The caller fills the facts and sets id to 0; the first mark that
 * records the attempt sets id, and a second mark of the same attempt
 * (some rows retried, others dead) links its rows to that same record.
 */
struct nb_store_attempt {
	int64_t at_ms;	   /* the request started (wall clock) */
	int64_t end_ms;	   /* its answer came, or it failed */
	int status;	   /* Segment's HTTP status; 0 when none came */
	const char *error; /* what failed; NULL for a 2xx */
	size_t batch_size; /* messages in the request */
	int64_t id;	   /* 0 until recorded */
};

/* An attempt as read back (strings owned). */
struct nb_store_attempt_row {
	int64_t id;
	int64_t at_ms;
	int64_t end_ms;
	int status;
	char *error;
	int64_t batch_size;
};

/* Frees the strings of n attempts and the array itself.  NULL is ok. */
void nb_store_attempts_free(struct nb_store_attempt_row *, size_t n);

/* What one retried row becomes. */
struct nb_store_retry {
	int64_t seq;
	int64_t next_ms; /* not claimable before */
};

/*
 * Operator filters.  Unset fields (NULL / 0) match everything.  since/until
 * bound received_at (inclusive, ms).  A key that is not a decimal seq
 * matches nothing.  states is a mask of NB_STATE_MASK_*;
 * 0 means NB_STATE_MASK_DEAD.  limit 0 means no limit.  Rows are listed in
 * seq order, oldest first, or newest first with newest_first; after_seq
 * > 0 and before_seq > 0 keep only rows with seq above / below them (the
 * keyset cursors of paging).  max_scan > 0 bounds the rows a page looks
 * at (see nb_store_list_page()); the rows are found through the primary
 * key, or the index of dead letters when only those are asked for.
 */
struct nb_store_filter {
	const char *key;
	const char *source;
	const char *type;
	const char *reason;
	const char *id;
	int64_t since_ms;
	int64_t until_ms;
	unsigned states;
	size_t limit;
	int64_t after_seq;
	int64_t before_seq;
	int newest_first;
	size_t max_scan;
	const char *email;
	const char *uid;
};

/* Rows a replay or purge changes per transaction, and looks at per chunk. */
#define NB_STORE_CHUNK	    1000
#define NB_STORE_CHUNK_SCAN 10000

/*
 * Per-source queue figures for /v1/stats and /metrics.  The first four are
 * counters the store keeps as rows change state, in the same transactions;
 * the two gauges are read off indexes; the totals only ever grow (since
 * the counters were built), so a caller that samples them twice gets a
 * rate.
 */
struct nb_source_stats {
	char source[NB_SOURCE_NAME_MAX + 1];
	int64_t pending;   /* includes in flight */
	int64_t inflight;  /* pending with a live lease */
	int64_t delivered; /* still retained */
	int64_t dead;	   /* dead letters, quarantined included */
	int64_t quarantined;
	int64_t oldest_pending_ms; /* received_at of the oldest pending, 0 */
	int64_t received_total;	   /* events stored (quarantined included) */
	int64_t delivered_total;   /* rows marked delivered */
	int64_t dead_total;	   /* rows that became dead letters */
};

/* Recent errors kept per source (per writer on PostgreSQL), newest first. */
#define NB_STORE_ERRORS_KEPT 32

/*
 * One error recorded as rows failed: a retry's error, a dead letter's, a
 * quarantined event's rule.  count is how often it happened since the
 * store first recorded it; state and reason are those of its latest row.
 */
struct nb_store_error {
	char source[NB_SOURCE_NAME_MAX + 1];
	char *error;
	char *reason; /* dead letters only, else NULL */
	enum nb_event_state state;
	int64_t count;
	int64_t last_ms;
};

/* Frees the strings of n errors and the array itself.  NULL is ok. */
void nb_store_errors_free(struct nb_store_error *, size_t n);

/*
 * Re-validates a quarantined event on replay: returns NULL when raw is now
 * valid (then *id and *type receive malloc'd copies), else the broken rule.
 * nb_nudgespot_revalidate() has this shape.
 */
typedef const char *(*nb_store_revalidate_fn)(
    const char *raw, size_t len, char **id, char **type);

/* Longest instance id and host name kept, NUL included. */
#define NB_STORE_INSTANCE_ID_MAX 33
#define NB_STORE_HOST_MAX	 64

/* One bridge process registered in a shared store. */
struct nb_store_instance {
	char id[NB_STORE_INSTANCE_ID_MAX]; /* random, per process */
	char host[NB_STORE_HOST_MAX];
	int64_t pid;
	int64_t started_ms; /* first registration, the database's clock */
	int64_t beat_ms;    /* last heartbeat, the database's clock */
};

/* An instance silent for this many leases is forgotten (nb_store_beat()). */
#define NB_STORE_FORGET_LEASES 10

/* What to erase: exactly one of who.email and who.uid. */
struct nb_store_erase {
	struct nb_person who;
	int dry_run;	   /* only count (and audit the count) */
	const char *actor; /* "cli" or "admin", for the audit */
	int64_t now_ms;
	int64_t wait_ms; /* longest wait for held rows; 0: 300 s */
};

/* An erasure as the audit keeps it. */
struct nb_store_audit {
	int64_t id; /* the audit record (its order) */
	int64_t at_ms;
	char actor[16];
	char kind[8];			    /* "email" or "uid" */
	char subject[NB_PERSON_DIGEST_LEN]; /* nb_person_digest() */
	int dry_run;
	int64_t events; /* erased (or found, for a dry run) */
	int64_t pending;
	int64_t delivered;
	int64_t dead; /* quarantined included */
	int complete; /* 0: the erase failed after erasing these */
};

#endif
