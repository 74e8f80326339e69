"""The dashboard in a real browser (Debian's Chromium, headless, through Playwright) on the real broker,
Redis and worker: sign in, sort, search, the "unacknowledged only" filter kept in the URL, the patient
page, acknowledging with a note (it reaches vigil.alerts.acks and comes back), focus and typed notes kept
across live updates, no horizontal scroll at 390 px (a ward's drift warning kept whole there), WCAG AA
colour contrast (axe-core). Screenshots of the ward under a replay of real ICU stays go to docs/images/
with VIGIL_UPDATE_SCREENSHOTS=1 (1440 x 900 and 390 x 844; else to a temporary folder)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import unique_patient, wait_for
from tests.integration.test_web import PASSWORD, TopicTail, deteriorating, send
from vigil.schemas import topics
from vigil.schemas.alerts import AlertAck
from vigil.schemas.drift import DriftInput, WardDrift
from vigil.schemas.events import PatientEvent

CHROMIUM = "/usr/bin/chromium"
# the screenshots are taken on every run; they replace docs/images/ only when asked
# (VIGIL_UPDATE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/browser), so a test run never dirties
# the checkout
IMAGES = (
    Path(__file__).parents[2] / "docs" / "images"
    if os.environ.get("VIGIL_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "vigil-screenshots"
)
AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1" / "axe.min.js"
ZONE = "Europe/London"
LOAD_STAYS = 16
LOAD_HOURS = 30  # hours of each stay replayed (the model's window fills, trends are visible)
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} missing: apt-get install chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
expect = sync_api.expect


@pytest.fixture(scope="module")
def dashboard(stack, stack_settings, shared_worker, tmp_path_factory) -> Iterator[str]:
    from vigil.agents.web.app import create_app
    from vigil.agents.web.auth import add_user, load_users
    from vigil.agents.web.kafka_feed import KafkaWardFeed
    from vigil.agents.web.server import ServerThread

    users_file = tmp_path_factory.mktemp("browser") / "users.json"
    add_user(users_file, "nurse.ann", PASSWORD, "clinician")
    # the embedded stack's endpoints and generated Redis password, in the ward's zone
    settings = stack_settings.model_copy(update={"ward_timezone": ZONE})
    server = ServerThread(create_app(settings, KafkaWardFeed(settings), users=load_users(users_file, env={})))
    server.start()
    assert server.wait_ready(60)
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


PAGE_ERRORS: list[str] = []  # uncaught exceptions in the pages' scripts


@pytest.fixture(autouse=True)
def no_script_errors() -> Iterator[None]:
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == [], "the page's scripts threw"


def signed_in(browser, url: str, viewport: dict[str, int] = DESKTOP):  # type: ignore[no-untyped-def]
    # bypass_csp only lets the test inject axe-core; the app's CSP is checked by the unit tests
    context = browser.new_context(viewport=viewport, bypass_csp=True)
    context.on("weberror", lambda error: PAGE_ERRORS.append(str(error.error)))  # every page of the session
    page = context.new_page()
    page.goto(url + "/")
    assert page.url.endswith("/login"), "no session: the ward must not be shown"
    page.fill("#username", "nurse.ann")
    page.fill("#password", PASSWORD)
    page.click("#signin")
    page.wait_for_url(url + "/")
    expect(page.locator("#live-text")).to_have_text("live", timeout=15000)
    return page


def card_of(page, pid: str):  # type: ignore[no-untyped-def]
    return page.locator("article.card", has=page.locator(".label", has_text=pid))


def heart_rate(pid: str, ward: str, value: float, minutes_ago: float) -> list[PatientEvent]:
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return [
        PatientEvent(
            patient_id=pid, observed_at=at, kind="vital", code="HR", value=value, unit="/min", source="test", ward=ward
        )
    ]


def no_horizontal_scroll(page) -> bool:  # type: ignore[no-untyped-def]
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def contrast_violations(page) -> list[str]:  # type: ignore[no-untyped-def]
    """axe-core's WCAG 2 AA colour-contrast rule over the whole page (disabled controls are exempt)."""
    page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("async () => (await axe.run(document, {runOnly: ['color-contrast']})).violations")
    return [f"{n['target']}: {n['failureSummary']}" for v in result for n in v["nodes"]]


def replay_stays(producer, n: int, hours: int) -> int:
    """Produce the first ``hours`` of ``n`` real stays (half septic), ending now, on two wards."""
    from vigil.infra.dataset import ensure_dataset
    from vigil.infra.replay import pick_stays, stay_events
    from vigil.infra.settings import default_home, get_settings

    data = ensure_dataset(get_settings().data_dir, default_home())  # the repository's sample at least
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours + 1)
    messages = []
    for i, stay in enumerate(pick_stays(data, n)):
        ward = ("ICU-A", "ICU-B")[i % 2]
        messages += [(h, e) for h, e in stay_events(stay, base, ward=ward) if h < hours]
    messages.sort(key=lambda m: m[0])  # hour by hour across patients, as a ward would produce them
    for _, event in messages:
        producer.send(topics.EVENTS_RAW, key=event.patient_id.encode(), value=event.model_dump_json().encode())
    producer.flush()
    return len(messages)


def test_sort_search_filter_in_the_url_and_the_patient_page(dashboard, browser, producer) -> None:
    page = signed_in(browser, dashboard)
    prefix = unique_patient("ward")
    sick, calm = f"{prefix}-sick", f"{prefix}-calm"
    send(producer, deteriorating(sick, "ICU-S", hours_ago=0.5))
    send(producer, heart_rate(calm, "ICU-S", 72.0, minutes_ago=30))
    # search by patient first: the session's shared ward holds hundreds of patients and the page
    # shows the first MAX_CARDS of them
    page.fill("#search", prefix)
    expect(card_of(page, sick).locator(".alert")).to_be_visible(timeout=90000)
    expect(card_of(page, calm)).to_be_visible(timeout=60000)
    expect(page.locator("article.card")).to_have_count(2)
    page.select_option("#sort", "news2")  # sort by NEWS2: the sick patient first
    expect(page.locator("article.card .label").first).to_have_text(sick)
    page.check("#unacked")  # unacknowledged only: the calm patient has no alert
    expect(page.locator("article.card")).to_have_count(1)
    # the view lives in the URL, but for the search: a patient id is never in a URL (nor then in a
    # Referer or a proxy's log); the tab keeps it for its signed-in user
    assert "unacked=1" in page.url and "sort=news2" in page.url and "q=" not in page.url
    assert prefix not in page.url
    page.reload()
    expect(page.locator("#unacked")).to_be_checked()
    expect(page.locator("#sort")).to_have_value("news2")
    expect(page.locator("#search")).to_have_value(prefix)
    expect(page.locator("article.card")).to_have_count(1, timeout=15000)
    alert = card_of(page, sick).locator(".alert")
    expect(alert.locator(".when")).to_contain_text(re.compile(r"\d+ \w{3} \d\d:\d\d (GMT|BST)"))  # date, zone
    expect(alert.locator(".reason")).to_contain_text("NEWS2")
    expect(card_of(page, sick).locator(".risk-now")).to_contain_text("% (alert at ")

    card_of(page, sick).locator("a.label").click()  # the patient page
    page.wait_for_url("**/patient/*")
    expect(page.locator("#patient .label")).to_have_text(sick)
    expect(page.locator("#news2-chart svg polyline.series")).to_have_count(1)
    expect(page.locator("#news2-chart svg text").first).to_be_visible()  # axes carry labels
    # the alert's opening is in its log; with a 10 ms take window the five vitals may reach the worker in
    # two batches (medium, then high), so the newest row can be the escalation that followed it
    expect(page.locator("#log-body tr", has_text="open").first).to_be_visible()
    page.close()


@pytest.mark.parametrize(
    ("end", "cancel", "line", "why", "undone"),
    [
        ("discharge", "cancel_discharge", "discharged", "(discharge)", "discharge cancelled"),  # ADT^A03, A13
        # ADT^A02 out of the monitored units, A12
        ("transfer_out", "cancel_transfer", "transferred", "(transfer out of the unit)", "transfer cancelled"),
        # ADT^A11 of the stay's own visit; an A13 after it resumes the stay as after a discharge
        ("cancel_admit", "cancel_discharge", "admission cancelled", "(admission cancelled)", "discharge cancelled"),
    ],
)
def test_a_patient_who_leaves_the_ward_comes_back_when_the_discharge_or_transfer_is_cancelled(
    dashboard, browser, producer, end: str, cancel: str, line: str, why: str, undone: str
) -> None:
    page = signed_in(browser, dashboard)
    pid = unique_patient("leaving")
    visit = "V-" + pid  # what the stay's events name: a cancelled admission ends only that visit's stay
    send(producer, [e.model_copy(update={"encounter": visit}) for e in heart_rate(pid, "ICU-L", 88.0, minutes_ago=40)])
    page.fill("#search", pid)
    expect(card_of(page, pid)).to_be_visible(timeout=60000)
    patient = page.context.new_page()  # the same signed-in session
    # this patient's own card: the first on the page may still be another's while the search filter applies
    card_url = card_of(page, pid).locator("a.label").get_attribute("href")
    patient.goto(dashboard + card_url)
    expect(patient.locator("#patient .label")).to_have_text(pid, timeout=15000)
    at = datetime.now(UTC) - timedelta(minutes=5)
    discharge = PatientEvent(
        patient_id=pid, observed_at=at, kind="encounter", code=end, value=1, source="adt", encounter=visit
    )
    send(producer, [discharge])
    expect(card_of(page, pid)).to_have_count(0, timeout=60000)
    expect(page.locator("#transitions li", has_text=pid)).to_contain_text(line)
    expect(patient.locator("#patient")).to_contain_text("left the ward: the stay ended at", timeout=15000)
    expect(patient.locator("#patient")).to_contain_text(why)
    if end == "discharge":
        shot(patient, "patient-discharged.png")
    elif end == "transfer_out":  # the line a phone shows: the ward's transitions, nothing wider than the screen
        phone = signed_in(browser, dashboard, PHONE)
        phone.fill("#search", pid)
        expect(phone.locator("#transitions li", has_text=pid).first).to_contain_text(line, timeout=30000)
        assert no_horizontal_scroll(phone), phone.evaluate("document.documentElement.scrollWidth")
        IMAGES.mkdir(parents=True, exist_ok=True)
        phone.locator("#transitions li", has_text=pid).first.scroll_into_view_if_needed()
        shot(phone, "transferred-phone.png")
        phone.close()
    # the end was entered in error: ADT^A13 (A12) brings the card back, the stay goes on
    undo = PatientEvent(patient_id=pid, observed_at=at + timedelta(minutes=2), kind="encounter", code=cancel, value=1)
    send(producer, [undo])
    expect(card_of(page, pid)).to_be_visible(timeout=60000)
    expect(page.locator("#transitions li", has_text=pid).first).to_contain_text(undone)
    if end == "discharge":
        shot(page, "dashboard-resumed.png")
    expect(patient.locator("#patient .label")).to_have_text(pid, timeout=15000)
    patient.close()
    page.close()


def test_ack_with_a_note_keeps_focus_and_feedback_across_live_updates(stack, dashboard, browser, producer) -> None:
    page = signed_in(browser, dashboard)
    pid = unique_patient("focus")
    page.fill("#search", pid)  # one card among the shared ward's hundreds
    send(producer, deteriorating(pid, "ICU-F", hours_ago=0.5))
    card = card_of(page, pid)
    alert = card.locator(".alert")
    expect(alert).to_be_visible(timeout=90000)
    ack_button = alert.locator("button.ack")
    ack_button.focus()
    focused = page.evaluate("document.activeElement.id")
    assert focused.startswith("ack-")

    # a live update of this very card (new heart rate -> new score -> the row is patched)
    send(producer, heart_rate(pid, "ICU-F", 151.0, minutes_ago=10))
    expect(card.locator(".spark", has_text="HR")).to_contain_text("151", timeout=60000)
    assert page.evaluate("document.activeElement.id") == focused, "focus must survive a live update"

    alert.locator("details.respond summary").click()
    note = alert.locator("textarea")
    note.fill("seen at bedside, fluids started")
    send(producer, heart_rate(pid, "ICU-F", 149.0, minutes_ago=5))
    expect(card.locator(".spark", has_text="HR")).to_contain_text("149", timeout=60000)
    expect(note).to_have_value("seen at bedside, fluids started")  # typed text survives too
    expect(alert.locator("details.respond")).to_have_attribute("open", "")

    acks = TopicTail(stack.bootstrap, topics.ALERT_ACKS)
    try:
        alert.get_by_role("button", name="Acknowledge with note").click()
        expect(alert.locator(".feedback")).to_have_text("acknowledged: sent")
        assert wait_for(lambda: any(b"fluids started" in v for v in acks.poll()), timeout=30)
        ack = next(a for a in map(AlertAck.model_validate_json, acks.values) if a.patient_id == pid)
        assert (ack.by, ack.action, ack.note) == ("nurse.ann", "acknowledge", "seen at bedside, fluids started")
    finally:
        acks.close()
    # the worker's `acknowledged` transition comes back over SSE; the feedback stays beside it
    expect(alert.locator(".state")).to_have_text("acknowledged · nurse.ann", timeout=60000)
    expect(alert.locator(".note")).to_have_text("Note: seen at bedside, fluids started")
    expect(alert.locator(".feedback")).to_have_text("acknowledged: sent")
    page.close()


def test_phone_width_contrast_and_screenshots(dashboard, browser, producer) -> None:
    replay_stays(producer, LOAD_STAYS, LOAD_HOURS)  # the ward under load
    page = signed_in(browser, dashboard)
    page.wait_for_function("document.querySelectorAll('article.card').length >= 12", timeout=120000)
    page.wait_for_function("document.querySelectorAll('article.card .alert').length >= 4", timeout=90000)
    page.wait_for_timeout(1500)
    assert contrast_violations(page) == []
    page.goto(dashboard + "/?ward=ICU-A")  # the screenshots show one replayed ward (a view kept in the URL)
    page.wait_for_function("document.querySelectorAll('article.card .alert').length >= 2", timeout=60000)
    page.wait_for_timeout(1000)
    IMAGES.mkdir(parents=True, exist_ok=True)
    shot(page, "dashboard.png")
    page.locator("article.card a.label").first.click()
    page.wait_for_url("**/patient/*")
    expect(page.locator("#log-body tr").first).to_be_visible(timeout=15000)
    assert contrast_violations(page) == []
    shot(page, "patient.png", full_page=True)
    page.close()

    for ward in DRIFTED:  # ward indicators with hyphenated names, side by side (not in ICU-A's view)
        drifted_ward(producer, ward)
    phone = signed_in(browser, dashboard, PHONE)
    phone.wait_for_function("document.querySelectorAll('article.card .alert').length >= 4", timeout=60000)
    for ward in DRIFTED:
        drift = phone.locator("#ward-status .status-warning", has_text=ward)
        expect(drift).to_have_text(f"{ward}: inputs unlike the models' training data", timeout=30000)
        assert lines_of(drift, ward) == 1, f"{ward}'s name is split across lines"
        # one box, not fragments of a line broken around the others
        assert drift.evaluate("n => n.getClientRects().length") == 1, f"{ward}'s warning is in pieces"
    phone.locator("article.card details.respond summary").first.click()  # the widest part of a card
    assert no_horizontal_scroll(phone), phone.evaluate("document.documentElement.scrollWidth")
    assert contrast_violations(phone) == []
    phone.goto(dashboard + "/?ward=ICU-A")
    phone.wait_for_function("document.querySelectorAll('article.card .alert').length >= 2", timeout=60000)
    phone.wait_for_timeout(1000)
    assert no_horizontal_scroll(phone), phone.evaluate("document.documentElement.scrollWidth")
    shot(phone, "dashboard-phone.png")
    phone.locator("article.card a.label").first.click()
    phone.wait_for_url("**/patient/*")
    expect(phone.locator("#log-body tr").first).to_be_visible(timeout=15000)
    assert no_horizontal_scroll(phone), phone.evaluate("document.documentElement.scrollWidth")
    phone.close()


def test_the_header_says_when_no_worker_is_scoring(dashboard, browser, shared_worker) -> None:
    """The workers announce themselves in Redis (infra/fleet.py); with none scoring, the page's
    scores have stopped moving, and the header says so in red until a worker is back."""
    page = signed_in(browser, dashboard)
    status = page.locator("#ward-status .status-critical")
    expect(status).to_have_count(0, timeout=60000)  # the worker has announced itself (it may be starting)
    with shared_worker.stopped():  # it leaves the fleet as it stops
        expect(status).to_have_text("No worker is scoring: scores and alerts are not being updated", timeout=30000)
        assert contrast_violations(page) == []
        shot(page, "dashboard-no-worker.png")
    expect(status).to_have_count(0, timeout=60000)  # the worker started again and announced itself
    page.close()


def test_the_header_says_when_a_worker_stopped_reading_some_patients(
    dashboard, browser, shared_worker, stack_settings
) -> None:
    """A worker's card saying it holds a partition it does not read (agents/progress.py): the header
    says so in red, whole at 390 px and at 1440 px, until the card goes (the worker read it again or left)."""
    from vigil.infra.connect import redis_client
    from vigil.infra.fleet import TTL_S, card_key
    from vigil.schemas.fleet import WorkerCard

    now = datetime.now(UTC)
    card = WorkerCard(
        worker="icu-node-7:4242",
        host="icu-node-7",
        pid=4242,
        app_id=stack_settings.app_id,
        scoring=True,
        partitions=3,
        stalled_partitions=1,
        vigil_version="test",
        started_at=now,
        seen_at=now,
    )
    client = redis_client(stack_settings)
    page = signed_in(browser, dashboard, PHONE)
    status = page.locator("#ward-status .status-critical")
    try:
        client.set(card_key(card.worker), card.model_dump_json(), ex=TTL_S)
        expect(status).to_have_text(
            "Some patients' scores are not being updated: a worker stopped reading its input", timeout=30000
        )
        assert "icu-node-7:4242" in (status.get_attribute("title") or "")
        assert no_horizontal_scroll(page), page.evaluate("document.documentElement.scrollWidth")
        assert contrast_violations(page) == []
        shot(page, "dashboard-phone-stalled.png")
        desk = signed_in(browser, dashboard)
        expect(desk.locator("#ward-status .status-critical")).to_have_text(
            "Some patients' scores are not being updated: a worker stopped reading its input", timeout=30000
        )
        shot(desk, "dashboard-stalled.png")
        desk.close()
    finally:
        client.delete(card_key(card.worker))
        client.close()
    expect(status).to_have_count(0, timeout=30000)
    page.close()


DRIFTED = ("ICU-NEURO-2", "ICU-CARDIOTHORACIC-NORTH")


def drifted_ward(producer, ward: str) -> None:  # type: ignore[no-untyped-def]
    """A worker's ``vigil.drift`` record saying the ward's inputs left the training data's."""
    record = WardDrift(
        ward=ward,
        at=datetime.now(UTC),
        patient_hours=900,
        patients=20,
        max_psi=0.61,
        threshold=0.25,
        drifted=True,
        top=[DriftInput(input="Lactate", kind="measured", psi=0.61)],
        reference="PhysioNet/CinC 2019 set A",
        model_version="test",
    )
    producer.send(topics.DRIFT, key=ward.encode(), value=record.model_dump_json().encode())
    producer.flush()


def lines_of(locator, text: str) -> int:  # type: ignore[no-untyped-def]
    """On how many lines ``text`` (one text node's, or one element's, within ``locator``) is laid out."""
    return int(
        locator.evaluate(
            """(node, text) => {
                const walk = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
                while (walk.nextNode()) {
                    const at = walk.currentNode.data.indexOf(text);
                    if (at < 0) continue;
                    const range = document.createRange();
                    range.setStart(walk.currentNode, at);
                    range.setEnd(walk.currentNode, at + text.length);
                    return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
                }
                return 0;
            }""",
            text,
        )
    )


def shot(page, name: str, full_page: bool = False) -> None:  # type: ignore[no-untyped-def]
    target = IMAGES / name
    tmp = target.with_suffix(".tmp.png")
    page.screenshot(path=str(tmp), full_page=full_page)
    shutil.move(tmp, target)
