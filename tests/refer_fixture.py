"""A tiny REFER-format dataset with exactly known masks, for the runner and CLI tests.

`DATA_ROOT/synthref/{instances.json, refs(unc).p}` and `DATA_ROOT/images/synthref/*.png`:
32×32 images, two rectangles each, stored as compressed RLE so every ground-truth pixel is
known here without rasterising polygons. One ref per rectangle with one or two sentences.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

SIZE = 32
# split -> images; each image -> two rectangles (y0, y1, x0, x1)
LAYOUT = {
    "train": [[(2, 10, 2, 12), (16, 30, 14, 28)], [(4, 20, 4, 20), (22, 30, 0, 32)]],
    "val": [[(0, 16, 0, 16), (20, 28, 20, 30)], [(6, 14, 6, 14), (2, 30, 18, 30)],
            [(8, 24, 4, 28), (26, 32, 0, 8)]],
    "testA": [[(10, 22, 10, 22), (0, 4, 0, 32)]],
    "testB": [[(1, 31, 1, 15), (12, 20, 20, 28)]],
}


class Expression(NamedTuple):
    sent_id: int
    ref_id: int
    gt: np.ndarray        # bool [32, 32]
    objects: np.ndarray   # bool [32, 32]: union of the image's rectangles
    image: Path


def rect_mask(rect) -> np.ndarray:
    y0, y1, x0, x1 = rect
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def write_refer_fixture(data_root: Path, dataset: str = "synthref") -> dict:
    """Write the dataset; returns {split: [Expression, ...]} in reading order."""
    data_root = Path(data_root)
    image_dir = data_root / "images" / "synthref"
    image_dir.mkdir(parents=True, exist_ok=True)
    (data_root / dataset).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images, annotations, refs, truth = [], [], [], {}
    image_id = ann_id = ref_id = sent_id = 0
    for split, scenes in LAYOUT.items():
        truth[split] = []
        for rects in scenes:
            image_id += 1
            name = f"{image_id:04d}.png"
            pixels = rng.integers(0, 255, size=(SIZE, SIZE, 3), dtype=np.uint8)
            for k, rect in enumerate(rects):
                pixels[rect_mask(rect)] = (200, 40, 40) if k == 0 else (40, 40, 200)
            Image.fromarray(pixels).save(image_dir / name)
            images.append({"id": image_id, "file_name": name, "height": SIZE, "width": SIZE})
            objects = np.logical_or.reduce([rect_mask(r) for r in rects])
            for k, rect in enumerate(rects):
                ann_id += 1
                ref_id += 1
                rle = coco_mask.encode(np.asfortranarray(rect_mask(rect).astype(np.uint8)))
                rle["counts"] = rle["counts"].decode("ascii")
                annotations.append({"id": ann_id, "image_id": image_id, "category_id": 1,
                                    "segmentation": rle, "area": int(rect_mask(rect).sum()),
                                    "bbox": [rect[2], rect[0], rect[3] - rect[2], rect[1] - rect[0]],
                                    "iscrowd": 0})
                sentences = []
                for text in (["the red box", "red thing"] if k == 0 else ["the blue box"]):
                    sent_id += 1
                    sentences.append({"sent_id": sent_id, "sent": text, "tokens": text.split()})
                    truth[split].append(Expression(sent_id, ref_id, rect_mask(rect), objects,
                                                   image_dir / name))
                refs.append({"ref_id": ref_id, "ann_id": ann_id, "image_id": image_id,
                             "split": split, "sentences": sentences, "category_id": 1})
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "box"}]}
    (data_root / dataset / "instances.json").write_text(json.dumps(coco))
    with open(data_root / dataset / "refs(unc).p", "wb") as handle:
        pickle.dump(refs, handle, protocol=4)
    return truth


def hand_summary(ious: list[float], intersections: list[int], unions: list[int]) -> dict:
    """DESIGN §5 by hand with numpy, in percent."""
    ious_arr = np.asarray(ious)
    return {"A@0.3": 100 * np.mean(ious_arr >= 0.3), "A@0.5": 100 * np.mean(ious_arr >= 0.5),
            "A@0.7": 100 * np.mean(ious_arr >= 0.7),
            "cIoU": 100 * np.sum(intersections) / np.sum(unions),
            "mIoU": 100 * np.mean(ious_arr), "n": len(ious)}


def hand_metrics(predictions: list[np.ndarray], truths: list[np.ndarray]) -> dict:
    inter = [int(np.logical_and(p, g).sum()) for p, g in zip(predictions, truths)]
    union = [int(np.logical_or(p, g).sum()) for p, g in zip(predictions, truths)]
    return hand_summary([i / u for i, u in zip(inter, union)], inter, union)
