/* SPDX-License-Identifier: ISC */
/*
 * person: the index keys, the match and the audit digest of a person.
 *
 * Keys are 32 bits of SipHash-2-4 (libsodium's crypto_shorthash, about
 * 200 instructions for an address) under a fixed key, one key per kind, so an
 * address and a uid that happen to be the same string never share a key.
 * The fixed key makes a key no secret: it is an index, not a protection
 * (the payload next to it holds the address anyway, until both go).  An
 * address is lower-cased (ASCII only, as the sha256 anonymousId is) into a
 * stack buffer; a longer one than the buffer is hashed with BLAKE2b in
 * chunks instead, a different but equally fixed function of its bytes.
 * The match and the keys of stored text read it with jansson and apply
 * the event table's rule, so they agree with the parser on every event.
 */
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "nudgebridge/person.h"
#include "nudgebridge/schema.h"
#include "nudgebridge/utf8.h"

/* Addresses up to this many bytes are hashed from one stack copy. */
#define PERSON_SHORT 256

static const unsigned char key_email[crypto_shorthash_KEYBYTES] =
    "nb-person-email";
static const unsigned char key_uid[crypto_shorthash_KEYBYTES] =
    "nb-person-uid..";

static unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/*
 * The first 4 bytes of a hash as a non-zero signed 32-bit key.  32 bits
 * rather than 64: the index is a hint that every hit is checked against,
 * and half the width makes the rows every claim and mark rewrites, and
 * the indexes, smaller; at ten million events a search meets one
 * stranger's row in about 400 (and drops it).
 */
static int64_t
as_key(const unsigned char h[4])
{
	uint32_t v = (uint32_t)h[0] | (uint32_t)h[1] << 8 |
	    (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;

	return v == 0 ? 1 : (int64_t)(int32_t)v;
}

int64_t
nb_person_key_email(const char *email, size_t len)
{
	crypto_generichash_state st;
	unsigned char buf[PERSON_SHORT], h[crypto_generichash_BYTES_MIN];
	size_t i, n, off;

	if (len <= sizeof(buf)) {
		for (i = 0; i < len; i++)
			buf[i] = lower((unsigned char)email[i]);
		crypto_shorthash(h, buf, len, key_email);
		return as_key(h);
	}
	crypto_generichash_init(&st, key_email, sizeof(key_email), sizeof(h));
	for (off = 0; off < len; off += n) {
		n = len - off < sizeof(buf) ? len - off : sizeof(buf);
		for (i = 0; i < n; i++)
			buf[i] = lower((unsigned char)email[off + i]);
		crypto_generichash_update(&st, buf, n);
	}
	crypto_generichash_final(&st, h, sizeof(h));
	return as_key(h);
}

int64_t
nb_person_key_uid(const char *uid, size_t len)
{
	unsigned char h[crypto_shorthash_BYTES];

	crypto_shorthash(h, (const unsigned char *)uid, len, key_uid);
	return as_key(h);
}

/*
 * The string of the subscriber's member that plays role in the event
 * object ev, when it follows its rule; else NULL.
 */
static const json_t *
member_of(const json_t *ev, enum nb_schema_role role)
{
	const struct nb_schema_field *f;
	const json_t *sub, *v;
	int row;

	if ((row = nb_schema_row(role)) < 0)
		return NULL;
	f = &nb_schema_fields[row];
	if ((sub = json_object_get(ev, f->parent)) == NULL ||
	    !json_is_object(sub) ||
	    (v = json_object_get(sub, f->key)) == NULL || !json_is_string(v) ||
	    !nb_schema_check(f, json_string_value(v), json_string_length(v)))
		return NULL;
	return v;
}

static json_t *
load(const char *raw, size_t len)
{
	json_t *ev;

	if (raw == NULL)
		return NULL;
	ev = json_loadb(raw, len, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL);
	if (ev != NULL && !json_is_object(ev)) {
		json_decref(ev);
		ev = NULL;
	}
	return ev;
}

void
nb_person_keys_of(
    const char *raw, size_t len, int64_t *email_key, int64_t *uid_key)
{
	const json_t *v;
	json_t *ev;

	*email_key = *uid_key = 0;
	if ((ev = load(raw, len)) == NULL)
		return;
	if ((v = member_of(ev, NB_SCHEMA_ANONYMOUS_ID)) != NULL)
		*email_key = nb_person_key_email(
		    json_string_value(v), json_string_length(v));
	if ((v = member_of(ev, NB_SCHEMA_USER_ID)) != NULL)
		*uid_key = nb_person_key_uid(
		    json_string_value(v), json_string_length(v));
	json_decref(ev);
}

/* 1 when a (len bytes) equals the C string b ignoring ASCII case. */
static int
same_address(const char *a, size_t len, const char *b)
{
	size_t i;

	if (strlen(b) != len)
		return 0;
	for (i = 0; i < len; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

int
nb_person_match(const struct nb_person *p, const char *raw, size_t len)
{
	const json_t *v;
	json_t *ev;
	int hit = 0;

	if ((ev = load(raw, len)) == NULL)
		return 0;
	if (p->email != NULL &&
	    (v = member_of(ev, NB_SCHEMA_ANONYMOUS_ID)) != NULL)
		hit = same_address(
		    json_string_value(v), json_string_length(v), p->email);
	else if (p->uid != NULL &&
	    (v = member_of(ev, NB_SCHEMA_USER_ID)) != NULL)
		hit = json_string_length(v) == strlen(p->uid) &&
		    memcmp(json_string_value(v), p->uid, strlen(p->uid)) == 0;
	json_decref(ev);
	return hit;
}

void
nb_person_digest(const struct nb_person *p, char out[NB_PERSON_DIGEST_LEN])
{
	crypto_hash_sha256_state st;
	unsigned char h[crypto_hash_sha256_BYTES], buf[PERSON_SHORT];
	const char *s = p->email != NULL ? p->email : p->uid;
	size_t len = s != NULL ? strlen(s) : 0, off, n, i;

	crypto_hash_sha256_init(&st);
	for (off = 0; off < len; off += n) {
		n = len - off < sizeof(buf) ? len - off : sizeof(buf);
		for (i = 0; i < n; i++)
			buf[i] = p->email != NULL
			    ? lower((unsigned char)s[off + i])
			    : (unsigned char)s[off + i];
		crypto_hash_sha256_update(&st, buf, n);
	}
	crypto_hash_sha256_final(&st, h);
	sodium_bin2hex(out, NB_PERSON_DIGEST_LEN, h, sizeof(h));
}

int
nb_person_value_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s, *end;
	size_t n;

	if (s == NULL || *s == '\0')
		return -1;
	end = p + strlen(s);
	while (p < end) {
		if (*p < 0x20 || *p == 0x7f)
			return -1;
		if ((n = nb_utf8_len(p, end)) == 0)
			return -1;
		p += n;
	}
	return 0;
}
