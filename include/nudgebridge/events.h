/* SPDX-License-Identifier: ISC */
/*
 * events: `nudgebridge events list|show` and `nudgebridge erase`, the
 * command-line faces of the operate core's search, event and erase
 * (operate.h, contract section 8).
 *
 * Options become the core's parameters (--email A is "email": "A",
 * --dry-run is "dry_run": true); the operation runs to its end on a store
 * connection of the command's own (cmd.h), so the filters, the answers
 * and the refusals are the admin API's.  list follows the cursor for its
 * operator, at most NB_OPERATE_SEARCH_PAGES store pages, and prints a
 * table or, with --json, the API's page; show prints the API's event.  An
 * erase waits there for the events a running deliverer holds, at most a
 * little longer than the longest lease one takes.  The address given to
 * erase is never printed or logged: the answer names the person by the
 * audit's digest.
 */
#ifndef NB_EVENTS_H
#define NB_EVENTS_H

/*
 * `nudgebridge events ...`: argv[0] is "events".  Returns the exit status:
 * 0, 1 for a store failure or no event with that key, 2 for a usage or
 * configuration error (the message on stderr).
 */
int nb_events_main(int argc, char **argv);

/* `nudgebridge erase ...`: argv[0] is "erase".  The exit status as above. */
int nb_events_erase_main(int argc, char **argv);

#endif
