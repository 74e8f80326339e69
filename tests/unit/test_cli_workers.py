"""``vigil workers --expect-bundle V`` is a rollout's gate: it exits 0 only when every live scoring
worker serves V as one file at one alert threshold. It compared version strings alone, and passed a
group marked MIXED (one worker without the site's VIGIL_SITE__*, at another threshold)."""

from __future__ import annotations

import json

import pytest
import typer
from fleet_cards import card
from typer.testing import CliRunner

from vigil.cli.fleet import register

app = typer.Typer()
register(app)


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch) -> list:  # type: ignore[type-arg]
    from vigil.cli import alert_state, preflight
    from vigil.infra import fleet as infra_fleet

    cards: list = []  # type: ignore[type-arg]
    monkeypatch.setattr(preflight, "require_redis", lambda settings, given=None: "redis://x")
    monkeypatch.setattr(alert_state, "redis_client", lambda settings, url=None: None)
    monkeypatch.setattr(infra_fleet, "read_fleet", lambda client: list(cards))
    return cards


def run(*args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = CliRunner().invoke(app, [*args, "--json"])  # the one command: typer runs it without its name
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def test_the_gate_holds_while_the_workers_on_the_version_differ_in_threshold_or_file(fleet) -> None:  # type: ignore[no-untyped-def]
    fleet += [card("w1", "2.7.0", 0.0558), card("w2", "2.7.0", 0.0482)]
    rc, summary = run("--expect-bundle", "2.7.0")
    assert rc == 1 and summary["mixed_groups"] == ["vigil"] and summary["as_expected"] is False
    fleet[1] = card("w2", "2.7.0", 0.0558, bundle_sha256="another build")
    assert run("--expect-bundle", "2.7.0")[0] == 1
    fleet[1] = card("w2", "2.7.0", 0.0558)
    rc, summary = run("--expect-bundle", "2.7.0")
    assert rc == 0 and summary["as_expected"] is True and summary["mixed_groups"] == []
