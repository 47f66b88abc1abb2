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
"""

from dataclasses import dataclass
from typing import Optional

from harness.errors import ConfigError

HOLDS, FAILS, INSUFFICIENT = "holds", "fails", "insufficient data"


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
