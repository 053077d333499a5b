/* SPDX-License-Identifier: ISC */
/*
 * alert: the conditions operators are told about, as a state machine.
 *
 * One struct nb_alert_state per condition and source says whether it
 * fires and what was last told; nb_alert_step() advances it by what was
 * observed at one evaluation and says whether a notification is due.
 * The module does no I/O and reads no clock: the alert thread
 * (alerter.h) gathers the observations (store totals, the deliverer's
 * pauses, the activity table, the committer's health), keeps the states
 * in the store and sends what is due, and the unit tests drive the same
 * function with tables of observations over time.  It also renders the
 * notification body of section 7 of the contract.  Reentrant; no globals.
 */
#ifndef NB_ALERT_H
#define NB_ALERT_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/bounds.h"

enum nb_alert_kind {
	NB_ALERT_SOURCE_PAUSED = 0,
	NB_ALERT_DEAD_LETTERS,
	NB_ALERT_BACKLOG_AGE,
	NB_ALERT_SOURCE_SILENT,
	NB_ALERT_STORE_UNAVAILABLE,
	NB_ALERT_KINDS
};

#define NB_ALERT_NAME_MAX    24	  /* "store_unavailable" and its NUL */
#define NB_ALERT_SUMMARY_MAX 256  /* one sentence for people */
#define NB_ALERT_DETAILS_MAX 1024 /* a JSON object */
#define NB_ALERT_TEXT_MAX    256  /* the pause's words, the main reason */
#define NB_ALERT_MSGID_MAX   48	  /* a notification's webhook-id */

/*
 * A condition of one source ("" for store_unavailable, which concerns the
 * instance).  known is 0 for a state never stored (a zeroed one: nothing
 * told, for dead_letters no dead letter counted yet).  The other fields
 * are stored as they are.
 */
struct nb_alert_state {
	enum nb_alert_kind kind;
	char source[NB_SOURCE_NAME_MAX + 1];
	int known;
	int firing;
	int64_t started_ms;  /* of the current (or the last) episode */
	int64_t resolved_ms; /* 0 while firing */
	/*
	 * dead_letters: the dead-letter total counted so far; source_silent:
	 * the last request known when it fired.
	 */
	int64_t mark;
	int64_t pending;     /* dead_letters: new since the last notification */
	int64_t notified_ms; /* the last firing notification */
	/* dead_letters: the last new one; source_paused: last seen paused */
	int64_t changed_ms;
	char text[NB_ALERT_TEXT_MAX]; /* the pause, the main reason */
	char summary[NB_ALERT_SUMMARY_MAX];
	char details[NB_ALERT_DETAILS_MAX]; /* a JSON object, "{}" at least */
};

/* The thresholds of one evaluation, in ms. */
struct nb_alert_params {
	int64_t repeat_ms;	      /* alerts.repeat_s */
	int64_t backlog_age_ms;	      /* alerts.backlog_age_s */
	int64_t store_unavailable_ms; /* alerts.store_unavailable_s */
	/*
	 * A pause counts as over once no instance has seen it for this long:
	 * a lane tries again when its pause ends and pauses again at the
	 * first refusal, which must not read as resolved and fired anew.
	 */
	int64_t pause_grace_ms;
};

/*
 * What one evaluation observed about one source (or the instance).  A
 * figure that could not be read leaves its have_* flag 0, and the
 * condition that depends on it stays as it was.  Strings are borrowed.
 */
struct nb_alert_obs {
	int64_t now_ms;
	/* source_silent counts from here when nothing came yet (start-up) */
	int64_t start_ms;
	int64_t paused_seen_ms; /* last seen paused by any instance; 0 never */
	int paused_status;	/* Segment's 401/403, the token endpoint's */
	const char *paused_text;
	int have_queue; /* the store's figures below were read */
	int64_t dead_total;
	const char *dead_reason; /* main reason of the new ones, or NULL */
	int64_t pending;
	int64_t oldest_pending_ms;  /* 0: nothing pending */
	int64_t silent_after_ms;    /* 0: source_silent off for the source */
	int have_received;	    /* last_received_ms was read */
	int64_t last_received_ms;   /* 0: none known */
	int64_t store_bad_since_ms; /* 0: the store commits */
	const char *instance;	    /* store_unavailable: who tells, or NULL */
};

enum nb_alert_notify {
	NB_ALERT_QUIET = 0, /* nothing to tell */
	NB_ALERT_FIRING,    /* started, or (dead_letters) more came */
	NB_ALERT_RESOLVED,  /* ended */
};

/*
 * Advances st (st->kind and st->source set; zeroed otherwise when never
 * stored) by obs under p.  *changed is set to 1 when st must be written
 * back (else left alone).  Returns what to tell operators; the summary
 * and details of st then describe it.  Never fails.
 */
enum nb_alert_notify nb_alert_step(struct nb_alert_state *st,
    const struct nb_alert_obs *obs, const struct nb_alert_params *p,
    int *changed);

/* "source_paused", ...; "unknown" out of range. */
const char *nb_alert_name(enum nb_alert_kind);

/* The kind called name.  0 or -1. */
int nb_alert_parse(const char *name, enum nb_alert_kind *out);

/*
 * The notification of contract section 7 for st as nb_alert_step() left
 * it: {"alert", "status", "source" (null for store_unavailable),
 * "summary", "started_at", "details"} and "resolved_at" when resolved,
 * as compact JSON in a new string (*out, free()).  0, or -1 when out of
 * memory.
 */
int nb_alert_body(
    const struct nb_alert_state *st, enum nb_alert_notify what, char **out);

/*
 * The Slack incoming-webhook form of a body nb_alert_body() made:
 * {"text": "..."}, in a new string.  0 or -1 (out of memory, or body is
 * not such a body).
 */
int nb_alert_slack(const char *body, char **out);

/*
 * What the alerts keep in the store (store_alert.h), shared by every
 * instance: the reports each instance alone can make, the beats and
 * changes the alert thread writes, and the notifications of the outbox.
 */
struct nb_activity_row;

/* An instance (its alert thread) names itself with this many bytes. */
#define NB_ALERT_OWNER_MAX 96

/* Something one instance saw that the others cannot: a paused source. */
struct nb_alert_report {
	enum nb_alert_kind kind;
	char source[NB_SOURCE_NAME_MAX + 1];
	int status; /* the refusal's HTTP status */
	char text[NB_ALERT_TEXT_MAX];
	int64_t seen_ms;
};

/* One alert thread's beat: see nb_store_alert_beat(). */
struct nb_alert_beat {
	const char *owner;
	int64_t now_ms;
	int64_t lease_until_ms;
	const struct nb_activity_row *act;
	size_t nact;
	const struct nb_alert_report *rep;
	size_t nrep;
};

/* What every instance wrote, as nb_store_alert_read() finds it. */
struct nb_alert_view {
	struct nb_activity_row *act;
	size_t nact;
	struct nb_alert_report *rep; /* seen since the asked time */
	size_t nrep;
	struct nb_alert_state *st; /* known set in each */
	size_t nst;
};

/*
 * A notification to send, as queued in the outbox.  body is the contract's
 * JSON (owned by the struct once claimed; borrowed when queued).
 */
struct nb_alert_note {
	int64_t id; /* the outbox row, set by claims */
	char msg_id[NB_ALERT_MSGID_MAX];
	enum nb_alert_kind kind;
	char source[NB_SOURCE_NAME_MAX + 1];
	int resolved; /* 0: firing */
	char *body;
	int attempts;
	int64_t created_ms;
};

/* The evaluator's changes: see nb_store_alert_apply(). */
struct nb_alert_apply {
	const char *owner;
	int64_t now_ms;
	int64_t lease_until_ms;
	const struct nb_alert_state *st; /* to write (insert or replace) */
	size_t nst;
	const struct nb_alert_note *notes; /* to queue, due now */
	size_t nnotes;
	int64_t prune_before_ms; /* outbox rows done and reports seen before */
};

enum nb_alert_outcome {
	NB_ALERT_SENT = 1,    /* the receiver answered 2xx */
	NB_ALERT_DROPPED = 2, /* given up (alerts.max_age_s) */
	NB_ALERT_RETRY = 3,   /* try again at next_ms */
};

#endif
