// Vigil ward dashboard: initial state from /api/state, live rows over server-sent events.
// DOM built with textContent only (no innerHTML of stream data), so nothing in a record can inject markup.
"use strict";

const state = { rows: new Map(), csrf: "", mayAck: false, ward: "", transitions: [], pending: false, drift: {} };
const MAX_CARDS = 150;
const SPARKS = [["news2", "NEWS2"], ["risk", "risk"], ["HR", "HR"], ["Resp", "RR"], ["SBP", "SBP"],
                ["O2Sat", "SpO2"], ["Temp", "Temp"]];
const BAND_TEXT = { low: "low", "low-medium": "low-medium", medium: "medium", high: "high", unknown: "–" };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function fmt(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return Number(v).toFixed(digits);
}

function sparkline(points, w = 86, h = 24) {
  const s = svg("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img" });
  const vals = points.filter(p => p[1] !== null && p[1] !== undefined);
  if (vals.length === 0) return s;
  const xs = vals.map(p => p[0]), ys = vals.map(p => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const X = x => x1 === x0 ? w - 3 : 2 + (x - x0) / (x1 - x0) * (w - 5);
  const Y = y => y1 === y0 ? h / 2 : h - 3 - (y - y0) / (y1 - y0) * (h - 6);
  s.append(svg("polyline", { points: vals.map(p => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ") }));
  const last = vals[vals.length - 1];
  s.append(svg("circle", { cx: X(last[0]).toFixed(1), cy: Y(last[1]).toFixed(1), r: 2 }));
  return s;
}

function renderAlert(row, alert) {
  const ex = alert.explanation || {};
  const box = el("div", { class: `alert sev-${alert.severity} state-${alert.state}`, "data-alert-id": alert.alert_id });
  const actions = el("span", { class: "actions" });
  if (alert.state !== "acknowledged") {
    actions.append(el("button", { type: "button", class: "ack", text: "Acknowledge", disabled: !state.mayAck,
      title: state.mayAck ? "acknowledge this alert" : "viewer role: read-only",
      onclick: () => sendAck(alert.alert_id, "acknowledge", actions) }));
  }
  actions.append(el("button", { type: "button", class: "resolve secondary", text: "Resolve", disabled: !state.mayAck,
    onclick: () => sendAck(alert.alert_id, "resolve", actions) }));
  box.append(el("div", { class: "alert-head" },
    el("span", { class: `chip band-${alert.severity}`, text: alert.severity }),
    el("span", { class: "state", text: alert.state + (alert.by ? ` · ${alert.by}` : "") }),
    el("span", { class: "reason", text: alert.reason }),
    el("span", { class: "muted", text: new Date(alert.at).toLocaleTimeString() }),
    actions));
  const explain = el("div", { class: "explain" });
  const rules = Object.entries(ex.rule_breakdown || {}).filter(([, p]) => p > 0);
  if (rules.length) {
    explain.append(el("span", { class: "part" }, el("span", { class: "muted", text: "NEWS2:" }),
      ...rules.map(([k, p]) => el("span", { class: `pill p${p}`, text: `${k} +${p}` }))));
  }
  if ((ex.top_features || []).length) {
    explain.append(el("span", { class: "part" }, el("span", { class: "muted", text: "model:" }),
      ...ex.top_features.slice(0, 4).map(f => el("span", {
        class: `pill ${f.contribution > 0 ? "up" : "down"}`,
        text: `${f.feature}${f.value !== null ? "=" + fmt(f.value, 1) : ""} ${f.contribution > 0 ? "↑" : "↓"}` }))));
  }
  if ((ex.missing || []).length) {
    explain.append(el("span", { class: "part muted", text: `missing: ${ex.missing.join(", ")}` }));
  }
  if (ex.summary && ex.summary !== alert.reason) explain.append(el("span", { class: "part muted", text: ex.summary }));
  if (explain.childNodes.length) box.append(explain);
  return box;
}

function renderTreatment(t) {
  const box = el("div", { class: "treatment" },
    el("span", { class: "muted", text: "Care vs guidelines:" }),
    el("span", { class: "tscore", text: `${fmt(t.score, 0)}/100` }));
  if (t.projected_score != null && t.projected_score < t.score) {
    // pending items not yet due: what the care reaches if nothing more is done
    box.append(el("span", { class: "muted", text: `(${fmt(t.projected_score, 0)} if nothing more is done)` }));
  }
  for (const item of (t.items || []).filter(i => i.status === "missing" || i.status === "late").slice(0, 3)) {
    box.append(el("span", { class: "pill", text: `${item.name}: ${item.status}` }));
  }
  for (const s of (t.suggestions || []).slice(0, 2)) {
    box.append(el("span", { class: "pill up", text: `→ ${s.change} (+${fmt(s.gain, 0)})` }));
  }
  return box;
}

function renderRow(row) {
  const n = row.news2 || {};
  const card = el("article", { class: `card band-${row.band}`, "data-row-id": row.row_id });
  card.append(el("div", { class: "row-head" },
    el("span", { class: "label", text: row.label }),
    el("span", { class: "muted", text: `${row.ward || "–"} · h${row.hour ?? "–"}` }),
    el("span", { class: `chip band-${row.band}`, text: BAND_TEXT[row.band] || row.band }),
    el("span", { class: "score", title: "NEWS2 total", text: n.total ?? "–" }),
    el("span", { class: "risk", title: row.risk_model || "", text: `risk ${row.risk == null ? "–" : fmt(row.risk * 100, 0) + "%"}` }),
    el("div", { class: "sparks" }, ...SPARKS.map(([code, name]) => {
      const pts = (row.trends || {})[code] || [];
      const last = pts.length ? pts[pts.length - 1][1] : null;
      const shown = code === "risk" ? (last == null ? "–" : fmt(last * 100, 0) + "%") : fmt(last, code === "Temp" ? 1 : 0);
      return el("span", { class: `spark ${code === "risk" ? "risk" : code === "news2" ? "news2" : ""}` },
        el("span", {}, `${name} `, el("b", { text: shown })), sparkline(pts));
    }))));
  for (const alert of row.alerts || []) card.append(renderAlert(row, alert));
  if (row.treatment) card.append(renderTreatment(row.treatment));
  return card;
}

function compare(a, b) {
  for (let i = 0; i < a.sort_key.length; i++) {
    if (a.sort_key[i] !== b.sort_key[i]) return b.sort_key[i] - a.sort_key[i];
  }
  return 0;
}

function render() {
  state.pending = false;
  const rows = [...state.rows.values()].filter(r => !state.ward || r.ward === state.ward).sort(compare);
  const list = document.getElementById("patients");
  list.replaceChildren(...rows.slice(0, MAX_CARDS).map(renderRow));
  if (!rows.length) list.append(document.getElementById("empty").content.cloneNode(true));
  const counts = document.getElementById("counts");
  const by = { high: 0, medium: 0, "low-medium": 0, low: 0 };
  let open = 0;
  for (const r of rows) { if (r.band in by) by[r.band]++; open += (r.alerts || []).length; }
  counts.replaceChildren(el("span", { text: `${rows.length} patients · ${open} active alerts` }),
    ...Object.entries(by).map(([b, c]) => el("span", { class: `chip band-${b}`, text: `${c} ${b}` })));
  const wards = new Set([...state.rows.values()].map(r => r.ward).filter(Boolean));
  const pick = document.getElementById("ward");
  if (pick.options.length - 1 !== wards.size) {
    pick.replaceChildren(el("option", { value: "", text: "all" }),
      ...[...wards].sort().map(w => el("option", { value: w, text: w, selected: w === state.ward })));
  }
  renderDrift();
  const feed = document.getElementById("transitions");
  feed.replaceChildren(...state.transitions.slice(0, 60).map(t => el("li", {},
    el("span", { class: "when", text: new Date(t.at).toLocaleTimeString() }),
    el("span", { class: `chip band-${t.severity}`, text: t.state }), " ",
    el("b", { text: t.label }), ` ${t.ward || ""} — ${t.reason}`)));
}

// Ward input drift (vigil.drift): the models see inputs unlike their training data on this ward
function renderDrift() {
  const drifted = Object.values(state.drift).filter(d => d.drifted && (!state.ward || d.ward === state.ward));
  document.getElementById("drift").replaceChildren(...drifted.map(d => el("span", {
    class: "chip drift",
    title: `largest PSI ${d.max_psi.toFixed(2)} > ${d.threshold} (${d.patients} patients, ${d.patient_hours} hours): ` +
      d.top.map(t => `${t.input} (${t.kind}) ${t.psi.toFixed(2)}`).join(", "),
    text: `${d.ward}: inputs unlike training data`,
  })));
}

function schedule() {
  if (!state.pending) { state.pending = true; requestAnimationFrame(render); }
}

async function loadState() {
  const res = await fetch("/api/state", { credentials: "same-origin" });
  if (res.status === 401) { location.href = "/login"; return; }
  const data = await res.json();
  state.csrf = data.csrf;
  state.mayAck = data.may_acknowledge;
  document.getElementById("user").textContent = data.user;
  document.getElementById("role").textContent = data.role;
  state.rows = new Map(data.patients.map(r => [r.row_id, r]));
  state.transitions = data.recent;
  state.drift = data.drift || {};
  schedule();
}

async function sendAck(alertId, action, actions) {
  for (const b of actions.querySelectorAll("button")) b.disabled = true;
  const res = await fetch(`/api/alerts/${encodeURIComponent(alertId)}/ack`, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": state.csrf },
    body: JSON.stringify({ action }),
  });
  actions.append(el("span", { class: "muted sent", text: res.ok ? ` ${action} sent` : ` failed (${res.status})` }));
}

function connect() {
  const source = new EventSource("/api/stream");
  const dot = document.getElementById("live-dot"), text = document.getElementById("live-text");
  source.addEventListener("open", () => { dot.className = "dot"; text.textContent = "live"; loadState(); });
  source.addEventListener("error", () => { dot.className = "dot off"; text.textContent = "reconnecting"; });
  source.addEventListener("row", ev => { const row = JSON.parse(ev.data); state.rows.set(row.row_id, row); schedule(); });
  source.addEventListener("drift", ev => { state.drift = JSON.parse(ev.data); schedule(); });
  source.addEventListener("transition", ev => {
    state.transitions.unshift(JSON.parse(ev.data));
    state.transitions.length = Math.min(state.transitions.length, 200);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("ward").addEventListener("change", ev => { state.ward = ev.target.value; schedule(); });
  document.getElementById("signout").addEventListener("click", async () => {
    await fetch("/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": state.csrf } });
    location.href = "/login";
  });
  loadState().then(connect);
});
