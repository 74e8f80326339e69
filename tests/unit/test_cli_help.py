"""Every command's help says what it says: Typer renders help as markdown (``rich_markup_mode``),
which takes ``<word>`` for an HTML tag and drops it (``secrets in <home>/secrets`` was printed as
``secrets in /secrets``)."""

from __future__ import annotations

import re
from typing import Any

import typer

from vigil.cli.main import _register_all, app

SWALLOWED = re.compile(r"<[A-Za-z/]")  # what rich would read as a tag


def _commands(command: Any, path: str = "vigil") -> list[tuple[str, Any]]:
    """Every command under ``command`` (Typer's own click: a group has ``commands``)."""
    found = [(path, command)]
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            found += _commands(sub, f"{path} {name}")
    return found


def test_no_help_text_holds_what_rich_would_swallow() -> None:
    _register_all()
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 30  # the whole tree, not the root alone
    swallowed = [
        f"{path}: {text[:80]!r}"
        for path, command in commands
        for text in [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
        if SWALLOWED.search(text)
    ]
    assert swallowed == []
