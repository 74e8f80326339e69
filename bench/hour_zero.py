"""Hour 0 as training counts it against a hospital feed's (docs/models.md, "Hour 0: training's and a
hospital feed's"): training and ``vigil predict`` count a stay's hours from its .psv's first row, often
empty (the ICU admission hour); the stream counts from the first measurement, with the age and sex an
HL7v2 or FHIR feed sends beside it. For the stays whose first row is empty, the bundle scores each
hour twice, at the same clock hours: as ``vigil predict`` reads the file, and as the stream reads the
feed (the empty first row gone, so every later hour one lower), with and without the age and sex.

    python -m vigil.bench.hour_zero [--data DIR] [--files 400] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from vigil.models.bundle import load_stepping_bundle
from vigil.models.offline import read_stay
from vigil.models.stream_step import served_bundle_dir
from vigil.schemas.errors import UserError

DEFAULT_DATA = Path.home() / ".cache/vigil/data/training_setA"


def compare(data: Path, n_files: int) -> dict[str, object]:
    """Stream-minus-predict of the combined risk over the stays with an empty first row among the
    first ``n_files`` files, and the alert-level hours of each."""
    bundle = load_stepping_bundle(served_bundle_dir(), prefer_gpu=False)
    files = sorted(data.glob("*.psv"))[:n_files]
    stays = [s for s in (read_stay(f) for f in files) if np.isnan(s.matrix[0]).all()]
    if not stays:
        first = f"the first {len(files)} files of {data}"
        raise UserError(f"no stay among {first} has an empty first row: nothing to compare (give more --files)")
    threshold = bundle.combined_threshold
    offline = bundle.stay_risks([s.matrix for s in stays], [s.static for s in stays])
    out: dict[str, object] = {"files": len(files), "stays": len(stays), "threshold": threshold}
    for label, statics in (("feed", [s.static for s in stays]), ("feed_without_age_sex", [{} for _ in stays])):
        stream = bundle.stay_risks([s.matrix[1:] for s in stays], statics)
        diff = np.concatenate([x.combined - o.combined[1:] for x, o in zip(stream, offline, strict=True)])
        predict_alerts = np.concatenate([o.combined[1:] >= threshold for o in offline])
        stream_alerts = np.concatenate([x.combined >= threshold for x in stream])
        out[label] = {
            "hours": len(diff),
            "mean_difference": round(float(diff.mean()), 4),
            "p95_abs_difference": round(float(np.percentile(np.abs(diff), 95)), 4),
            "max_abs_difference": round(float(np.abs(diff).max()), 4),
            "alert_hours_predict": int(predict_alerts.sum()),
            "alert_hours_stream": int(stream_alerts.sum()),
            "hours_disagreeing": int((predict_alerts != stream_alerts).sum()),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vigil.bench.hour_zero", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="set A's .psv files (vigil data where)")
    ap.add_argument("--files", type=int, default=400, help="the first N files, sorted by name")
    ap.add_argument("--json", action="store_true", help="the summary as JSON on the last line")
    args = ap.parse_args(argv)
    try:
        if not any(args.data.glob("*.psv")):
            raise UserError(f"no .psv files in {args.data}: give --data (vigil data where shows the cache)")
        result = {"ok": True, **compare(args.data, args.files)}
    except UserError as exc:  # a file that is not a challenge .psv (PsvFormatError), no stay to compare
        print(f"error: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}))
        return 2
    for label in ("feed", "feed_without_age_sex"):
        r = result[label]
        assert isinstance(r, dict)
        print(
            f"{label}: {result['stays']} stays, {r['hours']} hours; alert hours predict {r['alert_hours_predict']}"
            f" stream {r['alert_hours_stream']}, {r['hours_disagreeing']} disagree; stream - predict mean"
            f" {r['mean_difference']:+.4f}, p95 |d| {r['p95_abs_difference']:.4f}, max {r['max_abs_difference']:.4f}"
        )
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
