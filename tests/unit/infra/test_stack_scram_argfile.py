"""The SCRAM passwords the secure embedded stack and compose's Kafka format their storage with never
reach a command line: ``ps`` shows every process' arguments to every local user, and the StorageTool
JVM's held the service's and the brokers' super user's."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from vigil.infra.settings import Settings
from vigil.infra.stack import kafka
from vigil.infra.stack.jars import java_argfile
from vigil.infra.stack.tls import ensure_secure_material

DEPLOY = Path(__file__).parents[3] / "deploy" / "kafka-start.sh"


def test_the_storage_format_reads_the_scram_users_from_a_private_argfile_removed_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path, kafka={"security_protocol": "SASL_SSL"})
    material = ensure_secure_material(tmp_path)
    passwords = [material.kafka_password.get_secret_value(), material.broker_password.get_secret_value()]
    seen: dict[str, object] = {}

    def storage_tool(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen["argv"] = args
        if args[-1].startswith("@"):
            argfile = Path(args[-1][1:])
            seen.update(argfile=argfile, text=argfile.read_text(), mode=stat.S_IMODE(argfile.stat().st_mode))
        (tmp_path / "kafka" / "data").mkdir(parents=True, exist_ok=True)
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(kafka, "require_java", lambda: "java", raising=False)  # no JVM started here
    monkeypatch.setattr(kafka.subprocess, "run", storage_tool)
    kafka._prepare_node(settings, 0, material)
    argv = " ".join(seen["argv"])  # type: ignore[arg-type]
    assert not any(pw in argv for pw in passwords)
    assert "kafka.tools.StorageTool" not in argv and argv.endswith("/format.args")  # the main class is in the file
    assert all(pw in str(seen["text"]) for pw in passwords) and seen["mode"] == 0o600
    assert str(seen["text"]).startswith('"kafka.tools.StorageTool"\n"format"\n')
    assert not Path(seen["argfile"]).exists()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arg", "line"),
    [
        ("SCRAM-SHA-512=[name=vigil,password=a-b_c]", '"SCRAM-SHA-512=[name=vigil,password=a-b_c]"'),
        ('pa"ss\\wo rd', '"pa\\"ss\\\\wo rd"'),  # as the launcher unescapes it (checked with the real JDK)
        ("#not-a-comment", '"#not-a-comment"'),
        # the launcher ends a token at a raw newline or carriage return even inside quotes: a
        # password with one was two arguments; it decodes these escapes inside quotes
        ("pa\nss\rwo\trd\f", '"pa\\nss\\rwo\\trd\\f"'),
    ],
)
def test_each_argument_is_one_quoted_line_of_the_argfile(arg: str, line: str) -> None:
    assert java_argfile(["kafka.tools.StorageTool", arg]).decode() == f'"kafka.tools.StorageTool"\n{line}\n'


ARGS_PROGRAM = """public class Args { public static void main(String[] a) throws Exception {
  for (String s : a) { System.out.write(s.getBytes("UTF-8")); System.out.write(0); } System.out.flush(); } }"""


@pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None, reason="no JDK here")
def test_the_java_launcher_reads_every_argument_back_as_written(tmp_path: Path) -> None:
    """The real JDK launcher (libjli) reads the @argfile: each argument arrives whole."""
    (tmp_path / "Args.java").write_text(ARGS_PROGRAM)
    subprocess.run(["javac", "-d", str(tmp_path), str(tmp_path / "Args.java")], check=True, timeout=120)
    args = [
        "-c",
        '/home/a b/it\'s "q"/server.properties',
        "SCRAM-SHA-512=[name=vigil,password=p\\a#ss]",
        "pa\nss",
        "c\r\nr",
        "t\tb\f",
        "\\n is not a newline",
        "ends in a backslash\\",
    ]
    argfile = tmp_path / "args"
    argfile.write_bytes(java_argfile(["Args", *args]))
    done = subprocess.run(["java", "-cp", str(tmp_path), f"@{argfile}"], capture_output=True, check=True, timeout=120)
    assert done.stdout.decode().split("\0")[:-1] == args


def test_compose_kafka_formats_with_its_super_users_password_in_a_file_not_on_the_command_line(tmp_path: Path) -> None:
    """deploy/kafka-start.sh under sh, with the image's scripts as stand-ins that record what they got."""
    password = "Abc.def~ghi+jkl/mno-pqr0123"
    bin_dir, run, data = tmp_path / "bin", tmp_path / "run", tmp_path / "data"
    bin_dir.mkdir()
    record = tmp_path / "storage.txt"
    (bin_dir / "kafka-storage.sh").write_text(
        "#!/bin/sh\n"
        f'echo "argv: $*" >>{record}\n'
        'for a in "$@"; do case $a in @*) f=${a#@}; '
        f'echo "mode: $(stat -c %a "$f")" >>{record}; cat "$f" >>{record};; esac; done\n'
        f"mkdir -p {data} && touch {data}/meta.properties\n"
    )
    (bin_dir / "kafka-server-start.sh").write_text("#!/bin/sh\nexit 0\n")
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    for name in ("pem", "ca"):
        (tmp_path / name).write_text("x")
    env = {
        "PATH": os.environ["PATH"],
        "VIGIL_KAFKA_ADMIN_PASSWORD": password,
        "KAFKA_BIN": str(bin_dir),
        "KAFKA_DATA_DIR": str(data),
        "KAFKA_RUN_DIR": str(run),
        "KAFKA_BROKER_PEM": str(tmp_path / "pem"),
        "KAFKA_CA": str(tmp_path / "ca"),
        "KAFKA_CLUSTER_ID": "AbCdEfGhIjKlMnOpQrStUw",
    }
    got = subprocess.run(["sh", str(DEPLOY)], env=env, capture_output=True, text=True, check=False, timeout=30)
    assert got.returncode == 0, got.stderr
    argv, mode, *lines = record.read_text().splitlines()
    assert argv.startswith("argv: format --cluster-id=AbCdEfGhIjKlMnOpQrStUw") and password not in argv
    assert mode == "mode: 600"
    assert lines == ["--add-scram", f"SCRAM-SHA-512=[name=vigil-broker,password={password}]"]  # argparse4j: one a line
    assert list(run.glob("*.args")) == [] and (data / ".vigil-scram").exists()
