"""Every CLI failure a user can cause ends in one readable line (issue 14): what went wrong and what to
do, exit code != 0, no traceback unless --debug. Run through the real `vigil` console script."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

VIGIL = str(Path(sys.executable).parent / "vigil")
EXAMPLE = Path(__file__).parents[2] / "examples" / "plans" / "sepsis_bundle_complete.json"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """Nothing listens on these ports: the "no stack" cases are real."""
    home = tmp_path_factory.mktemp("cli-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env |= {
        "VIGIL_HOME": str(home),
        "VIGIL_KAFKA__EMBEDDED_PORT": str(free_port()),
        "VIGIL_REDIS__EMBEDDED_PORT": str(free_port()),
        "VIGIL_DATA_DIR": str(home / "no-data"),
        "COLUMNS": "80",  # a narrow terminal must not wrap the one line
    }
    return env


def run(env: dict[str, str], *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VIGIL, *args], env=env | (extra or {}), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def one_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def taken_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield int(s.getsockname()[1])
    s.close()


def test_missing_path_and_empty_folder(env, tmp_path) -> None:
    one_line(run(env, "predict", "--data", "/nonexistent", "--out", str(tmp_path / "o")), "/nonexistent", "--data")
    one_line(run(env, "evaluate", "--data", str(tmp_path)), "no .psv files", "--data DIR")
    one_line(run(env, "plan", "score", str(tmp_path / "none.json")), "cannot read", "none.json")
    one_line(run(env, "data", "sample", "--from", str(tmp_path / "nowhere")), "--from DIR")
    one_line(run(env, "replay", "--data", "/nonexistent"), "/nonexistent", "--data")


def test_options_out_of_range_and_an_output_over_the_input(env, tmp_path) -> None:
    for args in (
        ("demo", "--patients", "0"),
        ("demo", "--speed", "-1"),
        ("demo", "--duration", "-3"),
        ("demo", "--bad", "-1"),
        ("demo", "--port", "99999"),
        ("bench", "--rate", "-5"),
        ("serve", "--port", "0"),
        ("alerts", "tail", "--limit", "0"),
        ("data", "sample", "--from", str(tmp_path), "--n", "0"),
    ):
        one_line(run(env, *args), f"Invalid value for '{args[-2]}'")
    stays = tmp_path / "stays"
    stays.mkdir()
    stay = stays / "p1.psv"
    stay.write_text((Path(__file__).parents[2] / "data" / "physionet2019-sample" / "p000058.psv").read_text())
    before = stay.read_text()
    one_line(run(env, "predict", "--data", str(stays), "--out", str(stays)), "would overwrite the stays")
    assert stay.read_text() == before


def test_stays_and_predictions_that_do_not_match(env, tmp_path) -> None:
    """`vigil evaluate` needs labelled stays and `vigil predict`'s files for the same stays."""
    header = "HR|O2Sat|Temp|SBP|MAP|DBP|Resp|EtCO2|BaseExcess|HCO3|FiO2|pH|PaCO2|SaO2|AST|BUN|Alkalinephos|Calcium"
    header += "|Chloride|Creatinine|Bilirubin_direct|Glucose|Lactate|Magnesium|Phosphate|Potassium|Bilirubin_total"
    header += "|TroponinI|Hct|Hgb|PTT|WBC|Fibrinogen|Platelets|Age|Gender|Unit1|Unit2|HospAdmTime|ICULOS"
    row = "|".join(["80"] * 34 + ["60", "1", "1", "0", "-1", "1"])
    unlabelled, labelled, pred = (tmp_path / d for d in ("unlabelled", "labelled", "pred"))
    for d in (unlabelled, labelled, pred):
        d.mkdir()
    (unlabelled / "p1.psv").write_text(f"{header}\n{row}\n")
    one_line(run(env, "evaluate", "--data", str(unlabelled)), "p1.psv: no SepsisLabel column")
    (labelled / "p1.psv").write_text(f"{header}|SepsisLabel\n{row}|0\n{row}|0\n")
    (pred / "p1.psv").write_text("PredictedProbability|PredictedLabel\n0.1|0\n")
    one_line(run(env, "evaluate", "--data", str(labelled), "--pred", str(pred)), "1 predictions for 2 hours")
    (pred / "p1.psv").write_text("probability\n0.1\n0.2\n")
    one_line(run(env, "evaluate", "--data", str(labelled), "--pred", str(pred)), "not a prediction file's header")
    (pred / "p1.psv").write_text("PredictedProbability|PredictedLabel\n0.1|0\nhigh|1\n")
    one_line(run(env, "evaluate", "--data", str(labelled), "--pred", str(pred)), "line 3: 'high' is not a number")


def test_no_stack(env) -> None:
    one_line(run(env, "worker"), "no Kafka broker answers", "vigil stack up")
    one_line(run(env, "alerts", "ls"), "no Redis answers", "vigil stack up")
    one_line(run(env, "alerts", "ack", "1a2b3c4d", "--by", "ann"), "no Redis answers")
    one_line(run(env, "alerts", "tail", "--duration", "1"), "no Kafka broker answers")
    one_line(run(env, "deadletters", "ls"), "no Kafka broker answers", "vigil stack up")
    one_line(run(env, "mllp", "--port", "0"), "no Kafka broker answers", "vigil stack up")
    one_line(run(env, "deadletters", "replay", "--reason", "internal"), "no Kafka broker answers")


def test_deadletter_options(env) -> None:
    """Refused before any broker is asked: a --since that is neither a time nor an age, a replay of
    duplicates (their events were scored already), MLLP TLS files that cannot be used."""
    one_line(run(env, "deadletters", "ls", "--since", "yesterday"), "--since takes a time", "6h")
    one_line(run(env, "deadletters", "replay", "--reason", "duplicate"), "duplicates are not sent again")
    one_line(run(env, "deadletters", "replay", "--reason", "stay_ended"), "stay_ended letters are not sent again")
    one_line(run(env, "mllp", "--tls-cert", "/nonexistent/cert.pem"), "cannot use the certificate")
    one_line(run(env, "mllp", "--tls-client-ca", "/nonexistent/ca.pem"), "need VIGIL_MLLP__TLS_CERT")


def test_taken_port_fails_before_announcing_the_url(env, taken_port) -> None:
    result = run(env, "serve", "--port", str(taken_port))
    one_line(result, f"127.0.0.1:{taken_port} is already in use", "--port")
    assert "dashboard on" not in result.stdout


def test_bad_file_format(env, tmp_path) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text("{not json")
    one_line(run(env, "plan", "score", str(bad)), "not a valid treatment plan")
    result = run(env, "plan", "score", str(bad), "--json")
    one_line(result)
    assert json.loads(result.stdout.splitlines()[-1])["ok"] is False
    stays = tmp_path / "stays"
    stays.mkdir()
    (stays / "p1.psv").write_text("garbage|x\n1|2\n")  # not the challenge's columns
    one_line(run(env, "predict", "--data", str(stays), "--out", str(tmp_path / "out")), "p1.psv: no column HR")
    one_line(run(env, "bundle", "check", "--data", str(stays)), "p1.psv: no column HR")
    garbage = tmp_path / "obs.json"
    garbage.write_text("garbage")
    result = run(env, "convert", "--from", "fhir", str(garbage))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: nothing in")


def test_bad_option_values_and_settings(env) -> None:
    one_line(run(env, "alerts", "tail", "--min-band", "severe"), "--min-band must be one of")
    one_line(run(env, "convert", "--from", "xml", str(EXAMPLE)), "--from", "vigil convert --help")
    one_line(run(env, "users", "add", "x", "--role", "admin", extra={"VIGIL_NEW_PASSWORD": "long-enough"}), "role")
    one_line(run(env, "worker", "--agents", "ingest,pager"), "unknown agent module 'pager'")
    one_line(run(env, "data", "fetch", "--sets", "C"), "--sets")
    one_line(run(env, "bench", "--workers", "two"), "--workers takes a count or a list")
    one_line(run(env, "nosuch"), "No such command", "vigil --help")
    one_line(run(env, "predict", "--out", "x"), "Missing option '--data'")
    one_line(run(env, "plan", "score", str(EXAMPLE), extra={"VIGIL_WARD_TIMEZONE": "Mars/Olympus"}), "time zone")
    one_line(run(env, "plan", "score", str(EXAMPLE), extra={"VIGIL_WEB_PORT": "eighty"}), "VIGIL_WEB_PORT")
    # numbers a worker cannot run with are refused where they are read, each naming its variable
    for name, value in {
        "VIGIL_BATCH__MAX_BATCH_SIZE": "-3",
        "VIGIL_BATCH__EXPLAIN": "shap",
        "VIGIL_ALERTS__EXIT_RATIO": "1.5",
        "VIGIL_KAFKA__PARTITIONS": "0",
        "VIGIL_DRIFT__WINDOW_HOURS": "0",
        "VIGIL_INGEST__MONITORED_UNITS": "MICU",  # not a JSON list
    }.items():
        one_line(run(env, "worker", extra={name: value}), name)
    both = {"VIGIL_INGEST__MONITORED_UNITS": '["MICU"]', "VIGIL_INGEST__AWAY_UNITS": '["or", "micu"]'}
    one_line(run(env, "worker", extra=both), "MICU in both MONITORED_UNITS and AWAY_UNITS")


def test_a_site_threshold_the_bundle_cannot_serve(env, tmp_path) -> None:
    data = tmp_path / "psv"
    data.mkdir()
    (data / "p1.psv").write_text("HR|Age|Gender|ICULOS\n80|60|1|1\n")
    out = str(tmp_path / "out")
    one_line(run(env, "predict", "--data", str(data), "--out", out, "--site-prevalence", "0.5"), "outside", "0.057")
    one_line(run(env, "evaluate", "--data", str(data), "--shift", "vitals=2"), "--shift", "vital-sign chartings kept")
    one_line(run(env, "evaluate", "--data", str(data), "--shift", "bp=0.5"), "unknown shift", "vitals=")
    one_line(run(env, "evaluate", "--data", str(data), "--shift", "labs=every0h"), "--shift", "every1h")
    one_line(run(env, "evaluate", "--data", str(data), "--shift", "panels=every24h"), "--shift", "share of stays")
    one_line(run(env, "predict", "--data", str(data), "--out", out, "--max-alert-share", "0.0001"), "ceiling")
    one_line(run(env, "predict", "--data", str(data), "--out", out, "--site-prevalence", "5.7"), "--site-prevalence")
    one_line(
        run(env, "predict", "--data", str(data), "--out", out, "--site-mean-risk", "0.03"), "needs the site's sepsis"
    )
    # a mean risk that reads the table far outside it (not the model's mean: a share of hours?)
    one_line(
        run(env, "predict", "--data", str(data), "--out", out, "--site-prevalence", "0.05", "--site-mean-risk", "0.6"),
        "outside it",
        "mean_risk",
    )
    # the worker refuses before it connects to anything
    one_line(run(env, "worker", extra={"VIGIL_SITE__SEPSIS_PREVALENCE": "0.45"}), "outside the bundle's table")
    one_line(run(env, "worker", extra={"VIGIL_SITE__MEAN_RISK": "0.03"}), "needs the site's sepsis prevalence")
    one_line(
        run(env, "predict", "--data", str(data), "--out", out, extra={"VIGIL_SITE__SEPSIS_PREVALENCE": "5.7"}), "SITE"
    )


def test_a_bundle_folder_without_a_bundle(env, tmp_path) -> None:
    """VIGIL_BUNDLE_DIR names the bundle to serve: a folder without one stops the worker (not rule
    scores in its place) and `vigil predict`, before either reads anything else."""
    data = tmp_path / "psv"
    data.mkdir()
    (data / "p1.psv").write_text("HR|Age|Gender|ICULOS\n80|60|1|1\n")
    empty = tmp_path / "no-bundle"
    empty.mkdir()
    folder = {"VIGIL_BUNDLE_DIR": str(empty)}
    one_line(run(env, "worker", extra=folder), "VIGIL_BUNDLE_DIR", "holds no stepping bundle", "unset it")
    one_line(run(env, "predict", "--data", str(data), "--out", str(tmp_path / "out"), extra=folder), "VIGIL_BUNDLE_DIR")
    # half-copied: the manifest pins a file the folder lacks
    (empty / "manifest.json").write_text('{"format": "stepping-v2", "files": {"trees.onnx": {"sha256": "00"}}}')
    one_line(run(env, "worker", extra=folder), "VIGIL_BUNDLE_DIR", "damaged", "trees.onnx: missing")
    # whole and at its hashes, but trained on inputs this version does not compute: the worker opens
    # it before it starts, and says so in one line
    import shutil

    from vigil.models.bundle import STEPPING_DIR

    other = tmp_path / "other-version"
    shutil.copytree(STEPPING_DIR, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["tree_features"] = manifest["tree_features"][:-1]
    (other / "manifest.json").write_text(json.dumps(manifest))
    one_line(run(env, "worker", extra={"VIGIL_BUNDLE_DIR": str(other)}), "other features", "Vigil version that trained")
    one_line(run(env, "bundle", "check", str(other)), "other features")


def test_offline_fetch_says_where_to_put_the_data(env, tmp_path) -> None:
    line = one_line(run(env, "data", "fetch", "--base-url", (tmp_path / "mirror").as_uri()), "cannot download")
    assert "training_setA" in line and "VIGIL_DATA_DIR" in line


def test_debug_shows_the_traceback(env) -> None:
    result = run(env, "--debug", "predict", "--data", "/nonexistent", "--out", "x")
    assert result.returncode != 0 and "Traceback" in result.stderr and "UserError" in result.stderr


def test_a_file_this_user_may_not_read_names_the_user() -> None:
    """A users file written 0600 on the host and mounted into the image, whose user (10001) is another."""
    from vigil.cli.errors import EXIT_USER, explain

    message, code = explain(PermissionError(13, "Permission denied", "/etc/vigil/users/users.json"))
    assert code == EXIT_USER
    assert message == (
        f"/etc/vigil/users/users.json: Permission denied for uid {os.getuid()}, "
        "this process's user: give that user access"
    )


def test_a_rename_names_its_destination_not_the_tmp_beside_it() -> None:
    """A file written to ``<name>.tmp`` and renamed over ``<name>``: the system's error carries both
    paths, and the user gave the second."""
    from vigil.cli.errors import explain

    tmp, dest = "/srv/deploy/tls/ca.pem.tmp", "/srv/deploy/tls/ca.pem"
    line, _ = explain(IsADirectoryError(21, "Is a directory", tmp, None, dest), ["stack", "compose-tls"])
    assert (
        line
        == f"{dest} is a folder, where a file is wanted: remove that folder, or check the paths on the command line"
    )
    line, _ = explain(PermissionError(13, "Permission denied", tmp, None, dest))
    assert line.startswith(f"{dest}: Permission denied for uid")


def test_a_bad_setting_does_not_send_the_user_to_a_dotenv_nothing_reads(env) -> None:
    """Vigil reads its settings from the environment only: "check the environment or .env" sent an
    operator to edit a file that changes nothing."""
    for name, value in {"VIGIL_BATCH__MAX_BATCH_SIZE": "-3", "VIGIL_INGEST__MONITORED_UNITS": "MICU"}.items():
        line = one_line(run(env, "worker", extra={name: value}), name, "check the environment")
        assert "Vigil reads no .env file" in line and "or .env" not in line


def test_kafka_errors_are_one_line_that_names_the_sign_in_settings() -> None:
    """kafka-python 3 retries a refused SCRAM password or an unknown CA until its bootstrap times out:
    the line says where to look (not "unexpected KafkaTimeoutError")."""
    from kafka.errors import KafkaTimeoutError, SaslAuthenticationFailedError

    from vigil.cli.errors import EXIT_USER, explain

    line, code = explain(KafkaTimeoutError("Unable to bootstrap from localhost:9092"))
    assert line.startswith("Kafka is not reachable, or did not let this client in (KafkaTimeoutError)")
    assert "VIGIL_KAFKA__SASL_USERNAME" in line and "__SSL_CAFILE" in line and code != 0
    line, code = explain(SaslAuthenticationFailedError("invalid credentials"))
    assert line.startswith("Kafka refused this client's sign-in") and code == EXIT_USER


def test_failures_a_review_found_reported_as_unexpected(env, tmp_path) -> None:
    """Each of these ended in "unexpected <Exception>" with exit 1 (a bug's line), not what to do."""
    sample = Path(__file__).parents[2] / "data" / "physionet2019-sample"
    stay = sample / "p000058.psv"
    header_only = tmp_path / "header-only"
    header_only.mkdir()
    (header_only / "p1.psv").write_text(stay.read_text().splitlines()[0] + "\n")
    one_line(
        run(env, "predict", "--data", str(header_only), "--out", str(tmp_path / "o")), "p1.psv: a header and no hour"
    )
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    one_line(run(env, "predict", "--data", str(sample), "--out", str(a_file)), "a file is there, not a folder")
    one_line(run(env, "schemas", "export", str(a_file)), "a file is there, not a folder")
    one_line(run(env, "data", "sample", "--from", str(sample), "--out", str(sample)), "is the --from folder")
    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / "p1.psv").write_bytes(b"\xff\xfe\x00garbage")
    one_line(run(env, "data", "sample", "--from", str(binary), "--out", str(tmp_path / "s")), "not a text file")
    one_line(run(env, "data", "fetch", "--base-url", "notaurl"), "not a URL to download from")
    one_line(run(env, "evaluate", "--data", str(sample), "--shift", "labs=0.5", "--shift-seed", "-1"), "--shift-seed")
    pred = tmp_path / "pred"
    pred.mkdir()
    hours = len(stay.read_text().splitlines()) - 1
    (pred / stay.name).write_text("PredictedProbability|PredictedLabel\n" + "nan|0\n" * hours)
    one_line(run(env, "evaluate", "--data", str(sample), "--pred", str(pred)), "between 0 and 1")
    bad_bundle = tmp_path / "bundle"
    bad_bundle.mkdir()
    (bad_bundle / "manifest.json").write_text("{not json")
    one_line(run(env, "predict", "--data", str(sample), "--out", str(tmp_path / "o2"), "--artifacts", str(bad_bundle)))
    users = tmp_path / "users.json"
    for text, said in (("{not json", "is not a users file"), ("[1, 2]", "is not a users file")):
        users.write_text(text)
        one_line(run(env, "users", "add", "ann", "--password", "a-long-password", "--users-file", str(users)), said)
    users.unlink()
    one_line(run(env, "users", "add", "a b", "--password", "a-long-password", "--users-file", str(users)), "user name")
    one_line(run(env, "alerts", "ls", "--redis", "notaurl"), "is not a Redis URL", "--redis")
    one_line(run(env, "workers", extra={"VIGIL_REDIS__URL": "redis://:secret@127.0.0.1:99999/0"}), "not a Redis URL")
    assert "secret" not in run(env, "workers", extra={"VIGIL_REDIS__URL": "redis://:secret@h:99999/0"}).stderr
    one_line(run(env, "deadletters", "ls", "--since", "99999999999d"), "past the calendar")


def test_an_unreachable_outside_cluster_is_one_line_before_any_client_retries(env, tmp_path) -> None:
    outside = {
        "VIGIL_KAFKA__BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "VIGIL_REDIS__URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    sample = str(Path(__file__).parents[2] / "data" / "physionet2019-sample")
    for args in (("replay", "--data", sample), ("demo", "--no-serve", "--patients", "2"), ("stack", "up")):
        one_line(run(env, *args, extra=outside), "no Kafka broker answers", "VIGIL_KAFKA__BOOTSTRAP")


def test_debug_anywhere_on_the_line_shows_the_commands_own_traceback(env) -> None:
    result = run(env, "predict", "--data", "/nonexistent", "--out", "x", "--debug")
    assert result.returncode != 0 and "UserError" in result.stderr and "NoSuchOption" not in result.stderr


def test_a_group_without_its_command_says_so(env) -> None:
    line = one_line(run(env, "stack"), "no command given")
    assert "vigil stack COMMAND" in line


def test_stack_up_options_are_checked_as_the_settings_are(env) -> None:  # type: ignore[no-untyped-def]
    """``--brokers 1`` beside VIGIL_KAFKA__MIN_INSYNC_REPLICAS=2 (valid for 3 brokers) made topics that
    take no write: the option skipped the settings' check. One line, nothing started."""
    result = run(
        env,
        "stack",
        "up",
        "--brokers",
        "1",
        extra={"VIGIL_KAFKA__BROKERS": "3", "VIGIL_KAFKA__MIN_INSYNC_REPLICAS": "2"},
    )
    one_line(result, "with these options", "no write could ever be acknowledged")


def test_a_path_the_system_refuses_names_the_option_that_gave_it() -> None:
    """The system's "No such file or directory" / "Is a directory" said what, not what to change:
    the line names the option (or argument) whose path leads there."""
    from vigil.cli.errors import EXIT_USER, explain

    argv = ["predict", "--data", "stays", "--out", "/data/x/y", "--json"]
    line, code = explain(FileNotFoundError(2, "No such file or directory", "/data/x"), argv)
    assert code == EXIT_USER
    assert line == (
        "/data/x does not exist, and the path given is under it: create that folder, or change --out /data/x/y"
    )
    line, _ = explain(FileNotFoundError(2, "No such file or directory", "/in.json"), ["convert", "--json", "/in.json"])
    assert line == "/in.json: no such file or folder: change /in.json"  # an argument, not --json's value
    line, _ = explain(IsADirectoryError(21, "Is a directory", "."), ["plan", "schema", "--out=."])
    assert line == ". is a folder, where a file is wanted: change --out . to a file's path"
    line, _ = explain(NotADirectoryError(20, "Not a directory", "/f/sub"), ["schemas", "export", "/f/sub"])
    assert line == "/f/sub: a part of this path is a file, where a folder is wanted: change /f/sub"
    line, _ = explain(FileNotFoundError(2, "No such file or directory", "/elsewhere"), argv)
    assert line.endswith("check the paths on the command line")


def test_path_mistakes_a_review_found(env, tmp_path) -> None:
    sample = str(Path(__file__).parents[2] / "data" / "physionet2019-sample")
    line = one_line(run(env, "evaluate", "--data", sample, "--pred", str(tmp_path / "nopred")), "--pred DIR")
    assert "vigil predict" in line and "data fetch" not in line  # predictions come from predict
    one_line(run(env, "data", "sample", "--from", str(tmp_path / "nowhere")), "does not exist", "--from DIR")
    one_line(run(env, "plan", "schema", "--out", str(tmp_path)), "is a folder", "--out")
    one_line(run(env, "plan", "schema", "--out", str(tmp_path / "new" / "sub" / "..")), "is a folder")
    assert not (tmp_path / "new").exists()  # no folder made for a write that cannot happen
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    one_line(run(env, "data", "sample", "--from", sample, "--out", str(a_file / "sub")), f"change --out {a_file}")
    line = one_line(run(env, "data", "fetch", "--base-url", (tmp_path / "mirror").as_uri()), "cannot download")
    assert str(Path(env["VIGIL_HOME"]) / "data" / "training_setA") in line and "~/.cache" not in line
