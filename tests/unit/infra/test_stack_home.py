"""VIGIL_HOME, where the embedded stack keeps its data: an empty value (an empty line in .env,
``VIGIL_HOME=${X:-}`` in compose or CI) was the current folder, and ``vigil stack down --wipe``
deleted ./kafka/data and ./redis of wherever it ran."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vigil.infra.settings import Settings
from vigil.infra.stack import StackError, stack_down


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_home_is_refused_in_one_line_naming_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from vigil.cli.errors import explain

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIGIL_HOME", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    line, code = explain(caught.value)
    assert "VIGIL_HOME is empty" in line and "\n" not in line and code == 2


def test_a_relative_or_tilde_home_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert Settings(home="vigil-home").home == tmp_path / "vigil-home"
    assert Settings(home="~/stack").home == tmp_path / "user" / "stack"
    assert Settings(home=tmp_path / "a" / ".." / "b").home == tmp_path / "b"
    assert Settings().home.is_absolute()  # the default, ~/.cache/vigil


def test_a_path_naming_no_folder_is_refused_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Path("")`` is ``Path(".")``: its text is not empty, and it became the current folder."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match="VIGIL_HOME is empty"):
        Settings(home=Path(""))


def _folder_with_data(folder: Path) -> None:
    (folder / "redis").mkdir(parents=True)
    (folder / "redis" / "my-own-file.txt").write_text("not Vigil's")
    (folder / "kafka" / "data").mkdir(parents=True)


def test_wipe_deletes_nothing_in_a_folder_the_stack_never_ran_in(tmp_path: Path) -> None:
    _folder_with_data(tmp_path)
    tmp_path.chmod(0o755)
    with pytest.raises(StackError, match="not a Vigil home .*nothing deleted; check VIGIL_HOME"):
        stack_down(Settings(home=tmp_path), wipe=True)
    assert (tmp_path / "redis" / "my-own-file.txt").exists() and (tmp_path / "kafka" / "data").is_dir()
    assert tmp_path.stat().st_mode & 0o777 == 0o755 and not (tmp_path / "stack.lock").exists()


def test_a_plain_down_does_not_make_a_folder_a_home_that_a_wipe_then_empties(tmp_path: Path) -> None:
    """``VIGIL_HOME=. vigil stack down`` wrote stack.lock (and made the folder 0700); ``vigil stack
    down --wipe`` then took the lock for the stack's and deleted ./redis and ./kafka/data."""
    _folder_with_data(tmp_path)
    tmp_path.chmod(0o755)
    assert stack_down(Settings(home=tmp_path)) == {"kafka": False, "redis": False}
    assert tmp_path.stat().st_mode & 0o777 == 0o755 and sorted(p.name for p in tmp_path.iterdir()) == ["kafka", "redis"]
    with pytest.raises(StackError, match="not a Vigil home"):
        stack_down(Settings(home=tmp_path), wipe=True)
    assert (tmp_path / "redis" / "my-own-file.txt").exists() and (tmp_path / "kafka" / "data").is_dir()


@pytest.mark.parametrize("wipe", [False, True])
def test_down_of_a_home_that_does_not_exist_succeeds_and_creates_nothing(tmp_path: Path, wipe: bool) -> None:
    """The cleanup after a bench (``vigil stack down --wipe``) on a home nothing ran in yet."""
    home = tmp_path / "never-started"
    assert stack_down(Settings(home=home), wipe=wipe) == {"kafka": False, "redis": False}
    assert not home.exists()


def _stood_in_up(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``stack up`` in ``home``, its servers stood in for."""
    import vigil.infra.stack as stack
    from vigil.infra.ports import free_port_block

    for name in ("start_redis", "start_kafka", "ensure_topics"):
        monkeypatch.setattr(stack, name, lambda *args: None)
    base = free_port_block(2)
    stack.stack_up(
        Settings(
            home=home,
            kafka={"embedded_port": base, "embedded_controller_port": base + 1},
            redis={"embedded_port": free_port_block(1)},
        )
    )


# ".vigil-home": what `stack up` writes; a home older than it: Kafka's cluster id, or (a stack that ran
# Redis alone, Kafka outside) the embedded Redis' auth.conf with Vigil's ACL user in it
@pytest.mark.parametrize("marker", [".vigil-home", "kafka/cluster.id", "redis/auth.conf", "kafka/data/meta.properties"])
def test_wipe_still_empties_a_home_the_stack_ran_in(
    tmp_path: Path, marker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder_with_data(tmp_path)
    if marker == ".vigil-home":
        _stood_in_up(tmp_path, monkeypatch)
        assert (tmp_path / marker).is_file() and tmp_path.stat().st_mode & 0o777 == 0o700
    elif marker == "redis/auth.conf":
        (tmp_path / marker).write_text("user default on >a ~* &* +@all\nuser vigil on >b ~vigil:* &* +@all\n")
    else:  # a cluster id; or a home from before 1 December, formatted data and no cluster.id beside it
        (tmp_path / marker).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / marker).write_text("AbCdEfGhIjKlMnOpQrStUw")
    assert stack_down(Settings(home=tmp_path), wipe=True) == {"kafka": False, "redis": False}
    assert not (tmp_path / "redis").exists() and not (tmp_path / "kafka" / "data").exists()


def test_an_auth_conf_that_is_not_the_stacks_does_not_make_a_home(tmp_path: Path) -> None:
    _folder_with_data(tmp_path)
    (tmp_path / "redis" / "auth.conf").write_text("requirepass mine\n")
    with pytest.raises(StackError, match="not a Vigil home"):
        stack_down(Settings(home=tmp_path), wipe=True)
    assert (tmp_path / "redis" / "my-own-file.txt").exists()
