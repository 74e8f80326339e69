"""Which errors are the broker or Redis away for a while (retry the batch) and which are not
(``agents.guard.is_transient``): a transient one taken for a bug makes good events dead letters."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from vigil.agents.guard import is_transient


def wrapped(cause: BaseException, chained: bool = True) -> ProducerSendError:
    """As Faust's aiokafka driver raises it: ``raise ProducerSendError(...) from exc``."""
    try:
        raise cause
    except BaseException as exc:
        try:
            if chained:
                raise ProducerSendError(f"Error while sending: {exc!r}") from exc
            raise ProducerSendError(f"Error while sending: {exc!r}")  # noqa: B904 - the implicit context
        except ProducerSendError as outer:
            return outer


@pytest.mark.parametrize("cause", [KafkaConnectionError(), KafkaTimeoutError(), ConnectionError("gone")])
def test_a_broker_hiccup_faust_wraps_is_transient(cause: BaseException) -> None:
    assert is_transient(wrapped(cause)) and is_transient(wrapped(cause, chained=False))


def test_aiokafkas_timeout_is_transient_though_not_flagged_retriable() -> None:
    assert not KafkaTimeoutError.retriable and is_transient(KafkaTimeoutError())


@pytest.mark.parametrize(
    "exc",
    [
        wrapped(MessageSizeTooLargeError()),  # the record: sent again, refused again
        ProducerSendError("No transaction producer found for : x"),  # no cause: not the broker's state
        ValueError("a bug"),
        wrapped(ValueError("a bug")),
    ],
)
def test_what_sending_again_cannot_fix_is_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)
