"""``vigil`` console script. Each area registers its own commands (one module, one job)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Vigil clinical early-warning engine")


def _register_all() -> None:
    # Each module exposes ``register(app)``; the import is here so `vigil --help` stays cheap.
    from vigil.cli import bench, convert, models, plan, serve, stack

    for module in (stack, models, plan, convert, bench, serve):
        module.register(app)


def main() -> None:
    _register_all()
    app()


if __name__ == "__main__":
    main()
