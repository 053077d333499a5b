/* SPDX-License-Identifier: ISC */
/*
 * store_schema: the tables both backends create alike, written once.
 *
 * The alerts' tables (version 5) and the attempt history, erase epoch and
 * audit of version 6 have the same columns, keys and indexes on SQLite and
 * PostgreSQL; only the words for a type differ.  Each backend's migration
 * list (store_sqlite_sql.c, store_pg_sql.c) expands these with its words:
 * BIG a 64-bit integer, SMALL a small one, BOOL a flag, ID an id the
 * database gives in order, and KEYED what follows a table that is stored
 * in the order of its primary key alone (SQLite's WITHOUT ROWID; nothing
 * on PostgreSQL).  Like every migration, what these expand to is history:
 * a later version changes a table with a migration of its own, never here.
 */
#ifndef NB_STORE_SCHEMA_H
#define NB_STORE_SCHEMA_H

/* Version 5: the alerts (store_alert.h). */
#define NB_SCHEMA_ALERTS(BIG, SMALL, ID, KEYED)                                \
	"CREATE TABLE activity ("                                              \
	" source TEXT NOT NULL,"                                               \
	" fp TEXT NOT NULL,"                                                   \
	" last_ms " BIG " NOT NULL,"                                           \
	" PRIMARY KEY (source, fp))" KEYED ";"                                 \
	"CREATE TABLE alert_lease ("                                           \
	" id INTEGER PRIMARY KEY CHECK (id = 1),"                              \
	" owner TEXT NOT NULL,"                                                \
	" until_ms " BIG " NOT NULL);"                                         \
	"CREATE TABLE alert_reports ("                                         \
	" owner TEXT NOT NULL,"                                                \
	" alert TEXT NOT NULL,"                                                \
	" source TEXT NOT NULL,"                                               \
	" status INTEGER NOT NULL,"                                            \
	" text TEXT NOT NULL,"                                                 \
	" seen_ms " BIG " NOT NULL,"                                           \
	" PRIMARY KEY (owner, alert, source))" KEYED ";"                       \
	"CREATE TABLE alert_state ("                                           \
	" alert TEXT NOT NULL,"                                                \
	" source TEXT NOT NULL,"                                               \
	" firing " SMALL " NOT NULL,"                                          \
	" started_ms " BIG " NOT NULL,"                                        \
	" resolved_ms " BIG " NOT NULL,"                                       \
	" mark " BIG " NOT NULL,"                                              \
	" pending " BIG " NOT NULL,"                                           \
	" notified_ms " BIG " NOT NULL,"                                       \
	" changed_ms " BIG " NOT NULL,"                                        \
	" text TEXT NOT NULL,"                                                 \
	" summary TEXT NOT NULL,"                                              \
	" details TEXT NOT NULL,"                                              \
	" PRIMARY KEY (alert, source))" KEYED ";"                              \
	"CREATE TABLE alert_outbox ("                                          \
	" id " ID ","                                                          \
	" msg_id TEXT NOT NULL,"                                               \
	" alert TEXT NOT NULL,"                                                \
	" source TEXT NOT NULL,"                                               \
	" resolved " SMALL " NOT NULL,"                                        \
	" body TEXT NOT NULL,"                                                 \
	" created_ms " BIG " NOT NULL,"                                        \
	" next_ms " BIG " NOT NULL,"                                           \
	" attempts INTEGER NOT NULL DEFAULT 0,"                                \
	" lease_owner TEXT,"                                                   \
	" lease_ms " BIG " NOT NULL DEFAULT 0,"                                \
	" done " SMALL " NOT NULL DEFAULT 0,"                                  \
	" done_ms " BIG " NOT NULL DEFAULT 0,"                                 \
	" error TEXT);"                                                        \
	"CREATE INDEX alert_outbox_open ON alert_outbox (alert, source, id)"   \
	" WHERE done = 0;"                                                     \
	"CREATE INDEX alert_outbox_done ON alert_outbox (done_ms)"             \
	" WHERE done <> 0;"

/*
 * Version 6: one row per batch attempt; attempt_links ties a row to its
 * failed attempts (its first NB_STORE_ATTEMPTS_KEPT and its latest) and,
 * once replayed, to the attempt that had delivered it; erase_epoch counts
 * the erasures that changed rows; audit keeps every erasure.
 */
#define NB_SCHEMA_HISTORY(BIG, BOOL, ID, KEYED)                                \
	"CREATE TABLE attempts ("                                              \
	" id " ID ","                                                          \
	" at_ms " BIG " NOT NULL,"                                             \
	" end_ms " BIG " NOT NULL,"                                            \
	" status INTEGER NOT NULL,"                                            \
	" error TEXT,"                                                         \
	" batch_size INTEGER NOT NULL);" /* The retention prune of delivering  \
					    attempts walks this. */            \
	"CREATE INDEX attempts_done ON attempts (end_ms)"                      \
	" WHERE status BETWEEN 200 AND 299;"                                   \
	"CREATE TABLE attempt_links ("                                         \
	" seq " BIG " NOT NULL,"                                               \
	" attempt " BIG " NOT NULL,"                                           \
	" PRIMARY KEY (seq, attempt))" KEYED                                   \
	";" /* Whether an attempt is still linked, when links go. */           \
	"CREATE INDEX attempt_links_attempt ON attempt_links (attempt);"       \
	"CREATE TABLE erase_epoch ("                                           \
	" id INTEGER PRIMARY KEY CHECK (id = 1),"                              \
	" epoch " BIG " NOT NULL);"                                            \
	"INSERT INTO erase_epoch (id, epoch) VALUES (1, 0);"                   \
	"CREATE TABLE audit ("                                                 \
	" id " ID ","                                                          \
	" at_ms " BIG " NOT NULL,"                                             \
	" actor TEXT NOT NULL,"                                                \
	" kind TEXT NOT NULL,"                                                 \
	" subject TEXT NOT NULL,"                                              \
	" dry_run " BOOL " NOT NULL,"                                          \
	" complete " BOOL " NOT NULL,"                                         \
	" events " BIG " NOT NULL,"                                            \
	" pending " BIG " NOT NULL,"                                           \
	" delivered " BIG " NOT NULL,"                                         \
	" dead " BIG " NOT NULL);"

#endif
