"""``vigil`` console script. Each area registers its own commands (one module, one job).

Every failure of a command ends in one line on stderr (``cli.errors``): what went wrong and what to
do, exit code != 0; ``--debug`` (anywhere on the command line) shows the traceback instead.
"""

from __future__ import annotations

import sys

import typer

from vigil.cli.errors import debug_requested, fail

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # a docstring's wrapped lines are one paragraph in --help
    help="Vigil clinical early-warning engine",
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="show tracebacks of failures (for bug reports)"),
) -> None:
    """Vigil clinical early-warning engine."""


def _register_all() -> None:
    # Each module exposes ``register(app)``; the import is here so `vigil --help` stays cheap.
    from vigil.cli import alerts, bench, bundle, convert, data, deadletters, fleet, mllp, models, plan, serve, stack

    for module in (stack, fleet, models, bundle, plan, convert, bench, serve, mllp, alerts, deadletters, data):
        module.register(app)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    _register_all()
    # --debug is the root's option: moved there from wherever it was typed (`vigil predict ... --debug`)
    given = ["--debug", *(a for a in args if a != "--debug")] if debug_requested(args) else args
    try:
        code = app(args=given, prog_name="vigil", standalone_mode=False)
    except SystemExit:
        raise
    except BaseException as exc:
        if debug_requested(args):
            raise
        sys.exit(fail(exc, args))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
