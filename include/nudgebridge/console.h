/* SPDX-License-Identifier: ISC */
/*
 * console: the operator console, a single web page shipped inside the binary.
 *
 * The page (src/console/index.html, console.css, console.js, events.js) is
 * compiled in at build time, so it works without the internet and needs
 * nothing deployed beside the daemon.  The admin listener serves it at "/"
 * without authentication: it is static and holds no data.  The page itself
 * asks for the admin token and sends it as "Authorization: Bearer" on
 * fetch() calls to the admin API, which checks it as for any other client.
 * Runs on the admin listener's thread; keeps no state.
 */
#ifndef NB_CONSOLE_H
#define NB_CONSOLE_H

#include <stddef.h>

struct evhttp_request;

/*
 * 1 when path names one of the console's files ("/", "/index.html",
 * "/console/console.css", "/console/console.js", "/console/events.js",
 * "/console/reasons.js": the store's dead-letter reasons), else 0.
 */
int nb_console_match(const char *path);

/*
 * Answers req with the console file at path: 200 with its media type,
 * strict security headers (a Content-Security-Policy that allows only this
 * origin, no framing, no referrer) and Cache-Control: no-cache; HEAD gets
 * the headers alone.  404 JSON for any other path.  Answers exactly once.
 */
void nb_console_serve(struct evhttp_request *req, const char *path);

/*
 * The embedded bytes of the file at path (as for nb_console_match()), with
 * its length in *len and its media type in *type; NULL when there is none.
 * Borrowed, static.  For tests.
 */
const unsigned char *nb_console_asset(
    const char *path, size_t *len, const char **type);

#endif
