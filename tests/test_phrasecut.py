"""harness/data/phrasecut.py on fixtures in both file formats, with `limit` and image sizes from
the image header, image_data_split.json or image_data.json; and on the format-faithful
VGPhraseCut fixture (tests/official_data.py) against the official rasteriser."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data.datasets import dataset_present, open_split
from harness.data.phrasecut import load_phrasecut
from harness.data.types import MaskAccessError
from harness.errors import ConfigError, DataError
from official_data import PHRASECUT_TASKS, RIS_ORDER, VG_IMAGES, phrasecut_truth, write_phrasecut

TASKS = [  # image 11 is 20 high × 24 wide, image 12 is 10 × 12
    {"task_id": "11__1", "image_id": 11, "phrase": "two boxes",
     "Polygons": [[[[1, 1], [5, 1], [5, 4], [1, 4]]], [[[10, 10], [12, 10], [12, 12], [10, 12]]]]},
    {"task_id": "11__2", "image_id": 11, "phrase": "triangle", "Polygons": [[[[0, 15], [6, 15], [0, 19]]]]},
    {"task_id": "12__1", "image_id": 12, "phrase": "bar", "Polygons": [[[[0, 0], [11, 0], [11, 1], [0, 1]]]]},
]


def write_images(root: Path) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 20), (1, 2, 3)).save(root / "images" / "11.jpg")
    Image.new("RGB", (12, 10), (4, 5, 6)).save(root / "images" / "12.jpg")


def expected_masks() -> list[np.ndarray]:
    """PIL's outline+fill includes boundary pixels: x 1..5, y 1..4 is 5 × 4 pixels."""
    first = np.zeros((20, 24), dtype=bool)
    first[1:5, 1:6] = True
    first[10:13, 10:13] = True
    bar = np.zeros((10, 12), dtype=bool)
    bar[0:2, :] = True
    return [first, None, bar]


def test_list_format_masks_sizes_and_objects(tmp_path):
    write_images(tmp_path)
    (tmp_path / "refer_val.json").write_text(json.dumps(TASKS))
    val = load_phrasecut(tmp_path, "val")
    assert [s.sample_id for s in val.samples] == ["11__1", "11__2", "12__1"]
    assert [(s.height, s.width) for s in val.samples] == [(20, 24), (20, 24), (10, 12)]
    assert val.samples[2].text == "bar" and val.samples[2].image_path == tmp_path / "images" / "12.jpg"
    first, _, bar = expected_masks()
    assert np.array_equal(val.mask(0), first) and np.array_equal(val.mask(2), bar)
    triangle = val.mask(1)
    assert triangle[15, 0] and triangle[19, 0] and triangle[15, 6] and not triangle[19, 6]
    assert np.array_equal(val.objects_mask(0), first | triangle)
    assert val.image(0).shape == (20, 24, 3)


def test_ris_format_matches_list_format_and_limit(tmp_path):
    write_images(tmp_path)
    ris = {t["task_id"]: {"phrase": t["phrase"], "Polygons": t["Polygons"]} for t in TASKS}
    (tmp_path / "refer_val_ris.json").write_text(json.dumps(ris))
    val = load_phrasecut(tmp_path, "val")
    assert [s.image_id for s in val.samples] == [11, 11, 12]
    assert np.array_equal(val.mask(2), expected_masks()[2])
    limited = load_phrasecut(tmp_path, "val", limit=2)
    assert [s.sample_id for s in limited.samples] == ["11__1", "11__2"]
    # objects_mask of a limited split covers only the tasks kept
    assert np.array_equal(limited.objects_mask(0), limited.mask(0) | limited.mask(1))


def test_image_data_json_gives_sizes_without_images_and_train_has_no_masks(tmp_path):
    (tmp_path / "refer_train.json").write_text(json.dumps(TASKS))
    (tmp_path / "image_data.json").write_text(json.dumps(
        [{"image_id": 11, "height": 40, "width": 50}, {"image_id": 12, "height": 7, "width": 9}]))
    train = load_phrasecut(tmp_path, "train")
    assert [(s.height, s.width) for s in train.samples] == [(40, 50), (40, 50), (7, 9)]
    with pytest.raises(MaskAccessError):
        train.mask(0)


def test_errors_name_the_file_and_task(tmp_path):
    write_images(tmp_path)
    (tmp_path / "refer_val.json").write_text(json.dumps(TASKS))
    with pytest.raises(DataError, match=r"refer_test_ris\.json.*refer_test\.json.*refer_val\.json"):
        load_phrasecut(tmp_path, "test")
    bad = [dict(TASKS[0], Polygons=[[["x"]]]), dict(TASKS[1], Polygons={"a": 1})]
    (tmp_path / "refer_miniv.json").write_text(json.dumps(bad))
    miniv = load_phrasecut(tmp_path, "miniv")
    with pytest.raises(DataError, match=r"task 11__1 in .*refer_miniv\.json.*malformed polygon"):
        miniv.mask(0)
    with pytest.raises(DataError, match=r"task 11__2 .*Polygons must be a list"):
        miniv.mask(1)
    (tmp_path / "refer_miniv.json").write_text(json.dumps([{"task_id": "1__1", "phrase": "x"}]))
    with pytest.raises(DataError, match="task 1__1 lacks image_id, Polygons"):
        load_phrasecut(tmp_path, "miniv")
    with pytest.raises(DataError, match=r"99\.jpg"):
        (tmp_path / "refer_x.json").write_text(json.dumps([dict(TASKS[0], image_id=99)]))
        load_phrasecut(tmp_path, "x")


def test_degenerate_polygons_as_the_official_code(tmp_path):
    """< 2 points: skipped (the split still loads and scores); 2 points: a line is drawn."""
    write_images(tmp_path)
    tasks = [dict(TASKS[0], Polygons=[[[[3, 3]], [[0, 0], [4, 0], [4, 2], [0, 2]]]]),
             dict(TASKS[1], Polygons=[[[[0, 5], [9, 5]]]]),
             dict(TASKS[2], Polygons=[[[]]])]
    (tmp_path / "refer_val.json").write_text(json.dumps(tasks))
    val = load_phrasecut(tmp_path, "val")
    box = np.zeros((20, 24), dtype=bool)
    box[0:3, 0:5] = True
    assert np.array_equal(val.mask(0), box)                  # the 1-point polygon adds nothing
    line = np.zeros((20, 24), dtype=bool)
    line[5, 0:10] = True
    assert np.array_equal(val.mask(1), line)
    assert not val.mask(2).any()                             # only degenerate polygons: empty


def test_official_fixture_masks_equal_the_official_rasteriser(tmp_path):
    """refer_val.json read with --phrasecut-list official: every task, image_data_split.json's
    size (image 21's JPEG is half that size), masks equal polygons_to_mask's."""
    write_phrasecut(tmp_path)
    val = load_phrasecut(tmp_path, "val", task_list="official")
    truth = phrasecut_truth()
    assert [s.sample_id for s in val.samples] == [t["task_id"] for t in PHRASECUT_TASKS]
    assert [s.text for s in val.samples] == [t["phrase"] for t in PHRASECUT_TASKS]
    for i, sample in enumerate(val.samples):
        assert (sample.height, sample.width) == VG_IMAGES[sample.image_id]
        assert np.array_equal(val.mask(i), truth[sample.sample_id]), sample.sample_id
    # The image is given at the annotation's size, so it lines up with the mask (and CRF).
    assert val.image(0).shape == (*VG_IMAGES[21], 3)
    assert truth["21__5003"][20, 0] and truth["21__5003"][25, 37]     # the 2-point line
    assert truth["21__5001"][1, 1] and not truth["21__5001"][1, 0]      # 1.9 -> 1, 1.0 -> 1


def test_ris_list_is_the_default_and_the_choice_is_explicit(tmp_path):
    write_phrasecut(tmp_path)
    default = load_phrasecut(tmp_path, "val")
    assert [s.sample_id for s in default.samples] == RIS_ORDER        # the paper's list
    assert [s.image_id for s in default.samples] == [22, 21]
    assert np.array_equal(default.mask(1), phrasecut_truth()["21__5001"])
    assert [s.sample_id for s in load_phrasecut(tmp_path, "val", limit=1).samples] == ["22__6001"]
    official = load_phrasecut(tmp_path, "val", task_list="official", limit=1)
    assert [s.sample_id for s in official.samples] == ["21__5001"]
    with pytest.raises(ConfigError, match="--phrasecut-list 'sag'.*ris, official"):
        load_phrasecut(tmp_path, "val", task_list="sag")
    (tmp_path / "refer_val_ris.json").unlink()
    assert len(load_phrasecut(tmp_path, "val")) == 3                  # only one list: read it
    with pytest.raises(DataError, match=r"refer_val_ris\.json: not found"):
        load_phrasecut(tmp_path, "val", task_list="ris")


def test_size_file_names_and_unlisted_images(tmp_path):
    write_phrasecut(tmp_path, lists=("official",), sizes_file="image_data.json")   # older name
    assert [(s.height, s.width) for s in load_phrasecut(tmp_path, "val").samples][0] == VG_IMAGES[21]
    (tmp_path / "image_data.json").unlink()
    assert (load_phrasecut(tmp_path, "val").samples[0].height,) == (15,)       # JPEG header
    (tmp_path / "image_data_split.json").write_text(json.dumps([{"image_id": 22, "width": 24, "height": 20}]))
    with pytest.raises(DataError, match=r"image_data_split\.json: image 21 is not listed"):
        load_phrasecut(tmp_path, "val")
    (tmp_path / "image_data_split.json").write_text(json.dumps({"image_id": 21}))
    with pytest.raises(DataError, match=r"image_data_split\.json: expected a list of"):
        load_phrasecut(tmp_path, "val")


def test_open_split_finds_phrasecut_in_a_shared_root(tmp_path):
    folder = tmp_path / "phrasecut"
    write_images(folder)
    (folder / "refer_val.json").write_text(json.dumps(TASKS))
    assert dataset_present("phrasecut", tmp_path)
    assert len(open_split("phrasecut", "val", data_root=tmp_path, limit=1)) == 1
    assert len(open_split("phrasecut", "val", data_root=folder)) == 3
