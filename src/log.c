/* SPDX-License-Identifier: ISC */
/*
 * log: one line per event of interest, to stderr, as logfmt or JSON.
 *
 * Each line is assembled in a stack buffer of NB_LOG_LINE_MAX bytes and
 * handed to the kernel with a single write(2), so lines from different
 * threads never interleave and no lock is needed.  The threshold and the
 * format are atomics set once at start-up (and on reload); reading them is
 * safe from any thread.  An over-long line is truncated, never split.
 *
 * In JSON mode the caller's " key=value" pairs are re-parsed (logfmt rules:
 * a value may be "quoted" with backslash escapes) and emitted as string
 * fields, so callers format one way for both outputs.  This module never
 * allocates and never fails loudly: logging must not be a reason to stop.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nudgebridge/log.h"

static atomic_int log_level = NB_LOG_INFO;
static atomic_int log_format = NB_LOG_LOGFMT;

static const char *const level_names[] = {
    [NB_LOG_DEBUG] = "debug",
    [NB_LOG_INFO] = "info",
    [NB_LOG_WARN] = "warn",
    [NB_LOG_ERROR] = "error",
};

/* A bounded output line; bytes past the end are dropped. */
struct line {
	char buf[NB_LOG_LINE_MAX];
	size_t len;
	int full; /* JSON: a field did not fit, drop the rest */
};

static void
line_putc(struct line *l, char c)
{
	/* Keep one byte for the final newline. */
	if (l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = c;
}

static void
line_puts(struct line *l, const char *s)
{
	while (*s != '\0')
		line_putc(l, *s++);
}

static void
line_hex(struct line *l, const char *prefix, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";

	line_puts(l, prefix);
	line_putc(l, hex[c >> 4]);
	line_putc(l, hex[c & 0xf]);
}

/* Appends the bytes s[0..n) as the inside of a JSON string. */
static void
line_json_chars(struct line *l, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			line_putc(l, '\\');
			line_putc(l, (char)c);
		} else if (c == '\n') {
			line_puts(l, "\\n");
		} else if (c == '\t') {
			line_puts(l, "\\t");
		} else if (c < 0x20 || c == 0x7f) {
			line_hex(l, "\\u00", c);
		} else {
			line_putc(l, (char)c);
		}
	}
}

/*
 * Appends ,"key":"val" whole or not at all, keeping room for the closing
 * brace, so a truncated JSON line is still a valid object.
 */
static void
line_json_field(
    struct line *l, const char *key, size_t klen, const char *val, size_t vlen)
{
	size_t start = l->len;

	if (l->full)
		return;
	line_puts(l, ",\"");
	line_json_chars(l, key, klen);
	line_puts(l, "\":\"");
	line_json_chars(l, val, vlen);
	line_putc(l, '"');
	if (l->len > sizeof(l->buf) - 2) {
		l->len = start;
		l->full = 1;
	}
}

static int
needs_quotes(const char *s)
{
	if (*s == '\0')
		return 1;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
			return 1;
	}
	return 0;
}

/* Appends s as a logfmt value, quoted only when it has to be. */
static void
line_logfmt_value(struct line *l, const char *s)
{
	char q[NB_LOG_LINE_MAX];

	if (!needs_quotes(s)) {
		line_puts(l, s);
		return;
	}
	line_puts(l, nb_log_quote(q, sizeof(q), s));
}

const char *
nb_log_quote(char *buf, size_t buflen, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	char tmp[4];
	size_t tlen, i;

	if (buflen == 0)
		return buf;
	if (s == NULL)
		s = "";
	/* Reserve room for the closing quote and the NUL. */
	if (buflen < 3) {
		buf[0] = '\0';
		return buf;
	}
	buf[n++] = '"';
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		tlen = 0;
		if (c == '"' || c == '\\') {
			tmp[tlen++] = '\\';
			tmp[tlen++] = (char)c;
		} else if (c == '\n') {
			tmp[tlen++] = '\\';
			tmp[tlen++] = 'n';
		} else if (c == '\t') {
			tmp[tlen++] = '\\';
			tmp[tlen++] = 't';
		} else if (c < 0x20 || c == 0x7f) {
			tmp[tlen++] = '\\';
			tmp[tlen++] = 'x';
			tmp[tlen++] = hex[c >> 4];
			tmp[tlen++] = hex[c & 0xf];
		} else {
			tmp[tlen++] = (char)c;
		}
		if (n + tlen + 2 > buflen)
			break;
		for (i = 0; i < tlen; i++)
			buf[n++] = tmp[i];
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return buf;
}

/*
 * Re-parses logfmt " key=value" pairs into JSON string fields.  A value in
 * double quotes may hold spaces and backslash escapes (\" \\ \n \t \xHH);
 * a bare token without '=' becomes a field with an empty value.
 */
static void
line_json_pairs(struct line *l, const char *s)
{
	char val[NB_LOG_LINE_MAX];
	const char *key;
	size_t klen, vlen;

	for (;;) {
		while (*s == ' ')
			s++;
		if (*s == '\0')
			return;
		key = s;
		while (*s != '\0' && *s != '=' && *s != ' ')
			s++;
		klen = (size_t)(s - key);
		vlen = 0;
		if (*s == '=') {
			s++;
			if (*s == '"') {
				s++;
				while (*s != '\0' && *s != '"') {
					char c = *s++;

					if (c == '\\' && *s != '\0') {
						c = *s++;
						if (c == 'n') {
							c = '\n';
						} else if (c == 't') {
							c = '\t';
						} else if (c == 'x' &&
						    s[0] != '\0' &&
						    s[1] != '\0') {
							char h[3] = {
							    s[0], s[1], '\0'};

							c = (char)strtol(
							    h, NULL, 16);
							s += 2;
						}
					}
					if (vlen < sizeof(val))
						val[vlen++] = c;
				}
				if (*s == '"')
					s++;
			} else {
				while (*s != '\0' && *s != ' ') {
					if (vlen < sizeof(val))
						val[vlen++] = *s;
					s++;
				}
			}
		}
		if (klen > 0)
			line_json_field(l, key, klen, val, vlen);
	}
}

static void
format_ts(char *out, size_t outlen)
{
	struct timespec ts;
	struct tm tm;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1 ||
	    gmtime_r(&ts.tv_sec, &tm) == NULL) {
		snprintf(out, outlen, "1970-01-01T00:00:00.000Z");
		return;
	}
	if (snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L) < 0)
		out[0] = '\0';
}

static void
write_all(const char *buf, size_t len)
{
	ssize_t n;

	/* One write(2); retry only if a signal interrupted it before any
	 * byte went out.  A short write to stderr is not worth a lock. */
	do {
		n = write(STDERR_FILENO, buf, len);
	} while (n == -1 && errno == EINTR);
}

static void vlog(enum nb_log_level, const char *, const char *, const char *,
    va_list) __attribute__((format(printf, 4, 0)));

static void
vlog(enum nb_log_level level, const char *fn, const char *msg, const char *fmt,
    va_list ap)
{
	struct line l;
	char ts[40];
	char extra[NB_LOG_LINE_MAX];
	int saved_errno = errno;
	int lvl;

	if ((int)level < atomic_load(&log_level))
		return;
	lvl = (int)level;
	if (lvl < NB_LOG_DEBUG || lvl > NB_LOG_ERROR)
		lvl = NB_LOG_ERROR;
	if (fn == NULL)
		fn = "?";
	if (msg == NULL)
		msg = "";

	extra[0] = '\0';
	if (fmt != NULL && vsnprintf(extra, sizeof(extra), fmt, ap) < 0)
		extra[0] = '\0';

	format_ts(ts, sizeof(ts));
	l.len = 0;
	l.full = 0;
	if (atomic_load(&log_format) == NB_LOG_JSON) {
		line_puts(&l, "{\"ts\":\"");
		line_puts(&l, ts);
		line_puts(&l, "\",\"level\":\"");
		line_puts(&l, level_names[lvl]);
		line_putc(&l, '"');
		line_json_field(&l, "fn", 2, fn, strlen(fn));
		line_json_field(&l, "msg", 3, msg, strlen(msg));
		line_json_pairs(&l, extra);
		line_putc(&l, '}');
	} else {
		line_puts(&l, "ts=");
		line_puts(&l, ts);
		line_puts(&l, " level=");
		line_puts(&l, level_names[lvl]);
		line_puts(&l, " fn=");
		line_logfmt_value(&l, fn);
		line_puts(&l, " msg=");
		line_logfmt_value(&l, msg);
		if (extra[0] != '\0' && extra[0] != ' ')
			line_putc(&l, ' ');
		line_puts(&l, extra);
	}
	l.buf[l.len++] = '\n';
	write_all(l.buf, l.len);
	errno = saved_errno;
}

void
nb_log_init(enum nb_log_level level, enum nb_log_format format)
{
	atomic_store(&log_level, (int)level);
	atomic_store(&log_format, (int)format);
}

int
nb_log_level_parse(const char *s, enum nb_log_level *out)
{
	int i;

	if (s == NULL)
		return -1;
	for (i = NB_LOG_DEBUG; i <= NB_LOG_ERROR; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum nb_log_level)i;
			return 0;
		}
	}
	return -1;
}

int
nb_log_format_parse(const char *s, enum nb_log_format *out)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "logfmt") == 0) {
		*out = NB_LOG_LOGFMT;
		return 0;
	}
	if (strcmp(s, "json") == 0) {
		*out = NB_LOG_JSON;
		return 0;
	}
	return -1;
}

void
nb_log(enum nb_log_level level, const char *fn, const char *msg,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, fn, msg, fmt, ap);
	va_end(ap);
}

void
nb_log_fatal(const char *fn, const char *msg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	/* Fatal lines are never filtered by the threshold. */
	if (atomic_load(&log_level) > NB_LOG_ERROR)
		atomic_store(&log_level, NB_LOG_ERROR);
	vlog(NB_LOG_ERROR, fn, msg, fmt, ap);
	va_end(ap);
	exit(1);
}
