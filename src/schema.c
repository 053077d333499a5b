/* SPDX-License-Identifier: ISC */
/*
 * schema: the Nudgespot event, written once (see schema.h).
 *
 * The table below is the only list of event fields in the bridge: the
 * parser's rules and messages and the mapper's properties and context come
 * from it, in its order, which is the contract's.  Adding a mapped string
 * field is one line, after the other leaves of its object, for example
 *
 *     PROPERTY(message, template_id, "email_template_id"),
 *
 * and both paths of the parser and of the mapper (direct and jansson)
 * pick it up; tests/unit/test_schema.c walks the table (every leaf
 * validated and mapped, names unique, order as the contract's).  The
 * lookup index is built from the table once, on first use, so the table
 * stays the one thing to edit.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "nudgebridge/schema.h"
#include "nudgebridge/timeutil.h"

#define STR(x)	#x
#define XSTR(x) STR(x)

/* The messages of the rules, after "<field>: ". */
#define BROKEN_EVENT_ID                                                        \
	"must be 1.." XSTR(NB_SCHEMA_ID_MAX) " printable ASCII characters"
#define BROKEN_EVENT_TYPE                                                      \
	"must be 1.." XSTR(NB_SCHEMA_TYPE_MAX) " characters without control "  \
					       "characters"
#define BROKEN_TIME "not an RFC 3339 date-time"
#define BROKEN_TEXT "must be non-empty without control characters"

/* A destination name as the mapper writes it before a string value. */
#define MEMBER(n) ",\"" n "\":\""

/* A required string member of the event. */
#define REQUIRED(k, r, ro)                                                     \
	{                                                                      \
		.key = #k, .name = "", .missing = #k ": missing",              \
		.not_type = #k ": must be a string",                           \
		.broken = #k ": " BROKEN_##r, .keylen = sizeof(#k) - 1,        \
		.rule = NB_SCHEMA_##r, .role = NB_SCHEMA_##ro,                 \
		.dest = NB_SCHEMA_NOWHERE                                      \
	}

/* A required object member that needs one of its leaves (say which). */
#define REQUIRED_OBJECT(k, needs)                                              \
	{                                                                      \
		.key = #k, .name = "", .missing = #k ": missing",              \
		.not_type = #k ": must be an object", .broken = #k ": " needs, \
		.keylen = sizeof(#k) - 1, .rule = NB_SCHEMA_OBJECT,            \
		.role = NB_SCHEMA_NO_ROLE, .dest = NB_SCHEMA_NOWHERE           \
	}

/* An optional object member whose leaves follow. */
#define OPTIONAL_OBJECT(k)                                                     \
	{                                                                      \
		.key = #k, .name = "", .not_type = #k ": must be an object",   \
		.keylen = sizeof(#k) - 1, .rule = NB_SCHEMA_OBJECT,            \
		.role = NB_SCHEMA_NO_ROLE, .dest = NB_SCHEMA_NOWHERE           \
	}

/* An optional free-form object member. */
#define FREE(k, ro)                                                            \
	{                                                                      \
		.key = #k, .name = "", .not_type = #k ": must be an object",   \
		.keylen = sizeof(#k) - 1, .rule = NB_SCHEMA_FREE,              \
		.role = NB_SCHEMA_##ro, .dest = NB_SCHEMA_NOWHERE              \
	}

/* A leaf that must be text, with a role and perhaps a destination. */
#define IDENTITY(o, k, ro, d, n)                                               \
	{                                                                      \
		.key = #k, .parent = #o, .name = n, .member = MEMBER(n),       \
		.not_type = #o "." #k ": must be a string",                    \
		.broken = #o "." #k ": " BROKEN_TEXT,                          \
		.keylen = sizeof(#k) - 1, .namelen = sizeof(n) - 1,            \
		.memberlen = sizeof(MEMBER(n)) - 1, .rule = NB_SCHEMA_TEXT,    \
		.role = NB_SCHEMA_##ro, .dest = NB_SCHEMA_##d                  \
	}

/* An optional string leaf sent as properties.<n> or context.<n>. */
#define MAPPED(o, k, d, n)                                                     \
	{                                                                      \
		.key = #k, .parent = #o, .name = n, .member = MEMBER(n),       \
		.not_type = #o "." #k ": must be a string",                    \
		.keylen = sizeof(#k) - 1, .namelen = sizeof(n) - 1,            \
		.memberlen = sizeof(MEMBER(n)) - 1, .rule = NB_SCHEMA_STRING,  \
		.role = NB_SCHEMA_NO_ROLE, .dest = NB_SCHEMA_##d               \
	}
#define PROPERTY(o, k, n) MAPPED(o, k, PROPERTY, n)
#define CONTEXT(o, k, n)  MAPPED(o, k, CONTEXT, n)

/* clang-format off */
const struct nb_schema_field nb_schema_fields[] = {
    REQUIRED(id, EVENT_ID, MESSAGE_ID),
    REQUIRED(type, EVENT_TYPE, EVENT),
    REQUIRED(occurred_at, TIME, TIMESTAMP),
    REQUIRED_OBJECT(subscriber, "needs uid or email"),
    IDENTITY(subscriber, uid, USER_ID, NOWHERE, ""),
    IDENTITY(subscriber, email, ANONYMOUS_ID, CONTEXT, "traits.email"),
    OPTIONAL_OBJECT(message),
    PROPERTY(message, id, "email_id"),
    PROPERTY(message, subject, "email_subject"),
    PROPERTY(message, campaign_id, "campaign_id"),
    PROPERTY(message, campaign_name, "campaign_name"),
    OPTIONAL_OBJECT(link),
    PROPERTY(link, id, "link_id"),
    PROPERTY(link, url, "link_url"),
    OPTIONAL_OBJECT(bounce),
    PROPERTY(bounce, type, "bounce_type"),
    PROPERTY(bounce, reason, "bounce_reason"),
    OPTIONAL_OBJECT(list),
    PROPERTY(list, id, "list_id"),
    PROPERTY(list, name, "list_name"),
    OPTIONAL_OBJECT(client),
    CONTEXT(client, ip, "ip"),
    CONTEXT(client, user_agent, "userAgent"),
    FREE(properties, PROPERTIES),
};
/* clang-format on */

const size_t nb_schema_nfields =
    sizeof(nb_schema_fields) / sizeof(nb_schema_fields[0]);

_Static_assert(sizeof(nb_schema_fields) / sizeof(nb_schema_fields[0]) <=
	NB_SCHEMA_FIELDS_MAX,
    "NB_SCHEMA_FIELDS_MAX");

/* The contract's event names (section 3), one line each. */
#define NAME(t, e)                                                             \
	{                                                                      \
		t, sizeof(t) - 1, e                                            \
	}

static const struct {
	const char *type;
	size_t typelen;
	const char *event;
} default_names[] = {
    NAME("email.sent", "Email Sent"),
    NAME("email.delivered", "Email Delivered"),
    NAME("email.opened", "Email Opened"),
    NAME("email.clicked", "Email Link Clicked"),
    NAME("email.bounced", "Email Bounced"),
    NAME("email.spam_reported", "Email Marked as Spam"),
    NAME("email.unsubscribed", "Unsubscribed"),
    NAME("email.dropped", "Email Dropped"),
    NAME("email.deferred", "Email Deferred"),
};

/*
 * The index: each row's parent row (-1 at the top), the row of each role,
 * the rows of each destination (a bit each), and the keys of each object
 * (group 0: the event's own members; an object row's group is its own) by
 * length: first[group][length] is row + 1 of the first such key (0: none),
 * next[row] of the next one alike.  Keys of LEN_SLOTS - 1 bytes or more
 * share the last slot.  word[row] holds each key as two words (see
 * key_words()), so a lookup compares keys without a call.
 */
#define LEN_SLOTS  16
#define GROUP_NONE (NB_SCHEMA_FIELDS_MAX + 1) /* rows without leaves */
#define WORDS_MAX  16			      /* longer keys: memcmp() */

_Static_assert(NB_SCHEMA_FIELDS_MAX <= 64, "a row is a bit of a mask");

static struct {
	signed char parent[NB_SCHEMA_FIELDS_MAX];
	signed char role[NB_SCHEMA_ROLES];
	uint64_t dest[NB_SCHEMA_CONTEXT + 1];
	uint64_t word[NB_SCHEMA_FIELDS_MAX][2];
	unsigned char group[NB_SCHEMA_FIELDS_MAX];
	unsigned char next[NB_SCHEMA_FIELDS_MAX];
	unsigned char first[GROUP_NONE + 1][LEN_SLOTS];
} idx;
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;
static atomic_int idx_ready;

/*
 * Two words that hold a key of len bytes (1..WORDS_MAX) whole, from loads
 * inside it (overlapping when it is short), as small-memcmp code does: two
 * keys of one length are equal exactly when their words are.
 */
static inline void
key_words(const char *k, size_t len, uint64_t w[2])
{
	uint32_t a, b;

	if (len >= 8) {
		memcpy(&w[0], k, 8);
		memcpy(&w[1], k + len - 8, 8);
	} else if (len >= 4) {
		memcpy(&a, k, 4);
		memcpy(&b, k + len - 4, 4);
		w[0] = a;
		w[1] = b;
	} else {
		w[0] = (uint64_t)(unsigned char)k[0] |
		    (uint64_t)(unsigned char)k[len / 2] << 8 |
		    (uint64_t)(unsigned char)k[len - 1] << 16;
		w[1] = 0;
	}
}

static void
idx_build(void)
{
	const struct nb_schema_field *f;
	unsigned char *link;
	int obj = -1, i, g;

	memset(idx.role, -1, sizeof(idx.role));
	for (i = 0; i < (int)nb_schema_nfields; i++) {
		f = &nb_schema_fields[i];
		if (f->parent == NULL)
			obj = f->rule == NB_SCHEMA_OBJECT ? i : -1;
		idx.parent[i] = (signed char)(f->parent == NULL ? -1 : obj);
		idx.group[i] = (unsigned char)(f->parent == NULL &&
			    f->rule == NB_SCHEMA_OBJECT
			? i + 1
			: GROUP_NONE);
		if (f->role != NB_SCHEMA_NO_ROLE)
			idx.role[f->role] = (signed char)i;
		idx.dest[f->dest] |= (uint64_t)1 << i;
		if (f->keylen <= WORDS_MAX)
			key_words(f->key, f->keylen, idx.word[i]);
		g = f->parent == NULL ? 0 : idx.group[obj];
		link = &idx.first[g][f->keylen < LEN_SLOTS ? f->keylen
							   : LEN_SLOTS - 1];
		while (*link != 0)
			link = &idx.next[*link - 1];
		*link = (unsigned char)(i + 1);
	}
	atomic_store_explicit(&idx_ready, 1, memory_order_release);
}

static inline void
idx_need(void)
{
	if (!atomic_load_explicit(&idx_ready, memory_order_acquire))
		(void)pthread_once(&idx_once, idx_build);
}

/*
 * The rows from r + 1 on whose key is key, when it is longer than
 * WORDS_MAX.  Apart, so that nb_schema_find() needs no frame for the call.
 */
static __attribute__((noinline)) int
find_long(unsigned r, const char *key, size_t len)
{
	for (; r != 0; r = idx.next[r - 1])
		if (nb_schema_fields[r - 1].keylen == len &&
		    memcmp(nb_schema_fields[r - 1].key, key, len) == 0)
			return (int)r - 1;
	return -1;
}

int
nb_schema_find(int parent, const char *key, size_t len)
{
	uint64_t w[2];
	unsigned r, g;

	if (len == 0 || len > UINT8_MAX || parent >= (int)nb_schema_nfields)
		return -1;
	idx_need();
	g = parent < 0 ? 0 : idx.group[parent];
	r = idx.first[g][len < LEN_SLOTS ? len : LEN_SLOTS - 1];
	if (r == 0)
		return -1;
	if (len > WORDS_MAX)
		return find_long(r, key, len);
	key_words(key, len, w);
	for (; r != 0; r = idx.next[r - 1])
		if (idx.word[r - 1][0] == w[0] && idx.word[r - 1][1] == w[1] &&
		    nb_schema_fields[r - 1].keylen == len)
			return (int)r - 1;
	return -1;
}

int
nb_schema_scan(struct nb_jscan *s, int parent, unsigned depth, uint64_t *seen,
    nb_schema_member_cb cb, void *arg)
{
	struct nb_jscan_iter it;
	struct nb_jscan_tok k, v;
	uint64_t bit;
	int r, row;

	if (nb_jscan_open(s, &it, NULL, depth) == -1)
		return -1;
	while ((r = nb_jscan_next(s, &it, &k)) == 1) {
		if ((row = nb_schema_find(parent, k.p, k.len)) == -1) {
			if (nb_jscan_value(s, &v, depth + 1) == -1)
				return -1;
			continue;
		}
		bit = (uint64_t)1 << row;
		if ((*seen & bit) || cb(s, row, depth + 1, arg) == -1)
			return -1;
		*seen |= bit;
	}
	return r;
}

uint64_t
nb_schema_rows(enum nb_schema_dest dest)
{
	if ((unsigned)dest > NB_SCHEMA_CONTEXT)
		return 0;
	idx_need();
	return idx.dest[dest];
}

int
nb_schema_row(enum nb_schema_role role)
{
	if ((unsigned)role >= NB_SCHEMA_ROLES)
		return -1;
	idx_need();
	return idx.role[role];
}

static int
is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/*
 * Counts the characters of a valid UTF-8 string up to max + 1; 0 if any
 * is a control character.
 */
static size_t
text_chars(const char *str, size_t len, size_t max)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i, n = 0;

	/* Printable ASCII, the usual case: a character a byte. */
	for (i = 0; i < len && (unsigned char)(s[i] - 0x20) < 0x5f; i++)
		;
	if (i == len)
		return len > max ? max + 1 : len;
	for (i = 0; i < len && n <= max; i++) {
		if (is_control(s[i]))
			return 0;
		/* Continuation bytes do not start a character. */
		if ((s[i] & 0xc0) != 0x80)
			n++;
	}
	return n;
}

int
nb_schema_check(const struct nb_schema_field *f, const char *s, size_t len)
{
	int64_t ms;
	size_t i, n;

	switch (f->rule) {
	case NB_SCHEMA_TEXT:
		return text_chars(s, len, SIZE_MAX - 1) != 0;
	case NB_SCHEMA_EVENT_ID:
		if (len < 1 || len > NB_SCHEMA_ID_MAX)
			return 0;
		for (i = 0; i < len; i++)
			if ((unsigned char)s[i] < 0x21 ||
			    (unsigned char)s[i] > 0x7e)
				return 0;
		return 1;
	case NB_SCHEMA_EVENT_TYPE:
		n = text_chars(s, len, NB_SCHEMA_TYPE_MAX);
		return n >= 1 && n <= NB_SCHEMA_TYPE_MAX;
	case NB_SCHEMA_TIME:
		return nb_time_parse_rfc3339(s, len, &ms) == 0;
	default:
		return 1;
	}
}

const char *
nb_schema_event_name(const char *type)
{
	size_t i, len = strlen(type);

	for (i = 0; i < sizeof(default_names) / sizeof(default_names[0]); i++)
		if (default_names[i].typelen == len &&
		    memcmp(default_names[i].type, type, len) == 0)
			return default_names[i].event;
	return NULL;
}
