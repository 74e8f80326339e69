"""Fixtures of the codec tests."""

from __future__ import annotations

import pytest
import typer


@pytest.fixture
def app() -> typer.Typer:
    """`vigil convert` alone, as the CLI registers it."""
    from vigil.cli.convert import register

    app = typer.Typer()
    register(app)

    @app.command()
    def version() -> None:  # a second command so Typer keeps `convert` as a subcommand
        """Placeholder."""

    return app
