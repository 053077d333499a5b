/* SPDX-License-Identifier: ISC */
/*
 * oauth: the key, the assertion, the token request and the token's life.
 *
 * Signing is OpenSSL's (EVP_DigestSign, SHA-256 over an RSA key: RS256,
 * PKCS#1 v1.5), base64url libsodium's, the JWT's JSON jansson's.  Buffers
 * that hold an assertion or a token are sized before they are written (no
 * realloc leaves a copy) and wiped before they are freed.  A token is
 * reused until half its life, renewed in the background while still sent,
 * and no longer sent in the last quarter of its life (at most 30 s), so no
 * batch leaves with a token that lapses in flight.  Every answer's Date
 * updates the skew between the endpoint's clock and ours; a refusal that
 * comes with a skew moved by more than SKEW_RETRY_MS is retried once at
 * once with a corrected iat before it counts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "nudgebridge/buf.h"
#include "nudgebridge/log.h"
#include "nudgebridge/metrics.h"
#include "nudgebridge/oauth.h"
#include "nudgebridge/policy.h"
#include "nudgebridge/redact.h"
#include "nudgebridge/xfer.h"

#define KEY_BITS_MIN	  2048
#define EXPIRES_DEFAULT_S 3600
#define EXPIRES_MAX_S	  (366LL * 86400)
#define SKEW_RETRY_MS	  5000
#define LAPSE_MARGIN_MS	  30000
#define ANSWER_KEEP	  16384
#define ASSERTION_MAX	  16384
#define FORM_GRANT	  "grant_type=client_credentials"
#define FORM_ASSERTION_TYPE                                                    \
	"&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-"         \
	"assertion-type%3Ajwt-bearer&client_assertion="
#define FORM_SCOPE "&scope=tracking_api%3Awrite"

struct nb_oauth_key {
	EVP_PKEY *pkey;
};

struct nb_oauth_client {
	const struct nb_oauth_config *c;
	const struct nb_retry_config *retry;
	int timeout_ms;
	struct nb_xfer_multi *mx;
	struct nb_metrics *m;
	const char *label;
	nb_oauth_event_cb cb;
	void *arg;
	char *token;
	unsigned gen;
	int64_t renew_at_ms;
	int64_t use_until_ms;
	int busy;   /* a fetch in flight */
	int orphan; /* freed while busy: free when the fetch ends */
	int refused;
	int failures;
	int64_t next_try_ms;
	int64_t skew_ms;      /* the endpoint's clock minus ours */
	int64_t sent_skew_ms; /* the skew the fetch in flight used */
	int skew_retried;
	int64_t sent_ms;
};

/* No passphrase prompt, ever: an encrypted key is refused. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int
nb_oauth_key_load(
    struct nb_oauth_key **out, char *pem, size_t len, char *err, size_t errlen)
{
	struct nb_oauth_key *k = NULL;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	int rc = -1;

	*out = NULL;
	if (len > INT32_MAX || (bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		(void)snprintf(err, errlen, "cannot read the key");
		goto out;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (pkey == NULL) {
		(void)snprintf(err, errlen,
		    "not a PEM private key (unencrypted PKCS#8 or PKCS#1)");
		goto out;
	}
	if (EVP_PKEY_base_id(pkey) != EVP_PKEY_RSA ||
	    EVP_PKEY_bits(pkey) < KEY_BITS_MIN) {
		(void)snprintf(err, errlen,
		    "must be an RSA key of at least %d bits", KEY_BITS_MIN);
		goto out;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		goto out;
	}
	k->pkey = pkey;
	pkey = NULL;
	*out = k;
	rc = 0;
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	ERR_clear_error();
	sodium_memzero(pem, len);
	return rc;
}

void
nb_oauth_key_free(struct nb_oauth_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

void
nb_oauth_config_clear(struct nb_oauth_config *c)
{
	if (c == NULL)
		return;
	free(c->client_id);
	free(c->key_id);
	free(c->auth_server);
	nb_oauth_key_free(c->key);
	memset(c, 0, sizeof(*c));
}

int
nb_oauth_config_same(
    const struct nb_oauth_config *a, const struct nb_oauth_config *b)
{
	if (a->key == NULL || b->key == NULL)
		return a->key == b->key;
	if (strcmp(a->client_id, b->client_id) != 0 ||
	    strcmp(a->key_id, b->key_id) != 0 ||
	    strcmp(a->auth_server, b->auth_server) != 0)
		return 0;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	return EVP_PKEY_eq(a->key->pkey, b->key->pkey) == 1;
#else
	return EVP_PKEY_cmp(a->key->pkey, b->key->pkey) == 1;
#endif
}

/* Appends base64url (no padding) of in; out must have the room. */
static void
b64url(struct nb_buf *out, const void *in, size_t len)
{
	size_t n = sodium_base64_ENCODED_LEN(
	    len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);

	sodium_bin2base64(out->ptr + out->len, n, in, len,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	out->len += n - 1;
}

static size_t
b64url_len(size_t len)
{
	return sodium_base64_ENCODED_LEN(
		   len, sodium_base64_VARIANT_URLSAFE_NO_PADDING) -
	    1;
}

/* The header and claims, compact JSON; NULL when out of memory. */
static char *
jwt_json(const struct nb_oauth_config *c, int64_t iat_s, int claims)
{
	unsigned char rnd[16];
	char jti[33];
	json_t *o;
	char *s;

	if (!claims)
		o = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT",
		    "kid", c->key_id);
	else {
		randombytes_buf(rnd, sizeof(rnd));
		sodium_bin2hex(jti, sizeof(jti), rnd, sizeof(rnd));
		o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "iss",
		    c->client_id, "sub", c->client_id, "aud", c->auth_server,
		    "iat", (json_int_t)iat_s, "exp",
		    (json_int_t)(iat_s + NB_OAUTH_ASSERTION_LIFE_S), "jti",
		    jti);
	}
	if (o == NULL)
		return NULL;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

int
nb_oauth_assertion(
    const struct nb_oauth_config *c, int64_t iat_s, struct nb_buf *out)
{
	char *head = NULL, *claims = NULL;
	unsigned char *sig = NULL;
	EVP_MD_CTX *md = NULL;
	size_t start = out->len, siglen = 0, need;
	int rc = -1;

	if ((head = jwt_json(c, iat_s, 0)) == NULL ||
	    (claims = jwt_json(c, iat_s, 1)) == NULL)
		goto out;
	siglen = (size_t)EVP_PKEY_size(c->key->pkey);
	need = b64url_len(strlen(head)) + 1 + b64url_len(strlen(claims)) + 1 +
	    b64url_len(siglen);
	if ((sig = malloc(siglen)) == NULL ||
	    nb_buf_reserve(out, need + 1) == -1)
		goto out;
	b64url(out, head, strlen(head));
	out->ptr[out->len++] = '.';
	b64url(out, claims, strlen(claims));
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, c->key->pkey) !=
		1 ||
	    EVP_DigestSign(md, sig, &siglen,
		(const unsigned char *)out->ptr + start, out->len - start) != 1)
		goto out;
	out->ptr[out->len++] = '.';
	b64url(out, sig, siglen);
	out->ptr[out->len] = '\0';
	rc = 0;
out:
	if (rc == -1) {
		log_error("cannot sign the client assertion", NULL);
		if (out->ptr != NULL)
			sodium_memzero(out->ptr + start, out->len - start);
		out->len = start;
		ERR_clear_error();
	}
	EVP_MD_CTX_free(md);
	free(sig);
	free(head);
	free(claims);
	return rc;
}

int
nb_oauth_form(const char *assertion, struct nb_buf *out)
{
	size_t n = strlen(assertion), i;

	/* A JWT is base64url and dots: nothing to percent-encode. */
	for (i = 0; i < n; i++)
		if (!(assertion[i] == '.' || assertion[i] == '-' ||
			assertion[i] == '_' ||
			(assertion[i] >= '0' && assertion[i] <= '9') ||
			((assertion[i] | 0x20) >= 'a' &&
			    (assertion[i] | 0x20) <= 'z')))
			return -1;
	if (nb_buf_reserve(out,
		sizeof(FORM_GRANT FORM_ASSERTION_TYPE) + n +
		    sizeof(FORM_SCOPE)) == -1)
		return -1;
	(void)nb_buf_adds(out, FORM_GRANT FORM_ASSERTION_TYPE);
	(void)nb_buf_add(out, assertion, n);
	return nb_buf_adds(out, FORM_SCOPE);
}

/* Overwrites a string jansson parsed (the tree is ours alone). */
static void
json_string_wipe(json_t *v)
{
	if (json_is_string(v))
		sodium_memzero((char *)(uintptr_t)json_string_value(v),
		    json_string_length(v));
}

int
nb_oauth_parse_token(
    const char *body, size_t len, char **token, int64_t *expires_in_s)
{
	json_t *root, *tok, *exp;
	const char *s;
	size_t n, i;
	double e;
	int rc = -1;

	*token = NULL;
	if ((root = json_loadb(body, len, 0, NULL)) == NULL)
		return -1;
	tok = json_object_get(root, "access_token");
	exp = json_object_get(root, "expires_in");
	if (!json_is_string(tok) || (n = json_string_length(tok)) == 0 ||
	    n > NB_OAUTH_TOKEN_MAX)
		goto out;
	s = json_string_value(tok);
	for (i = 0; i < n; i++)
		if (s[i] < '!' || s[i] > '~')
			goto out;
	e = EXPIRES_DEFAULT_S;
	if (exp != NULL && !json_is_null(exp)) {
		if (!json_is_number(exp) || !(json_number_value(exp) >= 1))
			goto out;
		e = json_number_value(exp);
	}
	*expires_in_s = e > EXPIRES_MAX_S ? EXPIRES_MAX_S : (int64_t)e;
	if ((*token = malloc(n + 1)) == NULL)
		goto out;
	memcpy(*token, s, n + 1);
	rc = 0;
out:
	json_string_wipe(tok);
	json_decref(root);
	return rc;
}

void
nb_oauth_parse_refusal(long status, const char *body, size_t len, int truncated,
    char error[NB_OAUTH_ERROR_MAX], char detail[NB_OAUTH_DETAIL_MAX])
{
	json_t *root = json_loadb(body, len, 0, NULL);
	json_t *e = json_object_get(root, "error");
	json_t *d = json_object_get(root, "error_description");
	size_t i;

	if (json_is_string(e)) {
		(void)nb_redact(json_string_value(e), json_string_length(e), 0,
		    NULL, 0, error, NB_OAUTH_ERROR_MAX);
		/* A code names the error: [A-Za-z0-9_.-] only. */
		for (i = 0; error[i] != '\0'; i++)
			if (strchr("_.-", error[i]) == NULL &&
			    !((error[i] | 0x20) >= 'a' &&
				(error[i] | 0x20) <= 'z') &&
			    !(error[i] >= '0' && error[i] <= '9'))
				error[i] = '_';
		detail[0] = '\0';
		if (json_is_string(d))
			(void)nb_redact(json_string_value(d),
			    json_string_length(d), 0, NULL, 0, detail,
			    NB_OAUTH_DETAIL_MAX);
	} else {
		(void)snprintf(error, NB_OAUTH_ERROR_MAX, "http_%ld", status);
		(void)nb_redact(
		    body, len, truncated, NULL, 0, detail, NB_OAUTH_DETAIL_MAX);
	}
	json_decref(root);
}

/* The client. */

static void
token_forget(struct nb_oauth_client *oc)
{
	if (oc->token != NULL) {
		sodium_memzero(oc->token, strlen(oc->token));
		free(oc->token);
		oc->token = NULL;
	}
	oc->use_until_ms = oc->renew_at_ms = 0;
}

static void
client_destroy(struct nb_oauth_client *oc)
{
	token_forget(oc);
	free(oc);
}

static void
fetch_failed(struct nb_oauth_client *oc, const struct nb_xfer_answer *a,
    int64_t now_ms, const char *why)
{
	char quoted[160];
	int64_t wait = 0;

	if (a != NULL)
		wait = nb_policy_wait_ms(
		    a->status, a->retry_after_ms, a->reset_ms);
	oc->failures++;
	oc->next_try_ms =
	    now_ms + nb_policy_backoff_ms(oc->retry, oc->failures, wait);
	log_info("oauth token request failed",
	    " sources=%s status=%ld error=%s retry_in_ms=%lld", oc->label,
	    a != NULL ? a->status : 0L,
	    nb_log_quote(quoted, sizeof(quoted), why),
	    (long long)(oc->next_try_ms - now_ms));
}

static void
fetch_got(struct nb_oauth_client *oc, const struct nb_xfer_answer *a)
{
	int64_t life_s = 0, life;
	char *tok = NULL;

	if (nb_oauth_parse_token(a->body, a->bodylen, &tok, &life_s) == -1) {
		fetch_failed(oc, a, a->now_ms, "unreadable token answer");
		return;
	}
	token_forget(oc);
	oc->token = tok;
	oc->gen++;
	life = life_s * 1000;
	oc->renew_at_ms = oc->sent_ms + life / 2;
	oc->use_until_ms = oc->sent_ms + life -
	    (life / 4 < LAPSE_MARGIN_MS ? life / 4 : LAPSE_MARGIN_MS);
	oc->failures = 0;
	oc->skew_retried = 0;
	log_info("oauth token obtained", " sources=%s expires_in_s=%lld",
	    oc->label, (long long)life_s);
	oc->cb(NB_OAUTH_TOKEN, NULL, oc->arg);
}

static void
fetch_refused(struct nb_oauth_client *oc, const struct nb_xfer_answer *a)
{
	struct nb_oauth_refusal r;
	int64_t moved = oc->skew_ms - oc->sent_skew_ms;

	if (!oc->skew_retried &&
	    (moved > SKEW_RETRY_MS || -moved > SKEW_RETRY_MS)) {
		oc->skew_retried = 1;
		oc->next_try_ms = 0;
		log_warn("oauth token refused with a skewed clock, retrying",
		    " sources=%s status=%ld skew_ms=%lld", oc->label, a->status,
		    (long long)oc->skew_ms);
		return;
	}
	memset(&r, 0, sizeof(r));
	r.status = a->status;
	nb_oauth_parse_refusal(
	    a->status, a->body, a->bodylen, a->truncated, r.error, r.detail);
	oc->refused = 1;
	/* The owner logs the pause this becomes. */
	oc->cb(NB_OAUTH_REFUSED, &r, oc->arg);
}

static void
fetched_cb(const struct nb_xfer_answer *a, void *arg)
{
	struct nb_oauth_client *oc = arg;

	oc->busy = 0;
	if (oc->orphan) {
		client_destroy(oc);
		return;
	}
	if (a->canceled)
		return;
	nb_metrics_oauth(oc->m, (int)a->status);
	if (a->date_ms > 0)
		oc->skew_ms = a->date_ms - a->now_ms;
	if (a->status >= 200 && a->status < 300)
		fetch_got(oc, a);
	else if (a->status == 400 || a->status == 401)
		fetch_refused(oc, a);
	else
		fetch_failed(oc, a, a->now_ms,
		    a->status == 0 ? (a->timed_out ? "timeout" : a->error)
				   : "status");
}

/* Starts a token request. */
static void
fetch(struct nb_oauth_client *oc, int64_t now_ms)
{
	struct nb_xfer_request req;
	struct nb_buf jwt, form, url;
	char *body;
	size_t len = 0;

	nb_buf_init(&jwt, ASSERTION_MAX);
	nb_buf_init(&form, ASSERTION_MAX + 512);
	nb_buf_init(&url, strlen(oc->c->auth_server) + 16);
	oc->sent_ms = now_ms;
	oc->sent_skew_ms = oc->skew_ms;
	if (nb_oauth_assertion(oc->c, (now_ms + oc->skew_ms) / 1000, &jwt) ==
		-1 ||
	    nb_oauth_form(nb_buf_str(&jwt), &form) == -1 ||
	    nb_buf_addf(&url, "%s/token", oc->c->auth_server) == -1 ||
	    (body = nb_buf_steal(&form, &len)) == NULL) {
		fetch_failed(oc, NULL, now_ms, "cannot build the request");
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.url = nb_buf_str(&url);
	req.content_type = "application/x-www-form-urlencoded";
	req.wipe = 1;
	req.timeout_ms = oc->timeout_ms;
	req.keep = ANSWER_KEEP;
	oc->busy = 1;
	if (nb_xfer_start(oc->mx, &req, body, len, fetched_cb, oc) == -1) {
		oc->busy = 0;
		fetch_failed(oc, NULL, now_ms, "cannot start the request");
	}
out:
	if (jwt.ptr != NULL)
		sodium_memzero(jwt.ptr, jwt.len);
	if (form.ptr != NULL)
		sodium_memzero(form.ptr, form.len);
	nb_buf_free(&jwt);
	nb_buf_free(&form);
	nb_buf_free(&url);
}

struct nb_oauth_client *
nb_oauth_client_new(const struct nb_oauth_config *c,
    const struct nb_retry_config *retry, int timeout_ms,
    struct nb_xfer_multi *mx, struct nb_metrics *m, const char *label,
    nb_oauth_event_cb cb, void *arg)
{
	struct nb_oauth_client *oc;

	if ((oc = calloc(1, sizeof(*oc))) == NULL)
		return NULL;
	oc->c = c;
	oc->retry = retry;
	oc->timeout_ms = timeout_ms;
	oc->mx = mx;
	oc->m = m;
	oc->label = label;
	oc->cb = cb;
	oc->arg = arg;
	return oc;
}

const char *
nb_oauth_client_token(struct nb_oauth_client *oc, int64_t now_ms, unsigned *gen)
{
	const char *usable;

	usable =
	    oc->token != NULL && now_ms < oc->use_until_ms ? oc->token : NULL;
	if (!oc->busy && !oc->refused && now_ms >= oc->next_try_ms &&
	    (usable == NULL || now_ms >= oc->renew_at_ms))
		fetch(oc, now_ms);
	*gen = oc->gen;
	return usable;
}

int
nb_oauth_client_ready(const struct nb_oauth_client *oc, int64_t now_ms)
{
	return oc->token != NULL && now_ms < oc->use_until_ms;
}

unsigned
nb_oauth_client_gen(const struct nb_oauth_client *oc)
{
	return oc->gen;
}

void
nb_oauth_client_drop(struct nb_oauth_client *oc, unsigned gen)
{
	if (gen != oc->gen)
		return;
	token_forget(oc);
	oc->next_try_ms = 0;
}

void
nb_oauth_client_reset(struct nb_oauth_client *oc)
{
	token_forget(oc);
	oc->refused = 0;
	oc->failures = 0;
	oc->next_try_ms = 0;
	oc->skew_retried = 0;
}

void
nb_oauth_client_free(struct nb_oauth_client *oc)
{
	if (oc == NULL)
		return;
	if (oc->busy) {
		oc->orphan = 1;
		token_forget(oc);
		return;
	}
	client_destroy(oc);
}
