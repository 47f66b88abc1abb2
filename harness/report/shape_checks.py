"""The shapes the paper implies, checked on our seed means: holds / fails / insufficient data.

Figures on the embedded benchmark cannot match the paper's, but its claims about shape can hold:
the method ranking, the T=1 drop, τ-flatness, the DenseCRF gain. A table spec lists its checks;
each compares rows within a column, for every column (or those the check names):

    dict(kind="order", rows=[a, b, c])            mean a > mean b > mean c
    dict(kind="below", row=a, than=[b, c], margin=m)   mean a ≤ min(mean b, mean c) − m
    dict(kind="spread", rows=[a, b, c], max_spread=s)  max − min of the means ≤ s
    dict(kind="at_least", pairs=[[a, b], ...])    mean a ≥ mean b for every pair
    dict(kind="min_value", rows=[a, b], min=v)    mean ≥ v for every row (e.g. a grounding gap)

A column where a needed cell has no runs is skipped; with no column left the check reports
"insufficient data".

On intervals (`table --ci`, `run_checks_on_intervals`) each check is the sign of one margin —
order: the smallest step down; below: (lowest of the rest − row) − margin; spread: max_spread −
(max − min); at_least: the smallest a − b; min_value: the smallest mean − min — computed on every
bootstrap replicate (the cells of a column share their image draws, so the margin is paired).
Per column it **holds** when the margin's interval lies above 0, **fails** when it lies below,
and is **not resolved at this n** when it holds 0: no verdict on noise.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from harness.errors import ConfigError

HOLDS, FAILS, INSUFFICIENT = "holds", "fails", "insufficient data"
UNRESOLVED = "not resolved at this n"


@dataclass
class CheckResult:
    name: str
    status: str   # HOLDS, FAILS or INSUFFICIENT
    detail: str


def _order(means: list[float], check: dict) -> tuple[bool, str]:
    ok = all(a > b for a, b in zip(means, means[1:]))
    return ok, ", ".join(f"{m:.2f}" for m in means)


def _below(means: list[float], check: dict) -> tuple[bool, str]:
    own, others = means[0], means[1:]
    lowest, margin = min(others), check.get("margin", 0.0)
    gap = lowest - own
    where = f"{gap:.2f} below" if gap >= 0 else f"{-gap:.2f} above"
    return gap >= margin, (f"{own:.2f} is {where} the lowest of the rest ({lowest:.2f}); "
                           f"the claim needs ≥ {margin:.2f} below")


def _spread(means: list[float], check: dict) -> tuple[bool, str]:
    spread = max(means) - min(means)
    return spread <= check["max_spread"], f"max − min = {spread:.2f}"


def _at_least(means: list[float], check: dict) -> tuple[bool, str]:
    pairs = list(zip(means[0::2], means[1::2]))
    ok = all(a >= b for a, b in pairs)
    return ok, ", ".join(f"{a:.2f} vs {b:.2f}" for a, b in pairs)


def _min_value(means: list[float], check: dict) -> tuple[bool, str]:
    floor = float(check["min"])
    shown = [f"{row} {m:.2f}" + ("" if m >= floor else f" (< {floor:g})")
             for row, m in zip(check["rows"], means)]
    return all(m >= floor for m in means), ", ".join(shown)


# kind -> (rows the check reads, in order; the comparison on their means)
_KINDS = {
    "order": (lambda c: c["rows"], _order),
    "below": (lambda c: [c["row"], *c["than"]], _below),
    "spread": (lambda c: c["rows"], _spread),
    "at_least": (lambda c: [r for pair in c["pairs"] for r in pair], _at_least),
    "min_value": (lambda c: c["rows"], _min_value),
}


def run_check(check: dict, means: dict, columns: list[str],
              labels: Optional[dict] = None) -> CheckResult:
    """One check on `means[(row_key, column_key)]` (None where no seed is stored); the detail
    names each column by `labels[column_key]` (the table's header, e.g. "synthref val")."""
    labels = labels or {}
    kind = check.get("kind")
    if kind not in _KINDS:
        raise ConfigError(f"shape check {check.get('name')!r}: kind {kind!r}; expected one of "
                          f"{sorted(_KINDS)}")
    needed_rows, compare = _KINDS[kind]
    rows = needed_rows(check)
    name = check.get("name", kind)
    held, failed, skipped = [], [], []
    # A check names its columns; those of another dataset family are not in this table.
    for column in [c for c in check.get("columns", columns) if c in columns]:
        values = [means.get((row, column)) for row in rows]
        if any(v is None for v in values):
            skipped.append(labels.get(column, column))
            continue
        ok, detail = compare(values, check)
        (held if ok else failed).append(f"{labels.get(column, column)}: {detail}")
    if failed:
        return CheckResult(name, FAILS, "; ".join(failed))
    if not held:
        return CheckResult(name, INSUFFICIENT, f"no runs for rows {rows} in any column")
    note = f" (skipped for lack of runs: {', '.join(skipped)})" if skipped else ""
    return CheckResult(name, HOLDS, "; ".join(held) + note)


def run_checks(checks: list[dict], means: dict, columns: list[str],
               labels: Optional[dict] = None) -> list[CheckResult]:
    return [run_check(check, means, columns, labels) for check in checks]


# kind -> (the margin from the rows' values, in the order `_KINDS` reads them; strict: > 0 needed)
def _margin_order(values, check):
    return np.min(np.stack([a - b for a, b in zip(values, values[1:])]), axis=0), True


def _margin_below(values, check):
    return np.min(np.stack(values[1:]), axis=0) - values[0] - check.get("margin", 0.0), False


def _margin_spread(values, check):
    stacked = np.stack(values)
    return check["max_spread"] - (stacked.max(axis=0) - stacked.min(axis=0)), False


def _margin_at_least(values, check):
    return np.min(np.stack([a - b for a, b in zip(values[0::2], values[1::2])]), axis=0), False


def _margin_min_value(values, check):
    return np.min(np.stack(values), axis=0) - float(check["min"]), False


_MARGINS = {"order": _margin_order, "below": _margin_below, "spread": _margin_spread,
            "at_least": _margin_at_least, "min_value": _margin_min_value}


def _column_verdict(point: float, replicates: np.ndarray, strict: bool, tails) -> tuple[str, str]:
    finite = replicates[np.isfinite(replicates)]
    lo, hi = np.percentile(finite, tails) if finite.size else (np.nan, np.nan)
    above = lo > 0 if strict else lo >= 0
    below = hi <= 0 if strict else hi < 0
    status = HOLDS if above else FAILS if below else UNRESOLVED
    return status, f"margin {point:.2f} [{lo:.2f}, {hi:.2f}]"


def run_check_on_intervals(check: dict, estimates: dict, columns: list[str],
                           labels: Optional[dict] = None, tails=(2.5, 97.5)) -> CheckResult:
    """One check judged on intervals: `estimates[(row, column)]` is an Estimate (point and
    bootstrap replicates, paired within a column) or None where no seed is stored."""
    labels = labels or {}
    kind = check.get("kind")
    if kind not in _KINDS:
        raise ConfigError(f"shape check {check.get('name')!r}: kind {kind!r}; expected one of "
                          f"{sorted(_KINDS)}")
    rows = _KINDS[kind][0](check)
    name = check.get("name", kind)
    verdicts, skipped = [], []
    for column in [c for c in check.get("columns", columns) if c in columns]:
        found = [estimates.get((row, column)) for row in rows]
        if any(e is None for e in found):
            skipped.append(labels.get(column, column))
            continue
        point, strict = _MARGINS[kind]([np.float64(e.point) for e in found], check)
        replicates, _ = _MARGINS[kind]([e.replicates for e in found], check)
        status, detail = _column_verdict(float(point), replicates, strict, tails)
        verdicts.append((status, f"{labels.get(column, column)}: {status} ({detail})"))
    if not verdicts:
        return CheckResult(name, INSUFFICIENT, f"no runs for rows {rows} in any column")
    statuses = {status for status, _ in verdicts}
    status = FAILS if FAILS in statuses else HOLDS if statuses == {HOLDS} else UNRESOLVED
    note = f" (skipped for lack of runs: {', '.join(skipped)})" if skipped else ""
    return CheckResult(name, status, "; ".join(detail for _, detail in verdicts) + note)
