"""harness/data/refer.py and harness/data/datasets.py on a REFER fixture written here: polygon,
compressed and uncompressed RLE masks, a train split that never decodes, and bad inputs whose
errors name the file and id."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from harness.data.datasets import DATASETS, dataset_present, is_synthetic, open_split
from harness.data.refer import load_refer
from harness.data.types import MaskAccessError
from harness.errors import ConfigError, DataError, UnknownNameError

H1, W1 = 20, 30   # image 1
H2, W2 = 16, 16   # image 2


def blob(h, w, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), dtype=bool)
    mask[3:11, 4:9] = True
    mask[rng.integers(0, h, 6), rng.integers(0, w, 6)] = True
    return mask


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's column-major run lengths, starting with a run of zeros."""
    flat = mask.flatten(order="F").astype(int)
    counts, current, run = [], 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = v, 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def write_fixture(root: Path, dataset="refcoco", split_by="unc", train_segmentation=None):
    """Image 1: polygon (ann 1) + compressed RLE (ann 2); image 2: uncompressed RLE (ann 3) and
    a train annotation (ann 4) whose segmentation is broken on purpose."""
    images_dir = root / "images" / "mscoco" / "images" / "train2014"
    images_dir.mkdir(parents=True, exist_ok=True)
    (root / dataset).mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W1, H1), (10, 20, 30)).save(images_dir / "a.jpg")
    Image.new("RGB", (W2, H2), (200, 20, 30)).save(images_dir / "b.jpg")
    compressed = coco_mask.encode(np.asfortranarray(blob(H1, W1, 1).astype(np.uint8)))
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "height": H1, "width": W1},
                       {"id": 2, "file_name": "b.jpg", "height": H2, "width": W2}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[2, 3, 12, 3, 12, 8, 2, 8]]},
                {"id": 2, "image_id": 1, "category_id": 1,
                 "segmentation": {"size": [H1, W1], "counts": compressed["counts"].decode()}},
                {"id": 3, "image_id": 2, "category_id": 1, "segmentation": uncompressed_rle(blob(H2, W2, 2))},
                {"id": 4, "image_id": 2, "category_id": 1, "segmentation": train_segmentation or []}],
            "categories": [{"id": 1, "name": "thing"}]}
    (root / dataset / "instances.json").write_text(json.dumps(coco))
    sent = lambda i, t: {"sent_id": i, "sent": t, "tokens": t.split()}  # noqa: E731
    refs = [{"ref_id": 10, "ann_id": 1, "image_id": 1, "split": "val", "sentences": [sent(100, "left box"), sent(101, "the box")]},
            {"ref_id": 11, "ann_id": 2, "image_id": 1, "split": "val", "sentences": [sent(102, "blob")]},
            {"ref_id": 12, "ann_id": 3, "image_id": 2, "split": "testA", "sentences": [sent(103, "small blob")]},
            {"ref_id": 13, "ann_id": 4, "image_id": 2, "split": "train", "sentences": [sent(104, "train thing")]}]
    write_refs(root / dataset / f"refs({split_by}).p", refs)
    return refs


def write_refs(path: Path, refs) -> None:
    path.write_bytes(pickle.dumps(refs, protocol=2))


def test_val_samples_and_masks_from_polygon_and_compressed_rle(tmp_path):
    write_fixture(tmp_path)
    val = load_refer(tmp_path, "refcoco", "val")
    assert [s.sample_id for s in val.samples] == [100, 101, 102]
    assert [s.ref_id for s in val.samples] == [10, 10, 11]
    assert [s.text for s in val.samples] == ["left box", "the box", "blob"]
    assert (val.samples[0].height, val.samples[0].width) == (H1, W1)
    assert val.samples[0].image_path == tmp_path / "images/mscoco/images/train2014/a.jpg"
    box = np.zeros((H1, W1), dtype=bool)
    box[3:8, 2:12] = True                     # polygon x 2..12, y 3..8: pixels [x0, x1) × [y0, y1)
    assert np.array_equal(val.mask(0), box) and np.array_equal(val.mask(1), box)
    assert np.array_equal(val.mask(2), blob(H1, W1, 1))
    assert np.array_equal(val.objects_mask(2), box | blob(H1, W1, 1))
    assert val.image(0).shape == (H1, W1, 3)


def test_uncompressed_rle_and_objects_union(tmp_path):
    write_fixture(tmp_path, train_segmentation=[[0, 0, 4, 0, 4, 4, 0, 4], [9, 9, 12, 9]])  # 2nd: zero area
    test_a = load_refer(tmp_path, "refcoco", "testA")
    assert np.array_equal(test_a.mask(0), blob(H2, W2, 2))
    corner = np.zeros((H2, W2), dtype=bool)
    corner[:4, :4] = True                      # the image's train annotation is an object too
    assert np.array_equal(test_a.objects_mask(0), blob(H2, W2, 2) | corner)


def test_train_split_exposes_no_mask_and_decodes_none(tmp_path):
    write_fixture(tmp_path, train_segmentation=[])   # decoding it would raise
    train = load_refer(tmp_path, "refcoco", "train")
    assert [s.sample_id for s in train.samples] == [104] and not train.has_masks
    with pytest.raises(MaskAccessError):
        train.mask(0)
    with pytest.raises(MaskAccessError):
        train.objects_mask(0)


@pytest.mark.parametrize("segmentation, words", [([], "empty polygon"), ([[1, 2, 3, 4]], "3 or more points"),
                                                 ([[0, 0, 4, 0, 4, 4], [1, 2, 3, 4, 5]], "malformed polygon"),
                                                 ({"counts": "x"}, "neither a polygon list nor an RLE")])
def test_bad_polygon_raises_when_decoded_naming_ann_and_file(tmp_path, segmentation, words):
    write_fixture(tmp_path, train_segmentation=segmentation)
    test_a = load_refer(tmp_path, "refcoco", "testA")   # loads: ann 4 is not decoded yet
    with pytest.raises(DataError, match=words) as err:
        test_a.objects_mask(0)
    assert "annotation 4" in str(err.value) and "instances.json" in str(err.value)


def test_missing_and_malformed_files_name_the_path(tmp_path):
    with pytest.raises(DataError, match="refcoco"):
        load_refer(tmp_path, "refcoco", "val")
    refs = write_fixture(tmp_path)
    with pytest.raises(DataError, match=r"refs\(umd\)\.p.*refs\(unc\)\.p"):
        load_refer(tmp_path, "refcoco", "val", split_by="umd")
    refs_file = tmp_path / "refcoco" / "refs(unc).p"
    refs_file.write_bytes(pickle.dumps(refs)[:40])
    with pytest.raises(DataError, match=r"refs\(unc\)\.p.*not a readable refs pickle"):
        load_refer(tmp_path, "refcoco", "val")
    refs_file.write_text("this is not a pickle\n")
    with pytest.raises(DataError, match=r"refs\(unc\)\.p.*not a readable refs pickle"):
        load_refer(tmp_path, "refcoco", "val")
    write_refs(refs_file, refs)
    (tmp_path / "refcoco" / "instances.json").unlink()
    with pytest.raises(DataError, match="instances.json"):
        load_refer(tmp_path, "refcoco", "val")


def test_refs_pointing_nowhere_unknown_split_and_missing_image(tmp_path):
    refs = write_fixture(tmp_path)
    refs_file = tmp_path / "refcoco" / "refs(unc).p"
    write_refs(refs_file, refs + [dict(refs[0], ref_id=77, ann_id=99)])
    with pytest.raises(DataError, match=r"ref 77 points at annotation 99"):
        load_refer(tmp_path, "refcoco", "val")
    write_refs(refs_file, refs + [dict(refs[0], ref_id=78, image_id=55)])
    with pytest.raises(DataError, match=r"ref 78 points at image 55"):
        load_refer(tmp_path, "refcoco", "val")
    write_refs(refs_file, refs)
    with pytest.raises(DataError, match="no split 'testB'; splits present: testA, train, val"):
        load_refer(tmp_path, "refcoco", "testB")
    with pytest.raises(DataError, match="elsewhere/a.jpg.*image-root"):
        load_refer(tmp_path, "refcoco", "val", image_root=tmp_path / "elsewhere")


def test_refcocog_defaults_to_google_and_reads_umd(tmp_path):
    write_fixture(tmp_path, dataset="refcocog", split_by="google")
    assert len(load_refer(tmp_path, "refcocog", "val")) == 3
    write_fixture(tmp_path, dataset="refcocog", split_by="umd")
    assert len(open_split("refcocog", "testA", data_root=tmp_path, split_by="umd")) == 1


def test_open_split_table_and_presence(tmp_path):
    assert set(DATASETS) == {"refcoco", "refcoco+", "refcocog", "phrasecut", "synthref", "synthref+", "synthrefg"}
    assert is_synthetic("synthrefg") and not is_synthetic("refcoco+")
    with pytest.raises(UnknownNameError, match="refcocoo"):
        open_split("refcocoo", "val", data_root=tmp_path)
    with pytest.raises(ConfigError, match="--data-root"):
        open_split("refcoco", "val")
    assert not dataset_present("refcoco", tmp_path) and not dataset_present("refcoco", None)
    write_fixture(tmp_path)
    assert dataset_present("refcoco", tmp_path) and dataset_present("synthref", None)
    limited = open_split("refcoco", "val", data_root=tmp_path, limit=2)
    assert [s.sample_id for s in limited.samples] == [100, 101] and limited.has_masks
    moved = tmp_path / "moved"
    (tmp_path / "images").rename(moved)
    assert open_split("refcoco", "val", data_root=tmp_path, image_root=moved / "mscoco/images/train2014").image(2).shape == (H1, W1, 3)


# ------------------------------------------------------------- the format-faithful REFER fixture

@pytest.mark.parametrize("dataset, scheme", [("refcoco", "unc"), ("refcocog", "google"), ("refcocog", "umd")])
def test_official_pickles_every_split_masks_equal_refer_getmask(tmp_path, dataset, scheme):
    """Python 2 protocol-2 pickles with every official field, polygons, uncompressed (iscrowd)
    and compressed RLE, non-ASCII sentences: each split's samples in the pickle's order, with
    masks equal to the official REFER.getMask rasterisation."""
    from official_data import COCO_IMAGES, refer_truth, text_of, write_refer

    order = write_refer(tmp_path, dataset, schemes=(scheme,))[scheme]
    truth = refer_truth()
    for split, sent_ids in order.items():
        ds = open_split(dataset, split, data_root=tmp_path, split_by=scheme)
        assert [s.sample_id for s in ds.samples] == sent_ids
        assert [s.text for s in ds.samples] == [text_of(i) for i in sent_ids]
        assert all((s.height, s.width) == COCO_IMAGES[s.image_id] for s in ds.samples)
        if split == "train":
            assert not ds.has_masks
            continue
        for i, sample in enumerate(ds.samples):
            gt, objects = truth[sample.sample_id]
            assert np.array_equal(ds.mask(i), gt), sample.sample_id
            assert np.array_equal(ds.objects_mask(i), objects), sample.sample_id
    assert {"zwei Stühle rechts — größer", "the café chair's owner", "人"} <= {
        text_of(i) for ids in order.values() for i in ids}


def test_split_schemes_know_their_splits(tmp_path):
    from harness.data.datasets import dataset_key, eval_splits_of, parse_dataset_key, splits_of
    from official_data import write_refer

    assert eval_splits_of("refcocog") == ("val",) and eval_splits_of("refcocog", "umd") == ("val", "test")
    assert splits_of("refcoco", "unc") == ("train", "val", "testA", "testB")
    with pytest.raises(UnknownNameError, match="split scheme.*refcoco.*'umd'.*unc"):
        splits_of("refcoco", "umd")
    with pytest.raises(ConfigError, match="--split-by applies to REFER"):
        open_split("phrasecut", "val", data_root=tmp_path, split_by="umd")
    assert dataset_key("refcocog") == dataset_key("refcocog", "google") == "refcocog"
    assert dataset_key("refcocog", "umd") == "refcocog@umd"
    assert parse_dataset_key("refcocog@umd") == ("refcocog", "umd")
    assert parse_dataset_key("refcoco") == ("refcoco", "unc")
    write_refer(tmp_path, "refcocog", schemes=("google", "umd"))
    google = open_split("refcocog", "val", data_root=tmp_path)
    umd = open_split("refcocog", "val", data_root=tmp_path, split_by="umd")
    assert [s.sample_id for s in google.samples] != [s.sample_id for s in umd.samples]
    assert len(open_split("refcocog", "test", data_root=tmp_path, split_by="umd")) == 2
    assert dataset_present("refcocog", tmp_path, "umd") and not dataset_present("refcoco", tmp_path)
