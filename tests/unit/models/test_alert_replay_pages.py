"""`vigil evaluate`'s and the burden replay's pages are what the stream publishes and a pager pages on
(docs/integration.md: ``open`` and ``escalated``), the worse-again escalations included."""

from __future__ import annotations

import numpy as np

from vigil.models.alert_replay import PAGED, _score, simulate
from vigil.models.alerting import AlertPolicy, PatientAlertState, on_score


def streamed(news2: list[int], single3: list[bool], policy: AlertPolicy) -> int:
    state = PatientAlertState()
    return sum(
        a.state in PAGED
        for t, (n, s3) in enumerate(zip(news2, single3, strict=True))
        for a in on_score(state, _score(t, n, s3, None, 0.5), policy)
    )


def test_a_patient_worse_again_while_alerted_pages_in_the_replay_as_in_the_stream() -> None:
    no_timer = AlertPolicy(escalate_after_s=1e12)
    # NEWS2 5 (open, medium), 7 (risk rose to high), 9 (worse since the last raise, 7 -> 9)
    pages, opened = simulate(np.array([5, 7, 9]), np.zeros(3, bool), None, 0.5, no_timer)
    assert (pages, opened) == (3, [0])
    news2, single3 = [5, 7, 9, 11, 13, 13], [False, False, True, True, True, True]
    assert simulate(np.array(news2), np.array(single3), None, 0.5, no_timer)[0] == streamed(news2, single3, no_timer)
    assert streamed(news2, single3, no_timer) == 5


def test_the_replay_leaves_time_based_reminders_out_whatever_the_policy() -> None:
    # hourly scores an hour apart on the wall clock: with a 30 min escalation, every open alert would
    # escalate at its next hour in a replay nobody acknowledges
    assert simulate(np.array([7, 7, 7]), np.zeros(3, bool), None, 0.5, AlertPolicy(escalate_after_s=1800))[0] == 1
