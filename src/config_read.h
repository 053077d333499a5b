/* SPDX-License-Identifier: ISC */
/*
 * config_read: how the configuration modules read the file (private).
 *
 * config.c reads the top level and most sections, config_source.c the
 * "sources" section; both read members with these getters, which report a
 * mistake once, as "<key path>: <what is wrong>", into the load's context
 * and return -1, and never quote a value.  Nothing outside the config
 * modules includes this header.
 */
#ifndef NB_CONFIG_READ_H
#define NB_CONFIG_READ_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct nb_source;

/* Longest key path in a message ("sources[3].oauth.private_key_file"). */
#define NB_CONFIG_KEY_PATH_MAX 160

/* The largest duration of seconds a setting takes. */
#define NB_CONFIG_TEN_YEARS_S (10LL * 366 * 86400)

/* One load: where its error goes and where relative paths start. */
struct nb_config_ctx {
	char *err;
	size_t errlen;
	const char *dir; /* absolute folder that relative paths start from */
};

/*
 * Writes "path: message".  Key names come from the file and may hold
 * control characters; they are replaced so the message stays one line.
 */
int nb_config_fail(struct nb_config_ctx *c, const char *path, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

/* base.key, or key alone at the top.  Truncated paths only shorten errors. */
void nb_config_key_path(
    char *out, size_t outlen, const char *base, const char *key);

/* nb_config_fail() at the path base.key (nb_config_key_path()).  -1. */
int nb_config_fail_key(struct nb_config_ctx *c, const char *base,
    const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Wipes and frees a string (a secret).  NULL is ok. */
void nb_config_wipe_free(char *s);
/* Wipes the len bytes at p and frees them (a secret's buffer).  NULL is ok. */
void nb_config_wipe_free_len(void *p, size_t len);

/*
 * jansson keeps its own copy of every string it parsed, secrets included,
 * and frees it without wiping; the document is overwritten here just before
 * its last reference is dropped.  The strings belong to the document, which
 * nobody else shares, so writing through the const pointer is safe.
 */
void nb_config_json_wipe(json_t *v);

/* obj's member key, or NULL when absent or null. */
json_t *nb_config_member(const json_t *obj, const char *key);

/*
 * Fails naming the first member of obj (at base) that allowed, a NULL
 * terminated list, does not hold: a typo is an error, never ignored.
 */
int nb_config_check_keys(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *const *allowed);

/*
 * An optional object member; *out stays NULL when absent.  With allowed
 * (else NULL), its members are checked as nb_config_check_keys() does.
 */
int nb_config_get_object(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, const char *const *allowed,
    json_t **out);

/* An optional non-empty string member, copied; *out untouched if absent. */
int nb_config_get_string(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, char **out);

/*
 * An optional integer member from min to max into *out, untouched when
 * absent.  nb_config_get_int32() and nb_config_get_size() for the int and
 * size_t fields of the structs.
 */
int nb_config_get_int(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, int64_t min, int64_t max, int64_t *out);

int nb_config_get_int32(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, int min, int max, int *out);

int nb_config_get_size(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, int64_t min, int64_t max, size_t *out);

/* An optional string that must be one of names; *out is its index. */
int nb_config_get_enum(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, const char *const *names,
    const char *list, int *out);

/* path made absolute against the config's folder; malloc'd or NULL. */
char *nb_config_resolve_path(const char *dir, const char *path);

/*
 * Reads a whole file of at most max bytes into a NUL-terminated malloc'd
 * buffer.  On failure the message names the file and errno, never content.
 */
int nb_config_read_whole(struct nb_config_ctx *c, const char *keypath,
    const char *file, size_t max, char **out, size_t *outlen);

/*
 * The value of the member key_env (an environment variable name) or
 * key_file (a path) as a malloc'd string.  kind is "_env" or "_file".
 */
int nb_config_read_indirect(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, const char *kind, char **out,
    size_t *outlen);

/*
 * A single secret from key, key_env or key_file (at most one of them).
 * *out stays NULL when none is given.  One trailing newline of a file is
 * stripped; what remains must be one non-empty line.
 */
int nb_config_get_secret(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, char **out);

/* http(s)://host[...], with one trailing '/' removed; malloc'd. */
int nb_config_get_endpoint(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, char **out);

/* "host:port" with port 0..65535; an IPv6 host is written in brackets. */
int nb_config_get_listen(struct nb_config_ctx *c, const json_t *obj,
    const char *base, const char *key, char **out);

/* Sections read in files of their own. */

/*
 * config_source.c: "sources" (required, 1..NB_CONFIG_MAX_SOURCES) into
 * *sources; *nsources counts a source before it is read, so a half-built
 * one is freed with the others.  A source without endpoint or region
 * sends to global_endpoint (the segment section's; NULL: US).
 */
int nb_config_parse_sources(struct nb_config_ctx *c, const json_t *root,
    const char *global_endpoint, struct nb_source **sources, size_t *nsources);

/* Frees what src holds, its secrets wiped. */
void nb_config_source_clear(struct nb_source *src);

#endif
