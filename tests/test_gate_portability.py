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
    assert len(rows) >= 0.9 * len(REFERENCE["metrics"]), f"{source} measured too few of the reference's metrics"
    moved = [r for r in rows if r["status"] != "ok"]
    assert not moved, moved


def test_every_measured_gap_clears_its_floor():
    for run, gaps in SPREAD["gaps"].items():
        for method, floor in REFERENCE["gap_floors"].items():
            assert gaps[method] >= floor, (run, method, gaps[method], floor)


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
