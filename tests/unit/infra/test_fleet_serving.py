"""The live fleet (infra/fleet.py): which configurations the scoring workers of each consumer group
serve, and when a group is mixed; cards that do not parse are skipped, never fatal."""

from __future__ import annotations

from fleet_cards import card

from vigil.infra.fleet import mixed_groups, parse_cards, serving


def test_one_configuration_is_not_mixed() -> None:
    cards = [card("a"), card("b"), card("c")]
    (only,) = serving(cards)
    assert only.workers == ("a", "b", "c") and only.bundle_version == "2.6.0"
    assert mixed_groups(cards) == {}


def test_a_new_bundle_or_another_threshold_mixes_the_group() -> None:
    rollout = [card("a"), card("b"), card("c", "2.7.0")]
    assert [(s.bundle_version, len(s.workers)) for s in serving(rollout)] == [("2.6.0", 2), ("2.7.0", 1)]
    assert list(mixed_groups(rollout)) == ["vigil"]
    site = [card("a"), card("b", threshold=0.0233)]  # same bundle, another VIGIL_SITE__* setting
    assert list(mixed_groups(site)) == ["vigil"]
    rules = [card("a"), card("b", None, None)]  # a worker whose bundle did not load scores by rules
    assert list(mixed_groups(rules)) == ["vigil"]


def test_only_scoring_workers_of_the_same_group_count() -> None:
    cards = [
        card("a"),
        card("t", "2.7.0", scoring=False),  # a treatment-only worker publishes no alert
        card("x", "2.7.0", app_id="vigil-canary"),  # another consumer group scores its own copy
    ]
    assert mixed_groups(cards) == {}
    assert [(s.app_id, s.workers) for s in serving(cards)] == [("vigil", ("a",)), ("vigil-canary", ("x",))]


def test_cards_that_do_not_parse_or_expired_are_skipped() -> None:
    good = card("a").model_dump_json()
    assert [c.worker for c in parse_cards([good, None, b"{not json", '{"worker": "w"}'])] == ["a"]
