/* SPDX-License-Identifier: ISC */
/*
 * redact: a mask over the input, then one copy.
 *
 * Every rule marks the byte ranges it finds in a mask as long as the
 * input; the copy then writes one NB_REDACT_MARK per marked run and the
 * printable bytes in between.  Marking first lets rules overlap (a write
 * key inside an Authorization value inside a JSON string) without one
 * rule's output hiding a secret from the next.  Inputs are short (a few
 * KiB of an error answer), so each rule simply scans them.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "nudgebridge/redact.h"

#define TAIL_MIN 3 /* shortest cut-off secret prefix redacted */

/* base64 of a secret and of "secret:", standard and URL-safe. */
#define NFORMS 4

static void
mark(unsigned char *m, size_t from, size_t to)
{
	memset(m + from, 1, to - from);
}

static int
lower_eq(const char *p, const char *word, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (tolower((unsigned char)p[i]) != word[i])
			return 0;
	return 1;
}

static int
token_char(unsigned char c)
{
	return isalnum(c) || (c != 0 && strchr("-._~+/=", c) != NULL);
}

static int
b64url_char(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_';
}

/*
 * Every occurrence of s (n bytes) in in, with the '=' padding after it
 * when pad; a cut-off tail when truncated.
 */
static void
mark_literal(const char *in, size_t len, int truncated, const char *s, size_t n,
    int pad, unsigned char *m)
{
	size_t i, j, k;

	if (n == 0)
		return;
	for (i = 0; i + n <= len; i++) {
		if (in[i] != s[0] || memcmp(in + i, s, n) != 0)
			continue;
		for (j = i + n; pad && j < len && in[j] == '='; j++)
			;
		mark(m, i, j);
	}
	if (!truncated)
		return;
	for (k = n - 1 < len ? n - 1 : len; k >= TAIL_MIN; k--) {
		if (memcmp(in + len - k, s, k) == 0) {
			mark(m, len - k, len);
			return;
		}
	}
}

/* base64 of s (n bytes), plus ':' when colon, in variant; NULL on error. */
static char *
b64(const char *s, size_t n, int colon, int variant)
{
	unsigned char *bin;
	size_t blen = n + (colon ? 1 : 0), olen;
	char *out = NULL;

	if ((bin = malloc(blen + 1)) == NULL)
		return NULL;
	memcpy(bin, s, n);
	bin[n] = ':';
	olen = sodium_base64_ENCODED_LEN(blen, variant);
	if ((out = malloc(olen)) != NULL)
		sodium_bin2base64(out, olen, bin, blen, variant);
	sodium_memzero(bin, blen + 1);
	free(bin);
	return out;
}

static int
mark_secret(
    const char *in, size_t len, int truncated, const char *s, unsigned char *m)
{
	static const int variants[] = {
	    sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING};
	char *forms[NFORMS] = {NULL};
	size_t n = strlen(s), i, k = 0;
	int rc = 0;

	mark_literal(in, len, truncated, s, n, 0, m);
	for (i = 0; i < 2; i++) {
		if ((forms[k++] = b64(s, n, 0, variants[i])) == NULL ||
		    (forms[k++] = b64(s, n, 1, variants[i])) == NULL)
			rc = -1;
	}
	for (i = 0; i < k; i++) {
		if (forms[i] == NULL)
			continue;
		mark_literal(
		    in, len, truncated, forms[i], strlen(forms[i]), 1, m);
		sodium_memzero(forms[i], strlen(forms[i]));
		free(forms[i]);
	}
	return rc;
}

/* The value after "authorization" and ':' or '='. */
static void
mark_authorization(const char *in, size_t len, unsigned char *m)
{
	static const char word[] = "authorization";
	size_t i, j, n = sizeof(word) - 1;

	for (i = 0; i + n <= len; i++) {
		if (!lower_eq(in + i, word, n))
			continue;
		j = i + n;
		while (j < len && strchr("\"' \t", in[j]) != NULL && in[j])
			j++;
		if (j >= len || (in[j] != ':' && in[j] != '='))
			continue;
		j++;
		while (j < len && strchr("\"' \t", in[j]) != NULL && in[j])
			j++;
		i = j;
		while (j < len && strchr("\"',}&;\r\n", in[j]) == NULL)
			j++;
		if (j > i)
			mark(m, i, j);
	}
}

/* The token after "bearer " or "basic ". */
static void
mark_schemes(const char *in, size_t len, unsigned char *m)
{
	static const char *const words[] = {"bearer", "basic"};
	size_t i, j, w, n;

	for (w = 0; w < 2; w++) {
		n = strlen(words[w]);
		for (i = 0; i + n < len; i++) {
			if (!lower_eq(in + i, words[w], n) ||
			    (in[i + n] != ' ' && in[i + n] != '\t'))
				continue;
			j = i + n;
			while (j < len && (in[j] == ' ' || in[j] == '\t'))
				j++;
			i = j;
			while (j < len && token_char((unsigned char)in[j]))
				j++;
			if (j > i)
				mark(m, i, j);
		}
	}
}

/* eyJ<b64url>.<b64url>[.<b64url>] */
static void
mark_jwts(const char *in, size_t len, unsigned char *m)
{
	size_t i, j, dots;

	for (i = 0; i + 3 < len; i++) {
		if (memcmp(in + i, "eyJ", 3) != 0 ||
		    (i > 0 && b64url_char((unsigned char)in[i - 1])))
			continue;
		for (j = i, dots = 0; j < len; j++) {
			if (in[j] == '.' && dots < 2 && j + 1 < len &&
			    b64url_char((unsigned char)in[j + 1]))
				dots++;
			else if (!b64url_char((unsigned char)in[j]))
				break;
		}
		if (dots >= 1) {
			mark(m, i, j);
			i = j;
		}
	}
}

int
nb_redact(const char *in, size_t len, int truncated, const char *const *secrets,
    size_t nsecrets, char *out, size_t outlen)
{
	unsigned char *m;
	size_t i, n = 0, mlen = sizeof(NB_REDACT_MARK) - 1;
	int rc = 0;

	if (outlen == 0)
		return 0;
	out[0] = '\0';
	if ((m = calloc(len + 1, 1)) == NULL)
		return -1;
	for (i = 0; i < nsecrets; i++)
		if (secrets[i] != NULL && secrets[i][0] != '\0' &&
		    mark_secret(in, len, truncated, secrets[i], m) == -1)
			rc = -1;
	mark_authorization(in, len, m);
	mark_schemes(in, len, m);
	mark_jwts(in, len, m);
	for (i = 0; i < len && rc == 0; i++) {
		if (m[i]) {
			if (i > 0 && m[i - 1])
				continue;
			if (n + mlen >= outlen)
				break;
			memcpy(out + n, NB_REDACT_MARK, mlen);
			n += mlen;
			continue;
		}
		if (n + 1 >= outlen)
			break;
		out[n++] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
	}
	out[n] = '\0';
	free(m);
	return rc;
}
