/* SPDX-License-Identifier: ISC */
/*
 * buf: a growing byte buffer with a maximum given at init.
 *
 * Growth doubles the allocation (at least 64 bytes, never past max + 1), so
 * a buffer filled byte by byte costs O(len) copies in all.  The maximum is
 * checked before any allocation, so an over-long input never makes the
 * bridge allocate more than max + 1 bytes for it.  Any thread, one at a
 * time per buffer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "nudgebridge/buf.h"

#define BUF_MIN_ALLOC 64

void
nb_buf_init(struct nb_buf *b, size_t max)
{
	b->ptr = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->failed = 0;
}

void
nb_buf_free(struct nb_buf *b)
{
	if (b == NULL)
		return;
	free(b->ptr);
	nb_buf_init(b, b->max);
}

void
nb_buf_reset(struct nb_buf *b)
{
	b->len = 0;
	b->failed = 0;
	if (b->ptr != NULL)
		b->ptr[0] = '\0';
}

int
nb_buf_reserve(struct nb_buf *b, size_t n)
{
	size_t need, cap, limit;
	char *p;

	if (b->failed)
		return -1;
	if (n > b->max || b->len > b->max - n) {
		b->failed = 1;
		return -1;
	}
	/* max + 1 holds the NUL; a max of SIZE_MAX leaves no room for it. */
	limit = b->max < SIZE_MAX ? b->max + 1 : SIZE_MAX;
	if (b->len + n >= limit) {
		b->failed = 1;
		return -1;
	}
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap < BUF_MIN_ALLOC ? BUF_MIN_ALLOC : b->cap;
	while (cap < need)
		cap = cap > limit / 2 ? limit : cap * 2;
	/* Never more than max + 1: nb_buf_add()'s fast path trusts cap. */
	if (cap > limit)
		cap = limit;
	if ((p = realloc(b->ptr, cap)) == NULL) {
		b->failed = 1;
		return -1;
	}
	if (b->ptr == NULL)
		p[0] = '\0';
	b->ptr = p;
	b->cap = cap;
	return 0;
}

int
nb_buf_add_slow(struct nb_buf *b, const void *p, size_t n)
{
	if (nb_buf_reserve(b, n) == -1)
		return -1;
	if (n > 0)
		memcpy(b->ptr + b->len, p, n);
	b->len += n;
	b->ptr[b->len] = '\0';
	return 0;
}

int
nb_buf_vaddf(struct nb_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	if (b->failed)
		return -1;
	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0 || nb_buf_reserve(b, (size_t)n) == -1) {
		b->failed = 1;
		return -1;
	}
	if (vsnprintf(b->ptr + b->len, b->cap - b->len, fmt, ap) != n) {
		b->ptr[b->len] = '\0';
		b->failed = 1;
		return -1;
	}
	b->len += (size_t)n;
	return 0;
}

int
nb_buf_addf(struct nb_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = nb_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void
nb_buf_trim(struct nb_buf *b, size_t n)
{
	b->len = n < b->len ? b->len - n : 0;
	if (b->ptr != NULL)
		b->ptr[b->len] = '\0';
}

const char *
nb_buf_str(const struct nb_buf *b)
{
	return b->ptr != NULL ? b->ptr : "";
}

char *
nb_buf_steal(struct nb_buf *b, size_t *len)
{
	char *p;

	if (b->failed || (b->ptr == NULL && nb_buf_reserve(b, 0) == -1)) {
		nb_buf_free(b);
		return NULL;
	}
	p = b->ptr;
	if (len != NULL)
		*len = b->len;
	b->ptr = NULL;
	nb_buf_init(b, b->max);
	return p;
}

char *
nb_buf_steal_fit(struct nb_buf *b, size_t *len)
{
	char *p, *fit;
	size_t n;

	if ((p = nb_buf_steal(b, &n)) == NULL)
		return NULL;
	if (len != NULL)
		*len = n;
	/* A shrink; should it fail, the larger block serves as well. */
	return (fit = realloc(p, n + 1)) != NULL ? fit : p;
}
