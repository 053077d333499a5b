/* SPDX-License-Identifier: ISC */
/*
 * lockout: failed authentications counted per client address.
 *
 * The admin API turns a client away (429) after NB_LOCKOUT_FAILS failed
 * authentications within NB_LOCKOUT_WINDOW_MS, for NB_LOCKOUT_WINDOW_MS,
 * so guessing the token goes at a few attempts a second.  The count is
 * per address (an IPv6 client by its /64, which one host usually holds
 * whole), so one noisy client never locks out another, and an operator
 * holding the token is refused only while their own address is locked.
 * The table has a fixed number of slots (NB_LOCKOUT_SLOTS, 40 KiB):
 * when it is full the address whose last failure is oldest makes room,
 * so memory never grows with the number of clients.  Clocks are
 * injected (monotonic ms).  One thread at a time.
 */
#ifndef NB_LOCKOUT_H
#define NB_LOCKOUT_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;

#define NB_LOCKOUT_SLOTS     1024
#define NB_LOCKOUT_FAILS     20	   /* failures allowed per window */
#define NB_LOCKOUT_WINDOW_MS 10000 /* the window, and the lockout */

struct nb_lockout;

/* An empty table; NULL when out of memory. */
struct nb_lockout *nb_lockout_new(void);

/* NULL is ok. */
void nb_lockout_free(struct nb_lockout *);

/* Forgets every address (a reload with a new token starts afresh). */
void nb_lockout_clear(struct nb_lockout *);

/*
 * How long (ms) the client at sa must still wait before it may try again;
 * 0 when it is not locked out.  sa NULL (no address known) is one client
 * of its own.
 */
int64_t nb_lockout_wait(
    const struct nb_lockout *, const struct sockaddr *sa, int64_t now_ms);

/*
 * Records one failed authentication of the client at sa; returns how long
 * it is now locked out (ms), 0 when it is not.
 */
int64_t nb_lockout_fail(
    struct nb_lockout *, const struct sockaddr *sa, int64_t now_ms);

/* Addresses in the table now (for tests). */
size_t nb_lockout_count(const struct nb_lockout *);

#endif
