"""`sag` through the real runner (smoke profile: tiny stand-ins, a few steps) and the entity figure."""

import json

import numpy as np
from PIL import Image

from harness.cli import main
from harness.report.figures import entity_figure
from harness.run.runner import RunOptions, run_many


def test_smoke_run_writes_metrics_and_a_checkpoint_the_entity_figure_draws(synthref_root, tmp_path):
    opts = RunOptions(dataset="synthref", profile="smoke", splits=["val"], limit=8, data_root=synthref_root,
                      out=tmp_path / "runs", progress=False, crf_workers=1)
    [outcome] = run_many(["sag"], [0], opts)
    metrics = json.loads((outcome.run_dir / "metrics.json").read_text())
    val = metrics["splits"]["val"]["tau=0.50"]
    assert val["n"] == 8 and 0.0 <= val["mIoU"] <= 100.0
    record = json.loads((outcome.run_dir / "config.json").read_text())
    log = record["train_log"]
    assert log["steps"] == 4 and all(np.isfinite(log["loss"]))
    assert (outcome.run_dir / "model.pt").is_file()               # runtime.save_checkpoint=True

    png = entity_figure(tmp_path / "runs", "sag", "synthref", n=2, out=tmp_path / "fig.png",
                        data_root=synthref_root)
    with Image.open(png) as im:
        width, height = im.size
        pixels = np.asarray(im.convert("L"))
    # 2 rows x (image, ground truth, prediction, top-3 entities) panels, and not a blank canvas
    assert width > height and pixels.std() > 10

    # `harness report` draws the same figure from the store by itself (no entities.png given).
    assert main(["report", "--results", str(tmp_path / "runs"), "--out", str(tmp_path / "rep" / "report.md")]) == 0
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## Qualitative: discovered entities" in text and "![entities](entities.png)" in text
    with Image.open(tmp_path / "rep" / "entities.png") as im:
        assert np.asarray(im.convert("L")).std() > 10


def test_inference_variant_predicts_from_the_base_runs_model_with_identical_figures(synthref_root, tmp_path, capsys):
    """`sag@avg` changes only the inference scheme (SaG.EVAL_ONLY_KEYS): beside a stored `sag` run
    it restores that run's model instead of training, and its figures equal a run that trained."""
    def options(out):
        return RunOptions(dataset="synthref", profile="smoke", splits=["val"], limit=8, data_root=synthref_root,
                          out=out, progress=False, crf_workers=1)

    shared, alone = tmp_path / "shared", tmp_path / "alone"
    run_many(["sag"], [0], options(shared))
    capsys.readouterr()
    [restored] = run_many(["sag@avg"], [0], options(shared))
    assert f"from {shared / 'synthref' / 'sag' / 'seed0' / 'model.pt'} (same fit" in capsys.readouterr().out
    record = json.loads((restored.run_dir / "config.json").read_text())
    assert record["timings_s"]["fit"] == 0.0 and record["train_log"]["steps"] == 4
    base = json.loads((shared / "synthref" / "sag" / "seed0" / "config.json").read_text())
    assert record["fit_hash"] == base["fit_hash"] and record["config_hash"] != base["config_hash"]
    [trained] = run_many(["sag@avg"], [0], options(alone))
    assert json.loads((trained.run_dir / "config.json").read_text())["timings_s"]["fit"] > 0
    for name in ("metrics.json", "samples.csv"):
        assert (restored.run_dir / name).read_bytes() == (trained.run_dir / name).read_bytes(), name
    # A variant that changes training (T) never shares: it trains.
    [other] = run_many(["sag@T1"], [0], options(shared))
    assert json.loads((other.run_dir / "config.json").read_text())["timings_s"]["fit"] > 0
    # The same in a run's own folder: `sag` re-run under another inference scheme predicts from
    # its stored model (the old settings go, the new ones equal the trained variant's).
    opts = options(shared)
    opts.overrides = ["method.inference=avg"]
    capsys.readouterr()
    [again] = run_many(["sag"], [0], opts)
    assert f"restored synthref/sag/seed0 from {shared / 'synthref' / 'sag' / 'seed0' / 'model.pt'}" in capsys.readouterr().out
    assert again.metrics["splits"] == json.loads((trained.run_dir / "metrics.json").read_text())["splits"]
