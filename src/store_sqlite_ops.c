/* SPDX-License-Identifier: ISC */
/*
 * store_sqlite_ops: the SQLite backend's face to store.c: open, migrate,
 * the transaction frame and the table of operations.
 *
 * One file, WAL journal with synchronous=FULL: a COMMIT returns only after
 * the WAL is fsync'd, and readers (the admin thread, the `dlq` command in
 * another process) never block the writer.  Every write transaction is
 * BEGIN IMMEDIATE, so writers from several connections queue on the busy
 * handler instead of failing on a stale snapshot; store.c opens and ends
 * them (sq_begin(), sq_commit(), sq_rollback()).  The deliverer's
 * bookkeeping (claim, extend, release, delivered) commits with
 * synchronous=NORMAL (see sync_set() for why that keeps every guarantee).
 * The schema is versioned with PRAGMA user_version and migrated on open.
 */
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "nudgebridge/log.h"
#include "nudgebridge/timeutil.h"
#include "store_sqlite.h"

#define SQ_BUSY_TIMEOUT_MS 5000
#define SQ_BUSY_SLEEP_NS   (100 * 1000)

/*
 * WAL pages before a connection's own automatic checkpoint (SQLite's
 * default is 1000).  A checkpoint runs inside the COMMIT that crosses the
 * mark and ends with an fsync of the database file that takes 10 to 20 ms
 * on a busy disk, so every request of the committer's next group waited
 * for it.  The server keeps the WAL copied in the background instead
 * (sq_checkpoint(), every NB_COMMIT_CHECKPOINT_MS from commit.c), which
 * does not block writers; this mark remains the backstop that lets the WAL
 * start again from its beginning (SQLite reuses the file only after a
 * checkpoint has copied all of it, which a background copy racing the
 * writers rarely manages), and then the committer copies only the few
 * pages written since the last background pass.  A larger WAL also means
 * that a page claimed, then marked delivered, is copied back once.
 */
#define SQ_WAL_AUTOCHECKPOINT 16000

/*
 * Waits for another connection's write transaction.  SQLite's own handler
 * (sqlite3_busy_timeout) sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between
 * tries, so a writer that finds the lock held for one millisecond (the
 * deliverer marking a batch) waits 3 to 8 ms or more, and so does every
 * request of the group commit behind it.  This one tries again every
 * SQ_BUSY_SLEEP_NS, up to SQ_BUSY_TIMEOUT_MS in all.
 */
static int
busy_cb(void *arg, int tries)
{
	struct sq *q = arg;
	struct timespec ts = {0, SQ_BUSY_SLEEP_NS};

	if (tries == 0)
		q->busy_since_ms = nb_time_mono_ms();
	else if (nb_time_mono_ms() - q->busy_since_ms >= SQ_BUSY_TIMEOUT_MS)
		return 0;
	nanosleep(&ts, NULL);
	return 1;
}

/*
 * Sets the synchronous level of the next transactions on this connection.
 * FULL (the default) fsyncs the WAL at every COMMIT.  NORMAL, used only for
 * the deliverer's lease and delivery marks (claim, extend, release,
 * delivered), writes the WAL without an fsync; the WAL is fsync'd at the
 * next FULL commit of any connection (an append) and before every
 * checkpoint, so the database stays consistent and can only lose a suffix
 * of such marks on power loss (never an append committed after them).  A
 * lost lease is dropped by nb_store_recover() at start anyway; a lost
 * delivered mark makes the row pending again and it is sent once more with
 * the same messageId, which at-least-once delivery allows and Segment
 * de-duplicates.
 */
static int
sync_set(struct sq *q, enum sq_sync want)
{
	if (q->sync == want)
		return 0;
	if (sq_run_id(q, want == SYNC_NORMAL ? ST_SYNC_NORMAL : ST_SYNC_FULL,
		__func__) == -1) {
		q->sync = SYNC_UNSET;
		return -1;
	}
	q->sync = want;
	return 0;
}

static int
tx_begin_sync(struct sq *q, enum sq_sync want)
{
	if (sync_set(q, want) == -1)
		return -1;
	return sq_run_id(q, ST_BEGIN, __func__);
}

static int
tx_begin(struct sq *q)
{
	return tx_begin_sync(q, SYNC_FULL);
}

static int
tx_commit(struct sq *q)
{
	return sq_run_id(q, ST_COMMIT, __func__);
}

/*
 * SQLite may already have rolled back on its own (SQLITE_FULL, IOERR), so
 * only roll back a transaction that is still open.
 */
static void
tx_rollback(struct sq *q)
{
	if (!sqlite3_get_autocommit(q->db))
		(void)sq_run_id(q, ST_ROLLBACK, __func__);
}

/* The folder that holds path ("." for a bare name), malloc'd, or NULL. */
static char *
dir_of(const char *path)
{
	const char *slash;
	char *dir;
	size_t len;

	if ((slash = strrchr(path, '/')) == NULL)
		return strdup(".");
	len = slash == path ? 1 : (size_t)(slash - path);
	if ((dir = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(dir, path, len);
	dir[len] = '\0';
	return dir;
}

/*
 * Fails when the filesystem of the database has less than spare bytes free
 * for an unprivileged writer.  The probe's tiny row still fits into WAL
 * space a failed commit already allocated, so without this check a full
 * disk would look healthy again a second later.
 */
static int
disk_check(struct sq *q, int64_t spare)
{
	struct statvfs vfs;
	uint64_t avail;
	char qdir[256];

	if (statvfs(q->dir, &vfs) == -1) {
		log_error("statvfs failed", " dir=%s error=%s",
		    nb_log_quote(qdir, sizeof(qdir), q->dir), strerror(errno));
		return -1;
	}
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (avail < (uint64_t)spare) {
		log_error("filesystem full",
		    " free_bytes=%" PRIu64 " spare_bytes=%" PRId64, avail,
		    spare);
		return -1;
	}
	return 0;
}

static int
exec_sql(struct sq *q, const char *sql, const char *fn)
{
	char *msg = NULL;
	char qerr[256];

	if (sqlite3_exec(q->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		nb_log(NB_LOG_ERROR, fn, "sqlite failure", " op=exec error=%s",
		    nb_log_quote(qerr, sizeof(qerr), msg));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Runs a PRAGMA and copies the first column of its first row to out. */
static int
pragma_text(struct sq *q, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *s;
	int rc = -1;

	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	if (sqlite3_step(st) != SQLITE_ROW)
		goto out;
	s = sqlite3_column_text(st, 0);
	snprintf(out, outlen, "%s", s != NULL ? (const char *)s : "");
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

/*
 * Inside the migration's transaction: makes the install id when the store
 * has none (a new store, or one just migrated to version 4), seed or else
 * a random one, then reads it into q.
 */
static int
install_ensure(struct sq *q, const char *seed)
{
	char id[NB_SEGMENT_INSTALL_ID_LEN + 1];
	const unsigned char *got;
	sqlite3_stmt *st;
	int rc = -1;

	if (seed != NULL)
		snprintf(id, sizeof(id), "%s", seed);
	else
		nb_store_install_new(id);
	if ((st = sq_stmt_get(q, ST_INSTALL_ADD)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, nb_time_now_ms());
	if (sq_stmt_run(q, st, __func__, "install id") == -1)
		return -1;
	if ((st = sq_stmt_get(q, ST_INSTALL_GET)) == NULL)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW &&
	    (got = sqlite3_column_text(st, 0)) != NULL) {
		snprintf(q->install_id, sizeof(q->install_id), "%s",
		    (const char *)got);
		rc = 0;
	} else
		sq_db_log(q, __func__, "install id");
	sqlite3_reset(st);
	return rc;
}

static int
migrate(struct sq *q, const char *seed, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int64_t version;
	char sql[64];
	int rc = -1, v;

	if (tx_begin(q) == -1) {
		snprintf(err, errlen, "store.path: cannot lock %s: %s", q->path,
		    sqlite3_errmsg(q->db));
		return -1;
	}
	if ((st = sq_stmt_get(q, ST_USER_VERSION)) == NULL ||
	    sq_stmt_int64(q, st, &version, __func__, "user_version") == -1) {
		snprintf(err, errlen, "store.path: %s: %s", q->path,
		    sqlite3_errmsg(q->db));
		goto out;
	}
	if (version < 0 || version > sq_schema_latest) {
		snprintf(err, errlen,
		    "store.path: %s has schema version %" PRId64
		    ", this build knows up to %d",
		    q->path, version, sq_schema_latest);
		goto out;
	}
	for (v = (int)version; v < sq_schema_latest; v++) {
		if (exec_sql(q, sq_migrations[v], __func__) == -1 ||
		    (v + 1 == SQ_VERSION_KEYS && sq_backfill_keys(q) == -1)) {
			snprintf(err, errlen,
			    "store.path: %s: migration to version %d failed",
			    q->path, v + 1);
			goto out;
		}
	}
	if (exec_sql(q, sq_index_tuning, __func__) == -1) {
		snprintf(err, errlen, "store.path: %s: cannot tune the indexes",
		    q->path);
		goto out;
	}
	if (install_ensure(q, seed) == -1) {
		snprintf(err, errlen,
		    "store.path: %s: cannot read the install id", q->path);
		goto out;
	}
	if (version != sq_schema_latest) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
		    sq_schema_latest);
		if (exec_sql(q, sql, __func__) == -1) {
			snprintf(err, errlen,
			    "store.path: %s: cannot set "
			    "the schema version",
			    q->path);
			goto out;
		}
	}
	if (tx_commit(q) == -1) {
		snprintf(err, errlen, "store.path: %s: %s", q->path,
		    sqlite3_errmsg(q->db));
		goto out;
	}
	if (version != sq_schema_latest)
		log_info("store migrated", " from=%" PRId64 " to=%d", version,
		    sq_schema_latest);
	rc = 0;
out:
	if (rc == -1)
		tx_rollback(q);
	return rc;
}

static void
sq_close(void *state)
{
	struct sq *q = state;
	int i, k;

	if (q == NULL)
		return;
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(q->stmts[i]);
	for (i = 0; i < CH_COUNT; i++)
		for (k = 0; k <= SQ_CHUNK_LOG; k++)
			sqlite3_finalize(q->chunks[i][k]);
	sqlite3_close(q->db);
	free(q->keys);
	free(q->rows);
	free(q->cand);
	free(q->json);
	free(q->dir);
	free(q->path);
	free(q);
}

/*
 * Warns once per process and path that a store file is open to others
 * (the daemon opens the store on several connections).
 */
static void
warn_mode(const char *file, mode_t mode)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static char last[4096];
	char qfile[4200];
	int seen;

	pthread_mutex_lock(&lock);
	seen = strcmp(last, file) == 0;
	if (!seen)
		snprintf(last, sizeof(last), "%s", file);
	pthread_mutex_unlock(&lock);
	if (!seen)
		log_warn("store file readable by others",
		    " file=%s mode=%04o hint=\"chmod 600 it\"",
		    nb_log_quote(qfile, sizeof(qfile), file),
		    (unsigned)(mode & 07777));
}

/*
 * The database, its -wal and its -shm hold addresses and IP addresses.  A
 * new database file is created here, 0600 whatever the umask (fchmod after
 * the open), before SQLite opens it: SQLite then creates the -wal and -shm
 * with the database file's mode, also whatever the umask.  An existing file
 * that group or others may read or write gets a warning, not a chmod: it
 * is the operator's file, and a backup job or a shared group may need it
 * so (docs/storage.md says how to tighten it).
 */
static int
files_private(const char *path, char *err, size_t errlen)
{
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	struct stat sb;
	char file[4096];
	size_t i;
	int fd, len;

	if (stat(path, &sb) == -1 && errno == ENOENT) {
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd == -1 && errno != EEXIST) {
			snprintf(err, errlen,
			    "store.path: cannot create %s: %s", path,
			    strerror(errno));
			return -1;
		}
		if (fd != -1 && (fchmod(fd, 0600) == -1 || close(fd) == -1)) {
			snprintf(err, errlen, "store.path: cannot chmod %s: %s",
			    path, strerror(errno));
			return -1;
		}
		return 0;
	}
	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		len = snprintf(file, sizeof(file), "%s%s", path, suffixes[i]);
		if (len < 0 || (size_t)len >= sizeof(file))
			continue;
		if (stat(file, &sb) == 0 && (sb.st_mode & 077) != 0)
			warn_mode(file, sb.st_mode);
	}
	return 0;
}

static int
sq_open(
    void **state, const struct nb_store_config *cfg, char *err, size_t errlen)
{
	struct sq *q = NULL;
	char mode[16], sql[64];
	int64_t pages;
	int rc = -1;

	*state = NULL;
	if (cfg->path == NULL || cfg->path[0] == '\0') {
		snprintf(err, errlen, "store.path: missing");
		goto out;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL ||
	    (q->path = strdup(cfg->path)) == NULL ||
	    (q->dir = dir_of(cfg->path)) == NULL) {
		snprintf(err, errlen, "store: out of memory");
		goto out;
	}
	q->max_size_bytes = cfg->max_size_bytes;
	if (files_private(q->path, err, errlen) == -1)
		goto out;
	if (sqlite3_open_v2(q->path, &q->db,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		    SQLITE_OPEN_NOMUTEX,
		NULL) != SQLITE_OK) {
		snprintf(err, errlen, "store.path: cannot open %s: %s", q->path,
		    q->db != NULL ? sqlite3_errmsg(q->db) : "no memory");
		goto out;
	}
	sqlite3_extended_result_codes(q->db, 1);
	sqlite3_busy_handler(q->db, busy_cb, q);
	if (pragma_text(q, "PRAGMA journal_mode = WAL", mode, sizeof(mode)) ==
		-1 ||
	    strcmp(mode, "wal") != 0) {
		snprintf(err, errlen, "store.path: %s: cannot use WAL: %s",
		    q->path, sqlite3_errmsg(q->db));
		goto out;
	}
	if (exec_sql(q, "PRAGMA synchronous = FULL", __func__) == -1) {
		snprintf(err, errlen, "store.path: %s: %s", q->path,
		    sqlite3_errmsg(q->db));
		goto out;
	}
	q->sync = SYNC_FULL;
	snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint = %d",
	    SQ_WAL_AUTOCHECKPOINT);
	if (pragma_text(q, sql, mode, sizeof(mode)) == -1) {
		snprintf(err, errlen, "store.path: %s: %s", q->path,
		    sqlite3_errmsg(q->db));
		goto out;
	}
	if (migrate(q, cfg->install_id, err, errlen) == -1)
		goto out;
	/*
	 * A set-based update inside a transaction keeps a statement journal of
	 * the pages it changes, and SQLite spills one over 64 KiB to a temp
	 * file (open, write, close on every delivered mark).  In memory it is
	 * a few hundred KiB for a full batch, freed when the statement ends.
	 * Only after the sq_migrations: a statement of a migration may journal
	 * a whole table (the copies of version 2 reuse free pages), and that
	 * belongs in a temp file, not in memory.
	 */
	if (exec_sql(q, "PRAGMA temp_store = MEMORY", __func__) == -1) {
		snprintf(err, errlen, "store.path: %s: %s", q->path,
		    sqlite3_errmsg(q->db));
		goto out;
	}
	if (pragma_text(q, "PRAGMA page_size", mode, sizeof(mode)) == -1 ||
	    (q->page_size = strtoll(mode, NULL, 10)) <= 0) {
		snprintf(err, errlen, "store.path: %s: cannot read page size",
		    q->path);
		goto out;
	}
	if (q->max_size_bytes > 0) {
		/* SQLite keeps the current size when the cap is below it. */
		pages = q->max_size_bytes / q->page_size;
		if (pages < 1)
			pages = 1;
		snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %" PRId64,
		    pages);
		if (pragma_text(q, sql, mode, sizeof(mode)) == -1) {
			snprintf(err, errlen, "store.max_size_bytes: %s",
			    sqlite3_errmsg(q->db));
			goto out;
		}
	}
	*state = q;
	q = NULL;
	rc = 0;
out:
	sq_close(q);
	return rc;
}

static int
sq_schema_version(void *state, int *version)
{
	struct sq *q = state;
	sqlite3_stmt *st;
	int64_t v;

	if ((st = sq_stmt_get(q, ST_USER_VERSION)) == NULL ||
	    sq_stmt_int64(q, st, &v, __func__, "user_version") == -1)
		return -1;
	*version = (int)v;
	return 0;
}

static const char *
sq_install_id(void *state)
{
	struct sq *q = state;

	return q->install_id;
}

static int
sq_recover(void *state)
{
	struct sq *q = state;

	if (sq_run_id(q, ST_RECOVER, __func__) == -1)
		return -1;
	if (sqlite3_changes(q->db) > 0)
		log_info("leases dropped", " rows=%d", sqlite3_changes(q->db));
	return 0;
}

static int
sq_begin(void *state, enum nb_store_sync sync)
{
	return tx_begin_sync(
	    state, sync == NB_STORE_SYNC_LEASE ? SYNC_NORMAL : SYNC_FULL);
}

/* The counters and errors of the transaction first, then COMMIT. */
static int
sq_commit(void *state, const struct nb_store_tally *t)
{
	if (sq_tally_write(state, t) == -1)
		return -1;
	return tx_commit(state);
}

static void
sq_rollback(void *state)
{
	struct sq *q = state;

	q->unfolded_known = 0; /* an append's or a fold's count is off */
	tx_rollback(state);
}

/*
 * Inside a transaction: a minimal durable write, and the checks that tell
 * whether real appends can commit (disk space, room under the cap).
 */
static int
sq_probe(void *state)
{
	struct sq *q = state;
	sqlite3_stmt *st;

	if (disk_check(q, SQ_PROBE_HEADROOM) == -1)
		return -1;
	if ((st = sq_stmt_get(q, ST_PROBE)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, nb_time_now_ms());
	if (sq_stmt_run(q, st, __func__, "probe") == -1)
		return -1;
	/*
	 * Healthy only with room for more than a handful of requests on top
	 * of what appends leave free, so a store that is just full does not
	 * flap.
	 */
	return sq_cap_check(q, 2 * sq_cap_spare(q));
}

/*
 * A PASSIVE checkpoint: copies as much of the WAL as no reader still needs
 * and never waits for a lock.  SQLITE_BUSY means another connection is
 * checkpointing right now, which is as good.
 */
static int
sq_checkpoint(void *state)
{
	struct sq *q = state;
	int rc;

	rc = sqlite3_wal_checkpoint_v2(
	    q->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
		sq_db_log(q, __func__, "checkpoint");
		return -1;
	}
	return 0;
}

const struct nb_store_ops nb_store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .schema_version = sq_schema_version,
    .install_id = sq_install_id,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .recover = sq_recover,
    .append = sq_append,
    .claim = sq_claim,
    .mark = sq_mark,
    .retry = sq_retry,
    .prune = sq_prune,
    .probe = sq_probe,
    .claim_prepare = sq_claim_prepare,
    .list = sq_list,
    .query = sq_query,
    .exec = sq_exec,
    .checkpoint = sq_checkpoint,
    .fold = sq_fold,
    .unfolded = sq_unfolded,
    .alert = &sq_alert_ops,
    .erase = sq_erase,
    .audit_add = sq_audit_add,
    .scrub = sq_scrub,
    .epoch = sq_epoch,
    .sendable = sq_sendable,
};
