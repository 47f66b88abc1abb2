"""harness/data/synthref*.py: determinism, unambiguous expressions, REFER round trip, and that
the benchmark needs language (the no-language floors stay low)."""

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from harness.data import synthref
from harness.data import synthref_language as lang
from harness.data.datasets import open_split
from harness.data.synthref_scenes import COLOURS, OBJECT_COUNTS
from harness.errors import UnknownNameError

TINY = {"train": 5, "val": 4, "testA": 3, "testB": 3}


def file_hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def scene_objects(root: Path, variant: str) -> tuple[dict, dict]:
    """From the files alone: {image_id: [object dicts]} and {ann_id: (image_id, index)}."""
    coco = json.loads((root / variant / "instances.json").read_text())
    objects, where = {}, {}
    for ann in coco["annotations"]:
        a = ann["attributes"]
        objs = objects.setdefault(ann["image_id"], [])
        where[ann["id"]] = (ann["image_id"], len(objs))
        objs.append({"colour": a["colour"], "shape": a["shape"], "size": a["size"],
                     "cx": a["center"][0], "cy": a["center"][1]})
    return objects, where


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path):
    first = file_hashes(synthref.write_variants(tmp_path / "a", synthref.VARIANTS, seed=3, sizes=TINY))
    second = file_hashes(synthref.write_variants(tmp_path / "b", synthref.VARIANTS, seed=3, sizes=TINY))
    other = file_hashes(synthref.write_variants(tmp_path / "c", synthref.VARIANTS, seed=4, sizes=TINY))
    assert len(first) == 15 + 3 * 4          # 15 images, 4 files per variant
    assert first == second
    changed = {name for name in first if first[name] != other[name]}
    assert {"synthref/instances.json", "synthref/refs(unc).p", "synthrefg/refs(unc).p"} <= changed
    assert sum(name.startswith("images/") for name in changed) >= 13


@pytest.mark.parametrize("variant", synthref.VARIANTS)
def test_every_expression_picks_exactly_its_target(synthref_root, variant):
    objects, where = scene_objects(synthref_root, variant)
    refs = pickle.loads((synthref_root / variant / "refs(unc).p").read_bytes())
    texts = [s["sent"] for r in refs for s in r["sentences"]]
    for ref in refs:
        image_id, index = where[ref["ann_id"]]
        assert image_id == ref["image_id"]
        for sent in ref["sentences"]:
            program = lang.parse(sent["sent"])
            assert lang.evaluate(program, objects[image_id]) == [index], sent["sent"]
            said = {k: v for k, v in program["target"].items() if v is not None}
            assert said.items() <= objects[image_id][index].items(), sent["sent"]
    words = {w for t in texts for w in lang.tokenize(t)}
    if variant == "synthref+":
        assert not words & set(lang.LOC_WORDS) and not words & {"above", "below", "of"}
    if variant == "synthref":
        assert sum(bool(lang.parse(t)["loc"]) for t in texts) > 0.2 * len(texts)
    if variant == "synthrefg":
        assert all(lang.parse(t)["rel"] for t in texts)
        assert np.mean([len(t.split()) for t in texts]) > 6


def test_splits_object_counts_and_round_trip_through_refer_reader(synthref_root):
    objects, _ = scene_objects(synthref_root, "synthref")
    coco = json.loads((synthref_root / "synthref" / "instances.json").read_text())
    split_of = {im["id"]: im["split"] for im in coco["images"]}
    for split in ("testA", "testB", "val"):
        counts = [len(objects[i]) for i in objects if split_of[i] == split]
        low, high = OBJECT_COUNTS[split]
        assert counts and min(counts) >= low and max(counts) <= high
    refs = pickle.loads((synthref_root / "synthref" / "refs(unc).p").read_bytes())
    val = open_split("synthref", "val", data_root=synthref_root)
    assert [s.sample_id for s in val.samples] == [
        s["sent_id"] for r in refs if r["split"] == "val" for s in r["sentences"]]
    assert val.root == synthref_root / "synthref" and val.has_masks
    for i in range(0, len(val), 7):
        mask, image = val.mask(i), val.image(i)
        assert mask.shape == image.shape[:2] == (64, 64) and mask.sum() > 0
        assert not (mask & ~val.objects_mask(i)).any()
        target = next(r for r in refs if r["ref_id"] == val.samples[i].ref_id)
        colour = next(a["attributes"]["colour"] for a in coco["annotations"] if a["id"] == target["ann_id"])
        # the painted pixels under the mask carry the annotated colour (image and GT agree)
        assert np.abs(image[mask].mean(0) - COLOURS[colour]).max() < 25


def test_train_split_has_no_masks_and_captions_cover_train_images(synthref_root):
    train = open_split("synthref+", "train", data_root=synthref_root)
    assert len(train) > 40 and not train.has_masks
    captions = json.loads((synthref_root / "synthref+" / "captions.json").read_text())
    assert sorted({s.image_id for s in train.samples}) == [c["image_id"] for c in captions]
    vocab = (synthref_root / "synthref+" / "vocab.txt").read_text().split("\n")
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    for entry in captions:
        assert (synthref_root / entry["file_name"]).is_file() and len(entry["captions"]) == 3
        assert set(w for c in entry["captions"] for w in lang.tokenize(c)) <= set(vocab)


@pytest.mark.parametrize("variant", synthref.VARIANTS)
def test_no_language_floors_stay_low(synthref_root, variant):
    """Whole image ≤ 10 mIoU and every object ≤ 25 mIoU on val: the benchmark needs language."""
    floors = {}
    for split in synthref.VARIANT_SPLITS[variant][1:]:
        ds = open_split(variant, split, data_root=synthref_root)
        whole, objects = [], []
        for i in range(len(ds)):
            gt, everything = ds.mask(i), ds.objects_mask(i)
            whole.append(gt.sum() / gt.size)
            objects.append(gt.sum() / everything.sum())   # gt ⊂ everything, so I/U = |gt|/|all|
        floors[split] = (100 * np.mean(whole), 100 * np.mean(objects))
    assert floors["val"][0] <= 10 and floors["val"][1] <= 25, floors
    assert floors["val"][1] > 5                            # several objects, not dozens
    if "testB" in floors:
        assert floors["testB"][1] < floors["testA"][1]     # crowded scenes are harder


def test_ensure_generates_once_into_a_versioned_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("SAG_HARNESS_CACHE", str(tmp_path))
    monkeypatch.setattr(synthref, "DEFAULT_SIZES", TINY)
    root = synthref.ensure_synthref("synthrefg", seed=2)
    assert root == tmp_path / "data" / f"synthref-s2-v{synthref.VERSION}-{synthref.generator_fingerprint()}"
    assert all((root / v / "refs(unc).p").is_file() for v in synthref.VARIANTS)
    stamp = (root / "synthref" / "instances.json").stat().st_mtime_ns
    assert synthref.ensure_synthref("synthref", seed=2) == root
    assert (root / "synthref" / "instances.json").stat().st_mtime_ns == stamp
    assert len(open_split("synthrefg", "val")) > 0          # no data_root: the cached one
    with pytest.raises(UnknownNameError, match="synthref-"):
        synthref.ensure_synthref("synthref-")


def test_cache_folder_changes_with_the_generator_source(monkeypatch, tmp_path):
    """A cache filled by other generator code is never read as this code's data."""
    here = Path(synthref.__file__).parent
    for name in synthref.GENERATOR_MODULES:
        (tmp_path / name).write_bytes((here / name).read_bytes())
    assert synthref.generator_fingerprint(tmp_path) == synthref.generator_fingerprint()
    with open(tmp_path / "synthref_scenes.py", "a") as handle:
        handle.write("\n# an edit\n")
    assert synthref.generator_fingerprint(tmp_path) != synthref.generator_fingerprint()
    before = synthref.generator_fingerprint()
    monkeypatch.setattr(synthref, "DEFAULT_SIZES", {**synthref.DEFAULT_SIZES, "val": 7})
    assert synthref.generator_fingerprint() != before
