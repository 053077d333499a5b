/* SPDX-License-Identifier: ISC */
/*
 * store_sqlite_read: rows read back in the SQLite backend.
 *
 * An events row (EVENT_COLS, and its payload when asked) becomes a struct
 * nb_stored_event with every string its own, and an operator filter
 * binds the parameters every list statement shares (LIST_SELECT in
 * store_sqlite_sql.c).  The lists of store_sqlite_rows.c and the person
 * searches of store_sqlite_people.c both read through these.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/log.h"
#include "nudgebridge/person.h"
#include "store_sqlite.h"

static char *
col_strdup(sqlite3_stmt *st, int col, int *failed)
{
	const unsigned char *s;
	char *d;

	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return NULL;
	s = sqlite3_column_text(st, col);
	if (s == NULL || (d = strdup((const char *)s)) == NULL) {
		*failed = 1;
		return NULL;
	}
	return d;
}

/*
 * Copies the blob in column col of st to ev->raw, NUL-terminated (a NULL
 * reads as empty).  0 or -1 (ENOMEM).
 */
static int
raw_read(sqlite3_stmt *st, int col, struct nb_stored_event *ev)
{
	const void *blob;
	int len;

	blob = sqlite3_column_blob(st, col);
	len = sqlite3_column_bytes(st, col);
	if ((ev->raw = malloc((size_t)len + 1)) == NULL)
		return -1;
	if (len > 0)
		memcpy(ev->raw, blob, (size_t)len);
	ev->raw[len] = '\0';
	ev->rawlen = (size_t)len;
	return 0;
}

/*
 * Reads an EVENT_COLS row into ev (zeroed first), with the payload from
 * column SQ_COL_PAYLOAD when with_payload.  0 or -1 (ENOMEM).
 */
static int
row_read(sqlite3_stmt *st, struct nb_stored_event *ev, int with_payload)
{
	int failed = 0;

	memset(ev, 0, sizeof(*ev));
	ev->seq = sqlite3_column_int64(st, 0);
	nb_store_key_format(ev->seq, ev->key);
	ev->source = col_strdup(st, 1, &failed);
	ev->id = col_strdup(st, 2, &failed);
	ev->type = col_strdup(st, 3, &failed);
	ev->state = (enum nb_event_state)sqlite3_column_int(st, 4);
	ev->reason = col_strdup(st, 5, &failed);
	ev->error = col_strdup(st, 6, &failed);
	ev->attempts = sqlite3_column_int(st, 7);
	ev->received_ms = sqlite3_column_int64(st, 8);
	ev->age_base_ms = sqlite3_column_int64(st, 9);
	ev->updated_ms = sqlite3_column_int64(st, 10);
	ev->rule = (enum nb_segment_rule)sqlite3_column_int(st, 11);
	if (with_payload && raw_read(st, SQ_COL_PAYLOAD, ev) == -1)
		failed = 1;
	if (ev->source == NULL)
		failed = 1;
	return failed ? -1 : 0;
}

int
sq_rows_push(struct nb_store_rows *v, sqlite3_stmt *st, int with_payload)
{
	struct nb_stored_event *ev;

	if ((ev = nb_store_rows_next(v)) == NULL)
		return -1;
	if (row_read(st, ev, with_payload) == -1) {
		log_error("out of memory", " rows=%zu", v->n);
		return -1;
	}
	return 0;
}

void
sq_list_bind(
    sqlite3_stmt *st, const struct nb_store_filter *f, int with_payload)
{
	int64_t seq;
	unsigned states = nb_store_filter_states(f);

	if (f->key != NULL && nb_store_key_parse(f->key, &seq) == 0)
		sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_text(st, 2, f->source, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, f->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, f->reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, f->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, f->since_ms);
	sqlite3_bind_int64(st, 7, f->until_ms);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)states);
	sqlite3_bind_int64(st, 9, f->after_seq > 0 ? f->after_seq : 0);
	sqlite3_bind_int64(
	    st, 10, f->before_seq > 0 ? f->before_seq : INT64_MAX);
	sqlite3_bind_int64(st, 11,
	    f->max_scan == 0 || f->max_scan > INT64_MAX ? -1
							: (int64_t)f->max_scan);
	sqlite3_bind_int(st, 12, with_payload);
	if (f->email != NULL)
		sqlite3_bind_int64(
		    st, 13, nb_person_key_email(f->email, strlen(f->email)));
	if (f->uid != NULL)
		sqlite3_bind_int64(
		    st, 14, nb_person_key_uid(f->uid, strlen(f->uid)));
}
