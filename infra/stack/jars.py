"""Apache Kafka's jars for the embedded broker: fetched from Maven Central by the machine's Maven
(``infra/kafka/pom.xml`` pins the version; Maven caches in ``~/.m2``) into ``<home>/kafka/libs``,
and the Java command line that runs a Kafka main class on them."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from vigil.infra.logging import get_logger
from vigil.infra.stack.processes import StackError, StackPaths

log = get_logger(__name__)

POM = Path(__file__).parents[1] / "kafka" / "pom.xml"
# Kafka 4's broker and tools are compiled for Java 17 (class file version 61): an older Java ends
# the first java command in a multi-line UnsupportedClassVersionError
MIN_JAVA = 17
INSTALL_JAVA = "apt-get install openjdk-17-jre-headless"

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
        raise StackError(f"Java {MIN_JAVA}+ is required for the embedded Kafka broker: {INSTALL_JAVA}")
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


def parse_java_major(output: str) -> int | None:
    """The major version in ``java -version``'s output (stderr): ``openjdk version "17.0.9"`` -> 17,
    ``"21" 2023-09-19`` -> 21, and Java 8's ``"1.8.0_392"`` -> 8 (before Java 9 the major was the
    second number). None when no version is there."""
    found = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if found is None:
        return None
    major = int(found[1])
    return int(found[2] or 0) if major == 1 else major


@lru_cache(maxsize=8)
def _java_major(java: str) -> int | None:
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_java_major(proc.stderr + proc.stdout)


def require_java() -> str:
    """The ``java`` on the PATH, if it is Java 17 or later; else one line saying what to install."""
    java = shutil.which("java")
    if java is None:
        raise StackError(f"Java {MIN_JAVA}+ is required for the embedded Kafka broker: {INSTALL_JAVA}")
    major = _java_major(java)
    if major is None:
        raise StackError(f"{java} -version reported no version; the embedded Kafka broker needs Java {MIN_JAVA}+")
    if major < MIN_JAVA:
        raise StackError(
            f"{java} is Java {major}; the embedded Kafka broker needs Java {MIN_JAVA}+: {INSTALL_JAVA} "
            "(and make it the default: update-alternatives --config java)"
        )
    return java


# what the JDK launcher's @argfile reader (libjli args.c) unescapes inside double quotes
_ARGFILE_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"})


def java_argfile(args: Sequence[str]) -> bytes:
    """``args`` (a main class and its arguments) as a Java launcher @argfile: ``java ... @file``
    reads them from the file, so ``ps`` shows the file's name, not them (the SCRAM passwords
    StorageTool formats storage with). One argument a line, in double quotes, a backslash or quote in
    it escaped as the launcher reads them, and so are a newline, carriage return, tab and form feed:
    the launcher ends a token at a raw newline even inside quotes (a password with one became two
    arguments), and decodes ``\\n``, ``\\r``, ``\\t``, ``\\f`` inside quotes. The launcher reads @files
    only before the main class, so the main class goes in the file too."""
    return "".join(f'"{arg.translate(_ARGFILE_ESCAPES)}"\n' for arg in args).encode()


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
