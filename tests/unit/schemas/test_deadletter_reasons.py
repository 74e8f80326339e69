"""docs/interop.md's "Dead-letter reasons" is what an integrator reads to learn why an input was
refused: it lacked four reasons the code emits (``empty``, ``unknown_code``, ``clock_skew``,
``outside_window``). The table is held here to the code: the reasons the FHIR answer maps to an issue
type (``schemas.codecs.fhir_out``), the reasons the sources name, and ``Rejected``'s docstring."""

from __future__ import annotations

import re
from pathlib import Path

from vigil.schemas.codecs.fhir_out import _ISSUE_CODES
from vigil.schemas.deadletter import Rejected

ROOT = Path(__file__).resolve().parents[3]
# the rooms that make rejections (tests and docs aside)
ROOMS = ("agents", "cli", "infra", "models", "schemas")
# a reason written where a rejection is made: Rejected("unit", ...), ctx.reject("unit", ...), ctx.ignore(...)
REASON_AT_SOURCE = re.compile(r'\b(?:Rejected|reject|ignore)\(\s*"([a-z_]+)"')


def interop_section() -> str:
    text = (ROOT / "docs" / "interop.md").read_text(encoding="utf-8")
    start = text.index("## Dead-letter reasons")
    return text[start : text.index("\n## ", start + 1)]


def documented_reasons() -> dict[str, str]:
    """The table's rows: reason -> OperationOutcome issue code."""
    rows = re.findall(r"^\| `([a-z_]+)` \|.*\| ([a-z-]+) \|$", interop_section(), flags=re.MULTILINE)
    return dict(rows)


def documented_ignored() -> set[str]:
    """The reasons of what is ignored, not dead-lettered (the paragraph after the table)."""
    section = interop_section()
    ignored = section[section.index("**Ignored**") :].split("\n\n")[0]
    return set(re.findall(r"`([a-z_]+)`", ignored))


def test_the_table_has_a_row_for_every_reason_with_its_issue_code() -> None:
    assert documented_reasons() == dict(_ISSUE_CODES)


def test_every_reason_the_sources_name_is_documented() -> None:
    named = {
        reason
        for room in ROOMS
        for path in (ROOT / room).rglob("*.py")
        for reason in REASON_AT_SOURCE.findall(path.read_text(encoding="utf-8"))
    }
    assert {"empty", "unknown_code", "clock_skew", "outside_window"} <= named  # the scan reads what it should
    assert named - set(documented_reasons()) - documented_ignored() == set()


def test_rejecteds_docstring_names_every_reason() -> None:
    doc = Rejected.__doc__ or ""
    assert [r for r in _ISSUE_CODES if f"``{r}``" not in doc] == []
