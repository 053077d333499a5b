/* SPDX-License-Identifier: ISC */
/*
 * tls: server contexts for the main listener and the bufferevents that
 * carry its connections.
 *
 * The context is the whole policy: it is built once per (re)load from the
 * two PEM files and never changed afterwards, so every connection runs
 * under exactly the settings that were validated.  Files are opened by us
 * first so that an unreadable one is reported with its errno; OpenSSL's own
 * error strings (which name a reason, never file contents) complete the
 * message.  The private key is only ever inside OpenSSL.  This module does
 * not decide which connections use TLS (see conn.c) and keeps no global
 * state; OpenSSL 3 initialises itself.  Main thread only.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "nudgebridge/log.h"
#include "nudgebridge/tls.h"

#define DESC_MAX     320
#define TLS_FILE_MAX (1024 * 1024) /* a certificate chain or a key */

struct nb_tls {
	SSL_CTX *ctx;
	char desc[DESC_MAX];
};

/* The most recent OpenSSL error as text, and an empty error queue. */
static void
ssl_error(char *out, size_t outlen)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		snprintf(out, outlen, "unknown OpenSSL error");
	else
		ERR_error_string_n(e, out, outlen);
	ERR_clear_error();
}

/*
 * 0 when path is a regular file of sane size we can open, else -1 with
 * err set.  (A FIFO or /dev/zero would hang or exhaust the PEM reader.)
 */
static int
readable(const char *key, const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		snprintf(err, errlen, "%s: cannot read %s: %s", key, path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > TLS_FILE_MAX) {
		snprintf(err, errlen,
		    "%s: %s is not a regular file of at most "
		    "%d bytes",
		    key, path, TLS_FILE_MAX);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void
describe(struct nb_tls *t)
{
	X509 *cert = SSL_CTX_get0_certificate(t->ctx);
	char subject[200] = "-", quoted[240], expiry[32] = "-";
	const ASN1_TIME *na;
	struct tm tm;

	if (cert == NULL) {
		snprintf(t->desc, sizeof(t->desc), "subject=-");
		return;
	}
	X509_NAME_oneline(
	    X509_get_subject_name(cert), subject, (int)sizeof(subject));
	na = X509_get0_notAfter(cert);
	if (na != NULL && ASN1_TIME_to_tm(na, &tm) == 1 &&
	    strftime(expiry, sizeof(expiry), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(expiry, sizeof(expiry), "-");
	snprintf(t->desc, sizeof(t->desc), "subject=%s not_after=%s",
	    nb_log_quote(quoted, sizeof(quoted), subject), expiry);
}

struct nb_tls *
nb_tls_new(
    const char *cert_file, const char *key_file, char *err, size_t errlen)
{
	struct nb_tls *t = NULL;
	char why[256];

	if (readable("tls.cert_file", cert_file, err, errlen) == -1 ||
	    readable("tls.key_file", key_file, err, errlen) == -1)
		return NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "tls: out of memory");
		return NULL;
	}
	ERR_clear_error();
	if ((t->ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		ssl_error(why, sizeof(why));
		snprintf(err, errlen, "tls: cannot create a context: %s", why);
		goto fail;
	}
	if (SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(t->ctx, NB_TLS_CIPHERS_TLS12) != 1 ||
	    SSL_CTX_set1_groups_list(t->ctx, NB_TLS_GROUPS) != 1) {
		ssl_error(why, sizeof(why));
		snprintf(
		    err, errlen, "tls: cannot apply the defaults: %s", why);
		goto fail;
	}
	SSL_CTX_set_options(t->ctx,
	    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
		SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Idle connections should not each pin two 16 KiB buffers. */
	SSL_CTX_set_mode(t->ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cert_file) != 1) {
		ssl_error(why, sizeof(why));
		snprintf(err, errlen,
		    "tls.cert_file: %s is not a PEM certificate (chain): %s",
		    cert_file, why);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(t->ctx, key_file, SSL_FILETYPE_PEM) !=
	    1) {
		ssl_error(why, sizeof(why));
		snprintf(err, errlen,
		    "tls.key_file: %s is not a usable PEM private key for "
		    "tls.cert_file: %s",
		    key_file, why);
		goto fail;
	}
	if (SSL_CTX_check_private_key(t->ctx) != 1) {
		ssl_error(why, sizeof(why));
		snprintf(err, errlen,
		    "tls.key_file: the key does not match tls.cert_file: %s",
		    why);
		goto fail;
	}
	describe(t);
	return t;
fail:
	nb_tls_free(t);
	return NULL;
}

void
nb_tls_free(struct nb_tls *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

struct bufferevent *
nb_tls_bev_new(struct nb_tls *t, struct event_base *base)
{
	struct bufferevent *bev;
	SSL *ssl;

	if ((ssl = SSL_new(t->ctx)) == NULL) {
		ERR_clear_error();
		return NULL;
	}
	/* With BEV_OPT_CLOSE_ON_FREE the bufferevent owns ssl, even on error.
	 */
	bev = bufferevent_openssl_socket_new(
	    base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return NULL;
	/*
	 * Many HTTP clients close without close_notify; that is not an
	 * attack on a request that was already answered.
	 */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

const char *
nb_tls_describe(const struct nb_tls *t)
{
	return t != NULL ? t->desc : "-";
}
