/* SPDX-License-Identifier: ISC */
/*
 * test_oauth: the pieces of the client-credentials flow that need no
 * network.  Keys made here with OpenSSL: RSA 2048 in PKCS#8 and PKCS#1
 * loads (and the PEM text is wiped), RSA 1024, EC, garbage and an
 * encrypted key do not.  The client assertion is taken apart and checked
 * like a token endpoint does: the RS256 signature against the public key,
 * the header (alg, typ, kid), the claims (iss = sub = client_id, aud, iat,
 * exp = iat + 60, a jti that differs every time).  Then the form body and
 * the answers: tokens (table) and refusals (redacted, codes cleaned).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "nudgebridge/buf.h"
#include "nudgebridge/oauth.h"

static EVP_PKEY *rsa2048;

static EVP_PKEY *
keygen(int type, int bits)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(type, NULL);
	EVP_PKEY *k = NULL;

	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	if (type == EVP_PKEY_RSA)
		assert_int_equal(
		    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits), 1);
	else
		assert_int_equal(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(
				     ctx, NID_X9_62_prime256v1),
		    1);
	assert_int_equal(EVP_PKEY_keygen(ctx, &k), 1);
	EVP_PKEY_CTX_free(ctx);
	return k;
}

enum pem_form { PKCS8, PKCS1, ENCRYPTED };

/* The key as PEM text, malloc'd. */
static char *
pem_of(EVP_PKEY *k, enum pem_form form, size_t *len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	assert_non_null(bio);
	if (form == PKCS8)
		assert_int_equal(
		    PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL),
		    1);
	else if (form == PKCS1)
		assert_int_equal(PEM_write_bio_PrivateKey_traditional(
				     bio, k, NULL, NULL, 0, NULL, NULL),
		    1);
	else
		assert_int_equal(
		    PEM_write_bio_PKCS8PrivateKey(bio, k, EVP_aes_256_cbc(),
			NULL, 0, NULL, (void *)(uintptr_t) "secret"),
		    1);
	n = BIO_get_mem_data(bio, &data);
	assert_non_null(out = malloc((size_t)n + 1));
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	*len = (size_t)n;
	BIO_free(bio);
	return out;
}

static int
all_zero(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

static int
setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	rsa2048 = keygen(EVP_PKEY_RSA, 2048);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(rsa2048);
	return 0;
}

static void
test_key_load(void **state)
{
	static const enum pem_form good[] = {PKCS8, PKCS1};
	struct nb_oauth_key *k;
	EVP_PKEY *small, *ec;
	char err[160], *pem;
	size_t len, i;

	(void)state;
	for (i = 0; i < 2; i++) {
		pem = pem_of(rsa2048, good[i], &len);
		assert_int_equal(
		    nb_oauth_key_load(&k, pem, len, err, sizeof(err)), 0);
		assert_non_null(k);
		assert_true(all_zero(pem, len)); /* wiped */
		nb_oauth_key_free(k);
		free(pem);
	}
	small = keygen(EVP_PKEY_RSA, 1024);
	ec = keygen(EVP_PKEY_EC, 0);
	pem = pem_of(small, PKCS8, &len);
	assert_int_equal(nb_oauth_key_load(&k, pem, len, err, sizeof(err)), -1);
	assert_null(k);
	assert_non_null(strstr(err, "at least 2048"));
	assert_true(all_zero(pem, len));
	free(pem);
	pem = pem_of(ec, PKCS8, &len);
	assert_int_equal(nb_oauth_key_load(&k, pem, len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "RSA"));
	free(pem);
	/* Encrypted: refused, never a passphrase prompt. */
	pem = pem_of(rsa2048, ENCRYPTED, &len);
	assert_int_equal(nb_oauth_key_load(&k, pem, len, err, sizeof(err)), -1);
	assert_null(strstr(err, "BEGIN"));
	free(pem);
	assert_non_null(pem = strdup("-----BEGIN PRIVATE KEY-----\nnope\n"));
	assert_int_equal(
	    nb_oauth_key_load(&k, pem, strlen("-----BEGIN PRIVATE KEY-----"),
		err, sizeof(err)),
	    -1);
	assert_null(strstr(err, "nope"));
	free(pem);
	EVP_PKEY_free(small);
	EVP_PKEY_free(ec);
	nb_oauth_key_free(NULL);
}

static void
config_of(struct nb_oauth_config *c, EVP_PKEY *pkey)
{
	char err[160], *pem;
	size_t len;

	memset(c, 0, sizeof(*c));
	assert_non_null(c->client_id = strdup("client \"one\""));
	assert_non_null(c->key_id = strdup("kid-1"));
	assert_non_null(c->auth_server = strdup("https://oauth2.segment.io"));
	pem = pem_of(pkey, PKCS8, &len);
	assert_int_equal(
	    nb_oauth_key_load(&c->key, pem, len, err, sizeof(err)), 0);
	free(pem);
}

static json_t *
part(const char *b64, size_t len)
{
	unsigned char bin[1024];
	size_t n = 0;
	json_t *o;

	assert_int_equal(sodium_base642bin(bin, sizeof(bin), b64, len, NULL, &n,
			     NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
	    0);
	assert_non_null(o = json_loadb((const char *)bin, n, 0, NULL));
	return o;
}

static void
test_assertion(void **state)
{
	struct nb_oauth_config c;
	struct nb_buf jwt;
	unsigned char sig[1024];
	const char *p, *dot1, *dot2;
	char jti[2][64];
	json_t *h, *cl;
	EVP_MD_CTX *md;
	size_t siglen;
	int k;

	(void)state;
	config_of(&c, rsa2048);
	for (k = 0; k < 2; k++) {
		nb_buf_init(&jwt, 16384);
		assert_int_equal(nb_oauth_assertion(&c, 1795860000, &jwt), 0);
		p = nb_buf_str(&jwt);
		assert_non_null(dot1 = strchr(p, '.'));
		assert_non_null(dot2 = strchr(dot1 + 1, '.'));
		assert_null(strchr(dot2 + 1, '.'));
		h = part(p, (size_t)(dot1 - p));
		cl = part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
		assert_string_equal(
		    json_string_value(json_object_get(h, "alg")), "RS256");
		assert_string_equal(
		    json_string_value(json_object_get(h, "typ")), "JWT");
		assert_string_equal(
		    json_string_value(json_object_get(h, "kid")), "kid-1");
		assert_string_equal(
		    json_string_value(json_object_get(cl, "iss")),
		    "client \"one\"");
		assert_string_equal(
		    json_string_value(json_object_get(cl, "sub")),
		    "client \"one\"");
		assert_string_equal(
		    json_string_value(json_object_get(cl, "aud")),
		    "https://oauth2.segment.io");
		assert_int_equal(
		    json_integer_value(json_object_get(cl, "iat")), 1795860000);
		assert_int_equal(json_integer_value(json_object_get(cl, "exp")),
		    1795860000 + NB_OAUTH_ASSERTION_LIFE_S);
		assert_true(
		    json_string_length(json_object_get(cl, "jti")) >= 16);
		(void)snprintf(jti[k], sizeof(jti[k]), "%s",
		    json_string_value(json_object_get(cl, "jti")));
		/* RS256 over "header.claims" with the public key. */
		assert_int_equal(sodium_base642bin(sig, sizeof(sig), dot2 + 1,
				     strlen(dot2 + 1), NULL, &siglen, NULL,
				     sodium_base64_VARIANT_URLSAFE_NO_PADDING),
		    0);
		assert_int_equal(siglen, 256);
		assert_non_null(md = EVP_MD_CTX_new());
		assert_int_equal(
		    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, rsa2048),
		    1);
		assert_int_equal(
		    EVP_DigestVerify(md, sig, siglen, (const unsigned char *)p,
			(size_t)(dot2 - p)),
		    1);
		/* One bit off and it does not verify. */
		sig[10] ^= 1;
		assert_int_not_equal(
		    EVP_DigestVerify(md, sig, siglen, (const unsigned char *)p,
			(size_t)(dot2 - p)),
		    1);
		EVP_MD_CTX_free(md);
		json_decref(h);
		json_decref(cl);
		nb_buf_free(&jwt);
	}
	assert_string_not_equal(jti[0], jti[1]);
	nb_oauth_config_clear(&c);
	nb_oauth_config_clear(NULL);
}

static void
test_form(void **state)
{
	struct nb_buf b;

	(void)state;
	nb_buf_init(&b, 4096);
	assert_int_equal(nb_oauth_form("aa.b-b.c_c", &b), 0);
	assert_string_equal(nb_buf_str(&b),
	    "grant_type=client_credentials&client_assertion_type=urn%3Aietf%"
	    "3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_"
	    "assertion=aa.b-b.c_c&scope=tracking_api%3Awrite");
	nb_buf_free(&b);
	nb_buf_init(&b, 4096);
	assert_int_equal(nb_oauth_form("a&b=c", &b), -1);
	nb_buf_free(&b);
}

static void
test_parse_token(void **state)
{
	static const struct {
		const char *body;
		int rc;
		const char *token;
		int64_t expires;
	} cases[] = {
	    {"{\"access_token\":\"t0k\",\"expires_in\":3600}", 0, "t0k", 3600},
	    {"{\"access_token\":\"t0k\",\"token_type\":\"bearer\"}", 0, "t0k",
		3600},
	    {"{\"access_token\":\"t\",\"expires_in\":2.9}", 0, "t", 2},
	    {"{\"access_token\":\"t\",\"expires_in\":null}", 0, "t", 3600},
	    {"{\"access_token\":\"t\",\"expires_in\":1e12}", 0, "t",
		366LL * 86400},
	    {"{\"access_token\":\"t\",\"expires_in\":0}", -1, NULL, 0},
	    {"{\"access_token\":\"t\",\"expires_in\":\"60\"}", -1, NULL, 0},
	    {"{\"access_token\":\"\"}", -1, NULL, 0},
	    {"{\"access_token\":\"a b\"}", -1, NULL, 0},
	    {"{\"access_token\":\"a\\u0000b\"}", -1, NULL, 0},
	    {"{\"access_token\":5}", -1, NULL, 0},
	    {"{\"token\":\"t\"}", -1, NULL, 0},
	    {"[\"t\"]", -1, NULL, 0},
	    {"not json", -1, NULL, 0},
	};
	char *tok;
	int64_t exp;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		exp = 0;
		if (nb_oauth_parse_token(cases[i].body, strlen(cases[i].body),
			&tok, &exp) != cases[i].rc)
			fail_msg("case %zu", i);
		if (cases[i].rc == 0) {
			assert_string_equal(tok, cases[i].token);
			assert_int_equal(exp, cases[i].expires);
			free(tok);
		} else
			assert_null(tok);
	}
}

static void
test_parse_refusal(void **state)
{
	static const struct {
		long status;
		const char *body;
		const char *error, *detail;
	} cases[] = {
	    {400,
		"{\"error\":\"invalid_client\",\"error_description\":\"Client "
		"authentication failed\"}",
		"invalid_client", "Client authentication failed"},
	    {401, "{\"error\":\"invalid grant!\"}", "invalid_grant_", ""},
	    {400,
		"{\"error\":\"invalid_request\",\"error_description\":\"bad "
		"client_assertion eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJjIn0.c2ln "
		"and Bearer tok_1\"}",
		"invalid_request", "bad client_assertion *** and Bearer ***"},
	    {401, "<html>denied</html>\n", "http_401", "<html>denied</html>?"},
	    {400, "", "http_400", ""},
	};
	char error[NB_OAUTH_ERROR_MAX], detail[NB_OAUTH_DETAIL_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		nb_oauth_parse_refusal(cases[i].status, cases[i].body,
		    strlen(cases[i].body), 0, error, detail);
		if (strcmp(error, cases[i].error) != 0 ||
		    strcmp(detail, cases[i].detail) != 0)
			fail_msg("case %zu: \"%s\" \"%s\"", i, error, detail);
	}
}

static void
test_same(void **state)
{
	struct nb_oauth_config a, b, none;
	EVP_PKEY *other = keygen(EVP_PKEY_RSA, 2048);

	(void)state;
	memset(&none, 0, sizeof(none));
	config_of(&a, rsa2048);
	config_of(&b, rsa2048);
	assert_true(nb_oauth_config_same(&a, &b));
	assert_false(nb_oauth_config_same(&a, &none));
	assert_true(nb_oauth_config_same(&none, &none));
	free(b.key_id);
	assert_non_null(b.key_id = strdup("kid-2"));
	assert_false(nb_oauth_config_same(&a, &b));
	nb_oauth_config_clear(&b);
	config_of(&b, other);
	assert_false(nb_oauth_config_same(&a, &b));
	nb_oauth_config_clear(&a);
	nb_oauth_config_clear(&b);
	EVP_PKEY_free(other);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_load),
	    cmocka_unit_test(test_assertion),
	    cmocka_unit_test(test_form),
	    cmocka_unit_test(test_parse_token),
	    cmocka_unit_test(test_parse_refusal),
	    cmocka_unit_test(test_same),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
