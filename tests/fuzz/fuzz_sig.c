/* SPDX-License-Identifier: ISC */
/*
 * Fuzz target for sig: arbitrary signature headers, timestamps and bodies.
 *
 * The input is "id\ntimestamp\nsignature\nbody" (missing lines are absent
 * headers; a NUL ends a header early, as it would in evhttp).  It is
 * checked against a fixed keyring (the published HMAC secret plus an
 * Ed25519 key from a fixed seed) at the vector's clock.  Besides not
 * crashing, one property is checked: when the signature line is "@" ("@h",
 * "@e"), the target signs id/timestamp/body itself with both keys (only the
 * HMAC secret, only the Ed25519 key), and a request that is not missing,
 * malformed or stale must then verify.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "nudgebridge/sig.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define NOW    1614265330

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct nb_keyring *keys;
static char whsk[100];

static void
setup(void)
{
	unsigned char seed[crypto_sign_SEEDBYTES];
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	char whpk[100];

	if (sodium_init() < 0 || (keys = nb_sig_keyring_new()) == NULL)
		abort();
	memset(seed, 7, sizeof(seed));
	crypto_sign_seed_keypair(pk, sk, seed);
	memcpy(whpk, "whpk_", 5);
	sodium_bin2base64(whpk + 5, sizeof(whpk) - 5, pk, sizeof(pk),
	    sodium_base64_VARIANT_ORIGINAL);
	memcpy(whsk, "whsk_", 5);
	sodium_bin2base64(whsk + 5, sizeof(whsk) - 5, sk, sizeof(sk),
	    sodium_base64_VARIANT_ORIGINAL);
	if (nb_sig_keyring_add_secret(keys, SECRET) == -1 ||
	    nb_sig_keyring_add_public_key(keys, whpk) == -1)
		abort();
}

/* Splits off one line as a malloc'd C string; NULL at the end of input. */
static char *
take_line(const uint8_t **p, size_t *left)
{
	const uint8_t *nl;
	size_t n;
	char *s;

	if (*left == 0)
		return NULL;
	nl = memchr(*p, '\n', *left);
	n = nl != NULL ? (size_t)(nl - *p) : *left;
	if ((s = malloc(n + 1)) == NULL)
		abort();
	memcpy(s, *p, n);
	s[n] = '\0';
	*p += n + (nl != NULL);
	*left -= n + (nl != NULL);
	return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nb_sig_headers h;
	enum nb_sig_result r;
	char *id, *ts, *sig, *made = NULL;
	const uint8_t *p = data;
	size_t left = size;
	char canon[24];
	int64_t t;
	char *end;

	if (keys == NULL)
		setup();
	id = take_line(&p, &left);
	ts = take_line(&p, &left);
	sig = take_line(&p, &left);
	h.id = id;
	h.timestamp = ts;
	h.signature = sig;

	if (id != NULL && ts != NULL && sig != NULL && sig[0] == '@' &&
	    (sig[1] == '\0' || strcmp(sig, "@h") == 0 ||
		strcmp(sig, "@e") == 0)) {
		t = strtoll(ts, &end, 10);
		if ((made = calloc(1, 2 * NB_SIG_ENTRY_MAX + 1)) == NULL)
			abort();
		/* Sign the number as the signer would print it. */
		if (sig[1] != 'e' &&
		    nb_sig_sign_hmac(
			SECRET, id, t, p, left, made, NB_SIG_ENTRY_MAX) == -1)
			abort();
		if (sig[1] == '\0')
			made[strlen(made)] = ' ';
		if (sig[1] != 'h' &&
		    nb_sig_sign_ed25519(whsk, id, t, p, left,
			made + strlen(made), NB_SIG_ENTRY_MAX) == -1)
			abort();
		h.signature = made;
		r = nb_sig_verify(keys, &h, p, left, NOW, 300);
		/* Only a canonical timestamp is what was signed. */
		snprintf(canon, sizeof(canon), "%" PRId64, t);
		if (strcmp(canon, ts) == 0 && r != NB_SIG_OK &&
		    r != NB_SIG_MISSING && r != NB_SIG_MALFORMED &&
		    r != NB_SIG_STALE)
			abort();
	} else {
		r = nb_sig_verify(keys, &h, p, left, NOW, 300);
	}
	if (nb_sig_result_str(r) == NULL)
		abort();
	free(made);
	free(sig);
	free(ts);
	free(id);
	return 0;
}
