/* SPDX-License-Identifier: ISC */
/*
 * config: the JSON configuration file, loaded and validated as a whole.
 *
 * Every object of the file is checked against the list of keys it may hold,
 * so a typo ("max_atempts") is an error naming the key instead of a silently
 * ignored setting.  Every error is reported once, where it is found, as
 * "<key path>: <what is wrong>"; values are never quoted, since any of them
 * may be a secret.  Secrets read from "*_env" and "*_file" keys, and the
 * copies jansson made while parsing, are wiped before their memory goes
 * back to the allocator.  The struct is immutable once returned and shared
 * between threads by reference count; loading may run on any thread.
 */
#include <ctype.h>
#include <strings.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pwd.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "nudgebridge/config.h"
#include "nudgebridge/log.h"
#include "nudgebridge/oauth.h"
#include "nudgebridge/sig.h"
#include "nudgebridge/tls.h"

#define CONFIG_FILE_MAX	   (4 * 1024 * 1024) /* whole configuration */
#define SECRET_FILE_MAX	   (64 * 1024)	     /* one *_file secret source */
#define KEY_PATH_MAX	   160
#define EVENT_TYPE_MAX	   64
#define EVENT_NAME_MAX	   200
#define DEFAULT_LISTEN	   "127.0.0.1:8080"
#define DEFAULT_ADMIN	   "127.0.0.1:8081"
#define DEFAULT_STORE_PATH "nudgebridge.db"
#define TEN_YEARS_S	   (10LL * 366 * 86400)

struct ctx {
	char *err;
	size_t errlen;
	const char *dir; /* absolute folder that relative paths start from */
};

static const char *const top_keys[] = {"listen", "admin", "log", "store",
    "limits", "segment", "sources", "tls", "user", "http_threads", "alerts",
    NULL};
static const char *const tls_keys[] = {"cert_file", "key_file", NULL};
static const char *const admin_keys[] = {
    "listen", "token", "token_env", "token_file", "max_connections", NULL};
static const char *const log_keys[] = {"level", "format", NULL};
static const char *const store_keys[] = {"driver", "path", "dsn", "dsn_env",
    "dsn_file", "lease_s", "max_size_bytes", NULL};
static const char *const limits_keys[] = {"max_body_bytes",
    "timestamp_tolerance_s", "dedupe_window_s", "max_header_bytes",
    "read_timeout_s", "drain_s", "max_connections", "request_timeout_s",
    "max_inflight_body_bytes", NULL};
static const char *const segment_keys[] = {"endpoint", "flush_interval_ms",
    "max_batch_bytes", "max_batch_count", "max_message_bytes", "timeout_ms",
    "rate_limit_rps", "max_inflight", "pause_s", "retention_s", "retry", "gzip",
    NULL};
static const char *const retry_keys[] = {
    "initial_ms", "max_ms", "max_attempts", "max_age_s", NULL};
static const char *const source_keys[] = {"name", "signing_secrets",
    "signing_secrets_env", "signing_secrets_file", "public_keys",
    "public_keys_env", "public_keys_file", "write_key", "write_key_env",
    "write_key_file", "region", "endpoint", "event_names", "anonymous_id",
    "oauth", "silent_after_s", "drop_types", NULL};
static const char *const alerts_keys[] = {"webhook_url", "webhook_url_env",
    "webhook_url_file", "secret", "secret_env", "secret_file", "format",
    "repeat_s", "backlog_age_s", "store_unavailable_s", "interval_ms",
    "timeout_ms", "retry_initial_ms", "retry_max_ms", "max_age_s", NULL};
static const char *const oauth_keys[] = {"client_id", "key_id",
    "private_key_env", "private_key_file", "auth_server", NULL};

static int fail(struct ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Writes "path: message".  Key names come from the file and may hold
 * control characters; they are replaced so the message stays one line.
 */
static int
fail(struct ctx *c, const char *path, const char *fmt, ...)
{
	va_list ap;
	size_t n = 0;
	int r;

	if (c->err == NULL || c->errlen == 0)
		return -1;
	c->err[0] = '\0';
	if (path != NULL && path[0] != '\0') {
		r = snprintf(c->err, c->errlen, "%s: ", path);
		if (r < 0)
			return -1;
		n = (size_t)r < c->errlen ? (size_t)r : c->errlen - 1;
	}
	if (n < c->errlen - 1) {
		va_start(ap, fmt);
		r = vsnprintf(c->err + n, c->errlen - n, fmt, ap);
		va_end(ap);
		if (r < 0)
			c->err[n] = '\0';
	}
	for (n = 0; c->err[n] != '\0'; n++) {
		if ((unsigned char)c->err[n] < 0x20 || c->err[n] == 0x7f)
			c->err[n] = '?';
	}
	return -1;
}

/* base.key, or key alone at the top.  Truncated paths only shorten errors. */
static void
key_path(char *out, size_t outlen, const char *base, const char *key)
{
	int r;

	if (base == NULL || base[0] == '\0')
		r = snprintf(out, outlen, "%s", key);
	else
		r = snprintf(out, outlen, "%s.%s", base, key);
	if (r < 0 && outlen > 0)
		out[0] = '\0';
}

static void
wipe_free(char *s)
{
	if (s == NULL)
		return;
	sodium_memzero(s, strlen(s));
	free(s);
}

/*
 * jansson keeps its own copy of every string it parsed, secrets included,
 * and frees it without wiping; the document is overwritten here just before
 * its last reference is dropped.  The strings belong to the document, which
 * nobody else shares, so writing through the const pointer is safe.
 */
static void
json_wipe(json_t *v)
{
	const char *k;
	json_t *item;
	size_t i;
	char *s;

	if (json_is_string(v)) {
		s = (char *)(uintptr_t)json_string_value(v);
		sodium_memzero(s, json_string_length(v));
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, item) json_wipe(item);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, item) json_wipe(item);
	}
}

static json_t *
member(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_null(v) ? NULL : v;
}

static int
check_keys(struct ctx *c, const json_t *obj, const char *base,
    const char *const *allowed)
{
	char path[KEY_PATH_MAX];
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)(uintptr_t)obj, k, v)
	{
		for (i = 0; allowed[i] != NULL; i++) {
			if (strcmp(allowed[i], k) == 0)
				break;
		}
		if (allowed[i] == NULL) {
			key_path(path, sizeof(path), base, k);
			return fail(c, path, "unknown key");
		}
	}
	return 0;
}

/* An optional object member; *out stays NULL when absent. */
static int
get_object(struct ctx *c, const json_t *obj, const char *base, const char *key,
    json_t **out)
{
	char path[KEY_PATH_MAX];
	json_t *v;

	*out = NULL;
	if ((v = member(obj, key)) == NULL)
		return 0;
	if (!json_is_object(v)) {
		key_path(path, sizeof(path), base, key);
		return fail(c, path, "must be an object");
	}
	*out = v;
	return 0;
}

/* An optional non-empty string member, copied; *out untouched if absent. */
static int
get_string(struct ctx *c, const json_t *obj, const char *base, const char *key,
    char **out)
{
	char path[KEY_PATH_MAX];
	json_t *v;
	char *s;

	if ((v = member(obj, key)) == NULL)
		return 0;
	key_path(path, sizeof(path), base, key);
	if (!json_is_string(v))
		return fail(c, path, "must be a string");
	if (json_string_length(v) == 0)
		return fail(c, path, "must not be empty");
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fail(c, path, "must not contain NUL characters");
	if ((s = strdup(json_string_value(v))) == NULL)
		return fail(c, path, "out of memory");
	free(*out);
	*out = s;
	return 0;
}

static int
get_int(struct ctx *c, const json_t *obj, const char *base, const char *key,
    int64_t min, int64_t max, int64_t *out)
{
	char path[KEY_PATH_MAX];
	json_int_t n;
	json_t *v;

	if ((v = member(obj, key)) == NULL)
		return 0;
	key_path(path, sizeof(path), base, key);
	if (!json_is_integer(v))
		return fail(c, path, "must be an integer");
	n = json_integer_value(v);
	if (n < min || n > max)
		return fail(c, path, "must be between %lld and %lld",
		    (long long)min, (long long)max);
	*out = n;
	return 0;
}

/* get_int() for the int fields of the struct. */
static int
get_int32(struct ctx *c, const json_t *obj, const char *base, const char *key,
    int min, int max, int *out)
{
	int64_t n = *out;

	if (get_int(c, obj, base, key, min, max, &n) == -1)
		return -1;
	*out = (int)n;
	return 0;
}

static int
get_size(struct ctx *c, const json_t *obj, const char *base, const char *key,
    int64_t min, int64_t max, size_t *out)
{
	int64_t n = (int64_t)*out;

	if (get_int(c, obj, base, key, min, max, &n) == -1)
		return -1;
	*out = (size_t)n;
	return 0;
}

/* An optional string that must be one of names; *out is its index. */
static int
get_enum(struct ctx *c, const json_t *obj, const char *base, const char *key,
    const char *const *names, const char *list, int *out)
{
	char path[KEY_PATH_MAX];
	json_t *v;
	int i;

	if ((v = member(obj, key)) == NULL)
		return 0;
	key_path(path, sizeof(path), base, key);
	if (!json_is_string(v))
		return fail(c, path, "must be a string (one of %s)", list);
	for (i = 0; names[i] != NULL; i++) {
		if (strcmp(names[i], json_string_value(v)) == 0) {
			*out = i;
			return 0;
		}
	}
	return fail(c, path, "must be one of %s", list);
}

/* path made absolute against the config's folder; malloc'd or NULL. */
static char *
resolve_path(const char *dir, const char *path)
{
	size_t n;
	char *out;
	int r;

	if (path[0] == '/' || strcmp(path, ":memory:") == 0)
		return strdup(path);
	n = strlen(dir) + strlen(path) + 2;
	if ((out = malloc(n)) == NULL)
		return NULL;
	r = snprintf(out, n, "%s%s%s", dir,
	    dir[0] != '\0' && dir[strlen(dir) - 1] == '/' ? "" : "/", path);
	if (r < 0 || (size_t)r >= n) {
		free(out);
		return NULL;
	}
	return out;
}

/*
 * Reads a whole file of at most max bytes into a NUL-terminated malloc'd
 * buffer.  On failure the message names the file and errno, never content.
 */
static int
read_whole(struct ctx *c, const char *keypath, const char *file, size_t max,
    char **out, size_t *outlen)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t r;
	int fd = -1, rc = -1;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1) {
		fail(c, keypath, "cannot read %s: %s", file, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) == -1) {
		fail(c, keypath, "cannot read %s: %s", file, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		fail(c, keypath, "cannot read %s: not a regular file", file);
		goto out;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > max) {
		fail(c, keypath, "cannot read %s: larger than %zu bytes", file,
		    max);
		goto out;
	}
	if ((buf = malloc(max + 1)) == NULL) {
		fail(c, keypath, "out of memory");
		goto out;
	}
	for (;;) {
		r = read(fd, buf + len, max + 1 - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			fail(c, keypath, "cannot read %s: %s", file,
			    strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > max) {
			fail(c, keypath,
			    "cannot read %s: larger than %zu bytes", file, max);
			goto out;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
	rc = 0;
out:
	if (buf != NULL) {
		sodium_memzero(buf, max + 1);
		free(buf);
	}
	if (fd != -1)
		close(fd);
	return rc;
}

/*
 * The value of the member key_env (an environment variable name) or
 * key_file (a path) as a malloc'd string.  kind is "_env" or "_file".
 */
static int
read_indirect(struct ctx *c, const json_t *obj, const char *base,
    const char *key, const char *kind, char **out, size_t *outlen)
{
	char path[KEY_PATH_MAX], name[KEY_PATH_MAX];
	char *file = NULL, *val;
	const char *env;
	json_t *v;
	int rc = -1;

	if (snprintf(name, sizeof(name), "%s%s", key, kind) >=
	    (int)sizeof(name))
		return fail(c, key, "key name too long");
	key_path(path, sizeof(path), base, name);
	v = member(obj, name);
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return fail(c, path, "must be a non-empty string");
	if (strcmp(kind, "_env") == 0) {
		if ((env = getenv(json_string_value(v))) == NULL)
			return fail(c, path,
			    "environment variable %s is not set",
			    json_string_value(v));
		if ((val = strdup(env)) == NULL)
			return fail(c, path, "out of memory");
		*out = val;
		*outlen = strlen(val);
		return 0;
	}
	if ((file = resolve_path(c->dir, json_string_value(v))) == NULL) {
		fail(c, path, "out of memory");
		goto out;
	}
	if (read_whole(c, path, file, SECRET_FILE_MAX, out, outlen) == -1)
		goto out;
	rc = 0;
out:
	free(file);
	return rc;
}

/*
 * A single secret from key, key_env or key_file (at most one of them).
 * *out stays NULL when none is given.  One trailing newline of a file is
 * stripped; what remains must be one non-empty line.
 */
static int
get_secret(struct ctx *c, const json_t *obj, const char *base, const char *key,
    char **out)
{
	char path[KEY_PATH_MAX], envk[KEY_PATH_MAX], filek[KEY_PATH_MAX];
	const char *kind = NULL, *given = key;
	char *val = NULL;
	size_t len = 0;
	int n = 0, rc = -1;

	if (snprintf(envk, sizeof(envk), "%s_env", key) >= (int)sizeof(envk) ||
	    snprintf(filek, sizeof(filek), "%s_file", key) >=
		(int)sizeof(filek))
		return fail(c, key, "key name too long");
	n += member(obj, key) != NULL;
	if (member(obj, envk) != NULL) {
		n++;
		kind = "_env";
		given = envk;
	}
	if (member(obj, filek) != NULL) {
		n++;
		kind = "_file";
		given = filek;
	}
	key_path(path, sizeof(path), base, given);
	if (n > 1)
		return fail(c, path, "only one of %s, %s and %s may be given",
		    key, envk, filek);
	if (n == 0)
		return 0;
	if (kind == NULL) {
		if (get_string(c, obj, base, key, &val) == -1)
			goto out;
		len = strlen(val);
	} else {
		if (read_indirect(c, obj, base, key, kind, &val, &len) == -1)
			goto out;
		if (strcmp(kind, "_file") == 0) {
			if (len > 0 && val[len - 1] == '\n')
				val[--len] = '\0';
			if (len > 0 && val[len - 1] == '\r')
				val[--len] = '\0';
		}
	}
	if (len == 0) {
		fail(c, path, "the secret is empty");
		goto out;
	}
	if (strlen(val) != len || strchr(val, '\n') != NULL ||
	    strchr(val, '\r') != NULL) {
		fail(c, path, "the secret must be one line of text");
		goto out;
	}
	*out = val;
	val = NULL;
	rc = 0;
out:
	if (val != NULL) {
		sodium_memzero(val, len);
		free(val);
	}
	return rc;
}

typedef int (*add_key_fn)(struct nb_keyring *, const char *);

/*
 * Adds every key of one list (key: array, key_env: separated by spaces or
 * commas, key_file: one per line, '#' comments) to the keyring.
 */
static int
add_keys(struct ctx *c, const json_t *obj, const char *base, const char *key,
    add_key_fn add, const char *what, struct nb_keyring *keys)
{
	char path[KEY_PATH_MAX], sub[KEY_PATH_MAX];
	const char *seps;
	char *text = NULL, *p, *end, *tok;
	size_t i, len = 0, entry;
	json_t *v, *item;
	int rc = -1, isfile;

	if ((v = member(obj, key)) != NULL) {
		key_path(path, sizeof(path), base, key);
		if (!json_is_array(v))
			return fail(c, path, "must be an array of strings");
		json_array_foreach(v, i, item)
		{
			if (snprintf(sub, sizeof(sub), "%s[%zu]", path, i) < 0)
				sub[0] = '\0';
			if (!json_is_string(item))
				return fail(c, sub, "must be a string");
			if (nb_keyring_count(keys) >= NB_CONFIG_MAX_KEYS)
				return fail(c, sub, "more than %d keys",
				    NB_CONFIG_MAX_KEYS);
			if (strlen(json_string_value(item)) !=
				json_string_length(item) ||
			    add(keys, json_string_value(item)) == -1)
				return fail(c, sub, "not a valid %s", what);
		}
	}
	for (isfile = 0; isfile <= 1; isfile++) {
		if (snprintf(sub, sizeof(sub), "%s%s", key,
			isfile ? "_file" : "_env") >= (int)sizeof(sub))
			return fail(c, key, "key name too long");
		if (member(obj, sub) == NULL)
			continue;
		key_path(path, sizeof(path), base, sub);
		if (read_indirect(c, obj, base, key, isfile ? "_file" : "_env",
			&text, &len) == -1)
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
			if (nb_keyring_count(keys) >= NB_CONFIG_MAX_KEYS) {
				fail(c, path, "more than %d keys",
				    NB_CONFIG_MAX_KEYS);
				goto out;
			}
			if (add(keys, tok) == -1) {
				fail(c, path, "%s %zu is not a valid %s",
				    isfile ? "line" : "entry", entry, what);
				goto out;
			}
		}
		sodium_memzero(text, len);
		free(text);
		text = NULL;
	}
	rc = 0;
out:
	if (text != NULL) {
		sodium_memzero(text, len);
		free(text);
	}
	return rc;
}

/* http(s)://host[...], with one trailing '/' removed; malloc'd. */
static int
get_endpoint(struct ctx *c, const json_t *obj, const char *base,
    const char *key, char **out)
{
	char path[KEY_PATH_MAX];
	const char *host;
	char *s = NULL;
	size_t len, i;

	if (get_string(c, obj, base, key, &s) == -1)
		return -1;
	if (s == NULL)
		return 0;
	key_path(path, sizeof(path), base, key);
	if (strncmp(s, "http://", 7) == 0)
		host = s + 7;
	else if (strncmp(s, "https://", 8) == 0)
		host = s + 8;
	else
		host = NULL;
	len = strlen(s);
	if (len > 0 && s[len - 1] == '/')
		s[--len] = '\0';
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			host = NULL;
	}
	if (host == NULL || host[0] == '\0' || host[0] == '/' ||
	    strpbrk(s, "?#") != NULL) {
		free(s);
		return fail(c, path,
		    "must be an http:// or https:// URL without query");
	}
	free(*out);
	*out = s;
	return 0;
}

/* "host:port" with port 0..65535; an IPv6 host is written in brackets. */
static int
get_listen(struct ctx *c, const json_t *obj, const char *base, const char *key,
    char **out)
{
	char path[KEY_PATH_MAX];
	const char *colon, *host;
	char *end;
	long long port;
	size_t hl;

	if (get_string(c, obj, base, key, out) == -1)
		return -1;
	if (member(obj, key) == NULL)
		return 0;
	key_path(path, sizeof(path), base, key);
	host = *out;
	if ((colon = strrchr(host, ':')) == NULL)
		return fail(c, path, "must be host:port");
	hl = (size_t)(colon - host);
	errno = 0;
	port = strtoll(colon + 1, &end, 10);
	if (hl == 0 || colon[1] == '\0' || *end != '\0' || errno != 0 ||
	    port < 0 || port > 65535 || !isdigit((unsigned char)colon[1]))
		return fail(c, path, "must be host:port with port 0..65535");
	if ((host[0] == '[') != (host[hl - 1] == ']') ||
	    (host[0] != '[' && memchr(host, ':', hl) != NULL))
		return fail(
		    c, path, "an IPv6 host must be written [addr]:port");
	return 0;
}

/*
 * The admin token guards replay and purge of every event: at least
 * NB_CONFIG_TOKEN_MIN characters, NB_CONFIG_TOKEN_VARIETY of them
 * different (32 random hex digits have fewer than 8 different ones once
 * in 30 million).
 */
static int
check_token(struct ctx *c, const char *t)
{
	unsigned char seen[256] = {0};
	size_t i, kinds = 0;

	for (i = 0; t[i] != '\0'; i++)
		if (!seen[(unsigned char)t[i]]++)
			kinds++;
	if (i >= NB_CONFIG_TOKEN_MIN && kinds >= NB_CONFIG_TOKEN_VARIETY)
		return 0;
	return fail(c, "admin.token",
	    "too weak: use at least %d characters, %d of them different "
	    "(openssl rand -hex 32 makes one)",
	    NB_CONFIG_TOKEN_MIN, NB_CONFIG_TOKEN_VARIETY);
}

static int
parse_admin(struct ctx *c, struct nb_config *cfg, const json_t *root)
{
	json_t *o;

	if (get_object(c, root, "", "admin", &o) == -1)
		return -1;
	if (o == NULL)
		return 0;
	if (check_keys(c, o, "admin", admin_keys) == -1 ||
	    get_listen(c, o, "admin", "listen", &cfg->admin_listen) == -1 ||
	    get_secret(c, o, "admin", "token", &cfg->admin_token) == -1 ||
	    get_size(c, o, "admin", "max_connections", 1, 100000,
		&cfg->admin_max_connections) == -1)
		return -1;
	if (cfg->admin_token != NULL)
		return check_token(c, cfg->admin_token);
	return 0;
}

static int
parse_log(struct ctx *c, struct nb_config *cfg, const json_t *root)
{
	static const char *const levels[] = {
	    "debug", "info", "warn", "error", NULL};
	static const char *const formats[] = {"logfmt", "json", NULL};
	int level = NB_LOG_INFO, format = NB_LOG_LOGFMT;
	json_t *o;

	if (get_object(c, root, "", "log", &o) == -1)
		return -1;
	if (o == NULL)
		return 0;
	if (check_keys(c, o, "log", log_keys) == -1 ||
	    get_enum(c, o, "log", "level", levels, "debug, info, warn, error",
		&level) == -1 ||
	    get_enum(c, o, "log", "format", formats, "logfmt, json", &format) ==
		-1)
		return -1;
	/* Index order above is the order of the enums; parse to be sure. */
	if (nb_log_level_parse(levels[level], &cfg->log_level) == -1 ||
	    nb_log_format_parse(formats[format], &cfg->log_format) == -1)
		return fail(c, "log", "cannot parse level or format");
	return 0;
}

static int
parse_store(struct ctx *c, struct nb_config *cfg, const json_t *root)
{
	static const char *const drivers[] = {"sqlite", "postgres", NULL};
	struct nb_store_config *st = &cfg->store;
	char *path = NULL;
	int driver = 0, rc = -1;
	json_t *o;

	if (get_object(c, root, "", "store", &o) == -1)
		return -1;
	if (o != NULL) {
		if (check_keys(c, o, "store", store_keys) == -1 ||
		    get_enum(c, o, "store", "driver", drivers,
			"sqlite, postgres", &driver) == -1 ||
		    get_string(c, o, "store", "path", &path) == -1 ||
		    get_secret(c, o, "store", "dsn", &st->dsn) == -1 ||
		    get_int32(c, o, "store", "lease_s", 1, 86400,
			&st->lease_s) == -1 ||
		    get_int(c, o, "store", "max_size_bytes", 0, INT64_MAX,
			&st->max_size_bytes) == -1)
			goto out;
	}
	if ((st->driver = strdup(drivers[driver])) == NULL) {
		fail(c, "store.driver", "out of memory");
		goto out;
	}
	if (driver == 1 && st->dsn == NULL) {
		fail(c, "store.dsn",
		    "required with driver postgres (or dsn_env, dsn_file)");
		goto out;
	}
	if (driver == 0 && st->dsn != NULL) {
		fail(c, "store.dsn", "only valid with driver postgres");
		goto out;
	}
	st->path = resolve_path(c->dir, path ? path : DEFAULT_STORE_PATH);
	if (st->path == NULL) {
		fail(c, "store.path", "out of memory");
		goto out;
	}
	rc = 0;
out:
	free(path);
	return rc;
}

static int
parse_limits(struct ctx *c, struct nb_config *cfg, const json_t *root)
{
	struct nb_limits_config *l = &cfg->limits;
	const char *b = "limits";
	json_t *o;

	if (get_object(c, root, "", "limits", &o) == -1)
		return -1;
	if (o == NULL)
		return 0;
	if (check_keys(c, o, b, limits_keys) == -1 ||
	    get_size(c, o, b, "max_body_bytes", 1, 1024LL * 1024 * 1024,
		&l->max_body_bytes) == -1 ||
	    get_int(c, o, b, "timestamp_tolerance_s", 1, TEN_YEARS_S,
		&l->timestamp_tolerance_s) == -1 ||
	    get_int(c, o, b, "dedupe_window_s", 0, TEN_YEARS_S,
		&l->dedupe_window_s) == -1 ||
	    get_size(c, o, b, "max_header_bytes", 1024, 1024 * 1024,
		&l->max_header_bytes) == -1 ||
	    get_int32(c, o, b, "read_timeout_s", 1, 3600, &l->read_timeout_s) ==
		-1 ||
	    get_int32(c, o, b, "drain_s", 0, 3600, &l->drain_s) == -1 ||
	    get_size(c, o, b, "max_connections", 1, 1000000,
		&l->max_connections) == -1 ||
	    get_int32(c, o, b, "request_timeout_s", 0, 3600,
		&l->request_timeout_s) == -1 ||
	    get_size(c, o, b, "max_inflight_body_bytes", 1, INT64_MAX,
		&l->max_inflight_body_bytes) == -1)
		return -1;
	return 0;
}

/*
 * Rules between limits: a replay inside the timestamp tolerance must still
 * meet its webhook-id, and one body must fit the in-flight budget.
 */
static int
check_limits(struct ctx *c, struct nb_limits_config *l)
{
	if (l->dedupe_window_s < l->timestamp_tolerance_s)
		return fail(c, "limits.dedupe_window_s",
		    "must be at least limits.timestamp_tolerance_s (%lld), or "
		    "a "
		    "replayed request is stored again",
		    (long long)l->timestamp_tolerance_s);
	if (l->max_inflight_body_bytes == 0)
		l->max_inflight_body_bytes = l->max_body_bytes <= SIZE_MAX / 64
		    ? l->max_body_bytes * 64
		    : SIZE_MAX / 2;
	if (l->max_inflight_body_bytes < l->max_body_bytes)
		return fail(c, "limits.max_inflight_body_bytes",
		    "must be at least limits.max_body_bytes");
	return 0;
}

/*
 * Both files or neither; relative to the config's folder.  The context is
 * built once here so a bad file, an unreadable one or a key that does not
 * belong to the certificate is an error naming its key, in check-config
 * and on reload alike.
 */
static int
parse_tls(struct ctx *c, struct nb_config *cfg, const json_t *root)
{
	struct nb_tls_config *t = &cfg->tls;
	struct nb_tls *probe;
	char *cert = NULL, *key = NULL;
	int rc = -1;
	json_t *o;

	if (get_object(c, root, "", "tls", &o) == -1)
		return -1;
	if (o == NULL)
		return 0;
	if (check_keys(c, o, "tls", tls_keys) == -1 ||
	    get_string(c, o, "tls", "cert_file", &cert) == -1 ||
	    get_string(c, o, "tls", "key_file", &key) == -1)
		goto out;
	if (cert == NULL) {
		fail(c, "tls.cert_file", "required in tls");
		goto out;
	}
	if (key == NULL) {
		fail(c, "tls.key_file", "required in tls");
		goto out;
	}
	if ((t->cert_file = resolve_path(c->dir, cert)) == NULL ||
	    (t->key_file = resolve_path(c->dir, key)) == NULL) {
		fail(c, "tls", "out of memory");
		goto out;
	}
	/* nb_tls_new() names the key at fault itself. */
	if ((probe = nb_tls_new(
		 t->cert_file, t->key_file, c->err, c->errlen)) == NULL)
		goto out;
	nb_tls_free(probe);
	rc = 0;
out:
	free(cert);
	free(key);
	return rc;
}

/* A POSIX-style account name that exists on this system. */
static int
parse_user(struct ctx *c, struct nb_config *cfg, const json_t *root)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	size_t i;
	int r;

	if (get_string(c, root, "", "user", &cfg->user) == -1)
		return -1;
	if (cfg->user == NULL)
		return 0;
	for (i = 0; cfg->user[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)cfg->user[i];

		if (!(islower(ch) || ch == '_' ||
			(i > 0 && (isdigit(ch) || ch == '-' || ch == '.'))))
			return fail(c, "user", "not a valid account name");
	}
	if (i > 32)
		return fail(c, "user", "longer than 32 characters");
	r = getpwnam_r(cfg->user, &pw, buf, sizeof(buf), &res);
	if (r != 0)
		return fail(
		    c, "user", "cannot look the account up: %s", strerror(r));
	if (res == NULL)
		return fail(c, "user", "no such account");
	if (pw.pw_uid == 0)
		return fail(c, "user", "must not be root");
	return 0;
}

static int
parse_segment(struct ctx *c, struct nb_config *cfg, const json_t *root)
{
	struct nb_segment_config *s = &cfg->segment;
	struct nb_retry_config *r = &s->retry;
	const char *b = "segment", *rb = "segment.retry";
	json_t *o, *ro, *v;

	if (get_object(c, root, "", "segment", &o) == -1)
		return -1;
	if (o == NULL)
		return 0;
	if (check_keys(c, o, b, segment_keys) == -1 ||
	    get_endpoint(c, o, b, "endpoint", &s->endpoint) == -1 ||
	    get_int32(c, o, b, "flush_interval_ms", 0, 3600000,
		&s->flush_interval_ms) == -1 ||
	    get_size(c, o, b, "max_batch_bytes", 1, 500000,
		&s->max_batch_bytes) == -1 ||
	    get_size(c, o, b, "max_batch_count", 1, 2500,
		&s->max_batch_count) == -1 ||
	    get_size(c, o, b, "max_message_bytes", 1, 32000,
		&s->max_message_bytes) == -1 ||
	    get_int32(c, o, b, "timeout_ms", 1, 3600000, &s->timeout_ms) ==
		-1 ||
	    get_int32(c, o, b, "max_inflight", 1, 1024, &s->max_inflight) ==
		-1 ||
	    get_int32(c, o, b, "pause_s", 1, 7 * 86400, &s->pause_s) == -1 ||
	    get_int(c, o, b, "retention_s", 0, TEN_YEARS_S, &s->retention_s) ==
		-1)
		return -1;
	if ((v = member(o, "rate_limit_rps")) != NULL) {
		if (!json_is_number(v))
			return fail(
			    c, "segment.rate_limit_rps", "must be a number");
		if (!(json_number_value(v) > 0 &&
			json_number_value(v) <= 1000000))
			return fail(c, "segment.rate_limit_rps",
			    "must be greater than 0 and at most 1000000");
		s->rate_limit_rps = json_number_value(v);
	}
	if ((v = member(o, "gzip")) != NULL) {
		if (!json_is_boolean(v))
			return fail(c, "segment.gzip", "must be true or false");
		s->gzip = json_is_true(v);
	}
	if (get_object(c, o, b, "retry", &ro) == -1)
		return -1;
	if (ro == NULL)
		return 0;
	if (check_keys(c, ro, rb, retry_keys) == -1 ||
	    get_int32(c, ro, rb, "initial_ms", 1, 86400000, &r->initial_ms) ==
		-1 ||
	    get_int32(c, ro, rb, "max_ms", 1, 86400000, &r->max_ms) == -1 ||
	    get_int32(c, ro, rb, "max_attempts", 0, 1000000,
		&r->max_attempts) == -1 ||
	    get_int(c, ro, rb, "max_age_s", 1, TEN_YEARS_S, &r->max_age_s) ==
		-1)
		return -1;
	if (r->max_ms < r->initial_ms)
		return fail(c, "segment.retry.max_ms",
		    "must be at least initial_ms (%d)", r->initial_ms);
	return 0;
}

static int
parse_event_names(
    struct ctx *c, struct nb_source *src, const json_t *o, const char *base)
{
	char path[KEY_PATH_MAX];
	const char *k;
	json_t *names, *v;
	size_t kl;

	if (get_object(c, o, base, "event_names", &names) == -1)
		return -1;
	if ((src->mapping.event_names = json_object()) == NULL)
		return fail(c, base, "out of memory");
	if (names == NULL)
		return 0;
	json_object_foreach(names, k, v)
	{
		if (snprintf(path, sizeof(path), "%s.event_names[\"%s\"]", base,
			k) < 0)
			path[0] = '\0';
		kl = strlen(k);
		if (kl == 0 || kl > EVENT_TYPE_MAX)
			return fail(c, path, "type must be 1..%d characters",
			    EVENT_TYPE_MAX);
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > EVENT_NAME_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return fail(c, path,
			    "must be a string of 1..%d characters",
			    EVENT_NAME_MAX);
		if (json_object_set_new(src->mapping.event_names, k,
			json_string(json_string_value(v))) == -1)
			return fail(c, path, "out of memory");
	}
	return 0;
}

/* "drop_types": the types filter.h acknowledges and forgets. */
static int
parse_drop_types(
    struct ctx *c, struct nb_source *src, const json_t *o, const char *base)
{
	char path[KEY_PATH_MAX], msg[160];
	const json_t *v;

	if ((v = member(o, "drop_types")) == NULL)
		return 0;
	key_path(path, sizeof(path), base, "drop_types");
	if (nb_filter_parse(&src->drop, v, msg, sizeof(msg)) == -1)
		return fail(c, NULL, "%s%s", path, msg);
	return 0;
}

/*
 * "oauth": client_id, key_id, the private key from private_key_file or
 * private_key_env (read like every secret, parsed and wiped here) and
 * auth_server, by default the one of the source's region.
 */
static int
parse_oauth(struct ctx *c, struct nb_source *src, const json_t *o,
    const char *base, int eu)
{
	char b[KEY_PATH_MAX], path[KEY_PATH_MAX], msg[160];
	struct nb_oauth_config *oc = &src->oauth;
	const char *kind = NULL;
	char *pem = NULL;
	size_t len = 0;
	json_t *v;

	key_path(b, sizeof(b), base, "oauth");
	if ((v = member(o, "oauth")) == NULL)
		return 0;
	if (!json_is_object(v))
		return fail(c, b, "must be an object");
	if (check_keys(c, v, b, oauth_keys) == -1 ||
	    get_string(c, v, b, "client_id", &oc->client_id) == -1 ||
	    get_string(c, v, b, "key_id", &oc->key_id) == -1 ||
	    get_endpoint(c, v, b, "auth_server", &oc->auth_server) == -1)
		return -1;
	if (oc->client_id == NULL || oc->key_id == NULL ||
	    strlen(oc->client_id) > NB_OAUTH_ID_MAX ||
	    strlen(oc->key_id) > NB_OAUTH_ID_MAX)
		return fail(c, b, "needs client_id and key_id (1..%d bytes)",
		    NB_OAUTH_ID_MAX);
	if (member(v, "private_key_file") != NULL)
		kind = "_file";
	if (member(v, "private_key_env") != NULL)
		kind = kind == NULL ? "_env" : "";
	if (kind == NULL || kind[0] == '\0')
		return fail(
		    c, b, "needs one of private_key_file and private_key_env");
	if (read_indirect(c, v, b, "private_key", kind, &pem, &len) == -1)
		return -1;
	if (snprintf(path, sizeof(path), "%s.private_key%s", b, kind) < 0)
		path[0] = '\0';
	if (nb_oauth_key_load(&oc->key, pem, len, msg, sizeof(msg)) == -1) {
		free(pem);
		return fail(c, path, "%s", msg);
	}
	free(pem);
	if (oc->auth_server == NULL &&
	    (oc->auth_server = strdup(
		 eu ? NB_OAUTH_SERVER_EU : NB_OAUTH_SERVER_US)) == NULL)
		return fail(c, b, "out of memory");
	return 0;
}

static int
parse_source(struct ctx *c, struct nb_config *cfg, struct nb_source *src,
    const json_t *o, size_t idx)
{
	static const char *const regions[] = {"us", "eu", NULL};
	static const char *const anons[] = {"email", "sha256", NULL};
	char base[KEY_PATH_MAX], path[KEY_PATH_MAX];
	char *endpoint = NULL;
	int region = 0, anon = 0, rc = -1;
	size_t i;

	if (snprintf(base, sizeof(base), "sources[%zu]", idx) < 0)
		return -1;
	if (!json_is_object(o))
		return fail(c, base, "must be an object");
	if (check_keys(c, o, base, source_keys) == -1)
		return -1;
	key_path(path, sizeof(path), base, "name");
	if (member(o, "name") == NULL)
		return fail(c, path, "required");
	if (get_string(c, o, base, "name", &src->name) == -1)
		return -1;
	if (!nb_config_source_name_valid(src->name))
		return fail(c, path, "must match [a-z0-9][a-z0-9_-]{0,62}");
	for (i = 0; i < idx; i++) {
		if (strcmp(cfg->sources[i].name, src->name) == 0)
			return fail(
			    c, path, "duplicate source name %s", src->name);
	}
	if ((src->keys = nb_keyring_new()) == NULL)
		return fail(c, base, "out of memory");
	if (add_keys(c, o, base, "signing_secrets", nb_keyring_add_secret,
		"whsec_ secret (base64 of 24..64 bytes)", src->keys) == -1 ||
	    add_keys(c, o, base, "public_keys", nb_keyring_add_public_key,
		"whpk_ public key (base64 of 32 bytes)", src->keys) == -1)
		return -1;
	if (nb_keyring_count(src->keys) == 0)
		return fail(
		    c, base, "needs at least one signing secret or public key");
	if (get_secret(c, o, base, "write_key", &src->write_key) == -1)
		return -1;
	if (src->write_key == NULL) {
		key_path(path, sizeof(path), base, "write_key");
		return fail(c, path,
		    "required (or write_key_env, "
		    "write_key_file)");
	}
	if (get_enum(c, o, base, "region", regions, "us, eu", &region) == -1 ||
	    get_int(c, o, base, "silent_after_s", 0, TEN_YEARS_S,
		&src->silent_after_s) == -1 ||
	    get_enum(c, o, base, "anonymous_id", anons, "email, sha256",
		&anon) == -1 ||
	    get_endpoint(c, o, base, "endpoint", &endpoint) == -1 ||
	    parse_event_names(c, src, o, base) == -1 ||
	    parse_drop_types(c, src, o, base) == -1)
		goto out;
	src->mapping.anon =
	    anon == 1 ? NB_SEGMENT_ANON_SHA256 : NB_SEGMENT_ANON_EMAIL;
	/* Most specific first: endpoint, explicit region, global, us. */
	if (endpoint != NULL) {
		src->endpoint = endpoint;
		endpoint = NULL;
	} else if (member(o, "region") != NULL) {
		src->endpoint =
		    strdup(region == 1 ? NB_ENDPOINT_EU : NB_ENDPOINT_US);
	} else if (cfg->segment.endpoint != NULL) {
		src->endpoint = strdup(cfg->segment.endpoint);
	} else {
		src->endpoint = strdup(NB_ENDPOINT_US);
	}
	if (src->endpoint == NULL) {
		fail(c, base, "out of memory");
		goto out;
	}
	if (parse_oauth(c, src, o, base,
		member(o, "region") != NULL
		    ? region == 1
		    : strcmp(src->endpoint, NB_ENDPOINT_EU) == 0) == -1)
		goto out;
	rc = 0;
out:
	free(endpoint);
	return rc;
}

/* "alerts": see struct nb_alerts_config. */
static int
parse_alerts(struct ctx *c, struct nb_config *cfg, const json_t *root)
{
	static const char *const formats[] = {"json", "slack", NULL};
	struct nb_alerts_config *al = &cfg->alerts;
	char entry[NB_SIG_ENTRY_MAX];
	const char *u;
	json_t *o;

	if (get_object(c, root, "", "alerts", &o) == -1)
		return -1;
	if (o == NULL)
		return 0;
	if (check_keys(c, o, "alerts", alerts_keys) == -1 ||
	    get_secret(c, o, "alerts", "webhook_url", &al->webhook_url) == -1 ||
	    get_secret(c, o, "alerts", "secret", &al->secret) == -1 ||
	    get_enum(c, o, "alerts", "format", formats, "json, slack",
		&al->slack) == -1 ||
	    get_int(c, o, "alerts", "repeat_s", 1, TEN_YEARS_S,
		&al->repeat_s) == -1 ||
	    get_int(c, o, "alerts", "backlog_age_s", 1, TEN_YEARS_S,
		&al->backlog_age_s) == -1 ||
	    get_int(c, o, "alerts", "store_unavailable_s", 1, 86400,
		&al->store_unavailable_s) == -1 ||
	    get_int32(c, o, "alerts", "interval_ms", 100, 600000,
		&al->interval_ms) == -1 ||
	    get_int32(c, o, "alerts", "timeout_ms", 100, 600000,
		&al->timeout_ms) == -1 ||
	    get_int32(c, o, "alerts", "retry_initial_ms", 10, 3600000,
		&al->retry_initial_ms) == -1 ||
	    get_int32(c, o, "alerts", "retry_max_ms", 10, 86400000,
		&al->retry_max_ms) == -1 ||
	    get_int(c, o, "alerts", "max_age_s", 1, TEN_YEARS_S,
		&al->max_age_s) == -1)
		return -1;
	u = al->webhook_url;
	if (u != NULL && strncasecmp(u, "http://", 7) != 0 &&
	    strncasecmp(u, "https://", 8) != 0)
		return fail(c, "alerts.webhook_url", "must be an http(s) URL");
	/* Signing a test message is the one check of a whsec_ secret. */
	if (al->secret != NULL &&
	    nb_sig_sign_hmac(al->secret, "msg_check", 0, NULL, 0, entry,
		sizeof(entry)) == -1)
		return fail(c, "alerts.secret",
		    "not a whsec_ secret (base64 of 24..64 bytes)");
	return 0;
}

static int
parse_sources(struct ctx *c, struct nb_config *cfg, const json_t *root)
{
	json_t *arr, *item;
	size_t i, n;

	if ((arr = member(root, "sources")) == NULL)
		return fail(c, "sources", "required");
	if (!json_is_array(arr))
		return fail(c, "sources", "must be an array");
	if ((n = json_array_size(arr)) == 0)
		return fail(c, "sources", "must list at least one source");
	if (n > NB_CONFIG_MAX_SOURCES)
		return fail(c, "sources", "more than %d sources",
		    NB_CONFIG_MAX_SOURCES);
	if ((cfg->sources = calloc(n, sizeof(*cfg->sources))) == NULL)
		return fail(c, "sources", "out of memory");
	json_array_foreach(arr, i, item)
	{
		/* Counted first so that a half-built source is freed too. */
		cfg->nsources = i + 1;
		if (parse_source(c, cfg, &cfg->sources[i], item, i) == -1)
			return -1;
	}
	return 0;
}

static void
source_clear(struct nb_source *src)
{
	free(src->name);
	nb_keyring_free(src->keys);
	wipe_free(src->write_key);
	free(src->endpoint);
	nb_segment_mapping_clear(&src->mapping);
	nb_oauth_config_clear(&src->oauth);
	nb_filter_clear(&src->drop);
}

static void
config_free(struct nb_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->nsources; i++)
		source_clear(&cfg->sources[i]);
	free(cfg->sources);
	free(cfg->path);
	free(cfg->listen);
	free(cfg->admin_listen);
	wipe_free(cfg->admin_token);
	free(cfg->user);
	free(cfg->tls.cert_file);
	free(cfg->tls.key_file);
	free(cfg->store.driver);
	free(cfg->store.path);
	wipe_free(cfg->store.dsn);
	free(cfg->segment.endpoint);
	wipe_free(cfg->alerts.webhook_url);
	wipe_free(cfg->alerts.secret);
	free(cfg);
}

static struct nb_config *
config_new(void)
{
	struct nb_config *cfg;
	long cpus;

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
		return NULL;
	cfg->log_level = NB_LOG_INFO;
	cfg->log_format = NB_LOG_LOGFMT;
	/*
	 * One core is left to the group-commit writer and the deliverer, which
	 * every HTTP thread feeds: on 2 cores one HTTP thread took 100-event
	 * arrays faster than two (docs/benchmarks.md).
	 */
	cpus = sysconf(_SC_NPROCESSORS_ONLN) - 1;
	cfg->http_threads = cpus < 1 ? 1 : cpus > 8 ? 8 : (size_t)cpus;
	cfg->store.lease_s = 30;
	cfg->store.max_size_bytes = 0;
	cfg->limits.max_body_bytes = 1048576;
	cfg->limits.timestamp_tolerance_s = 300;
	cfg->limits.dedupe_window_s = 604800;
	cfg->limits.max_header_bytes = 16384;
	cfg->limits.read_timeout_s = 30;
	cfg->limits.drain_s = 10;
	cfg->limits.max_connections = 4096;
	cfg->limits.request_timeout_s = 60;
	cfg->limits.max_inflight_body_bytes = 0; /* 64 x max_body_bytes */
	cfg->admin_max_connections = 64;
	cfg->segment.flush_interval_ms = 200;
	cfg->segment.max_batch_bytes = 500000;
	cfg->segment.max_batch_count = 2500;
	cfg->segment.max_message_bytes = 32000;
	cfg->segment.timeout_ms = 10000;
	cfg->segment.rate_limit_rps = 50;
	cfg->segment.max_inflight = 4;
	cfg->segment.pause_s = 300;
	cfg->segment.retention_s = 86400;
	cfg->segment.gzip = 1;
	cfg->segment.retry.initial_ms = 500;
	cfg->segment.retry.max_ms = 60000;
	cfg->segment.retry.max_attempts = 0;
	cfg->segment.retry.max_age_s = 259200;
	cfg->alerts.repeat_s = 300;
	cfg->alerts.backlog_age_s = 600;
	cfg->alerts.store_unavailable_s = 30;
	cfg->alerts.interval_ms = 2000;
	cfg->alerts.timeout_ms = 10000;
	cfg->alerts.retry_initial_ms = 1000;
	cfg->alerts.retry_max_ms = 300000;
	cfg->alerts.max_age_s = 86400;
	atomic_init(&cfg->refs, 1);
	return cfg;
}

/* jansson's message, without the " near '<token>'" that may quote a secret. */
static void
json_error_text(const json_error_t *je, char *out, size_t outlen)
{
	const char *near;
	size_t n;
	int r;

	n = strlen(je->text);
	/* A duplicate's token is a key name, which is not secret and useful. */
	if ((near = strstr(je->text, " near ")) != NULL &&
	    strncmp(je->text, "duplicate object key", 20) != 0)
		n = (size_t)(near - je->text);
	r = snprintf(out, outlen, "%.*s", (int)n, je->text);
	if (r < 0 && outlen > 0)
		out[0] = '\0';
}

static int
load_doc(struct nb_config **out, const char *text, const char *dir,
    char *abspath, char *err, size_t errlen)
{
	struct ctx c = {err, errlen, dir};
	struct nb_config *cfg = NULL;
	json_t *root = NULL;
	json_error_t je;
	char jtext[JSON_ERROR_TEXT_LENGTH];
	int rc = -1;

	*out = NULL;
	if ((cfg = config_new()) == NULL) {
		fail(&c, "config", "out of memory");
		goto out;
	}
	cfg->path = abspath;
	abspath = NULL;
	root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL) {
		json_error_text(&je, jtext, sizeof(jtext));
		fail(&c, "config", "invalid JSON at line %d column %d: %s",
		    je.line, je.column, jtext);
		goto out;
	}
	if (!json_is_object(root)) {
		fail(&c, "config", "must be a JSON object");
		goto out;
	}
	if (check_keys(&c, root, "", top_keys) == -1 ||
	    get_listen(&c, root, "", "listen", &cfg->listen) == -1 ||
	    get_size(&c, root, "", "http_threads", 1, NB_HTTP_THREADS_MAX,
		&cfg->http_threads) == -1 ||
	    parse_admin(&c, cfg, root) == -1 ||
	    parse_log(&c, cfg, root) == -1 ||
	    parse_store(&c, cfg, root) == -1 ||
	    parse_limits(&c, cfg, root) == -1 ||
	    check_limits(&c, &cfg->limits) == -1 ||
	    parse_tls(&c, cfg, root) == -1 || parse_user(&c, cfg, root) == -1 ||
	    parse_segment(&c, cfg, root) == -1 ||
	    parse_alerts(&c, cfg, root) == -1 ||
	    parse_sources(&c, cfg, root) == -1)
		goto out;
	if (cfg->listen == NULL &&
	    (cfg->listen = strdup(DEFAULT_LISTEN)) == NULL) {
		fail(&c, "listen", "out of memory");
		goto out;
	}
	if (cfg->admin_listen == NULL &&
	    (cfg->admin_listen = strdup(DEFAULT_ADMIN)) == NULL) {
		fail(&c, "admin.listen", "out of memory");
		goto out;
	}
	*out = cfg;
	cfg = NULL;
	rc = 0;
out:
	free(abspath);
	if (root != NULL) {
		json_wipe(root);
		json_decref(root);
	}
	config_free(cfg);
	return rc;
}

int
nb_config_load_json(struct nb_config **out, const char *text, const char *dir,
    char *err, size_t errlen)
{
	struct ctx c = {err, errlen, NULL};
	char cwd[PATH_MAX];
	char *absdir = NULL;
	int rc = -1;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (dir == NULL || dir[0] != '/') {
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			fail(&c, "config", "cannot get the current folder: %s",
			    strerror(errno));
			goto out;
		}
		absdir = dir ? resolve_path(cwd, dir) : strdup(cwd);
		if (absdir == NULL) {
			fail(&c, "config", "out of memory");
			goto out;
		}
		dir = absdir;
	}
	rc = load_doc(out, text, dir, NULL, err, errlen);
out:
	free(absdir);
	return rc;
}

int
nb_config_load(
    struct nb_config **out, const char *path, char *err, size_t errlen)
{
	struct ctx c = {err, errlen, NULL};
	char *abspath = NULL, *dir = NULL, *text = NULL, *slash;
	size_t len = 0;
	int rc = -1;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((abspath = realpath(path, NULL)) == NULL) {
		fail(&c, "config", "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if ((dir = strdup(abspath)) == NULL) {
		fail(&c, "config", "out of memory");
		goto out;
	}
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	if (read_whole(&c, "config", abspath, CONFIG_FILE_MAX, &text, &len) ==
	    -1)
		goto out;
	if (strlen(text) != len) {
		fail(&c, "config", "%s contains a NUL byte", abspath);
		goto out;
	}
	rc = load_doc(out, text, dir, abspath, err, errlen);
	abspath = NULL;
out:
	if (text != NULL) {
		sodium_memzero(text, len);
		free(text);
	}
	free(dir);
	free(abspath);
	return rc;
}

struct nb_config *
nb_config_ref(struct nb_config *cfg)
{
	atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
	return cfg;
}

void
nb_config_unref(struct nb_config *cfg)
{
	if (cfg == NULL)
		return;
	/* acq_rel: the freeing thread must see every other thread's reads. */
	if (atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) != 1)
		return;
	config_free(cfg);
}

const struct nb_source *
nb_config_source(const struct nb_config *cfg, const char *name)
{
	size_t i;

	if (cfg == NULL || name == NULL)
		return NULL;
	for (i = 0; i < cfg->nsources; i++) {
		if (strcmp(cfg->sources[i].name, name) == 0)
			return &cfg->sources[i];
	}
	return NULL;
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
