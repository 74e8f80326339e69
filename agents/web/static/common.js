// Vigil dashboard, shared by the ward page (app.js) and the patient page (patient.js).
// Every word and number shown comes from the server (risk in percent, times with date and zone in the
// ward's zone, reasons in clinical words); the page only lays them out. DOM built with textContent only
// (no innerHTML of stream data), so nothing in a record can inject markup. Updates patch the DOM with
// morphdom (vendored, MIT) so focus, open panels, typed notes and "sent" feedback survive live updates.
// Two things are counted here, at each render (the pages render again every RERENDER_MS): "N min ago" and
// a care suggestion's "due in N min" / "overdue by N min", from the server's clock (server_now in the
// state: a browser's clock may be minutes off).
// The live stream is opened here for both pages (stream()): a refused stream (401 once the session ended,
// 502/503 while the server restarts) is one EventSource gives up on, so the page reloads what it shows and
// opens a new one; a stream that stays open but silent (the server pings every 15 s, busy or not) is a dead
// one: the page says it is not live and reconnects. A request the page sends (an acknowledgement, a
// sign-out) waits SEND_TIMEOUT_MS for its answer, then says it failed.
"use strict";

const Vigil = (() => {
  const shared = { csrf: "", mayAck: false, feedback: new Map(), onChange: () => {}, skewMs: 0 };
  const RERENDER_MS = 30000;
  const RETRY_MS = 3000;  // as the server's "retry: 3000"
  const SILENT_MS = 40000;  // the server pings every 15 s (routes/ward.py KEEPALIVE): two missed and more
  const NOT_LIVE = "Not live: scores and alerts on this page may be out of date.";
  const SEND_TIMEOUT_MS = 10000;
  const SNOOZE_MIN = [15, 30, 60, 120, 240];
  const SPARKS = [["news2", "NEWS2"], ["risk", "risk"], ["HR", "HR"], ["Resp", "RR"], ["SBP", "SBP"],
                  ["O2Sat", "SpO2"], ["Temp", "Temp"]];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  // The server's clock now: the browser's, corrected by what the server said its clock read.
  function now() { return Date.now() + shared.skewMs; }

  function setServerNow(iso) {
    const at = iso ? Date.parse(iso) : NaN;
    if (!Number.isNaN(at)) shared.skewMs = at - Date.now();
  }

  // schemas/display.py duration() and until(): "45 min", "2 h 15 min", "2 d 2 h"; "in …" / "overdue by …"
  function duration(minutes) {
    const m = Math.round(Math.abs(minutes));
    if (m < 60) return `${m} min`;
    if (m < 1440) { const h = Math.floor(m / 60), rest = m % 60; return rest ? `${h} h ${rest} min` : `${h} h`; }
    const d = Math.floor(m / 1440), h = Math.floor((m % 1440) / 60);
    return h ? `${d} d ${h} h` : `${d} d`;
  }

  function until(minutes) {
    return minutes >= 0 ? `in ${duration(minutes)}` : `overdue by ${duration(minutes)}`;
  }

  // A care suggestion's time to its due time, counted now (models/treatment/view.py sends due_at for a
  // streaming score; a plan's count is from its time zero, as sent). Never counted from before the care
  // was judged (as_of_at).
  function dueIn(s, view) {
    if (!s.due_at) return { text: s.until_due, overdue: s.overdue };
    const from = view.as_of_at ? Math.max(now(), Date.parse(view.as_of_at)) : now();
    const minutes = (Date.parse(s.due_at) - from) / 60000;
    return { text: until(minutes), overdue: minutes < 0 };
  }

  function pct(p) {
    if (p === null || p === undefined) return "–";
    const v = 100 * p;
    return (v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1)) + "%";
  }

  function ago(iso) {
    if (!iso) return "";
    const min = Math.round((now() - Date.parse(iso)) / 60000);
    if (min < 1) return "just now";
    if (min < 60) return `${min} min ago`;
    if (min < 1440) return `${Math.floor(min / 60)} h ${min % 60} min ago`;
    return `${Math.floor(min / 1440)} d ago`;
  }

  // A small trend line; for risk, a dashed line at the alert threshold (the same threshold as the card).
  function sparkline(points, threshold, w = 86, h = 26) {
    const s = svg("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}`, "aria-hidden": "true" });
    const vals = points.filter(p => p[1] !== null && p[1] !== undefined);
    if (vals.length === 0) return s;
    const xs = vals.map(p => p[0]), ys = vals.map(p => p[1]);
    let y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (threshold !== null && threshold !== undefined) { y0 = Math.min(y0, threshold, 0); y1 = Math.max(y1, threshold * 1.5); }
    const x0 = Math.min(...xs), x1 = Math.max(...xs);
    const X = x => x1 === x0 ? w - 3 : 2 + (x - x0) / (x1 - x0) * (w - 5);
    const Y = y => y1 === y0 ? h / 2 : h - 3 - (y - y0) / (y1 - y0) * (h - 6);
    if (threshold !== null && threshold !== undefined) {
      s.append(svg("line", { class: "threshold", x1: 0, x2: w, y1: Y(threshold).toFixed(1), y2: Y(threshold).toFixed(1) }));
    }
    s.append(svg("polyline", { points: vals.map(p => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ") }));
    const last = vals[vals.length - 1];
    s.append(svg("circle", { cx: X(last[0]).toFixed(1), cy: Y(last[1]).toFixed(1), r: 2 }));
    return s;
  }

  function sparks(row) {
    return el("div", { class: "sparks" }, ...SPARKS.map(([code, name]) => {
      const pts = (row.trends || {})[code] || [];
      const isRisk = code === "risk";
      // as the server wrote it (views.trend_text): the NEWS2 chart's rounding, never re-rounded here
      const shown = (row.trend_text || {})[code] ?? "–";
      const label = el("span", {}, `${name} `, el("b", { text: shown }));
      if (isRisk && row.threshold_pct) label.append(el("span", { class: "muted", text: ` alert ${row.threshold_pct}` }));
      return el("span", { class: `spark ${isRisk ? "risk" : code === "news2" ? "news2" : ""}` },
        label, sparkline(pts, isRisk ? row.threshold : null));
    }));
  }

  function features(list) {
    if (!list || !list.length) return null;
    return el("span", { class: "part" }, el("span", { class: "muted", text: "Model:" }),
      ...list.map(f => el("span", { class: `pill ${f.raises ? "up" : "down"}` },
        `${f.text} `, el("b", { text: f.raises ? "▲ raises risk" : "▼ lowers risk" }))));
  }

  function respond(alert) {
    const id = alert.alert_id, ro = !shared.mayAck;
    const actions = el("div", { class: "actions" });
    if (alert.state !== "acknowledged") {
      actions.append(el("button", { type: "button", class: "ack", id: `ack-${id}`, "data-action": "acknowledge",
        "data-alert": id, disabled: ro, title: ro ? "viewer role: read-only" : null, text: "Acknowledge" }));
    }
    const panel = el("details", { class: "respond", id: `respond-${id}` },
      el("summary", { text: "Note, snooze or resolve" }),
      el("label", { for: `note-${id}`, text: "Note (a snooze needs the reason)" }),
      el("textarea", { id: `note-${id}`, maxlength: 500, rows: 2, disabled: ro }),
      el("div", { class: "respond-buttons" },
        el("button", { type: "button", id: `acknote-${id}`, "data-action": "acknowledge", "data-note": "1",
          "data-alert": id, disabled: ro, text: "Acknowledge with note" }),
        el("label", { class: "snooze" }, "Snooze ",
          el("select", { id: `snooze-${id}`, disabled: ro },
            ...SNOOZE_MIN.map(m => el("option", { value: m, selected: m === 30, text: `${m} min` })))),
        el("button", { type: "button", id: `snoozebtn-${id}`, "data-action": "snooze", "data-alert": id,
          disabled: ro, class: "secondary", text: "Snooze" }),
        el("button", { type: "button", id: `resolve-${id}`, "data-action": "resolve", "data-note": "1",
          "data-alert": id, disabled: ro, class: "secondary", text: "Resolve" })));
    actions.append(panel);
    const fb = shared.feedback.get(id);
    actions.append(el("span", { class: `feedback ${fb && !fb.ok ? "bad" : ""}`, id: `feedback-${id}`, role: "status",
      text: fb ? fb.text : "" }));
    return actions;
  }

  // A card whose newest observation is older than its stale_at (views.STALE_AFTER), on the server's clock
  function isStale(row) {
    return !!row.stale_at && now() >= Date.parse(row.stale_at);
  }

  function renderAlert(alert, stale = false) {
    const who = alert.by ? ` · ${alert.by}` : "";
    const snooze = alert.snoozed_until_text ? ` · snoozed until ${alert.snoozed_until_text}` : "";
    const box = el("section", { class: `alert sev-${alert.severity} state-${alert.state}`, id: `alert-${alert.alert_id}`,
      "aria-label": `${alert.severity} alert ${alert.short_id}` });
    box.append(el("div", { class: "alert-head" },
      el("span", { class: `chip band-${alert.severity}`, text: alert.severity }),
      el("span", { class: "state", text: alert.state + who + snooze }),
      el("span", { class: "aid", title: alert.alert_id, text: `#${alert.short_id}` }),
      el("span", { class: "when", text: `${alert.at_text} (${ago(alert.raised_at || alert.at)})` })));
    box.append(el("p", { class: "reason", text: alert.reason }));
    // an old score is the patient's latest, with its time, not the patient "now"
    const latest = stale && alert.latest_text ? alert.latest_text : alert.now_text;
    box.append(el("p", { class: "then-now" }, el("span", { text: alert.opened_text }),
      latest ? el("b", { text: latest }) : null));
    if (alert.note) box.append(el("p", { class: "note", text: `Note: ${alert.note}` }));
    const explain = el("div", { class: "explain" }, features(alert.features));
    if (alert.missing_text) explain.append(el("span", { class: "part muted", text: alert.missing_text }));
    if (explain.childNodes.length) box.append(explain);
    box.append(respond(alert));
    return box;
  }

  function renderTreatment(view) {
    const box = el("section", { class: `treatment care-${view.status}`, "aria-label": "care vs guidelines" },
      el("p", { class: "care-head", text: view.headline }));
    if (view.projected) box.append(el("p", { class: "muted", text: view.projected }));
    for (const g of view.gaps || []) box.append(el("span", { class: "pill", text: `${g.item_label}: ${g.status}` }));
    if ((view.suggestions || []).length) {
      box.append(el("ol", { class: "suggestions" }, ...view.suggestions.slice(0, 3).map(s => {
        const due = dueIn(s, view);
        return el("li", {},
          el("b", { text: s.action }), s.now ? ` now (${s.at})` : ` at ${s.at}`,
          due.text ? el("span", { class: due.overdue ? "overdue" : "muted", text: ` · due ${s.due} (${due.text})` }) : null,
          el("span", { class: "points", text: ` · +${s.points} points → ${s.score_after}/100` }));
      })));
    }
    return box;
  }

  function renderRow(row, link = true) {
    const stale = isStale(row);
    const card = el("article", { class: `card band-${row.band}${stale ? " stale" : ""}`, id: `row-${row.row_id}` });
    const name = link ? el("a", { class: "label", href: `/patient/${row.row_id}`, text: row.label })
      : el("span", { class: "label", text: row.label });
    card.append(el("div", { class: "row-head" }, name,
      el("span", { class: `chip band-${row.band}`, text: `NEWS2 ${row.news2_total ?? "–"} ${row.band}` }),
      el("span", { class: "risk-now", text: `risk ${row.risk_pct ?? "–"}` },
        row.threshold_pct ? el("span", { class: "muted", text: ` (alert at ${row.threshold_pct})` }) : null),
      el("span", { class: "muted where", text: `${row.ward || "–"} · ${row.observed_text}` +
        (row.observed_at ? ` · observed ${ago(row.observed_at)}` : "") })));
    if (stale) {
      card.append(el("p", { class: "stale-note", text: `Not updated: nothing observed since ${row.observed_text} ` +
        `(${ago(row.observed_at)}). These values may not be the patient now.` }));
    }
    if (row.news2_text) card.append(el("p", { class: "news2-text", text: row.news2_text }));
    card.append(sparks(row));
    for (const alert of row.alerts || []) card.append(renderAlert(alert, stale));
    if (row.treatment) card.append(renderTreatment(row.treatment));
    return card;
  }

  // Patch `target`'s children to `next`'s, keeping focus, open panels and typed text.
  function patch(target, next) {
    const active = document.activeElement;
    const focusedId = active && active !== document.body ? active.id : null;
    const selection = active && "selectionStart" in active ? [active.selectionStart, active.selectionEnd] : null;
    morphdom(target, next, {
      childrenOnly: true,
      getNodeKey: node => (node.id ? node.id : null),
      onBeforeElUpdated: (from, to) => {
        if (from.tagName === "DETAILS") to.open = from.open;
        if (from.tagName === "TEXTAREA" || from.tagName === "SELECT" || from.tagName === "INPUT") to.value = from.value;
        return !from.isEqualNode(to);
      },
    });
    if (focusedId && document.activeElement !== active) {
      const again = document.getElementById(focusedId);  // moved nodes lose focus: give it back
      if (again) {
        again.focus({ preventScroll: true });
        if (selection && "setSelectionRange" in again) again.setSelectionRange(selection[0], selection[1]);
      }
    }
  }

  // fetch, given up after `ms`: a request whose answer never comes (a dead keep-alive connection, a proxy
  // that holds it) left "sending…" for good. Rejects with NO_ANSWER (the request may have reached the
  // server) or as fetch does (it did not).
  const NO_ANSWER = Symbol("no answer");
  function fetchWithin(url, init, ms = SEND_TIMEOUT_MS) {
    const abort = new AbortController();
    let timer = null;
    const late = new Promise((_, reject) => {
      // rejected before the abort, whose own rejection of the fetch would win the race
      timer = setTimeout(() => { reject(NO_ANSWER); abort.abort(); }, ms);
    });
    return Promise.race([fetch(url, { ...init, signal: abort.signal }), late]).finally(() => clearTimeout(timer));
  }

  async function sendAck(button) {
    const id = button.dataset.alert, action = button.dataset.action;
    const note = button.dataset.note || action === "snooze" ? (document.getElementById(`note-${id}`) || {}).value || "" : "";
    const body = { action, note: note.trim() || null };
    if (action === "snooze") {
      body.snooze_min = Number(document.getElementById(`snooze-${id}`).value);
      if (!body.note) { feedback(id, "a snooze needs a reason in the note", "bad"); return; }
    }
    feedback(id, `${action} sending…`, "pending");
    let res;
    try {
      res = await fetchWithin(`/api/alerts/${encodeURIComponent(id)}/ack`, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": shared.csrf },
        body: JSON.stringify(body),
      });
    } catch (err) {
      feedback(id, err === NO_ANSWER
        ? `failed: no answer from the server in ${SEND_TIMEOUT_MS / 1000} s, try again`
        : "failed: not sent (no connection), try again", "bad");  // offline, the server down, a proxy's reset
      return;
    }
    if (res.status === 401) { feedback(id, "signed out: sign in again", "bad"); return; }
    const done = action === "acknowledge" ? "acknowledged" : action === "snooze" ? `snoozed ${body.snooze_min} min` : "resolved";
    feedback(id, res.ok ? `${done}: sent` : `failed (${res.status})`, res.ok ? "ok" : "bad");
    if (res.ok) { const t = document.getElementById(`note-${id}`); if (t) t.value = ""; }
  }

  // `kind`: "ok" fades after 20 s; "bad" stays until the next press (the alert is still not acknowledged);
  // "pending" (sending…) stays until the answer replaces it: faded, it read as done while the request hung
  function feedback(id, text, kind) {
    const ok = kind !== "bad";
    shared.feedback.set(id, { text, ok });
    const span = document.getElementById(`feedback-${id}`);
    if (span) { span.textContent = text; span.className = `feedback ${ok ? "" : "bad"}`; }
    if (kind !== "ok") return;
    setTimeout(() => { if (shared.feedback.get(id)?.text === text) { shared.feedback.delete(id); shared.onChange(); } }, 20000);
  }

  // One listener for every alert button (patched nodes keep no per-node handlers).
  function listen(container) {
    container.addEventListener("click", ev => {
      const button = ev.target.closest("button[data-action]");
      if (button && !button.disabled) sendAck(button);
    });
  }

  // Leaves for the sign-in page only once the session ended (or had): a 503 (the session store away) keeps
  // the session, and the user must not walk away believing they signed out.
  async function signOut() {
    let res = null;
    try {
      res = await fetchWithin("/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": shared.csrf } });
    } catch { res = null; }
    if (res && (res.ok || res.status === 401)) { location.href = "/login"; return; }
    const said = document.getElementById("signout-feedback");
    if (said) said.textContent = "sign-out failed, try again";
  }

  // The ward-level indicators (fleet, backfill, drift), one box each
  function statusBoxes(list) {
    return el("div", {}, ...list.map((s, i) => el("span", {
      id: `status-${i}`, class: `status status-${s.level || "info"}`, title: s.title || "" },
      // the ward's name is kept whole on a phone ("ICU-" / "B:" read as two wards)
      s.ward ? el("span", { class: "status-ward", text: `${s.ward}:` }) : null, s.ward ? ` ${s.text}` : s.text)));
  }

  // The header's "live" and, when not live, a banner across the page in words (a small red dot was all a
  // ward saw of a server that was down).
  let liveShown = null;
  function showLive(short, words) {
    if (liveShown === `${short}|${words}`) return;  // every event says "live": the DOM is written on a change
    liveShown = `${short}|${words}`;
    const dot = document.getElementById("live-dot"), text = document.getElementById("live-text");
    const banner = document.getElementById("live-banner");
    dot.className = short === "live" ? "dot" : "dot off";
    text.textContent = short;
    if (banner) { banner.hidden = short === "live"; banner.textContent = short === "live" ? "" : words; }
  }

  // The page's live stream: `on` maps event names to handlers; `reload()` fetches what the page shows
  // again (false: it went to the sign-in page) before a refused or silent stream is opened again.
  function stream(url, { on, reload, onOpen = () => {} }) {
    let source = null, heard = Date.now(), retry = null;
    const hear = () => { heard = Date.now(); showLive("live", ""); };
    const again = () => {
      if (retry) return;
      retry = setTimeout(() => { retry = null; reload().then(ok => { if (ok !== false) open(); }, open); }, RETRY_MS);
    };
    function open() {
      const s = source = new EventSource(url);
      heard = Date.now();
      s.addEventListener("open", () => { hear(); onOpen(); });
      s.addEventListener("error", () => {
        showLive("reconnecting", `${NOT_LIVE} Reconnecting to the server…`);
        // refused (a session that ended: 401; a restarting server: 502/503) rather than cut off:
        // EventSource gives up; reload (401: the sign-in page) and open another
        if (s.readyState === EventSource.CLOSED && source === s) { source = null; again(); }
      });
      s.addEventListener("ping", hear);
      for (const [type, handle] of Object.entries(on)) s.addEventListener(type, ev => { hear(); handle(ev); });
    }
    // open but silent: a connection that died without closing (a sleeping laptop, a proxy's idle cut)
    setInterval(() => {
      if (!source || Date.now() - heard < SILENT_MS) return;
      showLive("not live", `${NOT_LIVE} Nothing heard from the server for ${Math.round((Date.now() - heard) / 1000)} s: reconnecting…`);
      source.close();
      source = null;
      again();
    }, RETRY_MS);
    open();
  }

  return { shared, RERENDER_MS, el, svg, pct, ago, now, setServerNow, sparkline, renderRow, renderAlert, patch, listen,
           signOut, statusBoxes, stream };
})();
