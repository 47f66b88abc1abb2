"""harness/store.py: layout, atomic writes, completion by config hash, the metrics frame, and
which stored fits a run may share."""

import json

import pytest
import torch

from harness import store
def summary(miou, n=4):
    return {"A@0.3": 75.0, "A@0.5": 50.0, "A@0.7": 25.0, "cIoU": 40.123456789, "mIoU": miou,
            "n": n}


def write_run(root, dataset, spec, seed, config_hash, mious):
    folder = store.Store(root).run_dir(dataset, spec, seed)
    store.begin_run(folder)
    splits = {split: {"tau=0.50": summary(miou)} for split, miou in mious.items()}
    document = store.metrics_document(spec, dataset, seed, config_hash, splits)
    store.write_metrics_atomic(folder / store.METRICS_FILE, document)
    return folder


def test_layout_and_metrics_document(tmp_path):
    folder = write_run(tmp_path, "synthref", "sag@T1", 2, "abc123abc123", {"val": 31.234567})
    assert folder == tmp_path / "synthref" / "sag@T1" / "seed2"
    text = (folder / "metrics.json").read_text()
    document = json.loads(text)
    assert list(document) == ["config_hash", "dataset", "method", "seed", "split_by", "splits"]  # sorted
    assert document["method"] == "sag@T1" and document["seed"] == 2
    assert document["splits"]["val"]["tau=0.50"] == {
        "A@0.3": 75.0, "A@0.5": 50.0, "A@0.7": 25.0, "cIoU": 40.1235, "mIoU": 31.2346, "n": 4}
    assert document["split_by"] is None                   # the runner records the scheme read
    # Deterministic bytes: the same document written again is byte-identical.
    write_run(tmp_path, "synthref", "sag@T1", 2, "abc123abc123", {"val": 31.234567})
    assert (folder / "metrics.json").read_text() == text


def test_is_done_needs_same_hash_and_every_setting(tmp_path):
    folder = write_run(tmp_path, "synthref", "sag", 0, "h1", {"val": 30.0})
    assert store.is_done(folder, "h1")
    assert store.is_done(folder, "h1", ["val"], ["tau=0.50"])
    assert not store.is_done(folder, "h2")
    assert not store.is_done(folder, "h1", ["testA"], ["tau=0.50"])
    assert not store.is_done(folder, "h1", ["val"], ["tau=0.50+crf"])
    assert not store.is_done(tmp_path / "nowhere", "h1")
    assert store.is_done(folder, None, ["val"], ["tau=0.50"])   # None: stored under any hash
    (folder / "metrics.json").write_text("{ truncated")
    assert not store.is_done(folder, "h1")


def test_failed_write_leaves_neither_file_nor_temp(tmp_path):
    target = tmp_path / "run" / "metrics.json"

    class Boom(RuntimeError):
        pass

    def half_write(handle):
        handle.write(b'{"half": ')
        raise Boom("disk full")

    with pytest.raises(Boom):
        store._write_atomic(target, half_write)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []
    # An existing file stays intact when its replacement fails.
    store.write_json_atomic(target, {"ok": 1})
    with pytest.raises(Boom):
        store._write_atomic(target, half_write)
    assert json.loads(target.read_text()) == {"ok": 1}


def test_leftover_temp_files_are_cleaned_and_old_files_replaced(tmp_path):
    folder = write_run(tmp_path, "synthref", "sag", 0, "h1", {"val": 30.0})
    leftover = folder / ".samples.csv.x1y2.tmp"   # as a killed run would leave it
    leftover.write_text("partial")
    (folder / "model.pt").write_bytes(b"old")
    assert store.clean_tmp(folder) == [leftover]
    leftover.write_text("partial")
    store.begin_run(folder)
    assert sorted(p.name for p in folder.iterdir()) == []


def test_samples_csv_rows(tmp_path):
    rows = [dict(split="val", setting="tau=0.50", sample_id=7, ref_id=3, image_id=11, I=2, U=3,
                 IoU=2 / 3, pointing=1, swap_ref_id=4, I_swap=1, U_swap=3, IoU_swap=1 / 3),
            dict(split="val", setting="tau=0.50", sample_id=8, ref_id=5, image_id=12, I=2, U=3, IoU=2 / 3,
                 pointing=0, swap_ref_id=None, I_swap=None, U_swap=None, IoU_swap=None)]
    store.write_samples_atomic(tmp_path / "samples.csv", rows)
    assert (tmp_path / "samples.csv").read_text() == (
        "split,setting,sample_id,ref_id,image_id,I,U,IoU,pointing,swap_ref_id,I_swap,U_swap,IoU_swap\n"
        "val,tau=0.50,7,3,11,2,3,0.666667,1,4,1,3,0.333333\n"
        "val,tau=0.50,8,5,12,2,3,0.666667,0,,,,\n")   # no partner ref: swap fields blank


def test_runs_and_frame(tmp_path):
    write_run(tmp_path, "synthref", "sag", 0, "h", {"val": 30.0, "testA": 40.0})
    write_run(tmp_path, "synthref", "sag", 1, "h", {"val": 32.0, "testA": 44.0})
    write_run(tmp_path, "synthref+", "whole@x", 0, "h", {"val": 5.0})
    write_run(tmp_path, "synthref", "sag", 10, "h", {"val": 34.0, "testA": 48.0})
    incomplete = store.Store(tmp_path).run_dir("synthref", "sag", 2)
    incomplete.mkdir(parents=True)                      # no metrics.json: not a run yet
    runs = list(store.Store(tmp_path).runs())
    assert [folder.relative_to(tmp_path).as_posix() for folder, _ in runs] == [
        "synthref/sag/seed0", "synthref/sag/seed1", "synthref/sag/seed10", "synthref+/whole@x/seed0"]
    frame = store.Store(tmp_path).frame()
    assert list(frame.columns) == ["dataset", "method", "seed", "split", "setting", "metric",
                                   "value", "config_hash"]
    assert len(frame) == (2 + 2 + 2 + 1) * 6
    miou = frame[(frame.metric == "mIoU") & (frame.dataset == "synthref") & (frame.split == "testA")]
    assert sorted(miou.value) == [40.0, 44.0, 48.0] and miou.value.mean() == 44.0
    assert sorted(miou.seed) == [0, 1, 10]
    assert set(frame[frame.dataset == "synthref+"].method) == {"whole@x"}
    assert store.Store(tmp_path / "empty").frame().empty


def test_trained_and_fitted_runs_are_complete_runs_that_kept_a_model(tmp_path):
    results = store.Store(tmp_path)
    for spec in ("sag@T1", "sag", "sag@avg", "tseg"):
        folder = write_run(tmp_path, "synthref", spec, 0, "h", {"val": 30.0})
        store.save_checkpoint_atomic(folder / store.CHECKPOINT_FILE, {"w": torch.ones(2)})
        store.write_json_atomic(folder / store.CONFIG_FILE, {"method": spec})
    (results.run_dir("synthref", "tseg", 0) / store.METRICS_FILE).unlink()   # incomplete
    store.write_json_atomic(results.run_dir("synthref", "sag@T1", 0) / store.CONFIG_FILE, {})
    (results.run_dir("synthref", "sag@avg", 0) / store.CONFIG_FILE).unlink()  # no record: no fit
    write_run(tmp_path, "synthref", "sag", 1, "h", {"val": 30.0})            # no model.pt
    write_run(tmp_path, "synthref+", "sag", 0, "h", {"val": 30.0})           # another dataset
    store.save_checkpoint_atomic(results.run_dir("synthref+", "sag", 0) / "model.pt", {})
    trained = [f.relative_to(tmp_path).as_posix() for f, _ in results.trained_runs(method_specs=["sag"])]
    assert trained == ["synthref/sag/seed0", "synthref+/sag/seed0"]
    assert [m["method"] for _, m in results.trained_runs("synthref", 0)] == ["sag", "sag@T1", "sag@avg"]
    # Fit sharing: the run's own folder first, then the other specs of its dataset and seed.
    shared = [(f.parent.name, record) for f, record in results.fitted_runs("synthref", "sag@T1", 0)]
    assert shared == [("sag@T1", {}), ("sag", {"method": "sag"})]
    assert [f.parent.name for f, _ in results.fitted_runs("synthref", "sag@T8", 0)] == ["sag", "sag@T1"]
    assert list(results.fitted_runs("synthref", "sag", 1)) == []
    assert torch.equal(store.load_checkpoint(results.run_dir("synthref", "sag", 0))["w"], torch.ones(2))
