"""Known vulnerabilities of the versions every install uses (constraints.txt), from PyPI's advisory data.

    python deploy/audit.py [--json] [--allow-partial]       # make audit

PyPI's JSON API lists, per release, the advisories (OSV: PYSEC, GHSA) that affect it. For each pin the
release's own endpoint (``/pypi/<name>/<version>/json``) is asked first. Where it is not served (the
registry mirror of Vigil's build machine serves only ``/pypi/<name>/json``), the project's endpoint
answers for the newest release alone: a pin at the newest release is audited with it, and an older pin
is reported as not audited, never as clean.

Exit status: 0 every pin audited and none affected; 1 a known vulnerability affects a pin; 2 the file or
the index cannot be read; 3 no vulnerability found but some pins were not audited (``--allow-partial``
turns this into 0). Only ``packaging`` and the standard library are needed."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

sys.path.insert(0, str(Path(__file__).parent))
from lock import CONSTRAINTS, parse  # noqa: E402  (deploy/ is scripts, not a package)

INDEX = "https://pypi.org/pypi"
TIMEOUT_S = 30.0

Fetch = Callable[[str], dict[str, Any] | None]  # a URL's JSON, or None where the index has no such page


class IndexUnreachable(Exception):
    """The index did not answer (network, TLS, a server error): nothing it says can be trusted."""


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: list[str]
    fixed_in: list[str]
    link: str
    summary: str


@dataclass(frozen=True)
class PinAudit:
    name: str
    version: str
    source: str  # "release" (the release's own page), "project" (the newest release's) or "" (not audited)
    advisories: list[Advisory] = field(default_factory=list)
    reason: str = ""  # why not audited

    @property
    def audited(self) -> bool:
        return bool(self.source)


def fetch_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 (an https URL we build)
            return dict(json.load(response))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise IndexUnreachable(f"{url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        raise IndexUnreachable(f"{url}: {exc}") from exc


def advisories(page: dict[str, Any]) -> list[Advisory]:
    """The advisories a PyPI JSON page lists for its release, withdrawn ones left out."""
    found = []
    for item in page.get("vulnerabilities") or []:
        if item.get("withdrawn"):
            continue
        found.append(
            Advisory(
                id=str(item.get("id", "?")),
                aliases=[str(a) for a in item.get("aliases") or []],
                fixed_in=[str(v) for v in item.get("fixed_in") or []],
                link=str(item.get("link") or ""),
                summary=" ".join(str(item.get("summary") or item.get("details") or "").split())[:160],
            )
        )
    return found


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def audit_pin(name: str, version: str, fetch: Fetch, index: str = INDEX) -> PinAudit:
    release = fetch(f"{index}/{name}/{version}/json")
    if release is not None:
        return PinAudit(name, version, source="release", advisories=advisories(release))
    project = fetch(f"{index}/{name}/json")
    if project is None:
        return PinAudit(name, version, source="", reason="the index has no such project")
    newest = str(project.get("info", {}).get("version", ""))
    if _same_version(newest, version):
        return PinAudit(name, version, source="project", advisories=advisories(project))
    reason = f"the index gives advisories only for the newest release, {newest}"
    return PinAudit(name, version, source="", reason=reason)


def audit(pins: dict[str, str], fetch: Fetch, index: str = INDEX, workers: int = 8) -> list[PinAudit]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda item: audit_pin(item[0], item[1], fetch, index), sorted(pins.items())))


def summary(results: list[PinAudit], index: str) -> dict[str, Any]:
    vulnerable = [r for r in results if r.advisories]
    missing = [r for r in results if not r.audited]
    return {
        "index": index,
        "pins": len(results),
        "audited": sum(r.audited for r in results),
        "audited_by_release_page": sum(r.source == "release" for r in results),
        "vulnerable": [
            {"name": r.name, "version": r.version, "advisories": [asdict(a) for a in r.advisories]} for r in vulnerable
        ],
        "not_audited": [{"name": r.name, "version": r.version, "reason": r.reason} for r in missing],
    }


def exit_status(report: dict[str, Any], allow_partial: bool) -> int:
    if report["vulnerable"]:
        return 1
    if report["not_audited"] and not allow_partial:
        return 3
    return 0


def describe(report: dict[str, Any], status: int) -> list[str]:
    lines = []
    for pin in report["vulnerable"]:
        for adv in pin["advisories"]:
            fixed = ", ".join(adv["fixed_in"]) or "no fixed release"
            aliases = f" ({', '.join(adv['aliases'])})" if adv["aliases"] else ""
            lines.append(f"{pin['name']} {pin['version']}: {adv['id']}{aliases}, fixed in {fixed}: {adv['summary']}")
    for pin in report["not_audited"]:
        lines.append(f"{pin['name']} {pin['version']}: not audited: {pin['reason']}")
    counts = f"{report['audited']} of {report['pins']} pins audited"
    if status == 1:
        lines.append(f"{counts}; {len(report['vulnerable'])} with known vulnerabilities: raise their pins (make lock)")
    elif report["not_audited"]:
        tail = "; audit where the index serves each release's page, or --allow-partial" if status else ""
        lines.append(f"{counts}, no known vulnerability in them; {len(report['not_audited'])} not audited{tail}")
    else:
        lines.append(f"{counts}, no known vulnerability")
    return lines


def main(argv: list[str] | None = None, fetch: Fetch = fetch_json) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=CONSTRAINTS, help="the constraints file")
    parser.add_argument("--index", default=INDEX, help="PyPI's JSON API root")
    parser.add_argument("--allow-partial", action="store_true", help="pins not audited do not fail the run")
    parser.add_argument("--json", action="store_true", help="end with a JSON summary line")
    args = parser.parse_args(argv)
    try:
        pins = parse(args.file.read_text())
    except (OSError, ValueError) as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        results = audit(pins, fetch, args.index.rstrip("/"))
    except IndexUnreachable as exc:
        print(f"cannot read the advisory index: {exc}; run where {args.index} is reachable", file=sys.stderr)
        return 2
    report = summary(results, args.index)
    status = exit_status(report, args.allow_partial)
    for line in describe(report, status):
        print(line, file=sys.stderr if status else sys.stdout)
    if args.json:
        print(json.dumps(report | {"ok": status == 0}, sort_keys=True))
    return status


if __name__ == "__main__":
    sys.exit(main())
