"""The bench's account of offered events without a score (bench.run.settle): dead letters by
reason, and the rest counted as unaccounted — never silently dropped from the latency figures."""

from __future__ import annotations

from vigil.bench.run import settle


def test_every_event_scored_leaves_nothing_to_account_for() -> None:
    assert settle(["a", "b"], ["a", "b"], {}) == ({}, 0)


def test_unscored_events_are_dead_letters_by_reason_or_unaccounted() -> None:
    dead = {"b": "duplicate", "c": "out_of_range", "d": "out_of_range"}
    assert settle(["a", "b", "c", "d", "e"], ["a"], dead) == ({"duplicate": 1, "out_of_range": 2}, 1)


def test_a_scored_event_is_not_counted_again_as_a_dead_letter() -> None:
    # a redelivered copy of a scored event may be dead-lettered; the event itself was scored
    assert settle(["a"], ["a"], {"a": "duplicate"}) == ({}, 0)


def test_a_dead_letter_of_an_event_not_offered_is_ignored() -> None:
    assert settle(["a"], [], {"zz": "duplicate"}) == ({}, 1)
