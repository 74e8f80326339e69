"""The ward page keeps the patient search out of the URL (a URL goes on into Referer headers, proxy logs
and the history; docs/dashboard.md: no patient identifier in a URL). ``app.js`` is run under Node with
stand-ins for the few browser objects it touches; tests/browser checks it in a real browser."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

APP_JS = Path(__file__).parents[3] / "agents" / "web" / "static" / "app.js"
NODE = shutil.which("node")

# Loads app.js with a stand-in DOM, history and sessionStorage; types a search, changes the sort; prints
# the URLs written, what sessionStorage holds and the search box's value after the page loaded.
HARNESS = r"""
const vm = require("vm"), fs = require("fs");
const [file, search, user, stored] = process.argv.slice(2);
const elements = {}, docListeners = {}, urls = [], storage = new Map(JSON.parse(stored));
const element = id => elements[id] ??= { id, value: "", checked: false, textContent: "", className: "",
  options: [], listeners: {}, addEventListener(type, f) { this.listeners[type] = f; },
  replaceChildren() {}, append() {} };
const context = {
  document: { getElementById: element, addEventListener: (type, f) => { docListeners[type] = f; } },
  location: { search, pathname: "/", href: "/" + search },
  history: { replaceState: (s, t, url) => urls.push(String(url)) },
  sessionStorage: { getItem: k => storage.has(k) ? storage.get(k) : null, setItem: (k, v) => storage.set(k, String(v)),
                    removeItem: k => storage.delete(k) },
  Vigil: { el: () => ({ append() {} }), shared: {}, patch() {}, listen() {}, signOut() {}, renderRow() {},
           setServerNow() {}, RERENDER_MS: 30000 },
  requestAnimationFrame: () => 0, setInterval: () => 0,
  EventSource: class { addEventListener() {} },
  fetch: async () => ({ status: 200, json: async () => ({ csrf: "c", may_acknowledge: true, user, role: "clinician",
                                                         zone: "UTC", patients: [], recent: [] }) }),
  URLSearchParams, JSON, Map, Set, Date, setTimeout, console,
};
vm.createContext(context);
vm.runInContext(fs.readFileSync(file, "utf8"), context);
(async () => {
  docListeners.DOMContentLoaded();
  await new Promise(resolve => setTimeout(resolve, 20));
  const restored = element("search").value;
  element("search").listeners.input({ target: { value: "p0012" } });
  element("sort").listeners.change({ target: { value: "news2" } });
  console.log(JSON.stringify({ urls, restored, storage: [...storage] }));
})();
"""


def run_page(tmp_path: Path, search: str = "", user: str = "ann", stored: list[list[str]] | None = None) -> dict:
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS)
    out = subprocess.run(
        [NODE or "node", str(harness), str(APP_JS), search, user, json.dumps(stored or [])],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node to run app.js")


def test_the_search_stays_out_of_the_url_and_survives_a_reload(tmp_path: Path) -> None:
    page = run_page(tmp_path)
    assert page["urls"] and all("p0012" not in url and "q=" not in url for url in page["urls"])
    assert "?sort=news2" in page["urls"][-1]  # the rest of the view still lives in the URL
    reloaded = run_page(tmp_path, "?sort=news2", stored=page["storage"])
    assert reloaded["restored"] == "p0012"  # the same user's search, in this tab


def test_another_users_search_and_an_old_links_q_are_dropped(tmp_path: Path) -> None:
    page = run_page(tmp_path)
    other = run_page(tmp_path, user="vic", stored=page["storage"])
    assert other["restored"] == ""
    old_link = run_page(tmp_path, "?q=p0099&unacked=1")
    assert old_link["restored"] == ""
    assert old_link["urls"][0] == "?unacked=1"  # the q= of an old link leaves the address bar at once
