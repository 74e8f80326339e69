"""``vigil plan``: score a proposed treatment plan against the sepsis bundle and NEWS2 response.

``vigil plan score PLAN.json [--json]`` prints a readable table; with ``--json`` the last line is one
JSON object: ``score`` (0-100), ``items`` (each ``name``, ``status``...), ``suggestions`` (each
``change``, ``gain``...). ``vigil plan schema`` prints (or writes) the plan's JSON Schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

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


def _print_score(console: Console, name: str, result) -> None:  # type: ignore[no-untyped-def]
    console.print(f"[bold]{name}[/bold]  score [bold]{result.score:g}[/bold] / 100")
    items = Table(show_header=True, header_style="bold")
    items.add_column("item", no_wrap=True)
    items.add_column("status", no_wrap=True)
    for column in ("weight", "credit", "detail"):
        items.add_column(column)
    for item in result.items:
        style = _STATUS_STYLE.get(item.status, "")
        items.add_row(
            item.name,
            f"[{style}]{item.status}[/{style}]" if style else item.status,
            f"{item.weight:g}",
            f"{item.credit:.2f}",
            item.detail,
        )
    console.print(items)
    if result.suggestions:
        table = Table(show_header=True, header_style="bold", title="Suggestions (apply in order)")
        for column in ("#", "change", "kind", "gain", "score after"):
            table.add_column(column)
        for n, s in enumerate(result.suggestions, start=1):
            table.add_row(str(n), s.change, s.kind, f"+{s.gain:g}", f"{s.score_after:g}")
        console.print(table)
    else:
        console.print("No change raises the score.")
    for source in result.sources:
        console.print(f"[dim]Source: {source}[/dim]")


def register(app: typer.Typer) -> None:
    plan_app = typer.Typer(no_args_is_help=True, help="Score treatment plans (sepsis bundle, NEWS2 response)")

    @plan_app.command("score")
    def score(
        plan_path: Annotated[Path, typer.Argument(metavar="PLAN.json", help="treatment plan (JSON)")],
        as_json: Annotated[bool, typer.Option("--json", help="last line: one JSON object")] = False,
        max_changes: Annotated[int, typer.Option(help="most suggestions to return")] = 8,
    ) -> None:
        """Score PLAN.json and suggest the changes that raise the score most."""
        # Imported here so `vigil --help` stays cheap.
        from vigil.models.treatment import score_plan
        from vigil.schemas.treatment import TreatmentPlan

        console = Console()
        try:
            plan = TreatmentPlan.model_validate_json(plan_path.read_bytes())
        except (OSError, ValidationError) as exc:
            message = str(exc) if isinstance(exc, OSError) else exc.errors(include_url=False)
            if as_json:
                emit_json({"ok": False, "plan": str(plan_path), "error": message})
            else:
                Console(stderr=True).print(f"[red]invalid plan {plan_path}[/red]: {message}")
            raise typer.Exit(EXIT_INVALID_PLAN) from None
        result = score_plan(plan, max_changes=max_changes)
        if as_json:
            emit_json({"ok": True, "plan": str(plan_path), **result.model_dump(mode="json")})
            return
        _print_score(console, plan_path.name, result)

    @plan_app.command("schema")
    def schema(
        out: Annotated[Path | None, typer.Option(help="write here instead of printing")] = None,
    ) -> None:
        """Print (or write) the treatment plan JSON Schema."""
        from vigil.schemas.treatment import plan_json_schema, write_plan_schema

        if out is None:
            typer.echo(json.dumps(plan_json_schema(), indent=2, sort_keys=True))
        else:
            typer.echo(str(write_plan_schema(out)))

    app.add_typer(plan_app, name="plan")


if __name__ == "__main__":  # python -m infra.cli_plan plan score PLAN.json
    _app = typer.Typer(no_args_is_help=True, add_completion=False)
    register(_app)
    _app()
