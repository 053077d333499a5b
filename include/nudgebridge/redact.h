/* SPDX-License-Identifier: ISC */
/*
 * redact: credentials taken out of text that came from the network.
 *
 * A Segment 400 body or an OAuth error description is kept (as a dead
 * letter's error, a paused source's reason) and shown to operators, and
 * servers echo what they were sent: the write key, its HTTP Basic form,
 * a bearer token, a signed client assertion.  Everything such text goes
 * through here first.  Known secrets are found in every form they travel
 * in; unknown ones by where they stand (after "Authorization", "Bearer",
 * "Basic") or by their shape (a JWT).  Pure; safe from any thread.
 */
#ifndef NB_REDACT_H
#define NB_REDACT_H

#include <stddef.h>

/* What a credential becomes. */
#define NB_REDACT_MARK "***"

/*
 * Copies in (len bytes, NULs allowed) to out (outlen bytes, always
 * NUL-terminated, cut at outlen - 1) as printable ASCII: a byte outside
 * 0x20..0x7e becomes '?', and each credential becomes NB_REDACT_MARK:
 *
 *  - each of secrets[0..nsecrets) (NULL or empty ones skipped) literally,
 *    in base64 (standard and URL-safe, with or without padding) and as the
 *    base64 of "<secret>:" (HTTP Basic with an empty password);
 *  - the value after the word "authorization" (any case) and ':' or '='
 *    (quotes and blanks around them allowed), up to a quote, a comma, '}',
 *    '&', ';', a line end or the end;
 *  - the word after "Bearer " or "Basic " (any case);
 *  - a JWT: three base64url parts joined by dots, the first one "eyJ...";
 *  - when truncated (in was cut short), a tail of in of 3 bytes or more
 *    that begins one of the forms above of a known secret.
 *
 * Returns -1 only when out of memory (out then holds "" ), else 0.
 */
int nb_redact(const char *in, size_t len, int truncated,
    const char *const *secrets, size_t nsecrets, char *out, size_t outlen);

#endif
