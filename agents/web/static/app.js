// Vigil ward page: initial state from /api/state, live rows over server-sent events, patched in place.
// Sort, ward and "unacknowledged only" live in the URL (?sort=&ward=&unacked=1). The search does not: it is
// often a patient's id, and a URL goes on into Referer headers, proxy logs and the browser's history. It is
// kept in this tab's sessionStorage, under the user who typed it, so a reload keeps it.
"use strict";

const { el } = Vigil;
const state = { rows: new Map(), transitions: [], pending: false, wardStatus: [], drift: {}, user: null,
                view: { sort: "risk", q: "", ward: "", unacked: false } };
const MAX_CARDS = 150;
const SEARCH_KEY = "vigil.search";
const SORTS = {
  // the server's order: unacknowledged alerts, acknowledged ones, NEWS2 band and total, model risk
  risk: (a, b) => compareKeys(a.sort_key, b.sort_key),
  news2: (a, b) => (b.news2_total ?? -1) - (a.news2_total ?? -1) || (b.risk ?? 0) - (a.risk ?? 0),
  // longest since its alert first; patients without an active alert after them
  alert: (a, b) => (a.last_alert_at ? Date.parse(a.last_alert_at) : Infinity)
    - (b.last_alert_at ? Date.parse(b.last_alert_at) : Infinity) || compareKeys(a.sort_key, b.sort_key),
};

function compareKeys(a, b) {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return b[i] - a[i];
  return 0;
}

function readUrl() {
  const p = new URLSearchParams(location.search);  // a q= of an old link is ignored (and dropped by writeUrl)
  state.view = { sort: SORTS[p.get("sort")] ? p.get("sort") : "risk", q: "",
                 ward: p.get("ward") || "", unacked: p.get("unacked") === "1" };
  document.getElementById("sort").value = state.view.sort;
  document.getElementById("unacked").checked = state.view.unacked;
}

function writeUrl() {
  const p = new URLSearchParams();
  if (state.view.sort !== "risk") p.set("sort", state.view.sort);
  if (state.view.ward) p.set("ward", state.view.ward);
  if (state.view.unacked) p.set("unacked", "1");
  const query = p.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
}

// The search of the signed-in user in this tab (sessionStorage: gone with the tab); another user's is dropped.
function restoreSearch(user) {
  let saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(SEARCH_KEY) || "null"); } catch { saved = null; }
  if (saved && saved.user === user && typeof saved.q === "string") {
    if (!state.view.q) state.view.q = saved.q;  // not over what was typed meanwhile
    document.getElementById("search").value = state.view.q;
  } else {
    forgetSearch();
  }
}

function saveSearch() {
  try {
    if (state.view.q && state.user) sessionStorage.setItem(SEARCH_KEY, JSON.stringify({ user: state.user, q: state.view.q }));
    else sessionStorage.removeItem(SEARCH_KEY);
  } catch { /* storage refused (a private window's quota): the search lasts until a reload */ }
}

function forgetSearch() {
  try { sessionStorage.removeItem(SEARCH_KEY); } catch { /* storage refused: nothing kept */ }
}

function visibleRows() {
  const q = state.view.q.trim().toLowerCase();
  return [...state.rows.values()]
    .filter(r => !state.view.ward || r.ward === state.view.ward)
    .filter(r => !q || r.label.toLowerCase().includes(q))
    .filter(r => !state.view.unacked || r.unacknowledged)
    .sort(SORTS[state.view.sort]);
}

function render() {
  state.pending = false;
  const rows = visibleRows();
  const next = el("div", {}, ...rows.slice(0, MAX_CARDS).map(r => Vigil.renderRow(r)));
  if (!rows.length) {
    const why = state.rows.size ? "No patient matches the search or filter." : "No patients scored yet. Waiting for the stream…";
    next.append(el("p", { class: "muted empty", id: "empty-note", text: why }));
  }
  if (rows.length > MAX_CARDS) {
    next.append(el("p", { class: "muted empty", id: "more-note",
      text: `Showing the ${MAX_CARDS} highest-priority of ${rows.length} patients: search or filter to find another.` }));
  }
  Vigil.patch(document.getElementById("patients"), next);
  renderCounts(rows);
  renderWards();
  const shown = state.transitions.filter(t => !state.view.ward || t.ward === state.view.ward);  // the ward filter
  const feed = el("ol", {}, ...shown.slice(0, 60).map(t => el("li", { id: `tr-${t.transition_id}` },
    el("span", { class: "when", text: t.at_text }), " ",
    el("span", { class: `chip band-${t.severity}`, text: t.state }), " ",
    el("a", { href: `/patient/${t.row_id}`, text: t.label }),
    t.short_id ? el("span", { class: "aid", text: ` #${t.short_id}` }) : null,
    ` ${t.ward || ""}: ${t.reason}`,
    t.note ? el("span", { class: "note", text: ` Note: ${t.note}` }) : null)));
  Vigil.patch(document.getElementById("transitions"), feed);
}

function renderCounts(rows) {
  const by = { high: 0, medium: 0, "low-medium": 0, low: 0 };
  let open = 0, unacked = 0;
  for (const r of rows) {
    if (r.band in by) by[r.band]++;
    open += (r.alerts || []).length;
    unacked += (r.alerts || []).filter(a => a.state === "open" || a.state === "escalated").length;
  }
  Vigil.patch(document.getElementById("counts"), el("div", {},
    el("span", { id: "count-text", text: `${rows.length} patients · ${open} active alerts (${unacked} unacknowledged)` }),
    ...Object.entries(by).map(([b, c]) => el("span", { id: `count-${b}`, class: `chip band-${b}`, text: `${c} ${b}` }))));
  // ward-level indicators (e.g. model drift) sit beside the counts
  Vigil.patch(document.getElementById("ward-status"), Vigil.statusBoxes([...state.wardStatus, ...driftStatus()]));
}

// The wards of the cards, and the ward the view asks for (a link's ?ward=) though no card has it yet: the
// picker never says "all" while a filter hides every card. Rebuilt when the wards differ, not only their
// number (a ward that replaced another never appeared).
function renderWards() {
  const wards = [...new Set([...state.rows.values()].map(r => r.ward).filter(Boolean))];
  if (state.view.ward && !wards.includes(state.view.ward)) wards.push(state.view.ward);
  wards.sort();
  const pick = document.getElementById("ward");
  const shown = Array.from(pick.options).slice(1).map(o => o.value);
  if (shown.join("\n") !== wards.join("\n")) {
    pick.replaceChildren(el("option", { value: "", text: "all" }),
      ...wards.map(w => el("option", { value: w, text: w, selected: w === state.view.ward })));
  }
  if (pick.value !== state.view.ward) pick.value = state.view.ward;
}

// Ward input drift (vigil.drift, agents/web/drift.py): the models see inputs unlike their training data
function driftStatus() {
  return Object.values(state.drift)
    .filter(d => d.drifted && (!state.view.ward || d.ward === state.view.ward))
    .map(d => ({
      level: "warning",
      ward: d.ward,
      text: "inputs unlike the models' training data",
      title: `largest PSI ${d.max_psi.toFixed(2)} > ${d.threshold} (${d.patients} patients, ${d.patient_hours} hours): ` +
        d.top.map(t => `${t.input} (${t.kind}) ${t.psi.toFixed(2)}`).join(", "),
    }));
}

function schedule() {
  if (!state.pending) { state.pending = true; requestAnimationFrame(render); }
}

// The session (user, role, CSRF token) and, unless `sessionOnly`, the ward; false once it went to the
// sign-in page. Another refusal (a 502/503 while the server restarts) sets nothing (its JSON set the CSRF
// token to undefined and the header read "undefined"): it throws, and the stream retries as after a
// refused stream.
async function loadState(sessionOnly = false) {
  const res = await fetch("/api/state", { credentials: "same-origin" });
  if (res.status === 401) { location.href = "/login"; return false; }
  if (!res.ok) throw new Error(`/api/state answered ${res.status}`);
  const data = await res.json();
  Vigil.shared.csrf = data.csrf;
  Vigil.shared.mayAck = data.may_acknowledge;
  document.getElementById("user").textContent = data.user;
  if (state.user === null) { state.user = data.user; restoreSearch(data.user); }
  document.getElementById("role").textContent = data.role;
  document.getElementById("zone").textContent = `times in ${data.zone}`;
  if (!sessionOnly) applyState(data);
  return true;
}

// The ward as the server holds it: first from /api/state, then from the stream's first event at each
// (re)connection, which the server takes at the instant it subscribes the stream: every later change
// comes after it. (Fetching /api/state on "open" could lay an older ward over a change already shown.)
function applyState(data) {
  Vigil.setServerNow(data.server_now);
  state.wardStatus = data.ward_status || [];
  state.rows = new Map(data.patients.map(r => [r.row_id, r]));
  state.transitions = data.recent;
  state.drift = data.drift || {};
  schedule();
}

// The live stream (common.js: a refused or silent stream reloads the ward and opens another). Open, it
// brings the ward (its "state" event), not the session: one the first load could not read is read then.
function connect() {
  const session = () => { if (!Vigil.shared.csrf) loadState(true).catch(() => null); };
  Vigil.stream("/api/stream?state=1", { reload: loadState, onOpen: session, on: {
    state: ev => applyState(JSON.parse(ev.data)),
    row: ev => { const row = JSON.parse(ev.data); state.rows.set(row.row_id, row); schedule(); },
    // a discharged patient leaves the ward view, with a line in the transitions feed
    left: ev => {
      const left = JSON.parse(ev.data);
      state.rows.delete(left.row_id);
      state.transitions.unshift(left.transition);
      state.transitions.length = Math.min(state.transitions.length, 200);
      schedule();
    },
    drift: ev => { state.drift = JSON.parse(ev.data); schedule(); },
    // the header's indicators (agents/web/fleet.py): no worker scoring, two bundles scoring at once
    status: ev => { state.wardStatus = JSON.parse(ev.data); schedule(); },
    transition: ev => {
      state.transitions.unshift(JSON.parse(ev.data));
      state.transitions.length = Math.min(state.transitions.length, 200);
      schedule();  // a cancelled discharge may come without a row
    },
  } });
}

document.addEventListener("DOMContentLoaded", () => {
  readUrl();
  writeUrl();  // an old link's q= leaves the address bar and this history entry
  const changed = () => { writeUrl(); schedule(); };
  document.getElementById("ward").addEventListener("change", ev => { state.view.ward = ev.target.value; changed(); });
  document.getElementById("sort").addEventListener("change", ev => { state.view.sort = ev.target.value; changed(); });
  document.getElementById("search").addEventListener("input", ev => { state.view.q = ev.target.value; saveSearch(); schedule(); });
  document.getElementById("unacked").addEventListener("change", ev => { state.view.unacked = ev.target.checked; changed(); });
  document.getElementById("signout").addEventListener("click", () => { forgetSearch(); Vigil.signOut(); });
  Vigil.shared.onChange = schedule;
  Vigil.listen(document.getElementById("patients"));
  // "N min ago" and "due in N min" are counted at each render: render again though nothing arrives
  setInterval(schedule, Vigil.RERENDER_MS);
  loadState().then(ok => { if (ok !== false) connect(); }, connect);  // a server not up yet: the stream retries
});
