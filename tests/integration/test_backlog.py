"""A consumer group's unread backlog on the real broker, and the demo refusing to start behind one."""

from __future__ import annotations

import uuid

import pytest

from vigil.cli import demo
from vigil.schemas import topics
from vigil.schemas.errors import UserError

pytestmark = pytest.mark.integration


def test_a_group_without_commits_has_the_whole_topic_to_read_and_the_demo_refuses_it(
    stack, stack_settings, producer, monkeypatch
) -> None:
    from vigil.infra.backlog import group_backlog

    group = f"never-ran-{uuid.uuid4().hex[:8]}"
    before = group_backlog(stack_settings, group, topics.EVENTS_RAW)
    for i in range(25):
        producer.send(topics.EVENTS_RAW, key=f"backlog-{i}".encode(), value=b"{}")
    producer.flush()
    assert group_backlog(stack_settings, group, topics.EVENTS_RAW) == before + 25
    assert group_backlog(stack_settings, group, "vigil.no.such.topic") == 0

    settings = stack_settings.model_copy(update={"app_id": group})
    monkeypatch.setattr(demo, "DEMO_BACKLOG_LIMIT", before + 24)
    with pytest.raises(UserError, match="has not read"):
        demo.refuse_backlog(settings)
    monkeypatch.setattr(demo, "DEMO_BACKLOG_LIMIT", before + 25)
    demo.refuse_backlog(settings)  # at the limit: the demo goes ahead
