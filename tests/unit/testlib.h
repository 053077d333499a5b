/* SPDX-License-Identifier: ISC */
/*
 * testlib: what several unit tests need, written once.
 *
 * A throw-away folder per test, the SQLite files in it removed again, an
 * SQLite store opened there, the cast that lets tests hand string
 * literals to the structs whose fields are char *, JSON written with
 * single quotes, a small reproducible random generator, and a throw-away
 * PostgreSQL schema per test.  Linked into every
 * unit test; it fails the running cmocka test on any error instead of
 * returning one.
 */
#ifndef NB_TESTLIB_H
#define NB_TESTLIB_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

struct nb_store;

/* s without its const: nb_event and nb_store_config hold char *. */
char *testlib_unconst(const char *s);

/*
 * Makes a fresh folder /tmp/nb-<name>-XXXXXX into dir (len bytes, at
 * least 64).
 */
void testlib_tmpdir(char *dir, size_t len, const char *name);

/* Removes the database path and its -wal and -shm files, if there. */
void testlib_unlink_db(const char *path);

/* Removes dir/nb.db (with -wal, -shm) and then the folder dir. */
void testlib_rmdir_db(const char *dir);

/* Opens (creating) the SQLite store dir/nb.db with a 30 s lease. */
struct nb_store *testlib_open_db(const char *dir);

/*
 * s with every ' turned into ", malloc'd (JSON written in C strings
 * without escapes).  The caller frees.
 */
char *testlib_dq(const char *s);

/* Fails the test unless got equals want (both NULL counts as equal). */
void testlib_assert_str(const char *want, const char *got);

/* The next number of the xorshift64 generator whose state is *s. */
uint64_t testlib_xorshift(uint64_t *s);

/* Runs sql on c; fails the test unless it succeeded. */
void testlib_pg_exec(PGconn *c, const char *sql);

/*
 * A throw-away schema for one test on the server NB_TEST_PG_DSN names:
 * connects *admin, creates the schema prefix_<pid>_<n> (its name into
 * schema, len bytes) and makes it the search_path of *admin and, through
 * PGOPTIONS, of every connection the test opens afterwards.  Returns the
 * DSN, or NULL (and *admin NULL) when NB_TEST_PG_DSN is not set: the test
 * has no server and skips.
 */
const char *testlib_pg_schema(
    PGconn **admin, char *schema, size_t len, const char *prefix);

/* Drops the schema with everything in it, closes admin.  NULL is ok. */
void testlib_pg_drop(PGconn *admin, const char *schema);

#endif
