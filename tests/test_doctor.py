"""harness/doctor.py (and doctor_checkpoints.py) through `python -m harness doctor`, on the
format-faithful fixtures: "ready" when all is there; otherwise the file, field or checkpoint to
fix, and exit 2."""

import pickle

import pytest

from harness.cli import main
from official_data import COCO_DIR, coco_file_name, write_phrasecut, write_refer


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "data"
    write_refer(root, "refcoco", schemes=("unc",))
    write_refer(root, "refcocog", schemes=("google", "umd"))
    write_phrasecut(root / "phrasecut")
    return root


def doctor(capsys, *args):
    status = main(["doctor", *map(str, args)])
    return status, capsys.readouterr().out


def test_ready_when_every_file_is_there(data_root, capsys):
    status, out = doctor(capsys, "--data-root", data_root)
    assert status == 0 and out.rstrip().endswith("ready")
    lines = out.splitlines()
    assert any(l.startswith("refcoco (unc)") and " ok " in l and "testA 1, testB 1" in l for l in lines)
    assert any(l.startswith("refcocog (umd)") and "val 2, test 2" in l for l in lines)
    assert any(l.startswith("refcoco+ (unc)") and "absent" in l for l in lines)   # not needed
    assert any(l.startswith("phrasecut") and "refer_val_ris.json" in l
               and "--phrasecut-list official" in l for l in lines)
    assert "sizes from image_data_split.json" in out
    assert len(lines) <= 24                                                       # one screen


def test_each_problem_names_the_file_to_fix(data_root, capsys):
    (data_root / "refcocog" / "refs(umd).p").write_bytes(b"not a pickle")
    (data_root / COCO_DIR / coco_file_name(1234)).unlink()
    (data_root / "phrasecut" / "refer_val_ris.json").write_text('{"21__1": {"phrase": "x"}}')
    status, out = doctor(capsys, "--data-root", data_root)
    assert status == 2
    assert "refs(umd).p: not a readable refs pickle" in out
    assert f"{coco_file_name(1234)}: image not found (1 of 3 sampled images missing" in out
    assert "refer_val_ris.json: task 21__1 lacks Polygons" in out
    assert out.rstrip().splitlines()[-1] == \
        "4 problem(s): refcoco (unc), refcocog (google), refcocog (umd), phrasecut"


def test_a_split_missing_from_a_scheme_is_a_problem(data_root, capsys):
    refs_file = data_root / "refcoco" / "refs(unc).p"
    refs = [r for r in pickle.loads(refs_file.read_bytes()) if r["split"] != "testB"]
    refs_file.write_bytes(pickle.dumps(refs, protocol=2))
    status, out = doctor(capsys, "--data-root", data_root)
    assert status == 2 and "refs(unc).p: no refs in split(s) testB" in out


def test_checkpoints_are_loaded_by_the_methods_real_loaders(tmp_path, capsys):
    status, out = doctor(capsys, "--set", "method.clip.checkpoint=/nowhere/ViT-B-16.pt",
                         "method.nothing.checkpoint=/x")
    assert status == 2
    assert "maskclip" in out and "/nowhere/ViT-B-16.pt: CLIP checkpoint for ViT-B-16 file not found" in out
    assert "no method's real-data config has section 'method.nothing'" in out
    status, out = doctor(capsys, "--set", "method.vit.checkpoint=/nowhere/vit.npz")
    assert status == 2                         # sag and tseg both read method.vit
    assert any(l.startswith("sag ") for l in out.splitlines())
    assert any(l.startswith("tseg ") for l in out.splitlines())


def test_a_good_checkpoint_is_ok(tmp_path, capsys):
    import open_clip
    import torch

    path = tmp_path / "clip.pt"
    torch.save(open_clip.create_model("ViT-S-32", pretrained=None).state_dict(), path)
    status, out = doctor(capsys, "--methods", "maskclip", "--set", f"method.clip.checkpoint={path}",
                         "method.clip.name=ViT-S-32")
    assert status == 0, out
    assert out.splitlines()[0].startswith("maskclip") and " ok " in out.splitlines()[0]
    assert out.rstrip().endswith("ready")
