/* SPDX-License-Identifier: ISC */
/*
 * tls: native TLS for the main listener, through libevent's OpenSSL
 * bufferevents.
 *
 * A struct nb_tls is one server context built from a certificate chain and
 * its private key (PEM files), with fixed modern defaults: TLS 1.2 at least
 * (1.3 preferred, since OpenSSL picks the highest both sides speak), AEAD
 * ciphers with forward secrecy only, the server's cipher order, no
 * compression, no renegotiation.  A reload builds a new context; each
 * connection holds a reference on the context it was accepted under, so
 * freeing the old one never cuts a connection short.  Main thread only.
 */
#ifndef NB_TLS_H
#define NB_TLS_H

#include <stddef.h>

struct bufferevent;
struct event_base;
struct nb_tls;

/*
 * "tls": native TLS on the main listener; both NULL: plain HTTP
 * (config.c fills it and checks it with nb_tls_new()).
 */
struct nb_tls_config {
	char *cert_file; /* absolute path of the PEM certificate (chain) */
	char *key_file;	 /* absolute path of the PEM private key */
};

/* The protocol floor and the TLS 1.2 cipher list (TLS 1.3 suites: OpenSSL's).
 */
#define NB_TLS_MIN_VERSION_STR "TLSv1.2"
#define NB_TLS_CIPHERS_TLS12                                                   \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define NB_TLS_GROUPS "X25519:P-256:P-384"

/*
 * Loads cert_file (a PEM certificate, optionally followed by its chain) and
 * key_file (the PEM private key) into a new server context and checks that
 * the key belongs to the certificate.  Returns NULL on failure with a
 * message in err that starts with the configuration key at fault
 * ("tls.cert_file: ..." or "tls.key_file: ...") and never quotes file
 * contents.  Paths must be absolute or relative to the working folder.
 */
struct nb_tls *nb_tls_new(
    const char *cert_file, const char *key_file, char *err, size_t errlen);

/*
 * Drops the caller's reference on the context; connections accepted under
 * it keep it alive until they close.  NULL is ok.
 */
void nb_tls_free(struct nb_tls *);

/*
 * A new OpenSSL bufferevent on base for one connection that evhttp is
 * about to accept: no socket yet (evhttp sets it), server side, closes the
 * socket and the SSL object when freed.  NULL on failure (out of memory).
 */
struct bufferevent *nb_tls_bev_new(struct nb_tls *, struct event_base *base);

/*
 * A short description of the certificate for logs: its subject and expiry
 * ("subject=CN=example.org not_after=2027-01-01T00:00:00Z").  Never a
 * secret.
 */
const char *nb_tls_describe(const struct nb_tls *);

#endif
