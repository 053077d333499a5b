/* SPDX-License-Identifier: ISC */
/*
 * batch: packing, splitting and the request body.
 *
 * Packing measures with the same envelope the body is written with, so a
 * batch never exceeds max_bytes; the body is written in one allocation of
 * its exact size.  Splitting moves items, never copies messages.
 */
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/batch.h"
#include "nudgebridge/log.h"
#include "nudgebridge/timeutil.h"

#define BATCH_HEAD "{\"batch\":["
#define BATCH_TAIL "],\"sentAt\":\""
#define BATCH_END  "}"

size_t
nb_batch_overhead(size_t taillen)
{
	return sizeof(BATCH_HEAD) - 1 + sizeof(BATCH_TAIL) - 1 +
	    (NB_TIME_ISO_LEN - 1) + 1 + taillen + sizeof(BATCH_END) - 1;
}

void
nb_batch_items_free(struct nb_item *items, size_t n)
{
	size_t i;

	if (items == NULL)
		return;
	for (i = 0; i < n; i++)
		free(items[i].msg);
	free(items);
}

void
nb_batch_free(struct nb_batch *b)
{
	if (b == NULL)
		return;
	nb_batch_items_free(b->items, b->n);
	free(b);
}

int64_t *
nb_batch_seqs(const struct nb_batch *b)
{
	int64_t *seqs;
	size_t i;

	if ((seqs = calloc(b->n, sizeof(*seqs))) == NULL) {
		log_error("out of memory", " n=%zu", b->n);
		return NULL;
	}
	for (i = 0; i < b->n; i++)
		seqs[i] = b->items[i].seq;
	return seqs;
}

void
nb_batch_push_tail(struct nb_batch_queue *q, struct nb_batch *b)
{
	b->next = NULL;
	if (q->tail == NULL)
		q->head = b;
	else
		q->tail->next = b;
	q->tail = b;
}

void
nb_batch_push_head(struct nb_batch_queue *q, struct nb_batch *b)
{
	b->next = q->head;
	q->head = b;
	if (q->tail == NULL)
		q->tail = b;
}

struct nb_batch *
nb_batch_pop(struct nb_batch_queue *q)
{
	struct nb_batch *b = q->head;

	if (b != NULL) {
		q->head = b->next;
		if (q->head == NULL)
			q->tail = NULL;
		b->next = NULL;
	}
	return b;
}

/* A batch of items[0..n) (copied structs, messages not duplicated). */
static struct nb_batch *
batch_of(const struct nb_item *items, size_t n, int64_t lease_until_ms)
{
	struct nb_batch *b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	if ((b->items = calloc(n, sizeof(*b->items))) == NULL) {
		free(b);
		return NULL;
	}
	memcpy(b->items, items, n * sizeof(*items));
	b->n = n;
	b->lease_until_ms = lease_until_ms;
	return b;
}

/* Frees batches made by batch_of() without their messages. */
static void
shells_free(struct nb_batch *head)
{
	struct nb_batch *b;

	while ((b = head) != NULL) {
		head = b->next;
		free(b->items);
		free(b);
	}
}

int
nb_batch_pack(struct nb_batch_queue *q, struct nb_item *items, size_t n,
    size_t max_bytes, size_t overhead, int64_t lease_until_ms)
{
	struct nb_batch *head = NULL, *tail = NULL, *b;
	size_t i, start, size;

	if (n == 0)
		return 0;
	for (start = 0; start < n; start = i) {
		size = overhead + items[start].len;
		for (i = start + 1; i < n; i++) {
			if (size + 1 + items[i].len > max_bytes)
				break;
			size += 1 + items[i].len;
		}
		if ((b = batch_of(items + start, i - start, lease_until_ms)) ==
		    NULL) {
			shells_free(head);
			return -1;
		}
		if (tail == NULL)
			head = b;
		else
			tail->next = b;
		tail = b;
	}
	while ((b = head) != NULL) {
		head = b->next;
		nb_batch_push_tail(q, b);
	}
	memset(items, 0, n * sizeof(*items));
	return 0;
}

size_t
nb_batch_keep(struct nb_batch *b, const unsigned char *keep)
{
	size_t i, k = 0;

	for (i = 0; i < b->n; i++) {
		if (!keep[i]) {
			free(b->items[i].msg);
			continue;
		}
		b->items[k++] = b->items[i];
	}
	b->n = k;
	return k;
}

int
nb_batch_split(
    struct nb_batch *b, struct nb_batch **first, struct nb_batch **second)
{
	size_t half = b->n / 2;

	*first = batch_of(b->items, half, b->lease_until_ms);
	*second = batch_of(b->items + half, b->n - half, b->lease_until_ms);
	if (*first == NULL || *second == NULL) {
		if (*first != NULL)
			(*first)->next = NULL;
		shells_free(*first);
		shells_free(*second);
		*first = *second = NULL;
		return -1;
	}
	(*first)->epoch = (*second)->epoch = b->epoch;
	free(b->items);
	free(b);
	return 0;
}

int
nb_batch_body(const struct nb_batch *b, int64_t now_ms, const char *tail,
    char **body, size_t *len)
{
	char iso[NB_TIME_ISO_LEN];
	size_t i, taillen = tail != NULL ? strlen(tail) : 0;
	size_t size = nb_batch_overhead(taillen);
	char *p;

	for (i = 0; i < b->n; i++)
		size += b->items[i].len + (i > 0);
	if ((*body = p = malloc(size + 1)) == NULL)
		return -1;
	memcpy(p, BATCH_HEAD, sizeof(BATCH_HEAD) - 1);
	p += sizeof(BATCH_HEAD) - 1;
	for (i = 0; i < b->n; i++) {
		if (i > 0)
			*p++ = ',';
		memcpy(p, b->items[i].msg, b->items[i].len);
		p += b->items[i].len;
	}
	nb_time_format_iso(now_ms, iso);
	memcpy(p, BATCH_TAIL, sizeof(BATCH_TAIL) - 1);
	p += sizeof(BATCH_TAIL) - 1;
	memcpy(p, iso, NB_TIME_ISO_LEN - 1);
	p += NB_TIME_ISO_LEN - 1;
	*p++ = '"';
	memcpy(p, tail != NULL ? tail : "", taillen);
	p += taillen;
	memcpy(p, BATCH_END, sizeof(BATCH_END));
	*len = size;
	return 0;
}
