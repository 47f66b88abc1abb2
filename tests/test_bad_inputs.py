"""Bad inputs through the command line: each is one line `error: ...`, exit status 2, and nothing
written (the --out folder is never made, `score --json` writes no file).

The cases tests/test_cli.py already covers (unknown method/dataset/split/table/profile/variant,
--seeds not integers, run --taus outside (0, 1), --data-root missing) are not repeated. Every
case here runs `harness.cli.main` in ONE fresh interpreter (a subprocess), so the module costs one
start-up; `test_the_real_entry_point` checks that `python -m harness` itself behaves the same.
"""

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.refer_fixture import write_refer_fixture

REPO = Path(__file__).resolve().parent.parent
DRIVER = r"""
import contextlib, io, json, sys
from harness.cli import main
results = {}
for name, argv in json.loads(open(sys.argv[1]).read()).items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    results[name] = {"code": code, "err": err.getvalue()}
print(json.dumps(results))
"""


def variant_root(base: Path, tmp: Path, name: str, change) -> Path:
    """A copy of the good fixture with one thing broken by `change(root)`."""
    root = tmp / f"root_{name}"
    shutil.copytree(base, root)
    change(root)
    return root


def set_segmentation(ann_id: int, segmentation):
    def change(root: Path):
        path = root / "synthref" / "instances.json"
        coco = json.loads(path.read_text())
        for ann in coco["annotations"]:
            if ann["id"] == ann_id:
                ann["segmentation"] = segmentation
        path.write_text(json.dumps(coco))
    return change


def set_image_height(file_name: str, height: int):
    def change(root: Path):
        path = root / "synthref" / "instances.json"
        coco = json.loads(path.read_text())
        for image in coco["images"]:
            if image["file_name"] == file_name:
                image["height"] = height
        path.write_text(json.dumps(coco))
    return change


def val_predictions(folder: Path, root: Path, change=None) -> Path:
    """`<sent_id>.png` for every val expression of the fixture (32×32 images), then `change`."""
    with open(root / "synthref" / "refs(unc).p", "rb") as handle:
        refs = pickle.load(handle)
    folder.mkdir(parents=True)
    for ref in refs:
        for sentence in ref["sentences"] if ref["split"] == "val" else []:
            Image.fromarray(np.full((32, 32), 200, np.uint8)).save(folder / f"{sentence['sent_id']}.png")
    if change:
        change(folder)
    return folder


def run_case(root, out, *extra):
    return ["run", "--methods", "whole", "--dataset", "synthref", "--data-root", str(root),
            "--seeds", "0", "--splits", "val", "--out", str(out), "--no-progress", *extra]


def score_case(root, predictions, out, *extra):
    return ["score", "--dataset", "synthref", "--data-root", str(root), "--split", "val",
            "--predictions", str(predictions), "--json", str(out / "score.json"), *extra]


def wrong_architecture(path: Path) -> Path:
    torch.save({"encoder.layer.0.weight": torch.zeros(4, 4)}, path)
    return path


# name -> (builder(good_root, tmp, out) -> argv, words the one line must hold)
CASES = {
    "root_without_refs": (lambda g, t, o: run_case(variant_root(g, t, "a", lambda r: (
        r / "synthref" / "refs(unc).p").unlink()), o), ["refs(unc).p", "refs file not found"]),
    "root_without_instances": (lambda g, t, o: run_case(variant_root(g, t, "b", lambda r: (
        r / "synthref" / "instances.json").unlink()), o), ["instances.json not found"]),
    "truncated_refs": (lambda g, t, o: run_case(variant_root(g, t, "c", lambda r: (
        r / "synthref" / "refs(unc).p").write_bytes((r / "synthref" / "refs(unc).p").read_bytes()[:50])),
        o), ["refs(unc).p", "not a readable refs pickle"]),
    "refs_not_a_pickle": (lambda g, t, o: run_case(variant_root(g, t, "d", lambda r: (
        r / "synthref" / "refs(unc).p").write_text("ref_id,sent\n1,a box\n")), o),
        ["refs(unc).p", "not a readable refs pickle"]),
    "empty_polygon": (lambda g, t, o: run_case(variant_root(g, t, "e", set_segmentation(7, [])), o),
                      ["annotation 7", "instances.json", "empty polygon"]),
    "malformed_polygon": (lambda g, t, o: run_case(variant_root(g, t, "f", set_segmentation(
        7, [[1, 2, 3, 4, 5]])), o), ["annotation 7", "malformed polygon"]),
    "missing_image": (lambda g, t, o: run_case(variant_root(g, t, "g", lambda r: (
        r / "images" / "synthref" / "0004.png").unlink()), o), ["0004.png", "not found"]),
    "image_size_disagrees": (lambda g, t, o: run_case(variant_root(g, t, "h", set_image_height("0004.png", 40)),
                             o), ["0004.png", "the file is 32×32", "instances.json", "width 32, height 40"]),
    "checkpoint_not_found": (lambda g, t, o: ["run", "--methods", "tseg", "--data-root", str(g),
        "--profile", "smoke", "--seeds", "0", "--splits", "val", "--out", str(o), "--no-progress",
        "--set", f"method.vit.checkpoint={t / 'no' / 'vit.pth'}"], ["vit.pth", "not found"]),
    "checkpoint_wrong_architecture": (lambda g, t, o: ["run", "--methods", "tseg", "--data-root",
        str(g), "--profile", "smoke", "--seeds", "0", "--splits", "val", "--out", str(o),
        "--no-progress", "--set", f"method.vit.checkpoint={wrong_architecture(t / 'not_a_vit.pth')}",
        "+method.vit.arch=vit_tiny_patch16_224", "+method.vit.img_size=64"],   # keys the synthref config lacks
        ["not_a_vit.pth", "does not match timm vit_tiny_patch16_224", "missing keys", "cls_token"]),
    "threads_zero": (lambda g, t, o: run_case(g, o, "--set", "runtime.torch_threads=0"),
                     ["runtime.torch_threads=0", "expected a positive integer"]),
    "score_missing_png": (lambda g, t, o: score_case(g, val_predictions(t / "p1", g, lambda f: (
        f / "8.png").unlink()), o), ["1 missing (8)"]),
    "score_extra_png": (lambda g, t, o: score_case(g, val_predictions(t / "p2", g, lambda f: (
        shutil.copy(f / "8.png", f / "99999.png"))), o), ["1 extra", "99999"]),
    "score_wrong_size_png": (lambda g, t, o: score_case(g, val_predictions(t / "p3", g, lambda f: (
        Image.fromarray(np.zeros((20, 24), np.uint8)).save(f / "8.png"))), o),
        ["1 of the wrong size (8: 24x20, expected 32x32)"]),
    "score_tau_zero": (lambda g, t, o: score_case(g, val_predictions(t / "p4", g), o, "--tau", "0"),
                       ["τ (tau) = '0'", "strictly between 0 and 1"]),
    "score_unknown_split": (lambda g, t, o: score_case(g, val_predictions(t / "p5", g), o)[:-2]
                            + ["--split", "nosuch", "--json", str(o / "score.json")],
                            ["no split 'nosuch'"]),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """{case: (exit status, stderr, its out folder)} from one subprocess running every case."""
    tmp = tmp_path_factory.mktemp("bad_inputs")
    good = tmp / "good"
    write_refer_fixture(good)
    argvs, outs = {}, {}
    for name, (build, _) in CASES.items():
        outs[name] = tmp / "out" / name
        (tmp / name).mkdir()
        argvs[name] = build(good, tmp / name, outs[name])
    cases_file = tmp / "cases.json"
    cases_file.write_text(json.dumps(argvs))
    done = subprocess.run([sys.executable, "-c", DRIVER, str(cases_file)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: (r["code"], r["err"], outs[name]) for name, r in results.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_line_exit_2_and_nothing_written(case, outcomes):
    code, err, out = outcomes[case]
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for words in CASES[case][1]:
        assert words in err, (words, err)
    assert not out.exists(), sorted(str(p) for p in out.rglob("*"))


def test_the_real_entry_point(tmp_path):
    root = tmp_path / "root"
    write_refer_fixture(root)
    (root / "synthref" / "refs(unc).p").write_bytes(b"\x80\x04\x95")   # a pickle cut short
    done = subprocess.run([sys.executable, "-m", "harness", *run_case(root, tmp_path / "out")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "not a readable refs pickle" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
