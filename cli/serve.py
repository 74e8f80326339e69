"""``vigil serve`` (dashboard + FHIR intake) and ``vigil users add``; the terminal alert commands are in
``cli.alerts``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from vigil.cli.jsonout import emit_json
from vigil.infra.settings import Settings, WebSettings, get_settings

users_app = typer.Typer(help="Dashboard users (argon2 password hashes)", no_args_is_help=True)
console = Console()

JsonFlag = Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")]
BootstrapOpt = Annotated[str | None, typer.Option("--bootstrap", help="Kafka bootstrap (default: settings)")]
BANDS = ("low-medium", "medium", "high")


def default_users_file(settings: Settings) -> Path:
    return settings.users_file or settings.home / "users.json"


def serve(
    port: int = typer.Option(None, min=1, max=65535, help="listen port (default: settings.web_port)"),
    host: str = typer.Option("127.0.0.1", help="listen address (loopback unless behind a TLS proxy)"),
    users_file: Path = typer.Option(
        None, help="users file (default: settings.users_file or HOME/users.json)", show_default=False
    ),
    backfill: int = typer.Option(5000, min=0, help="records per partition read back at start for the ward state"),
    secure_cookies: bool = typer.Option(False, help="mark cookies Secure (when served over HTTPS)"),
    tls_cert: Path = typer.Option(
        None, help="serve HTTPS with this certificate (PEM; default: VIGIL_WEB__TLS_CERT)", show_default=False
    ),
    tls_key: Path = typer.Option(
        None, help="its private key (default: VIGIL_WEB__TLS_KEY, else in the certificate's file)", show_default=False
    ),
    bootstrap: BootstrapOpt = None,
) -> None:
    """Serve the ward dashboard, /healthz, /readyz, /metrics and the FHIR intake, over HTTPS with a
    certificate (then cookies are Secure and browsers are told to keep to HTTPS)."""
    import uvicorn

    from vigil.agents.web.app import create_app
    from vigil.agents.web.auth import UserDirectory
    from vigil.agents.web.kafka_feed import KafkaWardFeed
    from vigil.cli.preflight import require_free_port, settings_for
    from vigil.infra.logging import configure_logging
    from vigil.infra.secrets import require_real_log_key

    settings = settings_for(get_settings(), bootstrap)
    require_real_log_key(settings, "serve")  # dashboard row ids are keyed with it too (a UserError)
    configure_logging()
    port = port or settings.web_port
    tls = https_options(tls_cert or settings.web.tls_cert, tls_key or settings.web.tls_key)
    require_free_port(host, port)  # fail before announcing a URL that is someone else's
    path = users_file or default_users_file(settings)
    # re-read when the file changes: a removed user or a new password ends the old sessions
    users = UserDirectory(path)
    feed = KafkaWardFeed(settings, backfill=backfill)
    app = create_app(settings, feed, users=users, cookie_secure=secure_cookies or tls is not None)
    count = len(users.current())
    hint = "" if count else f"; add one with `vigil users add NAME --role clinician` ({path})"
    scheme = "https" if tls is not None else "http"
    console.print(f"Vigil dashboard on {scheme}://{host}:{port}/ ({count} users{hint})", highlight=False)
    cert_file, key_file = tls or (None, None)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        ssl_certfile=cert_file,
        ssl_keyfile=key_file,
        **proxy_options(settings.web),
    )


def proxy_options(web: WebSettings) -> dict[str, Any]:
    """uvicorn's handling of X-Forwarded-For and X-Forwarded-Proto: believed only from the proxies
    ``VIGIL_WEB__TRUSTED_PROXIES`` names. uvicorn's own default believes any process on loopback (and
    ``FORWARDED_ALLOW_IPS``), so the per-address sign-in back-off depended on whoever connects from there:
    a proxy that passes the client's header on let a guesser name a new address at each try."""
    if not web.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(web.trusted_proxies)}


def https_options(cert: Path | None, key: Path | None) -> tuple[str, str] | None:
    """uvicorn's certificate and key files for ``cert`` (and ``key``; None: the key is in the
    certificate's file), None for plain HTTP; one line naming the setting when they cannot be used."""
    import ssl

    from vigil.schemas.errors import UserError

    if cert is None:
        if key is not None:
            raise UserError("VIGIL_WEB__TLS_KEY (--tls-key) needs VIGIL_WEB__TLS_CERT (--tls-cert)")
        return None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UserError(
            f"HTTPS: cannot use the certificate {cert}{f' and key {key}' if key else ''} ({exc}): "
            "give a PEM certificate and its key (VIGIL_WEB__TLS_CERT, VIGIL_WEB__TLS_KEY)"
        ) from None
    return str(cert), str(key or cert)


@users_app.command("add")
def users_add(
    name: str,
    role: str = typer.Option("viewer", help="clinician (may acknowledge) or viewer (read-only)"),
    users_file: Path = typer.Option(None, help="JSON users file (default: HOME/users.json)", show_default=False),
    password: str = typer.Option(
        None, help="the password (prompted when omitted; prefer the prompt)", envvar="VIGIL_NEW_PASSWORD"
    ),
    json_out: JsonFlag = False,
) -> None:
    """Add or replace a dashboard user; stores only the argon2id hash."""
    from vigil.agents.web.auth import add_user
    from vigil.schemas.errors import UserError

    if role not in ("clinician", "viewer"):
        raise UserError(f"--role must be clinician or viewer (got {role!r})")
    if password is None:
        password = _read_new_password()
    if len(password) < 8:
        raise UserError("the password needs at least 8 characters")
    path = users_file or default_users_file(get_settings())
    user = add_user(path, name, password, role)  # type: ignore[arg-type]
    console.print(f"{user.username} ({user.role}) -> {path}", highlight=False)
    if json_out:
        emit_json({"username": user.username, "role": user.role, "users_file": str(path)})


def _read_new_password() -> str:
    """At a terminal, a hidden prompt and its confirmation; from a pipe (automation), its first line
    (and, when given, a second that must match), without getpass's warnings about echo."""
    import sys

    from vigil.schemas.errors import UserError

    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    lines = sys.stdin.read().splitlines()
    if not lines or not lines[0]:
        raise UserError("no password on standard input: run it at a terminal for the prompt, or set VIGIL_NEW_PASSWORD")
    if len(lines) > 1 and lines[1] != lines[0]:
        raise UserError("the two passwords on standard input differ: give the same one on both lines")
    return lines[0]


@users_app.command("remove")
def users_remove(
    name: str,
    users_file: Path = typer.Option(None, help="JSON users file (default: HOME/users.json)", show_default=False),
    json_out: JsonFlag = False,
) -> None:
    """Remove a dashboard user; their sessions end at their next request."""
    from vigil.agents.web.auth import remove_user
    from vigil.schemas.errors import UserError

    path = users_file or default_users_file(get_settings())
    if not remove_user(path, name):
        raise UserError(f"no user {name!r} in {path} (`vigil users add` creates one)")
    console.print(f"removed {name} from {path}", highlight=False)
    if json_out:
        emit_json({"removed": name, "users_file": str(path)})


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(users_app, name="users")
