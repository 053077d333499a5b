/* SPDX-License-Identifier: ISC */
/*
 * store_pg_fleet: what the instances on one PostgreSQL database share
 * besides the rows: the install id and the table of live instances.
 *
 * The install id is made once, by whichever connection first finds the
 * install table empty, inside the migration's transaction and under its
 * advisory lock, so every instance reads the same one.  The table of
 * instances is a heartbeat per process: register or refresh, forget the
 * long silent, list the live, all at the database's clock (so the hosts'
 * clocks never matter) and in one pipeline.  It holds processes, never
 * events, so its cost does not grow with the store.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "nudgebridge/log.h"
#include "nudgebridge/timeutil.h"
#include "store_pg.h"

int
pgs_install_ensure(struct pg *q, const char *seed)
{
	char id[NB_SEGMENT_INSTALL_ID_LEN + 1];
	struct pgs_batch *b = &q->batch;
	struct params *p;
	PGresult *res;
	int rc = -1;

	if (seed != NULL)
		snprintf(id, sizeof(id), "%s", seed);
	else
		nb_store_install_new(id);
	pgs_batch_reset(b);
	p = pgs_batch_add(b, PS_INSTALL_ADD, 0);
	pgs_par_text(p, id);
	pgs_par_int(p, nb_time_now_ms());
	(void)pgs_batch_add(b, PS_INSTALL_GET, 0);
	if (pgs_batch_run(q, b, __func__) == -1)
		goto out;
	res = b->it[1].res;
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		log_error("install id missing", NULL);
		goto out;
	}
	snprintf(
	    q->install_id, sizeof(q->install_id), "%s", PQgetvalue(res, 0, 0));
	rc = 0;
out:
	pgs_batch_reset(b);
	return rc;
}

/* Row i of a PS_LIVE result into out. */
static void
instance_read(const PGresult *res, int i, struct nb_store_instance *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", PQgetvalue(res, i, 0));
	snprintf(out->host, sizeof(out->host), "%s", PQgetvalue(res, i, 1));
	out->pid = pgs_col_int64(res, i, 2);
	out->started_ms = pgs_col_int64(res, i, 3);
	out->beat_ms = pgs_col_int64(res, i, 4);
}

int
pgs_beat(void *state, struct nb_store_instance *self, int64_t lease_ms,
    struct nb_store_instance *out, size_t max, size_t *n, size_t *live)
{
	struct pg *q = state;
	struct pgs_batch *b = &q->batch;
	struct params *p;
	PGresult *res;
	int i, rc = -1;

	pgs_batch_reset(b);
	p = pgs_batch_add(b, PS_BEAT, 0);
	pgs_par_text(p, self->id);
	pgs_par_text(p, self->host);
	pgs_par_int(p, self->pid);
	p = pgs_batch_add(b, PS_FORGET, 0);
	pgs_par_int(p, lease_ms * NB_STORE_FORGET_LEASES);
	p = pgs_batch_add(b, PS_LIVE, 0);
	pgs_par_int(p, lease_ms);
	pgs_par_int(p, max > INT64_MAX ? INT64_MAX : (int64_t)max);
	if (pgs_batch_run(q, b, __func__) == -1)
		goto out;
	res = b->it[0].res;
	if (PQntuples(res) != 1) {
		log_error("heartbeat not recorded", NULL);
		goto out;
	}
	self->started_ms = pgs_col_int64(res, 0, 0);
	self->beat_ms = pgs_col_int64(res, 0, 1);
	res = b->it[2].res;
	for (i = 0; i < PQntuples(res); i++) {
		instance_read(res, i, &out[i]);
		*live = (size_t)pgs_col_int64(res, i, 5);
	}
	*n = (size_t)PQntuples(res);
	rc = 0;
out:
	pgs_batch_reset(b);
	return rc;
}

int
pgs_leave(void *state, const char *id)
{
	struct params p = {0};

	pgs_par_text(&p, id);
	return pgs_run(state, PS_LEAVE, &p, __func__);
}
