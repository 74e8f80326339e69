"""The pages count "N min ago" and a care suggestion's "due in N min" at each render, render again every
30 s though nothing arrives, count from the server's clock (a browser's may be minutes off), and write
the sparklines' values as the server wrote them. ``common.js``, ``app.js`` and ``patient.js`` run under
Node with stand-ins for the few browser objects they touch (as tests/unit/web/test_search_not_in_url.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

STATIC = Path(__file__).parents[3] / "agents" / "web" / "static"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node to run the page's scripts")

# common.js on a stand-in DOM (text only) and a browser clock the scenario sets
COMMON = r"""
const vm = require("vm"), fs = require("fs");
const [file, scenario] = process.argv.slice(2);
class Node {
  constructor(tag) { this.tag = tag; this.attrs = {}; this.children = []; this.own = ""; this.className = ""; }
  set textContent(v) { this.own = String(v); this.children = []; }
  get textContent() { return this.own + this.children.map(c => typeof c === "string" ? c : c.textContent).join(""); }
  setAttribute(k, v) { this.attrs[k] = v; }
  append(...nodes) { this.children.push(...nodes); }
  find(cls) {
    if (this.className.split(" ").includes(cls)) return this;
    for (const c of this.children) { const hit = typeof c === "string" ? null : c.find(cls); if (hit) return hit; }
    return null;
  }
}
const clock = { ms: 0 };
class BrowserDate extends Date {}
BrowserDate.now = () => clock.ms;
const context = { document: { createElement: t => new Node(t), createElementNS: (ns, t) => new Node(t) },
                  Date: BrowserDate, Map, Number, Object, Math, String, setTimeout, console };
vm.createContext(context);
vm.runInContext(fs.readFileSync(file, "utf8") + "\n;globalThis.Vigil = Vigil;", context);
const { Vigil } = context;
const min = 60000, T = Date.parse("2026-01-01T08:00:00Z"), iso = ms => new Date(ms).toISOString();
const out = {};
// the browser's clock is 10 min behind the server's
clock.ms = T;
if (Vigil.setServerNow) Vigil.setServerNow(iso(T + 10 * min));
out.ago = Vigil.ago(iso(T + 5 * min));
// a card: the sparklines' values as sent, and a care suggestion judged at 08:35, due at 09:00
const row = { row_id: "r", label: "p", band: "medium", news2_total: 5, risk_pct: "20%", threshold_pct: null,
  ward: "ICU-1", observed_text: "1 Jan 08:30 UTC", news2_text: "", alerts: [],
  trends: { Temp: [[1, 38.04999923706055]], Resp: [[1, 24.5]] }, trend_text: { Temp: "38.1", Resp: "25" },
  treatment: { status: "scored", headline: "Care vs guidelines: 50 / 100", gaps: [], as_of_at: iso(T + 35 * min),
    suggestions: [{ action: "give antibiotic", at: "1 Jan 08:35 UTC", now: true, due: "1 Jan 09:00 UTC",
      until_due: "in 25 min", overdue: false, due_at: iso(T + 60 * min), points: 50, score_after: 100 }] } };
out.sparks = Vigil.renderRow(row).find("sparks").textContent;
clock.ms = T + 3 * 60 * min + 25 * min;  // the server's clock: 3 h 35 min after 08:00
const suggestion = Vigil.renderRow(row).find("suggestions");
out.due = suggestion.textContent;
out.overdue = !!suggestion.find("overdue");
console.log(JSON.stringify(out));
"""

# app.js or patient.js with stand-ins; records the timers set, the frames asked for, the cards drawn
PAGE = r"""
const vm = require("vm"), fs = require("fs");
const [file, pathname] = process.argv.slice(2);
const elements = {}, docListeners = {}, intervals = [], seen = { frames: 0, cards: 0, serverNow: [] };
const element = id => elements[id] ??= { id, value: "", checked: false, textContent: "", className: "",
  clientWidth: 600, options: [], listeners: {}, addEventListener(type, f) { this.listeners[type] = f; },
  replaceChildren() {}, append() {} };
const node = () => ({ append() {}, textContent: "" });
const state = { csrf: "c", may_acknowledge: true, user: "ann", role: "clinician", zone: "UTC",
                server_now: "2026-01-01T09:00:00.000Z", patients: [], recent: [], ward_status: [] };
const patient = { row: { label: "p", threshold: null, threshold_pct: null }, history: [], log: [] };
const context = {
  document: { getElementById: element, addEventListener: (type, f) => { docListeners[type] = f; } },
  location: { search: "", pathname, href: pathname },
  history: { replaceState() {} },
  sessionStorage: { getItem: () => null, setItem() {}, removeItem() {} },
  window: { addEventListener() {} },
  Vigil: { el: node, svg: node, shared: {}, patch() {}, listen() {}, signOut() {}, RERENDER_MS: 30000,
           renderRow: () => { seen.cards++; return node(); }, setServerNow: v => seen.serverNow.push(v) },
  requestAnimationFrame: f => { seen.frames++; f(); return 0; },
  setInterval: (f, ms) => { intervals.push([f, ms]); return intervals.length; },
  EventSource: class { addEventListener() {} },
  fetch: async url => ({ status: 200, json: async () => (String(url).startsWith("/api/patients/") ? patient : state) }),
  URLSearchParams, JSON, Map, Set, Date, setTimeout, console,
};
vm.createContext(context);
vm.runInContext(fs.readFileSync(file, "utf8"), context);
(async () => {
  await docListeners.DOMContentLoaded();
  await new Promise(resolve => setTimeout(resolve, 20));
  const before = { frames: seen.frames, cards: seen.cards };
  for (const [f] of intervals) f();  // 30 s pass with nothing from the stream
  console.log(JSON.stringify({ intervals: intervals.map(i => i[1]), before,
                               after: { frames: seen.frames, cards: seen.cards }, serverNow: seen.serverNow }));
})();
"""


def run_node(tmp_path: Path, harness: str, *args: str) -> dict:
    script = tmp_path / "harness.js"
    script.write_text(harness)
    out = subprocess.run([NODE or "node", str(script), *args], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_times_count_from_the_servers_clock_and_due_times_at_render(tmp_path: Path) -> None:
    page = run_node(tmp_path, COMMON, str(STATIC / "common.js"))
    assert page["ago"] == "5 min ago"  # not "just now": the browser's clock is 10 min behind
    # hours after the care was judged, with no new care score: overdue, not "in 25 min" as sent
    assert "overdue by 2 h 35 min" in page["due"] and page["overdue"]


def test_sparklines_show_the_servers_text(tmp_path: Path) -> None:
    page = run_node(tmp_path, COMMON, str(STATIC / "common.js"))
    assert "Temp 38.1" in page["sparks"] and "RR 25" in page["sparks"]  # toFixed wrote 38.0


@pytest.mark.parametrize(("script", "pathname"), [("app.js", "/"), ("patient.js", "/patient/abc")])
def test_the_pages_render_again_while_nothing_arrives(tmp_path: Path, script: str, pathname: str) -> None:
    page = run_node(tmp_path, PAGE, str(STATIC / script), pathname)
    assert page["intervals"] and max(page["intervals"]) <= 30000
    before, after = page["before"], page["after"]
    assert before["cards"] or before["frames"]  # drawn once on load
    assert (after["frames"], after["cards"]) > (before["frames"], before["cards"])  # and again, with nothing new
    assert page["serverNow"] == ["2026-01-01T09:00:00.000Z"]  # the server's clock, from the state
