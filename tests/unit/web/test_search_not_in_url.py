"""The ward page keeps the patient search out of the URL (a URL goes on into Referer headers, proxy logs
and the history; docs/dashboard.md: no patient identifier in a URL), and its ward picker shows the wards
of the cards and the URL's ward. ``app.js`` runs under Node with stand-ins for the few browser objects it
touches (page_scripts.py); tests/browser checks it in a real browser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from page_scripts import needs_node, run_scenario

# The ward page with a URL of `search`, `user` signed in and `stored` in sessionStorage; types a search,
# changes the sort; the URLs written, what sessionStorage holds and the search box's value after loading.
HARNESS = r"""
const [search, user, stored] = args;
const page = pages.load({ html: "index.html", scripts: ["common.js", "app.js"], search, storage: JSON.parse(stored),
                          answer: () => ({ body: pages.wardState([], { user }) }) });
await page.start();
const restored = page.el("search").value;
page.el("search").listeners.input({ target: { value: "p0012" } });
page.el("sort").listeners.change({ target: { value: "news2" } });
return { urls: page.seen.urls, restored, storage: [...page.storage] };
"""


def run_page(tmp_path: Path, search: str = "", user: str = "ann", stored: list[list[str]] | None = None) -> dict:
    return run_scenario(tmp_path, HARNESS, search, user, json.dumps(stored or []))


pytestmark = needs_node


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


# The ward picker after the cards' wards changed, from a URL of `args[0]`
WARDS = r"""
const row = (id, ward) => ({ row_id: id, label: id, ward, band: "low", sort_key: [0, 0, 0, 0, 0], alerts: [],
                             observed_text: "–", trends: {}, trend_text: {} });
const page = pages.load({ html: "index.html", scripts: ["common.js", "app.js"], search: args[0],
  answer: url => ({ body: pages.wardState([row("p1", "ICU-A"), row("p2", "ICU-B")]) }) });
await page.start();
const options = () => page.el("ward").options.map(o => o.attrs.value + (o.selected ? "*" : ""));
const before = options();
const stream = page.sources[0];
stream.fire("left", { row_id: "p2", transition: { transition_id: "t", ward: "ICU-B" } });  // ICU-B's last patient
stream.fire("row", row("p3", "ICU-C"));  // and a patient of ICU-C
await page.settle();
return { before, after: options(), picked: page.el("ward").value, cards: page.el("patients").children.length };
"""


@pytest.mark.parametrize("search", ["", "?ward=ICU-Z"])
def test_the_ward_picker_follows_the_wards_and_shows_the_links_ward(tmp_path: Path, search: str) -> None:
    """Rebuilt only when the number of wards changed: ICU-C replacing ICU-B never appeared. A link's
    ?ward= of a ward with no card filtered every card out while the picker said "all"."""
    page = run_scenario(tmp_path, WARDS, search)
    linked = ["ICU-Z*"] if search else []
    assert page["after"] == sorted(["", "ICU-A", "ICU-C", *linked])
    assert page["picked"] == ("ICU-Z" if search else "")
