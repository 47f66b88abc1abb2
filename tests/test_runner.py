"""harness/run/runner.py end to end on a tiny REFER fixture with a fixed-box segmenter.

The segmenter answers every expression with the same graded map at its input size S: 1.0 inside
a box, 0.4 on a 2-pixel ring around it, 0 elsewhere. So τ = 0.3 takes box + ring and τ = 0.5 or
0.7 the box alone — figures computed by hand below with numpy from the fixture's known masks.
"""

import json
import os

import numpy as np
import pytest
import torch

from harness import registry, store
from harness.registry import SEGMENTERS
from harness.run.runner import RunOptions, run_many
from harness.segmenter import Segmenter
from tests.refer_fixture import SIZE, hand_metrics, write_refer_fixture

CALLS = {"fit": 0, "predict": 0}


@SEGMENTERS.register_module("test_fixed_box", force=True)
class FixedBox(Segmenter):
    def fit(self, train, train_cfg, seed, ctx):
        CALLS["fit"] += 1
        with pytest.raises(Exception):
            train.mask(0)  # the train split never exposes masks
        # The runner's plumbing rides in the FitContext, never in the user's train config.
        assert set(train_cfg) == {"batch_size", "lr", "max_steps", "epochs"}
        assert ctx.state.tag and ctx.state.directory.name == "train_state" and not ctx.state.resume
        return {"loss": [1.0, 0.5], "epochs": train_cfg["epochs"]}

    def predict(self, images, texts, samples=None):
        CALLS["predict"] += 1
        y0, y1, x0, x1 = self.cfg["box"]
        ring = self.cfg.get("ring", 2)
        size = images.shape[-1]
        score = torch.zeros(images.shape[0], size, size)  # [B, S, S]
        if ring:
            score[:, max(y0 - ring, 0):y1 + ring, max(x0 - ring, 0):x1 + ring] = 0.4
        score[:, y0:y1, x0:x1] = 1.0
        return score


BOX = (8, 20, 6, 18)


def _iou(pred: np.ndarray, gt: np.ndarray) -> float:
    return (pred & gt).sum() / (pred | gt).sum()


def box_prediction(ring: int) -> np.ndarray:
    y0, y1, x0, x1 = BOX
    pred = np.zeros((SIZE, SIZE), dtype=bool)
    pred[max(y0 - ring, 0):y1 + ring, max(x0 - ring, 0):x1 + ring] = True
    return pred


@pytest.fixture(autouse=True)
def only_reference_methods(monkeypatch):
    """The registry holds the floors and this test's segmenter only (fast, isolated)."""
    monkeypatch.setattr(registry, "METHOD_MODULES", ("harness.reference_segmenters",))
    monkeypatch.setattr(registry, "_loaded", False)
    CALLS.update(fit=0, predict=0)


@pytest.fixture(scope="module")
def refer_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("refer")
    return root, write_refer_fixture(root)


@pytest.fixture
def toy_config(tmp_path):
    path = tmp_path / "test_fixed_box.py"
    path.write_text(f"_base_ = ['{os.path.abspath('configs/_base_/synthref.py')}']\n"
                    f"method = dict(type='test_fixed_box', input_size={SIZE}, box={BOX})\n"
                    "train = dict(epochs=3)\n"
                    "runtime = dict(eval_batch_size=2)\n")
    return path


def options(refer_root, toy_config, tmp_path, **kwargs):
    defaults = dict(dataset="synthref", data_root=refer_root[0], out=tmp_path / "runs",
                    config_path=toy_config, progress=False, crf_workers=1)
    return RunOptions(**{**defaults, **kwargs})


def test_store_layout_and_metrics_equal_hand_computation(refer_root, toy_config, tmp_path):
    opts = options(refer_root, toy_config, tmp_path, taus=[0.3, 0.5, 0.7], splits=["val", "testA"])
    [outcome] = run_many(["test_fixed_box"], [3], opts)
    folder = tmp_path / "runs" / "synthref" / "test_fixed_box" / "seed3"
    assert outcome.run_dir == folder and outcome.status == "done"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "metrics.json", "samples.csv"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics) == {"method", "dataset", "split_by", "seed", "config_hash", "splits"}
    assert (metrics["method"], metrics["dataset"], metrics["seed"]) == ("test_fixed_box", "synthref", 3)
    assert metrics["split_by"] == "unc"
    truth = refer_root[1]
    for split in ("val", "testA"):
        gts = [e.gt for e in truth[split]]
        assert set(metrics["splits"][split]) == {"tau=0.30", "tau=0.50", "tau=0.70"}
        for setting, ring in (("tau=0.30", 2), ("tau=0.50", 0), ("tau=0.70", 0)):
            expected = hand_metrics([box_prediction(ring)] * len(gts), gts)
            got = metrics["splits"][split][setting]
            assert set(got) == {"A@0.3", "A@0.5", "A@0.7", "cIoU", "mIoU", "n", "pointing", "gap",
                                "mIoU_right", "mIoU_swap", "n_gap"}
            for key, value in expected.items():
                assert got[key] == pytest.approx(value, abs=1e-4), (split, setting, key)
            # Each image holds two refs, each the other's partner; one map for every expression.
            per_ref = {e.ref_id: _iou(box_prediction(ring), e.gt) for e in truth[split]}
            assert got["n_gap"] == len(per_ref)
            assert got["mIoU_swap"] == pytest.approx(100 * np.mean(list(per_ref.values())), abs=1e-4)
            assert got["gap"] == 0.0 and got["mIoU_right"] == got["mIoU_swap"]
    assert metrics["splits"]["val"]["tau=0.30"]["mIoU"] != metrics["splits"]["val"]["tau=0.50"]["mIoU"]

    config = json.loads((folder / "config.json").read_text())
    assert config["config_hash"] == metrics["config_hash"]
    assert config["train_log"] == {"loss": [1.0, 0.5], "epochs": 3}
    assert {"torch", "numpy", "open_clip", "timm", "transformers", "mmengine", "python"} <= set(config["versions"])
    assert set(config["timings_s"]) == {"build", "fit", "data", "predict", "crf", "metrics"}
    assert config["config"]["method"]["box"] == list(BOX)
    rows = (folder / "samples.csv").read_text().splitlines()
    assert rows[0] == ("split,setting,sample_id,ref_id,image_id,I,U,IoU,pointing,swap_ref_id,I_swap,"
                       "U_swap,IoU_swap")
    assert len(rows) - 1 == 3 * (len(truth["val"]) + len(truth["testA"]))
    first = truth["val"][0]
    inter = int((box_prediction(2) & first.gt).sum())
    assert rows[1].startswith(f"val,tau=0.30,{first.sent_id},{first.ref_id},")
    assert rows[1].split(",")[5] == str(inter)          # after the expression's image id


def test_tau_sweep_and_crf_from_one_prediction_pass(refer_root, toy_config, tmp_path):
    from harness.eval.postprocess import dense_crf
    from harness.data.images import read_rgb

    opts = options(refer_root, toy_config, tmp_path, taus=[0.3, 0.5], crf=True, splits=["val"])
    [outcome] = run_many(["test_fixed_box"], [0], opts)
    n = len(refer_root[1]["val"])
    assert CALLS["predict"] == -(-n // 2)  # one call per batch of 2, for all four settings
    by_setting = outcome.metrics["splits"]["val"]
    assert set(by_setting) == {"tau=0.30", "tau=0.50", "tau=0.30+crf", "tau=0.50+crf"}
    # +crf by hand: the same (min-maxed) map through DenseCRF with each image, then ≥ τ.
    score = np.where(box_prediction(0), 1.0, np.where(box_prediction(2), 0.4, 0.0))
    score = (score - score.min()) / (score.max() - score.min() + 1e-9)
    val = refer_root[1]["val"]
    for tau in (0.3, 0.5):
        preds = [dense_crf(read_rgb(e.image), score) >= tau for e in val]
        expected = hand_metrics(preds, [e.gt for e in val])
        assert by_setting[f"tau={tau:.2f}+crf"]["mIoU"] == pytest.approx(expected["mIoU"], abs=1e-4)


def test_second_identical_run_recomputes_nothing(refer_root, toy_config, tmp_path, capsys):
    opts = options(refer_root, toy_config, tmp_path, splits=["val"])
    run_many(["test_fixed_box"], [0], opts)
    path = tmp_path / "runs" / "synthref" / "test_fixed_box" / "seed0" / "metrics.json"
    before = os.stat(path)
    CALLS.update(fit=0, predict=0)
    [outcome] = run_many(["test_fixed_box"], [0], opts)
    after = os.stat(path)
    assert outcome.status == "skipped" and CALLS == {"fit": 0, "predict": 0}
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "skip synthref/test_fixed_box/seed0 (done)" in capsys.readouterr().out


def test_changed_override_changes_hash_and_reruns(refer_root, toy_config, tmp_path):
    opts = options(refer_root, toy_config, tmp_path, splits=["val"])
    [first] = run_many(["test_fixed_box"], [0], opts)
    # A constant map: min-max would make it all zeros, so the protocol is switched off too.
    opts.overrides = ["method.box=(0, 32, 0, 32)", "protocol.minmax=False"]
    CALLS.update(fit=0, predict=0)
    [second] = run_many(["test_fixed_box"], [0], opts)
    assert second.status == "done" and CALLS["fit"] == 1
    assert second.metrics["config_hash"] != first.metrics["config_hash"]
    stored = store.read_metrics(second.run_dir)
    assert stored["config_hash"] == second.metrics["config_hash"]
    gts = [e.gt for e in refer_root[1]["val"]]
    whole = hand_metrics([np.ones((SIZE, SIZE), bool)] * len(gts), gts)
    assert stored["splits"]["val"]["tau=0.50"]["mIoU"] == pytest.approx(whole["mIoU"], abs=1e-4)


def test_asking_more_settings_keeps_the_stored_ones(refer_root, toy_config, tmp_path):
    opts = options(refer_root, toy_config, tmp_path, splits=["val"], taus=[0.3])
    run_many(["test_fixed_box"], [0], opts)
    opts.taus, opts.splits = [0.7], ["testB"]
    [outcome] = run_many(["test_fixed_box"], [0], opts)
    assert outcome.status == "done"
    assert {split: sorted(s) for split, s in outcome.metrics["splits"].items()} == {
        "val": ["tau=0.30", "tau=0.70"], "testB": ["tau=0.30", "tau=0.70"]}


def test_failed_metrics_write_leaves_run_incomplete_then_recovers(refer_root, toy_config,
                                                                  tmp_path, monkeypatch):
    opts = options(refer_root, toy_config, tmp_path, splits=["testA"])
    folder = tmp_path / "runs" / "synthref" / "test_fixed_box" / "seed0"
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("metrics.json"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(store.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        run_many(["test_fixed_box"], [0], opts)
    assert not (folder / "metrics.json").exists()
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))
    (folder / ".metrics.json.killed.tmp").write_text('{"half')  # what a SIGKILL would leave
    monkeypatch.setattr(store.os, "replace", real_replace)
    [outcome] = run_many(["test_fixed_box"], [0], opts)
    assert outcome.status == "done" and (folder / "metrics.json").is_file()
    assert not list(folder.glob(".*.tmp"))


def test_resize_to_original_size_and_limit(refer_root, toy_config, tmp_path):
    """S = 16 on 32×32 images: the binary box, bilinearly doubled, is exactly the box ×2 for τ in
    (1/4, 9/16] (edge pixels get 3/4 and 1/4 per axis, inner corners 3/4 · 3/4)."""
    opts = options(refer_root, toy_config, tmp_path, splits=["val"], taus=[0.3, 0.5], limit=4,
                   overrides=["method.input_size=16", "method.box=(4, 10, 3, 9)", "+method.ring=0"])
    [outcome] = run_many(["test_fixed_box"], [0], opts)
    gts = [e.gt for e in refer_root[1]["val"][:4]]
    expected = hand_metrics([box_prediction(0)] * 4, gts)
    for setting in ("tau=0.30", "tau=0.50"):
        got = outcome.metrics["splits"]["val"][setting]
        assert got["n"] == 4
        assert got["mIoU"] == pytest.approx(expected["mIoU"], abs=1e-4)
        assert got["cIoU"] == pytest.approx(expected["cIoU"], abs=1e-4)


def test_finetune_false_skips_fit_and_checkpoint_is_saved(refer_root, toy_config, tmp_path):
    opts = options(refer_root, toy_config, tmp_path, splits=["testB"],
                   overrides=["+method.finetune=False", "runtime.save_checkpoint=True"])
    [outcome] = run_many(["test_fixed_box"], [0], opts)
    assert CALLS["fit"] == 0
    assert (outcome.run_dir / "model.pt").is_file()
    assert torch.load(outcome.run_dir / "model.pt") == {}


def test_run_is_pinned_to_the_configs_thread_count(refer_root, toy_config, tmp_path, one_thread):
    """CPU figures depend on the intra-op thread count (harness/seeding.py), so a run computes
    with `runtime.torch_threads` whatever the caller's setting (one thread here), records it,
    and gives the caller's back."""
    opts = options(refer_root, toy_config, tmp_path, splits=["val"],
                   overrides=["runtime.torch_threads=2"])
    [pinned] = run_many(["test_fixed_box"], [0], opts)
    assert torch.get_num_threads() == 1
    assert json.loads((pinned.run_dir / "config.json").read_text())["torch_threads"] == 2
    opts = options(refer_root, toy_config, tmp_path / "other", splits=["val"],
                   overrides=["runtime.torch_threads=1"])
    [other] = run_many(["test_fixed_box"], [0], opts)
    assert other.metrics["config_hash"] != pinned.metrics["config_hash"]   # a different computation
