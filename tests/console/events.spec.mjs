// SPDX-License-Identifier: ISC
//
// The Events view (contract section 8) in Debian's chromium, through
// playwright-core.  tests/integration/test_search.py starts the bridge and
// the Segment stand-in and stores a person's events first: one delivered
// after a 503 (two attempts), one dead (Segment rejected it with 400), and
// another person's; then this script is the operator:
//
//   1. signs in, opens Events, searches by the address in another case:
//      the person's two events, newest first, and no one else's;
//   2. narrows by uid and by state;
//   3. opens the delivered event: its fields, the stored event, the Track
//      message and the attempt timeline (503, then 200);
//   4. replays it after a confirmation (the caller checks the sink);
//   5. opens the dead one and finds the person's events from there.
//
// Environment: NB_ADMIN_URL, NB_TOKEN, NB_EMAIL (as stored), NB_UID,
// NB_DELIVERED_ID, NB_DELIVERED_MESSAGE_ID (its messageId), NB_DEAD_ID,
// CHROMIUM, NB_SCREENSHOTS (a folder for screenshots, optional).  Prints
// "ok N - ..." per step; exits 0 when all pass.  The token is never
// printed.

import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const base = process.env.NB_ADMIN_URL;
const token = process.env.NB_TOKEN;
const email = process.env.NB_EMAIL;
const uid = process.env.NB_UID;
const deliveredId = process.env.NB_DELIVERED_ID;
const deadId = process.env.NB_DEAD_ID;
const shots = process.env.NB_SCREENSHOTS || "";
const exe = process.env.CHROMIUM || "/usr/bin/chromium";

assert.ok(base && token && email && uid && deliveredId && deadId,
	"NB_ADMIN_URL, NB_TOKEN, NB_EMAIL, NB_UID, NB_DELIVERED_ID and NB_DEAD_ID are required");

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

// Waits until the result table holds exactly these ids, in this order.
async function rowsAre(page, ids) {
	await page.waitForFunction((want) => {
		const got = [...document.querySelectorAll("#ev-rows tr td:nth-child(5)")]
			.map((td) => td.textContent);
		return JSON.stringify(got) === JSON.stringify(want);
	}, ids, { timeout: 10000 });
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
		viewport: { width: 1366, height: 860 },
	});
	const page = context.pages()[0] || await context.newPage();
	const pageErrors = [];
	page.on("pageerror", (e) => pageErrors.push(String(e)));
	page.on("console", (m) => {
		if (m.type() === "error")
			pageErrors.push(m.text());
	});
	await page.route("**/*", (route) =>
		route.request().url().startsWith(base + "/") ? route.continue()
			: route.abort());
	await page.goto(base + "/", { waitUntil: "load" });
	await page.fill("#token", token);
	await page.click("#signin-button");
	await page.locator("#view-sources").waitFor({ state: "visible" });

	// 1. Search by address, in another case than stored.
	await page.click("#tab-events");
	await page.locator("#view-events").waitFor({ state: "visible" });
	await page.fill("#e-email", email.toUpperCase());
	await page.click("#ev-search");
	await rowsAre(page, [deadId, deliveredId]);
	assert.match(await page.locator("#ev-info").textContent(), /^2 events$/);
	ok("a search by address finds the person's events, newest first");
	await shot(page, "events");

	// 2. By uid, and by state.
	await page.fill("#e-email", "");
	await page.fill("#e-uid", uid);
	await page.click("#ev-search");
	await rowsAre(page, [deadId, deliveredId]);
	await page.selectOption("#e-state", "dead");
	await page.click("#ev-search");
	await rowsAre(page, [deadId]);
	await page.fill("#e-uid", uid.toUpperCase());
	await page.selectOption("#e-state", "all");
	await page.click("#ev-search");
	await page.locator("#ev-empty").waitFor({ state: "visible" });
	ok("a uid is matched exactly; the state narrows the search");

	// 3. The delivered event: timeline, stored event, Track message.
	await page.click("#ev-reset");
	await page.fill("#e-id", deliveredId);
	await page.click("#ev-search");
	await rowsAre(page, [deliveredId]);
	await page.locator("#ev-rows tr").first().click();
	const detail = page.locator("#ev-detail");
	await detail.waitFor({ state: "visible" });
	assert.equal(await page.locator('#ev-fields dd[data-field="state"]').textContent(), "delivered");
	assert.equal(await page.locator('#ev-fields dd[data-field="failed tries"]').textContent(), "1");
	const items = page.locator("#ev-attempts li");
	assert.equal(await items.count(), 2);
	assert.match(await items.nth(0).textContent(), /^503/);
	assert.match(await items.nth(0).textContent(), /segment: 503/);
	assert.match(await items.nth(1).textContent(), /^200/);
	assert.match(await items.nth(1).textContent(), /1 message · \d+ ms/);
	const stored = JSON.parse(await page.locator("#ev-event").textContent());
	assert.equal(stored.id, deliveredId);
	assert.equal(stored.subscriber.email, email);
	const track = JSON.parse(await page.locator("#ev-track").textContent());
	assert.equal(track.type, "track");
	assert.equal(track.userId, uid);
	// The messageId by the row's rule and the store's install id.
	assert.equal(track.messageId, process.env.NB_DELIVERED_MESSAGE_ID);
	ok("the event's page shows the attempt timeline, the event and its Track message");
	await shot(page, "event");

	// 4. Replay the delivered event.
	assert.equal(await page.locator("#ev-replay").isEnabled(), true);
	await page.click("#ev-replay");
	await page.locator("#confirm").waitFor({ state: "visible" });
	assert.match(await page.locator("#c-text").textContent(), /delivered; it goes out once more/);
	await page.click("#c-ok");
	await page.locator("#toast", { hasText: "Replayed 1 event" }).waitFor();
	ok("a delivered event is replayed after a confirmation");

	// 5. The dead one, and the person's events from there.
	await page.click("#ev-reset");
	await page.fill("#e-id", deadId);
	await page.click("#ev-search");
	await rowsAre(page, [deadId]);
	await page.locator("#ev-rows tr").first().click();
	await detail.waitFor({ state: "visible" });
	assert.equal(await page.locator('#ev-fields dd[data-field="reason"]').textContent(),
		"rejected_by_segment");
	assert.match(await page.locator("#ev-attempts li").first().textContent(), /^400/);
	assert.equal(await page.locator("#ev-replay").isEnabled(), true);
	await page.click("#ev-person");
	await rowsAre(page, [deadId, deliveredId]);
	assert.equal(await page.inputValue("#e-email"), email);
	ok("a dead event's page leads to the person's events");

	const real = pageErrors.filter((e) => !/401|Unauthorized/.test(e));
	assert.deepEqual(real, [], "no script errors on the page");
	ok("no script errors");
	console.log(`1..${step}`);
} finally {
	if (context)
		await context.close();
	rmSync(profile, { recursive: true, force: true });
}
