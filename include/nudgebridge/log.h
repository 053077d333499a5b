/* SPDX-License-Identifier: ISC */
/*
 * log: one line per event of interest, to stderr, as logfmt or JSON.
 *
 * A line is "ts=... level=... fn=... msg=..." followed by key=value pairs
 * the caller formats itself.  Callers never pass secrets, signatures, write
 * keys or email addresses: log event ids and lengths instead.  Safe to call
 * from any thread; each line is written with one write(2).
 */
#ifndef NB_LOG_H
#define NB_LOG_H

#include <stddef.h>

/* Longest line written; longer lines are truncated (and still end in \n). */
#define NB_LOG_LINE_MAX 4096

enum nb_log_level {
	NB_LOG_DEBUG = 0,
	NB_LOG_INFO,
	NB_LOG_WARN,
	NB_LOG_ERROR,
};

enum nb_log_format {
	NB_LOG_LOGFMT = 0,
	NB_LOG_JSON,
};

/* Sets the threshold and format; lines below the level are dropped. */
void nb_log_init(enum nb_log_level level, enum nb_log_format format);

/* Parses "debug", "info", "warn", "error"; -1 on anything else. */
int nb_log_level_parse(const char *s, enum nb_log_level *out);

/* Parses "logfmt", "json"; -1 on anything else. */
int nb_log_format_parse(const char *s, enum nb_log_format *out);

/*
 * Quotes s for use as a logfmt value: writes "s" with '"' and '\\' escaped
 * and control bytes shown as \n, \t or \xHH into buf (size buflen,
 * truncated if short, always NUL-terminated when buflen > 0).  Returns buf,
 * so it can be used directly as a "%s" argument.  s NULL is written as "".
 */
const char *nb_log_quote(char *buf, size_t buflen, const char *s);

/*
 * Writes one line.  fn is the calling function (use __func__), msg a short
 * fixed description, fmt/... extra " key=value" pairs (may be NULL).  Values
 * that contain spaces or quotes must be quoted by the caller with
 * nb_log_quote() in logfmt; in JSON mode the extra pairs are emitted as
 * string fields.
 */
void nb_log(enum nb_log_level level, const char *fn, const char *msg,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define log_debug(msg, ...) nb_log(NB_LOG_DEBUG, __func__, msg, __VA_ARGS__)
#define log_info(msg, ...)  nb_log(NB_LOG_INFO, __func__, msg, __VA_ARGS__)
#define log_warn(msg, ...)  nb_log(NB_LOG_WARN, __func__, msg, __VA_ARGS__)
#define log_error(msg, ...) nb_log(NB_LOG_ERROR, __func__, msg, __VA_ARGS__)

/* Logs at error level and exits with status 1.  Start-up only. */
void nb_log_fatal(const char *fn, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#endif
