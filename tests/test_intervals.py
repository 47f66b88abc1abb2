"""Intervals (harness/report/intervals.py and image_sums.py), paired comparisons, inference
variance and breakdowns: on real smoke runs and on stores whose true answer is known."""

import csv
import json
import math

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.report.cell_intervals import annotate  # noqa: F401  (imported by tables)
from harness.report.image_sums import figures, image_sums
from harness.report.intervals import (IntervalOptions, bootstrap_weights, difference, estimate,
                                      images_of, seed_sums, sign_flip_p)
from harness.report.shape_checks import FAILS, HOLDS, UNRESOLVED, run_check_on_intervals
from harness.report.tables import render_table
from harness.report.variance import inference_spreads
from harness.run.runner import RunOptions, run_many
from harness.store import SAMPLE_COLUMNS

COMPARED = ("mIoU", "cIoU", "A@0.3", "A@0.5", "A@0.7", "pointing", "gap", "mIoU_right", "mIoU_swap")


# ------------------------------------------------------------------------ real runs, small data

@pytest.fixture(scope="module")
def smoke_store(synthref_root, tmp_path_factory):
    """SaG (samples its slots at test time: 2 draws under smoke) and MaskCLIP zero-shot and the
    floors (deterministic), smoke profile, the small synthref val (40 images), seed 0."""
    out = tmp_path_factory.mktemp("intervals-store")
    opts = RunOptions(dataset="synthref", profile="smoke", splits=["val"], data_root=synthref_root,
                      out=out, progress=False, taus=[0.3, 0.5], crf=False)
    run_many(["sag", "maskclip@zeroshot", "whole", "objects"], [0], opts)
    return out


def _metrics(store, method):
    return json.loads((store / "synthref" / method / "seed0" / "metrics.json").read_text())


def _rows(store, method, setting="tau=0.50"):
    frame = pd.read_csv(store / "synthref" / method / "seed0" / "samples.csv",
                        dtype={"image_id": str, "ref_id": str})
    return frame[(frame["split"] == "val") & (frame["setting"] == setting)].reset_index(drop=True)


@pytest.mark.parametrize("method", ["sag", "maskclip@zeroshot", "objects"])
def test_image_sums_reproduce_every_stored_figure(smoke_store, method):
    for setting in ("tau=0.30", "tau=0.50"):
        rows = _rows(smoke_store, method, setting)
        assert rows["image_id"].notna().all()       # samples.csv records each expression's image
        got = figures(image_sums(rows, images_of([rows])).sum(axis=0))
        stored = _metrics(smoke_store, method)["splits"]["val"][setting]
        for metric in COMPARED:
            assert got[metric] == pytest.approx(stored[metric], abs=1e-3), (method, setting, metric)


def test_sag_stores_inference_draws_and_deterministic_methods_none(smoke_store):
    sag = _metrics(smoke_store, "sag")
    draws = sag["inference_draws"]["val"]["tau=0.50"]
    assert len(draws["mIoU"]) == 2                                   # smoke: 2 draws
    assert draws["mIoU"][0] == sag["splits"]["val"]["tau=0.50"]["mIoU"]   # draw 0 = the run's figure
    assert draws["mIoU"][1] != draws["mIoU"][0]      # another slot sample gives another map
    assert "inference_draws" not in _metrics(smoke_store, "maskclip@zeroshot")
    spread = inference_spreads(smoke_store)[("synthref", "sag", "val", "tau=0.50", "mIoU")]
    assert spread.std == pytest.approx(abs(draws["mIoU"][1] - draws["mIoU"][0]) / math.sqrt(2))
    assert (spread.draws, spread.seeds) == (2, 1)


def test_breakdown_bins_partition_the_split_and_match_a_direct_mean(smoke_store, synthref_root):
    from harness.report.breakdowns import breakdown
    from harness.report.sample_attributes import sample_attributes

    rows = [dict(label="sag", method="sag", setting="tau=0.50")]
    result = breakdown(smoke_store, "location", rows, data_root=synthref_root)
    assert sum(n for _, n, _ in result["bins"]) == len(_rows(smoke_store, "sag")) > 40
    attributes = sample_attributes("synthref", "val", data_root=synthref_root)
    samples = _rows(smoke_store, "sag").merge(attributes.assign(sample_id=attributes["sample_id"]),
                                              on="sample_id", suffixes=("", "_a"))
    for name, _, _ in result["bins"]:
        chosen = samples[samples["location_bin"] == name]
        direct = 100 * (chosen["I"] / chosen["U"]).mean()
        assert result["rows"][0]["cells"][(name, "mIoU")].point == pytest.approx(direct, abs=1e-9)
    assert main(["breakdown", "--by", "nonsense", "--results", str(smoke_store)]) == 2


# ------------------------------------------------------------------- stores with known answers

def _write_samples(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "samples.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SAMPLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _expression_rows(ious, per_image, setting="tau=0.50", split="val"):
    """One row per expression, `per_image` expressions of one image in a row, U = 100."""
    rows = []
    for k, iou in enumerate(ious):
        image = k // per_image
        rows.append(dict(split=split, setting=setting, sample_id=k, ref_id=10 * image + k % 2,
                         image_id=image, I=int(round(100 * iou)), U=100, IoU=iou, pointing=1,
                         swap_ref_id=10 * image + 1 - k % 2, I_swap=0, U_swap=100, IoU_swap=0.0))
    return rows


def _frame(rows):
    frame = pd.DataFrame(rows).astype({"image_id": str, "ref_id": str})
    return frame


def test_expressions_of_one_image_are_resampled_together():
    """60 images whose 5 expressions are copies: the interval is that of 60 values, not 300."""
    rng = np.random.default_rng(0)
    per_image_iou = rng.uniform(0.0, 1.0, size=60).round(2)
    rows = _frame(_expression_rows(np.repeat(per_image_iou, 5), per_image=5))
    images = images_of([rows])
    opts = IntervalOptions(boot=4000)
    got = estimate(seed_sums([rows], images), "mIoU", bootstrap_weights(images, opts), opts)
    expected_half = 1.96 * 100 * per_image_iou.std(ddof=0) / math.sqrt(60)
    assert got.point == pytest.approx(100 * per_image_iou.mean())
    assert (got.hi - got.lo) / 2 == pytest.approx(expected_half, rel=0.12)
    # an expression-level bootstrap would be √5 ≈ 2.2 times narrower: this one is not
    assert (got.hi - got.lo) / 2 > 1.8 * expected_half / math.sqrt(5)


def test_paired_draws_make_a_constant_shift_exact_and_identical_maps_tied():
    rng = np.random.default_rng(1)
    ious = rng.uniform(0.0, 0.8, size=90).round(2)
    a = _frame(_expression_rows(ious + 0.1, per_image=3))
    b = _frame(_expression_rows(ious, per_image=3))
    images = images_of([a, b])
    opts = IntervalOptions()
    W = bootstrap_weights(images, opts)
    ea, eb = (estimate(seed_sums([f], images), "mIoU", W, opts) for f in (a, b))
    d = difference(ea, eb, opts)
    assert (d.point, d.lo, d.hi) == pytest.approx((10.0, 10.0, 10.0))   # same images, every replicate
    assert sign_flip_p(seed_sums([a], images), seed_sums([b], images), "mIoU", 999, 0) == pytest.approx(1 / 1000)
    same = difference(eb, eb, opts)
    assert (same.lo, same.hi) == (0.0, 0.0) and same.contains(0.0)
    assert sign_flip_p(seed_sums([b], images), seed_sums([b], images), "mIoU", 999, 0) == 1.0


def test_draws_depend_on_the_images_and_seed_only():
    images = pd.Index([str(k) for k in range(30)])
    opts = IntervalOptions()
    assert np.array_equal(bootstrap_weights(images, opts), bootstrap_weights(images.copy(), opts))
    assert bootstrap_weights(images, opts).sum(axis=1).tolist() == [30.0] * opts.boot
    assert not np.array_equal(bootstrap_weights(images, opts),
                              bootstrap_weights(images, IntervalOptions(seed=1)))


def _store_run(root, method, seed, rows, config_hash="h"):
    folder = root / "synthref" / method / f"seed{seed}"
    _write_samples(folder, rows)
    frame = _frame(rows)
    stored = figures(image_sums(frame, images_of([frame])).sum(0))
    summary = {m: float(stored[m]) for m in COMPARED} | {"n": len(rows), "n_gap": 1}
    (folder / "metrics.json").write_text(json.dumps(
        {"method": method, "dataset": "synthref", "seed": seed, "config_hash": config_hash,
         "splits": {"val": {"tau=0.50": summary}}}))


def test_compare_reports_the_paired_difference_per_seed_and_over_seeds(tmp_path, capsys):
    rng = np.random.default_rng(2)
    base = rng.uniform(0.0, 0.7, size=(3, 60)).round(2)
    for seed in range(3):
        _store_run(tmp_path, "good", seed, _expression_rows(base[seed] + 0.05, per_image=2))
        _store_run(tmp_path, "bad", seed, _expression_rows(base[seed], per_image=2))
    assert main(["compare", "good", "bad", "--results", str(tmp_path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    miou = {c["scope"]: c for c in doc["comparisons"] if c["figure"] == "mIoU"}
    assert set(miou) == {"over seeds", "seed 0", "seed 1", "seed 2"}
    assert miou["over seeds"]["delta"] == pytest.approx(5.0)
    assert miou["over seeds"]["verdict"] == "A > B" and miou["seed 1"]["p"] < 0.01
    assert doc["n"] == 60 and doc["images"] == 30 and doc["seeds"] == [0, 1, 2]
    assert main(["compare", "good", "absent", "--results", str(tmp_path)]) == 2
    assert "no stored run of 'absent'" in capsys.readouterr().err


def test_shape_checks_on_intervals_hold_fail_or_stay_unresolved():
    from harness.report.intervals import Estimate

    def est(point, spread):   # replicates spread evenly around the point
        return Estimate(point, point - spread, point + spread, point + np.linspace(-spread, spread, 1001))

    check = dict(kind="order", rows=["a", "b"])
    assert run_check_on_intervals(check, {("a", "c"): est(10, 1), ("b", "c"): est(5, 0)}, ["c"]).status == HOLDS
    assert run_check_on_intervals(check, {("a", "c"): est(5, 0), ("b", "c"): est(10, 1)}, ["c"]).status == FAILS
    assert run_check_on_intervals(check, {("a", "c"): est(10, 3), ("b", "c"): est(9, 0)}, ["c"]).status == UNRESOLVED
    spread = dict(kind="spread", rows=["a", "b"], max_spread=3.0)
    result = run_check_on_intervals(spread, {("a", "c"): est(10, 0), ("b", "c"): est(9, 0)}, ["c"])
    assert result.status == HOLDS and "margin 2.00" in result.detail


def test_table_ci_gives_bounds_around_the_mean_and_marks_unresolved_rows(tmp_path):
    rng = np.random.default_rng(3)
    ious = rng.uniform(0.0, 0.9, size=(3, 80)).round(2)
    for seed in range(3):   # A3's rows τ=0.3 … are one method at several settings; write τ=0.5 only
        _store_run(tmp_path, "sag", seed, _expression_rows(ious[seed], per_image=4))
    doc = json.loads(render_table("A3", tmp_path, fmt="json", ci=True))
    cell = next(c for c in doc["cells"] if c["row"] == "τ=0.5")
    assert cell["ci_lo"] < cell["mean"] < cell["ci_hi"]
    assert cell["mean"] == pytest.approx(100 * ious.mean(axis=1).mean())
    assert "cluster bootstrap over images" in doc["intervals"]
    text = render_table("A3", tmp_path, ci=True)
    assert f"[{cell['ci_lo']:.2f}, {cell['ci_hi']:.2f}]" in text


def test_interval_options_reject_bad_input():
    from harness.errors import ConfigError

    for bad in (dict(boot=10), dict(level=1.5), dict(resample="seeds")):
        with pytest.raises(ConfigError):
            IntervalOptions(**bad)


def _store_settings(root, method, seed, by_setting, per_image):
    rows = [r for setting, ious in by_setting.items()
            for r in _expression_rows(ious, per_image=per_image, setting=setting)]
    folder = root / "synthref" / method / f"seed{seed}"
    _write_samples(folder, rows)
    splits = {}
    for setting, ious in by_setting.items():
        frame = _frame(_expression_rows(ious, per_image=per_image, setting=setting))
        stored = figures(image_sums(frame, images_of([frame])).sum(0))
        splits[setting] = {m: float(stored[m]) for m in COMPARED} | {"n": len(ious), "n_gap": 1}
    (folder / "metrics.json").write_text(json.dumps(
        {"method": method, "dataset": "synthref", "seed": seed, "config_hash": "h",
         "splits": {"val": splits}}))


@pytest.mark.parametrize("images, verdict", [(15, UNRESOLVED), (1500, HOLDS)])
def test_table_shape_checks_are_judged_on_intervals(tmp_path, images, verdict):
    """A3's τ-flatness (max − min over τ = 0.4–0.6 ≤ 3): true spread 2, per-expression noise
    independent per τ. On 30 expressions the margin's interval holds 0; on 3,000 it holds."""
    rng = np.random.default_rng(4)
    for seed in range(3):
        base = rng.uniform(0.2, 0.6, size=2 * images)
        by_setting = {f"tau={t:.2f}": np.clip(base + shift + rng.normal(0, 0.25, size=base.size), 0, 1).round(2)
                      for t, shift in ((0.4, 0.02), (0.5, 0.01), (0.6, 0.0))}
        _store_settings(tmp_path, "sag", seed, by_setting, per_image=2)
    text = render_table("A3", tmp_path, paper=True)        # no --ci: the checks use intervals anyway
    line = next(l for l in text.splitlines() if l.startswith("- τ-flat"))
    assert f"**{verdict}**" in line and "margin" in line
    assert "[" not in next(l for l in text.splitlines() if l.startswith("| τ=0.5"))  # cells: no bounds


def test_bootstrap_p_is_two_sided_and_never_zero():
    from harness.report.intervals import bootstrap_p

    assert bootstrap_p(np.linspace(1.0, 2.0, 999)) == pytest.approx(1 / 1000)     # all above 0
    assert bootstrap_p(np.linspace(-1.0, 1.0, 1001)) == pytest.approx(1.0)      # centred on 0
    assert bootstrap_p(np.r_[np.full(50, -1.0), np.full(950, 1.0)]) == pytest.approx(100 / 1001)
