"""The CI gate on grounding: each method's grounding gap must stay above a floor in the reference.

A change that breaks a method's use of the words can leave its mIoU within tolerance (the maps
still land on objects) while its grounding gap — mIoU against the right object minus against
another object of the image (harness/eval/metrics.py) — collapses towards 0. The reference holds

    "gap_floors": {"synthref/sag": 4.1, ...}    dataset/method spec → lowest acceptable gap
    "gap_margin": 2.0                            optional; how far below the measured gap
                                                 `--update` sets a floor (default 2 points)

A method's gap is the mean over its stored seeds and splits at the setting `tau=0.50` (raw maps).
Seeds stored under different config hashes are never pooled (as in the tables): such a store is
an error naming the runs, since its mean would describe no single configuration.
`--update` sets each floor to the lower of (gap − margin) and gap / 2, for methods whose gap
exceeds the margin; a method at or below it (the floors `whole` and `objects`, whose gap is 0,
or a method that does not ground yet) gets no floor — there is no grounding to guard. A reference
without "gap_floors" checks no gap.
"""

from __future__ import annotations

from harness.errors import DataError
from harness.eval.protocol import Setting
from harness.store import Store

GAP_SETTING = Setting(0.5).name
DEFAULT_GAP_MARGIN = 2.0


def store_gaps(results_dir) -> dict:
    """{"dataset/method": mean grounding gap over its seeds and splits at GAP_SETTING}."""
    frame = Store(results_dir).frame()
    frame = frame[(frame["metric"] == "gap") & (frame["setting"] == GAP_SETTING)]
    frame = frame.assign(config_hash=frame["config_hash"].fillna("none"))
    for (dataset, method), runs in frame.groupby(["dataset", "method"]):
        configs = runs.groupby("config_hash")["seed"].unique()
        if len(configs) > 1:
            seeds = "; ".join(f"config {h}: seeds {', '.join(map(str, sorted(s)))}" for h, s in configs.items())
            raise DataError(results_dir, f"{dataset}/{method} has seeds stored under {len(configs)} configs "
                            f"({seeds}); its grounding gap would pool them. Rerun the older seeds "
                            f"(or remove them) so that every seed has the current config")
    means = frame.groupby(["dataset", "method"])["value"].mean()
    return {f"{dataset}/{method}": float(value) for (dataset, method), value in means.items()}


def floor_for(gap: float, margin: float) -> float | None:
    """The floor `--update` writes for a measured gap, or None when the gap is within the margin."""
    if not gap > margin:
        return None
    return round(min(gap - margin, gap / 2.0), 2)


def floors_from(gaps: dict, margin: float) -> tuple[dict, list[str]]:
    """({key: floor} for the methods that ground, [keys left without a floor])."""
    floors = {key: floor_for(gap, margin) for key, gap in sorted(gaps.items())}
    return ({k: v for k, v in floors.items() if v is not None},
            [k for k, v in floors.items() if v is None])


def compare_gaps(gaps: dict, floors: dict) -> list[dict]:
    """One row per floor: key, floor, now (None when the store has no gap), status ok|below|missing."""
    rows = []
    for key, floor in sorted(floors.items()):
        now = gaps.get(key)
        status = "missing" if now is None else ("ok" if now >= float(floor) - 1e-9 else "below")
        rows.append(dict(key=key, floor=float(floor), now=now, status=status))
    return rows


def gap_failure_lines(failed: list[dict]) -> list[str]:
    """The failing floors, one line each (for the check's report)."""
    lines = []
    for row in failed:
        now = "no gap in the store" if row["now"] is None else f"gap {row['now']:.2f}"
        lines.append(f"- {row['key']}: {now} at {GAP_SETTING}, floor {row['floor']:.2f} "
                     f"({row['status']})")
    return lines
