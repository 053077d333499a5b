/* SPDX-License-Identifier: ISC */
/*
 * config_source: one sender as the configuration describes it.
 *
 * A source is a name the store files everything by, the keys its
 * requests are verified with, the write key and endpoint its events go to,
 * its mapping, its OAuth client and its filters.  config_source.c reads
 * the "sources" section into these; config.h holds them in a struct
 * nb_config, immutable once loaded, and the receiver, the deliverer and
 * the operator's tools read them there.
 */
#ifndef NB_CONFIG_SOURCE_H
#define NB_CONFIG_SOURCE_H

#include <stdint.h>

#include "nudgebridge/filter.h"	 /* struct nb_filter */
#include "nudgebridge/oauth.h"	 /* struct nb_oauth_config */
#include "nudgebridge/segment.h" /* struct nb_mapping */

struct nb_keyring;

#define NB_ENDPOINT_US "https://api.segment.io"
#define NB_ENDPOINT_EU "https://events.eu1.segmentapis.com"

struct nb_source {
	char *name;
	struct nb_keyring *keys; /* secrets and public keys, see sig.h */
	char *write_key;
	char *endpoint; /* resolved: source endpoint, region, global */
	struct nb_mapping mapping; /* anonymous_id, event_names (segment.h) */
	struct nb_oauth_config oauth; /* zeroed (key NULL) without "oauth" */
	/* source_silent after this long without a verified request; 0 off */
	int64_t silent_after_s;
	struct nb_filter drop; /* drop_types (filter.h) */
};

/* 1 when name matches [a-z0-9][a-z0-9_-]{0,62}, else 0. */
int nb_config_source_name_valid(const char *name);

#endif
