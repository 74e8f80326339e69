"""What a FHIR message Bundle says happened: the HL7 v2 trigger event of its ``MessageHeader``
(``eventCoding`` in ``http://terminology.hl7.org/CodeSystem/v2-0003``), the resources it is about
(``focus``) and when it happened.

The HL7 v2-to-FHIR guide converts an ADT message to a ``message`` Bundle: MSH-9.2 becomes the
MessageHeader's ``eventCoding``, MSH-7 the Bundle's ``timestamp``, EVN-2 (recorded) and EVN-6
(occurred) a ``Provenance``'s ``recorded`` and ``occurredDateTime``, PV1 the ``Encounter``. A
cancel (``A13``: the discharge was entered in error; ``A12``: the transfer was) changes nothing a
resource could show on its own (the Encounter is simply ``in-progress`` again), so only the
message's event says it: ``fhir._decode_encounter_cancel`` reads the Bundle's Encounter with it. So
does a cancelled admission (``A11``), whose Encounter the guide may leave without a status that says it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.provenance import Provenance
from pydantic import ValidationError

from vigil.schemas.codecs.fhir_places import BundleIndex

V2_EVENTS: Final = "http://terminology.hl7.org/CodeSystem/v2-0003"  # HL7 table 0003, event type
CANCEL_TRIGGERS: Final = frozenset({"A11", "A12", "A13"})  # cancel admit, cancel transfer, cancel discharge


@dataclass(frozen=True)
class MessageEvent:
    """A message Bundle's trigger event, the references its header names (``focus``; empty: the
    Bundle's Encounter, whichever it is) and its time candidates in the order they are read."""

    trigger: str
    focus: frozenset[str]
    times: tuple[tuple[str, Any], ...]

    def concerns(self, full_url: str | None, resource_type: str, resource_id: Any) -> bool:
        """Whether the event is about this resource (by its entry's fullUrl or ``Type/id``)."""
        if not self.focus:
            return True
        named = {full_url, f"{resource_type}/{resource_id}" if isinstance(resource_id, str) else None}
        return bool(self.focus & {n for n in named if n})


def cancel_event(shell: Any, first: Any, index: BundleIndex) -> MessageEvent | None:
    """The cancel a ``message`` Bundle announces, else None: any other Bundle type, another event, a
    header without a v2 event code. ``first``: the resource of the Bundle's first entry, which in a
    message is its MessageHeader (FHIR R4 bdl-12; else one found in ``index``, the Bundle's resources
    by fullUrl, which also holds its Provenance)."""
    if not isinstance(shell, dict) or shell.get("type") != "message":
        return None
    header = (
        first
        if isinstance(first, dict) and first.get("resourceType") == "MessageHeader"
        else next((r for r in index.values() if r.get("resourceType") == "MessageHeader"), None)
    )
    coding = header.get("eventCoding") if header is not None else None
    if header is None or not isinstance(coding, dict) or coding.get("system") != V2_EVENTS:
        return None
    trigger = coding.get("code")  # any JSON value until checked: a list is no trigger (nor hashable)
    if not isinstance(trigger, str) or trigger not in CANCEL_TRIGGERS:
        return None
    focus = header.get("focus")
    named = (
        frozenset(f["reference"] for f in focus if isinstance(f, dict) and isinstance(f.get("reference"), str))
        if isinstance(focus, list)
        else frozenset()
    )
    return MessageEvent(trigger, named, (*_provenance_times(index), ("Bundle.timestamp", _timestamp(shell))))


def _provenance_times(index: BundleIndex) -> list[tuple[str, Any]]:
    """EVN-6 then EVN-2, as the guide maps them: the first Provenance of the Bundle that is valid."""
    for resource in index.values():
        if resource.get("resourceType") != "Provenance":
            continue
        try:
            provenance = Provenance.model_validate(resource)
        except ValidationError:
            continue
        period = provenance.occurredPeriod
        return [
            ("Provenance.occurredDateTime", provenance.occurredDateTime),
            ("Provenance.occurredPeriod.start", period.start if period is not None else None),
            ("Provenance.recorded", provenance.recorded),
        ]
    return []


def _timestamp(shell: dict[str, Any]) -> Any:
    """The Bundle's ``timestamp`` as FHIR reads it (an instant), None when absent or invalid (the
    Bundle's own check names an invalid one)."""
    value = shell.get("timestamp")
    if value is None:
        return None
    try:
        return Bundle.model_validate({"resourceType": "Bundle", "type": "message", "timestamp": value}).timestamp
    except ValidationError:
        return None
