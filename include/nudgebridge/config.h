/* SPDX-License-Identifier: ISC */
/*
 * config: the JSON configuration file, loaded and validated as a whole.
 *
 * A struct nb_config is immutable once loaded and reference counted, so a
 * SIGHUP reload builds a new one while threads finish their work with the
 * old one.  Secrets resolved from "*_env" and "*_file" keys live only inside
 * the struct and are wiped with sodium_memzero() when the last reference
 * goes.  Loading never logs secret values.  Each section's settings are
 * a struct of the module that reads them (store_types.h, httpd.h,
 * policy.h, segment.h, oauth.h, alert_send.h, tls.h), included here and
 * filled by config.c, and a source is config_source.h's; this header keeps
 * what is the configuration's own: the top-level settings.
 */
#ifndef NB_CONFIG_H
#define NB_CONFIG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "nudgebridge/alert_send.h" /* struct nb_alerts_config */
#include "nudgebridge/bounds.h"
#include "nudgebridge/config_source.h" /* struct nb_source */
#include "nudgebridge/filter.h"	       /* struct nb_filter */
#include "nudgebridge/httpd.h"	       /* struct nb_limits_config */
#include "nudgebridge/log.h"
#include "nudgebridge/oauth.h"	     /* struct nb_oauth_config */
#include "nudgebridge/policy.h"	     /* struct nb_segment_config */
#include "nudgebridge/segment.h"     /* struct nb_mapping */
#include "nudgebridge/store_types.h" /* struct nb_store_config */
#include "nudgebridge/tls.h"	     /* struct nb_tls_config */

#define NB_HTTP_THREADS_MAX 64

/*
 * The weakest admin.token nb_config_load() accepts: this many characters,
 * this many of them different.
 */
#define NB_CONFIG_TOKEN_MIN	32
#define NB_CONFIG_TOKEN_VARIETY 8

struct nb_config {
	char *path;	    /* the file it was loaded from, absolute */
	char *listen;	    /* "host:port", default 127.0.0.1:8080 */
	char *admin_listen; /* default 127.0.0.1:8081 */
	char *admin_token;  /* NULL: admin API off (secret, strong) */
	size_t admin_max_connections; /* open at once, default 64 */
	char *user; /* account to switch to when started as root */
	/*
	 * evhttp threads on the main port, 1..NB_HTTP_THREADS_MAX; default
	 * the online CPUs less one, 1..8.  1: the main thread alone.
	 */
	size_t http_threads;
	struct nb_tls_config tls; /* see tls.h */
	enum nb_log_level log_level;
	enum nb_log_format log_format;
	struct nb_store_config store;	  /* see store.h */
	struct nb_limits_config limits;	  /* see httpd.h */
	struct nb_segment_config segment; /* see policy.h */
	struct nb_alerts_config alerts;	  /* see alert_send.h */
	struct nb_source *sources;
	size_t nsources;
	/* private: only nb_config_ref() and nb_config_unref() touch it */
	atomic_int refs;
};

/*
 * Loads and validates the file at path.  On success returns 0 and a new
 * config with one reference in *out.  On failure returns -1 and writes a
 * message naming the offending key ("sources[0].signing_secrets[1]: not a
 * whsec_ secret") to err (errlen bytes, always NUL-terminated).  Relative
 * paths are resolved against the file's folder.  Secrets may come from the
 * key itself, from "<key>_env" (an environment variable name) or from
 * "<key>_file" (a path; one trailing newline is stripped), one of the three
 * at most.  The key lists signing_secrets and public_keys may combine the
 * array, "_env" (entries separated by spaces or commas) and "_file" (one per
 * line, '#' starts a comment line).  Unknown keys are errors.  Secret values
 * never appear in err.
 */
int nb_config_load(
    struct nb_config **out, const char *path, char *err, size_t errlen);

/* Same as nb_config_load() on an in-memory document; dir resolves paths. */
int nb_config_load_json(struct nb_config **out, const char *text,
    const char *dir, char *err, size_t errlen);

/* Takes one more reference.  Thread-safe. */
struct nb_config *nb_config_ref(struct nb_config *);

/* Drops one reference; the last one wipes secrets and frees.  NULL is ok. */
void nb_config_unref(struct nb_config *);

/* The source named name, or NULL.  The pointer is borrowed from cfg. */
const struct nb_source *nb_config_source(
    const struct nb_config *cfg, const char *name);

#endif
