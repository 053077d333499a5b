/* SPDX-License-Identifier: ISC */
/*
 * test_schema: the event table walked as the parser and the mapper walk it.
 *
 * Every leaf is validated (a rule and its messages) and mapped (a role or
 * a destination), keys are unique in their object, destination names are
 * unique, and walking the table gives the contract's order: the rule
 * messages nudgespot.h lists, the properties and context members of
 * CONTRACT.md section 3.  Nothing here names a row by its index, so a row
 * added to the table (one line) is checked like the others; the
 * differential tests of test_nudgespot and test_segment then hold both
 * paths of the parser and of the mapper to it.  Also: lookups by key,
 * the string rules at their bounds, the default event names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "nudgebridge/schema.h"

#define NROWS  nb_schema_nfields
#define ROW(i) (&nb_schema_fields[(i)])

/* The object row a leaf belongs to: the last top-level row before it. */
static size_t
object_of(size_t i)
{
	while (i > 0 && ROW(i)->parent != NULL)
		i--;
	return i;
}

static void
test_rows(void **state)
{
	const struct nb_schema_field *f, *o;
	char want[128];
	size_t i, j;

	(void)state;
	assert_true(NROWS > 0 && NROWS <= NB_SCHEMA_FIELDS_MAX);
	assert_null(ROW(0)->parent);
	for (i = 0; i < NROWS; i++) {
		f = ROW(i);
		assert_non_null(f->key);
		assert_int_equal(f->keylen, strlen(f->key));
		assert_true(f->keylen > 0);
		assert_non_null(f->name);
		assert_int_equal(f->namelen, strlen(f->name));
		assert_non_null(f->not_type);
		if (f->parent == NULL) {
			/* Members of the event: their messages name them. */
			snprintf(want, sizeof(want), "%s: must be %s", f->key,
			    nb_schema_is_string(f) ? "a string" : "an object");
			assert_string_equal(f->not_type, want);
			continue;
		}
		/* A leaf: a string under the object row above it. */
		o = ROW(object_of(i));
		if (o->rule != NB_SCHEMA_OBJECT)
			fail_msg("leaf %s.%s not under an object row",
			    f->parent, f->key);
		assert_string_equal(f->parent, o->key);
		assert_true(nb_schema_is_string(f));
		snprintf(want, sizeof(want), "%s.%s: must be a string",
		    f->parent, f->key);
		assert_string_equal(f->not_type, want);
		/* Validated and mapped. */
		if (f->role == NB_SCHEMA_NO_ROLE &&
		    f->dest == NB_SCHEMA_NOWHERE)
			fail_msg("leaf %s.%s is not mapped", f->parent, f->key);
		if (f->dest != NB_SCHEMA_NOWHERE) {
			assert_true(f->namelen > 0);
			snprintf(want, sizeof(want), ",\"%s\":\"", f->name);
			assert_string_equal(f->member, want);
			assert_int_equal(f->memberlen, strlen(f->member));
		}
		if (f->rule == NB_SCHEMA_STRING)
			assert_null(f->broken);
		else
			assert_non_null(f->broken);
		/* Leaves are optional; an object may need one of them. */
		assert_null(f->missing);
	}
	/* Keys unique in their object, names unique in their destination. */
	for (i = 0; i < NROWS; i++) {
		for (j = i + 1; j < NROWS; j++) {
			f = ROW(i);
			o = ROW(j);
			if (((f->parent == NULL && o->parent == NULL) ||
				(f->parent != NULL && o->parent != NULL &&
				    object_of(i) == object_of(j))) &&
			    strcmp(f->key, o->key) == 0)
				fail_msg("key %s twice", f->key);
			if (f->dest != NB_SCHEMA_NOWHERE &&
			    f->dest == o->dest && strcmp(f->name, o->name) == 0)
				fail_msg("name %s twice", f->name);
		}
	}
}

/* Each role is played by one row, the one the contract names. */
static void
test_roles(void **state)
{
	static const struct {
		enum nb_schema_role role;
		const char *parent, *key;
	} roles[] = {
	    {NB_SCHEMA_MESSAGE_ID, NULL, "id"},
	    {NB_SCHEMA_EVENT, NULL, "type"},
	    {NB_SCHEMA_TIMESTAMP, NULL, "occurred_at"},
	    {NB_SCHEMA_USER_ID, "subscriber", "uid"},
	    {NB_SCHEMA_ANONYMOUS_ID, "subscriber", "email"},
	    {NB_SCHEMA_PROPERTIES, NULL, "properties"},
	};
	const struct nb_schema_field *f;
	size_t i, j, n;

	(void)state;
	for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		for (j = 0, n = 0; j < NROWS; j++)
			n += ROW(j)->role == roles[i].role;
		assert_int_equal(n, 1);
		f = ROW(nb_schema_row(roles[i].role));
		assert_int_equal(f->role, roles[i].role);
		assert_string_equal(f->key, roles[i].key);
		if (roles[i].parent == NULL)
			assert_null(f->parent);
		else
			assert_string_equal(f->parent, roles[i].parent);
	}
	assert_int_equal(nb_schema_row(NB_SCHEMA_ROLES), -1);
	assert_int_equal(
	    ROW(nb_schema_row(NB_SCHEMA_PROPERTIES))->rule, NB_SCHEMA_FREE);
}

/*
 * The rule messages in the order the parser reports them, as it walks the
 * table: nudgespot.h's list (less "event: must be an object", which is
 * about the whole object).
 */
static void
test_contract_order(void **state)
{
	static const char *const want[] = {
	    "id: missing",
	    "id: must be a string",
	    "id: must be 1..128 printable ASCII characters",
	    "type: missing",
	    "type: must be a string",
	    "type: must be 1..64 characters without control characters",
	    "occurred_at: missing",
	    "occurred_at: must be a string",
	    "occurred_at: not an RFC 3339 date-time",
	    "subscriber: missing",
	    "subscriber: must be an object",
	    "subscriber.uid: must be a string",
	    "subscriber.uid: must be non-empty without control characters",
	    "subscriber.email: must be a string",
	    "subscriber.email: must be non-empty without control characters",
	    "subscriber: needs uid or email",
	    "message: must be an object",
	    "message.id: must be a string",
	    "message.subject: must be a string",
	    "message.campaign_id: must be a string",
	    "message.campaign_name: must be a string",
	    "link: must be an object",
	    "link.id: must be a string",
	    "link.url: must be a string",
	    "bounce: must be an object",
	    "bounce.type: must be a string",
	    "bounce.reason: must be a string",
	    "list: must be an object",
	    "list.id: must be a string",
	    "list.name: must be a string",
	    "client: must be an object",
	    "client.ip: must be a string",
	    "client.user_agent: must be a string",
	    "properties: must be an object",
	};
	const char *got[4 * NB_SCHEMA_FIELDS_MAX];
	const struct nb_schema_field *f, *obj = NULL;
	size_t i, n = 0;

	(void)state;
	for (i = 0; i <= NROWS; i++) {
		f = i < NROWS ? ROW(i) : NULL;
		/* An object's "needs one" comes after its leaves. */
		if ((f == NULL || f->parent == NULL) && obj != NULL &&
		    obj->broken != NULL)
			got[n++] = obj->broken;
		if (f == NULL)
			break;
		if (f->parent == NULL)
			obj = f->rule == NB_SCHEMA_OBJECT ? f : NULL;
		if (f->missing != NULL)
			got[n++] = f->missing;
		got[n++] = f->not_type;
		if (f->broken != NULL && nb_schema_is_string(f))
			got[n++] = f->broken;
	}
	for (i = 0; i < n && i < sizeof(want) / sizeof(want[0]); i++)
		assert_string_equal(got[i], want[i]);
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
}

/* Properties and context members in CONTRACT.md section 3's order. */
static void
test_contract_mapping(void **state)
{
	static const char *const props[][2] = {
	    {"message.id", "email_id"},
	    {"message.subject", "email_subject"},
	    {"message.campaign_id", "campaign_id"},
	    {"message.campaign_name", "campaign_name"},
	    {"link.id", "link_id"},
	    {"link.url", "link_url"},
	    {"bounce.type", "bounce_type"},
	    {"bounce.reason", "bounce_reason"},
	    {"list.id", "list_id"},
	    {"list.name", "list_name"},
	};
	static const char *const context[][2] = {
	    {"subscriber.email", "traits.email"},
	    {"client.ip", "ip"},
	    {"client.user_agent", "userAgent"},
	};
	const struct nb_schema_field *f;
	size_t i, np = 0, nc = 0;
	char path[128];
	uint64_t pm = 0, cm = 0;

	(void)state;
	for (i = 0; i < NROWS; i++) {
		f = ROW(i);
		snprintf(path, sizeof(path), "%s.%s",
		    f->parent != NULL ? f->parent : "", f->key);
		if (f->dest == NB_SCHEMA_PROPERTY) {
			assert_true(np < sizeof(props) / sizeof(props[0]));
			assert_string_equal(path, props[np][0]);
			assert_string_equal(f->name, props[np][1]);
			pm |= (uint64_t)1 << i;
			np++;
		} else if (f->dest == NB_SCHEMA_CONTEXT) {
			assert_true(nc < sizeof(context) / sizeof(context[0]));
			assert_string_equal(path, context[nc][0]);
			assert_string_equal(f->name, context[nc][1]);
			cm |= (uint64_t)1 << i;
			nc++;
		}
	}
	assert_int_equal(np, sizeof(props) / sizeof(props[0]));
	assert_int_equal(nc, sizeof(context) / sizeof(context[0]));
	assert_true(nb_schema_rows(NB_SCHEMA_PROPERTY) == pm);
	assert_true(nb_schema_rows(NB_SCHEMA_CONTEXT) == cm);
}

/*
 * Context members "a.b" with one "a" are adjacent among the context rows:
 * the direct encoder writes each such object whole, as jansson does.
 */
static void
test_context_groups(void **state)
{
	const struct nb_schema_field *f;
	const char *names[NB_SCHEMA_FIELDS_MAX];
	size_t i, j, k, n = 0, la, lb;

	(void)state;
	for (i = 0; i < NROWS; i++) {
		f = ROW(i);
		if (f->dest == NB_SCHEMA_CONTEXT)
			names[n++] = f->name;
	}
	for (i = 0; i < n; i++) {
		la = strcspn(names[i], ".");
		if (names[i][la] != '.')
			continue;
		for (j = i + 1; j < n; j++) {
			lb = strcspn(names[j], ".");
			if (names[j][lb] != '.' || la != lb ||
			    memcmp(names[i], names[j], la) != 0)
				continue;
			for (k = i + 1; k < j; k++)
				if (strncmp(names[k], names[i], la + 1) != 0)
					fail_msg("%s and %s are apart",
					    names[i], names[j]);
		}
	}
}

/* Every row is found by its key under its object, and only there. */
static void
test_find(void **state)
{
	static const char *const misses[] = {"i", "ids", "Id", "typ", "types",
	    "occurred_az", "subscribers", "propertie", "uid", "email",
	    "user_agent", "campaign_idx", "x", "abcdefghijklmnopq",
	    "occurred_at_and_more_than_sixteen"};
	const struct nb_schema_field *f;
	char key[64];
	size_t i, j;
	int parent;

	(void)state;
	for (i = 0; i < NROWS; i++) {
		f = ROW(i);
		parent = f->parent == NULL ? -1 : (int)object_of(i);
		/* Not NUL-terminated: the lookup reads len bytes. */
		memcpy(key, f->key, f->keylen);
		key[f->keylen] = '"';
		assert_int_equal(nb_schema_find(parent, key, f->keylen), i);
		/* One byte off at each place is another key. */
		for (j = 0; j < f->keylen; j++) {
			key[j] ^= 0x20;
			assert_int_not_equal(
			    nb_schema_find(parent, key, f->keylen), i);
			key[j] ^= 0x20;
		}
		assert_int_equal(
		    nb_schema_find(parent, key, f->keylen + 1), -1);
		if (f->keylen > 1)
			assert_int_not_equal(
			    nb_schema_find(parent, key, f->keylen - 1), i);
		/* Leaves are not members of the event, nor the other way. */
		if (f->parent != NULL)
			assert_int_not_equal(
			    nb_schema_find(-1, f->key, f->keylen), i);
		/* Nothing is under a leaf or the free-form object. */
		if (f->rule != NB_SCHEMA_OBJECT)
			for (j = 0; j < NROWS; j++)
				assert_int_equal(
				    nb_schema_find(
					(int)i, ROW(j)->key, ROW(j)->keylen),
				    -1);
	}
	for (i = 0; i < sizeof(misses) / sizeof(misses[0]); i++)
		assert_int_equal(
		    nb_schema_find(-1, misses[i], strlen(misses[i])), -1);
	assert_int_equal(nb_schema_find(-1, "id", 0), -1);
	assert_int_equal(nb_schema_find((int)NROWS, "id", 2), -1);
}

static const struct nb_schema_field *
role_row(enum nb_schema_role role)
{
	return ROW(nb_schema_row(role));
}

static void
check_rule(enum nb_schema_role role, const char *s, size_t len, int want)
{
	if (nb_schema_check(role_row(role), s, len) != want)
		fail_msg("%s \"%.*s\" (%zu bytes): want %d",
		    role_row(role)->key, (int)len, s, len, want);
}

/* The string rules at their bounds. */
static void
test_check(void **state)
{
	char buf[300];
	size_t i;

	(void)state;
	memset(buf, 'x', sizeof(buf));
	check_rule(NB_SCHEMA_MESSAGE_ID, buf, NB_SCHEMA_ID_MAX, 1);
	check_rule(NB_SCHEMA_MESSAGE_ID, buf, NB_SCHEMA_ID_MAX + 1, 0);
	check_rule(NB_SCHEMA_MESSAGE_ID, buf, 0, 0);
	check_rule(NB_SCHEMA_MESSAGE_ID, "a b", 3, 0);
	check_rule(NB_SCHEMA_MESSAGE_ID, "a\x7f", 2, 0);
	check_rule(NB_SCHEMA_MESSAGE_ID, "!~", 2, 1);
	check_rule(NB_SCHEMA_MESSAGE_ID, "\xc3\xa9", 2, 0);

	check_rule(NB_SCHEMA_EVENT, buf, NB_SCHEMA_TYPE_MAX, 1);
	check_rule(NB_SCHEMA_EVENT, buf, NB_SCHEMA_TYPE_MAX + 1, 0);
	check_rule(NB_SCHEMA_EVENT, buf, 0, 0);
	check_rule(NB_SCHEMA_EVENT, "a b", 3, 1);
	check_rule(NB_SCHEMA_EVENT, "a\tb", 3, 0);
	check_rule(NB_SCHEMA_EVENT, "a\x7f", 2, 0);
	check_rule(NB_SCHEMA_EVENT, "a\0b", 3, 0);
	/* 64 characters of two bytes each: 128 bytes, still 64. */
	for (i = 0; i < 2 * NB_SCHEMA_TYPE_MAX; i += 2)
		memcpy(buf + i, "\xc3\xa9", 2);
	check_rule(NB_SCHEMA_EVENT, buf, 2 * NB_SCHEMA_TYPE_MAX, 1);
	memcpy(buf + i, "\xc3\xa9", 2);
	check_rule(NB_SCHEMA_EVENT, buf, 2 * NB_SCHEMA_TYPE_MAX + 2, 0);

	check_rule(NB_SCHEMA_USER_ID, "u", 1, 1);
	check_rule(NB_SCHEMA_USER_ID, "", 0, 0);
	check_rule(NB_SCHEMA_USER_ID, "u\n", 2, 0);
	check_rule(NB_SCHEMA_ANONYMOUS_ID, "\xc3\xa9@x", 4, 1);
	check_rule(NB_SCHEMA_ANONYMOUS_ID, "a\x7f", 2, 0);
	memset(buf, 'm', sizeof(buf));
	check_rule(NB_SCHEMA_ANONYMOUS_ID, buf, sizeof(buf), 1);

	check_rule(NB_SCHEMA_TIMESTAMP, "2026-11-28T09:59:58.123Z", 24, 1);
	check_rule(NB_SCHEMA_TIMESTAMP, "2026-11-28T09:59:58+01:00", 25, 1);
	check_rule(NB_SCHEMA_TIMESTAMP, "2026-02-29T09:59:58Z", 20, 0);
	check_rule(NB_SCHEMA_TIMESTAMP, "", 0, 0);
	/* Any string follows a plain string rule. */
	assert_int_equal(
	    nb_schema_check(ROW(nb_schema_find(nb_schema_find(-1, "message", 7),
				"subject", 7)),
		"\n\0", 2),
	    1);
}

static void
test_event_names(void **state)
{
	static const char *const names[][2] = {
	    {"email.sent", "Email Sent"},
	    {"email.delivered", "Email Delivered"},
	    {"email.opened", "Email Opened"},
	    {"email.clicked", "Email Link Clicked"},
	    {"email.bounced", "Email Bounced"},
	    {"email.spam_reported", "Email Marked as Spam"},
	    {"email.unsubscribed", "Unsubscribed"},
	    {"email.dropped", "Email Dropped"},
	    {"email.deferred", "Email Deferred"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_string_equal(
		    nb_schema_event_name(names[i][0]), names[i][1]);
	assert_null(nb_schema_event_name("email.replied"));
	assert_null(nb_schema_event_name("Email.Sent"));
	assert_null(nb_schema_event_name("email.sen"));
	assert_null(nb_schema_event_name("email.sentx"));
	assert_null(nb_schema_event_name(""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rows),
	    cmocka_unit_test(test_roles),
	    cmocka_unit_test(test_contract_order),
	    cmocka_unit_test(test_contract_mapping),
	    cmocka_unit_test(test_context_groups),
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_event_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
