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
 * This file reads the top level and its sections; the getters and the
 * secret reading are config_read.c's, the sources config_source.c's.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pwd.h>
#include <unistd.h>

#include <jansson.h>

#include "nudgebridge/config.h"
#include "nudgebridge/log.h"
#include "nudgebridge/oauth.h"
#include "nudgebridge/sig.h"
#include "nudgebridge/tls.h"

#include "config_read.h"

#define CONFIG_FILE_MAX	   (4 * 1024 * 1024) /* whole configuration */
#define DEFAULT_LISTEN	   "127.0.0.1:8080"
#define DEFAULT_ADMIN	   "127.0.0.1:8081"
#define DEFAULT_STORE_PATH "nudgebridge.db"

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
static const char *const alerts_keys[] = {"webhook_url", "webhook_url_env",
    "webhook_url_file", "secret", "secret_env", "secret_file", "format",
    "repeat_s", "backlog_age_s", "store_unavailable_s", "interval_ms",
    "timeout_ms", "retry_initial_ms", "retry_max_ms", "max_age_s", NULL};

/*
 * The admin token guards replay and purge of every event: at least
 * NB_CONFIG_TOKEN_MIN characters, NB_CONFIG_TOKEN_VARIETY of them
 * different (32 random hex digits have fewer than 8 different ones once
 * in 30 million).
 */
static int
check_token(struct nb_config_ctx *c, const char *t)
{
	unsigned char seen[256] = {0};
	size_t i, kinds = 0;

	for (i = 0; t[i] != '\0'; i++)
		if (!seen[(unsigned char)t[i]]++)
			kinds++;
	if (i >= NB_CONFIG_TOKEN_MIN && kinds >= NB_CONFIG_TOKEN_VARIETY)
		return 0;
	return nb_config_fail(c, "admin.token",
	    "too weak: use at least %d characters, %d of them different "
	    "(openssl rand -hex 32 makes one)",
	    NB_CONFIG_TOKEN_MIN, NB_CONFIG_TOKEN_VARIETY);
}

static int
parse_admin(struct nb_config_ctx *c, struct nb_config *cfg, const json_t *root)
{
	json_t *o;

	if (nb_config_get_object(c, root, "", "admin", admin_keys, &o) == -1)
		return -1;
	if (o == NULL)
		return 0;
	if (nb_config_get_listen(c, o, "admin", "listen", &cfg->admin_listen) ==
		-1 ||
	    nb_config_get_secret(c, o, "admin", "token", &cfg->admin_token) ==
		-1 ||
	    nb_config_get_size(c, o, "admin", "max_connections", 1, 100000,
		&cfg->admin_max_connections) == -1)
		return -1;
	if (cfg->admin_token != NULL)
		return check_token(c, cfg->admin_token);
	return 0;
}

static int
parse_log(struct nb_config_ctx *c, struct nb_config *cfg, const json_t *root)
{
	static const char *const levels[] = {
	    "debug", "info", "warn", "error", NULL};
	static const char *const formats[] = {"logfmt", "json", NULL};
	int level = NB_LOG_INFO, format = NB_LOG_LOGFMT;
	json_t *o;

	if (nb_config_get_object(c, root, "", "log", log_keys, &o) == -1)
		return -1;
	if (o == NULL)
		return 0;
	if (nb_config_get_enum(c, o, "log", "level", levels,
		"debug, info, warn, error", &level) == -1 ||
	    nb_config_get_enum(
		c, o, "log", "format", formats, "logfmt, json", &format) == -1)
		return -1;
	/* Index order above is the order of the enums; parse to be sure. */
	if (nb_log_level_parse(levels[level], &cfg->log_level) == -1 ||
	    nb_log_format_parse(formats[format], &cfg->log_format) == -1)
		return nb_config_fail(c, "log", "cannot parse level or format");
	return 0;
}

static int
parse_store(struct nb_config_ctx *c, struct nb_config *cfg, const json_t *root)
{
	static const char *const drivers[] = {"sqlite", "postgres", NULL};
	struct nb_store_config *st = &cfg->store;
	char *path = NULL;
	int driver = 0, rc = -1;
	json_t *o;

	if (nb_config_get_object(c, root, "", "store", store_keys, &o) == -1)
		return -1;
	if (o != NULL) {
		if (nb_config_get_enum(c, o, "store", "driver", drivers,
			"sqlite, postgres", &driver) == -1 ||
		    nb_config_get_string(c, o, "store", "path", &path) == -1 ||
		    nb_config_get_secret(c, o, "store", "dsn", &st->dsn) ==
			-1 ||
		    nb_config_get_int32(c, o, "store", "lease_s", 1, 86400,
			&st->lease_s) == -1 ||
		    nb_config_get_int(c, o, "store", "max_size_bytes", 0,
			INT64_MAX, &st->max_size_bytes) == -1)
			goto out;
	}
	if ((st->driver = strdup(drivers[driver])) == NULL) {
		nb_config_fail(c, "store.driver", "out of memory");
		goto out;
	}
	if (driver == 1 && st->dsn == NULL) {
		nb_config_fail(c, "store.dsn",
		    "required with driver postgres (or dsn_env, dsn_file)");
		goto out;
	}
	if (driver == 0 && st->dsn != NULL) {
		nb_config_fail(
		    c, "store.dsn", "only valid with driver postgres");
		goto out;
	}
	st->path =
	    nb_config_resolve_path(c->dir, path ? path : DEFAULT_STORE_PATH);
	if (st->path == NULL) {
		nb_config_fail(c, "store.path", "out of memory");
		goto out;
	}
	rc = 0;
out:
	free(path);
	return rc;
}

static int
parse_limits(struct nb_config_ctx *c, struct nb_config *cfg, const json_t *root)
{
	struct nb_limits_config *l = &cfg->limits;
	const char *b = "limits";
	json_t *o;

	if (nb_config_get_object(c, root, "", "limits", limits_keys, &o) == -1)
		return -1;
	if (o == NULL)
		return 0;
	if (nb_config_get_size(c, o, b, "max_body_bytes", 1,
		1024LL * 1024 * 1024, &l->max_body_bytes) == -1 ||
	    nb_config_get_int(c, o, b, "timestamp_tolerance_s", 1,
		NB_CONFIG_TEN_YEARS_S, &l->timestamp_tolerance_s) == -1 ||
	    nb_config_get_int(c, o, b, "dedupe_window_s", 0,
		NB_CONFIG_TEN_YEARS_S, &l->dedupe_window_s) == -1 ||
	    nb_config_get_size(c, o, b, "max_header_bytes", 1024, 1024 * 1024,
		&l->max_header_bytes) == -1 ||
	    nb_config_get_int32(
		c, o, b, "read_timeout_s", 1, 3600, &l->read_timeout_s) == -1 ||
	    nb_config_get_int32(c, o, b, "drain_s", 0, 3600, &l->drain_s) ==
		-1 ||
	    nb_config_get_size(c, o, b, "max_connections", 1, 1000000,
		&l->max_connections) == -1 ||
	    nb_config_get_int32(c, o, b, "request_timeout_s", 0, 3600,
		&l->request_timeout_s) == -1 ||
	    nb_config_get_size(c, o, b, "max_inflight_body_bytes", 1, INT64_MAX,
		&l->max_inflight_body_bytes) == -1)
		return -1;
	return 0;
}

/*
 * Rules between limits: a replay inside the timestamp tolerance must still
 * meet its webhook-id, and one body must fit the in-flight budget.
 */
static int
check_limits(struct nb_config_ctx *c, struct nb_limits_config *l)
{
	if (l->dedupe_window_s < l->timestamp_tolerance_s)
		return nb_config_fail(c, "limits.dedupe_window_s",
		    "must be at least limits.timestamp_tolerance_s (%lld), or "
		    "a "
		    "replayed request is stored again",
		    (long long)l->timestamp_tolerance_s);
	if (l->max_inflight_body_bytes == 0)
		l->max_inflight_body_bytes = l->max_body_bytes <= SIZE_MAX / 64
		    ? l->max_body_bytes * 64
		    : SIZE_MAX / 2;
	if (l->max_inflight_body_bytes < l->max_body_bytes)
		return nb_config_fail(c, "limits.max_inflight_body_bytes",
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
parse_tls(struct nb_config_ctx *c, struct nb_config *cfg, const json_t *root)
{
	struct nb_tls_config *t = &cfg->tls;
	struct nb_tls *probe;
	char *cert = NULL, *key = NULL;
	int rc = -1;
	json_t *o;

	if (nb_config_get_object(c, root, "", "tls", tls_keys, &o) == -1)
		return -1;
	if (o == NULL)
		return 0;
	if (nb_config_get_string(c, o, "tls", "cert_file", &cert) == -1 ||
	    nb_config_get_string(c, o, "tls", "key_file", &key) == -1)
		goto out;
	if (cert == NULL) {
		nb_config_fail(c, "tls.cert_file", "required in tls");
		goto out;
	}
	if (key == NULL) {
		nb_config_fail(c, "tls.key_file", "required in tls");
		goto out;
	}
	if ((t->cert_file = nb_config_resolve_path(c->dir, cert)) == NULL ||
	    (t->key_file = nb_config_resolve_path(c->dir, key)) == NULL) {
		nb_config_fail(c, "tls", "out of memory");
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
parse_user(struct nb_config_ctx *c, struct nb_config *cfg, const json_t *root)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	size_t i;
	int r;

	if (nb_config_get_string(c, root, "", "user", &cfg->user) == -1)
		return -1;
	if (cfg->user == NULL)
		return 0;
	for (i = 0; cfg->user[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)cfg->user[i];

		if (!(islower(ch) || ch == '_' ||
			(i > 0 && (isdigit(ch) || ch == '-' || ch == '.'))))
			return nb_config_fail(
			    c, "user", "not a valid account name");
	}
	if (i > 32)
		return nb_config_fail(c, "user", "longer than 32 characters");
	r = getpwnam_r(cfg->user, &pw, buf, sizeof(buf), &res);
	if (r != 0)
		return nb_config_fail(
		    c, "user", "cannot look the account up: %s", strerror(r));
	if (res == NULL)
		return nb_config_fail(c, "user", "no such account");
	if (pw.pw_uid == 0)
		return nb_config_fail(c, "user", "must not be root");
	return 0;
}

static int
parse_segment(
    struct nb_config_ctx *c, struct nb_config *cfg, const json_t *root)
{
	struct nb_segment_config *s = &cfg->segment;
	struct nb_retry_config *r = &s->retry;
	const char *b = "segment", *rb = "segment.retry";
	json_t *o, *ro, *v;

	if (nb_config_get_object(c, root, "", "segment", segment_keys, &o) ==
	    -1)
		return -1;
	if (o == NULL)
		return 0;
	if (nb_config_get_endpoint(c, o, b, "endpoint", &s->endpoint) == -1 ||
	    nb_config_get_int32(c, o, b, "flush_interval_ms", 0, 3600000,
		&s->flush_interval_ms) == -1 ||
	    nb_config_get_size(c, o, b, "max_batch_bytes", 1, 500000,
		&s->max_batch_bytes) == -1 ||
	    nb_config_get_size(c, o, b, "max_batch_count", 1, 2500,
		&s->max_batch_count) == -1 ||
	    nb_config_get_size(c, o, b, "max_message_bytes", 1, 32000,
		&s->max_message_bytes) == -1 ||
	    nb_config_get_int32(
		c, o, b, "timeout_ms", 1, 3600000, &s->timeout_ms) == -1 ||
	    nb_config_get_int32(
		c, o, b, "max_inflight", 1, 1024, &s->max_inflight) == -1 ||
	    nb_config_get_int32(
		c, o, b, "pause_s", 1, 7 * 86400, &s->pause_s) == -1 ||
	    nb_config_get_int(c, o, b, "retention_s", 0, NB_CONFIG_TEN_YEARS_S,
		&s->retention_s) == -1)
		return -1;
	if ((v = nb_config_member(o, "rate_limit_rps")) != NULL) {
		if (!json_is_number(v))
			return nb_config_fail(
			    c, "segment.rate_limit_rps", "must be a number");
		if (!(json_number_value(v) > 0 &&
			json_number_value(v) <= 1000000))
			return nb_config_fail(c, "segment.rate_limit_rps",
			    "must be greater than 0 and at most 1000000");
		s->rate_limit_rps = json_number_value(v);
	}
	if ((v = nb_config_member(o, "gzip")) != NULL) {
		if (!json_is_boolean(v))
			return nb_config_fail(
			    c, "segment.gzip", "must be true or false");
		s->gzip = json_is_true(v);
	}
	if (nb_config_get_object(c, o, b, "retry", retry_keys, &ro) == -1)
		return -1;
	if (ro == NULL)
		return 0;
	if (nb_config_get_int32(
		c, ro, rb, "initial_ms", 1, 86400000, &r->initial_ms) == -1 ||
	    nb_config_get_int32(c, ro, rb, "max_ms", 1, 86400000, &r->max_ms) ==
		-1 ||
	    nb_config_get_int32(c, ro, rb, "max_attempts", 0, 1000000,
		&r->max_attempts) == -1 ||
	    nb_config_get_int(c, ro, rb, "max_age_s", 1, NB_CONFIG_TEN_YEARS_S,
		&r->max_age_s) == -1)
		return -1;
	if (r->max_ms < r->initial_ms)
		return nb_config_fail(c, "segment.retry.max_ms",
		    "must be at least initial_ms (%d)", r->initial_ms);
	return 0;
}

/* "alerts": see struct nb_alerts_config. */
static int
parse_alerts(struct nb_config_ctx *c, struct nb_config *cfg, const json_t *root)
{
	static const char *const formats[] = {"json", "slack", NULL};
	struct nb_alerts_config *al = &cfg->alerts;
	char entry[NB_SIG_ENTRY_MAX];
	const char *u;
	json_t *o;

	if (nb_config_get_object(c, root, "", "alerts", alerts_keys, &o) == -1)
		return -1;
	if (o == NULL)
		return 0;
	if (nb_config_get_secret(
		c, o, "alerts", "webhook_url", &al->webhook_url) == -1 ||
	    nb_config_get_secret(c, o, "alerts", "secret", &al->secret) == -1 ||
	    nb_config_get_enum(c, o, "alerts", "format", formats, "json, slack",
		&al->slack) == -1 ||
	    nb_config_get_int(c, o, "alerts", "repeat_s", 1,
		NB_CONFIG_TEN_YEARS_S, &al->repeat_s) == -1 ||
	    nb_config_get_int(c, o, "alerts", "backlog_age_s", 1,
		NB_CONFIG_TEN_YEARS_S, &al->backlog_age_s) == -1 ||
	    nb_config_get_int(c, o, "alerts", "store_unavailable_s", 1, 86400,
		&al->store_unavailable_s) == -1 ||
	    nb_config_get_int32(c, o, "alerts", "interval_ms", 100, 600000,
		&al->interval_ms) == -1 ||
	    nb_config_get_int32(c, o, "alerts", "timeout_ms", 100, 600000,
		&al->timeout_ms) == -1 ||
	    nb_config_get_int32(c, o, "alerts", "retry_initial_ms", 10, 3600000,
		&al->retry_initial_ms) == -1 ||
	    nb_config_get_int32(c, o, "alerts", "retry_max_ms", 10, 86400000,
		&al->retry_max_ms) == -1 ||
	    nb_config_get_int(c, o, "alerts", "max_age_s", 1,
		NB_CONFIG_TEN_YEARS_S, &al->max_age_s) == -1)
		return -1;
	u = al->webhook_url;
	if (u != NULL && strncasecmp(u, "http://", 7) != 0 &&
	    strncasecmp(u, "https://", 8) != 0)
		return nb_config_fail(
		    c, "alerts.webhook_url", "must be an http(s) URL");
	/* Signing a test message is the one check of a whsec_ secret. */
	if (al->secret != NULL &&
	    nb_sig_sign_hmac(al->secret, "msg_check", 0, NULL, 0, entry,
		sizeof(entry)) == -1)
		return nb_config_fail(c, "alerts.secret",
		    "not a whsec_ secret (base64 of 24..64 bytes)");
	return 0;
}

static void
config_free(struct nb_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->nsources; i++)
		nb_config_source_clear(&cfg->sources[i]);
	free(cfg->sources);
	free(cfg->path);
	free(cfg->listen);
	free(cfg->admin_listen);
	nb_config_wipe_free(cfg->admin_token);
	free(cfg->user);
	free(cfg->tls.cert_file);
	free(cfg->tls.key_file);
	free(cfg->store.driver);
	free(cfg->store.path);
	nb_config_wipe_free(cfg->store.dsn);
	free(cfg->segment.endpoint);
	nb_config_wipe_free(cfg->alerts.webhook_url);
	nb_config_wipe_free(cfg->alerts.secret);
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
	struct nb_config_ctx c = {err, errlen, dir};
	struct nb_config *cfg = NULL;
	json_t *root = NULL;
	json_error_t je;
	char jtext[JSON_ERROR_TEXT_LENGTH];
	int rc = -1;

	*out = NULL;
	if ((cfg = config_new()) == NULL) {
		nb_config_fail(&c, "config", "out of memory");
		goto out;
	}
	cfg->path = abspath;
	abspath = NULL;
	root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL) {
		json_error_text(&je, jtext, sizeof(jtext));
		nb_config_fail(&c, "config",
		    "invalid JSON at line %d column %d: %s", je.line, je.column,
		    jtext);
		goto out;
	}
	if (!json_is_object(root)) {
		nb_config_fail(&c, "config", "must be a JSON object");
		goto out;
	}
	if (nb_config_check_keys(&c, root, "", top_keys) == -1 ||
	    nb_config_get_listen(&c, root, "", "listen", &cfg->listen) == -1 ||
	    nb_config_get_size(&c, root, "", "http_threads", 1,
		NB_HTTP_THREADS_MAX, &cfg->http_threads) == -1 ||
	    parse_admin(&c, cfg, root) == -1 ||
	    parse_log(&c, cfg, root) == -1 ||
	    parse_store(&c, cfg, root) == -1 ||
	    parse_limits(&c, cfg, root) == -1 ||
	    check_limits(&c, &cfg->limits) == -1 ||
	    parse_tls(&c, cfg, root) == -1 || parse_user(&c, cfg, root) == -1 ||
	    parse_segment(&c, cfg, root) == -1 ||
	    parse_alerts(&c, cfg, root) == -1 ||
	    nb_config_parse_sources(&c, root, cfg->segment.endpoint,
		&cfg->sources, &cfg->nsources) == -1)
		goto out;
	if (cfg->listen == NULL &&
	    (cfg->listen = strdup(DEFAULT_LISTEN)) == NULL) {
		nb_config_fail(&c, "listen", "out of memory");
		goto out;
	}
	if (cfg->admin_listen == NULL &&
	    (cfg->admin_listen = strdup(DEFAULT_ADMIN)) == NULL) {
		nb_config_fail(&c, "admin.listen", "out of memory");
		goto out;
	}
	*out = cfg;
	cfg = NULL;
	rc = 0;
out:
	free(abspath);
	if (root != NULL) {
		nb_config_json_wipe(root);
		json_decref(root);
	}
	config_free(cfg);
	return rc;
}

int
nb_config_load_json(struct nb_config **out, const char *text, const char *dir,
    char *err, size_t errlen)
{
	struct nb_config_ctx c = {err, errlen, NULL};
	char cwd[PATH_MAX];
	char *absdir = NULL;
	int rc = -1;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (dir == NULL || dir[0] != '/') {
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			nb_config_fail(&c, "config",
			    "cannot get the current folder: %s",
			    strerror(errno));
			goto out;
		}
		absdir = dir ? nb_config_resolve_path(cwd, dir) : strdup(cwd);
		if (absdir == NULL) {
			nb_config_fail(&c, "config", "out of memory");
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
	struct nb_config_ctx c = {err, errlen, NULL};
	char *abspath = NULL, *dir = NULL, *text = NULL, *slash;
	size_t len = 0;
	int rc = -1;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((abspath = realpath(path, NULL)) == NULL) {
		nb_config_fail(
		    &c, "config", "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if ((dir = strdup(abspath)) == NULL) {
		nb_config_fail(&c, "config", "out of memory");
		goto out;
	}
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	if (nb_config_read_whole(
		&c, "config", abspath, CONFIG_FILE_MAX, &text, &len) == -1)
		goto out;
	if (strlen(text) != len) {
		nb_config_fail(&c, "config", "%s contains a NUL byte", abspath);
		goto out;
	}
	rc = load_doc(out, text, dir, abspath, err, errlen);
	abspath = NULL;
out:
	nb_config_wipe_free_len(text, len);
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
