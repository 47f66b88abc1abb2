"""The committed gate (configs/reference/ci.json) passes every figure measured under other CPU
kernels and on another CPU type (configs/reference/kernel_spread.json), and its tolerances are the
ones the calibration rule gives for that study — so nobody widens them without a new measurement.
"""

import json
from pathlib import Path

import pytest

from harness.report import tolerances as calibration
from harness.report.check import compare, describe_platform, load_reference

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "configs" / "reference"
REFERENCE = load_reference(REFERENCE_DIR / "ci.json")
SPREAD = calibration.load_spread(REFERENCE_DIR / "kernel_spread.json")
OBSERVED = calibration.observations(SPREAD)


@pytest.mark.parametrize("source", sorted(OBSERVED))
def test_every_measured_kernel_choice_and_platform_passes_the_gate(source):
    figures = OBSERVED[source]
    rows = [r for r in compare(figures, REFERENCE, 0.5) if r["status"] != "missing"]
    # A source measures whole methods (a method re-measured after a change is dropped from the
    # sources that measured it as it was: benchmarks/bench_kernel_spread.py --merge-into).
    methods = {calibration.method_and_metric(r["key"])[0] for r in rows}
    expected = [k for k in REFERENCE["metrics"] if calibration.method_and_metric(k)[0] in methods]
    assert len(rows) == len(expected), f"{source} measured part of a method's metrics"
    assert len(methods) >= 1, f"{source} measured none of the reference's methods"
    moved = [r for r in rows if r["status"] != "ok"]
    assert not moved, moved


def test_every_gated_method_is_measured_under_several_kernel_choices():
    methods = {calibration.method_and_metric(k)[0] for k in REFERENCE["metrics"]}
    for method in sorted(methods):
        sources = [s for s, figures in OBSERVED.items() if any(k.startswith(method + "/") for k in figures)]
        assert len([s for s in sources if s.startswith("choice:")]) >= 3, (method, sources)


def test_every_measured_gap_clears_its_floor():
    for method, floor in REFERENCE["gap_floors"].items():
        seen = {run: gaps[method] for run, gaps in SPREAD["gaps"].items() if method in gaps}
        assert len(seen) >= 3, (method, sorted(seen))
        assert all(gap >= floor for gap in seen.values()), (method, floor, seen)


def test_the_tolerances_are_the_calibration_of_the_committed_study():
    tolerances, basis = calibration.calibrate(REFERENCE["metrics"], SPREAD, "configs/reference/kernel_spread.json")
    assert REFERENCE["tolerances"] == tolerances
    assert REFERENCE["tolerance_basis"]["deviations"] == basis["deviations"]
    # Every method of the gate has its own measured tolerance for every metric.
    methods = {calibration.method_and_metric(k) for k in REFERENCE["metrics"]}
    assert {f"{m}/*/{n}" for m, n in methods} == set(tolerances)


def test_the_gate_still_fails_a_move_beyond_a_stable_methods_tolerance():
    """Platform noise of SaG, MaskCLIP and TSEG at the ci profile is ~0.001 points; their
    tolerance is the floor, so a one-point move — far less than any injected defect makes
    (tests/test_gate_regressions.py) — fails."""
    for method in ("sag", "maskclip", "tseg"):
        key = f"synthref/{method}/seed0/val/tau=0.50/mIoU"
        moved = dict(REFERENCE["metrics"], **{key: REFERENCE["metrics"][key] + 1.0})
        [row] = [r for r in compare(moved, REFERENCE, 0.5) if r["key"] == key]
        assert row["status"] == "moved" and row["tolerance"] <= 0.5


def test_the_reference_says_where_it_was_made():
    line = describe_platform(REFERENCE["platform"])
    assert REFERENCE["platform"]["cpu_model"] in line and "kernels" in line
    assert REFERENCE["platform"]["threads"] == 2
