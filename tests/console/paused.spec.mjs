// SPDX-License-Identifier: ISC
//
// The Sources view of a paused source, in Debian's chromium (headless,
// through playwright-core): tests/integration/test_console.py starts a
// bridge whose OAuth token endpoint refuses the credentials; this script
// signs in and reads the paused card, which must name the refusal (the
// endpoint's error code and description).
//
// Environment: NB_ADMIN_URL, NB_TOKEN, NB_PAUSED_SOURCE, NB_PAUSED_TEXT
// (text the card must contain), CHROMIUM.  Prints "ok N - ..." per step and
// exits 0 when all pass.  The token is never printed.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const base = process.env.NB_ADMIN_URL;
const token = process.env.NB_TOKEN;
const source = process.env.NB_PAUSED_SOURCE;
const want = process.env.NB_PAUSED_TEXT;
const exe = process.env.CHROMIUM || "/usr/bin/chromium";

assert.ok(base && token && source && want,
	"NB_ADMIN_URL, NB_TOKEN, NB_PAUSED_SOURCE and NB_PAUSED_TEXT are required");

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
	});
	const page = context.pages()[0] || await context.newPage();
	await page.route("**/*", (route) =>
		route.request().url().startsWith(base + "/") ? route.continue()
			: route.abort());
	await page.goto(base + "/", { waitUntil: "load" });
	await page.fill("#token", token);
	await page.click("#signin-button");
	const card = page.locator(`article[data-source="${source}"]`);
	await card.waitFor();
	const paused = card.locator('[data-testid="paused"]');
	await paused.waitFor({ state: "visible" });
	const text = await paused.textContent();
	assert.ok(text.includes(want), `the paused card says: ${text}`);
	assert.match(await card.locator(".badge").textContent(), /paused/);
	console.log("ok 1 - the paused card names the refusal");
} finally {
	if (context)
		await context.close();
	rmSync(profile, { recursive: true, force: true });
}
