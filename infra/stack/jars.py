"""Apache Kafka's jars for the embedded broker: fetched from Maven Central by the machine's Maven
(``infra/kafka/pom.xml`` pins the version; Maven caches in ``~/.m2``) into ``<home>/kafka/libs``,
and the Java command line that runs a Kafka main class on them."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from vigil.infra.logging import get_logger
from vigil.infra.stack.processes import StackError, StackPaths

log = get_logger(__name__)

POM = Path(__file__).parents[1] / "kafka" / "pom.xml"

# WARN and above (the state-change log too: a line per partition at each start), plus the network
# selector's INFO lines: "Failed authentication with /IP (... invalid credentials ...)" is how the
# broker reports a refused client (no secret in it).
LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.auth.name = org.apache.kafka.common.network.Selector
logger.auth.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def ensure_kafka_jars(paths: StackPaths) -> Path:
    """Fetch the pinned broker jars with Maven once; re-fetch only when the pom changes."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    marker = paths.libs / f".pom-{digest}"
    if marker.exists():
        return paths.libs
    if shutil.which("java") is None:
        raise StackError("Java 17+ is required for the embedded Kafka broker: apt-get install openjdk-17-jre-headless")
    if shutil.which("mvn") is None:
        raise StackError("Maven is required to fetch Kafka's jars from Maven Central: apt-get install maven")
    if paths.libs.is_symlink():  # a link to another home's jars (the tests'), dangling or stale
        paths.libs.unlink()
    elif paths.libs.exists():
        shutil.rmtree(paths.libs)
    paths.libs.mkdir(parents=True)
    log.info("stack.kafka.fetch_jars", pom=str(POM))
    proc = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={paths.libs}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise StackError(f"mvn could not fetch Kafka's jars:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    marker.touch()
    return paths.libs


def java_cmd(paths: StackPaths, node_dir: Path, log_file: Path, heap_mb: int, main: str, *args: str) -> list[str]:
    """``java`` running ``main`` on the broker jars, logging (log4j2) into ``log_file``."""
    log4j = node_dir / "log4j2.properties"
    log4j.write_text(LOG4J2.format(log=log_file))
    return [
        "java",
        f"-Xms{min(heap_mb, 256)}m",
        f"-Xmx{heap_mb}m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={paths.logs}",
        "-cp",
        f"{paths.libs}/*",
        main,
        *args,
    ]


def kafka_version(paths: StackPaths) -> str | None:
    """The version of the broker jars in ``<home>/kafka/libs`` (None before the first fetch)."""
    found = sorted(paths.libs.glob("kafka_2.13-*.jar")) if paths.libs.is_dir() else []
    return found[0].name.removeprefix("kafka_2.13-").removesuffix(".jar") if found else None
