/* SPDX-License-Identifier: ISC */
/*
 * main: the nudgebridge command line, and the wiring of the daemon.
 *
 * Only argument parsing and assembly live here.  `serve` builds the modules
 * in dependency order (store, committer, deliverer, listeners), connects
 * the committer's "stored something" hook to the deliverer's wake-up so
 * neither knows the other, and turns signals into libevent events:
 * SIGTERM/SIGINT drain and exit 0, SIGHUP reloads the file and keeps the
 * running configuration when the new one does not load.  The main thread
 * runs signals and the first HTTP worker; the committer, the deliverer,
 * the board, the other HTTP workers and the admin API own threads of
 * their own, handed reloads and drains by the calls made here.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <sodium.h>

#include "nudgebridge/activity.h"
#include "nudgebridge/admin.h"
#include "nudgebridge/alerter.h"
#include "nudgebridge/board.h"
#include "nudgebridge/buf.h"
#include "nudgebridge/commit.h"
#include "nudgebridge/config.h"
#include "nudgebridge/deliver.h"
#include "nudgebridge/dlq.h"
#include "nudgebridge/events.h"
#include "nudgebridge/http.h"
#include "nudgebridge/httpd.h"
#include "nudgebridge/log.h"
#include "nudgebridge/metrics.h"
#include "nudgebridge/opts.h"
#include "nudgebridge/priv.h"
#include "nudgebridge/sig.h"
#include "nudgebridge/source.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"

#define EXIT_USAGE	   2
#define DRAIN_HTTP_MS	   2000 /* wait for webhooks in flight at shutdown */
#define DRAIN_TICK_MS	   50
#define SIGN_MAX_BODY	   (64 * 1024 * 1024)
#define SIGN_MAX_KEYS	   NB_SIG_MAX_ENTRIES
#define SIGN_ID_RANDOM_LEN 24

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: nudgebridge <command> [options]\n"
	    "\n"
	    "commands:\n"
	    "  serve --config FILE          run the bridge\n"
	    "  check-config --config FILE   validate a configuration\n"
	    "  migrate --config FILE [--install-id ID]\n"
	    "                               create or upgrade the store\n"
	    "  sign (--secret whsec_... | --private-key whsk_...)...\n"
	    "       [--id ID] [--timestamp T] [--curl URL] < body\n"
	    "                               print signed webhook headers\n"
	    "  keygen [--ed25519]           make a whsec_ secret (or a\n"
	    "                               whpk_/whsk_ Ed25519 pair)\n"
	    "  dlq list|show|replay|purge --config FILE [filters]\n"
	    "                               dead letters (see dlq --help)\n"
	    "  events list|show --config FILE [filters]\n"
	    "                               find events (see events --help)\n"
	    "  erase --config FILE (--email ADDR | --uid UID) [--dry-run]\n"
	    "                               erase a person's events\n"
	    "  source add|rotate|retire|list --config FILE ...\n"
	    "                               register a Nudgespot source, "
	    "rotate\n"
	    "                               its keys (see source --help)\n"
	    "  version                      print the version\n"
	    "  help                         this text\n");
}

/* The arguments of serve, check-config and migrate. */
struct config_args {
	const char *config;
};

static const struct nb_opt config_opts[] = {
    {"config", NB_OPT_VALUE, offsetof(struct config_args, config), 1, "FILE"},
};

/*
 * For commands whose only option is --config FILE: the path, or NULL
 * with *rc the exit status (0 after --help).
 */
static const char *
config_arg(int argc, char **argv, const char *cmd, int *rc)
{
	char prog[64];
	struct nb_opts_spec spec = {prog, config_opts, 1, usage, NULL};
	struct config_args a = {NULL};
	int r;

	snprintf(prog, sizeof(prog), "nudgebridge %s", cmd);
	if ((r = nb_opts_parse(&spec, argc, argv, 2, &a)) != 0) {
		*rc = r == NB_OPTS_HELP ? 0 : EXIT_USAGE;
		return NULL;
	}
	return a.config;
}

static int
cmd_check_config(int argc, char **argv)
{
	struct nb_config *cfg = NULL;
	const char *path;
	char err[512];
	int rc;

	if ((path = config_arg(argc, argv, "check-config", &rc)) == NULL)
		return rc;
	if (nb_config_load(&cfg, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "nudgebridge: %s: %s\n", path, err);
		return 1;
	}
	printf("ok\n");
	nb_config_unref(cfg);
	return 0;
}

/* The arguments of migrate. */
struct migrate_args {
	const char *config;
	const char *install_id;
};

static const struct nb_opt migrate_opts[] = {
    {"config", NB_OPT_VALUE, offsetof(struct migrate_args, config), 1, "FILE"},
    {"install-id", NB_OPT_VALUE, offsetof(struct migrate_args, install_id), 0,
	"ID"},
};

/*
 * migrate --config FILE [--install-id ID]: ID is the install id of the
 * store this one takes over (a move from SQLite to PostgreSQL), for a
 * store that has none yet (storage.md, "The install id").
 */
static int
cmd_migrate(int argc, char **argv)
{
	struct nb_opts_spec spec = {"nudgebridge migrate", migrate_opts,
	    sizeof(migrate_opts) / sizeof(migrate_opts[0]), usage, NULL};
	struct migrate_args a = {NULL, NULL};
	struct nb_config *cfg = NULL;
	struct nb_store *st = NULL;
	char err[512];
	int version = 0, rc;

	if ((rc = nb_opts_parse(&spec, argc, argv, 2, &a)) != 0)
		return rc == NB_OPTS_HELP ? 0 : EXIT_USAGE;
	if (nb_config_load(&cfg, a.config, err, sizeof(err)) == -1) {
		fprintf(stderr, "nudgebridge: %s: %s\n", a.config, err);
		return EXIT_USAGE;
	}
	nb_log_init(cfg->log_level, cfg->log_format);
	cfg->store.install_id = a.install_id;
	rc = 1;
	if (nb_store_open(&st, &cfg->store, err, sizeof(err)) == -1) {
		fprintf(
		    stderr, "nudgebridge: cannot open the store: %s\n", err);
		goto out;
	}
	if (nb_store_schema_version(st, &version) == -1) {
		fprintf(
		    stderr, "nudgebridge: cannot read the schema version\n");
		goto out;
	}
	printf("schema version %d\n", version);
	printf("install id %s\n", nb_store_install_id(st));
	rc = 0;
out:
	nb_store_close(st);
	nb_config_unref(cfg);
	return rc;
}

static void
keygen_usage(FILE *f)
{
	fprintf(f, "usage: nudgebridge keygen [--ed25519]\n");
}

static int
cmd_keygen(int argc, char **argv)
{
	static const struct nb_opt opts[] = {
	    {"ed25519", NB_OPT_FLAG, 0, 0, NULL}};
	static const struct nb_opts_spec spec = {
	    "nudgebridge keygen", opts, 1, keygen_usage, NULL};
	char pk[128], sk[160], secret[128];
	int ed = 0, rc = 1, r;

	if ((r = nb_opts_parse(&spec, argc, argv, 2, &ed)) != 0)
		return r == NB_OPTS_HELP ? 0 : EXIT_USAGE;
	if (ed) {
		if (nb_sig_keypair(pk, sizeof(pk), sk, sizeof(sk)) == -1)
			goto out;
		fprintf(stderr,
		    "# public key (the source's public_keys), "
		    "then private key (the sender's)\n");
		printf("%s\n%s\n", pk, sk);
	} else {
		if (nb_sig_new_secret(secret, sizeof(secret)) == -1)
			goto out;
		printf("%s\n", secret);
	}
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "nudgebridge keygen: cannot make a key\n");
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(secret, sizeof(secret));
	return rc;
}

/* Reads all of stdin (at most SIGN_MAX_BODY bytes) into b.  0 or -1. */
static int
read_stdin(struct nb_buf *b)
{
	size_t room;
	ssize_t r;

	for (;;) {
		room = b->max - b->len;
		if (room == 0 ||
		    nb_buf_reserve(b, room < 65536 ? room : 65536) == -1)
			return -1;
		if (b->cap - b->len - 1 < room)
			room = b->cap - b->len - 1;
		r = read(STDIN_FILENO, b->ptr + b->len, room);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return -1;
		if (r == 0)
			return 0;
		b->len += (size_t)r;
		b->ptr[b->len] = '\0';
	}
}

/* Prints s single-quoted for a POSIX shell. */
static void
shell_quote(const char *s, size_t len)
{
	size_t i;

	putchar('\'');
	for (i = 0; i < len; i++) {
		if (s[i] == '\'')
			fputs("'\\''", stdout);
		else
			putchar(s[i]);
	}
	putchar('\'');
}

struct sign_args {
	struct nb_opt_list secrets, privs;
	const char *id, *ts, *url;
	char idbuf[8 + SIGN_ID_RANDOM_LEN];
	long long t;
};

static void
sign_usage(FILE *f)
{
	fprintf(f,
	    "usage: nudgebridge sign (--secret whsec_... | --private-key "
	    "whsk_...)...\n"
	    "           [--id ID] [--timestamp T] [--curl URL] < body\n");
}

/* Parses and checks the options; 0, or the exit status (-1: --help). */
static int
sign_parse(struct sign_args *a, int argc, char **argv)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "abcdefghijklmnopqrstuvwxyz0123456789";
	static const struct nb_opt opts[] = {
	    {"secret", NB_OPT_LIST, offsetof(struct sign_args, secrets), 0,
		NULL},
	    {"private-key", NB_OPT_LIST, offsetof(struct sign_args, privs), 0,
		NULL},
	    {"id", NB_OPT_VALUE, offsetof(struct sign_args, id), 0, NULL},
	    {"timestamp", NB_OPT_VALUE, offsetof(struct sign_args, ts), 0,
		NULL},
	    {"curl", NB_OPT_VALUE, offsetof(struct sign_args, url), 0, NULL},
	};
	static const struct nb_opts_spec spec = {"nudgebridge sign", opts,
	    sizeof(opts) / sizeof(opts[0]), sign_usage, NULL};
	char *end;
	size_t i;
	int r;

	if ((r = nb_opts_parse(&spec, argc, argv, 2, a)) != 0)
		return r == NB_OPTS_HELP ? -1 : EXIT_USAGE;
	if (a->secrets.n + a->privs.n == 0) {
		fprintf(stderr,
		    "nudgebridge sign: give --secret whsec_... or "
		    "--private-key whsk_...\n");
		return EXIT_USAGE;
	}
	if (a->secrets.n + a->privs.n > SIGN_MAX_KEYS) {
		fprintf(stderr, "nudgebridge sign: at most %d keys\n",
		    SIGN_MAX_KEYS);
		return EXIT_USAGE;
	}
	a->t = (long long)time(NULL);
	if (a->ts != NULL) {
		errno = 0;
		a->t = strtoll(a->ts, &end, 10);
		if (*a->ts == '\0' || *end != '\0' || errno != 0 || a->t < 0) {
			fprintf(stderr,
			    "nudgebridge sign: --timestamp: not "
			    "Unix seconds\n");
			return EXIT_USAGE;
		}
	}
	if (a->id == NULL) {
		memcpy(a->idbuf, "msg_", 4);
		for (i = 0; i < SIGN_ID_RANDOM_LEN; i++)
			a->idbuf[4 + i] =
			    alnum[randombytes_uniform(sizeof(alnum) - 1)];
		a->idbuf[4 + SIGN_ID_RANDOM_LEN] = '\0';
		a->id = a->idbuf;
	}
	if (*a->id == '\0' || strlen(a->id) > NB_SIG_MAX_ID_LEN) {
		fprintf(stderr, "nudgebridge sign: --id: 1..%d characters\n",
		    NB_SIG_MAX_ID_LEN);
		return EXIT_USAGE;
	}
	return 0;
}

/* The webhook-signature value: one entry per key, secrets first. */
static int
sign_entries(const struct sign_args *a, const struct nb_buf *body, char *sigs,
    size_t sigslen)
{
	char entry[NB_SIG_ENTRY_MAX + 8];
	const unsigned char *p = (const unsigned char *)nb_buf_str(body);
	size_t i, n = a->secrets.n + a->privs.n, off = 0;
	int r;

	sigs[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i < a->secrets.n)
			r = nb_sig_sign_hmac(a->secrets.v[i], a->id, a->t, p,
			    body->len, entry, sizeof(entry));
		else
			r = nb_sig_sign_ed25519(a->privs.v[i - a->secrets.n],
			    a->id, a->t, p, body->len, entry, sizeof(entry));
		if (r == -1) {
			fprintf(stderr,
			    "nudgebridge sign: %s %zu is not valid\n",
			    i < a->secrets.n ? "secret" : "private key",
			    i < a->secrets.n ? i + 1 : i - a->secrets.n + 1);
			return -1;
		}
		r = snprintf(sigs + off, sigslen - off, "%s%s",
		    off > 0 ? " " : "", entry);
		if (r < 0 || (size_t)r >= sigslen - off)
			return -1;
		off += (size_t)r;
	}
	return 0;
}

static int
cmd_sign(int argc, char **argv)
{
	struct sign_args a;
	struct nb_buf body;
	char sigs[SIGN_MAX_KEYS * NB_SIG_ENTRY_MAX + 1];
	char hdr[3][NB_SIG_MAX_ID_LEN + sizeof(sigs) + 32];
	size_t i;
	int rc;

	memset(&a, 0, sizeof(a));
	if ((rc = sign_parse(&a, argc, argv)) != 0)
		return rc == -1 ? 0 : rc;
	nb_buf_init(&body, SIGN_MAX_BODY);
	rc = 1;
	if (read_stdin(&body) == -1) {
		fprintf(stderr,
		    "nudgebridge sign: cannot read the body from stdin\n");
		goto out;
	}
	rc = EXIT_USAGE;
	if (sign_entries(&a, &body, sigs, sizeof(sigs)) == -1)
		goto out;
	snprintf(hdr[0], sizeof(hdr[0]), "webhook-id: %s", a.id);
	snprintf(hdr[1], sizeof(hdr[1]), "webhook-timestamp: %lld", a.t);
	snprintf(hdr[2], sizeof(hdr[2]), "webhook-signature: %s", sigs);
	printf("%s\n%s\n%s\n", hdr[0], hdr[1], hdr[2]);
	if (a.url != NULL) {
		printf("curl -sS -X POST ");
		shell_quote(a.url, strlen(a.url));
		printf(" -H 'Content-Type: application/json'");
		for (i = 0; i < 3; i++) {
			printf(" -H ");
			shell_quote(hdr[i], strlen(hdr[i]));
		}
		printf(" --data-binary ");
		shell_quote(nb_buf_str(&body), body.len);
		printf("\n");
	}
	rc = 0;
out:
	nb_buf_free(&body);
	return rc;
}

/* The daemon. */

struct daemon {
	struct event_base *base;
	struct nb_config *cfg;
	struct nb_metrics *metrics;
	struct nb_store *store;
	struct nb_commit *committer;
	struct nb_deliver *deliver;
	struct nb_board *board;
	struct nb_activity *activity;
	struct nb_alerter *alerter;
	struct nb_http *http;
	struct nb_admin *admin;
	struct event *ev_term, *ev_int, *ev_hup, *ev_drain;
	int64_t drain_started;
	int stopping;
};

static void
wake_cb(void *arg)
{
	nb_deliver_wake(arg);
}

static size_t
paused_cb(void *arg, struct nb_paused *out, size_t max)
{
	return nb_deliver_paused(arg, out, max);
}

static int
healthy_cb(void *arg)
{
	return nb_commit_healthy(arg);
}

static int
activity_render_cb(void *arg, struct evbuffer *out)
{
	return nb_activity_render(arg, out);
}

/*
 * The alert thread (started once privileges are dropped), and the metrics
 * of the activity and the alerts.
 */
static int
start_alerter(struct daemon *d)
{
	struct nb_alerter_deps deps;
	char err[512];

	memset(&deps, 0, sizeof(deps));
	deps.activity = d->activity;
	deps.paused = paused_cb;
	deps.paused_arg = d->deliver;
	deps.healthy = healthy_cb;
	deps.healthy_arg = d->committer;
	if ((d->alerter = nb_alerter_new(&deps, d->cfg, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "nudgebridge: alerts: %s\n", err);
		return -1;
	}
	if (nb_metrics_collect(d->metrics, activity_render_cb, d->activity) ==
		-1 ||
	    nb_metrics_collect(d->metrics, nb_alerter_render, d->alerter) ==
		-1) {
		fprintf(stderr, "nudgebridge: cannot collect alert metrics\n");
		return -1;
	}
	return 0;
}

/* "host:port" with the port actually bound. */
static void
bound_addr(const char *listen, int port, char *out, size_t outlen)
{
	char host[256];
	uint16_t p;

	if (nb_httpd_split_addr(listen, host, sizeof(host), &p) == -1) {
		snprintf(out, outlen, "%s", listen);
		return;
	}
	if (strchr(host, ':') != NULL)
		snprintf(out, outlen, "[%s]:%d", host, port);
	else
		snprintf(out, outlen, "%s:%d", host, port);
}

static void
drain_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	size_t n = nb_http_inflight(d->http);

	(void)fd;
	(void)what;
	if (n == 0 || nb_time_mono_ms() - d->drain_started >= DRAIN_HTTP_MS) {
		if (n > 0)
			log_warn("webhooks still waiting at shutdown",
			    " inflight=%zu", n);
		event_base_loopbreak(d->base);
	}
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval tick = {0, DRAIN_TICK_MS * 1000};

	(void)what;
	if (d->stopping) {
		log_info(
		    "shutdown already in progress", " signal=%d", (int)sig);
		return;
	}
	d->stopping = 1;
	log_info("shutting down", " signal=%d inflight=%zu", (int)sig,
	    nb_http_inflight(d->http));
	nb_http_drain(d->http);
	nb_admin_drain(d->admin);
	nb_admin_free(d->admin);
	d->admin = NULL;
	d->drain_started = nb_time_mono_ms();
	d->ev_drain = event_new(d->base, -1, EV_PERSIST, drain_tick_cb, d);
	if (d->ev_drain == NULL || event_add(d->ev_drain, &tick) == -1)
		event_base_loopbreak(d->base);
}

static void
reload_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct nb_config *cfg = NULL, *old;
	char err[512], qerr[600], qpath[600];

	(void)sig;
	(void)what;
	if (d->stopping)
		return;
	if (nb_config_load(&cfg, d->cfg->path, err, sizeof(err)) == -1) {
		log_warn("config reload refused; keeping the running "
			 "configuration",
		    " path=%s error=%s",
		    nb_log_quote(qpath, sizeof(qpath), d->cfg->path),
		    nb_log_quote(qerr, sizeof(qerr), err));
		return;
	}
	if (strcmp(cfg->listen, d->cfg->listen) != 0)
		log_warn("listen address changes need a restart", NULL);
	if ((cfg->user == NULL) != (d->cfg->user == NULL) ||
	    (cfg->user != NULL && strcmp(cfg->user, d->cfg->user) != 0))
		log_warn("user changes need a restart", NULL);
	nb_log_init(cfg->log_level, cfg->log_format);
	nb_http_reload(d->http, cfg);
	nb_admin_reload(d->admin, cfg);
	nb_deliver_reload(d->deliver, cfg);
	nb_alerter_reload(d->alerter, cfg);
	old = d->cfg;
	d->cfg = cfg;
	nb_config_unref(old);
	log_info("config reloaded", " sources=%zu", cfg->nsources);
}

static void
daemon_free(struct daemon *d)
{
	if (d->ev_drain != NULL)
		event_free(d->ev_drain);
	if (d->ev_term != NULL)
		event_free(d->ev_term);
	if (d->ev_int != NULL)
		event_free(d->ev_int);
	if (d->ev_hup != NULL)
		event_free(d->ev_hup);
	nb_admin_free(d->admin);
	nb_board_stop(d->board);     /* it may be reading the paused sources */
	nb_alerter_stop(d->alerter); /* and so may this */
	if (d->deliver != NULL) {
		nb_deliver_stop(d->deliver, 0);
		nb_deliver_free(d->deliver);
	}
	nb_http_stop(d->http); /* before its last completions run here */
	nb_commit_free(d->committer);
	nb_http_free(d->http);
	nb_board_free(d->board); /* after the scrapes waiting for it */
	nb_alerter_free(d->alerter);
	nb_store_close(d->store);
	nb_metrics_free(d->metrics);
	nb_activity_free(d->activity);
	nb_config_unref(d->cfg);
	if (d->base != NULL)
		event_base_free(d->base);
}

/*
 * The board (queue figures, off the request threads), the main listener
 * and the admin API.  0, or -1 with a message on stderr.
 */
static int
start_listeners(struct daemon *d)
{
	struct nb_http_deps deps;
	struct nb_admin_deps adeps;
	char err[512];

	if ((d->board = nb_board_new(d->cfg, paused_cb, d->deliver)) == NULL ||
	    nb_board_start(d->board) == -1) {
		fprintf(stderr, "nudgebridge: cannot start the board thread\n");
		return -1;
	}
	memset(&deps, 0, sizeof(deps));
	deps.base = d->base;
	deps.committer = d->committer;
	deps.metrics = d->metrics;
	deps.board = d->board;
	deps.activity = d->activity;
	if ((d->http = nb_http_new(&deps, d->cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "nudgebridge: %s\n", err);
		return -1;
	}
	memset(&adeps, 0, sizeof(adeps));
	adeps.metrics = d->metrics;
	adeps.board = d->board;
	adeps.fleet = nb_deliver_fleet(d->deliver);
	adeps.alerter = d->alerter;
	if ((d->admin = nb_admin_new(&adeps, d->cfg, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "nudgebridge: admin API: %s\n", err);
		return -1;
	}
	return 0;
}

static void
log_listening(const struct daemon *d)
{
	char addr[300];

	bound_addr(d->cfg->listen, nb_http_port(d->http), addr, sizeof(addr));
	log_info("listening",
	    " addr=%s tls=%s sources=%zu http_threads=%zu version=%s", addr,
	    d->cfg->tls.cert_file != NULL ? "on" : "off", d->cfg->nsources,
	    d->cfg->http_threads, NB_VERSION);
	if (nb_admin_port(d->admin) > 0) {
		bound_addr(d->cfg->admin_listen, nb_admin_port(d->admin), addr,
		    sizeof(addr));
		log_info("admin listening", " addr=%s", addr);
	} else
		log_info("admin API off (no admin.token)", NULL);
}

/* After the loop: deliver what is due until the drain deadline, then stop. */
static void
daemon_stop(struct daemon *d)
{
	if (nb_deliver_stop(d->deliver, d->cfg->limits.drain_s * 1000) == -1)
		log_warn("drain deadline reached with events still due; they "
			 "stay stored",
		    NULL);
	nb_board_stop(d->board); /* before what it reads goes away */
	nb_alerter_stop(d->alerter);
	nb_deliver_free(d->deliver);
	d->deliver = NULL;
	nb_http_stop(d->http);
	nb_commit_free(d->committer);
	d->committer = NULL;
	/* Hand the last completions (if any) to their requests. */
	event_base_loop(d->base, EVLOOP_NONBLOCK);
	log_info("stopped", NULL);
}

/*
 * The store, the committer and the deliverer (its thread started), wired
 * so that a commit wakes the deliverer.  0, or -1 with a message on stderr.
 */
static int
start_pipeline(struct daemon *d)
{
	char err[512];

	if ((d->base = event_base_new()) == NULL) {
		fprintf(stderr, "nudgebridge: cannot create an event base\n");
		return -1;
	}
	if ((d->metrics = nb_metrics_new()) == NULL ||
	    (d->activity = nb_activity_new()) == NULL) {
		fprintf(stderr, "nudgebridge: out of memory\n");
		return -1;
	}
	if (nb_store_open(&d->store, &d->cfg->store, err, sizeof(err)) == -1) {
		fprintf(
		    stderr, "nudgebridge: cannot open the store: %s\n", err);
		return -1;
	}
	d->committer = nb_commit_new(
	    d->base, &d->cfg->store, d->metrics, err, sizeof(err));
	if (d->committer == NULL) {
		fprintf(stderr, "nudgebridge: cannot start the committer: %s\n",
		    err);
		return -1;
	}
	d->deliver = nb_deliver_new(d->cfg, d->metrics, err, sizeof(err));
	if (d->deliver == NULL) {
		fprintf(
		    stderr, "nudgebridge: cannot start delivery: %s\n", err);
		return -1;
	}
	nb_commit_set_notify(d->committer, wake_cb, d->deliver);
	if (nb_deliver_start(d->deliver) == -1) {
		fprintf(stderr, "nudgebridge: cannot start delivery thread\n");
		nb_deliver_free(d->deliver);
		d->deliver = NULL;
		return -1;
	}
	return 0;
}

/* Signals as events: SIGTERM and SIGINT drain, SIGHUP reloads. */
static int
add_signals(struct daemon *d)
{
	d->ev_term = evsignal_new(d->base, SIGTERM, stop_cb, d);
	d->ev_int = evsignal_new(d->base, SIGINT, stop_cb, d);
	d->ev_hup = evsignal_new(d->base, SIGHUP, reload_cb, d);
	if (d->ev_term == NULL || d->ev_int == NULL || d->ev_hup == NULL ||
	    event_add(d->ev_term, NULL) == -1 ||
	    event_add(d->ev_int, NULL) == -1 ||
	    event_add(d->ev_hup, NULL) == -1) {
		fprintf(stderr, "nudgebridge: cannot install signal events\n");
		return -1;
	}
	return 0;
}

static int
cmd_serve(int argc, char **argv)
{
	struct daemon d;
	const char *path;
	char err[512];
	size_t nofile;
	int rc;

	memset(&d, 0, sizeof(d));
	if ((path = config_arg(argc, argv, "serve", &rc)) == NULL)
		return rc;
	if (evthread_use_pthreads() == -1) {
		fprintf(
		    stderr, "nudgebridge: libevent has no thread support\n");
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "nudgebridge: curl_global_init failed\n");
		return 1;
	}
	rc = 1;
	signal(SIGPIPE, SIG_IGN);
	if (nb_config_load(&d.cfg, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "nudgebridge: %s: %s\n", path, err);
		goto out;
	}
	nb_log_init(d.cfg->log_level, d.cfg->log_format);
	if (nb_priv_raise_nofile(&nofile) == -1)
		log_warn(
		    "cannot raise the descriptor limit", " nofile=%zu", nofile);
	if (nofile < d.cfg->limits.max_connections + 64)
		log_warn("descriptor limit below limits.max_connections",
		    " nofile=%zu max_connections=%zu", nofile,
		    d.cfg->limits.max_connections);
	if (start_pipeline(&d) == -1 || start_alerter(&d) == -1 ||
	    start_listeners(&d) == -1)
		goto out;
	/* It created the schema; every thread has its own connection now. */
	nb_store_close(d.store);
	d.store = NULL;
	/* Listeners bound and store open: root is no longer needed. */
	if (nb_priv_drop(d.cfg->user,
		strcmp(d.cfg->store.driver, "sqlite") == 0 ? d.cfg->store.path
							   : NULL,
		err, sizeof(err)) == -1) {
		fprintf(stderr, "nudgebridge: %s\n", err);
		goto out;
	}
	if (nb_admin_start(d.admin) == -1) {
		fprintf(stderr, "nudgebridge: cannot start the admin thread\n");
		goto out;
	}
	if (nb_alerter_start(d.alerter) == -1) {
		fprintf(stderr, "nudgebridge: cannot start the alert thread\n");
		goto out;
	}
	if (add_signals(&d) == -1)
		goto out;
	log_listening(&d);

	event_base_dispatch(d.base);
	daemon_stop(&d);
	rc = 0;
out:
	daemon_free(&d);
	curl_global_cleanup();
	return rc;
}

int
main(int argc, char **argv)
{
	const char *cmd;

	if (sodium_init() < 0) {
		fprintf(stderr, "nudgebridge: sodium_init failed\n");
		return 1;
	}
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[1];
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve(argc, argv);
	if (strcmp(cmd, "check-config") == 0)
		return cmd_check_config(argc, argv);
	if (strcmp(cmd, "sign") == 0)
		return cmd_sign(argc, argv);
	if (strcmp(cmd, "keygen") == 0)
		return cmd_keygen(argc, argv);
	if (strcmp(cmd, "dlq") == 0)
		return nb_dlq_main(argc - 1, argv + 1);
	if (strcmp(cmd, "source") == 0)
		return nb_source_main(argc - 1, argv + 1);
	if (strcmp(cmd, "events") == 0)
		return nb_events_main(argc - 1, argv + 1);
	if (strcmp(cmd, "erase") == 0)
		return nb_events_erase_main(argc - 1, argv + 1);
	if (strcmp(cmd, "migrate") == 0)
		return cmd_migrate(argc, argv);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0 ||
	    strcmp(cmd, "-V") == 0) {
		printf("nudgebridge %s\n", NB_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
	    strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "nudgebridge: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
