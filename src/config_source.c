/* SPDX-License-Identifier: ISC */
/*
 * config_source: the "sources" section, one struct nb_source per sender.
 *
 * A source is read whole or refused: its name (unique, the store's bound),
 * its keyring (signing secrets and public keys from arrays, "_env" or
 * "_file"), its write key, where it sends (endpoint, region, the global
 * endpoint, US), its mapping (event names, anonymous id), its OAuth
 * client and its filters.  A half-built source is counted before it is
 * read, so config.c frees it like the others.  Any thread.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nudgebridge/bounds.h"
#include "nudgebridge/config_source.h"
#include "nudgebridge/oauth.h"
#include "nudgebridge/sig.h"

#include "config_read.h"

#define EVENT_TYPE_MAX 64
#define EVENT_NAME_MAX 200

static const char *const source_keys[] = {"name", "signing_secrets",
    "signing_secrets_env", "signing_secrets_file", "public_keys",
    "public_keys_env", "public_keys_file", "write_key", "write_key_env",
    "write_key_file", "region", "endpoint", "event_names", "anonymous_id",
    "oauth", "silent_after_s", "drop_types", NULL};
static const char *const oauth_keys[] = {"client_id", "key_id",
    "private_key_env", "private_key_file", "auth_server", NULL};

typedef int (*add_key_fn)(struct nb_keyring *, const char *);
/*
 * Adds every key of one list (key: array, key_env: separated by spaces or
 * commas, key_file: one per line, '#' comments) to the keyring.
 */
static int
add_keys(struct nb_config_ctx *c, const json_t *obj, const char *base,
    const char *key, add_key_fn add, const char *what, struct nb_keyring *keys)
{
	char path[NB_CONFIG_KEY_PATH_MAX], sub[NB_CONFIG_KEY_PATH_MAX];
	const char *seps;
	char *text = NULL, *p, *end, *tok;
	size_t i, len = 0, entry;
	json_t *v, *item;
	int rc = -1, isfile;

	if ((v = nb_config_member(obj, key)) != NULL) {
		nb_config_key_path(path, sizeof(path), base, key);
		if (!json_is_array(v))
			return nb_config_fail(
			    c, path, "must be an array of strings");
		json_array_foreach(v, i, item)
		{
			if (snprintf(sub, sizeof(sub), "%s[%zu]", path, i) < 0)
				sub[0] = '\0';
			if (!json_is_string(item))
				return nb_config_fail(
				    c, sub, "must be a string");
			if (nb_sig_keyring_count(keys) >= NB_CONFIG_MAX_KEYS)
				return nb_config_fail(c, sub,
				    "more than %d keys", NB_CONFIG_MAX_KEYS);
			if (strlen(json_string_value(item)) !=
				json_string_length(item) ||
			    add(keys, json_string_value(item)) == -1)
				return nb_config_fail(
				    c, sub, "not a valid %s", what);
		}
	}
	for (isfile = 0; isfile <= 1; isfile++) {
		if (snprintf(sub, sizeof(sub), "%s%s", key,
			isfile ? "_file" : "_env") >= (int)sizeof(sub))
			return nb_config_fail(c, key, "key name too long");
		if (nb_config_member(obj, sub) == NULL)
			continue;
		nb_config_key_path(path, sizeof(path), base, sub);
		if (nb_config_read_indirect(c, obj, base, key,
			isfile ? "_file" : "_env", &text, &len) == -1)
			goto out;
		seps = isfile ? "\n" : " ,\t\r\n";
		entry = 0;
		for (p = text; p < text + len; p = end + 1) {
			end = p + strcspn(p, seps);
			*end = '\0';
			entry++;
			tok = p;
			while (isspace((unsigned char)*tok))
				tok++;
			for (i = strlen(tok);
			     i > 0 && isspace((unsigned char)tok[i - 1]); i--)
				tok[i - 1] = '\0';
			if (tok[0] == '\0' || (isfile && tok[0] == '#'))
				continue;
			if (nb_sig_keyring_count(keys) >= NB_CONFIG_MAX_KEYS) {
				nb_config_fail(c, path, "more than %d keys",
				    NB_CONFIG_MAX_KEYS);
				goto out;
			}
			if (add(keys, tok) == -1) {
				nb_config_fail(c, path,
				    "%s %zu is not a valid %s",
				    isfile ? "line" : "entry", entry, what);
				goto out;
			}
		}
		nb_config_wipe_free_len(text, len);
		text = NULL;
	}
	rc = 0;
out:
	nb_config_wipe_free_len(text, len);
	return rc;
}

static int
parse_event_names(struct nb_config_ctx *c, struct nb_source *src,
    const json_t *o, const char *base)
{
	char path[NB_CONFIG_KEY_PATH_MAX];
	const char *k;
	json_t *names, *v;
	size_t kl;

	if (nb_config_get_object(c, o, base, "event_names", NULL, &names) == -1)
		return -1;
	if ((src->mapping.event_names = json_object()) == NULL)
		return nb_config_fail(c, base, "out of memory");
	if (names == NULL)
		return 0;
	json_object_foreach(names, k, v)
	{
		if (snprintf(path, sizeof(path), "%s.event_names[\"%s\"]", base,
			k) < 0)
			path[0] = '\0';
		kl = strlen(k);
		if (kl == 0 || kl > EVENT_TYPE_MAX)
			return nb_config_fail(c, path,
			    "type must be 1..%d characters", EVENT_TYPE_MAX);
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > EVENT_NAME_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return nb_config_fail(c, path,
			    "must be a string of 1..%d characters",
			    EVENT_NAME_MAX);
		if (json_object_set_new(src->mapping.event_names, k,
			json_string(json_string_value(v))) == -1)
			return nb_config_fail(c, path, "out of memory");
	}
	return 0;
}

/* "drop_types": the types filter.h acknowledges and forgets. */
static int
parse_drop_types(struct nb_config_ctx *c, struct nb_source *src,
    const json_t *o, const char *base)
{
	char path[NB_CONFIG_KEY_PATH_MAX], msg[160];
	const json_t *v;

	if ((v = nb_config_member(o, "drop_types")) == NULL)
		return 0;
	nb_config_key_path(path, sizeof(path), base, "drop_types");
	if (nb_filter_parse(&src->drop, v, msg, sizeof(msg)) == -1)
		return nb_config_fail(c, NULL, "%s%s", path, msg);
	return 0;
}

/*
 * "oauth": client_id, key_id, the private key from private_key_file or
 * private_key_env (read like every secret, parsed and wiped here) and
 * auth_server, by default the one of the source's region.
 */
static int
parse_oauth(struct nb_config_ctx *c, struct nb_source *src, const json_t *o,
    const char *base, int eu)
{
	char b[NB_CONFIG_KEY_PATH_MAX], path[NB_CONFIG_KEY_PATH_MAX], msg[160];
	struct nb_oauth_config *oc = &src->oauth;
	const char *kind = NULL;
	char *pem = NULL;
	size_t len = 0;
	json_t *v;

	if (nb_config_get_object(c, o, base, "oauth", oauth_keys, &v) == -1)
		return -1;
	if (v == NULL)
		return 0;
	nb_config_key_path(b, sizeof(b), base, "oauth");
	if (nb_config_get_string(c, v, b, "client_id", &oc->client_id) == -1 ||
	    nb_config_get_string(c, v, b, "key_id", &oc->key_id) == -1 ||
	    nb_config_get_endpoint(c, v, b, "auth_server", &oc->auth_server) ==
		-1)
		return -1;
	if (oc->client_id == NULL || oc->key_id == NULL ||
	    strlen(oc->client_id) > NB_OAUTH_ID_MAX ||
	    strlen(oc->key_id) > NB_OAUTH_ID_MAX)
		return nb_config_fail(c, b,
		    "needs client_id and key_id (1..%d bytes)",
		    NB_OAUTH_ID_MAX);
	if (nb_config_member(v, "private_key_file") != NULL)
		kind = "_file";
	if (nb_config_member(v, "private_key_env") != NULL)
		kind = kind == NULL ? "_env" : "";
	if (kind == NULL || kind[0] == '\0')
		return nb_config_fail(
		    c, b, "needs one of private_key_file and private_key_env");
	if (nb_config_read_indirect(c, v, b, "private_key", kind, &pem, &len) ==
	    -1)
		return -1;
	if (snprintf(path, sizeof(path), "%s.private_key%s", b, kind) < 0)
		path[0] = '\0';
	if (nb_oauth_key_load(&oc->key, pem, len, msg, sizeof(msg)) == -1) {
		free(pem);
		return nb_config_fail(c, path, "%s", msg);
	}
	free(pem);
	if (oc->auth_server == NULL &&
	    (oc->auth_server = strdup(
		 eu ? NB_OAUTH_SERVER_EU : NB_OAUTH_SERVER_US)) == NULL)
		return nb_config_fail(c, b, "out of memory");
	return 0;
}

static int
parse_source(struct nb_config_ctx *c, struct nb_source *all, size_t idx,
    const char *global_endpoint, const json_t *o)
{
	struct nb_source *src = &all[idx];
	static const char *const regions[] = {"us", "eu", NULL};
	static const char *const anons[] = {"email", "sha256", NULL};
	char base[NB_CONFIG_KEY_PATH_MAX], path[NB_CONFIG_KEY_PATH_MAX];
	char *endpoint = NULL;
	int region = 0, anon = 0, rc = -1;
	size_t i;

	if (snprintf(base, sizeof(base), "sources[%zu]", idx) < 0)
		return -1;
	if (!json_is_object(o))
		return nb_config_fail(c, base, "must be an object");
	if (nb_config_check_keys(c, o, base, source_keys) == -1)
		return -1;
	nb_config_key_path(path, sizeof(path), base, "name");
	if (nb_config_member(o, "name") == NULL)
		return nb_config_fail(c, path, "required");
	if (nb_config_get_string(c, o, base, "name", &src->name) == -1)
		return -1;
	if (!nb_config_source_name_valid(src->name))
		return nb_config_fail(
		    c, path, "must match [a-z0-9][a-z0-9_-]{0,62}");
	for (i = 0; i < idx; i++) {
		if (strcmp(all[i].name, src->name) == 0)
			return nb_config_fail(
			    c, path, "duplicate source name %s", src->name);
	}
	if ((src->keys = nb_sig_keyring_new()) == NULL)
		return nb_config_fail(c, base, "out of memory");
	if (add_keys(c, o, base, "signing_secrets", nb_sig_keyring_add_secret,
		"whsec_ secret (base64 of 24..64 bytes)", src->keys) == -1 ||
	    add_keys(c, o, base, "public_keys", nb_sig_keyring_add_public_key,
		"whpk_ public key (base64 of 32 bytes)", src->keys) == -1)
		return -1;
	if (nb_sig_keyring_count(src->keys) == 0)
		return nb_config_fail(
		    c, base, "needs at least one signing secret or public key");
	if (nb_config_get_secret(c, o, base, "write_key", &src->write_key) ==
	    -1)
		return -1;
	if (src->write_key == NULL)
		return nb_config_fail_key(c, base, "write_key",
		    "required (or write_key_env, write_key_file)");
	if (nb_config_get_enum(
		c, o, base, "region", regions, "us, eu", &region) == -1 ||
	    nb_config_get_int(c, o, base, "silent_after_s", 0,
		NB_CONFIG_TEN_YEARS_S, &src->silent_after_s) == -1 ||
	    nb_config_get_enum(c, o, base, "anonymous_id", anons,
		"email, sha256", &anon) == -1 ||
	    nb_config_get_endpoint(c, o, base, "endpoint", &endpoint) == -1 ||
	    parse_event_names(c, src, o, base) == -1 ||
	    parse_drop_types(c, src, o, base) == -1)
		goto out;
	src->mapping.anon =
	    anon == 1 ? NB_SEGMENT_ANON_SHA256 : NB_SEGMENT_ANON_EMAIL;
	/* Most specific first: endpoint, explicit region, global, us. */
	if (endpoint != NULL) {
		src->endpoint = endpoint;
		endpoint = NULL;
	} else if (nb_config_member(o, "region") != NULL) {
		src->endpoint =
		    strdup(region == 1 ? NB_ENDPOINT_EU : NB_ENDPOINT_US);
	} else if (global_endpoint != NULL) {
		src->endpoint = strdup(global_endpoint);
	} else {
		src->endpoint = strdup(NB_ENDPOINT_US);
	}
	if (src->endpoint == NULL) {
		nb_config_fail(c, base, "out of memory");
		goto out;
	}
	if (parse_oauth(c, src, o, base,
		nb_config_member(o, "region") != NULL
		    ? region == 1
		    : strcmp(src->endpoint, NB_ENDPOINT_EU) == 0) == -1)
		goto out;
	rc = 0;
out:
	free(endpoint);
	return rc;
}

int
nb_config_parse_sources(struct nb_config_ctx *c, const json_t *root,
    const char *global_endpoint, struct nb_source **sources, size_t *nsources)
{
	json_t *arr, *item;
	size_t i, n;

	if ((arr = nb_config_member(root, "sources")) == NULL)
		return nb_config_fail(c, "sources", "required");
	if (!json_is_array(arr))
		return nb_config_fail(c, "sources", "must be an array");
	if ((n = json_array_size(arr)) == 0)
		return nb_config_fail(
		    c, "sources", "must list at least one source");
	if (n > NB_CONFIG_MAX_SOURCES)
		return nb_config_fail(c, "sources", "more than %d sources",
		    NB_CONFIG_MAX_SOURCES);
	if ((*sources = calloc(n, sizeof(**sources))) == NULL)
		return nb_config_fail(c, "sources", "out of memory");
	json_array_foreach(arr, i, item)
	{
		/* Counted first so that a half-built source is freed too. */
		*nsources = i + 1;
		if (parse_source(c, *sources, i, global_endpoint, item) == -1)
			return -1;
	}
	return 0;
}

void
nb_config_source_clear(struct nb_source *src)
{
	free(src->name);
	nb_sig_keyring_free(src->keys);
	nb_config_wipe_free(src->write_key);
	free(src->endpoint);
	nb_segment_mapping_clear(&src->mapping);
	nb_oauth_config_clear(&src->oauth);
	nb_filter_clear(&src->drop);
}

int
nb_config_source_name_valid(const char *name)
{
	size_t i;
	unsigned char ch;

	if (name == NULL || name[0] == '\0')
		return 0;
	for (i = 0; name[i] != '\0'; i++) {
		if (i >= NB_SOURCE_NAME_MAX)
			return 0;
		ch = (unsigned char)name[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
			continue;
		if (i > 0 && (ch == '_' || ch == '-'))
			continue;
		return 0;
	}
	return 1;
}
