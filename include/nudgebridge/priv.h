/* SPDX-License-Identifier: ISC */
/*
 * priv: the process's privileges and descriptor limit.
 *
 * A bridge started as root binds its listeners and opens its store first,
 * then becomes the configured unprivileged account for good: supplementary
 * groups, group and user, checked afterwards (getting root back must
 * fail).  The SQLite files (and a folder that holds nothing else) are
 * handed to that account first so the store stays writable.  Main thread,
 * start-up only; setuid() and friends apply to every thread of the process.
 */
#ifndef NB_PRIV_H
#define NB_PRIV_H

#include <stddef.h>

/*
 * Raises the soft RLIMIT_NOFILE to the hard limit, so thousands of client
 * connections do not run the process out of descriptors.  *out receives
 * the soft limit in force afterwards.  0, or -1 when it could not be
 * raised (a seccomp filter, for one; the old limit stays, *out is set).
 */
int nb_priv_raise_nofile(size_t *out);

/*
 * Applies the "user" setting.  Running as root with user set: gives the
 * store files to the account (store_path: the SQLite database, or NULL),
 * then drops to it; -1 with err set when anything fails, and the caller
 * must exit.  Running as root without user: logs a warning.  Not root with
 * user set: warns when the account is not the one running.  0 otherwise.
 */
int nb_priv_drop(
    const char *user, const char *store_path, char *err, size_t errlen);

#endif
