// SPDX-License-Identifier: ISC
//
// Drives Debian's chromium (headless, through playwright-core) against the
// operator console of a running bridge.  tests/integration/test_console.py
// starts the bridge and the Segment stand-in, makes the dead letters and
// checks the sink afterwards; this script is the person at the browser:
//
//   1. a wrong token is refused with a clear message;
//   2. the right token signs in; the Sources view shows the dead letter,
//      this instance, the install id, and the dead_letters alert it set
//      off (list and card badge);
//   3. the Dead letters view lists it; the detail shows payload and Track;
//   4. "Replay" asks for confirmation naming 1 event, and the event ends up
//      delivered;
//   5. "Purge all matching" confirms a count and purges exactly those
//      events: one more quarantined event that arrives while the
//      confirmation is open (NB_LATE_*) is left alone;
//   6. a selection of the quarantined events left is purged after a
//      confirmation that counts them.
//
// Environment: NB_ADMIN_URL (http://127.0.0.1:PORT), NB_TOKEN, NB_DEAD_ID
// (the id of the event Segment rejected) and NB_DEAD_MESSAGE_ID (its
// messageId), NB_INSTALL_ID (the store's), NB_QUARANTINED (how many
// quarantined events exist), NB_MAIN_URL, NB_LATE_BODY and NB_LATE_HEADERS
// (a signed webhook, JSON headers, holding one more quarantined event:
// sent during step 5), CHROMIUM (default /usr/bin/chromium),
// NB_SCREENSHOTS (a folder: when set, screenshots of the main views are
// written there).  Prints "ok N - ..." per step and exits 0 when all pass.
// The token is never printed.

import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const base = process.env.NB_ADMIN_URL;
const token = process.env.NB_TOKEN;
const deadId = process.env.NB_DEAD_ID;
const deadMessageId = process.env.NB_DEAD_MESSAGE_ID;
const install = process.env.NB_INSTALL_ID;
const nquarantined = Number(process.env.NB_QUARANTINED || "0");
const shots = process.env.NB_SCREENSHOTS || "";
const exe = process.env.CHROMIUM || "/usr/bin/chromium";

assert.ok(base && token && deadId && deadMessageId && install &&
	process.env.NB_LATE_BODY,
	"NB_ADMIN_URL, NB_TOKEN, NB_DEAD_ID, NB_DEAD_MESSAGE_ID, NB_INSTALL_ID and NB_LATE_* are required");

function plural(n) {
	return n + " " + (n === 1 ? "event" : "events");
}

let step = 0;
function ok(what) {
	step++;
	console.log(`ok ${step} - ${what}`);
}

async function shot(page, name) {
	if (!shots)
		return;
	mkdirSync(shots, { recursive: true });
	await page.screenshot({ path: join(shots, name + ".png") });
}

const profile = mkdtempSync(join(tmpdir(), "nb-chromium-"));
let context;
try {
	context = await chromium.launchPersistentContext(profile, {
		executablePath: exe,
		headless: true,
		args: [
			"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
			"--no-first-run", "--disable-background-networking",
			"--disable-component-update", "--disable-sync",
		],
		viewport: { width: 1366, height: 800 },
		offline: false,
	});
	const page = context.pages()[0] || await context.newPage();
	const requests = [];
	page.on("request", (r) => requests.push(r.url()));
	const pageErrors = [];
	page.on("pageerror", (e) => pageErrors.push(String(e)));
	page.on("console", (m) => {
		if (m.type() === "error")
			pageErrors.push(m.text());
	});
	// Every request stays on the bridge: nothing from a CDN or elsewhere.
	await page.route("**/*", (route) => {
		const u = route.request().url();
		if (!u.startsWith(base + "/"))
			return route.abort();
		return route.continue();
	});

	await page.goto(base + "/", { waitUntil: "load" });
	await page.locator("#signin").waitFor({ state: "visible" });
	await shot(page, "signin");

	// 1. Wrong token.
	await page.fill("#token", "not-the-token-" + Date.now());
	await page.click("#signin-button");
	const err = page.locator("#signin-error");
	await err.waitFor({ state: "visible" });
	assert.match(await err.textContent(), /wrong token/i);
	assert.equal(await page.locator("#view-sources").isVisible(), false);
	assert.equal(await page.evaluate(() => sessionStorage.length), 0);
	ok("a wrong token is refused");

	// 2. Sign in.
	await page.fill("#token", token);
	await page.click("#signin-button");
	await page.locator("#view-sources").waitFor({ state: "visible" });
	const card = page.locator('article[data-source="acme"]');
	await card.waitFor();
	await page.waitForFunction(() => {
		const v = document.querySelector('article[data-source="acme"] [data-testid="dead"] .v');
		return v && Number(v.textContent) >= 1;
	});
	assert.match(await card.locator(".errors").textContent(), /400|rejected/i);
	for (const u of requests)
		assert.ok(!u.includes(token), "the token must never be in a URL");
	ok("signs in; the source shows the dead letter and its error");
	// The instances: this one (SQLite: the only one), the install id.
	const self = page.locator("#fleet-rows tr.self");
	await self.waitFor();
	assert.equal(await page.locator("#fleet-rows tr").count(), 1);
	assert.match(await self.textContent(), /this instance/);
	assert.equal(await page.locator("#install-id").textContent(), install);
	assert.match(await page.locator("#fleet-rate").textContent(), /live instance/);
	ok("the instances table lists this instance, the install id and the rate share");

	// 2b. What fires now: the dead letters are an alert, above the cards
	// and on the source's card.
	const alert = page.locator('#alert-list li[data-alert="dead_letters"][data-source="acme"]');
	await alert.waitFor({ state: "visible" });
	assert.match(await alert.textContent(), /new dead letter.*in source acme/);
	await card.locator('[data-testid="alert-badge"]', { hasText: "new dead letters" }).waitFor();
	ok("the Sources view shows the alert firing for the source");
	await shot(page, "sources");

	// 3. Dead letters: find the rejected event.
	await page.click("#tab-dlq");
	await page.locator("#view-dlq").waitFor({ state: "visible" });
	await page.selectOption("#f-reason", "rejected_by_segment");
	await page.click("#f-apply");
	const row = page.locator("#dlq-rows tr", { hasText: deadId });
	await row.waitFor();
	// The unfiltered rows may still be on screen until the filtered
	// answer arrives: wait for the table to settle on one row.
	await page.waitForFunction(
	    () => document.querySelectorAll("#dlq-rows tr").length === 1,
	    null, { timeout: 10000 });
	assert.equal(await page.locator("#dlq-rows tr").count(), 1);
	ok("the dead-letter table filters by reason and lists the event");
	await page.click("#f-reset");
	await page.locator("#dlq-rows tr").nth(nquarantined).waitFor();
	await shot(page, "dead-letters");

	// Detail view.
	const key = await row.getAttribute("data-key");
	await row.click();
	const detail = page.locator("#detail");
	await detail.waitFor({ state: "visible" });
	assert.match(await page.locator("#d-payload").textContent(), new RegExp(deadId));
	const track = JSON.parse(await page.locator("#d-track").textContent());
	assert.equal(track.type, "track");
	assert.equal(track.messageId, deadMessageId);
	assert.equal(await page.locator('dd[data-field="reason"]').textContent(), "rejected_by_segment");
	ok("the detail shows payload, Track message and reason");
	await shot(page, "detail");

	// 4. Replay it, after the confirmation.
	await page.click("#d-replay");
	const confirm = page.locator("#confirm");
	await confirm.waitFor({ state: "visible" });
	assert.match(await page.locator("#c-text").textContent(), /Replay 1 event\b/);
	await shot(page, "confirm");
	await page.click("#c-ok");
	await page.locator("#toast", { hasText: "Replayed 1 event" }).waitFor();
	const state = await page.evaluate(async ({ key }) => {
		const tok = sessionStorage.getItem("nudgebridge.token");
		for (let i = 0; i < 200; i++) {
			const r = await fetch("/v1/dlq/" + key, { headers: { Authorization: "Bearer " + tok } });
			const ev = await r.json();
			if (ev.state === "delivered")
				return ev.state;
			await new Promise((res) => setTimeout(res, 100));
		}
		return "not delivered";
	}, { key });
	assert.equal(state, "delivered");
	ok("replay with confirmation: the event is delivered");

	// 5. Purge all matching: exactly what the confirmation counted.
	if (nquarantined > 0) {
		await page.click("#f-reset");
		await page.selectOption("#f-reason", "quarantined");
		await page.click("#f-apply");
		await page.locator("#dlq-rows tr").nth(nquarantined - 1).waitFor();
		await page.click("#purge-filter");
		await confirm.waitFor({ state: "visible" });
		assert.match(await page.locator("#c-text").textContent(),
			new RegExp("^Purge " + nquarantined + " events? \\(filter reason=quarantined\\)"));
		// Another quarantined event arrives while the operator reads.
		const late = await fetch(process.env.NB_MAIN_URL, {
			method: "POST", body: process.env.NB_LATE_BODY,
			headers: JSON.parse(process.env.NB_LATE_HEADERS),
		});
		assert.deepEqual(await late.json(), { accepted: 0, duplicates: 0, quarantined: 1 });
		await page.click("#c-ok");
		await page.locator("#toast", { hasText: "Purged " + plural(nquarantined) }).waitFor();
		await page.waitForFunction(
		    () => document.querySelectorAll("#dlq-rows tr").length === 1,
		    null, { timeout: 10000 });
		assert.match(await page.locator("#dlq-rows tr").textContent(),
			new RegExp(process.env.NB_LATE_ID));
		ok("purge all matching touches only what was confirmed");
	}

	// 6. Purge what is left as a selection.
	{
		await page.click("#f-reset");
		await page.locator("#dlq-rows tr").first().waitFor();
		assert.equal(await page.locator("#dlq-rows tr").count(), 1);
		await page.check("#select-all");
		assert.match(await page.locator("#selcount").textContent(), /^1 selected/);
		await page.click("#purge-selected");
		await confirm.waitFor({ state: "visible" });
		assert.match(await page.locator("#c-text").textContent(), /Purge 1 event \(/);
		await page.click("#c-ok");
		await page.locator("#toast", { hasText: "Purged 1 event" }).waitFor();
		await page.locator("#dlq-empty").waitFor({ state: "visible" });
		ok("a selection is purged after a confirmation that counts it");
	}

	// Signing out forgets the token.
	await page.click("#signout");
	await page.locator("#signin").waitFor({ state: "visible" });
	assert.equal(await page.evaluate(() => sessionStorage.getItem("nudgebridge.token")), null);
	ok("signing out forgets the token");
	// 401s of the wrong-token step are logged by chromium as failed loads.
	const real = pageErrors.filter((e) => !/401|Unauthorized/.test(e));
	assert.deepEqual(real, [], "no script errors on the page");
	ok("no script errors");
	console.log(`1..${step}`);
} finally {
	if (context)
		await context.close();
	rmSync(profile, { recursive: true, force: true });
}
