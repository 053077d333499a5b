/* SPDX-License-Identifier: ISC */
/*
 * test_log: option parsing, quoting, and the shape of the lines written.
 *
 * stderr is redirected to a pipe for the output tests, so each test reads
 * back exactly the line nb_log() wrote with its single write(2).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <unistd.h>

#include "nudgebridge/log.h"

struct level_case {
	const char *in;
	int rc;
	enum nb_log_level out;
};

static const struct level_case levels[] = {
    {"debug", 0, NB_LOG_DEBUG},
    {"info", 0, NB_LOG_INFO},
    {"warn", 0, NB_LOG_WARN},
    {"error", 0, NB_LOG_ERROR},
    {"INFO", -1, 0},
    {"warning", -1, 0},
    {"", -1, 0},
    {"info ", -1, 0},
    {NULL, -1, 0},
};

static void
test_level_parse(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		enum nb_log_level out = NB_LOG_ERROR;

		assert_int_equal(
		    nb_log_level_parse(levels[i].in, &out), levels[i].rc);
		if (levels[i].rc == 0)
			assert_int_equal(out, levels[i].out);
	}
}

static void
test_format_parse(void **state)
{
	enum nb_log_format f = NB_LOG_JSON;

	(void)state;
	assert_int_equal(nb_log_format_parse("logfmt", &f), 0);
	assert_int_equal(f, NB_LOG_LOGFMT);
	assert_int_equal(nb_log_format_parse("json", &f), 0);
	assert_int_equal(f, NB_LOG_JSON);
	assert_int_equal(nb_log_format_parse("JSON", &f), -1);
	assert_int_equal(nb_log_format_parse("text", &f), -1);
	assert_int_equal(nb_log_format_parse("", &f), -1);
	assert_int_equal(nb_log_format_parse(NULL, &f), -1);
}

static void
test_quote(void **state)
{
	char buf[64];

	(void)state;
	assert_string_equal(nb_log_quote(buf, sizeof(buf), "a b"), "\"a b\"");
	assert_string_equal(nb_log_quote(buf, sizeof(buf), "say \"hi\"\\"),
	    "\"say \\\"hi\\\"\\\\\"");
	assert_string_equal(
	    nb_log_quote(buf, sizeof(buf), "a\nb\x01"), "\"a\\nb\\x01\"");
	assert_string_equal(nb_log_quote(buf, sizeof(buf), NULL), "\"\"");
	/* Truncated but still closed and terminated. */
	assert_string_equal(nb_log_quote(buf, 6, "abcdef"), "\"abc\"");
	assert_string_equal(nb_log_quote(buf, 6, "ab\"cd"), "\"ab\"");
}

/* Runs one nb_log() call with stderr on a pipe; returns what it wrote. */
static void
capture(char *out, size_t outlen, enum nb_log_level level, const char *msg,
    const char *extra)
{
	int fds[2], saved;
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
	if (extra != NULL)
		nb_log(level, "capture", msg, "%s", extra);
	else
		nb_log(level, "capture", msg, NULL);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	close(fds[1]);
	n = read(fds[0], out, outlen - 1);
	close(fds[0]);
	out[n > 0 ? n : 0] = '\0';
}

static void
test_logfmt_line(void **state)
{
	char out[512];

	(void)state;
	nb_log_init(NB_LOG_INFO, NB_LOG_LOGFMT);
	capture(out, sizeof(out), NB_LOG_WARN, "event quarantined",
	    " source=acme len=42");
	assert_int_equal(strncmp(out, "ts=", 3), 0);
	/* ts=YYYY-MM-DDTHH:MM:SS.sssZ */
	assert_int_equal(out[3 + 23], 'Z');
	assert_non_null(strstr(out,
	    " level=warn fn=capture "
	    "msg=\"event quarantined\" source=acme "
	    "len=42\n"));
	assert_int_equal(strchr(out, '\n')[1], '\0');

	/* Below the threshold: nothing at all. */
	capture(out, sizeof(out), NB_LOG_DEBUG, "hidden", NULL);
	assert_string_equal(out, "");
}

static void
test_json_line(void **state)
{
	char out[512];

	(void)state;
	nb_log_init(NB_LOG_DEBUG, NB_LOG_JSON);
	capture(out, sizeof(out), NB_LOG_DEBUG, "said \"hi\"",
	    " id=evt_1 note=\"a \\\"b\\\" c\" bare");
	assert_int_equal(strncmp(out, "{\"ts\":\"", 7), 0);
	assert_non_null(strstr(out,
	    "\"level\":\"debug\",\"fn\":\"capture\","
	    "\"msg\":\"said \\\"hi\\\"\",\"id\":\"evt_1\","
	    "\"note\":\"a \\\"b\\\" c\",\"bare\":\"\"}\n"));
	nb_log_init(NB_LOG_INFO, NB_LOG_LOGFMT);
}

static void
test_long_line_truncated(void **state)
{
	static char big[NB_LOG_LINE_MAX * 2];
	static char out[NB_LOG_LINE_MAX * 2];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[0] = ' ';
	big[1] = 'k';
	big[2] = '=';
	nb_log_init(NB_LOG_INFO, NB_LOG_JSON);
	capture(out, sizeof(out), NB_LOG_ERROR, "big", big);
	/* JSON drops the field that does not fit and stays an object. */
	assert_true(strlen(out) < NB_LOG_LINE_MAX);
	assert_non_null(strstr(out, ",\"msg\":\"big\"}\n"));
	nb_log_init(NB_LOG_INFO, NB_LOG_LOGFMT);
	capture(out, sizeof(out), NB_LOG_ERROR, "big", big);
	assert_int_equal(strlen(out), NB_LOG_LINE_MAX);
	assert_int_equal(out[NB_LOG_LINE_MAX - 1], '\n');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_level_parse),
	    cmocka_unit_test(test_format_parse),
	    cmocka_unit_test(test_quote),
	    cmocka_unit_test(test_logfmt_line),
	    cmocka_unit_test(test_json_line),
	    cmocka_unit_test(test_long_line_truncated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
