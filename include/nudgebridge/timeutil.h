/* SPDX-License-Identifier: ISC */
/*
 * timeutil: the clock and the time formats of the contract.
 *
 * Times inside nudgebridge are int64 milliseconds since the Unix epoch, UTC.
 * Parsing is strict and never consults the local time zone.  Pure functions,
 * safe from any thread.  The functions are nb_time_*, not nb_timeutil_*:
 * the module is not called time.h, which every file also includes from
 * the system, and thirty files call them.
 */
#ifndef NB_TIMEUTIL_H
#define NB_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* "YYYY-MM-DDTHH:MM:SS.sssZ" plus NUL. */
#define NB_TIME_ISO_LEN 25

/* Wall clock now, in ms. */
int64_t nb_time_now_ms(void);

/* Monotonic clock, in ms; for intervals and deadlines only. */
int64_t nb_time_mono_ms(void);

/*
 * Parses an RFC 3339 date-time ("2026-11-28T09:59:58.123Z",
 * "2026-11-28T10:59:58+01:00"; 'T' may be 't' or ' ', 'Z' may be 'z',
 * fractions of any length).  Writes ms since the epoch (UTC, fractions
 * beyond ms truncated toward the earlier instant) to *out.  Returns 0, or -1
 * when s (of length len) is not a valid date-time (bad ranges included).
 */
int nb_time_parse_rfc3339(const char *s, size_t len, int64_t *out);

/* Formats ms as "YYYY-MM-DDTHH:MM:SS.sssZ" into out (NB_TIME_ISO_LEN). */
void nb_time_format_iso(int64_t ms, char out[NB_TIME_ISO_LEN]);

/*
 * Parses a "since"/"until" argument relative to now_ms: an RFC 3339 time, or
 * a duration ago as a positive integer followed by s, m, h or d ("90m",
 * "2h", "7d").  Writes the instant in ms to *out.  Returns 0 or -1.
 */
int nb_time_parse_when(const char *s, int64_t now_ms, int64_t *out);

#endif
