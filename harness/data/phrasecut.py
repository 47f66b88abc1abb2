"""PhraseCut reader: `refer_<split>.json` (a list of tasks) or `refer_<split>_ris.json` (a dict
task_id -> task), images `<data_root>/images/<image_id>.jpg`.

A task's `Polygons` is a list over instances, each a list of polygons of [x, y] points; the
ground truth is their union, rasterised with PIL's ImageDraw (outline and fill = 1) as the SaG
release does, at the image's original size (from `image_data.json` if present, else the
image file's header). One sample = one task (`sample_id = task_id`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

from harness.data.refer import is_train_split
from harness.data.types import RefDataset, RefSample
from harness.errors import ConfigError, DataError


def load_phrasecut(data_root, split: str, image_root=None, limit: Optional[int] = None) -> RefDataset:
    """One PhraseCut split; `limit` keeps the first N tasks in the file's order."""
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise DataError(data_root, "PhraseCut folder not found (expected refer_<split>.json and images/)")
    path, tasks = read_tasks(data_root, split)
    if limit is not None:
        if int(limit) < 1:
            raise ConfigError(f"limit must be ≥ 1, got {limit}")
        tasks = tasks[: int(limit)]
    image_root = Path(image_root) if image_root is not None else data_root / "images"
    sizes = ImageSizes(data_root, image_root)
    samples = [RefSample(sample_id=t["task_id"], ref_id=t["task_id"], image_id=t["image_id"],
                         image_path=image_root / f"{t['image_id']}.jpg", text=t["phrase"],
                         height=h, width=w)
               for t in tasks for (h, w) in [sizes.of(t["image_id"])]]
    if is_train_split(split):
        return RefDataset("phrasecut", split, data_root, samples)
    polygons_of_task = {t["task_id"]: t["Polygons"] for t in tasks}
    tasks_of_image: dict = {}
    for t in tasks:
        tasks_of_image.setdefault(t["image_id"], []).append(t["task_id"])

    def mask(sample: RefSample) -> np.ndarray:
        return rasterise(polygons_of_task[sample.sample_id], sample.height, sample.width,
                         where=f"task {sample.sample_id} in {path}")

    def objects(sample: RefSample) -> np.ndarray:
        out = np.zeros((sample.height, sample.width), dtype=bool)
        for task_id in tasks_of_image[sample.image_id]:
            out |= rasterise(polygons_of_task[task_id], sample.height, sample.width,
                             where=f"task {task_id} in {path}")
        return out

    return RefDataset("phrasecut", split, data_root, samples, mask_source=mask, objects_source=objects)


def read_tasks(data_root: Path, split: str) -> tuple[Path, list[dict]]:
    """(file read, tasks as dicts with task_id, image_id, phrase, Polygons) in file order."""
    plain = data_root / f"refer_{split}.json"
    ris = data_root / f"refer_{split}_ris.json"
    path = plain if plain.is_file() else ris
    if not path.is_file():
        present = sorted(p.name for p in data_root.glob("refer_*.json"))
        raise DataError(plain, f"not found (nor {ris.name}); files present: {', '.join(present) or 'none'}")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid JSON ({exc})") from exc
    if isinstance(raw, dict):  # the _ris variant: task_id -> task, image id = task_id's prefix
        raw = [dict(task, task_id=task_id, image_id=_image_id_of(task_id)) for task_id, task in raw.items()]
    if not isinstance(raw, list):
        raise DataError(path, "expected a list of tasks or a dict task_id -> task")
    for task in raw:
        missing = [k for k in ("task_id", "image_id", "phrase", "Polygons") if k not in task]
        if missing:
            raise DataError(path, f"task {task.get('task_id', '?')} lacks {', '.join(missing)}")
    return path, raw


def _image_id_of(task_id: str):
    prefix = str(task_id).split("__")[0]
    return int(prefix) if prefix.isdigit() else prefix


class ImageSizes:
    """(height, width) per image id: from image_data.json when present, else the image header."""

    def __init__(self, data_root: Path, image_root: Path):
        self.image_root = image_root
        self._sizes: dict = {}
        info = data_root / "image_data.json"
        if info.is_file():
            try:
                for entry in json.loads(info.read_text()):
                    self._sizes[entry["image_id"]] = (int(entry["height"]), int(entry["width"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise DataError(info, f"expected a list of {{image_id, height, width}} ({exc})") from exc

    def of(self, image_id) -> tuple[int, int]:
        if image_id not in self._sizes:
            path = self.image_root / f"{image_id}.jpg"
            if not path.is_file():
                raise DataError(path, "image not found (its size is needed; give --image-root DIR "
                                      "or an image_data.json)")
            try:
                with Image.open(path) as im:  # reads the header only
                    self._sizes[image_id] = (im.height, im.width)
            except OSError as exc:
                raise DataError(path, f"cannot be read as an image ({exc})") from exc
        return self._sizes[image_id]


def rasterise(instances, height: int, width: int, where: str) -> np.ndarray:
    """Union of every polygon of every instance, bool [H, W]."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    if not isinstance(instances, list) or not instances:
        raise DataError(where, "Polygons must be a non-empty list over instances")
    for polygons in instances:
        for poly in polygons:
            try:
                points = [(float(x), float(y)) for x, y in poly]
            except (TypeError, ValueError) as exc:
                raise DataError(where, f"malformed polygon {str(poly)[:60]}: expected [[x, y], ...]") from exc
            if len(points) < 3:
                raise DataError(where, f"polygon with {len(points)} points; at least 3 expected")
            draw.polygon(points, outline=1, fill=1)
    return np.asarray(canvas, dtype=bool)
