"""The Docker image as its Dockerfile builds it, without a Docker engine (none runs here or in CI): the
files it COPYs, its `pip install` into a fresh Python 3.11 environment, its ENV and its USER, who may
write neither the working directory nor a home. Run so, with the environment and command
docker-compose.yml gives each service: the one-shot ``topics`` service makes Vigil's topics on a
bare broker of the test's own, a worker scores an observation there, and the ``web`` and ``mllp``
services answer.

It failed before the worker's Faust data folder moved to the temp dir: the image's user could not
create ``vigil-data`` in ``/app``, and every worker of ``docker compose up`` stopped at start with
PermissionError. Compose runs Vigil's containers with a read-only root filesystem and a tmpfs at
``/tmp``; where the tests run as root, so are these services here (``in_container``: a mount
namespace whose ``/`` is read-only, its temp dir a fresh tmpfs)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import free_port, own_stack_settings, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3.11")  # Debian's; python:3.11-slim's is 3.11 too


@dataclass
class Recipe:
    """What the Dockerfile says, instruction by instruction (the few kinds it uses)."""

    base: str = ""
    workdir: str = "/"
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    runs: list[list[str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    user: tuple[int, int] | None = None


def read_dockerfile(path: Path) -> Recipe:
    recipe = Recipe()
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        op, _, rest = line.strip().partition(" ")
        args = shlex.split(rest)
        match op.upper():
            case "FROM":
                recipe.base = args[0]
            case "WORKDIR":
                recipe.workdir = args[0]
            case "COPY":
                recipe.copies.append((args[:-1], args[-1]))
            case "RUN":
                recipe.runs.append(args)
            case "ENV":
                recipe.env.update(a.split("=", 1) for a in args)  # type: ignore[misc]
            case "USER":
                uid, _, gid = args[0].partition(":")
                recipe.user = (int(uid), int(gid or uid))  # a name would need a passwd entry here
            case "ENTRYPOINT":
                pass
            case _:
                raise AssertionError(f"{op}: teach this test what the instruction does")
    return recipe


def test_the_dockerfile_is_what_this_test_rebuilds() -> None:
    recipe = read_dockerfile(REPO / "Dockerfile")
    assert re.fullmatch(r"python:3\.11(-slim)?-bookworm", recipe.base), recipe.base  # Debian pinned, as here
    assert recipe.runs and all(r[:2] == ["pip", "install"] for r in recipe.runs), recipe.runs
    assert recipe.user is not None and recipe.user[0] != 0, "the image must not run as root"
    assert recipe.env.get("ORT_DISABLE_TELEMETRY") == "1"


@dataclass
class Image:
    root: Path  # the image's files: <root>/app (WORKDIR), <root>/venv (its Python)
    recipe: Recipe

    @property
    def workdir(self) -> Path:
        return self.root / self.recipe.workdir.lstrip("/")


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    """The Dockerfile's files and install, in a folder its user may read but not write."""
    if not SYSTEM_PYTHON.exists():
        pytest.skip(f"{SYSTEM_PYTHON} missing: the image's Python 3.11")
    recipe = read_dockerfile(REPO / "Dockerfile")
    root = Path(tempfile.mkdtemp(prefix="vigil-image-"))
    try:
        root.chmod(0o755)
        app = root / recipe.workdir.lstrip("/")
        app.mkdir(parents=True)
        skip = shutil.ignore_patterns("__pycache__", "*.pyc")
        for sources, dest in recipe.copies:
            target = app / dest
            for src in sources:
                if (REPO / src).is_dir():
                    shutil.copytree(REPO / src, target, ignore=skip)
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / src, target / src)
        subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", str(root / "venv")], check=True)
        for run in recipe.runs:  # pip install: the venv's pip; the user cache instead of --no-cache-dir
            argv = [str(root / "venv" / "bin" / "pip"), *[a for a in run[1:] if a != "--no-cache-dir"], "-q"]
            done = subprocess.run(argv, cwd=app, capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, f"{' '.join(run)}: {done.stderr[-3000:]}"
        if os.geteuid() != 0:  # not root: the image's user is this one, kept out of the working directory
            app.chmod(0o555)
        yield Image(root, recipe)
    finally:
        for folder in (root, *root.rglob("*")):
            if folder.is_dir():
                folder.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def own_stack() -> Iterator[object]:
    """A broker and Redis of the image's workers alone (its worker reads every partition from the
    start), without Vigil's topics: compose's ``topics`` service makes them."""
    from vigil.infra.stack import stack_down
    from vigil.infra.stack.kafka import start_kafka
    from vigil.infra.stack.redis_server import start_redis

    compose = compose_env()
    with tempfile.TemporaryDirectory(prefix="vigil-image-stack-") as tmp:
        settings = own_stack_settings(Path(tmp), partitions=int(compose["VIGIL_KAFKA__PARTITIONS"]))
        try:
            start_redis(settings)
            start_kafka(settings)
            yield settings
        finally:
            stack_down(settings)


def compose_env(service: str = "worker") -> dict[str, str]:
    """docker-compose.yml's environment of ``service`` (each secret a /run/secrets/NAME file it names)."""
    env = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][service]["environment"]
    assert not any("${" in str(v) for v in env.values())  # nothing from the operator's environment
    return {k: str(v) for k, v in env.items()}


def compose_secret_files(image: Image, redis_password: str) -> dict[str, Path]:
    """compose's secrets as `vigil stack compose-secrets` writes them, each given the owner it names
    (the operator's `sudo chown`): the image's user must read its own. ``redis_password``: own_stack's
    Redis', in place of the generated one."""
    import json

    folder = image.root / "secrets"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    made = subprocess.run(  # noqa: S603 - the command compose's comments tell the operator to run
        [sys.executable, "-m", "vigil.cli", "stack", "compose-secrets", "--out", str(folder), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    owners = json.loads(made.stdout.strip().splitlines()[-1])["owners"]
    (folder / "redis_password").chmod(0o600)
    (folder / "redis_password").write_text(redis_password)
    if os.geteuid() == 0:
        assert image.recipe.user is not None and owners["kafka_password"] == str(image.recipe.user[0])
        for name, owner in owners.items():
            uid, _, gid = owner.partition(":")
            os.chown(folder / name, int(uid), int(gid or uid))
    return {name: folder / name for name in owners}


def image_env(image: Image, settings, service: str = "worker") -> dict[str, str]:  # type: ignore[no-untyped-def]
    """As the container of ``service`` sees it: the image's PATH and ENV, HOME "/" (Docker's for a user
    without a passwd entry), compose's variables with the broker and Redis of ``own_stack``, and
    compose's secret files as `vigil stack compose-secrets` writes them, owned as its output says."""
    from tests.integration.test_compose_kafka import mounted
    from vigil.infra.secrets import REDIS_PASSWORD, REDIS_USER, read_secret

    password = read_secret(settings.home, REDIS_PASSWORD)
    assert password is not None
    # own_stack's Kafka is the plain embedded one: compose's SASL_SSL sign-in is tested against
    # compose's own Kafka in test_compose_kafka.py
    # (and its Redis the plain embedded one: compose's TLS is tested in test_compose_redis.py)
    sign_in = (
        "VIGIL_KAFKA__SASL_USERNAME",
        "VIGIL_KAFKA__SASL_PASSWORD_FILE",
        "VIGIL_KAFKA__SSL_CAFILE",
        "VIGIL_REDIS__SSL_CAFILE",
    )
    secrets = compose_secret_files(image, password.get_secret_value())
    compose = {k: v for k, v in mounted(compose_env(service), secrets).items() if k not in sign_in}
    assert compose["VIGIL_REDIS__PASSWORD_FILE"] == str(secrets["redis_password"])
    return {
        "PATH": f"{image.root / 'venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/",
        "LANG": "C.UTF-8",
        **image.recipe.env,
        **compose,
        "VIGIL_KAFKA__SECURITY_PROTOCOL": "PLAINTEXT",
        "VIGIL_KAFKA__BOOTSTRAP": settings.kafka.bootstrap or f"127.0.0.1:{settings.kafka.embedded_port}",
        "VIGIL_REDIS__URL": f"redis://127.0.0.1:{settings.redis.embedded_port}/0",
        "VIGIL_REDIS__USERNAME": REDIS_USER,  # compose's, as docker-compose.yml sets it
        # own_stack is one broker: compose's replication (3, for its three nodes) is tested on them in
        # test_compose_kafka.py and test_compose_stack.py
        "VIGIL_KAFKA__REPLICATION_FACTOR": "1",
    }


def compose_command(service: str) -> tuple[list[str], int | None]:
    """``service``'s command, its ports (taken here, perhaps) moved to free ones; the listening port."""
    command: list[str] = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][service]["command"]
    listening = None
    for option in ("--port", "--metrics-port"):
        if option in command:
            at = command.index(option) + 1
            port = free_port()
            command = [*command[:at], str(port), *command[at + 1 :]]
            listening = port if option == "--port" else listening
    return command, listening


def compose_healthcheck(
    service: str, compose_port: str, port: int, secrets: dict[str, Path] | None = None
) -> list[str]:
    """``service``'s healthcheck command (its ``CMD`` form), its port moved to ``port`` and compose's
    secrets (``/run/secrets/NAME``) to the files of ``secrets``."""
    test = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD", test
    moved = []
    for arg in test[1:]:
        for host in ("127.0.0.1", "localhost"):
            arg = arg.replace(f"{host}:{compose_port}/", f"{host}:{port}/")
        for name, path in (secrets or {}).items():
            arg = arg.replace(f"/run/secrets/{name}", str(path))
        moved.append(arg)
    return moved


def healthy(image: Image, env: dict[str, str], command: list[str]) -> bool:
    """The healthcheck, run in the container's environment as its user, exits 0."""
    done = subprocess.run(  # noqa: S603 - the compose file's own healthcheck
        command,
        cwd=image.workdir,
        env=env,
        capture_output=True,
        timeout=30,
        **as_image_user(image),  # type: ignore[call-overload]
    )
    return done.returncode == 0


def as_image_user(image: Image) -> dict[str, object]:
    """Popen's arguments that run a child as the image's USER (only root may switch)."""
    if os.geteuid() == 0 and image.recipe.user is not None:
        uid, gid = image.recipe.user
        return {"user": uid, "group": gid, "extra_groups": []}
    return {}


def read_only_root_works() -> bool:
    """Root may give a child a mount namespace of its own (``unshare -m``), where ``/`` is read-only."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None:
        return False
    probe = ["unshare", "-m", "--propagation", "private", "mount", "-o", "remount,ro,bind", "/", "/"]
    return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0  # noqa: S603


def in_container(image: Image, service: str, command: list[str], env: dict[str, str]) -> list[str]:
    """``command`` as compose runs ``service``: as the image's user and, where compose makes the
    container's root filesystem read-only (``read_only``, with a ``tmpfs`` temp dir), in a mount
    namespace whose ``/`` is read-only and whose temp dir (``TMPDIR``, set in ``env``) a fresh tmpfs.
    Where this process may not do that (not root), the command as it is (``as_image_user``)."""
    spec = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][service]
    if not (spec.get("read_only") and read_only_root_works() and image.recipe.user is not None):
        return command
    assert spec.get("tmpfs") == ["/tmp"], spec.get("tmpfs")
    # compose's tmpfs at /tmp; here beside the image's files (which live in /tmp), where its user can reach it
    tmp = image.root / f"tmp-{service}"
    tmp.mkdir(exist_ok=True)
    env["TMPDIR"] = str(tmp)
    uid, gid = image.recipe.user
    script = (
        'mount -o remount,ro,bind / / && mount -t tmpfs -o mode=1777 tmpfs "$TMPDIR" && '
        f'exec setpriv --reuid={uid} --regid={gid} --clear-groups "$@"'
    )
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *command]


def container_user(image: Image, argv: list[str]) -> dict[str, object]:
    """Popen's user arguments for ``in_container``'s argv: none where it switches the user itself."""
    return {} if argv[:1] == ["unshare"] else as_image_user(image)


def start_container(image: Image, service: str, command: list[str], env: dict[str, str], log: Path) -> Any:
    """``service`` started as compose runs it (``in_container``), from the image's working directory,
    its output in ``log``, in a process group of its own; ``Popen.args[0]`` is ``unshare`` where its
    root is read-only."""
    argv = in_container(image, service, command, env)
    with open(log, "wb") as out:
        return subprocess.Popen(  # noqa: S603 - the compose file's own command
            argv,
            cwd=image.workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **container_user(image, argv),  # type: ignore[call-overload]
        )


def test_the_image_makes_the_topics_and_its_worker_scores(image: Image, own_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from vigil.infra.connect import kafka_producer
    from vigil.infra.readback import TopicReader
    from vigil.infra.stack.topics import describe_replication
    from vigil.schemas import topics
    from vigil.schemas.events import PatientEvent

    settings = own_stack
    before = sorted(p.name for p in image.workdir.iterdir())
    env = image_env(image, settings)
    topics_env = dict(env)
    topics_argv = in_container(image, "topics", compose_command("topics")[0], topics_env)
    topics_run = subprocess.run(  # noqa: S603 - compose's one-shot topics service, before the workers
        topics_argv,
        cwd=image.workdir,
        env=topics_env,
        capture_output=True,
        text=True,
        timeout=180,
        **container_user(image, topics_argv),  # type: ignore[call-overload]
    )
    assert topics_run.returncode == 0, topics_run.stdout[-2000:] + topics_run.stderr[-2000:]
    made = describe_replication(settings, topics.ALL_TOPICS)
    assert {t["partitions"] for t in made.values()} == {int(env["VIGIL_KAFKA__PARTITIONS"])}, made
    health_port = free_port()  # compose's VIGIL_HEALTH_PORT may be taken here
    check = compose_healthcheck("worker", env["VIGIL_HEALTH_PORT"], health_port)
    env["VIGIL_HEALTH_PORT"] = str(health_port)
    log = tmp_path / "image-worker.log"
    reader = TopicReader(settings, keep_scores=True).start()
    probe = in_container(image, "worker", ["sh", "-c", 'touch "$TMPDIR/ok" && ! touch /var/tmp/x 2>/dev/null'], env)
    read_only = probe[0] == "unshare"
    if read_only:  # the container's root is read-only indeed, its temp dir writable
        assert subprocess.run(probe, env=env, timeout=30).returncode == 0  # noqa: S603
    worker = start_container(image, "worker", compose_command("worker")[0], env, log)
    producer = kafka_producer(settings)
    patient = f"image-{uuid.uuid4().hex[:8]}"
    event = PatientEvent(
        patient_id=patient,
        observed_at=datetime.now(UTC),
        kind="vital",
        code="HR",
        value=128.0,
        unit="/min",
        source="test",
    )
    try:
        producer.send(topics.EVENTS_RAW, key=patient.encode(), value=event.model_dump_json().encode())
        producer.flush()
        scored = wait_for(lambda: event.event_id in reader.snapshot().scored_ids or worker.poll() is not None, 180)
        assert scored and worker.poll() is None, log.read_text()[-4000:]
        (score,) = [s for (p, _), s in reader.snapshot().last_scores.items() if p == patient]
        assert {m["model"] for m in score["models"]} >= {"sepsis_diagnosis", "deterioration", "combined"}
        assert wait_for(lambda: healthy(image, env, check), 60), "compose's healthcheck of the worker failed"
    finally:
        producer.close()
        reader.stop()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while worker.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
    text = log.read_text()
    assert worker.returncode == 0, text[-3000:]  # stopped cleanly by SIGTERM
    if read_only:  # Faust's data folder lived on the container's tmpfs, gone with it
        assert not any(Path(env["TMPDIR"]).iterdir())
    assert "PermissionError" not in text and "telemetry" not in text, text[-3000:]
    assert sorted(p.name for p in image.workdir.iterdir()) == before  # nothing written to /app


def compose_tls_files(image: Image) -> dict[str, Path]:
    """compose's ``tls_ca`` and ``web_pem`` secrets, as `vigil stack compose-tls` writes them and the
    operator gives web.pem to the image's user (``sudo chown 10001``)."""
    folder = image.root / "tls"
    folder.mkdir(exist_ok=True)
    made = subprocess.run(  # noqa: S603 - the command compose's comments tell the operator to run
        [sys.executable, "-m", "vigil.cli", "stack", "compose-tls", "--out", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    if os.geteuid() == 0 and image.recipe.user is not None:
        os.chown(folder / "web.pem", *image.recipe.user)
    return {"tls_ca": folder / "ca.pem", "web_pem": folder / "web.pem"}


@pytest.mark.parametrize("service", ["web", "mllp"])
def test_the_web_and_mllp_containers_answer(image: Image, own_stack, service: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """compose's ``web`` (the dashboard and FHIR intake) and ``mllp`` services, run as the image runs
    them, listen and answer. Runs after the worker's test, which made the topics."""
    import socket
    import urllib.request

    env = image_env(image, own_stack, service)
    if "VIGIL_USERS_FILE" in env:  # compose's users mount: the operator's file, readable by the image's user
        users = image.root / "users.json"
        users.write_text("[]")
        users.chmod(0o644)
        env["VIGIL_USERS_FILE"] = str(users)
    secrets = compose_tls_files(image) if "VIGIL_WEB__TLS_CERT" in env else {}
    if secrets:  # compose's HTTPS: the web certificate `vigil stack compose-tls` writes, owned by the image's user
        assert env["VIGIL_WEB__TLS_CERT"] == env["VIGIL_WEB__TLS_KEY"] == "/run/secrets/web_pem"
        env["VIGIL_WEB__TLS_CERT"] = env["VIGIL_WEB__TLS_KEY"] = str(secrets["web_pem"])
    command, port = compose_command(service)
    assert port is not None
    log = tmp_path / f"{service}.log"
    proc = start_container(image, service, command, env, log)

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0 or proc.poll() is not None

    try:
        assert wait_for(listening, 90) and proc.poll() is None, log.read_text()[-3000:]
        if service == "web":
            import ssl

            ca = ssl.create_default_context(cafile=str(secrets["tls_ca"]))  # HTTPS, checked as a browser would
            with urllib.request.urlopen(f"https://localhost:{port}/login", timeout=10, context=ca) as answer:
                assert answer.status == 200 and b"<form" in answer.read()
                assert answer.headers["Strict-Transport-Security"] and "secure" in answer.headers["Set-Cookie"].lower()
            check = compose_healthcheck("web", "8000", port, secrets)
            assert wait_for(lambda: healthy(image, env, check), 90), "compose's healthcheck of the web failed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert "PermissionError" not in text and "Traceback" not in text, text[-3000:]
