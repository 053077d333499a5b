/* SPDX-License-Identifier: ISC */
/*
 * config_read: the typed getters every section of the file is read with.
 *
 * A getter reads one member of an object: absent (or null), it leaves its
 * output alone; present, it checks the type and the range and converts,
 * or writes "<key path>: <what is wrong>" once into the context and
 * returns -1.  Values never appear in a message: any of them may be a
 * secret.  Secrets come from the key itself, "<key>_env" or "<key>_file"
 * (mode and size bounded, one line), and whatever held them is wiped
 * before its memory goes back.  Stateless; any thread.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "config_read.h"

#define SECRET_FILE_MAX (64 * 1024) /* one *_file secret source */

static int
vfail(struct nb_config_ctx *c, const char *path, const char *fmt, va_list ap)
{
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
		r = vsnprintf(c->err + n, c->errlen - n, fmt, ap);
		if (r < 0)
			c->err[n] = '\0';
	}
	for (n = 0; c->err[n] != '\0'; n++) {
		if ((unsigned char)c->err[n] < 0x20 || c->err[n] == 0x7f)
			c->err[n] = '?';
	}
	return -1;
}

int
nb_config_fail(struct nb_config_ctx *c, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(c, path, fmt, ap);
	va_end(ap);
	return -1;
}

void
nb_config_key_path(char *out, size_t outlen, const char *base, const char *key)
{
	int r;

	if (base == NULL || base[0] == '\0')
		r = snprintf(out, outlen, "%s", key);
	else
		r = snprintf(out, outlen, "%s.%s", base, key);
	if (r < 0 && outlen > 0)
		out[0] = '\0';
}

int
nb_config_fail_key(struct nb_config_ctx *c, const char *base, const char *key,
    const char *fmt, ...)
{
	char path[NB_CONFIG_KEY_PATH_MAX];
	va_list ap;

	nb_config_key_path(path, sizeof(path), base, key);
	va_start(ap, fmt);
	vfail(c, path, fmt, ap);
	va_end(ap);
	return -1;
}

void
nb_config_wipe_free_len(void *p, size_t len)
{
	if (p == NULL)
		return;
	sodium_memzero(p, len);
	free(p);
}

void
nb_config_wipe_free(char *s)
{
	if (s != NULL)
		nb_config_wipe_free_len(s, strlen(s));
}

void
nb_config_json_wipe(json_t *v)
{
	const char *k;
	json_t *item;
	size_t i;
	char *s;

	if (json_is_string(v)) {
		s = (char *)(uintptr_t)json_string_value(v);
		sodium_memzero(s, json_string_length(v));
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, item) nb_config_json_wipe(item);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, item) nb_config_json_wipe(item);
	}
}

json_t *
nb_config_member(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_null(v) ? NULL : v;
}

int
nb_config_check_keys(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *const *allowed)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)(uintptr_t)obj, k, v)
	{
		for (i = 0; allowed[i] != NULL; i++) {
			if (strcmp(allowed[i], k) == 0)
				break;
		}
		if (allowed[i] == NULL)
			return nb_config_fail_key(c, base, k, "unknown key");
	}
	return 0;
}

int
nb_config_get_object(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, const char *const *allowed, json_t **out)
{
	char path[NB_CONFIG_KEY_PATH_MAX];
	json_t *v;

	*out = NULL;
	if ((v = nb_config_member(obj, key)) == NULL)
		return 0;
	if (!json_is_object(v))
		return nb_config_fail_key(c, base, key, "must be an object");
	nb_config_key_path(path, sizeof(path), base, key);
	if (allowed != NULL && nb_config_check_keys(c, v, path, allowed) == -1)
		return -1;
	*out = v;
	return 0;
}

int
nb_config_get_string(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, char **out)
{
	json_t *v;
	char *s;

	if ((v = nb_config_member(obj, key)) == NULL)
		return 0;
	if (!json_is_string(v))
		return nb_config_fail_key(c, base, key, "must be a string");
	if (json_string_length(v) == 0)
		return nb_config_fail_key(c, base, key, "must not be empty");
	if (strlen(json_string_value(v)) != json_string_length(v))
		return nb_config_fail_key(
		    c, base, key, "must not contain NUL characters");
	if ((s = strdup(json_string_value(v))) == NULL)
		return nb_config_fail_key(c, base, key, "out of memory");
	free(*out);
	*out = s;
	return 0;
}

int
nb_config_get_int(struct nb_config_ctx *c, const json_t *obj, const char *base,
    const char *key, int64_t min, int64_t max, int64_t *out)
{
	json_int_t n;
	json_t *v;

	if ((v = nb_config_member(obj, key)) == NULL)
		return 0;
	if (!json_is_integer(v))
		return nb_config_fail_key(c, base, key, "must be an integer");
	n = json_integer_value(v);
	if (n < min || n > max)
		return nb_config_fail_key(c, base, key,
		    "must be between %lld and %lld", (long long)min,
		    (long long)max);
	*out = n;
	return 0;
}

int
nb_config_get_int32(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, int min, int max, int *out)
{
	int64_t n = *out;

	if (nb_config_get_int(c, obj, base, key, min, max, &n) == -1)
		return -1;
	*out = (int)n;
	return 0;
}

int
nb_config_get_size(struct nb_config_ctx *c, const json_t *obj, const char *base,
    const char *key, int64_t min, int64_t max, size_t *out)
{
	int64_t n = (int64_t)*out;

	if (nb_config_get_int(c, obj, base, key, min, max, &n) == -1)
		return -1;
	*out = (size_t)n;
	return 0;
}

int
nb_config_get_enum(struct nb_config_ctx *c, const json_t *obj, const char *base,
    const char *key, const char *const *names, const char *list, int *out)
{
	json_t *v;
	int i;

	if ((v = nb_config_member(obj, key)) == NULL)
		return 0;
	if (!json_is_string(v))
		return nb_config_fail_key(
		    c, base, key, "must be a string (one of %s)", list);
	for (i = 0; names[i] != NULL; i++) {
		if (strcmp(names[i], json_string_value(v)) == 0) {
			*out = i;
			return 0;
		}
	}
	return nb_config_fail_key(c, base, key, "must be one of %s", list);
}

char *
nb_config_resolve_path(const char *dir, const char *path)
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

int
nb_config_read_whole(struct nb_config_ctx *c, const char *keypath,
    const char *file, size_t max, char **out, size_t *outlen)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t r;
	int fd = -1, rc = -1;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1) {
		nb_config_fail(
		    c, keypath, "cannot read %s: %s", file, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) == -1) {
		nb_config_fail(
		    c, keypath, "cannot read %s: %s", file, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		nb_config_fail(
		    c, keypath, "cannot read %s: not a regular file", file);
		goto out;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > max) {
		nb_config_fail(c, keypath,
		    "cannot read %s: larger than %zu bytes", file, max);
		goto out;
	}
	if ((buf = malloc(max + 1)) == NULL) {
		nb_config_fail(c, keypath, "out of memory");
		goto out;
	}
	for (;;) {
		r = read(fd, buf + len, max + 1 - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			nb_config_fail(c, keypath, "cannot read %s: %s", file,
			    strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > max) {
			nb_config_fail(c, keypath,
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
	nb_config_wipe_free_len(buf, max + 1);
	if (fd != -1)
		close(fd);
	return rc;
}

int
nb_config_read_indirect(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, const char *kind, char **out,
    size_t *outlen)
{
	char path[NB_CONFIG_KEY_PATH_MAX], name[NB_CONFIG_KEY_PATH_MAX];
	char *file = NULL, *val;
	const char *env;
	json_t *v;
	int rc = -1;

	if (snprintf(name, sizeof(name), "%s%s", key, kind) >=
	    (int)sizeof(name))
		return nb_config_fail(c, key, "key name too long");
	nb_config_key_path(path, sizeof(path), base, name);
	v = nb_config_member(obj, name);
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return nb_config_fail(c, path, "must be a non-empty string");
	if (strcmp(kind, "_env") == 0) {
		if ((env = getenv(json_string_value(v))) == NULL)
			return nb_config_fail(c, path,
			    "environment variable %s is not set",
			    json_string_value(v));
		if ((val = strdup(env)) == NULL)
			return nb_config_fail(c, path, "out of memory");
		*out = val;
		*outlen = strlen(val);
		return 0;
	}
	if ((file = nb_config_resolve_path(c->dir, json_string_value(v))) ==
	    NULL) {
		nb_config_fail(c, path, "out of memory");
		goto out;
	}
	if (nb_config_read_whole(c, path, file, SECRET_FILE_MAX, out, outlen) ==
	    -1)
		goto out;
	rc = 0;
out:
	free(file);
	return rc;
}

int
nb_config_get_secret(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, char **out)
{
	char path[NB_CONFIG_KEY_PATH_MAX], envk[NB_CONFIG_KEY_PATH_MAX],
	    filek[NB_CONFIG_KEY_PATH_MAX];
	const char *kind = NULL, *given = key;
	char *val = NULL;
	size_t len = 0;
	int n = 0, rc = -1;

	if (snprintf(envk, sizeof(envk), "%s_env", key) >= (int)sizeof(envk) ||
	    snprintf(filek, sizeof(filek), "%s_file", key) >=
		(int)sizeof(filek))
		return nb_config_fail(c, key, "key name too long");
	n += nb_config_member(obj, key) != NULL;
	if (nb_config_member(obj, envk) != NULL) {
		n++;
		kind = "_env";
		given = envk;
	}
	if (nb_config_member(obj, filek) != NULL) {
		n++;
		kind = "_file";
		given = filek;
	}
	nb_config_key_path(path, sizeof(path), base, given);
	if (n > 1)
		return nb_config_fail(c, path,
		    "only one of %s, %s and %s may be given", key, envk, filek);
	if (n == 0)
		return 0;
	if (kind == NULL) {
		if (nb_config_get_string(c, obj, base, key, &val) == -1)
			goto out;
		len = strlen(val);
	} else {
		if (nb_config_read_indirect(
			c, obj, base, key, kind, &val, &len) == -1)
			goto out;
		if (strcmp(kind, "_file") == 0) {
			if (len > 0 && val[len - 1] == '\n')
				val[--len] = '\0';
			if (len > 0 && val[len - 1] == '\r')
				val[--len] = '\0';
		}
	}
	if (len == 0) {
		nb_config_fail(c, path, "the secret is empty");
		goto out;
	}
	if (strlen(val) != len || strchr(val, '\n') != NULL ||
	    strchr(val, '\r') != NULL) {
		nb_config_fail(c, path, "the secret must be one line of text");
		goto out;
	}
	*out = val;
	val = NULL;
	rc = 0;
out:
	nb_config_wipe_free_len(val, len);
	return rc;
}

int
nb_config_get_endpoint(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, char **out)
{
	const char *host;
	char *s = NULL;
	size_t len, i;

	if (nb_config_get_string(c, obj, base, key, &s) == -1)
		return -1;
	if (s == NULL)
		return 0;
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
		return nb_config_fail_key(c, base, key,
		    "must be an http:// or https:// URL without query");
	}
	free(*out);
	*out = s;
	return 0;
}

int
nb_config_get_listen(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, char **out)
{
	const char *colon, *host;
	char *end;
	long long port;
	size_t hl;

	if (nb_config_get_string(c, obj, base, key, out) == -1)
		return -1;
	if (nb_config_member(obj, key) == NULL)
		return 0;
	host = *out;
	if ((colon = strrchr(host, ':')) == NULL)
		return nb_config_fail_key(c, base, key, "must be host:port");
	hl = (size_t)(colon - host);
	errno = 0;
	port = strtoll(colon + 1, &end, 10);
	if (hl == 0 || colon[1] == '\0' || *end != '\0' || errno != 0 ||
	    port < 0 || port > 65535 || !isdigit((unsigned char)colon[1]))
		return nb_config_fail_key(
		    c, base, key, "must be host:port with port 0..65535");
	if ((host[0] == '[') != (host[hl - 1] == ']') ||
	    (host[0] != '[' && memchr(host, ':', hl) != NULL))
		return nb_config_fail_key(
		    c, base, key, "an IPv6 host must be written [addr]:port");
	return 0;
}
