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

Platform: the reference records the platform it was made on ("platform", harness/numerics.py);
`check` prints it beside the store's and says when they differ in a way that can change bits
(then the figures are expected within the tolerances, not bit-identical). The tolerances are set
from a measured kernel spread (harness/report/tolerances.py: `--update --tolerances-from`).
`--only GLOB` checks the part of the reference whose keys match (a store of some methods only).

Grounding: the optional "gap_floors" {dataset/method: floor} fail the check when a method's
grounding gap falls below its floor, even with every metric within tolerance; `--update` rewrites
them from the store (harness/report/gap_floors.py).
"""

import json
import math
from fnmatch import fnmatchcase
from pathlib import Path

from tabulate import tabulate

from harness.numerics import bit_differences, platform_record
from harness.report import gap_floors, tolerances as calibration
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


def store_platforms(results_dir) -> list[dict]:
    """The distinct platforms the store's runs recorded (config.json "platform"), in run order."""
    seen, platforms = set(), []
    for config in sorted(Path(results_dir).glob("*/*/seed*/config.json")):
        try:
            record = json.loads(config.read_text()).get("platform")
        except (OSError, json.JSONDecodeError):
            continue
        blob = json.dumps(record, sort_keys=True)
        if blob not in seen:
            seen.add(blob)
            platforms.append(record)
    return platforms


def describe_platform(record: dict | None) -> str:
    """One line: CPU, the kernels in use, BLAS, torch, threads."""
    if not record:
        return "not recorded"
    flags = record.get("cpu_flags") or {}
    isa = "AMX" if flags.get("amx_tile") else "AVX-512" if flags.get("avx512f") else "AVX2" if flags.get("avx2") else "?"
    return (f"{record.get('cpu_model')} ({isa}); kernels {record.get('kernel_mode', 'native')}, "
            f"ATen {record.get('aten_cpu_capability')}, {record.get('blas')}"
            + (f" MKL_CBWR={record['environment']['MKL_CBWR']}" if (record.get("environment") or {}).get("MKL_CBWR") else "")
            + f"; torch {record.get('torch')}, {record.get('threads')} threads"
            + (f"; CUDA {record['cuda'].get('device')}" if record.get("cuda") else ""))


def platform_lines(reference: dict, results_dir) -> list[str]:
    """What `check` prints of the reference's platform and the store's, and what follows."""
    ref = reference.get("platform")
    here = store_platforms(results_dir)
    lines = [f"reference platform: {describe_platform(ref)}"]
    lines += [f"this store's:       {describe_platform(p)}" for p in here] or ["this store's:       not recorded"]
    reasons = sorted({r for p in here for r in bit_differences(ref, p)})
    if reasons:
        lines.append("these can change bits (" + "; ".join(reasons) + "): figures are expected within "
                     "the tolerances, not bit-identical")
    elif here:
        lines.append("same platform and kernels: figures are expected bit-identical")
    return lines


def only_matching(reference: dict, globs) -> dict:
    """The reference restricted to the metric keys (and gap-floor keys) matching any glob."""
    if not globs:
        return reference
    keep = lambda key: any(fnmatchcase(key, g) or fnmatchcase(key + "/", g) for g in globs)
    out = dict(reference)
    out["metrics"] = {k: v for k, v in reference["metrics"].items() if keep(k)}
    # A method's gap floor comes along with any of its metrics, or when a glob names the method.
    methods = {"/".join(key.split("/")[:2]) for key in out["metrics"]}
    out["gap_floors"] = {k: v for k, v in reference.get("gap_floors", {}).items()
                         if k in methods or keep(k)}
    if not out["metrics"] and not out["gap_floors"]:
        raise DataError("--only", f"{', '.join(globs)} matches no metric of the reference")
    return out


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


def update_reference(results_dir: Path, reference_path: Path, tolerances_from=None) -> int:
    """Rewrite the reference's metrics, gap floors and platform from the store, keeping its
    tolerances and note — or, with `tolerances_from`, setting the tolerances (and holding the
    floors) under that kernel-spread study (harness/report/tolerances.py)."""
    now = store_metrics(results_dir)
    if not now:
        raise DataError(results_dir, "no metrics.json in the store; nothing to write to the "
                        "reference (run `python -m harness run ...` first)")
    old = load_reference(reference_path) if Path(reference_path).is_file() else {}
    margin = float(old.get("gap_margin", gap_floors.DEFAULT_GAP_MARGIN))
    gaps = gap_floors.store_gaps(results_dir)
    floors, unguarded = gap_floors.floors_from(gaps, margin)
    platforms = store_platforms(results_dir)
    if len(platforms) > 1:
        raise DataError(results_dir, f"its runs were made on {len(platforms)} platforms "
                        f"({'; '.join(describe_platform(p) for p in platforms)}); a reference is made on one")
    doc = {"about": old.get("about", ABOUT), "tolerances": old.get("tolerances", {}),
           "metrics": now, "gap_floors": floors,
           "platform": platforms[0] if platforms else platform_record()}
    if "tolerance_basis" in old:
        doc["tolerance_basis"] = old["tolerance_basis"]
    if "gap_margin" in old:
        doc["gap_margin"] = old["gap_margin"]
    if tolerances_from is not None:
        doc = calibration.recalibrate(doc, Path(tolerances_from))
    write_json_atomic(Path(reference_path), doc)
    print(f"wrote {len(now)} metrics and {len(floors)} grounding-gap floors from {results_dir} "
          f"to {reference_path}"
          + (f"; no floor (gap ≤ {margin:g}): {', '.join(unguarded)}" if unguarded else ""))
    return 0


def recalibrate_reference(reference_path: Path, spread_path: Path) -> int:
    """Set the reference's tolerances and hold its gap floors under a kernel-spread study; its
    metrics, platform and note stay as they are (harness/report/tolerances.py)."""
    doc = calibration.recalibrate(load_reference(reference_path), spread_path)
    write_json_atomic(Path(reference_path), doc)
    widest = max(doc["tolerances"].items(), key=lambda item: item[1])
    print(f"set {len(doc['tolerances'])} tolerances in {reference_path} from {spread_path} "
          f"(widest {widest[0]}: {widest[1]:g}); {len(doc['gap_floors'])} gap floors held under the study")
    return 0


def run_check(results_dir, reference_path, tolerance: float = 0.5, update: bool = False,
              only=(), tolerances_from=None) -> int:
    """0 when every reference metric is in the store within tolerance, else 1 (a table printed)."""
    results_dir, reference_path = Path(results_dir), Path(reference_path)
    if tolerances_from is not None and not update:
        return recalibrate_reference(reference_path, Path(tolerances_from))
    if update:
        if only:
            raise DataError("--only", "not with --update: the reference is rewritten whole")
        return update_reference(results_dir, reference_path, tolerances_from)
    reference = only_matching(load_reference(reference_path), only)
    print("\n".join(platform_lines(reference, results_dir)))
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
