"""What each evaluation expression is like, for breakdowns (`harness breakdown`, the HTML gallery).

One row per expression of a split, keyed by sample_id:

    image_id      the image (the cluster the intervals resample)
    text          the expression
    words         its length in words
    area_px       the target's area in pixels at the original size (COCO's `area` field when
                  instances.json has it, else the mask's pixel count)
    objects       annotated objects in the image (REFER data; blank for PhraseCut)
    category      the target's COCO category name and `supercategory` (blank where absent)
    location      whether the expression holds a location word (LOCATION_WORDS)

and the bins a breakdown groups by (`BREAKDOWNS`): `area` (small / medium / large: COCO's 32² and
96² px thresholds, defined on its ~640×480 images, scaled to each image's pixel count — equal to
COCO's on a 640×480 image; synthref's 64×64 images put its targets in medium and large), `length`,
`location`, `objects` and, where instances.json names them, `supercategory` and `category`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import pandas as pd

from harness.data.datasets import dataset_info, open_split, resolve_data_root
from harness.data.refer import read_instances, read_refs, refer_files
from harness.errors import ConfigError

COCO_IMAGE_PIXELS = 640 * 480
COCO_SMALL, COCO_MEDIUM = 32 ** 2, 96 ** 2
# Words that place the target rather than describe it (RefCOCO's spatial vocabulary; synthref's
# location expressions use left/right/top/bottom and their superlatives).
LOCATION_WORDS = frozenset("""left right leftmost rightmost top bottom topmost lowest upper lower
    middle center centre front behind back above below under over beneath near next beside
    between closest nearest farthest furthest far first second third last corner side""".split())
WORD = re.compile(r"[a-z]+")

# kind -> (column of the attributes frame, its bins in display order)
BREAKDOWNS = {
    "area": ("area_bin", ["small", "medium", "large"]),
    "length": ("length_bin", ["1–2 words", "3–4 words", "5–7 words", "8+ words"]),
    "location": ("location_bin", ["location words", "no location words"]),
    "objects": ("objects_bin", ["1–4 objects", "5–6 objects", "7–9 objects", "10+ objects"]),
    "supercategory": ("supercategory", None),   # bins: the categories present
    "category": ("category", None),
}


def area_bin(area: float, height: int, width: int) -> str:
    scale = height * width / COCO_IMAGE_PIXELS
    if area < COCO_SMALL * scale:
        return "small"
    return "medium" if area < COCO_MEDIUM * scale else "large"


def length_bin(words: int) -> str:
    return ("1–2 words" if words <= 2 else "3–4 words" if words <= 4 else
            "5–7 words" if words <= 7 else "8+ words")


def objects_bin(objects) -> Optional[str]:
    if objects is None or pd.isna(objects):
        return None
    objects = int(objects)
    return ("1–4 objects" if objects <= 4 else "5–6 objects" if objects <= 6 else
            "7–9 objects" if objects <= 9 else "10+ objects")


def has_location_word(text: str) -> bool:
    return any(word in LOCATION_WORDS for word in WORD.findall(text.lower()))


def _refer_annotations(dataset: str, split: str, data_root, split_by) -> dict:
    """sample_id -> (area, objects in the image, category, supercategory) from the REFER files."""
    root = resolve_data_root(dataset, data_root)
    split_by = dataset_info(dataset).resolve_split_by(split_by, dataset)
    refs_file, instances_file = refer_files(Path(root), dataset, split_by)
    _, annotations, categories = read_instances(instances_file, with_categories=True)
    per_image: dict = {}
    for ann in annotations.values():
        per_image[ann["image_id"]] = per_image.get(ann["image_id"], 0) + 1
    found = {}
    for ref in read_refs(refs_file):
        if ref["split"] != split:
            continue
        ann = annotations[ref["ann_id"]]
        category = categories.get(ann.get("category_id", ref.get("category_id")), {})
        for sent in ref["sentences"]:
            found[sent["sent_id"]] = (ann.get("area"), per_image.get(ref["image_id"]),
                                      category.get("name"), category.get("supercategory"))
    return found


def sample_attributes(dataset: str, split: str, data_root=None, split_by=None,
                      image_root=None) -> pd.DataFrame:
    """The attributes frame of one split (module docstring), in the dataset's sample order."""
    ds = open_split(dataset, split, data_root=data_root, image_root=image_root, split_by=split_by)
    if not ds.has_masks:
        raise ConfigError(f"{dataset}/{split} has no masks: breakdowns are for evaluation splits")
    refer = (_refer_annotations(dataset, split, data_root, split_by)
             if dataset_info(dataset).kind != "phrasecut" else {})
    rows = []
    for index, sample in enumerate(ds.samples):
        area, objects, category, supercategory = refer.get(sample.sample_id, (None,) * 4)
        if area is None:
            area = float(ds.mask(index).sum())
        words = len(sample.text.split())
        location = has_location_word(sample.text)
        rows.append(dict(sample_id=sample.sample_id, image_id=sample.image_id, ref_id=sample.ref_id,
                         text=sample.text, words=words, area_px=float(area), objects=objects,
                         category=category, supercategory=supercategory, location=location,
                         area_bin=area_bin(float(area), sample.height, sample.width),
                         length_bin=length_bin(words),
                         location_bin="location words" if location else "no location words",
                         objects_bin=objects_bin(objects)))
    return pd.DataFrame(rows)


def breakdown_bins(kind: str, attributes: pd.DataFrame) -> tuple[str, list[str]]:
    """(column, bins) of breakdown `kind`; a ConfigError naming the kinds for an unknown one, or
    when the split's annotations lack what the kind needs (e.g. supercategory)."""
    if kind not in BREAKDOWNS:
        raise ConfigError(f"--by {kind!r}: expected one of {', '.join(BREAKDOWNS)}")
    column, bins = BREAKDOWNS[kind]
    present = attributes[column].dropna()
    if present.empty:
        raise ConfigError(f"--by {kind}: this dataset's annotations give no {column} "
                          "(instances.json categories without supercategory, or PhraseCut)")
    if bins is None:
        bins = sorted(present.unique())
    return column, bins
