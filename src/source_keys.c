/* SPDX-License-Identifier: ISC */
/*
 * source_keys: `source list` with each key's last use, and the check that
 * keeps `source retire` from removing a key Nudgespot still signs with.
 *
 * A key's last use is written to the store by the running bridges (the
 * activity table, by fingerprint, every few seconds), so this process,
 * which shares nothing else with them, reads it from there: it loads the
 * configuration as the daemon would (stand-ins for the daemon's own
 * variables) to find the store, and reads the activity table, whose size
 * is the sources' keys.  When the store cannot be read, list says so and
 * retire refuses unless forced: "unknown" is not "unused".  Keys are only
 * ever shown by fingerprint.  Runs in the command's own process.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nudgebridge/activity.h"
#include "nudgebridge/config.h"
#include "nudgebridge/log.h"
#include "nudgebridge/sig.h"
#include "nudgebridge/source.h"
#include "nudgebridge/source_keys.h"
#include "nudgebridge/store.h"
#include "nudgebridge/store_alert.h"
#include "nudgebridge/timeutil.h"

static const char *const lists[] = {"signing_secrets", "public_keys"};
static const char *const kinds[] = {"secret", "public_key"};

/* The last uses as read from the store; known 0: it could not be read. */
struct uses {
	struct nb_activity_row *v;
	size_t n;
	int known;
};

static int64_t
use_of(const struct uses *u, const char *source, const char *fp)
{
	size_t i;

	for (i = 0; i < u->n; i++)
		if (strcmp(u->v[i].source, source) == 0 &&
		    strcmp(u->v[i].fp, fp) == 0)
			return u->v[i].ms;
	return 0;
}

/* "2026-...Z", "never" or "unknown". */
static const char *
use_text(const struct uses *u, const char *source, const char *fp,
    char buf[NB_TIME_ISO_LEN])
{
	int64_t ms;

	if (!u->known)
		return "unknown";
	if ((ms = use_of(u, source, fp)) <= 0)
		return "never";
	nb_time_format_iso(ms, buf);
	return buf;
}

/*
 * Loads the configuration and the last uses.  *cfg (may stay NULL) and
 * u->v are the caller's to free.  0, or -1 with err (u->known 0).
 */
static int
uses_load(const char *path, const json_t *doc, struct nb_config **cfg,
    struct uses *u, char *err, size_t errlen)
{
	struct nb_store *st = NULL;
	char serr[512];
	int rc = -1;

	memset(u, 0, sizeof(*u));
	*cfg = NULL;
	/* The store logs its own failures; the command says them once. */
	nb_log_init(NB_LOG_ERROR, NB_LOG_LOGFMT);
	if (nb_source_config_load(cfg, path, doc, serr, sizeof(serr)) == -1) {
		snprintf(err, errlen, "%s", serr);
		return -1;
	}
	if (nb_store_open(&st, &(*cfg)->store, serr, sizeof(serr)) == -1) {
		snprintf(err, errlen, "cannot open the store: %s", serr);
		return -1;
	}
	if (nb_store_activity(st, &u->v, &u->n) == -1)
		snprintf(err, errlen, "cannot read the store");
	else {
		u->known = 1;
		rc = 0;
	}
	nb_store_close(st);
	return rc;
}

/* 1 when fp is the fingerprint of one of src's inline keys. */
static int
inline_key(const json_t *src, const char *fp)
{
	char kfp[NB_SIG_FP_LEN];
	json_t *v;
	size_t k, i;

	for (k = 0; k < 2; k++)
		json_array_foreach(json_object_get(src, lists[k]), i, v)
		{
			if (!json_is_string(v))
				continue;
			nb_sig_fingerprint(json_string_value(v), kfp);
			if (strcmp(kfp, fp) == 0)
				return 1;
		}
	return 0;
}

/* The lines of one source's inline keys. */
static void
list_inline(FILE *f, const json_t *s, const char *name, const struct uses *u)
{
	char fp[NB_SIG_FP_LEN], when[NB_TIME_ISO_LEN];
	json_t *keys, *v;
	size_t j, k, id = 0;

	for (k = 0; k < 2; k++) {
		keys = json_object_get(s, lists[k]);
		json_array_foreach(keys, j, v)
		{
			if (!json_is_string(v))
				continue;
			nb_sig_fingerprint(json_string_value(v), fp);
			if (u == NULL)
				fprintf(f, "%-24s %-3zu %-11s %s\n", name,
				    id + j, kinds[k], fp);
			else
				fprintf(f, "%-24s %-3zu %-11s %-11s %s\n", name,
				    id + j, kinds[k], fp,
				    use_text(u, name, fp, when));
		}
		id += json_array_size(keys);
	}
}

/*
 * The lines of keys from *_env and *_file: where they come from, and with
 * the loaded configuration each such key by fingerprint.
 */
static void
list_indirect(FILE *f, const json_t *s, const char *name,
    const struct nb_config *cfg, const struct uses *u)
{
	static const char *const sfx[] = {"_env", "_file"};
	char key[64], when[NB_TIME_ISO_LEN];
	const struct nb_source *src;
	const char *fp;
	json_t *v;
	size_t k, m, i;

	for (k = 0; k < 2; k++)
		for (m = 0; m < 2; m++) {
			snprintf(key, sizeof(key), "%s%s", lists[k], sfx[m]);
			if ((v = json_object_get(s, key)) == NULL)
				continue;
			fprintf(f, "%-24s %-3s %-11s (from %s %s)\n", name, "-",
			    kinds[k], m == 0 ? "environment variable" : "file",
			    json_is_string(v) ? json_string_value(v) : "?");
		}
	if (u == NULL || cfg == NULL ||
	    (src = nb_config_source(cfg, name)) == NULL)
		return;
	for (i = 0; i < nb_sig_keyring_count(src->keys); i++) {
		fp = nb_sig_keyring_fingerprint(src->keys, i);
		if (inline_key(s, fp))
			continue;
		fprintf(f, "%-24s %-3s %-11s %-11s %s\n", name, "-", "indirect",
		    fp, use_text(u, name, fp, when));
	}
}

static void
list_table(FILE *f, const json_t *doc, const struct nb_config *cfg,
    const struct uses *u)
{
	json_t *arr = json_object_get(doc, "sources"), *s;
	const char *name;
	size_t i;

	if (u == NULL)
		fprintf(f, "%-24s %-3s %-11s %s\n", "SOURCE", "ID", "KIND",
		    "FINGERPRINT");
	else
		fprintf(f, "%-24s %-3s %-11s %-11s %s\n", "SOURCE", "ID",
		    "KIND", "FINGERPRINT", "LAST_USED");
	json_array_foreach(arr, i, s)
	{
		if ((name = json_string_value(json_object_get(s, "name"))) ==
		    NULL)
			continue;
		list_inline(f, s, name, u);
		list_indirect(f, s, name, cfg, u);
	}
}

void
nb_source_list(FILE *f, const json_t *doc)
{
	list_table(f, doc, NULL, NULL);
}

void
nb_source_list_used(FILE *f, FILE *warn, const char *path, const json_t *doc)
{
	struct nb_config *cfg = NULL;
	struct uses u;
	char err[768];

	if (uses_load(path, doc, &cfg, &u, err, sizeof(err)) == -1)
		fprintf(warn,
		    "nudgebridge source list: last uses unknown: %s\n", err);
	list_table(f, doc, cfg, &u);
	free(u.v);
	nb_config_unref(cfg);
}

int
nb_source_retire_check(FILE *f, const char *path, const json_t *doc,
    const char *name, const char *id, const char *fp, int force)
{
	struct nb_config *cfg = NULL;
	char err[768], when[NB_TIME_ISO_LEN];
	int64_t last, ago;
	struct uses u;
	int rc = -1;

	if (uses_load(path, doc, &cfg, &u, err, sizeof(err)) == -1) {
		fprintf(f,
		    "nudgebridge source retire: cannot tell when key %s (%s) "
		    "was last used: %s%s\n",
		    id, fp, err,
		    force ? "; retiring it anyway (--force)"
			  : "; retire it anyway with --force");
		rc = force ? 0 : -1;
		goto out;
	}
	if ((last = use_of(&u, name, fp)) <= 0) {
		fprintf(f,
		    "Key %s (%s) of source %s never verified a request.\n", id,
		    fp, name);
		rc = 0;
		goto out;
	}
	nb_time_format_iso(last, when);
	ago = (nb_time_now_ms() - last) / 1000;
	if (ago >= NB_SOURCE_RECENT_S) {
		fprintf(f,
		    "Key %s (%s) of source %s last verified a request "
		    "at %s.\n",
		    id, fp, name, when);
		rc = 0;
		goto out;
	}
	fprintf(f,
	    "nudgebridge source retire: key %s (%s) of source %s verified a "
	    "request at %s (%" PRId64 " s ago): Nudgespot may still sign "
	    "with it.%s\n",
	    id, fp, name, when, ago < 0 ? 0 : ago,
	    force ? " Retiring it anyway (--force)."
		  : " Once Nudgespot signs with the new key (source list "
		    "shows each key's last use), retire it; or now with "
		    "--force.");
	rc = force ? 0 : -1;
out:
	free(u.v);
	nb_config_unref(cfg);
	return rc;
}
