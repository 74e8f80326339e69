"""constraints.txt: the exact versions of the dependency closure of ``vigil[dev]``, read from the
environment this runs in (``make lock`` runs it in a fresh one that pip has just resolved).

    python deploy/lock.py > constraints.txt     # write (make lock)
    python deploy/lock.py --check               # this environment is what constraints.txt pins

Every install of Vigil reads the file with ``pip install -c constraints.txt``: ``make install`` (so
the tests run these versions), ``make train`` and the Docker image. Only ``packaging`` and the
standard library are needed."""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = "vigil"
EXTRAS = frozenset({"dev"})
CONSTRAINTS = Path(__file__).parents[1] / "constraints.txt"
HEADER = """\
# The versions every install of Vigil uses (make install, make train, the Docker image): the
# dependency closure of vigil[dev], as `make lock` resolved it. To update: `make lock`, `make test`,
# then commit this file. `python deploy/lock.py --check` (a unit test) compares it with the
# environment it runs in.
"""


def closure(root: str = ROOT, extras: frozenset[str] = EXTRAS) -> dict[str, str]:
    """{canonical name: installed version} of every distribution ``root[extras]`` requires, directly
    or through others, under this interpreter's markers (``root`` itself left out)."""
    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        if (key, wanted) in seen:
            continue
        seen.add((key, wanted))
        dist = metadata.distribution(name)  # PackageNotFoundError: the environment lacks a requirement
        found[key] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in wanted or {""}):
                continue
            todo.append((req.name, frozenset(req.extras)))
    found.pop(canonicalize_name(root), None)
    return found


def render(pins: dict[str, str]) -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def parse(text: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise ValueError(f"line {number}: {raw!r} is not NAME==VERSION")
        pins[canonicalize_name(name.strip())] = version.strip()
    return pins


def differences(pinned: dict[str, str], installed: dict[str, str]) -> list[str]:
    """One line per difference between the file's pins and the environment's closure."""
    both = sorted(installed.keys() & pinned.keys())
    lines = [f"{n}: installed {installed[n]}, pinned {pinned[n]}" for n in both if installed[n] != pinned[n]]
    unpinned, unused = sorted(installed.keys() - pinned.keys()), sorted(pinned.keys() - installed.keys())
    lines += [f"{n}: required (installed {installed[n]}) but not pinned" for n in unpinned]
    lines += [f"{n}: pinned {pinned[n]} but nothing requires it" for n in unused]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare the file with this environment")
    parser.add_argument("--file", type=Path, default=CONSTRAINTS, help="the constraints file (--check)")
    args = parser.parse_args(argv)
    installed = closure()
    if not args.check:
        sys.stdout.write(render(installed))
        return 0
    try:
        pinned = parse(args.file.read_text())
    except (OSError, ValueError) as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    found = differences(pinned, installed)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(f"{args.file} is not this environment: run `make lock` (or reinstall: `make install`)", file=sys.stderr)
        return 1
    print(f"{args.file}: {len(pinned)} pins, the environment matches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
