"""deploy/audit.py: the pins of constraints.txt against PyPI's advisory data. A pin is audited from
its release's page, or from the project's page when that release is the newest; anything else is
reported as not audited, never as clean. The index is a real HTTP server on loopback here."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

ADVISORY = {
    "id": "GHSA-aaaa-bbbb-cccc",
    "aliases": ["CVE-2026-0001"],
    "fixed_in": ["2.0.1"],
    "link": "https://osv.dev/vulnerability/GHSA-aaaa-bbbb-cccc",
    "summary": "Header  injection\nin the parser",
    "withdrawn": None,
}
WITHDRAWN = ADVISORY | {"id": "PYSEC-2026-9", "withdrawn": "2026-11-01T00:00:00Z"}


def _audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vigil_audit", ROOT / "deploy" / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


audit = _audit()


def _page(version: str, vulnerabilities: list[dict[str, Any]]) -> dict[str, Any]:
    return {"info": {"version": version}, "vulnerabilities": vulnerabilities}


class Index(ThreadingHTTPServer):
    pages: dict[str, Any]  # path -> JSON body, or an int status


class _Handler(BaseHTTPRequestHandler):
    server: Index

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = self.server.pages.get(self.path, 404)
        if isinstance(body, int):
            self.send_error(body)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def index() -> Iterator[Index]:
    server = Index(("127.0.0.1", 0), _Handler)
    server.pages = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _run(index: Index, tmp_path: Path, pins: str, *flags: str) -> int:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(pins)
    root = f"http://127.0.0.1:{index.server_address[1]}/pypi"
    return int(audit.main(["--file", str(constraints), "--index", root, "--json", *flags]))


def _last_json(out: str) -> dict[str, Any]:
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_a_release_page_advisory_fails_the_audit(
    index: Index, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index.pages = {"/pypi/foo/2.0.0/json": _page("2.1.0", [ADVISORY, WITHDRAWN])}
    assert _run(index, tmp_path, "foo==2.0.0\n") == 1
    captured = capsys.readouterr()
    assert (
        "foo 2.0.0: GHSA-aaaa-bbbb-cccc (CVE-2026-0001), fixed in 2.0.1: Header injection in the parser"
        in captured.err.splitlines()
    )
    assert "PYSEC-2026-9" not in captured.err + captured.out  # withdrawn
    report = _last_json(captured.out)
    assert report["ok"] is False and report["audited_by_release_page"] == 1
    assert [a["id"] for a in report["vulnerable"][0]["advisories"]] == ["GHSA-aaaa-bbbb-cccc"]


def test_the_newest_release_is_audited_from_the_project_page(
    index: Index, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mirror without release pages (this build machine's): the project page answers for the newest."""
    index.pages = {"/pypi/foo/json": _page("1.0.0", []), "/pypi/bar/json": _page("3.0", [ADVISORY])}
    assert _run(index, tmp_path, "foo==1.0\nbar==3.0\n") == 1  # 1.0 is 1.0.0
    report = _last_json(capsys.readouterr().out)
    assert report["audited"] == 2 and report["audited_by_release_page"] == 0
    assert [p["name"] for p in report["vulnerable"]] == ["bar"]


def test_an_older_pin_is_not_audited_not_clean(
    index: Index, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index.pages = {"/pypi/foo/json": _page("1.1.0", []), "/pypi/bar/json": _page("2.0", [])}
    assert _run(index, tmp_path, "foo==1.0.0\nbar==2.0\ngone==0.1\n") == 3
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert "foo 1.0.0: not audited: the index gives advisories only for the newest release, 1.1.0" in err
    assert "gone 0.1: not audited: the index has no such project" in err
    assert err[-1].startswith("1 of 3 pins audited, no known vulnerability in them; 2 not audited; audit where")
    report = _last_json(captured.out)
    assert report["ok"] is False and [p["name"] for p in report["not_audited"]] == ["foo", "gone"]
    assert _run(index, tmp_path, "foo==1.0.0\nbar==2.0\n", "--allow-partial") == 0
    assert _last_json(capsys.readouterr().out)["ok"] is True


def test_every_pin_clean(index: Index, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index.pages = {"/pypi/foo/1.0/json": _page("1.2", []), "/pypi/bar/json": _page("2.0", [WITHDRAWN])}
    assert _run(index, tmp_path, "foo==1.0\nbar==2.0\n") == 0
    captured = capsys.readouterr()
    assert "2 of 2 pins audited, no known vulnerability" in captured.out
    assert _last_json(captured.out) | {"index": ""} == {
        "index": "",
        "pins": 2,
        "audited": 2,
        "audited_by_release_page": 1,
        "vulnerable": [],
        "not_audited": [],
        "ok": True,
    }


def test_an_index_error_is_one_line_not_a_verdict(
    index: Index, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index.pages = {"/pypi/foo/1.0/json": 503}
    assert _run(index, tmp_path, "foo==1.0\n") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("cannot read the advisory index: http://127.0.0.1:") and "HTTP 503" in line


def test_an_unreadable_constraints_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert audit.main(["--file", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt" in capsys.readouterr().err
