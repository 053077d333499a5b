/* SPDX-License-Identifier: ISC */
/*
 * timeutil: the clock and the time formats of the contract.
 *
 * Calendar arithmetic is done here with Howard Hinnant's days-from-civil
 * algorithms on the proleptic Gregorian calendar, so nothing depends on the
 * TZ variable, timegm(3) or the C library's idea of the range of time_t.
 * The parser accepts exactly RFC 3339 section 5.6 (plus 't'/' ' for 'T' and
 * 'z' for 'Z'), years 0000..9999, and checks every field's range including
 * the day of the month in leap and common years.  A leap second (":60") is
 * accepted and counts as the first second of the next minute, as POSIX time
 * has no room for it.  Pure functions, safe from any thread.
 */
#include <string.h>
#include <time.h>

#include "nudgebridge/timeutil.h"

#define MS_PER_SEC  1000LL
#define MS_PER_MIN  (60LL * MS_PER_SEC)
#define MS_PER_HOUR (60LL * MS_PER_MIN)
#define MS_PER_DAY  (24LL * MS_PER_HOUR)

/* 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z. */
#define MS_MIN (-62167219200000LL)
#define MS_MAX (253402300799999LL)

int64_t
nb_time_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return 0;
	return (int64_t)ts.tv_sec * MS_PER_SEC + ts.tv_nsec / 1000000L;
}

int64_t
nb_time_mono_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0;
	return (int64_t)ts.tv_sec * MS_PER_SEC + ts.tv_nsec / 1000000L;
}

/* Days since 1970-01-01 of y-m-d (proleptic Gregorian, m 1..12). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil(). */
static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int
is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(int y, int m)
{
	static const int dim[12] = {
	    31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (m == 2 && is_leap(y))
		return 29;
	return dim[m - 1];
}

/* Reads exactly n digits at s[*i]; -1 if any is not a digit. */
static int
digits(const char *s, size_t len, size_t *i, int n)
{
	int v = 0;

	if (len - *i < (size_t)n)
		return -1;
	while (n-- > 0) {
		char c = s[(*i)++];

		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	return v;
}

static int
expect(const char *s, size_t len, size_t *i, char c)
{
	if (*i >= len || s[*i] != c)
		return -1;
	(*i)++;
	return 0;
}

int
nb_time_parse_rfc3339(const char *s, size_t len, int64_t *out)
{
	int year, mon, day, hour, min, sec, frac = 0, fdigits = 0;
	int oh = 0, om = 0, sign = 0;
	int64_t days, ms;
	size_t i = 0;

	if (s == NULL)
		return -1;
	if ((year = digits(s, len, &i, 4)) == -1 ||
	    expect(s, len, &i, '-') == -1 ||
	    (mon = digits(s, len, &i, 2)) == -1 ||
	    expect(s, len, &i, '-') == -1 ||
	    (day = digits(s, len, &i, 2)) == -1)
		return -1;
	if (i >= len || (s[i] != 'T' && s[i] != 't' && s[i] != ' '))
		return -1;
	i++;
	if ((hour = digits(s, len, &i, 2)) == -1 ||
	    expect(s, len, &i, ':') == -1 ||
	    (min = digits(s, len, &i, 2)) == -1 ||
	    expect(s, len, &i, ':') == -1 ||
	    (sec = digits(s, len, &i, 2)) == -1)
		return -1;
	if (i < len && s[i] == '.') {
		i++;
		/* Any number of digits; only the first three count. */
		while (i < len && s[i] >= '0' && s[i] <= '9') {
			if (fdigits < 3)
				frac = frac * 10 + (s[i] - '0');
			fdigits++;
			i++;
		}
		if (fdigits == 0)
			return -1;
		for (; fdigits < 3; fdigits++)
			frac *= 10;
	}
	if (i >= len)
		return -1;
	if (s[i] == 'Z' || s[i] == 'z') {
		i++;
	} else if (s[i] == '+' || s[i] == '-') {
		sign = s[i] == '+' ? 1 : -1;
		i++;
		if ((oh = digits(s, len, &i, 2)) == -1 ||
		    expect(s, len, &i, ':') == -1 ||
		    (om = digits(s, len, &i, 2)) == -1)
			return -1;
		if (oh > 23 || om > 59)
			return -1;
	} else {
		return -1;
	}
	if (i != len)
		return -1;

	if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon))
		return -1;
	if (hour > 23 || min > 59 || sec > 60)
		return -1;

	days = days_from_civil(year, mon, day);
	ms = days * MS_PER_DAY + hour * MS_PER_HOUR + min * MS_PER_MIN +
	    sec * MS_PER_SEC + frac;
	/* Local time = UTC + offset, so UTC = local - offset. */
	ms -= sign * (oh * MS_PER_HOUR + om * MS_PER_MIN);
	*out = ms;
	return 0;
}

/* Writes v (0 <= v < 10^n) as exactly n decimal digits. */
static void
put_digits(char *p, int v, int n)
{
	while (n-- > 0) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

void
nb_time_format_iso(int64_t ms, char out[NB_TIME_ISO_LEN])
{
	int64_t days, rem, y;
	int m, d;

	/* Keep the fixed-width format: clamp to what four digits can say. */
	if (ms < MS_MIN)
		ms = MS_MIN;
	if (ms > MS_MAX)
		ms = MS_MAX;
	days = ms / MS_PER_DAY;
	rem = ms % MS_PER_DAY;
	if (rem < 0) {
		rem += MS_PER_DAY;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	put_digits(out, (int)y, 4);
	out[4] = '-';
	put_digits(out + 5, m, 2);
	out[7] = '-';
	put_digits(out + 8, d, 2);
	out[10] = 'T';
	put_digits(out + 11, (int)(rem / MS_PER_HOUR), 2);
	out[13] = ':';
	put_digits(out + 14, (int)(rem / MS_PER_MIN % 60), 2);
	out[16] = ':';
	put_digits(out + 17, (int)(rem / MS_PER_SEC % 60), 2);
	out[19] = '.';
	put_digits(out + 20, (int)(rem % MS_PER_SEC), 3);
	out[23] = 'Z';
	out[24] = '\0';
}

int
nb_time_parse_when(const char *s, int64_t now_ms, int64_t *out)
{
	int64_t n = 0, unit;
	size_t len, i;

	if (s == NULL || (len = strlen(s)) == 0)
		return -1;
	if (nb_time_parse_rfc3339(s, len, out) == 0)
		return 0;
	if (len < 2)
		return -1;
	switch (s[len - 1]) {
	case 's':
		unit = MS_PER_SEC;
		break;
	case 'm':
		unit = MS_PER_MIN;
		break;
	case 'h':
		unit = MS_PER_HOUR;
		break;
	case 'd':
		unit = MS_PER_DAY;
		break;
	default:
		return -1;
	}
	for (i = 0; i < len - 1; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		/* Cap at about 292 million years' worth of ms. */
		if (n > (INT64_MAX / unit - 9) / 10)
			return -1;
		n = n * 10 + (s[i] - '0');
	}
	if (n <= 0)
		return -1;
	n *= unit;
	if (now_ms < INT64_MIN + n)
		return -1;
	*out = now_ms - n;
	return 0;
}
