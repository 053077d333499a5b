/* SPDX-License-Identifier: ISC */
/*
 * Fuzz target for segment: arbitrary bytes as a stored event.
 *
 * The mapping must never crash, and a message it builds must serialise and
 * carry the fields every Track call needs (type, event, an identity, a
 * messageId, a timestamp, properties), whatever the input.  Whatever the
 * direct encoder accepts must be byte for byte the jansson path's compact
 * dump, and nb_segment_track_text() must always agree with that dump.
 * Both anonymous id modes are exercised, the first with the legacy
 * messageId rule and the second with the install rule, with a source that
 * overrides two event names, one of them with characters that need
 * escaping.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "nudgebridge/config.h"
#include "nudgebridge/segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char source_name[] = "acme";

static void
check_message(const json_t *m)
{
	const char *id;
	char *text;

	if (!json_is_string(json_object_get(m, "event")) ||
	    !json_is_object(json_object_get(m, "properties")) ||
	    !json_is_object(json_object_get(m, "context")) ||
	    !json_is_string(json_object_get(m, "timestamp")) ||
	    strlen(json_string_value(json_object_get(m, "timestamp"))) != 24)
		abort();
	if (json_object_get(m, "userId") == NULL &&
	    json_object_get(m, "anonymousId") == NULL)
		abort();
	id = json_string_value(json_object_get(m, "messageId"));
	if (id == NULL || strlen(id) > 100)
		abort();
	if ((text = json_dumps(m, JSON_COMPACT)) == NULL)
		abort();
	free(text);
}

/* The direct encoder and nb_segment_track_text() against the dump want. */
static void
check_agreement(const struct nb_source *src, const struct nb_segment_origin *o,
    const uint8_t *data, size_t size, const char *want)
{
	char *text = NULL;
	size_t len = 0;

	if (nb_segment_track_text_direct(
		&src->mapping, o, (const char *)data, size, &text, &len) == 0) {
		if (want == NULL || len != strlen(text) ||
		    strcmp(text, want) != 0)
			abort();
		free(text);
	}
	text = NULL;
	if (nb_segment_track_text(&src->mapping, o, (const char *)data, size,
		&text, &len, NULL) == 0) {
		if (want == NULL || len != strlen(text) ||
		    strcmp(text, want) != 0)
			abort();
	} else if (want != NULL || text != NULL)
		abort();
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *names;
	static struct nb_segment_install install;
	struct nb_source src = {.name = source_name};
	struct nb_segment_origin o = {
	    source_name, NB_SEGMENT_RULE_LEGACY, NULL};
	const char *err = NULL;
	char *want;
	json_t *m;
	int mode;

	if (sodium_init() < 0 ||
	    (install.id[0] == '\0' &&
		nb_segment_install_init(
		    &install, "0123456789abcdef0123456789abcdef") == -1))
		abort();
	if (names == NULL &&
	    (names = json_pack("{s:s,s:s}", "email.unsubscribed",
		 "Email Unsubscribed", "custom.x",
		 "Say \"hi\"\n\x01 \xc3\xa9")) == NULL)
		abort();
	src.mapping.event_names = names;
	for (mode = 0; mode < 2; mode++) {
		src.mapping.anon =
		    mode ? NB_SEGMENT_ANON_SHA256 : NB_SEGMENT_ANON_EMAIL;
		o.rule =
		    mode ? NB_SEGMENT_RULE_INSTALL : NB_SEGMENT_RULE_LEGACY;
		o.install = mode ? &install : NULL;
		want = NULL;
		m = nb_segment_track(
		    &src.mapping, &o, (const char *)data, size, &err);
		if (m == NULL) {
			if (err == NULL)
				abort();
		} else {
			check_message(m);
			if ((want = json_dumps(m, JSON_COMPACT)) == NULL)
				abort();
			json_decref(m);
		}
		check_agreement(&src, &o, data, size, want);
		free(want);
	}
	return 0;
}
