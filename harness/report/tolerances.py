"""The gate's tolerances, set from measurement: how far each metric moved under other CPU kernels.

A kernel-spread study (benchmarks/bench_kernel_spread.py) runs the ci profile under several
kernel choices on one machine — each a stand-in for a CPU that lacks the instructions above the
cap — and may carry figures measured on other CPUs (`platforms`). For each method and metric
name, the largest |figure − reference| over every choice, platform and split is the method's
measured platform noise; its tolerance is

    max(FLOOR[metric], SAFETY × that largest deviation), rounded up to 0.01

written to the reference as the glob `dataset/method/*/metric` (the longest glob wins in
harness/report/check.py), with the deviations and the rule under "tolerance_basis". A method
whose figures never moved gets the floor: one expression of ~420 changing its answer moves A@k
by 0.24 points, so A@k's floor is 0.5; mIoU and cIoU move by less than 0.01 per expression and
their floor is 0.25. SAFETY = 2 leaves room for a CPU not measured, as far as a factor can.

The tolerances are never widened to make a failure go away: a wider tolerance must come from a
new measurement (a new study file), and `check --update --tolerances-from` records which.

Gap floors are held under the spread too: a floor above the gap some kernel choice measured
would fail on that CPU, so the floor becomes the lower of `--update`'s rule on the reference's
gap and the same rule on the smallest gap the study saw.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from harness.errors import DataError
from harness.report import gap_floors

SAFETY = 2.0
FLOOR = {"mIoU": 0.25, "cIoU": 0.25, "A@0.3": 0.5, "A@0.5": 0.5, "A@0.7": 0.5}


def load_spread(path: Path) -> dict:
    """The study document, checked: {"metrics": {choice: {key: value}}, "platforms": {...}}."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(path, "no kernel-spread file; make one with `python benchmarks/bench_kernel_spread.py`")
    except json.JSONDecodeError as err:
        raise DataError(path, f"not valid JSON ({err})")
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict) or not doc["metrics"]:
        raise DataError(path, 'expected an object with "metrics": {choice: {metric key: value}}')
    for name, figures in doc["metrics"].items():
        if not isinstance(figures, dict):
            raise DataError(path, f'"metrics.{name}": expected {{metric key: value}}')
    for name, entry in doc.get("platforms", {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
            raise DataError(path, f'"platforms.{name}": expected {{"metrics": {{metric key: value}}}}')
    return doc


def observations(spread: dict) -> dict:
    """{source: {metric key: value}}: every kernel choice and every other-CPU platform."""
    seen = {f"choice:{name}": figures for name, figures in spread["metrics"].items()}
    for name, entry in spread.get("platforms", {}).items():
        seen[f"platform:{name}"] = entry["metrics"]
    return seen


def method_and_metric(key: str) -> tuple[str, str]:
    """`synthref/sag/seed0/val/tau=0.50/mIoU` → (`synthref/sag`, `mIoU`)."""
    parts = key.split("/")
    return "/".join(parts[:2]), parts[-1]


def deviations(reference_metrics: dict, spread: dict) -> dict:
    """{(method, metric): (largest |Δ|, the key and source where it was seen)} over the study."""
    worst = {}
    for source, figures in observations(spread).items():
        for key, expected in reference_metrics.items():
            value = figures.get(key)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            group, delta = method_and_metric(key), abs(float(value) - float(expected))
            if group not in worst or delta > worst[group][0]:
                worst[group] = (delta, key, source)
    return dict(worst)


def tolerance(metric: str, deviation: float) -> float:
    floor = FLOOR.get(metric, max(FLOOR.values()))
    return math.ceil(max(floor, SAFETY * deviation) * 100 - 1e-6) / 100


def calibrate(reference_metrics: dict, spread: dict, source: str) -> tuple[dict, dict]:
    """(tolerances {glob: value}, basis) for a reference from a kernel-spread study."""
    found = deviations(reference_metrics, spread)
    missing = sorted({method_and_metric(k) for k in reference_metrics} - set(found))
    if missing:
        raise DataError(source, "the study measured no figure for "
                        + ", ".join(f"{m}/{n}" for m, n in missing)
                        + "; rerun it with every method of the reference")
    tolerances, measured = {}, {}
    for (method, metric), (delta, key, where) in sorted(found.items()):
        pattern = f"{method}/*/{metric}"
        tolerances[pattern] = tolerance(metric, delta)
        measured[pattern] = {"largest_deviation": round(delta, 4), "at": key, "seen_under": where}
    basis = {
        "rule": f"tolerance = max(floor, {SAFETY:g} x largest |figure - reference| over the study), "
                f"rounded up to 0.01; floors {json.dumps(FLOOR)} (harness/report/tolerances.py)",
        "study": str(source),
        "sources": sorted(observations(spread)),
        "deviations": measured,
    }
    return tolerances, basis


def floors_under_spread(floors: dict, spread: dict, margin: float) -> dict:
    """{method: floor}: each floor no higher than `--update`'s rule on the smallest gap the study
    saw for that method (a floor above a gap some CPU measures would fail on that CPU)."""
    held = {}
    for key, floor in sorted(floors.items()):
        seen = [g[key] for g in spread.get("gaps", {}).values() if g.get(key) is not None]
        lowest = gap_floors.floor_for(min(seen), margin) if seen else floor
        if lowest is not None:
            held[key] = min(float(floor), lowest)
    return held


def recalibrate(doc: dict, spread_path: Path) -> dict:
    """The reference document with tolerances, their basis and its gap floors set from a study."""
    spread = load_spread(spread_path)
    margin = float(doc.get("gap_margin", gap_floors.DEFAULT_GAP_MARGIN))
    out = dict(doc)
    out["tolerances"], out["tolerance_basis"] = calibrate(doc["metrics"], spread, spread_path)
    out["gap_floors"] = floors_under_spread(doc.get("gap_floors", {}), spread, margin)
    return out
