/* SPDX-License-Identifier: ISC */
/*
 * nudgespot: the inbound payload, parsed and validated.
 *
 * A body is refused (400) only when it is not JSON (jansson's refusals:
 * invalid UTF-8, nesting past its limit, integers beyond 64 bits, NUL in
 * keys) or not an object / array of 1..NB_NUDGESPOT_MAX_EVENTS objects.
 * Each event is then checked against schema.c's table, walked in its order
 * (the rules exist there once): a broken one quarantines the event, with
 * the message of the first rule it broke.  The store keeps each event's
 * text as received (its byte range in the body, white space between tokens
 * removed), so a replay re-validates exactly what was received.  Two paths
 * give that one result: a direct single pass over the body with jscan, for
 * the bodies it is certain about, and jansson for the rest; both fill one
 * view of an event and check it with one function, and the unit and fuzz
 * tests hold them to identical results.  Pure functions, any thread.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nudgebridge/buf.h"
#include "nudgebridge/jscan.h"
#include "nudgebridge/nudgespot.h"
#include "nudgebridge/person.h"
#include "nudgebridge/schema.h"

/*
 * "\u0000" in string values is allowed, so that such an event is
 * quarantined by the rules rather than the body refused.
 */
#define PARSE_FLAGS (JSON_ALLOW_NUL | JSON_DECODE_ANY)
#define DUMP_FLAGS  (JSON_COMPACT)

/*
 * What the rules read of one event, filled by either path: for each row of
 * the schema the member is absent, null, a string (its bytes; for the
 * direct path as written, so only meaningful when esc is 0), an object or
 * anything else.  A leaf is only filled when its object is an object.
 */
enum vkind { VK_ABSENT, VK_NULL, VK_STRING, VK_OBJECT, VK_OTHER };

struct view {
	unsigned char kind; /* enum vkind */
	unsigned char esc;  /* direct path: the string holds escapes */
	const char *p;
	size_t len;
};

struct eview {
	struct view f[NB_SCHEMA_FIELDS_MAX]; /* by row of nb_schema_fields */
	uint64_t seen;			     /* direct path: rows read */
};

static void
eview_clear(struct eview *e)
{
	memset(e->f, 0, nb_schema_nfields * sizeof(e->f[0]));
	e->seen = 0;
}

static int
absent(const struct view *v)
{
	return v->kind == VK_ABSENT || v->kind == VK_NULL;
}

/* NULL when the present member v follows the rule of row f. */
static const char *
check_value(const struct nb_schema_field *f, const struct view *v)
{
	if (!nb_schema_is_string(f))
		return v->kind == VK_OBJECT ? NULL : f->not_type;
	if (v->kind != VK_STRING)
		return f->not_type;
	if (f->rule == NB_SCHEMA_STRING)
		return NULL;
	return nb_schema_check(f, v->p, v->len) ? NULL : f->broken;
}

/*
 * The rules of the table, in its order: each row when present, a required
 * row when absent, and an object that needs one of its leaves once its
 * leaves are checked.
 */
static const char *
check_event(const struct eview *e)
{
	const struct nb_schema_field *f, *obj = NULL;
	const char *err;
	size_t i;
	int need = 0;

	for (i = 0; i < nb_schema_nfields; i++) {
		f = &nb_schema_fields[i];
		if (f->parent == NULL) {
			if (need)
				return obj->broken;
			obj = f;
		}
		if (absent(&e->f[i])) {
			if (f->missing != NULL)
				return f->missing;
			continue;
		}
		if ((err = check_value(f, &e->f[i])) != NULL)
			return err;
		need = f->parent == NULL && f->rule == NB_SCHEMA_OBJECT &&
		    f->broken != NULL;
	}
	return need ? obj->broken : NULL;
}

static char *
memdup_str(const char *s, size_t len)
{
	char *d;

	if ((d = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

/* The view of the member playing role when it follows its rule, or NULL. */
static const struct view *
rule_view(const struct eview *e, enum nb_schema_role role)
{
	int row = nb_schema_row(role);
	const struct view *v = &e->f[row];

	if (v->kind != VK_STRING ||
	    !nb_schema_check(&nb_schema_fields[row], v->p, v->len))
		return NULL;
	return v;
}

/* A copy of the member of role when it follows its own rule, else NULL. */
static int
keep_name(const struct eview *e, enum nb_schema_role role, char **out)
{
	const struct view *v = rule_view(e, role);

	*out = NULL;
	if (v == NULL)
		return 0;
	/* Then it holds no NUL: the copy is the C string jansson holds. */
	return (*out = memdup_str(v->p, v->len)) == NULL ? -1 : 0;
}

/*
 * The id and type of an event when they follow their own rules, even if a
 * later rule fails.
 */
static int
keep_names(const struct eview *e, char **id, char **type)
{
	*type = NULL;
	if (keep_name(e, NB_SCHEMA_MESSAGE_ID, id) == -1 ||
	    keep_name(e, NB_SCHEMA_EVENT, type) == -1)
		return -1;
	return 0;
}

static void
tree_val(struct view *v, const json_t *j)
{
	if (j == NULL) {
		v->kind = VK_ABSENT;
	} else if (json_is_null(j)) {
		v->kind = VK_NULL;
	} else if (json_is_string(j)) {
		v->kind = VK_STRING;
		v->p = json_string_value(j);
		v->len = json_string_length(j);
	} else if (json_is_object(j)) {
		v->kind = VK_OBJECT;
	} else {
		v->kind = VK_OTHER;
	}
}

/* The view of an event object from its jansson tree. */
static void
tree_view(struct eview *e, const json_t *ev)
{
	const struct nb_schema_field *f;
	const json_t *obj = NULL, *j;
	size_t i;

	eview_clear(e);
	for (i = 0; i < nb_schema_nfields; i++) {
		f = &nb_schema_fields[i];
		if (f->parent == NULL) {
			tree_val(&e->f[i], j = json_object_get(ev, f->key));
			obj = e->f[i].kind == VK_OBJECT ? j : NULL;
		} else if (obj != NULL) {
			tree_val(&e->f[i], json_object_get(obj, f->key));
		}
	}
}

const char *
nb_nudgespot_validate(const json_t *ev)
{
	struct eview e;

	if (!json_is_object(ev))
		return "event: must be an object";
	tree_view(&e, ev);
	return check_event(&e);
}

static void
event_clear(struct nb_event *e)
{
	free(e->id);
	free(e->type);
	free(e->raw);
	memset(e, 0, sizeof(*e));
}

void
nb_nudgespot_clear(struct nb_payload *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nevents; i++)
		event_clear(&p->events[i]);
	free(p->events);
	p->events = NULL;
	p->nevents = 0;
}

/*
 * The stored text of an event, its object's bytes t: copied as they are
 * when compact, else without the white space between tokens.
 */
static int
keep_text(struct nb_event *e, const struct nb_jscan_tok *t)
{
	struct nb_buf b;

	nb_buf_init(&b, t->len);
	if (t->flags & NB_JSCAN_COMPACT)
		(void)nb_buf_add(&b, t->p, t->len);
	else if (nb_buf_reserve(&b, t->len) == 0)
		(void)nb_jscan_compact(&b, t->p, t->len);
	return (e->raw = nb_buf_steal(&b, &e->rawlen)) == NULL ? -1 : 0;
}

/* Fills the rest of e from its view: names, verdict, person keys. */
static int
keep_event(struct nb_event *e, const struct eview *view)
{
	const struct view *v;

	if (keep_names(view, &e->id, &e->type) == -1)
		return -1;
	e->error = check_event(view);
	if ((v = rule_view(view, NB_SCHEMA_ANONYMOUS_ID)) != NULL)
		e->email_key = nb_person_key_email(v->p, v->len);
	if ((v = rule_view(view, NB_SCHEMA_USER_ID)) != NULL)
		e->uid_key = nb_person_key_uid(v->p, v->len);
	return 0;
}

static enum nb_nudgespot_result
load(json_t **root, const char *body, size_t len)
{
	json_error_t err;

	if (body == NULL)
		body = "";
	if ((*root = json_loadb(body, len, PARSE_FLAGS, &err)) == NULL)
		return json_error_code(&err) == json_error_out_of_memory
		    ? NB_NUDGESPOT_NOMEM
		    : NB_NUDGESPOT_INVALID_JSON;
	return NB_NUDGESPOT_OK;
}

/*
 * Slicing a body jansson has accepted: the next event's object, the root or
 * the array's next element, as a token of a trusted scan.  -1 if the scan
 * does not agree with jansson, and the caller serialises from there on.
 */
static int
slice_next(struct nb_jscan *s, struct nb_jscan_iter *it, int array,
    struct nb_jscan_tok *t)
{
	if (!array) {
		nb_jscan_ws(s);
		return nb_jscan_value(s, t, 1);
	}
	if (nb_jscan_next(s, it, NULL) != 1 || !nb_jscan_at(s, '{'))
		return -1;
	return nb_jscan_value(s, t, 2);
}

/* Checks the shape of a parsed body; its event count in *n. */
static enum nb_nudgespot_result
body_shape(const json_t *root, size_t *n)
{
	size_t i;

	if (json_is_object(root)) {
		*n = 1;
		return NB_NUDGESPOT_OK;
	}
	if (!json_is_array(root))
		return NB_NUDGESPOT_INVALID_PAYLOAD;
	*n = json_array_size(root);
	if (*n < 1 || *n > NB_NUDGESPOT_MAX_EVENTS)
		return NB_NUDGESPOT_INVALID_PAYLOAD;
	for (i = 0; i < *n; i++)
		if (!json_is_object(json_array_get(root, i)))
			return NB_NUDGESPOT_INVALID_PAYLOAD;
	return NB_NUDGESPOT_OK;
}

enum nb_nudgespot_result
nb_nudgespot_parse_tree(struct nb_payload *out, const char *body, size_t len)
{
	struct nb_payload p = {NULL, 0};
	enum nb_nudgespot_result r;
	struct nb_jscan_iter it;
	struct nb_jscan_tok t;
	struct nb_jscan s;
	struct eview view;
	json_t *root = NULL, *ev;
	size_t n, i;
	int sliced, array;

	memset(out, 0, sizeof(*out));
	if ((r = load(&root, body, len)) != NB_NUDGESPOT_OK ||
	    (r = body_shape(root, &n)) != NB_NUDGESPOT_OK)
		goto out;
	r = NB_NUDGESPOT_NOMEM;
	if ((p.events = calloc(n, sizeof(*p.events))) == NULL)
		goto out;
	/*
	 * jansson lets a NUL byte through between some tokens; such a body
	 * is serialised again so that raw stays one C string.
	 */
	array = json_is_array(root);
	sliced = memchr(body, '\0', len) == NULL;
	if (sliced) {
		nb_jscan_init(&s, body, len, NB_JSCAN_TRUSTED);
		nb_jscan_ws(&s);
		sliced = !array || nb_jscan_open(&s, &it, NULL, 1) == 0;
	}
	for (i = 0; i < n; i++) {
		struct nb_event *e = &p.events[i];

		ev = array ? json_array_get(root, i) : root;
		p.nevents = i + 1;
		sliced = sliced && slice_next(&s, &it, array, &t) == 0;
		if (sliced) {
			if (keep_text(e, &t) == -1)
				goto out;
		} else {
			if ((e->raw = json_dumps(ev, DUMP_FLAGS)) == NULL)
				goto out;
			e->rawlen = strlen(e->raw);
		}
		tree_view(&view, ev);
		if (keep_event(e, &view) == -1)
			goto out;
	}
	*out = p;
	p.events = NULL;
	p.nevents = 0;
	r = NB_NUDGESPOT_OK;
out:
	nb_nudgespot_clear(&p);
	json_decref(root);
	return r;
}

/*
 * The direct path.  Through jansson a ~600-byte event cost 130,000 to
 * 145,000 instructions (the tree, an allocation per value, then freeing it
 * all); this path about 10,000.  It reads the body once with jscan's
 * default options (jansson's syntax, declining a backslash in any key,
 * numbers near jansson's limits and nesting deeper than
 * NB_JSCAN_DEPTH_MAX), fills the view of each event on the way from the
 * table's rows, then keeps the event's bytes as its text.  Nothing is
 * allocated but the events themselves.  It declines (returns -1, and the
 * jansson path decides) on anything where agreeing with jansson is not
 * certain:
 *
 *   - anything jansson refuses, or that is not an object or an array of
 *     1..NB_NUDGESPOT_MAX_EVENTS objects (the jansson path names the
 *     refusal), or that jscan declines (see jscan.h);
 *   - an escape in a string whose characters a rule reads (id, type,
 *     occurred_at, subscriber.uid and .email); escapes in other strings
 *     are checked as jansson checks them and kept as written;
 *   - a key the rules read appearing twice in one object (jansson keeps
 *     the last value);
 *   - out of memory.
 */

/* What a present member of a known row is, from its token. */
static int
d_view(struct view *v, const struct nb_schema_field *f,
    const struct nb_jscan_tok *t)
{
	switch (t->kind) {
	case NB_JSCAN_STRING:
		v->kind = VK_STRING;
		v->esc = t->flags & NB_JSCAN_ESCAPED;
		v->p = t->p;
		v->len = t->len;
		/* Decoding escapes in what the rules read is left to jansson.
		 */
		if (v->esc && nb_schema_reads_text(f))
			return -1;
		break;
	case NB_JSCAN_NULL:
		v->kind = VK_NULL;
		break;
	case NB_JSCAN_OBJECT:
		v->kind = VK_OBJECT;
		break;
	default:
		v->kind = VK_OTHER;
	}
	return 0;
}

/* A member of the event, or of one of its objects, that is a row. */
static int
d_member_cb(struct nb_jscan *s, int row, unsigned depth, void *arg)
{
	const struct nb_schema_field *f = &nb_schema_fields[row];
	struct eview *e = arg;
	struct nb_jscan_tok v;

	if (f->rule == NB_SCHEMA_OBJECT && nb_jscan_at(s, '{')) {
		e->f[row].kind = VK_OBJECT;
		return nb_schema_scan(s, row, depth, &e->seen, d_member_cb, e);
	}
	if (nb_jscan_value(s, &v, depth) == -1)
		return -1;
	return d_view(&e->f[row], f, &v);
}

/* The event object at s->p into *out (zeroed by the caller). */
static int
d_event(struct nb_jscan *s, struct nb_event *out, unsigned depth)
{
	struct nb_jscan_tok t;
	struct eview ev;
	const char *start = s->p;
	size_t nws = s->nws;

	eview_clear(&ev);
	if (nb_schema_scan(s, -1, depth, &ev.seen, d_member_cb, &ev) == -1)
		return -1;
	t.p = start;
	t.len = (size_t)(s->p - start);
	t.flags = s->nws == nws ? NB_JSCAN_COMPACT : 0;
	if (keep_text(out, &t) == -1)
		return -1;
	return keep_event(out, &ev);
}

/* The events of the array at s->p, into the buffer evs. */
static int
d_array(struct nb_jscan *s, struct nb_buf *evs)
{
	struct nb_jscan_iter it;
	struct nb_event e;
	size_t n = 0;
	int r;

	if (nb_jscan_open(s, &it, NULL, 1) == -1)
		return -1;
	while ((r = nb_jscan_next(s, &it, NULL)) == 1) {
		if (n == NB_NUDGESPOT_MAX_EVENTS || !nb_jscan_at(s, '{'))
			return -1;
		memset(&e, 0, sizeof(e));
		if (d_event(s, &e, 2) == -1 ||
		    nb_buf_add(evs, &e, sizeof(e)) == -1) {
			event_clear(&e);
			return -1;
		}
		n++;
	}
	return r == 0 && n > 0 ? 0 : -1;
}

/* Frees the events a buffer holds (whole ones: an add is all or nothing). */
static void
events_free(struct nb_buf *evs)
{
	struct nb_event *e = (struct nb_event *)(void *)evs->ptr;
	size_t i;

	for (i = 0; i < evs->len / sizeof(*e); i++)
		event_clear(&e[i]);
	nb_buf_free(evs);
}

int
nb_nudgespot_parse_direct(struct nb_payload *out, const char *body, size_t len)
{
	struct nb_buf evs;
	struct nb_jscan s;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (body == NULL)
		return -1;
	nb_buf_init(&evs, NB_NUDGESPOT_MAX_EVENTS * sizeof(struct nb_event));
	nb_jscan_init(&s, body, len, 0);
	nb_jscan_ws(&s);
	if (nb_jscan_at(&s, '{')) {
		struct nb_event e = {0};

		if (d_event(&s, &e, 1) == -1 ||
		    nb_buf_add(&evs, &e, sizeof(e)) == -1) {
			event_clear(&e);
			goto out;
		}
	} else if (!nb_jscan_at(&s, '[') || d_array(&s, &evs) == -1) {
		goto out;
	}
	nb_jscan_ws(&s);
	if (s.p != s.end)
		goto out;
	/* At least one event: the buffer is not empty, stealing cannot fail. */
	out->nevents = evs.len / sizeof(struct nb_event);
	out->events = (struct nb_event *)(void *)nb_buf_steal(&evs, NULL);
	rc = 0;
out:
	events_free(&evs);
	return rc;
}

enum nb_nudgespot_result
nb_nudgespot_parse(struct nb_payload *out, const char *body, size_t len)
{
	if (nb_nudgespot_parse_direct(out, body, len) == 0)
		return NB_NUDGESPOT_OK;
	return nb_nudgespot_parse_tree(out, body, len);
}

const char *
nb_nudgespot_result_str(enum nb_nudgespot_result r)
{
	switch (r) {
	case NB_NUDGESPOT_OK:
		return "ok";
	case NB_NUDGESPOT_INVALID_JSON:
		return "invalid_json";
	case NB_NUDGESPOT_INVALID_PAYLOAD:
		return "invalid_payload";
	case NB_NUDGESPOT_NOMEM:
		return "nomem";
	}
	return "invalid_payload";
}

const char *
nb_nudgespot_revalidate(const char *raw, size_t len, char **id, char **type)
{
	struct eview view;
	json_t *root = NULL;
	char *i = NULL, *t = NULL;
	const char *err;

	if (id != NULL)
		*id = NULL;
	if (type != NULL)
		*type = NULL;
	switch (load(&root, raw, len)) {
	case NB_NUDGESPOT_OK:
		break;
	case NB_NUDGESPOT_NOMEM:
		err = "event: out of memory";
		goto out;
	default:
		err = "event: not valid JSON";
		goto out;
	}
	if ((err = nb_nudgespot_validate(root)) != NULL)
		goto out;
	tree_view(&view, root);
	if (keep_names(&view, &i, &t) == -1) {
		err = "event: out of memory";
		goto out;
	}
	if (id != NULL) {
		*id = i;
		i = NULL;
	}
	if (type != NULL) {
		*type = t;
		t = NULL;
	}
out:
	free(i);
	free(t);
	json_decref(root);
	return err;
}
