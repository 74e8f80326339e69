"""``vigil plan``: score a proposed treatment plan against the sepsis bundle and NEWS2 response.

``vigil plan score PLAN.json [--json]`` prints the care view the dashboard shows (headline, items,
suggestions with clock times in the ward's zone); with ``--json`` the last line is one JSON object:
``score`` (0-100, or null when not applicable), ``status``, ``items``, ``suggestions`` and ``view``
(the rendered view, identical to the dashboard's). ``vigil plan schema`` prints (or writes) the plan's JSON Schema.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from vigil.cli.jsonout import emit_json

EXIT_INVALID_PLAN = 2

_STATUS_STYLE = {
    "met": "green",
    "late": "yellow",
    "missing": "red",
    "pending": "cyan",
    "not_applicable": "dim",
}


def _print_score(console: Console, name: str, result: Any, view: dict[str, Any]) -> None:
    """The same view the dashboard renders (models.treatment.view), as tables."""
    from vigil.models.treatment.guidelines import ITEM_LABELS

    console.print(f"[bold]{name}[/bold]  {view['headline']}", highlight=False)
    items = Table(show_header=True, header_style="bold")
    for column in ("item", "status", "weight", "credit", "detail"):
        items.add_column(column, no_wrap=column in ("item", "status"))
    for item in result.items:
        style = _STATUS_STYLE.get(item.status, "")
        items.add_row(
            ITEM_LABELS.get(item.name, item.name),
            f"[{style}]{item.status}[/{style}]" if style else item.status,
            f"{item.weight:g}",
            f"{item.credit:.2f}",
            item.detail,
        )
    console.print(items)
    if view["projected"]:
        console.print(view["projected"])
    if view["suggestions"]:
        table = Table(show_header=True, header_style="bold", title="Suggestions (apply in order)")
        for column in ("#", "for", "do", "when", "due", "points", "score after"):
            table.add_column(column)
        for n, s in enumerate(view["suggestions"], start=1):
            due = f"{s['due']} ({s['until_due']})" if s["until_due"] else s["due"]
            table.add_row(
                str(n), s["item_label"], s["action"], s["at"], due, f"+{s['points']:g}", f"{s['score_after']:g}"
            )
        console.print(table)
    elif view["status"] == "scored":
        console.print("No change raises the score.")
    for source in result.sources:
        console.print(f"[dim]Source: {source}[/dim]")


def _plan_error(path: Path, exc: OSError | ValidationError) -> str:
    """One line: what is wrong with the plan file and where."""
    if isinstance(exc, OSError):
        return f"cannot read {path}: {exc.strerror or exc}"
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path} is not a valid treatment plan: {where + ': ' if where else ''}{first['msg']}{more}"


def _schema_file(out: Path) -> None:
    """``--out`` names a file, checked before ``write_plan_schema`` makes its folders: a folder's
    path (``.``, ``docs/..``, an existing folder) would have its missing parents made and then fail."""
    from vigil.schemas.errors import UserError
    from vigil.schemas.treatment import PLAN_SCHEMA_PATH

    if out.name in ("", ".", "..") or out.is_dir():
        such = out / PLAN_SCHEMA_PATH.name
        raise UserError(f"--out {out} is a folder: give the schema a file's path, such as {such}")


def register(app: typer.Typer) -> None:
    plan_app = typer.Typer(no_args_is_help=True, help="Score treatment plans (sepsis bundle, NEWS2 response)")

    @plan_app.command("score")
    def score(
        plan_path: Annotated[Path, typer.Argument(metavar="PLAN.json", help="treatment plan (JSON)")],
        as_json: Annotated[bool, typer.Option("--json", help="last line: one JSON object")] = False,
        max_changes: Annotated[int, typer.Option(min=1, help="most suggestions to return")] = 8,
    ) -> None:
        """Score PLAN.json and suggest the changes that raise the score most."""
        # Imported here so `vigil --help` stays cheap.
        from vigil.infra.settings import get_settings
        from vigil.models.treatment import score_plan
        from vigil.models.treatment.view import care_view
        from vigil.schemas.display import ward_zone
        from vigil.schemas.treatment import TreatmentPlan

        console = Console()
        try:
            plan = TreatmentPlan.model_validate_json(plan_path.read_bytes())
        except (OSError, ValidationError) as exc:
            message = _plan_error(plan_path, exc)
            if as_json:
                emit_json({"ok": False, "plan": str(plan_path), "error": message})
            sys.stderr.write(f"error: {message}\n")
            raise typer.Exit(EXIT_INVALID_PLAN) from None
        result = score_plan(plan, max_changes=max_changes)
        view = care_view(result, ward_zone(get_settings().ward_timezone))
        if as_json:
            emit_json({"ok": True, "plan": str(plan_path), **result.model_dump(mode="json"), "view": view})
            return
        _print_score(console, plan_path.name, result, view)

    @plan_app.command("schema")
    def schema(
        out: Annotated[Path | None, typer.Option(help="write here instead of printing")] = None,
    ) -> None:
        """Print (or write) the treatment plan JSON Schema."""
        from vigil.schemas.treatment import plan_json_schema, write_plan_schema

        if out is None:
            typer.echo(json.dumps(plan_json_schema(), indent=2, sort_keys=True))
        else:
            _schema_file(out)
            typer.echo(str(write_plan_schema(out)))

    app.add_typer(plan_app, name="plan")


if __name__ == "__main__":  # python -m infra.cli_plan plan score PLAN.json
    _app = typer.Typer(no_args_is_help=True, add_completion=False)
    register(_app)
    _app()
