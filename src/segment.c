/* SPDX-License-Identifier: ISC */
/*
 * segment: a stored Nudgespot event becomes one Segment Track message.
 *
 * The input is the event text exactly as it was received and validated, so
 * the mapping is a pure function of (mapping settings, origin: source,
 * install and the row's messageId rule, stored text): the same event yields
 * the same message, byte for byte, on every retry, replay and instance.
 * Which fields are read and where they go is schema.c's table, walked in
 * its order by both paths below.  Mapped values are taken over as the JSON
 * values they were (never re-encoded through C strings), absent, null and
 * "" inputs give absent keys, and free-form properties never overwrite
 * mapped ones.  This module does not batch, size-check or send; the
 * deliverer does.  No global state: any thread may call it.
 * nb_segment_track_text() is on the drain's hot path, so it first tries a
 * direct single-pass encoder (see "The direct path") before jansson.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "nudgebridge/buf.h"
#include "nudgebridge/jscan.h"
#include "nudgebridge/schema.h"
#include "nudgebridge/segment.h"
#include "nudgebridge/timeutil.h"
#include "nudgebridge/utf8.h"

#define EMAIL_MAX     1024 /* longer than any valid address; bounds the copy */
#define FAST_NAME_MAX 512  /* longest id or type the direct path copies */
/*
 * Source NUL event id, hashed in one call when it fits (source names are
 * at most 63 bytes, see config.h); else streamed.
 */
#define MSGID_INPUT_MAX (64 + 1 + FAST_NAME_MAX)
/* SHA-256's block: the install rule's first, the install id padded. */
#define MSGID_BLOCK 64

void
nb_segment_mapping_clear(struct nb_mapping *m)
{
	if (m == NULL)
		return;
	json_decref(m->event_names);
	m->event_names = NULL;
	m->anon = NB_SEGMENT_ANON_EMAIL;
}

const char *
nb_segment_event_name(const struct nb_mapping *m, const char *type)
{
	const char *name;

	if (type == NULL)
		return NULL;
	if (m != NULL && m->event_names != NULL &&
	    (name = json_string_value(json_object_get(m->event_names, type))) !=
		NULL)
		return name;
	if ((name = nb_schema_event_name(type)) != NULL)
		return name;
	return type;
}

/* The lower-case hex of every byte value, two characters each. */
/* clang-format off */
#define HEX_ROW(h) h "0" h "1" h "2" h "3" h "4" h "5" h "6" h "7" \
	h "8" h "9" h "a" h "b" h "c" h "d" h "e" h "f"
static const char hex_pairs[] =
    HEX_ROW("0") HEX_ROW("1") HEX_ROW("2") HEX_ROW("3")
    HEX_ROW("4") HEX_ROW("5") HEX_ROW("6") HEX_ROW("7")
    HEX_ROW("8") HEX_ROW("9") HEX_ROW("a") HEX_ROW("b")
    HEX_ROW("c") HEX_ROW("d") HEX_ROW("e") HEX_ROW("f");
/* clang-format on */

/* Lower-case hex of n bytes into out (2n characters, no NUL). */
static void
hex_put(char *out, const unsigned char *in, size_t n)
{
	size_t i = 0;

#ifdef __SSE2__
	/* Sixteen bytes at a time: nibbles interleaved, then to digits. */
	const __m128i low = _mm_set1_epi8(0x0f), nine = _mm_set1_epi8(9);
	const __m128i zero = _mm_set1_epi8('0'),
		      af = _mm_set1_epi8('a' - '9' - 1);
	__m128i x, hi, lo, a, b;

	for (; n - i >= 16; i += 16) {
		x = _mm_loadu_si128((const __m128i *)(const void *)(in + i));
		hi = _mm_and_si128(_mm_srli_epi16(x, 4), low);
		lo = _mm_and_si128(x, low);
		a = _mm_unpacklo_epi8(hi, lo);
		b = _mm_unpackhi_epi8(hi, lo);
		a = _mm_add_epi8(_mm_add_epi8(a, zero),
		    _mm_and_si128(_mm_cmpgt_epi8(a, nine), af));
		b = _mm_add_epi8(_mm_add_epi8(b, zero),
		    _mm_and_si128(_mm_cmpgt_epi8(b, nine), af));
		_mm_storeu_si128((__m128i *)(void *)(out + 2 * i), a);
		_mm_storeu_si128((__m128i *)(void *)(out + 2 * i + 16), b);
	}
#endif
	for (; i < n; i++)
		memcpy(out + 2 * i, hex_pairs + 2 * in[i], 2);
}

/*
 * The hex SHA-256 of an address lowered (ASCII letters only): the sha256
 * anonymousId.  -1 when the address is longer than EMAIL_MAX.
 */
static int
hashed_address(const char *s, size_t len, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char lower[EMAIL_MAX];
	size_t i;

	if (len > sizeof(lower))
		return -1;
	for (i = 0; i < len; i++) {
		lower[i] = s[i];
		if (s[i] >= 'A' && s[i] <= 'Z')
			lower[i] = (char)(s[i] - 'A' + 'a');
	}
	crypto_hash_sha256(h, (const unsigned char *)lower, len);
	hex_put(out, h, sizeof(h));
	out[64] = '\0';
	return 0;
}

/*
 * The SHA-256 of source, a NUL byte and the event id (idlen bytes), after
 * the state head when not NULL (the install rule).  The separator keeps
 * ("a", "bc") and ("ab", "c") apart.  The legacy rule hashes in one call
 * over a copy when it fits the stack, as it always does on the direct path
 * for the configured sources.
 */
static void
msgid_digest(const crypto_hash_sha256_state *head, const char *source,
    const char *id, size_t idlen, unsigned char h[crypto_hash_sha256_BYTES])
{
	unsigned char in[MSGID_INPUT_MAX];
	crypto_hash_sha256_state st;
	const unsigned char nul = 0;
	size_t slen = strlen(source);

	if (head == NULL && slen < sizeof(in) && idlen < sizeof(in) - slen) {
		memcpy(in, source, slen);
		in[slen] = '\0';
		memcpy(in + slen + 1, id, idlen);
		crypto_hash_sha256(h, in, slen + 1 + idlen);
		return;
	}
	if (head != NULL)
		st = *head;
	else
		crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)source, slen);
	crypto_hash_sha256_update(&st, &nul, 1);
	crypto_hash_sha256_update(&st, (const unsigned char *)id, idlen);
	crypto_hash_sha256_final(&st, h);
}

int
nb_segment_install_init(struct nb_segment_install *in, const char *id)
{
	unsigned char block[MSGID_BLOCK];
	size_t i;

	if (id == NULL || strlen(id) != NB_SEGMENT_INSTALL_ID_LEN)
		return -1;
	for (i = 0; i < NB_SEGMENT_INSTALL_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
			(id[i] >= 'a' && id[i] <= 'f')))
			return -1;
	/* The id and NULs: exactly one block, hashed once here. */
	memset(block, 0, sizeof(block));
	memcpy(block, id, NB_SEGMENT_INSTALL_ID_LEN);
	memcpy(in->id, id, NB_SEGMENT_INSTALL_ID_LEN + 1);
	crypto_hash_sha256_init(&in->head);
	crypto_hash_sha256_update(&in->head, block, sizeof(block));
	return 0;
}

/*
 * The messageId of (o, id) into out, NUL-terminated; its length, or 0
 * (out empty) when o's rule is unknown or lacks its install.
 */
static size_t
msgid_make(const struct nb_segment_origin *o, const char *id, size_t idlen,
    char out[NB_SEGMENT_MSGID_LEN])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	size_t plen;

	out[0] = '\0';
	if (o->rule == NB_SEGMENT_RULE_LEGACY) {
		msgid_digest(NULL, o->source, id, idlen, h);
		memcpy(out, "nb-", 3);
		plen = 3;
	} else if (o->rule == NB_SEGMENT_RULE_INSTALL && o->install != NULL) {
		msgid_digest(&o->install->head, o->source, id, idlen, h);
		memcpy(out, "nb1-", 4);
		plen = 4;
	} else
		return 0;
	hex_put(out + plen, h, sizeof(h));
	out[plen + 2 * sizeof(h)] = '\0';
	return plen + 2 * sizeof(h);
}

int
nb_segment_message_id(const struct nb_segment_origin *o, const char *event_id,
    char out[NB_SEGMENT_MSGID_LEN])
{
	return msgid_make(o, event_id, strlen(event_id), out) > 0 ? 0 : -1;
}

/*
 * The rows that play a role, and the rows of each destination: constant,
 * found once.
 */
struct roles {
	int id, type, at, uid, email, props;
	uint64_t property, context; /* masks, see nb_schema_rows() */
};

static struct roles roles;
static pthread_once_t roles_once = PTHREAD_ONCE_INIT;

static void
roles_init(void)
{
	roles.id = nb_schema_row(NB_SCHEMA_MESSAGE_ID);
	roles.type = nb_schema_row(NB_SCHEMA_EVENT);
	roles.at = nb_schema_row(NB_SCHEMA_TIMESTAMP);
	roles.uid = nb_schema_row(NB_SCHEMA_USER_ID);
	roles.email = nb_schema_row(NB_SCHEMA_ANONYMOUS_ID);
	roles.props = nb_schema_row(NB_SCHEMA_PROPERTIES);
	roles.property = nb_schema_rows(NB_SCHEMA_PROPERTY);
	roles.context = nb_schema_rows(NB_SCHEMA_CONTEXT);
}

static const struct roles *
roles_get(void)
{
	(void)pthread_once(&roles_once, roles_init);
	return &roles;
}

/* obj[key] when it is a non-empty string, else NULL (absent).  Borrowed. */
static json_t *
present(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_string(v) || json_string_length(v) == 0)
		return NULL;
	return v;
}

/*
 * What the mapping reads of an event, by row of the table: present()
 * strings, and the free-form object as it is.  Borrowed from ev.
 */
static void
tree_fields(const json_t *ev, json_t *val[NB_SCHEMA_FIELDS_MAX])
{
	const struct nb_schema_field *f;
	const json_t *obj = NULL;
	size_t i;

	for (i = 0; i < nb_schema_nfields; i++) {
		f = &nb_schema_fields[i];
		val[i] = NULL;
		if (f->rule == NB_SCHEMA_OBJECT)
			obj = json_object_get(ev, f->key);
		else if (f->rule == NB_SCHEMA_FREE)
			val[i] = json_object_get(ev, f->key);
		else
			val[i] = present(f->parent == NULL ? ev : obj, f->key);
	}
}

/* Sets key to v (borrowed, a reference is taken) when v is not NULL. */
static int
set_opt(json_t *o, const char *key, json_t *v)
{
	if (v == NULL)
		return 0;
	return json_object_set(o, key, v);
}

/* The anonymousId for an address: itself, or hex SHA-256 of it lowered. */
static json_t *
anonymous_id(const struct nb_mapping *m, json_t *email)
{
	char hex[65];

	if (m->anon != NB_SEGMENT_ANON_SHA256)
		return json_incref(email);
	if (hashed_address(
		json_string_value(email), json_string_length(email), hex) == -1)
		return NULL;
	return json_string(hex);
}

static json_t *
build_properties(json_t *const val[], const struct roles *r)
{
	const struct nb_schema_field *f;
	json_t *props, *extra = val[r->props], *v;
	const char *k;
	size_t i;

	if ((props = json_object()) == NULL)
		return NULL;
	for (i = 0; i < nb_schema_nfields; i++) {
		f = &nb_schema_fields[i];
		if (f->dest == NB_SCHEMA_PROPERTY &&
		    set_opt(props, f->name, val[i]) == -1)
			goto fail;
	}
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

/* ctx.name = v, where a name "a.b" is member b of object a. */
static int
context_set(json_t *ctx, const char *name, json_t *v)
{
	const char *dot = strchr(name, '.');
	size_t n;
	json_t *o;

	if (dot == NULL)
		return json_object_set(ctx, name, v);
	n = (size_t)(dot - name);
	if ((o = json_object_getn(ctx, name, n)) == NULL) {
		if ((o = json_object()) == NULL ||
		    json_object_setn_new(ctx, name, n, o) == -1)
			return -1;
	}
	return json_object_set(o, dot + 1, v);
}

static json_t *
build_context(json_t *const val[])
{
	const struct nb_schema_field *f;
	json_t *ctx;
	size_t i;

	ctx = json_pack("{s:{s:s,s:s},s:{s:s,s:s}}", "integration", "name",
	    NB_SEGMENT_INTEGRATION_NAME, "version",
	    NB_SEGMENT_INTEGRATION_VERSION, "library", "name",
	    NB_SEGMENT_LIBRARY_NAME, "version", NB_VERSION);
	if (ctx == NULL)
		return NULL;
	for (i = 0; i < nb_schema_nfields; i++) {
		f = &nb_schema_fields[i];
		if (f->dest == NB_SCHEMA_CONTEXT && val[i] != NULL &&
		    context_set(ctx, f->name, val[i]) == -1) {
			json_decref(ctx);
			return NULL;
		}
	}
	return ctx;
}

/* A present string without a NUL inside (that is a C string as it is). */
static int
c_string(const json_t *v)
{
	return v != NULL &&
	    strlen(json_string_value(v)) == json_string_length(v);
}

/* The checks of nb_segment_track(): NULL, or why the event cannot map. */
static const char *
tree_check(json_t *const val[], const struct roles *r, int64_t *ms)
{
	const json_t *at = val[r->at];

	if (!c_string(val[r->id]))
		return "missing or invalid id";
	if (!c_string(val[r->type]))
		return "missing or invalid type";
	if (at == NULL ||
	    nb_time_parse_rfc3339(
		json_string_value(at), json_string_length(at), ms) == -1)
		return "missing or invalid occurred_at";
	if (val[r->uid] == NULL && val[r->email] == NULL)
		return "neither subscriber.uid nor subscriber.email";
	return NULL;
}

/* "type" up to "timestamp" of the jansson path's message. */
static const char *
tree_head(json_t *msg, const struct nb_mapping *m,
    const struct nb_segment_origin *o, json_t *const val[],
    const struct roles *r, int64_t ms)
{
	char msgid[NB_SEGMENT_MSGID_LEN], ts[NB_TIME_ISO_LEN];
	json_t *anon;

	if (nb_segment_message_id(o, json_string_value(val[r->id]), msgid) ==
	    -1)
		return "unknown messageId rule";
	nb_time_format_iso(ms, ts);
	if (json_object_set_new(msg, "type", json_string("track")) == -1 ||
	    json_object_set_new(msg, "event",
		json_string(nb_segment_event_name(
		    m, json_string_value(val[r->type])))) == -1)
		return "out of memory";
	if (val[r->uid] != NULL) {
		if (json_object_set(msg, "userId", val[r->uid]) == -1)
			return "out of memory";
	} else {
		if ((anon = anonymous_id(m, val[r->email])) == NULL)
			return "subscriber.email too long";
		if (json_object_set_new(msg, "anonymousId", anon) == -1)
			return "out of memory";
	}
	if (json_object_set_new(msg, "messageId", json_string(msgid)) == -1 ||
	    json_object_set_new(msg, "timestamp", json_string(ts)) == -1)
		return "out of memory";
	return NULL;
}

json_t *
nb_segment_track(const struct nb_mapping *m, const struct nb_segment_origin *o,
    const char *raw, size_t rawlen, const char **err)
{
	json_t *val[NB_SCHEMA_FIELDS_MAX];
	json_t *ev = NULL, *msg = NULL, *out = NULL, *part;
	const char *why = "out of memory";
	const struct roles *r = roles_get();
	int64_t ms;

	/* JSON_ALLOW_NUL: whatever was stored must map, "\u0000" included. */
	ev = json_loadb(raw, rawlen, JSON_ALLOW_NUL, NULL);
	if (!json_is_object(ev)) {
		why = "not a JSON object";
		goto out;
	}
	tree_fields(ev, val);
	if ((why = tree_check(val, r, &ms)) != NULL)
		goto out;
	why = "out of memory";
	if ((msg = json_object()) == NULL ||
	    (why = tree_head(msg, m, o, val, r, ms)) != NULL)
		goto out;
	why = "out of memory";
	if ((part = build_properties(val, r)) == NULL ||
	    json_object_set_new(msg, "properties", part) == -1)
		goto out;
	if ((part = build_context(val)) == NULL ||
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
 * 14,000 for a typical 600-byte event, a quarter of them the messageId's
 * SHA-256.  It reads the stored text once with jscan, declining what it
 * does not reproduce exactly (string escapes, numbers other than plain
 * integers, a key twice where jansson would then map another value: in
 * free-form values, or a key of the table; objects over
 * NB_JSCAN_WIDTH_MAX members, nesting over NB_JSCAN_DEPTH_MAX) and invalid
 * input, which the jansson path then names.  Whatever it accepts, it writes
 * byte for byte what json_dumps(JSON_COMPACT) writes for the object
 * nb_segment_track() builds: members in insertion order, strings escaped as
 * jansson escapes them (\"
 * \\ \b \f \n \r \t, other controls as \u00XX), integers as %lld.
 * test_segment.c holds it to that over the fuzz corpora.
 *
 * It works in two steps.  fevent_read() validates the whole text and
 * records, by row of the table, the spans the mapping reads (present
 * strings, and the free-form object with each of its members).  The writer
 * then reserves one nb_buf of a size bounded from those spans and copies
 * them out.  A string's span is its bytes between the quotes (no escapes,
 * valid UTF-8), so it is also its JSON text once quoted; anything else's
 * is its JSON text.  Only free-form values whose text held white space are
 * read again, to drop it.
 */
#define FAST_OPTS                                                              \
	(NB_JSCAN_NO_ESCAPES | NB_JSCAN_INTEGERS | NB_JSCAN_UNIQUE_KEYS)

/* What fevent_read() found: val[i] holds a value when present has bit i. */
struct fevent {
	const struct roles *r;
	uint64_t present; /* the rows in val (bit i: row i) */
	uint64_t seen;	  /* the rows whose key was read */
	struct nb_jscan_tok val[NB_SCHEMA_FIELDS_MAX];	  /* by row */
	size_t nextra;					  /* members of props */
	struct nb_jscan_tok extra[NB_JSCAN_WIDTH_MAX][2]; /* key, value */
};

/* Whether e holds row (a present string, or the free-form object). */
static inline int
has(const struct fevent *e, int row)
{
	return (int)(e->present >> row) & 1;
}

/* The members of the free-form object at s->p, kept in order. */
static int
f_extras(struct nb_jscan *s, struct fevent *e, struct nb_jscan_tok *obj,
    unsigned depth)
{
	struct nb_jscan_keys keys;
	struct nb_jscan_iter it;
	struct nb_jscan_tok k;
	int r;

	if (nb_jscan_open(s, &it, &keys, depth) == -1)
		return -1;
	/* Unique keys: at most NB_JSCAN_WIDTH_MAX members get here. */
	while ((r = nb_jscan_next(s, &it, &k)) == 1) {
		e->extra[e->nextra][0] = k;
		if (nb_jscan_value(s, &e->extra[e->nextra][1], depth + 1) == -1)
			return -1;
		e->nextra++;
	}
	if (r == 0)
		nb_jscan_span(s, &it, obj);
	return r;
}

/*
 * A member of the event, or of one of its objects, that is a row: kept
 * when a present() string, read in turn when an object of the table.  The
 * mapping reads these objects by key, so only a key of the table given
 * twice changes what jansson sees (nb_schema_scan() declines it); other
 * keys there need not be unique.
 */
static int
f_member_cb(struct nb_jscan *s, int row, unsigned depth, void *arg)
{
	const struct nb_schema_field *f = &nb_schema_fields[row];
	struct fevent *e = arg;
	struct nb_jscan_tok v;

	if (f->rule == NB_SCHEMA_OBJECT && nb_jscan_at(s, '{'))
		return nb_schema_scan(s, row, depth, &e->seen, f_member_cb, e);
	if (f->rule == NB_SCHEMA_FREE && nb_jscan_at(s, '{')) {
		e->present |= (uint64_t)1 << row;
		return f_extras(s, e, &e->val[row], depth);
	}
	if (nb_jscan_value(s, &v, depth) == -1)
		return -1;
	if (nb_schema_is_string(f) && v.kind == NB_JSCAN_STRING && v.len > 0) {
		e->val[row] = v;
		e->present |= (uint64_t)1 << row;
	}
	return 0;
}

/* Validates raw (one object, nothing after it) and fills e. */
static int
fevent_read(struct fevent *e, const char *raw, size_t rawlen)
{
	struct nb_jscan s;

	e->present = 0;
	e->seen = 0;
	e->nextra = 0;
	e->r = roles_get();
	nb_jscan_init(&s, raw, rawlen, FAST_OPTS);
	nb_jscan_ws(&s);
	if (!nb_jscan_at(&s, '{') ||
	    nb_schema_scan(&s, -1, 0, &e->seen, f_member_cb, e) == -1)
		return -1;
	nb_jscan_ws(&s);
	return s.p == s.end ? 0 : -1;
}

/*
 * -1 where the jansson path fails or needs what this path does not copy;
 * else 0 with occurred_at in *ms.
 */
static int
fevent_check(const struct nb_mapping *m, const struct fevent *e, int64_t *ms)
{
	const struct nb_jscan_tok *id = &e->val[e->r->id];
	const struct nb_jscan_tok *type = &e->val[e->r->type];
	const struct nb_jscan_tok *at = &e->val[e->r->at];
	const struct nb_jscan_tok *email = &e->val[e->r->email];

	if (!has(e, e->r->id) || id->len >= FAST_NAME_MAX ||
	    !has(e, e->r->type) || type->len >= FAST_NAME_MAX ||
	    !has(e, e->r->at) ||
	    nb_time_parse_rfc3339(at->p, at->len, ms) == -1)
		return -1;
	if (!has(e, e->r->uid) &&
	    (!has(e, e->r->email) ||
		(m->anon == NB_SEGMENT_ANON_SHA256 && email->len > EMAIL_MAX)))
		return -1;
	return 0;
}

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

#define OB_LIT(o, lit) nb_buf_add((o), (lit), sizeof(lit) - 1)

/*
 * An upper bound of the message's length: the event name escaped (at most
 * six bytes a byte), each string under its name (a context member perhaps
 * in an object of its own), the address once more (anonymousId), and the
 * free-form members, whose compact text is no longer than their object.
 */
static size_t
fevent_bound(const struct fevent *e, size_t namelen)
{
	size_t n = OUT_FIXED + 6 * namelen, i;
	uint64_t m;

	for (m = e->present; m != 0; m &= m - 1) {
		i = (size_t)__builtin_ctzll(m);
		n += e->val[i].len + nb_schema_fields[i].namelen + 16;
	}
	return n + (has(e, e->r->email) ? e->val[e->r->email].len : 0) + 2;
}

/* A checked input string, quoted: its bytes are already its JSON text. */
static void
ob_span(struct nb_buf *o, const struct nb_jscan_tok *v)
{
	nb_buf_addc(o, '"');
	nb_buf_add(o, v->p, v->len);
	nb_buf_addc(o, '"');
}

/*
 * A member's key (len bytes, its own JSON text) and its ':', after a comma
 * if sep; with the opening quote of the value when quote is set.
 */
static void
ob_key(struct nb_buf *o, int sep, const char *key, size_t len, int quote)
{
	if (sep)
		OB_LIT(o, ",\"");
	else
		nb_buf_addc(o, '"');
	nb_buf_add(o, key, len);
	if (quote)
		OB_LIT(o, "\":\"");
	else
		OB_LIT(o, "\":");
}

/* A member whose value is a checked input string. */
static void
ob_member(struct nb_buf *o, int sep, const char *key, size_t len,
    const struct nb_jscan_tok *v)
{
	ob_key(o, sep, key, len, 1);
	nb_buf_add(o, v->p, v->len);
	nb_buf_addc(o, '"');
}

/* A member of the table's row f (a name without '.') and its value v. */
static void
ob_mapped(struct nb_buf *o, int sep, const struct nb_schema_field *f,
    const struct nb_jscan_tok *v)
{
	nb_buf_add(o, f->member + !sep, f->memberlen - !sep);
	nb_buf_add(o, v->p, v->len);
	nb_buf_addc(o, '"');
}

/* One byte jansson escapes: '"', '\\' or a control. */
static void
ob_escape(struct nb_buf *o, unsigned char c)
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
		nb_buf_add(o, esc, sizeof(esc));
	}
}

/* s (len bytes), quoted and escaped as jansson does; -1 if not UTF-8. */
static int
ob_cstr(struct nb_buf *o, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	const unsigned char *run = p;
	size_t n;

	nb_buf_addc(o, '"');
	while ((p = nb_jscan_plain(p, end)) < end) {
		if (*p >= 0x80) {
			if ((n = nb_utf8_len(p, end)) == 0)
				return -1;
			p += n;
			continue;
		}
		nb_buf_add(o, run, (size_t)(p - run));
		ob_escape(o, *p);
		run = ++p;
	}
	nb_buf_add(o, run, (size_t)(p - run));
	nb_buf_addc(o, '"');
	return 0;
}

/* A checked value, written compact: re-read only if it held white space. */
static void
ob_value(struct nb_buf *o, const struct nb_jscan_tok *v)
{
	if (v->kind == NB_JSCAN_STRING)
		ob_span(o, v);
	else if (v->flags & NB_JSCAN_COMPACT)
		nb_buf_add(o, v->p, v->len);
	else
		(void)nb_jscan_compact(o, v->p, v->len);
}

/* The userId, or the anonymousId in the source's mode. */
static void
ob_identity(
    struct nb_buf *o, const struct nb_mapping *m, const struct fevent *e)
{
	const struct nb_jscan_tok *email = &e->val[e->r->email];
	char hex[65];

	if (has(e, e->r->uid)) {
		OB_LIT(o, ",\"userId\":");
		ob_span(o, &e->val[e->r->uid]);
		return;
	}
	OB_LIT(o, ",\"anonymousId\":");
	if (m->anon != NB_SEGMENT_ANON_SHA256) {
		ob_span(o, email);
		return;
	}
	/* fevent_check() saw to the length. */
	(void)hashed_address(email->p, email->len, hex);
	nb_buf_addc(o, '"');
	nb_buf_add(o, hex, 64);
	nb_buf_addc(o, '"');
}

/*
 * The timestamp: occurred_at's own bytes when it is already in the
 * canonical form (what nb_time_format_iso() would write back: 'T', three
 * fraction digits, 'Z', no leap second), else reformatted from ms.
 */
static void
ob_timestamp(struct nb_buf *o, const struct nb_jscan_tok *at, int64_t ms)
{
	char ts[NB_TIME_ISO_LEN];

	if (at->len == NB_TIME_ISO_LEN - 1 && at->p[10] == 'T' &&
	    at->p[19] == '.' && at->p[23] == 'Z' &&
	    !(at->p[17] == '6' && at->p[18] == '0')) {
		nb_buf_add(o, at->p, at->len);
		return;
	}
	nb_time_format_iso(ms, ts);
	nb_buf_add(o, ts, NB_TIME_ISO_LEN - 1);
}

/* "type" up to "timestamp"; -1 to decline. */
static int
ob_head(struct nb_buf *o, const struct nb_mapping *m,
    const struct nb_segment_origin *org, const struct fevent *e,
    const char *name, int64_t ms)
{
	const struct nb_jscan_tok *id = &e->val[e->r->id];
	char msgid[NB_SEGMENT_MSGID_LEN];
	size_t len;

	if ((len = msgid_make(org, id->p, id->len, msgid)) == 0)
		return -1;
	OB_LIT(o, "{\"type\":\"track\",\"event\":");
	if (ob_cstr(o, name, strlen(name)) == -1)
		return -1;
	ob_identity(o, m, e);
	OB_LIT(o, ",\"messageId\":\"");
	nb_buf_add(o, msgid, len);
	OB_LIT(o, "\",\"timestamp\":\"");
	ob_timestamp(o, &e->val[e->r->at], ms);
	nb_buf_addc(o, '"');
	return 0;
}

/* A length as a bit of a mask: 0..62, and 63 for all longer ones. */
static inline uint64_t
len_bit(size_t len)
{
	return (uint64_t)1 << (len < 63 ? len : 63);
}

/*
 * Whether key k is one of the n mapped properties the event has (rows):
 * those win.  lens has the len_bit() of each of their names.
 */
static int
mapped_present(const unsigned char *rows, size_t n, uint64_t lens,
    const struct nb_jscan_tok *k)
{
	const struct nb_schema_field *f;
	size_t i;

	if (!(lens & len_bit(k->len)))
		return 0;
	for (i = 0; i < n; i++) {
		f = &nb_schema_fields[rows[i]];
		if (f->namelen == k->len && memcmp(f->name, k->p, k->len) == 0)
			return 1;
	}
	return 0;
}

static void
ob_properties(struct nb_buf *o, const struct fevent *e)
{
	unsigned char rows[NB_SCHEMA_FIELDS_MAX];
	const struct nb_schema_field *f;
	size_t i, nrows = 0, n = 0;
	uint64_t m, lens = 0;

	OB_LIT(o, ",\"properties\":{");
	for (m = e->present & e->r->property; m != 0; m &= m - 1) {
		i = (size_t)__builtin_ctzll(m);
		f = &nb_schema_fields[i];
		ob_mapped(o, n++ > 0, f, &e->val[i]);
		rows[nrows++] = (unsigned char)i;
		lens |= len_bit(f->namelen);
	}
	for (i = 0; i < e->nextra; i++) {
		const struct nb_jscan_tok *k = &e->extra[i][0];
		const struct nb_jscan_tok *v = &e->extra[i][1];

		if (mapped_present(rows, nrows, lens, k))
			continue;
		if (v->kind == NB_JSCAN_STRING) {
			ob_member(o, n++ > 0, k->p, k->len, v);
			continue;
		}
		ob_key(o, n++ > 0, k->p, k->len, 0);
		ob_value(o, v);
	}
	nb_buf_addc(o, '}');
}

/*
 * The context members of the table, in its order; names "a.b" that share
 * "a" are adjacent in the table (test_schema.c), so each such object is
 * written whole, as jansson writes it.
 */
static void
ob_context(struct nb_buf *o, const struct fevent *e)
{
	const struct nb_schema_field *f;
	const char *dot, *open = NULL;
	size_t i, olen = 0, plen;
	uint64_t m;

	OB_LIT(o, CONTEXT_HEAD);
	for (m = e->present & e->r->context; m != 0; m &= m - 1) {
		i = (size_t)__builtin_ctzll(m);
		f = &nb_schema_fields[i];
		dot = memchr(f->name, '.', f->namelen);
		plen = dot != NULL ? (size_t)(dot - f->name) : 0;
		if (open != NULL &&
		    (plen != olen || memcmp(open, f->name, plen) != 0)) {
			nb_buf_addc(o, '}');
			open = NULL;
		}
		if (dot == NULL) {
			ob_mapped(o, 1, f, &e->val[i]);
			continue;
		}
		if (open == NULL) {
			ob_key(o, 1, f->name, plen, 0);
			nb_buf_addc(o, '{');
		}
		ob_member(o, open != NULL, dot + 1, f->namelen - plen - 1,
		    &e->val[i]);
		open = f->name;
		olen = plen;
	}
	if (open != NULL)
		nb_buf_addc(o, '}');
	nb_buf_addc(o, '}');
}

int
nb_segment_track_text_direct(const struct nb_mapping *m,
    const struct nb_segment_origin *org, const char *raw, size_t rawlen,
    char **out, size_t *outlen)
{
	char type[FAST_NAME_MAX], *text;
	const struct nb_jscan_tok *t;
	const char *name;
	struct fevent e;
	struct nb_buf o;
	size_t bound;
	int64_t ms;
	int rc = -1;

	if (fevent_read(&e, raw, rawlen) == -1 ||
	    fevent_check(m, &e, &ms) == -1)
		return -1;
	t = &e.val[e.r->type];
	memcpy(type, t->p, t->len);
	type[t->len] = '\0';
	name = nb_segment_event_name(m, type);
	bound = fevent_bound(&e, strlen(name));
	/* One allocation: the bound is the buffer's maximum and its size. */
	nb_buf_init(&o, bound);
	if (nb_buf_reserve(&o, bound) == -1 ||
	    ob_head(&o, m, org, &e, name, ms) == -1)
		goto out;
	ob_properties(&o, &e);
	ob_context(&o, &e);
	OB_LIT(&o, ",\"integrations\":{\"Nudgespot\":false}}");
	/*
	 * A claim maps up to segment.max_batch_count events whose texts wait
	 * in the lane's queue until sent: keep what was written, not the bound.
	 */
	if (nb_buf_failed(&o) || (text = nb_buf_steal_fit(&o, outlen)) == NULL)
		goto out;
	*out = text;
	rc = 0;
out:
	nb_buf_free(&o);
	return rc;
}

int
nb_segment_track_text(const struct nb_mapping *m,
    const struct nb_segment_origin *o, const char *raw, size_t rawlen,
    char **out, size_t *outlen, const char **err)
{
	json_t *msg;
	char *text;

	*out = NULL;
	*outlen = 0;
	if (nb_segment_track_text_direct(m, o, raw, rawlen, out, outlen) == 0)
		return 0;
	if ((msg = nb_segment_track(m, o, raw, rawlen, err)) == NULL)
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
