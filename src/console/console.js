// SPDX-License-Identifier: ISC
//
// nudgebridge console: the admin API in a browser tab.
//
// The admin token is typed into the sign-in form and kept in sessionStorage
// (this tab only, gone when it closes); it travels only in the
// Authorization header of fetch() calls to this origin, never in a URL, and
// is never written to the console.  Everything shown comes from the API and
// is put on the page with textContent, never as markup.  No framework: a
// few functions that fetch, build DOM nodes and keep a little state.
"use strict";

(function () {
	const TOKEN_KEY = "nudgebridge.token";
	const POLL_MS = 5000;
	const PAGE_SIZE = 50;
	const HISTORY = 36; // samples per sparkline (3 minutes at 5 s)

	const state = {
		view: "sources",
		timer: null,
		history: {}, // source -> [{in, out}]
		sources: [],
		filter: {}, // the applied dead-letter filter
		pages: [0], // "after" of each page seen, for First page
		next: null,
		rows: [],
		selected: new Set(),
		detailKey: null,
		alerts: [], // what GET /v1/alerts says fires now
	};

	const $ = (id) => document.getElementById(id);
	// Views other files add (events.js): name -> {load()}.
	const extraViews = {};

	function el(tag, attrs, ...children) {
		const n = document.createElement(tag);
		for (const [k, v] of Object.entries(attrs || {})) {
			if (v === null || v === undefined || v === false)
				continue;
			if (k === "class")
				n.className = v;
			else if (k === "text")
				n.textContent = v;
			else if (k.startsWith("on"))
				n.addEventListener(k.slice(2), v);
			else
				n.setAttribute(k, v === true ? "" : String(v));
		}
		for (const c of children) {
			if (c === null || c === undefined)
				continue;
			n.append(c instanceof Node ? c : document.createTextNode(String(c)));
		}
		return n;
	}

	// -- API ------------------------------------------------------------

	class ApiError extends Error {
		constructor(status, code, message) {
			super(message);
			this.status = status;
			this.code = code;
		}
	}

	function token() {
		return sessionStorage.getItem(TOKEN_KEY);
	}

	async function api(method, path, body, tok) {
		const headers = { Authorization: "Bearer " + (tok || token() || "") };
		const init = { method, headers, cache: "no-store", credentials: "omit" };
		if (body !== undefined) {
			headers["Content-Type"] = "application/json";
			init.body = JSON.stringify(body);
		}
		let r;
		try {
			r = await fetch(path, init);
		} catch (e) {
			throw new ApiError(0, "network", "Cannot reach the bridge's admin listener.");
		}
		let data = null;
		try {
			data = await r.json();
		} catch (e) {
			data = null;
		}
		if (!r.ok) {
			const code = data && data.error ? data.error : "http_" + r.status;
			let msg = data && data.message ? data.message : "HTTP " + r.status;
			if (r.status === 429) {
				const ra = r.headers.get("Retry-After");
				msg = "Too many failed sign-ins from this address: the bridge refuses its requests" +
					(ra ? " for " + ra + " s" : " for a while") + ".";
			}
			const err = new ApiError(r.status, code, msg);
			if (r.status === 401 && !tok)
				signedOut("The bridge no longer accepts this token (was the configuration reloaded?). Sign in again.");
			throw err;
		}
		return data;
	}

	function query(obj) {
		const p = new URLSearchParams();
		for (const [k, v] of Object.entries(obj))
			if (v !== "" && v !== null && v !== undefined)
				p.set(k, String(v));
		const s = p.toString();
		return s ? "?" + s : "";
	}

	// -- formatting -----------------------------------------------------

	function fmtAge(s) {
		if (!s || s < 1)
			return "0 s";
		if (s < 90)
			return Math.round(s) + " s";
		if (s < 5400)
			return Math.round(s / 60) + " min";
		if (s < 172800)
			return (s / 3600).toFixed(1) + " h";
		return (s / 86400).toFixed(1) + " d";
	}

	function fmtTime(iso) {
		if (!iso)
			return "";
		const d = new Date(iso);
		if (isNaN(d))
			return iso;
		return d.toLocaleString(undefined, {
			month: "short", day: "numeric", hour: "2-digit",
			minute: "2-digit", second: "2-digit",
		});
	}

	function fmtAgo(iso) {
		const d = new Date(iso);
		if (isNaN(d))
			return "";
		return fmtAge((Date.now() - d.getTime()) / 1000) + " ago";
	}

	function plural(n, one, many) {
		return n + " " + (n === 1 ? one : many);
	}

	function toast(msg, bad) {
		const t = $("toast");
		t.textContent = msg;
		t.classList.toggle("bad", !!bad);
		t.hidden = false;
		clearTimeout(toast.timer);
		toast.timer = setTimeout(() => { t.hidden = true; }, bad ? 8000 : 4000);
	}

	// -- sign in --------------------------------------------------------

	function showSignIn(message) {
		stopPolling();
		$("signin").hidden = false;
		$("tabs").hidden = true;
		$("signout").hidden = true;
		for (const v of document.querySelectorAll("section.view"))
			v.hidden = true;
		$("conn").textContent = "";
		const e = $("signin-error");
		e.textContent = message || "";
		e.hidden = !message;
		$("token").value = "";
		$("token").focus();
	}

	function signedOut(message) {
		sessionStorage.removeItem(TOKEN_KEY);
		for (const d of document.querySelectorAll("dialog[open]"))
			d.close();
		showSignIn(message);
	}

	async function signIn(ev) {
		ev.preventDefault();
		const tok = $("token").value.trim();
		const btn = $("signin-button");
		if (!tok)
			return;
		btn.disabled = true;
		try {
			const stats = await api("GET", "/v1/stats", undefined, tok);
			sessionStorage.setItem(TOKEN_KEY, tok);
			$("token").value = "";
			enter(stats);
		} catch (e) {
			let msg = e.message;
			if (e.status === 401)
				msg = "Wrong token: the bridge refused it (401). Use the value of admin.token from its configuration.";
			showSignIn(msg);
		} finally {
			btn.disabled = false;
		}
	}

	function enter(stats) {
		$("signin").hidden = true;
		$("tabs").hidden = false;
		$("signout").hidden = false;
		const want = location.hash.slice(1);
		switchView(want === "dlq" || extraViews[want] ? want : "sources", stats);
	}

	// -- views ----------------------------------------------------------

	function switchView(view, stats) {
		state.view = view;
		for (const b of document.querySelectorAll(".tab"))
			b.classList.toggle("active", b.dataset.view === view);
		for (const v of document.querySelectorAll("section.view"))
			v.hidden = v.id !== "view-" + view;
		if (location.hash !== "#" + view)
			history.replaceState(null, "", "#" + view);
		stopPolling();
		if (view === "sources") {
			if (stats) {
				renderStats(stats);
				loadAlerts().then(() => renderStats(stats));
			}
			poll(!stats);
		} else if (view === "dlq") {
			refreshSourceOptions();
			loadDlq();
		} else if (extraViews[view]) {
			extraViews[view].load();
		}
	}

	function stopPolling() {
		if (state.timer)
			clearTimeout(state.timer);
		state.timer = null;
	}

	async function poll(now) {
		stopPolling();
		if (now) {
			try {
				await loadAlerts();
				renderStats(await api("GET", "/v1/stats"));
				$("conn").textContent = "connected";
			} catch (e) {
				if (e.status === 401)
					return;
				$("conn").textContent = e.message;
			}
		}
		if (state.view === "sources" && token())
			state.timer = setTimeout(() => poll(true), POLL_MS);
	}

	// -- sources --------------------------------------------------------

	function sparkline(samples) {
		const ns = "http://www.w3.org/2000/svg";
		const svg = document.createElementNS(ns, "svg");
		svg.setAttribute("class", "spark");
		svg.setAttribute("viewBox", "0 0 " + (HISTORY - 1) + " 30");
		svg.setAttribute("preserveAspectRatio", "none");
		const max = Math.max(1, ...samples.map((s) => Math.max(s.in, s.out)));
		for (const k of ["in", "out"]) {
			const pts = samples.map((s, i) =>
				(i + HISTORY - samples.length) + "," +
				(29 - (s[k] / max) * 27).toFixed(2)).join(" ");
			const pl = document.createElementNS(ns, "polyline");
			pl.setAttribute("class", k);
			pl.setAttribute("points", pts);
			pl.setAttribute("vector-effect", "non-scaling-stroke");
			svg.append(pl);
		}
		return svg;
	}

	function metric(value, label, cls, testid) {
		return el("div", { class: "metric " + (cls || ""), "data-testid": testid },
			el("div", { class: "v", text: value }),
			el("div", { class: "l", text: label }));
	}

	function pausedText(s) {
		// paused_error says who refused what (the write key, an OAuth
		// token, or the token endpoint with its error and description).
		const why = s.paused_error
			? s.paused_error.charAt(0).toUpperCase() + s.paused_error.slice(1)
			: s.paused_status === 401
				? "Segment refused the write key (401 Unauthorized)"
				: s.paused_status === 403
					? "Segment refused the write key (403 Forbidden)"
					: "Segment answered " + s.paused_status;
		return "Paused: " + why + ". Delivery resumes " +
			(s.paused_until ? "at " + fmtTime(s.paused_until) : "later") +
			", or at once after a configuration reload with fixed credentials.";
	}

	// -- alerts ---------------------------------------------------------

	const ALERT_NAMES = {
		source_paused: "delivery paused",
		dead_letters: "new dead letters",
		backlog_age: "old backlog",
		source_silent: "silent",
		store_unavailable: "store unavailable",
	};

	// What fires now, above the cards; a bridge without the route (an
	// older one) shows nothing rather than an error.
	async function loadAlerts() {
		try {
			state.alerts = (await api("GET", "/v1/alerts")).alerts || [];
		} catch (e) {
			if (e.status === 401)
				throw e;
			state.alerts = [];
		}
		const list = $("alert-list");
		list.replaceChildren(...state.alerts.map((a) => el("li",
			{ "data-alert": a.alert, "data-source": a.source || "" },
			el("span", { class: "badge bad",
				text: ALERT_NAMES[a.alert] || a.alert }),
			el("span", { class: "msg", text: a.summary }),
			el("span", { class: "when", text: "started " + fmtAgo(a.started_at) }))));
		$("alerts").hidden = state.alerts.length === 0;
	}

	function renderSource(s) {
		const h = state.history[s.source] || (state.history[s.source] = []);
		h.push({ in: s.received_1m || 0, out: s.delivered_1m || 0 });
		while (h.length > HISTORY)
			h.shift();
		const status = s.paused
			? el("span", { class: "badge bad", text: "paused" })
			: s.pending > 0
				? el("span", { class: "badge", text: "delivering" })
				: el("span", { class: "badge ok", text: "idle" });
		const alerts = state.alerts.filter((a) => a.source === s.source &&
			a.alert !== "source_paused").map((a) => el("span",
			{ class: "badge bad", "data-testid": "alert-badge",
				title: a.summary, text: ALERT_NAMES[a.alert] || a.alert }));
		const card = el("article", { class: "card source", "data-source": s.source },
			el("div", { class: "source-head" },
				el("h2", { text: s.source }), status, ...alerts),
			el("div", { class: "metrics" },
				metric(String(s.received_1m ?? 0), "events in / min", "", "in"),
				metric(String(s.delivered_1m ?? 0), "delivered / min", "", "out"),
				metric(String(s.pending), "queued (" + s.inflight + " in flight)",
					s.pending > 0 && s.oldest_pending_age_s > 300 ? "warn" : "", "pending"),
				metric(fmtAge(s.oldest_pending_age_s), "oldest pending",
					s.oldest_pending_age_s > 300 ? "warn" : "", "age"),
				metric(String(s.dead), "dead letters (" + s.quarantined + " quarantined)",
					s.dead > 0 ? "bad" : "", "dead"),
				metric(String(s.delivered), "delivered, retained", "", "delivered")),
			h.length >= 2 ? sparkline(h) : null,
			h.length >= 2 ? el("div", { class: "legend" },
				el("span", { class: "in", text: "in / min" }),
				el("span", { class: "out", text: "delivered / min" })) : null);
		if (s.paused)
			card.append(el("div", { class: "paused", "data-testid": "paused",
				text: pausedText(s) }));
		const errs = s.last_errors || [];
		if (errs.length > 0) {
			card.append(el("h3", { text: "Last errors" }));
			const ul = el("ul", { class: "errors" });
			for (const e of errs) {
				const tag = e.state === "dead" ? (e.reason || "dead") : "retrying";
				ul.append(el("li", {},
					el("span", { class: "badge " + (e.state === "dead" ? "bad" : "warn"),
						text: tag }),
					el("span", { class: "msg", text: e.error }),
					el("span", { class: "when",
						text: "×" + e.count + " · " + fmtAgo(e.last_at) })));
			}
			card.append(ul);
		}
		if (s.dead > 0)
			card.append(el("div", { class: "dialog-foot" },
				el("button", { type: "button", text: "Show dead letters",
					onclick: () => { setFilterForm({ source: s.source }); switchView("dlq"); } })));
		return card;
	}

	// The live instances sharing the store, and this one's rate share.
	function renderFleet(stats) {
		const rl = stats.rate_limit;
		const rows = (stats.instances || []).map((i) =>
			el("tr", { "data-instance": i.id, class: i.self ? "self" : null },
				el("td", { class: "mono" }, i.id.slice(0, 12),
					i.self ? el("span", { class: "badge ok", text: "this instance" }) : null),
				el("td", { text: i.host }),
				el("td", { class: "mono", text: String(i.pid) }),
				el("td", { text: fmtTime(i.started_at) }),
				el("td", { text: fmtAgo(i.heartbeat_at) })));
		$("fleet-rows").replaceChildren(...rows);
		$("install-id").textContent = stats.install_id || "";
		$("fleet-rate").textContent = !rl ? ""
			: rl.budget_rps <= 0
				? "no rate limit"
				: rl.budget_rps + " requests/s per write key for the fleet; this instance sends up to " +
					(Math.round(rl.share_rps * 100) / 100) + " (" +
					plural(rl.live_instances, "live instance", "live instances") + ")";
	}

	function renderStats(stats) {
		state.sources = stats.sources.map((s) => s.source);
		$("draining").hidden = !stats.draining;
		$("truncated").hidden = !stats.rates_truncated;
		$("updated").textContent = "updated " + new Date().toLocaleTimeString();
		const box = $("sources");
		box.replaceChildren(...stats.sources.map(renderSource));
		$("no-sources").hidden = stats.sources.length > 0;
		renderFleet(stats);
	}

	// -- dead letters ---------------------------------------------------

	async function refreshSourceOptions() {
		if (state.sources.length === 0) {
			try {
				const st = await api("GET", "/v1/stats");
				state.sources = st.sources.map((s) => s.source);
			} catch (e) {
				return;
			}
		}
		const sel = $("f-source");
		const cur = sel.value || state.filter.source || "";
		sel.replaceChildren(el("option", { value: "", text: "any" }),
			...state.sources.map((s) => el("option", { value: s, text: s })));
		sel.value = cur;
	}

	function readFilterForm() {
		const f = {};
		for (const k of ["source", "type", "reason", "since", "until", "id", "key"]) {
			const v = $("f-" + k).value.trim();
			if (v)
				f[k] = v;
		}
		return f;
	}

	function setFilterForm(f) {
		for (const k of ["source", "type", "reason", "since", "until", "id", "key"]) {
			const n = $("f-" + k);
			if (k === "source" && f.source && ![...n.options].some((o) => o.value === f.source))
				n.append(el("option", { value: f.source, text: f.source }));
			n.value = f[k] || "";
		}
		state.filter = f;
		state.pages = [0];
	}

	async function loadDlq(after) {
		after = after || 0;
		const params = Object.assign({}, state.filter, { limit: PAGE_SIZE });
		if (after)
			params.after = after;
		let data;
		try {
			data = await api("GET", "/v1/dlq" + query(params));
		} catch (e) {
			if (e.status !== 401)
				toast(e.message, true);
			return;
		}
		state.rows = data.events;
		state.next = data.next_after;
		state.selected.clear();
		renderRows();
		const page = state.pages.indexOf(after);
		$("page-info").textContent = data.events.length === 0
			? ""
			: "page " + (page + 1) + " · " + plural(data.events.length, "event", "events");
		$("page-first").disabled = after === 0;
		$("page-next").disabled = state.next === null;
	}

	function renderRows() {
		const body = $("dlq-rows");
		body.replaceChildren(...state.rows.map((r) => {
			const cb = el("input", { type: "checkbox", "aria-label": "select " + r.key,
				"data-key": r.key });
			cb.checked = state.selected.has(r.key);
			cb.addEventListener("click", (e) => e.stopPropagation());
			cb.addEventListener("change", () => {
				if (cb.checked)
					state.selected.add(r.key);
				else
					state.selected.delete(r.key);
				updateSelection();
			});
			return el("tr", { "data-key": r.key, class: state.selected.has(r.key) ? "selected" : null,
				onclick: () => openDetail(r.key) },
				el("td", { class: "check" }, cb),
				el("td", { class: "mono", text: r.key }),
				el("td", { text: fmtTime(r.received_at), title: r.received_at }),
				el("td", { class: "mono", text: r.source }),
				el("td", { class: "mono", text: r.type || "—" }),
				el("td", { class: "mono", text: r.id || "—" }),
				el("td", {}, el("span", { class: "badge " + (r.reason === "quarantined" ? "warn" : "bad"),
					text: r.reason || r.state })),
				el("td", { text: String(r.attempts) }),
				el("td", { class: "err", text: r.error || "", title: r.error || null }));
		}));
		$("dlq-empty").hidden = state.rows.length > 0;
		updateSelection();
	}

	function updateSelection() {
		const n = state.selected.size;
		$("selcount").textContent = n + " selected";
		$("replay-selected").disabled = n === 0;
		$("purge-selected").disabled = n === 0;
		const all = $("select-all");
		all.checked = n > 0 && n === state.rows.length;
		all.indeterminate = n > 0 && n < state.rows.length;
		for (const tr of $("dlq-rows").children)
			tr.classList.toggle("selected", state.selected.has(tr.dataset.key));
	}

	// -- detail ---------------------------------------------------------

	function showJson(pre, value, missing) {
		if (value === null || value === undefined) {
			pre.textContent = missing;
			pre.classList.add("none");
		} else {
			pre.textContent = JSON.stringify(value, null, 2);
			pre.classList.remove("none");
		}
	}

	async function openDetail(key) {
		let ev;
		try {
			ev = await api("GET", "/v1/dlq/" + encodeURIComponent(key));
		} catch (e) {
			if (e.status !== 401)
				toast(e.message, true);
			return;
		}
		state.detailKey = key;
		$("d-key").textContent = key;
		const f = $("d-fields");
		f.replaceChildren();
		const rows = [
			["Source", ev.source], ["State", ev.state],
			["Event id", ev.id || "— (missing or invalid)"], ["Type", ev.type || "—"],
			["Reason", ev.reason || "—"], ["Attempts", String(ev.attempts)],
			["Received", ev.received_at], ["Updated", ev.updated_at],
			["Last error", ev.error || "—"],
		];
		for (const [k, v] of rows)
			f.append(el("dt", { text: k }), el("dd", { "data-field": k.toLowerCase(), text: v }));
		showJson($("d-payload"), ev.payload, "(no payload stored)");
		showJson($("d-track"), ev.track,
			"Not mappable now: " + (ev.track_error || "unknown reason"));
		const dead = ev.state === "dead";
		$("d-replay").disabled = !dead;
		$("d-purge").disabled = false;
		$("detail").showModal();
	}

	// -- replay and purge -------------------------------------------------

	function confirmDialog(title, text, okLabel, danger) {
		return new Promise((resolve) => {
			const d = $("confirm");
			$("c-title").textContent = title;
			$("c-text").textContent = text;
			const ok = $("c-ok");
			ok.textContent = okLabel;
			ok.classList.toggle("danger", !!danger);
			const done = (v) => {
				ok.removeEventListener("click", yes);
				$("c-cancel").removeEventListener("click", no);
				d.removeEventListener("cancel", no);
				if (d.open)
					d.close();
				resolve(v);
			};
			const yes = () => done(true);
			const no = () => done(false);
			ok.addEventListener("click", yes);
			$("c-cancel").addEventListener("click", no);
			d.addEventListener("cancel", no);
			d.showModal();
		});
	}

	// The dry run of body.  With select, it also lists the keys of what it
	// selects, and the real request then carries exactly those keys (and
	// the filter, still applied to each): rows that arrive between the
	// confirmation and the action are never touched.  null on failure.
	async function dryRun(what, body, select) {
		const dry = Object.assign({}, body, { dry_run: true });
		if (select)
			dry.return_keys = true;
		let r;
		try {
			r = await api("POST", "/v1/dlq/" + what, dry);
		} catch (e) {
			if (e.status !== 401)
				toast(e.message, true);
			return null;
		}
		const matching = what === "replay" ? r.replayed : r.purged;
		if (!select)
			return { body, count: matching, matching };
		const keys = r.keys || [];
		const sel = Object.assign({}, body, { keys });
		delete sel.key;
		return { body: sel, count: keys.length, matching, cut: !!r.keys_truncated };
	}

	// body: filters or {keys: [...]}; what: "replay" | "purge"; scope: words
	async function act(what, body, scope, select) {
		const path = "/v1/dlq/" + what;
		const dry = await dryRun(what, body, select);
		if (dry === null)
			return false;
		if (dry.count === 0) {
			toast("Nothing to " + what + ": no dead letter matches " + scope + ".");
			return false;
		}
		const n = plural(dry.count, "event", "events");
		if (dry.cut)
			scope = "the oldest " + dry.count + " of " + dry.matching +
				" matching " + scope + "; run it again for the rest";
		const text = what === "replay"
			? "Replay " + n + " (" + scope + ")? They go back to the delivery queue and are sent to Segment with their original messageId."
			: "Purge " + n + " (" + scope + ")? They are deleted for good; this cannot be undone.";
		const ok = await confirmDialog(what === "replay" ? "Replay " + n + "?" : "Purge " + n + "?",
			text, what === "replay" ? "Replay " + n : "Purge " + n, what === "purge");
		if (!ok)
			return false;
		try {
			const r = await api("POST", path, dry.body);
			if (what === "replay")
				toast("Replayed " + plural(r.replayed, "event", "events") +
					(r.requarantined ? " (" + r.requarantined + " still quarantined)" : "") + ".");
			else
				toast("Purged " + plural(r.purged, "event", "events") + ".");
		} catch (e) {
			if (e.status !== 401)
				toast(e.message, true);
			return false;
		}
		return true;
	}

	async function actSelected(what) {
		const keys = [...state.selected];
		if (keys.length === 0)
			return;
		if (await act(what, { keys }, plural(keys.length, "selected row", "selected rows")))
			loadDlq(state.pages[0]);
	}

	async function actFilter(what) {
		const f = Object.assign({}, state.filter);
		const desc = Object.keys(f).length === 0
			? "every dead letter"
			: "filter " + Object.entries(f).map(([k, v]) => k + "=" + v).join(", ");
		if (await act(what, f, desc, true)) {
			state.pages = [0];
			loadDlq(0);
		}
	}

	async function actOne(what) {
		const key = state.detailKey;
		if (!key)
			return;
		$("detail").close();
		if (await act(what, { key }, "key " + key))
			loadDlq(state.pages[0]);
	}

	// -- for the views of other files --------------------------------------

	// What events.js builds its view with; register() adds a tab's view.
	window.nbConsole = {
		api, el, query, fmtTime, plural, toast, confirmDialog, showJson,
		sources: async () => {
			if (state.sources.length === 0)
				state.sources = (await api("GET", "/v1/stats")).sources
					.map((s) => s.source);
			return state.sources;
		},
		register: (name, view) => { extraViews[name] = view; },
		show: (name) => switchView(name),
	};

	// -- wiring -----------------------------------------------------------

	function init() {
		// The reasons are the store's own list (reasons.js, from the binary).
		for (const r of window.NB_REASONS || [])
			$("f-reason").append(el("option", { text: r }));
		$("signin-form").addEventListener("submit", signIn);
		$("signout").addEventListener("click", () => signedOut(""));
		for (const b of document.querySelectorAll(".tab"))
			b.addEventListener("click", () => switchView(b.dataset.view));
		$("filters").addEventListener("submit", (e) => {
			e.preventDefault();
			state.filter = readFilterForm();
			state.pages = [0];
			loadDlq(0);
		});
		$("f-reset").addEventListener("click", () => {
			setFilterForm({});
			loadDlq(0);
		});
		$("page-next").addEventListener("click", () => {
			if (state.next === null)
				return;
			if (!state.pages.includes(state.next))
				state.pages.push(state.next);
			loadDlq(state.next);
		});
		$("page-first").addEventListener("click", () => loadDlq(0));
		$("select-all").addEventListener("change", (e) => {
			state.selected.clear();
			if (e.target.checked)
				for (const r of state.rows)
					state.selected.add(r.key);
			for (const cb of $("dlq-rows").querySelectorAll("input[type=checkbox]"))
				cb.checked = e.target.checked;
			updateSelection();
		});
		$("replay-selected").addEventListener("click", () => actSelected("replay"));
		$("purge-selected").addEventListener("click", () => actSelected("purge"));
		$("replay-filter").addEventListener("click", () => actFilter("replay"));
		$("purge-filter").addEventListener("click", () => actFilter("purge"));
		$("d-close").addEventListener("click", () => $("detail").close());
		$("d-replay").addEventListener("click", () => actOne("replay"));
		$("d-purge").addEventListener("click", () => actOne("purge"));

		if (token()) {
			api("GET", "/v1/stats").then(enter).catch((e) => {
				if (e.status !== 401)
					showSignIn(e.message);
			});
		} else {
			showSignIn("");
		}
	}

	if (document.readyState === "loading")
		document.addEventListener("DOMContentLoaded", init);
	else
		init();
})();
