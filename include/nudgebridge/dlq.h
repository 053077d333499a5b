/* SPDX-License-Identifier: ISC */
/*
 * dlq: `nudgebridge dlq list|show|replay|purge`, the command-line face of
 * the operate core (operate.h).
 *
 * Options become the core's parameters (--source S is "source": "S",
 * --dry-run is "dry_run": true), the operation runs to its end on a store
 * connection of the command's own, and the answer is printed.  The
 * command opens the store directly, so it works with the daemon running
 * (SQLite WAL readers and one writer at a time) or stopped.
 */
#ifndef NB_DLQ_H
#define NB_DLQ_H

/*
 * `nudgebridge dlq ...`: argv[0] is "dlq".  Returns the exit status: 0,
 * 1 for a store failure or no event with that key, 2 for a usage or
 * configuration error (the message on stderr).
 */
int nb_dlq_main(int argc, char **argv);

#endif
