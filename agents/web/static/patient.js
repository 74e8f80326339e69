// Vigil patient page: the patient's card, risk and NEWS2 history (axes, threshold, alert markers) and every
// alert transition with who acknowledged it and their note. Live: refetched when the patient's row changes;
// the ward-level indicators (no worker scoring, loading) as on the ward page.
"use strict";

const { el, svg } = Vigil;
const rowId = decodeURIComponent(location.pathname.split("/").pop());
const H = 180, PAD = { l: 44, r: 12, t: 10, b: 34 };

// Drawn at the container's pixel width, so the axis labels keep their size on a phone.
function chart(history, log, { value, max, lines, unit, width }) {
  const W = Math.max(300, Math.round(width));
  const box = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", class: "history-chart" });
  const pts = history.filter(h => h[value] !== null && h[value] !== undefined);
  if (!pts.length) {
    const note = svg("text", { x: PAD.l, y: H / 2, class: "axis" });
    note.textContent = "no values yet";
    box.append(note);
    return box;
  }
  const t0 = Date.parse(pts[0].at), t1 = Date.parse(pts[pts.length - 1].at);
  const top = Math.max(max(pts.map(p => p[value])), ...lines.map(l => l.y * 1.2));
  const X = t => t1 === t0 ? W - PAD.r : PAD.l + (t - t0) / (t1 - t0) * (W - PAD.l - PAD.r);
  const Y = v => H - PAD.b - (v / top) * (H - PAD.t - PAD.b);
  // axes with ticks: value at 0, half and top; time at the first, middle and last score
  box.append(svg("line", { class: "axis-line", x1: PAD.l, x2: PAD.l, y1: PAD.t, y2: H - PAD.b }));
  box.append(svg("line", { class: "axis-line", x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b }));
  for (const v of [0, top / 2, top]) {
    const label = svg("text", { x: PAD.l - 6, y: Y(v) + 4, class: "axis", "text-anchor": "end" });
    label.textContent = unit === "%" ? `${Math.round(v)}%` : `${Math.round(v)}`;
    box.append(label);
  }
  const mid = pts[Math.floor(pts.length / 2)];
  const ticks = t1 === t0 ? [[pts[0], "end"]]
    : W < 600 ? [[pts[0], "start"], [pts[pts.length - 1], "end"]]
    : [[pts[0], "start"], [mid, "middle"], [pts[pts.length - 1], "end"]];
  for (const [p, anchor] of ticks) {
    const label = svg("text", { x: X(Date.parse(p.at)), y: H - 10, class: "axis", "text-anchor": anchor });
    label.textContent = p.at_text;
    box.append(label);
  }
  for (const line of lines) {
    box.append(svg("line", { class: `threshold ${line.cls || ""}`, x1: PAD.l, x2: W - PAD.r, y1: Y(line.y), y2: Y(line.y) }));
    const label = svg("text", { x: W - PAD.r, y: Y(line.y) - 3, class: "axis", "text-anchor": "end" });
    label.textContent = line.label;
    box.append(label);
  }
  for (const e of log.filter(e => e.state === "open" || e.state === "escalated")) {
    const t = Date.parse(e.at);
    if (t < t0 || t > t1) continue;
    box.append(svg("line", { class: `alert-mark sev-${e.severity}`, x1: X(t), x2: X(t), y1: PAD.t, y2: H - PAD.b }));
  }
  box.append(svg("polyline", { class: "series",
    points: pts.map(p => `${X(Date.parse(p.at)).toFixed(1)},${Y(p[value]).toFixed(1)}`).join(" ") }));
  const last = pts[pts.length - 1];  // the newest value, visible even when it is the only one
  box.append(svg("circle", { class: "series-point", cx: X(Date.parse(last.at)), cy: Y(last[value]), r: 3.5 }));
  return box;
}

function render(data) {
  const row = data.row;
  document.title = `Vigil · ${row.label}`;
  Vigil.patch(document.getElementById("patient"), el("div", {}, Vigil.renderRow(row, false)));
  const history = data.history.map(h => ({ ...h, riskPct: h.risk === null ? null : 100 * h.risk }));
  const thr = row.threshold === null ? [] : [{ y: 100 * row.threshold, label: `alert at ${row.threshold_pct}` }];
  const width = document.getElementById("risk-chart").clientWidth - 10;
  document.getElementById("risk-chart").replaceChildren(chart(history, data.log,
    { value: "riskPct", max: v => Math.max(...v, 1), lines: thr, unit: "%", width }));
  document.getElementById("news2-chart").replaceChildren(chart(history, data.log, {
    value: "news2", max: v => Math.max(...v, 9), unit: "", width,
    lines: [{ y: 5, label: "5 medium", cls: "medium" }, { y: 7, label: "7 high", cls: "high" }] }));
  Vigil.patch(document.getElementById("log-body"), el("tbody", {}, ...data.log.map(e => el("tr", { id: `log-${e.transition_id}` },
    el("td", { "data-label": "time", text: e.at_text }), el("td", { "data-label": "alert", text: `#${e.short_id}` }),
    el("td", { "data-label": "state" }, el("span", { class: `chip band-${e.severity}`, text: e.state })),
    el("td", { "data-label": "by", text: e.by || "" }), el("td", { "data-label": "note", text: e.note || "" }),
    el("td", { "data-label": "reason", text: e.reason })))));
}

// what ended a stay (StayEnded.ended_by), in the words of the patient page
const ENDED_BY = { discharge: "discharge", transfer_out: "transfer out of the unit", cancel_admit: "admission cancelled" };

async function load() {
  const res = await fetch(`/api/patients/${encodeURIComponent(rowId)}`, { credentials: "same-origin" });
  if (res.status === 401) { location.href = "/login"; return; }
  if (res.status === 404) {
    const gone = await res.json().catch(() => ({}));
    const text = gone.ended_at_text
      ? `This patient left the ward: the stay ended at ${gone.ended_at_text} (${ENDED_BY[gone.ended_by] || "discharge"}).`
      : "This patient is not on the ward view (any more).";
    document.getElementById("patient").replaceChildren(el("p", { class: "empty", text }));
    return;
  }
  last = await res.json();
  render(last);
}

let pending = null, last = null;
window.addEventListener("resize", () => { if (last) render(last); });
function reloadSoon() { if (!pending) pending = setTimeout(() => { pending = null; load(); }, 300); }

function renderStatus(list) {
  Vigil.patch(document.getElementById("ward-status"), Vigil.statusBoxes(list || []));
}

// The session, the ward's indicators and the patient; false once it went to the sign-in page. Another
// refusal (a 502/503 while the server restarts) sets nothing (its JSON set the CSRF token to undefined and
// the header read "undefined"): it throws, and the stream retries as after a refused stream.
async function loadState() {
  const res = await fetch("/api/state", { credentials: "same-origin" });
  if (res.status === 401) { location.href = "/login"; return false; }
  if (!res.ok) throw new Error(`/api/state answered ${res.status}`);
  const data = await res.json();
  Vigil.setServerNow(data.server_now);
  Vigil.shared.csrf = data.csrf;
  Vigil.shared.mayAck = data.may_acknowledge;
  document.getElementById("user").textContent = data.user;
  document.getElementById("role").textContent = data.role;
  document.getElementById("zone").textContent = `times in ${data.zone}`;
  renderStatus(data.ward_status);
  await load();
  return true;
}

document.addEventListener("DOMContentLoaded", async () => {
  Vigil.shared.onChange = reloadSoon;
  document.getElementById("signout").addEventListener("click", Vigil.signOut);
  Vigil.listen(document.getElementById("patient"));
  // "N min ago" and "due in N min" are counted at each render: render again though nothing arrives
  setInterval(() => { if (last) render(last); }, Vigil.RERENDER_MS);
  const loaded = await loadState().catch(() => null);  // a server not up yet: the stream retries
  if (loaded === false) return;
  // loaded again once live: a change (or an indicator) between the first load and the stream, or
  // while reconnecting, is not missed. A refused or silent stream: common.js reloads and reconnects.
  Vigil.stream("/api/stream", { reload: loadState, onOpen: () => loadState().catch(() => null), on: {
    row: ev => { if (JSON.parse(ev.data).row_id === rowId) reloadSoon(); },
    left: ev => { if (JSON.parse(ev.data).row_id === rowId) reloadSoon(); },
    // the ward's indicators (agents/web/fleet.py): no worker scoring, this page not updated, loading
    status: ev => renderStatus(JSON.parse(ev.data)),
  } });
});
