"""Tables from a store written here: exact mean ± std, missing-run commands, formats, paper, checks."""

import io
import json

import pandas as pd
import pytest

from harness.config import load_run_config
from harness.report import table_specs
from harness.errors import ConfigError, UnknownNameError
from harness.eval.protocol import Setting
from harness.report.shape_checks import FAILS, HOLDS, INSUFFICIENT
from harness.report.tables import render_table, table_data

METRICS = ("A@0.3", "A@0.5", "A@0.7", "cIoU", "mIoU")


def write_metrics(root, dataset, method, seed, splits, config=None):
    """One store entry: `splits` is {split: {setting: mIoU or {metric: value}}}."""
    run_dir = root / dataset / method / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    full = {split: {setting: (value if isinstance(value, dict)
                              else {m: value for m in METRICS} | {"n": 10})
                    for setting, value in settings.items()}
            for split, settings in splits.items()}
    doc = {"method": method, "dataset": dataset, "seed": seed, "config_hash": f"h{method}",
           "splits": full}
    (run_dir / "metrics.json").write_text(json.dumps(doc))
    if config is not None:
        (run_dir / "config.json").write_text(json.dumps(config))
    return run_dir


def write_a3_store(root, by_tau_per_seed):
    """SaG on synthref val, with every split A4 also needs, so the run is complete."""
    for seed, by_tau in enumerate(by_tau_per_seed):
        settings = {Setting(t).name: v for t, v in by_tau.items()}
        settings |= {Setting(t, crf=True).name: v + 1 for t, v in by_tau.items()}
        write_metrics(root, "synthref", "sag", seed,
                      {s: settings for s in ("val", "testA", "testB")})


TAUS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)   # A4 runs SaG at every τ (the τ-curves)


def test_mean_and_sample_std_over_three_seeds_are_exact(tmp_path):
    seeds = [{t: 30.0 + seed + 10 * t for t in TAUS} for seed in range(3)]
    write_a3_store(tmp_path, seeds)
    text = render_table("A3", tmp_path)
    row = next(line for line in text.splitlines() if line.startswith("| τ=0.5"))
    assert row.split("|")[2].strip() == "36.00 ± 1.00 (n=3)"
    doc = json.loads(render_table("A3", tmp_path, fmt="json"))
    cell = next(c for c in doc["cells"] if c["row"] == "τ=0.3")
    assert (cell["mean"], cell["std"], cell["n"]) == (pytest.approx(34.0), pytest.approx(1.0), 3)
    assert cell["setting"] == "tau=0.30" and cell["method"] == "sag"


def test_seeds_stored_under_different_configs_are_never_averaged(tmp_path):
    """A config changed and only seed 0 was rerun: seeds 1-2 still hold the old config's figures.
    The cell says so instead of pooling 40 with 30 and 30, and no shape check reads it."""
    write_a3_store(tmp_path, [{t: 30.0 for t in TAUS}] * 3)
    rerun = tmp_path / "synthref" / "sag" / "seed0" / "metrics.json"
    doc = json.loads(rerun.read_text())
    doc["config_hash"] = "new-config"
    doc["splits"]["val"]["tau=0.50"]["mIoU"] = 40.0
    rerun.write_text(json.dumps(doc))
    text = render_table("A3", tmp_path, paper=True)
    row = next(line for line in text.splitlines() if line.startswith("| τ=0.5"))
    assert row.split("|")[2].strip() == "mixed configs (2 in n=3)"
    assert "mixed configs: synthref/sag hold seeds run under different configs" in text
    assert "33.33" not in text
    data = table_data("A3", tmp_path)
    assert all(cell.mixed for cell in data.cells.values() if cell.key["dataset"] == "synthref"
               and cell.key["method"] == "sag")
    cell = next(c for c in json.loads(render_table("A3", tmp_path, fmt="json"))["cells"] if c["row"] == "τ=0.5")
    assert (cell["mean"], cell["n"], cell["configs"]) == (None, 3, 2)
    doc["config_hash"] = "h" + "sag"                  # the same config again: pooled as before
    rerun.write_text(json.dumps(doc))
    row = next(line for line in render_table("A3", tmp_path).splitlines() if line.startswith("| τ=0.5"))
    assert row.split("|")[2].strip().startswith("33.33 ± 5.77 (n=3)")


def test_seeds_computed_under_a_config_that_is_no_longer_the_files_are_stale(tmp_path):
    """All three seeds share one config hash, so nothing is mixed; but configs/sag.py has since
    changed (here: the stored config says T=4). The table must not show them as SaG today."""
    today = load_run_config("sag", "synthref", "full").cfg
    write_a3_store(tmp_path, [{t: 30.0 for t in TAUS}] * 3)
    for seed in range(3):
        config = json.loads(json.dumps(today))
        if seed > 0:
            config["method"]["T"] = 4                  # seeds 1 and 2 ran before the edit
        (tmp_path / "synthref" / "sag" / f"seed{seed}" / "config.json").write_text(
            json.dumps({"config": config, "seed": seed}))
    text = render_table("A3", tmp_path, paper=True)
    row = next(line for line in text.splitlines() if line.startswith("| τ=0.5"))
    assert row.split("|")[2].strip() == "stale config (2 of n=3)"
    assert "stale config: synthref/sag hold seeds computed under a config that is no longer" in text
    assert "30.00" not in text.split("Shape checks")[0]
    assert ("`python -m harness run --methods sag --dataset synthref --splits val,testA,testB "
            f"--seeds 1,2 --taus 0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9 --crf --profile full --out {tmp_path}`") in text
    cell = next(c for c in json.loads(render_table("A3", tmp_path, fmt="json"))["cells"] if c["row"] == "τ=0.5")
    assert (cell["mean"], cell["n"], cell["stale"]) == (None, 3, 2)
    for seed in (1, 2):                               # rerun under today's config: shown again
        (tmp_path / "synthref" / "sag" / f"seed{seed}" / "config.json").write_text(
            json.dumps({"config": today, "seed": seed}))
    row = next(line for line in render_table("A3", tmp_path).splitlines() if line.startswith("| τ=0.5"))
    assert row.split("|")[2].strip() == "30.00 ± 0.00 (n=3)"
    assert all(run["method"] != "sag" for run, _ in table_specs.missing_runs("A3", tmp_path))


def test_one_seed_shows_a_dash_for_std_and_floor_runs_are_listed_missing(tmp_path):
    write_a3_store(tmp_path, [{t: 20.0 for t in TAUS}])
    text = render_table("A3", tmp_path)
    assert "20.00 ± – (n=1)" in text
    # seeds 1 and 2 of sag, and the floors, are missing with the exact commands that make them.
    assert (f"`python -m harness run --methods sag --dataset synthref --splits val,testA,testB "
            f"--seeds 1,2 --taus 0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9 --crf --profile full --out {tmp_path}`") in text
    assert (f"`python -m harness run --methods whole --dataset synthref --splits val,testA,testB "
            f"--seeds 0 --taus 0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9 --profile full --out {tmp_path}`") in text


def test_a_seed_without_a_needed_setting_counts_as_missing(tmp_path):
    for seed in range(3):   # only tau=0.50: A3 needs the whole sweep
        write_metrics(tmp_path, "synthref", "sag", seed,
                      {s: {"tau=0.50": 30.0} for s in ("val", "testA", "testB")})
    missing = {run["method"]: run for run, _ in table_specs.missing_runs("A3", tmp_path)}
    assert missing["sag"]["seeds"] == [0, 1, 2]
    assert missing["sag"]["taus"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def test_required_runs_are_widened_across_tables_sharing_a_store_folder():
    a2 = {(r["method"], r["dataset"]): r for r in table_specs.required_runs("A2")}
    a4 = {(r["method"], r["dataset"]): r for r in table_specs.required_runs("A4")}
    # A2 reads plain `sag` on val only, but A3 sweeps τ and A4 needs CRF and the test splits.
    assert a2[("sag", "synthref")] == a4[("sag", "synthref")]
    assert a2[("sag", "synthref")]["splits"] == ["val", "testA", "testB"]
    assert a2[("sag", "synthref")]["crf"] is True
    assert a2[("sag@T1", "synthref")] == dict(method="sag@T1", dataset="synthref", splits=["val"],
                                              seeds=[0, 1, 2], taus=[0.5], crf=False,
                                              profile="full")


def test_real_family_maps_datasets_and_adds_phrasecut():
    runs = table_specs.required_runs("A4", dataset_family="real")
    datasets = {r["dataset"] for r in runs}
    assert datasets == {"refcoco", "refcoco+", "refcocog", "phrasecut"}
    command = table_specs.run_command(next(r for r in runs if r["dataset"] == "phrasecut"))
    assert "--dataset phrasecut --data-root $DATA_ROOT --splits val" in command
    assert "--out" not in command   # the default store needs no --out


def test_csv_and_json_parse_back_to_the_same_cells(tmp_path):
    write_a3_store(tmp_path, [{t: 30.0 + s for t in TAUS} for s in range(3)])
    frame = pd.read_csv(io.StringIO(render_table("A3", tmp_path, fmt="csv", paper=True)))
    doc = json.loads(render_table("A3", tmp_path, fmt="json", paper=True))
    assert len(frame) == len(doc["cells"]) == 7   # five τ and two floors
    row = frame.set_index("row").loc["τ=0.5"]
    assert (row["mean"], row["std"], row["n"], row["paper"]) == (31.0, 1.0, 3, 34.76)
    assert frame.set_index("row").loc["whole", "n"] == 0
    assert {c["name"]: c["status"] for c in doc["checks"]} == {
        "τ-flat over 0.4–0.6 (max − min mIoU ≤ 3 points)": HOLDS}


def test_paper_figures_beside_ours_with_a_not_comparable_label(tmp_path):
    write_metrics(tmp_path, "synthref", "sag@T1", 0, {"val": {"tau=0.50": 12.5}})
    text = render_table("A2", tmp_path, paper=True)
    header = next(line for line in text.splitlines() if line.startswith("|  "))
    assert "paper: mIoU ¹" in header and "not comparable" in text
    t1 = next(line for line in text.splitlines() if line.startswith("| T=1"))
    assert "12.50 ± – (n=1)" in t1 and "| 28.00 " in t1 and "| 40.36 " in t1
    assert "paper" not in render_table("A2", tmp_path).splitlines()[2]


def test_real_family_shows_paper_figures_for_refcoco_columns(tmp_path):
    for seed in range(2):
        write_metrics(tmp_path, "refcoco", "sag", seed,
                      {"val": {"tau=0.50": 33.0 + seed, "tau=0.50+crf": 34.0}})
    data = table_data("A4", tmp_path, dataset_family="real")
    cell = data.cells[("sag", "RefCOCO val")]
    assert (cell.key["dataset"], cell.n, cell.paper) == ("refcoco", 2, 34.76)
    assert data.cells[("sag†", "PhraseCut val")].paper == 35.67
    assert data.cells[("maskclip@zeroshot", "G-Ref val")].paper == 12.74   # from Table 1
    text = render_table("A4", tmp_path, paper=True, dataset_family="real")
    assert "refcoco val (paper)" in text and "33.50 ± 0.71 (n=2)" in text


def _a4_store(root, sag, tseg, maskclip, groupvit, sag_crf, gap=8.0, tseg_gap=None):
    """Fine-tuned methods on synthref val; each with grounding gap `gap` (TSEG: `tseg_gap`)."""
    for seed in range(3):
        for method, value in (("sag", sag), ("tseg", tseg), ("maskclip", maskclip),
                              ("groupvit", groupvit)):
            crf = sag_crf if method == "sag" else value + 0.5
            grounding = {"gap": tseg_gap if method == "tseg" and tseg_gap is not None else gap,
                         "pointing": 40.0}
            raw = {m: value + seed * 0.1 for m in METRICS} | {"n": 10} | grounding
            write_metrics(root, "synthref", method, seed,
                          {"val": {"tau=0.50": raw, "tau=0.50+crf": crf}})


def _statuses(root, name):
    doc = json.loads(render_table(name, root, fmt="json", paper=True))
    return [c["status"] for c in doc["checks"]]


def test_ranking_and_crf_gain_hold_and_fail_on_constructed_stores(tmp_path):
    _a4_store(tmp_path / "good", sag=30, tseg=25, maskclip=20, groupvit=10, sag_crf=31)
    assert _statuses(tmp_path / "good", "A4") == [HOLDS, HOLDS, HOLDS]
    _a4_store(tmp_path / "bad", sag=18, tseg=25, maskclip=20, groupvit=10, sag_crf=17,
              tseg_gap=4.9)
    assert _statuses(tmp_path / "bad", "A4") == [FAILS, FAILS, FAILS]
    checks = json.loads(render_table("A4", tmp_path / "bad", fmt="json", paper=True))["checks"]
    # Columns are named as the table's header names them (not the paper's RefCOCO keys).
    assert checks[0]["detail"].startswith("synthref val: 18.10, 25.10, 20.10, 10.10")
    assert checks[2]["detail"].startswith(
        "synthref val gap: groupvit 8.00, maskclip 8.00, tseg 4.90 (< 5), sag 8.00")
    assert "PhraseCut" not in checks[2]["detail"]   # a real-family column is not "skipped" here
    assert _statuses(tmp_path / "empty", "A4") == [INSUFFICIENT] * 3


def test_a4_shows_the_grounding_gap_and_pointing_beside_miou(tmp_path):
    _a4_store(tmp_path, sag=30, tseg=25, maskclip=20, groupvit=10, sag_crf=31, gap=7.5)
    text = render_table("A4", tmp_path)
    header = next(line for line in text.splitlines() if line.startswith("|  "))
    assert "synthref val gap" in header and "synthref val pointing" in header
    sag = next(line for line in text.splitlines() if line.startswith("| SaG (ours) "))
    assert "| 7.50 ± 0.00 (n=3) " in sag and "| 40.00 ± 0.00 (n=3) " in sag
    assert "grounding gap" in text


def test_t1_drop_and_tau_flatness_fail_when_the_shape_is_wrong(tmp_path):
    for seed in range(3):
        for method, miou in (("sag@T8", 30), ("sag", 30), ("sag@T4", 30), ("sag@T2", 29),
                             ("sag@T1", 28.5)):   # only 0.5 below T=2: not a clear drop
            write_metrics(tmp_path, "synthref", method, seed, {"val": {"tau=0.50": miou}})
    assert _statuses(tmp_path, "A2") == [FAILS]
    [check] = json.loads(render_table("A2", tmp_path, fmt="json", paper=True))["checks"]
    assert "28.50 is 0.50 below the lowest of the rest (29.00); the claim needs ≥ 1.00 below" in check["detail"]
    for seed in range(3):   # T=1 above T=2: said as "above", not as a negative "below"
        write_metrics(tmp_path, "synthref", "sag@T1", seed, {"val": {"tau=0.50": 29.5}})
    [check] = json.loads(render_table("A2", tmp_path, fmt="json", paper=True))["checks"]
    assert check["status"] == FAILS and "29.50 is 0.50 above the lowest of the rest (29.00)" in check["detail"]
    for seed in range(3):
        write_metrics(tmp_path, "synthref", "sag@T1", seed, {"val": {"tau=0.50": 20}})
    assert _statuses(tmp_path, "A2") == [HOLDS]
    write_a3_store(tmp_path / "steep", [{t: 100 * t for t in TAUS}] * 3)   # 40 → 60: not flat
    assert _statuses(tmp_path / "steep", "A3") == [FAILS]


def test_unknown_table_and_format_raise_named_errors_and_a_damaged_run_is_missing(tmp_path):
    with pytest.raises(UnknownNameError, match="table 'A9'"):
        render_table("A9", tmp_path)
    with pytest.raises(ConfigError, match="--format 'xml'"):
        render_table("A3", tmp_path, fmt="xml")
    write_a3_store(tmp_path, [{t: 30.0 for t in TAUS}] * 3)
    (tmp_path / "synthref" / "sag" / "seed1" / "metrics.json").write_text("{not json")
    missing = [run for run, _ in table_specs.missing_runs("A3", tmp_path) if run["method"] == "sag"]
    assert [run["seeds"] for run in missing] == [[1]]


def test_every_table_spec_loads_and_finds_its_paper_figures(tmp_path):
    assert set(table_specs.table_names()) >= {"A2", "A3", "A4", "T3"}
    for name in table_specs.table_names():
        for family in table_specs.FAMILIES:
            data = table_data(name, tmp_path, family)
            if "paper_csv" in data.spec:   # C1 (calibration) is ours, not the paper's
                assert any(cell.paper is not None for cell in data.cells.values()), name
    t3 = table_data("T3", tmp_path)
    assert t3.cells[("G6x2", "mIoU")].paper == 34.76 and t3.cells[("min", "cIoU")].paper == 0.16


def test_adding_a_table_is_adding_a_config(tmp_path, monkeypatch):
    specs = tmp_path / "tables"
    specs.mkdir()
    (specs / "T2.py").write_text(
        'title = "Table 2 — ablations"\npaper_csv = "T2.csv"\n'
        'dataset = "synthref"\nsplit = "val"\nsetting = "tau=0.50"\n'
        'rows = [dict(key="full", method="sag", paper="full model"),\n'
        '        dict(key="no_recon", method="sag@no_recon", paper="without the reconstruction loss")]\n'
        'columns = [dict(key=m, metric=m, paper=m) for m in ["cIoU", "mIoU"]]\n'
        'runs = [dict(method="sag"), dict(method="sag@no_recon", seeds=[0])]\n')
    monkeypatch.setattr(table_specs, "tables_dir", lambda: specs)
    assert table_specs.table_names() == ["T2"]
    write_metrics(tmp_path / "runs", "synthref", "sag@no_recon", 0, {"val": {"tau=0.50": 20.0}})
    data = table_data("T2", tmp_path / "runs")
    assert data.cells[("no_recon", "mIoU")].paper == 21.84
    assert data.cells[("no_recon", "cIoU")].mean == 20.0
    assert [run["method"] for run, _ in data.missing] == ["sag"]


def test_calibration_table_shows_each_tau_and_the_oracle_best(tmp_path):
    curve = {0.1: 5.0, 0.2: 9.0, 0.3: 14.0, 0.4: 12.0, 0.5: 10.0, 0.6: 8.0, 0.7: 6.0, 0.8: 4.0, 0.9: 2.0}
    for seed in range(3):
        write_metrics(tmp_path, "synthref", "maskclip@zeroshot", seed,
                      {"val": {f"tau={t:.2f}": v + seed for t, v in curve.items()}})
    data = table_data("C1", tmp_path)
    assert data.cells[("τ=0.5", "maskclip@zeroshot")].mean == pytest.approx(11.0)
    best = data.cells[("best τ", "maskclip@zeroshot")]
    assert best.mean == pytest.approx(15.0) and best.note == "at τ=0.3"
    assert best.key["setting"] == "tau=0.30"
    row = next(line for line in render_table("C1", tmp_path).splitlines() if line.startswith("| best τ"))
    assert "15.00 ± 1.00 (n=3) at τ=0.3" in row
