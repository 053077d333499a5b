// SPDX-License-Identifier: ISC
//
// nudgebridge console: the Events view (contract section 8).
//
// Search every stored event by address, uid, event id, source, type,
// state and time; open one to see the stored event, the Track message it
// becomes and its attempt timeline; replay a delivered or dead event from
// there.  Built on what console.js shares (window.nbConsole): the same
// fetch with the session's token, the same DOM helpers, textContent only.
// A search page of the API looks at a bounded number of rows and may come
// back short with a cursor (a rare address among many events): the view
// follows the cursor a few calls at most, then offers "More".
"use strict";

(function () {
	const nb = window.nbConsole;
	const PAGE = 50;
	const CALLS = 10; // API pages followed per search or "More"
	const FIELDS = ["email", "uid", "id", "source", "type", "state", "since", "until"];
	const $ = (id) => document.getElementById(id);
	const st = { filter: {}, next: null, rows: [], key: null, event: null };

	function readForm() {
		const f = {};
		for (const k of FIELDS) {
			const v = $("e-" + k).value.trim();
			if (v && !(k === "state" && v === "all"))
				f[k] = v;
		}
		return f;
	}

	async function sourceOptions() {
		let names = [];
		try {
			names = await nb.sources();
		} catch (e) {
			return;
		}
		const sel = $("e-source");
		const cur = sel.value;
		sel.replaceChildren(nb.el("option", { value: "", text: "any" }),
			...names.map((s) => nb.el("option", { value: s, text: s })));
		sel.value = cur;
	}

	// Fetches rows until a page is full, the cursor ends or CALLS calls.
	async function fetchRows(after) {
		const rows = [];
		let next = after;
		for (let i = 0; i < CALLS && rows.length < PAGE; i++) {
			const p = Object.assign({}, st.filter, { limit: PAGE - rows.length });
			if (next)
				p.after = next;
			const page = await nb.api("GET", "/v1/events" + nb.query(p));
			rows.push(...page.events);
			next = page.next;
			if (next === null)
				break;
		}
		return { rows, next };
	}

	async function search(more) {
		let got;
		try {
			got = await fetchRows(more ? st.next : null);
		} catch (e) {
			if (e.status !== 401)
				nb.toast(e.message, true);
			return;
		}
		st.rows = more ? st.rows.concat(got.rows) : got.rows;
		st.next = got.next;
		render();
	}

	function stateBadge(r) {
		const cls = r.state === "delivered" ? "ok"
			: r.state === "pending" ? "" : r.reason === "quarantined" ? "warn" : "bad";
		return nb.el("span", { class: "badge " + cls,
			text: r.state === "dead" ? r.reason || "dead" : r.state });
	}

	function render() {
		$("ev-rows").replaceChildren(...st.rows.map((r) =>
			nb.el("tr", { "data-key": r.key, onclick: () => open(r.key) },
				nb.el("td", { class: "mono", text: r.key }),
				nb.el("td", { text: nb.fmtTime(r.received_at), title: r.received_at }),
				nb.el("td", { class: "mono", text: r.source }),
				nb.el("td", { class: "mono", text: r.type || "—" }),
				nb.el("td", { class: "mono", text: r.id || "—" }),
				nb.el("td", {}, stateBadge(r)),
				nb.el("td", { text: String(r.attempts) }))));
		$("ev-empty").hidden = st.rows.length > 0;
		$("ev-more").disabled = st.next === null;
		$("ev-info").textContent = st.rows.length === 0 ? ""
			: nb.plural(st.rows.length, "event", "events") +
				(st.next === null ? "" : ", more older ones");
	}

	function attemptItem(a) {
		const ok = a.status !== null && a.status >= 200 && a.status < 300;
		return nb.el("li", { class: ok ? "ok" : "bad" },
			nb.el("span", { class: "badge " + (ok ? "ok" : "bad"),
				text: a.status === null ? "no answer" : String(a.status) }),
			nb.el("span", { class: "when", text: nb.fmtTime(a.at), title: a.at }),
			nb.el("span", { class: "muted",
				text: nb.plural(a.batch_size, "message", "messages") + " · " +
					a.latency_ms + " ms" }),
			a.error ? nb.el("span", { class: "msg", text: a.error }) : null);
	}

	async function open(key) {
		let ev;
		try {
			ev = await nb.api("GET", "/v1/events/" + encodeURIComponent(key));
		} catch (e) {
			if (e.status !== 401)
				nb.toast(e.message, true);
			return;
		}
		st.key = key;
		st.event = ev;
		$("ev-key").textContent = key;
		const rows = [
			["Source", ev.source], ["State", ev.state],
			["Event id", ev.id || "— (missing or invalid)"], ["Type", ev.type || "—"],
			["Reason", ev.reason || "—"], ["Failed tries", String(ev.tries)],
			["Received", ev.received_at], ["Updated", ev.updated_at],
			["Last error", ev.error || "—"],
		];
		$("ev-fields").replaceChildren(...rows.flatMap(([k, v]) => [
			nb.el("dt", { text: k }),
			nb.el("dd", { "data-field": k.toLowerCase(), text: v })]));
		const tl = $("ev-attempts");
		tl.replaceChildren(...ev.attempts.map(attemptItem));
		$("ev-noattempts").hidden = ev.attempts.length > 0;
		nb.showJson($("ev-event"), ev.event, "(no event stored)");
		nb.showJson($("ev-track"), ev.track,
			"Not mappable now: " + (ev.track_error || "unknown reason"));
		$("ev-replay").disabled = ev.state === "pending";
		$("ev-replay").title = ev.state === "pending"
			? "Pending events are on their way already" : "";
		$("ev-detail").showModal();
	}

	async function replay() {
		const ev = st.event;
		if (!ev)
			return;
		const body = { key: st.key, state: "all" };
		let dry;
		try {
			dry = await nb.api("POST", "/v1/dlq/replay", Object.assign({ dry_run: true }, body));
		} catch (e) {
			if (e.status !== 401)
				nb.toast(e.message, true);
			return;
		}
		$("ev-detail").close();
		if (dry.replayed === 0) {
			nb.toast("Nothing to replay: the event changed meanwhile.");
			return;
		}
		const text = ev.state === "delivered"
			? "Send event " + st.key + " to Segment again? It was delivered; it goes " +
				"out once more with the same messageId, which Segment de-duplicates."
			: "Replay event " + st.key + "? It goes back to the delivery queue and " +
				"is sent with its original messageId.";
		if (!await nb.confirmDialog("Replay event " + st.key + "?", text, "Replay"))
			return;
		try {
			const r = await nb.api("POST", "/v1/dlq/replay", body);
			nb.toast("Replayed " + nb.plural(r.replayed, "event", "events") +
				(r.requarantined ? " (still quarantined)" : "") + ".");
		} catch (e) {
			if (e.status !== 401)
				nb.toast(e.message, true);
			return;
		}
		search(false);
	}

	function init() {
		$("ev-filters").addEventListener("submit", (e) => {
			e.preventDefault();
			st.filter = readForm();
			search(false);
		});
		$("ev-reset").addEventListener("click", () => {
			for (const k of FIELDS)
				$("e-" + k).value = k === "state" ? "all" : "";
			st.filter = {};
			search(false);
		});
		$("ev-more").addEventListener("click", () => search(true));
		$("ev-close").addEventListener("click", () => $("ev-detail").close());
		$("ev-replay").addEventListener("click", replay);
		$("ev-person").addEventListener("click", () => {
			const s = st.event && st.event.event && st.event.event.subscriber;
			$("ev-detail").close();
			for (const k of FIELDS)
				$("e-" + k).value = k === "state" ? "all" : "";
			if (s && typeof s.email === "string")
				$("e-email").value = s.email;
			else if (s && typeof s.uid === "string")
				$("e-uid").value = s.uid;
			st.filter = readForm();
			search(false);
		});
	}

	nb.register("events", {
		load: () => {
			sourceOptions();
			search(false);
		},
	});
	if (document.readyState === "loading")
		document.addEventListener("DOMContentLoaded", init);
	else
		init();
})();
