"""Format-faithful fixtures of the real datasets, written by us from the official formats.

REFER (lichengunc/refer; RefCOCO/RefCOCO+/G-Ref), `write_refer`:
    DATA_ROOT/<dataset>/instances.json   COCO: images, annotations (polygons with float
                                         coordinates and several parts, uncompressed RLE with
                                         iscrowd=1 and a counts list, compressed RLE with a
                                         counts string), categories
    DATA_ROOT/<dataset>/refs(<splitBy>).p  pickle protocol 2 as Python 2 wrote it (ASCII `str`
                                         fields as BINSTRING opcodes, sentences as unicode):
                                         ref_id, ann_id, image_id, category_id, split, file_name,
                                         sent_ids, sentences[{sent_id, sent, raw, tokens}]
    DATA_ROOT/images/mscoco/images/train2014/COCO_train2014_<12 digits>.jpg
  G-Ref gets two schemes over the same annotations: google (train/val) and umd (train/val/test)
  with different refs in val, so a run that mixed them up would score other expressions.

VGPhraseCut_v0 (ChenyunWu/PhraseCutDataset), `write_phrasecut`:
    refer_val.json          list of tasks {task_id, image_id, ann_ids, instance_boxes, Polygons
                            (instances × polygons × [x, y]), phrase, phrase_structure}
    refer_val_ris.json      SaG's list: dict task_id -> {phrase, Polygons}, another order and
                            a subset of the official tasks
    image_data_split.json   [{image_id, coco_id, flickr_id, width, height, url, split}]; image
                            21's JPEG is smaller than its entry (the official size wins)
    images/<image_id>.jpg
  Polygons include float coordinates (the official rasteriser truncates them), a 1-point
  polygon (skipped by the official code) and a 2-point one (drawn as a line).

Ground truth comes back from `refer_truth` / `phrasecut_truth`, rasterised independently of the
harness: REFER as the official `REFER.getMask` does (pycocotools per polygon, summed), RLE from
the numpy masks the RLEs were encoded from; PhraseCut as the official `polygons_to_mask` does.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as coco_mask

COCO_DIR = Path("images/mscoco/images/train2014")
CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person"},
              {"id": 62, "name": "chair", "supercategory": "furniture"}]
# image id -> (height, width)
COCO_IMAGES = {581857: (30, 40), 1234: (24, 36), 77: (28, 28)}


class Py2Str(str):
    """A Python 2 `str` (bytes): pickled as SHORT_BINSTRING, as Python 2 wrote ASCII fields."""


class _Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it: `Py2Str` as BINSTRING, other text as BINUNICODE."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        data = obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[Py2Str] = save_py2_str


def py2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def coco_file_name(image_id: int) -> str:
    return f"COCO_train2014_{image_id:012d}.jpg"


def blob(height: int, width: int, seed: int) -> np.ndarray:
    """An irregular mask (a box plus scattered pixels), bool [H, W]."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), dtype=bool)
    mask[4:14, 5:17] = True
    mask[rng.integers(0, height, 9), rng.integers(0, width, 9)] = True
    return mask


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's iscrowd RLE: column-major run lengths starting with zeros, counts a list."""
    flat = mask.flatten(order="F").astype(np.uint8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    return {"size": list(mask.shape), "counts": counts}


def compressed_rle(mask: np.ndarray) -> dict:
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(mask.shape), "counts": rle["counts"].decode("ascii")}


def _annotations() -> tuple[list[dict], dict]:
    """COCO annotations and the RLE masks they were encoded from ({ann_id: mask})."""
    crowd = blob(*COCO_IMAGES[1234], seed=3)
    compressed = blob(*COCO_IMAGES[581857], seed=5)
    anns = [
        # two polygon parts with float coordinates (like COCO's)
        {"id": 10, "image_id": 581857, "category_id": 1, "iscrowd": 0,
         "segmentation": [[2.5, 3.2, 14.7, 3.0, 14.1, 12.8, 2.2, 12.4],
                          [20.0, 20.0, 30.5, 21.0, 25.2, 28.9]],
         "area": 150.0, "bbox": [2.2, 3.0, 28.3, 25.9]},
        {"id": 11, "image_id": 581857, "category_id": 62, "iscrowd": 0,
         "segmentation": compressed_rle(compressed), "area": float(compressed.sum()),
         "bbox": [5.0, 4.0, 12.0, 10.0]},
        {"id": 12, "image_id": 1234, "category_id": 1, "iscrowd": 1,
         "segmentation": uncompressed_rle(crowd), "area": float(crowd.sum()),
         "bbox": [5.0, 4.0, 12.0, 10.0]},
        {"id": 13, "image_id": 1234, "category_id": 62, "iscrowd": 0,
         "segmentation": [[30.0, 2.0, 35.0, 2.0, 35.0, 20.0, 30.0, 20.0]],
         "area": 90.0, "bbox": [30.0, 2.0, 5.0, 18.0]},
        {"id": 14, "image_id": 77, "category_id": 1, "iscrowd": 0,
         "segmentation": [[1.0, 1.0, 20.0, 1.0, 10.0, 25.0]], "area": 230.0,
         "bbox": [1.0, 1.0, 19.0, 24.0]},
    ]
    return anns, {11: compressed, 12: crowd}


# (ref_id, ann_id, image_id, sentences); sentences are (sent_id, text)
_REFS = [
    (100, 10, 581857, [(1000, "man on the left"), (1001, "the café chair's owner")]),
    (101, 11, 581857, [(1002, "chair")]),
    (102, 12, 1234, [(1003, "crowd of people")]),
    (103, 13, 1234, [(1004, "zwei Stühle rechts — größer")]),
    (104, 14, 77, [(1005, "the person in front"), (1006, "人")]),
]
# split of each ref under each scheme (G-Ref google has no test; umd moves refs around)
SPLITS = {
    "unc": {100: "val", 101: "testA", 102: "testB", 103: "val", 104: "train"},
    "google": {100: "val", 101: "val", 102: "train", 103: "val", 104: "train"},
    "umd": {100: "val", 101: "test", 102: "val", 103: "test", 104: "train"},
}


def _ref(ref_id, ann_id, image_id, sentences, split, category_id) -> dict:
    sents = [{"sent_id": sid, "sent": text, "raw": text[0].upper() + text[1:] + ".",
              "tokens": text.split()} for sid, text in sentences]
    return {"ref_id": ref_id, "ann_id": ann_id, "image_id": image_id,
            "category_id": category_id, "split": Py2Str(split),
            "file_name": Py2Str(f"COCO_train2014_{image_id:012d}_{ann_id}.jpg"),
            "sent_ids": [sid for sid, _ in sentences], "sentences": sents}


def write_refer(data_root: Path, dataset: str = "refcoco", schemes=("unc",)) -> dict:
    """Write instances.json, one refs pickle per scheme and the images; returns
    {scheme: {split: [sent_id, ...]}} in reading order."""
    data_root = Path(data_root)
    folder = data_root / dataset
    folder.mkdir(parents=True, exist_ok=True)
    image_dir = data_root / COCO_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for image_id, (h, w) in COCO_IMAGES.items():
        pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(image_dir / coco_file_name(image_id), quality=95)
    anns, _ = _annotations()
    coco = {"info": {"description": "fixture"}, "licenses": [],
            "images": [{"id": i, "file_name": coco_file_name(i), "height": h, "width": w,
                        "license": 1, "coco_url": "", "flickr_url": "", "date_captured": ""}
                       for i, (h, w) in COCO_IMAGES.items()],
            "annotations": anns, "categories": CATEGORIES}
    (folder / "instances.json").write_text(json.dumps(coco), encoding="utf-8")
    category = {a["id"]: a["category_id"] for a in anns}
    order = {}
    for scheme in schemes:
        refs = [_ref(r, a, i, s, SPLITS[scheme][r], category[a]) for r, a, i, s in _REFS]
        (folder / f"refs({scheme}).p").write_bytes(py2_pickle(refs))
        order[scheme] = {}
        for ref_id, _, _, sentences in _REFS:
            order[scheme].setdefault(SPLITS[scheme][ref_id], []).extend(sid for sid, _ in sentences)
    return order


def refer_truth() -> dict:
    """{sent_id: (ann mask bool [H, W], image objects mask)} rasterised as REFER.getMask does."""
    anns, rle_masks = _annotations()
    masks = {}
    for ann in anns:
        h, w = COCO_IMAGES[ann["image_id"]]
        if ann["id"] in rle_masks:
            masks[ann["id"]] = rle_masks[ann["id"]]
        else:  # REFER.getMask: frPyObjects on the polygon list, decode, sum over parts
            rles = coco_mask.frPyObjects(ann["segmentation"], h, w)
            with warnings.catch_warnings():   # pycocotools vs numpy 2's copy keyword; harmless
                warnings.simplefilter("ignore", DeprecationWarning)
                masks[ann["id"]] = coco_mask.decode(rles).sum(axis=2) > 0
    objects = {}
    for ann in anns:
        objects[ann["image_id"]] = objects.get(ann["image_id"], False) | masks[ann["id"]]
    return {sid: (masks[a], objects[i]) for _, a, i, sents in _REFS for sid, _ in sents}


def text_of(sent_id: int) -> str:
    return {sid: text for _, _, _, sents in _REFS for sid, text in sents}[sent_id]


# ------------------------------------------------------------------------------------ PhraseCut

# image id -> (height, width) in image_data_split.json; JPEG sizes differ for image 21
VG_IMAGES = {21: (30, 40), 22: (20, 24)}
VG_JPEG_SIZES = {21: (15, 20), 22: (20, 24)}
PHRASECUT_TASKS = [
    {"task_id": "21__5001", "image_id": 21, "ann_ids": [5001, 5002], "phrase": "two white boxes",
     "instance_boxes": [[1, 1, 5, 4], [10, 10, 3, 3]],
     "Polygons": [[[[1.9, 1.2], [5.7, 1.0], [5.2, 4.9], [1.0, 4.0]]],               # floats
                  [[[10, 10], [12, 10], [12, 12], [10, 12]], [[30, 20]]]],          # + 1 point
     "phrase_structure": {"name": "box", "attributes": ["white"], "relation_ids": [],
                          "relation_descriptions": [], "type": "attribute"}},
    {"task_id": "21__5003", "image_id": 21, "ann_ids": [5003], "phrase": "wire",
     "instance_boxes": [[0, 20, 38, 1]],
     "Polygons": [[[[0, 20], [37.6, 25.3]]]],                                       # 2 points
     "phrase_structure": {"name": "wire", "attributes": [], "relation_ids": [],
                          "relation_descriptions": [], "type": "name"}},
    {"task_id": "22__6001", "image_id": 22, "ann_ids": [6001], "phrase": "sign on the pole",
     "instance_boxes": [[0, 0, 12, 2]],
     "Polygons": [[[[0, 0], [11, 0], [11, 1], [0, 1]]], [[[3, 8], [9, 8], [6, 15]]]],
     "phrase_structure": {"name": "sign", "attributes": [], "relation_ids": [77],
                          "relation_descriptions": [["on", "pole"]], "type": "relation"}},
]
RIS_ORDER = ["22__6001", "21__5001"]          # SaG's list: another order, a subset


def write_phrasecut(folder: Path, lists=("official", "ris"), sizes_file="image_data_split.json") -> None:
    """Write VGPhraseCut_v0's files for the val split (and the images) into `folder`."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    for image_id, (h, w) in VG_JPEG_SIZES.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
            folder / "images" / f"{image_id}.jpg")
    if "official" in lists:
        (folder / "refer_val.json").write_text(json.dumps(PHRASECUT_TASKS))
    if "ris" in lists:
        by_id = {t["task_id"]: t for t in PHRASECUT_TASKS}
        ris = {tid: {"phrase": by_id[tid]["phrase"], "Polygons": by_id[tid]["Polygons"]}
               for tid in RIS_ORDER}
        (folder / "refer_val_ris.json").write_text(json.dumps(ris))
    if sizes_file:
        info = [{"image_id": i, "coco_id": None, "flickr_id": 1000 + i, "width": w, "height": h,
                 "url": f"https://cs.stanford.edu/people/rak248/VG_100K/{i}.jpg", "split": "val"}
                for i, (h, w) in VG_IMAGES.items()]
        (folder / sizes_file).write_text(json.dumps(info))


def official_polygons_to_mask(polygons, w: int, h: int) -> np.ndarray:
    """The official utils/data_transfer.py polygons_to_mask, restated: one canvas per polygon,
    int() coordinates, < 2 points skipped, summed."""
    total = np.zeros((h, w))
    for polygon in polygons:
        if len(polygon) < 2:
            continue
        img = Image.new("L", (w, h), 0)
        ImageDraw.Draw(img).polygon([(int(x), int(y)) for x, y in polygon], outline=1, fill=1)
        total += np.array(img)
    return total > 0


def phrasecut_truth() -> dict:
    """{task_id: bool [H, W]} at image_data_split.json's size, as the official evaluator does
    (every instance's polygons flattened, then polygons_to_mask)."""
    out = {}
    for task in PHRASECUT_TASKS:
        h, w = VG_IMAGES[task["image_id"]]
        polygons = [p for instance in task["Polygons"] for p in instance]
        out[task["task_id"]] = official_polygons_to_mask(polygons, w, h)
    return out


# ------------------------------------------------------------------------------ at COCO's sizes

COCO_SIZE = (480, 640)          # (height, width) of most COCO train2014 images
_WORDS = (("red", "blue", "white", "black", "green"), ("man", "woman", "dog", "chair", "car", "umbrella"),
          ("on the left", "on the right", "in front", "in the back", "in the middle"))


def coco_like_jpeg(path: Path, size=COCO_SIZE, seed: int = 0) -> None:
    """A JPEG of COCO's size and near its weight (~135 KB at quality 90; COCO's average is about
    160 KB): smooth colour regions with sensor-like noise, so decoding costs what a photo's does."""
    rng = np.random.default_rng(seed)
    h, w = size
    coarse = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-28, 28, (h, w, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)


def write_refer_at_scale(data_root: Path, images_per_split: dict, dataset: str = "refcoco",
                         sentences: int = 2, size=COCO_SIZE, seed: int = 0) -> dict:
    """The REFER files of `dataset` (unc) at COCO's image size: per split (e.g. {"train": 32,
    "val": 4}) that many images, each with one polygon annotation referred to by one ref of
    `sentences` expressions. Returns {split: number of expressions}."""
    data_root = Path(data_root)
    folder, image_dir = data_root / dataset, data_root / COCO_DIR
    folder.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = size
    images, anns, refs, counts = [], [], [], {}
    image_id = 1
    for split, n in images_per_split.items():
        for _ in range(n):
            coco_like_jpeg(image_dir / coco_file_name(image_id), size, seed=seed * 100_003 + image_id)
            images.append({"id": image_id, "file_name": coco_file_name(image_id), "height": h, "width": w,
                           "license": 1, "coco_url": "", "flickr_url": "", "date_captured": ""})
            x0, y0 = float(rng.uniform(0, w / 2)), float(rng.uniform(0, h / 2))
            x1, y1 = x0 + float(rng.uniform(40, w / 2)), y0 + float(rng.uniform(40, h / 2))
            anns.append({"id": image_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                         "segmentation": [[x0, y0, x1, y0 + 5.5, x1 - 3.2, y1, x0 + 2.1, y1 - 4.0]],
                         "area": (x1 - x0) * (y1 - y0), "bbox": [x0, y0, x1 - x0, y1 - y0]})
            texts = [" ".join(str(rng.choice(words)) for words in _WORDS) for _ in range(sentences)]
            sents = [(image_id * 10 + k, f"the {text}") for k, text in enumerate(texts)]
            refs.append(_ref(image_id, image_id, image_id, sents, split, 1))
            image_id += 1
        counts[split] = n * sentences
    coco = {"info": {"description": "fixture at COCO's image size"}, "licenses": [], "images": images,
            "annotations": anns, "categories": CATEGORIES}
    (folder / "instances.json").write_text(json.dumps(coco), encoding="utf-8")
    (folder / "refs(unc).p").write_bytes(py2_pickle(refs))
    return counts
