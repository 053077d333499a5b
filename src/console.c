/* SPDX-License-Identifier: ISC */
/*
 * console: serves the operator console's files from the binary.
 *
 * cmake/embed.cmake turns src/console/ into console_assets.inc at build
 * time: one static byte array per file and a table of them.  Nothing here
 * touches the disk, the store or the token: the page is public and inert,
 * and everything it shows comes from the admin API, which authenticates
 * each call.  The Content-Security-Policy allows scripts, styles and
 * fetch() only from this origin, so even an event payload that smuggles
 * markup into the page cannot run code or send data elsewhere.  One file
 * is written here instead: /console/reasons.js hands the page the store's
 * list of dead-letter reasons (store.h), so the page's reason filter
 * never lists other ones than the grammar takes.  Runs on the admin
 * listener's thread.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "nudgebridge/console.h"
#include "nudgebridge/httpd.h"
#include "nudgebridge/store.h"

struct console_asset {
	const char *path;
	const char *type;
	const unsigned char *data;
	size_t len;
};

#include "console_assets.inc"

#define CONSOLE_CSP                                                            \
	"default-src 'none'; script-src 'self'; style-src 'self'; "            \
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; "          \
	"form-action 'self'; frame-ancestors 'none'"

/* window.NB_REASONS = ["quarantined", ...]: written once, then static. */
static char reasons_js[512];
static struct console_asset reasons_asset = {"/console/reasons.js",
    "text/javascript; charset=utf-8", (const unsigned char *)reasons_js, 0};
static pthread_once_t reasons_once = PTHREAD_ONCE_INIT;

static void
reasons_write(void)
{
	static const char *const reasons[] = {NB_STORE_REASONS};
	size_t i, off;
	int r;

	r = snprintf(reasons_js, sizeof(reasons_js),
	    "\"use strict\";\nwindow.NB_REASONS = [");
	for (i = 0; r >= 0 && i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		off = strlen(reasons_js);
		r = snprintf(reasons_js + off, sizeof(reasons_js) - off,
		    "%s\"%s\"", i > 0 ? ", " : "", reasons[i]);
	}
	off = strlen(reasons_js);
	snprintf(reasons_js + off, sizeof(reasons_js) - off, "];\n");
	reasons_asset.len = strlen(reasons_js);
}

static const struct console_asset *
find_asset(const char *path)
{
	size_t i;

	if (path == NULL)
		return NULL;
	if (strcmp(path, reasons_asset.path) == 0) {
		pthread_once(&reasons_once, reasons_write);
		return &reasons_asset;
	}
	if (strcmp(path, "/index.html") == 0)
		path = "/";
	for (i = 0; i < sizeof(assets) / sizeof(assets[0]); i++)
		if (strcmp(assets[i].path, path) == 0)
			return &assets[i];
	return NULL;
}

int
nb_console_match(const char *path)
{
	return find_asset(path) != NULL;
}

const unsigned char *
nb_console_asset(const char *path, size_t *len, const char **type)
{
	const struct console_asset *a = find_asset(path);

	if (a == NULL)
		return NULL;
	*len = a->len;
	*type = a->type;
	return a->data;
}

void
nb_console_serve(struct evhttp_request *req, const char *path)
{
	const struct console_asset *a = find_asset(path);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *body = NULL;

	if (a == NULL) {
		nb_httpd_reply_error(req, 404, "not_found", "no such path");
		return;
	}
	if ((body = evbuffer_new()) == NULL ||
	    evbuffer_add_reference(body, a->data, a->len, NULL, NULL) == -1) {
		if (body != NULL)
			evbuffer_free(body);
		nb_httpd_reply_error(
		    req, 503, "unavailable", "out of memory; retry later");
		return;
	}
	evhttp_remove_header(h, "Content-Type");
	evhttp_add_header(h, "Content-Type", a->type);
	evhttp_add_header(h, "Content-Security-Policy", CONSOLE_CSP);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Cache-Control", "no-cache");
	nb_httpd_send(req, 200, body); /* HEAD: the headers alone */
	evbuffer_free(body);
}
