"""Users files (JSON, TOML, env), argon2 hashes, `vigil users add`, and the terminal feed rendering."""

from __future__ import annotations

import json
import stat

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner
from web_builders import alert

from vigil.agents.web.auth import Authenticator, add_user, hash_password, load_users
from vigil.cli import serve as cli_serve
from vigil.cli.alert_feed import passes, render_transition, transition_json
from vigil.schemas.errors import UserError


def test_users_from_json_toml_and_env(tmp_path) -> None:
    h = hash_password("pw-123456")
    (tmp_path / "u.json").write_text(
        json.dumps({"users": [{"username": "ann", "password_hash": h, "role": "clinician"}]})
    )
    (tmp_path / "u.toml").write_text(f'[[users]]\nusername = "tom"\npassword_hash = "{h}"\nrole = "viewer"\n')
    env = {"VIGIL_USERS": json.dumps([{"username": "eve", "password_hash": h, "role": "viewer"}])}
    assert load_users(tmp_path / "u.json", env={})["ann"].role == "clinician"
    assert load_users(tmp_path / "u.toml", env={})["tom"].role == "viewer"
    assert set(load_users(tmp_path / "u.json", env=env)) == {"ann", "eve"}


def test_hashes_are_argon2id_and_verify(tmp_path) -> None:
    user = add_user(tmp_path / "users.json", "ann", "s3cret-pass", "clinician")
    assert user.password_hash.startswith("$argon2id$") and "s3cret-pass" not in user.password_hash
    auth = Authenticator(load_users(tmp_path / "users.json", env={}), secret="x")
    assert auth.verify("ann", "s3cret-pass") is not None
    assert auth.verify("ann", "wrong") is None and auth.verify("bob", "s3cret-pass") is None
    assert stat.S_IMODE((tmp_path / "users.json").stat().st_mode) == 0o600


def test_session_tokens_are_signed(tmp_path) -> None:
    add_user(tmp_path / "u.json", "ann", "s3cret-pass", "viewer")
    auth = Authenticator(load_users(tmp_path / "u.json", env={}), secret="x")
    token, session = auth.issue(auth.users["ann"])
    assert auth.session(token) == session
    assert auth.session(token[:-2] + "xx") is None
    assert Authenticator(auth.users, secret="other").session(token) is None


def test_users_add_command(tmp_path) -> None:
    app = typer.Typer()
    cli_serve.register(app)
    path = tmp_path / "users.json"
    r = CliRunner().invoke(
        app,
        ["users", "add", "nurse.a", "--role", "clinician", "--users-file", str(path), "--json"],
        env={"VIGIL_NEW_PASSWORD": "long-enough-pw"},
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["role"] == "clinician"
    assert load_users(path, env={})["nurse.a"].role == "clinician"
    r = CliRunner().invoke(
        app,
        ["users", "add", "x", "--role", "admin", "--users-file", str(path)],
        env={"VIGIL_NEW_PASSWORD": "long-enough-pw"},
    )
    assert isinstance(r.exception, UserError) and "clinician or viewer" in str(r.exception)


@pytest.mark.parametrize(
    ("stdin", "error"),
    [
        ("long-enough-pw\nlong-enough-pw\n", None),  # a password and its confirmation, piped
        ("long-enough-pw\n", None),  # without a terminal one line is enough
        ("", "no password on standard input"),  # a closed stdin (cron, CI) is one line, not "interrupted"
        ("long-enough-pw\nanother-one\n", "differ"),
    ],
)
def test_users_add_reads_a_piped_password(tmp_path, stdin: str, error: str | None) -> None:
    app = typer.Typer()
    cli_serve.register(app)
    path = tmp_path / "users.json"
    args = ["users", "add", "nurse.b", "--users-file", str(path)]
    r = CliRunner().invoke(app, args, input=stdin, env={"VIGIL_NEW_PASSWORD": None})
    if error is None:
        assert r.exit_code == 0, r.output
        assert "nurse.b" in load_users(path, env={})
    else:
        assert isinstance(r.exception, UserError) and error in str(r.exception)
        assert not path.exists()


def test_feed_filters_by_ward_and_band() -> None:
    a = alert("p", severity="medium", ward="ICU-1")
    assert passes(a, None, None) and passes(a, "ICU-1", "medium")
    assert not passes(a, "ICU-2", None) and not passes(a, None, "high")


def test_feed_line_hides_the_patient_id_and_explains() -> None:
    console = Console(record=True, width=200)
    console.print(render_transition(alert("p-visible-id"), explain=True))
    text = console.export_text()
    assert "p-visible-id" not in text and "pt:" in text
    assert "RR +3" in text and "RR 27 ▲ raises risk" in text and "NEWS2" in text and "2→6" in text
    assert "#a1" in text and "1 Jan 03:00 UTC" in text  # the dashboard's id; date and zone
    assert transition_json(alert("p"))["transition_id"] == "a1-open"


def test_a_users_file_that_is_not_utf8_is_one_line_naming_it(tmp_path) -> None:
    from vigil.cli.errors import explain

    path = tmp_path / "users.json"
    h = hash_password("pw-123456")
    path.write_bytes(f'{{"users": [{{"username": "jos\xe9", "password_hash": "{h}"}}]}}'.encode("latin-1"))
    with pytest.raises(UserError) as raised:
        load_users(path, env={})
    line, code = explain(raised.value, ["serve"])
    assert code == 2 and str(path) in line and "UTF-8" in line and "\n" not in line


def test_a_password_in_clear_is_not_a_password_hash(tmp_path) -> None:
    """20 characters passed the length check: a password pasted as password_hash was loaded (and could
    never sign in, while sitting in clear in the file)."""
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"users": [{"username": "nurse", "password_hash": "correct-horse-battery-staple"}]}))
    with pytest.raises(UserError, match=r"user nurse is not an argon2 hash .*vigil users add nurse"):
        load_users(path, env={})
    env = {"VIGIL_USERS": json.dumps([{"username": "eve", "password_hash": "x" * 40}])}
    with pytest.raises(UserError, match=r"VIGIL_USERS: .*user eve"):
        load_users(None, env=env)


def test_a_user_named_twice_is_refused(tmp_path) -> None:
    """The last entry silently won, its role with it."""
    path = tmp_path / "users.json"
    h = hash_password("pw-123456")
    twice = [{"username": "ann", "password_hash": h, "role": "viewer"}, {"username": "ann", "password_hash": h}]
    path.write_text(json.dumps({"users": twice}))
    with pytest.raises(UserError, match=r"names the user ann twice"):
        load_users(path, env={})


def test_a_stale_wide_temp_file_does_not_widen_the_users_file(tmp_path) -> None:
    path = tmp_path / "users.json"
    stale = tmp_path / "users.json.tmp"
    stale.write_text("left by a crash")
    stale.chmod(0o644)
    add_user(path, "ann", "s3cret-pass", "clinician")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not stale.exists() and load_users(path, env={})["ann"].role == "clinician"


def test_users_add_replaces_a_password_in_clear_the_refusal_names(tmp_path) -> None:
    """The refusal's remedy works: `vigil users add nurse` replaces that entry; another user's clear
    password still stops it."""
    path = tmp_path / "users.json"
    clear = {"username": "nurse", "password_hash": "correct-horse-battery-staple", "role": "clinician"}
    path.write_text(json.dumps({"users": [clear]}))
    add_user(path, "nurse", "a-long-password", "clinician")
    assert load_users(path, env={})["nurse"].password_hash.startswith("$argon2id$")
    path.write_text(json.dumps({"users": [clear]}))
    with pytest.raises(UserError, match="user nurse"):
        add_user(path, "ann", "a-long-password", "viewer")


def test_a_reload_drops_only_the_refused_entries(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One refused entry rejected the whole reload and the last good users were kept: a hand edit that
    removed vic and disabled bob (password_hash "!") left both able to sign in. Each refused entry is
    now left out alone, and logged with its user's name; the start still refuses the file in one line."""
    import os

    from structlog.testing import capture_logs

    import vigil.agents.web.auth as auth_module
    from vigil.agents.web.auth import UserDirectory

    path = tmp_path / "users.json"
    h = hash_password("pw-123456")
    entry = {"password_hash": h, "role": "clinician"}
    names = ("ann", "vic", "bob", "cy", "dee", "eve")
    path.write_text(json.dumps({"users": [{"username": u, **entry} for u in names]}))
    users = UserDirectory(path, env={})
    monkeypatch.setattr(auth_module, "USERS_RECHECK_S", 0.0)
    edited = [
        {"username": "ann", **entry},
        {"username": "bob", "password_hash": "!", "role": "clinician"},  # disabled by hand
        {"username": "cy", "password_hash": "correct-horse-battery-staple"},  # a password in clear
        {"username": "dee", **entry},
        {"username": "dee", "password_hash": h, "role": "viewer"},  # named twice
        {"username": "eve", "password_hash": h, "role": "nurse"},  # not a role
        {"username": "eve", "password_hash": h},  # and again, valid: still not the entry meant
        "fay",
    ]  # vic removed
    path.write_text(json.dumps({"users": edited}))
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9, path.stat().st_mtime_ns + 10**9))
    with capture_logs() as logs:
        assert set(users.current()) == {"ann"}
    refused = {(e["user"], e["reason"].split(":")[0]) for e in logs if e["event"] == "users_entry_refused"}
    assert refused == {
        ("bob", "password_hash"),
        ("cy", str(path)),
        ("dee", str(path) + " names the user dee twice"),
        ("eve", "role"),
        ("entry 8", "Input should be a valid dictionary or instance of User"),
    }
    assert not any(h in str(e) for e in logs)  # no password hash in a log line
    # `vigil serve` and `vigil users`: the file refused in one line, as before
    with pytest.raises(UserError, match=r"users.1.password_hash") as raised:
        UserDirectory(path, env={})
    assert "\n" not in str(raised.value)
    path.write_text('{"users": [')  # half written: the last good users are kept
    os.utime(path, ns=(path.stat().st_mtime_ns + 2 * 10**9, path.stat().st_mtime_ns + 2 * 10**9))
    assert set(users.current()) == {"ann"}


def test_a_users_file_the_dashboard_may_not_read_signs_everyone_out_until_it_may(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """`vigil users remove` run as root writes a new file, mode 0600, that the dashboard's user
    cannot read: the users it had read last were served, the removed clinician among them. Those of
    VIGIL_USERS still stand."""
    import os

    import vigil.agents.web.auth as auth_module
    from vigil.agents.web.auth import UserDirectory, remove_user

    path = tmp_path / "users.json"
    add_user(path, "ann", "a-long-password", "clinician")
    add_user(path, "bo", "another-password", "viewer")
    env_user = json.dumps({"users": [{"username": "cy", "password_hash": hash_password("pw-123456")}]})
    users, with_env = UserDirectory(path, env={}), UserDirectory(path, env={"VIGIL_USERS": env_user})
    monkeypatch.setattr(auth_module, "USERS_RECHECK_S", 0.0)
    assert remove_user(path, "ann")
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9, path.stat().st_mtime_ns + 10**9))
    readable = auth_module._read_users_file

    def refused(users_file):  # type: ignore[no-untyped-def]
        raise PermissionError(13, "Permission denied", str(users_file))

    monkeypatch.setattr(auth_module, "_read_users_file", refused)
    assert users.current() == {}
    assert users.current() == {}  # tried again each second, still nobody
    assert set(with_env.current()) == {"cy"}
    monkeypatch.setattr(auth_module, "_read_users_file", readable)  # chown: same file, same stamp, read now
    assert set(users.current()) == {"bo"}
    assert set(with_env.current()) == {"bo", "cy"}
