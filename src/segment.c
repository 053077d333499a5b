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
#include "nudgebridge/utf8.h"

#define EMAIL_MAX      1024 /* longer than any valid address; bounds the copy */
#define FAST_DEPTH_MAX 32   /* deeper input takes the jansson path */
#define FAST_KEYS_MAX  64   /* wider objects take the jansson path */
#define FAST_NAME_MAX  512  /* longest id or type the direct path copies */
/* source NUL event id hashed in one call when it fits; else streamed. */
#define MSGID_INPUT_MAX (NB_SOURCE_NAME_MAX + 1 + FAST_NAME_MAX)

/*
 * The second-level strings the mapping reads.  The first NMAPPED rows are
 * the mapped properties, in the order they are sent; the rows of one
 * object are adjacent, and objs[] below says which rows each object holds.
 */
enum fobj { O_MESSAGE, O_LINK, O_BOUNCE, O_LIST, O_SUBSCRIBER, O_CLIENT };

enum fleaf {
	L_EMAIL_ID,
	L_EMAIL_SUBJECT,
	L_CAMPAIGN_ID,
	L_CAMPAIGN_NAME,
	L_LINK_ID,
	L_LINK_URL,
	L_BOUNCE_TYPE,
	L_BOUNCE_REASON,
	L_LIST_ID,
	L_LIST_NAME,
	L_UID,
	L_EMAIL,
	L_IP,
	L_USER_AGENT,
	NLEAVES
};

#define NMAPPED ((size_t)L_UID)

#define LEAF(prop, o, key)                                                     \
	{                                                                      \
		prop, sizeof(prop) - 1, o, key, sizeof(key) - 1                \
	}

static const struct {
	const char *prop; /* property name, "" past NMAPPED */
	size_t proplen;
	enum fobj obj;
	const char *key; /* key inside the object */
	size_t keylen;
} leaves[NLEAVES] = {
    [L_EMAIL_ID] = LEAF("email_id", O_MESSAGE, "id"),
    [L_EMAIL_SUBJECT] = LEAF("email_subject", O_MESSAGE, "subject"),
    [L_CAMPAIGN_ID] = LEAF("campaign_id", O_MESSAGE, "campaign_id"),
    [L_CAMPAIGN_NAME] = LEAF("campaign_name", O_MESSAGE, "campaign_name"),
    [L_LINK_ID] = LEAF("link_id", O_LINK, "id"),
    [L_LINK_URL] = LEAF("link_url", O_LINK, "url"),
    [L_BOUNCE_TYPE] = LEAF("bounce_type", O_BOUNCE, "type"),
    [L_BOUNCE_REASON] = LEAF("bounce_reason", O_BOUNCE, "reason"),
    [L_LIST_ID] = LEAF("list_id", O_LIST, "id"),
    [L_LIST_NAME] = LEAF("list_name", O_LIST, "name"),
    [L_UID] = LEAF("", O_SUBSCRIBER, "uid"),
    [L_EMAIL] = LEAF("", O_SUBSCRIBER, "email"),
    [L_IP] = LEAF("", O_CLIENT, "ip"),
    [L_USER_AGENT] = LEAF("", O_CLIENT, "user_agent"),
};

/* The top-level objects holding them: rows [first, first + n). */
static const struct {
	const char *name;
	enum fleaf first;
	size_t n;
} objs[] = {
    [O_MESSAGE] = {"message", L_EMAIL_ID, 4},
    [O_LINK] = {"link", L_LINK_ID, 2},
    [O_BOUNCE] = {"bounce", L_BOUNCE_TYPE, 2},
    [O_LIST] = {"list", L_LIST_ID, 2},
    [O_SUBSCRIBER] = {"subscriber", L_UID, 2},
    [O_CLIENT] = {"client", L_IP, 2},
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

/* Lower-case hex of n bytes into out (2n characters, no NUL). */
static void
hex_put(char *out, const unsigned char *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		*out++ = digits[in[i] >> 4];
		*out++ = digits[in[i] & 0xf];
	}
}

static void
hex_sha256(const unsigned char *in, size_t len, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, in, len);
	hex_put(out, h, sizeof(h));
	out[64] = '\0';
}

/*
 * The SHA-256 of source, a NUL byte and the event id (idlen bytes).  The
 * separator keeps ("a", "bc") and ("ab", "c") apart.  One call over a copy
 * when it fits the stack, as it always does on the direct path for the
 * configured sources (names of at most NB_SOURCE_NAME_MAX bytes).
 */
static void
msgid_digest(const char *source, const char *id, size_t idlen,
    unsigned char h[crypto_hash_sha256_BYTES])
{
	unsigned char in[MSGID_INPUT_MAX];
	crypto_hash_sha256_state st;
	const unsigned char nul = 0;
	size_t slen = strlen(source);

	if (slen < sizeof(in) && idlen < sizeof(in) - slen) {
		memcpy(in, source, slen);
		in[slen] = '\0';
		memcpy(in + slen + 1, id, idlen);
		crypto_hash_sha256(h, in, slen + 1 + idlen);
		return;
	}
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)source, slen);
	crypto_hash_sha256_update(&st, &nul, 1);
	crypto_hash_sha256_update(&st, (const unsigned char *)id, idlen);
	crypto_hash_sha256_final(&st, h);
}

void
nb_segment_message_id(
    const char *source, const char *event_id, char out[NB_SEGMENT_MSGID_LEN])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	msgid_digest(source, event_id, strlen(event_id), h);
	memcpy(out, "nb-", 3);
	hex_put(out + 3, h, sizeof(h));
	out[NB_SEGMENT_MSGID_LEN - 1] = '\0';
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
	for (i = 0; i < NMAPPED; i++) {
		v = leaf(ev, objs[leaves[i].obj].name, leaves[i].key);
		if (set_opt(props, leaves[i].prop, v) == -1)
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
 * message costs about 230,000 instructions per event; this path about
 * 15,000 for a typical 600-byte event, a quarter of them the messageId's
 * SHA-256.  It reads the stored text once, and declines anything it does
 * not handle exactly: string escapes, reals, "-0",
 * duplicate keys, invalid input (the jansson path then names the error),
 * very deep or wide objects.  Whatever it accepts, it writes byte for byte
 * what json_dumps(JSON_COMPACT) writes for the object nb_segment_track()
 * builds: members in insertion order, strings escaped as jansson escapes
 * them (\" \\ \b \f \n \r \t, other controls as \u00XX), integers as %lld.
 * test_segment.c holds it to that over the fuzz corpora.
 *
 * It works in two steps.  fevent_read() validates the whole text in one
 * pass (strings eight bytes at a time, keys told apart by length first)
 * and records in a struct fevent where the members the mapping reads are:
 * the top-level strings, the leaves[] of the second-level objects and each
 * member of "properties".  The writer then allocates one buffer of a size
 * bounded from those byte ranges and copies them out.  A value is a span
 * of the input: for a string its bytes between the quotes (no escapes,
 * valid UTF-8, so they are also its JSON text), for anything else its JSON
 * text.  Only free-form values whose text held whitespace are read again,
 * to drop it.
 */
enum fkind { FK_NONE, FK_STRING, FK_INT, FK_LITERAL, FK_OBJECT, FK_ARRAY };

struct fval {
	enum fkind kind;
	int compact; /* no whitespace between tokens: the span is its dump */
	const char *p;
	size_t len;
};

struct fparse {
	const char *p;
	const char *end;
	size_t nws; /* whitespace runs skipped so far */
};

/*
 * A member callback of fp_container(): key is the member's key (NULL in an
 * array) and the callback parses the value at f->p itself.
 */
typedef int (*fmember_cb)(
    struct fparse *f, const struct fval *key, int depth, void *arg);

/* What fevent_read() found; absent members have kind FK_NONE, length 0. */
struct fevent {
	struct fval id, type, at;
	struct fval props;	   /* "properties" when an object */
	struct fval leaf[NLEAVES]; /* present() strings, by enum fleaf */
	size_t nextra;		   /* members of props */
	struct fval extra[FAST_KEYS_MAX][2]; /* key, value; not cleared */
};

static void
fp_ws_skip(struct fparse *f)
{
	const char *p = f->p;

	while (
	    p < f->end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	if (p != f->p) {
		f->nws++;
		f->p = p;
	}
}

/* Whitespace, if any: stored text is compact, so rarely any. */
static inline void
fp_ws(struct fparse *f)
{
	if (f->p < f->end && (unsigned char)*f->p <= ' ')
		fp_ws_skip(f);
}

#define BYTES8(c) (0x0101010101010101ULL * (uint64_t)(c))

/*
 * Nonzero when one of the eight bytes in w is '"', '\\', a control or not
 * ASCII, so plain string bytes are skipped eight at a time.  Each term is
 * the "has a byte less than n" test (x - n) & ~x & 0x80..80: a borrow only
 * runs upwards from a byte that matches, so the lowest flagged byte is the
 * first one that matches.
 */
static uint64_t
stop8(uint64_t w)
{
	uint64_t q = w ^ BYTES8('"'), b = w ^ BYTES8('\\');

	return (((w - BYTES8(0x20)) & ~w) | ((q - BYTES8(1)) & ~q) |
		   ((b - BYTES8(1)) & ~b) | w) &
	    BYTES8(0x80);
}

/* The eight bytes at p, the first one lowest. */
static uint64_t
load8(const unsigned char *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	w = __builtin_bswap64(w);
#endif
	return w;
}

/* The first byte at or after p that is '"', '\\', a control or not ASCII. */
static inline const unsigned char *
scan_plain(const unsigned char *p, const unsigned char *end)
{
	uint64_t m;

	while (end - p >= 8) {
		if ((m = stop8(load8(p))) != 0)
			return p + __builtin_ctzll(m) / 8;
		p += 8;
	}
	while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
		p++;
	return p;
}

/* A string without escapes or controls.  -1 for anything else. */
static inline int
fp_string(struct fparse *f, struct fval *v)
{
	const unsigned char *p, *end = (const unsigned char *)f->end;
	size_t n;

	if (f->p >= f->end || *f->p != '"')
		return -1;
	p = (const unsigned char *)f->p + 1;
	v->p = (const char *)p;
	for (;;) {
		p = scan_plain(p, end);
		if (p >= end || *p == '\\' || *p < 0x20)
			return -1;
		if (*p == '"')
			break;
		if ((n = nb_utf8_len(p, end)) == 0)
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
fp_literal(struct fparse *f, struct fval *v, const char *word, size_t n)
{
	if ((size_t)(f->end - f->p) < n || memcmp(f->p, word, n) != 0)
		return -1;
	v->kind = FK_LITERAL;
	v->p = f->p;
	v->len = n;
	f->p += n;
	return 0;
}

/* The keys of one object so far, to refuse duplicates. */
struct fkeys {
	uint64_t bloom; /* a bit per (length, first, last byte) hash */
	size_t n;
	struct {
		const char *p;
		size_t len;
	} k[FAST_KEYS_MAX];
};

/* Adds key k; -1 if it is already there or the object is too wide. */
static int
fkeys_add(struct fkeys *s, const struct fval *k)
{
	uint64_t bit = 1;
	size_t i;

	if (s->n == FAST_KEYS_MAX)
		return -1;
	if (k->len > 0)
		bit <<= (k->len + (unsigned char)k->p[0] * 3U +
			    (unsigned char)k->p[k->len - 1] * 5U) &
		    63;
	if (s->bloom & bit) {
		for (i = 0; i < s->n; i++)
			if (s->k[i].len == k->len &&
			    memcmp(s->k[i].p, k->p, k->len) == 0)
				return -1;
	}
	s->bloom |= bit;
	s->k[s->n].p = k->p;
	s->k[s->n].len = k->len;
	s->n++;
	return 0;
}

static int fp_value(struct fparse *, struct fval *, int depth);

/* The member or element at f->p: key (NULL in an array), then value. */
static int
fp_member(
    struct fparse *f, struct fkeys *keys, int depth, fmember_cb cb, void *arg)
{
	struct fval k, m;

	if (keys != NULL) {
		if (fp_string(f, &k) == -1 || fkeys_add(keys, &k) == -1)
			return -1;
		fp_ws(f);
		if (f->p >= f->end || *f->p != ':')
			return -1;
		f->p++;
		fp_ws(f);
	}
	if (cb != NULL)
		return cb(f, keys != NULL ? &k : NULL, depth, arg);
	return fp_value(f, &m, depth);
}

/*
 * An object or array; with cb, cb parses each member's value (see
 * fmember_cb), and -1 from it stops with -1.  Duplicate keys give -1.
 */
static int
fp_container(
    struct fparse *f, struct fval *v, int depth, fmember_cb cb, void *arg)
{
	struct fkeys keys;
	int obj;
	char close;

	if (depth > FAST_DEPTH_MAX || f->p >= f->end)
		return -1;
	obj = *f->p == '{';
	close = obj ? '}' : ']';
	keys.bloom = 0;
	keys.n = 0;
	v->p = f->p++;
	fp_ws(f);
	if (f->p < f->end && *f->p == close)
		goto done;
	for (;;) {
		if (fp_member(f, obj ? &keys : NULL, depth + 1, cb, arg) == -1)
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
	size_t nws = f->nws;
	int rc;

	if (f->p >= f->end)
		return -1;
	switch (*f->p) {
	case '"':
		rc = fp_string(f, v);
		break;
	case '{':
	case '[':
		rc = fp_container(f, v, depth, NULL, NULL);
		break;
	case 't':
		rc = fp_literal(f, v, "true", 4);
		break;
	case 'f':
		rc = fp_literal(f, v, "false", 5);
		break;
	case 'n':
		rc = fp_literal(f, v, "null", 4);
		break;
	default:
		rc = fp_int(f, v);
	}
	v->compact = f->nws == nws;
	return rc;
}

/* Whether key k is s (n > 0 bytes); the first byte settles most misses. */
static inline int
key_is(const struct fval *k, const char *s, size_t n)
{
	return k->len == n && k->p[0] == s[0] &&
	    memcmp(k->p + 1, s + 1, n - 1) == 0;
}

#define KEY_IS(k, lit) key_is((k), (lit), sizeof(lit) - 1)

/* What a top-level key is to the mapping: one of these or T_OBJ + fobj. */
enum ftop { T_OTHER, T_ID, T_TYPE, T_AT, T_PROPERTIES, T_OBJ };

static int
ftop_of(const struct fval *k)
{
	switch (k->len) {
	case 2:
		return KEY_IS(k, "id") ? T_ID : T_OTHER;
	case 4:
		if (KEY_IS(k, "type"))
			return T_TYPE;
		if (KEY_IS(k, "link"))
			return T_OBJ + O_LINK;
		return KEY_IS(k, "list") ? T_OBJ + O_LIST : T_OTHER;
	case 6:
		if (KEY_IS(k, "bounce"))
			return T_OBJ + O_BOUNCE;
		return KEY_IS(k, "client") ? T_OBJ + O_CLIENT : T_OTHER;
	case 7:
		return KEY_IS(k, "message") ? T_OBJ + O_MESSAGE : T_OTHER;
	case 10:
		if (KEY_IS(k, "subscriber"))
			return T_OBJ + O_SUBSCRIBER;
		return KEY_IS(k, "properties") ? T_PROPERTIES : T_OTHER;
	case 11:
		return KEY_IS(k, "occurred_at") ? T_AT : T_OTHER;
	default:
		return T_OTHER;
	}
}

struct fleaves {
	struct fevent *e;
	enum fobj obj;
};

/* A member of a second-level object: a leaf when a present() string. */
static int
fleaf_cb(struct fparse *f, const struct fval *k, int depth, void *arg)
{
	const struct fleaves *s = arg;
	struct fval v;
	size_t i, end = objs[s->obj].first + objs[s->obj].n;

	if (fp_value(f, &v, depth) == -1)
		return -1;
	if (v.kind != FK_STRING || v.len == 0)
		return 0;
	for (i = objs[s->obj].first; i < end; i++) {
		if (key_is(k, leaves[i].key, leaves[i].keylen)) {
			s->e->leaf[i] = v;
			break;
		}
	}
	return 0;
}

/* A member of "properties": kept, in order, for the writer. */
static int
fextra_cb(struct fparse *f, const struct fval *k, int depth, void *arg)
{
	struct fevent *e = arg;

	if (e->nextra == FAST_KEYS_MAX)
		return -1;
	e->extra[e->nextra][0] = *k;
	if (fp_value(f, &e->extra[e->nextra][1], depth) == -1)
		return -1;
	e->nextra++;
	return 0;
}

/* A top-level member: recorded when the mapping reads it. */
static int
ftop_cb(struct fparse *f, const struct fval *k, int depth, void *arg)
{
	struct fevent *e = arg;
	struct fleaves s = {e, O_MESSAGE};
	struct fval v;
	int t = ftop_of(k);

	if (f->p < f->end && *f->p == '{') {
		if (t == T_PROPERTIES)
			return fp_container(f, &e->props, depth, fextra_cb, e);
		if (t >= T_OBJ) {
			s.obj = (enum fobj)(t - T_OBJ);
			return fp_container(f, &v, depth, fleaf_cb, &s);
		}
	}
	if (fp_value(f, &v, depth) == -1)
		return -1;
	if (t == T_ID)
		e->id = v;
	else if (t == T_TYPE)
		e->type = v;
	else if (t == T_AT)
		e->at = v;
	return 0;
}

/* Validates raw (one object, nothing after it) and fills e. */
static int
fevent_read(struct fevent *e, const char *raw, size_t rawlen)
{
	struct fparse f = {raw, raw + rawlen, 0};
	struct fval top;

	memset(e, 0, offsetof(struct fevent, extra));
	fp_ws(&f);
	if (f.p >= f.end || *f.p != '{' ||
	    fp_container(&f, &top, 0, ftop_cb, e) == -1)
		return -1;
	fp_ws(&f);
	return f.p == f.end ? 0 : -1;
}

/*
 * -1 where the jansson path fails or needs what this path does not copy;
 * else 0 with occurred_at in *ms.
 */
static int
fevent_check(const struct nb_source *src, const struct fevent *e, int64_t *ms)
{
	const struct fval *email = &e->leaf[L_EMAIL];

	if (e->id.kind != FK_STRING || e->id.len == 0 ||
	    e->id.len >= FAST_NAME_MAX || e->type.kind != FK_STRING ||
	    e->type.len == 0 || e->type.len >= FAST_NAME_MAX ||
	    e->at.kind != FK_STRING || e->at.len == 0 ||
	    nb_time_parse_rfc3339(e->at.p, e->at.len, ms) == -1)
		return -1;
	if (e->leaf[L_UID].kind == FK_NONE &&
	    (email->kind == FK_NONE ||
		(src->anon == NB_ANON_SHA256 && email->len > EMAIL_MAX)))
		return -1;
	return 0;
}

/*
 * The output: one buffer allocated once, of a size fevent_bound() computes
 * from the spans it will copy; it never grows.
 */
struct obuf {
	char *b;
	size_t len;
	size_t cap;
	int failed;
};

/*
 * The constant start of "context".  Its four strings need no escaping (the
 * names are fixed in segment.h, NB_VERSION is CMake's PROJECT_VERSION,
 * digits and dots), so they are their own JSON text; the differential
 * tests compare this with what jansson writes for them.
 */
#define CONTEXT_HEAD                                                           \
	",\"context\":{\"integration\":{\"name\":"                             \
	"\"" NB_SEGMENT_INTEGRATION_NAME                                       \
	"\",\"version\":\"" NB_SEGMENT_INTEGRATION_VERSION                     \
	"\"},\"library\":{\"name\":\"" NB_SEGMENT_LIBRARY_NAME                 \
	"\",\"version\":\"" NB_VERSION "\"}"

/*
 * Room for the fixed text: at most 327 bytes (the sha256 anonymousId, the
 * messageId and the timestamp included) besides the constants.
 */
#define OUT_FIXED (512 + sizeof(CONTEXT_HEAD))

/*
 * Room for n more bytes and the NUL, or NULL (and the message fails) if
 * fevent_bound() were ever short.
 */
static inline char *
ob_room(struct obuf *o, size_t n)
{
	if (o->cap - o->len <= n) {
		o->failed = 1;
		return NULL;
	}
	return o->b + o->len;
}

static inline void
ob_put(struct obuf *o, const void *p, size_t n)
{
	char *d;

	if ((d = ob_room(o, n)) == NULL)
		return;
	memcpy(d, p, n);
	o->len += n;
}

#define OB_LIT(o, lit) ob_put((o), (lit), sizeof(lit) - 1)

/* A checked input string, quoted: its bytes are already its JSON text. */
static void
ob_span(struct obuf *o, const struct fval *v)
{
	char *d;

	if ((d = ob_room(o, v->len + 2)) == NULL)
		return;
	d[0] = '"';
	memcpy(d + 1, v->p, v->len);
	d[v->len + 1] = '"';
	o->len += v->len + 2;
}

/* A member's key (len bytes, its own JSON text), after a comma if sep. */
static void
ob_key(struct obuf *o, int sep, const char *key, size_t len)
{
	char *d;

	if ((d = ob_room(o, len + 4)) == NULL)
		return;
	if (sep)
		*d++ = ',';
	*d++ = '"';
	memcpy(d, key, len);
	d[len] = '"';
	d[len + 1] = ':';
	o->len += (sep ? 1 : 0) + len + 3;
}

/* One byte jansson escapes: '"', '\\' or a control. */
static void
ob_escape(struct obuf *o, unsigned char c)
{
	static const char hex[] = "0123456789ABCDEF";
	char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};

	switch (c) {
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
		ob_put(o, esc, sizeof(esc));
	}
}

/* s (len bytes), quoted and escaped as jansson does; -1 if not UTF-8. */
static int
ob_cstr(struct obuf *o, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	const unsigned char *run = p;
	size_t n;

	ob_put(o, "\"", 1);
	while ((p = scan_plain(p, end)) < end) {
		if (*p >= 0x80) {
			if ((n = nb_utf8_len(p, end)) == 0)
				return -1;
			p += n;
			continue;
		}
		ob_put(o, run, (size_t)(p - run));
		ob_escape(o, *p);
		run = ++p;
	}
	ob_put(o, run, (size_t)(p - run));
	ob_put(o, "\"", 1);
	return 0;
}

static int ob_value(struct obuf *o, const struct fval *v);

struct oitems {
	struct obuf *o;
	size_t n; /* written so far */
};

static int
ob_item_cb(struct fparse *f, const struct fval *k, int depth, void *arg)
{
	struct oitems *it = arg;
	struct fval v;

	if (k != NULL)
		ob_key(it->o, it->n > 0, k->p, k->len);
	else if (it->n > 0)
		ob_put(it->o, ",", 1);
	it->n++;
	if (fp_value(f, &v, depth) == -1)
		return -1;
	return ob_value(it->o, &v);
}

/* A checked value, written compact: re-read only if it held whitespace. */
static int
ob_value(struct obuf *o, const struct fval *v)
{
	struct fparse f = {v->p, v->p + v->len, 0};
	struct oitems it = {o, 0};
	struct fval w;

	if (v->kind == FK_STRING) {
		ob_span(o, v);
		return 0;
	}
	if (v->compact || (v->kind != FK_OBJECT && v->kind != FK_ARRAY)) {
		ob_put(o, v->p, v->len);
		return 0;
	}
	ob_put(o, v->p, 1);
	if (fp_container(&f, &w, 0, ob_item_cb, &it) == -1)
		return -1;
	ob_put(o, v->p + v->len - 1, 1);
	return 0;
}

/*
 * An upper bound of the message's length, NUL included: the event name
 * escaped (at most six bytes a byte), each leaf quoted under its property
 * name, the address twice (anonymousId and trait), and the free-form
 * members, whose compact text is no longer than the "properties" object.
 */
static size_t
fevent_bound(const struct fevent *e, size_t namelen)
{
	size_t n = OUT_FIXED + 6 * namelen + e->props.len, i;

	for (i = 0; i < NLEAVES; i++)
		if (e->leaf[i].kind != FK_NONE)
			n += e->leaf[i].len + leaves[i].proplen + 8;
	return n + e->leaf[L_EMAIL].len + 2;
}

/* The userId, or the anonymousId in the source's mode. */
static void
ob_identity(struct obuf *o, const struct nb_source *src, const struct fevent *e)
{
	const struct fval *email = &e->leaf[L_EMAIL];
	char lower[EMAIL_MAX], hex[65];
	size_t i;

	if (e->leaf[L_UID].kind != FK_NONE) {
		OB_LIT(o, ",\"userId\":");
		ob_span(o, &e->leaf[L_UID]);
		return;
	}
	OB_LIT(o, ",\"anonymousId\":");
	if (src->anon != NB_ANON_SHA256) {
		ob_span(o, email);
		return;
	}
	for (i = 0; i < email->len; i++) {
		lower[i] = email->p[i];
		if (lower[i] >= 'A' && lower[i] <= 'Z')
			lower[i] = (char)(lower[i] - 'A' + 'a');
	}
	hex_sha256((const unsigned char *)lower, email->len, hex);
	ob_put(o, "\"", 1);
	ob_put(o, hex, 64);
	ob_put(o, "\"", 1);
}

/*
 * The timestamp: occurred_at's own bytes when it is already in the
 * canonical form (what nb_time_format_iso() would write back: 'T', three
 * fraction digits, 'Z', no leap second), else reformatted from ms.
 */
static void
ob_timestamp(struct obuf *o, const struct fval *at, int64_t ms)
{
	char ts[NB_TIME_ISO_LEN];

	if (at->len == NB_TIME_ISO_LEN - 1 && at->p[10] == 'T' &&
	    at->p[19] == '.' && at->p[23] == 'Z' &&
	    !(at->p[17] == '6' && at->p[18] == '0')) {
		ob_put(o, at->p, at->len);
		return;
	}
	nb_time_format_iso(ms, ts);
	ob_put(o, ts, NB_TIME_ISO_LEN - 1);
}

/* "type" up to "timestamp". */
static int
ob_head(struct obuf *o, const struct nb_source *src, const struct fevent *e,
    const char *name, size_t namelen, int64_t ms)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[2 * sizeof(h)];

	OB_LIT(o, "{\"type\":\"track\",\"event\":");
	if (ob_cstr(o, name, namelen) == -1)
		return -1;
	ob_identity(o, src, e);
	msgid_digest(src->name, e->id.p, e->id.len, h);
	hex_put(hex, h, sizeof(h));
	OB_LIT(o, ",\"messageId\":\"nb-");
	ob_put(o, hex, sizeof(hex));
	OB_LIT(o, "\",\"timestamp\":\"");
	ob_timestamp(o, &e->at, ms);
	ob_put(o, "\"", 1);
	return 0;
}

/* Whether key k is a mapped property the event has: those win. */
static int
mapped_present(const struct fevent *e, const struct fval *k)
{
	size_t i;

	for (i = 0; i < NMAPPED; i++)
		if (e->leaf[i].kind != FK_NONE &&
		    key_is(k, leaves[i].prop, leaves[i].proplen))
			return 1;
	return 0;
}

static int
ob_properties(struct obuf *o, const struct fevent *e)
{
	size_t i, n = 0;

	OB_LIT(o, ",\"properties\":{");
	for (i = 0; i < NMAPPED; i++) {
		if (e->leaf[i].kind == FK_NONE)
			continue;
		ob_key(o, n++ > 0, leaves[i].prop, leaves[i].proplen);
		ob_span(o, &e->leaf[i]);
	}
	for (i = 0; i < e->nextra; i++) {
		if (mapped_present(e, &e->extra[i][0]))
			continue;
		ob_key(o, n++ > 0, e->extra[i][0].p, e->extra[i][0].len);
		if (ob_value(o, &e->extra[i][1]) == -1)
			return -1;
	}
	ob_put(o, "}", 1);
	return 0;
}

static void
ob_context(struct obuf *o, const struct fevent *e)
{
	OB_LIT(o, CONTEXT_HEAD);
	if (e->leaf[L_EMAIL].kind != FK_NONE) {
		OB_LIT(o, ",\"traits\":{\"email\":");
		ob_span(o, &e->leaf[L_EMAIL]);
		ob_put(o, "}", 1);
	}
	if (e->leaf[L_IP].kind != FK_NONE) {
		OB_LIT(o, ",\"ip\":");
		ob_span(o, &e->leaf[L_IP]);
	}
	if (e->leaf[L_USER_AGENT].kind != FK_NONE) {
		OB_LIT(o, ",\"userAgent\":");
		ob_span(o, &e->leaf[L_USER_AGENT]);
	}
	ob_put(o, "}", 1);
}

int
nb_segment_track_text_direct(const struct nb_source *src, const char *raw,
    size_t rawlen, char **out, size_t *outlen)
{
	char type[FAST_NAME_MAX];
	struct fevent e;
	struct obuf o = {0};
	const char *name;
	size_t namelen;
	int64_t ms;

	if (fevent_read(&e, raw, rawlen) == -1 ||
	    fevent_check(src, &e, &ms) == -1)
		return -1;
	memcpy(type, e.type.p, e.type.len);
	type[e.type.len] = '\0';
	name = nb_config_event_name(src, type);
	namelen = strlen(name);
	o.cap = fevent_bound(&e, namelen);
	if ((o.b = malloc(o.cap)) == NULL)
		return -1;
	if (ob_head(&o, src, &e, name, namelen, ms) == -1 ||
	    ob_properties(&o, &e) == -1)
		goto fail;
	ob_context(&o, &e);
	OB_LIT(&o, ",\"integrations\":{\"Nudgespot\":false}}");
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
