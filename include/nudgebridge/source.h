/* SPDX-License-Identifier: ISC */
/*
 * source: onboarding commands that edit the configuration file.
 *
 * `nudgebridge source add|rotate|retire|list` register a Nudgespot account
 * as a source, rotate its signing keys and show them by fingerprint.  The
 * file is locked against other edits (flock()), read as JSON, changed,
 * validated with nb_config_load() as a whole and only then put in place
 * atomically (temporary file in the same folder, fsync, rename, fsync of
 * the folder), so a running bridge never sees half a file, a SIGHUP picks
 * the change up and two edits at once both land.  A symlinked file is
 * edited where the link points, so the link stays.  A new secret or
 * private key is printed once on stdout, for Nudgespot's webhook settings,
 * and never logged; `list` shows fingerprints only.  Runs in the command's
 * own process, on its main thread.
 */
#ifndef NB_SOURCE_H
#define NB_SOURCE_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "nudgebridge/config.h"
#include "nudgebridge/sig.h"

/* A fingerprint: 8 lower-case hex digits and the NUL. */
#define NB_SOURCE_FP_LEN NB_SIG_FP_LEN

/* Room for any key the commands print (a whsk_ private key is longest). */
#define NB_SOURCE_KEY_MAX 160

/* What `source add` puts in the file. */
struct nb_source_new {
	const char *name;	   /* [a-z0-9][a-z0-9_-]{0,62}, unused */
	const char *write_key_env; /* environment variable of the write key */
	const char *region;	   /* NULL, "us" or "eu" */
	int ed25519;		   /* a key pair instead of a whsec_ secret */
	/*
	 * Segment OAuth (all NULL: none): client_id, key_id, the private
	 * key's file (relative to the config's folder) or variable, and the
	 * token server (NULL: by region).
	 */
	const char *oauth_client_id;
	const char *oauth_key_id;
	const char *oauth_key_file;
	const char *oauth_key_env;
	const char *oauth_auth_server;
};

/*
 * The fingerprint of a key as written in the file (whsec_... or whpk_...):
 * nb_sig_fingerprint(), the first 8 hex digits of the SHA-256 of that
 * string.  Never reveals the key.
 */
void nb_source_fingerprint(const char *key, char out[NB_SOURCE_FP_LEN]);

/*
 * Appends a source object to doc's "sources" array (created if missing):
 * {"name", "signing_secrets": [new whsec_] or "public_keys": [new whpk_],
 * "write_key_env", "region" and "oauth" when given}.  The key to give
 * Nudgespot (the secret, or the whsk_ private key) is written to key
 * (keylen at least NB_SOURCE_KEY_MAX); the caller wipes it.  -1 with a
 * message in err for an invalid or already used name, a bad variable name
 * or region, or OAuth options that do not go together (client and key id
 * need exactly one of the key's file or variable).
 */
int nb_source_add(json_t *doc, const struct nb_source_new *s, char *key,
    size_t keylen, char *err, size_t errlen);

/*
 * Appends a new key to the source name: a whsec_ secret, or with ed25519 an
 * Ed25519 pair whose public half goes to "public_keys".  The old keys stay.
 * key and *id receive the new key and its id (as `list` numbers them).
 * 0 or -1 with err.
 */
int nb_source_rotate(json_t *doc, const char *name, int ed25519, char *key,
    size_t keylen, int *id, char *err, size_t errlen);

/*
 * Removes one key of source name.  id is its number as `list` prints it
 * (signing_secrets first, then public_keys) or a prefix of 4 to 8 hex digits
 * of its fingerprint that matches exactly one key.  Refuses to remove the
 * last key of a source.  0 or -1 with err.
 */
int nb_source_retire(
    json_t *doc, const char *name, const char *id, char *err, size_t errlen);

/*
 * The fingerprint of the key of source name that id names (as
 * nb_source_retire() reads id).  0, or -1 with err.
 */
int nb_source_key_find(const json_t *doc, const char *name, const char *id,
    char fp[NB_SOURCE_FP_LEN], char *err, size_t errlen);

/*
 * Loads the configuration at path (doc is its JSON) as the daemon would,
 * with stand-ins for write-key and OAuth key variables this shell lacks.
 * nb_config_load()'s contract otherwise.
 */
int nb_source_config_load(struct nb_config **cfg, const char *path,
    const json_t *doc, char *err, size_t errlen);

/*
 * Writes doc (2-space indent, keys in file order) to a temporary file next
 * to path's target (path with every symlink resolved: the file the daemon
 * reads) with the target's permissions, loads that file with
 * nb_config_load() and, only if it is valid, fsyncs it, renames it over
 * the target and fsyncs its folder; a link at path stays a link.  On -1
 * (err says why) nothing is changed and no temporary file is left.
 */
/*
 * nb_source_save() with stand-ins for the write-key and OAuth key
 * variables this shell lacks, as nb_source_config_load() loads.
 */
int nb_source_save_standin(
    const char *path, const json_t *doc, char *err, size_t errlen);

/* The source object named name in doc's "sources", or NULL. */
json_t *nb_source_find(const json_t *doc, const char *name);

int nb_source_save(
    const char *path, const json_t *doc, char *err, size_t errlen);

/* One edit of the configuration file, from reading it to saving it. */
struct nb_source_edit {
	char target[PATH_MAX]; /* the file itself, symlinks resolved */
	int fd;		       /* open on it, holding the lock; -1 */
};

/*
 * Locks path's target with flock(LOCK_EX), waiting for an edit in
 * progress (and opening the file again when that edit replaced it), and
 * reads it into *doc (a new reference).  Edits that go through here are
 * serialized from load to save, so none loses another's change.  0, or -1
 * with err (and nothing held).
 */
int nb_source_edit_begin(struct nb_source_edit *e, const char *path,
    json_t **doc, char *err, size_t errlen);

/* Releases the lock.  Idempotent after begin. */
void nb_source_edit_end(struct nb_source_edit *e);

/* `nudgebridge source ...`: argv[0] is "source".  Returns the exit status. */
int nb_source_main(int argc, char **argv);

#endif
