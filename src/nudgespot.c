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
 * what was received, and no event is serialised again on the request path.
 *
 * Two paths give that one result.  The direct path (see "The direct path"
 * below) reads the body once, checking its syntax as strictly as jansson,
 * and decides only the bodies it is certain about: valid JSON of the right
 * shape, without escapes in the strings the rules read, duplicates among
 * the keys they read, big numbers or deep nesting.  Everything else takes
 * the jansson path (parse the whole body, slice, validate the tree), which
 * names every refusal.  A body holding a NUL byte (jansson accepts one
 * between some tokens), or one where slicing disagrees with jansson's
 * elements, falls back there to the compact json_dumps() text (NUL
 * escaped).  Both paths fill one view of an event (struct eview) and check
 * it with one function, so the rules and their order exist once; the unit
 * and fuzz tests hold the two paths to identical results.  Pure functions,
 * any thread.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nudgebridge/nudgespot.h"
#include "nudgebridge/timeutil.h"
#include "nudgebridge/utf8.h"

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

#define NSECTIONS (sizeof(sections) / sizeof(sections[0]) - 1)
#define NLEAVES	  4 /* the most leaves of a section (message) */
_Static_assert(
    sizeof(message_leaves) / sizeof(message_leaves[0]) - 1 == NLEAVES,
    "NLEAVES");

/*
 * What the rules read of one event, filled by either path.  A member is
 * absent, null, a string (its bytes; for the direct path as written, so
 * only meaningful when esc is 0), an object or anything else.  Members the
 * rules read inside subscriber and the sections are only filled when their
 * parent is an object.
 */
enum vkind { VK_ABSENT, VK_NULL, VK_STRING, VK_OBJECT, VK_OTHER };

struct view {
	unsigned char kind; /* enum vkind */
	unsigned char esc;  /* direct path: the string holds escapes */
	const char *p;
	size_t len;
};

struct eview {
	struct view id, type, at, sub, props;
	struct view uid, email;
	struct view sec[NSECTIONS];
	struct view leaf[NSECTIONS][NLEAVES];
};

static int
absent(const struct view *v)
{
	return v->kind == VK_ABSENT || v->kind == VK_NULL;
}

static int
is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* 1..NB_EVENT_ID_MAX bytes, each 0x21..0x7E. */
static int
id_ok(const char *s, size_t len)
{
	size_t i;

	if (len < 1 || len > NB_EVENT_ID_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/*
 * Counts the characters of a valid UTF-8 string (both paths guarantee it)
 * up to max + 1; 0 if any is a control character.
 */
static size_t
text_chars(const char *str, size_t len, size_t max)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i, n = 0;

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
check_subscriber(const struct eview *e)
{
	if (absent(&e->sub))
		return "subscriber: missing";
	if (e->sub.kind != VK_OBJECT)
		return "subscriber: must be an object";
	if (!absent(&e->uid)) {
		if (e->uid.kind != VK_STRING)
			return "subscriber.uid: must be a string";
		if (text_chars(e->uid.p, e->uid.len, SIZE_MAX - 1) == 0)
			return "subscriber.uid: must be non-empty without "
			       "control characters";
	}
	if (!absent(&e->email)) {
		if (e->email.kind != VK_STRING)
			return "subscriber.email: must be a string";
		if (text_chars(e->email.p, e->email.len, SIZE_MAX - 1) == 0)
			return "subscriber.email: must be non-empty without "
			       "control characters";
	}
	if (absent(&e->uid) && absent(&e->email))
		return "subscriber: needs uid or email";
	return NULL;
}

/* The rules of nudgespot.h, in their order. */
static const char *
check_event(const struct eview *e)
{
	const struct leaf *l;
	const char *err;
	size_t i, j, n;
	int64_t ms;

	if (absent(&e->id))
		return "id: missing";
	if (e->id.kind != VK_STRING)
		return "id: must be a string";
	if (!id_ok(e->id.p, e->id.len))
		return "id: must be 1..128 printable ASCII characters";

	if (absent(&e->type))
		return "type: missing";
	if (e->type.kind != VK_STRING)
		return "type: must be a string";
	n = text_chars(e->type.p, e->type.len, NB_EVENT_TYPE_MAX);
	if (n < 1 || n > NB_EVENT_TYPE_MAX)
		return "type: must be 1..64 characters without control "
		       "characters";

	if (absent(&e->at))
		return "occurred_at: missing";
	if (e->at.kind != VK_STRING)
		return "occurred_at: must be a string";
	if (nb_time_parse_rfc3339(e->at.p, e->at.len, &ms) == -1)
		return "occurred_at: not an RFC 3339 date-time";

	if ((err = check_subscriber(e)) != NULL)
		return err;

	for (i = 0; i < NSECTIONS; i++) {
		if (absent(&e->sec[i]))
			continue;
		if (e->sec[i].kind != VK_OBJECT)
			return sections[i].not_object;
		for (j = 0, l = sections[i].leaves; l->key != NULL; j++, l++)
			if (!absent(&e->leaf[i][j]) &&
			    e->leaf[i][j].kind != VK_STRING)
				return l->not_string;
	}

	if (!absent(&e->props) && e->props.kind != VK_OBJECT)
		return "properties: must be an object";
	return NULL;
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

/*
 * The id and type of an event when they follow their own rules.  Neither
 * can then hold a NUL, so the copy is the C string jansson holds.
 */
static int
keep_names(const struct eview *e, char **id, char **type)
{
	size_t n;

	*id = NULL;
	*type = NULL;
	if (e->id.kind == VK_STRING && id_ok(e->id.p, e->id.len) &&
	    (*id = memdup_str(e->id.p, e->id.len)) == NULL)
		return -1;
	if (e->type.kind == VK_STRING) {
		n = text_chars(e->type.p, e->type.len, NB_EVENT_TYPE_MAX);
		if (n >= 1 && n <= NB_EVENT_TYPE_MAX &&
		    (*type = memdup_str(e->type.p, e->type.len)) == NULL)
			return -1;
	}
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
	const struct leaf *l;
	const json_t *o;
	size_t i, j;

	memset(e, 0, sizeof(*e));
	tree_val(&e->id, json_object_get(ev, "id"));
	tree_val(&e->type, json_object_get(ev, "type"));
	tree_val(&e->at, json_object_get(ev, "occurred_at"));
	tree_val(&e->sub, o = json_object_get(ev, "subscriber"));
	if (e->sub.kind == VK_OBJECT) {
		tree_val(&e->uid, json_object_get(o, "uid"));
		tree_val(&e->email, json_object_get(o, "email"));
	}
	for (i = 0; i < NSECTIONS; i++) {
		tree_val(&e->sec[i], o = json_object_get(ev, sections[i].key));
		if (e->sec[i].kind != VK_OBJECT)
			continue;
		for (j = 0, l = sections[i].leaves; l->key != NULL; j++, l++)
			tree_val(&e->leaf[i][j], json_object_get(o, l->key));
	}
	tree_val(&e->props, json_object_get(ev, "properties"));
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

static int
fill_names(const json_t *ev, char **id, char **type)
{
	struct eview e;

	tree_view(&e, ev);
	return keep_names(&e, id, type);
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
nb_nudgespot_parse_tree(struct nb_payload *out, const char *body, size_t len)
{
	struct nb_payload p = {NULL, 0};
	enum nb_payload_result r;
	struct eview view;
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
		tree_view(&view, ev);
		if (keep_names(&view, &e->id, &e->type) == -1)
			goto out;
		e->error = check_event(&view);
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

/*
 * The direct path.  Through jansson a ~600-byte event cost 130,000 to
 * 145,000 instructions (the tree, an allocation per value, then freeing it
 * all); this path takes about 12,000.  It reads the body once, checking its
 * syntax as jansson does with PARSE_FLAGS, fills the view of each event on
 * the way, then copies the event's bytes into its raw text (compacted by
 * copy_compact() when it held white space, as the jansson path does).
 * Nothing is allocated but the events themselves.  It declines
 * (returns -1, and the jansson path decides) on anything where agreeing
 * with jansson is not certain:
 *
 *   - anything jansson refuses, or that is not an object or an array of
 *     1..NB_NUDGESPOT_MAX_EVENTS objects (the jansson path names the
 *     refusal);
 *   - NUL or any byte below 0x20 outside white space, invalid UTF-8 (the
 *     same rules as jansson's utf8_check_full), non-ASCII outside strings;
 *   - a backslash in any key (a key could then spell a known one, or hold
 *     "\u0000", which jansson refuses), or in the strings the rules read
 *     (id, type, occurred_at, subscriber.uid and .email); escapes in other
 *     strings are checked as jansson checks them (\u followed by four hex
 *     digits, surrogates only as a high-low pair) and copied as written;
 *   - integers of more than DIRECT_INT_DIGITS digits (jansson refuses
 *     those beyond int64), reals whose integer part is longer or whose
 *     exponent exceeds DIRECT_EXP_MAX (jansson refuses overflow to
 *     infinity; these bounds keep every accepted real below 1e299);
 *   - nesting deeper than DIRECT_DEPTH_MAX (jansson stops at 2048);
 *   - a key the rules read appearing twice in one object (jansson keeps
 *     the last value);
 *   - out of memory.
 */
#define DIRECT_DEPTH_MAX  32
#define DIRECT_INT_DIGITS 18
#define DIRECT_EXP_MAX	  280

/* Which members of an object the rules read. */
enum shape { SH_OTHER, SH_EVENT, SH_SUBSCRIBER, SH_SECTION };

struct dparse {
	const unsigned char *p;
	const unsigned char *end;
	struct eview *ev; /* the event being read */
	int ws;		  /* white space was skipped inside it */
};

static inline void
d_ws(struct dparse *f)
{
	while (f->p < f->end &&
	    (*f->p == ' ' || *f->p == '\n' || *f->p == '\r' || *f->p == '\t')) {
		f->p++;
		f->ws = 1;
	}
}

/*
 * The bytes a string holds as they are: not a quote, backslash, control or
 * non-ASCII byte.
 */
/* clang-format off */
static const unsigned char plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};
/* clang-format on */

/* The value of four hex digits at p, -1 if they are not. */
static long
hex4(const unsigned char *p, const unsigned char *end)
{
	long v = 0;
	int i, d;

	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		if (p[i] >= '0' && p[i] <= '9')
			d = p[i] - '0';
		else if (p[i] >= 'a' && p[i] <= 'f')
			d = p[i] - 'a' + 10;
		else if (p[i] >= 'A' && p[i] <= 'F')
			d = p[i] - 'A' + 10;
		else
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* Length of the escape at p (a backslash), 0 when jansson refuses it. */
static size_t
d_escape(const unsigned char *p, const unsigned char *end)
{
	long u, lo;

	if (end - p < 2)
		return 0;
	switch (p[1]) {
	case '"':
	case '\\':
	case '/':
	case 'b':
	case 'f':
	case 'n':
	case 'r':
	case 't':
		return 2;
	case 'u':
		break;
	default:
		return 0;
	}
	if ((u = hex4(p + 2, end)) == -1 || (u >= 0xdc00 && u <= 0xdfff))
		return 0;
	if (u < 0xd800 || u > 0xdbff)
		return 6;
	/* A high surrogate counts only with a low one right after it. */
	if (end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
	    (lo = hex4(p + 8, end)) < 0xdc00 || lo > 0xdfff)
		return 0;
	return 12;
}

/* The string at f->p (a quote); v gets its bytes between the quotes. */
static int
d_string(struct dparse *f, struct view *v)
{
	const unsigned char *p = f->p + 1, *end = f->end;
	size_t n;

	v->esc = 0;
	v->p = (const char *)p;
	for (;;) {
		while (p < end && plain[*p])
			p++;
		if (p >= end || *p < 0x20)
			return -1;
		if (*p == '"')
			break;
		if (*p == '\\') {
			v->esc = 1;
			n = d_escape(p, end);
		} else {
			n = nb_utf8_len(p, end);
		}
		if (n == 0)
			return -1;
		p += n;
	}
	v->kind = VK_STRING;
	v->len = (size_t)((const char *)p - v->p);
	f->p = p + 1;
	return 0;
}

static int
is_digit(const unsigned char *p, const unsigned char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

/* A number jansson is certain to accept (see the bounds above). */
static int
d_number(struct dparse *f, struct view *v)
{
	const unsigned char *p = f->p, *end = f->end, *digits;
	int exp = 0;

	if (*p == '-')
		p++;
	digits = p;
	if (!is_digit(p, end))
		return -1;
	if (*p == '0') {
		if (is_digit(++p, end))
			return -1;
	} else {
		while (is_digit(p, end))
			p++;
	}
	if (p - digits > DIRECT_INT_DIGITS)
		return -1;
	if (p < end && *p == '.') {
		if (!is_digit(++p, end))
			return -1;
		while (is_digit(p, end))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(p, end))
			return -1;
		for (; is_digit(p, end); p++)
			if ((exp = exp * 10 + (*p - '0')) > DIRECT_EXP_MAX)
				return -1;
	}
	v->kind = VK_OTHER;
	f->p = p;
	return 0;
}

static int
d_word(struct dparse *f, struct view *v, const char *w, enum vkind kind)
{
	size_t n = strlen(w);

	if ((size_t)(f->end - f->p) < n || memcmp(f->p, w, n) != 0)
		return -1;
	v->kind = kind;
	f->p += n;
	return 0;
}

/* A key holds no NUL byte, so the loop stops at the end of name. */
static inline int
key_is(const struct view *k, const char *name)
{
	size_t i;

	for (i = 0; i < k->len; i++)
		if (k->p[i] != name[i])
			return 0;
	return name[i] == '\0';
}

/*
 * Where the member k of an object of the given shape goes in the view, and
 * the shape of its value; NULL when the rules do not read it.
 */
static struct view *
d_slot(struct eview *e, int shape, const struct view *k, int *kid)
{
	const struct leaf *l;
	size_t i, j;

	switch (shape) {
	case SH_EVENT:
		if (key_is(k, "id"))
			return &e->id;
		if (key_is(k, "type"))
			return &e->type;
		if (key_is(k, "occurred_at"))
			return &e->at;
		if (key_is(k, "subscriber")) {
			*kid = SH_SUBSCRIBER;
			return &e->sub;
		}
		if (key_is(k, "properties"))
			return &e->props;
		for (i = 0; i < NSECTIONS; i++) {
			if (key_is(k, sections[i].key)) {
				*kid = SH_SECTION + (int)i;
				return &e->sec[i];
			}
		}
		return NULL;
	case SH_SUBSCRIBER:
		if (key_is(k, "uid"))
			return &e->uid;
		if (key_is(k, "email"))
			return &e->email;
		return NULL;
	default:
		i = (size_t)(shape - SH_SECTION);
		for (j = 0, l = sections[i].leaves; l->key != NULL; j++, l++)
			if (key_is(k, l->key))
				return &e->leaf[i][j];
		return NULL;
	}
}

static int d_value(struct dparse *, struct view *, int depth, int shape);

/*
 * After a member or element: 1 past a ',' (another follows), 0 at close
 * (f->p left on it), -1 on anything else.
 */
static int
d_next(struct dparse *f, unsigned char close)
{
	d_ws(f);
	if (f->p < f->end && *f->p == ',') {
		f->p++;
		d_ws(f);
		return 1;
	}
	return f->p < f->end && *f->p == close ? 0 : -1;
}

static int
d_object(struct dparse *f, struct view *v, int depth, int shape)
{
	struct view k, skip, *slot;
	int kid, more;

	if (depth > DIRECT_DEPTH_MAX)
		return -1;
	f->p++;
	d_ws(f);
	if (f->p < f->end && *f->p == '}')
		goto done;
	for (;;) {
		if (f->p >= f->end || *f->p != '"' || d_string(f, &k) == -1 ||
		    k.esc)
			return -1;
		d_ws(f);
		if (f->p >= f->end || *f->p != ':')
			return -1;
		f->p++;
		d_ws(f);
		kid = SH_OTHER;
		slot =
		    shape == SH_OTHER ? NULL : d_slot(f->ev, shape, &k, &kid);
		if (slot == NULL)
			slot = &skip;
		else if (slot->kind != VK_ABSENT)
			return -1;
		if (d_value(f, slot, depth + 1, kid) == -1)
			return -1;
		if ((more = d_next(f, '}')) == -1)
			return -1;
		if (!more)
			break;
	}
done:
	f->p++;
	v->kind = VK_OBJECT;
	return 0;
}

static int
d_array(struct dparse *f, struct view *v, int depth)
{
	struct view skip;
	int more;

	if (depth > DIRECT_DEPTH_MAX)
		return -1;
	f->p++;
	d_ws(f);
	if (f->p < f->end && *f->p == ']')
		goto done;
	for (;;) {
		if (d_value(f, &skip, depth + 1, SH_OTHER) == -1)
			return -1;
		if ((more = d_next(f, ']')) == -1)
			return -1;
		if (!more)
			break;
	}
done:
	f->p++;
	v->kind = VK_OTHER;
	return 0;
}

/* One value at f->p; shape says what the rules read if it is an object. */
static int
d_value(struct dparse *f, struct view *v, int depth, int shape)
{
	if (f->p >= f->end)
		return -1;
	switch (*f->p) {
	case '"':
		return d_string(f, v);
	case '{':
		return d_object(f, v, depth, shape);
	case '[':
		return d_array(f, v, depth);
	case 't':
		return d_word(f, v, "true", VK_OTHER);
	case 'f':
		return d_word(f, v, "false", VK_OTHER);
	case 'n':
		return d_word(f, v, "null", VK_NULL);
	default:
		return d_number(f, v);
	}
}

/* The event object at f->p into *out (zeroed by the caller). */
static int
d_event(struct dparse *f, struct nb_event *out, int depth)
{
	const unsigned char *start = f->p;
	struct eview ev;
	struct view obj;
	size_t n;

	memset(&ev, 0, sizeof(ev));
	f->ev = &ev;
	f->ws = 0;
	if (d_object(f, &obj, depth, SH_EVENT) == -1)
		return -1;
	/* Decoding escapes in what the rules read is left to jansson. */
	if (ev.id.esc || ev.type.esc || ev.at.esc || ev.uid.esc || ev.email.esc)
		return -1;
	n = (size_t)(f->p - start);
	if ((out->raw = malloc(n + 1)) == NULL)
		return -1;
	if (f->ws) {
		out->rawlen = copy_compact(out->raw, (const char *)start, n);
	} else {
		memcpy(out->raw, start, n);
		out->raw[n] = '\0';
		out->rawlen = n;
	}
	if (keep_names(&ev, &out->id, &out->type) == -1)
		return -1;
	out->error = check_event(&ev);
	return 0;
}

int
nb_nudgespot_parse_direct(struct nb_payload *out, const char *body, size_t len)
{
	struct nb_payload p = {NULL, 0};
	struct nb_event *grown;
	struct dparse f;
	size_t cap = 0;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (body == NULL)
		return -1;
	f.p = (const unsigned char *)body;
	f.end = f.p + len;
	d_ws(&f);
	if (f.p < f.end && *f.p == '{') {
		if ((p.events = calloc(1, sizeof(*p.events))) == NULL)
			goto out;
		p.nevents = 1;
		if (d_event(&f, &p.events[0], 1) == -1)
			goto out;
	} else if (f.p < f.end && *f.p == '[') {
		f.p++;
		d_ws(&f);
		for (;;) {
			if (p.nevents == NB_NUDGESPOT_MAX_EVENTS ||
			    f.p >= f.end || *f.p != '{')
				goto out;
			if (p.nevents == cap) {
				cap = cap == 0 ? 16 : 2 * cap;
				grown = realloc(p.events, cap * sizeof(*grown));
				if (grown == NULL)
					goto out;
				p.events = grown;
			}
			memset(&p.events[p.nevents], 0, sizeof(*p.events));
			if (d_event(&f, &p.events[p.nevents++], 2) == -1)
				goto out;
			d_ws(&f);
			if (f.p < f.end && *f.p == ',') {
				f.p++;
				d_ws(&f);
				continue;
			}
			if (f.p < f.end && *f.p == ']') {
				f.p++;
				break;
			}
			goto out;
		}
	} else {
		goto out;
	}
	d_ws(&f);
	if (f.p != f.end)
		goto out;
	*out = p;
	p.events = NULL;
	p.nevents = 0;
	rc = 0;
out:
	nb_payload_clear(&p);
	return rc;
}

enum nb_payload_result
nb_nudgespot_parse(struct nb_payload *out, const char *body, size_t len)
{
	if (nb_nudgespot_parse_direct(out, body, len) == 0)
		return NB_PAYLOAD_OK;
	return nb_nudgespot_parse_tree(out, body, len);
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
