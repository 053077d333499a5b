/* SPDX-License-Identifier: ISC */
/*
 * bounds: the sizes every module holds a source and its keys to.
 *
 * A source's name files rows, counters, errors, activity and alerts, and
 * a configuration holds at most so many sources and keys; the modules that
 * size arrays by these include this header alone, so a bound is written
 * once and no low module has to reach the configuration or the store for
 * a number.
 */
#ifndef NB_BOUNDS_H
#define NB_BOUNDS_H

/*
 * Longest source name, NUL not included: the store files rows, counters
 * and errors by source; config.c checks every configured name against it.
 */
#define NB_SOURCE_NAME_MAX 63

/* Sources one configuration holds, and keys (secrets + public) per source. */
#define NB_CONFIG_MAX_SOURCES 1024
#define NB_CONFIG_MAX_KEYS    32

#endif
