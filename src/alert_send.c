/* SPDX-License-Identifier: ISC */
/*
 * alert_send: the notification request, signed, and the retry schedule.
 *
 * The signed content is exactly the bytes sent, as Standard Webhooks
 * wants: the Slack form is made first and then signed.  The header lines
 * are built on the stack and copied by the transfer, and the signature is
 * wiped after; the secret itself never leaves sig.c's signing function.
 * Jitter comes from libsodium's randombytes, not rand().
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "nudgebridge/alert.h"
#include "nudgebridge/alert_send.h"
#include "nudgebridge/log.h"
#include "nudgebridge/sig.h"

#define ANSWER_KEEP 256 /* bytes of the receiver's answer kept */

int
nb_alert_send(struct nb_xfer_multi *mx, const struct nb_alerts_config *ac,
    const char *msg_id, const char *body, int64_t now_ms, nb_xfer_done_cb done,
    void *arg)
{
	char hid[NB_ALERT_MSGID_MAX + 16], hts[48];
	char hsig[NB_SIG_ENTRY_MAX + 24], entry[NB_SIG_ENTRY_MAX];
	const char *headers[3];
	struct nb_xfer_request req;
	char *text = NULL;
	size_t len;
	int64_t ts = now_ms / 1000;
	int rc = -1;

	if (ac->webhook_url == NULL)
		return -1;
	if (ac->slack) {
		if (nb_alert_slack(body, &text) == -1)
			goto out;
	} else if ((text = strdup(body)) == NULL)
		goto out;
	len = strlen(text);
	memset(&req, 0, sizeof(req));
	req.url = ac->webhook_url;
	req.content_type = "application/json";
	req.timeout_ms = ac->timeout_ms;
	req.keep = ANSWER_KEEP;
	req.headers = headers;
	if (ac->secret != NULL) {
		if (nb_sig_sign_hmac(ac->secret, msg_id, ts,
			(const unsigned char *)text, len, entry,
			sizeof(entry)) == -1)
			goto out;
		(void)snprintf(hid, sizeof(hid), "webhook-id: %s", msg_id);
		(void)snprintf(
		    hts, sizeof(hts), "webhook-timestamp: %" PRId64, ts);
		(void)snprintf(
		    hsig, sizeof(hsig), "webhook-signature: %s", entry);
		headers[0] = hid;
		headers[1] = hts;
		headers[2] = hsig;
		req.nheaders = 3;
	}
	/* The transfer takes text, started or not. */
	rc = nb_xfer_start(mx, &req, text, len, done, arg);
	text = NULL;
out:
	if (rc == -1)
		log_warn(
		    "cannot start an alert notification", " msg_id=%s", msg_id);
	free(text);
	sodium_memzero(entry, sizeof(entry));
	sodium_memzero(hsig, sizeof(hsig));
	return rc;
}

int64_t
nb_alert_send_backoff_ms(const struct nb_alerts_config *ac, int attempts)
{
	int64_t wait = ac->retry_initial_ms;
	int i;

	for (i = 1; i < attempts && wait < ac->retry_max_ms; i++)
		wait *= 2;
	if (wait > ac->retry_max_ms)
		wait = ac->retry_max_ms;
	/* 80..100 %: spread what failed together. */
	return wait - (int64_t)randombytes_uniform((uint32_t)(wait / 5 + 1));
}

void
nb_alert_send_msg_id(char out[48])
{
	unsigned char r[12];

	randombytes_buf(r, sizeof(r));
	memcpy(out, "nbalert_", 8);
	sodium_bin2hex(out + 8, 48 - 8, r, sizeof(r));
}
