/* SPDX-License-Identifier: ISC */
/*
 * oauth: Segment's OAuth 2.0 client credentials with an RS256 assertion.
 *
 * A source with "oauth" sends batches with Authorization: Bearer <token>
 * and the write key in the body's writeKey.  A token comes from POST
 * {auth_server}/token (form-encoded client credentials, scope
 * tracking_api:write) with a client assertion: a JWT signed RS256 through
 * OpenSSL's EVP_DigestSign (kid; iss = sub = client_id, aud = auth_server,
 * iat, exp = iat + 60, a random jti).  The client keeps one lane's token:
 * reused until half its life, renewed in the background, fetched again
 * when the batch API refuses it; the endpoint's network errors, 429 and
 * 5xx are retried with backoff, its 400/401 are a refusal the owner turns
 * into a pause, its Date corrects iat.  Keys, assertions and tokens are
 * wiped after use and never logged.  A client is the deliverer thread's.
 */
#ifndef NB_OAUTH_H
#define NB_OAUTH_H

#include <stddef.h>
#include <stdint.h>

struct nb_buf;
struct nb_metrics;
struct nb_oauth_client;
struct nb_oauth_key;
struct nb_retry_config;
struct nb_xfer_multi;

#define NB_OAUTH_SERVER_US "https://oauth2.segment.io"
#define NB_OAUTH_SERVER_EU "https://oauth2.eu1.segmentapis.com"
#define NB_OAUTH_SCOPE	   "tracking_api:write"

/* Seconds between a client assertion's iat and its exp. */
#define NB_OAUTH_ASSERTION_LIFE_S 60

/* Longest client_id, key_id and access token accepted. */
#define NB_OAUTH_ID_MAX	   256
#define NB_OAUTH_TOKEN_MAX 4096

/* Sizes of the refusal texts (NUL included). */
#define NB_OAUTH_ERROR_MAX  48
#define NB_OAUTH_DETAIL_MAX 160

/* A source's "oauth" object (config.c fills it; owned by the config). */
struct nb_oauth_config {
	char *client_id;
	char *key_id;
	char *auth_server; /* resolved: given, else by the source's region */
	struct nb_oauth_key *key;
};

/*
 * Parses a PEM private key (pem, len bytes; PKCS#8 or PKCS#1) into *out.
 * It must be RSA of at least 2048 bits.  pem is wiped whatever happens.
 * 0, or -1 with a message in err that never quotes the key.
 */
int nb_oauth_key_load(
    struct nb_oauth_key **out, char *pem, size_t len, char *err, size_t errlen);

/* Frees a key (OpenSSL clears its private numbers).  NULL is ok. */
void nb_oauth_key_free(struct nb_oauth_key *);

/* Frees what c owns and zeroes it.  NULL is ok. */
void nb_oauth_config_clear(struct nb_oauth_config *c);

/* 1 when a and b name the same client, key id, key and server. */
int nb_oauth_config_same(
    const struct nb_oauth_config *a, const struct nb_oauth_config *b);

/*
 * Appends the client assertion for c issued at iat_s (Unix seconds) to
 * out: base64url(header) "." base64url(claims) "." base64url(RS256
 * signature), with a fresh random jti.  0 or -1 (out of memory, OpenSSL).
 */
int nb_oauth_assertion(
    const struct nb_oauth_config *c, int64_t iat_s, struct nb_buf *out);

/*
 * The token request body for assertion: the form-encoded grant_type,
 * client_assertion_type, client_assertion and scope.  0 or -1.
 */
int nb_oauth_form(const char *assertion, struct nb_buf *out);

/*
 * Reads a 2xx answer of the token endpoint: *token (malloc'd; the caller
 * wipes and frees) and *expires_in_s (3600 when absent).  -1 when it is
 * not a JSON object with an access_token of 1..NB_OAUTH_TOKEN_MAX
 * characters from '!' to '~', or expires_in is not a positive number.
 */
int nb_oauth_parse_token(
    const char *body, size_t len, char **token, int64_t *expires_in_s);

/*
 * Reads a refusal's "error" and "error_description" into error and detail
 * (printable ASCII, credentials redacted, cut to the buffers); a body that
 * is not such JSON gives error "http_<status>" and a redacted excerpt.
 */
void nb_oauth_parse_refusal(long status, const char *body, size_t len,
    int truncated, char error[NB_OAUTH_ERROR_MAX],
    char detail[NB_OAUTH_DETAIL_MAX]);

/* What a client tells its owner. */
enum nb_oauth_event {
	NB_OAUTH_TOKEN = 0, /* a new token is ready */
	NB_OAUTH_REFUSED,   /* 400/401: pause; see the refusal */
};

/* Why the token endpoint refused. */
struct nb_oauth_refusal {
	long status;
	char error[NB_OAUTH_ERROR_MAX];
	char detail[NB_OAUTH_DETAIL_MAX];
};

typedef void (*nb_oauth_event_cb)(
    enum nb_oauth_event ev, const struct nb_oauth_refusal *r, void *arg);

/*
 * A client for c (borrowed, with retry; both must outlive the client),
 * sending through mx with requests of timeout_ms.  label names the lane's
 * sources in logs.  cb(event, refusal, arg) runs on the thread of mx.  m
 * may be NULL.  NULL when out of memory.
 */
struct nb_oauth_client *nb_oauth_client_new(const struct nb_oauth_config *c,
    const struct nb_retry_config *retry, int timeout_ms,
    struct nb_xfer_multi *mx, struct nb_metrics *m, const char *label,
    nb_oauth_event_cb cb, void *arg);

/*
 * The token to send a batch with at now_ms, or NULL when there is none
 * usable yet.  Starts a fetch when none is in flight and the token is
 * missing, due for renewal (half its life) or about to lapse, unless the
 * client is refused or waiting out a backoff.  *gen identifies the token
 * for nb_oauth_client_drop().  Borrowed until the next call.
 */
const char *nb_oauth_client_token(
    struct nb_oauth_client *, int64_t now_ms, unsigned *gen);

/* 1 when a token may be sent at now_ms (no fetch is started). */
int nb_oauth_client_ready(const struct nb_oauth_client *, int64_t now_ms);

/* The generation of the newest token (0 before the first). */
unsigned nb_oauth_client_gen(const struct nb_oauth_client *);

/* The batch API refused token gen: forget it (a newer one is kept). */
void nb_oauth_client_drop(struct nb_oauth_client *, unsigned gen);

/* Forgets the token, a refusal and past failures (after a pause). */
void nb_oauth_client_reset(struct nb_oauth_client *);

/*
 * Frees the client: at once, or, with a fetch in flight, when that fetch
 * ends (its events are then not reported).  NULL is ok.
 */
void nb_oauth_client_free(struct nb_oauth_client *);

#endif
