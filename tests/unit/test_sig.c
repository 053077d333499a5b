/* SPDX-License-Identifier: ISC */
/*
 * test_sig: Standard Webhooks verification and signing.
 *
 * The published vector must verify; around it, tables of header variants
 * pin down the order of the checks (missing, malformed, stale, mismatch),
 * the 16-entry limit, secret lengths and key rotation.  Decisions pinned
 * here: a timestamp must be plain digits, so "", "-", "-5", "+5", " 5",
 * "5 " and "12a" are malformed (the empty string is missing, like an absent
 * header); a signature header with no "version,payload" entry with both
 * parts non-empty among its first 16 is malformed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "nudgebridge/sig.h"

#define VEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define VEC_ID	   "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define VEC_TS	   "1614265330"
#define VEC_NOW	   1614265330
#define VEC_BODY   "{\"test\": 2432232314}"
#define VEC_SIG	   "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
/* A well-formed v1 entry that matches nothing. */
#define BAD_V1 "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

static int
setup(void **state)
{
	(void)state;
	return sodium_init() == -1 ? -1 : 0;
}

static struct nb_keyring *
vector_keyring(void)
{
	struct nb_keyring *k = nb_sig_keyring_new();

	assert_non_null(k);
	assert_int_equal(nb_sig_keyring_add_secret(k, VEC_SECRET), 0);
	return k;
}

static enum nb_sig_result
verify(const struct nb_keyring *k, const char *id, const char *ts,
    const char *sig, const char *body, time_t now)
{
	struct nb_sig_headers h = {id, ts, sig};

	return nb_sig_verify(k, &h, (const unsigned char *)body,
	    body == NULL ? 0 : strlen(body), now, 300);
}

static void
test_vector(void **state)
{
	struct nb_keyring *k = vector_keyring();
	char out[NB_SIG_ENTRY_MAX];

	(void)state;
	assert_int_equal(
	    verify(k, VEC_ID, VEC_TS, VEC_SIG, VEC_BODY, VEC_NOW), NB_SIG_OK);
	/* One flipped body byte, id byte or timestamp digit: mismatch. */
	assert_int_equal(verify(k, VEC_ID, VEC_TS, VEC_SIG,
			     "{\"test\": 2432232315}", VEC_NOW),
	    NB_SIG_MISMATCH);
	assert_int_equal(verify(k, "msg_p5jXN8AQM9LWM0D4loKWxJeK", VEC_TS,
			     VEC_SIG, VEC_BODY, VEC_NOW),
	    NB_SIG_MISMATCH);
	assert_int_equal(
	    verify(k, VEC_ID, "1614265331", VEC_SIG, VEC_BODY, VEC_NOW),
	    NB_SIG_MISMATCH);
	/* Signing reproduces the published signature. */
	assert_int_equal(nb_sig_sign_hmac(VEC_SECRET, VEC_ID, 1614265330,
			     (const unsigned char *)VEC_BODY, strlen(VEC_BODY),
			     out, sizeof(out)),
	    0);
	assert_string_equal(out, VEC_SIG);
	assert_int_equal(nb_sig_keyring_count(k), 1);
	nb_sig_keyring_free(k);
}

struct hdr_case {
	const char *name;
	const char *id;
	const char *ts;
	const char *sig;
	time_t now;
	enum nb_sig_result want;
};

static char long_id[NB_SIG_MAX_ID_LEN + 2];
static char max_id[NB_SIG_MAX_ID_LEN + 1];

static void
test_header_table(void **state)
{
	const struct hdr_case cases[] = {
	    {"vector", VEC_ID, VEC_TS, VEC_SIG, VEC_NOW, NB_SIG_OK},
	    {"no id", NULL, VEC_TS, VEC_SIG, VEC_NOW, NB_SIG_MISSING},
	    {"no ts", VEC_ID, NULL, VEC_SIG, VEC_NOW, NB_SIG_MISSING},
	    {"no sig", VEC_ID, VEC_TS, NULL, VEC_NOW, NB_SIG_MISSING},
	    {"empty id", "", VEC_TS, VEC_SIG, VEC_NOW, NB_SIG_MISSING},
	    {"empty ts", VEC_ID, "", VEC_SIG, VEC_NOW, NB_SIG_MISSING},
	    {"empty sig", VEC_ID, VEC_TS, "", VEC_NOW, NB_SIG_MISSING},
	    /* Missing wins over malformed. */
	    {"missing+bad ts", NULL, "12a", "garbage", VEC_NOW, NB_SIG_MISSING},
	    {"ts 12a", VEC_ID, "12a", VEC_SIG, VEC_NOW, NB_SIG_MALFORMED},
	    {"ts -", VEC_ID, "-", VEC_SIG, VEC_NOW, NB_SIG_MALFORMED},
	    {"ts negative", VEC_ID, "-1614265330", VEC_SIG, VEC_NOW,
		NB_SIG_MALFORMED},
	    {"ts plus", VEC_ID, "+1614265330", VEC_SIG, VEC_NOW,
		NB_SIG_MALFORMED},
	    {"ts space", VEC_ID, " 1614265330", VEC_SIG, VEC_NOW,
		NB_SIG_MALFORMED},
	    {"ts trailing", VEC_ID, "1614265330 ", VEC_SIG, VEC_NOW,
		NB_SIG_MALFORMED},
	    {"ts float", VEC_ID, "1614265330.0", VEC_SIG, VEC_NOW,
		NB_SIG_MALFORMED},
	    {"ts huge", VEC_ID, "99999999999999999999", VEC_SIG, VEC_NOW,
		NB_SIG_MALFORMED},
	    /* INT64_MAX fits: well formed but stale, without overflow. */
	    {"ts int64 max", VEC_ID, "9223372036854775807", VEC_SIG, VEC_NOW,
		NB_SIG_STALE},
	    {"ts int64 max+1", VEC_ID, "9223372036854775808", VEC_SIG, VEC_NOW,
		NB_SIG_MALFORMED},
	    {"ts zero", VEC_ID, "0", VEC_SIG, VEC_NOW, NB_SIG_STALE},
	    {"id space", "msg 1", VEC_TS, VEC_SIG, VEC_NOW, NB_SIG_MALFORMED},
	    {"id ctl", "msg\x01", VEC_TS, VEC_SIG, VEC_NOW, NB_SIG_MALFORMED},
	    {"id del", "msg\x7f", VEC_TS, VEC_SIG, VEC_NOW, NB_SIG_MALFORMED},
	    {"id utf8", "msg\xc3\xa9", VEC_TS, VEC_SIG, VEC_NOW,
		NB_SIG_MALFORMED},
	    {"id too long", long_id, VEC_TS, VEC_SIG, VEC_NOW,
		NB_SIG_MALFORMED},
	    {"id max", max_id, VEC_TS, VEC_SIG, VEC_NOW, NB_SIG_MISMATCH},
	    {"garbage sig", VEC_ID, VEC_TS, "garbage", VEC_NOW,
		NB_SIG_MALFORMED},
	    {"spaces sig", VEC_ID, VEC_TS, "   ", VEC_NOW, NB_SIG_MALFORMED},
	    {"comma only", VEC_ID, VEC_TS, ",", VEC_NOW, NB_SIG_MALFORMED},
	    {"no payload", VEC_ID, VEC_TS, "v1,", VEC_NOW, NB_SIG_MALFORMED},
	    {"no version", VEC_ID, VEC_TS, ",abc", VEC_NOW, NB_SIG_MALFORMED},
	    /* Malformed wins over stale. */
	    {"garbage+stale", VEC_ID, VEC_TS, "garbage", VEC_NOW + 10000,
		NB_SIG_MALFORMED},
	    {"unknown only", VEC_ID, VEC_TS, "v2,xxx", VEC_NOW,
		NB_SIG_MISMATCH},
	    {"unknown+valid", VEC_ID, VEC_TS, "v2,xxx " VEC_SIG, VEC_NOW,
		NB_SIG_OK},
	    {"garbage+valid", VEC_ID, VEC_TS, "garbage " VEC_SIG, VEC_NOW,
		NB_SIG_OK},
	    {"valid+garbage", VEC_ID, VEC_TS, VEC_SIG " garbage", VEC_NOW,
		NB_SIG_OK},
	    {"extra spaces", VEC_ID, VEC_TS, "  " BAD_V1 "   " VEC_SIG "  ",
		VEC_NOW, NB_SIG_OK},
	    {"bad b64 skipped", VEC_ID, VEC_TS, "v1,!!!! " VEC_SIG, VEC_NOW,
		NB_SIG_OK},
	    /* A v1/v1a entry that does not decode is garbled. */
	    {"bad b64 only", VEC_ID, VEC_TS, "v1,!!!!", VEC_NOW,
		NB_SIG_MALFORMED},
	    {"short mac", VEC_ID, VEC_TS, "v1,AAAA", VEC_NOW, NB_SIG_MALFORMED},
	    {"unpadded mac", VEC_ID, VEC_TS,
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE", VEC_NOW,
		NB_SIG_OK},
	    {"v1 as v1a", VEC_ID, VEC_TS,
		"v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", VEC_NOW,
		NB_SIG_MALFORMED},
	    {"bad b64+unknown", VEC_ID, VEC_TS, "v1,!!!! v2,xxx", VEC_NOW,
		NB_SIG_MISMATCH},
	    {"V1 upper", VEC_ID, VEC_TS,
		"V1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", VEC_NOW,
		NB_SIG_MISMATCH},
	    {"mismatch", VEC_ID, VEC_TS, BAD_V1, VEC_NOW, NB_SIG_MISMATCH},
	    {"stale past", VEC_ID, VEC_TS, VEC_SIG, VEC_NOW + 301,
		NB_SIG_STALE},
	    {"edge past", VEC_ID, VEC_TS, VEC_SIG, VEC_NOW + 300, NB_SIG_OK},
	    {"stale future", VEC_ID, VEC_TS, VEC_SIG, VEC_NOW - 301,
		NB_SIG_STALE},
	    {"edge future", VEC_ID, VEC_TS, VEC_SIG, VEC_NOW - 300, NB_SIG_OK},
	    /* Stale wins over mismatch. */
	    {"stale+mismatch", VEC_ID, VEC_TS, BAD_V1, VEC_NOW + 301,
		NB_SIG_STALE},
	};
	struct nb_keyring *k = vector_keyring();
	size_t i;

	(void)state;
	memset(long_id, 'a', sizeof(long_id) - 1);
	memset(max_id, 'a', sizeof(max_id) - 1);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum nb_sig_result r = verify(k, cases[i].id, cases[i].ts,
		    cases[i].sig, VEC_BODY, cases[i].now);

		if (r != cases[i].want)
			fail_msg("%s: got %s, want %s", cases[i].name,
			    nb_sig_result_str(r),
			    nb_sig_result_str(cases[i].want));
	}
	nb_sig_keyring_free(k);
}

static void
test_null_headers(void **state)
{
	struct nb_keyring *k = vector_keyring();

	(void)state;
	assert_int_equal(
	    nb_sig_verify(k, NULL, NULL, 0, VEC_NOW, 300), NB_SIG_MISSING);
	/* No keys at all: a well-formed request can only mismatch. */
	assert_int_equal(
	    verify(NULL, VEC_ID, VEC_TS, VEC_SIG, VEC_BODY, VEC_NOW),
	    NB_SIG_MISMATCH);
	nb_sig_keyring_free(k);
}

/* Builds "e e e ... last" with n-1 copies of e. */
static char *
repeat_entries(const char *e, size_t n, const char *last)
{
	size_t elen = strlen(e), llen = strlen(last), i;
	char *s = malloc((elen + 1) * n + llen + 1), *p;

	assert_non_null(s);
	p = s;
	for (i = 0; i + 1 < n; i++) {
		memcpy(p, e, elen);
		p += elen;
		*p++ = ' ';
	}
	memcpy(p, last, llen + 1);
	return s;
}

static void
test_entry_limit(void **state)
{
	struct nb_keyring *k = vector_keyring();
	char *s;

	(void)state;
	s = repeat_entries(BAD_V1, NB_SIG_MAX_ENTRIES, VEC_SIG);
	assert_int_equal(
	    verify(k, VEC_ID, VEC_TS, s, VEC_BODY, VEC_NOW), NB_SIG_OK);
	free(s);
	s = repeat_entries(BAD_V1, NB_SIG_MAX_ENTRIES + 1, VEC_SIG);
	assert_int_equal(
	    verify(k, VEC_ID, VEC_TS, s, VEC_BODY, VEC_NOW), NB_SIG_MISMATCH);
	free(s);
	/* 16 garbage entries hide a valid 17th: nothing well formed. */
	s = repeat_entries("garbage", NB_SIG_MAX_ENTRIES + 1, VEC_SIG);
	assert_int_equal(
	    verify(k, VEC_ID, VEC_TS, s, VEC_BODY, VEC_NOW), NB_SIG_MALFORMED);
	free(s);
	/* 10,000 entries: bounded work, still a plain mismatch. */
	s = repeat_entries(BAD_V1, 10000, VEC_SIG);
	assert_int_equal(
	    verify(k, VEC_ID, VEC_TS, s, VEC_BODY, VEC_NOW), NB_SIG_MISMATCH);
	free(s);
	nb_sig_keyring_free(k);
}

/* Makes "whsec_" + base64 of n bytes of value 0x5a. */
static void
make_secret(char *out, size_t outlen, size_t n)
{
	unsigned char key[80];

	assert_true(n <= sizeof(key));
	memset(key, 0x5a, n);
	assert_true(outlen > 6);
	memcpy(out, "whsec_", 6);
	sodium_bin2base64(
	    out + 6, outlen - 6, key, n, sodium_base64_VARIANT_ORIGINAL);
}

static void
test_secret_lengths(void **state)
{
	struct {
		size_t n;
		int rc;
	} cases[] = {{23, -1}, {24, 0}, {32, 0}, {64, 0}, {65, -1}, {1, -1}};
	char secret[160], sig[NB_SIG_ENTRY_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct nb_keyring *k = nb_sig_keyring_new();
		int rc, srk;

		assert_non_null(k);
		make_secret(secret, sizeof(secret), cases[i].n);
		rc = nb_sig_keyring_add_secret(k, secret);
		if (rc != cases[i].rc)
			fail_msg("%zu-byte secret: rc %d", cases[i].n, rc);
		srk = nb_sig_sign_hmac(secret, VEC_ID, VEC_NOW,
		    (const unsigned char *)VEC_BODY, strlen(VEC_BODY), sig,
		    sizeof(sig));
		assert_int_equal(srk, cases[i].rc);
		if (rc == 0)
			assert_int_equal(
			    verify(k, VEC_ID, VEC_TS, sig, VEC_BODY, VEC_NOW),
			    NB_SIG_OK);
		assert_int_equal(nb_sig_keyring_count(k), rc == 0 ? 1 : 0);
		nb_sig_keyring_free(k);
	}
}

static void
test_bad_secrets(void **state)
{
	const char *bad[] = {
	    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",	     /* no prefix */
	    "whsec_",				     /* empty */
	    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", /* bad length */
	    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa!w",
	    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ",
	    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
	    "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	    "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	};
	char sig[NB_SIG_ENTRY_MAX];
	struct nb_keyring *k = nb_sig_keyring_new();
	size_t i;

	(void)state;
	assert_non_null(k);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(nb_sig_keyring_add_secret(k, bad[i]), -1);
		assert_int_equal(nb_sig_keyring_add_public_key(k, bad[i]), -1);
	}
	assert_int_equal(nb_sig_keyring_add_secret(k, NULL), -1);
	assert_int_equal(nb_sig_keyring_count(k), 0);
	/* A good secret but no room for the entry. */
	assert_int_equal(
	    nb_sig_sign_hmac(VEC_SECRET, VEC_ID, VEC_NOW,
		(const unsigned char *)VEC_BODY, strlen(VEC_BODY), sig, 44),
	    -1);
	nb_sig_keyring_free(k);
	nb_sig_keyring_free(NULL);
}

static void
test_rotation(void **state)
{
	char s1[NB_SIG_ENTRY_MAX], s2[NB_SIG_ENTRY_MAX], s3[NB_SIG_ENTRY_MAX];
	char sig1[NB_SIG_ENTRY_MAX], sig2[NB_SIG_ENTRY_MAX],
	    sig3[NB_SIG_ENTRY_MAX], both[4 * NB_SIG_ENTRY_MAX];
	const unsigned char *b = (const unsigned char *)VEC_BODY;
	size_t blen = strlen(VEC_BODY);
	struct nb_keyring *k = nb_sig_keyring_new();

	(void)state;
	assert_non_null(k);
	assert_int_equal(nb_sig_new_secret(s1, sizeof(s1)), 0);
	assert_int_equal(nb_sig_new_secret(s2, sizeof(s2)), 0);
	assert_int_equal(nb_sig_new_secret(s3, sizeof(s3)), 0);
	assert_string_not_equal(s1, s2);
	assert_int_equal(strncmp(s1, "whsec_", 6), 0);
	assert_true(strlen(s1) < 64);
	assert_int_equal(nb_sig_keyring_add_secret(k, s1), 0);
	assert_int_equal(nb_sig_keyring_add_secret(k, s2), 0);
	assert_int_equal(nb_sig_keyring_count(k), 2);
	assert_int_equal(
	    nb_sig_sign_hmac(s1, VEC_ID, VEC_NOW, b, blen, sig1, sizeof(sig1)),
	    0);
	assert_int_equal(
	    nb_sig_sign_hmac(s2, VEC_ID, VEC_NOW, b, blen, sig2, sizeof(sig2)),
	    0);
	assert_int_equal(
	    nb_sig_sign_hmac(s3, VEC_ID, VEC_NOW, b, blen, sig3, sizeof(sig3)),
	    0);
	assert_int_equal(
	    verify(k, VEC_ID, VEC_TS, sig1, VEC_BODY, VEC_NOW), NB_SIG_OK);
	assert_int_equal(
	    verify(k, VEC_ID, VEC_TS, sig2, VEC_BODY, VEC_NOW), NB_SIG_OK);
	assert_int_equal(verify(k, VEC_ID, VEC_TS, sig3, VEC_BODY, VEC_NOW),
	    NB_SIG_MISMATCH);
	/* The sender signs with the old and new secret at once. */
	snprintf(both, sizeof(both), "%s %s", sig3, sig2);
	assert_int_equal(
	    verify(k, VEC_ID, VEC_TS, both, VEC_BODY, VEC_NOW), NB_SIG_OK);
	nb_sig_keyring_free(k);
}

static void
test_ed25519(void **state)
{
	char pk[100], sk[100], pk2[100], sk2[100];
	char sig[NB_SIG_ENTRY_MAX], sig2[NB_SIG_ENTRY_MAX],
	    both[4 * NB_SIG_ENTRY_MAX];
	const unsigned char *b = (const unsigned char *)VEC_BODY;
	size_t blen = strlen(VEC_BODY);
	struct nb_keyring *k = nb_sig_keyring_new(), *k2 = nb_sig_keyring_new();

	(void)state;
	assert_non_null(k);
	assert_non_null(k2);
	assert_int_equal(nb_sig_keypair(pk, sizeof(pk), sk, sizeof(sk)), 0);
	assert_int_equal(nb_sig_keypair(pk2, sizeof(pk2), sk2, sizeof(sk2)), 0);
	assert_int_equal(strncmp(pk, "whpk_", 5), 0);
	assert_int_equal(strncmp(sk, "whsk_", 5), 0);
	assert_int_equal(nb_sig_keyring_add_public_key(k, pk), 0);
	assert_int_equal(nb_sig_keyring_add_secret(k, VEC_SECRET), 0);
	assert_int_equal(nb_sig_keyring_count(k), 2);
	/* A secret key is not a public key. */
	assert_int_equal(nb_sig_keyring_add_public_key(k, sk), -1);

	assert_int_equal(
	    nb_sig_sign_ed25519(sk, VEC_ID, VEC_NOW, b, blen, sig, sizeof(sig)),
	    0);
	assert_int_equal(strncmp(sig, "v1a,", 4), 0);
	assert_int_equal(
	    verify(k, VEC_ID, VEC_TS, sig, VEC_BODY, VEC_NOW), NB_SIG_OK);
	/* Tampered body, wrong timestamp: mismatch. */
	assert_int_equal(
	    verify(k, VEC_ID, VEC_TS, sig, "{\"test\": 1}", VEC_NOW),
	    NB_SIG_MISMATCH);
	assert_int_equal(
	    verify(k, VEC_ID, "1614265331", sig, VEC_BODY, VEC_NOW),
	    NB_SIG_MISMATCH);
	/* Signed by a key the keyring does not trust. */
	assert_int_equal(nb_sig_sign_ed25519(
			     sk2, VEC_ID, VEC_NOW, b, blen, sig2, sizeof(sig2)),
	    0);
	assert_int_equal(verify(k, VEC_ID, VEC_TS, sig2, VEC_BODY, VEC_NOW),
	    NB_SIG_MISMATCH);
	/* Mixed header: v1 mismatch, unknown v1a key, trusted v1a key. */
	snprintf(both, sizeof(both), BAD_V1 " %s %s", sig2, sig);
	assert_int_equal(
	    verify(k, VEC_ID, VEC_TS, both, VEC_BODY, VEC_NOW), NB_SIG_OK);
	/* A keyring with only the other key. */
	assert_int_equal(nb_sig_keyring_add_public_key(k2, pk2), 0);
	assert_int_equal(verify(k2, VEC_ID, VEC_TS, sig, VEC_BODY, VEC_NOW),
	    NB_SIG_MISMATCH);
	assert_int_equal(
	    verify(k2, VEC_ID, VEC_TS, sig2, VEC_BODY, VEC_NOW), NB_SIG_OK);
	/* Both HMAC and Ed25519 entries together. */
	snprintf(both, sizeof(both), "%s %s", sig, VEC_SIG);
	assert_int_equal(verify(k2, VEC_ID, VEC_TS, both, VEC_BODY, VEC_NOW),
	    NB_SIG_MISMATCH);
	/* Bad signing keys. */
	assert_int_equal(
	    nb_sig_sign_ed25519(pk, VEC_ID, VEC_NOW, b, blen, sig, sizeof(sig)),
	    -1);
	assert_int_equal(nb_sig_sign_ed25519("whsk_AAAA", VEC_ID, VEC_NOW, b,
			     blen, sig, sizeof(sig)),
	    -1);
	assert_int_equal(nb_sig_keypair(pk, 10, sk, sizeof(sk)), -1);
	nb_sig_keyring_free(k);
	nb_sig_keyring_free(k2);
}

/*
 * An unsigned request with 16 well-formed v1a entries against 32 public
 * keys (the most a source may have) costs NB_SIG_MAX_ED25519_TRIES
 * verifications of its 1 MiB body, not 16 x 32; a rotation with 4 keys
 * signed and 4 trusted still verifies in the worst order.
 */
static void
test_ed25519_work(void **state)
{
	enum { NKEYS = 32, NENTRIES = 16, BODY = 1 << 20 };
	char pk[100], sk[100], trusted_sk[4][100], sig[NB_SIG_ENTRY_MAX];
	char *hdr = malloc(NENTRIES * NB_SIG_ENTRY_MAX);
	unsigned char *body = malloc(BODY);
	struct nb_keyring *k = nb_sig_keyring_new(), *k4 = nb_sig_keyring_new();
	struct nb_sig_headers h = {VEC_ID, VEC_TS, NULL};
	uint64_t before;
	size_t off = 0;
	int i;

	(void)state;
	assert_non_null(hdr);
	assert_non_null(body);
	assert_non_null(k);
	assert_non_null(k4);
	memset(body, '{', BODY);
	for (i = 0; i < NKEYS; i++) {
		assert_int_equal(
		    nb_sig_keypair(pk, sizeof(pk), sk, sizeof(sk)), 0);
		assert_int_equal(nb_sig_keyring_add_public_key(k, pk), 0);
	}
	/* Real signatures by keys nobody trusts: no cheap rejection. */
	for (i = 0; i < NENTRIES; i++) {
		assert_int_equal(
		    nb_sig_keypair(pk, sizeof(pk), sk, sizeof(sk)), 0);
		assert_int_equal(nb_sig_sign_ed25519(sk, VEC_ID, VEC_NOW, body,
				     BODY, sig, sizeof(sig)),
		    0);
		off += (size_t)snprintf(hdr + off,
		    NENTRIES * NB_SIG_ENTRY_MAX - off, "%s%s", i > 0 ? " " : "",
		    sig);
	}
	h.signature = hdr;
	before = nb_sig_ed25519_verifications();
	assert_int_equal(
	    nb_sig_verify(k, &h, body, BODY, VEC_NOW, 300), NB_SIG_MISMATCH);
	assert_int_equal(
	    nb_sig_ed25519_verifications() - before, NB_SIG_MAX_ED25519_TRIES);

	/* Rotation: signed with 4 keys, the last one trusted, last of 4. */
	off = 0;
	for (i = 0; i < 4; i++) {
		assert_int_equal(nb_sig_keypair(pk, sizeof(pk), trusted_sk[i],
				     sizeof(trusted_sk[i])),
		    0);
		/* Trusted: three other keys, then the fourth signer's. */
		if (i < 3)
			assert_int_equal(
			    nb_sig_keypair(pk, sizeof(pk), sk, sizeof(sk)), 0);
		assert_int_equal(nb_sig_keyring_add_public_key(k4, pk), 0);
		assert_int_equal(nb_sig_sign_ed25519(trusted_sk[i], VEC_ID,
				     VEC_NOW, body, BODY, sig, sizeof(sig)),
		    0);
		off += (size_t)snprintf(hdr + off,
		    NENTRIES * NB_SIG_ENTRY_MAX - off, "%s%s", i > 0 ? " " : "",
		    sig);
	}
	before = nb_sig_ed25519_verifications();
	assert_int_equal(
	    nb_sig_verify(k4, &h, body, BODY, VEC_NOW, 300), NB_SIG_OK);
	assert_int_equal(nb_sig_ed25519_verifications() - before, 16);
	nb_sig_keyring_free(k);
	nb_sig_keyring_free(k4);
	free(hdr);
	free(body);
}

static void
test_empty_body(void **state)
{
	char pk[100], sk[100], hs[NB_SIG_ENTRY_MAX], es[NB_SIG_ENTRY_MAX];
	struct nb_keyring *k = nb_sig_keyring_new();
	struct nb_sig_headers h = {VEC_ID, VEC_TS, NULL};

	(void)state;
	assert_non_null(k);
	assert_int_equal(nb_sig_keypair(pk, sizeof(pk), sk, sizeof(sk)), 0);
	assert_int_equal(nb_sig_keyring_add_public_key(k, pk), 0);
	assert_int_equal(nb_sig_keyring_add_secret(k, VEC_SECRET), 0);
	assert_int_equal(nb_sig_sign_hmac(VEC_SECRET, VEC_ID, VEC_NOW, NULL, 0,
			     hs, sizeof(hs)),
	    0);
	assert_int_equal(
	    nb_sig_sign_ed25519(sk, VEC_ID, VEC_NOW, NULL, 0, es, sizeof(es)),
	    0);
	h.signature = hs;
	assert_int_equal(
	    nb_sig_verify(k, &h, NULL, 0, VEC_NOW, 300), NB_SIG_OK);
	assert_int_equal(
	    nb_sig_verify(k, &h, (const unsigned char *)"", 0, VEC_NOW, 300),
	    NB_SIG_OK);
	assert_int_equal(
	    nb_sig_verify(k, &h, (const unsigned char *)"x", 1, VEC_NOW, 300),
	    NB_SIG_MISMATCH);
	h.signature = es;
	assert_int_equal(
	    nb_sig_verify(k, &h, NULL, 0, VEC_NOW, 300), NB_SIG_OK);
	assert_int_equal(
	    nb_sig_verify(k, &h, (const unsigned char *)"x", 1, VEC_NOW, 300),
	    NB_SIG_MISMATCH);
	nb_sig_keyring_free(k);
}

static void
test_binary_body(void **state)
{
	/* The body is raw bytes, NUL included; length, not strlen. */
	const unsigned char body[] = {'{', 0, '}', 0xff};
	char sig[NB_SIG_ENTRY_MAX];
	struct nb_keyring *k = vector_keyring();
	struct nb_sig_headers h = {VEC_ID, VEC_TS, sig};

	(void)state;
	assert_int_equal(nb_sig_sign_hmac(VEC_SECRET, VEC_ID, VEC_NOW, body,
			     sizeof(body), sig, sizeof(sig)),
	    0);
	assert_int_equal(
	    nb_sig_verify(k, &h, body, sizeof(body), VEC_NOW, 300), NB_SIG_OK);
	assert_int_equal(
	    nb_sig_verify(k, &h, body, 1, VEC_NOW, 300), NB_SIG_MISMATCH);
	nb_sig_keyring_free(k);
}

static void
test_tolerance(void **state)
{
	struct nb_keyring *k = vector_keyring();
	struct nb_sig_headers h = {VEC_ID, VEC_TS, VEC_SIG};
	const unsigned char *b = (const unsigned char *)VEC_BODY;
	size_t blen = strlen(VEC_BODY);

	(void)state;
	assert_int_equal(nb_sig_verify(k, &h, b, blen, VEC_NOW, 0), NB_SIG_OK);
	assert_int_equal(
	    nb_sig_verify(k, &h, b, blen, VEC_NOW + 1, 0), NB_SIG_STALE);
	assert_int_equal(
	    nb_sig_verify(k, &h, b, blen, VEC_NOW + 1, -5), NB_SIG_STALE);
	assert_int_equal(
	    nb_sig_verify(k, &h, b, blen, 0, INT64_MAX), NB_SIG_OK);
	/* Extreme clocks must not overflow into "fresh". */
	h.timestamp = "9223372036854775807";
	assert_int_equal(
	    nb_sig_verify(k, &h, b, blen, -1000, 300), NB_SIG_STALE);
	h.timestamp = "0";
	assert_int_equal(nb_sig_verify(k, &h, b, blen, (time_t)INT64_MAX, 300),
	    NB_SIG_STALE);
	nb_sig_keyring_free(k);
}

/*
 * The key that verified: its index (secrets first, then public keys) and
 * fingerprint, and the request's timestamp.
 */
static void
test_verify_key(void **state)
{
	char pk[128], sk[160], sec2[64], entry[NB_SIG_ENTRY_MAX];
	char fp[NB_SIG_FP_LEN], ts[24];
	const unsigned char body[] = "{}";
	struct nb_sig_headers h;
	struct nb_keyring *k;
	int64_t got_ts = -1;
	size_t key = 99;

	(void)state;
	assert_int_equal(nb_sig_keypair(pk, sizeof(pk), sk, sizeof(sk)), 0);
	assert_int_equal(nb_sig_new_secret(sec2, sizeof(sec2)), 0);
	assert_non_null(k = nb_sig_keyring_new());
	assert_int_equal(nb_sig_keyring_add_public_key(k, pk), 0);
	assert_int_equal(nb_sig_keyring_add_secret(k, VEC_SECRET), 0);
	assert_int_equal(nb_sig_keyring_add_secret(k, sec2), 0);
	/* Secrets first (in the order added), then the public key. */
	nb_sig_fingerprint(VEC_SECRET, fp);
	assert_string_equal(nb_sig_keyring_fingerprint(k, 0), fp);
	nb_sig_fingerprint(sec2, fp);
	assert_string_equal(nb_sig_keyring_fingerprint(k, 1), fp);
	nb_sig_fingerprint(pk, fp);
	assert_string_equal(nb_sig_keyring_fingerprint(k, 2), fp);
	assert_string_equal(nb_sig_keyring_fingerprint(k, 3), "");
	assert_int_equal(strlen(fp), 8);
	assert_int_equal(strspn(fp, "0123456789abcdef"), 8);

	snprintf(ts, sizeof(ts), "%d", 1614265330);
	h.id = "msg_1";
	h.timestamp = ts;
	h.signature = entry;
	assert_int_equal(nb_sig_sign_hmac(sec2, h.id, 1614265330, body, 2,
			     entry, sizeof(entry)),
	    0);
	assert_int_equal(
	    nb_sig_verify_key(k, &h, body, 2, 1614265333, 300, &key, &got_ts),
	    NB_SIG_OK);
	assert_int_equal(key, 1);
	assert_int_equal(got_ts, 1614265330);
	assert_int_equal(nb_sig_sign_ed25519(sk, h.id, 1614265330, body, 2,
			     entry, sizeof(entry)),
	    0);
	assert_int_equal(
	    nb_sig_verify_key(k, &h, body, 2, 1614265330, 300, &key, &got_ts),
	    NB_SIG_OK);
	assert_int_equal(key, 2);
	/* A failure leaves both alone. */
	key = 99;
	got_ts = -1;
	assert_int_equal(
	    nb_sig_verify_key(k, &h, body, 1, 1614265330, 300, &key, &got_ts),
	    NB_SIG_MISMATCH);
	assert_int_equal(key, 99);
	assert_int_equal(got_ts, -1);
	nb_sig_keyring_free(k);
}

static void
test_result_str(void **state)
{
	(void)state;
	assert_string_equal(nb_sig_result_str(NB_SIG_OK), "ok");
	assert_string_equal(
	    nb_sig_result_str(NB_SIG_MISSING), "signature_missing");
	assert_string_equal(
	    nb_sig_result_str(NB_SIG_MALFORMED), "signature_malformed");
	assert_string_equal(
	    nb_sig_result_str(NB_SIG_STALE), "timestamp_out_of_tolerance");
	assert_string_equal(
	    nb_sig_result_str(NB_SIG_MISMATCH), "signature_mismatch");
	assert_string_equal(nb_sig_result_str(NB_SIG_NOMEM), "unavailable");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vector),
	    cmocka_unit_test(test_header_table),
	    cmocka_unit_test(test_null_headers),
	    cmocka_unit_test(test_entry_limit),
	    cmocka_unit_test(test_secret_lengths),
	    cmocka_unit_test(test_bad_secrets),
	    cmocka_unit_test(test_rotation),
	    cmocka_unit_test(test_ed25519),
	    cmocka_unit_test(test_ed25519_work),
	    cmocka_unit_test(test_empty_body),
	    cmocka_unit_test(test_binary_body),
	    cmocka_unit_test(test_tolerance),
	    cmocka_unit_test(test_verify_key),
	    cmocka_unit_test(test_result_str),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
