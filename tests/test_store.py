"""harness/store.py: layout, atomic writes, completion by config hash, and the metrics frame."""

import json

import pytest

from harness import store


def summary(miou, n=4):
    return {"A@0.3": 75.0, "A@0.5": 50.0, "A@0.7": 25.0, "cIoU": 40.123456789, "mIoU": miou,
            "n": n}


def write_run(root, dataset, spec, seed, config_hash, mious):
    folder = store.run_dir(root, dataset, spec, seed)
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
    rows = [dict(split="val", setting="tau=0.50", sample_id=7, ref_id=3, I=2, U=3, IoU=2 / 3,
                 pointing=1, swap_ref_id=4, I_swap=1, U_swap=3, IoU_swap=1 / 3),
            dict(split="val", setting="tau=0.50", sample_id=8, ref_id=5, I=2, U=3, IoU=2 / 3,
                 pointing=0, swap_ref_id=None, I_swap=None, U_swap=None, IoU_swap=None)]
    store.write_samples_atomic(tmp_path / "samples.csv", rows)
    assert (tmp_path / "samples.csv").read_text() == (
        "split,setting,sample_id,ref_id,I,U,IoU,pointing,swap_ref_id,I_swap,U_swap,IoU_swap\n"
        "val,tau=0.50,7,3,2,3,0.666667,1,4,1,3,0.333333\n"
        "val,tau=0.50,8,5,2,3,0.666667,0,,,,\n")   # no partner ref: swap fields blank


def test_iter_runs_and_frame(tmp_path):
    write_run(tmp_path, "synthref", "sag", 0, "h", {"val": 30.0, "testA": 40.0})
    write_run(tmp_path, "synthref", "sag", 1, "h", {"val": 32.0, "testA": 44.0})
    write_run(tmp_path, "synthref+", "whole@x", 0, "h", {"val": 5.0})
    write_run(tmp_path, "synthref", "sag", 10, "h", {"val": 34.0, "testA": 48.0})
    incomplete = store.run_dir(tmp_path, "synthref", "sag", 2)
    incomplete.mkdir(parents=True)                      # no metrics.json: not a run yet
    runs = list(store.iter_runs(tmp_path))
    assert [folder.relative_to(tmp_path).as_posix() for folder, _ in runs] == [
        "synthref/sag/seed0", "synthref/sag/seed1", "synthref/sag/seed10", "synthref+/whole@x/seed0"]
    frame = store.load_metrics_frame(tmp_path)
    assert list(frame.columns) == ["dataset", "method", "seed", "split", "setting", "metric",
                                   "value"]
    assert len(frame) == (2 + 2 + 2 + 1) * 6
    miou = frame[(frame.metric == "mIoU") & (frame.dataset == "synthref") & (frame.split == "testA")]
    assert sorted(miou.value) == [40.0, 44.0, 48.0] and miou.value.mean() == 44.0
    assert sorted(miou.seed) == [0, 1, 10]
    assert set(frame[frame.dataset == "synthref+"].method) == {"whole@x"}
    assert store.load_metrics_frame(tmp_path / "empty").empty
