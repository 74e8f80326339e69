"""The pages count "N min ago" and a care suggestion's "due in N min" at each render, render again every
30 s though nothing arrives, count from the server's clock (a browser's may be minutes off), and write
the sparklines' values as the server wrote them. ``common.js``, ``app.js`` and ``patient.js`` run under
Node with stand-ins for the few browser objects they touch (page_scripts.py, pages.js)."""

from __future__ import annotations

from pathlib import Path

import pytest
from page_scripts import needs_node, run_scenario

pytestmark = needs_node

# common.js alone, the browser's clock 10 min behind the server's
COMMON = r"""
const min = 60000, T = Date.parse("2026-01-01T08:00:00Z"), iso = ms => new Date(ms).toISOString();
const page = pages.load({ scripts: ["common.js"], clockMs: T });
const Vigil = page.eval("Vigil");
const out = {};
Vigil.setServerNow(iso(T + 10 * min));
out.ago = Vigil.ago(iso(T + 5 * min));
// a card: the sparklines' values as sent, and a care suggestion judged at 08:35, due at 09:00
const row = { row_id: "r", label: "p", band: "medium", news2_total: 5, risk_pct: "20%", threshold_pct: null,
  ward: "ICU-1", observed_text: "1 Jan 08:30 UTC", news2_text: "", alerts: [],
  trends: { Temp: [[1, 38.04999923706055]], Resp: [[1, 24.5]] }, trend_text: { Temp: "38.1", Resp: "25" },
  treatment: { status: "scored", headline: "Care vs guidelines: 50 / 100", gaps: [], as_of_at: iso(T + 35 * min),
    suggestions: [{ action: "give antibiotic", at: "1 Jan 08:35 UTC", now: true, due: "1 Jan 09:00 UTC",
      until_due: "in 25 min", overdue: false, due_at: iso(T + 60 * min), points: 50, score_after: 100 }] } };
out.sparks = Vigil.renderRow(row).find("sparks").textContent;
page.clock.ms = T + 3 * 60 * min + 25 * min;  // the server's clock: 3 h 35 min after 08:00
const suggestion = Vigil.renderRow(row).find("suggestions");
out.due = suggestion.textContent;
out.overdue = !!suggestion.find("overdue");
return out;
"""

# app.js or patient.js on its page: the intervals set, the frames asked for and the cards drawn, before
# and after 30 s with nothing from the stream
PAGE = r"""
const [html, script, pathname] = args;
const patient = { row: { row_id: "abc", label: "p", band: "low", threshold: null, threshold_pct: null,
  observed_text: "–", alerts: [] }, history: [], log: [] };
const page = pages.load({ html, scripts: ["common.js", script], pathname, clockMs: Date.parse("2026-01-01T09:00:00Z"),
  answer: url => ({ body: url.startsWith("/api/patients/") ? patient : pages.wardState() }) });
const Vigil = page.eval("Vigil"), seen = { cards: 0, serverNow: [] };
const renderRow = Vigil.renderRow, setServerNow = Vigil.setServerNow;
Vigil.renderRow = (...a) => { seen.cards++; return renderRow(...a); };
Vigil.setServerNow = v => { seen.serverNow.push(v); setServerNow(v); };
await page.start();
const before = { frames: page.seen.frames, cards: seen.cards };
await page.advance(30000);  // 30 s pass with nothing from the stream
return { intervals: page.seen.intervals, before, after: { frames: page.seen.frames, cards: seen.cards },
         serverNow: seen.serverNow };
"""


def test_times_count_from_the_servers_clock_and_due_times_at_render(tmp_path: Path) -> None:
    page = run_scenario(tmp_path, COMMON)
    assert page["ago"] == "5 min ago"  # not "just now": the browser's clock is 10 min behind
    # hours after the care was judged, with no new care score: overdue, not "in 25 min" as sent
    assert "overdue by 2 h 35 min" in page["due"] and page["overdue"]


def test_sparklines_show_the_servers_text(tmp_path: Path) -> None:
    page = run_scenario(tmp_path, COMMON)
    assert "Temp 38.1" in page["sparks"] and "RR 25" in page["sparks"]  # toFixed wrote 38.0


@pytest.mark.parametrize(
    ("html", "script", "pathname"), [("index.html", "app.js", "/"), ("patient.html", "patient.js", "/patient/abc")]
)
def test_the_pages_render_again_while_nothing_arrives(tmp_path: Path, html: str, script: str, pathname: str) -> None:
    page = run_scenario(tmp_path, PAGE, html, script, pathname)
    assert page["intervals"] and max(page["intervals"]) <= 30000
    before, after = page["before"], page["after"]
    assert before["cards"] or before["frames"]  # drawn once on load
    assert (after["frames"], after["cards"]) > (before["frames"], before["cards"])  # and again, with nothing new
    assert page["serverNow"] == ["2026-01-01T09:00:00.000Z"]  # the server's clock, from the state


# A card whose newest observation is `args[0]` minutes old on the server's clock (the browser's 10 min off)
STALE = r"""
const min = 60000, now = Date.parse("2026-01-01T12:00:00Z"), iso = ms => new Date(ms).toISOString();
const page = pages.load({ scripts: ["common.js"], clockMs: now - 10 * min });
const Vigil = page.eval("Vigil");
Vigil.setServerNow(iso(now));
const observed = now - Number(args[0]) * min;
const row = { row_id: "r", label: "p", band: "high", news2_total: 9, ward: "ICU-1", observed_text: "1 Jan 03:00 UTC",
  observed_at: iso(observed), stale_at: iso(observed + 120 * min), news2_text: "", trends: {}, trend_text: {},
  alerts: [{ alert_id: "a1", short_id: "a1", severity: "high", state: "open", reason: "r", at_text: "t",
             opened_text: "Opened 1 Jan 03:00 UTC", now_text: "Now NEWS2 9 (high)",
             latest_text: "Latest (1 Jan 03:00 UTC) NEWS2 9 (high)" }] };
const card = Vigil.renderRow(row);
const note = card.find("stale-note");
return { classes: card.className, where: card.find("where").textContent, note: note && note.textContent,
         alert: card.find("then-now").textContent };
"""


def test_an_old_observation_is_marked_stale_with_its_age(tmp_path: Path) -> None:
    """A score of 9 h ago read "Now NEWS2 9 (high)" for good, with nothing on the card to say its age."""
    old = run_scenario(tmp_path, STALE, str(9 * 60))
    assert "stale" in old["classes"].split()
    assert old["where"] == "ICU-1 · 1 Jan 03:00 UTC · observed 9 h 0 min ago"
    assert old["note"] and old["note"].startswith("Not updated: nothing observed since 1 Jan 03:00 UTC (9 h 0 min ago)")
    assert "Latest (1 Jan 03:00 UTC) NEWS2 9 (high)" in old["alert"] and "Now" not in old["alert"]
    fresh = run_scenario(tmp_path, STALE, "30")
    assert "stale" not in fresh["classes"].split() and fresh["note"] is None
    assert fresh["where"].endswith("· observed 30 min ago") and "Now NEWS2 9 (high)" in fresh["alert"]
