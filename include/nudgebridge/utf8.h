/* SPDX-License-Identifier: ISC */
/*
 * utf8: the one UTF-8 rule of the direct JSON readers.
 *
 * nudgespot.c and segment.c each read JSON without jansson on their hot
 * paths and must accept exactly the text jansson accepts; this is jansson's
 * rule for a UTF-8 sequence, kept in one place.  Pure, any thread.
 */
#ifndef NB_UTF8_H
#define NB_UTF8_H

#include <stddef.h>

/*
 * Length (1..4) of the UTF-8 sequence that starts at p (p < end), or 0
 * when it is not one jansson accepts: a stray continuation byte, an
 * overlong form, a surrogate (U+D800..U+DFFF), a code point above
 * U+10FFFF, or a sequence cut short by end.  An ASCII byte is 1.
 */
size_t nb_utf8_len(const unsigned char *p, const unsigned char *end);

#endif
