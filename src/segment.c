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
 * state: any thread may call it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "nudgebridge/config.h"
#include "nudgebridge/segment.h"
#include "nudgebridge/timeutil.h"

#define EMAIL_MAX 1024 /* longer than any valid address; bounds the copy */

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

int
nb_segment_track_text(const struct nb_source *src, const char *raw,
    size_t rawlen, char **out, size_t *outlen, const char **err)
{
	json_t *msg;
	char *text;

	*out = NULL;
	*outlen = 0;
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
