/* SPDX-License-Identifier: ISC */
/*
 * nudgespot: the inbound payload, parsed and validated.
 *
 * Two levels of refusal.  The body as a whole is refused (400) only when it
 * is not JSON or not an object / array of 1..NB_NUDGESPOT_MAX_EVENTS
 * objects; jansson's refusals (invalid UTF-8, nesting past its limit,
 * integers beyond 64 bits, NUL in keys) all count as "not JSON".  "\u0000"
 * in string values is allowed so that such an event is quarantined by the
 * per-event rules rather than refused.  Each event carries the first rule
 * it broke as a static string (listed in nudgespot.h); unknown keys are
 * never looked at and null is absent.  The store keeps each event's text
 * as received (the byte range of the object in the body, so UTF-8, escapes,
 * key order and whitespace inside it are kept): a replay re-validates exactly
 * what was received, and no event is serialised again on the request path,
 * which was most of its cost.  A body holding a NUL byte (jansson accepts one
 * between some tokens), or one where slicing disagrees with jansson's elements,
 * falls back to the compact json_dumps() text (NUL escaped).  Pure functions,
 * any thread.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nudgebridge/nudgespot.h"
#include "nudgebridge/timeutil.h"

#define PARSE_FLAGS (JSON_ALLOW_NUL | JSON_DECODE_ANY)
#define DUMP_FLAGS  (JSON_COMPACT)

/* A known optional object and its string leaves, with their errors. */
struct leaf {
	const char *key;
	const char *not_string;
};

struct section {
	const char *key;
	const char *not_object;
	const struct leaf *leaves;
};

static const struct leaf message_leaves[] = {
    {"id", "message.id: must be a string"},
    {"subject", "message.subject: must be a string"},
    {"campaign_id", "message.campaign_id: must be a string"},
    {"campaign_name", "message.campaign_name: must be a string"},
    {NULL, NULL},
};

static const struct leaf link_leaves[] = {
    {"id", "link.id: must be a string"},
    {"url", "link.url: must be a string"},
    {NULL, NULL},
};

static const struct leaf bounce_leaves[] = {
    {"type", "bounce.type: must be a string"},
    {"reason", "bounce.reason: must be a string"},
    {NULL, NULL},
};

static const struct leaf list_leaves[] = {
    {"id", "list.id: must be a string"},
    {"name", "list.name: must be a string"},
    {NULL, NULL},
};

static const struct leaf client_leaves[] = {
    {"ip", "client.ip: must be a string"},
    {"user_agent", "client.user_agent: must be a string"},
    {NULL, NULL},
};

static const struct section sections[] = {
    {"message", "message: must be an object", message_leaves},
    {"link", "link: must be an object", link_leaves},
    {"bounce", "bounce: must be an object", bounce_leaves},
    {"list", "list: must be an object", list_leaves},
    {"client", "client: must be an object", client_leaves},
    {NULL, NULL, NULL},
};

/* A member that is absent or JSON null is absent. */
static json_t *
member(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_null(v) ? NULL : v;
}

static int
is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* 1..NB_EVENT_ID_MAX bytes, each 0x21..0x7E. */
static int
id_ok(const json_t *v)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v), i;

	if (len < 1 || len > NB_EVENT_ID_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/*
 * Counts the characters of a valid UTF-8 string (jansson guarantees it)
 * up to max + 1; 0 if any is a control character.
 */
static size_t
text_chars(const json_t *v, size_t max)
{
	const unsigned char *s = (const unsigned char *)json_string_value(v);
	size_t len = json_string_length(v), i, n = 0;

	for (i = 0; i < len && n <= max; i++) {
		if (is_control(s[i]))
			return 0;
		/* Continuation bytes do not start a character. */
		if ((s[i] & 0xc0) != 0x80)
			n++;
	}
	return n;
}

static const char *
validate_subscriber(const json_t *sub)
{
	const json_t *uid, *email;

	if (sub == NULL)
		return "subscriber: missing";
	if (!json_is_object(sub))
		return "subscriber: must be an object";
	uid = member(sub, "uid");
	email = member(sub, "email");
	if (uid != NULL) {
		if (!json_is_string(uid))
			return "subscriber.uid: must be a string";
		if (text_chars(uid, SIZE_MAX - 1) == 0)
			return "subscriber.uid: must be non-empty without "
			       "control characters";
	}
	if (email != NULL) {
		if (!json_is_string(email))
			return "subscriber.email: must be a string";
		if (text_chars(email, SIZE_MAX - 1) == 0)
			return "subscriber.email: must be non-empty without "
			       "control characters";
	}
	if (uid == NULL && email == NULL)
		return "subscriber: needs uid or email";
	return NULL;
}

static const char *
validate_section(const json_t *ev, const struct section *sec)
{
	const struct leaf *l;
	const json_t *obj, *v;

	if ((obj = member(ev, sec->key)) == NULL)
		return NULL;
	if (!json_is_object(obj))
		return sec->not_object;
	for (l = sec->leaves; l->key != NULL; l++) {
		v = member(obj, l->key);
		if (v != NULL && !json_is_string(v))
			return l->not_string;
	}
	return NULL;
}

const char *
nb_nudgespot_validate(const json_t *ev)
{
	const struct section *sec;
	const json_t *v;
	const char *err;
	size_t n;
	int64_t ms;

	if (!json_is_object(ev))
		return "event: must be an object";

	if ((v = member(ev, "id")) == NULL)
		return "id: missing";
	if (!json_is_string(v))
		return "id: must be a string";
	if (!id_ok(v))
		return "id: must be 1..128 printable ASCII characters";

	if ((v = member(ev, "type")) == NULL)
		return "type: missing";
	if (!json_is_string(v))
		return "type: must be a string";
	n = text_chars(v, NB_EVENT_TYPE_MAX);
	if (n < 1 || n > NB_EVENT_TYPE_MAX)
		return "type: must be 1..64 characters without control "
		       "characters";

	if ((v = member(ev, "occurred_at")) == NULL)
		return "occurred_at: missing";
	if (!json_is_string(v))
		return "occurred_at: must be a string";
	if (nb_time_parse_rfc3339(
		json_string_value(v), json_string_length(v), &ms) == -1)
		return "occurred_at: not an RFC 3339 date-time";

	if ((err = validate_subscriber(member(ev, "subscriber"))) != NULL)
		return err;

	for (sec = sections; sec->key != NULL; sec++)
		if ((err = validate_section(ev, sec)) != NULL)
			return err;

	if ((v = member(ev, "properties")) != NULL && !json_is_object(v))
		return "properties: must be an object";
	return NULL;
}

/* The id and type of an event when they follow their own rules. */
static int
fill_names(const json_t *ev, char **id, char **type)
{
	const json_t *v;
	size_t n;

	*id = NULL;
	*type = NULL;
	v = member(ev, "id");
	if (json_is_string(v) && id_ok(v) &&
	    (*id = strdup(json_string_value(v))) == NULL)
		return -1;
	v = member(ev, "type");
	if (json_is_string(v)) {
		n = text_chars(v, NB_EVENT_TYPE_MAX);
		if (n >= 1 && n <= NB_EVENT_TYPE_MAX &&
		    (*type = strdup(json_string_value(v))) == NULL)
			return -1;
	}
	return 0;
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
nb_payload_clear(struct nb_payload *p)
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

static enum nb_payload_result
load(json_t **root, const char *body, size_t len)
{
	json_error_t err;

	if (body == NULL)
		body = "";
	if ((*root = json_loadb(body, len, PARSE_FLAGS, &err)) == NULL)
		return json_error_code(&err) == json_error_out_of_memory
		    ? NB_PAYLOAD_NOMEM
		    : NB_PAYLOAD_INVALID_JSON;
	return NB_PAYLOAD_OK;
}

/*
 * Slicing a body that jansson has already accepted.  The stored text of an
 * event is its bytes as received, compacted: the object of a single-event
 * body, or the byte range of each array element.  Only
 * JSON's structure matters here (strings, with their escapes, and nesting);
 * anything unexpected makes the caller fall back to json_dumps(), so these
 * return -1 rather than guess.
 */
static int
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
trim(const char *b, size_t len, size_t *start, size_t *end)
{
	size_t s = 0, e = len;

	while (s < e && is_ws(b[s]))
		s++;
	while (e > s && is_ws(b[e - 1]))
		e--;
	if (e - s < 2 || b[s] != '{' || b[e - 1] != '}')
		return -1;
	*start = s;
	*end = e;
	return 0;
}

static int
skip_open(const char *b, size_t len, size_t *pos)
{
	size_t i = 0;

	while (i < len && is_ws(b[i]))
		i++;
	if (i == len || b[i] != '[')
		return -1;
	*pos = i + 1;
	return 0;
}

/* The next object of the array at *pos (after '[' or the previous one). */
static int
next_element(const char *b, size_t len, size_t *pos, size_t *start, size_t *end)
{
	size_t i = *pos, depth = 0;
	int in_str = 0;

	while (i < len && (is_ws(b[i]) || b[i] == ','))
		i++;
	if (i == len || b[i] != '{')
		return -1;
	*start = i;
	for (; i < len; i++) {
		char c = b[i];

		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"') {
			in_str = 1;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				return -1;
			if (--depth == 0) {
				*end = i + 1;
				*pos = i + 1;
				return 0;
			}
		}
	}
	return -1;
}

/*
 * Copies n bytes of valid JSON without the whitespace between tokens and
 * NUL-terminates; returns the length.  Strings are copied as they are.
 */
static size_t
copy_compact(char *out, const char *b, size_t n)
{
	size_t i, o = 0;
	int in_str = 0;

	for (i = 0; i < n; i++) {
		char c = b[i];

		if (in_str) {
			out[o++] = c;
			if (c == '\\' && i + 1 < n)
				out[o++] = b[++i];
			else if (c == '"')
				in_str = 0;
		} else if (!is_ws(c)) {
			out[o++] = c;
			in_str = c == '"';
		}
	}
	out[o] = '\0';
	return o;
}

enum nb_payload_result
nb_nudgespot_parse(struct nb_payload *out, const char *body, size_t len)
{
	struct nb_payload p = {NULL, 0};
	enum nb_payload_result r;
	json_t *root = NULL, *ev;
	size_t n, i, pos, start = 0, end = 0;
	int sliced;

	memset(out, 0, sizeof(*out));
	if ((r = load(&root, body, len)) != NB_PAYLOAD_OK)
		goto out;
	r = NB_PAYLOAD_INVALID_PAYLOAD;
	if (json_is_object(root)) {
		n = 1;
	} else if (json_is_array(root)) {
		n = json_array_size(root);
		if (n < 1 || n > NB_NUDGESPOT_MAX_EVENTS)
			goto out;
		for (i = 0; i < n; i++)
			if (!json_is_object(json_array_get(root, i)))
				goto out;
	} else {
		goto out;
	}

	r = NB_PAYLOAD_NOMEM;
	if ((p.events = calloc(n, sizeof(*p.events))) == NULL)
		goto out;
	/*
	 * jansson lets a NUL byte through between some tokens; such a body
	 * is serialised again so that raw stays one C string.
	 */
	pos = 0;
	sliced = memchr(body, '\0', len) == NULL &&
	    (json_is_object(root) || skip_open(body, len, &pos) == 0);
	for (i = 0; i < n; i++) {
		struct nb_event *e = &p.events[i];

		ev = json_is_array(root) ? json_array_get(root, i) : root;
		p.nevents = i + 1;
		if (sliced && json_is_object(root))
			sliced = trim(body, len, &start, &end) == 0;
		else if (sliced)
			sliced =
			    next_element(body, len, &pos, &start, &end) == 0;
		if (sliced) {
			if ((e->raw = malloc(end - start + 1)) == NULL)
				goto out;
			e->rawlen =
			    copy_compact(e->raw, body + start, end - start);
		} else {
			if ((e->raw = json_dumps(ev, DUMP_FLAGS)) == NULL)
				goto out;
			e->rawlen = strlen(e->raw);
		}
		if (fill_names(ev, &e->id, &e->type) == -1)
			goto out;
		e->error = nb_nudgespot_validate(ev);
	}
	*out = p;
	p.events = NULL;
	p.nevents = 0;
	r = NB_PAYLOAD_OK;
out:
	nb_payload_clear(&p);
	json_decref(root);
	return r;
}

const char *
nb_payload_result_str(enum nb_payload_result r)
{
	switch (r) {
	case NB_PAYLOAD_OK:
		return "ok";
	case NB_PAYLOAD_INVALID_JSON:
		return "invalid_json";
	case NB_PAYLOAD_INVALID_PAYLOAD:
		return "invalid_payload";
	case NB_PAYLOAD_NOMEM:
		return "nomem";
	}
	return "invalid_payload";
}

const char *
nb_nudgespot_revalidate(const char *raw, size_t len, char **id, char **type)
{
	json_t *root = NULL;
	char *i = NULL, *t = NULL;
	const char *err;

	if (id != NULL)
		*id = NULL;
	if (type != NULL)
		*type = NULL;
	switch (load(&root, raw, len)) {
	case NB_PAYLOAD_OK:
		break;
	case NB_PAYLOAD_NOMEM:
		err = "event: out of memory";
		goto out;
	default:
		err = "event: not valid JSON";
		goto out;
	}
	if ((err = nb_nudgespot_validate(root)) != NULL)
		goto out;
	if (fill_names(root, &i, &t) == -1) {
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
