"""Runs a scenario of the dashboard's scripts under Node (tests/unit/web/pages.js: the stand-in DOM,
EventSource, fetch and clock). A scenario is the body of an async function given ``pages`` (load,
wardState), ``args`` (the strings passed after it) and returning what the test asserts on, as JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

STATIC = Path(__file__).parents[3] / "agents" / "web" / "static"
PAGES_JS = Path(__file__).with_name("pages.js")
NODE = shutil.which("node")

needs_node = pytest.mark.skipif(NODE is None, reason="needs Node to run the page's scripts")


def run_scenario(tmp_path: Path, scenario: str, *args: str) -> dict:
    script = tmp_path / "scenario.js"
    script.write_text(
        f"const pages = require({json.dumps(str(PAGES_JS))});\n"
        "const args = process.argv.slice(2);\n"
        f"(async () => {{\n{scenario}\n}})().then(\n"
        "  out => console.log(JSON.stringify(out)),\n"
        "  err => { console.error(err && err.stack || err); process.exit(1); });\n"
    )
    done = subprocess.run([NODE or "node", str(script), *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
