"""The pages say when they are not live and recover by themselves: a refused stream (401 once the session
ended, 502/503 while the server restarts) is reopened after the page reloaded what it shows (or went to
the sign-in page), a stream that is open but silent past two keepalives is called not live and reopened,
and both say so in a banner, in words. An acknowledgement that could not be sent says so and stays; a
sign-out the server did not do does not leave the page. The scripts run under Node (page_scripts.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from page_scripts import needs_node, run_scenario
from test_stream_session import open_stream

from vigil.agents.web.routes import ward

PAGES = [("index.html", "app.js", "/"), ("patient.html", "patient.js", "/patient/abc")]
page_ids = ["ward", "patient"]

# A page loaded, its stream opened; then `args[3]` (a scenario step) and what the page shows after it
PAGE = r"""
const [html, script, pathname, step] = args;
let stateStatus = 200;
const patient = { row: { row_id: "abc", label: "p", band: "low", threshold: null, threshold_pct: null,
  observed_text: "–", alerts: [] }, history: [], log: [] };
const noWorker = [{ level: "critical", text: "No worker is scoring: scores and alerts are not being updated" }];
const answer = url => url.startsWith("/api/patients/") ? { body: patient }
  : url.startsWith("/api/state") ? { status: stateStatus, body: pages.wardState([], { ward_status: noWorker }) } : null;
const page = pages.load({ html, scripts: ["common.js", script], pathname, answer,
                          clockMs: Date.parse("2026-01-01T09:00:00Z") });
await page.start();
const first = page.sources[0];
first.fire("open");
await page.settle();
const banner = () => page.el("live-banner").hidden ? null : page.text("live-banner");
const shown = () => ({ live: page.text("live-text"), banner: banner(), status: page.text("ward-status") });
const out = { opened: shown(), stateFetches: () => page.seen.fetched.filter(u => u.startsWith("/api/state")).length };
const fetchedBefore = out.stateFetches();
if (step === "refused" || step === "refused-signed-out") {
  if (step === "refused-signed-out") stateStatus = 401;
  first.readyState = 2;  // the server answered 401 or 502: the browser closed the stream
  first.fire("error");
  out.afterError = shown();
  await page.advance(3500);
} else if (step === "silent") {
  await page.advance(45000);  // no event, not even a ping: an open connection that died
  out.silent = shown();
  out.firstClosed = first.readyState === 2;
  const second = page.sources[page.sources.length - 1];
  second.fire("open");
  second.fire("ping", {});
  await page.settle();
} else if (step === "pinged") {
  for (let i = 0; i < 4; i++) { await page.advance(15000); first.fire("ping", {}); }  // a quiet, live ward
} else if (step === "status") {
  first.fire("status", []);  // the worker is back
  await page.settle();
}
return { ...out, stateFetches: out.stateFetches() - fetchedBefore, sources: page.sources.length,
         href: page.location.href, now: shown() };
"""


@needs_node
@pytest.mark.parametrize(("html", "script", "pathname"), PAGES, ids=page_ids)
def test_a_refused_stream_reloads_the_page_and_opens_another(
    tmp_path: Path, html: str, script: str, pathname: str
) -> None:
    """The patient page's stream, refused once, was never opened again: its card froze, "reconnecting"."""
    page = run_scenario(tmp_path, PAGE, html, script, pathname, "refused")
    assert page["opened"]["live"] == "live" and page["opened"]["banner"] is None
    assert page["afterError"]["live"] == "reconnecting" and "Not live" in page["afterError"]["banner"]
    assert page["stateFetches"] >= 1 and page["sources"] == 2


@needs_node
@pytest.mark.parametrize(("html", "script", "pathname"), PAGES, ids=page_ids)
def test_a_stream_refused_after_the_session_ended_goes_to_the_sign_in_page(
    tmp_path: Path, html: str, script: str, pathname: str
) -> None:
    page = run_scenario(tmp_path, PAGE, html, script, pathname, "refused-signed-out")
    assert page["href"] == "/login" and page["sources"] == 1


@needs_node
@pytest.mark.parametrize(("html", "script", "pathname"), PAGES, ids=page_ids)
def test_a_silent_stream_is_called_not_live_and_opened_again(
    tmp_path: Path, html: str, script: str, pathname: str
) -> None:
    """The keepalive was a comment the page never saw: a dead connection left open read "live" for good."""
    page = run_scenario(tmp_path, PAGE, html, script, pathname, "silent")
    assert page["silent"]["live"] == "not live" and "Nothing heard from the server" in page["silent"]["banner"]
    assert page["firstClosed"] and page["sources"] == 2
    assert page["now"]["live"] == "live" and page["now"]["banner"] is None  # the next event clears it


@needs_node
@pytest.mark.parametrize(("html", "script", "pathname"), PAGES, ids=page_ids)
def test_a_quiet_stream_that_pings_stays_live(tmp_path: Path, html: str, script: str, pathname: str) -> None:
    page = run_scenario(tmp_path, PAGE, html, script, pathname, "pinged")
    assert page["now"]["live"] == "live" and page["now"]["banner"] is None and page["sources"] == 1


@needs_node
def test_the_patient_page_shows_the_wards_indicators(tmp_path: Path) -> None:
    """Only the ward page had them: "No worker is scoring" never showed on a patient's page."""
    html, script, pathname = PAGES[1]
    page = run_scenario(tmp_path, PAGE, html, script, pathname, "status")
    assert page["opened"]["status"] == "No worker is scoring: scores and alerts are not being updated"
    assert page["now"]["status"] == ""  # the status event that said the worker is back


def test_a_quiet_stream_sends_a_ping_the_page_can_hear(monkeypatch: pytest.MonkeyPatch) -> None:
    """An SSE comment (": keepalive") reaches no script; a named event with data does."""
    monkeypatch.setattr(ward, "SSE_KEEPALIVE_S", 0.1)
    monkeypatch.setattr(ward, "SSE_SESSION_CHECK_S", 0.0)

    async def run() -> str:
        stream, *_ = await open_stream()
        text = await stream.read_for(2, until="\n\n" + "event: ping")
        text += await stream.read_for(0.3)
        await stream.close()
        return text

    text = asyncio.run(run())
    assert "event: ping\ndata: {}\n\n" in text


def test_a_busy_stream_pings_on_time_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ping came only after a keepalive with nothing to send: a stream busy with drift records alone
    (the patient page has no handler for them, nor for transitions) never pinged, and the page heard
    nothing: "not live" and a new stream every 40 s while the server was talking."""
    from test_web_drift import drift

    from vigil.schemas import topics

    monkeypatch.setattr(ward, "SSE_KEEPALIVE_S", 0.2)
    monkeypatch.setattr(ward, "SSE_SESSION_CHECK_S", 0.0)

    async def run() -> str:
        stream, feed, *_ = await open_stream()
        text = ""
        for i in range(40):  # a record every 25 ms: the queue is never quiet for a keepalive
            feed.ingest(topics.DRIFT, drift("ICU-A", 0.1 + i / 100))
            text += await stream.read_for(0.025)
        await stream.close()
        return text

    text = asyncio.run(run())
    assert text.count("event: drift") >= 20
    assert text.count("event: ping\ndata: {}\n\n") >= 3  # about every 0.2 s of the second


# common.js's alert buttons and sign-out against a server that is away, refuses, or signed the user out
RESPOND = r"""
const [mode] = args;
const page = pages.load({ html: "index.html", scripts: ["common.js"], clockMs: 0,
  answer: url => mode === "offline" ? "offline" : { status: Number(mode) } });
const Vigil = page.eval("Vigil");
const box = new pages.Node("section");
Vigil.listen(box);
const button = { disabled: false, dataset: { alert: "a1b2c3d4e5", action: "acknowledge" } };
box.listeners.click({ target: { closest: () => button } });
await page.settle();
const alert = { alert_id: "a1b2c3d4e5", short_id: "a1b2c3d4", severity: "high", state: "open", reason: "r",
                at_text: "t", opened_text: "o", now_text: "n" };
const said = () => Vigil.renderAlert(alert).find("feedback");
const ack = said().textContent, bad = said().className.includes("bad");
await page.advance(25000);
const ackLater = said().textContent;
await Vigil.signOut();
return { ack, bad, ackLater, href: page.location.href, signOut: page.text("signout-feedback") };
"""


@needs_node
@pytest.mark.parametrize(
    ("mode", "said"),
    [("offline", "failed: not sent (no connection), try again"), ("401", "signed out: sign in again")],
)
def test_an_acknowledgement_not_sent_says_so_and_stays(tmp_path: Path, mode: str, said: str) -> None:
    """A fetch that failed left "acknowledge sending…", then cleared it: the nurse read it as sent."""
    page = run_scenario(tmp_path, RESPOND, mode)
    assert page["ack"] == said and page["bad"]
    assert page["ackLater"] == said  # not cleared after 20 s: the alert is still unacknowledged


@needs_node
@pytest.mark.parametrize(
    ("mode", "href", "said"),
    [
        ("503", "/", "sign-out failed, try again"),  # the session store away: the session is kept
        ("offline", "/", "sign-out failed, try again"),
        ("200", "/login", ""),
        ("401", "/login", ""),  # already signed out
    ],
)
def test_a_sign_out_leaves_the_page_only_once_the_session_ended(
    tmp_path: Path, mode: str, href: str, said: str
) -> None:
    page = run_scenario(tmp_path, RESPOND, mode)
    assert (page["href"], page["signOut"]) == (href, said)


# an acknowledgement, then a sign-out, whose requests are never answered (a dead keep-alive connection)
UNANSWERED = r"""
const page = pages.load({ html: "index.html", scripts: ["common.js"], clockMs: 0, answer: () => "hang" });
const Vigil = page.eval("Vigil");
const box = new pages.Node("section");
Vigil.listen(box);
const button = { disabled: false, dataset: { alert: "a1b2c3d4e5", action: "acknowledge" } };
box.listeners.click({ target: { closest: () => button } });
await page.settle();
const alert = { alert_id: "a1b2c3d4e5", short_id: "a1b2c3d4", severity: "high", state: "open", reason: "r",
                at_text: "t", opened_text: "o", now_text: "n" };
const said = () => {
  const f = Vigil.renderAlert(alert).find("feedback");
  return [f.textContent, f.className.includes("bad")];
};
const out = { sending: said() };
await page.advance(9000);
out.at9s = said();
await page.advance(16000);
out.at25s = said();
await page.advance(60000);
out.at85s = said();
let left = false;
Vigil.signOut().then(() => { left = true; });
await page.advance(11000);
return { ...out, signOutDone: left, href: page.location.href, signOut: page.text("signout-feedback") };
"""


@needs_node
def test_an_acknowledgement_never_answered_says_it_failed_and_sending_never_fades(tmp_path: Path) -> None:
    """ "acknowledge sending…" faded after 20 s as a success does while the request hung (fetch has no
    timeout): the card then read as if nothing was pending, the alert unacknowledged."""
    page = run_scenario(tmp_path, UNANSWERED)
    assert page["sending"] == ["acknowledge sending…", False]
    assert page["at9s"] == ["acknowledge sending…", False]  # waiting for the answer
    failed = ["failed: no answer from the server in 10 s, try again", True]
    assert page["at25s"] == failed and page["at85s"] == failed  # stays, as a failure does
    assert page["signOutDone"] and page["href"] == "/" and page["signOut"] == "sign-out failed, try again"


# the first /api/state answered by a restarting server (503, JSON of its own), then the stream opens
STATE_REFUSED = r"""
const [html, script, pathname] = args;
let stateStatus = 503;
const patient = { row: { row_id: "abc", label: "p", band: "low", threshold: null, threshold_pct: null,
  observed_text: "–", alerts: [] }, history: [], log: [] };
const answer = url => url.startsWith("/api/patients/") ? { body: patient }
  : url.startsWith("/api/state") ? (stateStatus === 200 ? { body: pages.wardState([]) }
                                     : { status: stateStatus, body: { detail: "unavailable" } }) : null;
const page = pages.load({ html, scripts: ["common.js", script], pathname, answer,
                          clockMs: Date.parse("2026-01-01T09:00:00Z") });
await page.start();
const seen = () => ({ user: page.text("user"), csrf: page.eval("Vigil.shared.csrf") ?? "undefined" });
const refused = seen();
stateStatus = 200;
page.sources[0].fire("open");
await page.settle();
return { refused, opened: seen(), sources: page.sources.length, href: page.location.href };
"""


@needs_node
@pytest.mark.parametrize(("html", "script", "pathname"), PAGES, ids=page_ids)
def test_a_refused_state_sets_nothing_and_the_session_is_read_once_the_stream_opens(
    tmp_path: Path, html: str, script: str, pathname: str
) -> None:
    """A 503 from /api/state was read as the state: the CSRF token became undefined (every acknowledgement
    refused 403) and the header read "undefined"."""
    page = run_scenario(tmp_path, STATE_REFUSED, html, script, pathname)
    assert page["refused"] == {"user": "", "csrf": ""} and page["href"] == pathname
    assert page["opened"] == {"user": "ann", "csrf": "c"} and page["sources"] == 1
