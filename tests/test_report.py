"""The report and its plots from a store written here."""

import numpy as np
import pytest
from PIL import Image

from harness.errors import ConfigError
from harness.report.plots import plot_table
from harness.report.markdown import store_families, write_report
from test_tables import TAUS, write_a3_store, write_metrics

CONFIG = {"profile": "full", "config_hash": "abc123", "git_revision": "0123456789abcdef",
          "versions": {"torch": "2.14.1", "python": "3.11.9"},
          "timings_s": {"fit": 12.25, "predict": 1.5}}


def _store(root):
    write_a3_store(root, [{t: 30.0 + seed + 10 * t for t in TAUS} for seed in range(3)])
    for seed in range(3):
        for method, miou in (("sag@T8", 33), ("sag@T4", 32), ("sag@T2", 31), ("sag@T1", 25)):
            write_metrics(root, "synthref", method, seed, {"val": {"tau=0.50": miou + seed}},
                          config=CONFIG)
    return root


def test_report_holds_every_table_checks_runs_and_versions(tmp_path):
    store = _store(tmp_path / "runs")
    out = write_report(store, tmp_path / "out" / "report.md")
    text = out.read_text()
    for name in ("A2", "A3", "A4", "T3"):
        assert f"### {name}: " in text
    assert "| τ=0.5 " in text and "36.00 ± 1.00 (n=3)" in text          # A3 from the store
    assert "T=1 clearly below T=2..8 (mIoU, by ≥ 1 point): **holds**" in text
    assert "τ-flat over 0.4–0.6 (max − min mIoU ≤ 3 points): **holds**" in text
    assert "`python -m harness run --methods tseg --dataset synthref " in text   # missing runs
    runs = [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines()
            if line.startswith("| synthref ")]
    # dataset, method, seed, hash, profile, git, then the timings per stage (fit, predict)
    assert ["synthref", "sag@T1", "2", "hsag@T1", "full", "0123456789", "12.2", "1.5"] in runs
    assert ["synthref", "sag", "0", "hsag", "–", "–", "–", "–"] in runs   # no config.json
    assert "| fit (s) " in text and "| torch " in text and "2.14.1" in text
    assert "![A2 (synthref)](report_A2_synthref.png)" in text
    assert "## Tables (real datasets)" not in text


def test_report_plots_are_real_pngs_that_show_the_data(tmp_path):
    store = _store(tmp_path / "runs")
    write_report(store, tmp_path / "report.md")
    for name in ("A2", "A3"):
        with Image.open(tmp_path / f"report_{name}_synthref.png") as image:
            assert image.format == "PNG" and image.size[0] > 0 and image.size[1] > 0
    empty = plot_table("A2", tmp_path / "none", tmp_path / "empty.png")   # the paper's lines only
    ours = np.asarray(Image.open(tmp_path / "report_A2_synthref.png").convert("L"), dtype=float)
    paper_only = np.asarray(Image.open(empty).convert("L"), dtype=float)
    assert ours.shape == paper_only.shape and np.abs(ours - paper_only).mean() > 0.5


def test_entity_figure_hook_and_existing_file_are_included(tmp_path):
    def draw(path):
        Image.new("RGB", (8, 8), (255, 0, 0)).save(path)

    out = write_report(tmp_path / "empty", tmp_path / "a" / "report.md", entity_figure=draw)
    assert "![entities](entities.png)" in out.read_text()
    assert Image.open(tmp_path / "a" / "entities.png").size == (8, 8)
    plain = write_report(tmp_path / "empty", tmp_path / "b" / "report.md")
    assert "entities" not in plain.read_text()
    assert "No runs stored" in plain.read_text()


def test_families_follow_the_store_and_unplottable_tables_are_refused(tmp_path):
    assert store_families(tmp_path) == ["synthref"]
    write_metrics(tmp_path, "refcoco", "sag", 0, {"val": {"tau=0.50": 30.0}})
    assert store_families(tmp_path) == ["real"]
    with pytest.raises(ConfigError, match="A4.py: no row has an `x`"):
        plot_table("A4", tmp_path, tmp_path / "a4.png")


def test_report_says_whether_each_stored_method_used_the_words(tmp_path):
    for seed, gap in enumerate((6.0, 8.0)):
        summary = {"A@0.3": 1.0, "A@0.5": 1.0, "A@0.7": 1.0, "cIoU": 20.0, "mIoU": 21.0, "n": 10,
                   "gap": gap, "pointing": 40.0 + seed, "mIoU_right": 22.0, "mIoU_swap": 22.0 - gap,
                   "n_gap": 4}
        write_metrics(tmp_path / "runs", "synthref", "sag@T1", seed, {"val": {"tau=0.50": summary}})
    write_metrics(tmp_path / "runs", "synthref", "whole", 0, {"val": {"tau=0.50": 3.0}})  # no gap
    text = write_report(tmp_path / "runs", tmp_path / "report.md").read_text()
    assert "## Grounding: did each method use the words?" in text
    rows = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in text.split("## Grounding")[1].split("\n## ")[0].splitlines()
            if line.startswith("| synthref ")}
    assert rows["sag@T1"][4:] == ["21.00 ± 0.00 (n=2)", "7.00 ± 1.41 (n=2)", "40.50 ± 0.71 (n=2)"]
    assert rows["whole"][4:] == ["3.00 ± – (n=1)", "–", "–"]   # stored before the gap existed
