"""harness/eval/score.py and `python -m harness score`: prediction PNGs of any tool scored on a tiny
REFER-format split written here, checked against numpy; bad prediction folders name ids and counts."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from harness.errors import DataError
from harness.eval.metrics import METRIC_KEYS
from harness.eval.postprocess import dense_crf
from harness.eval.score import format_score_table, score_predictions

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGE_SIZES = {1: (40, 52), 2: (36, 44), 3: (48, 48)}            # image_id -> (H, W)


def rectangle(x0, y0, x1, y1) -> list:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


# (ref_id, ann_id, image_id, split, polygon, sent_ids)
REFS = [
    (10, 100, 1, "val", rectangle(4, 4, 30, 24), [1001, 1002]),
    (11, 101, 1, "val", rectangle(20, 10, 50, 38), [1003]),
    (12, 102, 2, "val", rectangle(2, 2, 20, 30), [1004, 1005]),
    (13, 103, 3, "val", rectangle(10, 12, 40, 44), [1006, 1007]),
    (14, 104, 3, "testA", rectangle(0, 0, 12, 12), [1008]),
]
VAL_IDS = [1001, 1002, 1003, 1004, 1005, 1006, 1007]


def gt_mask(polygon, image_id) -> np.ndarray:
    """The COCO rasterisation of a polygon, bool [H, W] (what the reader must produce)."""
    height, width = IMAGE_SIZES[image_id]
    rle = mask_utils.merge(mask_utils.frPyObjects(polygon, height, width))
    return mask_utils.decode(rle).astype(bool)


def write_refer_fixture(data_root: Path) -> None:
    """`data_root/refcoco/{instances.json, refs(unc).p}` and the images, in the REFER layout."""
    rng = np.random.default_rng(0)
    image_dir = data_root / "images" / "mscoco" / "images" / "train2014"
    image_dir.mkdir(parents=True)
    images, annotations = [], []
    for image_id, (height, width) in IMAGE_SIZES.items():
        pixels = np.full((height, width, 3), (60, 120, 70), dtype=np.int64)
        for ref_id, ann_id, ref_image, _, polygon, _ in REFS:
            if ref_image == image_id:
                pixels[gt_mask(polygon, image_id)] = rng.integers(0, 256, 3)
        pixels = np.clip(pixels + rng.integers(-8, 9, pixels.shape), 0, 255).astype(np.uint8)
        file_name = f"COCO_train2014_{image_id:012d}.png"
        Image.fromarray(pixels).save(image_dir / file_name)
        images.append(dict(id=image_id, file_name=file_name, height=height, width=width))
    for ref_id, ann_id, image_id, _, polygon, _ in REFS:
        area = float(gt_mask(polygon, image_id).sum())
        xs, ys = polygon[0][0::2], polygon[0][1::2]
        annotations.append(dict(id=ann_id, image_id=image_id, category_id=1, segmentation=polygon,
                                area=area, iscrowd=0,
                                bbox=[min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]))
    folder = data_root / "refcoco"
    folder.mkdir()
    instances = dict(images=images, annotations=annotations,
                     categories=[dict(id=1, name="thing", supercategory="thing")])
    (folder / "instances.json").write_text(json.dumps(instances))
    refs = [dict(ref_id=ref_id, ann_id=ann_id, image_id=image_id, split=split, category_id=1,
                 file_name=f"COCO_train2014_{image_id:012d}_{ann_id}.jpg", sent_ids=sent_ids,
                 sentences=[dict(sent_id=s, sent=f"thing {s}", raw=f"thing {s}",
                                 tokens=["thing", str(s)]) for s in sent_ids])
            for ref_id, ann_id, image_id, split, _, sent_ids in REFS]
    with open(folder / "refs(unc).p", "wb") as handle:
        pickle.dump(refs, handle)


def ground_truths() -> dict:
    """sent_id -> (image_id, bool mask) for the val split."""
    return {s: (image_id, gt_mask(polygon, image_id))
            for _, _, image_id, split, polygon, sent_ids in REFS if split == "val" for s in sent_ids}


def write_predictions(folder: Path, seed: int = 1) -> dict:
    """One 8-bit PNG per val expression: the mask, shifted and noised, so IoUs spread. -> values."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    values = {}
    for sent_id, (_, gt) in ground_truths().items():
        shifted = np.roll(gt, shift=int(rng.integers(-6, 7)), axis=1).astype(np.float64)
        prob = np.clip(shifted * 0.7 + rng.random(gt.shape) * 0.45, 0, 1)
        values[sent_id] = np.round(prob * 255).astype(np.uint8)
        Image.fromarray(values[sent_id], mode="L").save(folder / f"{sent_id}.png")
    return values


def numpy_metrics(values: dict, tau: float, image_of=None) -> dict:
    """The metrics computed here, independently of harness.eval.metrics."""
    ious, inters, unions = [], [], []
    for sent_id, (image_id, gt) in ground_truths().items():
        prob = values[sent_id] / 255.0
        if image_of is not None:
            prob = dense_crf(image_of(image_id), prob)
        pred = prob >= tau
        inters.append(np.logical_and(pred, gt).sum())
        unions.append(np.logical_or(pred, gt).sum())
        ious.append(inters[-1] / unions[-1])
    ious = np.array(ious)
    metrics = {f"A@{k}": 100 * np.mean(ious >= k) for k in (0.3, 0.5, 0.7)}
    metrics.update(cIoU=100 * sum(inters) / sum(unions), mIoU=100 * ious.mean())
    # pointing: the (CRF'd) map's first highest pixel inside the target
    gts = ground_truths()
    maps = {s: values[s] / 255.0 if image_of is None else dense_crf(image_of(image_id), values[s] / 255.0)
            for s, (image_id, _) in gts.items()}
    metrics["pointing"] = 100 * np.mean([gt.flat[int(np.argmax(maps[s]))] for s, (_, gt) in gts.items()])
    # the gap: only image 1 has two val refs (10: sents 1001, 1002; 11: 1003), swapped with each other
    def iou(sent, ref_sents):
        pred, other = maps[sent] >= tau, gts[ref_sents][1]
        return np.logical_and(pred, other).sum() / np.logical_or(pred, other).sum()
    right = (np.mean([iou(1001, 1001), iou(1002, 1002)]) + iou(1003, 1003)) / 2
    swap = (np.mean([iou(1001, 1003), iou(1002, 1003)]) + iou(1003, 1001)) / 2
    metrics.update(gap=100 * (right - swap), n_gap=2)
    return metrics


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("refer")
    write_refer_fixture(root)
    return root


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("preds")
    return folder, write_predictions(folder)


@pytest.mark.parametrize("tau", [0.3, 0.5, 0.65])
def test_score_equals_numpy(data_root, predictions, tau):
    folder, values = predictions
    result = score_predictions("refcoco", data_root, "val", folder, tau=tau)
    assert {k: result[k] for k in ("dataset", "split", "n", "tau", "crf")} == dict(
        dataset="refcoco", split="val", n=7, tau=tau, crf=False)
    expected = numpy_metrics(values, tau)
    assert result["metrics"] == pytest.approx(expected, abs=1e-9)
    assert len({round(v, 6) for v in expected.values()}) > 2      # the fixture spreads the figures
    table = format_score_table(result)
    assert f"{expected['mIoU']:.2f}" in table and "refcoco" in table


def test_score_with_crf_uses_the_image(data_root, predictions):
    folder, values = predictions
    image_dir = data_root / "images" / "mscoco" / "images" / "train2014"

    def image_of(image_id):
        return np.asarray(Image.open(image_dir / f"COCO_train2014_{image_id:012d}.png").convert("RGB"))

    result = score_predictions("refcoco", data_root, "val", folder, tau=0.5, crf=True, crf_workers=1)
    assert result["crf"] is True
    assert result["metrics"] == pytest.approx(numpy_metrics(values, 0.5, image_of), abs=1e-9)
    assert result["metrics"]["mIoU"] != pytest.approx(numpy_metrics(values, 0.5)["mIoU"], abs=0.5)


def test_limit_scores_the_first_samples_only(data_root, predictions):
    folder, _ = predictions
    assert score_predictions("refcoco", data_root, "val", folder, limit=3)["n"] == 3


def test_bad_prediction_folders_name_ids_and_counts(data_root, tmp_path):
    folder = tmp_path / "preds"
    write_predictions(folder)
    (folder / "1002.png").unlink()
    (folder / "1006.png").unlink()
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(folder / "99999.png")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(folder / "1008.png")     # a testA sample
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(folder / "1004.png")   # image is 36×44
    with pytest.raises(DataError) as caught:
        score_predictions("refcoco", data_root, "val", folder)
    message = str(caught.value)
    assert str(folder) in message
    assert "2 missing (1002, 1006)" in message
    assert "2 extra" in message and "1008" in message and "99999" in message
    assert "1 of the wrong size (1004: 40x40, expected 44x36)" in message
    with pytest.raises(DataError, match="not found"):
        score_predictions("refcoco", data_root, "val", tmp_path / "nowhere")


def test_non_grayscale_predictions_are_refused(data_root, tmp_path):
    folder = tmp_path / "preds"
    write_predictions(folder)
    Image.fromarray(np.zeros((40, 52, 3), np.uint8)).save(folder / "1001.png")
    with pytest.raises(DataError, match=r"1 not 8-bit grayscale \(1001: mode RGB\)"):
        score_predictions("refcoco", data_root, "val", folder)


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "score", *map(str, args)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not (REPO_ROOT / "harness" / "cli.py").exists(), reason="harness/cli.py not written yet")
def test_cli_score_end_to_end(data_root, predictions, tmp_path):
    folder, values = predictions
    out = tmp_path / "score.json"
    done = run_cli("--dataset", "refcoco", "--data-root", data_root, "--split", "val",
                   "--predictions", folder, "--tau", "0.5", "--json", out)
    assert done.returncode == 0, done.stderr
    written = json.loads(out.read_text())
    assert written["n"] == 7 and written["tau"] == 0.5 and written["crf"] is False
    assert written["metrics"] == pytest.approx(numpy_metrics(values, 0.5), abs=1e-3)
    assert "mIoU" in done.stdout

    (tmp_path / "empty").mkdir()
    failed = run_cli("--dataset", "refcoco", "--data-root", data_root, "--split", "val",
                     "--predictions", tmp_path / "empty")
    assert failed.returncode == 2
    assert "7 missing" in failed.stderr + failed.stdout
    assert len(failed.stderr.strip().splitlines()) == 1


# ---------------------------------------------------- the format-faithful fixtures (official_data)

def _write_pngs(folder: Path, masks: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for sample_id, mask in masks.items():
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{sample_id}.png")
    return folder


def _corner(shape) -> np.ndarray:
    pred = np.zeros(shape, dtype=bool)
    pred[: shape[0] // 2, : shape[1] // 2] = True
    return pred


def _score_cli(tmp_path, *args) -> dict:
    from harness.cli import main

    out = tmp_path / "score.json"
    assert main(["score", *map(str, args), "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_score_gref_umd_test_equals_hand_figures(tmp_path):
    """G-Ref umd's test split (which google lacks), py2 pickles, polygon and RLE masks."""
    from official_data import refer_truth, write_refer
    from refer_fixture import hand_metrics

    root = tmp_path / "data"
    order = write_refer(root, "refcocog", schemes=("google", "umd"))
    truth = refer_truth()
    ids = order["umd"]["test"]
    preds = {i: _corner(truth[i][0].shape) for i in ids}
    folder = _write_pngs(tmp_path / "pred", preds)
    result = _score_cli(tmp_path, "--dataset", "refcocog", "--data-root", root, "--split-by", "umd",
                        "--split", "test", "--predictions", folder)
    expected = hand_metrics([preds[i] for i in ids], [truth[i][0] for i in ids])
    assert result["n"] == len(ids) == 2 and result["split_by"] == "umd"
    for key in METRIC_KEYS:      # the mask metrics; pointing and the gap: test_score_equals_numpy
        assert result["metrics"][key] == pytest.approx(expected[key], abs=1e-9), key
    assert len(result["data_fingerprint"]) == 16


def test_score_phrasecut_both_lists_at_the_official_size(tmp_path):
    """The paper's ris list by default, the official one on request; sizes from
    image_data_split.json (image 21's JPEG is half that size)."""
    from official_data import PHRASECUT_TASKS, RIS_ORDER, phrasecut_truth, write_phrasecut
    from refer_fixture import hand_metrics

    root = tmp_path / "phrasecut"
    write_phrasecut(root)
    truth = phrasecut_truth()
    preds = {tid: _corner(mask.shape) for tid, mask in truth.items()}
    folder = _write_pngs(tmp_path / "pred", preds)
    official_ids = [t["task_id"] for t in PHRASECUT_TASKS]
    ris = _score_cli(tmp_path, "--dataset", "phrasecut", "--data-root", root, "--split", "val",
                     "--predictions", _write_pngs(tmp_path / "ris", {i: preds[i] for i in RIS_ORDER}))
    official = _score_cli(tmp_path, "--dataset", "phrasecut", "--data-root", root, "--split", "val",
                          "--phrasecut-list", "official", "--predictions", folder)
    for result, ids, name in ((ris, RIS_ORDER, "ris"), (official, official_ids, "official")):
        expected = hand_metrics([preds[i] for i in ids], [truth[i] for i in ids])
        assert result["n"] == len(ids) and result["phrasecut_list"] == name
        for key in METRIC_KEYS:
            assert result["metrics"][key] == pytest.approx(expected[key], abs=1e-9), (name, key)
    assert ris["metrics"] != official["metrics"]
    Image.new("L", (20, 15)).save(folder / "21__5001.png")          # the JPEG's size: refused
    with pytest.raises(DataError, match=r"21__5001: 20x15, expected 40x30"):
        score_predictions("phrasecut", root, "val", folder, phrasecut_list="official")
