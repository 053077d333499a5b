/* SPDX-License-Identifier: ISC */
/*
 * person: who a stored event is about, for search and erasure.
 *
 * An event is about the person its subscriber.uid (compared byte for byte)
 * and its subscriber.email (compared ASCII case-insensitively) name, each
 * only when it follows its own rule of the event table (schema.h): a
 * non-empty string without control characters inside an object
 * "subscriber".  The store indexes every row under two 32-bit keys, a
 * keyed SipHash of the uid and of the lower-cased address, computed by the
 * parser on the HTTP thread, so finding a person's events never reads a
 * payload; a key is a hint, and every row it finds is checked against its
 * stored text (nb_person_match()) before anyone sees or erases it.  The
 * audit keeps the hex SHA-256 of what was erased, never the value.  Pure
 * functions; any thread.
 */
#ifndef NB_PERSON_H
#define NB_PERSON_H

#include <stddef.h>
#include <stdint.h>

/* "<64 hex digits>" and the NUL. */
#define NB_PERSON_DIGEST_LEN 65

/*
 * A person looked for: exactly one of email and uid is non-NULL (both are
 * NUL-terminated).
 */
struct nb_person {
	const char *email;
	const char *uid;
};

/*
 * The index key of an address (len bytes): SipHash-2-4 of its ASCII
 * lower-cased bytes under a fixed key, as a non-zero signed 32-bit value
 * (0 is "no key").  The same address in any ASCII case has the same key.
 */
int64_t nb_person_key_email(const char *email, size_t len);

/* The index key of a uid (len bytes, exact): likewise, never 0. */
int64_t nb_person_key_uid(const char *uid, size_t len);

/*
 * The keys of a stored event (raw, len bytes of JSON): those of its
 * subscriber.email and subscriber.uid when they follow their rules, else
 * 0.  What the parser computes, for rows stored before the keys were
 * (migrations).  Both 0 when raw is not a JSON object.
 */
void nb_person_keys_of(
    const char *raw, size_t len, int64_t *email_key, int64_t *uid_key);

/*
 * 1 when the stored event raw (len bytes) is about p: its subscriber.email
 * equals p->email ignoring ASCII case, or its subscriber.uid equals p->uid
 * exactly (each only when it follows its rule); 0 otherwise, also when raw
 * is not JSON or memory ran out.
 */
int nb_person_match(const struct nb_person *p, const char *raw, size_t len);

/*
 * The hex SHA-256 of p's address, ASCII lower-cased, or of its uid as
 * given: what the erasure audit keeps instead of the value.
 */
void nb_person_digest(
    const struct nb_person *p, char out[NB_PERSON_DIGEST_LEN]);

/*
 * 0 when s is a value a person can be looked up by: non-empty, no control
 * characters (the rule of subscriber.uid and .email), valid UTF-8; else -1.
 */
int nb_person_value_valid(const char *s);

#endif
