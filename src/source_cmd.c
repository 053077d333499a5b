/* SPDX-License-Identifier: ISC */
/*
 * source_cmd: the `nudgebridge source` command line.
 *
 * A face over the edits of source.c and the key report of source_keys.c:
 * it parses the options (opts.h), runs one edit in the frame every edit
 * shares (lock, load, change, check, save, report) and prints what the
 * operator does next.  A key is printed once, when it is made, and wiped
 * from memory after; `list` names keys by number and fingerprint only.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "nudgebridge/config.h"
#include "nudgebridge/oauth.h"
#include "nudgebridge/opts.h"
#include "nudgebridge/sig.h"
#include "nudgebridge/source.h"
#include "nudgebridge/source_keys.h"

#define EXIT_USAGE 2 /* a command line that does not parse */

/* The command line. */

struct source_args {
	struct nb_source_new src; /* NAME and the options add takes */
	const char *config;
	const char *public_url;
	const char *secret_id;
	int force;
};

static void
source_usage(FILE *f)
{
	fprintf(f,
	    "usage: nudgebridge source add NAME --config FILE "
	    "--write-key-env VAR\n"
	    "           [--region us|eu] [--ed25519] [--public-url URL]\n"
	    "           [--oauth-client-id ID --oauth-key-id KID\n"
	    "            (--oauth-key-file PEM | --oauth-key-env VAR)\n"
	    "            [--oauth-auth-server URL]]\n"
	    "       nudgebridge source rotate NAME --config FILE "
	    "[--ed25519]\n"
	    "       nudgebridge source retire NAME --config FILE "
	    "--secret-id ID [--force]\n"
	    "       nudgebridge source list --config FILE\n"
	    "  ID is a key number or fingerprint as `source list` prints "
	    "them.\n");
}

#define SA(m) offsetof(struct source_args, m)

static const struct nb_opt source_opts[] = {
    {NULL, NB_OPT_VALUE, SA(src.name), 0, NULL},
    {"config", NB_OPT_VALUE, SA(config), 1, "FILE"},
    {"write-key-env", NB_OPT_VALUE, SA(src.write_key_env), 0, NULL},
    {"region", NB_OPT_VALUE, SA(src.region), 0, NULL},
    {"public-url", NB_OPT_VALUE, SA(public_url), 0, NULL},
    {"secret-id", NB_OPT_VALUE, SA(secret_id), 0, NULL},
    {"oauth-client-id", NB_OPT_VALUE, SA(src.oauth_client_id), 0, NULL},
    {"oauth-key-id", NB_OPT_VALUE, SA(src.oauth_key_id), 0, NULL},
    {"oauth-key-file", NB_OPT_VALUE, SA(src.oauth_key_file), 0, NULL},
    {"oauth-key-env", NB_OPT_VALUE, SA(src.oauth_key_env), 0, NULL},
    {"oauth-auth-server", NB_OPT_VALUE, SA(src.oauth_auth_server), 0, NULL},
    {"ed25519", NB_OPT_FLAG, SA(src.ed25519), 0, NULL},
    {"force", NB_OPT_FLAG, SA(force), 0, NULL},
};

/* The document of a->config, locked for this edit; NULL (printed). */
static json_t *
load_doc(struct nb_source_edit *e, const char *path)
{
	char err[PATH_MAX + 256];
	json_t *doc;

	if (nb_source_edit_begin(e, path, &doc, err, sizeof(err)) == -1)
		fprintf(stderr, "nudgebridge source: %s\n", err);
	return doc;
}

/* Where Nudgespot posts: --public-url, else the listen address. */
static void
print_url(const struct source_args *a, const json_t *doc, const char *name)
{
	const char *listen = json_string_value(json_object_get(doc, "listen"));
	const char *scheme =
	    json_object_get(doc, "tls") != NULL ? "https" : "http";
	size_t n;

	if (a->public_url != NULL) {
		n = strlen(a->public_url);
		while (n > 0 && a->public_url[n - 1] == '/')
			n--;
		printf("  Webhook URL:     %.*s/v1/webhooks/%s\n", (int)n,
		    a->public_url, name);
		return;
	}
	if (listen == NULL)
		listen = "127.0.0.1:8080";
	printf("  Webhook URL:     %s://%s/v1/webhooks/%s\n", scheme, listen,
	    name);
	printf("                   (the bridge's own address; behind a proxy "
	       "give --public-url URL)\n");
}

static void
print_key(int ed25519, const char *key)
{
	if (ed25519)
		printf("  Signing key:     %s\n"
		       "                   (Ed25519 private key, shown only "
		       "now: the bridge keeps only the public key)\n",
		    key);
	else
		printf("  Signing secret:  %s\n", key);
}

/* Saves doc at path, or says why not. */
static int
save(const char *cmd, const char *path, const json_t *doc)
{
	char err[768];
	int rc;

	rc = nb_source_save_standin(path, doc, err, sizeof(err));
	if (rc == -1)
		fprintf(stderr, "nudgebridge source %s: %s\n", cmd, err);
	return rc;
}

static void
print_oauth(const struct source_args *a)
{
	if (a->src.oauth_client_id == NULL)
		return;
	printf("\nSegment OAuth:    client %s, key %s; tokens from %s/token\n",
	    a->src.oauth_client_id, a->src.oauth_key_id,
	    a->src.oauth_auth_server != NULL ? a->src.oauth_auth_server
		: a->src.region != NULL && strcmp(a->src.region, "eu") == 0
		? NB_OAUTH_SERVER_EU
		: NB_OAUTH_SERVER_US);
	if (a->src.oauth_key_env != NULL)
		printf("                  the private key comes from %s%s\n",
		    a->src.oauth_key_env,
		    getenv(a->src.oauth_key_env) == NULL
			? " (not set in this shell)"
			: "");
}

/*
 * The three edits.  change() edits doc (key receives a key to print, if
 * any; *ctx whatever report() needs), report() prints after the save.
 */
struct edit_ctx {
	int id;	   /* rotate: the new key's number */
	int ed;	   /* rotate: an Ed25519 pair */
	int unset; /* add: the write key's variable is unset here */
};

static int
change_add(const struct source_args *a, json_t *doc, char *key, size_t keylen,
    struct edit_ctx *x, char *err, size_t errlen)
{
	x->unset = getenv(a->src.write_key_env) == NULL;
	return nb_source_add(doc, &a->src, key, keylen, err, errlen);
}

static void
report_add(const struct source_args *a, const json_t *doc, const char *key,
    const struct edit_ctx *x)
{
	printf("Added source %s to %s.\n\n", a->src.name, a->config);
	printf("Paste into Nudgespot's webhook settings:\n");
	print_url(a, doc, a->src.name);
	print_key(a->src.ed25519, key);
	print_oauth(a);
	printf("\nNext: give the bridge the Segment write key in %s%s, then "
	       "reload it\n(kill -HUP <pid>, or systemctl reload "
	       "nudgebridge).\n",
	    a->src.write_key_env, x->unset ? " (not set in this shell)" : "");
}

static int
change_rotate(const struct source_args *a, json_t *doc, char *key,
    size_t keylen, struct edit_ctx *x, char *err, size_t errlen)
{
	json_t *src = nb_source_find(doc, a->src.name);

	/* A source signed with Ed25519 only keeps to Ed25519. */
	x->ed = a->src.ed25519 ||
	    (src != NULL &&
		json_array_size(json_object_get(src, "signing_secrets")) == 0 &&
		json_array_size(json_object_get(src, "public_keys")) > 0);
	return nb_source_rotate(
	    doc, a->src.name, x->ed, key, keylen, &x->id, err, errlen);
}

static void
report_rotate(const struct source_args *a, const json_t *doc, const char *key,
    const struct edit_ctx *x)
{
	char fp[NB_SOURCE_FP_LEN];
	json_t *keys = json_object_get(nb_source_find(doc, a->src.name),
	    x->ed ? "public_keys" : "signing_secrets");

	nb_source_fingerprint(
	    json_string_value(json_array_get(keys, json_array_size(keys) - 1)),
	    fp);
	printf("Added key %d (fingerprint %s) to source %s; the old keys stay "
	       "valid.\n\n",
	    x->id, fp, a->src.name);
	printf("Give Nudgespot the new key:\n");
	print_key(x->ed, key);
	printf("\nReload the bridge (SIGHUP). Once Nudgespot signs with the "
	       "new key, retire the old one:\n"
	       "  nudgebridge source list --config %s\n"
	       "  nudgebridge source retire %s --config %s --secret-id ID\n",
	    a->config, a->src.name, a->config);
}

static int
change_retire(const struct source_args *a, json_t *doc, char *key,
    size_t keylen, struct edit_ctx *x, char *err, size_t errlen)
{
	char fp[NB_SOURCE_FP_LEN];

	(void)key;
	(void)keylen;
	(void)x;
	if (nb_source_key_find(
		doc, a->src.name, a->secret_id, fp, err, errlen) == -1 ||
	    nb_source_retire(doc, a->src.name, a->secret_id, err, errlen) == -1)
		return -1;
	/* Not a key Nudgespot still signs with, unless told so. */
	if (nb_source_retire_check(stderr, a->config, doc, a->src.name,
		a->secret_id, fp, a->force) == -1) {
		snprintf(err, errlen, "key %s not retired", a->secret_id);
		return -1;
	}
	return 0;
}

static void
report_retire(const struct source_args *a, const json_t *doc, const char *key,
    const struct edit_ctx *x)
{
	(void)doc;
	(void)key;
	(void)x;
	printf("Removed key %s from source %s. Reload the bridge (SIGHUP) "
	       "to stop accepting it.\n",
	    a->secret_id, a->src.name);
}

static const struct edit_cmd {
	const char *name;
	int (*change)(const struct source_args *, json_t *, char *, size_t,
	    struct edit_ctx *, char *, size_t);
	void (*report)(const struct source_args *, const json_t *, const char *,
	    const struct edit_ctx *);
	const char *needs; /* NULL, or what is missing said in words */
} edit_cmds[] = {
    {"add", change_add, report_add, "NAME and --write-key-env VAR"},
    {"rotate", change_rotate, report_rotate, NULL},
    {"retire", change_retire, report_retire, "NAME and --secret-id ID"},
};

/* The arguments c needs are there; else a message and usage. */
static int
edit_args(const struct edit_cmd *c, const struct source_args *a)
{
	int ok = a->src.name != NULL;

	if (c->change == change_add)
		ok = ok && a->src.write_key_env != NULL;
	if (c->change == change_retire)
		ok = ok && a->secret_id != NULL;
	if (ok)
		return 0;
	if (c->needs != NULL)
		fprintf(stderr, "nudgebridge source %s: %s are required\n",
		    c->name, c->needs);
	if (c->change != change_retire)
		source_usage(stderr);
	return -1;
}

/*
 * One edit: the file locked from load to save, changed, saved (validated
 * first), reported.  The exit status.
 */
static int
edit(const struct edit_cmd *c, struct source_args *a)
{
	struct nb_source_edit e;
	struct edit_ctx x;
	char key[NB_SOURCE_KEY_MAX], err[768];
	json_t *doc;
	int rc = 1;

	if (edit_args(c, a) == -1)
		return EXIT_USAGE;
	if ((doc = load_doc(&e, a->config)) == NULL)
		return 1;
	memset(&x, 0, sizeof(x));
	key[0] = '\0';
	if (c->change(a, doc, key, sizeof(key), &x, err, sizeof(err)) == -1) {
		fprintf(stderr, "nudgebridge source %s: %s\n", c->name, err);
		rc = EXIT_USAGE;
	} else if (save(c->name, a->config, doc) == 0) {
		c->report(a, doc, key, &x);
		rc = 0;
	}
	nb_source_edit_end(&e);
	sodium_memzero(key, sizeof(key));
	json_decref(doc);
	return rc;
}

int
nb_source_main(int argc, char **argv)
{
	static const struct nb_opts_spec spec = {"nudgebridge source",
	    source_opts, sizeof(source_opts) / sizeof(source_opts[0]),
	    source_usage, NULL};
	struct source_args a;
	struct nb_source_edit e;
	json_t *doc;
	const char *cmd;
	size_t i;
	int r;

	if (argc < 2 || strcmp(argv[1], "help") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		source_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	cmd = argv[1];
	memset(&a, 0, sizeof(a));
	if ((r = nb_opts_parse(&spec, argc, argv, 2, &a)) != 0) {
		if (r == NB_OPTS_HELP)
			return 0;
		source_usage(stderr);
		return EXIT_USAGE;
	}
	for (i = 0; i < sizeof(edit_cmds) / sizeof(edit_cmds[0]); i++)
		if (strcmp(cmd, edit_cmds[i].name) == 0)
			return edit(&edit_cmds[i], &a);
	if (strcmp(cmd, "list") == 0) {
		if ((doc = load_doc(&e, a.config)) == NULL)
			return 1;
		nb_source_edit_end(&e); /* list only reads */
		nb_source_list_used(stdout, stderr, a.config, doc);
		json_decref(doc);
		return 0;
	}
	fprintf(stderr, "nudgebridge source: unknown command '%s'\n", cmd);
	source_usage(stderr);
	return EXIT_USAGE;
}
