/* SPDX-License-Identifier: ISC */
/*
 * store_pg: the PostgreSQL backend's base: the connection and the wire.
 *
 * Statements are prepared once per connection and go out in pipelined
 * batches (libpq's pipeline mode), so a round trip carries as many as a
 * step needs; parameters are text, or binary arrays built in the
 * connection's buffers, so a batch of rows is one parameter, not one per
 * row.  A failure is logged once with its SQLSTATE, which tells the
 * frame whether to run the transaction again, and a broken connection is
 * re-made with a back-off.  Every other file of the backend builds on
 * these; store_pg_ops.c, at the top, opens the store and hands the
 * operations to store.c.  store.max_size_bytes is SQLite's.
 */
#include <arpa/inet.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "nudgebridge/log.h"
#include "nudgebridge/timeutil.h"
#include "store_pg.h"

#define PG_RESET_MIN_MS 1000  /* first reconnect retry after */
#define PG_RESET_MAX_MS 10000 /* back-off cap between retries */

void
pgs_par_text(struct params *p, const char *s)
{
	p->v[p->n] = s;
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

void
pgs_par_int(struct params *p, int64_t v)
{
	snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, v);
	pgs_par_text(p, p->num[p->n]);
}

/* A binary parameter; the caller checked len <= INT_MAX. */
void
pgs_par_bin(struct params *p, const char *data, size_t len)
{
	p->v[p->n] = data != NULL ? data : "";
	p->len[p->n] = data != NULL ? (int)len : 0;
	p->fmt[p->n] = 1;
	p->n++;
}

static void
put32(struct nb_buf *b, uint32_t v)
{
	v = htonl(v);
	nb_buf_add(b, &v, sizeof(v));
}

/*
 * The binary array format of array_recv(): dimensions (one), a has-nulls
 * flag (0: the server finds the NULLs itself), the element type, the
 * length and lower bound of the dimension, then each element as a length
 * (-1: NULL) and its bytes in the element type's binary form.
 */
void
pgs_arr_start(struct nb_buf *b, unsigned oid, size_t n)
{
	nb_buf_reset(b);
	if (n > INT32_MAX)
		b->failed = 1;
	put32(b, 1);
	put32(b, 0);
	put32(b, oid);
	put32(b, (uint32_t)n);
	put32(b, 1);
}

void
pgs_arr_bytes(struct nb_buf *b, const void *p, size_t len)
{
	if (p == NULL) {
		put32(b, UINT32_MAX);
		return;
	}
	if (len > INT32_MAX) {
		b->failed = 1;
		return;
	}
	put32(b, (uint32_t)len);
	nb_buf_add(b, p, len);
}

void
pgs_arr_text(struct nb_buf *b, const char *s)
{
	pgs_arr_bytes(b, s, s != NULL ? strlen(s) : 0);
}

void
pgs_arr_int8(struct nb_buf *b, int64_t v)
{
	uint64_t u = (uint64_t)v;

	put32(b, 8);
	put32(b, (uint32_t)(u >> 32));
	put32(b, (uint32_t)u);
}

void
pgs_arr_int4_or_null(struct nb_buf *b, int64_t v)
{
	uint32_t u;

	if (v == 0) {
		pgs_arr_bytes(b, NULL, 0);
		return;
	}
	u = htonl((uint32_t)(int32_t)v);
	put32(b, 4);
	nb_buf_add(b, &u, sizeof(u));
}

void
pgs_arr_int2(struct nb_buf *b, int v)
{
	uint16_t u = htons((uint16_t)v);

	put32(b, 2);
	nb_buf_add(b, &u, sizeof(u));
}

int
pgs_par_arr(struct params *p, struct nb_buf *b)
{
	if (nb_buf_failed(b) || b->len > INT32_MAX) {
		log_error("array parameter failed", " bytes=%zu", b->len);
		return -1;
	}
	pgs_par_bin(p, nb_buf_str(b), b->len);
	return 0;
}

/* Drops server notices ("relation already exists, skipping"). */
static void
notice_cb(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Logs a failure once, with SQLSTATE and the server's message. */
static void
db_log(struct pg *q, const PGresult *res, const char *fn, const char *op)
{
	const char *state = NULL, *msg = NULL;
	char text[256], qerr[300];
	size_t len;

	if (res != NULL) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	}
	if (msg == NULL)
		msg = PQerrorMessage(q->conn);
	snprintf(
	    q->sqlstate, sizeof(q->sqlstate), "%s", state != NULL ? state : "");
	/* The first line says it ("terminating connection due to ..."). */
	snprintf(text, sizeof(text), "%s", msg);
	text[strcspn(text, "\n")] = '\0';
	len = strlen(text);
	while (len > 0 && text[len - 1] == ' ')
		text[--len] = '\0';
	if (PQstatus(q->conn) != CONNECTION_OK)
		nb_log(NB_LOG_ERROR, fn, "store connection lost",
		    " op=%s error=%s", op,
		    nb_log_quote(qerr, sizeof(qerr), text));
	else
		nb_log(NB_LOG_ERROR, fn, "postgres failure",
		    " op=%s sqlstate=%s error=%s", op,
		    state != NULL ? state : "-",
		    nb_log_quote(qerr, sizeof(qerr), text));
}

/* A simple-protocol statement (several per string); 0 or -1 (logged). */
int
pgs_simple_run(struct pg *q, const char *sql, ExecStatusType want,
    const char *fn, const char *op)
{
	PGresult *res = PQexec(q->conn, sql);
	int rc = 0;

	if (res == NULL || PQresultStatus(res) != want) {
		db_log(q, res, fn, op);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/* Rows changed by a command result. */
static size_t
pgs_cmd_tuples(PGresult *res)
{
	const char *s = PQcmdTuples(res);

	return s != NULL && s[0] != '\0' ? (size_t)strtoull(s, NULL, 10) : 0;
}

static int64_t
row_i64(const struct nb_store_row *r, int col)
{
	const struct pgs_result *p = (const struct pgs_result *)r;

	return pgs_col_int64(p->res, p->i, col);
}

static const char *
row_text(const struct nb_store_row *r, int col)
{
	const struct pgs_result *p = (const struct pgs_result *)r;

	return PQgetisnull(p->res, p->i, col) ? NULL
					      : PQgetvalue(p->res, p->i, col);
}

struct pgs_binder {
	struct nb_store_binder base; /* first: what the binders see */
	struct params *p;
};

static void
bind_i64(struct nb_store_binder *b, int64_t v)
{
	pgs_par_int(((struct pgs_binder *)b)->p, v);
}

static void
bind_str(struct nb_store_binder *b, const char *v)
{
	pgs_par_text(((struct pgs_binder *)b)->p, v);
}

void
pgs_par_bind(struct params *p, nb_store_bind_fn bind, const void *arg)
{
	struct pgs_binder b = {{bind_i64, bind_str}, p};

	if (bind != NULL)
		bind(&b.base, arg);
}

void
pgs_result_init(struct pgs_result *r, const PGresult *res)
{
	r->base.i64 = row_i64;
	r->base.text = row_text;
	r->res = res;
	r->i = 0;
}

int64_t
pgs_col_int64(const PGresult *res, int row, int col)
{
	const unsigned char *b;
	uint64_t u = 0;
	int i, len;

	if (PQgetisnull(res, row, col))
		return 0;
	if (PQfformat(res, col) == 0)
		return (int64_t)strtoll(PQgetvalue(res, row, col), NULL, 10);
	/* Binary: a big-endian int2, int4 or int8 (or a bool). */
	b = (const unsigned char *)PQgetvalue(res, row, col);
	len = PQgetlength(res, row, col);
	for (i = 0; i < len; i++)
		u = u << 8 | b[i];
	if (len == 2)
		return (int16_t)u;
	if (len == 4)
		return (int32_t)u;
	return (int64_t)u;
}

char *
pgs_col_strdup(const PGresult *res, int row, int col, int *failed)
{
	char *d;
	int len;

	if (PQgetisnull(res, row, col))
		return NULL;
	len = PQgetlength(res, row, col);
	if ((d = malloc((size_t)len + 1)) == NULL) {
		*failed = 1;
		return NULL;
	}
	memcpy(d, PQgetvalue(res, row, col), (size_t)len);
	d[len] = '\0';
	return d;
}

int
pgs_session_setup(struct pg *q, const char *fn)
{
	PQsetNoticeProcessor(q->conn, notice_cb, NULL);
	/* A new session has no prepared statements. */
	memset(q->prepared, 0, sizeof(q->prepared));
	return pgs_simple_run(q, pgs_session, PGRES_TUPLES_OK, fn, "session");
}

/*
 * Makes sure the connection is usable: after a failure that broke it,
 * reconnects, failing fast between attempts.  The wait between attempts
 * doubles from 1 s to 10 s while the server stays away, because an attempt
 * against a host that drops packets blocks for connect_timeout, and the
 * admin thread's connection answers operators from its event loop.
 */
int
pgs_conn_check(struct pg *q, const char *fn)
{
	char text[256], qerr[300];
	int64_t now;

	q->tx_want = q->tx_open = 0;
	if (PQstatus(q->conn) == CONNECTION_OK &&
	    PQtransactionStatus(q->conn) == PQTRANS_IDLE)
		return 0;
	if (PQstatus(q->conn) == CONNECTION_OK) {
		/* A transaction left open by a failed call: end it. */
		PQclear(PQexec(q->conn, "ROLLBACK"));
		if (PQstatus(q->conn) == CONNECTION_OK)
			return 0;
	}
	now = nb_time_mono_ms();
	if (q->reset_mono_ms != 0 && now - q->reset_mono_ms < q->reset_wait_ms)
		return -1;
	q->reset_mono_ms = now;
	PQreset(q->conn);
	if (PQstatus(q->conn) != CONNECTION_OK) {
		q->reset_wait_ms = q->reset_wait_ms < PG_RESET_MIN_MS
		    ? PG_RESET_MIN_MS
		    : q->reset_wait_ms * 2;
		if (q->reset_wait_ms > PG_RESET_MAX_MS)
			q->reset_wait_ms = PG_RESET_MAX_MS;
		snprintf(text, sizeof(text), "%s", PQerrorMessage(q->conn));
		text[strcspn(text, "\n")] = '\0';
		nb_log(NB_LOG_ERROR, fn, "store unreachable", " error=%s",
		    nb_log_quote(qerr, sizeof(qerr), text));
		return -1;
	}
	if (pgs_session_setup(q, fn) == -1)
		return -1;
	q->reset_wait_ms = 0;
	nb_log(NB_LOG_INFO, fn, "store reconnected", "%s", "");
	return 0;
}

void
pgs_batch_reset(struct pgs_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		PQclear(b->it[i].res);
	b->n = 0;
}

struct params *
pgs_batch_add(struct pgs_batch *b, enum pgs_stmt id, int binary)
{
	struct pgs_item *it = &b->it[b->n++];

	memset(it, 0, sizeof(*it));
	it->id = id;
	it->binary = binary;
	return &it->p;
}

void
pgs_batch_add_sql(struct pgs_batch *b, const char *sql)
{
	struct pgs_item *it = &b->it[b->n++];

	memset(it, 0, sizeof(*it));
	it->id = PS_COUNT;
	it->sql = sql;
}

/*
 * The statements that open a transaction begun but not yet opened, sent
 * ahead of a batch's own: BEGIN, and for the lease bookkeeping a COMMIT
 * that does not wait for the WAL.  Their count, 0 when open already.
 */
static size_t
tx_opening(const struct pg *q, const char **sql)
{
	if (!q->tx_want || q->tx_open)
		return 0;
	sql[0] = "BEGIN";
	sql[1] = "SET LOCAL synchronous_commit TO off";
	return q->tx_lease ? 2 : 1;
}

/* Sends one item, preparing its statement first when this session has not. */
static int
item_send(struct pg *q, struct pgs_item *it)
{
	char name[16];

	if (it->id == PS_COUNT)
		return PQsendQueryParams(
		    q->conn, it->sql, 0, NULL, NULL, NULL, NULL, 0);
	snprintf(name, sizeof(name), "nb%d", (int)it->id);
	/* 1: prepared; 2: its PREPARE is in this pipeline already. */
	if (q->prepared[it->id] == 0) {
		if (PQsendPrepare(q->conn, name, pgs_sql[it->id], 0, NULL) != 1)
			return 0;
		q->prepared[it->id] = 2;
		it->sent_prepare = 1;
	}
	return PQsendQueryPrepared(
	    q->conn, name, it->p.n, it->p.v, it->p.len, it->p.fmt, it->binary);
}

/*
 * Reads one item's results: its prepare's (when sent), then its own, each
 * followed by the NULL that ends it.  -1 on a broken protocol; *failed
 * when the statement failed (logged once: the first failure, since the
 * rest of the pipeline is then aborted without running).
 */
static int
item_read(struct pg *q, struct pgs_item *it, int *failed, const char *fn)
{
	PGresult *res;
	ExecStatusType st;
	int step, steps = it->sent_prepare ? 2 : 1;

	for (step = 0; step < steps; step++) {
		if ((res = PQgetResult(q->conn)) == NULL)
			return -1;
		st = PQresultStatus(res);
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			if (st != PGRES_PIPELINE_ABORTED && !*failed)
				db_log(q, res, fn, "pipeline");
			*failed = 1;
			PQclear(res);
		} else if (step == steps - 1)
			it->res = res;
		else {
			q->prepared[it->id] = 1;
			PQclear(res);
		}
		if (step < steps - 1 && q->prepared[it->id] != 1)
			q->prepared[it->id] = 0;
		if ((res = PQgetResult(q->conn)) != NULL) {
			PQclear(res);
			return -1;
		}
	}
	return 0;
}

/*
 * Sends and reads the items of b, after the k statements of open; the
 * pipeline mode is on.
 */
static int
batch_io(struct pg *q, struct pgs_batch *b, const char *const *open, size_t k,
    const char *fn)
{
	struct pgs_item pre[2];
	PGresult *res;
	size_t i;
	int failed = 0;

	memset(pre, 0, sizeof(pre));
	for (i = 0; i < k; i++) {
		pre[i].id = PS_COUNT;
		pre[i].sql = open[i];
	}
	for (i = 0; i < k + b->n; i++)
		if (item_send(q, i < k ? &pre[i] : &b->it[i - k]) != 1) {
			db_log(q, NULL, fn, "pipeline send");
			return -1;
		}
	if (PQpipelineSync(q->conn) != 1) {
		db_log(q, NULL, fn, "pipeline sync");
		return -1;
	}
	for (i = 0; i < k + b->n; i++)
		if (item_read(q, i < k ? &pre[i] : &b->it[i - k], &failed,
			fn) == -1) {
			db_log(q, NULL, fn, "pipeline");
			return -1;
		}
	for (i = 0; i < k; i++)
		PQclear(pre[i].res);
	if (k > 0 && !failed)
		q->tx_open = 1;
	if ((res = PQgetResult(q->conn)) == NULL ||
	    PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
		/* A statement's failure was logged; this is its echo. */
		if (!failed)
			db_log(q, res, fn, "pipeline sync");
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return failed ? -1 : 0;
}

/* Runs b once; *dropped: the connection broke on the way. */
static int
batch_once(struct pg *q, struct pgs_batch *b, const char *fn, int *dropped)
{
	const char *open[2];
	size_t i, k;
	int rc;

	q->sqlstate[0] = '\0';
	for (i = 0; i < b->n; i++)
		b->it[i].sent_prepare = 0;
	k = tx_opening(q, open);
	if (PQenterPipelineMode(q->conn) != 1) {
		db_log(q, NULL, fn, "pipeline mode");
		*dropped = PQstatus(q->conn) != CONNECTION_OK;
		return -1;
	}
	rc = batch_io(q, b, open, k, fn);
	*dropped = PQstatus(q->conn) != CONNECTION_OK;
	/*
	 * Fails only with results left unread, after a broken send or read:
	 * start over on a new connection rather than guess where the
	 * protocol stands.
	 */
	if (PQexitPipelineMode(q->conn) != 1) {
		log_error("pipeline stuck, reconnecting", "%s", "");
		PQreset(q->conn);
		if (PQstatus(q->conn) == CONNECTION_OK)
			(void)pgs_session_setup(q, fn);
		rc = -1;
	}
	/* A PREPARE the pipeline aborted is to be sent again. */
	for (i = 0; i < b->n; i++)
		if (b->it[i].sent_prepare && q->prepared[b->it[i].id] == 2)
			q->prepared[b->it[i].id] = 0;
	for (i = 0; rc == -1 && i < b->n; i++) {
		PQclear(b->it[i].res);
		b->it[i].res = NULL;
	}
	return rc;
}

/* Whether every statement of b only reads what operators and scrapers ask. */
static int
reads_only(const struct pgs_batch *b)
{
	size_t i, j;

	for (i = 0; i < b->n; i++) {
		for (j = 0; j < pgs_nreads && pgs_reads[j] != b->it[i].id; j++)
			;
		if (j == pgs_nreads)
			return 0;
	}
	return b->n > 0;
}

/*
 * A read outside a transaction whose connection the server closed (a
 * restart, idle_session_timeout, a pooler or a firewall dropping an idle
 * connection) is sent once more on a new connection, so an operator or a
 * scraper does not see the drop; sending a read twice changes nothing.
 * Transactions are run again whole by store.c (pg_retryable()).
 */
int
pgs_batch_run(struct pg *q, struct pgs_batch *b, const char *fn)
{
	int dropped = 0;

	if (batch_once(q, b, fn, &dropped) == 0)
		return 0;
	if (!dropped || q->tx_want || q->tx_open || !reads_only(b) ||
	    pgs_conn_check(q, fn) == -1)
		return -1;
	return batch_once(q, b, fn, &dropped);
}

PGresult *
pgs_exec(struct pg *q, enum pgs_stmt id, const struct params *p, int binary,
    const char *fn)
{
	struct pgs_batch *b = &q->batch;
	PGresult *res;

	pgs_batch_reset(b);
	*pgs_batch_add(b, id, binary) = p != NULL ? *p : (struct params){0};
	if (pgs_batch_run(q, b, fn) == -1) {
		pgs_batch_reset(b);
		return NULL;
	}
	res = b->it[0].res;
	b->it[0].res = NULL;
	pgs_batch_reset(b);
	return res;
}

int
pgs_run_count(struct pg *q, enum pgs_stmt id, const struct params *p,
    size_t *changed, const char *fn)
{
	PGresult *res;

	if ((res = pgs_exec(q, id, p, 0, fn)) == NULL)
		return -1;
	if (changed != NULL)
		*changed = pgs_cmd_tuples(res);
	PQclear(res);
	return 0;
}

int
pgs_run(struct pg *q, enum pgs_stmt id, const struct params *p, const char *fn)
{
	return pgs_run_count(q, id, p, NULL, fn);
}

int
pgs_seqs_param(struct params *p, struct nb_buf *b, const int64_t *seqs,
    size_t n, size_t stride)
{
	const char *base = (const char *)seqs;
	int64_t v;
	size_t i;

	pgs_arr_start(b, PG_OID_INT8, n);
	for (i = 0; i < n; i++) {
		memcpy(&v, base + i * stride, sizeof(v));
		pgs_arr_int8(b, v);
	}
	return pgs_par_arr(p, b);
}
