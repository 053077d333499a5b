/* SPDX-License-Identifier: ISC */
/*
 * segment: a stored Nudgespot event becomes one Segment Track message.
 *
 * The input is the event text exactly as it was received and validated, so
 * the mapping is a pure function of (source settings, stored text): the
 * same event yields the same message, byte for byte, on every retry, replay
 * and instance.  Mapped values are taken over as the JSON values they were
 * (never re-encoded through C strings), absent, null and "" inputs give
 * absent keys, and free-form properties never overwrite mapped ones.  This
 * module does not batch, size-check or send; the deliverer does.  No global
 * state: any thread may call it.  nb_segment_track_text() is on the
 * drain's hot path, so it first tries a direct single-pass encoder (see
 * "The direct path" below) and falls back to the jansson path.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "nudgebridge/config.h"
#include "nudgebridge/segment.h"
#include "nudgebridge/timeutil.h"

#define EMAIL_MAX      1024 /* longer than any valid address; bounds the copy */
#define FAST_DEPTH_MAX 32   /* deeper input takes the jansson path */
#define FAST_KEYS_MAX  64   /* wider objects take the jansson path */
#define FAST_NAME_MAX  512  /* longest id or type the direct path copies */

/* Mapped properties: (property name, event object, key inside it). */
static const struct {
	const char *prop;
	const char *obj;
	const char *key;
} mapped[] = {
    {"email_id", "message", "id"},
    {"email_subject", "message", "subject"},
    {"campaign_id", "message", "campaign_id"},
    {"campaign_name", "message", "campaign_name"},
    {"link_id", "link", "id"},
    {"link_url", "link", "url"},
    {"bounce_type", "bounce", "type"},
    {"bounce_reason", "bounce", "reason"},
    {"list_id", "list", "id"},
    {"list_name", "list", "name"},
};

/* obj[key] when it is a non-empty string, else NULL (absent).  Borrowed. */
static json_t *
present(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_string(v) || json_string_length(v) == 0)
		return NULL;
	return v;
}

/* ev[obj][key], see present(). */
static json_t *
leaf(const json_t *ev, const char *obj, const char *key)
{
	return present(json_object_get(ev, obj), key);
}

/* Sets key to v (borrowed, a reference is taken) when v is not NULL. */
static int
set_opt(json_t *o, const char *key, json_t *v)
{
	if (v == NULL)
		return 0;
	return json_object_set(o, key, v);
}

static void
hex_sha256(const unsigned char *in, size_t len, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, in, len);
	sodium_bin2hex(out, 65, h, sizeof(h));
}

void
nb_segment_message_id(
    const char *source, const char *event_id, char out[NB_SEGMENT_MSGID_LEN])
{
	crypto_hash_sha256_state st;
	unsigned char h[crypto_hash_sha256_BYTES];
	const unsigned char nul = 0;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(
	    &st, (const unsigned char *)source, strlen(source));
	/* The separator keeps ("a", "bc") and ("ab", "c") apart. */
	crypto_hash_sha256_update(&st, &nul, 1);
	crypto_hash_sha256_update(
	    &st, (const unsigned char *)event_id, strlen(event_id));
	crypto_hash_sha256_final(&st, h);
	memcpy(out, "nb-", 3);
	sodium_bin2hex(out + 3, NB_SEGMENT_MSGID_LEN - 3, h, sizeof(h));
}

/* The anonymousId for an address: itself, or hex SHA-256 of it lowered. */
static json_t *
anonymous_id(const struct nb_source *src, json_t *email)
{
	char lower[EMAIL_MAX], hex[65];
	const char *s = json_string_value(email);
	size_t len = json_string_length(email), i;

	if (src->anon != NB_ANON_SHA256)
		return json_incref(email);
	if (len > sizeof(lower))
		return NULL;
	for (i = 0; i < len; i++) {
		lower[i] = s[i];
		if (s[i] >= 'A' && s[i] <= 'Z')
			lower[i] = (char)(s[i] - 'A' + 'a');
	}
	hex_sha256((const unsigned char *)lower, len, hex);
	return json_string(hex);
}

static json_t *
build_properties(const json_t *ev)
{
	json_t *props, *extra, *v;
	const char *k;
	size_t i;

	if ((props = json_object()) == NULL)
		return NULL;
	for (i = 0; i < sizeof(mapped) / sizeof(mapped[0]); i++) {
		v = leaf(ev, mapped[i].obj, mapped[i].key);
		if (set_opt(props, mapped[i].prop, v) == -1)
			goto fail;
	}
	extra = json_object_get(ev, "properties");
	if (json_is_object(extra)) {
		json_object_foreach(extra, k, v)
		{
			if (json_object_get(props, k) != NULL)
				continue;
			if (json_object_set(props, k, v) == -1)
				goto fail;
		}
	}
	return props;
fail:
	json_decref(props);
	return NULL;
}

static json_t *
build_context(const json_t *ev, json_t *email)
{
	json_t *ctx = NULL, *traits = NULL;

	ctx = json_pack("{s:{s:s,s:s},s:{s:s,s:s}}", "integration", "name",
	    NB_SEGMENT_INTEGRATION_NAME, "version",
	    NB_SEGMENT_INTEGRATION_VERSION, "library", "name",
	    NB_SEGMENT_LIBRARY_NAME, "version", NB_VERSION);
	if (ctx == NULL)
		return NULL;
	if (email != NULL) {
		if ((traits = json_object()) == NULL ||
		    json_object_set(traits, "email", email) == -1 ||
		    json_object_set_new(ctx, "traits", traits) == -1) {
			json_decref(traits);
			goto fail;
		}
	}
	if (set_opt(ctx, "ip", leaf(ev, "client", "ip")) == -1 ||
	    set_opt(ctx, "userAgent", leaf(ev, "client", "user_agent")) == -1)
		goto fail;
	return ctx;
fail:
	json_decref(ctx);
	return NULL;
}

json_t *
nb_segment_track(const struct nb_source *src, const char *raw, size_t rawlen,
    const char **err)
{
	char msgid[NB_SEGMENT_MSGID_LEN], ts[NB_TIME_ISO_LEN];
	json_t *ev = NULL, *msg = NULL, *out = NULL, *part;
	json_t *id, *type, *at, *uid, *email;
	const char *why = "out of memory";
	int64_t ms;

	/* JSON_ALLOW_NUL: whatever was stored must map, "\u0000" included. */
	ev = json_loadb(raw, rawlen, JSON_ALLOW_NUL, NULL);
	if (!json_is_object(ev)) {
		why = "not a JSON object";
		goto out;
	}
	id = present(ev, "id");
	type = present(ev, "type");
	at = present(ev, "occurred_at");
	uid = leaf(ev, "subscriber", "uid");
	email = leaf(ev, "subscriber", "email");
	if (id == NULL ||
	    strlen(json_string_value(id)) != json_string_length(id)) {
		why = "missing or invalid id";
		goto out;
	}
	if (type == NULL ||
	    strlen(json_string_value(type)) != json_string_length(type)) {
		why = "missing or invalid type";
		goto out;
	}
	if (at == NULL ||
	    nb_time_parse_rfc3339(
		json_string_value(at), json_string_length(at), &ms) == -1) {
		why = "missing or invalid occurred_at";
		goto out;
	}
	if (uid == NULL && email == NULL) {
		why = "neither subscriber.uid nor subscriber.email";
		goto out;
	}
	nb_segment_message_id(src->name, json_string_value(id), msgid);
	nb_time_format_iso(ms, ts);

	if ((msg = json_object()) == NULL)
		goto out;
	if (json_object_set_new(msg, "type", json_string("track")) == -1 ||
	    json_object_set_new(msg, "event",
		json_string(
		    nb_config_event_name(src, json_string_value(type)))) == -1)
		goto out;
	if (uid != NULL) {
		if (json_object_set(msg, "userId", uid) == -1)
			goto out;
	} else {
		if ((part = anonymous_id(src, email)) == NULL) {
			why = "subscriber.email too long";
			goto out;
		}
		if (json_object_set_new(msg, "anonymousId", part) == -1)
			goto out;
	}
	if (json_object_set_new(msg, "messageId", json_string(msgid)) == -1 ||
	    json_object_set_new(msg, "timestamp", json_string(ts)) == -1)
		goto out;
	if ((part = build_properties(ev)) == NULL ||
	    json_object_set_new(msg, "properties", part) == -1)
		goto out;
	if ((part = build_context(ev, email)) == NULL ||
	    json_object_set_new(msg, "context", part) == -1)
		goto out;
	if (json_object_set_new(
		msg, "integrations", json_pack("{s:b}", "Nudgespot", 0)) == -1)
		goto out;
	out = msg;
	msg = NULL;
out:
	if (out == NULL && err != NULL)
		*err = why;
	json_decref(msg);
	json_decref(ev);
	return out;
}

/*
 * The direct path.  Through jansson (parse, build, dump, free) a Track
 * message cost about 230,000 instructions per event, four fifths of the
 * deliverer's work.  This path reads the stored text once and writes the
 * message as it goes, and declines anything it does not handle exactly:
 * string escapes, reals, "-0", duplicate keys, invalid input (the jansson
 * path then names the error), very deep or wide objects.  Whatever it
 * accepts, it writes byte for byte what json_dumps(JSON_COMPACT) writes for
 * the object nb_segment_track() builds: members in insertion order,
 * strings escaped as jansson escapes them (\" \\ \b \f \n \r \t, other
 * controls as \u00XX), integers as %lld.  test_segment.c holds it to that
 * over the fuzz corpora.
 *
 * A value is a span of the input: for a string its bytes between the
 * quotes (no escapes, valid UTF-8, so they are also its JSON text), for
 * anything else its JSON text.
 */
enum fkind { FK_NONE, FK_STRING, FK_INT, FK_LITERAL, FK_OBJECT, FK_ARRAY };

struct fval {
	enum fkind kind;
	const char *p;
	size_t len;
};

struct fparse {
	const char *p;
	const char *end;
};

struct obuf {
	char *b;
	size_t len;
	size_t cap;
	int failed;
};

static void
fp_ws(struct fparse *f)
{
	while (f->p < f->end &&
	    (*f->p == ' ' || *f->p == '\t' || *f->p == '\n' || *f->p == '\r'))
		f->p++;
}

/* Length of the UTF-8 sequence at p (jansson's rules), 0 when invalid. */
static size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
	uint32_t cp;
	size_t n, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] < 0xc2)
		return 0;
	if (p[0] < 0xe0) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] < 0xf0) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] < 0xf5) {
		n = 4;
		cp = p[0] & 0x07;
	} else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A string without escapes or controls.  -1 for anything else. */
static int
fp_string(struct fparse *f, struct fval *v)
{
	const unsigned char *p, *end = (const unsigned char *)f->end;
	size_t n;

	if (f->p >= f->end || *f->p != '"')
		return -1;
	p = (const unsigned char *)f->p + 1;
	v->p = (const char *)p;
	for (;;) {
		while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' &&
		    *p != '\\')
			p++;
		if (p >= end || *p == '\\' || *p < 0x20)
			return -1;
		if (*p == '"')
			break;
		if ((n = utf8_len(p, end)) == 0)
			return -1;
		p += n;
	}
	v->kind = FK_STRING;
	v->len = (size_t)((const char *)p - v->p);
	f->p = (const char *)p + 1;
	return 0;
}

/*
 * An integer that jansson prints back as written: no fraction, exponent or
 * "-0", and inside long long.  -1 for anything else (reals included).
 */
static int
fp_int(struct fparse *f, struct fval *v)
{
	const char *p = f->p, *digits;
	unsigned long long acc = 0, lim;
	int neg = 0;

	v->p = p;
	if (p < f->end && *p == '-') {
		neg = 1;
		p++;
	}
	digits = p;
	if (p >= f->end || *p < '0' || *p > '9')
		return -1;
	if (*p == '0' &&
	    (neg || (p + 1 < f->end && p[1] >= '0' && p[1] <= '9')))
		return -1;
	lim = neg ? (unsigned long long)INT64_MAX + 1 : INT64_MAX;
	while (p < f->end && *p >= '0' && *p <= '9') {
		if (acc > (lim - (unsigned long long)(*p - '0')) / 10)
			return -1;
		acc = acc * 10 + (unsigned long long)(*p - '0');
		p++;
	}
	if (p < f->end && (*p == '.' || *p == 'e' || *p == 'E'))
		return -1;
	if (p == digits)
		return -1;
	v->kind = FK_INT;
	v->len = (size_t)(p - v->p);
	f->p = p;
	return 0;
}

static int
fp_literal(struct fparse *f, struct fval *v, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(f->end - f->p) < n || memcmp(f->p, word, n) != 0)
		return -1;
	v->kind = FK_LITERAL;
	v->p = f->p;
	v->len = n;
	f->p += n;
	return 0;
}

static int fp_value(struct fparse *, struct fval *, int depth);

/*
 * An object or array.  With cb, calls cb(arg, key, value) for each member
 * of an object; -1 from cb stops with -1.  Duplicate keys give -1.
 */
typedef int (*fmember_cb)(
    void *arg, const struct fval *k, const struct fval *v);

static int
fp_container(
    struct fparse *f, struct fval *v, int depth, fmember_cb cb, void *arg)
{
	struct fval keys[FAST_KEYS_MAX], k, m;
	char close;
	size_t nkeys = 0, i;
	int obj;

	if (depth > FAST_DEPTH_MAX || f->p >= f->end)
		return -1;
	obj = *f->p == '{';
	close = obj ? '}' : ']';
	v->p = f->p++;
	fp_ws(f);
	if (f->p < f->end && *f->p == close)
		goto done;
	for (;;) {
		if (obj) {
			if (fp_string(f, &k) == -1 || nkeys == FAST_KEYS_MAX)
				return -1;
			for (i = 0; i < nkeys; i++)
				if (keys[i].len == k.len &&
				    memcmp(keys[i].p, k.p, k.len) == 0)
					return -1;
			keys[nkeys++] = k;
			fp_ws(f);
			if (f->p >= f->end || *f->p != ':')
				return -1;
			f->p++;
			fp_ws(f);
		}
		if (fp_value(f, &m, depth + 1) == -1)
			return -1;
		if (obj && cb != NULL && cb(arg, &k, &m) == -1)
			return -1;
		fp_ws(f);
		if (f->p < f->end && *f->p == ',') {
			f->p++;
			fp_ws(f);
			continue;
		}
		if (f->p < f->end && *f->p == close)
			break;
		return -1;
	}
done:
	f->p++;
	v->kind = obj ? FK_OBJECT : FK_ARRAY;
	v->len = (size_t)(f->p - v->p);
	return 0;
}

static int
fp_value(struct fparse *f, struct fval *v, int depth)
{
	if (f->p >= f->end)
		return -1;
	switch (*f->p) {
	case '"':
		return fp_string(f, v);
	case '{':
	case '[':
		return fp_container(f, v, depth, NULL, NULL);
	case 't':
		return fp_literal(f, v, "true");
	case 'f':
		return fp_literal(f, v, "false");
	case 'n':
		return fp_literal(f, v, "null");
	default:
		return fp_int(f, v);
	}
}

/* Calls cb for each member of the (already checked) object v. */
static int
fobj_each(const struct fval *v, fmember_cb cb, void *arg)
{
	struct fparse f = {v->p, v->p + v->len};
	struct fval w;

	return fp_container(&f, &w, 0, cb, arg);
}

struct fget {
	const char *const *keys;
	struct fval *outs;
	size_t n;
};

static int
fget_cb(void *arg, const struct fval *k, const struct fval *v)
{
	struct fget *g = arg;
	size_t i;

	for (i = 0; i < g->n; i++) {
		if (strncmp(k->p, g->keys[i], k->len) == 0 &&
		    g->keys[i][k->len] == '\0') {
			/* present(): a non-empty string, else absent. */
			if (v->kind == FK_STRING && v->len > 0)
				g->outs[i] = *v;
			break;
		}
	}
	return 0;
}

/*
 * present(obj, keys[i]) into outs[i] for n keys, in one pass over obj:
 * outs[i].kind is FK_NONE unless the member is a non-empty string.
 */
static void
fpresent(const struct fval *obj, const char *const *keys, struct fval *outs,
    size_t n)
{
	struct fget g = {keys, outs, n};
	size_t i;

	for (i = 0; i < n; i++)
		outs[i].kind = FK_NONE;
	if (obj->kind == FK_OBJECT && fobj_each(obj, fget_cb, &g) == -1)
		for (i = 0; i < n; i++)
			outs[i].kind = FK_NONE;
}

static void
ob_put(struct obuf *o, const void *p, size_t n)
{
	size_t ncap;
	char *nb;

	if (o->failed)
		return;
	if (o->cap - o->len < n + 1) {
		ncap = o->cap == 0 ? 1024 : o->cap;
		while (ncap - o->len < n + 1)
			ncap *= 2;
		if ((nb = realloc(o->b, ncap)) == NULL) {
			o->failed = 1;
			return;
		}
		o->b = nb;
		o->cap = ncap;
	}
	memcpy(o->b + o->len, p, n);
	o->len += n;
}

#define OB_LIT(o, lit) ob_put((o), (lit), sizeof(lit) - 1)

/* A checked input string, quoted: its bytes are already its JSON text. */
static void
ob_span(struct obuf *o, const struct fval *v)
{
	ob_put(o, "\"", 1);
	ob_put(o, v->p, v->len);
	ob_put(o, "\"", 1);
}

/* Any C string, quoted and escaped as jansson does; -1 if not UTF-8. */
static int
ob_cstr(struct obuf *o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + strlen(s);
	char esc[6];
	size_t n;

	ob_put(o, "\"", 1);
	while (p < end) {
		if (*p >= 0x80) {
			if ((n = utf8_len(p, end)) == 0)
				return -1;
			ob_put(o, p, n);
			p += n;
			continue;
		}
		switch (*p) {
		case '"':
			OB_LIT(o, "\\\"");
			break;
		case '\\':
			OB_LIT(o, "\\\\");
			break;
		case '\b':
			OB_LIT(o, "\\b");
			break;
		case '\f':
			OB_LIT(o, "\\f");
			break;
		case '\n':
			OB_LIT(o, "\\n");
			break;
		case '\r':
			OB_LIT(o, "\\r");
			break;
		case '\t':
			OB_LIT(o, "\\t");
			break;
		default:
			if (*p < 0x20) {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[*p >> 4];
				esc[5] = hex[*p & 0xf];
				ob_put(o, esc, 6);
			} else
				ob_put(o, p, 1);
		}
		p++;
	}
	ob_put(o, "\"", 1);
	return 0;
}

static int ob_value(struct obuf *o, const struct fval *v);

static int
ob_member_cb(void *arg, const struct fval *k, const struct fval *v)
{
	struct obuf *o = arg;

	if (o->b[o->len - 1] != '{')
		ob_put(o, ",", 1);
	ob_span(o, k);
	ob_put(o, ":", 1);
	return ob_value(o, v);
}

/* A checked value, written compact. */
static int
ob_value(struct obuf *o, const struct fval *v)
{
	struct fparse f;
	struct fval m;
	int first = 1;

	switch (v->kind) {
	case FK_STRING:
		ob_span(o, v);
		return 0;
	case FK_INT:
	case FK_LITERAL:
		ob_put(o, v->p, v->len);
		return 0;
	case FK_OBJECT:
		ob_put(o, "{", 1);
		if (o->failed || fobj_each(v, ob_member_cb, o) == -1)
			return -1;
		ob_put(o, "}", 1);
		return 0;
	case FK_ARRAY:
		ob_put(o, "[", 1);
		f.p = v->p + 1;
		f.end = v->p + v->len - 1;
		for (;;) {
			fp_ws(&f);
			if (f.p >= f.end)
				break;
			if (!first)
				ob_put(o, ",", 1);
			first = 0;
			if (fp_value(&f, &m, 1) == -1 || ob_value(o, &m) == -1)
				return -1;
			fp_ws(&f);
			if (f.p < f.end && *f.p == ',')
				f.p++;
		}
		ob_put(o, "]", 1);
		return 0;
	default:
		return -1;
	}
}

/* The top-level members the mapping reads. */
struct fevent {
	struct fval id, type, at, subscriber, message, link, bounce, list;
	struct fval client, properties;
};

static int
fevent_cb(void *arg, const struct fval *k, const struct fval *v)
{
	static const struct {
		const char *key;
		size_t off;
	} tops[] = {
	    {"id", offsetof(struct fevent, id)},
	    {"type", offsetof(struct fevent, type)},
	    {"occurred_at", offsetof(struct fevent, at)},
	    {"subscriber", offsetof(struct fevent, subscriber)},
	    {"message", offsetof(struct fevent, message)},
	    {"link", offsetof(struct fevent, link)},
	    {"bounce", offsetof(struct fevent, bounce)},
	    {"list", offsetof(struct fevent, list)},
	    {"client", offsetof(struct fevent, client)},
	    {"properties", offsetof(struct fevent, properties)},
	};
	struct fevent *e = arg;
	size_t i;

	for (i = 0; i < sizeof(tops) / sizeof(tops[0]); i++) {
		if (k->len == strlen(tops[i].key) &&
		    memcmp(k->p, tops[i].key, k->len) == 0) {
			memcpy((char *)e + tops[i].off, v, sizeof(*v));
			break;
		}
	}
	return 0;
}

#define NMAPPED (sizeof(mapped) / sizeof(mapped[0]))

/* The object of e that mapped[].obj names, NULL if fevent lacks it. */
static const struct fval *
fevent_obj(const struct fevent *e, const char *name)
{
	if (strcmp(name, "message") == 0)
		return &e->message;
	if (strcmp(name, "link") == 0)
		return &e->link;
	if (strcmp(name, "bounce") == 0)
		return &e->bounce;
	if (strcmp(name, "list") == 0)
		return &e->list;
	if (strcmp(name, "client") == 0)
		return &e->client;
	if (strcmp(name, "subscriber") == 0)
		return &e->subscriber;
	return NULL;
}

/* The mapped properties present in the event, in mapped[] order. */
struct fprops {
	struct obuf *o;
	struct fval vals[NMAPPED];
	int n; /* members written so far */
};

static int
fprops_extra_cb(void *arg, const struct fval *k, const struct fval *v)
{
	struct fprops *fp = arg;
	size_t i;

	for (i = 0; i < NMAPPED; i++)
		if (fp->vals[i].kind != FK_NONE &&
		    k->len == strlen(mapped[i].prop) &&
		    memcmp(k->p, mapped[i].prop, k->len) == 0)
			return 0; /* mapped properties win */
	if (fp->n++ > 0)
		ob_put(fp->o, ",", 1);
	ob_span(fp->o, k);
	ob_put(fp->o, ":", 1);
	return ob_value(fp->o, v);
}

static void
fcopy(char *dst, const struct fval *v)
{
	memcpy(dst, v->p, v->len);
	dst[v->len] = '\0';
}

int
nb_segment_track_text_direct(const struct nb_source *src, const char *raw,
    size_t rawlen, char **out, size_t *outlen)
{
	char id[FAST_NAME_MAX], type[FAST_NAME_MAX], lower[EMAIL_MAX];
	char msgid[NB_SEGMENT_MSGID_LEN], ts[NB_TIME_ISO_LEN], hex[65];
	struct fparse f = {raw, raw + rawlen};
	struct fevent e;
	static const char *const sub_keys[] = {"uid", "email"};
	static const char *const client_keys[] = {"ip", "user_agent"};
	const char *keys[NMAPPED];
	const struct fval *parent;
	struct fval top, who[2], client[2];
	struct fprops props;
	struct obuf o = {0};
	int64_t ms;
	size_t i, j;

	memset(&e, 0, sizeof(e));
	fp_ws(&f);
	if (f.p >= f.end || *f.p != '{' ||
	    fp_container(&f, &top, 0, fevent_cb, &e) == -1)
		return -1;
	fp_ws(&f);
	if (f.p != f.end)
		return -1;
	if (e.id.kind != FK_STRING || e.id.len == 0 || e.id.len >= sizeof(id) ||
	    e.type.kind != FK_STRING || e.type.len == 0 ||
	    e.type.len >= sizeof(type) || e.at.kind != FK_STRING ||
	    e.at.len == 0 || nb_time_parse_rfc3339(e.at.p, e.at.len, &ms) == -1)
		return -1;
	fpresent(&e.subscriber, sub_keys, who, 2);
	if (who[0].kind == FK_NONE &&
	    (who[1].kind == FK_NONE ||
		(src->anon == NB_ANON_SHA256 && who[1].len > sizeof(lower))))
		return -1;
	fcopy(id, &e.id);
	fcopy(type, &e.type);
	nb_segment_message_id(src->name, id, msgid);
	nb_time_format_iso(ms, ts);

	OB_LIT(&o, "{\"type\":\"track\",\"event\":");
	if (ob_cstr(&o, nb_config_event_name(src, type)) == -1)
		goto fail;
	if (who[0].kind != FK_NONE) {
		OB_LIT(&o, ",\"userId\":");
		ob_span(&o, &who[0]);
	} else {
		OB_LIT(&o, ",\"anonymousId\":");
		if (src->anon != NB_ANON_SHA256)
			ob_span(&o, &who[1]);
		else {
			for (i = 0; i < who[1].len; i++) {
				lower[i] = who[1].p[i];
				if (lower[i] >= 'A' && lower[i] <= 'Z')
					lower[i] = (char)(lower[i] - 'A' + 'a');
			}
			hex_sha256(
			    (const unsigned char *)lower, who[1].len, hex);
			ob_put(&o, "\"", 1);
			ob_put(&o, hex, 64);
			ob_put(&o, "\"", 1);
		}
	}
	OB_LIT(&o, ",\"messageId\":\"");
	ob_put(&o, msgid, strlen(msgid));
	OB_LIT(&o, "\",\"timestamp\":\"");
	ob_put(&o, ts, strlen(ts));
	OB_LIT(&o, "\",\"properties\":{");
	memset(&props, 0, sizeof(props));
	props.o = &o;
	/* One pass per run of mapped[] rows that read the same object. */
	for (i = 0; i < NMAPPED; i = j) {
		for (j = i;
		     j < NMAPPED && strcmp(mapped[j].obj, mapped[i].obj) == 0;
		     j++)
			keys[j - i] = mapped[j].key;
		if ((parent = fevent_obj(&e, mapped[i].obj)) == NULL)
			goto fail;
		fpresent(parent, keys, &props.vals[i], j - i);
	}
	for (i = 0; i < NMAPPED; i++) {
		if (props.vals[i].kind == FK_NONE)
			continue;
		if (props.n++ > 0)
			ob_put(&o, ",", 1);
		ob_put(&o, "\"", 1);
		ob_put(&o, mapped[i].prop, strlen(mapped[i].prop));
		OB_LIT(&o, "\":");
		ob_span(&o, &props.vals[i]);
	}
	if (e.properties.kind == FK_OBJECT &&
	    fobj_each(&e.properties, fprops_extra_cb, &props) == -1)
		goto fail;
	OB_LIT(&o, "},\"context\":{\"integration\":{\"name\":");
	if (ob_cstr(&o, NB_SEGMENT_INTEGRATION_NAME) == -1)
		goto fail;
	OB_LIT(&o, ",\"version\":");
	if (ob_cstr(&o, NB_SEGMENT_INTEGRATION_VERSION) == -1)
		goto fail;
	OB_LIT(&o, "},\"library\":{\"name\":");
	if (ob_cstr(&o, NB_SEGMENT_LIBRARY_NAME) == -1)
		goto fail;
	OB_LIT(&o, ",\"version\":");
	if (ob_cstr(&o, NB_VERSION) == -1)
		goto fail;
	OB_LIT(&o, "}");
	if (who[1].kind != FK_NONE) {
		OB_LIT(&o, ",\"traits\":{\"email\":");
		ob_span(&o, &who[1]);
		OB_LIT(&o, "}");
	}
	fpresent(&e.client, client_keys, client, 2);
	if (client[0].kind != FK_NONE) {
		OB_LIT(&o, ",\"ip\":");
		ob_span(&o, &client[0]);
	}
	if (client[1].kind != FK_NONE) {
		OB_LIT(&o, ",\"userAgent\":");
		ob_span(&o, &client[1]);
	}
	OB_LIT(&o, "},\"integrations\":{\"Nudgespot\":false}}");
	if (o.failed)
		goto fail;
	o.b[o.len] = '\0';
	*out = o.b;
	*outlen = o.len;
	return 0;
fail:
	free(o.b);
	return -1;
}

int
nb_segment_track_text(const struct nb_source *src, const char *raw,
    size_t rawlen, char **out, size_t *outlen, const char **err)
{
	json_t *msg;
	char *text;

	*out = NULL;
	*outlen = 0;
	if (nb_segment_track_text_direct(src, raw, rawlen, out, outlen) == 0)
		return 0;
	if ((msg = nb_segment_track(src, raw, rawlen, err)) == NULL)
		return -1;
	text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (text == NULL) {
		if (err != NULL)
			*err = "out of memory";
		return -1;
	}
	*out = text;
	*outlen = strlen(text);
	return 0;
}
