"""The terminal alert feed (``vigil alerts tail``): one readable rich line per alert transition,
with the explanation (rule breakdown, top model features, trend) on demand.

Patients are shown by a short keyed hash (``patient_hash``), never by id: a terminal feed is
screen-shared and scrolled back; the dashboard is where a signed-in clinician sees the name. Alerts
carry the same short id as on the dashboard (``#1a2b3c4d``), and times their date and the ward's zone.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from vigil.infra.logging import patient_hash
from vigil.schemas.alerts import Alert
from vigil.schemas.display import clock, feature_parts, missing_text, news2_parts, percent

BAND_RANK = {"low": 0, "low-medium": 1, "medium": 2, "high": 3}
# NEWS2 chart colours (RCP 2017): low green, low-medium (single 3) amber, medium orange, high red
SEVERITY_STYLE = {"low": "green", "low-medium": "yellow", "medium": "dark_orange", "high": "bold red"}
STATE_STYLE = {"open": "bold", "escalated": "bold magenta", "acknowledged": "cyan", "resolved": "dim green"}
SPARK = "▁▂▃▄▅▆▇█"


def passes(alert: Alert, ward: str | None, min_band: str | None) -> bool:
    if ward and alert.ward != ward:
        return False
    return not (min_band and BAND_RANK.get(alert.severity, 0) < BAND_RANK[min_band])


def patient_label(patient_id: str) -> str:
    return "pt:" + patient_hash(patient_id)[:8]


def spark(values: list[float]) -> str:
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(SPARK[int((v - low) / span * (len(SPARK) - 1))] for v in values)


def transition_line(alert: Alert, zone: tzinfo = UTC) -> Text:
    sev = SEVERITY_STYLE.get(alert.severity, "white")
    line = Text()
    line.append(clock(alert.at, zone), style="dim")
    line.append(f" #{alert.alert_id[:8]}", style="bold cyan")
    line.append(f" {alert.ward or '-':<8}", style="blue")
    line.append(f" {alert.severity:<10}", style=sev)
    line.append(f" {alert.state:<12}", style=STATE_STYLE.get(alert.state, ""))
    line.append(f" {patient_label(alert.patient_id)}", style="bold")
    line.append(f" h{alert.hour:<3}", style="dim")
    if alert.news2 is not None:
        line.append(f" NEWS2 {alert.news2.total:>2}", style=sev)
    if alert.risk is not None:
        line.append(f" risk {percent(alert.risk):>5}")
    line.append(f"  {alert.reason}")
    if alert.by:
        line.append(f" [{alert.by}]", style="cyan")
    return line


def explanation(alert: Alert) -> Text:
    """The same clinical words as the dashboard (schemas.display)."""
    ex = alert.explanation
    text = Text()
    parts = news2_parts(ex.rule_breakdown, alert.vitals)
    if parts:
        text.append("    NEWS2  ", style="dim")
        text.append(", ".join(parts) + "\n")
    if ex.missing:
        text.append(f"    {missing_text(ex.missing)}\n", style="dim")
    features = feature_parts([f.model_dump() for f in ex.top_features], limit=5)
    if features:
        text.append("    model  ", style="dim")
        for f in features:
            style = "red" if f["raises"] else "green"
            text.append(f"{f['text']} ", style="")
            text.append(f"{'▲' if f['raises'] else '▼'} {f['direction']}  ", style=style)
        text.append("\n")
    if ex.trend:
        text.append("    trend  ", style="dim")
        news2 = [float(t.news2) for t in ex.trend]
        text.append(f"NEWS2 {spark(news2)} {int(news2[0])}→{int(news2[-1])}")
        risks = [t.risk for t in ex.trend if t.risk is not None]
        if risks:
            text.append(f"   risk {spark(risks)} {percent(risks[0])}→{percent(risks[-1])}")
        text.append(f"  (h{ex.trend[0].hour}–h{ex.trend[-1].hour})\n")
    if ex.summary and ex.summary != alert.reason:
        text.append(f"    {ex.summary}\n", style="italic")
    text.rstrip()
    return text


def render_transition(alert: Alert, explain: bool = False, zone: tzinfo = UTC) -> RenderableType:
    if not explain:
        return transition_line(alert, zone)
    return Group(transition_line(alert, zone), explanation(alert))


def transition_json(alert: Alert) -> dict[str, Any]:
    """The --json line: the published record (the integration contract) with the patient's short
    keyed hash (``patient_label``) in place of the patient's id and visit number (``encounter``), like
    the human line: the JSON lines are piped into tools, files and tickets, as far from the signed-in
    dashboard as the screen is. A consumer that needs them reads ``vigil.alerts`` itself
    (docs/integration.md)."""
    data = alert.model_dump(mode="json", exclude={"patient_id", "encounter"})
    data["patient_label"] = patient_label(alert.patient_id)
    data["short_id"] = alert.alert_id[:8]
    return data
