"""The dashboard in a real browser (Debian's Chromium, headless, through Playwright): sign in, see an
alert appear after an event is produced, acknowledge it, check the ack reached vigil.alerts.acks; then
a screenshot of the ward under a replay of real ICU stays goes to docs/images/dashboard.png."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import unique_patient, wait_for
from tests.integration.test_web import PASSWORD, TopicTail, deteriorating, send
from vigil.schemas import topics
from vigil.schemas.alerts import AlertAck

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(__file__).parents[2] / "docs" / "images" / "dashboard.png"
LOAD_STAYS = 16
LOAD_HOURS = 30  # hours of each stay replayed (the model's window fills, trends are visible)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} missing: apt-get install chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")


@pytest.fixture(scope="module")
def dashboard(stack, stack_settings, shared_worker, tmp_path_factory) -> Iterator[str]:
    from vigil.agents.web.app import create_app
    from vigil.agents.web.auth import add_user, load_users
    from vigil.agents.web.kafka_feed import KafkaWardFeed
    from vigil.agents.web.server import ServerThread

    users_file = tmp_path_factory.mktemp("browser") / "users.json"
    add_user(users_file, "nurse.ann", PASSWORD, "clinician")
    settings = stack_settings  # the embedded stack's endpoints and generated Redis password
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


def replay_stays(producer, n: int, hours: int) -> int:
    """Produce the first ``hours`` of ``n`` real stays (half septic), ending now, on two wards."""
    from vigil.infra.replay import ensure_dataset, pick_stays, stay_events
    from vigil.infra.settings import default_home, get_settings

    try:
        data = ensure_dataset(get_settings().data_dir, default_home())
    except FileNotFoundError as exc:
        pytest.skip(f"PhysioNet 2019 data not available for the load screenshot: {exc}")
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


def test_sign_in_see_alert_acknowledge_and_screenshot(stack, dashboard, browser, producer) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(dashboard + "/")
    assert page.url.endswith("/login"), "no session: the ward must not be shown"
    page.fill("#username", "nurse.ann")
    page.fill("#password", PASSWORD)
    page.click("#signin")
    page.wait_for_url(dashboard + "/")
    sync_api.expect(page.locator("#live-text")).to_have_text("live", timeout=15000)
    sync_api.expect(page.locator("#role")).to_have_text("clinician")

    replay_stays(producer, LOAD_STAYS, LOAD_HOURS)  # the ward under load while we work
    pid = unique_patient("ui")
    send(producer, deteriorating(pid, "ICU-A", hours_ago=0.5))
    card = page.locator("article.card", has=page.locator(".label", has_text=pid))
    alert = card.locator(".alert")
    sync_api.expect(alert).to_be_visible(timeout=90000)
    sync_api.expect(alert.locator(".state")).to_have_text("open")
    alert_id = alert.get_attribute("data-alert-id")
    assert alert_id and pid not in alert_id

    acks = TopicTail(stack.bootstrap, topics.ALERT_ACKS)
    try:
        alert.locator("button.ack").click()
        assert wait_for(
            lambda: any(AlertAck.model_validate_json(v).alert_id == alert_id for v in acks.poll()), timeout=30
        ), "the ack must reach vigil.alerts.acks"
        ack = next(a for a in map(AlertAck.model_validate_json, acks.values) if a.alert_id == alert_id)
        assert (ack.patient_id, ack.by, ack.action) == (pid, "nurse.ann", "acknowledge")
    finally:
        acks.close()
    # the worker's `acknowledged` transition comes back over SSE and re-renders the card
    sync_api.expect(card.locator(".alert .state")).to_have_text("acknowledged · nurse.ann", timeout=60000)

    # screenshot once the replayed ward has been scored and alerts have opened
    page.wait_for_function("document.querySelectorAll('article.card').length >= 12", timeout=90000)
    page.wait_for_function("document.querySelectorAll('article.card .alert').length >= 4", timeout=60000)
    page.wait_for_timeout(1500)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    tmp = SCREENSHOT.with_suffix(".tmp.png")
    page.screenshot(path=str(tmp), full_page=False)
    shutil.move(tmp, SCREENSHOT)
    page.close()
