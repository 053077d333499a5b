/* SPDX-License-Identifier: ISC */
/*
 * sig: Standard Webhooks (v1) signatures, verified and produced.
 *
 * A keyring is a flat list of HMAC secrets and Ed25519 public keys, built
 * once from the configuration and then only read, so one keyring may be
 * shared by every thread.  Verification parses at most NB_SIG_MAX_ENTRIES
 * entries of the signature header into a fixed array on the stack, computes
 * each secret's HMAC once with the streaming API (any key length, no copy of
 * the body), and compares in constant time.  Only Ed25519 needs the signed
 * content in one buffer, so that one path allocates.  The work an unsigned
 * request can cause is bounded: HMACs only when a v1 entry is there, and at
 * most NB_SIG_MAX_ED25519_TRIES Ed25519 verifications, each of which hashes
 * the whole body (the public key is part of what Ed25519 hashes, so the
 * body cannot be hashed once for all keys).
 *
 * The checks are ordered so that a sender learns as little as possible:
 * headers present, then well formed, then fresh, then authentic.  Key
 * material never leaves this file except as the caller's own strings, and
 * is wiped with sodium_memzero() before it is freed.  sodium_init() must
 * have run (main does it; nb_sig_keyring_new() calls it again defensively).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "nudgebridge/sig.h"

#define HMAC_LEN crypto_auth_hmacsha256_BYTES
#define ED_LEN	 crypto_sign_BYTES

struct secret {
	unsigned char key[NB_SIG_SECRET_MAX];
	size_t len;
	/*
	 * The HMAC state after the key went in: the two SHA-256 blocks of the
	 * padded key are hashed once here, not once per request.
	 */
	crypto_auth_hmacsha256_state keyed;
};

struct nb_keyring {
	struct secret *secrets;
	size_t nsecrets;
	unsigned char (*pks)[crypto_sign_PUBLICKEYBYTES];
	size_t npks;
	/* Secrets first, then public keys, as nb_sig_keyring_fingerprint(). */
	char (*fps)[NB_SIG_FP_LEN];
};

enum entry_kind {
	ENTRY_SKIP = 0, /* garbled: no version, no payload, bad base64 */
	ENTRY_V1,
	ENTRY_V1A,
	ENTRY_UNKNOWN, /* well formed, unknown version: ignored */
};

struct entry {
	enum entry_kind kind;
	unsigned char sig[ED_LEN];
};

static atomic_uint_fast64_t ed25519_verifications;

struct nb_keyring *
nb_sig_keyring_new(void)
{
	if (sodium_init() == -1)
		return NULL;
	return calloc(1, sizeof(struct nb_keyring));
}

void
nb_sig_keyring_free(struct nb_keyring *k)
{
	if (k == NULL)
		return;
	if (k->secrets != NULL)
		sodium_memzero(k->secrets, k->nsecrets * sizeof(*k->secrets));
	free(k->secrets);
	if (k->pks != NULL)
		sodium_memzero(k->pks, k->npks * sizeof(*k->pks));
	free(k->pks);
	free(k->fps);
	sodium_memzero(k, sizeof(*k));
	free(k);
}

void
nb_sig_fingerprint(const char *key, char out[NB_SIG_FP_LEN])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char h[crypto_hash_sha256_BYTES];
	size_t i;

	crypto_hash_sha256(h, (const unsigned char *)key, strlen(key));
	for (i = 0; i < 4; i++) {
		out[2 * i] = hex[h[i] >> 4];
		out[2 * i + 1] = hex[h[i] & 0xf];
	}
	out[8] = '\0';
}

/*
 * Records the fingerprint of a key just added as number at (the others
 * move up by one).  -1 when out of memory.
 */
static int
fingerprint_insert(struct nb_keyring *k, size_t at, const char *key)
{
	char(*n)[NB_SIG_FP_LEN];
	size_t total = k->nsecrets + k->npks; /* before the new key */

	if ((n = realloc(k->fps, (total + 1) * sizeof(*n))) == NULL)
		return -1;
	memmove(n[at + 1], n[at], (total - at) * sizeof(*n));
	nb_sig_fingerprint(key, n[at]);
	k->fps = n;
	return 0;
}

const char *
nb_sig_keyring_fingerprint(const struct nb_keyring *k, size_t i)
{
	if (k == NULL || i >= k->nsecrets + k->npks)
		return "";
	return k->fps[i];
}

/*
 * Decodes "<prefix><standard base64>" into bin (at most max bytes); the
 * decoded length goes to *len.  -1 on a wrong prefix, bad base64 (padding
 * included) or more than max bytes.
 */
static int
decode_prefixed(const char *s, const char *prefix, unsigned char *bin,
    size_t max, size_t *len)
{
	size_t plen = strlen(prefix);

	if (s == NULL || strncmp(s, prefix, plen) != 0)
		return -1;
	s += plen;
	if (sodium_base642bin(bin, max, s, strlen(s), NULL, len, NULL,
		sodium_base64_VARIANT_ORIGINAL) != 0)
		return -1;
	return 0;
}

/* Decodes a whsec_ secret into sec; -1 unless 24..64 bytes. */
static int
decode_secret(const char *whsec, struct secret *sec)
{
	if (decode_prefixed(
		whsec, "whsec_", sec->key, sizeof(sec->key), &sec->len) == -1 ||
	    sec->len < NB_SIG_SECRET_MIN) {
		sodium_memzero(sec, sizeof(*sec));
		return -1;
	}
	crypto_auth_hmacsha256_init(&sec->keyed, sec->key, sec->len);
	return 0;
}

int
nb_sig_keyring_add_secret(struct nb_keyring *k, const char *whsec)
{
	struct secret sec, *n = NULL;
	int rc = -1;

	if (decode_secret(whsec, &sec) == -1)
		goto out;
	/* Grow by one and wipe the old copy: realloc would leave it behind. */
	if ((n = calloc(k->nsecrets + 1, sizeof(*n))) == NULL ||
	    fingerprint_insert(k, k->nsecrets, whsec) == -1) {
		free(n);
		goto out;
	}
	if (k->nsecrets > 0)
		memcpy(n, k->secrets, k->nsecrets * sizeof(*n));
	n[k->nsecrets] = sec;
	if (k->secrets != NULL)
		sodium_memzero(k->secrets, k->nsecrets * sizeof(*n));
	free(k->secrets);
	k->secrets = n;
	k->nsecrets++;
	rc = 0;
out:
	sodium_memzero(&sec, sizeof(sec));
	return rc;
}

int
nb_sig_keyring_add_public_key(struct nb_keyring *k, const char *whpk)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char(*n)[crypto_sign_PUBLICKEYBYTES];
	size_t len;

	if (decode_prefixed(whpk, "whpk_", pk, sizeof(pk), &len) == -1 ||
	    len != sizeof(pk))
		return -1;
	if ((n = realloc(k->pks, (k->npks + 1) * sizeof(*n))) == NULL)
		return -1;
	k->pks = n;
	if (fingerprint_insert(k, k->nsecrets + k->npks, whpk) == -1)
		return -1;
	memcpy(n[k->npks], pk, sizeof(pk));
	k->npks++;
	return 0;
}

size_t
nb_sig_keyring_count(const struct nb_keyring *k)
{
	if (k == NULL)
		return 0;
	return k->nsecrets + k->npks;
}

/* 0x21..0x7E only, 1..NB_SIG_MAX_ID_LEN bytes. */
static int
id_ok(const char *id)
{
	size_t i;

	for (i = 0; id[i] != '\0'; i++) {
		if (i >= NB_SIG_MAX_ID_LEN)
			return 0;
		if ((unsigned char)id[i] < 0x21 || (unsigned char)id[i] > 0x7e)
			return 0;
	}
	return 1;
}

/* Plain decimal digits that fit an int64: no sign, no spaces. */
static int
timestamp_parse(const char *s, int64_t *out)
{
	const char *p;
	char *end;
	long long v;

	for (p = s; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return -1;
	if (p == s)
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE || *end != '\0')
		return -1;
	*out = (int64_t)v;
	return 0;
}

/*
 * Decodes standard base64, padded or not, into exactly want bytes.  Senders
 * disagree on padding; neither form is ambiguous.  0 or -1.
 */
static int
b64_decode(unsigned char *out, size_t want, const char *b64, size_t len)
{
	size_t got;

	if (sodium_base642bin(out, want, b64, len, NULL, &got, NULL,
		sodium_base64_VARIANT_ORIGINAL) == 0 &&
	    got == want)
		return 0;
	if (sodium_base642bin(out, want, b64, len, NULL, &got, NULL,
		sodium_base64_VARIANT_ORIGINAL_NO_PADDING) == 0 &&
	    got == want)
		return 0;
	return -1;
}

/*
 * Reads up to NB_SIG_MAX_ENTRIES space-separated entries.  Returns how many
 * were well formed: a v1 or v1a entry whose payload decodes to a MAC or
 * signature of the right length, or an entry of an unknown version with a
 * non-empty payload (ignored, but not garbled).  v1/v1a entries are decoded
 * into e[].  Empty tokens (runs of spaces) are not entries.
 */
static size_t
entries_parse(
    const char *hdr, struct entry e[NB_SIG_MAX_ENTRIES], size_t *nentries)
{
	const char *p = hdr, *tok, *comma;
	size_t n = 0, wellformed = 0, toklen, vlen, plen;

	while (n < NB_SIG_MAX_ENTRIES) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		tok = p;
		while (*p != '\0' && *p != ' ')
			p++;
		toklen = (size_t)(p - tok);
		e[n].kind = ENTRY_SKIP;
		comma = memchr(tok, ',', toklen);
		if (comma != NULL) {
			vlen = (size_t)(comma - tok);
			plen = toklen - vlen - 1;
			if (vlen == 2 && memcmp(tok, "v1", 2) == 0) {
				if (b64_decode(e[n].sig, HMAC_LEN, comma + 1,
					plen) == 0)
					e[n].kind = ENTRY_V1;
			} else if (vlen == 3 && memcmp(tok, "v1a", 3) == 0) {
				if (b64_decode(
					e[n].sig, ED_LEN, comma + 1, plen) == 0)
					e[n].kind = ENTRY_V1A;
			} else if (vlen > 0 && plen > 0) {
				e[n].kind = ENTRY_UNKNOWN;
			}
			if (e[n].kind != ENTRY_SKIP)
				wellformed++;
		}
		n++;
	}
	*nentries = n;
	return wellformed;
}

static int
stale(int64_t ts, time_t now, int64_t tolerance_s)
{
	int64_t n = (int64_t)now;
	uint64_t diff;

	if (tolerance_s < 0)
		tolerance_s = 0;
	/* Unsigned difference of ordered values cannot overflow. */
	diff =
	    ts >= n ? (uint64_t)ts - (uint64_t)n : (uint64_t)n - (uint64_t)ts;
	return diff > (uint64_t)tolerance_s;
}

static void
hmac_content(const struct secret *sec, const struct nb_sig_headers *h,
    const unsigned char *body, size_t len, unsigned char mac[HMAC_LEN])
{
	crypto_auth_hmacsha256_state st = sec->keyed;

	crypto_auth_hmacsha256_update(
	    &st, (const unsigned char *)h->id, strlen(h->id));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
	crypto_auth_hmacsha256_update(
	    &st, (const unsigned char *)h->timestamp, strlen(h->timestamp));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
	if (len > 0)
		crypto_auth_hmacsha256_update(&st, body, len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
}

/* "{id}.{timestamp}.{body}" in one malloc'd buffer, or NULL. */
static unsigned char *
content_join(const char *id, const char *ts, const unsigned char *body,
    size_t len, size_t *outlen)
{
	size_t ilen = strlen(id), tlen = strlen(ts), n;
	unsigned char *m;

	if (len > SIZE_MAX - ilen - tlen - 2)
		return NULL;
	n = ilen + 1 + tlen + 1 + len;
	if ((m = malloc(n > 0 ? n : 1)) == NULL)
		return NULL;
	memcpy(m, id, ilen);
	m[ilen] = '.';
	memcpy(m + ilen + 1, ts, tlen);
	m[ilen + 1 + tlen] = '.';
	if (len > 0)
		memcpy(m + ilen + tlen + 2, body, len);
	*outlen = n;
	return m;
}

enum nb_sig_result
nb_sig_verify(const struct nb_keyring *keys, const struct nb_sig_headers *h,
    const unsigned char *body, size_t len, time_t now, int64_t tolerance_s)
{
	return nb_sig_verify_key(
	    keys, h, body, len, now, tolerance_s, NULL, NULL);
}

enum nb_sig_result
nb_sig_verify_key(const struct nb_keyring *keys, const struct nb_sig_headers *h,
    const unsigned char *body, size_t len, time_t now, int64_t tolerance_s,
    size_t *key, int64_t *tsp)
{
	struct entry e[NB_SIG_MAX_ENTRIES];
	unsigned char mac[HMAC_LEN];
	unsigned char *m = NULL;
	enum nb_sig_result r = NB_SIG_MISMATCH;
	size_t n = 0, i, j, mlen = 0, tries = 0, which = 0;
	int64_t ts;
	int any_v1 = 0, any_v1a = 0;

	if (h == NULL || h->id == NULL || h->id[0] == '\0' ||
	    h->timestamp == NULL || h->timestamp[0] == '\0' ||
	    h->signature == NULL || h->signature[0] == '\0')
		return NB_SIG_MISSING;
	if (!id_ok(h->id) || timestamp_parse(h->timestamp, &ts) == -1 ||
	    entries_parse(h->signature, e, &n) == 0)
		return NB_SIG_MALFORMED;
	if (stale(ts, now, tolerance_s))
		return NB_SIG_STALE;
	if (keys == NULL)
		return NB_SIG_MISMATCH;
	if (body == NULL)
		len = 0;
	for (j = 0; j < n; j++) {
		any_v1 |= e[j].kind == ENTRY_V1;
		any_v1a |= e[j].kind == ENTRY_V1A;
	}

	/* Each secret's HMAC hashes the body once, for all v1 entries. */
	for (i = 0; any_v1 && i < keys->nsecrets && r != NB_SIG_OK; i++) {
		hmac_content(&keys->secrets[i], h, body, len, mac);
		for (j = 0; j < n; j++) {
			if (e[j].kind == ENTRY_V1 &&
			    crypto_verify_32(mac, e[j].sig) == 0) {
				r = NB_SIG_OK;
				which = i;
				break;
			}
		}
	}
	sodium_memzero(mac, sizeof(mac));
	if (r == NB_SIG_OK)
		goto out;

	if (!any_v1a || keys->npks == 0)
		goto out;
	if ((m = content_join(h->id, h->timestamp, body, len, &mlen)) == NULL) {
		r = NB_SIG_NOMEM;
		goto out;
	}
	for (j = 0; j < n && r != NB_SIG_OK; j++) {
		if (e[j].kind != ENTRY_V1A)
			continue;
		for (i = 0; i < keys->npks; i++) {
			/* Each try hashes the body: see
			 * NB_SIG_MAX_ED25519_TRIES. */
			if (tries++ == NB_SIG_MAX_ED25519_TRIES)
				goto out;
			atomic_fetch_add_explicit(
			    &ed25519_verifications, 1, memory_order_relaxed);
			if (crypto_sign_verify_detached(
				e[j].sig, m, mlen, keys->pks[i]) == 0) {
				r = NB_SIG_OK;
				which = keys->nsecrets + i;
				break;
			}
		}
	}
out:
	free(m);
	if (r == NB_SIG_OK) {
		if (key != NULL)
			*key = which;
		if (tsp != NULL)
			*tsp = ts;
	}
	return r;
}

uint64_t
nb_sig_ed25519_verifications(void)
{
	return atomic_load_explicit(
	    &ed25519_verifications, memory_order_relaxed);
}

const char *
nb_sig_result_str(enum nb_sig_result r)
{
	switch (r) {
	case NB_SIG_OK:
		return "ok";
	case NB_SIG_MISSING:
		return "signature_missing";
	case NB_SIG_MALFORMED:
		return "signature_malformed";
	case NB_SIG_STALE:
		return "timestamp_out_of_tolerance";
	case NB_SIG_MISMATCH:
		return "signature_mismatch";
	case NB_SIG_NOMEM:
		return "unavailable";
	}
	return "signature_mismatch";
}

/* Writes prefix + base64(bin) into out; -1 if it does not fit. */
static int
encode_prefixed(char *out, size_t outlen, const char *prefix,
    const unsigned char *bin, size_t binlen)
{
	size_t plen = strlen(prefix);
	size_t need = plen +
	    sodium_base64_ENCODED_LEN(binlen, sodium_base64_VARIANT_ORIGINAL);

	if (out == NULL || outlen < need)
		return -1;
	memcpy(out, prefix, plen);
	sodium_bin2base64(out + plen, outlen - plen, bin, binlen,
	    sodium_base64_VARIANT_ORIGINAL);
	return 0;
}

static int
format_ts(char buf[24], int64_t timestamp)
{
	int n = snprintf(buf, 24, "%" PRId64, timestamp);

	return n < 0 || n >= 24 ? -1 : 0;
}

int
nb_sig_sign_hmac(const char *whsec, const char *id, int64_t timestamp,
    const unsigned char *body, size_t len, char *out, size_t outlen)
{
	struct nb_sig_headers h;
	struct secret sec;
	unsigned char mac[HMAC_LEN];
	char ts[24];
	int rc = -1;

	memset(&sec, 0, sizeof(sec));
	if (id == NULL || format_ts(ts, timestamp) == -1)
		goto out;
	if (decode_secret(whsec, &sec) == -1)
		goto out;
	h.id = id;
	h.timestamp = ts;
	h.signature = NULL;
	hmac_content(&sec, &h, body, body == NULL ? 0 : len, mac);
	rc = encode_prefixed(out, outlen, "v1,", mac, sizeof(mac));
out:
	sodium_memzero(&sec, sizeof(sec));
	sodium_memzero(mac, sizeof(mac));
	return rc;
}

int
nb_sig_sign_ed25519(const char *whsk, const char *id, int64_t timestamp,
    const unsigned char *body, size_t len, char *out, size_t outlen)
{
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	unsigned char sig[ED_LEN];
	unsigned char *m = NULL;
	size_t sklen, mlen;
	char ts[24];
	int rc = -1;

	if (sodium_init() == -1 || id == NULL || format_ts(ts, timestamp) == -1)
		goto out;
	if (decode_prefixed(whsk, "whsk_", sk, sizeof(sk), &sklen) == -1 ||
	    sklen != sizeof(sk))
		goto out;
	if ((m = content_join(id, ts, body, body == NULL ? 0 : len, &mlen)) ==
	    NULL)
		goto out;
	if (crypto_sign_detached(sig, NULL, m, mlen, sk) != 0)
		goto out;
	rc = encode_prefixed(out, outlen, "v1a,", sig, sizeof(sig));
out:
	sodium_memzero(sk, sizeof(sk));
	free(m);
	return rc;
}

int
nb_sig_keypair(char *whpk, size_t pklen, char *whsk, size_t sklen)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	int rc = -1;

	if (sodium_init() == -1 || crypto_sign_keypair(pk, sk) != 0)
		goto out;
	if (encode_prefixed(whpk, pklen, "whpk_", pk, sizeof(pk)) == -1 ||
	    encode_prefixed(whsk, sklen, "whsk_", sk, sizeof(sk)) == -1)
		goto out;
	rc = 0;
out:
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

int
nb_sig_new_secret(char *out, size_t outlen)
{
	unsigned char key[32];
	int rc;

	if (sodium_init() == -1)
		return -1;
	randombytes_buf(key, sizeof(key));
	rc = encode_prefixed(out, outlen, "whsec_", key, sizeof(key));
	sodium_memzero(key, sizeof(key));
	return rc;
}
