/* SPDX-License-Identifier: ISC */
/*
 * source: the edits behind `nudgebridge source add|rotate|retire`.
 *
 * The command line is source_cmd.c; each edit locks the configuration file
 * (flock() on the file a symlink names, not the link), reads it as plain JSON,
 * changes the "sources" array and writes the whole document back through the
 * link; nothing else in the file is touched (jansson keeps the key order;
 * formatting becomes a 2-space indent).  Before the new file replaces the old
 * one it is loaded with nb_config_load(), the same code the daemon runs, so a
 * command can never leave a file that a SIGHUP would refuse.  New keys come
 * from libsodium (nb_sig_new_secret(), nb_sig_keypair()); the half Nudgespot
 * needs is printed once and wiped, and a private key is never stored.
 * Keys are named by number or by fingerprint (SHA-256 of the key string),
 * so `list` never has to print one.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "nudgebridge/config.h"
#include "nudgebridge/sig.h"
#include "nudgebridge/source.h"

#define SOURCE_FP_MIN	   4 /* shortest fingerprint prefix accepted */
#define SOURCE_PLACEHOLDER "placeholder-until-the-variable-is-set"
#define SOURCE_LOCK_TRIES  100 /* files replaced while we wait to lock */

static const char *const key_lists[] = {"signing_secrets", "public_keys"};

void
nb_source_fingerprint(const char *key, char out[NB_SOURCE_FP_LEN])
{
	nb_sig_fingerprint(key, out);
}

json_t *
nb_source_find(const json_t *doc, const char *name)
{
	json_t *arr = json_object_get(doc, "sources"), *s;
	size_t i;

	json_array_foreach(arr, i, s)
	{
		if (json_is_object(s) &&
		    json_is_string(json_object_get(s, "name")) &&
		    strcmp(json_string_value(json_object_get(s, "name")),
			name) == 0)
			return s;
	}
	return NULL;
}

static int
env_name_valid(const char *v)
{
	size_t i;

	if (v == NULL || *v == '\0' || isdigit((unsigned char)*v))
		return 0;
	for (i = 0; v[i] != '\0'; i++)
		if (!isalnum((unsigned char)v[i]) && v[i] != '_')
			return 0;
	return 1;
}

/* Appends s to the array member list of src (created if missing). */
static int
append_key(json_t *src, const char *list, const char *s)
{
	json_t *arr = json_object_get(src, list);

	if (arr == NULL) {
		if ((arr = json_array()) == NULL ||
		    json_object_set_new(src, list, arr) == -1)
			return -1;
	}
	if (!json_is_array(arr))
		return -1;
	return json_array_append_new(arr, json_string(s));
}

/*
 * Makes a new key for src: a secret in signing_secrets, or a pair whose
 * public half goes to public_keys.  key receives what Nudgespot needs.
 */
static int
new_key(json_t *src, int ed25519, char *key, size_t keylen, char *err,
    size_t errlen)
{
	char pk[128];
	int rc = -1;

	if (ed25519) {
		if (nb_sig_keypair(pk, sizeof(pk), key, keylen) == -1)
			goto fail;
		if (append_key(src, "public_keys", pk) == -1)
			goto nomem;
	} else {
		if (nb_sig_new_secret(key, keylen) == -1)
			goto fail;
		if (append_key(src, "signing_secrets", key) == -1)
			goto nomem;
	}
	rc = 0;
	goto out;
fail:
	snprintf(err, errlen, "cannot make a key");
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
out:
	if (rc == -1)
		sodium_memzero(key, keylen);
	sodium_memzero(pk, sizeof(pk));
	return rc;
}

/* The "oauth" object of s, or NULL (and 0) without OAuth options. */
static int
oauth_of(const struct nb_source_new *s, json_t **out, char *err, size_t errlen)
{
	json_t *o;

	*out = NULL;
	if (s->oauth_client_id == NULL && s->oauth_key_id == NULL &&
	    s->oauth_key_file == NULL && s->oauth_key_env == NULL &&
	    s->oauth_auth_server == NULL)
		return 0;
	if (s->oauth_client_id == NULL || s->oauth_key_id == NULL ||
	    (s->oauth_key_file == NULL) == (s->oauth_key_env == NULL)) {
		snprintf(err, errlen,
		    "OAuth needs --oauth-client-id, --oauth-key-id and one of "
		    "--oauth-key-file and --oauth-key-env");
		return -1;
	}
	if (s->oauth_key_env != NULL && !env_name_valid(s->oauth_key_env)) {
		snprintf(err, errlen,
		    "--oauth-key-env: not an environment variable name");
		return -1;
	}
	if ((o = json_pack("{s:s, s:s}", "client_id", s->oauth_client_id,
		 "key_id", s->oauth_key_id)) == NULL ||
	    json_object_set_new(o,
		s->oauth_key_file != NULL ? "private_key_file"
					  : "private_key_env",
		json_string(s->oauth_key_file != NULL ? s->oauth_key_file
						      : s->oauth_key_env)) ==
		-1 ||
	    (s->oauth_auth_server != NULL &&
		json_object_set_new(o, "auth_server",
		    json_string(s->oauth_auth_server)) == -1)) {
		json_decref(o);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*out = o;
	return 0;
}

int
nb_source_add(json_t *doc, const struct nb_source_new *s, char *key,
    size_t keylen, char *err, size_t errlen)
{
	json_t *arr, *src = NULL, *oauth = NULL;

	if (!json_is_object(doc)) {
		snprintf(err, errlen, "the configuration is not a JSON object");
		return -1;
	}
	if (s->name == NULL || !nb_config_source_name_valid(s->name)) {
		snprintf(
		    err, errlen, "source names are [a-z0-9][a-z0-9_-]{0,62}");
		return -1;
	}
	if (nb_source_find(doc, s->name) != NULL) {
		snprintf(
		    err, errlen, "a source named %s already exists", s->name);
		return -1;
	}
	if (!env_name_valid(s->write_key_env)) {
		snprintf(err, errlen,
		    "--write-key-env: not an environment variable name");
		return -1;
	}
	if (s->region != NULL && strcmp(s->region, "us") != 0 &&
	    strcmp(s->region, "eu") != 0) {
		snprintf(err, errlen, "--region: us or eu");
		return -1;
	}
	if (oauth_of(s, &oauth, err, errlen) == -1)
		return -1;
	if ((arr = json_object_get(doc, "sources")) == NULL) {
		if ((arr = json_array()) == NULL ||
		    json_object_set_new(doc, "sources", arr) == -1)
			goto nomem;
	}
	if (!json_is_array(arr)) {
		json_decref(oauth);
		snprintf(err, errlen, "sources: not an array");
		return -1;
	}
	if ((src = json_pack("{s:s}", "name", s->name)) == NULL)
		goto nomem;
	if (new_key(src, s->ed25519, key, keylen, err, errlen) == -1) {
		json_decref(src);
		json_decref(oauth);
		return -1;
	}
	if (json_object_set_new(
		src, "write_key_env", json_string(s->write_key_env)) == -1 ||
	    (s->region != NULL &&
		json_object_set_new(src, "region", json_string(s->region)) ==
		    -1) ||
	    (oauth != NULL && json_object_set(src, "oauth", oauth) == -1) ||
	    json_array_append_new(arr, src) == -1) {
		sodium_memzero(key, keylen);
		goto nomem;
	}
	json_decref(oauth);
	return 0;
nomem:
	json_decref(oauth);
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* The number of inline keys of src, and whether others come from afar. */
static size_t
count_keys(const json_t *src, int *indirect)
{
	char name[64];
	size_t i, n = 0;

	*indirect = 0;
	for (i = 0; i < 2; i++) {
		n += json_array_size(json_object_get(src, key_lists[i]));
		snprintf(name, sizeof(name), "%s_env", key_lists[i]);
		if (json_object_get(src, name) != NULL)
			*indirect = 1;
		snprintf(name, sizeof(name), "%s_file", key_lists[i]);
		if (json_object_get(src, name) != NULL)
			*indirect = 1;
	}
	return n;
}

int
nb_source_rotate(json_t *doc, const char *name, int ed25519, char *key,
    size_t keylen, int *id, char *err, size_t errlen)
{
	json_t *src;
	int indirect;

	if ((src = nb_source_find(doc, name)) == NULL) {
		snprintf(err, errlen, "no source named %s", name);
		return -1;
	}
	if (new_key(src, ed25519, key, keylen, err, errlen) == -1)
		return -1;
	/* Secrets are numbered first, then public keys. */
	if (ed25519)
		*id = (int)count_keys(src, &indirect) - 1;
	else
		*id = (int)json_array_size(
			  json_object_get(src, "signing_secrets")) -
		    1;
	return 0;
}

/*
 * The key id names among src's inline keys: its position (signing_secrets
 * first, then public_keys) in *at.  0, or -1 with err.
 */
static int
key_find(const json_t *src, const char *name, const char *id, size_t *at,
    char *err, size_t errlen)
{
	char fp[NB_SOURCE_FP_LEN];
	json_t *arr, *v;
	size_t idlen = strlen(id), i, k, n, matches = 0, base;
	long long num;
	char *end;
	int indirect;

	n = count_keys(src, &indirect);
	errno = 0;
	num = strtoll(id, &end, 10);
	if (*id != '\0' && *end == '\0' && errno == 0 && idlen < 4) {
		if (num < 0 || (size_t)num >= n) {
			snprintf(err, errlen,
			    "source %s has no key number %s (see source list)",
			    name, id);
			return -1;
		}
		*at = (size_t)num;
		return 0;
	}
	if (idlen < SOURCE_FP_MIN || idlen > 8) {
		snprintf(err, errlen,
		    "--secret-id: a key number or 4 to 8 hex digits "
		    "of its fingerprint");
		return -1;
	}
	base = 0;
	for (k = 0; k < 2; k++) {
		arr = json_object_get(src, key_lists[k]);
		json_array_foreach(arr, i, v)
		{
			if (!json_is_string(v))
				continue;
			nb_source_fingerprint(json_string_value(v), fp);
			if (strncasecmp(fp, id, idlen) == 0) {
				*at = base + i;
				matches++;
			}
		}
		base += json_array_size(arr);
	}
	if (matches != 1) {
		snprintf(err, errlen,
		    matches == 0 ? "no key of source %s has that "
				   "fingerprint"
				 : "several keys of source %s match; give "
				   "more digits",
		    name);
		return -1;
	}
	return 0;
}

/*
 * The key at position at of src (as key_find() counts): its array, the
 * array's name and its index there.  NULL when there is none.
 */
static json_t *
key_at(const json_t *src, size_t at, json_t **arr, const char **list,
    size_t *index)
{
	size_t k, base = 0;
	json_t *a;

	for (k = 0; k < 2; k++) {
		a = json_object_get(src, key_lists[k]);
		if (at < base + json_array_size(a)) {
			*arr = a;
			*list = key_lists[k];
			*index = at - base;
			return json_array_get(a, at - base);
		}
		base += json_array_size(a);
	}
	return NULL;
}

int
nb_source_key_find(const json_t *doc, const char *name, const char *id,
    char fp[NB_SOURCE_FP_LEN], char *err, size_t errlen)
{
	const json_t *src;
	const char *list;
	json_t *arr, *key;
	size_t at, index;

	if ((src = nb_source_find(doc, name)) == NULL) {
		snprintf(err, errlen, "no source named %s", name);
		return -1;
	}
	if (key_find(src, name, id, &at, err, errlen) == -1)
		return -1;
	if ((key = key_at(src, at, &arr, &list, &index)) == NULL ||
	    !json_is_string(key)) {
		snprintf(
		    err, errlen, "source %s: key %s is not a string", name, id);
		return -1;
	}
	nb_source_fingerprint(json_string_value(key), fp);
	return 0;
}

int
nb_source_retire(
    json_t *doc, const char *name, const char *id, char *err, size_t errlen)
{
	const char *list;
	json_t *src, *arr;
	size_t at, index;
	int indirect;

	if ((src = nb_source_find(doc, name)) == NULL) {
		snprintf(err, errlen, "no source named %s", name);
		return -1;
	}
	if (key_find(src, name, id, &at, err, errlen) == -1)
		return -1;
	if (count_keys(src, &indirect) == 1 && !indirect) {
		snprintf(err, errlen,
		    "that is the last key of source %s; add a new one first "
		    "(source rotate)",
		    name);
		return -1;
	}
	if (key_at(src, at, &arr, &list, &index) == NULL ||
	    json_array_remove(arr, index) == -1) {
		snprintf(err, errlen, "cannot remove the key");
		return -1;
	}
	if (json_array_size(arr) == 0)
		json_object_del(src, list);
	return 0;
}

static int
fsync_dir(const char *path)
{
	char copy[PATH_MAX];
	int fd, rc;

	if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
		return -1;
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY)) == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static int
write_all(int fd, const char *p, size_t len)
{
	ssize_t w;

	while (len > 0) {
		w = write(fd, p, len);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int
nb_source_save(const char *path, const json_t *doc, char *err, size_t errlen)
{
	struct nb_config *cfg = NULL;
	struct stat st;
	char target[PATH_MAX], tmp[PATH_MAX + 8], lerr[512];
	char *text = NULL;
	size_t len = 0;
	int fd = -1, rc = -1, have_tmp = 0;

	/* Through a symlink: the daemon reads the file the link names. */
	if (realpath(path, target) == NULL || stat(target, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", target);
	if ((text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) ==
	    NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	len = strlen(text);
	if ((fd = mkstemp(tmp)) == -1) {
		snprintf(err, errlen, "cannot create a file next to %s: %s",
		    path, strerror(errno));
		goto out;
	}
	have_tmp = 1;
	/* Same owner and mode: the file holds secrets. */
	if (fchmod(fd, st.st_mode & 07777) == -1 ||
	    (fchown(fd, st.st_uid, st.st_gid) == -1 && errno != EPERM)) {
		snprintf(err, errlen, "cannot set the permissions of %s: %s",
		    tmp, strerror(errno));
		goto out;
	}
	if (write_all(fd, text, len) == -1 || write_all(fd, "\n", 1) == -1 ||
	    fsync(fd) == -1) {
		snprintf(
		    err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) == -1) {
		fd = -1;
		snprintf(
		    err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (nb_config_load(&cfg, tmp, lerr, sizeof(lerr)) == -1) {
		snprintf(err, errlen,
		    "the changed configuration would not load (%s); %s is "
		    "unchanged",
		    lerr, path);
		goto out;
	}
	if (rename(tmp, target) == -1) {
		snprintf(err, errlen, "cannot replace %s: %s", target,
		    strerror(errno));
		goto out;
	}
	have_tmp = 0;
	if (fsync_dir(target) == -1) {
		snprintf(err, errlen,
		    "%s replaced, but its folder could not "
		    "be synced",
		    path);
		goto out;
	}
	rc = 0;
out:
	nb_config_unref(cfg);
	if (fd != -1)
		close(fd);
	if (have_tmp)
		unlink(tmp);
	if (text != NULL) {
		sodium_memzero(text, len);
		free(text);
	}
	return rc;
}

/* The inode fd has open is still the one at path. */
static int
same_file(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && stat(path, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int
nb_source_edit_begin(struct nb_source_edit *e, const char *path, json_t **doc,
    char *err, size_t errlen)
{
	char again[PATH_MAX];
	json_error_t jerr;
	int tries;

	*doc = NULL;
	e->fd = -1;
	for (tries = 0; tries < SOURCE_LOCK_TRIES; tries++) {
		if (realpath(path, e->target) == NULL ||
		    (e->fd = open(e->target, O_RDONLY | O_CLOEXEC)) == -1)
			goto fail;
		if (flock(e->fd, LOCK_EX) == -1)
			goto fail;
		/* The edit before ours may have replaced the file (or link). */
		if (realpath(path, again) != NULL &&
		    strcmp(again, e->target) == 0 && same_file(e->fd, again))
			break;
		close(e->fd);
		e->fd = -1;
	}
	if (e->fd == -1) {
		snprintf(err, errlen, "%s: changes too often to lock", path);
		return -1;
	}
	if ((*doc = json_loadfd(e->fd, JSON_REJECT_DUPLICATES, &jerr)) ==
	    NULL) {
		snprintf(
		    err, errlen, "%s: line %d: %s", path, jerr.line, jerr.text);
		goto unlock;
	}
	if (!json_is_object(*doc)) {
		snprintf(err, errlen, "%s: not a JSON object", path);
		json_decref(*doc);
		*doc = NULL;
		goto unlock;
	}
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
unlock:
	nb_source_edit_end(e);
	return -1;
}

void
nb_source_edit_end(struct nb_source_edit *e)
{
	if (e->fd != -1)
		close(e->fd); /* and with it the lock */
	e->fd = -1;
}

/* A fresh RSA key as PEM (malloc'd), to stand in for an unset variable. */
static char *
placeholder_pem(void)
{
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *k = NULL;
	BIO *bio = NULL;
	char *data, *pem = NULL;
	long n;

	if ((ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL)) != NULL &&
	    EVP_PKEY_keygen_init(ctx) == 1 &&
	    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) == 1 &&
	    EVP_PKEY_keygen(ctx, &k) == 1 &&
	    (bio = BIO_new(BIO_s_mem())) != NULL &&
	    PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) == 1 &&
	    (n = BIO_get_mem_data(bio, &data)) > 0 &&
	    (pem = malloc((size_t)n + 1)) != NULL) {
		memcpy(pem, data, (size_t)n);
		pem[n] = '\0';
	}
	BIO_free(bio);
	EVP_PKEY_free(k);
	EVP_PKEY_CTX_free(ctx);
	return pem;
}

/*
 * A write key usually reaches only the daemon's environment (systemd's
 * EnvironmentFile), not the operator's shell.  Write keys are opaque, so
 * checking the file with a stand-in value tells as much; so does a
 * throw-away RSA key for an OAuth private_key_env.  Every other secret
 * (signing keys, token, DSN) is checked for real.  Returns how many
 * variables were set, for unset_placeholders().
 */
static size_t
set_placeholders(const json_t *doc, const char **names, size_t max)
{
	json_t *arr = json_object_get(doc, "sources"), *s;
	char *pem = NULL;
	const char *v;
	size_t i, n = 0;

	json_array_foreach(arr, i, s)
	{
		v = json_string_value(json_object_get(s, "write_key_env"));
		if (v != NULL && n < max && env_name_valid(v) &&
		    getenv(v) == NULL && setenv(v, SOURCE_PLACEHOLDER, 1) == 0)
			names[n++] = v;
		/* An OAuth key must parse: the stand-in is a throw-away key. */
		v = json_string_value(json_object_get(
		    json_object_get(s, "oauth"), "private_key_env"));
		if (v == NULL || n == max || !env_name_valid(v) ||
		    getenv(v) != NULL ||
		    (pem == NULL && (pem = placeholder_pem()) == NULL))
			continue;
		if (setenv(v, pem, 1) == 0)
			names[n++] = v;
	}
	free(pem);
	return n;
}

static void
unset_placeholders(const char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		unsetenv(names[i]);
}

/*
 * nb_config_load() of path (cfg set) or nb_source_save() of doc to path
 * (cfg NULL), with the placeholders of doc's sources set around it.
 */
static int
with_placeholders(struct nb_config **cfg, const char *path, const json_t *doc,
    char *err, size_t errlen)
{
	const char *names[2 * NB_CONFIG_MAX_SOURCES];
	size_t n;
	int rc;

	n = set_placeholders(doc, names, 2 * NB_CONFIG_MAX_SOURCES);
	rc = cfg != NULL ? nb_config_load(cfg, path, err, errlen)
			 : nb_source_save(path, doc, err, errlen);
	unset_placeholders(names, n);
	return rc;
}

int
nb_source_config_load(struct nb_config **cfg, const char *path,
    const json_t *doc, char *err, size_t errlen)
{
	return with_placeholders(cfg, path, doc, err, errlen);
}

int
nb_source_save_standin(
    const char *path, const json_t *doc, char *err, size_t errlen)
{
	return with_placeholders(NULL, path, doc, err, errlen);
}
