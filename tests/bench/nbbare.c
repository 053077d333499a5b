/* SPDX-License-Identifier: ISC */
/*
 * nbbare: the framework's ceiling for the nudgebridge benchmarks.
 *
 * A libevent evhttp server that answers every request with 200 and the
 * bridge's answer to one accepted event, and does nothing else: no
 * signature, no parse, no store.  It sets evhttp up as the bridge's main
 * listener does (body and header limits, allowed methods, lingering close)
 * and serves the port from --threads event loops with SO_REUSEPORT, as
 * http_threads does, so nudgebridge's single-event req/s divided by this
 * one's is the share of what libevent itself allows on the machine.
 *
 * Listens on 127.0.0.1 only; stops on SIGTERM or SIGINT.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#define MAX_THREADS	  64
#define MAX_BODY_BYTES	  1048576 /* the bridge's default max_body_bytes */
#define MAX_HEADERS_BYTES 16384	  /* and max_header_bytes */
#define ANSWER		  "{\"accepted\":1,\"duplicates\":0,\"quarantined\":0}"

struct worker {
	pthread_t tid;
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *lev;
};

static void
request_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	evbuffer_add(
	    evhttp_request_get_output_buffer(req), ANSWER, sizeof(ANSWER) - 1);
	evhttp_send_reply(req, 200, "OK", NULL);
}

static int
worker_init(struct worker *w, int port)
{
	struct sockaddr_in sa;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((w->base = event_base_new()) == NULL ||
	    (w->http = evhttp_new(w->base)) == NULL)
		return -1;
	evhttp_set_max_body_size(w->http, MAX_BODY_BYTES);
	evhttp_set_max_headers_size(w->http, MAX_HEADERS_BYTES);
	evhttp_set_allowed_methods(
	    w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
	evhttp_set_default_content_type(w->http, "application/json");
	evhttp_set_flags(w->http, EVHTTP_SERVER_LINGERING_CLOSE);
	evhttp_set_gencb(w->http, request_cb, NULL);
	w->lev = evconnlistener_new_bind(w->base, NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT |
		LEV_OPT_CLOSE_ON_EXEC,
	    128, (struct sockaddr *)&sa, sizeof(sa));
	if (w->lev == NULL) {
		fprintf(stderr, "nbbare: cannot listen on 127.0.0.1:%d: %s\n",
		    port, strerror(errno));
		return -1;
	}
	if (evhttp_bind_listener(w->http, w->lev) == NULL)
		return -1;
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_dispatch(w->base);
	return NULL;
}

static void
usage(void)
{
	fprintf(stderr, "usage: nbbare --port P [--threads N]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static struct worker w[MAX_THREADS];
	sigset_t set;
	long port = 0, threads = 1;
	char *end;
	int i, sig, rc = 1;

	for (i = 1; i + 1 < argc; i += 2) {
		errno = 0;
		if (strcmp(argv[i], "--port") == 0)
			port = strtol(argv[i + 1], &end, 10);
		else if (strcmp(argv[i], "--threads") == 0)
			threads = strtol(argv[i + 1], &end, 10);
		else
			usage();
		if (errno != 0 || *end != '\0')
			usage();
	}
	if (i != argc || port < 1 || port > 65535 || threads < 1 ||
	    threads > MAX_THREADS)
		usage();
	/* The workers inherit the mask; this thread waits for the signal. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return 1;
	for (i = 0; i < threads; i++)
		if (worker_init(&w[i], (int)port) == -1)
			goto out;
	for (i = 0; i < threads; i++)
		if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0)
			goto out;
	sigdelset(&set, SIGPIPE);
	do {
		if (sigwait(&set, &sig) != 0)
			break;
	} while (sig != SIGTERM && sig != SIGINT);
	rc = 0;
out:
	/* Exiting ends the workers; the kernel closes their sockets. */
	return rc;
}
