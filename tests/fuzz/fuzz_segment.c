/* SPDX-License-Identifier: ISC */
/*
 * Fuzz target for segment: arbitrary bytes as a stored event.
 *
 * The mapping must never crash, and a message it builds must serialise and
 * carry the fields every Track call needs (type, event, an identity, a
 * messageId, a timestamp, properties), whatever the input.  Both anonymous
 * id modes are exercised with a source that overrides one event name.
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *names;
	struct nb_source src = {.name = source_name};
	const char *err = NULL;
	char *text = NULL;
	size_t len = 0;
	json_t *m;
	int mode;

	if (sodium_init() < 0)
		abort();
	if (names == NULL &&
	    (names = json_pack(
		 "{s:s}", "email.unsubscribed", "Email Unsubscribed")) == NULL)
		abort();
	src.event_names = names;
	for (mode = 0; mode < 2; mode++) {
		src.anon = mode ? NB_ANON_SHA256 : NB_ANON_EMAIL;
		m = nb_segment_track(&src, (const char *)data, size, &err);
		if (m == NULL) {
			if (err == NULL)
				abort();
			continue;
		}
		check_message(m);
		json_decref(m);
		if (nb_segment_track_text(&src, (const char *)data, size, &text,
			&len, NULL) == -1 ||
		    strlen(text) != len)
			abort();
		free(text);
	}
	return 0;
}
