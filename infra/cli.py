"""``vigil`` console script. Each area registers its own commands (one module, one job)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Vigil clinical early-warning engine")


def _register_all() -> None:
    # Each module exposes ``register(app)``; the import is here so `vigil --help` stays cheap.
    from infra import cli_bench, cli_convert, cli_models, cli_plan, cli_serve, cli_stack

    for module in (cli_stack, cli_models, cli_plan, cli_convert, cli_bench, cli_serve):
        module.register(app)


def main() -> None:
    _register_all()
    app()


if __name__ == "__main__":
    main()
