/* SPDX-License-Identifier: ISC */
/*
 * store_sqlite_alert: the one alert write the SQLite backend does its own
 * way.
 *
 * Every other statement of the alert tables is bound, run and read back
 * by the common layer (store_alert.c) through sq_query() and sq_exec(),
 * with the text in store_sqlite_sql.c.  The activity figures of a beat
 * are written here, one cached single-row statement per key: one process
 * owns a SQLite store and the table is a row per source and key, so a
 * statement per row costs nothing worth batching.
 */
#include "nudgebridge/activity.h"
#include "store_sqlite.h"

/* One cached statement a row: the activity table is a row per key. */
static int
activity_put(void *state, const struct nb_activity_row *r, size_t n)
{
	struct sq *q = state;
	sqlite3_stmt *st;
	size_t i;

	for (i = 0; i < n; i++) {
		if ((st = sq_stmt_get(q, ST_AL_ACTIVITY_PUT)) == NULL)
			return -1;
		sqlite3_bind_text(st, 1, r[i].source, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, r[i].fp, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, r[i].ms);
		if (sq_stmt_run(q, st, __func__, "activity") == -1)
			return -1;
	}
	return 0;
}

const struct nb_store_alert_ops sq_alert_ops = {
    .activity_put = activity_put,
};
