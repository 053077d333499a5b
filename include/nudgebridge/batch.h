/* SPDX-License-Identifier: ISC */
/*
 * batch: mapped messages packed into /v1/batch request bodies.
 *
 * A claimed row becomes an item (its Track message and bookkeeping); items
 * are packed, in claim order, into batches that each fit max_batch_bytes
 * once wrapped in the envelope
 * {"batch":[m1,m2,...],"sentAt":"<this attempt>"<tail>}, where tail is
 * extra members (an OAuth lane's ,"writeKey":"...").  A lane keeps a short
 * queue of batches; a batch Segment refused with 400 is split into halves
 * that go to the queue's front.  A batch owns its items and their messages.
 * One thread at a time.
 */
#ifndef NB_BATCH_H
#define NB_BATCH_H

#include <stddef.h>
#include <stdint.h>

/* One claimed row, mapped. */
struct nb_item {
	int64_t seq;
	int attempts;
	int64_t received_ms;
	char *msg; /* the Track message, compact JSON (owned) */
	size_t len;
};

struct nb_batch {
	struct nb_item *items;
	size_t n;
	int64_t lease_until_ms;
	int64_t epoch; /* the store's erase epoch known before the claim */
	struct nb_batch *next;
};

struct nb_batch_queue {
	struct nb_batch *head;
	struct nb_batch *tail;
};

/* Envelope bytes of a batch besides its messages and commas, and tail. */
size_t nb_batch_overhead(size_t taillen);

/* Frees n items and their messages.  NULL is ok. */
void nb_batch_items_free(struct nb_item *items, size_t n);

/* Frees b, its items and their messages.  NULL is ok. */
void nb_batch_free(struct nb_batch *b);

/* The seqs of b's rows, malloc'd (the caller frees); NULL when no memory. */
int64_t *nb_batch_seqs(const struct nb_batch *b);

void nb_batch_push_tail(struct nb_batch_queue *q, struct nb_batch *b);
void nb_batch_push_head(struct nb_batch_queue *q, struct nb_batch *b);

/* The first batch, taken off the queue, or NULL. */
struct nb_batch *nb_batch_pop(struct nb_batch_queue *q);

/*
 * Packs items[0..n) into batches of at most max_bytes (envelope of
 * overhead bytes included; each item alone fits), appended to q, all or
 * nothing: on 0 the batches own the messages (zeroed in items), on -1
 * nothing changed.
 */
int nb_batch_pack(struct nb_batch_queue *q, struct nb_item *items, size_t n,
    size_t max_bytes, size_t overhead, int64_t lease_until_ms);

/*
 * Splits b (two or more items) into halves *first and *second and frees b
 * itself; the halves own the messages.  0, or -1 (out of memory) with b
 * unchanged.
 */
int nb_batch_split(
    struct nb_batch *b, struct nb_batch **first, struct nb_batch **second);

/*
 * Keeps the items i of b with keep[i] non-zero, in order, and frees the
 * messages of the others; returns how many are left (b->n).
 */
size_t nb_batch_keep(struct nb_batch *b, const unsigned char *keep);

/*
 * The request body of b sent at now_ms, tail (NULL: none) appended after
 * sentAt: *body malloc'd, *len its length.  0 or -1 (out of memory).
 */
int nb_batch_body(const struct nb_batch *b, int64_t now_ms, const char *tail,
    char **body, size_t *len);

#endif
