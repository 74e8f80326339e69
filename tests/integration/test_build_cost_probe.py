"""The build-cost probe (bench/build_cost.py) runs on real stays with the served bundle: it builds
and serialises scores and reports a cost. The cost itself is a measurement for
docs/performance.md, not asserted here."""

from __future__ import annotations

import pytest

from vigil.bench.build_cost import main

pytestmark = pytest.mark.integration


def test_the_probe_builds_real_scores() -> None:
    result = main(n_stays=3, rounds=1)
    assert result["scores"] >= 3 and result["us_per_score"] > 0 and result["mean_json_bytes"] > 500
