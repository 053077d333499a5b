/* SPDX-License-Identifier: ISC */
/*
 * source_keys: the signing keys of the configured sources as an operator
 * reviews them (source_keys.c): listed by number and fingerprint, with
 * each key's last use as the running bridges record it in the store, and
 * the check that keeps `source retire` from removing a key still in use.
 */
#ifndef NB_SOURCE_KEYS_H
#define NB_SOURCE_KEYS_H

#include <stdio.h>

#include <jansson.h>

/*
 * Prints one line per key of every source: SOURCE ID KIND FINGERPRINT.
 * Keys from *_env or *_file are listed by where they come from, without an
 * id.  Never prints a key.
 */
void nb_source_list(FILE *f, const json_t *doc);

/* A key used more recently than this is not retired without --force. */
#define NB_SOURCE_RECENT_S 86400

/*
 * `source list` with each key's last use (source_keys.c): the table of
 * nb_source_list() with a LAST_USED column (an RFC 3339 time, "never", or
 * "unknown" when the store cannot be read, which is said on warn), then
 * the keys that come from *_env or *_file, by fingerprint, when the
 * configuration at path loads.  The last uses come from the store the
 * configuration names, where the running bridges write them every few
 * seconds.
 */
void nb_source_list_used(
    FILE *f, FILE *warn, const char *path, const json_t *doc);

/*
 * Whether the key of source name with fingerprint fp (id: as the operator
 * named it) may be retired: not when it verified a request in the last
 * NB_SOURCE_RECENT_S (or the store cannot tell) unless force.  Says why
 * on f (when it was last used, or that it never was).  0: go ahead; -1:
 * refused.
 */
int nb_source_retire_check(FILE *f, const char *path, const json_t *doc,
    const char *name, const char *id, const char *fp, int force);

#endif
