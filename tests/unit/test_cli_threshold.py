"""`vigil threshold`: the alert threshold a site's settings give, before any worker runs (the same
choice the worker and `vigil predict` make: models.site_threshold on the served bundle's manifest)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from vigil.cli.models import register
from vigil.infra.settings import get_settings
from vigil.models.integrity import load_manifest
from vigil.models.site_threshold import Site, choose_threshold
from vigil.models.stream_step import served_bundle_dir


def _threshold(*args: str) -> dict:
    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(app, ["threshold", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output.strip().split("\n")[-1])


def test_no_setting_is_the_shipped_threshold() -> None:
    combined = load_manifest(served_bundle_dir())["models"]["combined"]
    got = _threshold()
    assert got["rule"] == "shipped" and got["threshold"] == pytest.approx(combined["threshold"], abs=1e-6)


def test_the_flags_give_the_choice_the_worker_would_make() -> None:
    combined = load_manifest(served_bundle_dir())["models"]["combined"]
    got = _threshold("--site-prevalence", "0.057", "--site-mean-risk", "0.0245", "--max-alert-share", "0.3")
    want = choose_threshold(combined, Site(0.057, 0.3, 0.0245))
    assert got["rule"] == "site_prevalence_and_risk" and got["threshold"] == pytest.approx(want.threshold, abs=1e-6)
    assert got["effective_prevalence"] == pytest.approx(want.effective_prevalence, abs=1e-6)
    assert got["training_mean_risk"] == pytest.approx(combined["training_mean_risk"], abs=1e-6)


def test_the_worker_settings_are_read_when_no_flag_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_SITE__SEPSIS_PREVALENCE", "0.15")
    get_settings.cache_clear()
    try:
        got = _threshold()
    finally:
        monkeypatch.delenv("VIGIL_SITE__SEPSIS_PREVALENCE")
        get_settings.cache_clear()
    assert got["rule"] == "site_prevalence" and got["site_prevalence"] == 0.15
    assert got["threshold"] < got["shipped_threshold"]  # a sicker site alerts lower


def test_the_threshold_says_what_a_site_can_still_set() -> None:
    app = typer.Typer()
    register(app)
    shipped = CliRunner().invoke(app, ["threshold"]).output
    assert "VIGIL_SITE__SEPSIS_PREVALENCE" in shipped and "VIGIL_SITE__MEAN_RISK" in shipped
    alone = CliRunner().invoke(app, ["threshold", "--site-prevalence", "0.057"]).output
    assert "set the site's mean risk too" in alone
    both = CliRunner().invoke(app, ["threshold", "--site-prevalence", "0.057", "--site-mean-risk", "0.0245"]).output
    assert "VIGIL_SITE__" not in both and "set the site's mean risk" not in both
