/* SPDX-License-Identifier: ISC */
/*
 * alert_send: one alert notification POSTed to alerts.webhook_url.
 *
 * The body is the contract's JSON (alert.h), or its Slack form with
 * "format": "slack".  With alerts.secret it carries Standard Webhooks
 * headers: webhook-id (the notification's own id, the same on every
 * retry, so a receiver can drop a repeat), webhook-timestamp (this
 * attempt) and webhook-signature ("v1," HMAC-SHA256 made by sig.h's
 * nb_sig_sign_hmac(), what nb_sig_verify() and every Standard Webhooks
 * library accept).  The request goes through an xfer engine (libcurl
 * multi on the caller's event base) with alerts.timeout_ms for the whole
 * exchange, so a dead or hung receiver costs a socket and a timer, never
 * a thread.  The URL and the secret never reach a log.  Call on the
 * engine's thread.
 */
#ifndef NB_ALERT_SEND_H
#define NB_ALERT_SEND_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/xfer.h"

/*
 * "alerts": where notifications go and when conditions fire (config.c
 * fills it; the alert thread, alerter.h, reads the thresholds).
 */
struct nb_alerts_config {
	char *webhook_url; /* NULL: none sent (secret: may hold credentials) */
	char *secret;	   /* whsec_ to sign them with, or NULL (secret) */
	int slack;	   /* "format": "slack" sends {"text": ...} */
	int64_t repeat_s;  /* dead_letters: one alert per, 300 */
	int64_t backlog_age_s;	     /* backlog_age past this, 600 */
	int64_t store_unavailable_s; /* store_unavailable past this, 30 */
	int interval_ms;	     /* evaluation period, 2000 */
	int timeout_ms;		     /* one notification request, 10000 */
	int retry_initial_ms;	     /* first retry after, 1000 */
	int retry_max_ms;	     /* longest wait between tries, 300000 */
	int64_t max_age_s; /* a notification not sent by then is dropped */
};

/*
 * Starts sending body (borrowed) as notification msg_id under ac (which
 * must have a webhook_url), signed at now_ms.  done(answer, arg) runs
 * once when it ends.  0, or -1 when it could not start (done never
 * runs).
 */
int nb_alert_send(struct nb_xfer_multi *mx, const struct nb_alerts_config *ac,
    const char *msg_id, const char *body, int64_t now_ms, nb_xfer_done_cb done,
    void *arg);

/*
 * The wait before attempt number attempts + 1 (attempts >= 1 failed so
 * far): retry_initial_ms doubled per failure up to retry_max_ms, then
 * between 80 % and 100 % of that (jitter, so instances that failed
 * together do not retry together).
 */
int64_t nb_alert_send_backoff_ms(
    const struct nb_alerts_config *ac, int attempts);

/* A new notification id ("nbalert_" and 24 hex digits) into out. */
void nb_alert_send_msg_id(char out[48]);

#endif
