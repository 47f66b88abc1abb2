"""harness/data/identity.py and the store's use of it: a run's identity covers the split scheme
and the annotation files read, so G-Ref google and umd are two results, and an edited
annotation file is noticed (the stored run is not reused)."""

import json
import os

import pytest

from harness import store
from harness.cli import main
from harness.data.identity import data_identity, file_digest
from harness.errors import DataError
from official_data import write_phrasecut, write_refer


def test_identity_names_the_scheme_and_fingerprints_the_files(tmp_path):
    write_refer(tmp_path / "a", "refcocog", schemes=("google", "umd"))
    google = data_identity("refcocog", tmp_path / "a")
    umd = data_identity("refcocog", tmp_path / "a", split_by="umd")
    assert google["split_by"] == "google" and umd["split_by"] == "umd"
    assert set(google["files"]) == {"refs(google).p", "instances.json"}
    assert google["fingerprint"] != umd["fingerprint"]
    (tmp_path / "a").rename(tmp_path / "b")                  # moving the data changes nothing
    assert data_identity("refcocog", tmp_path / "b") == google
    instances = tmp_path / "b" / "refcocog" / "instances.json"
    doc = json.loads(instances.read_text())
    doc["annotations"][0]["segmentation"][0][0] = 3.5
    instances.write_text(json.dumps(doc))
    edited = data_identity("refcocog", tmp_path / "b")
    assert edited["files"]["instances.json"] != google["files"]["instances.json"]
    assert edited["files"]["refs(google).p"] == google["files"]["refs(google).p"]
    with pytest.raises(DataError, match=r"refs\(umd\)\.p: refs file not found.*refs\(google\)\.p"):
        (tmp_path / "b" / "refcocog" / "refs(umd).p").unlink()
        data_identity("refcocog", tmp_path / "b", split_by="umd")


def test_phrasecut_identity_names_the_list_and_reads_only_its_files(tmp_path):
    write_phrasecut(tmp_path)
    ris = data_identity("phrasecut", tmp_path, splits=["val"])
    official = data_identity("phrasecut", tmp_path, splits=["val"], phrasecut_list="official")
    assert ris["phrasecut_list"] == "ris" and official["phrasecut_list"] == "official"
    assert set(ris["files"]) == {"refer_val_ris.json", "image_data_split.json"}
    assert set(official["files"]) == {"refer_val.json", "image_data_split.json"}
    assert ris["fingerprint"] != official["fingerprint"]


def test_digests_are_cached_by_path_mtime_and_size(tmp_path):
    path = tmp_path / "f.json"
    path.write_text("[1]")
    first = file_digest(path)
    path.write_text("[2]")                                   # same size: the mtime tells
    os.utime(path, ns=(1, 1))
    assert file_digest(path) != first


def _run(out, root, *extra):
    return main(["run", "--methods", "objects", "--dataset", "refcocog", "--data-root", str(root),
                 "--seeds", "0", "--out", str(out), "--no-progress", *extra])


def test_store_keeps_google_and_umd_apart_and_notices_edits(tmp_path, capsys):
    root, out = tmp_path / "data", tmp_path / "runs"
    write_refer(root, "refcocog", schemes=("google", "umd"))
    assert _run(out, root) == 0
    assert "1 run(s) computed, 0 already stored" in capsys.readouterr().out
    assert _run(out, root, "--split-by", "umd") == 0
    assert "1 run(s) computed, 0 already stored" in capsys.readouterr().out
    google = store.read_metrics(out / "refcocog" / "objects" / "seed0")
    umd = store.read_metrics(out / "refcocog@umd" / "objects" / "seed0")
    assert (google["split_by"], umd["split_by"]) == ("google", "umd")
    assert google["splits"]["val"]["tau=0.50"]["n"] == 4 and umd["splits"]["val"]["tau=0.50"]["n"] == 3
    assert google["config_hash"] != umd["config_hash"]
    record = store.read_config(out / "refcocog@umd" / "objects" / "seed0")
    assert record["split_by"] == "umd" and set(record["data"]["files"]) == {"refs(umd).p", "instances.json"}
    assert len(record["data"]["fingerprint"]) == 16
    frame = store.Store(out).frame()
    assert set(frame["dataset"]) == {"refcocog", "refcocog@umd"}   # tables tell them apart

    assert _run(out, root, "--split-by", "umd") == 0               # same data: reused
    assert "0 run(s) computed, 1 already stored" in capsys.readouterr().out
    assert set(umd["splits"]) == {"val", "test"} and set(google["splits"]) == {"val"}  # the papers'
    assert _run(out, root, "--split-by", "umd", "--splits", "test") == 0   # umd's own split
    assert "0 run(s) computed, 1 already stored" in capsys.readouterr().out

    instances = root / "refcocog" / "instances.json"
    doc = json.loads(instances.read_text())
    doc["annotations"][0]["segmentation"] = [[0, 0, 39, 0, 39, 29, 0, 29]]   # ann 10: whole image
    instances.write_text(json.dumps(doc))
    assert _run(out, root) == 0
    assert "1 run(s) computed, 0 already stored" in capsys.readouterr().out
    again = store.read_metrics(out / "refcocog" / "objects" / "seed0")
    assert again["config_hash"] != google["config_hash"]
    assert again["splits"]["val"] != google["splits"]["val"]


def test_split_flags_are_checked_against_the_scheme(tmp_path, capsys):
    root = tmp_path / "data"
    write_refer(root, "refcocog", schemes=("google",))
    assert _run(tmp_path / "runs", root, "--splits", "test") == 2
    assert "split of refcocog (google) 'test'; expected one of: val" in capsys.readouterr().err
    assert _run(tmp_path / "runs", root, "--split-by", "unc") == 2
    assert "split scheme (--split-by) of refcocog 'unc'; expected one of: google, umd" in capsys.readouterr().err
    assert _run(tmp_path / "runs", root, "--phrasecut-list", "ris") == 2
    assert "--phrasecut-list applies to phrasecut" in capsys.readouterr().err


def test_phrasecut_list_is_recorded_and_part_of_the_identity(tmp_path, capsys):
    root, out = tmp_path / "data", tmp_path / "runs"
    write_phrasecut(root / "phrasecut")
    base = ["run", "--methods", "objects", "--dataset", "phrasecut", "--data-root", str(root),
            "--seeds", "0", "--out", str(out), "--no-progress"]
    assert main(base) == 0
    folder = out / "phrasecut" / "objects" / "seed0"
    ris = store.read_config(folder)
    assert ris["data"]["phrasecut_list"] == "ris" and "refer_val_ris.json" in ris["data"]["files"]
    assert store.read_metrics(folder)["splits"]["val"]["tau=0.50"]["n"] == 2
    assert main(base + ["--phrasecut-list", "official"]) == 0
    assert capsys.readouterr().out.count("1 run(s) computed, 0 already stored") == 2
    official = store.read_config(folder)
    assert official["data"]["phrasecut_list"] == "official" and official["config_hash"] != ris["config_hash"]
    assert store.read_metrics(folder)["splits"]["val"]["tau=0.50"]["n"] == 3


def test_table_specs_name_split_schemes():
    from harness.errors import ConfigError
    from harness.report.table_specs import cell_key, run_command

    spec = {"path": "configs/tables/X.py", "method": "sag", "setting": "tau=0.50", "metric": "mIoU"}
    umd_test = {"key": "G-Ref umd test", "dataset": "synthrefg", "split_by": "umd", "split": "test"}
    assert cell_key(spec, {"key": "r"}, umd_test, "real")["dataset"] == "refcocog@umd"
    google = {"key": "G-Ref val", "dataset": "synthrefg", "split": "val"}
    assert cell_key(spec, {"key": "r"}, google, "real")["dataset"] == "refcocog"
    with pytest.raises(ConfigError, match="X.py.*split scheme.*synthrefg 'umd'"):
        cell_key(spec, {"key": "r"}, umd_test, "synthref")          # synthrefg has no umd
    run = dict(method="sag", dataset="refcocog@umd", splits=["val", "test"], seeds=[0], taus=[0.5],
               crf=False, profile="full")
    assert run_command(run).startswith("python -m harness run --methods sag --dataset refcocog "
                                       "--split-by umd --data-root $DATA_ROOT --splits val,test")
