/* SPDX-License-Identifier: ISC */
/*
 * testlib: helpers shared by the unit tests (see testlib.h).
 *
 * Kept to what at least two tests repeated: temporary folders holding an
 * SQLite store and their removal, single-quoted JSON, xorshift64.
 * Failures end the running cmocka test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nudgebridge/store.h"
#include "testlib.h"

char *
testlib_unconst(const char *s)
{
	return (char *)(uintptr_t)s;
}

void
testlib_tmpdir(char *dir, size_t len, const char *name)
{
	int n = snprintf(dir, len, "/tmp/nb-%s-XXXXXX", name);

	assert_true(n > 0 && (size_t)n < len);
	assert_non_null(mkdtemp(dir));
}

void
testlib_unlink_db(const char *path)
{
	char p[600];

	(void)unlink(path);
	if (snprintf(p, sizeof(p), "%.500s-wal", path) > 0)
		(void)unlink(p);
	if (snprintf(p, sizeof(p), "%.500s-shm", path) > 0)
		(void)unlink(p);
}

void
testlib_rmdir_db(const char *dir)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/nb.db", dir);
	testlib_unlink_db(p);
	(void)rmdir(dir);
}

struct nb_store *
testlib_open_db(const char *dir)
{
	struct nb_store_config cfg;
	struct nb_store *s = NULL;
	char path[512], err[256];

	snprintf(path, sizeof(path), "%s/nb.db", dir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.driver = testlib_unconst("sqlite");
	cfg.path = path;
	cfg.lease_s = 30;
	if (nb_store_open(&s, &cfg, err, sizeof(err)) == -1)
		fail_msg("nb_store_open %s: %s", path, err);
	return s;
}

char *
testlib_dq(const char *s)
{
	char *out = strdup(s);
	char *p;

	assert_non_null(out);
	for (p = out; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	return out;
}

uint64_t
testlib_xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

void
testlib_assert_str(const char *want, const char *got)
{
	if (want == NULL) {
		assert_null(got);
		return;
	}
	assert_non_null(got);
	assert_string_equal(want, got);
}

void
testlib_pg_exec(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(res);
}

const char *
testlib_pg_schema(PGconn **admin, char *schema, size_t len, const char *prefix)
{
	static int counter;
	const char *dsn = getenv("NB_TEST_PG_DSN");
	char sql[160], opts[128];

	*admin = NULL;
	if (dsn == NULL || dsn[0] == '\0')
		return NULL;
	*admin = PQconnectdb(dsn);
	if (PQstatus(*admin) != CONNECTION_OK)
		fail_msg("NB_TEST_PG_DSN: %s", PQerrorMessage(*admin));
	snprintf(schema, len, "%s_%ld_%d", prefix, (long)getpid(), counter++);
	testlib_pg_exec(*admin, "SET client_min_messages = warning");
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema);
	testlib_pg_exec(*admin, sql);
	snprintf(sql, sizeof(sql), "SET search_path = %s", schema);
	testlib_pg_exec(*admin, sql);
	snprintf(opts, sizeof(opts), "-c search_path=%s", schema);
	assert_int_equal(setenv("PGOPTIONS", opts, 1), 0);
	return dsn;
}

void
testlib_pg_drop(PGconn *admin, const char *schema)
{
	char sql[160];

	unsetenv("PGOPTIONS");
	if (admin == NULL)
		return;
	snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", schema);
	testlib_pg_exec(admin, sql);
	PQfinish(admin);
}
