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

#include "nudgebridge/config.h"
#include "nudgebridge/xfer.h"

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
int64_t nb_alert_backoff_ms(const struct nb_alerts_config *ac, int attempts);

/* A new notification id ("nbalert_" and 24 hex digits) into out. */
void nb_alert_msg_id(char out[48]);

#endif
