/* SPDX-License-Identifier: ISC */
/*
 * sig: Standard Webhooks (v1) signatures, verified and produced.
 *
 * The signed content is "{id}.{timestamp}.{body}" over the raw bytes, before
 * any parsing.  "v1," entries are HMAC-SHA256 under any of the keyring's
 * secrets (24..64 bytes, streaming HMAC), "v1a," entries Ed25519 under any
 * of its public keys.  One valid entry among the first NB_SIG_MAX_ENTRIES is
 * enough; unknown versions are ignored.  MACs are compared in constant time
 * and key material is wiped on free.  Functions are reentrant; a keyring is
 * read-only after it is built and may be shared between threads.
 */
#ifndef NB_SIG_H
#define NB_SIG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define NB_SIG_MAX_ENTRIES 16
/*
 * Ed25519 verifications one request may cost, each of which hashes the
 * whole body: entries are tried in order against every public key until
 * this many were tried.  16 lets any sender that signs with up to 4 keys
 * reach a receiver that trusts up to 4 (rotation), and bounds an unsigned
 * 1 MiB request to 16 MiB hashed instead of 16 entries x 32 keys.
 */
#define NB_SIG_MAX_ED25519_TRIES 16
#define NB_SIG_MAX_ID_LEN	 256 /* webhook-id longer than this: malformed */
#define NB_SIG_SECRET_MIN	 24
#define NB_SIG_SECRET_MAX	 64
/* One "v1,<base64 of 32>" or "v1a,<base64 of 64>" entry, plus NUL. */
#define NB_SIG_ENTRY_MAX 100
/* A key's fingerprint: 8 lower-case hex digits and the NUL. */
#define NB_SIG_FP_LEN 9

enum nb_sig_result {
	NB_SIG_OK = 0,
	NB_SIG_MISSING,	  /* no id, timestamp or signature header */
	NB_SIG_MALFORMED, /* bad id or timestamp, or no parseable entry */
	NB_SIG_STALE,	  /* timestamp outside the tolerance window */
	NB_SIG_MISMATCH,  /* well formed, no entry verifies */
	NB_SIG_NOMEM,	  /* out of memory checking a v1a entry: answer 503 */
};

/* The three headers of a request, NULL where absent (borrowed). */
struct nb_sig_headers {
	const char *id;
	const char *timestamp;
	const char *signature;
};

struct nb_keyring;

/* An empty keyring, or NULL on allocation failure. */
struct nb_keyring *nb_sig_keyring_new(void);

/* Wipes and frees all keys.  NULL is ok. */
void nb_sig_keyring_free(struct nb_keyring *);

/* Adds a "whsec_<base64>" secret (24..64 bytes).  0, or -1 if invalid. */
int nb_sig_keyring_add_secret(struct nb_keyring *, const char *whsec);

/* Adds a "whpk_<base64 of 32 bytes>" Ed25519 public key.  0 or -1. */
int nb_sig_keyring_add_public_key(struct nb_keyring *, const char *whpk);

/* Number of secrets plus public keys. */
size_t nb_sig_keyring_count(const struct nb_keyring *);

/*
 * The fingerprint of key i (0 <= i < nb_sig_keyring_count(): the secrets in
 * the order they were added, then the public keys), as
 * nb_sig_fingerprint() made it from the string the key was added as; ""
 * for an i out of range.  Borrowed from the keyring.
 */
const char *nb_sig_keyring_fingerprint(const struct nb_keyring *, size_t i);

/*
 * The fingerprint of a key as written (whsec_... or whpk_...): the first
 * 8 hex digits of the SHA-256 of that string.  Names a key in lists,
 * metrics and the store without revealing it.
 */
void nb_sig_fingerprint(const char *key, char out[NB_SIG_FP_LEN]);

/*
 * Checks one request.  body/len are the raw request body; now and
 * tolerance_s (seconds, either direction) are injected so tests control the
 * clock.  Checks run in the order of enum nb_sig_result:
 *
 *   MISSING    id, timestamp or signature NULL or empty;
 *   MALFORMED  id over NB_SIG_MAX_ID_LEN bytes or with a byte outside
 *              0x21..0x7E; timestamp not plain decimal digits (no sign, no
 *              spaces) fitting an int64; or no well-formed entry among the
 *              first NB_SIG_MAX_ENTRIES space-separated entries, where
 *              well formed is "v1,<base64 of 32 bytes>", "v1a,<base64 of 64
 *              bytes>" (padded or not) or "<other version>,<payload>";
 *   STALE      |now - timestamp| > tolerance_s;
 *   MISMATCH   no v1/v1a entry verifies (garbled entries next to a
 *              well-formed one are skipped; unknown versions ignored).
 *
 * The work is bounded: one HMAC per secret, and only when a v1 entry is
 * there; at most NB_SIG_MAX_ED25519_TRIES Ed25519 verifications (entry by
 * entry, each against every key), past which the request is a MISMATCH.
 * Allocates only to check a v1a entry (Ed25519 needs the signed content in
 * one piece), and returns NB_SIG_NOMEM if that fails: a transient error,
 * never a 401.
 */
enum nb_sig_result nb_sig_verify(const struct nb_keyring *keys,
    const struct nb_sig_headers *h, const unsigned char *body, size_t len,
    time_t now, int64_t tolerance_s);

/*
 * nb_sig_verify(), and on NB_SIG_OK the index of the key that verified
 * (as nb_sig_keyring_fingerprint() numbers them) in *key and the request's
 * timestamp in *ts.  Both untouched otherwise.
 */
enum nb_sig_result nb_sig_verify_key(const struct nb_keyring *keys,
    const struct nb_sig_headers *h, const unsigned char *body, size_t len,
    time_t now, int64_t tolerance_s, size_t *key, int64_t *ts);

/*
 * Ed25519 verifications run by this process so far (all threads), so that
 * tests can count the work a request caused.
 */
uint64_t nb_sig_ed25519_verifications(void);

/*
 * The contract's error code: "ok", "signature_missing",
 * "signature_malformed", "timestamp_out_of_tolerance", "signature_mismatch",
 * "unavailable" (NB_SIG_NOMEM).
 */
const char *nb_sig_result_str(enum nb_sig_result);

/*
 * Writes "v1,<base64>" for the HMAC of id/timestamp/body under the whsec_
 * secret into out (outlen >= NB_SIG_ENTRY_MAX).  0, or -1 on a bad secret.
 */
int nb_sig_sign_hmac(const char *whsec, const char *id, int64_t timestamp,
    const unsigned char *body, size_t len, char *out, size_t outlen);

/*
 * Writes "v1a,<base64>" signed with the "whsk_<base64 of 64-byte libsodium
 * secret key>" key into out.  0 or -1.
 */
int nb_sig_sign_ed25519(const char *whsk, const char *id, int64_t timestamp,
    const unsigned char *body, size_t len, char *out, size_t outlen);

/*
 * Makes a new Ed25519 key pair as "whpk_..." and "whsk_..." strings
 * (each buffer >= 100 bytes).  0 or -1.
 */
int nb_sig_keypair(char *whpk, size_t pklen, char *whsk, size_t sklen);

/* Makes a new random 32-byte "whsec_..." secret (outlen >= 64).  0 or -1. */
int nb_sig_new_secret(char *out, size_t outlen);

#endif
