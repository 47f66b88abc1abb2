"""The CI regression check: every metric in the store against a reference file, within tolerance.

The reference (configs/reference/ci.json) is JSON:

    {
      "about": "free text",
      "tolerances": {"mIoU": 1.0, "*/sag@T1/*": 2.0},
      "metrics": {"synthref/sag/seed0/val/tau=0.50/mIoU": 31.25, ...}
    }

A metric's key mirrors the store path: dataset/method/seed<k>/split/setting/metric (`n` is not
compared). A tolerance pattern is an fnmatch glob over that key, or, without a "/", over the
metric's name alone; the longest matching pattern wins, and `--tolerance` holds for the rest.
A reference entry with no value in the store fails as "missing"; store metrics the reference
lacks are counted but do not fail. `--update` rewrites the metrics from the store (sorted keys),
keeping the tolerances and the note.

Grounding: the optional "gap_floors" {dataset/method: floor} fail the check when a method's
grounding gap falls below its floor, even with every metric within tolerance; `--update` rewrites
them from the store (harness/report/gap_floors.py).
"""

import json
import math
from fnmatch import fnmatchcase
from pathlib import Path

from tabulate import tabulate

from harness.report import gap_floors
from harness.errors import DataError
from harness.eval.metrics import METRIC_KEYS
from harness.store import Store, write_json_atomic

ABOUT = ("Metrics the CI run must reproduce; refresh with `python -m harness check --update` "
         "(see configs/reference/README.md).")


def metric_key(dataset, method, seed, split, setting, metric) -> str:
    return f"{dataset}/{method}/seed{int(seed)}/{split}/{setting}/{metric}"


def store_metrics(results_dir) -> dict:
    """{metric key: value} of every compared metric in the store."""
    frame = Store(results_dir).frame()
    frame = frame[frame["metric"].isin(METRIC_KEYS)]
    return {metric_key(row.dataset, row.method, row.seed, row.split, row.setting, row.metric): float(row.value)
            for row in frame.itertuples(index=False)}


def load_reference(path: Path) -> dict:
    """The reference document, checked: {"metrics": {key: number}, "tolerances": {glob: number}}."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(path, "no reference file; make one from a store with "
                        "`python -m harness check --results DIR --reference PATH --update`")
    except json.JSONDecodeError as err:
        raise DataError(path, f"not valid JSON ({err})")
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
        raise DataError(path, 'expected an object with "metrics": {key: value}')
    for field in ("metrics", "tolerances", "gap_floors"):
        if not isinstance(doc.get(field, {}), dict):
            raise DataError(path, f'"{field}" must be an object of {{key: number}}')
        for key, value in doc.get(field, {}).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise DataError(path, f'{field}[{key!r}] = {value!r}; expected a number')
    margin = doc.get("gap_margin", gap_floors.DEFAULT_GAP_MARGIN)
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or margin < 0:
        raise DataError(path, f'gap_margin = {margin!r}; expected a number ≥ 0')
    return doc


def tolerance_for(key: str, tolerances: dict, default: float) -> float:
    """The longest tolerance pattern matching `key` (a pattern without "/" matches the metric)."""
    metric = key.rsplit("/", 1)[-1]
    matching = [p for p in tolerances
                if fnmatchcase(key if "/" in p else metric, p)]
    return float(tolerances[max(matching, key=len)]) if matching else float(default)


def compare(now: dict, reference: dict, default_tolerance: float) -> list[dict]:
    """One row per reference metric: key, reference, now, delta, tolerance, status."""
    tolerances = reference.get("tolerances", {})
    rows = []
    for key, expected in sorted(reference["metrics"].items()):
        tol = tolerance_for(key, tolerances, default_tolerance)
        value = now.get(key)
        if value is None:
            status, delta = "missing", None
        else:
            delta = value - expected
            same_nan = math.isnan(value) and math.isnan(expected)
            status = "ok" if same_nan or abs(delta) <= tol + 1e-9 else "moved"
        rows.append(dict(key=key, reference=expected, now=value, delta=delta, tolerance=tol,
                         status=status))
    return rows


def _failure_report(failed: list[dict], total: int, refresh: str,
                    gaps_failed: list[dict] = ()) -> str:
    if not failed:
        return ("check FAILED: every metric is within tolerance, but a method's grounding gap "
                "fell below its floor (it stopped using the words?):\n"
                + "\n".join(gap_floors.gap_failure_lines(gaps_failed))
                + f"\nIf the change is intended, refresh the reference: {refresh}")
    table = tabulate([[r["key"], f"{r['reference']:.4f}",
                       "–" if r["now"] is None else f"{r['now']:.4f}",
                       "–" if r["delta"] is None else f"{r['delta']:+.4f}",
                       f"{r['tolerance']:g}", r["status"]] for r in failed],
                     headers=["metric", "reference", "now", "Δ", "tolerance", "status"],
                     tablefmt="pipe", disable_numparse=True)
    moved = sum(r["status"] == "moved" for r in failed)
    gaps = ("\nGrounding gap below its floor:\n" + "\n".join(gap_floors.gap_failure_lines(gaps_failed))
            if gaps_failed else "")
    return (f"{table}\n\ncheck FAILED: {moved} of {total} metrics moved beyond tolerance, "
            f"{len(failed) - moved} missing from the store.{gaps}\n"
            f"If the change is intended, refresh the reference: {refresh}")


def update_reference(results_dir: Path, reference_path: Path) -> int:
    """Rewrite the reference's metrics from the store, keeping its tolerances and note."""
    now = store_metrics(results_dir)
    if not now:
        raise DataError(results_dir, "no metrics.json in the store; nothing to write to the "
                        "reference (run `python -m harness run ...` first)")
    old = load_reference(reference_path) if Path(reference_path).is_file() else {}
    margin = float(old.get("gap_margin", gap_floors.DEFAULT_GAP_MARGIN))
    floors, unguarded = gap_floors.floors_from(gap_floors.store_gaps(results_dir), margin)
    doc = {"about": old.get("about", ABOUT), "tolerances": old.get("tolerances", {}),
           "metrics": now, "gap_floors": floors}
    if "gap_margin" in old:
        doc["gap_margin"] = old["gap_margin"]
    write_json_atomic(Path(reference_path), doc)
    print(f"wrote {len(now)} metrics and {len(floors)} grounding-gap floors from {results_dir} "
          f"to {reference_path}"
          + (f"; no floor (gap ≤ {margin:g}): {', '.join(unguarded)}" if unguarded else ""))
    return 0


def run_check(results_dir, reference_path, tolerance: float = 0.5, update: bool = False) -> int:
    """0 when every reference metric is in the store within tolerance, else 1 (a table printed)."""
    results_dir, reference_path = Path(results_dir), Path(reference_path)
    if update:
        return update_reference(results_dir, reference_path)
    reference = load_reference(reference_path)
    now = store_metrics(results_dir)
    rows = compare(now, reference, tolerance)
    failed = [r for r in rows if r["status"] != "ok"]
    gap_rows = gap_floors.compare_gaps(gap_floors.store_gaps(results_dir),
                                       reference.get("gap_floors", {}))
    gaps_failed = [r for r in gap_rows if r["status"] != "ok"]
    if failed or gaps_failed:
        refresh = (f"python -m harness check --results {results_dir} "
                   f"--reference {reference_path} --update")
        print(_failure_report(failed, len(rows), refresh, gaps_failed))
        return 1
    new = len(set(now) - set(reference["metrics"]))
    print(f"check passed: {len(rows)} metrics of {reference_path} within tolerance "
          f"(default {tolerance:g}) in {results_dir}"
          + (f", {len(gap_rows)} grounding gaps at or above their floors" if gap_rows else "")
          + (f"; {new} store metrics not in the reference" if new else ""))
    return 0
