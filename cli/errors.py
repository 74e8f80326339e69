"""Failures a person can read: one line saying what went wrong and what to do, exit code != 0, no
traceback unless ``--debug``. ``cli.main`` routes every exception of a command through ``explain``."""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from collections.abc import Iterator
from typing import Any, get_origin

from vigil.cli.jsonout import emit_json
from vigil.schemas.errors import UserError

EXIT_USER = 2  # a usage or configuration problem the user can fix
EXIT_FAILED = 1  # anything else (a bug, an outage)
EXIT_INTERRUPTED = 130


def _is(exc: BaseException, name: str) -> bool:
    """Click's exception classes by name: typer vendors its own click (``typer._click``), so both
    that copy's and click's classes are recognised without importing a private module."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def _kafka_down(exc: BaseException) -> bool:
    try:
        from kafka.errors import KafkaError  # kafka-python 3 has no NoBrokersAvailable: its bootstrap times out
    except ImportError:  # pragma: no cover - a dependency
        return False
    return isinstance(exc, KafkaError)


def _redis_down(exc: BaseException) -> bool:
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
    except ImportError:  # pragma: no cover - a dependency
        return False
    return isinstance(exc, RedisConnectionError)


def _unparsed_settings(exc: BaseException) -> str:
    """pydantic-settings names only the group (``ingest``) when a list or object setting's value is
    not JSON: the variables of that group set to such a value, for the user to fix."""
    from vigil.infra.settings import Settings

    group = m.group(1) if (m := re.search(r'field "(\w+)"', str(exc))) else ""
    model = getattr(Settings.model_fields.get(group), "annotation", None)
    fields = getattr(model, "model_fields", {})
    shaped = [name for name, f in fields.items() if get_origin(f.annotation) in (tuple, list, dict, set)]
    names = []
    for name in shaped:
        env = f"VIGIL_{group}__{name}".upper()
        value = next((v for k, v in os.environ.items() if k.upper() == env), None)
        if value is None:
            continue
        try:
            json.loads(value)
        except ValueError:
            names.append(env)
    return ", ".join(names) or f"VIGIL_{group.upper()}__..."


# flags every command takes: a path after one is an argument of its own, not the flag's value
_GLOBAL_FLAGS = frozenset({"--json", "--debug"})


def _named_by(filename: str, argv: list[str]) -> tuple[str, str] | None:
    """(what to change, its path) on the command line: the option (``--out /a/b``, ``--out=/a/b``) or
    argument whose path is ``filename``, else one under it (the folder ``/a`` a write to ``/a/b``
    did not find; only a path with a separator: a command's name is under every working folder), as
    the user typed it. None: no path on the line leads there."""
    target = os.path.abspath(filename)
    given = list(_paths_given(argv))
    for said, value in given:
        if os.path.abspath(value) == target:
            return said, target
    for said, value in given:
        if os.sep in value and os.path.abspath(value).startswith(target.rstrip(os.sep) + os.sep):
            return said, os.path.abspath(value)
    return None


def _paths_given(argv: list[str]) -> Iterator[tuple[str, str]]:
    """(as typed, value) for every option value and argument of the command line."""
    for i, token in enumerate(argv):
        if token.startswith("--") and "=" in token:
            option, value = token.split("=", 1)
            yield f"{option} {value}", value
        elif i > 0 and argv[i - 1].startswith("--") and "=" not in argv[i - 1] and argv[i - 1] not in _GLOBAL_FLAGS:
            yield f"{argv[i - 1]} {token}", token
        elif token and not token.startswith("-"):
            yield token, token


def _refused_path(exc: OSError) -> str:
    """The path an error is about: a rename's destination (``filename2``), the file the user named,
    not the temporary file written beside it (``<name>.tmp``), else the one path the call took."""
    return str(exc.filename2 or exc.filename or "")


def _path_error(exc: OSError, argv: list[str]) -> str:
    """A path the system refused: what is wrong with it and which option or argument to change."""
    name = _refused_path(exc)
    named = _named_by(name, argv) if name else None
    change = f"change {named[0]}" if named else "check the paths on the command line"
    if isinstance(exc, IsADirectoryError):
        if named is None:  # a file the command writes inside a folder given (Docker made it a folder)
            return f"{name} is a folder, where a file is wanted: remove that folder, or {change}"
        return f"{name} is a folder, where a file is wanted: {change} to a file's path"
    if isinstance(exc, NotADirectoryError):
        return f"{name}: a part of this path is a file, where a folder is wanted: {change}"
    if named is not None and named[1] != os.path.abspath(name):  # a folder above the path given
        return f"{name} does not exist, and the path given is under it: create that folder, or {change}"
    return f"{name or exc}: no such file or folder: {change}"


def explain(exc: BaseException, argv: list[str] | None = None) -> tuple[str, int]:
    """(one line, exit code) for an exception that escaped a command; ``argv``, the command line, lets
    a path the system refused be named with the option that gave it."""
    from pydantic import ValidationError

    if isinstance(exc, UserError):
        return str(exc), EXIT_USER
    if _is(exc, "NoArgsIsHelpError"):  # `vigil`, `vigil stack`: click printed the help, no message
        ctx = getattr(exc, "ctx", None)
        where = f"`{ctx.command_path} COMMAND`" if ctx is not None else "a command"
        return f"no command given: run {where}, one of those listed above", EXIT_USER
    if _is(exc, "UsageError"):
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        return exc.format_message().replace("\n", " ") + where, EXIT_USER  # type: ignore[attr-defined]
    if isinstance(exc, KeyboardInterrupt) or _is(exc, "Abort"):
        return "interrupted", EXIT_INTERRUPTED
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        first = exc.errors(include_url=False)[0]
        name = "VIGIL_" + "__".join(str(p).upper() for p in first["loc"])
        return (
            f"invalid setting {name}: {first['msg']} (check the environment: Vigil reads no .env file)",
            EXIT_USER,
        )
    if _is(exc, "SettingsError"):
        names = _unparsed_settings(exc)
        return (
            f'invalid setting {names}: not JSON (write a list as \'["MICU", "SICU"]\'; '
            "check the environment: Vigil reads no .env file)",
            EXIT_USER,
        )
    if isinstance(exc, PermissionError):  # e.g. a users file 0600 on the host, mounted into the image (uid 10001)
        path = _refused_path(exc)
        what = f"{path}: {exc.strerror or 'permission denied'}" if path else str(exc)
        return f"{what} for uid {os.getuid()}, this process's user: give that user access", EXIT_USER
    if isinstance(exc, FileExistsError):  # a folder to write wanted where a file is
        return f"{_refused_path(exc)}: a file is there, not a folder: give a folder, or a path not used yet", EXIT_USER
    if isinstance(exc, FileNotFoundError | NotADirectoryError | IsADirectoryError):
        return _path_error(exc, argv or []), EXIT_USER
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return f"address already in use ({exc}): choose another port", EXIT_USER
    if _is(exc, "SaslAuthenticationFailedError"):
        return (
            "Kafka refused this client's sign-in: check VIGIL_KAFKA__SASL_USERNAME and VIGIL_KAFKA__SASL_PASSWORD",
            EXIT_USER,
        )
    if _kafka_down(exc):
        # kafka-python retries a refused sign-in or certificate until its bootstrap times out
        return (
            f"Kafka is not reachable, or did not let this client in ({type(exc).__name__}): start the stack with "
            "`vigil stack up`, or set VIGIL_KAFKA__BOOTSTRAP; for a secured cluster check VIGIL_KAFKA__SASL_USERNAME, "
            "__SASL_PASSWORD and __SSL_CAFILE (the broker logs a refused password as 'Failed authentication')",
            EXIT_FAILED,
        )
    if _redis_down(exc):
        return "Redis is not reachable: start the stack with `vigil stack up`, or set VIGIL_REDIS__URL", EXIT_FAILED
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"unexpected {type(exc).__name__}: {text} (rerun with --debug for the traceback)", EXIT_FAILED


def fail(exc: BaseException, argv: list[str]) -> int:
    """Print the one line (stderr), and the ``{"ok": false}`` summary (stdout) under ``--json``."""
    line, code = explain(exc, argv)
    sys.stderr.write(f"error: {line}\n")
    if "--json" in argv:
        emit_json({"ok": False, "error": line})
    return code


def debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv


def json_error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}
