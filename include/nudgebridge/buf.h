/* SPDX-License-Identifier: ISC */
/*
 * buf: a growing byte buffer with a maximum given at init (curl's dynbuf).
 *
 * Every buffer the bridge builds (a Track message, a batch body, a stored
 * error excerpt, a SQL parameter list, a file read whole) has a size past
 * which it is a bug or an attack, so the maximum is part of the buffer, not
 * of each caller.  An add that would pass the maximum, or that finds no
 * memory, fails and marks the buffer failed; every later add fails at once,
 * so a writer may add many pieces and check once at the end
 * (nb_buf_failed()).  The contents are always NUL-terminated (the NUL is not
 * counted and not limited by the maximum).  No locking: one thread at a
 * time.  A zeroed struct is an empty buffer with maximum 0 (nothing fits);
 * call nb_buf_init() first.
 */
#ifndef NB_BUF_H
#define NB_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

struct nb_buf {
	char *ptr;  /* NULL until the first add */
	size_t len; /* bytes held, NUL excluded */
	size_t cap; /* bytes allocated, NUL included */
	size_t max; /* the most len may become */
	int failed; /* sticky: an add passed max or found no memory */
};

/* Empties b and sets its maximum; b must not hold memory (or be freed). */
void nb_buf_init(struct nb_buf *b, size_t max);

/* Frees the memory; b is then empty with the same maximum.  NULL is ok. */
void nb_buf_free(struct nb_buf *b);

/* Empties b but keeps its memory for the next use; clears failed. */
void nb_buf_reset(struct nb_buf *b);

/*
 * Makes room for n more bytes (and the NUL) in one allocation.  0, or -1
 * (and failed) when len + n would pass the maximum or memory runs out.
 */
int nb_buf_reserve(struct nb_buf *b, size_t n);

/* The out-of-line half of nb_buf_add(); call that instead. */
int nb_buf_add_slow(struct nb_buf *b, const void *p, size_t n);

/*
 * Appends n bytes.  0, or -1 with failed set (and nothing added).  The fast
 * path (room already there) is inline: encoders call it per token.
 */
static inline int
nb_buf_add(struct nb_buf *b, const void *p, size_t n)
{
	if (!b->failed && b->cap - b->len > n) {
		memcpy(b->ptr + b->len, p, n);
		b->len += n;
		b->ptr[b->len] = '\0';
		return 0;
	}
	return nb_buf_add_slow(b, p, n);
}

/* Appends one byte. */
static inline int
nb_buf_addc(struct nb_buf *b, char c)
{
	return nb_buf_add(b, &c, 1);
}

/* Appends a NUL-terminated string. */
static inline int
nb_buf_adds(struct nb_buf *b, const char *s)
{
	return nb_buf_add(b, s, strlen(s));
}

/* Appends printf-style text.  0 or -1 as nb_buf_add(). */
int nb_buf_addf(struct nb_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int nb_buf_vaddf(struct nb_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Drops the last n bytes (all of them when n > len). */
void nb_buf_trim(struct nb_buf *b, size_t n);

/* The contents ("" when empty; borrowed, valid until the next change). */
const char *nb_buf_str(const struct nb_buf *b);

/*
 * Hands the memory over: returns the NUL-terminated contents (malloc'd, the
 * caller frees; "" is returned malloc'd too) and their length in *len
 * (may be NULL); b is then empty.  NULL when b failed or on no memory (b
 * is then freed).
 */
char *nb_buf_steal(struct nb_buf *b, size_t *len);

/*
 * nb_buf_steal() with the allocation cut to the contents, for text built
 * in a buffer reserved at its worst case that then waits a while.  Not
 * for secrets: realloc() may move the bytes and leave a copy behind.
 */
char *nb_buf_steal_fit(struct nb_buf *b, size_t *len);

/* 1 when an add failed since the last init or reset. */
static inline int
nb_buf_failed(const struct nb_buf *b)
{
	return b->failed;
}

#endif
